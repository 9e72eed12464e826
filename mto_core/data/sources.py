"""Where a run's images come from: one call for every kind of set (mto_core/data/images.py's
Fashion-MNIST in memory, streaming.py's lazy folders and Hugging Face sets, hf_stream.py's streamed
sets), so that training, the probes and the analyses open data one way."""

from __future__ import annotations

from ..config import DataConfig, ModelConfig
from . import streaming
from .hf_stream import StreamedImages
from .images import DataError, ImageSet, load_dataset, split_indices
from .streaming import HFImages, ImageFolder, LazyImages


def open_dataset(config: DataConfig, model: ModelConfig, split: str) -> ImageSet | LazyImages:
    """``train`` / ``val`` / ``test`` as :func:`~.images.load_dataset` splits them: Fashion-MNIST in
    memory, a folder of images read lazily (the same split of its file list), a streamed set
    (``data.streaming``) as a :class:`~.hf_stream.StreamedImages`."""
    if config.dataset not in ("folder", "hf"):
        return load_dataset(config, model, split)
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be train, val or test, got '{split}'")
    if not config.root:
        raise DataError(f"data.dataset={config.dataset} needs data.root=<"
                        + ("folder of images>" if config.dataset == "folder" else "dataset folder, files or Hub id>"))
    if config.streaming:
        streamed = StreamedImages(config.root, split, config.val_fraction, config.shuffle_buffer)
        streaming.check_readable(streamed.take(streaming.CHECKED_IMAGES), config.root)
        return streamed
    full = ImageFolder(config.root) if config.dataset == "folder" else HFImages(config.root, split)
    if getattr(full, "own_split", False):
        data = full  # the set's own test split
    else:
        train_idx, held_idx = split_indices(len(full), config.val_fraction or 0.1, config.split_seed)
        data = full.subset(train_idx if split == "train" else held_idx)
    if split == "train" and config.train_limit:
        data = data.subset(slice(0, config.train_limit))
    if len(data) == 0:
        raise DataError(f"the {split} split is empty; use more images or change data.val_fraction")
    streaming.check_readable(data, config.root)
    return data
