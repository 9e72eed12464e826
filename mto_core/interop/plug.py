"""What :func:`mto_core.add_mto` puts on someone else's model, whatever its library: the MTO
config and plan of the stack that sees mask tokens, the token mask of the pass under way, what
the stack's layers leave for MTO's losses, and how to take it all off again.

A library's plug (:mod:`.plug_transformers`, :mod:`.plug_timm`) finds the token mask, supplies
hard recalibration inside attention and feeds :meth:`Plug.record_attn` /
:meth:`Plug.record_hidden`; :meth:`Plug.finish` then adds the weighted terms to the model's own
loss with mto's own functions (:func:`mto_core.mto.plugin.mto_losses`, on full attention maps in
token order, the reference form of :mod:`mto_core.mto.terms`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from ..config import ConfigError, MTOConfig, preset, set_value, validate
from ..mto import attention_stats
from ..mto.plugin import MTOPlan, mto_losses, plan, total_loss
from ..mto.records import LossRows, TokenTrace


class PlugError(ValueError):
    """A model or MTO config :func:`mto_core.add_mto` cannot take; the message says what it takes."""


def mto_config_of(mto: MTOConfig | dict | None, method: str, layers: int, saved: Any = None) -> MTOConfig:
    """The MTO config to plug: ``mto``, else the one saved with the model (``saved``, a dict read
    from its config.json), else the ``<method>-mto`` preset's; checked against the stack's
    ``layers`` (PlugError in one line)."""
    if mto is None:
        mto = saved if isinstance(saved, dict) else preset(f"{method}-mto").mto
    run = preset(f"{method}-mto")
    if method == "mae":
        run.model.decoder_depth = layers
    else:
        run.model.depth = layers
    try:
        if isinstance(mto, dict):
            for key, value in mto.items():
                set_value(run, f"mto.{key}", value)
        elif isinstance(mto, MTOConfig):
            run.mto = dataclasses.replace(mto)
        else:
            raise ConfigError(f"mto must be an MTOConfig (e.g. mto_core.preset('{method}-mto').mto) or None, "
                              f"got {type(mto).__name__}")
        validate(run)
    except ConfigError as error:
        raise PlugError(f"add_mto: {error}; the model was left unchanged") from None
    return run.mto


def recalibration_allowed(token_mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) bool, True = may attend: visible queries do not see masked keys."""
    return ~(~token_mask[:, :, None] & token_mask[:, None, :]).unsqueeze(1)


class Plug:
    """The MTO of one model's mask-token stack of ``layers`` layers (numbered from 1).

    ``token_mask`` (B, T) bool, True = a mask token, in the stack's token order ([CLS] first and
    visible), set by :meth:`begin` for each pass; maps and hidden states are kept only while a
    pass is under way (a checkpointed layer's recomputation in backward keeps none).

    Two forms of what the losses read, as in mto's own stacks: where every sample has ``visible``
    visible tokens and the plug can see q and k (``rows``: transformers), only the rows the terms
    need, from fused kernels (:mod:`mto_core.mto.attention_stats`) on visible-first tokens (the
    whole stack's, :meth:`enter_stack`, or else a gather per layer);
    otherwise full attention maps in token order."""

    def __init__(self, config: MTOConfig, layers: int, method: str, rows: bool = False) -> None:
        self.config, self.layers, self.method, self.can_read_rows = config, layers, method, rows
        self.plan: MTOPlan = plan(config, layers)
        self.probs_layers = self.plan.row_layers | self.plan.visible_row_layers
        self.token_mask: torch.Tensor | None = None
        self.rows: LossRows | None = None
        self.order: torch.Tensor | None = None
        self.inverse: torch.Tensor | None = None
        self.visible: int | None = None
        self.stacked = False
        self.may_reorder = True
        self.recording = False
        self.attn: dict[int, torch.Tensor] = {}
        self.hidden: dict[int, torch.Tensor] = {}
        self.terms: dict[str, torch.Tensor] = {}
        self._bias: dict[torch.dtype, torch.Tensor] = {}
        self._undo: list[Callable[[], None]] = []

    def on_remove(self, undo: Callable[[], None]) -> None:
        """Something :meth:`remove` undoes (last registered, first undone)."""
        self._undo.append(undo)

    def remove(self) -> None:
        while self._undo:
            self._undo.pop()()
        self.reset()

    def reset(self) -> None:
        """Before a pass of the whole model: no mask until the plug finds one."""
        self.token_mask, self.recording, self.rows, self.order, self.visible = None, False, None, None, None
        self.inverse, self.stacked, self.may_reorder = None, False, True
        self.attn, self.hidden, self._bias = {}, {}, {}

    def begin(self, token_mask: torch.Tensor, visible: int | None = None) -> None:
        """The stack is about to run on tokens with this mask (B, T); ``visible``: the count of
        visible tokens in every sample, where the caller knows it."""
        self.token_mask, self.recording = token_mask.bool(), True
        self.attn, self.hidden, self._bias = {}, {}, {}
        self.rows = self.order = self.inverse = self.visible = None
        self.stacked = False
        if self.can_read_rows and self.plan.reads_rows:
            if visible is None:  # one read of the mask's counts: equal in every sample, or full maps
                counts = (~self.token_mask).sum(1)
                visible = int(counts[0]) if bool((counts == counts[0]).all()) else None
            if visible is not None:
                self.rows, self.visible = LossRows(visible), visible
                self.order = attention_stats_order(self.token_mask)
                self.inverse = torch.argsort(self.order, dim=1)

    def enter_stack(self, hidden: torch.Tensor, reorder: bool) -> torch.Tensor:
        """The stack's input (B, T, C), visible tokens first where the plug reads rows and
        ``reorder`` (nothing outside the stack reads its layers' token order): every layer's
        attention is then one block pattern shared by the batch and needs no gather."""
        self.stacked = reorder and self.may_reorder and self.order is not None
        if not self.stacked:
            return hidden
        return hidden.gather(1, self.order[..., None].expand_as(hidden))

    def leave_stack(self, hidden: torch.Tensor) -> torch.Tensor:
        """The stack's output back in token order."""
        if not self.stacked:
            return hidden
        return hidden.gather(1, self.inverse[..., None].expand_as(hidden))

    # The rows are computed alike in a pass and in a checkpointed layer's recomputation (which
    # must repeat the pass's operations), and kept only in the pass: so they key on ``order``,
    # which lasts until the next pass, and are stored only while ``recording``.

    def reads_maps(self, layer: int) -> bool:
        """Whether layer ``layer`` must form its attention map for the losses."""
        return self.order is None and layer in self.probs_layers

    def record_rows(self, layer: int, q: torch.Tensor, k: torch.Tensor, scale: float) -> None:
        """What the losses read of layer ``layer``'s attention, from q, k (B, H, T, d) in token order."""
        if self.order is None:
            return
        b, h, t, d = q.shape
        order, visible, keep = self.order, self.visible, self.recording and self.rows is not None
        if self.stacked:  # q, k already visible-first
            if layer in self.plan.row_layers:
                entropy = attention_stats.masked_row_entropy(q, k, visible, scale)
                if keep:
                    self.rows.entropy[layer] = entropy
            if layer in self.plan.visible_row_layers:
                mass = attention_stats.mass_on_masked(q * (scale * d**0.5), k, visible)
                if keep:
                    self.rows.mass[layer] = mass
            return
        if layer in self.plan.row_layers:
            masked = order[:, None, visible:, None].expand(b, h, t - visible, d)
            entropy = attention_stats.masked_row_entropy(q.gather(2, masked), k, 0, scale)
            if keep:
                self.rows.entropy[layer] = entropy
        if layer in self.plan.visible_row_layers:
            index = order[:, None, :, None].expand(b, h, t, d)
            q_first, k_first = q.gather(2, index), k.gather(2, index)
            mass = attention_stats.mass_on_masked(q_first * (scale * d**0.5), k_first, visible)
            if keep:
                self.rows.mass[layer] = mass

    def recalibrated(self, layer: int) -> bool:
        return self.token_mask is not None and layer <= self.plan.recalibrated

    def allowed(self, layer: int) -> torch.Tensor | None:
        """Layer ``layer``'s hard recalibration as a bool mask (B, 1, T, T), or None."""
        return recalibration_allowed(self.token_mask) if self.recalibrated(layer) else None

    def bias(self, layer: int, dtype: torch.dtype) -> torch.Tensor | None:
        """Layer ``layer``'s hard recalibration as an additive float mask in ``dtype``, or None."""
        if not self.recalibrated(layer):
            return None
        if dtype not in self._bias:
            if self.stacked:  # visible first: one block pattern for the whole batch
                first = torch.zeros(1, self.token_mask.shape[1], dtype=torch.bool, device=self.token_mask.device)
                first[:, self.visible:] = True
                allowed = recalibration_allowed(first)
            else:
                allowed = recalibration_allowed(self.token_mask)
            self._bias[dtype] = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
                ~allowed, float("-inf"))
        return self._bias[dtype]

    def record_attn(self, layer: int, probs: torch.Tensor) -> None:
        if self.recording and layer in self.probs_layers:
            self.attn[layer] = probs

    def record_hidden(self, layer: int, hidden: torch.Tensor) -> None:
        if layer not in self.plan.hidden_layers:
            return
        if self.order is not None:
            if not self.stacked:
                hidden = hidden.gather(1, self.order[..., None].expand_as(hidden))
            if self.recording and self.rows is not None:
                self.rows.hidden[layer] = hidden
        elif self.recording:
            self.hidden[layer] = hidden

    def finish(self, loss: torch.Tensor | None) -> torch.Tensor | None:
        """The model's own loss plus the weighted MTO terms of this pass (``terms`` keeps them,
        unweighted and detached); the loss unchanged where the pass had no mask."""
        recording, self.recording = self.recording, False
        self.terms = {}
        if not recording or loss is None or self.token_mask is None:
            return loss
        trace = TokenTrace(hidden=self.hidden, attn=self.attn, token_mask=self.token_mask, rows=self.rows)
        kept = [*self.attn.values(), *self.hidden.values()]
        if self.rows is not None:
            kept += [*self.rows.hidden.values(), *self.rows.entropy.values(), *self.rows.mass.values()]
        if loss.requires_grad and any(not t.requires_grad for t in kept):
            raise PlugError("add_mto: the MTO layers' outputs carry no gradient (gradient checkpointing with "
                            "use_reentrant=True?); enable it with gradient_checkpointing_enable("
                            "gradient_checkpointing_kwargs={'use_reentrant': False}), or turn it off")
        losses = mto_losses(trace, self.config, self.plan.depth)
        self.attn, self.hidden, self.rows = {}, {}, None
        self.terms = {name: value.detach() for name, value in losses.items()}
        return total_loss(loss, losses, self.config) if losses else loss


def attention_stats_order(token_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) indices putting each sample's visible tokens first, each group in order."""
    return torch.argsort(token_mask.to(torch.int8), dim=1, stable=True)


def hook_hidden(plug: Plug, blocks: torch.nn.ModuleList) -> None:
    """h^0 (the first block's input) and h^l (block l's output) into ``plug``."""
    def before(module, args, kwargs):
        x = args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))
        plug.record_hidden(0, x)

    plug.on_remove(blocks[0].register_forward_pre_hook(before, with_kwargs=True).remove)
    for layer, block in enumerate(blocks, start=1):
        def after(module, args, output, layer=layer):
            plug.record_hidden(layer, output[0] if isinstance(output, tuple) else output)

        plug.on_remove(block.register_forward_hook(after).remove)


def saved_dict(config: MTOConfig) -> dict[str, Any]:
    """The MTO config as it is written into a model's config.json (key ``mto``)."""
    return dataclasses.asdict(config)

