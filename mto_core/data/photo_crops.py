"""Photo crops: a colour training set made at run time from the photographs that ship inside
installed packages (``data.dataset=photo-crops``); nothing is downloaded.

Sources: scikit-image's bundled photographs (``skimage/data``; the grey ones given three equal
channels) and scikit-learn's two sample images (``load_sample_images``: china.jpg and flower.jpg,
Creative Commons Attribution 2.0, by danielbuechele and vultilion on Flickr, as scikit-learn's
``datasets/images/README.txt`` states). Four colour photos are held out of training by default:
astronaut, chelsea, coffee and rocket (:data:`HELD_OUT`), so that a model's reconstruction of them is of
photos it never saw (``data.held_out`` may name others).

Splits:

- ``train``: :data:`TRAIN_CROPS` crops of the training photos. Crop i picks a photo, a square
  region of it whose side is drawn log-uniformly between the model's size and the photo's short
  side (a range of scales, from single pixels to the whole scene), then MAE's augmentation inside
  the region (RandomResizedCrop: area 0.2-1, aspect 3/4-4/3; a mirror by coin), resized to the
  model's size. Labels: the index of the source photo in ``classes``.
- ``val``: :data:`VAL_CROPS` crops of the held-out photos, drawn the same way (labels: which one).
- ``test``: the four held-out photos whole, as the app shows them (short side resized, centre
  cropped; :func:`~mto_core.data.photos.prepare_photo`).

Every draw comes from ``data.split_seed`` (:mod:`.seeding`): the same seed gives the same crops,
so a resumed run sees what an uninterrupted one would. The training loop's own augmentation
(``data.augment``) comes on top, as for every dataset.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import DataConfig, ModelConfig
from .images import DATASET_LOADERS, DataError, ImageSet
from .photos import GALLERY, bundled_folder, prepare_photo
from .seeding import generator

PHOTO_CROPS = "photo-crops"
HELD_OUT = ("astronaut", "chelsea", "coffee", "rocket")
# name -> (package, file): scikit-image's photographs (not drawings or test patterns) and
# scikit-learn's sample images; colour first, then grey. Every one not held out is trained on.
PHOTOS = {
    "astronaut": ("skimage", "astronaut.png"), "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"), "rocket": ("skimage", "rocket.jpg"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"), "motorcycle_right": ("skimage", "motorcycle_right.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"), "retina": ("skimage", "retina.jpg"),
    "immunohistochemistry": ("skimage", "ihc.png"), "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"), "camera": ("skimage", "camera.png"), "coins": ("skimage", "coins.png"),
    "brick": ("skimage", "brick.png"), "grass": ("skimage", "grass.png"), "gravel": ("skimage", "gravel.png"),
}
TRAIN_CROPS = 20000
VAL_CROPS = 256
AREA = (0.2, 1.0)  # MAE's RandomResizedCrop scale
RATIO = (3 / 4, 4 / 3)  # and its aspect ratios


@functools.cache
def source_photo(name: str) -> Image.Image:
    """The full-size RGB photo ``name`` of :data:`PHOTOS`."""
    package, file = PHOTOS[name]
    if package == "sklearn":
        try:
            from sklearn.datasets import load_sample_image
        except ImportError:
            raise DataError("data.dataset=photo-crops reads scikit-learn's sample images, and scikit-learn "
                            "is not installed: pip install scikit-learn") from None
        return Image.fromarray(load_sample_image(file)).convert("RGB")
    with Image.open(Path(bundled_folder()) / file) as image:
        return image.convert("RGB")


def crop_boxes(draws: torch.Tensor, sizes: list[tuple[int, int]], size: int) -> list[tuple[int, tuple[float, ...], bool]]:
    """(photo index, crop box (left, top, right, bottom), mirror) for each row of ``draws`` (n, 9)
    uniform numbers, over photos of ``sizes`` (width, height)."""
    out = []
    for u in draws.tolist():
        p = min(int(u[0] * len(sizes)), len(sizes) - 1)
        width, height = sizes[p]
        short = min(width, height)
        low = min(size, short)
        side = math.exp(math.log(low) + u[1] * (math.log(short) - math.log(low)))
        x0, y0 = u[2] * (width - side), u[3] * (height - side)
        area = side * side * (AREA[0] + u[4] * (AREA[1] - AREA[0]))
        ratio = math.exp(math.log(RATIO[0]) + u[5] * (math.log(RATIO[1]) - math.log(RATIO[0])))
        w, h = min(side, math.sqrt(area * ratio)), min(side, math.sqrt(area / ratio))
        left, top = x0 + u[6] * (side - w), y0 + u[7] * (side - h)
        out.append((p, (left, top, left + w, top + h), u[8] < 0.5))
    return out


def make_crops(names: tuple[str, ...], count: int, size: int, seed: int, purpose: str) -> ImageSet:
    """``count`` crops of the photos ``names`` at ``size`` x ``size``, drawn from ``seed``."""
    photos = [source_photo(n) for n in names]
    draws = torch.rand(count, 9, generator=generator(seed, purpose, 0), dtype=torch.float64)
    images, labels = [], []
    for p, box, mirror in crop_boxes(draws, [im.size for im in photos], size):
        crop = photos[p].resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
        if mirror:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        images.append(np.asarray(crop, dtype=np.uint8))
        labels.append(p)
    return ImageSet(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(),
                    torch.tensor(labels, dtype=torch.int64), names)


def held_out_names(text: str = "") -> tuple[str, ...]:
    """The photos ``data.held_out`` names (comma-separated; empty: :data:`HELD_OUT`); DataError in
    one line for a name that is not one of :data:`PHOTOS` or a list that leaves none to train on."""
    names = tuple(n.strip() for n in text.split(",") if n.strip()) or HELD_OUT
    unknown = [n for n in names if n not in PHOTOS]
    if unknown:
        raise DataError(f"data.held_out names '{unknown[0]}', which is not one of the photos; choose among "
                        f"{', '.join(PHOTOS)}")
    if not set(PHOTOS) - set(names):
        raise DataError("data.held_out holds every photo, which leaves none to train on; hold out fewer")
    return names


def trained_on(data: DataConfig, photo: str) -> bool | None:
    """Whether a run with ``data`` trained on the bundled photo ``photo`` (a name of
    :data:`~mto_core.data.photos.GALLERY`): True for one of its training photos, False for one held
    out (``data.held_out``) or never among :data:`PHOTOS`; None for a run of another dataset, whose
    training photos are not known here."""
    if data.dataset != PHOTO_CROPS:
        return None
    held_out = held_out_names(data.held_out)
    trained = {file for name, (package, file) in PHOTOS.items()
               if package == "skimage" and name not in held_out}
    return GALLERY.get(photo) in trained


@functools.lru_cache(maxsize=4)
def _photo_crops(split: str, size: int, seed: int, held_out: tuple[str, ...]) -> ImageSet:
    if split == "train":
        return make_crops(tuple(n for n in PHOTOS if n not in held_out), TRAIN_CROPS, size, seed, "photo-crops")
    if split == "val":
        return make_crops(held_out, VAL_CROPS, size, seed, "photo-crops-val")
    images = torch.stack([prepare_photo(source_photo(n), size) for n in held_out])
    return ImageSet(images, torch.arange(len(held_out)), held_out)


def photo_crops(split: str, size: int, seed: int, held_out: str = "") -> ImageSet:
    """The ``split`` (train, val or test) of the photo-crop set at ``size``, drawn from ``seed``,
    with the photos ``held_out`` names kept out of training (see the module's description);
    (N, 3, size, size) uint8, labels the index of each crop's photo in ``classes``."""
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be train, val or test, got '{split}'")
    data = _photo_crops(split, size, seed, held_out_names(held_out))
    return ImageSet(data.images, data.labels, data.classes)


def load_split(config: DataConfig, model: ModelConfig, split: str) -> ImageSet:
    """``load_dataset``'s view of the set: the split at the model's size, from ``data.split_seed``
    and ``data.held_out``."""
    return photo_crops(split, model.img_size, config.split_seed, config.held_out)


DATASET_LOADERS[PHOTO_CROPS] = load_split
