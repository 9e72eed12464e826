"""Running an experiment: every (variant, seed) trained or resumed, the floors measured."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ..config import ConfigError, RunConfig
from ..models.checkpoint import list_checkpoints, read_metrics
from .records import FLOORS, RECORD, STEP_COST, read_record
from .registry import Experiment, plan_runs, run_config
from .step_cost import write_step_cost


def is_recorded(run: Path, config: RunConfig) -> bool:
    """A run whose metrics.jsonl records its planned last epoch (all a report needs)."""
    epochs = [r["epoch"] for r in read_metrics(run) if r.get("kind") in ("epoch", "probe")]
    return bool(epochs) and max(epochs) >= config.train.epochs


def is_copy_of(copy: Path, config: RunConfig) -> bool:
    """A run's copy (metrics.jsonl and config.json, :func:`copy_runs`) recorded to its last epoch
    with exactly ``config``."""
    try:  # as configs, not texts: a config written before a field existed reads as its default
        same = RunConfig.load(copy / "config.json") == config
    except ConfigError:
        return False
    return same and is_recorded(copy, config)


def is_complete(run: Path, config: RunConfig) -> bool:
    """A recorded run whose newest checkpoint is at its planned last step."""
    return bool(list_checkpoints(run)) and is_recorded(run, config)


def run_experiment(experiment: Experiment, out: Path, overrides: list[str] | None = None, progress: bool = True,
                   parallel: int = 1, time_limit: float | None = None, command: str = "",
                   recorded: Path | None = None) -> tuple[list[Path], bool]:
    """Train every (variant, seed) into ``out``: finished runs are kept, interrupted ones resumed.

    ``parallel`` runs train at once, one process each; ``time_limit`` (minutes) stops every run
    cleanly with a checkpoint when it is up, and starts no new one (the next call resumes them).
    ``recorded``: a folder of run copies (the committed ``docs/results/<experiment>-runs``); a run
    it holds, recorded to its last epoch with the config this run would get, counts as made and is
    not trained again (so that more seeds extend an experiment), and ``out``'s record continues
    its record. Beside the runs: the floors (raw pixels on the same probe sets) once a run has
    finished, the step cost (:mod:`.step_cost`) once every run has, and ``record.json``, the
    command, the machine and the dates of each call that trained. Returns (finished runs, each in
    ``out`` or in ``recorded``; all finished)."""
    overrides = overrides or []
    deadline = None if time_limit is None else time.time() + 60 * time_limit
    plan = [(run_config(experiment, v, s, overrides), out / f"{v}-s{s}") for v, s in plan_runs(experiment)]
    made = {run: recorded / run.name for config, run in plan if not is_complete(run, config)
            and recorded is not None and is_copy_of(recorded / run.name, config)}
    todo = [(config, run) for config, run in plan if run not in made and not is_complete(run, config)]
    print(f"{len(plan) - len(todo)} of {len(plan)} runs finished already"
          + (f" ({len(made)} recorded in {recorded})" if made else "") + f"; training {len(todo)}"
          + (f", {parallel} at a time" if parallel > 1 and todo else ""), flush=True)
    if todo:
        if recorded is not None and made and not (out / RECORD).exists() and read_record(recorded):
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(recorded / RECORD, out / RECORD)
        started = now()
        trained = (_train_in_processes(todo, out, parallel, deadline) if parallel > 1
                   else _train_here(todo, deadline, progress))
        if trained:
            record_call(out, command, started)
    finished = [made.get(run, run) for config, run in plan if run in made or is_complete(run, config)]
    done = len(finished) == len(plan)
    trained_here = [run for run in finished if run.parent == out]  # not only copies: measure beside them
    if trained_here and experiment.common and any("probe_points" in s for s in experiment.common):
        if not (out / FLOORS).exists():
            write_floors(plan[0][0], out / FLOORS)
        if done and not (out / STEP_COST).exists():
            write_step_cost(experiment, overrides, out / STEP_COST)
    if not done:
        print(f"{len(plan) - len(finished)} of {len(plan)} runs not finished (a time limit, or a failure named "
              "above): the same command resumes them", flush=True)
    return finished, done


def _should_stop(deadline: float | None):  # -> Callable[[], bool] | None
    return None if deadline is None else (lambda: time.time() >= deadline)


def _train_here(todo: list[tuple[RunConfig, Path]], deadline: float | None, progress: bool) -> int:
    """Train the runs one after another in this process; how many were started."""
    from ..training.engine import train

    for i, (config, run) in enumerate(todo, start=1):
        if deadline is not None and time.time() >= deadline:
            return i - 1
        start = time.perf_counter()
        train(config, run, resume=(run / "config.json").exists(), progress=progress,
              should_stop=_should_stop(deadline))
        print(f"[{i}/{len(todo)}] {run}: {time.perf_counter() - start:.0f} s", flush=True)
    return len(todo)


def _train_in_processes(todo: list[tuple[RunConfig, Path]], out: Path, parallel: int,
                        deadline: float | None) -> int:
    """One process per run (:mod:`.worker`), ``parallel`` at a time, each with an equal share of
    the CPU threads; each run's output goes to ``out/logs/<run>.log``. How many were started."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    waiting, running, started = list(todo), {}, 0
    while waiting or running:
        while waiting and len(running) < parallel and (deadline is None or time.time() < deadline):
            config, run = waiting.pop(0)
            log = open(out / "logs" / f"{run.name}.log", "a")
            process = subprocess.Popen([sys.executable, "-m", "mto_core.experiments.worker", str(run),
                                        str(deadline or 0), str(threads)], stdin=subprocess.PIPE,
                                       stdout=log, stderr=subprocess.STDOUT, text=True)
            process.stdin.write(config.to_json())  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
            running[run] = (process, log, time.perf_counter())
            started += 1
        if deadline is not None and time.time() >= deadline:
            waiting.clear()
        for run, (process, log, start) in list(running.items()):
            if process.poll() is None:
                continue
            log.close()
            del running[run]
            state = "done" if process.returncode == 0 else f"failed (exit {process.returncode}, see {log.name})"
            print(f"{run}: {state}, {time.perf_counter() - start:.0f} s", flush=True)
        time.sleep(0.5)
    return started


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def record_call(out: Path, command: str, started: str) -> None:
    """Append this call (machine, start and end) to ``out/record.json``; the first call's command
    is the experiment's."""
    from ..bench.measure import machine

    record = read_record(out) or {"command": command, "calls": []}
    info = machine()
    info.pop("date")
    record["calls"].append({"machine": info, "started": started, "ended": now()})
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORD).write_text(json.dumps(record, indent=2) + "\n")


def write_floors(config: RunConfig, path: Path) -> dict[str, float]:
    """k-NN and linear-probe accuracy of raw pixels on a run's probe sets, saved as JSON."""
    from ..eval.probes import pixel_features, scores
    from ..eval.schedule import probe_sets

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


