"""Masked Token Optimization (MTO) as a plug-in for any MIM objective with mask tokens.

The formulas are those of MTO-SPEC.md ("[ours]": this project's concrete reading of the
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


def recalibration_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Per-layer L_rec: attn (B, H, T, T), token_mask (B, T) -> mean visible->masked mass."""
    mass = (attn * token_mask[:, None, None, :].to(attn.dtype)).sum(-1)  # (B, H, T)
    visible = (~token_mask)[:, None, :].expand_as(mass)
    return mass[visible].mean()


def singularity_loss(hidden: torch.Tensor, token_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-layer L_sing^l: hidden (B, T, D), token_mask (B, T) -> affinity mass masked->visible."""
    h = F.normalize(hidden.float(), dim=-1)
    sim = h @ h.transpose(1, 2) / tau  # (B, T, T)
    eye = torch.eye(sim.shape[1], dtype=torch.bool, device=sim.device)
    p = sim.masked_fill(eye, float("-inf")).softmax(dim=-1)
    mass = (p * (~token_mask)[:, None, :].to(p.dtype)).sum(-1)  # (B, T)
    return mass[token_mask].mean()


def entropy_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """Per-layer L_ent: attn (B, H, T, T) -> mean normalized row entropy of masked queries."""
    a = attn.float()
    # clamp, not xlogy: xlogy's gradient at the exact zeros of recalibrated rows is NaN
    entropy = -(a * a.clamp_min(1e-12).log()).sum(-1) / math.log(attn.shape[-1])
    masked = token_mask[:, None, :].expand_as(entropy)
    return entropy[masked].mean()


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
    if config.recalibration_weight > 0 and depth > 0:
        losses["rec"] = torch.stack([recalibration_loss(trace.attn[l], mask) for l in layers]).mean()
    if config.entropy_weight > 0 and depth > 0:
        losses["ent"] = torch.stack([entropy_loss(trace.attn[l], mask) for l in layers]).mean()
    if config.singularity_weight > 0:
        terms = [w * singularity_loss(trace.hidden[l], mask, config.tau)
                 for l, w in enumerate(depth_weights(depth))]
        losses["sing"] = torch.stack(terms).sum()
    return losses


def total_loss(mim: torch.Tensor, losses: dict[str, torch.Tensor], config: MTOConfig) -> torch.Tensor:
    """L = L_MIM + lambda_sing L_sing + lambda_ent L_ent + lambda_rec L_rec."""
    weights = {"rec": config.recalibration_weight, "sing": config.singularity_weight,
               "ent": config.entropy_weight}
    return mim + sum((weights[name] * value for name, value in losses.items()), mim.new_zeros(()))
