"""Photos for models that see natural images (RGB at 224 x 224, as published MAE and SimMIM do).

The bundled set is read at run time from the photos that ship inside scikit-image's package
(``skimage/data``: astronaut, chelsea the cat, coffee, a rocket, a motorcycle, the Hubble deep
field, a retina, a tissue stain); nothing is downloaded. Any folder of images works too.

Each photo is prepared as ImageNet models expect it: the short side resized to the model's size,
then the centre cropped square. The per-channel normalisation (ImageNet's mean and std for the
published models) is the model's own (``model.pixel_mean`` / ``pixel_std``), applied inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .images import IMAGE_SUFFIXES, DataError, open_image

# name -> file in skimage/data; each is a photograph (not a drawing or a test pattern). BUNDLED: the
# colour photos (what `mto analyze` measures on by default); GALLERY adds grey photographs (given three
# equal channels), so that the app can show up to 16.
BUNDLED = {"astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png",
           "rocket": "rocket.jpg", "motorcycle": "motorcycle_left.png",
           "hubble_deep_field": "hubble_deep_field.jpg", "retina": "retina.jpg",
           "immunohistochemistry": "ihc.png"}
GALLERY = {**BUNDLED, "motorcycle (right eye)": "motorcycle_right.png", "camera": "camera.png",
           "coins": "coins.png", "moon": "moon.png", "brick": "brick.png", "grass": "grass.png",
           "gravel": "gravel.png", "cell": "cell.png"}


@dataclass
class Photos:
    """images: (B, 3, size, size) uint8; names: one per image (the bundled name, or the file name)."""

    images: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


def bundled_folder() -> Path:
    """Where scikit-image keeps its photos; DataError if it is not installed."""
    try:
        import skimage.data
    except ImportError:
        raise DataError("the bundled photos come with scikit-image, which is not installed: "
                        "pip install scikit-image (scripts/install.sh does), or pass --images DIR") from None
    return Path(skimage.data.__file__).parent


def prepare_photo(image: Image.Image, size: int) -> torch.Tensor:
    """An RGB PIL image -> (3, size, size) uint8: short side resized to ``size`` (bicubic,
    antialiased when shrinking), then the centre ``size`` x ``size`` crop."""
    image = image.convert("RGB")
    scale = size / min(image.width, image.height)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC, reducing_gap=None if scale > 1 else 3.0)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


def read_photo(source: str | Path | bytes, size: int) -> torch.Tensor:
    """One image file (path or bytes) -> :func:`prepare_photo`; DataError, in one line, if it is
    not a readable image or declares more pixels than is safe."""
    with open_image(source) as opened:
        opened.seek(0)
        return prepare_photo(opened, size)


def bundled_photos(size: int = 224, names: list[str] | None = None) -> Photos:
    """The bundled colour photos (all of :data:`BUNDLED`, or ``names`` of :data:`GALLERY`), prepared
    at ``size``."""
    names = list(BUNDLED) if names is None else names
    unknown = [n for n in names if n not in GALLERY]
    if unknown:
        raise DataError(f"no bundled photo named {unknown[0]}; the bundled photos are {', '.join(GALLERY)}")
    folder = bundled_folder()
    return Photos(torch.stack([read_photo(folder / GALLERY[n], size) for n in names]), names)


def photo_folder(root: str | Path, size: int = 224, limit: int = 0) -> Photos:
    """Every image directly in or below ``root`` (sorted by path; the first ``limit``, 0 = all),
    prepared at ``size``. DataError if there is none, or one cannot be read."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--images {root}: no such folder; give a folder of images (PNG, JPEG, ...)")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        files = files[:limit]
    if not files:
        raise DataError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return Photos(torch.stack([read_photo(f, size) for f in files]), [f.name for f in files])
