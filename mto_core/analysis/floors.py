"""Floors for reconstruction: how well a model fills masked patches, beside two fills that learn
nothing, on the same images and masks.

- the mean colour: every masked pixel gets the per-channel mean of the image's visible pixels;
- classical inpainting: scikit-image's ``inpaint_biharmonic`` from the visible pixels (a smooth
  surface through them, per channel).

The error is the masked-patch MSE in pixel values in [0, 1]: the mean over every hidden pixel and
channel. :func:`held_out_floors` measures a checkpoint on the photos held out of the photo-crop
training set (mto_core/data/photo_crops.py) under fixed masks, so that every model is compared
on the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..api import patch_mask_to_pixels, reconstruct
from ..data.images import prepare_images
from ..data.masking import make_mask
from ..data.photo_crops import photo_crops
from ..models.checkpoint import Checkpoint

FLOOR_RATIO = 0.75
FLOOR_SEEDS = tuple(range(8))  # each photo under 8 fixed masks
FILLS = ("model", "mean colour", "biharmonic")


def floor_masks(count: int, grid: int, ratio: float = FLOOR_RATIO,
                seeds: tuple[int, ...] = FLOOR_SEEDS) -> torch.Tensor:
    """(len(seeds) * count, grid * grid) random patch masks: ``count`` from each seed in turn."""
    return torch.cat([make_mask(count, grid, ratio, seed) for seed in seeds])


def masked_mse(filled: torch.Tensor, images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B,) mean squared error of ``filled`` against ``images`` (B, C, H, W) over the pixels of the
    masked patches (``mask`` (B, N) bool) and every channel."""
    pix = patch_mask_to_pixels(mask, patch_size).expand_as(images).float()
    return ((filled - images).pow(2) * pix).sum((1, 2, 3)) / pix.sum((1, 2, 3)).clamp_min(1)


def mean_colour_fill(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``images`` with every masked pixel set to the per-channel mean of the visible pixels."""
    visible = (~patch_mask_to_pixels(mask, patch_size)).expand_as(images).float()
    mean = (images * visible).sum((2, 3), keepdim=True) / visible.sum((2, 3), keepdim=True).clamp_min(1)
    return torch.where(visible.bool(), images, mean.expand_as(images))


def biharmonic_fill(images: torch.Tensor, mask: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``images`` with the masked pixels inpainted from the visible ones by scikit-image's
    ``inpaint_biharmonic`` (each channel its own surface)."""
    from skimage.restoration import inpaint_biharmonic

    pix = patch_mask_to_pixels(mask, patch_size)[:, 0].numpy()
    out = []
    for image, hidden in zip(images.permute(0, 2, 3, 1).double().numpy(), pix):
        out.append(inpaint_biharmonic(image, hidden, channel_axis=-1))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(images.dtype)


def floor_fills(images: torch.Tensor, mask: torch.Tensor,
                patch_size: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{fill: (the filled images (B, C, H, W), their (B,) masked-patch MSE)} of the two fills that
    learn nothing ("mean colour", "biharmonic") on ``images`` (B, C, H, W) in [0, 1] under ``mask``
    (B, N) bool: the floors a model's error on the same images and mask is read against."""
    out = {}
    for name, fill in (("mean colour", mean_colour_fill), ("biharmonic", biharmonic_fill)):
        filled = fill(images, mask, patch_size).float()
        out[name] = filled, masked_mse(filled, images, mask, patch_size)
    return out


@dataclass
class FloorTable:
    """Masked-patch MSE per photo (``rows``: name -> {fill: mse}, each the mean over the masks) and
    over all photos and masks: the row "all" (``overall``); ``ratio`` and ``seeds`` of the masks."""

    rows: dict[str, dict[str, float]]
    overall: dict[str, float]
    ratio: float
    seeds: tuple[int, ...]

    def markdown(self) -> str:
        """The table in Markdown, one row per photo and one for all of them."""
        lines = ["| photo | model | mean colour | biharmonic | model / mean colour | model / biharmonic |",
                 "|---|---|---|---|---|---|"]
        for name, row in [*self.rows.items(), ("all", self.overall)]:
            lines.append(f"| {name} | {row['model']:.4f} | {row['mean colour']:.4f} | {row['biharmonic']:.4f} | "
                         f"{row['model'] / row['mean colour']:.2f} | {row['model'] / row['biharmonic']:.2f} |")
        return "\n".join(lines)


def floor_table(checkpoint: Checkpoint, images: torch.Tensor, names: list[str] | tuple[str, ...],
                ratio: float = FLOOR_RATIO, seeds: tuple[int, ...] = FLOOR_SEEDS) -> FloorTable:
    """The masked-patch MSE of ``checkpoint`` (a model that predicts pixels) on ``images`` (B, C, H, W),
    beside the mean-colour and biharmonic fills, under the same random masks (``ratio``, one draw
    per seed in ``seeds``)."""
    m = checkpoint.config.model
    x = prepare_images(images, m.img_size, m.in_chans)
    mask = floor_masks(len(x), m.grid, ratio, seeds)
    xs = x.repeat(len(seeds), 1, 1, 1)
    model = masked_mse(reconstruct(checkpoint, xs, mask).prediction.float(), xs, mask, m.patch_size)
    floors = {k: e for k, (_, e) in floor_fills(xs, mask, m.patch_size).items()}
    errors = {k: v.view(len(seeds), len(x)) for k, v in {"model": model, **floors}.items()}
    rows = {name: {k: float(e[:, i].mean()) for k, e in errors.items()} for i, name in enumerate(names)}
    return FloorTable(rows, {k: float(e.mean()) for k, e in errors.items()}, ratio, tuple(seeds))


def held_out_floors(checkpoint: Checkpoint, ratio: float = FLOOR_RATIO,
                    seeds: tuple[int, ...] = FLOOR_SEEDS) -> FloorTable:
    """:func:`floor_table` on the photos held out of the checkpoint's photo-crop set (its config's
    ``data.held_out``; by default astronaut, chelsea, coffee and rocket), whole, at its size."""
    photos = photo_crops("test", checkpoint.config.model.img_size, 0, checkpoint.config.data.held_out)
    return floor_table(checkpoint, photos.images, photos.classes, ratio, seeds)
