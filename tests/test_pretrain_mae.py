"""examples/pretrain_mae.py: transformers' ViTMAE with MTO through an unchanged Trainer, data-parallel
over 2 CPU processes (torchrun, gloo) on a tiny generated image folder; ``mto import`` reads what it
saved as an MAE + MTO model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from mto_core import load_checkpoint
from mto_core.config import preset
from mto_core.interop.importer import import_model

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--image-size", "32", "--patch-size", "4", "--width", "32", "--depth", "2", "--heads", "2",
        "--decoder-width", "32", "--decoder-depth", "2", "--decoder-heads", "2", "--workers", "0", "--log-every", "1"]


def image_folder(folder: Path, n: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):  # two sub-folders, two sizes, two formats: the example reads any image folder
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        size = 40 if i % 3 else 48
        Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(sub / f"{i}.{'png' if i % 2 else 'jpg'}")
    return folder


def test_two_processes_train_with_mto_and_mto_import_reads_an_mae_mto_model(tmp_path):
    sys.path.insert(0, str(ROOT / "app"))
    from logic.labels import describe_config

    data, out = image_folder(tmp_path / "images"), tmp_path / "out"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, str(ROOT / "examples" / "pretrain_mae.py"), "--data", str(data), "--out", str(out),
                           *TINY, "--batch-size", "2", "--accum", "2", "--max-steps", "3"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "2 process(es), total batch 8" in done.stdout
    rows = [r for r in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in r]
    assert len(rows) == 3 and all({"mto_sing", "mto_ent"} <= r.keys() for r in rows)
    assert json.loads((out / "config.json").read_text())["mto"]["singularity_weight"] == 0.1
    checkpoint = load_checkpoint(import_model(str(out), tmp_path / "ckpt").path)
    assert checkpoint.config.preset == "mae-mto" and checkpoint.config.mto == preset("mae-mto").mto
    assert describe_config(checkpoint.config).label == "MAE + MTO"
    assert checkpoint.model.mto_config.hard_recalibration


def test_a_folder_without_images_is_refused_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "pretrain_mae.py"), "--data", str(tmp_path / "empty"),
                           "--out", str(tmp_path / "out"), *TINY], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "holds no images" in done.stderr
    assert not (tmp_path / "out").exists()
