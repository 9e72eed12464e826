"""The core functions behind the app's figures and controls, without Streamlit: uploads that say
what was done to them, checkpoints told apart by their own config, pairs within one method,
each run's own baseline, pixel-exact images with their masks and patches marked."""

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_support import (MASK_COLOUR, METHOD_NAMES, baseline_for, describe_run, mask_heads, mask_site,
                         outline_patch, paint_patches, pair_problem, read_upload, run_progress, short_label,
                         upscale)
from mto_core.data.images import DataError

from .conftest import small_config

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


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


def test_shipped_checkpoints_are_told_apart_by_their_config():
    names = [n for method in METHOD_NAMES for n in (method, f"{method}-mto")]
    labels = {name: describe_run(CHECKPOINTS / name).label for name in names}
    assert labels == {"simmim": "SimMIM (baseline)", "simmim-mto": "SimMIM + MTO",
                      "conmim": "ConMIM (baseline)", "conmim-mto": "ConMIM + MTO",
                      "mae": "MAE (baseline)", "mae-mto": "MAE + MTO",
                      "bootmae": "BootMAE (baseline)", "bootmae-mto": "BootMAE + MTO"}


def test_pages_name_the_layers_that_see_mask_tokens():
    sites = {m: mask_site(small_config(m, "model.num_heads=4").model) for m in METHOD_NAMES}
    assert sites == {"simmim": "encoder", "conmim": "encoder", "mae": "MAE decoder",
                     "bootmae": "BootMAE pixel decoder"}
    assert {m: mask_heads(small_config(m, "model.num_heads=4").model) for m in METHOD_NAMES} == \
        {"simmim": 4, "conmim": 4, "mae": 2, "bootmae": 2}


def test_run_folder_and_broken_folder(tmp_path):
    run = tmp_path / "run"
    (run / "step-00000004").mkdir(parents=True)
    (run / "config.json").write_text(small_config("mae").to_json())
    assert describe_run(run).label == "MAE (baseline)"
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("not json")
    assert describe_run(tmp_path / "broken").method == ""


def test_a_cross_method_pair_is_refused():
    simmim, mae = small_config("simmim"), small_config("mae-mto")
    assert pair_problem(simmim, small_config("simmim-mto")) is None
    problem = pair_problem(simmim, mae)
    assert problem and "SimMIM" in problem and "MAE" in problem and "same method" in problem
    problem = pair_problem(small_config("conmim"), small_config("simmim-mto"))
    assert problem and "ConMIM" in problem and "SimMIM" in problem
    assert pair_problem(small_config("bootmae"), small_config("bootmae-mto")) is None


def test_each_run_is_scored_against_a_baseline_of_its_own_method():
    infos = {k: describe_run(CHECKPOINTS / k.split("/")[1]) for k in
             ("checkpoints/mae", "checkpoints/mae-mto", "checkpoints/simmim", "checkpoints/simmim-mto")}
    assert baseline_for("checkpoints/simmim-mto", infos) == "checkpoints/simmim"
    assert baseline_for("checkpoints/mae-mto", infos) == "checkpoints/mae"
    assert baseline_for("checkpoints/simmim", infos) is None
    del infos["checkpoints/simmim"]
    assert baseline_for("checkpoints/simmim-mto", infos) is None  # never the MAE baseline
    simmim, mto = describe_run(CHECKPOINTS / "simmim"), describe_run(CHECKPOINTS / "simmim-mto")
    runs = {"runs/app-1-simmim": simmim, "runs/app-2-simmim": simmim, "runs/app-2-simmim-mto": mto}
    assert baseline_for("runs/app-2-simmim-mto", runs) == "runs/app-2-simmim"


def test_short_labels():
    assert short_label("checkpoints/simmim-mto") == "simmim-mto"
    long = short_label("runs/app-20261125-081500-simmim-mto-with-a-long-name")
    assert len(long) == 28 and "…" in long and long.endswith("long-name")


def test_upscale_is_pixel_exact_and_at_least_160_px():
    image = torch.rand(1, 28, 28)
    big = upscale(image)
    assert big.shape == (168, 168) and big.dtype == np.uint8
    assert (big[::6, ::6] == upscale(image, 1)).all() and (big[5::6, 5::6] == big[::6, ::6]).all()
    assert upscale(torch.rand(3, 28, 28)).shape == (168, 168, 3)


def test_masked_patches_are_painted_in_a_colour_no_grey_garment_has():
    image = torch.full((1, 28, 28), 0.5)
    mask = torch.zeros(49, dtype=torch.bool)
    mask[[0, 48]] = True
    painted = paint_patches(image, mask, 4)
    assert painted.shape == (3, 28, 28)
    assert torch.allclose(painted[:, 0, 0] * 255, torch.tensor(MASK_COLOUR, dtype=torch.float32))
    assert torch.allclose(painted[:, 10, 10], torch.full((3,), 0.5))
    assert painted[0, 0, 0] != painted[1, 0, 0]  # not grey


def test_the_clicked_patch_is_outlined_inside_its_image():
    image = torch.zeros(1, 28, 28)
    big = outline_patch(image, 8, 4)  # row 1, column 1
    assert big.shape == (168, 168, 3)
    assert tuple(big[24, 30]) == (255, 60, 0) and tuple(big[36, 36]) == (0, 0, 0)
    assert tuple(big[0, 0]) == (0, 0, 0)


def test_run_progress_gives_rate_and_time_left():
    rows = [{"kind": "train", "step": 5 * i, "images_per_s": 100.0 + (i == 1) * 1000} for i in range(1, 5)]
    progress = run_progress(rows, 100, 10)
    assert progress["step"] == 20 and progress["images_per_s"] == 100.0
    assert progress["eta_s"] == pytest.approx(80 * 10 / 100)
    assert run_progress([], 100, 10)["eta_s"] is None
