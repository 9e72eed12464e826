"""What each tried speed-up did, measured side by side in one process (steps interleaved round by
round, median step time, batch 128, tiny preset, fp32, this machine's torch threads):

- MTO, all default parts, with the rows-only visible-first pass (what training runs) against the
  full-map pass it replaced (the token-order path), and with L_ent from fused
  kernels (log-sum-exp minus E_p[s]; what training runs) against L_ent from the
  explicit masked rows it replaced, and with L_sing's Gram matrix taking its one-product backward
  (mto_core.mto.terms.gram; what training runs) against autograd's backward of h @ h^T, per
  method, against the method's baseline;
- the library's SimMIM baseline step against the plain PyTorch loop (mto_core/bench/plain_loop.py),
  and three candidates for a faster step: explicit attention (softmax(QK^T)V in three kernels)
  instead of the fused kernel, each transformer block compiled (torch.compile, static shapes), and
  the batch cut in two halves run at once on two threads of one torch thread each (their
  gradients averaged) instead of one batch on two torch threads; q, k and v as views of the qkv
  output (one gradient stack, no copy) against timm's permuted layout;
- freed memory kept in the process (mto_core/training/allocator.py, what training does on the CPU) against
  glibc's defaults, for the plain loop and the library's steps: the setting is per process, so
  these run in fresh processes, alternating, each timing its own steps.

Usage: python benchmarks/attempts.py [--rounds 10] [--json]
(progress and an estimate of the time left go to stderr, the table or JSON to stdout)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

import mto_core.mto.attention_stats as stats
import mto_core.mto.terms as terms
import mto_core.models.vit as vit
from mto_core.bench.measure import time_steps
from mto_core.config import preset
from mto_core.training.engine import build_optimizer
from mto_core.data.masking import hidden_count, make_mask
from mto_core.models.build import build_model
from mto_core.bench.plain_loop import plain_step
from performance_text import attempts_table

BATCH = 128
FUSED = F.scaled_dot_product_attention
ENTROPY = stats.masked_row_entropy
GRAM = terms.gram


class Progress:
    """Prints to stderr where the run is and about how long is left, from the steps taken so far."""

    def __init__(self, total_steps: int) -> None:
        self.total, self.done, self.start = total_steps, 0, time.perf_counter()

    def stage(self, label: str, steps: int) -> None:
        elapsed = time.perf_counter() - self.start
        left = f", about {elapsed / self.done * (self.total - self.done):.0f} s left" if self.done else ""
        print(f"attempts.py [{elapsed:4.0f} s, {100 * self.done / self.total:3.0f}%{left}] {label}",
              file=sys.stderr, flush=True)
        self.done += steps


def explicit_entropy_rows(q, k, visible, scale):
    """The masked rows' entropy from explicit log-softmax rows (what the fused form replaced)."""
    log_probs = ((q[:, :, visible:] * scale) @ k.transpose(-2, -1)).float().log_softmax(-1)
    return -(log_probs.exp() * log_probs).sum(-1)


def autograd_gram_product(h: torch.Tensor) -> torch.Tensor:
    return h @ h.transpose(-1, -2)


def explicit_attention(q, k, v, attn_mask=None):
    logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if attn_mask is not None:
        logits = logits.masked_fill(~attn_mask, float("-inf"))
    return logits.softmax(-1) @ v


def step(name: str, *, full_maps: bool = False, explicit: bool = False, compiled: bool = False,
         explicit_entropy: bool = False, autograd_gram: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    config = preset(name)
    model = build_model(config.model, config.mto)
    if compiled:
        for block in [*model.encoder.blocks, *getattr(model, "decoder_blocks", [])]:
            block.compile(dynamic=False)
    optimizer = build_optimizer(model, config)
    images, mask = torch.rand(BATCH, 1, 28, 28), make_mask(BATCH, config.model.grid, config.mask.ratio, 0)
    path = vit.TokenOrder() if full_maps else vit.VisibleFirst(hidden_count(config.model.grid, config.mask))

    def run() -> None:
        F.scaled_dot_product_attention = explicit_attention if explicit else FUSED
        stats.masked_row_entropy = explicit_entropy_rows if explicit_entropy else ENTROPY
        terms.gram = autograd_gram_product if autograd_gram else GRAM
        try:
            model(images, mask, path=path).loss.backward()
        finally:
            F.scaled_dot_product_attention, stats.masked_row_entropy, terms.gram = FUSED, ENTROPY, GRAM
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def half_batches(name: str) -> Callable[[], None]:
    """One step as two half-batches run at once, each on its own thread with one torch thread, their
    parameter gradients averaged (every sample hides as many patches, so that is the batch's gradient)."""
    torch.manual_seed(0)
    config = preset(name)
    model = build_model(config.model, config.mto)
    optimizer = build_optimizer(model, config)
    images, mask = torch.rand(BATCH, 1, 28, 28), make_mask(BATCH, config.model.grid, config.mask.ratio, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    pool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(1,))
    halves = [(images[:BATCH // 2], mask[:BATCH // 2]), (images[BATCH // 2:], mask[BATCH // 2:])]
    path = vit.VisibleFirst(hidden_count(config.model.grid, config.mask))

    def run() -> None:
        first, second = pool.map(lambda half: torch.autograd.grad(model(*half, path=path).loss, params), halves)
        for p, a, b in zip(params, first, second):
            p.grad = (a + b) / 2
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def permuted_qkv(self, x):
    """timm's layout: q, k, v unbound from a permuted (3, B, H, T, d) view (copied in backward)."""
    b, t, _ = x.shape
    q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    return self.q_norm(q), self.k_norm(k), v


def with_qkv(run: Callable[[], None], qkv) -> Callable[[], None]:
    def wrapped() -> None:
        kept, vit.MaskedAttention._qkv = vit.MaskedAttention._qkv, qkv
        try:
            run()
        finally:
            vit.MaskedAttention._qkv = kept
    return wrapped


ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, resource, statistics, sys, time
sys.path.insert(0, "benchmarks")  # run with cwd = the repository
if sys.argv[2] == "kept":
    from mto_core.training.allocator import keep_freed_memory
    assert keep_freed_memory()
import attempts
run = attempts.plain_step(attempts.BATCH) if sys.argv[1] == "plain" else attempts.step(sys.argv[1])
for _ in range(3):
    run()
times, before = [], resource.getrusage(resource.RUSAGE_SELF)
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
after = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ms": 1000 * statistics.median(times), "faults": (after.ru_minflt - before.ru_minflt) / len(times),
                  "system_ms": 1000 * (after.ru_stime - before.ru_stime) / len(times)}))
"""


def allocator(repeats: int, steps: int, progress: Progress) -> dict:
    """Median over fresh processes (alternating) of each one's median step time, faults, kernel time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "MTO_KEEP"))}
    found: dict[str, list[dict]] = {}
    for repeat in range(repeats):
        for what in ("plain", "simmim", "simmim-mto"):
            for memory in ("default", "kept"):
                progress.stage(f"allocator: {what} with {memory} malloc settings, fresh process {repeat + 1} of "
                               f"{repeats}", ALLOCATOR_PROCESS_STEPS + 3 + steps)
                out = subprocess.run([sys.executable, "-c", CHILD, what, memory, str(steps)], check=True,
                                     capture_output=True, text=True, env=env, cwd=ROOT).stdout
                found.setdefault(f"{what} {memory}", []).append(json.loads(out.strip().splitlines()[-1]))
    return {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in found.items()}


ALLOCATOR_PROCESS_STEPS = 10  # what starting a process costs, counted in steps (imports, model build)
COMPILE_STEPS = 100  # what compiling the blocks costs, counted in steps


def measure(rounds: int) -> dict:
    cpu = torch.device("cpu")
    result: dict = {"torch_threads": torch.get_num_threads(), "batch": BATCH, "rounds": rounds, "mto": {}}
    warmup = 2  # time_steps' default
    progress = Progress(2 * 5 * (warmup + rounds) + COMPILE_STEPS + 6 * (warmup + rounds)
                        + 3 * 6 * (ALLOCATOR_PROCESS_STEPS + 3 + rounds))
    print(f"attempts.py: {rounds} rounds; MTO parts (2 methods x 5 variants), 6 step variants, then 18 fresh "
          "processes; progress and an estimate of the time left follow", file=sys.stderr, flush=True)
    for method in ("simmim", "mae"):
        progress.stage(f"{method}: baseline and MTO with each attempt undone, interleaved", 5 * (warmup + rounds))
        ms = time_steps({"baseline": step(method), "rows": step(f"{method}-mto"),
                         "full maps": step(f"{method}-mto", full_maps=True),
                         "explicit entropy": step(f"{method}-mto", explicit_entropy=True),
                         "autograd gram": step(f"{method}-mto", autograd_gram=True)}, cpu, rounds)
        result["mto"][method] = {k: 1000 * v for k, v in ms.items()}
    progress.stage("compiling the SimMIM blocks", COMPILE_STEPS)
    compiled = step("simmim", compiled=True)
    start = time.perf_counter()
    compiled()
    result["compile_s"] = time.perf_counter() - start
    progress.stage("the SimMIM step, the plain loop and four candidates, interleaved", 6 * (warmup + rounds))
    ms = time_steps({"plain": plain_step(BATCH), "library": step("simmim"),
                     "explicit attention": step("simmim", explicit=True), "compiled blocks": compiled,
                     "half batches": half_batches("simmim"),
                     "permuted qkv": with_qkv(step("simmim"), permuted_qkv)}, cpu, rounds)
    result["step"] = {k: 1000 * v for k, v in ms.items()}
    result["allocator"] = allocator(repeats=3, steps=rounds, progress=progress)
    progress.stage("done", 0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.rounds)
    print(json.dumps(result, indent=2) if args.json else attempts_table(result))


if __name__ == "__main__":
    main()
