"""End to end through the installed ``mto`` command."""

import json
import subprocess
import sys

import pytest

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
