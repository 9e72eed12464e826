"""benchmarks/: the scripts' own behaviour (progress, time left)."""

import re
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


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
