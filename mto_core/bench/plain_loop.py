"""The honest reference for `mto bench`: plain PyTorch steps of the tiny preset's shape.

Nothing else of mto_core: nn.Linear, nn.LayerNorm, nn.GELU, F.scaled_dot_product_attention, fused
AdamW. SimMIM: a learned mask token, a linear head, L1 on the masked patches. ConMIM: the same
encoder, a two-layer head, a momentum copy of both run on the whole image, the patch InfoNCE
(the student's perturbation is left out: elementwise work on 28 x 28 images). BootMAE: the
encoder on the visible patches (mask ratio 0.75), a pixel and a feature decoder (2 layers each,
cross-attending to the encoder's first and last blocks), a momentum copy of the encoder, MSE
on pixels and on layer-normed features. The shape is the tiny preset's (28 x 28 x 1 images,
4 x 4 patches, width 128, depth 6, 4 heads, MLP ratio 4, decoder width 128), bf16 autocast on
CUDA as training runs. `mto bench` times each interleaved with the library's baseline step of
the same method and reports the ratio; `python benchmarks/plain_loop.py` times them alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

IMG, PATCH, WIDTH, DEPTH, HEADS, MLP, RATIO = 28, 4, 128, 6, 4, 4, 0.6
DECODER_DEPTH, DECODER_RATIO, TEMPERATURE, FEATURE_WEIGHT, MOMENTUM = 2, 0.75, 0.05, 0.5, 0.996
GRID = IMG // PATCH
N = GRID * GRID


class Block(nn.Module):
    def __init__(self, cross: bool = False) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH, eps=1e-6), nn.LayerNorm(WIDTH, eps=1e-6)
        self.qkv, self.proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.fc1, self.fc2, self.act = nn.Linear(WIDTH, MLP * WIDTH), nn.Linear(MLP * WIDTH, WIDTH), nn.GELU()
        if cross:
            self.norm3, self.norm4 = nn.LayerNorm(WIDTH, eps=1e-6), nn.LayerNorm(WIDTH, eps=1e-6)
            self.q, self.kv, self.cproj = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, 2 * WIDTH), nn.Linear(WIDTH, WIDTH)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        if context is not None:
            q = self.q(self.norm3(x)).reshape(b, t, HEADS, d // HEADS).transpose(1, 2)
            k, v = self.kv(self.norm4(context)).reshape(b, -1, 2, HEADS, d // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
            x = x + self.cproj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


def patches_of(images: torch.Tensor) -> torch.Tensor:
    b = images.shape[0]
    return images.reshape(b, 1, GRID, PATCH, GRID, PATCH).permute(0, 2, 4, 3, 5, 1).reshape(b, N, -1)


class Encoder(nn.Module):
    """Patch embedding, [CLS], positions, blocks, norm; masked patches replaced by a mask token
    (``keep`` None) or dropped (``keep`` (B, V) indices of the visible patches)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(PATCH * PATCH, WIDTH)
        self.cls = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos = nn.Parameter(torch.randn(1, N + 1, WIDTH) * 0.02, requires_grad=False)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)

    def forward(self, patches: torch.Tensor, mask: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b = patches.shape[0]
        x = self.embed(patches) + self.pos[:, 1:]
        if mask is not None:
            x = torch.where(mask.unsqueeze(-1), self.mask_token + self.pos[:, 1:], x)
        if keep is not None:
            x = x.gather(1, keep.unsqueeze(-1).expand(-1, -1, WIDTH))
        x = torch.cat([(self.cls + self.pos[:, :1]).expand(b, -1, -1), x], dim=1)
        hidden = []
        for block in self.blocks:
            x = block(x)
            hidden.append(x)
        return self.norm(x), hidden


class PlainSimMIM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Linear(WIDTH, PATCH * PATCH)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        patches = patches_of(images)
        pred = self.head(self.encoder(patches, mask)[0][:, 1:])
        return (pred - patches).abs().mean(-1)[mask].mean()


class PlainConMIM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.head = nn.Sequential(nn.Linear(WIDTH, 2 * WIDTH), nn.GELU(), nn.Linear(2 * WIDTH, WIDTH))
        self.teacher = nn.ModuleList([copy.deepcopy(self.encoder), copy.deepcopy(self.head)]).requires_grad_(False)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        patches = patches_of(images)
        with torch.no_grad():
            target = F.normalize(self.teacher[1](self.teacher[0](patches)[0][:, 1:]).float(), dim=-1)
        pred = F.normalize(self.head(self.encoder(patches, mask)[0][:, 1:]).float(), dim=-1)
        logits = pred @ target.transpose(1, 2) / TEMPERATURE
        labels = torch.arange(N, device=images.device).expand(images.shape[0], -1)
        return F.cross_entropy(logits[mask], labels[mask])

    def after_step(self) -> None:
        students = [*self.encoder.parameters(), *self.head.parameters()]
        torch._foreach_lerp_(list(self.teacher.parameters()), students, 1 - MOMENTUM)


class PlainBootMAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.teacher = copy.deepcopy(self.encoder).requires_grad_(False)
        self.embeds = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in range(2))
        self.tokens = nn.Parameter(torch.zeros(2, 1, 1, WIDTH))
        self.decoders = nn.ModuleList(nn.ModuleList(Block(cross=True) for _ in range(DECODER_DEPTH)) for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(WIDTH, eps=1e-6) for _ in range(2))
        self.pixel_head, self.feature_head = nn.Linear(WIDTH, PATCH * PATCH), nn.Linear(WIDTH, WIDTH)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        patches = patches_of(images)
        b = images.shape[0]
        order = mask.to(torch.int8).argsort(dim=1, stable=True)
        visible = N - int(round(DECODER_RATIO * N))
        latent, hidden = self.encoder(patches, keep=order[:, :visible])
        with torch.no_grad():
            target = self.teacher(patches)[1][-1][:, 1:]
        outs = []
        for embed, token, blocks, norm, context in zip(self.embeds, self.tokens, self.decoders, self.norms,
                                                       (hidden[0], hidden[-1])):
            y = embed(latent)
            x = torch.cat([y[:, 1:], token.expand(b, N - visible, -1)], dim=1)
            x = torch.empty_like(x).scatter(1, order.unsqueeze(-1).expand(-1, -1, WIDTH), x)
            x = torch.cat([y[:, :1], x], dim=1) + self.encoder.pos
            for block in blocks:
                x = block(x, context)
            outs.append(norm(x)[:, 1:])
        pixel = (self.pixel_head(outs[0]) - patches).pow(2).mean(-1)
        feature = (F.layer_norm(self.feature_head(outs[1]).float(), (WIDTH,))
                   - F.layer_norm(target.float(), (WIDTH,))).pow(2).mean(-1)
        return (pixel + FEATURE_WEIGHT * feature)[mask].mean()

    def after_step(self) -> None:
        torch._foreach_lerp_(list(self.teacher.parameters()), list(self.encoder.parameters()), 1 - MOMENTUM)


PLAIN_MODELS: dict[str, tuple[type[nn.Module], float]] = {
    "simmim": (PlainSimMIM, RATIO), "conmim": (PlainConMIM, RATIO), "bootmae": (PlainBootMAE, DECODER_RATIO)}


def plain_step(batch: int = 128, device: torch.device | str = "cpu", method: str = "simmim") -> Callable[[], None]:
    """One training step (forward, backward, fused AdamW, the teacher's update where there is
    one) of ``method``'s plain model (simmim, conmim, bootmae) on fixed data."""
    if method not in PLAIN_MODELS:
        raise ValueError(f"no plain loop for '{method}'; choose one of {', '.join(PLAIN_MODELS)}")
    torch.manual_seed(0)
    kind, ratio = PLAIN_MODELS[method]
    model = kind().to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    images = torch.rand(batch, 1, IMG, IMG, device=device)
    keep = torch.rand(batch, N).argsort(dim=1) < round(ratio * N)
    mask = keep.to(device)
    device_kind = torch.device(device).type
    autocast = torch.autocast(device_kind, dtype=torch.bfloat16, enabled=device_kind == "cuda")
    after_step = getattr(model, "after_step", None)

    def step() -> None:
        with autocast:
            loss = model(images, mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if after_step is not None:
            after_step()

    return step
