"""What a run interrupted by Ctrl-C and resumed leaves, against the uninterrupted run's files.

The statement tested here (and in docs/reliability.md): the final checkpoint's model.safetensors
and config.json, and the run's config.json, are the same bytes; train_state.pt holds the same
values; metrics.jsonl has the same rows with the same values, except the timings
(images_per_s, train_s, probe_s), which measure the machine.
"""

import json
import os
import signal
import subprocess
import sys
import time

import torch

from mto_core.models.checkpoint import list_checkpoints, load_train_state

from .conftest import SMALL
from .test_cli import mto_here_as as _here

TIMINGS = {"images_per_s", "train_s", "probe_s"}
SETS = [*SMALL, "data.train_limit=512", "train.batch_size=32", "train.log_every=5", "train.knn_every=1",
        "train.probe_bank=256", "train.probe_val=128"]  # 16 steps an epoch, a k-NN probe at its end


def _command(out, *extra):
    return [sys.executable, "-m", "mto_core.cli", "train", "--preset", "simmim-mto", "--out", str(out),
            "--quiet", "--max-steps", "20", *[a for s in SETS for a in ("--set", s)], *extra]


def _rows(run):
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS}
            for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_an_interrupted_and_resumed_run_leaves_the_uninterrupted_runs_files(tmp_path, capsys):
    reference, run = tmp_path / "reference", tmp_path / "interrupted"
    _here(capsys, _command(reference))  # in this process: only the interrupted run needs its own
    process = subprocess.Popen(_command(run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    metrics = run / "metrics.jsonl"
    logged = lambda: metrics.is_file() and metrics.stat().st_size  # noqa: E731
    while process.poll() is None and time.monotonic() < deadline and not logged():
        time.sleep(0.005)  # step 5 is logged: stop between two logged steps
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    stopped = list_checkpoints(run)[-1]
    assert process.returncode == 130 and int(stopped.name[5:]) % 5, stderr
    _here(capsys, _command(run, "--resume"))

    final = "step-00000020"
    for name in ("model.safetensors", "config.json"):
        assert (run / final / name).read_bytes() == (reference / final / name).read_bytes(), name
    assert (run / "config.json").read_bytes() == (reference / "config.json").read_bytes()
    a, b = load_train_state(reference / final), load_train_state(run / final)
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert _rows(run) == _rows(reference)
    assert _rows(run / final) == _rows(reference / final)
    assert [r["kind"] for r in _rows(run)].count("epoch") == 1
