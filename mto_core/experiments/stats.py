"""The statistics of an experiment: runs grouped by method, paired by seed, compared on
the probe points every run has (:func:`compare`), and one method against its baseline over
paired seeds (:func:`family_summary`). The measures themselves are in :mod:`mto_core.eval.efficiency`.
"""

from __future__ import annotations

import contextlib
import re
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ..config import METHODS, RunConfig
from ..eval.efficiency import Curve, curve, efficiency, mean_accuracy, paired, reach, restrict, speedup
from ..models.checkpoint import read_metrics
from .records import read_floors, read_step_cost

# How many speed-up thresholds (:func:`thresholds`); every run of both methods must reach a
# threshold for it to count.
THRESHOLDS = 4


def group_name(run: Path) -> str:
    return re.sub(r"-s\d+$", "", run.name)


def seed_of(run_name: str) -> str:
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
                 "minutes": [run_minutes(rows[run]) for run in members],
                 **efficiency((epochs, mean), (base_epochs, base_mean))}
        entry["per_seed_rauc"] = [efficiency(c, (base_epochs, base_mean))["rauc"] for c in own]
        result["groups"][name] = entry
    return result


def run_minutes(rows: list[dict[str, Any]]) -> float | None:
    """Training plus probing time of a run from its epoch rows; None where a row lacks it."""
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    if not epochs or any("train_s" not in r for r in epochs):
        return None
    probes = sum(r.get("probe_s", 0.0) for r in rows if r.get("kind") == "probe")
    return (sum(r["train_s"] + r.get("probe_s", 0.0) for r in epochs) + probes) / 60


def paired_differences(result: dict[str, Any], name: str) -> list[tuple[str, float]]:
    """(seed, final of ``name`` - final of the baseline) for the seeds both groups have."""
    base = result["groups"][result["baseline"]]
    base_final = {seed_of(r): f for r, f in zip(base["runs"], base["finals"])}
    group = result["groups"][name]
    return [(seed_of(r), f - base_final[seed_of(r)]) for r, f in zip(group["runs"], group["finals"])
            if seed_of(r) in base_final]


def format_interval(stats: dict[str, Any], digits: int = 4) -> str:
    """``+0.0100 [-0.0200, +0.0400]`` (mean and 95% t-interval), or the mean alone for one seed."""
    lo, hi = stats["ci"]
    if stats["n"] < 2:
        return f"{stats['mean']:+.{digits}f} (one seed: no interval)"
    return f"{stats['mean']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def format_sign(stats: dict[str, Any]) -> str:
    s = stats["sign"]
    return f"{s['up']} up, {s['down']} down, {s['ties']} tied (p = {s['p']:.2f})"


def families(groups: list[str], baseline: str = "simmim") -> dict[str, list[str]]:
    """``{baseline group: [groups compared with it, baseline first]}``: the groups named after MAE,
    ConMIM or BootMAE (``mae...``, ``conmim...``, ``bootmae...``) form that method's family, all
    others the family of ``baseline`` (SimMIM; an ablation names its SimMIM variants by the part
    alone)."""
    parts: dict[str, list[str]] = {baseline: []}
    for group in groups:
        method = group.split("-")[0]
        key = method if method in METHODS and method != "simmim" else baseline
        parts.setdefault(key, []).append(group)
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
                      key=lambda p: (group_name(p), int(seed_of(p.name)) if seed_of(p.name).isdigit() else 0))
        for run in runs:
            found.setdefault(copies.name[:-len("-runs")], {}).setdefault(group_name(run), []).append(run)
    return found


def thresholds(knn: dict[str, dict[str, Curve]], common: np.ndarray, base_mean: list[float],
               top_epoch: float, count: int = THRESHOLDS) -> list[float]:
    """The speed-up thresholds: ``count`` accuracies evenly spaced above the highest accuracy
    any run has at its first point (its random init), up to the baseline's mean accuracy at
    ``top_epoch``. A threshold that some run meets at its start measures no time, so none is."""
    start = max(float(c[1][0]) for runs in knn.values() for c in runs.values())
    top = float(np.interp(top_epoch, common, base_mean))
    return [start + (top - start) * k / count for k in range(1, count + 1)]


def family_summary(groups: dict[str, list[Path]], base: str, method: str,
                   floors: dict[str, float] | None = None, threshold_epoch: float = 3.0) -> dict[str, Any]:
    """Everything the efficiency report and the Curves page show for one pair of methods:
    mean curves with 95% t-bands, floors, per-point paired differences, the paired
    mean-accuracy difference, the speed-up factor and the linear probe's paired differences."""
    def curves_of(group: str, key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {seed_of(r.name): curve(read_metrics(r), key) for r in groups[group]}

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
    out["thresholds"] = thresholds(knn, common, out["curves"][base]["mean"], threshold_epoch)
    pairs = [(knn[method][s], knn[base][s]) for s in seeds]
    out["speedup"] = speedup(pairs, out["thresholds"])
    # per used threshold and seed: the epoch each run reaches it (linear interpolation)
    out["reach"] = {g: [[reach(knn[g][s], th) for s in seeds] for th in out["speedup"]["used"]] for g in knn}
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



def wall_clock(summary: dict[str, Any], cost: dict[str, Any] | None, steps_per_epoch: float) -> dict[str, Any] | None:
    """The wall-clock speed-up of ``summary``'s method: s_wall = s / c, with c the measured cost of
    its step relative to the baseline's (``cost``: a family of step_cost.json). The interval is
    s's 95% interval divided by c (c is measured to well under the interval's width; its
    interquartile range is reported beside it). ``time_ratio`` = c / s is how long the method takes
    to reach an accuracy, as a multiple of the baseline's time. ``minutes``: per used threshold,
    the mean over seeds of the minutes each method needs to reach it (epochs x steps per epoch x
    the measured step time). None without a step cost or a speed-up."""
    sp = summary["speedup"]
    if cost is None or sp.get("s") is None:
        return None
    c = float(cost["c"])
    step_minutes = {summary["base"]: cost["base_ms"] / 60000, summary["method"]: cost["method_ms"] / 60000}
    minutes = [{"threshold": th, **{g: statistics.fmean(summary["reach"][g][i]) * steps_per_epoch * step_minutes[g]
                                    for g in step_minutes},
                "epochs": {g: statistics.fmean(summary["reach"][g][i]) for g in step_minutes}}
               for i, th in enumerate(sp["used"])]
    lo, hi = sp["ci"]
    return {"c": c, "c_iqr": cost.get("c_iqr"), "s_wall": sp["s"] / c, "ci": (lo / c, hi / c),
            "per_seed": [v / c for v in sp["per_seed"]], "time_ratio": c / sp["s"],
            "time_ratio_ci": (c / hi, c / lo), "minutes": minutes}


def recorded_cost(groups: dict[str, list[Path]], base: str, method: str) -> list[float]:
    """Per paired seed, the method's recorded training time (the sum of its epochs' train_s) over
    the baseline's: a cross-check of the measured c only, since runs that share a machine with
    other work record that work's load too."""
    def train_s(run: Path) -> float | None:
        epochs = [r for r in read_metrics(run) if r.get("kind") == "epoch"]
        return sum(r["train_s"] for r in epochs) if epochs and all("train_s" in r for r in epochs) else None

    own = {seed_of(r.name): train_s(r) for r in groups[method]}
    ref = {seed_of(r.name): train_s(r) for r in groups[base]}
    return [own[s] / ref[s] for s in own if own[s] and ref.get(s)]


def steps_per_epoch(run: Path) -> float:
    """Optimizer steps per epoch of a run, from its metrics.jsonl (0 if it has no epoch row)."""
    rows = [r for r in read_metrics(run) if r.get("kind") in ("epoch", "probe") and r.get("epoch") and r.get("step")]
    return rows[-1]["step"] / rows[-1]["epoch"] if rows else 0.0


def summarize_family(groups: dict[str, list[Path]], base: str, method: str, folder: Path,
                     threshold_epoch: float = 3.0) -> dict[str, Any]:
    """:func:`family_summary` with what the runs folder ``folder`` recorded beside the runs (the
    floors, the step cost): adds ``wall`` (:func:`wall_clock`) and ``recorded_cost``."""
    summary = family_summary(groups, base, method, read_floors(folder), threshold_epoch)
    cost = (read_step_cost(folder) or {}).get("families", {}).get(method)
    summary["wall"] = wall_clock(summary, cost, steps_per_epoch(groups[base][0]))
    summary["recorded_cost"] = recorded_cost(groups, base, method)
    return summary
