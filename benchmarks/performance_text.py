"""The Markdown of docs/performance.md from the benchmarks' results: the prose lives here, the
scripts only measure and write JSON. Imports no benchmark script.

performance_doc.py renders the whole file; app_budgets.py and attempts.py print their tables with
it; app_budgets.py --update-doc and gpu_table.py rewrite their own sections with it.
"""

from __future__ import annotations

import re
from pathlib import Path

from mto_core.bench.measure import MTO_PARTS, format_profile, format_report

GPU_BEGIN, GPU_END = "<!-- gpu-check: begin -->", "<!-- gpu-check: end -->"
SCALE_BUDGETS = {"load_s": 10, "first_render_s": 5, "reconstruction_s": 1, "pca_s": 2, "umap_cold_s": 10}
APP_BUDGETS_INTRO = ("Measured by `python benchmarks/app_budgets.py --update-doc docs/performance.md` (first render: "
                     "three fresh servers, headless Chromium opening the pages in turn, the median per page; "
                     "reconstruction and UMAP on the shipped checkpoints; training through the Train page in Chromium):")
SCALE_INTRO = ("Measured by `python benchmarks/app_budgets.py --scale --update-doc docs/performance.md`: "
               "a ViT-B-shaped MAE and SimMIM in mto's format, randomly initialised (no published weights "
               "can be had here; the shapes, not the values, set these times), opened on the photos "
               "bundled with scikit-image; the page times in headless Chromium on a fresh server:")


def _verdict(ok: bool) -> str:
    return "holds" if ok else "does not hold"


def app_budgets_table(result: dict) -> str:
    """The budgets of `app_budgets.py`'s JSON, each with its verdict."""
    renders, umap = result["first_render_s"], result["umap_2000_tokens_s"]
    rates = result["training_images_per_s"]
    ratio = rates["train_page"] / rates["mto_train"]
    worst = max(renders, key=renders.get)
    machine = result["machine"]
    load = machine["load_average"]
    lines = [f"Measured {machine['when']} on {machine['cores']} cores; load average {load[0]} before, "
             f"{load[1]} after" + (" (a busy machine: these are not the app's own figures)"
                                   if load[0] > 0.5 * machine["cores"] else "") + ". The load after "
             "includes the benchmark's own work.", "",
             "| budget | measured | verdict |", "|---|---|---|"]
    lines.append(f"| first render of every page <= 3 s on a fresh server (median of 3 servers) | slowest: {worst} {renders[worst]:.1f} s "
                 f"({', '.join(f'{k} {v:.1f} s' for k, v in renders.items())}) | "
                 f"{_verdict(renders[worst] <= 3)} |")
    lines.append(f"| UMAP of 2,000 tokens <= 10 s cold | {umap['cold']:.1f} s | {_verdict(umap['cold'] <= 10)} |")
    lines.append(f"| UMAP of 2,000 tokens <= 3 s warm | {umap['warm']:.1f} s | {_verdict(umap['warm'] <= 3)} |")
    lines.append(f"| one baseline + MTO reconstruction <= 50 ms | {result['reconstruction_ms']:.1f} ms | "
                 f"{_verdict(result['reconstruction_ms'] <= 50)} |")
    lines.append(f"| Train page (page open) >= 0.8x `mto train` images/s, SimMIM, batch {rates['batch']}, "
                 f"shipped subset | {rates['train_page']:.0f} vs {rates['mto_train']:.0f} images/s: "
                 f"{ratio:.2f}x | {_verdict(ratio >= 0.8)} |")
    return "\n".join(lines)


def replace_section(path: Path, table: str, heading: str = "## The app's budgets", intro: str = APP_BUDGETS_INTRO) -> None:
    """Replace the body of the ``heading`` section of ``path`` with ``table`` (a new section before
    "## The app's budgets: what it took" if there is none yet)."""
    text = path.read_text()
    body = intro + "\n\n" + table + "\n\n"
    if f"\n{heading}\n" not in text:
        anchor = "\n## The app's budgets: what it took\n"
        text = text.replace(anchor, f"\n{heading}\n\n\n{anchor}", 1)
    new, count = re.subn(rf"({re.escape(heading)}\n\n).*?(?=\n## )", lambda m: m.group(1) + body, text,
                         flags=re.DOTALL)
    if count != 1:
        raise SystemExit(f"{path} has no \"{heading}\" section followed by another section")
    path.write_text(new.replace("\n\n\n## ", "\n\n## "))


def scale_table(r: dict) -> str:
    """The budgets of `app_budgets.py --scale --json`, each with its verdict."""
    b, pages = SCALE_BUDGETS, r["pages"]
    renders = {**pages["alone_s"], **pages["pair_s"]}
    worst = max(renders, key=renders.get)
    m = r["machine"]
    lines = [f"Measured {m['when']} on {m['cores']} cores; load average {m['load_average'][0]} before, "
             f"{m['load_average'][1]} after (the benchmark's own work included).", "",
             "| budget | measured | verdict |", "|---|---|---|",
             f"| loading a ViT-B checkpoint <= {b['load_s']} s (`load_checkpoint`) | MAE {r['load_s']['mae-b']:.1f} s, "
             f"SimMIM {r['load_s']['simmim-b']:.1f} s | {_verdict(max(r['load_s'].values()) <= b['load_s'])} |",
             "| picking it in the sidebar until Reconstruct has run, the load included (Chromium) | "
             + ", ".join(f"{k} {v:.1f} s" for k, v in pages["pick_s"].items()) + " | reported |",
             f"| first render of every page once loaded <= {b['first_render_s']} s (Chromium, alone and in a pair) | "
             f"slowest: {worst} {renders[worst]:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in renders.items())}) | "
             f"{_verdict(renders[worst] <= b['first_render_s'])} |",
             f"| one reconstruction <= {b['reconstruction_s']} s (one photo) | MAE {r['reconstruction_s']['mae-b']:.2f} s, "
             f"SimMIM {r['reconstruction_s']['simmim-b']:.2f} s | {_verdict(max(r['reconstruction_s'].values()) <= b['reconstruction_s'])} |",
             f"| PCA of 16 photos' tokens ({r['tokens']:,}) <= {b['pca_s']} s | MAE {r['pca_s']['mae-b']:.2f} s, SimMIM "
             f"{r['pca_s']['simmim-b']:.2f} s (the forward pass that gives the tokens: MAE "
             f"{r['tokens_forward_s']['mae-b']:.1f} s, SimMIM {r['tokens_forward_s']['simmim-b']:.1f} s) | "
             f"{_verdict(max(r['pca_s'].values()) <= b['pca_s'])} |",
             f"| UMAP of the same tokens <= {b['umap_cold_s']} s cold (a fresh process) | {r['umap_cold_s']:.1f} s | "
             f"{_verdict(r['umap_cold_s'] <= b['umap_cold_s'])} |",
             f"| the server's memory with models of that size open (the checkpoint cache holds at most "
             f"{r['cache_gib']:.1f} GiB of weights, the least recently used dropped first) | "
             + ", ".join(f"{k}: {v:,} MiB" for k, v in pages["memory_mib"].items()) + " | reported |"]
    return "\n".join(lines)


def attempts_table(result: dict) -> str:
    """`attempts.py --json` as a before/after table and the plain loop's comparison."""
    lines = ["| attempt | before | after | after / before (time) |", "|---|---|---|---|"]
    for method, ms in result["mto"].items():
        lines.append(f"| {method}: MTO rows-only pass (full-map pass before); baseline {ms['baseline']:.1f} ms "
                     f"| {ms['full maps']:.1f} ms ({ms['full maps'] / ms['baseline']:.3f}x baseline) "
                     f"| {ms['rows']:.1f} ms ({ms['rows'] / ms['baseline']:.3f}x baseline) "
                     f"| {ms['rows'] / ms['full maps']:.3f} |")
        lines.append(f"| {method}: L_ent from fused kernels, log-sum-exp minus E_p[s] (explicit masked rows "
                     f"before) | {ms['explicit entropy']:.1f} ms ({ms['explicit entropy'] / ms['baseline']:.3f}x "
                     f"baseline) | {ms['rows']:.1f} ms ({ms['rows'] / ms['baseline']:.3f}x baseline) "
                     f"| {ms['rows'] / ms['explicit entropy']:.3f} |")
        lines.append(f"| {method}: L_sing's Gram matrix with a one-product backward (autograd's backward of "
                     f"h @ h^T before) | {ms['autograd gram']:.1f} ms ({ms['autograd gram'] / ms['baseline']:.3f}x "
                     f"baseline) | {ms['rows']:.1f} ms ({ms['rows'] / ms['baseline']:.3f}x baseline) "
                     f"| {ms['rows'] / ms['autograd gram']:.3f} |")
    s = result["step"]
    names = {"permuted qkv": "q, k, v as views of the qkv output (timm's permuted layout before)",
             "explicit attention": "explicit attention (fused attention before)",
             "compiled blocks": "compiled blocks (eager before)",
             "half batches": "two half-batches at once, one torch thread each (one batch on all threads before)"}
    for name, label in names.items():
        before, after = (s[name], s["library"]) if name == "permuted qkv" else (s["library"], s[name])
        lines.append(f"| SimMIM baseline step: {label} | {before:.1f} ms | {after:.1f} ms | {after / before:.3f} |")
    a = result["allocator"]
    for name in ("plain", "simmim", "simmim-mto"):
        d, k = a[f"{name} default"], a[f"{name} kept"]
        label = "plain PyTorch loop" if name == "plain" else f"{name} step"
        lines.append(f"| {label}: freed memory kept in the process (glibc defaults before; page faults and kernel "
                     f"time per step {d['faults']:.0f} / {d['system_ms']:.0f} ms -> {k['faults']:.0f} / "
                     f"{k['system_ms']:.0f} ms) | {d['ms']:.1f} ms | {k['ms']:.1f} ms | {k['ms'] / d['ms']:.3f} |")
    lines += ["", f"Plain PyTorch loop of the same shape: {s['plain']:.1f} ms per step; the library's step "
                  f"{s['library']:.1f} ms, **{s['plain'] / s['library']:.2f}x** the plain loop's speed (explicit "
                  f"attention {s['plain'] / s['explicit attention']:.2f}x, compiled blocks "
                  f"{s['plain'] / s['compiled blocks']:.2f}x, half-batches {s['plain'] / s['half batches']:.2f}x; "
                  f"compiling took {result['compile_s']:.0f} s). "
                  f"{result['torch_threads']} torch threads, batch {result['batch']}, median of "
                  f"{result['rounds']} interleaved rounds; `python benchmarks/attempts.py`.",
              "", f"Across processes (fresh, alternating, median of 3 each): the library's SimMIM step as training "
                  f"runs it (freed memory kept) is **{a['plain kept']['ms'] / a['simmim kept']['ms']:.2f}x** the "
                  "speed of the plain loop given the same malloc setting (which any PyTorch program can take: "
                  "`MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824`), and "
                  f"{a['plain default']['ms'] / a['simmim kept']['ms']:.2f}x that of the plain loop in a process "
                  "with glibc's defaults."]
    return "\n".join(lines)




def _gpu_row(result: dict, size: str, method: str, variant: str, compiled: bool) -> dict | None:
    return next((r for r in result["rows"] if (r["size"], r["method"], r["variant"], r["compiled"])
                 == (size, method, variant, compiled)), None)


def gpu_section(result: dict, sizes: list[tuple[str, int]]) -> str:
    """The "after" part of the GPU section of docs/performance.md from `gpu_table.py`'s JSON; ``sizes``:
    the (size, batch) rows in the order of the table."""
    m = result["machine"]
    lines = [f"Measured by `bash benchmarks/gpu_check.sh OUT` on {m.get('gpu', 'a CUDA device')}, torch {m['torch']}, "
             f"{m['date']}; bf16 matmul peak measured {result['matmul_peak_tflops']:.0f} TFLOP/s; median of "
             f"{result['rounds']} interleaved rounds after {result['warmup']} warm-up steps.", ""]
    lines += ["| size | batch | mode | SimMIM ms | SimMIM+MTO ms | ratio | MFU base -> MTO | peak MiB base -> MTO "
              "| MAE ms | MAE+MTO ms | ratio |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for size, batch in sizes:
        for compiled in (False, True):
            s0, s1 = (_gpu_row(result, size, "simmim", v, compiled) for v in ("baseline", "MTO (all defaults)"))
            a0, a1 = (_gpu_row(result, size, "mae", v, compiled) for v in ("baseline", "MTO (all defaults)"))
            if not (s0 and s1):
                continue
            mae = (f"{a0['ms']:.1f} | {a1['ms']:.1f} | {a1['vs_baseline']:.2f}x" if a0 and a1 else "not reached | | ")
            lines.append(f"| {size} | {batch} | {'compiled' if compiled else 'eager'} | {s0['ms']:.1f} | {s1['ms']:.1f} "
                         f"| {s1['vs_baseline']:.2f}x | {100 * s0['mfu']:.1f}% -> {100 * s1['mfu']:.1f}% "
                         f"| {s0['peak_mib']:.0f} -> {s1['peak_mib']:.0f} | {mae} |")
    parts = [r for r in result["rows"] if not r["compiled"] and r["variant"] not in ("baseline",)]
    if parts:
        lines += ["", "Each part alone, eager (time vs its own baseline):", "",
                  "| size | method | " + " | ".join(MTO_PARTS) + " |", "|---|---|" + "---|" * len(MTO_PARTS)]
        for size, _ in sizes:
            for method in ("simmim", "mae"):
                cells = [_gpu_row(result, size, method, v, False) for v in MTO_PARTS]
                if all(cells):
                    lines.append(f"| {size} | {method} | " + " | ".join(f"{c['vs_baseline']:.2f}x" for c in cells) + " |")
    plain = result.get("plain")
    if plain:
        lines += ["", f"Tiny SimMIM baseline, batch {plain['batch']}, eager, against the plain PyTorch loop "
                      f"(`mto_core/bench/plain_loop.py`, bf16 autocast): {plain['mto_ms']:.1f} ms vs {plain['plain_ms']:.1f} ms, "
                      f"**{plain['speedup']:.2f}x** its speed ({plain['batch'] / plain['mto_ms'] * 1000:,.0f} images/s)."]
    if "equal_paths" in result:
        gaps = "; ".join(f"{k}: terms {v['terms']:.1e}, gradients {v['gradients']:.1e}"
                         for k, v in result["equal_paths"].items())
        syncs = "; ".join(f"{k}: {v}" for k, v in result["host_syncs"].items())
        lines += ["", f"Fused against explicit on CUDA (float32, every part; largest relative gap): {gaps}.",
                  f"Host synchronisations in a training step (`torch.cuda.set_sync_debug_mode(\"error\")`): {syncs}."]
    if result["skipped"]:
        lines += ["", "Not reached within the time budget: " + "; ".join(result["skipped"]) + "."]
    return "\n".join(lines)


def replace_between_markers(doc: Path, text: str) -> None:
    """Put ``text`` between the gpu-check markers of ``doc``."""
    source = doc.read_text()
    pattern = re.compile(re.escape(GPU_BEGIN) + ".*?" + re.escape(GPU_END), re.DOTALL)
    if not pattern.search(source):
        raise SystemExit(f"gpu_table.py: {doc} has no '{GPU_BEGIN}' ... '{GPU_END}' markers to write between")
    doc.write_text(pattern.sub(lambda _: f"{GPU_BEGIN}\n{text}\n{GPU_END}", source))


# The doc's sections that other scripts write (each names its command), carried over verbatim: the
# paper's scale under the app's budgets, the others at the end.
SCALE_HEADING = "## The app at the paper's scale"
KEPT_AT_END = ("## Tracing while training", "## A classroom on one server")

APP_BUDGETS_WORK = """The figures of the table above come from `benchmarks/app_budgets.py`; the earlier figures of the
same script (in this file's history) missed four of the five budgets. What changed:

- **UMAP**: umap-learn's small-data path computes the distance matrix through a Python callback
  (n^2 calls) and compiles a parallel neighbour search. `mto_core.analysis.measures.embed_2d` now hands it
  the exact 15 cosine neighbours from one matrix product, a PCA start and 200 layout epochs
  (`tests/test_analysis.py::test_umap_keeps_cosine_neighbours_and_is_repeatable` checks that the
  neighbourhoods are kept).
- **Tokens**: the silhouette is computed exactly in O(n D) instead of sklearn's O(n^2 D) (equal to
  sklearn's to 1e-12, tested); the checkpoint folders are scanned once per page run instead of once
  per call; config type hints are cached.
- **Page work on one thread**: the server runs page computations with one torch thread; with two,
  they and the browser rendering on the same two cores wait on each other. `app/serve.py` also
  pays Plotly's validators and the first model kernels at start-up.
- **Learn**: the pipeline diagram is a static SVG instead of a Graphviz chart drawn in the browser,
  and each before/after pair is one figure with one shared colour scale. What is left is mostly the
  browser loading Plotly's JavaScript on the first page.
- **Train page**: the two runs' threads use one torch thread each (four threads on two cores
  before); the live view redraws every 2.5 s instead of every second, and its charts are one figure
  built without Plotly Express. Each redraw costs the browser CPU time that training loses.
- **A quiet machine**: a load left by a previous job shifts the first renders by several tenths of
  a second; the script waits until the load average is below a quarter of the cores."""


def kept_sections(previous: str, headings: tuple[str, ...]) -> list[str]:
    """The ``headings`` sections of the previous file, verbatim, each up to the next heading of its level."""
    out, keep = [], False
    for line in previous.splitlines():
        if line.startswith("## "):
            keep = line.startswith(headings)
        if keep:
            out.append(line)
    return out


def kept_gpu_section(previous: str) -> str:
    """The doc's "On the GPU" section as it stands: measured on a GPU by benchmarks/gpu_check.sh."""
    start, end = previous.find("## On the GPU"), previous.find("## The app's budgets")
    return previous[start:end].rstrip("\n") if 0 <= start < end else ""


def _row(result: dict, method: str, variant: str, size: str = "tiny") -> dict:
    return next(r for r in result["training"] if r["method"] == method and r["variant"] == variant
                and r["size"] == size)


def _overheads(bench: dict) -> dict[str, float]:
    return {m: _row(bench, m, "MTO (all defaults)")["time_vs_baseline"] for m in ("simmim", "mae")}


def _header(compiled: bool) -> list[str]:
    return [
        "# Performance",
        "",
        "Generated by `python benchmarks/performance_doc.py" + (" --compile" if compiled else "")
        + "`; the tables are `mto bench` output (`mto bench --json` for the raw figures).",
        "Step times are medians over rounds in which every variant takes one step in turn, so machine",
        "noise hits all variants alike; ratios are more trustworthy than absolute times here.",
        "",
    ]


def _targets(results: dict) -> list[str]:
    now, alloc = results["bench"], results["attempts"]["allocator"]
    base, plain, overheads = _row(now, "simmim", "baseline"), now["plain_reference"], _overheads(now)
    memory = now["training_run_memory"]["peak_rss_mib"]
    mfu = _row(now, "simmim", "baseline", "vit-b")["share_of_peak"] if "gpu" in now["machine"] else None
    return [
        "## Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
        f"| CPU tiny preset step >= 70% of the fp32 matmul peak | {100 * base['share_of_peak']:.0f}% "
        f"({base['gflops_per_s']:.0f} of {now['matmul_peak_gflops']:.0f} GFLOP/s) "
        f"| {_verdict(base['share_of_peak'] >= 0.7)} |",
        f"| MTO, all parts on: step time <= 1.05x baseline, same losses to 1e-5 | SimMIM {overheads['simmim']:.3f}x, "
        f"MAE {overheads['mae']:.3f}x (losses, predictions and gradients equal to 1e-5: "
        "`tests/test_attention_stats.py::test_visible_first_path_gives_the_token_order_losses_and_gradients`) "
        f"| {_verdict(max(overheads.values()) <= 1.05)} |",
        f"| CPU tiny SimMIM step >= 1.15x a plain PyTorch loop of the same shape | {plain['speedup']:.2f}x in one "
        f"process, same malloc settings ({plain['mto_ms']:.1f} vs {plain['plain_ms']:.1f} ms per step); "
        f"{alloc['plain default']['ms'] / alloc['simmim kept']['ms']:.2f}x as training runs it (freed memory kept) "
        f"against the plain loop in a process with glibc's defaults, "
        f"{alloc['plain kept']['ms'] / alloc['simmim kept']['ms']:.2f}x against the plain loop given the same "
        "setting (fresh processes, `python benchmarks/attempts.py`) | "
        f"{_verdict(plain['speedup'] >= 1.15 and alloc['plain kept']['ms'] / alloc['simmim kept']['ms'] >= 1.15)} |",
        "| GPU: vit-s and vit-b bf16 step time, MFU and memory; vit-b SimMIM >= 40% MFU | "
        + (f"vit-b {100 * mfu:.0f}% | {_verdict(mfu >= 0.4)} |" if mfu is not None else
           "not measured: no CUDA GPU at hand for this run | open |"),
        f"| Peak memory of a tiny-preset CPU training run <= 2 GB | {memory:.0f} MiB | "
        f"{_verdict(memory <= 2048)} |",
    ]


def _app_budgets(results: dict, previous: str) -> list[str]:
    scale = kept_sections(previous, (SCALE_HEADING,))
    if scale and scale[-1]:
        scale.append("")
    return [
        "## The app's budgets",
        "",
        APP_BUDGETS_INTRO,
        "",
        app_budgets_table(results["app_budgets"]),
        "",
        *scale,
        "## The app's budgets: what it took",
        "",
        APP_BUDGETS_WORK,
        "",
    ]


def _where_the_time_goes(results: dict) -> list[str]:
    now = results["bench"]
    return [
        "## Where the time goes",
        "",
        "Top operators of a tiny SimMIM step (batch 128), `mto bench --profile`:",
        "",
        format_profile(results["profile"]),
        "",
        f"The model's own largest matmul shape runs at {now['model_shape_matmul_gflops']:.0f} GFLOP/s, "
        f"{100 * now['model_shape_matmul_gflops'] / now['matmul_peak_gflops']:.0f}% of the peak, so the "
        "matrix multiplies are not what holds the step back. The rest of the step is memory-bound work "
        "that does no counted FLOPs: the fused CPU attention kernel on 50-token sequences, GELU and its "
        "backward, LayerNorm, layout copies around attention. At width 128 these are a large share of "
        "the step; with wider models (the GPU presets) the matmuls dominate and the share of peak rises.",
        "",
    ]


def _what_mto_costs(results: dict) -> list[str]:
    now, kernels, overheads = results["bench"], results["kernels"], _overheads(results["bench"])
    return [
        "## What MTO costs",
        "",
        f"On SimMIM, L_sing alone costs {_row(now, 'simmim', '+L_sing')['time_vs_baseline']:.3f}x, L_ent "
        f"{_row(now, 'simmim', '+L_ent')['time_vs_baseline']:.3f}x and hard recalibration "
        f"{_row(now, 'simmim', '+hard recalibration')['time_vs_baseline']:.3f}x; all together "
        f"{overheads['simmim']:.3f}x (MAE {overheads['mae']:.3f}x). Each term now reads only the rows "
        "its formula needs (`mto_core/mto/plugin.py`, `mto_core/mto/terms.py`): the tokens of each sample are put "
        "visible-first for the whole mask-token stack, so the masked queries' rows (L_ent), the visible "
        "queries' rows (L_rec) and the masked rows of one Gram matrix (L_sing) are contiguous slices, and "
        "no attention map is formed (`mto_core/mto/attention_stats.py`): the entropy is log-sum-exp minus "
        "E_p[s], which one float32 fused pass of the masked queries with the keys as values gives, and "
        "L_rec's mass is a fused pass with the masked-key indicator as values. "
        "What is left is work the formulas need, in kernels that are slow at this shape: per layer 1..K "
        "a second fused attention pass over the masked queries (forward and backward), "
        "and per layer 0..K a (B, T, T) Gram matrix of 50 x 128 x 50 batched products, "
        "which run at a fraction of the matmul peak, and its softmax forward and backward (the Gram "
        "matrix's backward is one product, dh = (dG + dG^T) h, instead of autograd's two and a sum; "
        "table below). Computing only the masked rows of the Gram matrix, (B, M, T), is slower here "
        f"than the full product and a slice: {kernels['rows_masked_gram_ms']:.1f} ms against "
        f"{kernels['rows_ms']:.1f} ms (`python benchmarks/loss_kernels.py`). "
        "Reaching 1.05x would take one fused kernel that computes attention, entropy and their "
        "gradients in a single pass over each tile.",
        "",
        "What each attempt did, `python benchmarks/attempts.py` (one process, interleaved):",
        "",
        attempts_table(results["attempts"]),
        "",
    ]


def _current_figures(results: dict) -> list[str]:
    return ["## Current figures", "", format_report(results["bench"]), ""]


def _optimizations(results: dict) -> list[str]:
    now, kernels, compiled = results["bench"], results["kernels"], results.get("compiled")
    base = _row(now, "simmim", "baseline")
    lines = [
        "## Optimizations tried, before and after",
        "",
        "| optimization | before | after | command for before |",
        "|---|---|---|---|",
        f"| fused AdamW (one kernel for all parameters) | {_row(results['unfused'], 'simmim', 'baseline')['images_per_s']:.0f}"
        f" images/s | {base['images_per_s']:.0f} images/s | `mto bench --set train.fused_optimizer=false` |",
        f"| L_sing over stacked layers, cosines from the Gram matrix | {kernels['per_layer_reference_ms']:.1f} ms"
        f" | {kernels['library_ms']:.1f} ms | `python benchmarks/loss_kernels.py` (forward + backward, K = 3) |",
        f"| L_sing's Gram matrix with a one-product backward, dh = (dG + dG^T) h (autograd: two products and a "
        f"sum), the visible-first rows form that training runs | {kernels['rows_autograd_gram_ms']:.1f} ms | "
        f"{kernels['rows_ms']:.1f} ms | `python benchmarks/loss_kernels.py` (forward + backward, K = 3) |",
    ]
    if compiled:
        lines.append(f"| torch.compile (`train.compile`, off by default) | {base['images_per_s']:.0f} images/s "
                     f"without | {_row(compiled, 'simmim', 'baseline')['images_per_s']:.0f} images/s with | "
                     "`mto bench --set train.compile=true` |")
    lines += [
        "",
        "Kept as they are: data stay a uint8 tensor in memory and batches are sliced, converted and "
        "augmented with one batched affine resample (no per-sample PIL work); attention probabilities "
        "are computed only in the layers 1..K whose losses need them (the others use the fused kernel); "
        "the training loop reads the loss back to the host only every `train.log_every` steps.",
        "",
    ]
    if "gpu" not in now["machine"]:
        lines += ["No GPU was available to this run; `mto bench` on a CUDA machine adds the vit-s and "
                  "vit-b rows (bf16 autocast, batch 64) and the GPU memory column.", ""]
    return lines


def render(results: dict, previous: str = "") -> str:
    """docs/performance.md from ``results`` (performance_doc.py's JSON); ``previous``: the file as it
    stands, whose sections measured elsewhere are kept."""
    kept = kept_sections(previous, KEPT_AT_END)
    lines = [*_header(results.get("compiled") is not None), *_targets(results), "", kept_gpu_section(previous), "",
             *_app_budgets(results, previous), *_where_the_time_goes(results), *_what_mto_costs(results),
             *_current_figures(results), *_optimizations(results), *kept, *([""] if kept else [])]
    return "\n".join(lines)
