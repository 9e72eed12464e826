"""Images drawn pixel-exact, with masked patches painted and a patch framed; masks edited by hand;
the patch a page opens on."""

from __future__ import annotations

import math

import numpy as np
import torch

from .palette import MASK_COLOUR


def upscale(image: torch.Tensor | np.ndarray, min_size: int = 160) -> np.ndarray:
    """(C, H, W) float in [0, 1] or uint8, or (H, W[, 3]) uint8 -> (H*k, W*k[, 3]) uint8 with
    each pixel repeated k x k times, k the smallest integer with H*k >= ``min_size``: pixel-exact,
    no browser smoothing."""
    if isinstance(image, torch.Tensor):
        x = image.detach().float().cpu()
        if image.dtype != torch.uint8:
            x = x.clamp(0, 1) * 255
        array = x.round().byte().numpy()
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    else:
        array = np.asarray(image, dtype=np.uint8)
    k = max(1, math.ceil(min_size / array.shape[0]))
    return array.repeat(k, axis=0).repeat(k, axis=1)


def display_size(img_size: int, photos: bool) -> int:
    """The side a page draws an image at: a small photo's patch grid large (each 4 px patch of a
    32 px photo 32 screen pixels wide), a grey 28 px image at 160, an image of 160 px or more at its
    own size."""
    return img_size if img_size >= 160 else (256 if photos else 160)


def paint_patches(image: torch.Tensor, mask: torch.Tensor, patch_size: int,
                  colour: tuple[int, int, int] = MASK_COLOUR) -> torch.Tensor:
    """(C, H, W) image in [0, 1] -> (3, H, W) with the patches of ``mask`` (N,) bool filled with
    ``colour``: hidden patches that stand out on any garment."""
    rgb = image.float().expand(3, -1, -1) if image.shape[0] == 1 else image.float()
    g = image.shape[-1] // patch_size
    pix = mask.view(g, 1, g, 1).expand(-1, patch_size, -1, patch_size).reshape(g * patch_size, -1)
    fill = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255
    return torch.where(pix, fill.expand_as(rgb), rgb)


def outline_patch(image: torch.Tensor, patch: int, patch_size: int, min_size: int = 160,
                  colour: tuple[int, int, int] = (255, 60, 0)) -> np.ndarray:
    """(C, H, W) image -> upscaled RGB uint8 with a 2-pixel frame around patch ``patch``."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    big = upscale(rgb, min_size).copy()
    k = big.shape[0] // image.shape[-1]
    g = image.shape[-1] // patch_size
    r, c = divmod(int(patch), g)
    top, left, side = r * patch_size * k, c * patch_size * k, patch_size * k
    bottom, right = top + side, left + side
    for y0, y1, x0, x1 in ((top, top + 2, left, right), (bottom - 2, bottom, left, right),
                           (top, bottom, left, left + 2), (top, bottom, right - 2, right)):
        big[y0:y1, x0:x1] = colour
    return big


def toggle_patches(mask: torch.Tensor, patches: list[int]) -> torch.Tensor:
    """A copy of the (N,) bool mask with the given patch indices flipped."""
    out = mask.clone()
    for index in patches:
        if not 0 <= index < out.numel():
            raise ValueError(f"patch {index} is outside the grid of {out.numel()} patches")
        out[index] = ~out[index]
    return out


def default_query(image: torch.Tensor, mask: torch.Tensor, patch_size: int, centre: bool = False) -> int:
    """The patch the Attention page opens on: a visible patch on the object, the one with the most
    ink (the largest mean pixel; Fashion-MNIST's items are light on black), the nearest to the
    centre among equals; not a masked or empty corner. ``centre``: a photo, whose subject is mostly
    in the middle (its brightest patch may be sky): the visible patch nearest the centre."""
    x = image.float()[0] if image.ndim == 4 else image.float()
    g = x.shape[-1] // patch_size
    ink = x.mean(0).reshape(g, patch_size, g, patch_size).mean(dim=(1, 3)).flatten()
    rows, cols = np.divmod(np.arange(g * g), g)
    middle = (g - 1) / 2
    distance = torch.tensor((rows - middle) ** 2 + (cols - middle) ** 2, dtype=torch.float32)
    score = -distance if centre else ink - 1e-6 * distance
    score = torch.where(mask.bool(), torch.full_like(ink, -float("inf")), score)
    return int(score.argmax())


def pipeline_svg(template: str, img_size: int, patch_size: int) -> str:
    """The Learn page's pipeline diagram (app/assets/pipeline.svg, drawn for the tiny model) with
    the chosen model's image size, patch count and patch size written in."""
    grid = img_size // patch_size
    n = grid * grid
    return (template
            .replace('<text x="60" y="228">28 x 28</text>', f'<text x="60" y="228">{img_size} x {img_size}</text>')
            .replace('<text x="205" y="212">49 patches</text><text x="205" y="228">4 x 4 px</text>',
                     f'<text x="205" y="212">{n} patches</text><text x="205" y="228">{patch_size} x {patch_size} px</text>')
            .replace("(all 49 positions go in)", f"(all {n} positions go in)"))
