"""A masked ViT on timm's building blocks, shared by SimMIM and MAE.

Parameter names match ``timm.models.vision_transformer.VisionTransformer`` (``cls_token``,
``pos_embed``, ``patch_embed.proj``, ``blocks.i.*``, ``norm``), so encoder weights load into
timm's model of the same shape (:func:`to_timm`).

Tokens are (B, T, D) with T = 1 + number of patch tokens (a [CLS] token first). A mask-token
stack runs one of two paths, named by the caller (:func:`run_blocks`):

- :class:`TokenOrder`: tokens in patch order, any mask; hard recalibration is a (B, 1, T, T)
  mask, and the layers whose attention or loss rows are asked for form their maps explicitly.
- :class:`VisibleFirst`: every sample hides the same number of patches, a count the mask sampler
  knows (never read back from the device). Each sample's tokens are put visible-first for the
  whole stack (the blocks are indifferent to token order; the output comes back in patch order),
  so attention splits into contiguous blocks and MTO reads its rows through fused kernels
  (:mod:`mto_core.mto.attention_stats`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._torchvision_compat import ensure_torchvision
from ..mto import attention_stats
from ..mto.plugin import MTOPlan
from ..mto.records import LossRows, TokenTrace

ensure_torchvision()
from timm.layers import Attention, LayerNorm, PatchEmbed  # noqa: E402
from timm.models.vision_transformer import Block as TimmBlock  # noqa: E402


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p * p * C), patches in row-major order, pixels (p, p, C)."""
    b, c, h, w = images.shape
    p = patch_size
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """(B, N, p * p * C) -> (B, C, H, W); the inverse of :func:`patchify` for square grids."""
    b, n, _ = patches.shape
    g = int(round(n**0.5))
    p = patch_size
    x = patches.reshape(b, g, g, p, p, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, g * p, g * p)


def sincos_pos_embed(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding (MAE), (1, [1 +] grid * grid, dim)."""
    if dim % 4:
        raise ValueError(f"sin-cos position embedding needs a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64),
                            torch.arange(grid, dtype=torch.float64), indexing="ij")
    parts = []
    for coord in (xs.flatten(), ys.flatten()):
        angles = coord[:, None] * omega[None]
        parts += [angles.sin(), angles.cos()]
    emb = torch.cat(parts, dim=1).float()
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim), emb])
    return emb.unsqueeze(0)


class MaskedAttention(Attention):
    """timm's Attention that can also return its post-softmax probabilities."""

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, H, T, head_dim) of x (B, T, D), q and k normed."""
        b, t, _ = x.shape  # views of the qkv output, (B, T, H, d) strided: its gradient is one stack, no copy
        q, k, v = (u.transpose(1, 2) for u in self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).unbind(2))
        return self.q_norm(q), self.k_norm(k), v

    def _out(self, out: torch.Tensor) -> torch.Tensor:
        """(B, H, T, d) -> the projected (B, T, D)."""
        b, _, t, _ = out.shape
        return self.proj(self.norm(out.transpose(1, 2).reshape(b, t, self.attn_dim)))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,  # type: ignore[override]
                need_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D); attn_mask (B, 1, T, T) bool, True = may attend. Returns (out, probs)."""
        q, k, v = self._qkv(x)
        probs = None
        if need_probs:
            logits = (q * self.scale) @ k.transpose(-2, -1)
            if attn_mask is not None:
                logits = logits.masked_fill(~attn_mask, float("-inf"))
            probs = logits.softmax(dim=-1)
            out = probs @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self._out(out), probs

    def forward_visible_first(self, x: torch.Tensor, visible: int, recalibrated: bool, entropy: bool,
                              mass: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (B, T, D) visible-first (the first ``visible`` tokens are visible); recalibrated:
        visible queries do not see masked keys. Returns (out, rows): rows['entropy'] = H (B, H, M)
        of the masked queries' rows, rows['mass'] (B, H, V) the visible queries' mass on masked
        keys, as asked; fused kernels only (:mod:`mto_core.mto.attention_stats`)."""
        q, k, v = self._qkv(x)
        rows: dict[str, torch.Tensor] = {}
        if entropy:
            rows["entropy"] = attention_stats.masked_row_entropy(q, k, visible, self.scale)
        if mass:
            rows["mass"] = attention_stats.mass_on_masked(q, k, visible)
        return self._out(attention_stats.attend(q, k, v, visible, recalibrated)), rows


class Block(TimmBlock):
    """timm's pre-norm transformer block with :class:`MaskedAttention`.

    ``context`` (B, S, C): tokens a subclass reads between attention and the MLP (BootMAE's
    decoder blocks, :class:`mto_core.models.bootmae.InjectedBlock`); this block takes none.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                         attn_layer=MaskedAttention, norm_layer=functools.partial(LayerNorm, eps=eps))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,  # type: ignore[override]
                need_probs: bool = False, context: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, probs = self.attn(self.norm1(x), attn_mask, need_probs)
        return self._rest(x, out, context), probs

    def _rest(self, x: torch.Tensor, attended: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """The residual around attention, then the MLP's."""
        x = x + self.ls1(attended)
        return x + self.ls2(self.mlp(self.norm2(x)))

    def forward_visible_first(self, x: torch.Tensor, visible: int, recalibrated: bool, entropy: bool,
                              mass: bool, context: torch.Tensor | None = None
                              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`forward` on visible-first tokens (:meth:`MaskedAttention.forward_visible_first`)."""
        out, rows = self.attn.forward_visible_first(self.norm1(x), visible, recalibrated, entropy, mass)
        return self._rest(x, out, context), rows


@dataclass(frozen=True)
class TokenOrder:
    """The token-order path: tokens in patch order, any mask (samples may hide different counts)."""

    name = "token-order"


@dataclass(frozen=True)
class VisibleFirst:
    """The visible-first path: every sample hides ``masked`` patches, the mask sampler's count
    (:func:`mto_core.data.masking.hidden_count`), so no count is read back from the device. A stack
    that neither recalibrates nor reads loss rows gains nothing from the order and keeps its tokens
    in patch order (the same result, without the reordering)."""

    masked: int
    name = "visible-first"


StackPath = TokenOrder | VisibleFirst


def visible_cannot_see_masked(token_mask: torch.Tensor) -> torch.Tensor:
    """Hard recalibration mask (B, 1, T, T), True = may attend: visible queries skip masked keys."""
    allowed = ~(~token_mask[:, :, None] & token_mask[:, None, :])
    return allowed.unsqueeze(1)


def visible_first_order(mask: torch.Tensor) -> torch.Tensor:
    """(B, N) indices putting each sample's unmasked positions first, each group in order."""
    return torch.argsort(mask.to(torch.int8), dim=1, stable=True)


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, token_mask: torch.Tensor | None, plan: MTOPlan,
               path: StackPath, *, probs_layers: Collection[int] = (), hidden_layers: Collection[int] = (),
               context: torch.Tensor | None = None) -> tuple[torch.Tensor, TokenTrace]:
    """Run ``blocks`` on x (B, T, D) along ``path``; ``plan``: MTO's recalibrated layers and reads;
    ``context`` (B, S, C): what every block reads besides the tokens (BootMAE's injected
    encoder features), or None.

    Layers are numbered from 1 (0 is the input). ``probs_layers`` and ``hidden_layers`` fill the
    trace in token order (full attention maps: the token-order path only). On the token-order
    path MTO's layers are traced in full (``trace.attn``, ``trace.hidden``); on the visible-first
    path what its losses read goes into ``trace.rows`` (:class:`LossRows`).
    """
    if isinstance(path, VisibleFirst):
        if token_mask is None:
            raise ValueError("the visible-first path needs a mask; use TokenOrder() for unmasked images")
        if probs_layers:
            raise ValueError("attention maps are drawn on the token-order path; pass path=TokenOrder()")
        if plan.recalibrated or plan.reads_rows:
            return _run_visible_first(blocks, x, token_mask, plan, path.masked, hidden_layers, context)
    trace = TokenTrace(token_mask=token_mask)
    probs_layers = frozenset(probs_layers) | plan.row_layers | plan.visible_row_layers
    hidden_layers = frozenset(hidden_layers) | plan.hidden_layers
    attn_mask = None
    if plan.recalibrated and token_mask is not None:
        attn_mask = visible_cannot_see_masked(token_mask)
    if 0 in hidden_layers:
        trace.hidden[0] = x
    for layer, block in enumerate(blocks, start=1):
        x, probs = block(x, attn_mask if layer <= plan.recalibrated else None, layer in probs_layers, context)
        if probs is not None:
            trace.attn[layer] = probs
        if layer in hidden_layers:
            trace.hidden[layer] = x
    return x, trace


def _run_visible_first(blocks: nn.ModuleList, x: torch.Tensor, token_mask: torch.Tensor, plan: MTOPlan,
                       masked: int, hidden_layers: Collection[int],
                       context: torch.Tensor | None) -> tuple[torch.Tensor, TokenTrace]:
    """:func:`run_blocks` with each sample's tokens visible-first, ``masked`` of them masked in each."""
    b, t, d = x.shape
    torch._assert_async((token_mask.sum(1) == masked).all(),
                        f"the visible-first path was told every sample hides {masked} patches; some do not")
    index = visible_first_order(token_mask).unsqueeze(-1).expand(b, t, d)
    rows = LossRows(t - masked)
    trace = TokenTrace(token_mask=token_mask, rows=rows, path=VisibleFirst.name)
    x = x.gather(1, index)

    def unsorted(h: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(h).scatter(1, index, h)

    for layer in range(len(blocks) + 1):
        if layer:
            x, found = blocks[layer - 1].forward_visible_first(
                x, rows.visible, layer <= plan.recalibrated, layer in plan.row_layers,
                layer in plan.visible_row_layers, context)
            if "entropy" in found:
                rows.entropy[layer] = found["entropy"]
            if "mass" in found:
                rows.mass[layer] = found["mass"]
        if layer in plan.hidden_layers:
            rows.hidden[layer] = x
        if layer in hidden_layers:
            trace.hidden[layer] = unsorted(x)
    return unsorted(x), trace


class MaskedViT(nn.Module):
    """ViT encoder: patch embedding, [CLS], fixed sin-cos positions, blocks, final norm.

    With ``mask_token=True`` it holds the one learnable mask token w that replaces every
    masked patch (SimMIM, ConMIM); MAE and BootMAE instead drop masked patches (``drop_masked=True``).
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
                 num_heads: int, mlp_ratio: float = 4.0, mask_token: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        self.patch_size, self.in_chans, self.embed_dim = patch_size, in_chans, embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sincos_pos_embed(embed_dim, self.grid), requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if mask_token else None
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.apply(init_weights)
        nn.init.normal_(self.cls_token, std=0.02)
        if self.mask_token is not None:
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None, *, drop_masked: bool = False,
                plan: MTOPlan = MTOPlan(), path: StackPath = TokenOrder(), probs_layers: Collection[int] = (),
                hidden_layers: Collection[int] = ()) -> tuple[torch.Tensor, TokenTrace]:
        """images (B, C, H, W), mask (B, N) bool -> (normed tokens (B, T, D), trace).

        SimMIM: masked patches are replaced by w, T = 1 + N. MAE (``drop_masked``): only the
        visible patches go in, T = 1 + |V| (every sample must hide the same number).
        plan, path, probs_layers, hidden_layers: :func:`run_blocks`.
        """
        x = self.patch_embed(images)
        b, n, d = x.shape
        pos = self.pos_embed.to(x.dtype)
        token_mask = None
        if mask is not None:
            if mask.shape != (b, n):
                raise ValueError(f"mask must have shape {(b, n)} (batch, patches), got {tuple(mask.shape)}")
            if drop_masked:
                x = keep_visible(x + pos[:, 1:], mask, masked_per_sample(mask, path))
                path = TokenOrder()  # no mask token is left in this stack
            else:
                if self.mask_token is None:
                    raise ValueError("this encoder has no mask token; use drop_masked=True (MAE)")
                x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x) + pos[:, 1:]
                token_mask = F.pad(mask, (1, 0), value=False)
        else:
            x = x + pos[:, 1:]
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
        x = torch.cat([cls, x], dim=1)
        x, trace = run_blocks(self.blocks, x, token_mask, plan, path, probs_layers=probs_layers,
                              hidden_layers=hidden_layers)
        return self.norm(x), trace

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Average-pooled patch features of unmasked images, (B, D): the probe's input."""
        tokens, _ = self(images)
        return tokens[:, 1:].mean(dim=1)


def masked_per_sample(mask: torch.Tensor, path: StackPath) -> int:
    """How many patches each sample of ``mask`` (B, N) hides: the visible-first path's count, or,
    on the token-order path, read from the mask (one host read); ValueError if the samples differ."""
    if isinstance(path, VisibleFirst):
        return path.masked
    counts = mask.sum(dim=1)
    if bool((counts != counts[0]).any()):
        raise ValueError("MAE needs the same number of visible patches in every sample of a "
                         f"batch; got {sorted(set((mask.shape[1] - counts).tolist()))}")
    return int(counts[0])


def keep_visible(x: torch.Tensor, mask: torch.Tensor, masked: int) -> torch.Tensor:
    """Gather the visible tokens of x (B, N, D) in patch order -> (B, N - masked, D); every sample
    of ``mask`` (B, N) hides ``masked`` patches."""
    b, n, d = x.shape
    keep = visible_first_order(mask)[:, :n - masked]
    return x.gather(1, keep.unsqueeze(-1).expand(b, n - masked, d))


def init_weights(module: nn.Module) -> None:
    """MAE's initialisation: xavier-uniform linears (and patch projection), unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, PatchEmbed):
        nn.init.xavier_uniform_(module.proj.weight.view(module.proj.weight.shape[0], -1))


