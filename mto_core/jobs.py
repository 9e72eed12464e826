"""Training in the background, one job at a time: what the app's Train page drives.

A :class:`TrainingJob` trains one or more configs side by side (one thread each), collects
their metrics rows as they are logged, and stops them all, each with a checkpoint, when asked.
A :class:`JobSlot` admits one job at a time, so a 2-core server stays responsive; other
callers see that it is busy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RunConfig
from .data import load_dataset
from .engine import make_plan, train


@dataclass
class RunState:
    config: RunConfig
    run_dir: Path
    total_steps: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    done: bool = False

    @property
    def step(self) -> int:
        return int(self.rows[-1]["step"]) if self.rows else 0


class TrainingJob:
    """Train ``runs`` ({name: (config, run folder)}) side by side in background threads."""

    def __init__(self, runs: dict[str, tuple[RunConfig, Path]]) -> None:
        self.runs: dict[str, RunState] = {}
        for name, (config, run_dir) in runs.items():
            n = len(load_dataset(config.data, config.model, "train"))
            self.runs[name] = RunState(config, Path(run_dir), make_plan(config, n, 1).total_steps)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, state in self.runs.items():
            thread = threading.Thread(target=self._run, args=(state,), name=f"train-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, state: RunState) -> None:
        try:
            train(state.config, state.run_dir, progress=False, on_log=state.rows.append,
                  should_stop=self._stop.is_set)
        except Exception as error:  # shown to the user on the page; the job ends cleanly
            state.error = f"{type(error).__name__}: {error}"
        finally:
            state.done = True

    def stop(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def progress(self) -> float:
        total = sum(s.total_steps for s in self.runs.values())
        return sum(min(s.step, s.total_steps) for s in self.runs.values()) / max(total, 1)

    def wait(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)


class JobSlot:
    """At most one running :class:`TrainingJob` per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None

    def try_start(self, job: TrainingJob) -> bool:
        """Start ``job`` unless another is still running; True if it started."""
        with self._lock:
            if self.job is not None and self.job.running:
                return False
            self.job = job
            job.start()
            return True

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running
