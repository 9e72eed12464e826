"""One run of an experiment in its own process: ``python -m mto_core.experiments.worker RUN
DEADLINE THREADS`` with the run's config (JSON) on stdin. DEADLINE is a Unix time at which the
run stops cleanly with a checkpoint (0 = none); THREADS its share of the CPU threads."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..config import RunConfig
from ..training.engine import train


def main(argv: list[str]) -> int:
    run, deadline, threads = Path(argv[0]), float(argv[1]), int(argv[2])
    torch.set_num_threads(threads)
    config = RunConfig.from_dict(json.loads(sys.stdin.read()))
    result = train(config, run, resume=(run / "config.json").exists(), progress=False,
                   should_stop=(lambda: time.time() >= deadline) if deadline else None)
    print(f"{run}: stopped at step {result.steps} ({result.epochs_done:g} epochs)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
