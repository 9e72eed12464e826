"""What a stack of blocks records for MTO's losses and the analysis: per-layer hidden states,
attention maps, the token mask, and the rows a visible-first pass leaves.

The models (:mod:`mto_core.models.vit`) fill these; MTO's losses (:mod:`mto_core.mto.plugin`)
and the analysis read them. They live here, below both, so that neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class LossRows:
    """What MTO's losses read from a visible-first pass (:func:`mto_core.models.vit.run_blocks`): the first
    ``visible`` tokens of each sample are [CLS] and its visible patches, the rest masked.

    hidden: {l: h^l (B, T, D)} visible-first; entropy: {l: H (B, H, M)} of the masked queries'
    attention rows (nats); mass: {l: (B, H, V)} the visible queries' attention mass on masked
    keys (unrecalibrated layers only: in recalibrated ones it is exactly 0).
    """

    visible: int
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    entropy: dict[int, torch.Tensor] = field(default_factory=dict)
    mass: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass
class TokenTrace:
    """What a pass through a stack of blocks left behind.

    hidden: {l: h^l (B, T, D)} for the layers asked for, l = 0 is the input with position.
    attn: {l: A^l (B, H, T, T)} post-softmax, l = 1..L, for the layers asked for.
    token_mask: (B, T) bool, True = a mask token (the [CLS] token counts as visible).
    rows: what MTO's losses read, on the visible-first path; path: the path's name.
    """

    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    token_mask: torch.Tensor | None = None
    rows: LossRows | None = None
    path: str = "token-order"  # models.vit.TokenOrder.name
