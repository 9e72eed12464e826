"""Seeded randomness: every draw of a run (data order, augmentations, masks, probe banks) comes
from a generator of (seed, purpose, counter), so that a run resumed from any checkpoint draws
what an uninterrupted one would, and any process of a DDP run draws the same."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, purpose: str, counter: int) -> int:
    """A 63-bit seed from sha256 of ``seed/purpose/counter``."""
    digest = hashlib.sha256(f"{seed}/{purpose}/{counter}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(seed: int, purpose: str, counter: int) -> torch.Generator:
    """A CPU generator seeded with :func:`derive_seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, purpose, counter))
