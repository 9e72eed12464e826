"""logic/pixels.py: images drawn pixel-exact, painted masks, hand-edited masks, the default query."""

import re

import numpy as np
import pytest
import torch
from logic.palette import MASK_COLOUR
from logic.pixels import outline_patch, paint_patches, toggle_patches, upscale

from .apptest import run, texts


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


def test_hand_edited_mask_bounds():
    mask = torch.zeros(49, dtype=torch.bool)
    assert toggle_patches(mask, [3, 3, 5]).nonzero().flatten().tolist() == [5]
    with pytest.raises(ValueError, match="outside the grid"):
        toggle_patches(mask, [49])


def test_attention_opens_on_a_visible_patch_of_the_object():
    import torch
    from logic.pixels import default_query

    from mto_core import load_fashion_mnist, make_mask

    at = run("pages/3_Attention.py")
    found = re.search(r"Query: patch \*\*(\d+)\*\* \((masked|visible)\)", texts(at))
    assert found and found[2] == "visible", texts(at)
    query = int(found[1])
    image = load_fashion_mnist("test").images[3:4]  # the page's default test image
    mask = make_mask(1, 7, 0.6, 0)[0]
    assert not mask[query] and query != 0
    patch = image[0, 0].reshape(7, 4, 7, 4).float().mean(dim=(1, 3)).flatten()
    assert patch[query] == patch[~mask].max() and patch[query] > 0  # the most ink among the visible patches
    blank = torch.zeros(1, 1, 28, 28)
    assert not make_mask(1, 7, 0.6, 0)[0][default_query(blank, mask, 4)]  # a blank image: still a visible patch


def test_display_size_draws_a_small_photo_large():
    from logic.pixels import display_size

    assert display_size(32, photos=True) >= 256 and display_size(28, photos=False) == 160
    assert display_size(224, photos=True) == 224  # a published model's photo: pixel for pixel
