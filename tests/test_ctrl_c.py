"""Ctrl-C on ``mto train`` as a user presses it: real SIGINTs to a real process."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from mto_core.models.checkpoint import list_checkpoints


def _train(out):
    # the default tiny model on a batch of 2048: a step of many seconds on a CPU, mostly in one
    # backward call; the test does not wait for it
    args = ["train", "--out", str(out), "--max-steps", "2", "--batch-size", "2048",
            "--set", "data.root=shipped", "--set", "data.train_limit=2048"]
    return subprocess.Popen([sys.executable, "-m", "mto_core.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _collect(stream, into):
    while chunk := stream.read1(4096):
        into.append(chunk.decode(errors="replace"))


@pytest.mark.parametrize("gap", [0.3, 3.0])  # seconds between the two Ctrl-C, as a user presses them
def test_a_second_ctrl_c_quits_at_once_in_a_long_step_and_says_no_checkpoint_exists(tmp_path, gap):
    run = tmp_path / "x"
    process = _train(run)
    err: list[str] = []
    reader = threading.Thread(target=_collect, args=(process.stderr, err), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while "0/2" not in "".join(err) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the progress bar is up: the first step is about to start
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGINT)
    time.sleep(gap)
    os.kill(process.pid, signal.SIGINT)
    sent = time.monotonic()
    process.wait(timeout=120)
    took = time.monotonic() - sent
    reader.join(timeout=5)
    stderr = "".join(err)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert took < 1.0, f"quit {took:.1f} s after the second Ctrl-C"
    assert not list_checkpoints(run)
    assert (run / "metrics.jsonl").read_text() == ""  # every run folder has one, from its start on
    assert stderr.rstrip().splitlines()[-1] == (
        "mto train: interrupted again: quit at once; no checkpoint was written yet; the same command with "
        "--resume starts the run again from step 0")
