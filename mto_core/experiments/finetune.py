"""The fine-tuning experiment: end-to-end fine-tuning (the paper's protocol, on a short fixed
schedule) of the efficiency runs' snapshots, against a from-scratch floor on the same budget.

Each result is one line of ``<report stem>-runs/finetune.jsonl``; finished (method, seed,
epoch) results are kept when the command is started again, so it resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..eval.efficiency import paired
from ..eval.probes import FinetuneSchedule, finetune_accuracy
from ..models.checkpoint import load_checkpoint, read_config
from .records import RECORD, read_record
from .runner import now, record_call
from .stats import format_interval, format_sign

RESULTS = "finetune.jsonl"


@dataclass
class FinetuneSpec:
    """Which snapshots of which efficiency runs are fine-tuned, and how."""

    name: str
    pairs: list[tuple[str, str]]  # (baseline, method)
    seeds: list[int]
    points: list[float]  # pre-training epochs (snapshot_points of the efficiency runs)
    schedule: FinetuneSchedule = field(default_factory=FinetuneSchedule)


FINETUNES = {
    "cpu": FinetuneSpec("finetune-cpu", [("simmim", "simmim-mto"), ("mae", "mae-mto")], [0, 1, 2], [2.0, 6.0]),
    "gpu": FinetuneSpec("finetune-gpu", [("simmim", "simmim-mto"), ("mae", "mae-mto")], [0, 1, 2, 3], [2.0, 12.0],
                        FinetuneSchedule(epochs=10, batch_size=256)),
}


def _read(file: Path) -> list[dict[str, Any]]:
    if not file.exists():
        return []
    rows = []
    for line in file.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("accuracy"), (int, float)):
            rows.append(row)
    return rows


def run_finetune(spec: FinetuneSpec, source: Path, command: str, report: Path, report_only: bool = False,
                 progress: bool = True) -> Path:
    """Fine-tune every (method, seed, point) snapshot of the runs in ``source`` and a from-scratch
    model per (family, seed); append each result to the results file beside the report
    (``<report stem>-runs/``); write the report. With ``report_only``, train nothing: render
    the report from the committed results (docs/results/<spec name>-runs/, copied beside it)."""
    copies = report.with_name(f"{report.stem}-runs")
    results = copies / RESULTS
    if report_only:
        committed = Path("docs") / "results" / f"{spec.name}-runs"
        if committed.is_dir() and committed.resolve() != copies.resolve():
            copies.mkdir(parents=True, exist_ok=True)
            for name in (RESULTS, RECORD):
                if (committed / name).exists():
                    shutil.copyfile(committed / name, copies / name)
    else:
        if not source.is_dir():
            raise ValueError(f"{source} does not exist: fine-tuning reads the snapshots of an efficiency "
                             "experiment's runs there; run `mto experiment efficiency` first, or give its "
                             "folder with --out")
        copies.mkdir(parents=True, exist_ok=True)
        started, trained = now(), False
        done = {(r["method"], r["seed"], r["epoch"]) for r in _read(results)}
        # seed-major, each seed's floors first: a stopped run still leaves whole pairs and floors
        todo = [item for s in spec.seeds for item in
                [(f"{base}-scratch", s, 0.0) for base, _ in spec.pairs]
                + [(m, s, p) for pair in spec.pairs for m in pair for p in spec.points]]
        for i, (method, seed, point) in enumerate(todo, start=1):
            if (method, seed, point) in done:
                continue
            if not _snapshot(source, method, seed, point).is_dir():
                print(f"[{i}/{len(todo)}] {method} seed {seed} epoch {point:g}: skipped, its efficiency run "
                      "has not reached that point yet (run this command again later)", flush=True)
                continue
            start = time.perf_counter()
            accuracy = _finetune_one(source, method, seed, point, spec.schedule, progress)
            row = {"method": method, "seed": seed, "epoch": point, "accuracy": accuracy,
                   "seconds": round(time.perf_counter() - start, 1)}
            with open(results, "a") as handle:
                handle.write(json.dumps(row) + "\n")
            trained = True
            print(f"[{i}/{len(todo)}] {method} seed {seed} epoch {point:g}: {accuracy:.4f} "
                  f"({row['seconds']:.0f} s)", flush=True)
        if trained:
            record_call(copies, command, started)
    rows = _read(results)
    if not rows:
        raise ValueError(f"{results} holds no result yet" + ("; run the command without --report-only first"
                                                             if report_only else
                                                             f": none of the snapshots it needs is in {source} yet"))
    report.write_text(_report(spec, rows, copies))
    return report


def _snapshot(source: Path, method: str, seed: int, point: float) -> Path:
    """The weights a result starts from: a snapshot, or for ``<family>-scratch`` the run folder
    whose config gives the architecture."""
    if method.endswith("-scratch"):
        return source / f"{method[:-len('-scratch')]}-s{seed}"
    return source / f"{method}-s{seed}" / "snapshots" / f"epoch-{point:g}"


def _finetune_one(source: Path, method: str, seed: int, point: float, schedule: FinetuneSchedule,
                  progress: bool) -> float:
    from ..eval.schedule import probe_sets
    from ..models.build import build_model

    folder = _snapshot(source, method, seed, point)
    if method.endswith("-scratch"):
        config = read_config(folder)
        torch.manual_seed(seed)
        model = build_model(config.model, config.mto)
    else:
        checkpoint = load_checkpoint(folder)
        model, config = checkpoint.model, checkpoint.config
    bank, val = probe_sets(config)
    return finetune_accuracy(model, bank, val, dataclasses.replace(schedule, seed=seed), progress=progress)


def _report(spec: FinetuneSpec, rows: list[dict[str, Any]], copies: Path) -> str:
    """The page, from the results and the record alone (seeds are those the results hold)."""
    from .report import recorded_machine, rerender_command

    acc = {(r["method"], int(r["seed"]), float(r["epoch"])): float(r["accuracy"]) for r in rows}
    minutes = sum(float(r.get("seconds", 0)) for r in rows) / 60
    record = read_record(copies)
    seeds = sorted({int(r["seed"]) for r in rows})
    lines = [f"# {spec.name}", "", "Results made by:", "",
             f"    {record.get('command') if record and record.get('command') else 'not recorded'}", "",
             f"End-to-end fine-tuning of the efficiency runs' weights at pre-training epochs "
             f"{', '.join(f'{p:g}' for p in spec.points)}, seeds {', '.join(map(str, seeds))}; every result "
             f"is a line of [{copies.name}/{RESULTS}]({copies.name}/{RESULTS}) ({len(rows)} results, "
             f"{minutes:.0f} min recorded), and `{rerender_command(spec.name)}` renders this page again "
             "from it, the same to the byte.",
             f"Schedule, the same for every model: {spec.schedule.epochs} epochs on the runs' probe bank (the "
             f"fixed labelled training images of the k-NN probe), batch {spec.schedule.batch_size}, AdamW lr "
             f"{spec.schedule.lr:g} (one epoch of warmup, cosine decay), weight decay {spec.schedule.weight_decay:g}, "
             "crop-and-flip augmentation, a linear head on the average-pooled encoder features; accuracy on "
             "the fixed validation set. The floor is the same architecture from random weights (seeded as the "
             "runs), fine-tuned on the same schedule. Intervals: 95% paired t over seeds; sd: sample std.",
             recorded_machine(record), ""]
    verdicts = []
    for base, method in spec.pairs:
        paired_seeds = [s for s in seeds if all((m, s, p) in acc for m in (base, method) for p in spec.points)]
        scratch = [acc[(f"{base}-scratch", s, 0.0)] for s in seeds if (f"{base}-scratch", s, 0.0) in acc]
        lines += [f"## {method} vs {base} ({len(paired_seeds)} paired seeds)", ""]
        if scratch:
            lines.append(f"From-scratch floor ({len(scratch)} seeds): {statistics.fmean(scratch):.4f}"
                         + (f" ± {statistics.stdev(scratch):.4f}" if len(scratch) > 1 else "") + ".")
            lines.append("")
        if not paired_seeds:
            lines += ["No seed has every result yet.", ""]
            continue
        lines += [f"| pre-training epoch | {base} (mean ± sd) | {method} (mean ± sd) | {method} - {base} "
                  "[95% CI] | sign test | reading |", "|---|---|---|---|---|---|"]
        for p in spec.points:
            b = [acc[(base, s, p)] for s in paired_seeds]
            m = [acc[(method, s, p)] for s in paired_seeds]
            stats = paired([y - x for x, y in zip(b, m)])
            sd = lambda v: f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else ""  # noqa: E731
            lines.append(f"| {p:g} | {statistics.fmean(b):.4f}{sd(b)} | {statistics.fmean(m):.4f}{sd(m)} | "
                         f"{format_interval(stats)} | {format_sign(stats)} | {stats['reading']} |")
            verdicts.append(f"- {method} vs {base} at epoch {p:g}: {format_interval(stats)}, "
                            f"**{stats['reading']}**.")
        lines.append("")
    return "\n".join(lines + ["## What the data says", ""] + verdicts + [""]) + "\n"
