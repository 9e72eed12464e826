"""Time L_sing, forward and backward, on the tiny preset's shapes (K = 3: four layers of
(128, 50, 128) features, 60% masked):

- from full maps: the library's stacked form against a direct per-layer transcription of
  docs/mto-spec.md (F.normalize, one layer at a time);
- from the rows a visible-first pass leaves (what training runs): the Gram matrix with its
  one-product backward (mto_core.mto.terms.gram) against autograd's backward of h @ h^T, and
  against computing only the masked rows of the Gram matrix, (B, M, T).

Each pair is checked to give the same value.

Usage: python benchmarks/loss_kernels.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from mto_core.data.masking import make_mask
from mto_core.mto.plugin import depth_weights
import mto_core.mto.terms as terms
from mto_core.mto.terms import singularity_loss, singularity_rows


def per_layer_reference(hidden: list[torch.Tensor], token_mask: torch.Tensor, tau: float) -> torch.Tensor:
    """L_sing, one layer at a time, cosines from normalized features."""
    total = hidden[0].new_zeros(())
    for w, h in zip(depth_weights(len(hidden) - 1), hidden):
        h = F.normalize(h, dim=-1)
        sim = h @ h.transpose(1, 2) / tau
        eye = torch.eye(sim.shape[1], dtype=torch.bool)
        p = sim.masked_fill(eye, float("-inf")).softmax(-1)
        mass = (p * (~token_mask)[:, None, :].float()).sum(-1)
        total = total + w * mass[token_mask].mean()
    return total


def library(hidden: list[torch.Tensor], token_mask: torch.Tensor, tau: float) -> torch.Tensor:
    weights = torch.tensor(depth_weights(len(hidden) - 1))
    return (weights * singularity_loss(torch.stack(hidden), token_mask, tau)).sum()


def rows(hidden: list[torch.Tensor], visible: int, tau: float) -> torch.Tensor:
    return sum(w * singularity_rows(h, visible, tau) for w, h in zip(depth_weights(len(hidden) - 1), hidden))


def rows_autograd_gram(hidden: list[torch.Tensor], visible: int, tau: float) -> torch.Tensor:
    kept, terms.gram = terms.gram, lambda h: h @ h.transpose(-1, -2)
    try:
        return rows(hidden, visible, tau)
    finally:
        terms.gram = kept


def rows_masked_gram(hidden: list[torch.Tensor], visible: int, tau: float) -> torch.Tensor:
    """The rows form computing only the masked rows of the Gram matrix, (B, M, T), norms from h."""
    total = hidden[0].new_zeros(())
    for w, h in zip(depth_weights(len(hidden) - 1), hidden):
        inv = (h * h).sum(-1).clamp_min(1e-12).rsqrt()
        logits = (h[:, visible:] @ h.transpose(1, 2)) * (inv[:, visible:, None] * (inv / tau)[:, None, :])
        self_ = F.pad(torch.eye(logits.shape[1], dtype=torch.bool), (visible, 0))
        total = total + w * logits.masked_fill(self_, float("-inf")).softmax(-1)[..., :visible].sum(-1).mean()
    return total


def time_fn(fn, hidden, mask, rounds: int = 20) -> float:
    times = []
    for _ in range(rounds + 3):
        start = time.perf_counter()
        fn(hidden, mask, 0.1).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    mask = F.pad(make_mask(128, 7, 0.6, 0), (1, 0))
    hidden = [torch.randn(128, 50, 128, requires_grad=True) for _ in range(4)]  # h^0..h^3 (K = 3)
    with torch.no_grad():
        ref, lib = per_layer_reference(hidden, mask, 0.1), library(hidden, mask, 0.1)
    assert torch.allclose(ref, lib, atol=1e-5), (ref, lib)
    visible = int((~mask[0]).sum())
    with torch.no_grad():
        one, two = rows(hidden, visible, 0.1), rows_autograd_gram(hidden, visible, 0.1)
        three = rows_masked_gram(hidden, visible, 0.1)
    assert torch.allclose(one, two, atol=1e-6) and torch.allclose(one, three, atol=1e-6), (one, two, three)
    result = {"shape": "4 layers x (128, 50, 128)", "value": lib.item(),
              "per_layer_reference_ms": 1000 * time_fn(per_layer_reference, hidden, mask),
              "library_ms": 1000 * time_fn(library, hidden, mask),
              "rows_autograd_gram_ms": 1000 * time_fn(rows_autograd_gram, hidden, visible),
              "rows_ms": 1000 * time_fn(rows, hidden, visible),
              "rows_masked_gram_ms": 1000 * time_fn(rows_masked_gram, hidden, visible)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"L_sing forward+backward, {result['shape']}: from full maps, per-layer reference "
              f"{result['per_layer_reference_ms']:.1f} ms, library {result['library_ms']:.1f} ms; from the "
              f"visible-first rows, autograd's Gram backward {result['rows_autograd_gram_ms']:.1f} ms, "
              f"one-product Gram backward {result['rows_ms']:.1f} ms, only the masked rows of the Gram matrix "
              f"{result['rows_masked_gram_ms']:.1f} ms")


if __name__ == "__main__":
    main()
