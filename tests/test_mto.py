"""The four required MTO properties, plus hand computations of every formula."""

import math

import pytest
import torch

from mto_core.config import MTOConfig
from mto_core.data.masking import make_mask
from mto_core.mto.plugin import depth_weights, mto_losses, plan
from mto_core.mto.terms import entropy_loss, gram, recalibration_loss, singularity_loss
from mto_core.models.build import build_model
from mto_core.mto.records import TokenTrace
from mto_core.models.vit import VisibleFirst

from .conftest import small_config


def _masks(b=3, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i in range(b):
        mask[i, 1 + torch.randperm(t - 1, generator=g)[:3]] = True  # token 0 ([CLS]) visible
    return mask


def _attn(b=3, h=2, t=6, seed=0):
    return torch.randn(b, h, t, t, generator=torch.Generator().manual_seed(seed)).softmax(-1)


# (a) every layer recalibrated: visible outputs do not depend on the mask token
@pytest.mark.parametrize("method", ["simmim-mto", "mae-mto", "conmim-mto", "bootmae-mto"])
def test_visible_tokens_invariant_to_mask_token(method):
    torch.manual_seed(0)
    model = build_model(*_cfg(method, "mto.recalibrated_layers=null")).eval()
    assert model.plan.recalibrated == model.config.mask_layers
    images, mask = torch.rand(2, 1, 28, 28), make_mask(2, 7, 0.6, 1)
    layers = range(model.config.mask_layers + 1)
    before = model(images, mask, hidden_layers=layers).trace
    token = model.encoder.mask_token if model.config.mask_in_encoder else model.mask_token
    with torch.no_grad():
        token.add_(torch.randn_like(token) * 5)
    after = model(images, mask, hidden_layers=layers).trace
    visible = ~before.token_mask
    last = model.config.mask_layers
    assert torch.allclose(before.hidden[last][visible], after.hidden[last][visible], atol=1e-5)
    assert not torch.allclose(before.hidden[last][~visible], after.hidden[last][~visible], atol=1e-3)


def test_without_recalibration_visible_tokens_do_change():
    torch.manual_seed(0)
    model = build_model(*_cfg("simmim-mto", "mto.hard_recalibration=false")).eval()
    images, mask = torch.rand(2, 1, 28, 28), make_mask(2, 7, 0.6, 1)
    before = model(images, mask, hidden_layers=[2]).trace
    with torch.no_grad():
        model.encoder.mask_token.add_(torch.randn_like(model.encoder.mask_token) * 5)
    after = model(images, mask, hidden_layers=[2]).trace
    visible = ~before.token_mask
    assert not torch.allclose(before.hidden[2][visible], after.hidden[2][visible], atol=1e-3)


# (b) each loss equals a direct hand computation
def test_recalibration_loss_by_hand():
    attn, mask = _attn(), _masks()
    values = []
    for b in range(3):
        for h in range(2):
            for i in range(6):
                if not mask[b, i]:
                    values.append(sum(float(attn[b, h, i, j]) for j in range(6) if mask[b, j]))
    assert recalibration_loss(attn, mask).item() == pytest.approx(sum(values) / len(values), rel=1e-5)


def test_entropy_loss_by_hand():
    attn, mask = _attn(), _masks()
    values = []
    for b in range(3):
        for h in range(2):
            for i in range(6):
                if mask[b, i]:
                    row = [float(a) for a in attn[b, h, i]]
                    values.append(-sum(a * math.log(a) for a in row) / math.log(6))
    assert entropy_loss(attn, mask).item() == pytest.approx(sum(values) / len(values), rel=1e-5)


def test_singularity_loss_by_hand():
    hidden = torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask, tau = _masks(), 0.1
    values = []
    for b in range(3):
        for i in range(6):
            if not mask[b, i]:
                continue
            cos = {j: float(torch.dot(hidden[b, i], hidden[b, j]) / hidden[b, i].norm() / hidden[b, j].norm())
                   for j in range(6) if j != i}
            z = sum(math.exp(c / tau) for c in cos.values())
            values.append(sum(math.exp(c / tau) / z for j, c in cos.items() if not mask[b, j]))
    assert singularity_loss(hidden, mask, tau).item() == pytest.approx(sum(values) / len(values), rel=1e-5)


def test_depth_weights():
    assert depth_weights(3) == pytest.approx([4 / 10, 3 / 10, 2 / 10, 1 / 10])
    assert depth_weights(0) == [1.0]


def test_combined_losses_by_hand():
    mask = _masks()
    hidden = {l: torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(l)) for l in range(3)}
    attn = {l: _attn(seed=l) for l in (1, 2)}
    config = MTOConfig(recalibration_weight=1, singularity_weight=1, entropy_weight=1, tau=0.2)
    losses = mto_losses(TokenTrace(hidden, attn, mask), config, depth=2)
    w = depth_weights(2)
    assert losses["sing"].item() == pytest.approx(
        sum(w[l] * singularity_loss(hidden[l], mask, 0.2).item() for l in range(3)), rel=1e-5)
    assert losses["ent"].item() == pytest.approx(
        (entropy_loss(attn[1], mask) + entropy_loss(attn[2], mask)).item() / 2, rel=1e-5)
    assert losses["rec"].item() == pytest.approx(
        (recalibration_loss(attn[1], mask) + recalibration_loss(attn[2], mask)).item() / 2, rel=1e-5)


def test_hard_recalibration_makes_soft_loss_zero():
    torch.manual_seed(0)
    model = build_model(*_cfg("simmim-mto", "mto.recalibration_weight=1")).eval()
    out = model(torch.rand(2, 1, 28, 28), make_mask(2, 7, 0.6, 0))
    assert out.mto["rec"].item() == 0.0


# (c) L_sing sends gradient to the mask token
@pytest.mark.parametrize("method", ["simmim-mto", "mae-mto", "conmim-mto", "bootmae-mto"])
def test_singularity_loss_reaches_mask_token(method):
    torch.manual_seed(0)
    model = build_model(*_cfg(method))
    out = model(torch.rand(2, 1, 28, 28), make_mask(2, 7, 0.6, 0))
    out.mto["sing"].backward()
    token = model.encoder.mask_token if model.config.mask_in_encoder else model.mask_token
    assert token.grad is not None and token.grad.abs().sum() > 0


# (d) every MTO part off: the loss is the plain objective's loss
@pytest.mark.parametrize("method", ["simmim", "mae", "conmim", "bootmae"])
def test_all_parts_off_equals_plain_objective(method):
    off = ["mto.hard_recalibration=false", "mto.singularity_weight=0", "mto.entropy_weight=0",
           "mto.recalibration_weight=0"]
    torch.manual_seed(0)
    with_mto = build_model(*_cfg(f"{method}-mto", *off))
    plain = build_model(*_cfg(method))
    plain.load_state_dict(with_mto.state_dict())
    images, mask = torch.rand(3, 1, 28, 28), make_mask(3, 7, 0.6, 2)
    a, b = with_mto(images, mask), plain(images, mask)
    assert a.mto == {} and torch.equal(a.loss, b.loss) and torch.equal(a.loss, a.mim_loss)
    on = build_model(*_cfg(f"{method}-mto"))
    on.load_state_dict(with_mto.state_dict())
    assert not torch.equal(on(images, mask).loss, b.loss)


def test_plan_asks_for_rows_only_where_needed():
    p = plan(MTOConfig(hard_recalibration=True, singularity_weight=0.1, entropy_weight=0.01), 6)
    assert p.depth == 3 and p.recalibrated == 6
    assert p.row_layers == {1, 2, 3} and p.hidden_layers == {0, 1, 2, 3} and p.visible_row_layers == set()
    p = plan(MTOConfig(singularity_weight=0.1), 6)
    assert p.row_layers == set() and p.recalibrated == 0
    assert plan(MTOConfig(entropy_weight=1, depth=1, hard_recalibration=True, recalibrated_layers=2), 6) \
        .row_layers == {1}
    assert plan(MTOConfig(recalibration_weight=1, hard_recalibration=False), 6).visible_row_layers == {1, 2, 3}
    assert plan(MTOConfig(recalibration_weight=1, hard_recalibration=True, recalibrated_layers=2), 6).visible_row_layers == {3}
    assert plan(MTOConfig(recalibration_weight=1, hard_recalibration=True), 6).visible_row_layers == set()  # all recalibrated: L_rec = 0


def test_unequal_mask_counts_take_the_token_order_path_and_visible_first_refuses_them():
    torch.manual_seed(0)
    model = build_model(*_cfg("simmim-mto"))
    mask = make_mask(2, 7, 0.6, 0)
    mask[0, mask[0].nonzero()[0]] = False  # one sample hides one patch fewer
    out = model(torch.rand(2, 1, 28, 28), mask)
    assert out.trace.rows is None and set(out.mto) == {"sing", "ent"} and torch.isfinite(out.loss)
    with pytest.raises(RuntimeError, match="told every sample hides 29 patches; some do not"):
        model(torch.rand(2, 1, 28, 28), mask, path=VisibleFirst(29))


def _cfg(name, *extra):
    config = small_config(name, *extra)
    return config.model, config.mto


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 3, 5, 4)])
def test_gram_backward_is_the_gradient_of_h_h_transposed(shape):
    h = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    assert torch.equal(gram(h), h @ h.transpose(-1, -2))
    assert torch.autograd.gradcheck(gram, (h,))
    weights = torch.randn(*shape[:-1], shape[-2], dtype=torch.float64)  # a non-symmetric upstream gradient
    ours, = torch.autograd.grad((gram(h) * weights).sum(), h)
    theirs, = torch.autograd.grad(((h @ h.transpose(-1, -2)) * weights).sum(), h)
    assert torch.allclose(ours, theirs, atol=1e-12)


def test_gram_under_bf16_autocast_gives_a_float32_gradient():
    h = torch.randn(2, 5, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram(h)
    assert g.dtype == torch.bfloat16
    grad, = torch.autograd.grad(g.float().sum(), h)
    assert grad.dtype == torch.float32
    assert torch.allclose(grad, 2 * h.detach().sum(-2, keepdim=True).expand_as(h), rtol=1e-5)


def test_singularity_loss_with_unequal_mask_counts():
    hidden = torch.randn(2, 3, 6, 5, generator=torch.Generator().manual_seed(2))
    mask = _masks(b=3)
    mask[0, 1:] = torch.tensor([True, False, False, False, False])  # one masked token in sample 0
    per_sample = [singularity_loss(hidden[:, b:b + 1], mask[b:b + 1], 0.1) for b in range(3)]
    counts = mask.sum(1).float()
    expected = sum(ps * c for ps, c in zip(per_sample, counts)) / counts.sum()
    assert torch.allclose(singularity_loss(hidden, mask, 0.1), expected, atol=1e-6)


def test_training_path_reads_the_entropy_through_fused_kernels(monkeypatch):
    """On the visible-first path L_ent's layers 1..K go through masked_row_entropy, and no attention
    map is formed; if the path lost its fused rows, this fails instead of training slowing down unseen."""
    import mto_core.mto.attention_stats as stats

    calls = []
    original = stats.masked_row_entropy
    monkeypatch.setattr(stats, "masked_row_entropy", lambda *a, **k: calls.append(1) or original(*a, **k))
    model = build_model(*_cfg("simmim-mto"))
    out = model(torch.rand(2, 1, 28, 28), make_mask(2, 7, 0.6, 0), path=VisibleFirst(29))
    assert len(calls) == model.plan.depth == len(out.trace.rows.entropy) and not out.trace.attn
