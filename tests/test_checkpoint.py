import json

from pathlib import Path

import pytest
import torch

from mto_core.api import reconstruct
from mto_core.models.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model

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
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match=r"is a file; give the folder that holds it"):
        load_checkpoint(tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"is not a checkpoint but holds some: give one of its folders, "
                                              r"e\.g\. .*checkpoints/bootmae \(bootmae, bootmae-mto, conmim, conmim-mto, "
                                              r"mae, mae-mto, \.\.\.\)"):
        load_checkpoint(Path(__file__).resolve().parent.parent / "checkpoints")


def test_torn_metrics_line_is_skipped(tmp_path):
    from mto_core.models.checkpoint import read_metrics

    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert read_metrics(tmp_path) == [{"step": 1}, {"step": 2}]


def test_metrics_lines_that_are_not_rows_are_skipped_with_a_warning(tmp_path):
    from mto_core.models.checkpoint import read_metrics
    from mto_core.config import MTOWarning
    from mto_core.eval.efficiency import curve

    (tmp_path / "metrics.jsonl").write_text(
        '{"kind": "epoch", "epoch": 1, "knn_val": 0.5}\n[1, 2]\n"text"\n'
        '{"kind": "epoch", "epoch": 2, "knn_val": "0.7", "note": null}\n'
        '{"kind": "epoch", "epoch": "3", "knn_val": 0.8}\n{"kind": "epoch", "epoch": 4, "knn_val": 0.9}\n')
    with pytest.warns(MTOWarning, match=r"skipped 3 line\(s\) that are not metrics rows \(line 2\) and "
                                        r"3 value\(s\) that are not numbers \(knn_val on line 4\)"):
        rows = read_metrics(tmp_path)
    assert rows == [{"kind": "epoch", "epoch": 1, "knn_val": 0.5}, {"kind": "epoch", "epoch": 2},
                    {"kind": "epoch", "epoch": 4, "knn_val": 0.9}]
    assert curve(rows, "knn_val")[1].tolist() == [0.5, 0.9]


def test_model_size_estimate_matches_the_built_model():
    from mto_core.models.objective import check_model_fits, model_size

    for name in ("simmim-mto", "mae-mto", "conmim-mto", "bootmae-mto"):
        config = small_config(name)
        model = build_model(config.model, config.mto)
        count = sum(p.numel() for p in model.parameters())  # the momentum teacher's included
        assert model_size(config.model)[0] == pytest.approx(count, rel=0.01)
        check_model_fits(config.model)
