"""The cost of an MTO step relative to its baseline's, measured on the machine that runs the
experiment, at the experiment's batch and model size: the c of the wall-clock speed-up
s_wall = s / c (docs/mto-spec.md).

The two steps of a family are timed interleaved (baseline, method, baseline, ...), so that
machine noise hits both alike; c is the median over rounds of the per-round ratio, and the
interquartile range of those ratios says how steady it was. Stored as ``step_cost.json`` in
the experiment's runs folder, beside the runs it prices.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from .registry import Experiment, run_config
from .stats import families


def measure_step_cost(experiment: Experiment, overrides: list[str], rounds: int = 30,
                      warmup: int = 3) -> dict[str, Any]:
    """``{"machine", "measured", "rounds", "families": {method: {baseline, batch, base_ms,
    method_ms, c, c_iqr}}}`` for every method of ``experiment`` against its family's baseline.

    ``overrides`` are the experiment's ``--set`` flags (device, data, batch), as the runs got them."""
    from ..bench.measure import interleaved_times, machine, training_step
    from ..training.engine import resolve_device

    out: dict[str, Any] = {"machine": machine(), "rounds": rounds, "families": {}}
    for base, family in families(list(experiment.variants), experiment.baseline).items():
        configs = {v: run_config(experiment, v, experiment.seeds_for(v)[0], overrides) for v in family}
        device = resolve_device(configs[base].train.device)
        batch = configs[base].train.batch_size
        steps = {v: training_step(config, device, batch) for v, config in configs.items()}
        times = interleaved_times(steps, device, rounds, warmup)
        for method in family[1:]:
            ratios = [m / b for m, b in zip(times[method], times[base])]
            q = statistics.quantiles(ratios, n=4)
            out["families"][method] = {"baseline": base, "batch": batch, "device": str(device),
                                       "base_ms": 1000 * statistics.median(times[base]),
                                       "method_ms": 1000 * statistics.median(times[method]),
                                       "c": statistics.median(ratios), "c_iqr": [q[0], q[2]]}
    out["measured"] = out["machine"].pop("date")
    return out


def write_step_cost(experiment: Experiment, overrides: list[str], path: Path, rounds: int = 30) -> dict[str, Any]:
    """Measure :func:`measure_step_cost` and save it to ``path``."""
    cost = measure_step_cost(experiment, overrides, rounds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cost, indent=2) + "\n")
    return cost


