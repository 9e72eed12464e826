"""The four shipped checkpoints load through the public API and reconstruct held-out images
far better than a trivial predictor (each masked pixel = the mean of the image's visible pixels)."""

from pathlib import Path

import pytest
import torch

from mto_core import load_checkpoint, load_fashion_mnist, make_mask, reconstruct
from mto_core.api import patch_mask_to_pixels
from mto_core.vit import patchify

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@pytest.mark.parametrize("name", ["simmim", "simmim-mto", "mae", "mae-mto"])
def test_checkpoint_reconstructs_better_than_visible_mean(name):
    ckpt = load_checkpoint(CHECKPOINTS / name)
    assert ckpt.config.preset == name
    for file in ("metrics.jsonl", "card.md"):
        assert (CHECKPOINTS / name / file).stat().st_size > 0
    images = load_fashion_mnist("test", "shipped").images[:256]  # never seen in training
    mask = make_mask(256, ckpt.config.model.grid, ckpt.config.mask.ratio, 123)
    rec = reconstruct(ckpt, images, mask)
    x = rec.images
    visible = ~patch_mask_to_pixels(mask, 4)
    mean_visible = (x * visible).sum((1, 2, 3)) / visible.sum((1, 2, 3))
    trivial = mean_visible.view(-1, 1, 1, 1).expand_as(x)
    trivial_err = (patchify(trivial, 4) - patchify(x, 4)).pow(2).mean(-1)
    trivial_masked = ((trivial_err * mask).sum(1) / mask.sum(1)).mean()
    model_masked = rec.masked_error.mean()
    assert model_masked < 0.5 * trivial_masked, (float(model_masked), float(trivial_masked))
