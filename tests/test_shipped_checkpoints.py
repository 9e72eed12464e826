"""The eight shipped checkpoints load through the public API (their float16 weights into the
float32 model); the pixel predictors reconstruct held-out images far better than a trivial
predictor (each masked pixel = the mean of the image's visible pixels), the feature predictors'
predictions match their teacher's features far better than chance, a ConMIM checkpoint refuses
a pixel reconstruction in one line, and checkpoints/ stays under 65 MB. The four colour ones
(tiny-rgb on photo crops) fill the masked patches of the four held-out photos with less than 0.8x
the error of the visible pixels' mean colour."""

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mto_core import feature_match_ranks, load_checkpoint, load_fashion_mnist, make_mask, reconstruct
from mto_core.analysis.floors import FLOOR_RATIO, held_out_floors
from mto_core.api import patch_mask_to_pixels
from mto_core.data.photo_crops import HELD_OUT
from mto_core.models.vit import patchify

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
NAMES = ["simmim", "simmim-mto", "conmim", "conmim-mto", "mae", "mae-mto", "bootmae", "bootmae-mto"]
COLOUR = {"mae-rgb": "mae", "mae-rgb-mto": "mae-mto", "simmim-rgb": "simmim", "simmim-rgb-mto": "simmim-mto"}


def _held_out(ckpt, count: int = 256):
    images = load_fashion_mnist("test", "shipped").images[:count]  # never seen in training
    return images, make_mask(count, ckpt.config.model.grid, ckpt.config.mask.ratio, 123)


@pytest.mark.parametrize("name", ["simmim", "simmim-mto", "mae", "mae-mto", "bootmae", "bootmae-mto"])
def test_checkpoint_reconstructs_better_than_visible_mean(name):
    ckpt = load_checkpoint(CHECKPOINTS / name)
    assert ckpt.config.preset == name
    for file in ("metrics.jsonl", "card.md"):
        assert (CHECKPOINTS / name / file).stat().st_size > 0
    images, mask = _held_out(ckpt)
    rec = reconstruct(ckpt, images, mask)
    x = rec.images
    visible = ~patch_mask_to_pixels(mask, 4)
    mean_visible = (x * visible).sum((1, 2, 3)) / visible.sum((1, 2, 3))
    trivial = mean_visible.view(-1, 1, 1, 1).expand_as(x)
    trivial_err = (patchify(trivial, 4) - patchify(x, 4)).pow(2).mean(-1)
    trivial_masked = ((trivial_err * mask).sum(1) / mask.sum(1)).mean()
    model_masked = rec.masked_error.mean()
    assert model_masked < 0.5 * trivial_masked, (float(model_masked), float(trivial_masked))


@pytest.mark.parametrize("name", ["conmim", "conmim-mto", "bootmae", "bootmae-mto"])
def test_feature_predictions_match_the_teacher_far_better_than_chance(name):
    """Mean rank of each masked patch's own teacher feature among the image's N (1 = best): a
    prediction that knew nothing would stand at (N + 1) / 2 on average."""
    ckpt = load_checkpoint(CHECKPOINTS / name)
    assert ckpt.config.preset == name and (CHECKPOINTS / name / "card.md").stat().st_size > 0
    images, mask = _held_out(ckpt)
    ranks = feature_match_ranks(ckpt, images, mask)
    chance = (ckpt.config.model.num_patches + 1) / 2
    assert torch.isnan(ranks[~mask]).all() and not torch.isnan(ranks[mask]).any()
    assert float(ranks[mask].mean()) < 0.25 * chance, (float(ranks[mask].mean()), chance)


@pytest.mark.parametrize("name", ["conmim", "conmim-mto"])
def test_a_conmim_checkpoint_refuses_a_pixel_reconstruction_in_one_line(name):
    ckpt = load_checkpoint(CHECKPOINTS / name)
    images, mask = _held_out(ckpt, 4)
    with pytest.raises(ValueError, match="conmim predicts the teacher's patch features, not pixels") as error:
        reconstruct(ckpt, images, mask)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", list(COLOUR))
def test_colour_checkpoint_beats_the_mean_colour_floor_on_the_held_out_photos(name):
    ckpt = load_checkpoint(CHECKPOINTS / name)
    m, data = ckpt.config.model, ckpt.config.data
    assert ckpt.config.preset == COLOUR[name] and (m.size, m.img_size, m.in_chans) == ("tiny-rgb", 32, 3)
    assert data.dataset == "photo-crops" and data.held_out == ",".join(HELD_OUT)
    card = (CHECKPOINTS / name / "card.md").read_text()
    assert all(photo in card for photo in HELD_OUT) and "| mean colour | biharmonic |" in card
    table = held_out_floors(ckpt)
    assert table.ratio == FLOOR_RATIO == 0.75 and list(table.rows) == list(HELD_OUT)
    assert table.overall["model"] < 0.8 * table.overall["mean colour"], table.overall


def test_shipped_weights_are_float16_and_load_into_the_float32_model():
    for name in [*NAMES, *COLOUR]:
        with safe_open(str(CHECKPOINTS / name / "model.safetensors"), "pt") as file:
            dtypes = {file.get_slice(key).get_dtype() for key in file.keys()}
        assert "F16" in dtypes and not dtypes & {"F32", "BF16", "F64"}, (name, dtypes)
        model = load_checkpoint(CHECKPOINTS / name).model
        assert {p.dtype for p in model.parameters()} == {torch.float32}, name


def test_checkpoints_folder_stays_under_65_mb():
    total = sum(p.stat().st_size for p in CHECKPOINTS.rglob("*") if p.is_file())
    assert total < 65 * 10**6, total
    for name in [*NAMES, *COLOUR]:  # each token-snapshot folder within the bound scripts/make_checkpoints.py keeps
        traces = sum(p.stat().st_size for p in (CHECKPOINTS / name / "traces").glob("*"))
        assert 0 < traces <= 1.5 * 2**20, (name, traces)
