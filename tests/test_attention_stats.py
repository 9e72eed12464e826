"""The fused attention statistics (mto_core.mto.attention_stats) against the explicit rows.

Tolerances: float32, 1e-5 (values) and 1e-4 relative (gradients), rounding of the same sums in
another order. Under bf16 autocast the kernels get the bf16 q and k that autocast gives them and
the entropy is taken in float32, so it matches the float32 rows of those same bf16 values to 1e-4;
a whole model under bf16 rounds every layer, and its two paths agree to 2% (losses) and 5% of the
largest gradient entry (gradients).
"""

import pytest
import torch

from mto_core.mto.attention_stats import attend, attend_blocks, mass_on_masked, masked_row_entropy
from mto_core.data.masking import hidden_count, make_mask
from mto_core.models.build import build_model
from mto_core.models.vit import TokenOrder, VisibleFirst

from .conftest import small_config

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def explicit_rows(q, k, v, visible, recalibrated):
    """softmax(QK^T) written out, in q's dtype: (out, masked rows' entropy, visible rows' mass on masked keys)."""
    t = q.shape[-2]
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if recalibrated:
        blocked = torch.zeros(t, t, dtype=torch.bool, device=q.device)
        blocked[:visible, visible:] = True
        logits = logits.masked_fill(blocked, float("-inf"))
    log_probs = logits[:, :, visible:].log_softmax(-1)  # masked rows: nothing masked out
    probs = logits.softmax(-1)
    return probs @ v, -(log_probs.exp() * log_probs).sum(-1), probs[:, :, :visible, visible:].sum(-1)


def fused_rows(q, k, v, visible, recalibrated):
    scale = q.shape[-1] ** -0.5
    return (attend(q, k, v, visible, recalibrated), masked_row_entropy(q, k, visible, scale),
            mass_on_masked(q, k, visible))


def block_rows(q, k, v, visible, recalibrated):
    """The block structure that attend runs on CUDA, run here on any device."""
    out, entropy, mass = fused_rows(q, k, v, visible, recalibrated)
    return (attend_blocks(q, k, v, visible) if recalibrated else out), entropy, mass


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("recalibrated", [False, True])
def test_fused_statistics_equal_the_explicit_rows_in_float32(device, recalibrated):
    """Output, masked-row entropy and (unrecalibrated: in recalibrated layers it is 0 and not asked
    for) visible-row mass, and the gradients of a loss reading them."""
    torch.manual_seed(0)
    b, h, t, d, visible = 3, 2, 9, 8, 4
    q, k, v = (torch.randn(b, h, t, d, device=device, requires_grad=True) for _ in range(3))
    weights = [torch.randn(b, h, t, d, device=device), torch.randn(b, h, t - visible, device=device),
               torch.randn(b, h, visible, device=device)]
    results = []
    for rows in (fused_rows, block_rows, explicit_rows):
        values = rows(q, k, v, visible, recalibrated)[:2 if recalibrated else 3]
        loss = sum((value * w).sum() for value, w in zip(values, weights))
        results.append((values, torch.autograd.grad(loss, (q, k, v))))
    ref_values, ref_grads = results[-1]
    for values, grads in results[:-1]:
        for value, ref in zip(values, ref_values):
            torch.testing.assert_close(value, ref, atol=1e-5, rtol=1e-5)
        for grad, ref in zip(grads, ref_grads):
            torch.testing.assert_close(grad, ref, atol=1e-5, rtol=1e-4)
        assert bool((values[1] > 0).all())


@pytest.mark.parametrize("device", DEVICES)
def test_entropy_under_bf16_autocast_is_taken_in_float32(device):
    """bf16 q, k (what autocast hands the kernels): the entropy and its gradient match the float32
    rows of the same bf16 values to 1e-4, where bf16 rows would miss by about 1e-2."""
    torch.manual_seed(0)
    b, h, t, d, visible = 2, 2, 50, 32, 20
    q, k = (torch.randn(b, h, t, d, device=device, requires_grad=True) for _ in range(2))
    weights = torch.randn(b, h, t - visible, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        entropy = masked_row_entropy(q.bfloat16(), k.bfloat16(), visible, d ** -0.5)
    assert entropy.dtype == torch.float32
    grads = torch.autograd.grad((entropy * weights).sum(), (q, k))
    qr, kr = q.bfloat16().float(), k.bfloat16().float()
    _, reference, _ = explicit_rows(qr, kr, kr, visible, False)
    ref_grads = torch.autograd.grad((reference * weights).sum(), (q, k))
    torch.testing.assert_close(entropy, reference, atol=1e-4, rtol=1e-4)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, atol=1e-4, rtol=1e-3)
    _, in_bf16, _ = explicit_rows(q.bfloat16(), k.bfloat16(), k.bfloat16(), visible, False)
    assert (in_bf16.float() - reference).abs().max() > 1e-3  # what the float32 pass is for


PARTS = {"hard recalibration": ["mto.singularity_weight=0", "mto.entropy_weight=0"],
         "L_rec, 2 of 6 layers recalibrated": ["mto.recalibrated_layers=2", "mto.recalibration_weight=0.1"],
         "L_sing": ["mto.hard_recalibration=false", "mto.entropy_weight=0"],
         "L_ent": ["mto.hard_recalibration=false", "mto.singularity_weight=0"],
         "all defaults": [],
         "every part, L_rec in layer 2": ["mto.recalibrated_layers=1", "mto.depth=2", "mto.recalibration_weight=0.1"]}


def _paths(method, part, autocast):
    """(output, parameter gradients) of the visible-first and token-order paths of one model."""
    torch.manual_seed(0)
    config = small_config(method, *PARTS[part])
    model = build_model(config.model, config.mto)
    images, mask = torch.rand(4, 1, 28, 28), make_mask(4, 7, config.mask.ratio, 3)
    results = []
    for path in (VisibleFirst(hidden_count(7, config.mask)), TokenOrder()):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(images, mask, path=path)
        assert out.trace.path == path.name and (out.trace.rows is None) == (path.name == "token-order")
        out.loss.backward()
        results.append((out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    return results


@pytest.mark.parametrize("part", list(PARTS))
@pytest.mark.parametrize("method", ["simmim-mto", "mae-mto", "conmim-mto", "bootmae-mto"])
def test_visible_first_path_gives_the_token_order_losses_and_gradients(method, part):
    """float32: the fused rows (what training runs) against the explicit full maps, to 1e-5."""
    (fast, fast_grads), (full, full_grads) = _paths(method, part, autocast=False)
    assert fast.mto.keys() == full.mto.keys()
    for name in fast.mto:
        assert fast.mto[name].item() == pytest.approx(full.mto[name].item(), abs=1e-5), name
    torch.testing.assert_close(fast.pred, full.pred, atol=1e-5, rtol=1e-5)
    assert fast_grads.keys() == full_grads.keys()
    for name in fast_grads:
        torch.testing.assert_close(fast_grads[name], full_grads[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("method", ["simmim-mto", "mae-mto", "conmim-mto", "bootmae-mto"])
def test_visible_first_path_under_bf16_autocast(method):
    """bf16 autocast, every part on (layer 1 recalibrated, L_rec in layer 2): losses to 2%, gradients to 8% of
    each tensor's largest entry (bf16's sums, and so a LayerNorm's gradient, change with the thread count)."""
    (fast, fast_grads), (full, full_grads) = _paths(method, "every part, L_rec in layer 2", autocast=True)
    assert set(fast.mto) == {"rec", "sing", "ent"}
    for name in fast.mto:
        assert fast.mto[name].item() == pytest.approx(full.mto[name].item(), rel=2e-2, abs=1e-4), name
    assert fast.loss.item() == pytest.approx(full.loss.item(), rel=2e-2)
    for name in fast_grads:
        scale = full_grads[name].abs().max().item()
        torch.testing.assert_close(fast_grads[name], full_grads[name], atol=8e-2 * scale, rtol=0, msg=name)
