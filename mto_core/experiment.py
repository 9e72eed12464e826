"""Experiments: compare runs by method; the efficiency, fine-tuning and ablation experiments.

Runs are grouped by their folder name without a trailing ``-s<seed>`` (``simmim-mto-s2`` ->
``simmim-mto``); runs of the same seed are paired (same data order and masks). Curves are
validation-split probe accuracies per probe point (metrics.jsonl); the measures and the
statistics are in :mod:`mto_core.efficiency`.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import list_checkpoints, read_metrics
from .config import RunConfig, apply_overrides, preset
from .efficiency import curve, efficiency, mean_accuracy, paired, restrict, speedup

FLOORS = "floors.json"
# The speed-up thresholds: the baseline's mean k-NN accuracy at these epochs (fixed before the
# runs; every run of both methods must reach a threshold for it to count).
THRESHOLD_EPOCHS = (1.0, 1.5, 2.0, 3.0)


def group_name(run: Path) -> str:
    return re.sub(r"-s\d+$", "", run.name)


def _seed(run_name: str) -> str:
    found = re.search(r"-s(\d+)$", run_name)
    return found.group(1) if found else run_name


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and sample std over seeds at the points every seed has (std 0 for one seed)."""
    common = _common_points(curves)
    values = np.stack([restrict(c, common)[1] for c in curves])
    std = values.std(0, ddof=1) if len(curves) > 1 else np.zeros(len(common))
    return common, values.mean(0), std


def _common_points(curves: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    common = curves[0][0]
    for epochs, _ in curves[1:]:
        common = np.intersect1d(common, epochs)
    return common


def compare(runs: list[Path], baseline: str | None = None, metric: str | None = None) -> dict[str, Any]:
    """Final accuracy (mean, sample std over seeds), RAUC, epochs-to-target and efficiency per
    group, all on the probe points that every run has: runs of different lengths are cut to the
    shortest, with a warning in ``result["warnings"]``."""
    missing = [str(run) for run in runs if not Path(run).is_dir()]
    if missing:
        raise ValueError(f"not a run folder: {', '.join(missing)}")
    seen: dict[Path, Path] = {}
    for run in runs:
        if Path(run).resolve() in seen:
            raise ValueError(f"{run} is given twice (as {seen[Path(run).resolve()]} too): each run counts once")
        seen[Path(run).resolve()] = Path(run)
    methods: dict[str, list[str]] = {}
    for run in runs:  # runs without a readable config.json (hand-made folders) are not checked
        with contextlib.suppress(Exception):
            methods.setdefault(RunConfig.load(Path(run) / "config.json").model.method, []).append(Path(run).name)
    if len(methods) > 1:
        listed = "; ".join(f"{m}: {', '.join(names)}" for m, names in methods.items())
        raise ValueError(f"these runs are of different methods ({listed}); MTO is scored against a baseline "
                         "of its own method: compare each method's runs on their own")
    rows = {run: read_metrics(run) for run in runs}
    if metric is None:  # the k-NN probe is the primary measure (docs/results/README.md)
        metric = "knn_val" if all(len(curve(r, "knn_val")[0]) > 1 for r in rows.values()) else "linear_val"
    curves = {}
    for run, r in rows.items():
        c = curve(r, metric)
        if not len(c[0]):
            keys = ("linear_points", "linear_every") if metric == "linear_val" else ("probe_points", "knn_every")
            raise ValueError(f"{run} has no '{metric}' probe point in its metrics.jsonl; train with "
                             f"--set train.{keys[0]}=0,1,2 (or train.{keys[1]}=1)")
        curves[run] = c
    common = _common_points(list(curves.values()))
    if not common.size:
        raise ValueError("these runs share no probe point; compare runs made with the same probe settings")
    warnings_ = [f"{run.name} has points up to epoch {c[0][-1]:g}; compared up to epoch {common[-1]:g} "
                 "(the points every run has)" for run, c in curves.items() if c[0][-1] > common[-1]]
    curves = {run: restrict(c, common) for run, c in curves.items()}
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    if baseline is None:
        baseline = next((g for g in groups if "mto" not in g), next(iter(groups)))
    if baseline not in groups:
        raise ValueError(f"baseline group '{baseline}' not among {', '.join(groups)}")
    base_epochs, base_mean, _ = _mean_curve([curves[r] for r in groups[baseline]])
    result: dict[str, Any] = {"metric": metric, "baseline": baseline, "groups": {}, "warnings": warnings_}
    for name, members in groups.items():
        own = [curves[r] for r in members]
        epochs, mean, std = _mean_curve(own)
        finals = [float(v[-1]) for _, v in own]
        entry = {"seeds": len(own), "runs": [run.name for run in members], "finals": finals,
                 "final_mean": statistics.fmean(finals),
                 "final_std": statistics.stdev(finals) if len(finals) > 1 else None,  # undefined for one seed
                 "epochs": epochs.tolist(), "mean": mean.tolist(), "std": std.tolist(),
                 "minutes": [_run_minutes(rows[run]) for run in members],
                 **efficiency((epochs, mean), (base_epochs, base_mean))}
        entry["per_seed_rauc"] = [efficiency(c, (base_epochs, base_mean))["rauc"] for c in own]
        result["groups"][name] = entry
    return result


def _run_minutes(rows: list[dict[str, Any]]) -> float | None:
    """Training plus probing time of a run from its epoch rows; None where a row lacks it."""
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs or any("train_s" not in r for r in epochs):
        return None
    probes = sum(r.get("probe_s", 0.0) for r in rows if r.get("kind") == "probe")
    return (sum(r["train_s"] + r.get("probe_s", 0.0) for r in epochs) + probes) / 60


def paired_differences(result: dict[str, Any], name: str) -> list[tuple[str, float]]:
    """(seed, final of ``name`` - final of the baseline) for the seeds both groups have."""
    base = result["groups"][result["baseline"]]
    base_final = {_seed(r): f for r, f in zip(base["runs"], base["finals"])}
    group = result["groups"][name]
    return [(_seed(r), f - base_final[_seed(r)]) for r, f in zip(group["runs"], group["finals"])
            if _seed(r) in base_final]


def format_interval(stats: dict[str, Any], digits: int = 4) -> str:
    """``+0.0100 [-0.0200, +0.0400]`` (mean and 95% t-interval), or the mean alone for one seed."""
    lo, hi = stats["ci"]
    if stats["n"] < 2:
        return f"{stats['mean']:+.{digits}f} (one seed: no interval)"
    return f"{stats['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def format_sign(stats: dict[str, Any]) -> str:
    s = stats["sign"]
    return f"{s['up']} up, {s['down']} down, {s['ties']} tied (p = {s['p']:.2f})"


def format_compare(result: dict[str, Any]) -> str:
    base = result["groups"][result["baseline"]]
    lines = [f"Metric: {result['metric']} (validation split), baseline: {result['baseline']} "
             f"(final {base['target']:.4f}, best {base['best_target']:.4f}; mean over seeds). "
             "± is the sample standard deviation over seeds.", "",
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
        spread = f" ± {g['final_std']:.4f}" if g["final_std"] is not None else " (one seed: no spread)"
        lines.append(f"| {name} | {g['seeds']} | {g['final_mean']:.4f}{spread} | {g['rauc']:.4f} "
                     f"| {reach} | {eff} | {best} | {minutes} |")
    lines += [f"\nWarning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


def plot_compare(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs epoch, mean over seeds with a ±1 sample-std band per method, as HTML."""
    return _write_html(compare_figure(result), path)


def _write_html(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A div id from the file name, not a random one: the same runs give the same file.
    fig.write_html(path, include_plotlyjs="cdn", div_id=f"mto-{path.stem}")
    return path


def _band(fig: Any, name: str, x: np.ndarray, lo: np.ndarray, hi: np.ndarray, color: str) -> None:
    import plotly.graph_objects as go

    fig.add_trace(go.Scatter(x=np.r_[x, x[::-1]], y=np.r_[hi, lo[::-1]], fill="toself", fillcolor=color,
                             opacity=0.2, line=dict(width=0), showlegend=False, hoverinfo="skip",
                             legendgroup=name))


def compare_figure(result: dict[str, Any]):  # -> plotly.graph_objects.Figure
    """The figure of :func:`plot_compare`: mean accuracy per point and a ±1 std band per method."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    for i, (name, g) in enumerate(result["groups"].items()):
        color = qualitative.D3[i % len(qualitative.D3)]
        x, m, s = np.array(g["epochs"]), np.array(g["mean"]), np.array(g["std"])
        _band(fig, name, x, m - s, m + s, color)
        fig.add_trace(go.Scatter(x=x, y=m, mode="lines+markers", name=f"{name} ({g['seeds']} seeds)",
                                 legendgroup=name, line=dict(color=color)))
    fig.update_layout(xaxis_title="pre-training epoch", yaxis_title=_METRIC_NAMES.get(result["metric"], result["metric"]),
                      height=480, title="Probe accuracy vs pre-training epoch (mean ± sample std over seeds)")
    return fig


_METRIC_NAMES = {"knn_val": "k-NN accuracy (validation)", "linear_val": "linear-probe accuracy (validation)"}


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
        runs = sorted((p for p in copies.iterdir() if (p / "metrics.jsonl").is_file()),
                      key=lambda p: (group_name(p), int(_seed(p.name)) if _seed(p.name).isdigit() else 0))
        for run in runs:
            found.setdefault(copies.name[:-len("-runs")], {}).setdefault(group_name(run), []).append(run)
    return found


@dataclass
class Experiment:
    """A set of runs: names -> (preset, config overrides), each for every seed, on one budget.

    ``seeds_of`` gives a variant other seeds than ``seeds`` (families of different sizes)."""

    name: str
    variants: dict[str, tuple[str, list[str]]]
    seeds: list[int]
    epochs: int
    common: list[str] = field(default_factory=list)
    baseline: str = "simmim"
    seeds_of: dict[str, list[int]] = field(default_factory=dict)

    def seeds_for(self, variant: str) -> list[int]:
        return self.seeds_of.get(variant, self.seeds)

    def limit_seeds(self, n: int) -> Experiment:
        from dataclasses import replace

        return replace(self, seeds=self.seeds[:n], seeds_of={k: v[:n] for k, v in self.seeds_of.items()})


_CPU_COMMON = ["data.train_limit=13000", "train.knn_every=1", "train.linear_every=1", "train.probe_bank=3000",
               "train.probe_val=2000", "train.batch_size=128"]
# The efficiency protocol (docs/results/README.md): constant learning rate after a fixed warmup,
# so that a run's state at a step does not depend on its planned length; k-NN (primary) at
# fractions of an epoch early on, the linear probe at three points; fixed probe sets; weights
# kept at four points for fine-tuning.
_EFFICIENCY_CPU = ["data.train_limit=10000", "train.batch_size=128", "train.schedule=constant",
                   "train.warmup_steps=20", "train.knn_every=0", "train.linear_every=0",
                   "train.probe_points=0,0.5,1,1.5,2,3,4,6", "train.linear_points=0,2,6",
                   "train.snapshot_points=1,2,4,6", "train.probe_bank=3000", "train.probe_val=4000"]
_EFFICIENCY_GPU = ["model.size=vit-s", "train.device=cuda", "train.batch_size=256", "train.schedule=constant",
                   "train.warmup_steps=200", "train.knn_every=0", "train.linear_every=0",
                   "train.probe_points=0,0.5,1,1.5,2,3,4,6,8,12,16,20", "train.linear_points=0,4,20",
                   "train.snapshot_points=2,4,8,20", "train.probe_bank=10000", "train.probe_val=6000"]
_EFFICIENCY_VARIANTS = {p: (p, []) for p in ("simmim", "simmim-mto", "mae", "mae-mto")}
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
_MAE_SEEDS, _SIMMIM_SEEDS = list(range(8)), list(range(6))
EXPERIMENTS = {
    ("efficiency", "cpu"): Experiment("efficiency-cpu", _EFFICIENCY_VARIANTS, _SIMMIM_SEEDS, 6, _EFFICIENCY_CPU,
                                      seeds_of={"mae": _MAE_SEEDS, "mae-mto": _MAE_SEEDS}),
    ("efficiency", "gpu"): Experiment("efficiency-gpu", _EFFICIENCY_VARIANTS, _SIMMIM_SEEDS, 20, _EFFICIENCY_GPU,
                                      seeds_of={"mae": _MAE_SEEDS, "mae-mto": _MAE_SEEDS}),
    ("ablation", "cpu"): Experiment("ablation-cpu", _ABLATION, [0, 1], 6, _CPU_ABLATION_COMMON),
    ("ablation", "gpu"): Experiment("ablation-gpu", _ABLATION, [0, 1, 2], 30, _GPU_COMMON),
}


def run_config(experiment: Experiment, variant: str, seed: int, overrides: list[str]) -> RunConfig:
    base, sets = experiment.variants[variant]
    return apply_overrides(preset(base), [*experiment.common, *sets, f"train.epochs={experiment.epochs}",
                                          f"train.seed={seed}", *overrides])


def is_complete(run: Path, config: RunConfig) -> bool:
    """A run whose newest checkpoint is at its planned last step (or last epoch row)."""
    epochs = [r["epoch"] for r in read_metrics(run) if r.get("kind") == "epoch"]
    return bool(list_checkpoints(run)) and bool(epochs) and epochs[-1] >= config.train.epochs


def plan_runs(experiment: Experiment) -> list[tuple[str, int]]:
    """(variant, seed) in the order they run: seed-major, so that an early stop still leaves
    whole pairs to compare."""
    seeds = sorted({s for v in experiment.variants for s in experiment.seeds_for(v)})
    return [(v, s) for s in seeds for v in experiment.variants if s in experiment.seeds_for(v)]


def run_experiment(experiment: Experiment, out: Path, overrides: list[str] | None = None,
                   progress: bool = True) -> list[Path]:
    """Train every (variant, seed); finished runs are skipped, interrupted ones resumed. The
    floors (raw pixels on the same probe sets) are written to ``out/floors.json``."""
    from .engine import train

    runs = []
    todo = plan_runs(experiment)
    for i, (variant, seed) in enumerate(todo, start=1):
        config = run_config(experiment, variant, seed, overrides or [])
        run = out / f"{variant}-s{seed}"
        runs.append(run)
        if is_complete(run, config):
            print(f"[{i}/{len(todo)}] {run}: complete, kept")
            continue
        start = time.perf_counter()
        train(config, run, resume=(run / "config.json").exists(), progress=progress)
        print(f"[{i}/{len(todo)}] {run}: {time.perf_counter() - start:.0f} s", flush=True)
    if experiment.common and any("probe_points" in s for s in experiment.common):
        write_floors(run_config(experiment, next(iter(experiment.variants)), experiment.seeds[0], overrides or []),
                     out / FLOORS)
    return runs


def write_floors(config: RunConfig, path: Path) -> dict[str, float]:
    """k-NN and linear-probe accuracy of raw pixels on a run's probe sets, saved as JSON."""
    from .engine import probe_sets
    from .evaluate import pixel_features, scores

    bank, val = probe_sets(config)
    floors = {f"pixels_{kind}": value for kind, value in scores(
        pixel_features(bank.images), bank.labels, pixel_features(val.images), val.labels).items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(floors, indent=2) + "\n")
    return floors


def copy_runs(runs: list[Path], copies: Path, extra: tuple[Path, ...] = ()) -> None:
    """Each run's metrics.jsonl and config.json (tens of kB) into ``copies/<run>/``, so that the
    report is recomputed without the weights."""
    for run in runs:
        (copies / run.name).mkdir(parents=True, exist_ok=True)
        for name in ("metrics.jsonl", "config.json"):
            if (run / name).exists():
                shutil.copyfile(run / name, copies / run.name / name)
    for file in extra:
        if file.exists():
            shutil.copyfile(file, copies / file.name)


def write_report(experiment: Experiment, runs: list[Path], command: str, path: Path) -> Path:
    """A markdown report of every run the experiment made, plus HTML plots next to it; the runs'
    metrics and configs are copied to ``<report stem>-runs/``."""
    copies = path.with_name(f"{path.stem}-runs")
    if runs and runs[0].parent.resolve() != copies.resolve():
        copy_runs(runs, copies, (runs[0].parent / FLOORS,))
        runs = [copies / run.name for run in runs]
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(curve(read_metrics(r), "knn_val")[0].size and any(
            row.get("kind") == "probe" for row in read_metrics(r)) for r in runs):
        text = _efficiency_report(experiment, runs, command, path, copies)
    else:
        text = _ablation_report(experiment, runs, command, path, copies)
    path.write_text(text)
    return path


def _header(experiment: Experiment, runs: list[Path], command: str, copies: Path, what: str) -> list[str]:
    from .bench import machine

    info = machine()
    made: dict[str, list[int]] = {}
    for run in runs:
        if _seed(run.name).isdigit():
            made.setdefault(group_name(run), []).append(int(_seed(run.name)))
    seeds = {v: sorted(made.get(v, [])) for v in experiment.variants if made.get(v)}
    seed_text = "; ".join(f"{v}: seeds {_ranges(s)}" for v, s in seeds.items()) if len(
        {tuple(s) for s in seeds.values()}) > 1 else f"seeds {_ranges(next(iter(seeds.values())))} of every variant"
    planned = len(plan_runs(experiment))
    partial = (f" **This report covers {len(runs)} of the {planned} planned runs** (the runs finished so far; "
               "the same command trains the rest and rewrites the report)." if len(runs) < planned else "")
    return [f"# {experiment.name}", "", "Generated by:", "", f"    {command}", "", partial.strip(),
            f"Every run the experiment made is in this report: {len(runs)} runs ({seed_text}), "
            f"{experiment.epochs} epochs each, identical data and budget within a family."
            + (f" Common settings: `{' '.join(experiment.common)}`." if experiment.common else ""),
            "Variants: " + "; ".join(f"`{name}` = preset {base}" + (f" with `{' '.join(sets)}`" if sets else "")
                                    for name, (base, sets) in experiment.variants.items()) + ".",
            f"Every run's curves and config: [{copies.name}/]({copies.name}/); {what}",
            f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}; {info['date']}. "
            + _timing(runs), ""]


def _ranges(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 \
        else ", ".join(map(str, seeds))


def _timing(runs: list[Path]) -> str:
    minutes = [_run_minutes(read_metrics(r)) for r in runs]
    timed = [m for m in minutes if m is not None]
    if not timed:
        return "No run has per-epoch timing in its metrics.jsonl."
    text = (f"Training and probing time recorded in the runs (train_s + probe_s): {sum(timed):.0f} min "
            f"for {len(timed)} runs")
    return text + (f" ({len(minutes) - len(timed)} runs without timing)." if len(timed) < len(minutes) else ".")


def family_summary(groups: dict[str, list[Path]], base: str, method: str,
                   floors: dict[str, float] | None = None) -> dict[str, Any]:
    """Everything the efficiency report and the Curves page show for one pair of methods:
    mean curves with 95% t-bands, floors, per-point paired differences, the paired
    mean-accuracy difference, the speed-up factor and the linear probe's paired differences."""
    def curves_of(group: str, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {_seed(r.name): curve(read_metrics(r), key) for r in groups[group]}

    knn = {g: curves_of(g, "knn_val") for g in (base, method)}
    seeds = sorted(set(knn[base]) & set(knn[method]), key=lambda s: int(s) if s.isdigit() else s)
    common = _common_points([knn[g][s] for g in (base, method) for s in seeds])
    knn = {g: {s: restrict(knn[g][s], common) for s in seeds} for g in knn}
    out: dict[str, Any] = {"base": base, "method": method, "seeds": seeds, "epochs": common.tolist(),
                           "curves": {}, "floors": dict(floors or {})}
    for g in (base, method):
        values = np.stack([knn[g][s][1] for s in seeds])
        stats = [paired(values[:, j] - 0.0) for j in range(len(common))]
        out["curves"][g] = {"mean": values.mean(0).tolist(), "per_seed": values.tolist(),
                            "sd": [s["sd"] for s in stats], "ci": [s["ci"] for s in stats]}
    diffs = np.stack([knn[method][s][1] - knn[base][s][1] for s in seeds])
    out["per_point"] = [paired(diffs[:, j]) for j in range(len(common))]
    out["area"] = paired([mean_accuracy(knn[method][s]) - mean_accuracy(knn[base][s]) for s in seeds])
    if 0.0 in common:  # a seed's two runs start from the same weights: one value per seed, not two
        init = [(knn[base][s][1][0] + knn[method][s][1][0]) / 2 for s in seeds]
        out["floors"]["init_knn"] = statistics.fmean(init)
        out["floors"]["init_knn_sd"] = statistics.stdev(init) if len(init) > 1 else 0.0
    base_mean = np.array(out["curves"][base]["mean"])
    thresholds = [float(np.interp(e, common, base_mean)) for e in THRESHOLD_EPOCHS if e <= common[-1]]
    out["threshold_epochs"] = [e for e in THRESHOLD_EPOCHS if e <= common[-1]]
    out["speedup"] = speedup([(knn[method][s], knn[base][s]) for s in seeds], thresholds)
    linear = {g: curves_of(g, "linear_val") for g in (base, method)}
    points = _common_points([linear[g][s] for g in linear for s in seeds]) if all(
        linear[g][s][0].size for g in linear for s in seeds) else np.zeros(0)
    out["linear"] = []
    for e in points:
        values = {g: [float(restrict(linear[g][s], np.array([e]))[1][0]) for s in seeds] for g in linear}
        out["linear"].append({"epoch": float(e), "base": statistics.fmean(values[base]),
                              "method": statistics.fmean(values[method]),
                              "diff": paired(np.subtract(values[method], values[base]))})
        if e == 0.0:
            out["floors"]["init_linear"] = statistics.fmean(values[base] + values[method])
    return out


def family_figure(summary: dict[str, Any]):  # -> plotly.graph_objects.Figure
    """Mean k-NN curve per method with its 95% t-band over seeds, and the floors as lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    x = np.array(summary["epochs"])
    for group, color in ((summary["base"], "#1f77b4"), (summary["method"], "#d62728")):
        c = summary["curves"][group]
        lo, hi = np.array([v[0] for v in c["ci"]]), np.array([v[1] for v in c["ci"]])
        _band(fig, group, x, lo, hi, color)
        fig.add_trace(go.Scatter(x=x, y=c["mean"], mode="lines+markers", line=dict(color=color),
                                 name=f"{group} (mean of {len(summary['seeds'])} seeds)", legendgroup=group))
    floors = summary["floors"]
    for key, label, dash in (("pixels_knn", "raw pixels", "dot"), ("init_knn", "random init", "dash")):
        if key in floors:
            fig.add_hline(y=floors[key], line_dash=dash, line_color="#555",
                          annotation_text=f"{label} {floors[key]:.3f}", annotation_position="bottom right")
    s = summary["speedup"]
    title = f"{summary['method']} vs {summary['base']}: k-NN accuracy, mean and 95% band over paired seeds"
    if s.get("s") is not None:
        interval = f" [{s['ci'][0]:.2f}, {s['ci'][1]:.2f}] (95%)" if np.isfinite(s["ci"][0]) else " (one seed)"
        title += f"<br><sup>speed-up s = {s['s']:.2f}{interval}</sup>"
    fig.update_layout(title=title, xaxis_title="pre-training epoch", yaxis_title="k-NN accuracy (validation)",
                      height=460, legend=dict(orientation="h", y=-0.2), margin=dict(t=80))
    return fig


def read_floors(folder: Path) -> dict[str, float]:
    file = folder / FLOORS
    try:
        data = json.loads(file.read_text()) if file.exists() else {}
    except (OSError, json.JSONDecodeError):
        warnings.warn(f"{file} cannot be read; the report shows no pixel floor", stacklevel=2)
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def _efficiency_report(experiment: Experiment, runs: list[Path], command: str, path: Path, copies: Path) -> str:
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    floors = read_floors(copies)
    lines = _header(experiment, runs, command, copies,
                    f"the report is regenerated from them with `{command.split(' --')[0]} --report-only`.")
    lines += ["Protocol, fixed before the runs (docs/results/README.md): the primary measure is the k-NN "
              "probe (k = 20, cosine) on a fixed bank of training images and a fixed validation set, the "
              "same for every run, at each probe point; the linear probe is secondary. Runs of the same "
              "seed are paired (same initialisation, data order and masks). Intervals are 95% paired "
              "t-intervals over seeds; ± and sd are sample standard deviations; a sign test counts seeds "
              "up and down (ties within 1e-9). The speed-up factor s: the method at epoch t reaches what "
              f"the baseline reaches at epoch s t, from the epochs each run needs to reach the baseline's mean "
              f"accuracy at epochs {', '.join(f'{e:g}' for e in THRESHOLD_EPOCHS)} (linear interpolation between "
              "probe points; a threshold counts only if every run reaches it). The paper's \"about half the "
              "epochs\" is s = 2.", ""]
    summaries = []
    for base, family in families(list(groups), experiment.baseline).items():
        for method in family[1:]:
            summary = family_summary(groups, base, method, floors)
            summaries.append(summary)
            plot = _write_html(family_figure(summary), path.with_name(f"{path.stem}-{base}.html"))
            lines += _family_section(summary, plot.name)
    lines += ["## What the data says", ""] + [_verdict(s) for s in summaries] + [""]
    return "\n".join(lines) + "\n"


def _family_section(s: dict[str, Any], plot: str) -> list[str]:
    base, method, floors = s["base"], s["method"], s["floors"]
    lines = [f"## {method} vs {base} ({len(s['seeds'])} paired seeds)", "", f"Plot: [{plot}]({plot})", "",
             "Floors on the same probe sets: "
             + "; ".join(text for key, text in (
                 ("pixels_knn", f"raw pixels k-NN {floors.get('pixels_knn', 0):.4f}"),
                 ("pixels_linear", f"raw pixels linear {floors.get('pixels_linear', 0):.4f}"),
                 ("init_knn", f"random init (the runs at epoch 0) k-NN {floors.get('init_knn', 0):.4f} "
                              f"± {floors.get('init_knn_sd', 0):.4f} (sample sd over seeds)"),
                 ("init_linear", f"random init linear {floors.get('init_linear', 0):.4f}")) if key in floors) + ".", "",
             f"| epoch | {base} k-NN (mean ± sd) | {method} k-NN (mean ± sd) | {method} - {base} [95% CI] | sign test |",
             "|---|---|---|---|---|"]
    sd = lambda v: f" ± {v:.4f}" if np.isfinite(v) else ""  # noqa: E731  (one seed: no sd)
    for j, e in enumerate(s["epochs"]):
        b, m = s["curves"][base], s["curves"][method]
        lines.append(f"| {e:g} | {b['mean'][j]:.4f}{sd(b['sd'][j])} | {m['mean'][j]:.4f}{sd(m['sd'][j])} | "
                     f"{format_interval(s['per_point'][j])} | {format_sign(s['per_point'][j])} |")
    area, sp = s["area"], s["speedup"]
    if area["n"] < 2:
        lines += ["", f"- One paired seed so far: mean k-NN accuracy over the run, {method} - {base}: "
                  f"{area['mean']:+.4f}; speed-up factor on this seed: "
                  + (f"{sp['s']:.2f}." if sp.get("s") is not None else "not estimable.")
                  + " Intervals need at least two seeds."]
    else:
        lines += ["", f"- **Mean k-NN accuracy over the run** (area under the curve / its length), {method} - {base}: "
                  f"{format_interval(area)}, sd {area['sd']:.4f}; {format_sign(area)}; reading: "
                  f"**{area['reading']}**; the smallest difference these seeds detect (80% power, 5% level): "
                  f"{area['detectable']:.4f}.", _speedup_line(sp)]
    if s["linear"]:
        lines += ["", f"Linear probe (secondary), {method} - {base}:", "",
                  f"| epoch | {base} | {method} | difference [95% CI] | sign test |", "|---|---|---|---|---|"]
        lines += [f"| {p['epoch']:g} | {p['base']:.4f} | {p['method']:.4f} | {format_interval(p['diff'])} | "
                  f"{format_sign(p['diff'])} |" for p in s["linear"]]
    return lines + [""]


def _speedup_line(sp: dict[str, Any]) -> str:
    dropped = "; ".join(f"{d['threshold']:.4f}: met at epoch 0 by {d['at_start']} and never reached by "
                        f"{d['never']} of the {d['runs']} runs" for d in sp.get("dropped", []))
    if sp.get("s") is None:
        return (f"- **Speed-up factor**: cannot be estimated: no threshold is reached after epoch 0 by every "
                f"run ({dropped}). The rule, fixed before the runs, counts a threshold only when every run "
                "reaches it within the run and after its start.")
    per_seed = ", ".join(f"{v:.2f}" for v in sp["per_seed"])
    return (f"- **Speed-up factor s** = {sp['s']:.2f}, 95% interval [{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}] "
            f"(geometric mean over seeds; per seed {per_seed}; sd of log s {sp['log_s']['sd']:.3f}; "
            f"{format_sign(sp['log_s'])}), from {len(sp['used'])} of {len(sp['thresholds'])} thresholds "
            f"({', '.join(f'{t:.4f}' for t in sp['used'])}). Smallest speed-up these runs detect (80% "
            f"power): s = {sp['detectable']:.2f} (or 1/{sp['detectable']:.2f} for a slow-down)."
            + (f" Left out: {dropped}." if dropped else ""))


def _verdict(s: dict[str, Any]) -> str:
    sp, area = s["speedup"], s["area"]
    head = f"- **{s['method']} vs {s['base']}**: "
    if area["n"] < 2:
        return head + "one paired seed so far: no interval, no verdict."
    if sp.get("s") is None:
        return head + ("no speed-up estimate: no threshold is reached after epoch 0 by every run (the "
                       "baseline's k-NN accuracy at epochs 1 to 3 is too close to the random-init level, or a "
                       "run never reaches it). Mean k-NN accuracy over the run, the other primary measure: "
                       f"{format_interval(area)} ({area['reading']}; the smallest difference these seeds "
                       f"detect is {area['detectable']:.4f}).")
    lo, hi = sp["ci"]
    if lo > 1:
        finding = f"MTO is faster: s = {sp['s']:.2f} [{lo:.2f}, {hi:.2f}]"
    elif hi < 1:
        finding = f"MTO is slower: s = {sp['s']:.2f} [{lo:.2f}, {hi:.2f}]"
    else:
        finding = f"no speed-up resolved: s = {sp['s']:.2f} [{lo:.2f}, {hi:.2f}] contains 1"
    paper = ("the paper's s = 2 is ruled out (the interval ends below 2)" if hi < 2 else
             "the paper's s = 2 is inside the interval: these runs cannot rule it out" if lo <= 2 else
             "the interval lies above 2")
    return (head + f"{finding}; {paper}. The smallest speed-up these seeds could detect is "
            f"{sp['detectable']:.2f}. Mean k-NN accuracy over the run: {format_interval(area)} ({area['reading']}).")


def _ablation_report(experiment: Experiment, runs: list[Path], command: str, path: Path, copies: Path) -> str:
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    lines = _header(experiment, runs, command, copies,
                    f"the report is regenerated from them with `{command.split(' --')[0]} --report-only`.")
    lines += ["Accuracy is the linear probe (or k-NN where named) on frozen average-pooled features, on the "
              "validation split of the training images. RAUC = area under a method's accuracy-vs-epoch curve / "
              "the baseline's (this project's definition; the paper's is not public). ± is the sample standard "
              "deviation over seeds.", ""]
    comparisons = []
    for base, family in families(list(groups), experiment.baseline).items():
        chosen = [r for g in family for r in groups[g]]
        result = compare(chosen, baseline=base, metric="linear_val")
        comparisons.append(result)
        plot = plot_compare(result, path.with_name(f"{path.stem}-{base}.html"))
        lines += [f"## {base} family", "", format_compare(result), "", f"Plot: [{plot.name}]({plot.name})", ""]
        if all(curve(read_metrics(r), "knn_val")[0].size for r in chosen):
            lines += ["The k-NN probe, same runs:", "",
                      format_compare(compare(chosen, baseline=base, metric="knn_val")), ""]
    return "\n".join(lines + _ablation_choice(comparisons, groups)) + "\n"


def _ablation_choice(comparisons: list[dict[str, Any]], groups: dict[str, list[Path]]) -> list[str]:
    """Per family, each variant's paired effect against the family's baseline on the final
    linear probe, the final k-NN and the mean k-NN over the run, each with its 95% interval."""
    from .config import MTO_DEFAULTS

    lines = []
    for result in comparisons:
        base = result["baseline"]
        ranked = sorted(result["groups"].items(), key=lambda kv: kv[1]["final_mean"], reverse=True)
        lines += [f"## {base} family: effect of each variant", "",
                  f"Paired by seed: variant - {base}, mean [95% t-interval]; a measure reads **helps** or "
                  "**hurts** only when its interval excludes 0, otherwise it has no clear effect. With "
                  f"{result['groups'][base]['seeds']} seeds the interval has {result['groups'][base]['seeds'] - 1} "
                  "degree(s) of freedom: one that excludes 0 says the seeds agree closely, and no sign test on "
                  "so few seeds can reach p < 0.05.", "",
                  "| variant | final linear probe | final k-NN | mean k-NN over the run |",
                  "|---|---|---|---|"]
        for name, _ in ranked:
            if name == base:
                continue
            measures = [paired([d for _, d in paired_differences(result, name)])]
            for reduce in (lambda c: float(c[1][-1]), mean_accuracy):
                measures.append(paired(_paired_values(groups, name, base, reduce)))
            lines.append(f"| {name} | " + " | ".join(
                format_interval(m) + ("" if m["reading"] == "no clear effect" else f" **{m['reading']}**")
                for m in measures) + " |")
        lines.append("")
    defaults = ", ".join(f"{k}={v}" for k, v in MTO_DEFAULTS.items())
    return lines + [f"The `-mto` presets' defaults are `{defaults}`; docs/results/README.md says how they follow "
                    "from these tables.", ""]


def _paired_values(groups: dict[str, list[Path]], name: str, base: str, reduce: Any) -> list[float]:
    """Per seed, ``reduce`` of the variant's k-NN curve minus the baseline's (seeds both have)."""
    def by_seed(group: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {_seed(r.name): curve(read_metrics(r), "knn_val") for r in groups[group]}

    own, ref = by_seed(name), by_seed(base)
    return [reduce(own[s]) - reduce(ref[s]) for s in own if s in ref and own[s][0].size and ref[s][0].size]


def report_only(experiment: Experiment, command: str, path: Path, source: Path | None = None) -> Path:
    """Regenerate a report from its committed run copies (``<report stem>-runs/``), or, with
    ``source``, from the finished runs in that runs folder (an experiment still under way)."""
    if source is not None:
        names = [(f"{v}-s{s}", run_config(experiment, v, s, [])) for v, s in plan_runs(experiment)]
        runs = [source / n for n, config in names if is_complete(source / n, config)]
        if not runs:
            raise ValueError(f"{source} holds no finished run of the experiment yet")
        return write_report(experiment, runs, command, path)
    copies = path.with_name(f"{path.stem}-runs")
    if not copies.is_dir():
        raise ValueError(f"{copies} does not exist: there are no committed runs to report on; run the "
                         "experiment without --report-only first")
    names = [f"{v}-s{s}" for v, s in plan_runs(experiment)]
    runs = [copies / n for n in names if (copies / n / "metrics.jsonl").is_file()]
    if not runs:
        raise ValueError(f"{copies} holds none of the experiment's runs ({names[0]}, ...)")
    return write_report(experiment, runs, command, path)

