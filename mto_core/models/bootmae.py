"""BootMAE: bootstrapped masked autoencoders (Dong et al., ECCV 2022), scaled to 28 x 28.

An MAE encoder on the visible patches and two decoders, each holding its own mask token:

- the pixel decoder (width ``decoder_dim``) predicts the masked patches' normalized pixels (MSE,
  as MAE);
- the feature decoder (the encoder's width) predicts the momentum teacher's features of the
  masked patches: the teacher (:mod:`mto_core.models.teacher`, a copy of the encoder) encodes the
  whole image, and its last block's output (before the final norm) is the target; the loss is
  the mean squared error of the layer-normed (no affine) prediction and target over masked
  patches, weighted by ``model.feature_loss_weight``.

The encoder-to-decoder feature injection (BootMAE's code: each decoder layer cross-attends to
encoder features of the visible patches, between its self-attention and its MLP): the pixel
decoder reads the output of the encoder's first block (low-level context), the feature decoder
that of its last block (:class:`InjectedBlock`).

MTO acts where the mask tokens enter: both decoders, with the same plan (hard recalibration in
both, each loss term the mean over the two stacks); the trace is the pixel decoder's
(docs/mto-spec.md, "BootMAE and ConMIM").
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MethodFacts, ModelConfig, MTOConfig
from ..data.masking import masked_count
from ..mto.records import TokenTrace
from .mae import MAE, decoder_input
from .objective import MIMOutput, masked_mean, stack_flops
from .teacher import MomentumTeacher, momentum_at
from .vit import Block, StackPath, TokenOrder, init_weights, run_blocks


class InjectedBlock(Block):
    """A decoder block that also cross-attends to injected encoder features: self-attention,
    cross-attention (queries: the tokens; keys and values: the context), MLP, each pre-norm
    with a residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, context_dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, mlp_ratio, eps)
        self.heads = num_heads
        self.norm3, self.norm4 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(context_dim, eps=eps)
        self.cross_q = nn.Linear(dim, dim)
        self.cross_kv = nn.Linear(context_dim, 2 * dim)
        self.cross_proj = nn.Linear(dim, dim)

    def cross_attend(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) attends to context (B, S, C) -> (B, T, D)."""
        b, t, d = x.shape
        h = self.heads
        q = self.cross_q(self.norm3(x)).reshape(b, t, h, d // h).transpose(1, 2)
        k, v = (u.transpose(1, 2) for u in self.cross_kv(self.norm4(context)).reshape(
            b, context.shape[1], 2, h, d // h).unbind(2))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.cross_proj(out.transpose(1, 2).reshape(b, t, d))

    def _rest(self, x: torch.Tensor, attended: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        if context is None:
            raise ValueError("a BootMAE decoder block needs the encoder's features (context)")
        x = x + self.ls1(attended)
        x = x + self.cross_attend(x, context)
        return x + self.ls2(self.mlp(self.norm2(x)))


class BootMAE(MAE):
    facts = MethodFacts("bootmae", "BootMAE", mask_in_encoder=False, mto_layers="pixel decoder", mask_ratio=0.75,
                        teacher=True)

    @classmethod
    def step_flops(cls, model: ModelConfig, ratio: float) -> float:
        """MAE's, plus the feature decoder, both decoders' cross-attention to 1 + |V| encoder tokens and
        the teacher's forward on every patch."""
        n, pixels, d, dd = model.num_patches, model.patch_size**2 * model.in_chans, model.embed_dim, model.decoder_dim
        visible = n - masked_count(n, ratio)

        def cross(width: int) -> float:
            return model.decoder_depth * (4 * (1 + n) * width * width + 4 * (1 + visible) * d * width
                                          + 4 * (1 + n) * (1 + visible) * width)

        forward = (cls.forward_flops(model, ratio) + 4 * (1 + n) * d * d
                   + stack_flops(1 + n, d, model.decoder_depth, model.mlp_ratio) + cross(dd) + cross(d))
        teacher = 2 * n * pixels * d + stack_flops(1 + n, d, model.depth, model.mlp_ratio)
        return 3 * forward + teacher

    def __init__(self, model: ModelConfig, mto: MTOConfig) -> None:
        super().__init__(model, mto)
        d = model.embed_dim
        self.feature_embed = nn.Linear(d, d)
        self.feature_mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.feature_blocks = nn.ModuleList(InjectedBlock(d, model.num_heads, model.mlp_ratio, d,
                                                          model.layer_norm_eps)
                                            for _ in range(model.decoder_depth))
        self.feature_norm = nn.LayerNorm(d, eps=model.layer_norm_eps)
        self.feature_pred = nn.Linear(d, d)
        for module in (self.feature_embed, self.feature_blocks, self.feature_norm, self.feature_pred):
            module.apply(init_weights)
        nn.init.normal_(self.feature_mask_token, std=0.02)
        self.teacher = MomentumTeacher(encoder=self.encoder)

    def decoder_block(self, width: int, heads: int) -> Block:
        return InjectedBlock(width, heads, self.config.mlp_ratio, self.config.embed_dim, self.config.layer_norm_eps)

    @torch.no_grad()
    def teacher_features(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's last-block output (before its final norm) of every patch of the whole
        images (B, C, H, W) -> (B, N, D)."""
        depth = self.config.depth
        _, trace = self.teacher.encoder(self.normalize(images), hidden_layers=(depth,))
        return trace.hidden[depth][:, 1:]

    def decode(self, images: torch.Tensor, mask: torch.Tensor, path: StackPath,
               probs_layers: Collection[int], hidden_layers: Collection[int]
               ) -> tuple[torch.Tensor, torch.Tensor, TokenTrace, TokenTrace]:
        """The encoder and both decoders: (pixel prediction (B, N, p*p*C), feature prediction
        (B, N, D), the pixel decoder's trace, the feature decoder's trace)."""
        depth = self.config.depth
        latent, encoded = self.encoder(self.normalize(images), mask, drop_masked=True, path=path,
                                       hidden_layers=(1, depth))
        token_mask = F.pad(mask, (1, 0), value=False)
        x = decoder_input(self.decoder_embed(latent), mask, self.mask_token, self.decoder_pos_embed)
        x, trace = run_blocks(self.decoder_blocks, x, token_mask, self.plan, path, probs_layers=probs_layers,
                              hidden_layers=hidden_layers, context=encoded.hidden[1])
        f = decoder_input(self.feature_embed(latent), mask, self.feature_mask_token, self.encoder.pos_embed)
        f, feature_trace = run_blocks(self.feature_blocks, f, token_mask, self.plan, path,
                                      context=encoded.hidden[depth])
        pixels = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        return pixels, self.feature_pred(self.feature_norm(f))[:, 1:], trace, feature_trace

    def forward(self, images: torch.Tensor, mask: torch.Tensor, *, path: StackPath = TokenOrder(),
                probs_layers: Collection[int] = (), hidden_layers: Collection[int] = ()) -> MIMOutput:
        """images (B, C, H, W) in [0, 1], mask (B, N) bool True = masked.

        L_MIM = pixel MSE + feature_loss_weight x feature MSE, each over masked patches (module
        docstring); pred: the pixel prediction, ``features``: the feature decoder's. path: the
        decoders' path (:func:`mto_core.models.vit.run_blocks`), which also gives the encoder its count
        of visible patches; probs_layers / hidden_layers: the pixel decoder's attention maps /
        hidden states to trace, in token order.
        """
        self.check_images(images)
        pred, features, trace, feature_trace = self.decode(images, mask, path, probs_layers, hidden_layers)
        pixel = masked_mean((pred - self.target(images)).pow(2).mean(-1), mask)
        d = self.config.embed_dim
        error = F.layer_norm(features.float(), (d,)) - F.layer_norm(self.teacher_features(images).float(), (d,))
        mim = pixel + self.config.feature_loss_weight * masked_mean(error.pow(2).mean(-1), mask)
        return self.finish(mim, pred, trace, feature_trace, features=features)

    @torch.no_grad()
    def feature_pair(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(feature prediction, teacher target), both (B, N, D) layer-normed (the space of the
        feature loss) (:func:`mto_core.analysis.measures.feature_match_ranks`)."""
        _, features, _, _ = self.decode(images, mask, TokenOrder(), (), ())
        d = self.config.embed_dim
        return (F.layer_norm(features.float(), (d,)),
                F.layer_norm(self.teacher_features(images).float(), (d,)))

    def after_step(self, step: int, total_steps: int) -> None:
        self.teacher.update({"encoder": self.encoder},
                            momentum_at(step, total_steps, self.config.teacher_momentum))
