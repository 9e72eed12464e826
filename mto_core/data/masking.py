"""Patch masks: random (SimMIM/MAE) and block-wise (BEiT), always from an explicit generator.

Every mask is a bool tensor (B, N), True = masked, N = grid * grid patches in row-major
order, and hides exactly ``round(ratio * N)`` patches (rounded to whole mask units), so that
MAE can gather the same number of visible tokens from every sample.
"""

from __future__ import annotations

import math

import torch

from ..config import ConfigError, MaskConfig, check_ratio


def masked_count(num_units: int, ratio: float) -> int:
    """How many of ``num_units`` units a ratio hides: at least one, and at least one kept."""
    check_ratio(ratio)
    return min(max(round(ratio * num_units), 1), num_units - 1)


def random_mask(batch: int, grid: int, ratio: float, generator: torch.Generator,
                mask_patch_size: int = 1) -> torch.Tensor:
    """Hide a random set of mask units per sample (SimMIM's generator when unit > 1).

    A mask unit is a ``mask_patch_size x mask_patch_size`` square of patches.
    Returns (batch, grid * grid) bool, True = masked.
    """
    if mask_patch_size < 1 or grid % mask_patch_size:
        raise ConfigError(f"mask_patch_size ({mask_patch_size}) must divide the patch grid ({grid})")
    units = grid // mask_patch_size
    k = masked_count(units * units, ratio)
    order = torch.rand(batch, units * units, generator=generator).argsort(dim=1)
    mask = torch.zeros(batch, units * units, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    mask = mask.view(batch, units, 1, units, 1).expand(-1, -1, mask_patch_size, -1, mask_patch_size)
    return mask.reshape(batch, grid * grid)


def block_mask(batch: int, grid: int, ratio: float, generator: torch.Generator,
               min_block: int = 4, max_aspect: float = 3.0) -> torch.Tensor:
    """BEiT-style block-wise mask: rectangles of random area and aspect until the count is met.

    Blocks are added while they fit the remaining budget; any shortfall left after a bounded
    number of tries is topped up with random patches, so the count is exact.
    Returns (batch, grid * grid) bool, True = masked.
    """
    target = masked_count(grid * grid, ratio)
    log_aspect = math.log(1 / max_aspect), math.log(max_aspect)
    masks = torch.zeros(batch, grid, grid, dtype=torch.bool)
    for b in range(batch):
        mask = masks[b]
        for _ in range(10 * grid):
            remaining = target - int(mask.sum())
            if remaining <= 0:
                break
            u = torch.rand(4, generator=generator).tolist()
            area = min_block + u[0] * max(remaining - min_block, 0)
            aspect = math.exp(log_aspect[0] + u[1] * (log_aspect[1] - log_aspect[0]))
            h = min(grid, max(1, round(math.sqrt(area * aspect))))
            w = min(grid, max(1, round(math.sqrt(area / aspect))))
            top = int(u[2] * (grid - h + 1))
            left = int(u[3] * (grid - w + 1))
            block = mask[top:top + h, left:left + w]
            new = int((~block).sum())
            if 0 < new <= remaining:
                block.fill_(True)
        shortfall = target - int(mask.sum())
        if shortfall > 0:
            free = (~mask).flatten().nonzero().squeeze(1)
            pick = free[torch.randperm(free.numel(), generator=generator)[:shortfall]]
            mask.view(-1)[pick] = True
    return masks.view(batch, grid * grid)


def make_mask(batch: int, grid: int, ratio: float, generator: torch.Generator | int,
              kind: str = "random", mask_patch_size: int = 1, min_block: int = 4) -> torch.Tensor:
    """Mask of the given kind; ``generator`` may be a seed. (batch, grid * grid) bool."""
    if isinstance(generator, int):
        generator = torch.Generator().manual_seed(generator)
    if kind == "random":
        return random_mask(batch, grid, ratio, generator, mask_patch_size)
    if kind == "block":
        return block_mask(batch, grid, ratio, generator, min_block)
    raise ConfigError(f"unknown mask kind '{kind}'; choose 'random' or 'block'")


def hidden_count(grid: int, config: MaskConfig) -> int:
    """Patches every mask of :func:`make_mask` with this config hides, known without drawing one."""
    if config.kind == "random":
        units = grid // config.mask_patch_size
        return masked_count(units * units, config.ratio) * config.mask_patch_size**2
    return masked_count(grid * grid, config.ratio)
