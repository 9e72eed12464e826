"""The masked tokens' property as it emerges: figures drawn from runs' trace rows and token
snapshots (mto_core.analysis.trace), the baseline beside its MTO run. Only drawing lives here."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mto_core.analysis.trace import MEASURES, TokenFrames, trace_rows

from .palette import TOKEN_COLOURS, layer_colours

ALIKE = 0.05  # S and silhouette differences below this are called alike


def look_for(steps: int) -> str:
    """What to look for in the emergence charts of runs that have trained ``steps`` steps."""
    return (
        "**What to look for.** If MTO works as this project reads the paper, its masked tokens become "
        "*distinct* from the visible ones early in training, in the early layers: in the MTO run the "
        "singularity score S and the silhouette rise faster and higher than the baseline's, its masked "
        "rows' attention entropy falls (L_ent pushes it down), and in the scatter the red masked tokens "
        "leave the blue visible ones for a place of their own. a_VM is 0 in MTO's recalibrated layers "
        "by construction (hard recalibration), so that panel shows the method's rule, not something "
        "learned; the baseline's a_VM near the mask ratio means its visible tokens still attend to "
        f"masked ones as much as to any. In a short run the two often look alike: a tiny model, {steps:,} "
        f"step{'s' if steps != 1 else ''} so far, one batch of 32 images. The page then says so; that is a "
        "result, not a fault.")


@lru_cache(maxsize=8)
def _measure_layout(names: tuple[str, ...], height: int) -> dict:
    """The empty grid of measure_figure (a row per measure, a column per run) as a plain dict."""
    fig = make_subplots(rows=len(MEASURES), cols=len(names), shared_yaxes=True, shared_xaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.07,
                        subplot_titles=[f"{name}: {label}" for label in MEASURES.values() for name in names])
    fig.update_xaxes(matches="x")  # one step axis for both runs: a run that is behind shows it
    fig.update_xaxes(title="step", row=len(MEASURES))
    fig.update_annotations(font=dict(size=13))
    fig.update_layout(height=height * len(MEASURES) + 90, margin=dict(l=50, r=10, t=80, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.03, x=0, title=dict(text="layer ")))
    return fig.to_dict()["layout"]


def measure_figure(rows_by_run: Mapping[str, list[dict]], height: int = 190) -> go.Figure | None:
    """A row per measure, a column per run, a line per layer over the steps; each row's y axis
    shared by the runs. None while no run has a trace row. The grid is made once per set of runs
    and the lines are plain dicts, not validated one by one: the Train page draws this figure anew
    at every trace point while two runs train (docs/performance.md, "Tracing while training")."""
    traces = {name: trace_rows(list(rows)) for name, rows in rows_by_run.items()}
    if not any(traces.values()):
        return None
    names = list(traces)
    layers = sorted({r["layer"] for rows in traces.values() for r in rows})
    colours = dict(zip(layers, layer_colours(len(layers))))
    data = []
    for row, measure in enumerate(MEASURES):
        for col, name in enumerate(names):
            k = row * len(names) + col + 1  # the subplot's axes: x, y for the first, then x2, y2, ...
            for layer in layers:
                points = [(r["step"], r[measure]) for r in traces[name] if r["layer"] == layer and measure in r]
                if not points:
                    continue
                data.append(dict(type="scatter", x=[p[0] for p in points], y=[p[1] for p in points],
                                 mode="lines+markers", marker=dict(size=4), line=dict(color=colours[layer], width=2),
                                 name=f"layer {layer}", legendgroup=f"layer {layer}",
                                 showlegend=row == 0 and col == 0, xaxis=f"x{k if k > 1 else ''}",
                                 yaxis=f"y{k if k > 1 else ''}"))
    return go.Figure({"data": data, "layout": copy.deepcopy(_measure_layout(tuple(names), height))}, _validate=False)


def _range(values: np.ndarray) -> list[float]:
    low, high = float(values.min()), float(values.max())
    pad = 0.05 * max(high - low, 1e-6)
    return [low - pad, high + pad]


def _points(frames: TokenFrames, i: int) -> list[go.Scatter]:
    """The masked and visible tokens of frame ``i``: two traces."""
    out = []
    for kind, picked in (("visible", ~frames.masked), ("masked", frames.masked)):
        xy = frames.xy[i][picked]
        out.append(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=kind, legendgroup=kind,
                              marker=dict(size=6, color=TOKEN_COLOURS[kind], opacity=0.75)))
    return out


def scatter_figure(frames_by_run: Mapping[str, TokenFrames], layer: int, animate: bool = False,
                   height: int = 430) -> go.Figure | None:
    """Each run's tokens of ``layer`` in its fixed PCA plane, side by side: the latest snapshot,
    or (``animate``) every snapshot as an animation frame with a step slider, from step 0. Each
    panel's axes hold every frame, so a token that moves has moved in the plane."""
    runs = {name: f for name, f in frames_by_run.items() if f is not None}
    if not runs:
        return None
    names = list(runs)
    fig = make_subplots(rows=1, cols=len(names), horizontal_spacing=0.08,
                        subplot_titles=[f"{name}: layer {layer} at step {int(runs[name].steps[-1])}"
                                        if not animate else f"{name}: layer {layer}" for name in names])
    for col, name in enumerate(names, 1):
        frames = runs[name]
        first = 0 if animate else len(frames.steps) - 1
        for i, trace in enumerate(_points(frames, first)):
            trace.showlegend = col == 1
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(range=_range(frames.xy[..., 0]), title=f"PC 1 ({100 * frames.explained:.0f}% with PC 2)",
                         row=1, col=col)
        fig.update_yaxes(range=_range(frames.xy[..., 1]), title="PC 2", row=1, col=col)
    fig.update_layout(height=height, margin=dict(l=50, r=10, t=60, b=40),
                      legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0))
    if animate:
        steps = sorted({int(s) for f in runs.values() for s in f.steps})  # every run's snapshots, not the first's
        frames_out = []
        for step in steps:
            data = []
            for name in names:
                f = runs[name]  # its latest snapshot at this step (its first before it has one)
                data += _points(f, max(0, int(np.searchsorted(f.steps, step, side="right")) - 1))
            frames_out.append(go.Frame(name=str(step), data=data, traces=list(range(len(data)))))
        fig.frames = frames_out
        still = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
        fig.update_layout(
            height=height + 80, margin=dict(l=50, r=10, t=60, b=110),
            sliders=[dict(active=0, y=-0.12, currentvalue=dict(prefix="step "), pad=dict(t=30),
                          steps=[dict(label=str(s), method="animate", args=[[str(s)], still]) for s in steps])],
            updatemenus=[dict(type="buttons", showactive=False, x=0, y=-0.12, xanchor="right", yanchor="top",
                              buttons=[dict(label="▶ Play", method="animate",
                                            args=[None, dict(mode="immediate", fromcurrent=False,
                                                             frame=dict(duration=500, redraw=True),
                                                             transition=dict(duration=0))])])])
    return fig


def gap_noise(gaps: list[float]) -> float:
    """How far the MTO-minus-baseline gap of a measure moves on its own: twice the spread of the gap
    over the (up to) five trace points before the last, at least ALIKE. Only a last gap beyond it is
    read as a difference."""
    recent = np.asarray(gaps[-6:-1], dtype=float)
    spread = 2 * float(recent.std(ddof=1)) if len(recent) >= 3 else 0.0
    return max(ALIKE, spread)


def alike_sentence(rows_by_run: Mapping[str, list[dict]], layer: int = 1) -> str | None:
    """One plain sentence comparing the baseline and the MTO run at the last step both traced:
    S and silhouette of ``layer``. A run is called ahead only where both gaps are beyond their noise
    (:func:`gap_noise`) and point the same way; otherwise the sentence says neither is. None without data."""
    if len(rows_by_run) != 2:
        return None
    (base_name, base), (mto_name, mto) = [(n, {r["step"]: r for r in trace_rows(list(rows)) if r["layer"] == layer})
                                          for n, rows in rows_by_run.items()]
    common = sorted(set(base) & set(mto))
    if not common:
        return None
    step = common[-1]
    b, m = base[step], mto[step]
    gaps = {k: [mto[t][k] - base[t][k] for t in common] for k in ("singularity", "silhouette")}
    noise = {k: gap_noise(v) for k, v in gaps.items()}
    ds, dsil = gaps["singularity"][-1], gaps["silhouette"][-1]
    figures = (f"S {b['singularity']:.3f} ({base_name}) vs {m['singularity']:.3f} ({mto_name}), "
               f"silhouette {b['silhouette']:.3f} vs {m['silhouette']:.3f}")
    within = f"noise: S ± {noise['singularity']:.3f}, silhouette ± {noise['silhouette']:.3f}"
    beyond = {k: abs(gaps[k][-1]) > noise[k] for k in gaps}
    if not any(beyond.values()):
        return (f"At step {step}, layer {layer}: the two runs look alike ({figures}; both gaps within their "
                f"{within}). Here MTO has not made the masked tokens more distinct than the baseline's.")
    if all(beyond.values()) and ds > 0 and dsil > 0:
        return (f"At step {step}, layer {layer}: MTO's masked tokens stand further apart from the visible ones "
                f"than the baseline's ({figures}; both gaps beyond their {within}).")
    if all(beyond.values()) and ds < 0 and dsil < 0:
        return (f"At step {step}, layer {layer}: the baseline's masked tokens stand further apart than MTO's "
                f"({figures}; both gaps beyond their {within}), the opposite of what MTO aims at.")
    if all(beyond.values()):
        return f"At step {step}, layer {layer}: the two measures disagree ({figures}); neither run is clearly ahead."
    only = "S" if beyond["singularity"] else "the silhouette"
    return (f"At step {step}, layer {layer}: neither run is clearly ahead ({figures}): only {only} differs "
            f"beyond its noise ({within}); a verdict needs both.")
