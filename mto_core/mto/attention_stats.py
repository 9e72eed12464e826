"""How MTO reads attention without forming it: fused kernels over visible-first tokens.

Tokens of each sample are visible-first: the first V of T tokens are [CLS] and the visible
patches, the M = T - V after them masked (:func:`mto_core.models.vit.run_blocks`). q, k, v are
(B, H, T, d); s_ij = scale q_i . k_j are the logits, p_ij = softmax_j(s_ij) the attention.
No (T, T) map is formed; everything comes from ``scaled_dot_product_attention`` or its
log-sum-exp form, on the CPU and on CUDA alike:

1. Hard recalibration (visible queries do not see masked keys) is a block structure:
   visible queries over visible keys, masked queries over all keys. Two mask-free kernel calls;
   the (visible query, masked key) block is skipped, not masked (on the CPU, whose flash kernel
   takes a mask cheaply, one call with the block masked).
2. The entropy of a masked query's row,

       H_i = -sum_j p_ij log p_ij = lse_i - E_p[s]_i,
       lse_i = log sum_j exp s_ij,  E_p[s]_i = sum_j p_ij s_ij = scale q_i . (P K)_i,

   from one kernel pass of the masked queries with the keys as values, which returns P K and
   lse together. The pass runs in float32 whatever the autocast dtype: H is a difference of two
   numbers of the logits' size, and bf16 would round each of them by more than H's precision.
   Its gradient: lse and the q_i of the product are detached, and the values are detached keys,
   so H's gradient flows through the softmax alone, -p_ij (s_ij - E_p[s]_i); that is H's whole
   gradient (lse's own share cancels the product's direct terms).
3. A visible query's attention mass on masked keys (L_rec), sum_{j in M} p_ij = (P u)_i,
   from one kernel pass with the masked-key indicator u as the value.

tests/test_attention_stats.py holds each equal to the explicit rows, values and gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: int,
           recalibrated: bool) -> torch.Tensor:
    """Attention output (B, H, T, d) of visible-first q, k, v; ``recalibrated``: visible queries
    attend over the first ``visible`` keys only. On CUDA (and elsewhere) as two blocks
    (:func:`attend_blocks`), the masked-key block skipped; on the CPU as one call of its flash
    kernel with an additive mask, which that kernel takes at less cost than two calls and their
    slices (docs/performance.md). Both are tested equal to the explicit rows."""
    if not recalibrated:
        return F.scaled_dot_product_attention(q, k, v)
    if q.device.type == "cpu":
        t = q.shape[-2]
        blocked = (torch.arange(t, device=q.device) < visible)[:, None] & (torch.arange(t, device=q.device) >= visible)
        bias = torch.zeros(t, t, dtype=q.dtype, device=q.device).masked_fill(blocked, float("-inf"))
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias,
                                                                           scale=q.shape[-1] ** -0.5)[0]
    return attend_blocks(q, k, v, visible)


def attend_blocks(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: int) -> torch.Tensor:
    """Hard-recalibrated attention as a block structure: the first ``visible`` queries over the
    first ``visible`` keys, the rest over all keys; two mask-free kernel calls."""
    seen = F.scaled_dot_product_attention(q[:, :, :visible], k[:, :, :visible], v[:, :, :visible])
    return torch.cat([seen, F.scaled_dot_product_attention(q[:, :, visible:], k, v)], dim=2)


def attention_with_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax(scale q k^T) v, log-sum-exp of each row (B, H, Tq)) from the device's fused kernel:
    CPU flash attention, CUDA memory-efficient attention (both take float32); elsewhere written out."""
    if q.device.type == "cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, scale=scale)
    if q.device.type == "cuda":
        out, lse, _, _ = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True,
                                                                                scale=scale)
        return out, lse[..., :q.shape[-2]]  # the kernel pads the rows of lse to its tile
    logits = scale * q @ k.transpose(-2, -1)
    return logits.softmax(-1) @ v, logits.logsumexp(-1)


def masked_row_entropy(q: torch.Tensor, k: torch.Tensor, visible: int, scale: float) -> torch.Tensor:
    """H (B, H, M) in nats of the rows of the queries after the first ``visible`` over all keys,
    lse - E_p[s] in float32 (module docstring, item 2)."""
    with torch.autocast(q.device.type, enabled=False):
        queries, keys = q[:, :, visible:].float(), k.float()
        expected_keys, lse = attention_with_lse(queries, keys, keys.detach(), scale)
        return lse.detach() - scale * (queries.detach() * expected_keys).sum(-1)


def mass_on_masked(q: torch.Tensor, k: torch.Tensor, visible: int) -> torch.Tensor:
    """(B, H, V): each of the first ``visible`` queries' attention mass on the keys after them
    (module docstring, item 3)."""
    b, h, t, d = k.shape
    indicator = (torch.arange(t, device=k.device) >= visible).to(k.dtype)[:, None].expand(t, d).contiguous()
    # (T, d) rows contiguous, as the fused kernels want; broadcast over batch and heads without a copy
    return F.scaled_dot_product_attention(q[:, :, :visible], k, indicator.expand(b, h, t, d))[..., 0]
