"""Masked Token Optimization (MTO): a plug-in for any MIM objective with mask tokens.

This project's reading of the paper's weight recalibration, data-singularity and entropy terms
(made without the paper's full text: docs/mto-spec.md). Tokens t = 1..T of a sample, M masked,
V visible ([CLS] is visible); A^l (B, H, T, T) attention of layer l (rows = queries), h^l (B, T, D)
output of layer l, h^0 the input with position; the layers of SimMIM's encoder, MAE's decoder.

1. Hard recalibration: logits (i in V, j in M) = -inf in the first ``recalibrated_layers``.
2. L_rec  = mean_{l=1..K, heads, i in V} sum_{j in M} A^l_ij
3. L_sing = sum_{l=0..K} w_l mean_{i in M} sum_{j in V} p_ij,  p_ij = softmax_{j != i}(cos(h^l_i, h^l_j) / tau),
            w_l = (K + 1 - l) / sum_m (K + 1 - m)
4. L_ent  = mean_{l=1..K, heads, i in M} H_i / log T,  H_i = -sum_j A^l_ij log A^l_ij
5. L = L_MIM + lambda_sing L_sing + lambda_ent L_ent + lambda_rec L_rec,  K = ``depth``

Each term reads only the rows it needs (``trace.rows``) on the visible-first path, through fused
kernels (:mod:`mto_core.mto.attention_stats`); on the token-order path, full maps
(:func:`mto_core.models.vit.run_blocks`). Both forms: :mod:`mto_core.mto.terms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import MTOConfig
from .records import TokenTrace
from .terms import entropy_loss, recalibration_loss, singularity_loss, singularity_rows


def default_depth(mask_layers: int) -> int:
    """K: half the layers that see mask tokens, rounded up."""
    return math.ceil(mask_layers / 2)


def depth_weights(k: int) -> list[float]:
    """w_l for l = 0..K, proportional to K + 1 - l and summing to 1 (early layers weigh most)."""
    return [(k + 1 - layer) / sum(range(1, k + 2)) for layer in range(k + 1)]


@dataclass(frozen=True)
class MTOPlan:
    """Which layers each part touches: recalibrated 1..R; L_ent's masked rows in layers 1..K, L_rec's
    visible rows in R+1..K; L_sing's h^l for l = 0..K (empty where the part is off). The default
    touches nothing (a stack without MTO)."""

    recalibrated: int = 0
    depth: int = 0
    row_layers: frozenset[int] = frozenset()
    visible_row_layers: frozenset[int] = frozenset()
    hidden_layers: frozenset[int] = frozenset()

    @property
    def reads_rows(self) -> bool:
        """Whether any loss reads attention rows or hidden states."""
        return bool(self.row_layers or self.visible_row_layers or self.hidden_layers)


def plan(config: MTOConfig, mask_layers: int) -> MTOPlan:
    """Resolve the config's nulls; ask only for what the losses switched on read."""
    k = default_depth(mask_layers) if config.depth is None else config.depth
    recalibrated = mask_layers if config.recalibrated_layers is None else config.recalibrated_layers
    recalibrated = recalibrated if config.hard_recalibration else 0
    layers = frozenset(range(1, k + 1))
    unrecalibrated = frozenset(range(recalibrated + 1, k + 1))  # L_rec^l is 0 where recalibrated
    return MTOPlan(recalibrated, k, layers if config.entropy_weight > 0 else frozenset(),
                   unrecalibrated if config.recalibration_weight > 0 else frozenset(),
                   frozenset(range(k + 1)) if config.singularity_weight > 0 else frozenset())


def mto_losses(trace: TokenTrace, config: MTOConfig, depth: int) -> dict[str, torch.Tensor]:
    """The MTO terms switched on, {'rec', 'sing', 'ent'}, from ``trace.rows`` or full maps."""
    mask, rows, on = trace.token_mask, trace.rows, {}
    if mask is None:
        raise ValueError("MTO losses need a trace of a masked pass (token_mask is missing)")
    layers, weights = range(1, depth + 1), depth_weights(depth)
    if rows is not None:  # in recalibrated layers the visible rows' mass on masked keys is 0
        on["rec"] = lambda: sum(rows.mass[l].mean() if l in rows.mass else 0 for l in layers) / depth
        on["ent"] = lambda: sum(rows.entropy[l].mean() for l in layers) / depth / math.log(mask.shape[1])
        on["sing"] = lambda: sum(w * singularity_rows(rows.hidden[l], rows.visible, config.tau)
                                 for l, w in enumerate(weights))
    else:
        on["rec"] = lambda: sum(recalibration_loss(trace.attn[l], mask) if l in trace.attn else 0
                                for l in layers) / depth
        on["ent"] = lambda: entropy_loss(torch.stack([trace.attn[l] for l in layers]), mask).mean()
        on["sing"] = lambda: (torch.tensor(weights, device=mask.device) * singularity_loss(
            torch.stack([trace.hidden[l] for l in range(depth + 1)]), mask, config.tau)).sum()
    wanted = {"rec": config.recalibration_weight > 0 and depth, "ent": config.entropy_weight > 0 and depth,
              "sing": config.singularity_weight > 0}
    return {name: torch.as_tensor(term(), dtype=torch.float32, device=mask.device)
            for name, term in on.items() if wanted[name]}


def total_loss(mim: torch.Tensor, losses: dict[str, torch.Tensor], config: MTOConfig) -> torch.Tensor:
    """L = L_MIM + lambda_sing L_sing + lambda_ent L_ent + lambda_rec L_rec."""
    weights = {"rec": config.recalibration_weight, "sing": config.singularity_weight,
               "ent": config.entropy_weight}
    return mim + sum((weights[name] * value for name, value in losses.items()), mim.new_zeros(()))
