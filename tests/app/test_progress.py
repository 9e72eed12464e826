"""logic/progress.py: a run's rate and time left."""

import pytest
from logic.progress import run_progress


def test_run_progress_gives_rate_and_time_left():
    rows = [{"kind": "train", "step": 5 * i, "images_per_s": 100.0 + (i == 1) * 1000} for i in range(1, 5)]
    progress = run_progress(rows, 100, 10)
    assert progress["step"] == 20 and progress["images_per_s"] == 100.0
    assert progress["eta_s"] == pytest.approx(80 * 10 / 100)
    assert run_progress([], 100, 10)["eta_s"] is None
