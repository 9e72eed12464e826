"""When and on which images a model is probed: one sampling of the probe sets, one schedule.

Every k-NN or linear-probe accuracy the project reports is measured on sets drawn here:

- the bank: ``bank`` training images, one fixed draw (seed 0, purpose "bank"), the same for
  every run of the same data (0 = all);
- the evaluation set: the first ``size`` images of a split (0 = all), the validation split
  during training.

A run's schedule (:class:`ProbeSchedule`) probes at ``train.probe_points`` /
``train.linear_points`` (epochs, fractions allowed: 'probe' rows) and every
``train.knn_every`` / ``train.linear_every`` epochs (the linear probe also after the last
one: values in the 'epoch' rows). The probes themselves are in :mod:`mto_core.eval.probes`;
:func:`evaluate_checkpoint` is ``mto eval``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ..config import ConfigError, RunConfig, parse_points
from ..data.hf_stream import StreamedImages
from ..data.images import ImageSet
from ..data.seeding import generator
from ..data.sources import open_dataset
from ..data.streaming import LazyImages
from ..models.checkpoint import Checkpoint
from ..models.objective import MIMModel
from .probes import ProbeResult, probe, probes

# The end-of-run probe of an app run: a few seconds on a CPU, enough to place a run on the curves.
QUICK_BANK, QUICK_VAL = 2000, 1000


def probe_problem(config: RunConfig) -> str:
    """Why a run's data cannot be probed, in one line ('' if it can): photo crops have no classes."""
    if config.data.dataset == "photo-crops":
        return ("a model trained on photo crops has no classes to probe (the held-out photos are not "
                "among the training photos); measure its reconstructions instead "
                "(mto_core.analysis.floors.held_out_floors)")
    return ""


def probe_sets(config: RunConfig, bank: int | None = None, size: int | None = None,
               split: str = "val") -> tuple[ImageSet | LazyImages, ImageSet | LazyImages]:
    """(bank, evaluation set) of a run's data: ``bank`` training images (default
    ``train.probe_bank``; 0 = all) in one fixed draw, and the first ``size`` images of ``split``
    (default ``train.probe_val``; 0 = all). A folder's sets are read lazily: the probes decode
    them batch by batch (mto_core/data/streaming.py), holding only their features. A streamed set
    gives its first ``bank`` training images and the first ``size`` images of ``split`` (0: ``bank``
    again; bank 0: QUICK_BANK): nothing after them is read."""
    problem = probe_problem(config)
    if problem:
        raise ConfigError(problem)
    t = config.train
    bank = t.probe_bank if bank is None else bank
    size = t.probe_val if size is None else size
    train = open_dataset(config.data, config.model, "train")
    if isinstance(train, StreamedImages):  # no random draw on a stream: its first images, as many as asked
        bank = bank or QUICK_BANK
        return train.take(bank), open_dataset(config.data, config.model, split).take(size or bank)
    if bank and len(train) > bank:
        train = train.subset(torch.randperm(len(train), generator=generator(0, "bank", 0))[:bank])
    test = open_dataset(config.data, config.model, split)
    if size and len(test) > size:
        test = test.subset(slice(0, size))
    return train, test


def quick_knn(model: MIMModel, config: RunConfig, bank: int = QUICK_BANK) -> tuple[float, int]:
    """k-NN accuracy with a bank of ``bank`` training images (default ``QUICK_BANK``) on the first
    half as many validation images (``QUICK_VAL`` by default), and how many validation images it used."""
    if bank < 2:
        raise ValueError(f"the k-NN bank needs at least 2 images, got {bank}")
    bank, val = probe_sets(config, bank, max(1, bank * QUICK_VAL // QUICK_BANK))
    return probes(model, bank, val, ("knn",), split="val")["knn"].accuracy, len(val)


class ProbeSchedule:
    """The validation-split probes of one run, on its fixed probe sets (drawn once, at the first
    probe). ``config.data.val_fraction == 0`` means no validation split: nothing is probed."""

    def __init__(self, config: RunConfig, steps_per_epoch: int, device: torch.device) -> None:
        t = config.train
        self.config, self.device = config, device
        # each point keyed by the step that ends its epoch fraction
        self.knn = {round(p * steps_per_epoch): p for p in parse_points(t.probe_points)}
        self.linear = {round(p * steps_per_epoch): p for p in parse_points(t.linear_points)}
        self._sets: tuple[ImageSet, ImageSet] | None = None

    def _measure(self, model: MIMModel, kinds: tuple[str, ...]) -> dict[str, float]:
        if self._sets is None:
            self._sets = probe_sets(self.config)
        return {f"{kind}_val": r.accuracy for kind, r in probes(model, *self._sets, kinds, self.device).items()}

    def at_step(self, model: MIMModel, step: int) -> dict[str, Any] | None:
        """The 'probe' row of the points due at ``step``, with its time (probe_s); None if none."""
        due = tuple(kind for kind, at in (("knn", self.knn), ("linear", self.linear)) if step in at)
        if not due or not self.config.data.val_fraction:
            return None
        start = time.perf_counter()
        scores = self._measure(model, due)
        return {"kind": "probe", "step": step, "epoch": self.knn.get(step, self.linear.get(step)), **scores,
                "probe_s": round(time.perf_counter() - start, 3)}

    def at_epoch(self, model: MIMModel, epoch: int, final: bool) -> dict[str, float]:
        """Accuracies due at the end of ``epoch``: k-NN every ``train.knn_every`` epochs, linear
        every ``train.linear_every`` epochs and after the last one (0 = never)."""
        t = self.config.train
        due = tuple(kind for kind, every in (("knn", t.knn_every), ("linear", t.linear_every))
                    if every and (epoch % every == 0 or (final and kind == "linear")))
        if not due or not self.config.data.val_fraction:
            return {}
        return self._measure(model, due)


def evaluate_checkpoint(checkpoint: Checkpoint, kind: str = "knn", split: str = "test",
                        bank_size: int = 10000, device: str | torch.device = "cpu",
                        progress: bool = False) -> ProbeResult:
    """Probe a checkpoint on its own dataset's ``test`` (or ``val``) split."""
    train, test = probe_sets(checkpoint.config, bank_size, 0, split)
    if kind == "finetune":  # fine-tuning indexes its sets in memory: the bank-size limit bounds them
        m = checkpoint.config.model
        train, test = (s.load(m.img_size, m.in_chans) if isinstance(s, LazyImages) else s for s in (train, test))
    return probe(checkpoint.model.to(device), train, test, kind, device, progress, split)
