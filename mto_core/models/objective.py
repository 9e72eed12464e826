"""What every method shares: its output, the MTO plug-in step, the registry of methods, the
parameter count and memory check on a config."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import ConfigError, MethodFacts, ModelConfig, MTOConfig
from ..mto.plugin import mto_losses, plan, total_loss
from ..mto.records import TokenTrace
from .vit import patchify, unpatchify


@dataclass
class MIMOutput:
    """loss: L_MIM + weighted MTO terms; pred (B, N, .) in the model's target space (pixels
    p*p*C, or ConMIM's features); trace: hidden states and attention of the layers that see mask
    tokens (BootMAE: its pixel decoder's); features: BootMAE's feature decoder output (B, N, D)."""

    loss: torch.Tensor
    mim_loss: torch.Tensor
    pred: torch.Tensor
    trace: TokenTrace
    mto: dict[str, torch.Tensor] = field(default_factory=dict)
    features: torch.Tensor | None = None


class MIMModel(nn.Module):
    """Base of :class:`~mto_core.models.simmim.SimMIM`, :class:`~mto_core.models.mae.MAE`,
    :class:`~mto_core.models.conmim.ConMIM` and :class:`~mto_core.models.bootmae.BootMAE`.

    Inputs are images (B, C, H, W) in [0, 1]; the model normalizes them with
    ``pixel_mean``/``pixel_std`` itself, so reconstructions come back in [0, 1] too.
    ``predicts``: what ``pred`` holds, ``"pixels"`` or ``"features"`` (no image can be drawn
    from it). ``facts``: the method's :class:`~mto_core.config.MethodFacts`, which
    :func:`register_method` makes known to the rest of mto.
    """

    encoder: nn.Module
    predicts = "pixels"
    facts: MethodFacts | None = None

    @classmethod
    def step_flops(cls, model: ModelConfig, ratio: float) -> float:
        """Model FLOPs (matmuls only) of one training step on one image at mask ratio ``ratio``:
        3 x the forward (forward + backward), plus a momentum teacher's forward where there is one."""
        raise NotImplementedError(f"{cls.__name__} does not count its FLOPs; define {cls.__name__}.step_flops "
                                  "to benchmark it")

    def __init__(self, model: ModelConfig, mto: MTOConfig) -> None:
        super().__init__()
        self.config, self.mto_config = model, mto
        self.plan = plan(mto, model.mask_layers)
        # per-channel statistics as (1, C, 1, 1) buffers, outside the weights; one number stays a float
        for name in ("pixel_mean", "pixel_std"):
            value = getattr(model, name)
            if isinstance(value, list):
                stat = torch.tensor(value * (model.in_chans if len(value) == 1 else 1), dtype=torch.float32)
                self.register_buffer(f"_{name}", stat.view(1, -1, 1, 1), persistent=False)

    def _stat(self, name: str) -> float | torch.Tensor:
        return getattr(self, f"_{name}") if isinstance(getattr(self.config, name), list) else getattr(self.config, name)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self._stat("pixel_mean")) / self._stat("pixel_std")

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction target (B, N, p*p*C) of images in [0, 1]."""
        return patchify(self.normalize(images), self.config.patch_size)

    def check_pixels(self) -> None:
        """ValueError, in one line, if this model predicts no pixels (ConMIM predicts features)."""
        if self.predicts != "pixels":
            raise ValueError(f"{self.config.method} predicts the teacher's patch features, not pixels, so there "
                             "is no pixel reconstruction to show; see how its predictions match the teacher's "
                             "features with mto_core.feature_match_ranks, or use a simmim, mae or bootmae checkpoint")

    def to_pixels(self, pred: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Predicted patches (B, N, p*p*C) -> images (B, C, H, W) in [0, 1]."""
        self.check_pixels()
        images_n = unpatchify(pred, self.config.patch_size, self.config.in_chans)
        return (images_n * self._stat("pixel_std") + self._stat("pixel_mean")).clamp(0, 1)

    def check_images(self, images: torch.Tensor) -> None:
        c, s = self.config.in_chans, self.config.img_size
        if images.ndim != 4 or images.shape[1:] != (c, s, s):
            raise ValueError(f"this model takes images of shape (B, {c}, {s}, {s}); got "
                             f"{tuple(images.shape)}. Use mto_core.data.images.prepare_images to resize "
                             "and convert channels.")

    def finish(self, mim: torch.Tensor, pred: torch.Tensor, trace: TokenTrace, *more: TokenTrace,
               features: torch.Tensor | None = None) -> MIMOutput:
        """Add the MTO terms switched on in the config to the objective's loss; with ``more``
        traces (BootMAE's second decoder) each term is the mean over the stacks."""
        losses: dict[str, torch.Tensor] = {}
        if self.mto_config.enabled:
            stacks = [mto_losses(t, self.mto_config, self.plan.depth) for t in (trace, *more)]
            losses = {name: sum(s[name] for s in stacks) / len(stacks) for name in stacks[0]}
        return MIMOutput(total_loss(mim, losses, self.mto_config), mim, pred, trace, losses, features)

    def after_step(self, step: int, total_steps: int) -> None:
        """Called by the engine after optimizer step ``step`` (0-based) of ``total_steps``: the
        momentum teacher's update where the method has one (:mod:`mto_core.models.teacher`)."""

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen-probe features: average-pooled encoder patch tokens of whole images, (B, D)."""
        return self.encoder.features(self.normalize(images))


def masked_mean(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``error`` (B, N) over the positions where ``mask`` (B, N) is True; no
    data-dependent shape, so a compiled graph holds it whole."""
    return (error * mask).sum() / mask.sum()


def stack_flops(tokens: int, dim: int, depth: int, mlp_ratio: float) -> float:
    """Forward FLOPs of ``depth`` pre-norm blocks on ``tokens`` tokens (matmuls only)."""
    linear = 2 * tokens * dim * dim * (3 + 1 + 2 * mlp_ratio)
    attention = 2 * 2 * tokens * tokens * dim
    return depth * (linear + attention)


# The registered methods' model classes, by ``model.method`` (models/build.py registers the four).
MODELS: dict[str, type[MIMModel]] = {}


def register_method(model_class: type[MIMModel]) -> type[MIMModel]:
    """Make ``model_class`` (a :class:`MIMModel` with its ``facts``) a method of mto: its presets
    (``name``, ``name-mto``), ``mto train --preset``, the benchmarks and the app's labels all read
    it from here. Returns the class, so it can decorate one."""
    from ..config import METHODS

    facts = vars(model_class).get("facts") if isinstance(model_class, type) else None  # its own, not inherited
    if not (isinstance(model_class, type) and issubclass(model_class, MIMModel) and isinstance(facts, MethodFacts)):
        raise TypeError(f"{model_class!r} is not a MIMModel subclass with MethodFacts of its own in `facts`")
    METHODS[facts.name] = facts
    MODELS[facts.name] = model_class
    return model_class


_COUNTS: dict[tuple, int] = {}  # (model class, config's repr) -> parameters


def parameter_count(model: ModelConfig) -> int:
    """Parameters of the model ``model`` describes, counted on copies built on the ``meta`` device
    (shapes only: nothing is allocated). A stack's blocks are alike, so the count is affine in
    ``depth`` and ``decoder_depth``: three builds of one or two blocks give it for any depth, and an
    absurd depth costs no time."""
    if model.method not in MODELS:
        raise ConfigError(f"unknown method '{model.method}'; choose one of {', '.join(MODELS)}")

    def count(depth: int, decoder_depth: int) -> int:
        shape = dataclasses.replace(model, depth=depth, decoder_depth=decoder_depth)
        key = (MODELS[model.method], repr(shape))
        if key not in _COUNTS:  # the app scans dozens of run folders of a few shapes: build each shape once
            with torch.device("meta"):
                built = MODELS[model.method](shape, MTOConfig())
            _COUNTS[key] = sum(p.numel() for p in built.parameters())
        return _COUNTS[key]

    base = count(1, 1)
    return base + (model.depth - 1) * (count(2, 1) - base) + (model.decoder_depth - 1) * (count(1, 2) - base)


def model_size(model: ModelConfig) -> tuple[int, int]:
    """(parameters, bytes) that building ``model`` and passing one image through it take: fp32
    weights, plus the activations of its largest layer (the MLP's hidden tokens and one attention
    map)."""
    tokens = model.num_patches + 1
    widths = [(model.embed_dim, model.num_heads)]
    if not model.mask_in_encoder:
        widths.append((model.decoder_dim, model.decoder_heads))
    activations = max(tokens * (4 + model.mlp_ratio) * width + heads * tokens * tokens
                      for width, heads in widths)
    params = parameter_count(model)
    return params, int(4 * (params + activations))


def check_model_fits(model: ModelConfig) -> None:
    """ConfigError if building ``model`` would take more memory than this machine has."""
    params, needed = model_size(model)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > memory:
        raise ConfigError(f"this model cannot fit in memory: {params:,} parameters and one image's "
                          f"activations need about {needed / 2**30:,.0f} GiB, and this machine has "
                          f"{memory / 2**30:.0f} GiB (model.embed_dim={model.embed_dim}, depth="
                          f"{model.depth}, img_size={model.img_size}, patch_size={model.patch_size}). "
                          "Use a smaller model.")
