"""Efficiency of a method against a baseline, from accuracy-vs-epoch curves (MTO-SPEC.md).

RAUC is this project's definition; the paper's exact definition of its RAUC is not public.

- RAUC = area under the method's accuracy-vs-epoch curve / the baseline's, same epochs,
  trapezoid rule (> 1: the method learns faster).
- epochs-to-target = first epoch at which the method reaches the baseline's final accuracy;
  efficiency = that epoch / the baseline's epochs (the paper reports about 0.5).
- epochs-to-best (this project's addition) = first epoch at which the method reaches the
  baseline's best accuracy. When the baseline's curve peaks and then drifts down, its final value
  is reached early by every method, the baseline included, and epochs-to-target says little;
  epochs-to-best is the stricter reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def curve(rows: Sequence[dict[str, Any]], key: str = "knn_val") -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of ``key`` from metrics.jsonl rows of kind 'epoch', sorted by epoch."""
    points = sorted({int(r["epoch"]): float(r[key]) for r in rows
                     if r.get("kind") == "epoch" and key in r}.items())
    if not points:
        return np.zeros(0), np.zeros(0)
    epochs, values = zip(*points)
    return np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)


def _area(epochs: np.ndarray, values: np.ndarray) -> float:
    if len(epochs) == 1:
        return float(values[0])
    return float(np.sum((values[1:] + values[:-1]) / 2 * np.diff(epochs)))


def rauc(method: tuple[np.ndarray, np.ndarray], baseline: tuple[np.ndarray, np.ndarray]) -> float:
    """Area under the method's curve / the baseline's, over the epochs both have."""
    common = np.intersect1d(method[0], baseline[0])
    if common.size == 0:
        raise ValueError("the two curves share no epoch")
    m = method[1][np.isin(method[0], common)]
    b = baseline[1][np.isin(baseline[0], common)]
    return _area(common, m) / _area(common, b)


def epochs_to_target(method: tuple[np.ndarray, np.ndarray], target: float) -> float | None:
    """First epoch at which the method's curve reaches ``target``; None if it never does."""
    hits = np.flatnonzero(method[1] >= target)
    return float(method[0][hits[0]]) if hits.size else None


def efficiency(method: tuple[np.ndarray, np.ndarray], baseline: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """RAUC, epochs-to-target (target = the baseline's final value), their ratio, and
    epochs-to-best (target = the baseline's best value)."""
    target, best = float(baseline[1][-1]), float(baseline[1].max())
    reach = epochs_to_target(method, target)
    return {"rauc": rauc(method, baseline), "target": target, "epochs_to_target": reach,
            "baseline_epochs": float(baseline[0][-1]),
            "efficiency": reach / float(baseline[0][-1]) if reach is not None else None,
            "best_target": best, "epochs_to_best": epochs_to_target(method, best)}
