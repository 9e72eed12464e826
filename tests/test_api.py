import pytest
import torch

import mto_core
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model

from .conftest import small_config


@pytest.fixture(params=["simmim-mto", "mae"])
def model(request):
    torch.manual_seed(0)
    config = small_config(request.param)
    return build_model(config.model, config.mto).eval()


def test_reconstruct_keeps_visible_pixels(model, images):
    mask = make_mask(4, 7, 0.6, 0)
    rec = mto_core.reconstruct(model, images, mask)
    assert rec.reconstruction.shape == images.shape and rec.patch_error.shape == (4, 49)
    visible = ~mto_core.api.patch_mask_to_pixels(mask, 4)
    assert torch.equal(rec.reconstruction[visible], images[visible])
    expected = (rec.patch_error * mask).sum(1) / mask.sum(1)
    assert torch.allclose(rec.masked_error, expected)


def test_reconstruct_accepts_any_size_and_one_mask(model):
    rec = mto_core.reconstruct(model, torch.randint(0, 255, (2, 3, 60, 45), dtype=torch.uint8),
                               make_mask(1, 7, 0.5, 0)[0])
    assert rec.images.shape == (2, 1, 28, 28) and rec.mask.shape == (2, 49)
    with pytest.raises(ValueError, match="mask must be"):
        mto_core.reconstruct(model, torch.rand(2, 1, 28, 28), torch.zeros(2, 10, dtype=torch.bool))


def test_token_trace_covers_every_mask_token_layer(model, images):
    trace = mto_core.token_trace(model, images, make_mask(4, 7, 0.6, 0))
    layers = model.config.mask_layers
    assert sorted(trace.hidden) == list(range(layers + 1)) and sorted(trace.attn) == list(range(1, layers + 1))
    assert trace.hidden[1].shape[:2] == (4, 50) and trace.attn[1].shape[-1] == 50
    assert torch.equal(trace.token_mask[:, 1:], make_mask(4, 7, 0.6, 0))
    only = mto_core.token_trace(model, images, make_mask(4, 7, 0.6, 0), hidden_layers=[1], attention_layers=[])
    assert set(only.hidden) == {1} and only.attn == {}  # what MTO reads stays in trace.rows


def test_compute_mto_losses_reports_every_term(model, images):
    losses = mto_core.compute_mto_losses(model, images, make_mask(4, 7, 0.6, 0))
    assert set(losses) == {"mim", "rec", "sing", "ent"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert 0 <= losses["ent"] <= 1 and 0 <= losses["sing"] <= 1


def test_features(model, images):
    assert mto_core.features(model, images).shape == (4, 32)


def test_pixels_out_of_range_and_masks_that_hide_nothing_are_refused(model, images):
    mask = make_mask(4, 7, 0.6, 0)
    with pytest.raises(ValueError, match=r"float images must hold pixels in 0..1, got .*; divide by 255"):
        mto_core.reconstruct(model, images * 255, mask)  # 0..255 as floats: errors of thousands before
    for empty in (torch.zeros(4, 49, dtype=torch.bool), torch.ones(4, 49, dtype=torch.bool)):
        with pytest.raises(ValueError, match="hide at least one patch and show at least one"):
            mto_core.compute_mto_losses(model, images, empty)  # NaN losses before
        with pytest.raises(ValueError, match="hide at least one patch and show at least one"):
            mto_core.reconstruct(model, images, empty)
    assert torch.isfinite(mto_core.reconstruct(model, (images * 255).to(torch.uint8), mask).masked_error).all()
