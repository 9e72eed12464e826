"""MAE: the encoder sees visible patches only; a light decoder holds the mask tokens; MSE."""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MethodFacts, ModelConfig, MTOConfig
from ..data.masking import masked_count
from .objective import MIMModel, MIMOutput, masked_mean, stack_flops
from .vit import (Block, MaskedViT, StackPath, TokenOrder, init_weights, run_blocks, sincos_pos_embed,
                  visible_first_order)


def decoder_input(y: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor,
                  pos_embed: torch.Tensor) -> torch.Tensor:
    """The tokens entering a decoder, (B, 1 + N, D) in patch order: [CLS] and the visible tokens
    of y (B, 1 + |V|, D), the mask token at the masked positions of ``mask`` (B, N), positions added."""
    b, n = mask.shape
    masked = n - (y.shape[1] - 1)
    tokens = torch.cat([y[:, 1:], mask_token.to(y.dtype).expand(b, masked, -1)], dim=1)
    index = visible_first_order(mask).unsqueeze(-1).expand(b, n, y.shape[2])
    tokens = torch.empty_like(tokens).scatter(1, index, tokens)  # back to patch order
    return torch.cat([y[:, :1], tokens], dim=1) + pos_embed.to(y.dtype)


class MAE(MIMModel):
    facts = MethodFacts("mae", "MAE", mask_in_encoder=False, mto_layers="decoder", mask_ratio=0.75)

    @classmethod
    def forward_flops(cls, model: ModelConfig, ratio: float) -> float:
        """The forward's FLOPs on one image: the encoder on the visible patches, the decoder on all."""
        n, pixels = model.num_patches, model.patch_size**2 * model.in_chans
        d, dd, visible = model.embed_dim, model.decoder_dim, n - masked_count(n, ratio)
        return (2 * visible * pixels * d + stack_flops(1 + visible, d, model.depth, model.mlp_ratio)
                + 2 * (1 + visible) * d * dd + stack_flops(1 + n, dd, model.decoder_depth, model.mlp_ratio)
                + 2 * (1 + n) * dd * pixels)

    @classmethod
    def step_flops(cls, model: ModelConfig, ratio: float) -> float:
        return 3 * cls.forward_flops(model, ratio)

    def __init__(self, model: ModelConfig, mto: MTOConfig) -> None:
        super().__init__(model, mto)
        self.encoder = MaskedViT(model.img_size, model.patch_size, model.in_chans,
                                 model.embed_dim, model.depth, model.num_heads, model.mlp_ratio,
                                 eps=model.layer_norm_eps)
        d = model.decoder_dim
        self.decoder_embed = nn.Linear(model.embed_dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(d, model.grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(self.decoder_block(d, model.decoder_heads)
                                            for _ in range(model.decoder_depth))
        self.decoder_norm = nn.LayerNorm(d, eps=model.layer_norm_eps)
        self.decoder_pred = nn.Linear(d, model.patch_size**2 * model.in_chans)
        for module in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            module.apply(init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def decoder_block(self, width: int, heads: int) -> Block:
        """One layer of the pixel decoder (BootMAE's take the encoder's features too)."""
        return Block(width, heads, self.config.mlp_ratio, self.config.layer_norm_eps)

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized pixels, or per-patch standardized pixels with ``norm_pix_loss``."""
        target = super().target(images)
        if self.config.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    def to_pixels(self, pred: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """With ``norm_pix_loss`` each patch is put back with the true patch's mean and std
        (as MAE's own visualisation does): the shape is the model's, the level is not."""
        if self.config.norm_pix_loss:
            target = super().target(images)
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            pred = pred * (var + 1e-6).sqrt() + mean
        return super().to_pixels(pred, images)

    def forward(self, images: torch.Tensor, mask: torch.Tensor, *, path: StackPath = TokenOrder(),
                probs_layers: Collection[int] = (), hidden_layers: Collection[int] = ()) -> MIMOutput:
        """images (B, C, H, W) in [0, 1], mask (B, N) bool True = masked.

        L_MIM = mean over masked patches of the mean squared error. The trace covers the
        decoder (T = 1 + N tokens), whose layers see the mask token. path: the decoder's path
        (:func:`mto_core.models.vit.run_blocks`; training takes ``VisibleFirst``), which also gives the
        encoder its count of visible patches; probs_layers / hidden_layers: attention maps /
        hidden states to trace, in token order.
        """
        self.check_images(images)
        latent, _ = self.encoder(self.normalize(images), mask, drop_masked=True, path=path)
        x = decoder_input(self.decoder_embed(latent), mask, self.mask_token, self.decoder_pos_embed)
        token_mask = F.pad(mask, (1, 0), value=False)
        x, trace = run_blocks(self.decoder_blocks, x, token_mask, self.plan, path,
                              probs_layers=probs_layers, hidden_layers=hidden_layers)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        mim = masked_mean((pred - self.target(images)).pow(2).mean(-1), mask)
        return self.finish(mim, pred, trace)
