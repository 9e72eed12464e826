"""The honest reference for `mto bench`: a plain PyTorch SimMIM step of the tiny preset's shape.

Nothing else of mto_core: nn.Linear, nn.LayerNorm, nn.GELU, F.scaled_dot_product_attention, a learned
mask token, a linear head, L1 on the masked patches, fused AdamW. The shape is the tiny preset's
(28 x 28 x 1 images, 4 x 4 patches, width 128, depth 6, 4 heads, MLP ratio 4, mask ratio 0.6),
bf16 autocast on CUDA as training runs. `mto bench` times it interleaved with the library's own
SimMIM baseline step and reports the ratio; `python benchmarks/plain_loop.py` times it alone.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

IMG, PATCH, WIDTH, DEPTH, HEADS, MLP, RATIO = 28, 4, 128, 6, 4, 4, 0.6
GRID = IMG // PATCH
N = GRID * GRID


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(WIDTH, eps=1e-6), nn.LayerNorm(WIDTH, eps=1e-6)
        self.qkv, self.proj = nn.Linear(WIDTH, 3 * WIDTH), nn.Linear(WIDTH, WIDTH)
        self.fc1, self.fc2, self.act = nn.Linear(WIDTH, MLP * WIDTH), nn.Linear(MLP * WIDTH, WIDTH), nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4).unbind(0)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class PlainSimMIM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(PATCH * PATCH, WIDTH)
        self.cls = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, WIDTH))
        self.pos = nn.Parameter(torch.randn(1, N + 1, WIDTH) * 0.02, requires_grad=False)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(WIDTH, eps=1e-6)
        self.head = nn.Linear(WIDTH, PATCH * PATCH)

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = images.shape[0]
        patches = images.reshape(b, 1, GRID, PATCH, GRID, PATCH).permute(0, 2, 4, 3, 5, 1).reshape(b, N, -1)
        x = torch.where(mask.unsqueeze(-1), self.mask_token, self.embed(patches))
        x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        pred = self.head(self.norm(x)[:, 1:])
        return (pred - patches).abs().mean(-1)[mask].mean()


def plain_step(batch: int = 128, device: torch.device | str = "cpu") -> Callable[[], None]:
    """One training step (forward, backward, fused AdamW) of :class:`PlainSimMIM` on fixed data."""
    torch.manual_seed(0)
    model = PlainSimMIM().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    images = torch.rand(batch, 1, IMG, IMG, device=device)
    keep = torch.rand(batch, N).argsort(dim=1) < round(RATIO * N)
    mask = keep.to(device)
    kind = torch.device(device).type
    autocast = torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda")

    def step() -> None:
        with autocast:
            loss = model(images, mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
