"""What SimMIM and MAE share: their output, the MTO plug-in step, building one from a config."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
from torch import nn

from .config import ModelConfig, MTOConfig
from .mto import mto_losses, plan, total_loss
from .vit import TokenTrace, patchify, unpatchify


@dataclass
class MIMOutput:
    """loss: L_MIM + weighted MTO terms; pred (B, N, p*p*C) in the model's target space;
    trace: hidden states and attention of the layers that see mask tokens."""

    loss: torch.Tensor
    mim_loss: torch.Tensor
    pred: torch.Tensor
    trace: TokenTrace
    mto: dict[str, torch.Tensor] = field(default_factory=dict)


class MIMModel(nn.Module):
    """Base of :class:`~mto_core.simmim.SimMIM` and :class:`~mto_core.mae.MAE`.

    Inputs are images (B, C, H, W) in [0, 1]; the model normalizes them with
    ``pixel_mean``/``pixel_std`` itself, so reconstructions come back in [0, 1] too.
    """

    encoder: nn.Module

    def __init__(self, model: ModelConfig, mto: MTOConfig) -> None:
        super().__init__()
        self.config, self.mto_config = model, mto
        self.plan = plan(mto, model.mask_layers)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.config.pixel_mean) / self.config.pixel_std

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """Reconstruction target (B, N, p*p*C) of images in [0, 1]."""
        return patchify(self.normalize(images), self.config.patch_size)

    def to_pixels(self, pred: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Predicted patches (B, N, p*p*C) -> images (B, C, H, W) in [0, 1]."""
        images_n = unpatchify(pred, self.config.patch_size, self.config.in_chans)
        return (images_n * self.config.pixel_std + self.config.pixel_mean).clamp(0, 1)

    def check_images(self, images: torch.Tensor) -> None:
        c, s = self.config.in_chans, self.config.img_size
        if images.ndim != 4 or images.shape[1:] != (c, s, s):
            raise ValueError(f"this model takes images of shape (B, {c}, {s}, {s}); got "
                             f"{tuple(images.shape)}. Use mto_core.data.prepare_images to resize "
                             "and convert channels.")

    def finish(self, mim: torch.Tensor, pred: torch.Tensor, trace: TokenTrace) -> MIMOutput:
        """Add the MTO terms switched on in the config to the objective's loss."""
        losses = mto_losses(trace, self.mto_config, self.plan.depth) if self.mto_config.enabled else {}
        return MIMOutput(total_loss(mim, losses, self.mto_config), mim, pred, trace, losses)

    def layers_for(self, probs_layers: Collection[int], hidden_layers: Collection[int]) -> dict:
        """Keyword arguments for the mask-token stack: MTO's needs plus the caller's."""
        return dict(recalibrated=self.plan.recalibrated,
                    probs_layers=self.plan.probs_layers | frozenset(probs_layers),
                    hidden_layers=self.plan.hidden_layers | frozenset(hidden_layers))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen-probe features: average-pooled encoder patch tokens of whole images, (B, D)."""
        return self.encoder.features(self.normalize(images))


def build_model(model: ModelConfig, mto: MTOConfig) -> MIMModel:
    """A SimMIM or MAE model for ``model.method``, with the MTO parts of ``mto``."""
    from .mae import MAE
    from .simmim import SimMIM

    return SimMIM(model, mto) if model.method == "simmim" else MAE(model, mto)
