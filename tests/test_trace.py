"""train.trace_every: the masked tokens' measures over training, and their token snapshots."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mto_core.analysis.trace as trace
from mto_core.config import ConfigError
from mto_core.training.engine import train
from mto_core.analysis.trace import snapshot_steps, token_frames, trace_batch

from .conftest import small_config

ONE_EPOCH = ["data.train_limit=256", "train.batch_size=32", "train.epochs=1", "train.log_every=1"]


def rows_of(run_dir, kind="trace"):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def test_trace_rows_every_n_steps_per_layer_with_snapshots_on_one_plane(tmp_path):
    train(small_config("simmim-mto", *ONE_EPOCH, "train.trace_every=3"), tmp_path / "run", progress=False)
    rows = rows_of(tmp_path / "run")
    assert sorted({r["step"] for r in rows}) == [0, 3, 6]
    assert {r["layer"] for r in rows if r["step"] == 3} == {0, 1, 2}  # input and the 2 blocks
    layer0 = next(r for r in rows if r["layer"] == 0)
    assert "attn_vm" not in layer0 and -1 <= layer0["silhouette"] <= 1
    for r in rows:
        if r["layer"]:
            assert r["attn_vm"] == pytest.approx(0, abs=1e-6)  # hard recalibration: no visible-to-masked mass
            assert 0 < r["entropy_masked"] <= 1
    assert snapshot_steps(tmp_path / "run") == [0, 3, 6]
    tensors = load_file(str(tmp_path / "run" / "traces" / "step-00000003.safetensors"))
    assert tensors["layer-1"].dtype == torch.float16 and tensors["layer-1"].shape == (4, 49, 32)
    assert set(tensors) == {"layer-0", "layer-1", "layer-2", "mask"}
    frames = token_frames(tmp_path / "run", layer=1)
    assert frames.steps.tolist() == [0, 3, 6] and frames.xy.shape == (3, 4 * 49, 2)
    assert frames.masked.sum() == pytest.approx(0.6 * 4 * 49, abs=4) and 0 < frames.explained <= 1
    assert not np.allclose(frames.xy[0], frames.xy[-1])  # the tokens moved
    assert token_frames(tmp_path / "run", layer=1, up_to=4).steps.tolist() == [0, 3]
    assert token_frames(tmp_path / "run", layer=7) is None


def test_baseline_and_mto_are_traced_on_the_same_images_and_mask():
    a, b = trace_batch(small_config("simmim")), trace_batch(small_config("simmim-mto", "train.seed=5"))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[1].shape == (32, 49)


def test_snapshots_stay_within_their_budget(tmp_path, monkeypatch):
    one = 4 * 49 * (3 * 32 * 2 + 1)  # 4 images, 49 patches, layers 0..2 of width 32 in float16, the mask
    monkeypatch.setattr(trace, "SNAPSHOT_BYTES", 3 * one)
    train(small_config("simmim", *ONE_EPOCH, "train.trace_every=1"), tmp_path / "run", progress=False)
    assert sorted({r["step"] for r in rows_of(tmp_path / "run")}) == list(range(9))  # every step measured
    assert snapshot_steps(tmp_path / "run") == [0, 3, 6]  # 9 points, at most 3 snapshots: every third


def test_a_killed_run_resumes_its_traces_exactly(tmp_path):
    config = small_config("mae-mto", *ONE_EPOCH, "train.trace_every=2", "train.checkpoint_every=3",
                          "train.keep_checkpoints=10")
    train(config, tmp_path / "full", progress=False)
    shutil.copytree(tmp_path / "full", tmp_path / "killed")  # as if killed after step 7: step 6 is the newest
    shutil.rmtree(tmp_path / "killed" / "step-00000008")
    (tmp_path / "killed" / "traces" / "step-00000008.safetensors").write_bytes(b"torn")
    train(config, tmp_path / "killed", resume=True, progress=False)
    assert rows_of(tmp_path / "killed") == rows_of(tmp_path / "full")
    assert snapshot_steps(tmp_path / "killed") == snapshot_steps(tmp_path / "full") == [0, 2, 4, 6, 8]
    for step in (6, 8):
        a = load_file(str(tmp_path / "full" / "traces" / f"step-{step:08d}.safetensors"))
        b = load_file(str(tmp_path / "killed" / "traces" / f"step-{step:08d}.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_trace_every_must_not_be_negative():
    with pytest.raises(ConfigError, match="train.trace_every must be >= 0"):
        small_config("simmim", "train.trace_every=-1")
