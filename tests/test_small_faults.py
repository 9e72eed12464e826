"""Small things a new user runs into: suggestions that work, help that says what is true, a
benchmark that shows it is alive."""

import re
from pathlib import Path

import pytest

from mto_core.models.checkpoint import CheckpointError, resolve
from mto_core.cli import main

from .conftest import small_config

ROOT = Path(__file__).resolve().parent.parent


def test_eval_on_a_folder_without_checkpoints_suggests_a_command_that_works(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=re.escape(f"Train one with: mto train --out {empty}")):
        resolve(empty)
    other = tmp_path / "docs"  # a folder of other files: training into it is refused, so not suggested
    other.mkdir()
    (other / "notes.md").write_text("x")
    with pytest.raises(CheckpointError) as error:
        resolve(other)
    assert "mto train --out" not in str(error.value) and "not a run folder" in str(error.value)
    started = tmp_path / "started"  # a run stopped before its first checkpoint
    started.mkdir()
    (started / "config.json").write_text(small_config("simmim").to_json())
    with pytest.raises(CheckpointError, match=re.escape(f"mto train --out {started} --resume")):
        resolve(started)


def _help(capsys, *args):
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_says_what_is_true(capsys):
    eval_help = _help(capsys, "eval")
    assert "Fashion-MNIST test split" not in eval_help and "image folder" in eval_help
    assert re.search(r"--split \{test,val\} .*held-out", eval_help)
    minutes = re.search(r": (\d+) min for \d+ runs", (ROOT / "docs/results/efficiency-cpu.md").read_text())[1]
    assert f"{minutes} min" in _help(capsys, "experiment")
    assert "90 min" not in _help(capsys, "experiment")


def test_the_attempts_benchmark_prints_progress_and_the_time_left(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import attempts

    idle = lambda *args, **kwargs: (lambda: None)  # noqa: E731  (the steps themselves are not tested)
    monkeypatch.setattr(attempts, "step", idle)
    monkeypatch.setattr(attempts, "half_batches", idle)
    monkeypatch.setattr(attempts, "with_qkv", lambda run, qkv: run)
    monkeypatch.setattr(attempts, "plain_step", idle)
    monkeypatch.setattr(attempts, "time_steps", lambda steps, device, rounds: {name: 0.001 for name in steps})
    monkeypatch.setattr(attempts, "allocator", lambda repeats, steps, progress: {})
    attempts.measure(2)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("attempts.py: 2 rounds") and len(lines) == 6, lines
    assert "simmim" in lines[1] and "s left" not in lines[1]
    assert all(re.search(r"\[ *\d+ s, +\d+%, about \d+ s left\] ", line) for line in lines[2:]), lines
