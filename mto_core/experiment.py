"""Experiments: compare runs by method, and the efficiency and ablation experiments.

Runs are grouped by their folder name without a trailing ``-s<seed>`` (``simmim-mto-s2`` ->
``simmim-mto``). Curves are validation-split probe accuracies per epoch (metrics.jsonl);
see :mod:`mto_core.efficiency` for RAUC and epochs-to-target.
"""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import list_checkpoints, read_metrics
from .config import RunConfig, apply_overrides, preset
from .efficiency import curve, efficiency


def group_name(run: Path) -> str:
    return re.sub(r"-s\d+$", "", run.name)


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds at the epochs every seed has."""
    common = curves[0][0]
    for epochs, _ in curves[1:]:
        common = np.intersect1d(common, epochs)
    values = np.stack([v[np.isin(e, common)] for e, v in curves])
    return common, values.mean(0), values.std(0)


def compare(runs: list[Path], baseline: str | None = None, metric: str | None = None) -> dict[str, Any]:
    """Final accuracy (mean, std over seeds), RAUC, epochs-to-target and efficiency per group."""
    rows = {run: read_metrics(run) for run in runs}
    if metric is None:
        metric = "linear_val" if all(len(curve(r, "linear_val")[0]) for r in rows.values()) else "knn_val"
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for run, r in rows.items():
        c = curve(r, metric)
        if not len(c[0]):
            raise ValueError(f"{run} has no per-epoch '{metric}' in its metrics.jsonl; train with "
                             "--set train.knn_every=1 (and train.linear_every=1)")
        groups.setdefault(group_name(run), []).append(c)
    if baseline is None:
        baseline = next((g for g in groups if "mto" not in g), next(iter(groups)))
    if baseline not in groups:
        raise ValueError(f"baseline group '{baseline}' not among {', '.join(groups)}")
    base_epochs, base_mean, _ = _mean_curve(groups[baseline])
    result: dict[str, Any] = {"metric": metric, "baseline": baseline, "groups": {}}
    for name, curves in groups.items():
        epochs, mean, std = _mean_curve(curves)
        finals = [float(v[-1]) for _, v in curves]
        entry = {"seeds": len(curves), "final_mean": statistics.fmean(finals),
                 "final_std": statistics.pstdev(finals) if len(finals) > 1 else 0.0,
                 "epochs": epochs.tolist(), "mean": mean.tolist(), "std": std.tolist(),
                 **efficiency((epochs, mean), (base_epochs, base_mean))}
        entry["per_seed_rauc"] = [efficiency(c, (base_epochs, base_mean))["rauc"] for c in curves]
        result["groups"][name] = entry
    return result


def format_compare(result: dict[str, Any]) -> str:
    lines = [f"Metric: {result['metric']} (validation split), baseline: {result['baseline']}.", "",
             "| method | seeds | final accuracy | RAUC | epochs to baseline's final | efficiency |",
             "|---|---|---|---|---|---|"]
    for name, g in result["groups"].items():
        reach = "never" if g["epochs_to_target"] is None else f"{g['epochs_to_target']:g} of {g['baseline_epochs']:g}"
        eff = "-" if g["efficiency"] is None else f"{g['efficiency']:.2f}"
        lines.append(f"| {name} | {g['seeds']} | {g['final_mean']:.4f} ± {g['final_std']:.4f} | {g['rauc']:.4f} "
                     f"| {reach} | {eff} |")
    return "\n".join(lines)


def plot_compare(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs epoch, mean over seeds with a ±1 std band per method, as an HTML file."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, g in result["groups"].items():
        x, m, s = np.array(g["epochs"]), np.array(g["mean"]), np.array(g["std"])
        fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[m + s, (m - s)[::-1]], fill="toself",
                                 opacity=0.2, line=dict(width=0), showlegend=False, hoverinfo="skip",
                                 legendgroup=name))
        fig.add_trace(go.Scatter(x=x, y=m, mode="lines+markers", name=f"{name} ({g['seeds']} seeds)",
                                 legendgroup=name))
    fig.update_layout(xaxis_title="epoch", yaxis_title=result["metric"], height=480,
                      title="Probe accuracy vs pre-training epoch (mean ± std over seeds)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="cdn")
    return path


@dataclass
class Experiment:
    """A set of runs: names -> config overrides, each for every seed, all on one budget."""

    name: str
    variants: dict[str, tuple[str, list[str]]]
    seeds: list[int]
    epochs: int
    common: list[str] = field(default_factory=list)
    baseline: str = "simmim"


_CPU_COMMON = ["data.train_limit=13000", "train.knn_every=1", "train.linear_every=1", "train.probe_bank=3000",
               "train.probe_val=2000", "train.batch_size=128"]
_GPU_COMMON = ["train.knn_every=1", "train.linear_every=2", "train.probe_bank=10000", "train.device=cuda"]
_ABLATION = {"simmim": ("simmim", []),
             "hard-recalibration": ("simmim", ["mto.hard_recalibration=true"]),
             "soft-recalibration": ("simmim", ["mto.recalibration_weight=0.1"]),
             "singularity": ("simmim", ["mto.singularity_weight=0.1"]),
             "entropy": ("simmim", ["mto.entropy_weight=0.01"]),
             "simmim-mto": ("simmim-mto", [])}
EXPERIMENTS = {
    ("efficiency", "cpu"): Experiment("efficiency-cpu", {p: (p, []) for p in ("simmim", "simmim-mto", "mae", "mae-mto")},
                                      [0, 1, 2], 10, _CPU_COMMON),
    ("efficiency", "gpu"): Experiment("efficiency-gpu", {p: (p, []) for p in ("simmim", "simmim-mto", "mae", "mae-mto")},
                                      [0, 1, 2, 3, 4], 40, _GPU_COMMON),
    ("ablation", "cpu"): Experiment("ablation-cpu", _ABLATION, [0, 1], 8, _CPU_COMMON),
    ("ablation", "gpu"): Experiment("ablation-gpu", _ABLATION, [0, 1, 2], 30, _GPU_COMMON),
}


def run_config(experiment: Experiment, variant: str, seed: int, overrides: list[str]) -> RunConfig:
    base, sets = experiment.variants[variant]
    return apply_overrides(preset(base), [*experiment.common, *sets, f"train.epochs={experiment.epochs}",
                                          f"train.seed={seed}", *overrides])


def is_complete(run: Path, config: RunConfig) -> bool:
    """A run whose last epoch row is the planned last epoch."""
    epochs = [r["epoch"] for r in read_metrics(run) if r.get("kind") == "epoch"]
    return bool(list_checkpoints(run)) and bool(epochs) and epochs[-1] >= config.train.epochs


def run_experiment(experiment: Experiment, out: Path, overrides: list[str] | None = None,
                   progress: bool = True) -> list[Path]:
    """Train every (variant, seed); finished runs are skipped, interrupted ones resumed."""
    from .engine import train

    runs = []
    for seed in experiment.seeds:  # seed-major: an early stop still leaves whole seeds to compare
        for variant in experiment.variants:
            config = run_config(experiment, variant, seed, overrides or [])
            run = out / f"{variant}-s{seed}"
            runs.append(run)
            if is_complete(run, config):
                print(f"{run}: complete, kept")
                continue
            start = time.perf_counter()
            train(config, run, resume=(run / "config.json").exists(), progress=progress)
            print(f"{run}: {time.perf_counter() - start:.0f} s")
    return runs


def write_report(experiment: Experiment, runs: list[Path], command: str, path: Path,
                 wall_s: float | None = None) -> Path:
    """A markdown report of every run the experiment made, plus an HTML plot next to it."""
    groups = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    sections = []
    comparisons = []
    families = [{g for g in groups if g.startswith(m)} for m in ("simmim", "mae")] \
        if experiment.name.startswith("efficiency") else [set(groups)]
    for family in families:
        if not family:
            continue
        base = experiment.baseline if experiment.baseline in family else sorted(family)[0]
        chosen = [r for g in family for r in groups[g]]
        result = compare(chosen, baseline=base)
        comparisons.append(result)
        plot = plot_compare(result, path.with_name(f"{path.stem}-{base}.html"))
        sections += [format_compare(result), "", f"Plot: [{plot.name}]({plot.name})", ""]
    from .bench import machine

    info = machine()
    lines = [f"# {experiment.name}", "", "Generated by:", "", f"    {command}", "",
             f"Every run the command made is in the tables: {len(runs)} runs "
             f"({len(experiment.variants)} variants x seeds {experiment.seeds}), {experiment.epochs} epochs "
             f"each, identical data, hyper-parameters and budget. Common settings: "
             f"`{' '.join(experiment.common)}`.",
             f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}; {info['date']}"
             + (f"; wall time of this invocation {wall_s / 60:.0f} min." if wall_s else "."), "",
             "Accuracy is the linear probe (or k-NN where named) on frozen average-pooled features, on "
             "the validation split of the training images. RAUC = area under a method's "
             "accuracy-vs-epoch curve / the baseline's (this project's definition; the paper's is not "
             "public). Efficiency = the first epoch reaching the baseline's final accuracy / the "
             "baseline's epochs (the paper reports about 0.5 at its scale).", "", *sections]
    lines += _verdicts(comparisons) if experiment.name.startswith("efficiency") else _ablation_choice(comparisons)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _verdicts(comparisons: list[dict[str, Any]]) -> list[str]:
    lines = ["## What the data says", ""]
    for result in comparisons:
        base = result["groups"][result["baseline"]]
        for name, g in result["groups"].items():
            if name == result["baseline"]:
                continue
            half = g["efficiency"] is not None and g["efficiency"] <= 0.5
            better = g["final_mean"] >= base["final_mean"]
            lines.append(f"- {name} vs {result['baseline']}: final {g['final_mean']:.4f} vs "
                         f"{base['final_mean']:.4f} ({'not lower' if better else 'lower'}), RAUC "
                         f"{g['rauc']:.3f}; reaches the baseline's final accuracy "
                         + ("never" if g["epochs_to_target"] is None else f"at epoch {g['epochs_to_target']:g} "
                            f"of {g['baseline_epochs']:g}")
                         + f". The target (at most half the epochs, final accuracy not lower): "
                         f"{'met' if half and better else 'not met'}.")
    return lines + [""]


def _ablation_choice(comparisons: list[dict[str, Any]]) -> list[str]:
    result = comparisons[0]
    ranked = sorted(result["groups"].items(), key=lambda kv: kv[1]["final_mean"], reverse=True)
    lines = ["## Ranking by final validation accuracy", ""]
    lines += [f"{i}. {name}: {g['final_mean']:.4f} ± {g['final_std']:.4f} (RAUC {g['rauc']:.3f})"
              for i, (name, g) in enumerate(ranked, start=1)]
    best = ranked[0][0]
    return lines + ["", f"Best on this validation split: **{best}**. Defaults follow from this table; "
                        "differences smaller than the seed std are not evidence.", ""]
