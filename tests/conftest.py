"""Shared helpers: a very small model so that the whole suite runs in minutes on 2 cores."""

from __future__ import annotations

import pytest
import torch

from mto_core.config import RunConfig, apply_overrides, preset

SMALL = ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.decoder_dim=32",
         "model.decoder_depth=2", "model.decoder_heads=2", "data.root=shipped"]


def small_config(name: str = "simmim-mto", *extra: str) -> RunConfig:
    """A preset shrunk to width 32 and depth 2, on the shipped Fashion-MNIST subset."""
    return apply_overrides(preset(name), [*SMALL, *extra])


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
