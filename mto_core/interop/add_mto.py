"""``mto_core.add_mto(model, mto=None)``: MTO on a model someone already trains, without changing
its class.

Takes transformers' ``ViTMAEForPreTraining`` (MTO in the decoder, where the mask tokens are),
``ViTForMaskedImageModeling`` (MTO in the encoder) and an MAE in facebookresearch/mae's layout on
timm blocks. After the call the model's own forward returns L_MIM + the weighted MTO terms, with
hard recalibration inside its attention, so ``Trainer``, accelerate or a plain loop train it as
before. The terms are mto's own (:mod:`mto_core.mto.plugin`); how each model is reached:
:mod:`.plug_transformers`, :mod:`.plug_timm`.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from ..config import MTOConfig
from . import plug_timm, plug_transformers
from .plug import Plug, PlugError

SUPPORTED = ("transformers' ViTMAEForPreTraining and ViTForMaskedImageModeling, or an MAE in "
             "facebookresearch/mae's layout on timm blocks (blocks, decoder_blocks, mask_token, random_masking)")
_PLUGGED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class MTOHandle:
    """What :func:`add_mto` returns: ``config`` (the MTO config in use), ``terms`` (the last
    forward's unweighted MTO terms, detached: ``rec``, ``sing``, ``ent`` as switched on) and
    :meth:`remove`."""

    def __init__(self, model: nn.Module, plug: Plug) -> None:
        self._model, self._plug = weakref.ref(model), plug

    @property
    def config(self) -> MTOConfig:
        return self._plug.config

    @property
    def terms(self) -> dict[str, torch.Tensor]:
        return dict(self._plug.terms)

    @property
    def active(self) -> bool:
        return self._model() is not None and _PLUGGED.get(self._model()) is self

    def remove(self) -> None:
        """Give the model back exactly as it was (hooks, attention setting, config); a second
        call does nothing."""
        model = self._model()
        if model is not None and _PLUGGED.get(model) is self:
            self._plug.remove()
            del _PLUGGED[model]

    def __repr__(self) -> str:
        return f"MTOHandle({self.config}, active={self.active})"


def add_mto(model: Any, mto: MTOConfig | None = None) -> MTOHandle:
    """Give ``model`` MTO (see the module's docstring). ``mto``: the parts and weights; None
    takes the config saved in the model's config.json by an earlier ``add_mto``, else the
    ``mae-mto`` / ``simmim-mto`` preset's. PlugError in one line, the model unchanged, for a model
    of another kind, a second call, an invalid config or a compiled model."""
    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        raise PlugError("add_mto takes the model itself, not a torch.compile'd one: call add_mto(model) on the "
                        "uncompiled model and train it uncompiled (the hooks are not followed into compiled "
                        "graphs); the model was left unchanged")
    if not isinstance(model, nn.Module):
        raise PlugError(f"add_mto takes a torch model ({SUPPORTED}); got a {type(model).__name__}")
    if model in _PLUGGED:
        raise PlugError(f"this {type(model).__name__} already has MTO (add_mto was called on it before); "
                        "call handle.remove() first to plug it with another config")
    if plug_transformers.kind(model) is not None:
        found = plug_transformers.plug(model, mto)
    elif plug_timm.kind(model) is not None:
        found = plug_timm.plug(model, mto)
    else:
        raise PlugError(f"add_mto supports {SUPPORTED}; got a {type(model).__name__}, which has no stack of "
                        "layers with mask tokens that add_mto knows; the model was left unchanged")
    handle = MTOHandle(model, found)
    _PLUGGED[model] = handle
    return handle
