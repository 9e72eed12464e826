"""Small pure helpers behind the app: its server settings, finding checkpoints, keeping paths
inside the allowed folders, reading uploads, editing masks by hand."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import WEIGHTS, list_checkpoints, read_config, resolve
from .data import DataError, read_image
from .objective import check_model_fits

MAX_UPLOAD_BYTES = 10 * 2**20

# Passed on Streamlit's command line by app/serve.py: Streamlit reads .streamlit/config.toml only
# from the working directory, and without these it listens on every interface, gathers usage
# statistics and accepts 200 MB uploads.
SERVER_SETTINGS = {"server.address": "localhost", "server.maxUploadSize": str(MAX_UPLOAD_BYTES // 2**20),
                   "server.headless": "true", "browser.gatherUsageStats": "false", "theme.base": "light"}
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def server_args(extra: list[str]) -> list[str]:
    """Streamlit options for the app: ``SERVER_SETTINGS`` where ``extra`` does not give them,
    then ``extra``; ValueError for an address other than this machine's or a larger upload limit."""
    given: dict[str, str] = {}
    for i, arg in enumerate(extra):
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            given[key] = value if sep else (extra[i + 1] if i + 1 < len(extra) else "")
    if given.get("server.address", "localhost") not in LOOPBACK:
        raise ValueError(f"the app serves this machine only (--server.address one of {', '.join(LOOPBACK)}), "
                         f"got {given['server.address']}; reach it from elsewhere through an SSH tunnel")
    limit = given.get("server.maxUploadSize", SERVER_SETTINGS["server.maxUploadSize"])
    if not limit.isdigit() or int(limit) > MAX_UPLOAD_BYTES // 2**20:
        raise ValueError(f"--server.maxUploadSize must be at most {MAX_UPLOAD_BYTES // 2**20} (MB), got {limit}")
    return [f"--{key}={value}" for key, value in SERVER_SETTINGS.items() if key not in given] + extra


def safe_path(path: str | Path, roots: list[Path]) -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; ValueError otherwise."""
    resolved = Path(path).resolve()
    for root in roots:
        if resolved == root.resolve() or root.resolve() in resolved.parents:
            return resolved
    raise ValueError(f"{path} is outside the allowed folders ({', '.join(str(r) for r in roots)})")


def scan_checkpoints(roots: list[Path], base: Path) -> tuple[dict[str, str], dict[str, str]]:
    """({label relative to ``base``: path} of the checkpoint and run folders under ``roots`` the
    app can open, {label: why not} of the others: links leading outside ``roots``, unreadable
    configs, models too large for this machine). Only config.json files are read."""
    found: dict[str, str] = {}
    unusable: dict[str, str] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not ((folder / WEIGHTS).is_file() or list_checkpoints(folder)):
                continue
            label = folder.relative_to(base).as_posix()
            try:
                safe_path(folder, roots)
                check_model_fits(read_config(resolve(folder)).model)
            except ValueError as error:  # CheckpointError and ConfigError among them
                unusable[label] = str(error)
                continue
            found[label] = str(folder)
    return found, unusable


def read_upload(data: bytes, size: int, channels: int, limit: int = MAX_UPLOAD_BYTES) -> torch.Tensor:
    """An uploaded file's bytes -> (1, C, size, size) uint8; DataError if too big or unreadable."""
    if len(data) > limit:
        raise DataError(f"the upload is {len(data) / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB")
    if not data:
        raise DataError("the upload is empty")
    return read_image(data, size, channels).unsqueeze(0)


def toggle_patches(mask: torch.Tensor, patches: list[int]) -> torch.Tensor:
    """A copy of the (N,) bool mask with the given patch indices flipped."""
    out = mask.clone()
    for index in patches:
        if not 0 <= index < out.numel():
            raise ValueError(f"patch {index} is outside the grid of {out.numel()} patches")
        out[index] = ~out[index]
    return out
