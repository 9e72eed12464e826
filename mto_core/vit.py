"""A masked ViT on timm's building blocks, shared by SimMIM and MAE.

Parameter names match ``timm.models.vision_transformer.VisionTransformer`` (``cls_token``,
``pos_embed``, ``patch_embed.proj``, ``blocks.i.*``, ``norm``), so encoder weights load into
timm's model of the same shape (:func:`to_timm`).

Attention runs through the fused ``scaled_dot_product_attention`` kernel, except in layers
whose post-softmax probabilities are asked for; those compute them explicitly.
Tokens are (B, T, D) with T = 1 + number of patch tokens (a [CLS] token first).

When MTO's losses read attention rows or hidden states and every sample hides the same number
of patches, :func:`run_blocks` reorders each sample's tokens
visible-first ([CLS] and visible patches, then masked) for the whole stack; the blocks are
indifferent to token order, and the output comes back in patch order. Attention then splits
into contiguous blocks: hard recalibration is one (T, T) mask for every sample, and the query
rows a loss reads are contiguous slices of the attention (:class:`LossRows`). The masked rows'
entropy then comes from fused kernels too, without an attention map (:func:`attend_with_entropy`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ._torchvision_compat import ensure_torchvision

ensure_torchvision()
from timm.layers import Attention, PatchEmbed  # noqa: E402
from timm.models.vision_transformer import Block as TimmBlock  # noqa: E402
from timm.models.vision_transformer import VisionTransformer  # noqa: E402


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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,  # type: ignore[override]
                need_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D); attn_mask (B, 1, T, T) bool, True = may attend. Returns (out, probs)."""
        b, t, _ = x.shape
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
        out = out.transpose(1, 2).reshape(b, t, self.attn_dim)
        return self.proj(self.norm(out)), probs

    def forward_sorted(self, x: torch.Tensor, visible: int, recalibrated: bool, masked_rows: bool,
                       visible_rows: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x (B, T, D) visible-first (the first ``visible`` tokens are visible); recalibrated:
        visible queries do not see masked keys. Returns (out, rows): rows['entropy'] = H (B, H, M)
        of the masked queries' rows, rows['visible'] = probs (B, H, V, T) of the visible queries,
        as asked; without the visible rows, fused kernels only (:func:`attend_with_entropy`)."""
        b, t, _ = x.shape
        q, k, v = self._qkv(x)
        allowed = sorted_recalibration_mask(t, visible, x.device) if recalibrated else None
        rows: dict[str, torch.Tensor] = {}
        # fp32 only: under bf16 autocast lse - E_p[s] would subtract two large, rounded numbers
        fused_entropy = masked_rows and _HAS_CPU_FLASH and q.device.type == "cpu" and q.dtype == torch.float32
        if visible_rows or (masked_rows and not fused_entropy):
            logits = (q * self.scale) @ k.transpose(-2, -1)
            if allowed is not None:
                logits = logits.masked_fill(~allowed, float("-inf"))
            if masked_rows:  # log-softmax on the masked rows: no clamp, no log of a zero
                log_probs = logits[:, :, visible:].log_softmax(dim=-1)
                masked_probs = log_probs.exp()
                rows["entropy"] = -(masked_probs * log_probs).sum(-1)
                probs = torch.cat([logits[:, :, :visible].softmax(dim=-1), masked_probs], dim=2)
            else:
                probs = logits.softmax(dim=-1)
            if visible_rows:
                rows["visible"] = probs[:, :, :visible]
            out = probs @ v
        elif masked_rows:
            out, rows["entropy"] = attend_with_entropy(q, k, v, visible, allowed, self.scale)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        out = out.transpose(1, 2).reshape(b, t, self.attn_dim)
        return self.proj(self.norm(out)), rows


def _cpu_flash_with_mask() -> bool:
    """Whether this torch has the CPU flash-attention op with ``attn_mask`` and ``scale`` (torch >= 2.3)."""
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    schema = str(op.default._schema) if op is not None else ""
    return "attn_mask" in schema and "scale" in schema and "logsumexp" in schema


_HAS_CPU_FLASH = _cpu_flash_with_mask()


def attend_with_entropy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, visible: int,
                        allowed: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q, k, v (B, H, T, d) on the CPU's fused kernel, and the entropy (B, H, M) of the
    rows of the queries after the first ``visible``, without forming any attention map.

    H_i = -sum_j p_ij log p_ij = lse_i - sum_j p_ij s_ij (s the scaled logits, lse their
    log-sum-exp): lse comes with the kernel's output, and sum_j p_ij s_ij = scale q_i . (P k)_i from a
    second fused pass of those queries with the keys as values. Those values and q_i in the product
    are detached and lse carries no gradient, so H's gradient flows through the softmax alone,
    -p_ij (s_ij - sum_l p_il s_il): that is H's whole gradient, lse's own share cancelling the
    product's direct terms. For float32 on the CPU (the caller checks).
    """
    bias = None
    if allowed is not None:  # this kernel takes an additive mask of the queries' dtype
        bias = torch.zeros(allowed.shape[-2:], dtype=q.dtype, device=q.device).masked_fill(~allowed[0, 0], float("-inf"))
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, attn_mask=bias, scale=scale)
    queries = q[:, :, visible:]
    expected = (queries.detach() * F.scaled_dot_product_attention(queries, k, k.detach(), scale=scale)).sum(-1)
    return out, lse[:, :, visible:].detach() - scale * expected


def sorted_recalibration_mask(tokens: int, visible: int, device: torch.device) -> torch.Tensor:
    """Hard recalibration for visible-first tokens, (1, 1, T, T), True = may attend: the block
    (visible query, masked key) is False; one mask for every sample."""
    allowed = torch.ones(tokens, tokens, dtype=torch.bool, device=device)
    allowed[:visible, visible:] = False
    return allowed[None, None]


class Block(TimmBlock):
    """timm's pre-norm transformer block with :class:`MaskedAttention`."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                         attn_layer=MaskedAttention)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,  # type: ignore[override]
                need_probs: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        out, probs = self.attn(self.norm1(x), attn_mask, need_probs)
        return self._rest(x, out), probs

    def _rest(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """The residual around attention, then the MLP's."""
        x = x + self.ls1(attended)
        return x + self.ls2(self.mlp(self.norm2(x)))

    def forward_sorted(self, x: torch.Tensor, visible: int, recalibrated: bool, masked_rows: bool,
                       visible_rows: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`forward` on visible-first tokens (see :meth:`MaskedAttention.forward_sorted`)."""
        out, rows = self.attn.forward_sorted(self.norm1(x), visible, recalibrated, masked_rows, visible_rows)
        return self._rest(x, out), rows


@dataclass
class TokenTrace:
    """What a pass through a stack of blocks left behind.

    hidden: {l: h^l (B, T, D)} for the layers asked for, l = 0 is the input with position.
    attn: {l: A^l (B, H, T, T)} post-softmax, l = 1..L, for the layers asked for.
    token_mask: (B, T) bool, True = a mask token (the [CLS] token counts as visible).
    """

    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    token_mask: torch.Tensor | None = None
    rows: LossRows | None = None


@dataclass
class LossRows:
    """What MTO's losses read from a visible-first pass (:func:`run_blocks`): the first
    ``visible`` tokens of each sample are [CLS] and its visible patches, the rest masked.

    hidden: {l: h^l (B, T, D)} visible-first; entropy: {l: H (B, H, M)} of the masked queries'
    attention rows (nats); visible: {l: probs (B, H, V, T)} of the visible queries (unrecalibrated
    layers only: in recalibrated ones their mass on masked keys is exactly 0).
    """

    visible: int
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    entropy: dict[int, torch.Tensor] = field(default_factory=dict)
    visible_probs: dict[int, torch.Tensor] = field(default_factory=dict)


def visible_cannot_see_masked(token_mask: torch.Tensor) -> torch.Tensor:
    """Hard recalibration mask (B, 1, T, T), True = may attend: visible queries skip masked keys."""
    allowed = ~(~token_mask[:, :, None] & token_mask[:, None, :])
    return allowed.unsqueeze(1)


def run_blocks(blocks: nn.ModuleList, x: torch.Tensor, token_mask: torch.Tensor | None, *,
               recalibrated: int = 0, probs_layers: Collection[int] = (),
               hidden_layers: Collection[int] = (), row_layers: Collection[int] = (),
               visible_row_layers: Collection[int] = (),
               loss_hidden_layers: Collection[int] = ()) -> tuple[torch.Tensor, TokenTrace]:
    """Run ``blocks`` on x (B, T, D); the first ``recalibrated`` layers are hard-recalibrated.

    Layers are numbered from 1 (0 is the input). ``probs_layers`` and ``hidden_layers`` fill the
    trace in token order (full attention maps leave the fused kernel). What MTO's losses read goes
    into ``trace.rows`` (:class:`LossRows`): masked-query rows of ``row_layers``, visible-query
    rows of ``visible_row_layers``, hidden states of ``loss_hidden_layers``. That takes the
    visible-first pass when every sample hides the same number of patches and no full attention
    map is asked for; otherwise the loss layers are traced in full and ``trace.rows`` stays None.
    """
    needs_rows = bool(row_layers or visible_row_layers or loss_hidden_layers)
    counts = token_mask.sum(1) if token_mask is not None else None
    if (token_mask is not None and needs_rows and not probs_layers
            and bool((counts == counts[0]).all()) and 0 < int(counts[0]) < token_mask.shape[1]):
        return _run_sorted(blocks, x, token_mask, recalibrated, hidden_layers, row_layers,
                           visible_row_layers, loss_hidden_layers)
    probs_layers = frozenset(probs_layers) | frozenset(row_layers) | frozenset(visible_row_layers)
    hidden_layers = frozenset(hidden_layers) | frozenset(loss_hidden_layers)
    trace = TokenTrace(token_mask=token_mask)
    attn_mask = None
    if recalibrated and token_mask is not None:
        attn_mask = visible_cannot_see_masked(token_mask)
    if 0 in hidden_layers:
        trace.hidden[0] = x
    for layer, block in enumerate(blocks, start=1):
        x, probs = block(x, attn_mask if layer <= recalibrated else None, layer in probs_layers)
        if probs is not None:
            trace.attn[layer] = probs
        if layer in hidden_layers:
            trace.hidden[layer] = x
    return x, trace


def _run_sorted(blocks: nn.ModuleList, x: torch.Tensor, token_mask: torch.Tensor, recalibrated: int,
                hidden_layers: Collection[int], row_layers: Collection[int],
                visible_row_layers: Collection[int],
                loss_hidden_layers: Collection[int]) -> tuple[torch.Tensor, TokenTrace]:
    """:func:`run_blocks` with each sample's tokens visible-first (same masked count in all)."""
    b, t, d = x.shape
    order = torch.argsort(token_mask.to(torch.int8), dim=1, stable=True)  # visible first, in order
    index = order.unsqueeze(-1).expand(b, t, d)
    visible = t - int(token_mask[0].sum())
    rows = LossRows(visible)
    trace = TokenTrace(token_mask=token_mask, rows=rows)
    x = x.gather(1, index)

    def unsorted(h: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(h).scatter(1, index, h)

    for layer in range(len(blocks) + 1):
        if layer:
            x, found = blocks[layer - 1].forward_sorted(x, visible, layer <= recalibrated, layer in row_layers,
                                                        layer in visible_row_layers)
            if "entropy" in found:
                rows.entropy[layer] = found["entropy"]
            if "visible" in found:
                rows.visible_probs[layer] = found["visible"]
        if layer in loss_hidden_layers:
            rows.hidden[layer] = x
        if layer in hidden_layers:
            trace.hidden[layer] = unsorted(x)
    return unsorted(x), trace


class MaskedViT(nn.Module):
    """ViT encoder: patch embedding, [CLS], fixed sin-cos positions, blocks, final norm.

    With ``mask_token=True`` it holds the one learnable mask token w that replaces every
    masked patch (SimMIM); MAE instead drops masked patches (``drop_masked=True``).
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
                 num_heads: int, mlp_ratio: float = 4.0, mask_token: bool = False) -> None:
        super().__init__()
        self.patch_size, self.in_chans, self.embed_dim = patch_size, in_chans, embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sincos_pos_embed(embed_dim, self.grid), requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if mask_token else None
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.apply(init_weights)
        nn.init.normal_(self.cls_token, std=0.02)
        if self.mask_token is not None:
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None, *,
                drop_masked: bool = False, recalibrated: int = 0,
                probs_layers: Collection[int] = (), hidden_layers: Collection[int] = (),
                **loss_layers: Collection[int]) -> tuple[torch.Tensor, TokenTrace]:
        """images (B, C, H, W), mask (B, N) bool -> (normed tokens (B, T, D), trace).

        SimMIM: masked patches are replaced by w, T = 1 + N. MAE (``drop_masked``): only the
        visible patches go in, T = 1 + |V| (every sample must hide the same number).
        ``loss_layers``: what MTO's losses read (:func:`run_blocks`).
        """
        x = self.patch_embed(images)
        b, n, d = x.shape
        pos = self.pos_embed.to(x.dtype)
        token_mask = None
        if mask is not None:
            if mask.shape != (b, n):
                raise ValueError(f"mask must have shape {(b, n)} (batch, patches), got {tuple(mask.shape)}")
            if drop_masked:
                x = keep_visible(x + pos[:, 1:], mask)
            else:
                if self.mask_token is None:
                    raise ValueError("this encoder has no mask token; use drop_masked=True (MAE)")
                x = torch.where(mask.unsqueeze(-1), self.mask_token.to(x.dtype), x) + pos[:, 1:]
                token_mask = F.pad(mask, (1, 0), value=False)
        else:
            x = x + pos[:, 1:]
        cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
        x = torch.cat([cls, x], dim=1)
        x, trace = run_blocks(self.blocks, x, token_mask, recalibrated=recalibrated,
                              probs_layers=probs_layers, hidden_layers=hidden_layers, **loss_layers)
        return self.norm(x), trace

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Average-pooled patch features of unmasked images, (B, D): the probe's input."""
        tokens, _ = self(images)
        return tokens[:, 1:].mean(dim=1)


def keep_visible(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Gather the visible tokens of x (B, N, D) in patch order -> (B, |V|, D)."""
    counts = (~mask).sum(dim=1)
    if bool((counts != counts[0]).any()):
        raise ValueError("MAE needs the same number of visible patches in every sample of a "
                         f"batch; got {sorted(set(counts.tolist()))}")
    return x[~mask].reshape(x.shape[0], int(counts[0]), x.shape[2])


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


def to_timm(encoder: MaskedViT) -> VisionTransformer:
    """A timm ``VisionTransformer`` (no head, average pooling) holding the encoder's weights."""
    depth = len(encoder.blocks)
    heads = encoder.blocks[0].attn.num_heads
    mlp_ratio = encoder.blocks[0].mlp.fc1.out_features / encoder.embed_dim
    model = VisionTransformer(img_size=encoder.grid * encoder.patch_size,
                              patch_size=encoder.patch_size, in_chans=encoder.in_chans,
                              embed_dim=encoder.embed_dim, depth=depth, num_heads=heads,
                              mlp_ratio=mlp_ratio, num_classes=0, global_pool="avg", fc_norm=False)
    state = {k: v for k, v in encoder.state_dict().items() if k != "mask_token"}
    model.load_state_dict(state, strict=True)
    return model
