"""Masked Token Optimization (MTO) as a plug-in for any MIM objective with mask tokens.

The formulas are those of docs/mto-spec.md (ours: this project's concrete reading of the
paper's weight recalibration, data-singularity and entropy terms, whose exact formulas are not
public). Notation: tokens t = 1..T of one sample, M = masked set, V = visible set ([CLS] is
visible), A^l (B, H, T, T) post-softmax attention of layer l (rows = queries), h^l (B, T, D)
output of layer l, h^0 = input tokens with position. In SimMIM the layers are the encoder's,
in MAE the decoder's (where the mask tokens live).

1. Hard recalibration: logits (i in V, j in M) = -inf in the first ``recalibrated_layers``
   layers (see :func:`mto_core.vit.visible_cannot_see_masked`); masked queries see every key.
2. L_rec   = mean_{l, heads, samples, i in V} sum_{j in M} A^l_ij                (layers 1..K)
3. L_sing  = sum_{l=0..K} w_l L_sing^l,  w_l = (K + 1 - l) / sum_{m=0..K} (K + 1 - m)
   L_sing^l = mean_{i in M} sum_{j in V} p_ij,  p_ij = softmax_{j != i}(cos(h^l_i, h^l_j) / tau)
4. L_ent   = mean_{l, heads, i in M} H_i,  H_i = -sum_j A^l_ij log A^l_ij / log(T) (layers 1..K)
5. L = L_MIM + lambda_sing L_sing + lambda_ent L_ent + lambda_rec L_rec
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import MTOConfig
from .vit import TokenTrace


def default_depth(mask_layers: int) -> int:
    """K: half the layers that see mask tokens, rounded up."""
    return math.ceil(mask_layers / 2)


def depth_weights(k: int) -> list[float]:
    """w_l for l = 0..K, proportional to K + 1 - l and summing to 1 (early layers weigh most)."""
    raw = [k + 1 - layer for layer in range(k + 1)]
    return [r / sum(raw) for r in raw]


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (..., B, T) over the (B, T) positions where ``weights`` is 1."""
    return (values * weights).sum((-2, -1)) / weights.sum()


def recalibration_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """L_rec^l: attn ([L,] B, H, T, T), token_mask (B, T) -> mean visible->masked mass ([L])."""
    masked = token_mask.to(attn.dtype)
    mass = (attn * masked[:, None, None, :]).sum(-1).mean(-2)  # ([L,] B, T), mean over heads
    return _masked_mean(mass, 1 - masked)


def singularity_loss(hidden: torch.Tensor, token_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """L_sing^l: hidden ([L,] B, T, D), token_mask (B, T) -> affinity mass masked->visible ([L])."""
    h = hidden.float()
    gram = h @ h.transpose(-1, -2)  # ([L,] B, T, T)
    # cosines from the Gram matrix: scaling T x T entries is cheaper than normalizing T x D
    inv_norm = gram.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).rsqrt()
    logits = gram * (inv_norm.unsqueeze(-1) * (inv_norm / tau).unsqueeze(-2))
    eye = torch.eye(gram.shape[-1], dtype=torch.bool, device=gram.device)
    p = logits.masked_fill(eye, float("-inf")).softmax(dim=-1)
    masked = token_mask.to(p.dtype)
    mass = p @ (1 - masked).unsqueeze(-1)  # ([L,] B, T, 1)
    return _masked_mean(mass.squeeze(-1), masked)


def entropy_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """L_ent^l: attn ([L,] B, H, T, T) -> mean normalized row entropy of masked queries ([L])."""
    a = attn.float()
    # clamp, not xlogy: xlogy's gradient at the exact zeros of recalibrated rows is NaN
    entropy = -(a * a.clamp_min(1e-12).log()).sum(-1).mean(-2) / math.log(attn.shape[-1])
    return _masked_mean(entropy, token_mask.to(entropy.dtype))


@dataclass(frozen=True)
class MTOPlan:
    """Which layers each MTO part touches, for a stack of ``mask_layers`` layers."""

    recalibrated: int
    depth: int
    probs_layers: frozenset[int]
    hidden_layers: frozenset[int]


def plan(config: MTOConfig, mask_layers: int) -> MTOPlan:
    """Resolve the config's nulls; ask for attention probabilities only where a loss needs them."""
    k = default_depth(mask_layers) if config.depth is None else config.depth
    recalibrated = 0
    if config.hard_recalibration:
        recalibrated = mask_layers if config.recalibrated_layers is None else config.recalibrated_layers
    needs_probs = config.entropy_weight > 0 or config.recalibration_weight > 0
    probs = frozenset(range(1, k + 1)) if needs_probs else frozenset()
    hidden = frozenset(range(k + 1)) if config.singularity_weight > 0 else frozenset()
    return MTOPlan(recalibrated, k, probs, hidden)


def mto_losses(trace: TokenTrace, config: MTOConfig, depth: int) -> dict[str, torch.Tensor]:
    """The weighted-in MTO terms from a trace: {'rec', 'sing', 'ent'} for the parts switched on.

    ``trace`` must hold h^0..h^K (for L_sing) and A^1..A^K (for L_ent, L_rec), K = ``depth``.
    """
    mask = trace.token_mask
    if mask is None:
        raise ValueError("MTO losses need a trace of a masked pass (token_mask is missing)")
    losses: dict[str, torch.Tensor] = {}
    layers = range(1, depth + 1)
    needs_attn = depth > 0 and (config.recalibration_weight > 0 or config.entropy_weight > 0)
    # one stacked computation over the layers: far fewer small kernels than a loop
    attn = torch.stack([trace.attn[l] for l in layers]) if needs_attn else None
    if config.recalibration_weight > 0 and attn is not None:
        losses["rec"] = recalibration_loss(attn, mask).mean()
    if config.entropy_weight > 0 and attn is not None:
        losses["ent"] = entropy_loss(attn, mask).mean()
    if config.singularity_weight > 0:
        hidden = torch.stack([trace.hidden[l] for l in range(depth + 1)])
        weights = torch.tensor(depth_weights(depth), device=hidden.device)
        losses["sing"] = (weights * singularity_loss(hidden, mask, config.tau)).sum()
    return losses


def total_loss(mim: torch.Tensor, losses: dict[str, torch.Tensor], config: MTOConfig) -> torch.Tensor:
    """L = L_MIM + lambda_sing L_sing + lambda_ent L_ent + lambda_rec L_rec."""
    weights = {"rec": config.recalibration_weight, "sing": config.singularity_weight,
               "ent": config.entropy_weight}
    return mim + sum((weights[name] * value for name, value in losses.items()), mim.new_zeros(()))
