"""Experiments: compare runs by method, and the efficiency and ablation experiments.

Runs are grouped by their folder name without a trailing ``-s<seed>`` (``simmim-mto-s2`` ->
``simmim-mto``). Curves are validation-split probe accuracies per epoch (metrics.jsonl);
see :mod:`mto_core.efficiency` for RAUC and epochs-to-target.
"""

from __future__ import annotations

import re
import shutil
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
        members = [run for run in rows if group_name(run) == name]
        finals = [float(v[-1]) for _, v in curves]
        minutes = [_run_minutes(rows[run]) for run in members]
        entry = {"seeds": len(curves), "runs": [run.name for run in members], "finals": finals,
                 "final_mean": statistics.fmean(finals),
                 "final_std": statistics.pstdev(finals) if len(finals) > 1 else 0.0,
                 "epochs": epochs.tolist(), "mean": mean.tolist(), "std": std.tolist(),
                 "minutes": minutes,
                 **efficiency((epochs, mean), (base_epochs, base_mean))}
        entry["per_seed_rauc"] = [efficiency(c, (base_epochs, base_mean))["rauc"] for c in curves]
        result["groups"][name] = entry
    return result


def _run_minutes(rows: list[dict[str, Any]]) -> float | None:
    """Training plus probing time of a run from its epoch rows; None where a row lacks it."""
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs or any("train_s" not in r for r in epochs):
        return None
    return sum(r["train_s"] + r.get("probe_s", 0.0) for r in epochs) / 60


def _seed(run_name: str) -> str:
    found = re.search(r"-s(\d+)$", run_name)
    return found.group(1) if found else run_name


def paired_differences(result: dict[str, Any], name: str) -> list[tuple[str, float]]:
    """(seed, final of ``name`` - final of the baseline) for the seeds both groups have."""
    base = result["groups"][result["baseline"]]
    base_final = {_seed(r): f for r, f in zip(base["runs"], base["finals"])}
    group = result["groups"][name]
    return [(_seed(r), f - base_final[_seed(r)]) for r, f in zip(group["runs"], group["finals"])
            if _seed(r) in base_final]


def format_compare(result: dict[str, Any]) -> str:
    base = result["groups"][result["baseline"]]
    lines = [f"Metric: {result['metric']} (validation split), baseline: {result['baseline']} "
             f"(final {base['target']:.4f}, best {base['best_target']:.4f}; mean over seeds).", "",
             "| method | seeds | final accuracy | RAUC | epochs to baseline's final | efficiency "
             "| epochs to baseline's best | minutes per run |",
             "|---|---|---|---|---|---|---|---|"]
    for name, g in result["groups"].items():
        of = f" of {g['baseline_epochs']:g}"
        reach = "never" if g["epochs_to_target"] is None else f"{g['epochs_to_target']:g}{of}"
        best = "never" if g.get("epochs_to_best") is None else f"{g['epochs_to_best']:g}{of}"
        eff = "-" if g["efficiency"] is None else f"{g['efficiency']:.2f}"
        timed = [m for m in g.get("minutes", []) if m is not None]
        minutes = "-" if not timed else f"{statistics.fmean(timed):.1f}" + (
            f" ({len(timed)} of {g['seeds']} timed)" if len(timed) < g["seeds"] else "")
        lines.append(f"| {name} | {g['seeds']} | {g['final_mean']:.4f} ± {g['final_std']:.4f} | {g['rauc']:.4f} "
                     f"| {reach} | {eff} | {best} | {minutes} |")
    return "\n".join(lines)


def plot_compare(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs epoch, mean over seeds with a ±1 std band per method, as an HTML file."""
    fig = compare_figure(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A div id from the file name, not a random one: the same runs give the same file.
    fig.write_html(path, include_plotlyjs="cdn", div_id=f"mto-{path.stem}")
    return path


def compare_figure(result: dict[str, Any]):  # -> plotly.graph_objects.Figure
    """The figure of :func:`plot_compare`: mean accuracy per epoch and a ±1 std band per method."""
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
    return fig


def families(groups: list[str], baseline: str = "simmim") -> dict[str, list[str]]:
    """``{baseline group: [groups compared with it, baseline first]}``: the groups named ``mae...``
    form the MAE family (baseline ``mae``), all others the family of ``baseline`` (SimMIM; an
    ablation names its SimMIM variants by the part alone)."""
    mae = [g for g in groups if g.split("-")[0] == "mae"]
    parts = {baseline: [g for g in groups if g not in mae], "mae": mae}
    out = {}
    for wanted, family in parts.items():
        if family:
            base = wanted if wanted in family else sorted(family)[0]
            out[base] = sorted(family, key=lambda g: (g != base, g))
    return out


def committed_experiments(folder: str | Path) -> dict[str, dict[str, list[Path]]]:
    """``{experiment: {group: [runs]}}`` of the run copies next to the reports in ``folder``."""
    found: dict[str, dict[str, list[Path]]] = {}
    for copies in sorted(Path(folder).glob("*-runs")):
        runs = sorted(p for p in copies.iterdir() if (p / "metrics.jsonl").is_file())
        for run in runs:
            found.setdefault(copies.name[:-len("-runs")], {}).setdefault(group_name(run), []).append(run)
    return found


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
# 24 runs (12 SimMIM, 12 MAE): a smaller subset, and the linear probe every other epoch (plus
# the last), so that the ablation takes about as long as the efficiency experiment.
_CPU_ABLATION_COMMON = ["data.train_limit=8000", "train.knn_every=1", "train.linear_every=2",
                        "train.probe_bank=3000", "train.probe_val=2000", "train.batch_size=128"]
_GPU_COMMON = ["train.knn_every=1", "train.linear_every=2", "train.probe_bank=10000", "train.device=cuda"]
_PARTS = {"hard-recalibration": ["mto.hard_recalibration=true"],
          "soft-recalibration": ["mto.recalibration_weight=0.1"],
          "singularity": ["mto.singularity_weight=0.1"],
          "entropy": ["mto.entropy_weight=0.01"]}
# Each MTO part alone (at the spec's starting weight) and all together, for SimMIM (mask tokens in
# the encoder) and for MAE (mask tokens in the decoder); the MAE variants carry a "mae-" prefix.
_ABLATION = {"simmim": ("simmim", []), **{part: ("simmim", sets) for part, sets in _PARTS.items()},
             "simmim-mto": ("simmim-mto", []),
             "mae": ("mae", []), **{f"mae-{part}": ("mae", sets) for part, sets in _PARTS.items()},
             "mae-mto": ("mae-mto", [])}
EXPERIMENTS = {
    ("efficiency", "cpu"): Experiment("efficiency-cpu", {p: (p, []) for p in ("simmim", "simmim-mto", "mae", "mae-mto")},
                                      [0, 1, 2], 10, _CPU_COMMON),
    ("efficiency", "gpu"): Experiment("efficiency-gpu", {p: (p, []) for p in ("simmim", "simmim-mto", "mae", "mae-mto")},
                                      [0, 1, 2, 3, 4], 40, _GPU_COMMON),
    ("ablation", "cpu"): Experiment("ablation-cpu", _ABLATION, [0, 1], 6, _CPU_ABLATION_COMMON),
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


def write_report(experiment: Experiment, runs: list[Path], command: str, path: Path) -> Path:
    """A markdown report of every run the experiment made, plus an HTML plot next to it.

    Each run's metrics.jsonl and config.json are copied to ``<report stem>-runs/<run>/`` (tens of
    kB per run), so that the tables can be recomputed with ``mto compare`` without the weights.
    """
    copies = path.with_name(f"{path.stem}-runs")
    for run in runs:
        (copies / run.name).mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "config.json"):
            if (run / name).exists():
                shutil.copyfile(run / name, copies / run.name / name)
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    sections = []
    comparisons = []
    for base, family in families(list(groups), experiment.baseline).items():
        chosen = [r for g in family for r in groups[g]]
        result = compare(chosen, baseline=base)
        comparisons.append(result)
        plot = plot_compare(result, path.with_name(f"{path.stem}-{base}.html"))
        sections += [f"## {base} family", "", format_compare(result), "", f"Plot: [{plot.name}]({plot.name})", ""]
        if result["metric"] != "knn_val" and all(curve(read_metrics(r), "knn_val")[0].size for r in chosen):
            sections += ["The k-NN probe (k = 20, cosine), every epoch, same runs:", "",
                         format_compare(compare(chosen, baseline=base, metric="knn_val")), ""]
    from .bench import machine

    info = machine()
    lines = [f"# {experiment.name}", "", "Generated by:", "", f"    {command}", "",
             f"Every run the command made is in the tables: {len(runs)} runs "
             f"({len(experiment.variants)} variants x seeds {experiment.seeds}), {experiment.epochs} epochs "
             f"each, identical data, hyper-parameters and budget. Common settings: "
             f"`{' '.join(experiment.common)}`.",
             f"Every run's learning curve and config: [{copies.name}/]({copies.name}/); a table "
             f"is recomputed from them with `mto compare {path.parent}/{copies.name}/<baseline>-s* "
             f"{path.parent}/{copies.name}/<variant>-s*` (baseline: "
             f"{' or '.join(f'`{b}`' for b in families(list(groups), experiment.baseline))}).",
             "Variants: " + "; ".join(f"`{name}` = preset {base}" + (f" with `{' '.join(sets)}`" if sets else "")
                                     for name, (base, sets) in experiment.variants.items()) + ".",
             f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}; {info['date']}. "
             + _timing(comparisons, len(experiment.seeds)), "",
             "Accuracy is the linear probe (or k-NN where named) on frozen average-pooled features, on "
             "the validation split of the training images. RAUC = area under a method's "
             "accuracy-vs-epoch curve / the baseline's (this project's definition; the paper's is not "
             "public). Efficiency = the first epoch reaching the baseline's final accuracy / the "
             "baseline's epochs (the paper reports about 0.5 at its scale). Epochs to the baseline's best "
             "accuracy is this project's addition: the stricter reading when the baseline's curve peaks "
             "before its last epoch. Minutes per run: training plus per-epoch probes.", "", *sections]
    lines += _verdicts(comparisons) if experiment.name.startswith("efficiency") else _ablation_choice(comparisons)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def _timing(comparisons: list[dict[str, Any]], seeds: int) -> str:
    """Total recorded training + probing time (metrics.jsonl), and per seed of the experiment."""
    minutes = [m for result in comparisons for g in result["groups"].values() for m in g["minutes"]]
    timed = [m for m in minutes if m is not None]
    if not timed:
        return "No run has per-epoch timing in its metrics.jsonl."
    text = (f"Training and probing time recorded in the runs' metrics.jsonl (train_s + probe_s): "
            f"{sum(timed):.0f} min for the {len(timed)} timed runs")
    overall = sum(timed) / len(timed)
    estimate = 0.0
    for result in comparisons:
        for g in result["groups"].values():
            own = [m for m in g["minutes"] if m is not None]
            estimate += (statistics.fmean(own) if own else overall) * len(g["minutes"])
    if len(timed) < len(minutes):
        text += (f"; {len(minutes) - len(timed)} runs were made before per-epoch timing was recorded, so "
                 f"the whole experiment is estimated from each method's timed runs: about {estimate:.0f} min")
    return text + f", i.e. about {estimate / max(seeds, 1):.0f} min per seed."


def paired_reading(result: dict[str, Any], name: str) -> tuple[float, float, str]:
    """Mean and spread (std over seeds) of the paired final-accuracy differences, and a reading:
    *helps* when the mean exceeds the spread, *hurts* when below minus the spread, else
    *no clear effect*."""
    diffs = [d for _, d in paired_differences(result, name)]
    mean = statistics.fmean(diffs)
    spread = statistics.pstdev(diffs) if len(diffs) > 1 else 0.0
    reading = ("helps" if mean > spread and mean > 0 else "hurts" if mean < -spread and mean < 0
               else "no clear effect")
    return mean, spread, reading


def _verdicts(comparisons: list[dict[str, Any]]) -> list[str]:
    lines = ["## What the data says", ""]
    for result in comparisons:
        base_name = result["baseline"]
        base = result["groups"][base_name]
        own = base["epochs_to_target"]
        saturated = own is not None and own <= base["baseline_epochs"] / 2
        for name, g in result["groups"].items():
            if name == base_name:
                continue
            half = g["efficiency"] is not None and g["efficiency"] <= 0.5
            better = g["final_mean"] >= base["final_mean"]
            diffs = ", ".join(f"{d:+.4f} (seed {seed})" for seed, d in paired_differences(result, name))
            paired = paired_reading(result, name)
            of = f" of {g['baseline_epochs']:g}"
            reach = ("not within the budget" if g["epochs_to_target"] is None
                     else f"epoch {g['epochs_to_target']:g}{of}")
            best = ("not within the budget" if g["epochs_to_best"] is None
                    else f"epoch {g['epochs_to_best']:g}{of}")
            lines.append(
                f"- **{name} vs {base_name}**: final {g['final_mean']:.4f} ± {g['final_std']:.4f} vs "
                f"{base['final_mean']:.4f} ± {base['final_std']:.4f} ({'not lower' if better else 'lower'}); "
                f"per seed, {name} minus {base_name}: {diffs}; mean {paired[0]:+.4f}, spread {paired[1]:.4f} "
                f"over seeds: {paired[2] if paired[2] != 'helps' else 'higher'}"
                f"{' (within seed noise)' if paired[2] == 'no clear effect' else ''}. RAUC {g['rauc']:.3f}. First epoch at the "
                f"baseline's final accuracy ({base['target']:.4f}): {reach}; at the baseline's best "
                f"({base['best_target']:.4f}, the baseline's own epoch {base['epochs_to_best']:g}): {best}. "
                "The target (at most half the epochs, final accuracy not lower): "
                + ("**met only in the letter**: the baseline meets it too (next point)."
                   if half and better and saturated else f"**{'met' if half and better else 'not met'}**."))
        if saturated:
            lines.append(
                f"- The epochs-to-target measure is saturated here: the {base_name} baseline itself reaches "
                f"its final accuracy at epoch {own:g} of {base['baseline_epochs']:g}, because its curve "
                "plateaus (or peaks and drifts down) early at this scale. A method reaching that value in "
                "half the epochs then shows that the curves flatten early, not that it halves the "
                "pre-training; read the RAUC, the epochs to the baseline's best and the per-seed "
                "differences instead.")
    return lines + [""]


def _ablation_choice(comparisons: list[dict[str, Any]]) -> list[str]:
    """Per family: a ranking, and each variant's effect against the family's baseline from
    per-seed paired differences."""
    from .config import MTO_DEFAULTS

    lines = []
    best = []
    for result in comparisons:
        base = result["baseline"]
        ranked = sorted(result["groups"].items(), key=lambda kv: kv[1]["final_mean"], reverse=True)
        best.append(f"{ranked[0][0]} ({base} family)")
        lines += [f"## {base} family: ranking by final validation accuracy", ""]
        lines += [f"{i}. {name}: {g['final_mean']:.4f} ± {g['final_std']:.4f} (RAUC {g['rauc']:.3f})"
                  for i, (name, g) in enumerate(ranked, start=1)]
        lines += ["", f"## {base} family: effect of each variant", "",
                  f"Paired by seed (same data order and masks): the mean of (variant - {base}) final "
                  "accuracy, and its spread over seeds. A variant *helps* when the mean difference exceeds "
                  "its spread, *hurts* when it is below minus its spread, and otherwise has *no clear "
                  "effect* at this scale.", "",
                  "| variant | mean difference | spread (std over seeds) | per seed | reading |",
                  "|---|---|---|---|---|"]
        for name, _ in ranked:
            if name == base:
                continue
            diffs = [d for _, d in paired_differences(result, name)]
            mean, spread, reading = paired_reading(result, name)
            per_seed = ", ".join(f"{d:+.4f}" for d in diffs)
            lines.append(f"| {name} | {mean:+.4f} | {spread:.4f} | {per_seed} | {reading} |")
        lines.append("")
    defaults = ", ".join(f"{k}={v}" for k, v in MTO_DEFAULTS.items())
    return lines + [f"Best on this validation split: **{'**, **'.join(best)}**. The `-mto` presets' "
                    f"defaults are `{defaults}`; see docs/results/README.md for how they follow from these "
                    "tables. Differences smaller than the seed spread are not evidence.", ""]
