import json

import pytest
import torch
from safetensors.torch import load_file

import mto_core.training.engine as engine
from mto_core.models.checkpoint import list_checkpoints, load_checkpoint
from mto_core.config import ConfigError
from mto_core.training.run_folder import TrainingError
from mto_core.training.engine import lr_at, train

from .conftest import small_config

FAST = ["data.train_limit=256", "train.batch_size=32", "train.epochs=2", "train.log_every=2"]


def test_lr_schedule():
    values = [lr_at(s, 100, 1.0, 10, 0.01) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[-1] == pytest.approx(0.01, abs=1e-3)


def test_constant_schedule_does_not_depend_on_the_planned_length():
    short = [lr_at(s, 50, 1.0, 10, 0.01, "constant") for s in range(50)]
    long = [lr_at(s, 500, 1.0, 10, 0.01, "constant") for s in range(500)]
    assert short == long[:50] and long[9:] == [1.0] * 491
    assert [lr_at(s, 50, 1.0, 10, 0.01) for s in range(50)] != long[:50]  # cosine does depend on it


def test_probe_points_log_rows_at_fractions_of_an_epoch_and_keep_snapshots(tmp_path):
    config = small_config("mae-mto", *FAST, "train.schedule=constant", "train.warmup_steps=2",
                          "train.probe_points=0,0.5,2", "train.linear_points=0", "train.snapshot_points=1",
                          "train.probe_bank=64", "train.probe_val=32", "train.keep_checkpoints=1")
    train(config, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in rows if r["kind"] == "probe"]
    assert [(r["step"], r["epoch"]) for r in probes] == [(0, 0.0), (4, 0.5), (16, 2.0)]
    assert "linear_val" in probes[0] and "linear_val" not in probes[1]
    assert all(0 <= r["knn_val"] <= 1 and r["probe_s"] > 0 for r in probes)
    trained = {r["step"]: r["lr"] for r in rows if r["kind"] == "train"}
    assert trained[4] == trained[16]  # constant after the warmup
    snapshot = load_checkpoint(tmp_path / "run" / "snapshots" / "epoch-1")
    assert snapshot.config.train.snapshot_points == "1"
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000016"]  # pruned, the snapshot kept
    with pytest.raises(ConfigError, match="train.probe_points must be comma-separated epochs"):
        small_config("mae", "train.probe_points=0,a")
    with pytest.raises(ConfigError, match="must hold finite epochs >= 0"):
        small_config("mae", "train.probe_points=-1")


@pytest.mark.parametrize("name", ["simmim-mto", "mae-mto", "conmim-mto", "bootmae-mto"])
def test_resume_equals_uninterrupted_run(tmp_path, name):
    config = small_config(name, *FAST)
    full = train(config, tmp_path / "full", progress=False)
    assert full.steps == 16
    stop_after = iter(range(1000))
    stopped = train(config, tmp_path / "cut", progress=False, should_stop=lambda: next(stop_after) >= 4)
    assert stopped.steps == 5 and [p.name for p in list_checkpoints(tmp_path / "cut")] == ["step-00000005"]
    resumed = train(config, tmp_path / "cut", resume=True, progress=False)
    assert resumed.steps == 16
    a = load_file(str(tmp_path / "full" / "step-00000016" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "step-00000016" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("teacher.") for k in a) == name.startswith(("conmim", "bootmae"))
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]
    assert all(r["train_s"] > 0 and r["probe_s"] >= 0 for r in rows if r["kind"] == "epoch")


def test_existing_run_needs_resume_and_same_config(tmp_path):
    config = small_config("simmim", "data.train_limit=64", "train.batch_size=32", "train.epochs=1")
    train(config, tmp_path, progress=False)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(config, tmp_path, progress=False)
    other = small_config("simmim", "data.train_limit=64", "train.batch_size=32", "mto.entropy_weight=1")
    with pytest.raises(TrainingError, match="mto.entropy_weight"):
        train(other, tmp_path, resume=True, progress=False)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    config = small_config("simmim-mto", "data.train_limit=64", "train.batch_size=32", "train.epochs=3",
                          "train.log_every=1")
    real_build = engine.build_model

    def poisoned(model_config, mto_config):
        model = real_build(model_config, mto_config)
        forward, calls = model.forward, [0]

        def forward_with_nan(*args, **kwargs):
            calls[0] += 1
            out = forward(*args, **kwargs)
            if calls[0] == 3:  # the first step of the second epoch
                out.loss = out.loss * float("nan")
            return out

        model.forward = forward_with_nan
        return model

    monkeypatch.setattr(engine, "build_model", poisoned)
    with pytest.raises(TrainingError, match="non-finite.*step-00000002"):
        train(config, tmp_path, progress=False)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002"]
    model = load_checkpoint(tmp_path).model
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_unwritable_output_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TrainingError, match="cannot write to the output folder"):
        train(small_config("simmim"), blocker / "run", progress=False)


def test_batch_larger_than_data(tmp_path):
    from mto_core.config import ConfigError

    config = small_config("simmim", "data.train_limit=16", "train.batch_size=32")
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        train(config, tmp_path, progress=False)


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    common = ["data.train_limit=128", "train.epochs=1", "data.augment=false", "train.clip_grad=0"]
    train(small_config("simmim", *common, "train.batch_size=32"), tmp_path / "big", progress=False)
    train(small_config("simmim", *common, "train.batch_size=16", "train.accum_steps=2"), tmp_path / "acc",
          progress=False)
    a = load_file(str(tmp_path / "big" / "step-00000004" / "model.safetensors"))
    b = load_file(str(tmp_path / "acc" / "step-00000004" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_checkpoint_every_writes_within_the_epoch_and_resumes_from_there(tmp_path):
    import shutil

    config = small_config("simmim-mto", "data.train_limit=256", "train.batch_size=32", "train.epochs=1",
                          "train.checkpoint_every=3", "train.keep_checkpoints=10", "train.log_every=1")
    train(config, tmp_path / "full", progress=False)
    assert [c.name for c in list_checkpoints(tmp_path / "full")] == ["step-00000003", "step-00000006",
                                                                     "step-00000008"]
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 9))
    assert all(r["train_s"] > 0 for r in rows if r["kind"] == "epoch")
    shutil.copytree(tmp_path / "full", tmp_path / "killed")  # as if killed after step 7: step 6 is the newest
    shutil.rmtree(tmp_path / "killed" / "step-00000008")
    train(config, tmp_path / "killed", resume=True, progress=False)
    a = load_file(str(tmp_path / "full" / "step-00000008" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "step-00000008" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
