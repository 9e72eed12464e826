"""The Curves page's table: each MTO run scored against a baseline of its own method, with no
figure that one seed or too few probe points cannot carry."""

from __future__ import annotations

MIN_POINTS = 3  # probe points each curve needs before its area and its epoch-to-target are read


def score_row(run: str, method: str, baseline: str, result: dict | None, points: int) -> dict[str, str]:
    """One row of the table, every cell text (a column never mixes numbers and words). ``result``:
    mto_core.eval.efficiency.efficiency of the run against its baseline, None where it was not
    computed; ``points``: the fewer probe points of the two curves. RAUC and epochs to target only
    from MIN_POINTS points on; never an efficiency (one pair of runs is one seed)."""
    row = {"run": run, "method": method, "baseline": baseline, "probe points": str(points)}
    if result is None or points < MIN_POINTS:
        need = f"needs {MIN_POINTS} probe points per run"
        row.update({"RAUC": need, "epochs to target": need})
    else:
        hit = result["epochs_to_target"]
        row.update({"RAUC": f"{result['rauc']:.4f}", "epochs to target": "not reached" if hit is None else f"{hit:.2f}"})
    row["efficiency"] = "needs several paired seeds"
    return row


EFFICIENCY_NOTE = ("No efficiency (epochs to target over the baseline's) is given for a pair of runs: one seed "
                   "cannot tell a speed-up from the spread between seeds, and a run's area and epoch-to-target need "
                   f"at least {MIN_POINTS} probe points (a Train-page run has one, at its end). An efficiency needs "
                   "several paired seeds, pooled: the committed experiments below do that (`mto experiment "
                   "efficiency`).")
