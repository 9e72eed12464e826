"""How MTO's terms (:mod:`mto_core.mto.plugin`) are computed, in two forms that give the same values.

From full maps, token order (the reference; also what analysis reads and what training uses when
the samples hide different numbers of patches): A^l ([L,] B, H, T, T), h^l ([L,] B, T, D) and the
token mask (B, T). From the rows a visible-first pass leaves (:class:`mto_core.mto.records.LossRows`):
each sample's visible tokens first, then its masked ones, the same count in every sample, so each
term reads only the rows it needs. tests/test_mto.py holds the two forms equal, values and gradients.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class _Gram(torch.autograd.Function):
    """G = h h^T for h (..., T, D). Autograd would take G's gradient back through both factors (two
    products and a sum); G is symmetric in h, so one product does: dh = (dG + dG^T) h."""

    @staticmethod
    def forward(ctx, h: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(h)
        return h @ h.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (h,) = ctx.saved_tensors  # grad is bf16 where autocast made G so; the product stays in h's dtype
        return (grad + grad.transpose(-1, -2)).to(h.dtype) @ h


def gram(h: torch.Tensor) -> torch.Tensor:
    """h h^T over the last two dims, with a one-product backward (:class:`_Gram`)."""
    return _Gram.apply(h)


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (..., B, T) over the (B, T) positions where ``weights`` is 1."""
    return (values * weights).sum((-2, -1)) / weights.sum()


def recalibration_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """L_rec^l from full maps: attn ([L,] B, H, T, T), token_mask (B, T) -> ([L])."""
    masked = token_mask.to(attn.dtype)
    return _masked_mean((attn * masked[:, None, None, :]).sum(-1).mean(-2), 1 - masked)


def singularity_loss(hidden: torch.Tensor, token_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """L_sing^l from the full similarity: hidden ([L,] B, T, D), token_mask (B, T) -> ([L])."""
    g = gram(hidden.float())
    inv = g.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).rsqrt()
    eye = torch.eye(g.shape[-1], dtype=torch.bool, device=g.device)
    p = (g * (inv.unsqueeze(-1) * (inv / tau).unsqueeze(-2))).masked_fill(eye, float("-inf")).softmax(-1)
    masked = token_mask.to(p.dtype)
    return _masked_mean((p @ (1 - masked).unsqueeze(-1)).squeeze(-1), masked)


def entropy_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """L_ent^l from full maps: attn ([L,] B, H, T, T) -> normalized entropy of masked rows ([L])."""
    a = attn.float()  # clamp, not xlogy: xlogy's gradient at recalibrated zeros is NaN
    entropy = -(a * a.clamp_min(1e-12).log()).sum(-1).mean(-2) / math.log(attn.shape[-1])
    return _masked_mean(entropy, token_mask.to(entropy.dtype))


def singularity_rows(h: torch.Tensor, visible: int, tau: float) -> torch.Tensor:
    """L_sing^l of visible-first h (B, T, D): one Gram matrix, the softmax of its masked rows only."""
    g = gram(h.float())
    inv = g.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).rsqrt()
    logits = g[:, visible:] * (inv[:, visible:, None] * (inv / tau)[:, None, :])
    self_ = F.pad(torch.eye(logits.shape[1], dtype=torch.bool, device=h.device), (visible, 0))
    return logits.masked_fill(self_, float("-inf")).softmax(-1)[..., :visible].sum(-1).mean()
