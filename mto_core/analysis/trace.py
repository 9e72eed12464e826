"""How the masked tokens part from the visible ones while a run trains (``train.trace_every``).

Every ``trace_every`` steps (and at step 0; with ``train.trace_spacing=doubling`` the spacing
doubles after the first 20 points, and the step a run stops at is traced too) the model is measured on one fixed batch of held-out
images with one fixed mask: the first ``TRACE_IMAGES`` images of the validation split (the test
split when there is none) and a mask drawn from a seed that depends on nothing but the run's mask
settings, so a baseline and its MTO run are measured on the same images and masks. For every
layer l that sees mask tokens (docs/mto-spec.md, "Measures"), one ``trace`` row in metrics.jsonl:

- ``singularity``     S^l = 1 - mean_{i in M} max_{j in V} cos(h^l_i, h^l_j)
- ``silhouette``      of the masked / visible split (cosine distance), -1..1
- ``attn_vm``         a_VM^l = mean_{i in V} sum_{j in M} A^l_ij  (l >= 1; 0 where recalibrated)
- ``entropy_masked``  mean entropy of the masked rows of A^l / log(keys)  (l >= 1)

and a token snapshot, ``traces/step-<step>.safetensors``: the patch tokens h^l (float16) of the
first ``SNAPSHOT_IMAGES`` images at every traced layer, with their mask. Snapshots are kept at
evenly spaced trace points so that a run's snapshots stay within ``SNAPSHOT_BYTES``.
:func:`token_frames` projects one layer's snapshots onto one fixed PCA plane.

Resuming is exact: metrics.jsonl is cut back to the checkpoint's step with every other row, the
snapshots after it are removed, and the steps trained again are traced again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..api import token_trace
from ..config import RunConfig
from ..data.masking import make_mask
from ..data.sources import open_dataset
from ..data.streaming import first_images
from ..models.objective import MIMModel
from ..mto.terms import entropy_loss, recalibration_loss
from .measures import silhouette, singularity_score

TRACES = "traces"
TRACE_IMAGES = 32
SNAPSHOT_IMAGES = 4
SNAPSHOT_BYTES = 4 * 2**20  # per run
TRACE_SEED = 20240412  # the fixed mask's seed: the same for every run with the same mask settings
MEASURES = {"singularity": "singularity score S", "silhouette": "silhouette, masked vs visible",
            "attn_vm": "visible-to-masked attention a_VM", "entropy_masked": "masked rows' attention entropy"}


def trace_batch(config: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed held-out images (B, C, H, W) uint8 and mask (B, N) bool every trace uses."""
    split = "val" if config.data.val_fraction or config.data.dataset in ("folder", "hf") else "test"
    data = open_dataset(config.data, config.model, split)
    images = first_images(data, TRACE_IMAGES, config.model.img_size, config.model.in_chans)
    m = config.mask
    mask = make_mask(images.shape[0], config.model.grid, m.ratio, TRACE_SEED, m.kind, m.mask_patch_size,
                     m.min_block)
    return images, mask


@torch.no_grad()
def measure(model: MIMModel, images: torch.Tensor, mask: torch.Tensor) -> tuple[list[dict[str, float]],
                                                                                 dict[int, torch.Tensor]]:
    """Per-layer measures ([{layer, singularity, silhouette[, attn_vm, entropy_masked]}], layer 0
    without the attention ones) and the patch tokens {l: (B, N, D)} of every layer that sees mask
    tokens. The model is measured in eval mode and left in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        trace = token_trace(model, images, mask)
    finally:
        model.train(was_training)
    token_mask = trace.token_mask
    rows = []
    for layer in sorted(trace.hidden):
        hidden = trace.hidden[layer]
        row = {"layer": layer, "singularity": singularity_score(hidden, token_mask),
               "silhouette": silhouette(hidden, token_mask)}
        attn = trace.attn.get(layer)
        if attn is not None:
            row["attn_vm"] = float(recalibration_loss(attn, token_mask))
            row["entropy_masked"] = float(entropy_loss(attn, token_mask))
        rows.append(row)
    return rows, {layer: h[:, 1:] for layer, h in trace.hidden.items()}


def trace_interval(step: int, every: int, spacing: str = "even") -> int:
    """The spacing of trace points around ``step``: ``every`` steps (``even``); or (``doubling``)
    ``every`` for the first 20 points, then twice that for the next 10, and so on, so that a run
    has 20 to about 40 points wherever it stops, 20 of them at its start."""
    if spacing != "doubling" or step < 20 * every:
        return every
    return every * 2 ** (int(math.log2(step / (20 * every))) + 1)


def trace_due(step: int, every: int, spacing: str = "even") -> bool:
    return step % trace_interval(step, every, spacing) == 0


def snapshot_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / TRACES / f"step-{step:08d}.safetensors"


class Tracer:
    """The traces of one run: call it after every step (and at step 0) with the model."""

    def __init__(self, config: RunConfig, run_dir: Path, total_steps: int, steps_per_epoch: int,
                 start_step: int) -> None:
        """Draw the fixed batch, plan the snapshots, and remove those after ``start_step`` (a
        resumed run traces those steps again)."""
        self.every, self.spacing = config.train.trace_every, config.train.trace_spacing
        self.run_dir, self.steps_per_epoch = Path(run_dir), steps_per_epoch
        self.images, self.mask = trace_batch(config)
        m = config.model
        width = m.embed_dim if m.mask_in_encoder else m.decoder_dim  # BootMAE: its pixel decoder
        tokens = min(SNAPSHOT_IMAGES, self.images.shape[0]) * m.num_patches
        size = tokens * ((m.mask_layers + 1) * width * 2 + 1)  # float16 tokens of every layer, the mask
        self.max_snapshots = max(1, SNAPSHOT_BYTES // size)
        self.due = [step for step in range(total_steps + 1) if trace_due(step, self.every, self.spacing)]
        self.index = {step: i for i, step in enumerate(self.due)}
        self.stride = math.ceil(len(self.due) / self.max_snapshots)
        for old in (self.run_dir / TRACES).glob("step-*.safetensors"):
            if int(old.stem[5:]) > start_step:
                old.unlink()

    def __call__(self, model: MIMModel, step: int, last: bool = False) -> list[dict[str, Any]]:
        """The trace rows due at ``step`` (none if no trace is due), its snapshot written if one is.
        ``last``: the run ends or stops here; with ``doubling`` spacing this step is traced (and
        snapshotted) whether due or not, so the last point is where the run ended."""
        due = step in self.index
        if not due and not (last and self.spacing == "doubling"):
            return []
        rows, tokens = measure(model, self.images, self.mask)
        epoch = round(step / self.steps_per_epoch, 4)
        if not due or self.index[step] % self.stride == 0:
            self._snapshot(step, tokens)
        return [{"kind": "trace", "step": step, "epoch": epoch, **row} for row in rows]

    def _snapshot(self, step: int, tokens: dict[int, torch.Tensor]) -> None:
        folder = self.run_dir / TRACES
        folder.mkdir(exist_ok=True)
        if len(list(folder.glob("step-*.safetensors"))) >= self.max_snapshots:
            return  # a resumed run with a longer length: the size bound holds
        n = SNAPSHOT_IMAGES
        tensors = {f"layer-{layer}": h[:n].to(torch.float16).contiguous() for layer, h in tokens.items()}
        tensors["mask"] = self.mask[:n].to(torch.uint8).contiguous()
        path = snapshot_path(self.run_dir, step)
        save_file(tensors, str(path.with_suffix(".tmp")), metadata={"step": str(step)})
        path.with_suffix(".tmp").replace(path)


@dataclass
class TokenFrames:
    """One layer's snapshot tokens over training, in one PCA plane.

    steps: (P,) the trace steps; xy: (P, n, 2) each token's coordinates at each step; masked:
    (n,) bool; image, patch: (n,) which image and patch each token is; explained: the share of
    the pooled tokens' variance the plane holds."""

    steps: np.ndarray
    xy: np.ndarray
    masked: np.ndarray
    image: np.ndarray
    patch: np.ndarray
    explained: float


def traced_run(path: str | Path) -> Path | None:
    """The run folder holding the traces of the checkpoint at ``path`` (a shipped checkpoint's own
    folder, or a step folder's run folder), or None if it has none."""
    path = Path(path)
    for folder in (path, path.parent):
        if snapshot_steps(folder):
            return folder
    return None


def snapshot_steps(run_dir: str | Path) -> list[int]:
    """The steps of a run's token snapshots, in order."""
    return sorted(int(p.stem[5:]) for p in (Path(run_dir) / TRACES).glob("step-*.safetensors"))


def final_snapshot(model: MIMModel, config: RunConfig, layer: int) -> np.ndarray | None:
    """``layer``'s tokens of the model on the trace batch's first SNAPSHOT_IMAGES images and mask,
    as a snapshot holds them (float16 values): a checkpoint saved after its run's last snapshot
    (a run's last step is a checkpoint, not always a trace point) gives the replay its last frame.
    None if the model has no such layer."""
    images, mask = trace_batch(config)
    _, tokens = measure(model, images[:SNAPSHOT_IMAGES], mask[:SNAPSHOT_IMAGES])
    return tokens[layer].to(torch.float16).float().numpy() if layer in tokens else None


def token_frames(run_dir: str | Path, layer: int = 1, up_to: int | None = None,
                 final: tuple[int, np.ndarray] | None = None) -> TokenFrames | None:
    """``layer``'s snapshot tokens of a run (up to step ``up_to``) on ONE plane for every frame:
    the first two principal axes of all the frames' tokens pooled, so that a token that moves
    between frames has changed, not the axes. ``final``: (step, tokens of :func:`final_snapshot`),
    one more frame after the snapshots (ignored at or before the last of them). None if the run has
    no snapshot of that layer."""
    steps = [s for s in snapshot_steps(run_dir) if up_to is None or s <= up_to]
    frames, masks = [], []
    for step in steps:
        tensors = load_file(str(snapshot_path(Path(run_dir), step)))
        if f"layer-{layer}" not in tensors:
            return None
        frames.append(tensors[f"layer-{layer}"].float().numpy())
        masks.append(tensors["mask"].bool().numpy())
    if frames and final is not None and final[0] > steps[-1] and final[1].shape == frames[0].shape:
        steps.append(final[0])
        frames.append(final[1])
    if not frames:
        return None
    b, n, d = frames[0].shape
    stack = np.stack(frames).reshape(len(frames), b * n, d).astype(np.float64)
    pooled = stack.reshape(-1, d)
    centre = pooled.mean(0)
    # the principal axes from the D x D covariance (eigh), not an SVD of the (P n, D) tokens:
    # the same plane, a fraction of the work, which the app's Train page does while two runs train
    centred = pooled - centre
    values, vectors = np.linalg.eigh(centred.T @ centred)
    values, axes = np.clip(values[::-1], 0, None), vectors[:, ::-1].T[:2]
    axes *= np.sign(axes[np.arange(2), np.abs(axes).argmax(1)])[:, None]  # a fixed sign: no flipped frames
    explained = float(values[:2].sum() / max(values.sum(), 1e-12))
    xy = (stack - centre) @ axes.T
    return TokenFrames(np.array(steps), xy, masks[0].reshape(-1), np.repeat(np.arange(b), n),
                       np.tile(np.arange(n), b), explained)


def trace_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``trace`` rows of a run's metrics."""
    return [r for r in rows if r.get("kind") == "trace"]
