"""Plotly figures of an experiment: accuracy vs epoch per method, with bands over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_compare(result: dict[str, Any], path: str | Path) -> Path:
    """Accuracy vs epoch, mean over seeds with a ±1 sample-std band per method, as HTML."""
    return write_html(compare_figure(result), path)


def write_html(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import plotly.io as pio

    # The same runs give the same file in any process: a div id from the file name, not a random
    # one; Plotly's own template named, not the process's default (importing streamlit changes
    # it); keys in sorted order, since the order of a template's keys depends on how it was loaded.
    fig.update_layout(template="plotly")
    pio.write_html(_sorted_keys(fig.to_dict()), path, validate=False, include_plotlyjs="cdn",
                   div_id=f"mto-{path.stem}")
    return path


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


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
        wall = summary.get("wall")
        timed = "" if wall is None else f"; wall-clock s_wall = {wall['s_wall']:.2f}"
        title += f"<br><sup>speed-up s = {s['s']:.2f}{interval}{timed}</sup>"
    fig.update_layout(title=title, xaxis_title="pre-training epoch", yaxis_title="k-NN accuracy (validation)",
                      height=460, legend=dict(orientation="h", y=-0.2), margin=dict(t=80))
    return fig

