"""Probes: k-NN (k = 20, cosine) and a linear probe (logistic regression) on frozen features,
and end-to-end fine-tuning (the paper's protocol, on a short fixed schedule).

Features are the encoder's average-pooled patch tokens of whole (unmasked) images. The floors
are raw pixels (:func:`pixel_features`) and a randomly initialised encoder.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..config import MTOWarning
from ..data.images import ImageSet, prepare_images
from ..data.streaming import LazyImages, read_batches, resolve_workers
from ..models.objective import MIMModel

PROBES = ("knn", "linear")


@torch.no_grad()
def extract_features(model: MIMModel, images: torch.Tensor | ImageSet | LazyImages, batch_size: int = 256,
                     device: str | torch.device = "cpu", progress: bool = False, workers: int = 0) -> torch.Tensor:
    """(N, C, H, W) uint8 images, or a set of them (a lazy one decoded batch by batch in
    ``workers`` processes) -> (N, D) float features on the CPU. Batches of 256: on a CPU core the
    tiny model's features come faster than in batches of 512, whose activations outgrow the caches."""
    was_training = model.training
    model.eval()
    cfg = model.config
    data = ImageSet(images, torch.full((images.shape[0],), -1)) if isinstance(images, torch.Tensor) else images
    chunks = [torch.arange(start, min(start + batch_size, len(data))) for start in range(0, len(data), batch_size)]
    out = []
    for batch in tqdm(read_batches(data, chunks, cfg.img_size, cfg.in_chans, workers=workers), total=len(chunks),
                      desc="features", disable=not progress, leave=False):
        prepared = prepare_images(batch.images.to(device), cfg.img_size, cfg.in_chans)
        out.append(model.features(prepared).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, k: int = 20, temperature: float = 0.07) -> float:
    """Weighted k-NN on cosine similarity: each of the k neighbours votes exp(sim / T)."""
    train_x, test_x = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
    classes = int(max(train_y.max(), test_y.max())) + 1
    k = min(k, train_x.shape[0])
    correct = 0
    for start in range(0, test_x.shape[0], 1024):
        sim = test_x[start:start + 1024] @ train_x.T
        top, idx = sim.topk(k, dim=1)
        votes = torch.zeros(sim.shape[0], classes).scatter_add_(1, train_y[idx], (top / temperature).exp())
        correct += int((votes.argmax(1) == test_y[start:start + 1024]).sum())
    return correct / test_x.shape[0]


def linear_probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                          test_y: torch.Tensor, seed: int = 0) -> float:
    """Multinomial logistic regression on standardized features (L-BFGS, C = 1)."""
    if train_y.unique().numel() < 2:  # nothing to fit: every prediction is the one class
        return float((test_y == train_y[0]).float().mean())
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x.numpy())
    clf = LogisticRegression(max_iter=1000, random_state=seed)
    clf.fit(scaler.transform(train_x.numpy()), train_y.numpy())
    pred = clf.predict(scaler.transform(test_x.numpy()))
    return float(np.mean(pred == test_y.numpy()))


def pixel_features(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 images -> (N, C*H*W) pixels in [0, 1]: the raw-pixel floor."""
    return images.reshape(images.shape[0], -1).float() / 255


def scores(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
           kinds: tuple[str, ...] = PROBES) -> dict[str, float]:
    """``{kind: accuracy}`` of the frozen-feature probes ``kinds`` on one set of features."""
    score = {"knn": knn_accuracy, "linear": linear_probe_accuracy}
    return {kind: score[kind](train_x, train_y, test_x, test_y) for kind in kinds}


@dataclass
class FinetuneSchedule:
    """One short fixed schedule for every checkpoint (and for the from-scratch floor): AdamW,
    linear warmup over the first epoch then cosine decay, crop-and-flip augmentation, a linear
    head on the average-pooled encoder features, cross-entropy."""

    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    seed: int = 0


def finetune_accuracy(model: MIMModel, train: ImageSet, test: ImageSet,
                      schedule: FinetuneSchedule | None = None, device: str | torch.device = "cpu",
                      progress: bool = False) -> float:
    """Fine-tune a copy of ``model``'s encoder end to end with a new linear head on ``train``,
    then return its accuracy on ``test``. ``model`` itself is left unchanged."""
    import copy
    import math

    from ..data.images import augment

    schedule = schedule or FinetuneSchedule()
    if (train.labels < 0).any() or (test.labels < 0).any():
        raise ValueError("fine-tuning needs labelled images")
    classes = int(max(train.labels.max(), test.labels.max())) + 1
    net = copy.deepcopy(model).to(device).train()
    for name, param in net.named_parameters():  # the decoder and the mask token get no gradient
        param.requires_grad_(name.startswith("encoder.") and "mask_token" not in name)
    head = torch.nn.Linear(model.config.embed_dim, classes).to(device)
    params = [p for p in net.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=schedule.lr, weight_decay=schedule.weight_decay)
    g = torch.Generator().manual_seed(schedule.seed)
    per_epoch = max(1, len(train) // schedule.batch_size)
    total, cfg = schedule.epochs * per_epoch, model.config
    step = 0
    for _ in tqdm(range(schedule.epochs), desc="fine-tune", disable=not progress, leave=False):
        order = torch.randperm(len(train), generator=g)
        for i in range(per_epoch):
            idx = order[i * schedule.batch_size:(i + 1) * schedule.batch_size]
            lr = schedule.lr * min(1.0, (step + 1) / per_epoch) * 0.5 * (1 + math.cos(math.pi * step / total))
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = prepare_images(train.images[idx].to(device), cfg.img_size, cfg.in_chans)
            images = augment(images, torch.rand(len(idx), 4, generator=g))
            loss = F.cross_entropy(head(net.features(images)), train.labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    net.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test), 512):
            images = prepare_images(test.images[start:start + 512].to(device), cfg.img_size, cfg.in_chans)
            pred = head(net.features(images)).argmax(1).cpu()
            correct += int((pred == test.labels[start:start + 512]).sum())
    return correct / len(test)


@dataclass
class ProbeResult:
    probe: str
    accuracy: float
    train_images: int
    test_images: int
    split: str

    def to_dict(self) -> dict:
        return dict(probe=self.probe, accuracy=self.accuracy, train_images=self.train_images,
                    test_images=self.test_images, split=self.split)


def probe(model: MIMModel, train: ImageSet | LazyImages, test: ImageSet | LazyImages, kind: str = "knn",
          device: str | torch.device = "cpu", progress: bool = False, split: str = "test") -> ProbeResult:
    """Accuracy of a ``knn``, ``linear`` or ``finetune`` probe trained on ``train`` and scored
    on ``test``."""
    if kind == "finetune":
        return ProbeResult(kind, finetune_accuracy(model, train, test, device=device, progress=progress),
                           len(train), len(test), split)
    return probes(model, train, test, (kind,), device, progress, split)[kind]


def _images(data: ImageSet | LazyImages) -> torch.Tensor | LazyImages:
    return data.images if isinstance(data, ImageSet) else data


def probes(model: MIMModel, train: ImageSet | LazyImages, test: ImageSet | LazyImages, kinds: tuple[str, ...] = PROBES,
           device: str | torch.device = "cpu", progress: bool = False,
           split: str = "test") -> dict[str, ProbeResult]:
    """Several probes on one feature extraction: ``{kind: ProbeResult}``."""
    unknown = [k for k in kinds if k not in PROBES]
    if unknown:
        raise ValueError(f"unknown probe '{unknown[0]}'; choose one of {', '.join(PROBES)}")
    if (train.labels < 0).any() or (test.labels < 0).any():
        raise ValueError("probing needs labelled images")
    if train.labels.unique().numel() < 2:
        warnings.warn(f"the probe's training images hold one class only ({', '.join(train.classes) or 0}), "
                      "so its accuracy says nothing about the features; give an image folder one "
                      "sub-folder per class", MTOWarning, stacklevel=2)
    workers = resolve_workers(None) if isinstance(train, LazyImages) or isinstance(test, LazyImages) else 0
    train_x = extract_features(model, _images(train), device=device, progress=progress, workers=workers)
    test_x = extract_features(model, _images(test), device=device, progress=progress, workers=workers)
    if not (torch.isfinite(train_x).all() and torch.isfinite(test_x).all()):
        bad = sum(int((~torch.isfinite(p)).sum()) for p in model.parameters())
        raise ValueError(f"the model's features are not finite (it has {bad:,} NaN or inf weights), so "
                         "no probe accuracy can be measured; use an earlier checkpoint of the run")
    return {kind: ProbeResult(kind, accuracy, len(train), len(test), split)
            for kind, accuracy in scores(train_x, train.labels, test_x, test.labels, kinds).items()}


