"""A run folder's rules: what ``mto train --out`` may start in, resume or refuse.

- A new or empty folder starts a run: it gets ``config.json`` and an empty ``metrics.jsonl``.
- A folder of one of mto's runs resumes with ``--resume`` (the config may change only in
  :data:`RESUME_FREE` and :data:`RESUME_RECORDED`); ``metrics.jsonl`` is cut back to the resumed
  checkpoint's step so that no step is logged twice.
- A checkpoint folder, a folder of other files or a file is refused, and nothing is changed.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from ..analysis.trace import TRACES
from ..config import ConfigError, MTOWarning, RunConfig
from ..models.checkpoint import METRICS, WEIGHTS, list_checkpoints, read_metrics, step_of, write_text_atomic
from .runlock import LOCK


class TrainingError(RuntimeError):
    """Training had to stop; the message says why and what was kept."""


def append_metrics(run_dir: Path, row: dict[str, Any]) -> None:
    try:
        with open(run_dir / METRICS, "a") as handle:
            handle.write(json.dumps(row) + "\n")
    except OSError as error:
        raise TrainingError(f"could not append to {run_dir / METRICS}: {error.strerror or error}. "
                            "The last checkpoint is intact; free space and --resume.") from None


# What --resume accepts besides the config the run was started with: how long and where to
# train (and data.workers), and (recorded in metrics.jsonl) the learning-rate and clipping settings, which the
# non-finite-loss message advises changing; every other key shapes the model, the data or the
# optimizer state.
RESUME_FREE = ("epochs", "max_steps", "device", "log_every", "keep_checkpoints", "checkpoint_every",
               "compile")


RESUME_RECORDED = ("base_lr", "warmup_fraction", "min_lr_fraction", "clip_grad")


def prepare_run_dir(run_dir: Path, config: RunConfig, resume: bool) -> Path | None:
    """Create or check the run folder; return the checkpoint to resume from, if any.

    A folder with no checkpoint and no logged step (a start that failed) takes a new start.
    Resuming cuts metrics.jsonl back to the resumed step, so that the steps trained again are
    not logged twice, and records there any change of the learning-rate and clipping settings.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise TrainingError(f"the output folder {run_dir} is a file; choose a folder for --out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise TrainingError(f"cannot write to the output folder {run_dir}: {error.strerror or error}. "
                            "Choose a writable --out with free space.") from None
    for leftover in run_dir.glob(".step-*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    if (run_dir / WEIGHTS).exists():  # a checkpoint itself (checkpoints/simmim), not a run folder of them
        raise TrainingError(f"{run_dir} is a checkpoint (its weights are at its top level), not a run folder "
                            "made by `mto train --out`; nothing was changed. Train into another --out "
                            "(--resume continues a run folder from its step-* checkpoints)")
    saved = run_dir / "config.json"
    checkpoints = list_checkpoints(run_dir)
    logged = [r["step"] for r in read_metrics(run_dir) if r.get("kind") == "train"] if saved.exists() else []
    if not checkpoints and not logged:
        foreign = _foreign_files(run_dir)
        if foreign:
            raise TrainingError(f"{run_dir} holds files that are not an mto run's ({', '.join(foreign)}); "
                                "nothing was changed. Choose a new or empty --out")
        if resume:
            warnings.warn(f"{run_dir} holds no checkpoint and no logged step, so there is nothing to "
                          "resume: starting at step 0", MTOWarning, stacklevel=4)
        write_text_atomic(run_dir / METRICS, "")  # every run folder has one, from its start on
        write_text_atomic(saved, config.to_json())
        return None
    if not resume:
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it, "
                            "or choose another --out")
    resume_from = checkpoints[-1] if checkpoints else None
    if resume_from is None:  # stopped before its first checkpoint: those steps are trained again
        warnings.warn(f"{run_dir} holds no checkpoint yet: starting again at step 0; the {len(logged)} "
                      "steps it logged are trained and logged again", MTOWarning, stacklevel=4)
    changed: dict[str, float] = {}
    if saved.exists():
        before = RunConfig.load(saved).to_dict()
        now = config.to_dict()
        for key in RESUME_RECORDED:
            if before["train"][key] != now["train"][key]:
                changed.update({key: now["train"][key], f"{key}_was": before["train"][key]})
        # the schedule is a function of the run's length: a new length from a checkpoint changes it
        lengths = [key for key in ("epochs", "max_steps")
                   if before["train"][key] != now["train"][key] and resume_from is not None]
        for key in lengths:
            changed.update({key: now["train"][key], f"{key}_was": before["train"][key]})
        for section in (before, now):
            for key in (*RESUME_FREE, *RESUME_RECORDED):
                section["train"].pop(key)
            section["data"].pop("workers")  # how many processes decode changes no image
        if before != now:
            diff = [f"{s}.{k}" for s in now if isinstance(now[s], dict)
                    for k in now[s] if before[s].get(k) != now[s][k]]
            raise TrainingError(f"--resume with a config that differs from the run's own "
                                f"({', '.join(diff) or 'preset'}); only epochs, max_steps, device and "
                                f"train.{', train.'.join(RESUME_RECORDED)} may change when resuming")
        if lengths:
            told = ", ".join(f"train.{key} {changed[f'{key}_was']} -> {changed[key]}" for key in lengths)
            warnings.warn(f"resuming with a new length ({told}): the warm-up and cosine learning-rate "
                          "schedule are recomputed for it, so from the resumed step on the rate follows the "
                          "new schedule, not the one the run had (recorded in metrics.jsonl as a 'resume' row)",
                          MTOWarning, stacklevel=4)
    _cut_metrics(run_dir, resume_from)
    if changed:
        append_metrics(run_dir, {"kind": "resume", "step": step_of(resume_from) if resume_from else 0,
                                 **changed})
    write_text_atomic(saved, config.to_json())
    return resume_from


def _foreign_files(run_dir: Path) -> list[str]:
    """What in a folder without checkpoints is not what a run start leaves (its config.json, read
    as a run config, and metrics.jsonl), up to five names: a folder that must not be written over."""
    ours = {".write-test", LOCK}
    try:
        RunConfig.load(run_dir / "config.json")
        ours |= {"config.json", METRICS, TRACES}
    except (ConfigError, OSError, ValueError, TypeError, KeyError):
        pass
    return sorted(p.name for p in run_dir.iterdir() if p.name not in ours)[:5]


def _cut_metrics(run_dir: Path, checkpoint: Path | None) -> None:
    """Rewrite metrics.jsonl, atomically, to its rows up to ``checkpoint``'s step (the
    checkpoint's own copy where it has one); without a checkpoint, to nothing."""
    step = step_of(checkpoint) if checkpoint else 0
    source = checkpoint / METRICS if checkpoint and (checkpoint / METRICS).exists() else run_dir / METRICS
    rows = [r for r in read_metrics(source) if r.get("step", 0) <= step]
    write_text_atomic(run_dir / METRICS, "".join(json.dumps(r) + "\n" for r in rows))


def check_resumable(run_dir: Path, resume: bool) -> None:
    """--resume on a path that holds no run (no config.json, no checkpoint) is an error."""
    if resume and not (run_dir.is_file() or (run_dir / "config.json").is_file() or list_checkpoints(run_dir)):
        raise TrainingError(f"--resume: {run_dir} holds no run to resume (no config.json, no checkpoint); "
                            "nothing was changed. Check the --out path, or leave out --resume to start a "
                            "new run")
