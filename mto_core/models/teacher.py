"""The momentum (EMA) teacher of ConMIM and BootMAE: a frozen copy of student modules.

After optimizer step s of S the engine calls the model's ``after_step(s, S)``, which moves each
teacher parameter toward its student:

    theta_t <- m(s) theta_t + (1 - m(s)) theta_s,   m(s) = 1 - (1 - m0) (1 + cos(pi s / S)) / 2

(m0 = ``model.teacher_momentum``; m rises from m0 at the first step to 1 at the last, the
schedule of ConMIM's code). The teacher is a submodule, so its weights are in the model's
state_dict: in every checkpoint and every resume. Its parameters never take gradients
(``requires_grad=False``) and its forward runs under ``torch.no_grad``; under DDP every rank
updates it from the same (all-reduced) student weights, so the copies stay equal.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def momentum_at(step: int, total_steps: int, start: float) -> float:
    """m(s): ``start`` at step 0, rising on a half cosine to 1 at ``total_steps``."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - start) * (1.0 + math.cos(math.pi * progress)) / 2.0


class MomentumTeacher(nn.Module):
    """Frozen copies of the named student modules (``MomentumTeacher(encoder=..., head=...)``
    holds ``self.encoder`` and ``self.head``), updated by :meth:`update`."""

    def __init__(self, **students: nn.Module) -> None:
        super().__init__()
        self.names = tuple(students)
        for name, module in students.items():
            setattr(self, name, copy.deepcopy(module))
        for param in self.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, students: dict[str, nn.Module], momentum: float) -> None:
        """theta_t <- momentum theta_t + (1 - momentum) theta_s for every parameter of every
        student module (``students`` maps the names given at construction to the live modules)."""
        mine = [p for name in self.names for p in getattr(self, name).parameters()]
        theirs = [p.detach() for name in self.names for p in students[name].parameters()]
        torch._foreach_lerp_(mine, theirs, 1.0 - momentum)
