"""Time a plain PyTorch step (mto_core/bench/plain_loop.py: SimMIM, ConMIM or BootMAE) alone.

Usage: python benchmarks/plain_loop.py [--method simmim] [--batch 128] [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from mto_core.bench.plain_loop import PLAIN_MODELS, plain_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--method", default="simmim", choices=list(PLAIN_MODELS))
    args = parser.parse_args()
    device = torch.device(args.device)
    step = plain_step(args.batch, device, args.method)
    for _ in range(3):
        step()
    times = []
    for _ in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    ms = 1000 * statistics.median(times)
    print(f"plain PyTorch {args.method} step, batch {args.batch}: {ms:.1f} ms ({args.batch / ms * 1000:.0f} images/s)")


if __name__ == "__main__":
    main()
