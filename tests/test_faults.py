"""Runs killed at any moment resume from their last complete checkpoint; bad disks are reported."""

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import mto_core.models.checkpoint as checkpoint
from mto_core.models.checkpoint import list_checkpoints, load_checkpoint
from mto_core.training.run_folder import TrainingError
from mto_core.training.engine import train

from .conftest import SMALL, small_config
from .test_cli import mto_here_as as _here

SETS = [*SMALL, "data.train_limit=256", "train.batch_size=32", "train.epochs=6", "train.log_every=1",
        "train.keep_checkpoints=2"]


def _command(out, name="simmim-mto"):
    return [sys.executable, "-m", "mto_core.cli", "train", "--preset", name, "--out", str(out), "--quiet",
            *[a for s in SETS for a in ("--set", s)]]


# ConMIM runs SimMIM's path with a momentum teacher and its perturbation, BootMAE MAE's with a teacher
@pytest.mark.parametrize("name", ["conmim-mto", "bootmae-mto"])
def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path, name, capsys):
    reference = tmp_path / "reference"
    _here(capsys, _command(reference, name))
    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for attempt in range(8):
        args = _command(run, name) + (["--resume"] if (run / "config.json").exists() else [])
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a random step of the 48, then a random moment within the next few (checkpoint writes
        # included): by progress, not by the clock, so a fast machine cannot finish first
        target, deadline = rng.randint(1, 47), time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and max(_logged_steps(run), default=0) < target:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
        for folder in list_checkpoints(run):  # whatever survived a kill loads cleanly
            load_checkpoint(folder)
    assert kills >= 3
    _here(capsys, _command(run, name) + ["--resume"])
    a = load_file(str(reference / "step-00000048" / "model.safetensors"))
    b = load_file(str(run / "step-00000048" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.glob(".step-*.tmp"))


def test_interrupted_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    config = small_config("simmim", "data.train_limit=64", "train.batch_size=32", "train.epochs=2")
    real_write = checkpoint._write_synced
    calls = [0]

    def dies_in_second_checkpoint(path, data):
        calls[0] += 1
        if calls[0] == 6:  # step 2 wrote 4 files; step 4 dies after its first
            raise KeyboardInterrupt
        return real_write(path, data)

    monkeypatch.setattr(checkpoint, "_write_synced", dies_in_second_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]
    assert (tmp_path / ".step-00000004.tmp").exists()
    monkeypatch.setattr(checkpoint, "_write_synced", real_write)
    result = train(config, tmp_path, resume=True, progress=False)
    assert result.steps == 4 and not (tmp_path / ".step-00000004.tmp").exists()


def _limited(nbytes):
    """A subprocess pre-exec hook: files this process writes may not grow past ``nbytes`` (the
    shell's ``ulimit -f``); a write beyond it fails with EFBIG, as on a full disk."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def _one_line_error(result, *words):
    # a resume to a new length first warns, in one line, that the schedule follows it
    lines = [line for line in result.stderr.strip().splitlines() if "warning: resuming with a new length" not in line]
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(w in lines[0] for w in words), lines[0]


SHORT = [*SMALL, "data.train_limit=64", "train.batch_size=32", "train.log_every=1"]


def _short(out, *extra):
    return [sys.executable, "-m", "mto_core.cli", "train", "--preset", "simmim-mto", "--out", str(out),
            "--quiet", *[a for s in SHORT for a in ("--set", s)], *extra]


# The weights of this model take about 116 kB and train_state.pt about 239 kB: a limit of 100 kB
# stops the weights (safetensors' writer), one of 150 kB the optimizer state (torch.save's).
@pytest.mark.parametrize("limit", [100_000, 150_000])
def test_file_size_limit_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, limit,
                                                                                        capsys):
    _here(capsys, _short(tmp_path, "--epochs", "1"))
    result = subprocess.run(_short(tmp_path, "--epochs", "2", "--resume"), capture_output=True, text=True,
                            timeout=600, preexec_fn=_limited(limit))
    _one_line_error(result, "could not write a checkpoint", "File too large", "step-00000002", "intact")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]
    assert not list(tmp_path.glob(".step-*.tmp"))
    load_checkpoint(tmp_path)
    _here(capsys, _short(tmp_path, "--epochs", "2", "--resume"))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000004"]


def test_failed_metrics_append_is_one_line(tmp_path):
    # config.json takes 1.3 kB and each logged row about 0.25 kB: the eighth row or so fails.
    result = subprocess.run(_short(tmp_path, "--max-steps", "40", "--set", "data.train_limit=2048"),
                            capture_output=True, text=True, timeout=600, preexec_fn=_limited(3_000))
    _one_line_error(result, "could not append to", "metrics.jsonl", "File too large", "--resume")


def test_read_only_output_folder(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/mto-cannot-write-here"  # root ignores permission bits; /proc refuses everyone
    else:
        os.chmod(tmp_path, 0o500)
        target = str(tmp_path / "run")
    with pytest.raises(TrainingError, match="cannot write to the output folder"):
        train(small_config("simmim"), target, progress=False)


def _logged_steps(run):
    steps = []
    for line in (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # being written
            continue
        steps += [row["step"]] if row["kind"] == "train" else []
    return steps


def _kill_once(args, condition):
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not condition() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_runs_log_every_step_once(tmp_path, capsys):
    """SIGKILL after rows were logged but before the first checkpoint, then after rows that
    followed a checkpoint; each --resume trains those steps again and logs them once."""
    sets = ["--set", "data.train_limit=1024"]  # 32 steps an epoch; a checkpoint after each, and at the end
    first = _short(tmp_path, "--max-steps", "30", *sets)
    _kill_once(first, lambda: len(_logged_steps(tmp_path)) >= 3)
    assert not list_checkpoints(tmp_path) and len(_logged_steps(tmp_path)) >= 3
    _here(capsys, first + ["--resume"])
    second = _short(tmp_path, "--max-steps", "60", *sets, "--resume")
    _kill_once(second, lambda: max(_logged_steps(tmp_path)) >= 36)
    assert list_checkpoints(tmp_path)[-1].name == "step-00000032"
    _here(capsys, second)
    assert _logged_steps(tmp_path) == list(range(1, 61))


def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_resume_is_exact(tmp_path, capsys):
    """A real SIGINT mid-epoch: the run ends after that step with a checkpoint there (not only the
    last epoch's), exit status 130, and --resume from it gives the uninterrupted run's weights."""
    sets = ["--set", "data.train_limit=2048", "--max-steps", "40"]  # 64 steps an epoch: no epoch ends
    reference = tmp_path / "reference"
    _here(capsys, _short(reference, *sets))
    run = tmp_path / "interrupted"
    process = subprocess.Popen(_short(run, *sets), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and len(_logged_steps(run)) < 5:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    stopped = list_checkpoints(run)[-1]
    step = int(stopped.name.split("-")[1])
    assert 5 <= step < 40 and f"stopped by Ctrl-C at step {step}" in stderr and "Traceback" not in stderr
    assert max(_logged_steps(run)) == step
    _here(capsys, _short(run, *sets, "--resume"))
    a = load_file(str(reference / "step-00000040" / "model.safetensors"))
    b = load_file(str(run / "step-00000040" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
