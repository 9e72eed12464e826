"""What the four methods share: their output, the MTO plug-in step, the memory check on a config."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import ConfigError, ModelConfig, MTOConfig
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
    from it).
    """

    encoder: nn.Module
    predicts = "pixels"

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


def model_size(model: ModelConfig) -> tuple[int, int]:
    """(parameters, bytes) that building ``model`` and passing one image through it take:
    fp32 weights and position tables, plus the activations of its largest layer (the MLP's
    hidden tokens and one attention map). Pure arithmetic on the config: nothing is allocated."""
    tokens, pixels = model.num_patches + 1, model.patch_size**2 * model.in_chans

    def stack(width: int, depth: int, heads: int) -> tuple[int, int]:
        hidden = int(width * model.mlp_ratio)  # timm's Block: qkv, proj, fc1, fc2, two norms
        params = depth * (4 * width * width + 2 * width * hidden + 9 * width + hidden)
        return params, tokens * (4 * width + hidden) + heads * tokens * tokens

    d = model.embed_dim
    params, activations = stack(d, model.depth, model.num_heads)
    params += pixels * d + (tokens + 3) * d  # patch embedding, positions, [CLS], mask token, norm
    encoder = params
    if model.method == "simmim":
        params += d * pixels + pixels
    elif model.method == "conmim":  # the projection head (d -> 2d -> d), then the teacher's copy
        params = 2 * (params + 4 * d * d + 3 * d)
    else:
        dd = model.decoder_dim
        decoder, decoder_activations = stack(dd, model.decoder_depth, model.decoder_heads)
        params += decoder + d * dd + (tokens + 4) * dd + dd * pixels + pixels
        activations = max(activations, decoder_activations)
        if model.method == "bootmae":  # cross-attention in the pixel decoder, the feature decoder, the teacher
            features, feature_activations = stack(d, model.decoder_depth, model.num_heads)
            cross = model.decoder_depth * (2 * dd * dd + 2 * d * dd + 6 * dd + 2 * d + 4 * d * d + 8 * d)
            params += cross + features + 2 * d * d + 5 * d + encoder
            activations = max(activations, feature_activations)
    return params, 4 * (params + activations)


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
