"""Running an experiment: every (variant, seed) trained or resumed, the floors measured."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ..checkpoint import list_checkpoints, read_metrics
from ..config import RunConfig
from .registry import Experiment, plan_runs, run_config

FLOORS = "floors.json"


def is_complete(run: Path, config: RunConfig) -> bool:
    """A run whose newest checkpoint is at its planned last step (or last epoch row)."""
    epochs = [r["epoch"] for r in read_metrics(run) if r.get("kind") == "epoch"]
    return bool(list_checkpoints(run)) and bool(epochs) and epochs[-1] >= config.train.epochs


def run_experiment(experiment: Experiment, out: Path, overrides: list[str] | None = None,
                   progress: bool = True) -> list[Path]:
    """Train every (variant, seed); finished runs are skipped, interrupted ones resumed. The
    floors (raw pixels on the same probe sets) are written to ``out/floors.json``."""
    from ..engine import train

    runs = []
    todo = plan_runs(experiment)
    for i, (variant, seed) in enumerate(todo, start=1):
        config = run_config(experiment, variant, seed, overrides or [])
        run = out / f"{variant}-s{seed}"
        runs.append(run)
        if is_complete(run, config):
            print(f"[{i}/{len(todo)}] {run}: complete, kept")
            continue
        start = time.perf_counter()
        train(config, run, resume=(run / "config.json").exists(), progress=progress)
        print(f"[{i}/{len(todo)}] {run}: {time.perf_counter() - start:.0f} s", flush=True)
    if experiment.common and any("probe_points" in s for s in experiment.common):
        write_floors(run_config(experiment, next(iter(experiment.variants)), experiment.seeds[0], overrides or []),
                     out / FLOORS)
    return runs


def write_floors(config: RunConfig, path: Path) -> dict[str, float]:
    """k-NN and linear-probe accuracy of raw pixels on a run's probe sets, saved as JSON."""
    from ..probes import probe_sets
    from ..evaluate import pixel_features, scores

    bank, val = probe_sets(config)
    floors = {f"pixels_{kind}": value for kind, value in scores(
        pixel_features(bank.images), bank.labels, pixel_features(val.images), val.labels).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(floors, indent=2) + "\n")
    return floors


def copy_runs(runs: list[Path], copies: Path, extra: tuple[Path, ...] = ()) -> None:
    """Each run's metrics.jsonl and config.json (tens of kB) into ``copies/<run>/``, so that the
    report is recomputed without the weights."""
    for run in runs:
        (copies / run.name).mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "config.json"):
            if (run / name).exists():
                shutil.copyfile(run / name, copies / run.name / name)
    for file in extra:
        if file.exists():
            shutil.copyfile(file, copies / file.name)


