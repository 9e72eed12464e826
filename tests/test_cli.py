"""End to end through the installed ``mto`` command."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .conftest import SMALL


def mto(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "mto_core.cli", *args], capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode:
        raise AssertionError(f"mto {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _sets(*extra):
    return [arg for item in (*SMALL, *extra) for arg in ("--set", item)]


def test_help_shows_examples():
    for command in ([], ["train"], ["eval"]):
        out = mto(*command, "--help").stdout
        assert "examples:" in out and "mto " in out
    assert "mto.entropy_weight" in mto("train", "--help").stdout


def test_train_eval_resume(tmp_path):
    run = str(tmp_path / "run")
    mto("train", "--preset", "mae-mto", "--max-steps", "4", "--batch-size", "32", "--out", run, "--quiet",
        *_sets("train.warmup_fraction=0"))
    result = json.loads(mto("eval", run, "--probe", "knn", "--json", "--bank-size", "2000").stdout)
    assert result["probe"] == "knn" and 0.1 < result["accuracy"] <= 1
    assert result["checkpoint"].endswith("step-00000004")
    again = mto("train", "--preset", "mae-mto", "--max-steps", "6", "--batch-size", "32", "--out", run,
                "--quiet", "--resume", *_sets("train.warmup_fraction=0"))
    assert "trained 6 steps" in again.stdout
    linear = json.loads(mto("eval", run, "--probe", "linear", "--json", "--bank-size", "1000").stdout)
    assert linear["probe"] == "linear" and linear["checkpoint"].endswith("step-00000006")


def test_quick_start_scores_clearly_above_chance(tmp_path):
    """The README's quick start: one epoch of the tiny preset on the shipped subset."""
    run = str(tmp_path / "x")
    mto("train", "--preset", "simmim-mto", "--epochs", "1", "--out", run, "--quiet", "--set", "data.root=shipped")
    result = json.loads(mto("eval", run, "--probe", "knn", "--json").stdout)
    assert result["accuracy"] > 0.5  # chance is 0.1


@pytest.mark.parametrize("args, words", [
    (["train", "--out", "X", "--set", "mto.nope=1"], "unknown config key 'mto.nope'"),
    (["train", "--out", "X", "--set", "mask.ratio=1.0"], "strictly between 0 and 1"),
    (["train", "--out", "X", "--set", "notakeyvalue"], "key=value"),
    (["eval", "does-not-exist"], "does not exist"),
])
def test_errors_are_one_clear_line(tmp_path, args, words):
    args = [str(tmp_path / a) if a in ("X", "does-not-exist") else a for a in args]
    result = mto(*args, check=False)
    assert result.returncode in (1, 2) and words in result.stderr and "Traceback" not in result.stderr


def test_two_process_ddp_equals_single_process_with_same_global_batch(tmp_path):
    """torchrun with 2 CPU processes (gloo) x 16 images == 1 process x 32 images."""
    sets = _sets("data.train_limit=256", "train.log_every=2")
    common = ["train", "--preset", "simmim-mto", "--epochs", "1", "--quiet", *sets]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(29500 + os.getpid() % 1000), "-m", "mto_core.cli"]
    subprocess.run([*torchrun, *common, "--batch-size", "16", "--out", str(tmp_path / "ddp")],
                   check=True, capture_output=True, timeout=600)
    mto(*common, "--batch-size", "32", "--out", str(tmp_path / "single"))
    a = load_file(str(tmp_path / "ddp" / "step-00000008" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "step-00000008" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    rows_ddp = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    rows_one = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_ddp] == [r["step"] for r in rows_one]
    assert rows_ddp[0]["loss"] == pytest.approx(rows_one[0]["loss"], rel=1e-4)
