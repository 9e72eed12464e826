"""Time the MTO loss terms as the library computes them against a direct per-layer transcription
of docs/mto-spec.md (F.normalize, one layer at a time), on the tiny preset's shapes, and check that
both give the same value.

Usage: python benchmarks/loss_kernels.py [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from mto_core.masking import make_mask
from mto_core.mto import depth_weights
from mto_core.mto_terms import singularity_loss


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
    result = {"shape": "4 layers x (128, 50, 128)", "value": lib.item(),
              "per_layer_reference_ms": 1000 * time_fn(per_layer_reference, hidden, mask),
              "library_ms": 1000 * time_fn(library, hidden, mask)}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"L_sing forward+backward, {result['shape']}: per-layer reference "
              f"{result['per_layer_reference_ms']:.1f} ms, library {result['library_ms']:.1f} ms")


if __name__ == "__main__":
    main()
