"""Files a visitor can reach: paths kept inside the allowed folders, the checkpoints the app can
open (and why the others cannot), uploads read within a size limit."""

from __future__ import annotations

from pathlib import Path

from mto_core.data.images import DataError, LoadedImage, load_image
from mto_core.models.checkpoint import WEIGHTS, list_checkpoints, read_config, resolve
from mto_core.models.objective import check_model_fits

MAX_UPLOAD_BYTES = 10 * 2**20


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


def read_upload(data: bytes, size: int, channels: int, limit: int = MAX_UPLOAD_BYTES,
                background: tuple[int, int, int] = (0, 0, 0)) -> LoadedImage:
    """An uploaded file's bytes -> :class:`LoadedImage` (image (C, size, size) uint8, notes,
    preview); DataError in plain words if too big, empty or unreadable."""
    if len(data) > limit:
        raise DataError(f"the upload is {len(data) / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB")
    if not data:
        raise DataError("the upload is empty")
    return load_image(data, size, channels, background)
