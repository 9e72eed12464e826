"""The GPU table of docs/performance.md, measured in one process on one CUDA device.

Stages, cheapest and most important first, each skipped when the time left (--budget-s) is less
than it needs; the JSON in OUT is rewritten after every stage, so a run cut short still reports
what it measured:

1. checks: the visible-first path against the token-order path on CUDA (float32, every MTO
   part: the fused kernels of mto_core/mto/attention_stats.py against the explicit maps), and a
   training step of each MTO preset under torch.cuda.set_sync_debug_mode("error");
2. eager: vit-b and vit-s at batch 256, tiny at 1024; SimMIM and MAE; the baseline, each MTO
   part alone and MTO with all defaults, steps interleaved round by round (bf16 autocast); the
   peak memory of one step of each; MFU = train_flops / time / the measured bf16 matmul peak;
3. plain: the tiny SimMIM baseline against the plain PyTorch loop (mto_core/bench/plain_loop.py);
4. compiled: baseline and MTO with train.compile (mto_core/training/compiled.py), vit-b SimMIM first.

Usage: python benchmarks/gpu_table.py OUT [--budget-s 240] [--doc docs/performance.md]
       python benchmarks/gpu_table.py OUT --doc-only   (the doc section from OUT/gpu_table.json)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mto_core.bench.measure import (MTO_PARTS, machine, matmul_peak, plain_reference, time_steps,
                                    train_flops, training_step)
from mto_core.config import apply_overrides, preset, set_size
from mto_core.data.masking import hidden_count, make_mask
from mto_core.models.build import build_model
from mto_core.models.vit import TokenOrder, VisibleFirst
from performance_text import GPU_BEGIN, GPU_END, gpu_section, replace_between_markers

SIZES = [("vit-b", 256), ("vit-s", 256), ("tiny", 1024)]
BEGIN, END, update_doc = GPU_BEGIN, GPU_END, replace_between_markers  # the doc's markers, this script's names
WARMUP, ROUNDS = 3, 6


def config_for(method: str, size: str, sets: list[str]):
    config = preset(method)
    set_size(config, size)
    return apply_overrides(config, sets)


def equal_paths(device: torch.device) -> dict:
    """Largest relative gap between the visible-first and token-order paths, float32 on ``device``:
    MTO terms, and each parameter gradient against its largest entry."""
    gaps = {}
    for method in ("simmim-mto", "mae-mto"):
        config = apply_overrides(preset(method), ["mto.recalibrated_layers=1", "mto.depth=2",
                                                  "mto.recalibration_weight=0.1"])
        torch.manual_seed(0)
        model = build_model(config.model, config.mto).to(device)
        images = torch.rand(8, 1, 28, 28, device=device)
        mask = make_mask(8, config.model.grid, config.mask.ratio, 0).to(device)
        runs = []
        for path in (VisibleFirst(hidden_count(config.model.grid, config.mask)), TokenOrder()):
            model.zero_grad()
            out = model(images, mask, path=path)
            out.loss.backward()
            runs.append((out.mto, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
        (fast, fast_grads), (full, full_grads) = runs
        terms = max(abs(fast[k].item() - full[k].item()) / max(abs(full[k].item()), 1e-6) for k in full)
        grads = max(((fast_grads[n] - g).abs().max() / g.abs().max().clamp_min(1e-12)).item()
                    for n, g in full_grads.items())
        gaps[method] = {"terms": terms, "gradients": grads}
    return gaps


def host_syncs(device: torch.device) -> dict:
    """Each MTO preset's warm training step under set_sync_debug_mode("error"): 'none' or the error."""
    found = {}
    for name in ("simmim-mto", "mae-mto"):
        step = training_step(preset(name), device, 64)
        step()
        torch.cuda.synchronize(device)
        torch.cuda.set_sync_debug_mode("error")
        try:
            step()
            found[name] = "none"
        except RuntimeError as error:
            found[name] = str(error).strip().splitlines()[0][:200]
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return found


def peak_memory_mib(step, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def timed_rows(size: str, batch: int, method: str, parts: dict[str, list[str]], compiled: bool,
               device: torch.device, peak: float) -> list[dict]:
    configs = {part: config_for(method, size, [*sets, f"train.compile={str(compiled).lower()}"])
               for part, sets in parts.items()}
    steps = {part: training_step(c, device, batch) for part, c in configs.items()}
    seconds = time_steps(steps, device, ROUNDS, WARMUP)
    rows = []
    for part, s in seconds.items():
        flops = train_flops(configs[part].model, batch, configs[part].mask.ratio)
        rows.append({"size": size, "batch": batch, "method": method, "variant": part, "compiled": compiled,
                     "ms": 1000 * s, "images_per_s": batch / s, "mfu": flops / s / 1e9 / peak,
                     "vs_baseline": s / seconds["baseline"], "peak_mib": peak_memory_mib(steps[part], device)})
    del steps
    torch.cuda.empty_cache()
    return rows


def measure(out: Path, budget_s: float) -> dict:
    device = torch.device("cuda")
    start = time.perf_counter()
    result: dict = {"machine": machine(), "rounds": ROUNDS, "warmup": WARMUP, "rows": [], "skipped": []}

    def save() -> None:
        result["seconds"] = time.perf_counter() - start
        (out / "gpu_table.json").write_text(json.dumps(result, indent=2))

    def stage(label: str, needs_s: float) -> bool:
        left = budget_s - (time.perf_counter() - start)
        if left < needs_s:
            result["skipped"].append(f"{label} (needs about {needs_s:.0f} s, {left:.0f} s left)")
            save()
            return False
        print(f"gpu_table.py [{time.perf_counter() - start:4.0f} s] {label}", flush=True)
        return True

    result["matmul_peak_tflops"] = matmul_peak(device, seconds=1.0) / 1000
    peak = result["matmul_peak_tflops"] * 1000
    if stage("checks: fused against explicit on CUDA; host syncs in a training step", 20):
        result["equal_paths"] = equal_paths(device)
        result["host_syncs"] = host_syncs(device)
        save()
    for size, batch in SIZES:
        for method in ("simmim", "mae"):
            if stage(f"eager: {size}, batch {batch}, {method}, {len(MTO_PARTS)} variants", 25):
                result["rows"] += timed_rows(size, batch, method, MTO_PARTS, False, device, peak)
                save()
    if stage("plain: the tiny SimMIM baseline against the plain PyTorch loop, batch 1024", 15):
        result["plain"] = plain_reference(device, 1024, ROUNDS, [])
        save()
    both = {part: MTO_PARTS[part] for part in ("baseline", "MTO (all defaults)")}
    for size, batch in [SIZES[0], SIZES[2], SIZES[1]]:
        for method in ("simmim", "mae"):
            if stage(f"compiled: {size}, batch {batch}, {method}, baseline and MTO", 90):
                result["rows"] += timed_rows(size, batch, method, both, True, device, peak)
                save()
    save()
    return result


def section(result: dict) -> str:
    """The "after" part of the GPU section of docs/performance.md."""
    return gpu_section(result, SIZES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget-s", type=float, default=240)
    parser.add_argument("--doc", type=Path, default=Path("docs/performance.md"))
    parser.add_argument("--doc-only", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.doc_only:
        result = json.loads((args.out / "gpu_table.json").read_text())
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_table.py: no CUDA device is visible; run it on a machine with an NVIDIA GPU")
        result = measure(args.out, args.budget_s)
    text = section(result)
    (args.out / "gpu_section.md").write_text(text + "\n")
    update_doc(args.doc, text)


if __name__ == "__main__":
    main()
