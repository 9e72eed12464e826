"""Runs killed at any moment resume from their last complete checkpoint; bad disks are reported."""

import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import mto_core.checkpoint as checkpoint
from mto_core.checkpoint import list_checkpoints, load_checkpoint
from mto_core.engine import TrainingError, train

from .conftest import SMALL, small_config

SETS = [*SMALL, "data.train_limit=256", "train.batch_size=32", "train.epochs=6", "train.log_every=1",
        "train.keep_checkpoints=2"]


def _command(out):
    return [sys.executable, "-m", "mto_core.cli", "train", "--preset", "simmim-mto", "--out", str(out), "--quiet",
            *[a for s in SETS for a in ("--set", s)]]


def test_sigkill_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(_command(reference), check=True, capture_output=True, timeout=600)
    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = 0
    for attempt in range(8):
        args = _command(run) + (["--resume"] if (run / "config.json").exists() else [])
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))  # start-up is about 1.5 s, then an epoch every few 0.1 s
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
        for folder in list_checkpoints(run):  # whatever survived a kill loads cleanly
            load_checkpoint(folder)
    assert kills >= 3
    subprocess.run(_command(run) + ["--resume"], check=True, capture_output=True, timeout=600)
    a = load_file(str(reference / "step-00000048" / "model.safetensors"))
    b = load_file(str(run / "step-00000048" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.glob(".step-*.tmp"))


def test_interrupted_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    config = small_config("simmim", "data.train_limit=64", "train.batch_size=32", "train.epochs=2")
    real_save = checkpoint.torch.save
    calls = [0]

    def dies_on_second_save(obj, path, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt  # the process dies half way through writing step 4
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", dies_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]
    assert (tmp_path / ".step-00000004.tmp").exists()
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    result = train(config, tmp_path, resume=True, progress=False)
    assert result.steps == 4 and not (tmp_path / ".step-00000004.tmp").exists()


def test_full_disk_is_reported_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = small_config("simmim", "data.train_limit=64", "train.batch_size=32", "train.epochs=2")
    real_save = checkpoint.save_file
    calls = [0]

    def full_disk(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(TrainingError, match="No space left on device.*step-00000002.*intact"):
        train(config, tmp_path, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]


def test_read_only_output_folder(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/mto-cannot-write-here"  # root ignores permission bits; /proc refuses everyone
    else:
        os.chmod(tmp_path, 0o500)
        target = str(tmp_path / "run")
    with pytest.raises(TrainingError, match="cannot write to the output folder"):
        train(small_config("simmim"), target, progress=False)
