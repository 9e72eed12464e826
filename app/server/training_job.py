"""Training in the background, one job at a time: what the app's Train page drives.

A :class:`TrainingJob` trains one or more configs side by side (one thread each), collects
their metrics rows as they are logged, and stops them all, each with a checkpoint, when asked:
at the same step, so that their k-NN points compare like with like (the runs that are ahead stop
at once, the others catch up to them).
Each run ends with a quick k-NN probe on the validation split, written to its metrics.jsonl as
an 'epoch' row, so runs made in the app have an accuracy point on the Curves page (not a run of
photo crops, which have no classes: its ``no_probe`` says so).
A :class:`JobSlot` runs one job at a time, so a 2-core server stays responsive; the next
jobs wait in a queue, one per owner. A job started with an ``owner`` (the app passes the
visitor's id, kept in the page's address) can be stopped only by that owner, or by a teacher.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logic.progress import run_progress
from mto_core.config import RunConfig
from mto_core.data.sources import open_dataset
from mto_core.training.run_folder import append_metrics
from mto_core.training.engine import make_plan, train
from mto_core.eval.schedule import probe_problem, quick_knn
from server.classroom import train_knn_bank


@dataclass
class RunState:
    config: RunConfig
    run_dir: Path
    total_steps: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    trained_steps: int | None = None  # set when train() has returned
    knn: float | None = None
    knn_images: int = 0  # validation images the k-NN accuracy was measured on
    no_probe: str = ""  # why the run gets no k-NN point (photo crops have no classes), if it gets none
    done: bool = False
    live_step: int = 0  # steps taken so far (counted where train() asks whether to stop, once a step)

    @property
    def knn_margin(self) -> float | None:
        """Half-width of the k-NN accuracy's 95% interval (normal approximation to the binomial)."""
        if self.knn is None or not self.knn_images:
            return None
        return 1.96 * (self.knn * (1 - self.knn) / self.knn_images) ** 0.5

    @property
    def step(self) -> int:
        if self.trained_steps is not None:
            return self.trained_steps
        return max(self.live_step, int(self.rows[-1]["step"]) if self.rows else 0)

    def progress(self) -> dict[str, float | None]:
        """step, images_per_s and eta_s (seconds left) of this run."""
        t = self.config.train
        return run_progress(self.rows, self.total_steps, t.batch_size * t.accum_steps)


# how much lower the training threads' CPU priority is than the page runs' (0: the same);
# MTO_TRAINING_NICENESS sets it for a server (benchmarks/load.py compares)
TRAINING_NICENESS = int(__import__("os").environ.get("MTO_TRAINING_NICENESS", "10"))


def lower_priority(niceness: int | None = None) -> int | None:
    """Give the calling thread (and the threads it starts) a lower CPU priority: the page runs of the
    other visitors go first, the training takes what they leave, which on an idle server is all of it
    (Linux: a thread is a task with its own nice value). Its new niceness, or None where the system
    has none to set."""
    import os

    niceness = TRAINING_NICENESS if niceness is None else niceness
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
        return os.getpriority(os.PRIO_PROCESS, tid)
    except (AttributeError, OSError):
        return None


class TrainingJob:
    """Train ``runs`` ({name: (config, run folder)}) side by side in background threads; only
    ``owner`` (None: anyone) may stop them."""

    def __init__(self, runs: dict[str, tuple[RunConfig, Path]], owner: str | None = None) -> None:
        self.owner = owner
        self.runs: dict[str, RunState] = {}
        for name, (config, run_dir) in runs.items():
            n = len(open_dataset(config.data, config.model, "train"))  # a folder is listed, not read
            self.runs[name] = RunState(config, Path(run_dir), make_plan(config, n, 1).total_steps)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.stop_step: int | None = None  # the step every run stops at, fixed at the first check after Stop
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for name, state in self.runs.items():
            thread = threading.Thread(target=self._run, args=(state,), name=f"train-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, state: RunState) -> None:
        import os

        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // len(self.runs)))  # this thread's ops only
        lower_priority()
        try:
            result = train(state.config, state.run_dir, progress=False, on_log=state.rows.append,
                           should_stop=lambda: self._should_stop(state))
            state.trained_steps = result.steps
            state.no_probe = probe_problem(state.config)
            bank = train_knn_bank()
            if result.last_checkpoint is not None and state.config.data.val_fraction and not state.no_probe and bank:
                from mto_core.models.checkpoint import load_checkpoint

                model = load_checkpoint(result.last_checkpoint).model
                state.knn, state.knn_images = quick_knn(model, state.config, bank)
                # the quick k-NN at the end of an app run (numbers only: read_metrics reads numbers)
                row = {"kind": "epoch", "step": result.steps, "epoch": round(result.epochs_done, 4),
                       "knn_val": state.knn}
                append_metrics(state.run_dir, row)
                state.rows.append(row)
        except Exception as error:  # shown to the user on the page; the job ends cleanly
            state.error = f"{type(error).__name__}: {error}"
        finally:
            state.done = True

    def _should_stop(self, state: RunState) -> bool:
        """Polled by ``state``'s training loop after each step. After Stop, every run stops at one
        step: fixed by the first run to see the request, the furthest any run will have reached
        (a run still training is in the middle of its next step)."""
        with self._lock:
            state.live_step += 1
            if not self._stop.is_set():
                return False
            if self.stop_step is None:
                self.stop_step = max(s.live_step + (s is not state and s.trained_steps is None and not s.done)
                                     for s in self.runs.values())
            return state.live_step >= self.stop_step

    def stop(self, by: str | None = None, teacher: bool = False) -> bool:
        """Ask every run to stop, if ``by`` owns the job (or it has no owner, or a teacher asks); True if asked."""
        if self.owner is not None and by != self.owner and not teacher:
            return False
        self._stop.set()
        return True

    @property
    def stopped(self) -> bool:
        """Stop was asked for (the runs may still be writing their checkpoint and probe)."""
        return self._stop.is_set()

    @property
    def trained(self) -> bool:
        """Every run's training loop has ended (what Stop waits for; the probe may follow)."""
        return all(s.trained_steps is not None or s.done for s in self.runs.values())

    def _steps(self) -> str:
        """'step 12 of 100' when every run is there, else each run's step by name."""
        at = {(s.step, s.total_steps) for s in self.runs.values()}
        if len(at) == 1:
            step, total = at.pop()
            return f"step {step} of {total}"
        return ", ".join(f"{name} at step {s.step} of {s.total_steps}" for name, s in self.runs.items())

    def status(self) -> str:
        """One line for the page: training with rate and time left, stopped at step N, finished."""
        states = list(self.runs.values())
        steps = self._steps()
        if self.running and not self.trained:
            if self.stopped:
                behind = [name for name, s in self.runs.items() if s.trained_steps is None and not s.done]
                catching = (f" (all stop at step {self.stop_step}; {', '.join(behind)} catching up)"
                            if self.stop_step is not None and len(behind) < len(states) else "")
                return f"stopping: {steps}{catching}"
            parts = [s.progress() for s in states]
            rates = [p["images_per_s"] for p in parts if p["images_per_s"]]
            etas = [p["eta_s"] for p in parts if p["eta_s"] is not None]
            rate = f"; {sum(rates):.0f} images/s, all runs together" if rates else ""
            eta = f", about {max(etas):.0f} s left" if etas else ""
            return f"training: {steps}{rate}{eta}"
        probing = " (measuring k-NN accuracy)" if self.running else ""
        if any(s.error for s in states):
            return f"ended with an error: {steps}{probing}"
        if self.stopped and any(s.step < s.total_steps for s in states):
            return f"stopped: {steps}{probing}"
        return f"finished: {steps}{probing}"

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
    """At most one running :class:`TrainingJob` per process; the others wait in a queue, one per
    owner, and each starts when the one before it ends (its ``before`` run then, under the lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job: TrainingJob | None = None
        self.queue: list[tuple[TrainingJob, Any]] = []  # (job, before), first in first out
        self._watcher: threading.Thread | None = None

    def _start(self, job: TrainingJob, before=None) -> None:
        if before is not None:
            before()
        self.job = job
        job.start()

    def try_start(self, job: TrainingJob, before=None) -> bool:
        """Start ``job`` unless another is still running; True if it started. ``before()``, if given,
        runs first, under the same lock (the Train page's pruning and recording of app runs: no
        other start can come between them)."""
        with self._lock:
            if self.job is not None and self.job.running:
                return False
            self._start(job, before)
            return True

    def submit(self, job: TrainingJob, before=None) -> int:
        """Start ``job`` now (0) or queue it behind the others: its place (1 = next); -1 if its owner
        already has a training running or queued (one each, so that nobody holds the queue)."""
        with self._lock:
            if job.owner is not None and (self.place(job.owner) > 0 or self.running_owner == job.owner):
                return -1
            if not self.queue and (self.job is None or not self.job.running):
                self._start(job, before)
                return 0
            self.queue.append((job, before))
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._advance, name="train-queue", daemon=True)
                self._watcher.start()
            return len(self.queue)

    def _advance(self) -> None:
        """Start the queued jobs one after another, each when the one before it has ended."""
        while True:
            current = self.job
            if current is not None:
                current.wait()
            with self._lock:
                if self.job is not current:
                    continue  # started in between (try_start): wait for that one
                if not self.queue:
                    self._watcher = None
                    return
                job, before = self.queue.pop(0)
                try:
                    self._start(job, before)
                except Exception as error:  # a run that cannot start is shown as ended, the queue goes on
                    for state in job.runs.values():
                        state.error, state.done = f"{type(error).__name__}: {error}", True
                    self.job = job

    def place(self, owner: str) -> int:
        """``owner``'s place in the queue (1 = next), 0 if not queued."""
        for i, (job, _) in enumerate(self.queue, 1):
            if job.owner == owner:
                return i
        return 0

    def leave(self, owner: str) -> bool:
        """Take ``owner``'s queued job out of the queue; True if there was one."""
        with self._lock:
            kept = [(job, before) for job, before in self.queue if job.owner != owner]
            left = len(kept) < len(self.queue)
            self.queue[:] = kept
            return left

    @property
    def running_owner(self) -> str | None:
        return self.job.owner if self.busy else None

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running
