"""``mto bench``: where a training step's time goes, and what MTO costs.

Measures, on this machine, in one run:
- the matrix-multiply peak (fp32 on CPU, bf16 on GPU), the yardstick of "share of peak";
- training-step throughput of each method with each MTO part alone and all together, step
  times interleaved round by round so that machine noise hits every variant alike;
- model FLOPs per step (analytic, :func:`train_flops`) and achieved GFLOP/s;
- peak memory of a short real training run (a subprocess on CPU);
- latency of the app's operations: reconstruction (baseline + MTO), token features, attention.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch

from ..api import reconstruct, token_trace
from ..config import METHODS, ModelConfig, RunConfig, apply_overrides, preset, set_size
from ..data.masking import hidden_count, make_mask
from ..models.build import MODELS, build_model
from ..models.vit import VisibleFirst
from ..training.allocator import keep_freed_memory
from ..training.compiled import compile_model
from ..training.engine import build_optimizer, resolve_device
from .plain_loop import plain_step

MTO_PARTS = {
    "baseline": [],
    "+hard recalibration": ["mto.hard_recalibration=true"],
    "+L_rec (soft)": ["mto.recalibration_weight=0.1"],
    "+L_sing": ["mto.singularity_weight=0.1"],
    "+L_ent": ["mto.entropy_weight=0.01"],
    "MTO (all defaults)": ["mto.hard_recalibration=true", "mto.singularity_weight=0.1",
                           "mto.entropy_weight=0.01"],
}


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_gflops(fn: Callable[[], object], flops: float, device: torch.device, seconds: float) -> float:
    """Best GFLOP/s of ``fn`` (``flops`` each call) over bursts of 5 calls for ``seconds``."""
    for _ in range(3):
        fn()
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        sync_device(device)
        start = time.perf_counter()
        for _ in range(5):
            fn()
        sync_device(device)
        best = max(best, 5 * flops / (time.perf_counter() - start) / 1e9)
    return best


def matmul_peak(device: torch.device, seconds: float = 2.0) -> float:
    """Best matrix-multiply GFLOP/s: fp32 n=2048 on CPU, bf16 n=8192 on GPU."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    return _best_gflops(lambda: a @ b, 2 * n**3, device, seconds)


def model_shape_matmul(model: ModelConfig, batch: int, device: torch.device, seconds: float = 2.0) -> float:
    """GFLOP/s of the model's own largest matmul (tokens x width @ width x 4 width, fp32):
    the ceiling a step of this size can reach, however little else it does."""
    tokens = batch * (1 + model.num_patches)
    hidden = int(model.embed_dim * model.mlp_ratio)
    a = torch.randn(tokens, model.embed_dim, device=device)
    w = torch.randn(model.embed_dim, hidden, device=device)
    return _best_gflops(lambda: a @ w, 2 * tokens * model.embed_dim * hidden, device, seconds)


def train_flops(model: ModelConfig, batch: int, ratio: float) -> float:
    """Model FLOPs of one training step of ``batch`` images (forward + backward = 3 x forward, and a
    momentum teacher's forward), matmuls only, as the method's model class counts them."""
    return batch * MODELS[model.method].step_flops(model, ratio)


def training_step(config: RunConfig, device: torch.device, batch: int) -> Callable[[], None]:
    """One training step of ``config``'s model on fixed data, as training runs it (the visible-first
    path, bf16 autocast on CUDA, compiled with ``train.compile``)."""
    torch.manual_seed(0)
    eager = build_model(config.model, config.mto).to(device)
    model = compile_model(eager, device) if config.train.compile else eager
    optimizer = build_optimizer(eager, config)
    m, k = config.model, config.mask
    images = torch.rand(batch, m.in_chans, m.img_size, m.img_size, device=device)
    mask = make_mask(batch, m.grid, k.ratio, 0, k.kind, k.mask_patch_size, k.min_block).to(device)
    path = VisibleFirst(hidden_count(m.grid, k))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with autocast:
            loss = model(images, mask, path=path).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        eager.after_step(0, 1)  # the momentum teacher's update, as the engine makes it

    return step


def interleaved_times(steps: dict[str, Callable[[], None]], device: torch.device, rounds: int,
                      warmup: int = 2) -> dict[str, list[float]]:
    """Seconds of each step of each variant, stepping the variants in turn every round (so that a
    drift of the machine's speed falls on all of them alike)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            sync_device(device)
            start = time.perf_counter()
            step()
            sync_device(device)
            times[name].append(time.perf_counter() - start)
    return times


def time_steps(steps: dict[str, Callable[[], None]], device: torch.device, rounds: int,
               warmup: int = 2) -> dict[str, float]:
    """Median seconds per step of each variant, stepping them in turn every round."""
    times = interleaved_times(steps, device, rounds, warmup)
    return {name: statistics.median(values) for name, values in times.items()}


def training_table(size: str, device: torch.device, batch: int, rounds: int, peak: float,
                   overrides: list[str], methods: tuple[str, ...] = METHODS) -> list[dict[str, Any]]:
    """Each method's baseline and MTO steps (SimMIM and MAE: each MTO part alone too), timed."""
    rows = []
    for method in methods:
        configs = {}
        parts = MTO_PARTS if method in ("simmim", "mae") else {p: MTO_PARTS[p] for p in ("baseline", "MTO (all defaults)")}
        for part, sets in parts.items():
            config = preset(method)
            set_size(config, size)
            configs[part] = apply_overrides(config, [*sets, *overrides])
        steps = {part: training_step(c, device, batch) for part, c in configs.items()}
        seconds = time_steps(steps, device, rounds)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            steps["MTO (all defaults)"]()
            memory = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            memory = None
        for part, s in seconds.items():
            flops = train_flops(configs[part].model, batch, configs[part].mask.ratio)
            rows.append({"size": size, "method": method, "variant": part, "batch": batch,
                         "ms_per_step": 1000 * s, "images_per_s": batch / s,
                         "gflops_per_step": flops / 1e9, "gflops_per_s": flops / s / 1e9,
                         "share_of_peak": flops / s / 1e9 / peak,
                         "time_vs_baseline": s / seconds["baseline"],
                         "gpu_peak_memory_mib": memory if part == "MTO (all defaults)" else None})
        del steps
    return rows


def training_run_memory(overrides: list[str]) -> dict[str, Any]:
    """Peak resident memory (MiB) of a real ``mto train`` run of the tiny preset (30 steps)."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "mto_core.cli", "train", "--preset", "simmim-mto",
                   "--max-steps", "30", "--out", os.path.join(tmp, "run"), "--quiet", "--device", "cpu",
                   *[a for o in overrides for a in ("--set", o)]]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=900)
        wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"command": " ".join(["mto", *command[3:]]), "peak_rss_mib": peak_kib / 1024, "wall_s": wall}


def app_latency(device: torch.device, rounds: int = 20) -> list[dict[str, Any]]:
    """Median latency of the app's operations on untrained tiny models (weights don't matter)."""
    torch.manual_seed(0)
    baseline, mto = (build_model(preset(p).model, preset(p).mto).to(device).eval()
                     for p in ("simmim", "simmim-mto"))
    one, many = torch.rand(1, 1, 28, 28), torch.rand(64, 1, 28, 28)
    mask1, mask64 = make_mask(1, 7, 0.6, 0), make_mask(64, 7, 0.6, 0)
    ops = {
        "reconstruct 1 image, baseline + MTO": lambda: (reconstruct(baseline, one, mask1),
                                                        reconstruct(mto, one, mask1)),
        "token features, 64 images, all layers": lambda: token_trace(mto, many, mask64, attention_layers=[]),
        "attention maps, 1 image, all layers": lambda: token_trace(mto, one, mask1, hidden_layers=[]),
    }
    rows = []
    for name, op in ops.items():
        op()
        times = []
        for _ in range(rounds):
            sync_device(device)
            start = time.perf_counter()
            op()
            sync_device(device)
            times.append(time.perf_counter() - start)
        rows.append({"operation": name, "ms": 1000 * statistics.median(times)})
    return rows


def profile_step(preset_name: str = "simmim", batch: int = 128, steps: int = 5,
                 rows: int = 12) -> list[dict[str, Any]]:
    """Where a tiny-preset training step's CPU time goes: the top operators by own time."""
    from torch.profiler import ProfilerActivity, profile

    step = training_step(preset(preset_name), torch.device("cpu"), batch)
    for _ in range(2):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"operator": e.key, "ms_per_step": e.self_cpu_time_total / 1000 / steps,
             "share": e.self_cpu_time_total / total} for e in events[:rows]]


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def plain_reference(device: torch.device, batch: int, rounds: int, overrides: list[str],
                    method: str = "simmim") -> dict[str, Any]:
    """The library's tiny baseline step of ``method`` against a plain PyTorch loop of the same
    shape (:mod:`mto_core.bench.plain_loop`), interleaved."""
    ours = apply_overrides(preset(method), overrides)
    seconds = time_steps({"plain": plain_step(batch, device, method), "mto": training_step(ours, device, batch)},
                         device, rounds)
    return {"batch": batch, "plain_ms": 1000 * seconds["plain"], "mto_ms": 1000 * seconds["mto"],
            "speedup": seconds["plain"] / seconds["mto"]}


def run_bench(device_name: str = "auto", rounds: int = 10, batch: int = 128, sizes: list[str] | None = None,
              overrides: list[str] | None = None, memory: bool = True,
              methods: list[str] | None = None) -> dict[str, Any]:
    """Everything ``mto bench`` reports, as one dictionary; ``methods``: those timed (default all)."""
    chosen = tuple(methods or METHODS)
    device = resolve_device(device_name)
    if device.type == "cpu":
        keep_freed_memory()  # as training does
    overrides = overrides or []
    if sizes is None:
        sizes = ["tiny", "vit-s", "vit-b"] if device.type == "cuda" else ["tiny"]
    peak = matmul_peak(device)
    result: dict[str, Any] = {"machine": machine(), "device": str(device), "overrides": overrides,
                              "matmul_peak_gflops": peak,
                              "matmul_peak_kind": "bf16 8192^3" if device.type == "cuda" else "fp32 2048^3"}
    tiny = preset("simmim").model
    result["model_shape_matmul_gflops"] = model_shape_matmul(tiny, batch, device)
    if "simmim" in chosen:
        result["plain_reference"] = plain_reference(device, batch, rounds, overrides)
    result["plain_references"] = {m: plain_reference(device, batch, rounds, overrides, m)
                                  for m in ("conmim", "bootmae") if m in chosen}
    result["training"] = [row for size in sizes
                          for row in training_table(size, device, batch if size == "tiny" else 64,
                                                    rounds, peak, overrides, chosen)]
    if memory:
        result["training_run_memory"] = training_run_memory(overrides)
    result["app_latency"] = app_latency(device)
    return result


def format_profile(rows: list[dict[str, Any]]) -> str:
    lines = ["| operator | ms per step | share of step |", "|---|---|---|"]
    lines += [f"| {r['operator']} | {r['ms_per_step']:.1f} | {100 * r['share']:.0f}% |" for r in rows]
    return "\n".join(lines)


def format_report(result: dict[str, Any]) -> str:
    """Markdown tables of a :func:`run_bench` result."""
    m = result["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), "
             f"torch {m['torch']}{', ' + m['gpu'] if 'gpu' in m else ''}; {m['date']}.",
             f"Matrix-multiply peak ({result['matmul_peak_kind']}, {result['device']}): "
             f"{result['matmul_peak_gflops']:.0f} GFLOP/s. The tiny model's own largest matmul "
             f"({result['training'][0]['batch'] * 50} x 128 @ 128 x 512, fp32): "
             f"{result['model_shape_matmul_gflops']:.0f} GFLOP/s "
             f"({100 * result['model_shape_matmul_gflops'] / result['matmul_peak_gflops']:.0f}% of peak).", ""]
    if result["overrides"]:
        lines.insert(1, f"Overrides: {' '.join(result['overrides'])}")
    lines += ["| size | method | variant | batch | ms/step | images/s | GFLOP/step | GFLOP/s | share of peak "
              "| time vs baseline |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["training"]:
        lines.append(f"| {r['size']} | {r['method']} | {r['variant']} | {r['batch']} | {r['ms_per_step']:.1f} "
                     f"| {r['images_per_s']:.0f} | {r['gflops_per_step']:.1f} | {r['gflops_per_s']:.0f} "
                     f"| {100 * r['share_of_peak']:.0f}% | {r['time_vs_baseline']:.3f} |")
    plain = result.get("plain_reference")
    if plain:
        lines += ["", f"Against a plain PyTorch loop of the same shape (`mto_core/bench/plain_loop.py`: nn.Linear, "
                      f"F.scaled_dot_product_attention, LayerNorm, GELU, fused AdamW), SimMIM baseline, batch "
                      f"{plain['batch']}, interleaved: {plain['mto_ms']:.1f} ms vs {plain['plain_ms']:.1f} ms per step, "
                      f"**{plain['speedup']:.2f}x** the plain loop's speed."]
    references = result.get("plain_references", {})
    lines += [""] if references else []
    for method, r in references.items():
        lines.append(f"- {method} baseline against its plain PyTorch loop (`mto_core/bench/plain_loop.py`), batch {r['batch']}, "
                     f"interleaved: {r['mto_ms']:.1f} ms vs {r['plain_ms']:.1f} ms per step, step time "
                     f"**{r['mto_ms'] / r['plain_ms']:.3f}x** the plain loop's.")
    if "training_run_memory" in result:
        mem = result["training_run_memory"]
        lines += ["", f"Peak resident memory of `{mem['command']}`: {mem['peak_rss_mib']:.0f} MiB "
                      f"({mem['wall_s']:.0f} s)."]
    lines += ["", "| app operation | median ms |", "|---|---|"]
    lines += [f"| {r['operation']} | {r['ms']:.1f} |" for r in result["app_latency"]]
    return "\n".join(lines)
