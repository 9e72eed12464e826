"""Bad input across the library: each case gets a clear error naming the problem."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image


from mto_core.config import ConfigError, apply_overrides, preset
from mto_core.data.images import DataError, read_image
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model

from .conftest import run_folder_with, small_config

ROOT = Path(__file__).resolve().parent.parent


@settings(max_examples=60, deadline=None)
@given(grid=st.sampled_from([2, 4, 7, 14]), ratio=st.floats(allow_nan=True, allow_infinity=True),
       kind=st.sampled_from(["random", "block"]), seed=st.integers(0, 2**31))
def test_any_ratio_gives_an_exact_mask_or_a_clear_error(grid, ratio, kind, seed):
    if not (math.isfinite(ratio) and 0 < ratio < 1):
        with pytest.raises(ConfigError, match="strictly between 0 and 1"):
            make_mask(2, grid, ratio, seed, kind=kind)
        return
    mask = make_mask(2, grid, ratio, seed, kind=kind)
    n = grid * grid
    assert (mask.sum(1) == min(max(round(ratio * n), 1), n - 1)).all()


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_are_an_image_or_a_data_error(data):
    try:
        tensor = read_image(data, 28, 1)
    except DataError as error:
        assert "upload" in str(error)
    else:
        assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.uint8


@settings(max_examples=40, deadline=None)
@given(key=st.text(min_size=1, max_size=20), value=st.one_of(st.integers(), st.floats(), st.text(max_size=5),
                                                            st.booleans(), st.none()))
def test_any_override_is_applied_or_refused_with_a_config_error(key, value):

    try:
        config = apply_overrides(preset("simmim-mto"), [f"mto.{key}={json.dumps(value)}"])
    except ConfigError:
        return
    assert getattr(config.mto, key.strip()) == value


def test_image_size_or_channels_that_do_not_match_the_model():
    config = small_config("simmim")
    model = build_model(config.model, config.mto)
    mask = make_mask(1, 7, 0.5, 0)
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, 28, 28\)"):
        model(torch.rand(1, 3, 28, 28), mask)
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, 28, 28\)"):
        model(torch.rand(1, 1, 32, 32), mask)


def test_huge_image_is_refused(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("L", (8000, 8000)).save(path)
    with pytest.raises(DataError, match="limit is 50,000,000 pixels"):
        read_image(path, 28, 1)


def test_no_pickle_is_loaded_from_user_files():
    sources = "\n".join(p.read_text() for p in (ROOT / "mto_core").rglob("*.py"))
    sources += "\n".join(p.read_text() for p in (ROOT / "app").rglob("*.py"))
    assert "import pickle" not in sources and "pickle.load" not in sources
    loads = re.findall(r"torch\.load\(([^)]*)\)", sources)
    assert loads and all("weights_only=True" in call for call in loads)


ABSURD = [{"embed_dim": 65536}, {"depth": 10**7}, {"img_size": 4_000_000}]


@pytest.mark.parametrize("fields", ABSURD, ids=lambda f: next(iter(f)))
def test_absurd_sizes_in_config_json_are_refused_before_allocating(tmp_path, fields):
    """``mto eval`` on the run, under a 6 GiB address-space limit: an attempt to build the model
    would fail to allocate (or run past the timeout) instead of answering in one line."""
    import resource
    import subprocess
    import sys

    folder = run_folder_with(tmp_path, fields)

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    result = subprocess.run([sys.executable, "-m", "mto_core.cli", "eval", str(tmp_path)], capture_output=True,
                            text=True, timeout=120, preexec_fn=limit_memory)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(folder / "config.json") in lines[0] and "cannot fit in memory" in lines[0]


def test_one_class_image_folder_warns_that_the_probe_says_nothing(tmp_path):
    from mto_core.config import MTOWarning
    from mto_core.data.images import load_image_folder
    from mto_core.eval.probes import probe

    for i in range(6):
        Image.new("L", (28, 28), 40 * i).save(tmp_path / f"{i}.png")
    data = load_image_folder(tmp_path, 28, 1)
    config = small_config("simmim")
    model = build_model(config.model, config.mto)
    for kind in ("knn", "linear"):
        with pytest.warns(MTOWarning, match="one class only"):
            assert probe(model, data, data, kind).accuracy == 1.0


def test_training_a_model_too_large_for_memory_is_refused_before_writing(tmp_path):
    from mto_core.training.engine import train

    with pytest.raises(ConfigError, match="cannot fit in memory"):
        train(small_config("simmim", "model.embed_dim=65536"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("resume", [False, True])
def test_training_into_a_checkpoint_folder_is_refused_and_changes_nothing(tmp_path, resume):
    import shutil

    from mto_core.training.run_folder import TrainingError
    from mto_core.training.engine import train

    copy = tmp_path / "simmim"
    shutil.copytree(Path(__file__).resolve().parent.parent / "checkpoints" / "simmim", copy)
    before = _snapshot(copy)
    with pytest.raises(TrainingError, match="is a checkpoint .*not a run folder"):
        train(small_config("simmim", "train.max_steps=1", "train.epochs=0"), copy, resume=resume, progress=False)
    assert _snapshot(copy) == before


def test_training_into_a_folder_of_other_files_is_refused_and_changes_nothing(tmp_path):
    from mto_core.training.run_folder import TrainingError
    from mto_core.training.engine import train

    (tmp_path / "config.json").write_text('{"my": "important settings"}')
    (tmp_path / "metrics.jsonl").write_text('{"note": 1}\n')
    (tmp_path / "notes.txt").write_text("keep me")
    before = _snapshot(tmp_path)
    with pytest.raises(TrainingError, match=r"not an mto run's \(config.json, metrics.jsonl, notes.txt\)"):
        train(small_config("simmim", "train.max_steps=1", "train.epochs=0"), tmp_path, progress=False)
    assert _snapshot(tmp_path) == before
    empty = tmp_path / "new"
    empty.mkdir()  # an empty folder is fine
    train(small_config("simmim", "data.train_limit=64", "train.batch_size=32", "train.max_steps=1",
                       "train.epochs=0"), empty, progress=False)
    assert (empty / "step-00000001").is_dir()
