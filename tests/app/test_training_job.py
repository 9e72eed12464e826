"""server/training_job.py: the Train page's runs in the background, stopped together, owned."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from server.training_job import JobSlot, TrainingJob

from ..conftest import small_config

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def _job(tmp_path, steps="4"):
    sets = ["data.train_limit=128", "train.batch_size=32", "train.log_every=1", f"train.max_steps={steps}",
            "train.epochs=0"]
    return TrainingJob({"baseline": (small_config("simmim", *sets), tmp_path / "a"),
                        "mto": (small_config("simmim-mto", *sets), tmp_path / "b")})


def test_job_trains_side_by_side_and_collects_rows(tmp_path):
    job = _job(tmp_path)
    slot = JobSlot()
    assert slot.try_start(job)
    job.wait(300)
    assert not job.running and job.progress == 1
    for state in job.runs.values():
        assert state.error is None and state.done
        assert [r["step"] for r in state.rows if r["kind"] == "train"] == [1, 2, 3, 4]
        assert [r["kind"] for r in state.rows][-1] == "epoch"
    assert (tmp_path / "a" / "step-00000004" / "model.safetensors").exists()


def test_one_job_at_a_time_and_stop(tmp_path):
    slot = JobSlot()
    first = _job(tmp_path / "1", steps="100000")
    assert slot.try_start(first)
    assert slot.busy and not slot.try_start(_job(tmp_path / "2"))
    time.sleep(0.5)
    first.stop()
    first.wait(300)
    assert not slot.busy
    for state in first.runs.values():
        assert state.error is None and 0 < state.step < 100000
    assert slot.try_start(_job(tmp_path / "3"))
    slot.job.wait(300)


def test_stop_ends_every_run_at_the_same_step(tmp_path):
    """A run four times slower (a four times larger batch) catches up to the faster one after Stop,
    so their k-NN points compare the same number of steps."""
    sets = ["data.train_limit=512", "train.log_every=1", "train.max_steps=100000", "train.epochs=0"]
    job = TrainingJob({"baseline": (small_config("simmim", *sets, "train.batch_size=16"), tmp_path / "a"),
                       "MTO": (small_config("simmim-mto", *sets, "train.batch_size=64"), tmp_path / "b")})
    job.start()
    deadline = time.time() + 120
    while time.time() < deadline and job.runs["MTO"].step < 3:
        time.sleep(0.05)
    ahead = job.runs["baseline"].step
    assert ahead > job.runs["MTO"].step  # they are apart when Stop comes
    job.stop()
    job.wait(300)
    steps = {name: s.trained_steps for name, s in job.runs.items()}
    assert steps["baseline"] == steps["MTO"] == job.stop_step >= ahead, steps
    assert job.status() == f"stopped: step {job.stop_step} of 100000"
    for state in job.runs.values():
        assert state.error is None and state.rows[-1]["step"] == job.stop_step and state.knn is not None


def test_errors_are_kept_not_raised(tmp_path):
    job = _job(tmp_path)
    (tmp_path / "a").mkdir(parents=True)
    (tmp_path / "a" / "config.json").write_text("{}")  # a run with a logged step there: train() refuses
    (tmp_path / "a" / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "epoch": 0.1, "loss": 1.0}\n')
    job.start()
    job.wait(300)
    assert "already holds a run" in job.runs["baseline"].error and job.runs["mto"].error is None


def test_stop_takes_effect_within_two_seconds_and_says_stopped(tmp_path):
    job = _job(tmp_path, steps="100000")
    job.start()
    deadline = time.time() + 120
    while time.time() < deadline and not all(s.rows for s in job.runs.values()):
        time.sleep(0.05)
    assert job.status().startswith("training: ") and "images/s" in job.status()
    start = time.perf_counter()
    job.stop()
    while not job.trained:
        time.sleep(0.02)
    assert time.perf_counter() - start < 2.0
    job.wait(300)
    assert job.status().startswith("stopped: step ") and "finished" not in job.status(), job.status()


def test_a_finished_run_has_a_knn_point_for_the_curves(tmp_path, monkeypatch):
    """The probe's size is the server's (--train-knn-bank): a bank of N training images, N/2 validation
    images; 0 ends the runs without a point."""
    from mto_core import read_metrics
    from mto_core.eval.efficiency import curve

    monkeypatch.setenv("MTO_TRAIN_KNN_BANK", "300")
    job = _job(tmp_path)
    job.start()
    job.wait(300)
    assert job.status() == "finished: step 4 of 4"
    for state in job.runs.values():
        assert 0 < state.knn <= 1 and state.knn_images == 150
        assert state.knn_margin == pytest.approx(1.96 * (state.knn * (1 - state.knn) / state.knn_images) ** 0.5)
        epochs, values = curve(read_metrics(state.run_dir), "knn_val")
        assert len(values) == 1 and values[0] == state.knn
    monkeypatch.setenv("MTO_TRAIN_KNN_BANK", "0")
    job = _job(tmp_path / "none")
    job.start()
    job.wait(300)
    for state in job.runs.values():
        assert state.knn is None and state.knn_images == 0
        assert len(curve(read_metrics(state.run_dir), "knn_val")[1]) == 0


def test_only_the_owner_can_stop_a_job(tmp_path):
    sets = ["data.train_limit=128", "train.batch_size=32", "train.max_steps=4", "train.epochs=0"]
    job = TrainingJob({"baseline": (small_config("simmim", *sets), tmp_path / "a")}, owner="session-a")
    assert not job.stop(by="session-b") and not job.stopped
    assert not job.stop() and not job.stopped
    assert job.stop(by="session-a") and job.stopped


def test_a_run_stopped_early_keeps_its_trace_points_and_ends_on_one(tmp_path):
    from mto_core import read_metrics, train
    from mto_core.analysis.trace import snapshot_steps, trace_due, trace_rows

    from ..conftest import small_config

    assert [s for s in range(0, 400) if trace_due(s, 5, "doubling")][18:26] == [90, 95, 100, 110, 120, 130, 140, 150]
    config = small_config("simmim-mto", "train.max_steps=1000", "train.epochs=0", "train.batch_size=16",
                          "train.trace_every=5", "train.trace_spacing=doubling", "train.log_every=50")
    calls = []
    result = train(config, tmp_path / "run", progress=False, should_stop=lambda: calls.append(1) or len(calls) >= 128)
    assert result.steps == 128
    steps = sorted({r["step"] for r in trace_rows(read_metrics(tmp_path / "run"))})
    assert steps[-1] == 128 and len(steps) >= 20, steps  # even spacing for the requested 1,000 steps gave 3
    assert snapshot_steps(tmp_path / "run")[-1] == 128


def test_the_app_s_training_threads_run_at_a_lower_cpu_priority_than_the_pages(tmp_path, monkeypatch):
    import os

    from server import training_job
    from server.training_job import TrainingJob

    from ..conftest import small_config

    # a server's default (the suite itself trains at full priority: MTO_TRAINING_NICENESS=0 in conftest.py)
    env = {k: v for k, v in os.environ.items() if k != "MTO_TRAINING_NICENESS"}
    default = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, 'app'); "
                              "from server.training_job import TRAINING_NICENESS; print(TRAINING_NICENESS)"],
                             capture_output=True, text=True, env=env, cwd=APP_DIR.parent, check=True).stdout
    assert int(default) >= 10, default
    monkeypatch.setattr(training_job, "TRAINING_NICENESS", 10)

    config = small_config("simmim", "train.max_steps=400", "train.epochs=0", "train.batch_size=16")
    job = TrainingJob({"baseline": (config, tmp_path / "run")})
    job.start()
    try:
        thread = next(t for t in job._threads if t.is_alive())
        while not job.runs["baseline"].rows and thread.is_alive():
            thread.join(0.2)
        stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        nice = int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of stat, the nice value
        assert nice == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10), nice
    finally:
        job.stop()
        job.wait(120)


def test_a_second_owner_queues_one_place_each_and_starts_when_the_first_ends(tmp_path):
    slot = JobSlot()
    sets = ["data.train_limit=128", "train.batch_size=32", "train.log_every=1", "train.max_steps=100000",
            "train.epochs=0"]

    def job(name, owner):
        return TrainingJob({"baseline": (small_config("simmim", *sets), tmp_path / name)}, owner=owner)

    first, second = job("a", "ann"), job("b", "bob")
    assert slot.submit(first) == 0
    assert slot.submit(job("a2", "ann")) == -1  # one training per visitor, running or queued
    assert slot.submit(second) == 1 and slot.place("bob") == 1
    assert slot.submit(job("b2", "bob")) == -1
    third = job("c", "cy")
    assert slot.submit(third) == 2 and slot.leave("cy") and slot.place("cy") == 0
    assert not first.stop("bob") and first.stop("someone", teacher=True)
    deadline = time.time() + 120
    while time.time() < deadline and slot.job is not second:
        time.sleep(0.2)
    assert slot.job is second and slot.running_owner == "bob" and not slot.queue
    assert second.stop("bob")
    second.wait(300)
    assert not slot.busy and not third.running


def test_a_run_of_photo_crops_skips_the_knn_probe_and_says_why(tmp_path, monkeypatch):
    from mto_core.data import photo_crops as pc

    monkeypatch.setattr(pc, "TRAIN_CROPS", 64)  # a few crops: the set is cut in a moment
    pc._photo_crops.cache_clear()
    sets = ["model.img_size=32", "model.patch_size=4", "model.in_chans=3", "data.dataset=photo-crops",
            "train.batch_size=16", "train.max_steps=2", "train.epochs=0", "train.log_every=1"]
    try:
        job = TrainingJob({"baseline": (small_config("mae", *sets), tmp_path / "a"),
                           "MTO": (small_config("mae-mto", *sets), tmp_path / "b")})
        job.start()
        job.wait(300)
    finally:
        pc._photo_crops.cache_clear()
    assert job.status() == "finished: step 2 of 2"
    for state in job.runs.values():
        assert state.error is None and state.knn is None and "no classes to probe" in state.no_probe
        assert (state.run_dir / "step-00000002" / "model.safetensors").exists()
