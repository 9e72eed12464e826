"""Bad input across the library: each case gets a clear error naming the problem."""

import io
import math
import re
import tomllib
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mto_core.app_support import read_upload, safe_path, toggle_patches
from mto_core.config import ConfigError, apply_overrides, preset
from mto_core.data import DataError, read_image
from mto_core.masking import make_mask
from mto_core.objective import build_model

from .conftest import small_config

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
    import json

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


def test_upload_limits():
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(buffer, format="JPEG")
    assert read_upload(buffer.getvalue(), 28, 1).image.shape == (1, 28, 28)
    with pytest.raises(DataError, match="limit is 1 MiB"):
        read_upload(b"\0" * (2 * 2**20), 28, 1, limit=2**20)
    with pytest.raises(DataError, match="empty"):
        read_upload(b"", 28, 1)
    with pytest.raises(DataError, match="not a readable image"):
        read_upload(b"GIF89a broken", 28, 1)


def test_hand_edited_mask_bounds():
    mask = torch.zeros(49, dtype=torch.bool)
    assert toggle_patches(mask, [3, 3, 5]).nonzero().flatten().tolist() == [5]
    with pytest.raises(ValueError, match="outside the grid"):
        toggle_patches(mask, [49])


def test_app_paths_stay_inside_runs_and_checkpoints(tmp_path):
    runs, ckpts = tmp_path / "runs", tmp_path / "checkpoints"
    runs.mkdir()
    ckpts.mkdir()
    assert safe_path(runs / "x", [runs, ckpts]) == (runs / "x").resolve()
    for outside in (tmp_path / "elsewhere", runs / ".." / "..", Path("/etc/passwd")):
        with pytest.raises(ValueError, match="outside the allowed folders"):
            safe_path(outside, [runs, ckpts])
    (runs / "link").symlink_to("/etc")
    with pytest.raises(ValueError, match="outside the allowed folders"):
        safe_path(runs / "link" / "passwd", [runs, ckpts])


def test_app_binds_to_localhost_and_limits_uploads():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost" and config["server"]["maxUploadSize"] <= 10


def test_no_pickle_is_loaded_from_user_files():
    sources = "\n".join(p.read_text() for p in (ROOT / "mto_core").rglob("*.py"))
    sources += "\n".join(p.read_text() for p in (ROOT / "app").rglob("*.py"))
    assert "import pickle" not in sources and "pickle.load" not in sources
    loads = re.findall(r"torch\.load\(([^)]*)\)", sources)
    assert loads and all("weights_only=True" in call for call in loads)
