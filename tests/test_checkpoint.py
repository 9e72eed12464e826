import json

import pytest
import torch

from mto_core.api import reconstruct
from mto_core.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from mto_core.masking import make_mask
from mto_core.objective import build_model

from .conftest import small_config


def _save(tmp_path, name="simmim-mto", step=1, keep=2):
    config = small_config(name)
    torch.manual_seed(0)
    model = build_model(config.model, config.mto)
    folder = save_checkpoint(tmp_path, step, model, config, {"step": step}, keep)
    return model, config, folder


def test_round_trip_gives_identical_outputs(tmp_path, images):
    model, config, folder = _save(tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "train_state.pt"]
    loaded = load_checkpoint(tmp_path)
    assert loaded.path == folder and loaded.config == config
    mask = make_mask(4, 7, 0.6, 0)
    assert torch.equal(reconstruct(model.eval(), images, mask).prediction,
                       reconstruct(loaded, images, mask).prediction)
    assert torch.load(folder / "train_state.pt", weights_only=True) == {"step": 1}


def test_keeps_only_newest(tmp_path):
    for step in (1, 2, 3):
        _save(tmp_path, step=step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]


def test_incomplete_folders_are_ignored(tmp_path):
    _, _, folder = _save(tmp_path, step=1)
    (tmp_path / "step-00000009").mkdir()
    (tmp_path / ".step-00000010.tmp").mkdir()
    assert load_checkpoint(tmp_path).path == folder


def test_truncated_weights(tmp_path):
    _, _, folder = _save(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(folder)


def test_other_architecture(tmp_path):
    _, _, folder = _save(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model"]["embed_dim"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="another architecture or size"):
        load_checkpoint(folder)


def test_foreign_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path.parent)


def test_torn_metrics_line_is_skipped(tmp_path):
    from mto_core.checkpoint import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]
