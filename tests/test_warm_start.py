"""``mto train --init``: a new run from a checkpoint's weights (mto_core/training/warm_start.py)."""

import json

import torch
from safetensors.torch import load_file

from mto_core.models.checkpoint import load_checkpoint, read_metrics

from .conftest import SMALL
from .test_cli import mto_here
from .test_interop import hf_mae
from .test_streaming import make_folder


def _train(capsys, out, *args, sets=()):
    return mto_here(capsys, "train", "--out", str(out), "--quiet", *args,
                    *[a for s in sets for a in ("--set", s)])


def test_init_from_an_imported_transformers_mae_continues_with_mto(tmp_path, capsys):
    hf_mae().save_pretrained(tmp_path / "hf")
    mto_here(capsys, "import", str(tmp_path / "hf"), "--out", str(tmp_path / "imported"), check=True)
    images = make_folder(tmp_path / "images", size=(48, 40))
    run = tmp_path / "run"
    sets = ["data.dataset=folder", f"data.root={images}", "data.workers=0", "train.batch_size=8",
            "train.snapshot_points=0", "train.log_every=1"]
    result = _train(capsys, run, "--init", str(tmp_path / "imported"), "--max-steps", "2", sets=sets)
    assert result.returncode == 0, result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["init"] == str(tmp_path / "imported") and config["origin"]["source"] == str(tmp_path / "hf")
    assert config["preset"] == "mae-mto" and config["mto"]["hard_recalibration"] and config["model"]["img_size"] == 32
    start = load_file(str(run / "snapshots" / "epoch-0" / "model.safetensors"))
    imported = load_file(str(tmp_path / "imported" / "model.safetensors"))
    assert start.keys() == imported.keys() and all(torch.equal(start[k], imported[k]) for k in start)
    rows = [r for r in read_metrics(run) if r["kind"] == "train"]
    assert [r["step"] for r in rows] == [1, 2] and all(r["sing"] > 0 and r["loss"] > r["mim"] for r in rows)
    trained = load_checkpoint(run).model.state_dict()
    assert not all(torch.equal(trained[k], imported[k]) for k in imported)  # it trained on from there


def test_init_from_another_shape_or_method_is_refused_in_one_line(tmp_path, capsys):
    base = [*SMALL, "train.batch_size=32"]
    assert _train(capsys, tmp_path / "simmim", "--preset", "simmim", "--max-steps", "1", sets=base).returncode == 0
    for args, sets, words in ((["--preset", "mae-mto"], base, "holds a simmim model"),
                              (["--preset", "simmim-mto"], [*base, "model.depth=3"], "another shape"),
                              (["--preset", "simmim-mto", "--size", "vit-s"], base, "another shape")):
        out = tmp_path / "refused"
        result = _train(capsys, out, "--init", str(tmp_path / "simmim"), "--max-steps", "1", *args, sets=sets)
        assert result.returncode != 0 and words in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()
    missing = _train(capsys, tmp_path / "refused", "--init", str(tmp_path / "nothing"), sets=base)
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1


def test_init_from_an_mto_run_of_the_same_shape_starts_from_its_weights_and_resumes(tmp_path, capsys):
    base = [*SMALL, "train.batch_size=32", "train.snapshot_points=0"]
    assert _train(capsys, tmp_path / "plain", "--preset", "simmim", "--max-steps", "2", sets=base).returncode == 0
    run = tmp_path / "mto"
    args = ("--init", str(tmp_path / "plain"), "--preset", "simmim-mto")
    assert _train(capsys, run, *args, "--max-steps", "1", sets=base).returncode == 0
    start = load_file(str(run / "snapshots" / "epoch-0" / "model.safetensors"))
    source = load_checkpoint(tmp_path / "plain").model.state_dict()
    assert all(torch.equal(start[k], source[k]) for k in start)
    resumed = _train(capsys, run, *args, "--max-steps", "2", "--resume", sets=base)
    assert resumed.returncode == 0 and "trained 2 steps" in resumed.stdout
