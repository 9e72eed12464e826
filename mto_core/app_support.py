"""Small pure helpers behind the app's widgets: finding checkpoints, keeping paths inside the
allowed folders, reading uploads, editing masks by hand."""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import WEIGHTS, list_checkpoints
from .data import DataError, read_image

MAX_UPLOAD_BYTES = 10 * 2**20


def safe_path(path: str | Path, roots: list[Path]) -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; ValueError otherwise."""
    resolved = Path(path).resolve()
    for root in roots:
        if resolved == root.resolve() or root.resolve() in resolved.parents:
            return resolved
    raise ValueError(f"{path} is outside the allowed folders ({', '.join(str(r) for r in roots)})")


def find_checkpoints(roots: list[Path], base: Path) -> dict[str, str]:
    """{label relative to ``base``: path} of every checkpoint or run folder under ``roots``."""
    found: dict[str, str] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (folder / WEIGHTS).is_file() or list_checkpoints(folder):
                found[folder.relative_to(base).as_posix()] = str(folder)
    return found


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
