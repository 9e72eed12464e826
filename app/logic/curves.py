"""The Curves page's table: each MTO run scored against a baseline of its own method, with no
figure that one seed or too few probe points cannot carry."""

from __future__ import annotations

MIN_POINTS = 3  # probe points each curve needs before its area and its epoch-to-target are read


def score_row(run: str, method: str, baseline: str, result: dict | None, points: int) -> dict[str, str]:
    """One row of the table, every cell text (a column never mixes numbers and words). ``result``:
    mto_core.eval.efficiency.efficiency of the run against its baseline, None where it was not
    computed; ``points``: the fewer probe points of the two curves. RAUC and epochs to target only
    from MIN_POINTS points on; never an efficiency (one pair of runs is one seed: the page puts
    :func:`pool_efficiency`'s cell there)."""
    row = {"run": run, "method": method, "baseline": baseline, "probe points": str(points)}
    if result is None or points < MIN_POINTS:
        need = f"needs {MIN_POINTS} probe points per run"
        row.update({"RAUC": need, "epochs to target": need})
    else:
        hit = result["epochs_to_target"]
        row.update({"RAUC": f"{result['rauc']:.4f}", "epochs to target": "not reached" if hit is None else f"{hit:.2f}"})
    row["efficiency"] = NEEDS
    return row


EFFICIENCY_NOTE = ("No efficiency is given for one pair of runs: one seed cannot tell a speed-up from the spread "
                   "between seeds, and a run's area and epoch-to-target need at least 3 probe points (a Train-page "
                   "run has one, at its end). Where a family (same method, preset, MTO or not, length) has runs of "
                   "2 or more seeds among those chosen, with a baseline of the same seeds, they are pooled: the "
                   "speed-up factor s (MTO at epoch t reaches what the baseline reaches at s t) with its 95% "
                   "interval over seeds, as the committed experiments below give it (`mto experiment efficiency`).")


MIN_SEEDS = 2  # paired seeds per arm before a speed-up and its interval are read
NEEDS = f"none: needs {MIN_SEEDS}+ seeds per arm, {MIN_POINTS}+ points"  # short: the table's last column


def family_key(config) -> tuple:
    """A family of runs, which only their seed tells apart: same method, preset, MTO or not, and
    length (steps, or epochs where no step budget is set), on the same input."""
    m, t = config.model, config.train
    return (m.method, config.preset, config.mto.enabled, t.max_steps or f"{t.epochs} epochs",
            (m.img_size, m.patch_size, m.in_chans))


def pool_efficiency(runs: dict[str, tuple], metric: str) -> dict[str, str]:
    """{MTO run label: the efficiency cell of its table row}. ``runs``: {label: (RunConfig, metrics
    rows)}. The MTO runs of a family and the baselines of the same method, length and input are
    paired by seed; with MIN_SEEDS pairs whose curves have MIN_POINTS points each, the speed-up
    factor s and its 95% interval over seeds (mto_core.eval.efficiency.speedup, the committed
    experiments' statistic), else what it would need."""
    from mto_core.eval.efficiency import curve, restrict, speedup
    from functools import reduce

    import numpy as np

    from mto_core.experiments.stats import thresholds

    families: dict[tuple, dict[int, str]] = {}
    for label, (config, _) in runs.items():
        families.setdefault(family_key(config), {})[config.train.seed] = label
    out = {}
    for key, members in families.items():
        if not key[2]:
            continue
        bases = [m for k, m in families.items() if not k[2] and (k[0], k[3], k[4]) == (key[0], key[3], key[4])]
        base = max(bases, key=lambda m: len(set(m) & set(members)), default={})
        seeds = sorted(set(base) & set(members))
        curves = {s: (curve(runs[members[s]][1], metric), curve(runs[base[s]][1], metric)) for s in seeds}
        points = min((len(c[0]) for pair in curves.values() for c in pair), default=0)
        cell = f"{NEEDS} (has {len(seeds)} paired seed{'s' * (len(seeds) != 1)}, {points} point{'s' * (points != 1)})"
        if len(seeds) >= MIN_SEEDS and points >= MIN_POINTS:
            common = reduce(np.intersect1d, [c[0] for pair in curves.values() for c in pair])
            if len(common) >= MIN_POINTS:
                pairs = [(restrict(m, common), restrict(b, common)) for m, b in curves.values()]
                base_mean = [float(v) for v in sum(b[1] for _, b in pairs) / len(pairs)]
                knn = {"mto": {s: p[0] for s, p in zip(seeds, pairs)}, "base": {s: p[1] for s, p in zip(seeds, pairs)}}
                result = speedup(pairs, thresholds(knn, common, base_mean, float(common[-1])))
                if result["s"] is not None:
                    low, high = result["ci"]
                    cell = f"s = {result['s']:.2f} [{low:.2f}, {high:.2f}] over {len(seeds)} seeds"
                else:
                    cell = f"no threshold every run of the {len(seeds)} seeds reaches: no speed-up"
        for label in members.values():
            out[label] = cell
    return out
