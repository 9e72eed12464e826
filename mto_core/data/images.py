"""Images as uint8 tensors: Fashion-MNIST (IDX .gz), a shipped subset, or a folder of images.

Data stays in memory as one uint8 tensor (N, C, H, W) so the training loop only indexes and
converts batches: no per-sample PIL work while training. Labels are int64 (N,), -1 = none.
"""

from __future__ import annotations

import gzip
import math
import struct
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..config import DataConfig, ModelConfig

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
SHIPPED_FASHION_MNIST = Path(__file__).resolve().parent / "fashion-mnist-subset"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
MAX_IMAGE_PIXELS = 50_000_000
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


# data.dataset -> the loader (config, model, split) of a dataset kept in a module of its own, which
# registers it (photo_crops.py: photo-crops)
DATASET_LOADERS: dict[str, Callable[[DataConfig, ModelConfig, str], ImageSet]] = {}


class DataError(ValueError):
    """Data that cannot be read; the message names the file and what was expected."""


@dataclass
class ImageSet:
    """images (N, C, H, W) uint8, labels (N,) int64 (-1 where unknown), class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, index: torch.Tensor | slice) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.classes)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(4)
            if len(header) != 4 or header[0] or header[1] or header[2] not in _IDX_TYPES:
                raise DataError(f"{path} is not an IDX file (bad magic number {header.hex()})")
            ndim = header[3]
            shape = struct.unpack(f">{ndim}I", handle.read(4 * ndim))
            dtype = np.dtype(_IDX_TYPES[header[2]])
            raw = handle.read()
    except (OSError, EOFError, struct.error) as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path} is truncated or padded: expected {expected} bytes of data for "
                        f"shape {shape}, found {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape)


def fashion_mnist_root(root: str = "") -> Path:
    """The folder to read: ``root`` if given, else the system copy, else the shipped subset."""
    if root == "shipped":
        return SHIPPED_FASHION_MNIST
    if root:
        return Path(root)
    return SYSTEM_FASHION_MNIST if (SYSTEM_FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").exists() \
        else SHIPPED_FASHION_MNIST


def load_fashion_mnist(split: str, root: str = "") -> ImageSet:
    """Fashion-MNIST ``train`` or ``test`` split as (N, 1, 28, 28) uint8 with labels."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DataError(f"split must be 'train' or 'test', got '{split}'")
    folder = fashion_mnist_root(root)
    files = [folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz"]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise DataError(f"Fashion-MNIST files not found: {', '.join(missing)}. Install the "
                        "Debian package dataset-fashion-mnist, or set data.root to a folder "
                        "holding the four IDX .gz files (or to 'shipped').")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DataError(f"{folder}: images {images.shape} and labels {labels.shape} do not match")
    return ImageSet(torch.from_numpy(images.copy()).unsqueeze(1),
                    torch.from_numpy(labels.astype(np.int64)), FASHION_MNIST_CLASSES)


@dataclass
class LoadedImage:
    """An image as the model sees it, what was done to get there, and a preview of the original.

    image: (C, size, size) uint8; notes: plain sentences for the user (16-bit scaled, transparency
    composited, first frame of an animation); preview: (h, w, 3) uint8, the original (composited,
    first frame) shrunk to at most ``preview`` pixels a side.
    """

    image: torch.Tensor
    notes: list[str]
    preview: np.ndarray


_WIDE_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": None, "F": None}


def _to_8_bit(image: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit and 32-bit grey images scaled into 0..255 (PIL's own conversion clips at 255)."""
    if image.mode not in _WIDE_MODES:
        return image
    array = np.asarray(image, dtype=np.float64)
    low, high = float(array.min()), float(array.max())
    top = _WIDE_MODES[image.mode] or (65535 if 0 <= low and high <= 65535 else None)
    if top == 65535 and image.mode in ("I", "F") and high <= 255:
        return Image.fromarray(array.astype(np.uint8), "L")  # wide container, 8-bit values
    if top is None:
        array = (array - low) / (high - low or 1.0) * 255
        notes.append(f"The image has {image.mode!r} pixels (32-bit); its range {low:g}..{high:g} was "
                     "stretched to 0..255.")
    else:
        array = array / top * 255
        notes.append("The image has 16-bit pixels; they were scaled to 8 bits (0..65535 -> 0..255).")
    return Image.fromarray(np.clip(array.round(), 0, 255).astype(np.uint8), "L")


def _composite(image: Image.Image, background: tuple[int, int, int], notes: list[str]) -> Image.Image:
    """Transparent pixels laid on ``background``, with a note when any pixel is not opaque."""
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if not has_alpha:
        return image
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba)[..., 3]
    if alpha.min() == 255:
        return image
    share = float((alpha < 255).mean())
    name = {(0, 0, 0): "black", (255, 255, 255): "white"}.get(background, f"rgb{background}")
    notes.append(f"{share:.0%} of the pixels are transparent; they were laid on a {name} background.")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _edges(array: np.ndarray) -> np.ndarray:
    """The pixels on the border of an (H, W[, C]) image, (n[, C])."""
    return np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])


def _square(image: Image.Image, notes: list[str]) -> Image.Image:
    """A non-square image centred on a square of its own border colour (the median of its edge
    pixels), with a note: shrunk as it is, it would be stretched."""
    w, h = image.size
    if w == h:
        return image
    edges = _edges(np.asarray(image)).reshape(-1, len(image.getbands()))
    colour = tuple(int(v) for v in np.median(edges, axis=0))
    side = max(w, h)
    canvas = Image.new(image.mode, (side, side), colour if len(colour) > 1 else colour[0])
    canvas.paste(image, ((side - w) // 2, (side - h) // 2))
    notes.append(f"The image is {w} x {h} pixels; it was centred on a square of its border colour before "
                 "shrinking, so that it is not stretched.")
    return canvas


def _note_light_border(array: np.ndarray, notes: list[str]) -> None:
    """A note when the image's border is light: Fashion-MNIST's items are light on black."""
    if float(_edges(array).mean()) > 127:
        notes.append("Its background is light, while Fashion-MNIST's items are light on a black background, "
                     "the only kind of image the models have seen: their predictions for it mean little. "
                     "Inverting the grey levels makes it look like their data.")


@contextmanager
def open_image(source: str | Path | bytes):
    """The PIL image of ``source`` (a path or bytes), opened under the pixel limit; DataError in one
    line for a file that is not a readable image or declares more pixels than is safe to decode."""
    import io

    name = "the upload" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            if opened.width * opened.height > MAX_IMAGE_PIXELS:
                raise DataError(f"{name} is {opened.width}x{opened.height} pixels; the limit is "
                                f"{MAX_IMAGE_PIXELS:,} pixels")
            yield opened
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"{name} declares more pixels than is safe to decode; the limit is "
                        f"{MAX_IMAGE_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError):
        # PIL's own message names the in-memory buffer (<_io.BytesIO object at 0x...>): not for users
        raise DataError(f"{name} is not a readable image (the file is damaged or not an image); use "
                        "PNG, JPEG, GIF, BMP, TIFF or WebP") from None


def load_image(source: str | Path | bytes, size: int, channels: int,
               background: tuple[int, int, int] = (0, 0, 0), preview: int = 256) -> LoadedImage:
    """Any PIL-readable image (path or bytes) -> :class:`LoadedImage`, resized and converted.

    Nothing is changed silently: 16-bit pixels are scaled (not clipped), transparent pixels are
    laid on ``background`` (black by default, like Fashion-MNIST's), an animation gives its first
    frame, a non-square image is centred on a square of its border colour (not stretched); each
    of these adds a note, as does a light background (Fashion-MNIST's is black).
    """
    notes: list[str] = []
    with open_image(source) as opened:
        frames = getattr(opened, "n_frames", 1)
        if getattr(opened, "is_animated", False) and frames > 1:
            opened.seek(0)
            notes.append(f"The image is an animation of {frames} frames; only the first frame is used.")
        image = _composite(_to_8_bit(opened, notes), background, notes)
        shown = image.convert("RGB")
        shown.thumbnail((preview, preview), Image.Resampling.NEAREST)
        image = _square(image.convert("L" if channels == 1 else "RGB"), notes)
        # box averaging when shrinking: no ringing halo at sharp edges (bicubic's overshoot)
        shrink = image.width >= size
        image = image.resize((size, size), Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.uint8)
        _note_light_border(array, notes)
    tensor = torch.from_numpy(array.copy())
    tensor = tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1)
    return LoadedImage(tensor, notes, np.asarray(shown, dtype=np.uint8))


def read_image(source: str | Path | bytes, size: int, channels: int) -> torch.Tensor:
    """Any PIL-readable image (path or bytes) -> (C, size, size) uint8 (see :func:`load_image`)."""
    return load_image(source, size, channels).image


def load_image_folder(root: str | Path, size: int, channels: int) -> ImageSet:
    """Every image under ``root`` (sub-folders become classes); non-image files are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    classes = tuple(sorted({p.parent.relative_to(root).as_posix() for p in files}))
    images, labels = [], []
    for path in files:
        images.append(read_image(path, size, channels))
        labels.append(classes.index(path.parent.relative_to(root).as_posix()))
    return ImageSet(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic (train, val) index split of range(n)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(math.floor(n * val_fraction))
    return order[n_val:].sort().values, order[:n_val].sort().values


def load_dataset(config: DataConfig, model: ModelConfig, split: str) -> ImageSet:
    """``train`` / ``val`` (a deterministic split of the training images) or ``test``."""
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be train, val or test, got '{split}'")
    if config.dataset in DATASET_LOADERS:
        data = DATASET_LOADERS[config.dataset](config, model, split)
    elif config.dataset == "folder":
        if not config.root:
            raise DataError("data.dataset=folder needs data.root=<folder of images>")
        full = load_image_folder(config.root, model.img_size, model.in_chans)
        train_idx, held_idx = split_indices(len(full), config.val_fraction or 0.1, config.split_seed)
        data = full.subset(train_idx if split == "train" else held_idx)
    else:
        data = load_fashion_mnist("test" if split == "test" else "train", config.root)
        if split != "test":
            train_idx, val_idx = split_indices(len(data), config.val_fraction, config.split_seed)
            data = data.subset(train_idx if split == "train" else val_idx)
    if split == "train" and config.train_limit:
        data = data.subset(slice(0, config.train_limit))
    if len(data) == 0:
        raise DataError(f"the {split} split is empty; use more images or change data.val_fraction")
    return data


def prepare_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """uint8 or float images (B, C, H, W) -> float (B, channels, size, size) in [0, 1]."""
    if images.ndim != 4:
        raise DataError(f"images must be (B, C, H, W), got shape {tuple(images.shape)}")
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] != channels:
        if x.shape[1] == 1:
            x = x.expand(-1, channels, -1, -1)
        elif channels == 1 and x.shape[1] == 3:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise DataError(f"cannot convert {x.shape[1]}-channel images to {channels} channels")
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def augment(images: torch.Tensor, draws: torch.Tensor, scale: tuple[float, float] = (0.67, 1.0)) -> torch.Tensor:
    """Light MIM augmentation of a batch (B, C, H, W): random resized crop + horizontal flip.

    ``draws`` (B, 4) uniform numbers in [0, 1) decide the crop area, its position and the
    flip, so the caller controls the randomness. One batched affine resample, aspect kept.
    """
    b = images.shape[0]
    draws = draws.to(images.device, torch.float32)
    s = (scale[0] + draws[:, 0] * (scale[1] - scale[0])).sqrt()  # side of the crop, as a fraction
    tx, ty = (2 * draws[:, 1] - 1) * (1 - s), (2 * draws[:, 2] - 1) * (1 - s)
    sign = torch.where(draws[:, 3] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=images.device)
    theta[:, 0, 0], theta[:, 0, 2] = s * sign, tx
    theta[:, 1, 1], theta[:, 1, 2] = s, ty
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
