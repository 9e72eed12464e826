"""The reconstruction floors on trivial images: a flat colour costs the mean-colour fill nothing, a
linear ramp costs biharmonic inpainting (almost) nothing and the mean colour a known amount; the
masked-patch MSE counts only hidden pixels; a floor table compares a model on the same masks."""

import pytest
import torch

from mto_core.analysis import floors
from mto_core.config import apply_overrides, preset
from mto_core.models.build import build_model
from mto_core.models.checkpoint import Checkpoint


def _ramp(size: int = 16) -> torch.Tensor:
    """(1, 3, size, size): red rises left to right, green top to bottom, blue flat at 0.25."""
    ramp = torch.linspace(0, 1, size)
    return torch.stack([ramp.view(1, -1).expand(size, size), ramp.view(-1, 1).expand(size, size),
                        torch.full((size, size), 0.25)]).unsqueeze(0)


def test_masked_mse_counts_only_the_hidden_patches():
    images = torch.zeros(1, 3, 8, 8)
    filled = images.clone()
    filled[:, :, :4, :4] = 1.0  # wrong on patch 0 only (4 x 4 patches, a 2 x 2 grid)
    assert floors.masked_mse(filled, images, torch.tensor([[True, False, False, False]]), 4).item() == 1.0
    assert floors.masked_mse(filled, images, torch.tensor([[False, True, True, True]]), 4).item() == 0.0
    assert floors.masked_mse(filled, images, torch.tensor([[True, True, False, False]]), 4).item() == 0.5


def test_a_flat_colour_costs_the_mean_colour_nothing_and_a_ramp_costs_inpainting_a_fraction_of_it():
    flat = torch.tensor([0.2, 0.5, 0.9]).view(1, 3, 1, 1).expand(1, 3, 16, 16).contiguous()
    mask = floors.floor_masks(1, 4, seeds=(0,))
    assert mask.shape == (1, 16) and int(mask.sum()) == 12
    for fill in (floors.mean_colour_fill, floors.biharmonic_fill):
        assert floors.masked_mse(fill(flat, mask, 4), flat, mask, 4).item() == pytest.approx(0, abs=1e-10)
    ramp = _ramp()
    mean = floors.masked_mse(floors.mean_colour_fill(ramp, mask, 4), ramp, mask, 4).item()
    biharmonic = floors.masked_mse(floors.biharmonic_fill(ramp, mask, 4), ramp, mask, 4).item()
    assert biharmonic < 0.2 * mean and mean > 0.01  # not 0: hidden border patches are extrapolated
    # the visible pixels stay as they are
    visible = ~floors.patch_mask_to_pixels(mask, 4).expand_as(ramp)
    assert torch.equal(floors.biharmonic_fill(ramp, mask, 4)[visible], ramp[visible])


def test_a_floor_table_puts_a_model_beside_both_floors_on_the_same_masks(tmp_path):
    config = apply_overrides(preset("mae", "tiny-rgb"), ["model.embed_dim=32", "model.depth=2", "model.num_heads=2",
                                                         "model.decoder_dim=32", "model.decoder_heads=2"])
    torch.manual_seed(0)
    checkpoint = Checkpoint(build_model(config.model, config.mto).eval(), config, tmp_path)
    images = (torch.cat([_ramp(32), _ramp(32).flip(-1)]) * 255).round().to(torch.uint8)
    table = floors.floor_table(checkpoint, images, ["ramp", "mirrored"], seeds=(0, 1))
    assert list(table.rows) == ["ramp", "mirrored"] and table.seeds == (0, 1) and table.ratio == 0.75
    for row in [*table.rows.values(), table.overall]:
        assert set(row) == set(floors.FILLS) and row["biharmonic"] < 0.2 * row["mean colour"]
    assert table.overall["model"] == pytest.approx(sum(r["model"] for r in table.rows.values()) / 2)
    text = table.markdown()
    assert text.count("\n") == 4 and "| all |" in text


def test_floor_fills_score_one_image_and_mask_as_the_table_does():
    ramp = _ramp(16)
    mask = floors.floor_masks(1, 4, seeds=(3,))
    fills = floors.floor_fills(ramp, mask, 4)
    assert set(fills) == {"mean colour", "biharmonic"}
    (mean_filled, mean), (_, biharmonic) = fills["mean colour"], fills["biharmonic"]
    assert mean_filled.shape == ramp.shape and mean.shape == (1,)
    assert torch.equal(mean_filled, floors.mean_colour_fill(ramp, mask, 4))
    assert mean.item() == pytest.approx(floors.masked_mse(mean_filled, ramp, mask, 4).item())
    assert biharmonic.item() < 0.2 * mean.item()


def test_held_out_floors_measures_the_photos_the_config_held_out(tmp_path):
    config = apply_overrides(preset("mae", "tiny-rgb"), ["model.embed_dim=32", "model.depth=2", "model.num_heads=2",
                                                         "model.decoder_dim=32", "model.decoder_heads=2",
                                                         "data.dataset=photo-crops", "data.held_out=china,coins"])
    checkpoint = Checkpoint(build_model(config.model, config.mto).eval(), config, tmp_path)
    assert list(floors.held_out_floors(checkpoint, seeds=(0,)).rows) == ["china", "coins"]
