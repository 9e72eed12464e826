"""One writer per run folder: a second training into it is refused and changes nothing; a
SIGKILLed holder leaves no lock behind."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from mto_core.training.engine import train
from mto_core.training.runlock import RunFolderBusy, run_folder_lock

from .conftest import SMALL, small_config
from .test_cli import mto_here_as as _here


def _command(out, *extra):
    sets = [*SMALL, "data.train_limit=2048", "train.batch_size=32", "train.log_every=1"]
    return [sys.executable, "-m", "mto_core.cli", "train", "--preset", "simmim", "--out", str(out), "--quiet",
            "--max-steps", "40", *[a for s in sets for a in ("--set", s)], *extra]


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _started(process, run):
    """Wait until ``process`` has begun writing ``run`` (its config.json is there)."""
    deadline = time.monotonic() + 120
    while not (run / "config.json").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.poll() is None, "the first run ended before the test could pause it"


def test_a_second_training_into_a_folder_in_use_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "x"
    first = subprocess.Popen(_command(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _started(first, run)
        os.kill(first.pid, signal.SIGSTOP)  # the first writer holds still while the second tries
        before = _snapshot(run)
        second = subprocess.run(_command(run), capture_output=True, text=True, timeout=120)
        assert _snapshot(run) == before
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert second.stderr.strip() == (f"mto train: error: {run} is being written by process {first.pid} "
                                     "(a training run); nothing was changed. Wait for it to end, stop it, "
                                     "or choose another --out")
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["kind"] == "train"]
    assert steps == list(range(1, 41))
    assert not (run / ".lock").exists()


def test_a_sigkilled_holder_leaves_no_lock_and_the_retry_runs_at_once(tmp_path, capsys):
    run = tmp_path / "x"
    first = subprocess.Popen(_command(run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _started(first, run)
    assert (run / ".lock").read_text() == str(first.pid)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    retry = _here(capsys, _command(run, "--resume"))  # the retry in this process
    assert "trained 40 steps" in retry.stdout


def test_the_lock_holds_between_threads_of_one_process(tmp_path):
    """The app trains in threads: a run into a folder another thread of the process trains into
    is refused the same way."""
    with run_folder_lock(tmp_path):
        with pytest.raises(RunFolderBusy, match=f"{tmp_path} is being written by process {os.getpid()}"):
            train(small_config("simmim", "train.max_steps=1", "train.epochs=0"), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []
