import pytest
import torch

from mto_core.data.masking import make_mask
from mto_core.mto.plugin import MTOPlan
from mto_core.models.vit import MaskedViT, VisibleFirst, patchify, unpatchify, visible_cannot_see_masked
from mto_core.interop.timm_encoder import to_timm


def test_patchify_round_trip():
    x = torch.rand(2, 3, 12, 12)
    patches = patchify(x, 4)
    assert patches.shape == (2, 9, 48)
    assert torch.equal(patches[0, 1].view(4, 4, 3).permute(2, 0, 1), x[0, :, 0:4, 4:8])
    assert torch.equal(unpatchify(patches, 4, 3), x)


def test_encoder_loads_into_timm_and_agrees():
    torch.manual_seed(0)
    encoder = MaskedViT(28, 4, 1, 32, 2, 2, mask_token=True).eval()
    vit = to_timm(encoder).eval()
    x = torch.randn(3, 1, 28, 28)
    ours, _ = encoder(x)
    assert torch.allclose(vit.forward_features(x), ours, atol=1e-5)
    assert torch.allclose(vit(x), encoder.features(x), atol=1e-5)


def test_probability_path_matches_fused_kernel():
    torch.manual_seed(0)
    encoder = MaskedViT(28, 4, 1, 32, 3, 4, mask_token=True).eval()
    x = torch.randn(2, 1, 28, 28)
    mask = make_mask(2, 7, 0.6, 0)
    plan = MTOPlan(recalibrated=3)
    fused, trace0 = encoder(x, mask, plan=plan)
    explicit, trace = encoder(x, mask, plan=plan, probs_layers={1, 2, 3})
    blocks, _ = encoder(x, mask, plan=plan, path=VisibleFirst(29))  # recalibration as a block structure
    assert torch.allclose(fused, explicit, atol=1e-5) and torch.allclose(blocks, explicit, atol=1e-5)
    assert not trace0.attn and set(trace.attn) == {1, 2, 3}
    attn = trace.attn[2]
    assert attn.shape == (2, 4, 50, 50)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 4, 50), atol=1e-5)


def test_only_requested_layers_leave_the_fused_kernel(monkeypatch):
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    encoder = MaskedViT(28, 4, 1, 32, 4, 2, mask_token=True)
    encoder(torch.randn(1, 1, 28, 28), make_mask(1, 7, 0.5, 0), probs_layers={1})
    assert len(calls) == 3


def test_recalibration_mask():
    token_mask = torch.tensor([[False, True, False, True]])
    allowed = visible_cannot_see_masked(token_mask)[0, 0]
    expected = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(allowed, expected)


def test_mask_shape_checked():
    encoder = MaskedViT(28, 4, 1, 32, 1, 2, mask_token=True)
    with pytest.raises(ValueError, match="mask must have shape"):
        encoder(torch.randn(2, 1, 28, 28), torch.zeros(2, 48, dtype=torch.bool))
