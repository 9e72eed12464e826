"""Masked Token Optimization (MTO) as a plug-in for any MIM objective with mask tokens.

Formulas of docs/mto-spec.md (this project's reading of the paper's weight recalibration,
data-singularity and entropy terms, whose exact formulas are not public). Tokens t = 1..T of a
sample, M masked, V visible ([CLS] is visible); A^l (B, H, T, T) attention of layer l (rows =
queries), h^l (B, T, D) output of layer l, h^0 the input with position. The layers are SimMIM's
encoder's and MAE's decoder's (where the mask tokens are). K = ``depth``.

1. Hard recalibration: logits (i in V, j in M) = -inf in the first ``recalibrated_layers``.
2. L_rec  = mean_{l=1..K, heads, i in V} sum_{j in M} A^l_ij
3. L_sing = sum_{l=0..K} w_l mean_{i in M} sum_{j in V} p_ij,  p_ij = softmax_{j != i}(cos(h^l_i, h^l_j) / tau),
            w_l = (K + 1 - l) / sum_m (K + 1 - m)
4. L_ent  = mean_{l=1..K, heads, i in M} H_i / log T,  H_i = -sum_j A_ij log A_ij
            (log A from the attention's own log-softmax of the masked rows: no clamp, no log pass)
5. L = L_MIM + lambda_sing L_sing + lambda_ent L_ent + lambda_rec L_rec

Each term reads only the rows it needs: masked queries (L_ent, L_sing), visible queries (L_rec),
from a visible-first pass (``trace.rows``, :func:`mto_core.vit.run_blocks`). When the samples
hide different numbers of patches the pass is traced in full and the ``*_loss`` functions below
compute the same terms from full maps (tests/test_mto.py holds the two equal).
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
    return [(k + 1 - layer) / sum(range(1, k + 2)) for layer in range(k + 1)]


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` (..., B, T) over the (B, T) positions where ``weights`` is 1."""
    return (values * weights).sum((-2, -1)) / weights.sum()


def recalibration_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """L_rec^l from full maps: attn ([L,] B, H, T, T), token_mask (B, T) -> ([L])."""
    masked = token_mask.to(attn.dtype)
    return _masked_mean((attn * masked[:, None, None, :]).sum(-1).mean(-2), 1 - masked)


def singularity_loss(hidden: torch.Tensor, token_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """L_sing^l from full similarity: hidden ([L,] B, T, D), token_mask (B, T) -> ([L])."""
    h = hidden.float()
    gram = h @ h.transpose(-1, -2)
    inv = gram.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).rsqrt()
    eye = torch.eye(gram.shape[-1], dtype=torch.bool, device=gram.device)
    p = (gram * (inv.unsqueeze(-1) * (inv / tau).unsqueeze(-2))).masked_fill(eye, float("-inf")).softmax(-1)
    masked = token_mask.to(p.dtype)
    return _masked_mean((p @ (1 - masked).unsqueeze(-1)).squeeze(-1), masked)


def entropy_loss(attn: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
    """L_ent^l from full maps: attn ([L,] B, H, T, T) -> normalized entropy of masked rows ([L])."""
    a = attn.float()  # clamp, not xlogy: xlogy's gradient at recalibrated zeros is NaN
    entropy = -(a * a.clamp_min(1e-12).log()).sum(-1).mean(-2) / math.log(attn.shape[-1])
    return _masked_mean(entropy, token_mask.to(entropy.dtype))


def _singularity_rows(h: torch.Tensor, visible: int, tau: float) -> torch.Tensor:
    """L_sing^l of visible-first h (B, T, D): one Gram matrix, then softmax over the masked rows only."""
    h = h.float()
    gram = h @ h.transpose(1, 2)
    inv = gram.diagonal(dim1=-2, dim2=-1).clamp_min(1e-12).rsqrt()
    logits = gram[:, visible:] * (inv[:, visible:, None] * (inv / tau)[:, None, :])
    self_ = F.pad(torch.eye(logits.shape[1], dtype=torch.bool, device=h.device), (visible, 0))
    return logits.masked_fill(self_, float("-inf")).softmax(-1)[..., :visible].sum(-1).mean()


def _entropy_rows(log_probs: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Mean normalized entropy of softmax rows (..., T) from their log-probabilities and probabilities."""
    return -(probs.float() * log_probs.float()).sum(-1).mean() / math.log(log_probs.shape[-1])


@dataclass(frozen=True)
class MTOPlan:
    """Which layers each MTO part touches, for a stack of ``mask_layers`` layers."""

    recalibrated: int
    depth: int
    row_layers: frozenset[int]  # masked-query rows: L_ent
    visible_row_layers: frozenset[int]  # visible-query rows: L_rec
    hidden_layers: frozenset[int]  # h^l: L_sing


def plan(config: MTOConfig, mask_layers: int) -> MTOPlan:
    """Resolve the config's nulls; ask only for what the losses switched on read."""
    k = default_depth(mask_layers) if config.depth is None else config.depth
    recalibrated = 0
    if config.hard_recalibration:
        recalibrated = mask_layers if config.recalibrated_layers is None else config.recalibrated_layers
    layers = frozenset(range(1, k + 1))
    return MTOPlan(recalibrated, k, layers if config.entropy_weight > 0 else frozenset(),
                   layers if config.recalibration_weight > 0 else frozenset(),
                   frozenset(range(k + 1)) if config.singularity_weight > 0 else frozenset())


def mto_losses(trace: TokenTrace, config: MTOConfig, depth: int) -> dict[str, torch.Tensor]:
    """The MTO terms switched on, {'rec', 'sing', 'ent'}, from ``trace.rows`` or full maps."""
    mask, rows, losses = trace.token_mask, trace.rows, {}
    if mask is None:
        raise ValueError("MTO losses need a trace of a masked pass (token_mask is missing)")
    layers, zero = range(1, depth + 1), mask.new_zeros((), dtype=torch.float32)
    if rows is not None:
        if config.recalibration_weight > 0 and depth:
            losses["rec"] = sum((p[..., rows.visible:].sum(-1).mean() if (p := rows.visible_probs.get(l)) is not None
                                 else zero for l in layers), zero) / depth
        if config.entropy_weight > 0 and depth:
            losses["ent"] = sum((_entropy_rows(*rows.masked[l]) for l in layers), zero) / depth
        if config.singularity_weight > 0:
            losses["sing"] = sum((w * _singularity_rows(rows.hidden[l], rows.visible, config.tau)
                                  for l, w in enumerate(depth_weights(depth))), zero)
        return losses
    if depth and (config.recalibration_weight > 0 or config.entropy_weight > 0):
        attn = torch.stack([trace.attn[l] for l in layers])
        if config.recalibration_weight > 0:
            losses["rec"] = recalibration_loss(attn, mask).mean()
        if config.entropy_weight > 0:
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
