"""What ``train.trace_every`` costs: training throughput with and without traces.

For each preset, `mto train` runs (in-process, the same code) with traces off and with
``train.trace_every=N``, alternating, and the images/s of each is the run's images over its
training time (every step, the traces included); the overhead is 1 - traced / untraced. One
trace point is also timed alone, so that the cost of any other N can be read off:
overhead(N) ~ trace_s / (N * step_s).

    python benchmarks/trace_overhead.py [--every 25] [--steps 100] [--repeats 1] [--presets simmim-mto mae-mto]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from mto_core.config import apply_overrides, preset
from mto_core.training.engine import train
from mto_core.models.build import build_model
from mto_core.analysis.trace import Tracer


def images_per_s(name: str, steps: int, every: int) -> float:
    config = apply_overrides(preset(name), ["data.root=shipped", f"train.max_steps={steps}", "train.epochs=0",
                                            "train.log_every=1000", f"train.trace_every={every}"])
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        train(config, Path(folder) / "run", progress=False)
        return steps * config.train.batch_size / (time.perf_counter() - start)


def trace_seconds(name: str, repeats: int = 5) -> float:
    config = apply_overrides(preset(name), ["data.root=shipped", "train.trace_every=1"])
    model = build_model(config.model, config.mto)
    with tempfile.TemporaryDirectory() as folder:
        tracer = Tracer(config, Path(folder), 1000, 100, 0)
        tracer(model, 0)  # first call: kernels warm
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            tracer(model, 0)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--presets", nargs="*", default=["simmim-mto", "mae-mto"])
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch threads {torch.get_num_threads()}; {args.steps} steps per run, batch 128 (the preset's)")
    for name in args.presets:
        off, on = [], []
        for _ in range(args.repeats):
            off.append(images_per_s(name, args.steps, 0))
            on.append(images_per_s(name, args.steps, args.every))
        a, b = statistics.median(off), statistics.median(on)
        one = trace_seconds(name)
        step = 128 / a
        print(f"{name}: {a:.0f} images/s untraced, {b:.0f} traced every {args.every} steps: "
              f"overhead {100 * (1 - b / a):.1f}%; one trace point {one * 1000:.0f} ms = "
              f"{one / step:.2f} steps, so every N steps costs about {100 * one / step:.0f}% / N "
              f"({100 * one / (step * args.every):.1f}% at N = {args.every})")


if __name__ == "__main__":
    main()
