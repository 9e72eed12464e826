"""MTO on an MAE in facebookresearch/mae's layout: timm ``Block``s in ``blocks`` and
``decoder_blocks``, a ``mask_token``, ``random_masking(x, mask_ratio) -> (x, mask, ids_restore)``
and ``forward(imgs, mask_ratio) -> (loss, pred, mask)``.

- The mask: the model's own ``random_masking`` is wrapped on the instance (its class is not
  touched) to hand its mask to the plug; [CLS] is prepended, visible.
- Hard recalibration: timm's ``Block.forward(x, attn_mask=None)`` takes a mask and MAE's decoder
  calls ``blk(x)``, so a forward pre-hook supplies it (bool, True = may attend).
- Maps: in the layers MTO's losses read, ``fused_attn`` is off and a hook on ``attn.attn_drop``
  keeps its input, the post-softmax probabilities.
- The loss: a forward hook on the model replaces the first element of its output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MTOConfig
from .plug import Plug, hook_hidden, mto_config_of


def kind(model: Any) -> str | None:
    """'mae-layout' for an MAE in facebookresearch/mae's layout on timm blocks, else None."""
    try:
        from timm.models.vision_transformer import Block
    except ImportError:
        return None
    blocks = getattr(model, "decoder_blocks", None)
    if not (isinstance(model, nn.Module) and isinstance(blocks, nn.ModuleList) and len(blocks)
            and isinstance(getattr(model, "blocks", None), nn.ModuleList)
            and isinstance(getattr(model, "mask_token", None), nn.Parameter)
            and callable(getattr(model, "random_masking", None))):
        return None
    ok = all(isinstance(b, Block) and hasattr(b.attn, "fused_attn") and hasattr(b.attn, "attn_drop") for b in blocks)
    return "mae-layout" if ok else None


def plug(model: nn.Module, mto: MTOConfig | None) -> Plug:
    blocks = model.decoder_blocks
    state = Plug(mto_config_of(mto, "mae", len(blocks), None), len(blocks), "mae")
    masking = model.random_masking
    own = "random_masking" in vars(model)

    def random_masking(*args, **kwargs):
        out = masking(*args, **kwargs)
        state.begin(F.pad(out[1].bool(), (1, 0), value=False))
        return out

    model.random_masking = random_masking

    def restore_masking() -> None:
        if own:
            model.random_masking = masking
        else:
            del model.random_masking

    state.on_remove(restore_masking)
    for layer, block in enumerate(blocks, start=1):
        def recalibrate(module, args, kwargs, layer=layer):
            allowed = state.allowed(layer)
            if allowed is None:
                return None
            given = kwargs.get("attn_mask", args[1] if len(args) > 1 else None)
            return args[:1], {**kwargs, "attn_mask": allowed if given is None else allowed & given}

        state.on_remove(block.register_forward_pre_hook(recalibrate, with_kwargs=True).remove)
        if layer in state.probs_layers:
            fused = block.attn.fused_attn

            def restore(attn=block.attn, fused=fused) -> None:
                attn.fused_attn = fused

            block.attn.fused_attn = False
            state.on_remove(restore)

            def keep(module, args, output, layer=layer):
                state.record_attn(layer, args[0])

            state.on_remove(block.attn.attn_drop.register_forward_hook(keep).remove)

    def reset(module, args, kwargs):
        state.reset()

    def finish(module, args, kwargs, output):
        if isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]):
            return (state.finish(output[0]), *output[1:])
        return output

    state.on_remove(model.register_forward_pre_hook(reset, with_kwargs=True).remove)
    state.on_remove(model.register_forward_hook(finish, with_kwargs=True).remove)
    hook_hidden(state, blocks)
    return state
