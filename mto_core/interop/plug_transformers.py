"""MTO on transformers' ``ViTMAEForPreTraining`` (in its decoder) and ``ViTForMaskedImageModeling``
(in its encoder), through transformers' own extension points and hooks, never its classes.

- Attention: an attention function registered with ``AttentionInterface`` under the name
  ``mto`` and set on the stack's config (the MAE decoder keeps its own copy of the config). In
  recalibrated layers it adds an additive float mask; in the layers MTO's losses read it takes
  the rows they need from q and k through mto's fused kernels (every sample with the same count
  of visible tokens: always in MAE) or else forms the softmax itself and keeps the map; the
  attention output itself comes from the implementation the model was loaded with.
- The mask: MAE's decoder hides ``ids_restore >= len_keep`` (a forward pre-hook on the decoder);
  the MIM ViT hides ``bool_masked_pos`` (a forward pre-hook on the model).
- The loss: a forward hook on the model adds the weighted terms to ``outputs.loss``, which an
  unchanged ``Trainer`` then scales and logs as its own.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any

import torch
import torch.nn.functional as F

from ..config import MTOConfig
from .plug import Plug, PlugError, hook_hidden, mto_config_of, saved_dict

NAME = "mto"
MAE_ARCH, SIMMIM_ARCH = "ViTMAEForPreTraining", "ViTForMaskedImageModeling"
# attention module -> (plug, layer number); read by the registered attention function
_SITES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention signature: (B, H, T, d) in, ((B, T, H, d), weights or None) out."""
    site = _SITES.get(module)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype,
                                     device=query.device).masked_fill(~attention_mask, float("-inf"))
    if site is None:  # a module of a model this process never plugged
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling,
                                             dropout_p=dropout if module.training else 0.0)
        return out.transpose(1, 2).contiguous(), None
    plug, layer, original = site
    bias = plug.bias(layer, query.dtype)
    if attention_mask is not None:
        bias = attention_mask if bias is None else bias + attention_mask
    plug.record_rows(layer, query, key, scaling)
    if plug.reads_maps(layer):
        logits = (query @ key.transpose(-2, -1)) * scaling
        if bias is not None:
            logits = logits + bias
        probs = logits.softmax(-1, dtype=torch.float32).to(query.dtype)
        plug.record_attn(layer, probs)
        out = F.dropout(probs, p=dropout, training=module.training) @ value
        return out.transpose(1, 2).contiguous(), probs
    if bias is None or original in ("eager", "sdpa"):
        return original_attention(module, original)(module, query, key, value, bias, scaling=scaling,
                                                    dropout=dropout, **kwargs)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=scaling,
                                         dropout_p=dropout if module.training else 0.0)
    return out.transpose(1, 2).contiguous(), None


def original_attention(module, name: str):
    """The attention function ``name`` of transformers (eager: the model's own module's)."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    eager = sys.modules[type(module).__module__].eager_attention_forward
    return eager if name == "eager" else ALL_ATTENTION_FUNCTIONS.get_interface(name, eager)


def register() -> None:
    """The ``mto`` attention function (and its mask function, sdpa's) in transformers' registries."""
    import transformers

    interface = getattr(transformers, "AttentionInterface", None)
    if not callable(getattr(interface, "register", None)):
        raise PlugError(f"add_mto: transformers {transformers.__version__} has no AttentionInterface.register; "
                        "it needs transformers >= 5 (pip install 'transformers>=5'); the model was left unchanged")
    interface.register(NAME, _attention)
    masks = getattr(transformers, "AttentionMaskInterface", None)
    if masks is not None:
        from transformers.masking_utils import sdpa_mask

        masks.register(NAME, sdpa_mask)


def kind(model: Any) -> str | None:
    """MAE_ARCH, SIMMIM_ARCH, or None for a model this module does not plug."""
    if not type(model).__module__.startswith("transformers."):
        return None
    import transformers

    if isinstance(model, transformers.ViTMAEForPreTraining):
        return MAE_ARCH
    if isinstance(model, transformers.ViTForMaskedImageModeling):
        return SIMMIM_ARCH
    return None


def plug(model: Any, mto: MTOConfig | None) -> Plug:
    """Put MTO on a transformers MAE or MIM ViT (see the module's docstring)."""
    arch = kind(model)
    if arch == MAE_ARCH:
        stack_config, layers, method = model.decoder.config, model.decoder.decoder_layers, "mae"
    else:
        stack_config, layers, method = model.config, model.vit.layers, "simmim"
    saved = getattr(model.config, "mto", None)
    config = mto_config_of(mto, method, len(layers), saved)
    register()
    state = Plug(config, len(layers), method, rows=True)
    original = stack_config._attn_implementation or "sdpa"
    if original == NAME:
        original = "sdpa"

    def restore_attention() -> None:
        stack_config._attn_implementation = original_name

    original_name = stack_config._attn_implementation
    stack_config._attn_implementation = NAME
    state.on_remove(restore_attention)
    for layer, block in enumerate(layers, start=1):
        _SITES[block.attention] = (state, layer, original)
        state.on_remove(lambda module=block.attention: _SITES.pop(module, None))
    had, before = hasattr(model.config, "mto"), getattr(model.config, "mto", None)
    model.config.mto = saved_dict(config)

    def restore_config() -> None:
        if had:
            model.config.mto = before
        else:
            del model.config.mto

    state.on_remove(restore_config)

    def reset(module, args, kwargs):
        state.reset()
        state.may_reorder = not any(kwargs.get(name, getattr(model.config, name, False))
                                    for name in ("output_hidden_states", "output_attentions"))
        if arch == SIMMIM_ARCH:
            masked = kwargs.get("bool_masked_pos", args[1] if len(args) > 1 else None)
            if masked is not None:
                state.begin(F.pad(masked.bool(), (1, 0), value=False))

    def finish(module, args, kwargs, output):
        if isinstance(output, tuple):
            return (state.finish(output[0]), *output[1:]) if output and torch.is_tensor(output[0]) else output
        if getattr(output, "loss", None) is not None:
            output.loss = state.finish(output.loss)
        else:
            state.finish(None)
        return output

    state.on_remove(model.register_forward_pre_hook(reset, with_kwargs=True).remove)
    state.on_remove(model.register_forward_hook(finish, with_kwargs=True).remove)
    if arch == MAE_ARCH:
        def decoder_mask(module, args, kwargs):
            latent = args[0] if args else kwargs["hidden_states"]
            ids_restore = args[1] if len(args) > 1 else kwargs["ids_restore"]
            state.begin(F.pad(ids_restore >= latent.shape[1] - 1, (1, 0), value=False), visible=latent.shape[1])

        state.on_remove(model.decoder.register_forward_pre_hook(decoder_mask, with_kwargs=True).remove)
    hook_hidden(state, layers)
    hook_stack_order(state, layers)
    return state


def hook_stack_order(state: Plug, layers) -> None:
    """Visible tokens first from the first layer's input to the last layer's output (see
    :meth:`Plug.enter_stack`); the first hook to see the input, the last to see the output."""
    def enter(module, args, kwargs):
        mask = args[1] if len(args) > 1 else kwargs.get("attention_mask")
        if args:
            return (state.enter_stack(args[0], mask is None), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": state.enter_stack(kwargs["hidden_states"], mask is None)}

    def leave(module, args, output):
        if isinstance(output, tuple):
            return (state.leave_stack(output[0]), *output[1:])
        return state.leave_stack(output)

    state.on_remove(layers[0].register_forward_pre_hook(enter, with_kwargs=True, prepend=True).remove)
    state.on_remove(layers[-1].register_forward_hook(leave).remove)
