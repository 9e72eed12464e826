"""logic/files.py: uploads, paths inside the allowed folders, the checkpoints the app can open."""

import io
from pathlib import Path

import numpy as np
import pytest
from logic.files import read_upload, safe_path
from PIL import Image

from mto_core.data.images import DataError

from ..conftest import run_folder_with


def _encode(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **{"format": "PNG", **options})
    return buffer.getvalue()


def test_a_16_bit_upload_is_scaled_not_clipped():
    ramp = np.linspace(0, 65535, 28 * 28).reshape(28, 28).astype(np.uint16)
    loaded = read_upload(_encode(Image.fromarray(ramp)), 28, 1)
    assert any("16-bit" in note for note in loaded.notes)
    # clipping would make every pixel above 255 white: about 99.6% of this ramp
    assert (loaded.image == 255).float().mean() < 0.05
    assert 100 < loaded.image.float().mean() < 155


def test_transparency_is_laid_on_the_chosen_background_with_a_notice():
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:14, :, 3] = 255  # top half opaque grey, bottom half fully transparent
    data = _encode(Image.fromarray(rgba, "RGBA"))
    white = read_upload(data, 28, 1, background=(255, 255, 255))
    black = read_upload(data, 28, 1)
    assert any("transparent" in n and "white" in n for n in white.notes)
    assert any("black" in n for n in black.notes)
    assert int(white.image[0, 24, 5]) == 255 and int(black.image[0, 24, 5]) == 0
    assert int(white.image[0, 4, 5]) == 200
    opaque = read_upload(_encode(Image.new("RGBA", (28, 28), (9, 9, 9, 255))), 28, 1)
    assert opaque.notes == []


def test_an_animation_says_it_uses_the_first_frame():
    frames = [Image.new("L", (28, 28), v) for v in (10, 200, 90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = read_upload(buffer.getvalue(), 28, 1)
    assert any("3 frames" in n and "first frame" in n for n in loaded.notes)
    assert abs(int(loaded.image[0, 0, 0]) - 10) <= 2
    assert loaded.preview.ndim == 3 and loaded.preview.shape[2] == 3


def test_a_wide_upload_is_centred_on_a_square_not_stretched():
    wide = np.zeros((30, 60), np.uint8)
    wide[5:25, 20:40] = 255  # a white 20 x 20 square in the middle of a black 60 x 30 image
    loaded = read_upload(_encode(Image.fromarray(wide)), 28, 1)
    assert any("60 x 30" in note and "not stretched" in note for note in loaded.notes)
    image = loaded.image[0].float()
    # on a 60 x 60 black square the white one stays square, rows and columns 9.3..18.7 of 28;
    # stretched to 28 x 28 it would have been 20 rows tall (4.7..23.3)
    assert image[10:18, 10:18].min() > 200
    assert image[:8].max() < 10 and image[21:].max() < 10 and image[:, :8].max() < 10
    # box averaging: the edge pixels lie between black and white, no overshoot past either
    assert 0 < float(image[9, 12]) < 255 and image.min() == 0


def test_a_light_background_says_the_models_know_dark_ones():
    light = np.full((28, 28), 240, np.uint8)
    light[8:20, 10:18] = 30  # a dark item on a light background
    assert any("background is light" in n for n in read_upload(_encode(Image.fromarray(light)), 28, 1).notes)
    assert not any("background is light" in n
                   for n in read_upload(_encode(Image.fromarray(255 - light)), 28, 1).notes)


def test_upload_errors_are_plain_words():
    for data in (b"hello", b"GIF89a broken", b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        with pytest.raises(DataError) as error:
            read_upload(data, 28, 1)
        assert "BytesIO" not in str(error.value) and "0x" not in str(error.value)
        assert "PNG, JPEG" in str(error.value)


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


def test_app_lists_runs_too_large_or_linked_outside_as_unusable(tmp_path):
    from logic.files import scan_checkpoints

    runs, ckpts, outside = tmp_path / "runs", tmp_path / "checkpoints", tmp_path / "elsewhere"
    for name in ("good", "huge"):
        (runs / name).mkdir(parents=True)
    run_folder_with(runs / "good", {})
    run_folder_with(runs / "huge", {"embed_dim": 65536})
    outside.mkdir()
    run_folder_with(outside, {})
    (runs / "link").symlink_to(outside)
    found, unusable = scan_checkpoints([runs, ckpts], tmp_path)
    assert list(found) == ["runs/good"]
    assert "cannot fit in memory" in unusable["runs/huge"]
    assert "outside the allowed folders" in unusable["runs/link"]
