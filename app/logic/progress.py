"""A run's progress and accuracy points, read from its metrics rows."""

from __future__ import annotations

from typing import Any

import numpy as np


def run_progress(rows: list[dict[str, Any]], total_steps: int, batch_size: int) -> dict[str, float | None]:
    """Step, images/s and the seconds left of a run from its 'train' metrics rows.

    images/s is the mean of the last three log intervals (the first interval includes start-up);
    eta_s the steps left at that rate; None where not known yet.
    """
    train = [r for r in rows if r.get("kind") == "train"]
    if not train:
        return {"step": 0, "images_per_s": None, "eta_s": None}
    step = int(train[-1]["step"])
    recent = [float(r["images_per_s"]) for r in train[1:][-3:] if "images_per_s" in r] or \
             [float(train[-1].get("images_per_s", 0.0))]
    rate = sum(recent) / len(recent)
    eta = (total_steps - step) * batch_size / rate if rate > 0 else None
    return {"step": step, "images_per_s": rate, "eta_s": eta}


def accuracy_points(rows: list[dict[str, Any]], key: str = "knn_val") -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of ``key`` from 'epoch' rows, epochs as logged (an app run's single probe
    after 0.3 epochs stays at 0.3), sorted; the last row wins for a repeated epoch."""
    points = sorted({float(r["epoch"]): float(r[key]) for r in rows
                     if r.get("kind") == "epoch" and key in r}.items())
    if not points:
        return np.zeros(0), np.zeros(0)
    epochs, values = zip(*points)
    return np.asarray(epochs), np.asarray(values)


def train_frame(rows_by_run: dict):
    """One frame of the 'train' metrics rows of several runs, with a 'run' column; None if empty."""
    import pandas as pd

    frames = [pd.DataFrame(train).assign(run=name) for name, rows in rows_by_run.items()
              if (train := [r for r in list(rows) if r.get("kind") == "train"])]
    return pd.concat(frames) if frames else None
