"""Images read when a batch needs them: a folder of any size (ImageNet's ``train/CLASS/*.JPEG`` or
flat) or a Hugging Face ``datasets`` set, decoded and augmented in DataLoader worker processes.

Only the list of images is held at the start (one numpy array of relative paths, no Python
object per image, so that forked workers share it). Every draw of a sample, its crop and its
flip, comes from (seed, epoch, sample index): the batches are the same whatever the number of
workers and of torchrun processes, and a resumed run reads what an uninterrupted one would.

The augmentation is MAE's, on the original image: a random resized crop of 20-100 % of its area
and an aspect ratio of 3/4 to 4/3, resized to the model's size with bicubic interpolation, then
a horizontal flip half the time. Without augmentation (probes) an image is read as
:func:`~.images.read_image` reads it. An image that cannot be decoded is replaced by the next
readable one of the set and counted (:class:`Skipped`); a set where most sampled images fail
is refused before anything is written.

Fashion-MNIST and the shipped subset stay in memory (:class:`~.images.ImageSet`);
:func:`read_batches` reads both kinds, so the training loop and the probes have one path.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import ConfigError
from .images import IMAGE_SUFFIXES, DataError, ImageSet, open_image, read_image
from .seeding import derive_seed

MAE_SCALE = (0.2, 1.0)
MAE_RATIO = (3 / 4, 4 / 3)
CHECKED_IMAGES = 32  # images decoded at the start to refuse a set that is mostly unreadable
MAX_REPLACEMENTS = 64  # unreadable images in a row before a batch gives up


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | None, processes: int | None = None) -> int:
    """DataLoader workers per process: ``workers``, or (None) one per core left over after each of
    this node's ``processes`` training processes has one, at most 8; ConfigError in one line when
    asked for more than the cores."""
    processes = processes or int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cores = available_cores()
    if workers is None:
        return max(0, min(8, cores // processes - 1))
    if workers * processes > cores:
        raise ConfigError(f"data.workers={workers} asks for {workers * processes} decoding processes "
                          f"({processes} training process(es) x {workers}), more than the {cores} CPU cores "
                          f"here; use at most data.workers={cores // processes}, or leave it out (auto)")
    return workers


def mae_crop(width: int, height: int, rng: random.Random, scale: tuple[float, float] = MAE_SCALE,
             ratio: tuple[float, float] = MAE_RATIO) -> tuple[int, int, int, int]:
    """A random crop (left, top, w, h) of ``scale`` of the area and an aspect ratio in ``ratio``
    (log-uniform), 10 tries; else the central crop at the nearest allowed ratio."""
    area = width * height
    low, high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(low, high))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return rng.randint(0, width - w), rng.randint(0, height - h), w, h
    shape = width / height
    w, h = width, height
    if shape < ratio[0]:
        h = round(width / ratio[0])
    elif shape > ratio[1]:
        w = round(height * ratio[1])
    return (width - w) // 2, (height - h) // 2, w, h


def augmented_image(source: str | Path | bytes, size: int, channels: int, rng: random.Random) -> torch.Tensor:
    """MAE's augmentation of one image file: (C, size, size) uint8."""
    with open_image(source) as opened:
        image = opened.convert("L" if channels == 1 else "RGB")
        left, top, w, h = mae_crop(image.width, image.height, rng)
        image = image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + w, top + h))
        if rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        array = np.asarray(image, dtype=np.uint8)
    tensor = torch.from_numpy(array.copy())
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1)


class LazyImages:
    """A set of images read on demand: ``len``, ``labels`` (int64, -1 = none), ``classes``,
    ``subset(index)`` like an :class:`~.images.ImageSet`, and ``source(i)``, what
    :func:`~.images.open_image` opens for image ``i`` (a path or bytes); ``name(i)`` for messages."""

    def __init__(self, labels: torch.Tensor, classes: tuple[str, ...], rows: np.ndarray | None = None) -> None:
        self.labels, self.classes = labels, classes
        self.rows = np.arange(len(labels)) if rows is None else rows

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, index: torch.Tensor | slice) -> LazyImages:
        chosen = self.rows[index.numpy() if isinstance(index, torch.Tensor) else index]
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.rows, clone.labels = chosen, self.labels[index]
        return clone

    def source(self, i: int) -> str | bytes:
        raise NotImplementedError

    def name(self, i: int) -> str:
        return str(self.source(i))

    def load(self, size: int, channels: int) -> ImageSet:
        """Every image in memory, as :func:`~.images.read_image` reads it (small sets only)."""
        images = [read_image(self.source(i), size, channels) for i in range(len(self))]
        return ImageSet(torch.stack(images), self.labels.clone(), self.classes)


class ImageFolder(LazyImages):
    """The images under a folder, sub-folders as classes (a flat folder is one class)."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist or is not a folder; set data.root to a folder "
                            "of images (ImageNet's train/CLASS/*.JPEG, or flat)")
        files = sorted(_scan(root))
        if not files:
            raise DataError(f"image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)}); set data.root "
                            "to a folder of images")
        parents = [os.path.dirname(f) or "." for f in files]
        classes = tuple(sorted(set(parents)))
        number = {c: i for i, c in enumerate(classes)}
        self.root = str(root)
        self.paths = np.array([f.encode() for f in files])  # one block of bytes, shared by forked workers
        super().__init__(torch.tensor([number[p] for p in parents], dtype=torch.int64), classes)

    def source(self, i: int) -> str:
        return os.path.join(self.root, self.paths[self.rows[i]].decode())


def _scan(root: Path) -> Iterator[str]:
    """Relative paths of the image files under ``root`` (``os.scandir``: no stat per file)."""
    stack = [""]
    while stack:
        relative = stack.pop()
        with os.scandir(root / relative) as entries:
            for entry in entries:
                name = os.path.join(relative, entry.name) if relative else entry.name
                if entry.is_dir():
                    stack.append(name)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    yield name


class HFImages(LazyImages):
    """One split of a Hugging Face ``datasets`` set, read row by row from its memory-mapped Arrow
    files: a folder saved by ``save_to_disk``, Parquet, Arrow or WebDataset ``.tar`` files (a file
    or a folder of them), a folder of images (``imagefolder``), or a Hub id already in the local
    cache. Images are the first ``Image`` column, labels a ``label``/``labels``/``cls`` column
    (class names from a ClassLabel)."""

    def __init__(self, root: str, split: str) -> None:
        dataset, self.own_split = _hf_split(_hf_load(root), root, split)
        import datasets

        columns = [n for n, f in dataset.features.items() if isinstance(f, datasets.Image)]
        if not columns:
            raise DataError(f"the dataset {root} has no image column (its columns: {', '.join(dataset.features)}); "
                            "give a dataset with a datasets.Image column")
        self.root, self.column = root, columns[0]
        self.dataset = dataset.cast_column(self.column, datasets.Image(decode=False))  # bytes, decoded here
        label = next((n for n in ("label", "labels", "cls") if n in dataset.features), None)
        feature = dataset.features.get(label) if label else None
        classes = tuple(feature.names) if isinstance(feature, datasets.ClassLabel) else ()
        values = dataset.with_format("numpy")[label] if label else np.full(len(dataset), -1)
        super().__init__(torch.as_tensor(np.asarray(values, dtype=np.int64)), classes)

    def source(self, i: int) -> str | bytes:
        cell = self.dataset[int(self.rows[i])][self.column]
        return cell["bytes"] or cell["path"]

    def name(self, i: int) -> str:
        return f"{self.root} row {int(self.rows[i])}"


def _hf_load(root: str):
    """The set at ``root`` as a DatasetDict: a local folder or files, else a Hub id from the cache."""
    import datasets

    datasets.disable_progress_bars()
    path = Path(root)
    try:
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            loaded = datasets.load_from_disk(str(path))
            return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict(train=loaded)
        if path.exists():
            kinds = {".parquet": "parquet", ".arrow": "arrow", ".tar": "webdataset"}
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in kinds)
            if files:  # WebDataset shards are written once into datasets' Arrow cache: random access
                return datasets.load_dataset(kinds.get(files[0].suffix, "parquet"),
                                             data_files={"train": [str(f) for f in files]})
            return datasets.load_dataset("imagefolder", data_dir=str(path))
        return datasets.load_dataset(root)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001  (datasets raises many kinds: offline, not found, bad files)
        raise load_error(root, error) from None


def load_error(root: str, error: Exception) -> DataError:
    """The one line for a set ``datasets`` cannot load."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return DataError(f"the dataset {root} cannot be loaded ({reason[:200]}); give a local folder or Parquet/"
                     "Arrow files, or a Hub id already in the Hugging Face cache (mto reads no network: "
                     "fetch it once with datasets.load_dataset where the Hub can be reached)")


def _hf_split(sets, root: str, split: str):
    """(split, whether it is the set's own): mto's ``train``/``val`` from the set's train split,
    ``test`` from its test or validation split where it has one."""
    if split == "test":
        for name in ("test", "validation", "val"):
            if name in sets:
                return sets[name], True
    if "train" not in sets:
        raise DataError(f"the dataset {root} has no train split (its splits: {', '.join(sets)})")
    return sets["train"], False


def check_readable(data: LazyImages, where: str, seed: int = 0) -> None:
    """DataError when most of up to CHECKED_IMAGES images drawn from ``data`` cannot be decoded."""
    rng = random.Random(derive_seed(seed, "check", 0))
    picked = rng.sample(range(len(data)), min(len(data), CHECKED_IMAGES))
    failed = []
    for i in picked:
        try:
            with open_image(data.source(i)) as opened:
                opened.load()
        except DataError:
            failed.append(data.name(i))
    if len(failed) * 2 > len(picked):
        raise DataError(f"{len(failed)} of {len(picked)} images sampled from {where} cannot be read (e.g. "
                        f"{failed[0]}); the set looks damaged or is not images: check data.root")


@dataclass
class Skipped:
    """Unreadable images met so far (each replaced by the next readable one) and the first one's name."""

    count: int = 0
    first: str = ""


class _Decode(torch.utils.data.Dataset):
    """(epoch, index) -> (uint8 image, label, images skipped for it, the first skipped index or -1)."""

    def __init__(self, data: LazyImages, size: int, channels: int, seed: int, augment: bool) -> None:
        self.data, self.size, self.channels, self.seed, self.augment = data, size, channels, seed, augment

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int, int, int]:
        epoch, index = key
        for tries in range(MAX_REPLACEMENTS):
            i = (index + tries) % len(self.data)
            try:
                if self.augment:
                    rng = random.Random(derive_seed(self.seed, f"crop-{epoch}", index))
                    image = augmented_image(self.data.source(i), self.size, self.channels, rng)
                else:
                    image = read_image(self.data.source(i), self.size, self.channels)
            except DataError:
                continue
            return image, int(self.data.labels[i]), tries, index if tries else -1
        raise DataError(f"{MAX_REPLACEMENTS} images in a row from {self.data.name(index)} on cannot be read; "
                        "the set is damaged: check data.root")


@dataclass
class Batch:
    """uint8 images (B, C, H, W), labels (B,), whether the images are augmented already;
    a streamed set's reader position after the batch."""

    images: torch.Tensor
    labels: torch.Tensor
    augmented: bool
    position: tuple[int, int] | None = None  # a streamed set's (pass, examples of it) after this batch


def read_batches(data: ImageSet | LazyImages, batches: list[torch.Tensor], size: int, channels: int, *,
                 epoch: int = 0, seed: int = 0, augment: bool = False, workers: int = 0,
                 skipped: Skipped | None = None) -> Iterator[Batch]:
    """The images of each index tensor of ``batches``, in order. An in-memory set is indexed (its
    augmentation is the caller's, on whole batches); a lazy one is decoded, and augmented if
    ``augment``, in ``workers`` DataLoader processes (0: in this one)."""
    if isinstance(data, ImageSet):
        for idx in batches:
            yield Batch(data.images[idx], data.labels[idx], False)
        return
    if not batches:
        return
    keys = [[(epoch, int(i)) for i in idx] for idx in batches]
    loader = torch.utils.data.DataLoader(_Decode(data, size, channels, seed, augment), batch_sampler=keys,
                                         num_workers=workers, pin_memory=False)
    for images, labels, tries, first in loader:
        if skipped is not None and int(tries.sum()):
            skipped.count += int(tries.sum())
            bad = [int(f) for f in first if f >= 0]
            if bad and not skipped.first:
                skipped.first = data.name(bad[0])
        yield Batch(images, labels, augment)


def first_images(data: ImageSet | LazyImages, count: int, size: int, channels: int) -> torch.Tensor:
    """The first ``count`` images of a set (all if fewer), (B, C, H, W) uint8, read without
    augmentation; a lazy or streamed set decodes only these."""
    if not isinstance(data, (ImageSet, LazyImages)):
        data = data.take(count)
    return next(read_batches(data, [torch.arange(min(count, len(data)))], size, channels)).images
