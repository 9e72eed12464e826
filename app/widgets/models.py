"""The checkpoints and images every page loads, cached once for all sessions, each cache bounded
so that a server many visitors share keeps its memory bounded."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from logic.files import scan_checkpoints
from logic.labels import describe_run, seen_label, short_label
from mto_core import CheckpointError, load_checkpoint, load_fashion_mnist
from server.classroom import opened

ROOT = Path(__file__).resolve().parent.parent.parent
CHECKPOINTS, RUNS = ROOT / "checkpoints", ROOT / "runs"


# Every cache has a size limit: a server that many visitors share keeps its memory bounded
# (benchmarks/load.py).
def _memory_bytes() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# The checkpoints every session shares, the least recently used dropped first once their weights pass
# this bound: a count would not do, when one model may be a tiny 3 MB one or a ViT-L of 1.2 GB.
MODEL_CACHE_BYTES = min(8 * 2**30, int(0.4 * _memory_bytes()))
_MODELS: "OrderedDict[str, object]" = OrderedDict()
_MODELS_LOCK = threading.Lock()


def _weights_bytes(checkpoint) -> int:
    return sum(t.numel() * t.element_size() for t in checkpoint.model.state_dict().values())


_LOADING: dict[str, threading.Lock] = {}  # one lock per checkpoint being loaded


def load(path: str):
    """The checkpoint at ``path`` (a checkpoint folder or a run's, whose newest step is read), loaded
    once for every session and kept while the cache's weights stay within MODEL_CACHE_BYTES (the two
    most recent always: a pair is never loaded in turn); the run it belongs to counts as open, so
    the pruning of app runs leaves it alone (server.classroom). Other sessions do not wait while one loads."""
    from mto_core.models.checkpoint import resolve

    opened(path)
    try:
        key = str(resolve(path).resolve())  # a run folder and its newest step are one entry
    except CheckpointError:  # removed since a page showed it: the copy in memory still serves that page
        where = str(Path(path).resolve())
        with _MODELS_LOCK:
            kept = [k for k in _MODELS if k == where or k.startswith(where + "/")]
            if kept:
                return _MODELS[kept[-1]]
        raise
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        lock = _LOADING.setdefault(key, threading.Lock())
    with lock:
        with _MODELS_LOCK:
            if key in _MODELS:
                return _MODELS[key]
        with st.spinner("Loading checkpoint…"):
            checkpoint = load_checkpoint(key)
        with _MODELS_LOCK:
            _MODELS[key] = checkpoint
            while len(_MODELS) > 2 and sum(_weights_bytes(c) for c in _MODELS.values()) > MODEL_CACHE_BYTES:
                _MODELS.popitem(last=False)
            _LOADING.pop(key, None)
        return checkpoint


@st.cache_resource(show_spinner=False, max_entries=1)
def test_set() -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The whole test split (10,000 images with the full dataset, 1,000 with the shipped subset).

    One object shared by every page run and session, never modified: ``st.cache_data`` would hand
    each run a copy, and the copies outlive the runs until a full garbage collection
    (docs/performance.md, "A classroom on one server")."""
    data = load_fashion_mnist("test")
    return data.images, data.labels, data.classes


@dataclass(frozen=True)
class Inputs:
    """What a model is shown: Fashion-MNIST's test split for the grey models, the bundled photos for
    RGB ones (a checkpoint's own config decides). images: (N, C, H, W) uint8, at the model's size for
    photos; names: each image's class or photo name; held_out: the images the per-layer measures use
    (not among those the pages show first); seen: what the model sees, in words."""

    kind: str  # "fashion-mnist" or "photos"
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    names: tuple[str, ...]
    held_out: torch.Tensor
    seen: str

    @property
    def photos(self) -> bool:
        return self.kind == "photos"


PHOTO_COUNT = 16  # the gallery: the colour photos of scikit-image's package, then grey ones


@st.cache_resource(show_spinner="Preparing the photos…", max_entries=4)
def _photos(size: int) -> Inputs:
    from mto_core.data.photos import GALLERY, bundled_photos

    names = list(GALLERY)[:PHOTO_COUNT]
    photos = bundled_photos(size, names)
    return Inputs("photos", photos.images, torch.arange(len(names)), tuple(names), tuple(names),
                  photos.images[:4],
                  f"photos that ship with scikit-image, each resized on its short side to {size} and centre-cropped "
                  f"to {size} x {size}, normalised per channel by the model (ImageNet's mean and std for published "
                  "models)")


@st.cache_resource(show_spinner="Resizing the test images…", max_entries=2)
def _fashion_at(size: int) -> Inputs:
    """The first 1,000 test images at ``size`` (a grey model of another size than 28)."""
    from mto_core.data.images import prepare_images

    images, labels, classes = test_set()
    resized = (prepare_images(images[:1000], size, 1) * 255).round().to(torch.uint8)
    return Inputs("fashion-mnist", resized, labels[:1000], classes, tuple(classes[i] for i in labels[:1000].tolist()),
                  resized[100:132], f"Fashion-MNIST's grey test images (the first 1,000), resized to {size} x {size}")


def inputs_for(model) -> Inputs:
    """The images for a model config, at its size: photos for RGB models, Fashion-MNIST for grey ones."""
    if model.in_chans == 3:
        return _photos(model.img_size)
    if model.img_size != 28:
        return _fashion_at(model.img_size)
    return _fashion()


@st.cache_resource(show_spinner=False, max_entries=1)
def _fashion() -> Inputs:
    """Fashion-MNIST's test images at their own size (built once: naming 10,000 labels takes a while)."""
    images, labels, classes = test_set()
    return Inputs("fashion-mnist", images, labels, classes, tuple(classes[i] for i in labels.tolist()),
                  images[100:132], "Fashion-MNIST's 28 x 28 grey test images")


def seen_names(shown_in: Inputs, pair) -> tuple[str, ...]:
    """Each image's name; a photo's with whether the checkpoints of ``pair`` ((label, checkpoint), ...)
    trained on it, read from each one's config (``data.held_out``): 'astronaut · never seen in training'."""
    from mto_core.data.photo_crops import trained_on

    if not shown_in.photos:
        return shown_in.names
    return tuple(seen_label(name, [(label.split(" · ")[0], trained_on(ckpt.config.data, name))
                                   for label, ckpt in pair]) for name in shown_in.names)


@st.cache_data(show_spinner=False, ttl=3, max_entries=4)
def _scan(stamp: tuple) -> tuple[dict[str, str], dict[str, str]]:
    """One scan serves every call of a page run. ``stamp`` (the folders' modification times) makes
    a new or removed folder show at once; weights written later into a folder show within 3 s."""
    return scan_checkpoints([CHECKPOINTS, RUNS], ROOT)


def _stamp() -> tuple:
    return tuple(root.stat().st_mtime_ns if root.is_dir() else None for root in (CHECKPOINTS, RUNS))


def available() -> dict[str, str]:
    """{label: path} of the shipped checkpoints and the runs, newest runs last; the sidebar
    lists those that cannot be opened, and why."""
    found, unusable = _scan(_stamp())
    for label, why in unusable.items():
        st.sidebar.warning(f"{label} is not usable: {why}")
    return found


@st.cache_data(show_spinner=False, ttl=30, max_entries=128)
def run_info(path: str):
    """What the checkpoint or run at ``path`` is, from its config (cached briefly)."""
    return describe_run(path)


def run_label(label: str) -> str:
    """'simmim-mto · SimMIM + MTO': the folder's short name and what its own config says it is."""
    return f"{short_label(label)} · {run_info(available()[label]).label}" if label in available() else label
