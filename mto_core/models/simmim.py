"""SimMIM: mask tokens in the encoder, a one-layer linear head, L1 on masked pixels."""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

from ..config import MethodFacts, ModelConfig, MTOConfig
from .objective import MIMModel, MIMOutput, masked_mean, stack_flops
from .vit import MaskedViT, StackPath, TokenOrder, init_weights


class SimMIM(MIMModel):
    facts = MethodFacts("simmim", "SimMIM", mask_in_encoder=True, mto_layers="encoder", mask_ratio=0.6)

    @classmethod
    def step_flops(cls, model: ModelConfig, ratio: float) -> float:
        n, pixels, d = model.num_patches, model.patch_size**2 * model.in_chans, model.embed_dim
        encoder = 2 * n * pixels * d + stack_flops(1 + n, d, model.depth, model.mlp_ratio)
        return 3 * (encoder + 2 * n * d * pixels)

    def __init__(self, model: ModelConfig, mto: MTOConfig) -> None:
        super().__init__(model, mto)
        self.encoder = MaskedViT(model.img_size, model.patch_size, model.in_chans,
                                 model.embed_dim, model.depth, model.num_heads, model.mlp_ratio,
                                 mask_token=True, eps=model.layer_norm_eps)
        self.head = nn.Linear(model.embed_dim, model.patch_size**2 * model.in_chans)
        init_weights(self.head)

    def forward(self, images: torch.Tensor, mask: torch.Tensor, *, path: StackPath = TokenOrder(),
                probs_layers: Collection[int] = (), hidden_layers: Collection[int] = ()) -> MIMOutput:
        """images (B, C, H, W) in [0, 1], mask (B, N) bool True = masked.

        L_MIM = mean over masked patches of the mean absolute pixel error (normalized pixels), or of
        the mean squared error with ``model.pixel_loss="l2"``.
        The trace covers the encoder, whose layers see the mask token. path: the encoder's
        path (:func:`mto_core.models.vit.run_blocks`; training takes ``VisibleFirst``);
        probs_layers / hidden_layers: attention maps / hidden states to trace, in token order.
        """
        self.check_images(images)
        tokens, trace = self.encoder(self.normalize(images), mask, plan=self.plan, path=path,
                                     probs_layers=probs_layers, hidden_layers=hidden_layers)
        pred = self.head(tokens[:, 1:])
        error = pred - self.target(images)
        mim = masked_mean((error.abs() if self.config.pixel_loss == "l1" else error.square()).mean(-1), mask)
        return self.finish(mim, pred, trace)
