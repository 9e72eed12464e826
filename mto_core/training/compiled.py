"""``train.compile``: the model compiled for its device, or run eagerly where compiling fails.

The training forward reads nothing back to the host (no graph break: tests/test_compile.py), so
one graph holds the whole model with its MTO losses, and it is compiled whole (``fullgraph``): a
graph break that crept in shows as the fallback's warning, not as a silently slower step.
Mode per device: on the CPU inductor's
default; on CUDA "reduce-overhead" (CUDA graphs, which pay where kernel launches dominate a step)
for models under :data:`SMALL_MODEL` parameters, the default for larger ones, whose kernels are
long enough to hide their launches.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch._dynamo.exc import TorchDynamoException

SMALL_MODEL = 10_000_000


def compile_mode(model: torch.nn.Module, device: torch.device) -> str | None:
    """torch.compile's mode for ``model`` on ``device`` (None: the default)."""
    if device.type == "cuda" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL:
        return "reduce-overhead"
    return None


class EagerFallback:
    """Calls the compiled model; if compiling fails (at its first call, or at a recompile), warns
    once and calls the eager model from then on. Attributes are the eager model's."""

    def __init__(self, compiled: Callable[..., Any] | None, eager: torch.nn.Module) -> None:
        self.compiled, self.eager = compiled, eager

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except TorchDynamoException as error:
                _warn(error)
                self.compiled = None
        return self.eager(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.eager, name)


def _warn(error: Exception) -> None:
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    warnings.warn(f"train.compile: compiling the model failed ({reason}); training goes on in eager "
                  "mode. Set train.compile=false to skip the attempt.", RuntimeWarning, stacklevel=3)


def compile_model(model: torch.nn.Module, device: torch.device,
                  backend: str | Callable = "inductor") -> EagerFallback:
    """``model`` compiled with ``backend`` in the mode of :func:`compile_mode`, falling back to
    eager with one warning where compiling fails (``backend`` is a parameter for the tests)."""
    try:
        mode = compile_mode(model, device) if backend == "inductor" else None
        compiled = torch.compile(model, fullgraph=True, backend=backend, mode=mode)
    except TorchDynamoException as error:
        _warn(error)
        compiled = None
    return EagerFallback(compiled, model)
