"""Efficiency of a method against a baseline, from probe-accuracy-vs-training curves.

The measures and the statistics are this project's (docs/mto-spec.md): made without the paper's
full text, they are not its RAUC or protocol, which are not known here.

- speed-up factor s (primary): the method at step t reaches what the baseline reaches at step
  s t. Per paired seed, log s is the mean over fixed accuracy thresholds of
  log(steps the baseline needs / steps the method needs), each read from the curve by linear
  interpolation between probe points. Over seeds: the geometric mean of s with a paired 95%
  t-interval, a sign test, and the smallest s the runs could detect (:func:`detectable`).
- paired area difference: mean accuracy over the run (area under the curve / its length) of
  the method minus the baseline's, per seed, with the same statistics.
- RAUC = area under the method's curve / the baseline's, same points, trapezoid rule.
- epochs-to-target = first point at which the method reaches the baseline's final accuracy;
  efficiency = that epoch / the baseline's epochs (the paper reports about 0.5). It saturates
  when the baseline plateaus early; epochs-to-best (the baseline's best value) is stricter.

Every standard deviation here is the sample standard deviation (n - 1). Two accuracies closer
than ``TIE`` are equal (a tie): accuracies are fractions of a few thousand images, so anything
smaller is floating-point noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

TIE = 1e-9
Curve = tuple[np.ndarray, np.ndarray]


def curve(rows: Sequence[dict[str, Any]], key: str = "knn_val") -> Curve:
    """(epochs, values) of ``key`` from metrics.jsonl rows of kind 'epoch' or 'probe' (probe
    points may be fractions of an epoch), sorted by epoch."""
    points = sorted({float(r["epoch"]): float(r[key]) for r in rows
                     if r.get("kind") in ("epoch", "probe") and isinstance(r.get(key), (int, float))
                     and isinstance(r.get("epoch"), (int, float))}.items())
    if not points:
        return np.zeros(0), np.zeros(0)
    epochs, values = zip(*points)
    return np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)


def restrict(c: Curve, points: np.ndarray) -> Curve:
    """The part of curve ``c`` at ``points``."""
    keep = np.isin(c[0], points)
    return c[0][keep], c[1][keep]


def _area(epochs: np.ndarray, values: np.ndarray) -> float:
    if len(epochs) == 1:
        return float(values[0])
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(epochs)))


def mean_accuracy(c: Curve) -> float:
    """Area under the curve divided by its length: the accuracy averaged over training."""
    if len(c[0]) == 1:
        return float(c[1][0])
    return _area(*c) / float(c[0][-1] - c[0][0])


def rauc(method: Curve, baseline: Curve) -> float:
    """Area under the method's curve / the baseline's, over the points both have."""
    common = np.intersect1d(method[0], baseline[0])
    if common.size == 0:
        raise ValueError("the two curves share no epoch")
    return _area(*restrict(method, common)) / _area(*restrict(baseline, common))


def epochs_to_target(method: Curve, target: float) -> float | None:
    """First point at which the method's curve reaches ``target`` (ties count); None if never."""
    hits = np.flatnonzero(method[1] >= target - TIE)
    return float(method[0][hits[0]]) if hits.size else None


def reach(c: Curve, threshold: float) -> float | None:
    """Where the curve first reaches ``threshold``, interpolated linearly between the probe
    point before and the first point at or above it; None if it never does."""
    hits = np.flatnonzero(c[1] >= threshold - TIE)
    if not hits.size:
        return None
    i = int(hits[0])
    if i == 0:
        return float(c[0][0])
    x0, x1, y0, y1 = c[0][i - 1], c[0][i], c[1][i - 1], c[1][i]
    return float(x0 + (x1 - x0) * (threshold - y0) / (y1 - y0))


def efficiency(method: Curve, baseline: Curve) -> dict[str, Any]:
    """RAUC, epochs-to-target (target = the baseline's final value), their ratio, and
    epochs-to-best (target = the baseline's best value)."""
    target, best = float(baseline[1][-1]), float(baseline[1].max())
    hit = epochs_to_target(method, target)
    return {"rauc": rauc(method, baseline), "target": target, "epochs_to_target": hit,
            "baseline_epochs": float(baseline[0][-1]),
            "efficiency": hit / float(baseline[0][-1]) if hit is not None else None,
            "best_target": best, "epochs_to_best": epochs_to_target(method, best)}


def _t(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def sign_test(diffs: Sequence[float], tol: float = TIE) -> dict[str, Any]:
    """Two-sided sign test: how many differences are above, below and within ``tol`` of 0."""
    from scipy.stats import binomtest

    up = sum(d > tol for d in diffs)
    down = sum(d < -tol for d in diffs)
    p = binomtest(up, up + down, 0.5).pvalue if up + down else 1.0
    return {"up": up, "down": down, "ties": len(diffs) - up - down, "p": float(p)}


def paired(diffs: Sequence[float], tol: float = TIE) -> dict[str, Any]:
    """Statistics of per-seed paired differences: mean, sample std, 95% t-interval, sign test,
    and a reading: *helps* / *hurts* only when the interval excludes 0, else *no clear effect*
    (also with one seed, whose interval is undefined)."""
    diffs = [float(d) for d in diffs]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else float("nan")
    sd = statistics.stdev(diffs) if n > 1 else float("nan")
    half = _t(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    lo, hi = mean - half, mean + half
    reading = ("helps" if n > 1 and lo > tol else "hurts" if n > 1 and hi < -tol else "no clear effect")
    return {"n": n, "diffs": diffs, "mean": mean, "sd": sd, "ci": (lo, hi), "sign": sign_test(diffs, tol),
            "reading": reading, "detectable": detectable(sd, n)}


def detectable(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean difference that a two-sided paired t-test at level ``alpha``
    detects with probability ``power``, given the sample std ``sd`` of ``n`` pairs (normal
    approximation of the power: (t_{1-alpha/2} + t_{power}) sd / sqrt(n), df = n - 1)."""
    if n < 2 or not math.isfinite(sd):
        return float("nan")
    return (_t(1 - alpha / 2, n - 1) + _t(power, n - 1)) * sd / math.sqrt(n)


def log_speedup(method: Curve, baseline: Curve, thresholds: Sequence[float]) -> float | None:
    """Mean over ``thresholds`` of log(epochs the baseline needs / epochs the method needs);
    None if a threshold is not reached by both curves (or at epoch 0)."""
    logs = []
    for threshold in thresholds:
        b, m = reach(baseline, threshold), reach(method, threshold)
        if not b or not m:
            return None
        logs.append(math.log(b / m))
    return statistics.fmean(logs) if logs else None


def speedup(pairs: Sequence[tuple[Curve, Curve]], thresholds: Sequence[float]) -> dict[str, Any]:
    """The speed-up factor over paired seeds ``[(method, baseline), ...]``: s = exp(mean log s),
    its 95% interval, a sign test on log s, and the smallest detectable s (80% power).

    Only thresholds that every curve of every pair reaches are used (``used``), so that no
    seed's estimate rests on an extrapolation."""
    used = [th for th in thresholds
            if all(reach(m, th) and reach(b, th) for m, b in pairs)]
    curves = [c for pair in pairs for c in pair]
    # why a threshold was left out: how many runs meet it already at their first point (no
    # time to measure), and how many never reach it within the run
    dropped = [{"threshold": th, "at_start": sum(reach(c, th) == float(c[0][0]) for c in curves),
                "never": sum(reach(c, th) is None for c in curves), "runs": len(curves)}
               for th in thresholds if th not in used]
    out: dict[str, Any] = {"thresholds": list(thresholds), "used": used, "dropped": dropped}
    if not used or not pairs:
        return {**out, "s": None}
    logs = [log_speedup(m, b, used) for m, b in pairs]
    stats = paired([v for v in logs if v is not None])
    lo, hi = stats["ci"]
    return {**out, "log_s": stats, "s": math.exp(stats["mean"]), "ci": (math.exp(lo), math.exp(hi)),
            "per_seed": [math.exp(v) for v in stats["diffs"]],
            "detectable": math.exp(stats["detectable"])}
