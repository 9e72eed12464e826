"""What each tried speed-up did, measured side by side in one process (steps interleaved round by
round, median step time, batch 128, tiny preset, fp32, this machine's torch threads):

- MTO, all default parts, with the rows-only visible-first pass (what training runs) against the
  full-map pass it replaced (forced by asking for one attention map), per method, against the
  method's baseline;
- the library's SimMIM baseline step against the plain PyTorch loop (benchmarks/plain_loop.py),
  and two candidates for a faster step: explicit attention (softmax(QK^T)V in three kernels)
  instead of the fused kernel, and each transformer block compiled (torch.compile, static shapes).

Usage: python benchmarks/attempts.py [--rounds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import mto_core.vit as vit
from mto_core.bench import plain_loop, time_steps
from mto_core.config import preset
from mto_core.engine import build_optimizer
from mto_core.masking import make_mask
from mto_core.models import build_model

BATCH = 128
FUSED = F.scaled_dot_product_attention


def explicit_attention(q, k, v, attn_mask=None):
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if attn_mask is not None:
        logits = logits.masked_fill(~attn_mask, float("-inf"))
    return logits.softmax(-1) @ v


def step(name: str, *, full_maps: bool = False, explicit: bool = False, compiled: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    config = preset(name)
    model = build_model(config.model, config.mto)
    if compiled:
        for block in [*model.encoder.blocks, *getattr(model, "decoder_blocks", [])]:
            block.compile(dynamic=False)
    optimizer = build_optimizer(model, config)
    images, mask = torch.rand(BATCH, 1, 28, 28), make_mask(BATCH, config.model.grid, config.mask.ratio, 0)
    extra = {"probs_layers": {1}} if full_maps else {}

    def run() -> None:
        vit.F.scaled_dot_product_attention = explicit_attention if explicit else FUSED
        try:
            model(images, mask, **extra).loss.backward()
        finally:
            vit.F.scaled_dot_product_attention = FUSED
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def measure(rounds: int) -> dict:
    cpu = torch.device("cpu")
    result: dict = {"torch_threads": torch.get_num_threads(), "batch": BATCH, "rounds": rounds, "mto": {}}
    for method in ("simmim", "mae"):
        ms = time_steps({"baseline": step(method), "rows": step(f"{method}-mto"),
                         "full maps": step(f"{method}-mto", full_maps=True)}, cpu, rounds)
        result["mto"][method] = {k: 1000 * v for k, v in ms.items()}
    compiled = step("simmim", compiled=True)
    start = time.perf_counter()
    compiled()
    result["compile_s"] = time.perf_counter() - start
    ms = time_steps({"plain": plain_loop().plain_step(BATCH), "library": step("simmim"),
                     "explicit attention": step("simmim", explicit=True), "compiled blocks": compiled}, cpu, rounds)
    result["step"] = {k: 1000 * v for k, v in ms.items()}
    return result


def report(result: dict) -> str:
    lines = ["| attempt | before | after | after / before (time) |", "|---|---|---|---|"]
    for method, ms in result["mto"].items():
        lines.append(f"| {method}: MTO rows-only pass (full-map pass before); baseline {ms['baseline']:.1f} ms "
                     f"| {ms['full maps']:.1f} ms ({ms['full maps'] / ms['baseline']:.3f}x baseline) "
                     f"| {ms['rows']:.1f} ms ({ms['rows'] / ms['baseline']:.3f}x baseline) "
                     f"| {ms['rows'] / ms['full maps']:.3f} |")
    s = result["step"]
    for name in ("explicit attention", "compiled blocks"):
        lines.append(f"| SimMIM baseline step: {name} (fused attention, eager before) | {s['library']:.1f} ms "
                     f"| {s[name]:.1f} ms | {s[name] / s['library']:.3f} |")
    lines += ["", f"Plain PyTorch loop of the same shape: {s['plain']:.1f} ms per step; the library's step "
                  f"{s['library']:.1f} ms, **{s['plain'] / s['library']:.2f}x** the plain loop's speed (explicit "
                  f"attention {s['plain'] / s['explicit attention']:.2f}x, compiled blocks "
                  f"{s['plain'] / s['compiled blocks']:.2f}x; compiling took {result['compile_s']:.0f} s). "
                  f"{result['torch_threads']} torch threads, batch {result['batch']}, median of "
                  f"{result['rounds']} interleaved rounds; `python benchmarks/attempts.py`."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.rounds)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
