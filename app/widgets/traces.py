"""The traces of finished runs (train.trace_every): the Tokens page's view over training and the
Curves page's traced measures against epoch. Only drawing lives here."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from logic.emergence import measure_figure, scatter_figure
from mto_core import read_metrics
from mto_core.analysis.trace import MEASURES, final_snapshot, snapshot_steps, token_frames, trace_rows, traced_run

from .charts import chart, integer_layers
from .models import load


@st.cache_data(show_spinner=False, max_entries=16)
def _frames(run_dir: str, layer: int, steps: tuple[int, ...], checkpoint: str = ""):
    """``steps``: the snapshots there are, so that a run still writing them is read again.
    ``checkpoint``: the model the page shows; saved after the last snapshot (a run's last step is
    a checkpoint, not always a trace point), it is the replay's last frame."""
    final = None
    if checkpoint:
        try:
            rows = read_metrics(checkpoint)
        except (OSError, ValueError):
            rows = []
        step = max((int(r["step"]) for r in rows if "step" in r), default=0)
        if steps and step > steps[-1]:
            ckpt = load(checkpoint)
            tokens = final_snapshot(ckpt.model, ckpt.config, layer)
            final = None if tokens is None else (step, tokens)
    return token_frames(run_dir, layer, final=final)


def over_training(pair, layer: int, where: str) -> None:
    """The pair's traced measures over the steps and ``layer``'s tokens replayed from step 0,
    for checkpoints whose runs were traced; a line saying how to get them otherwise."""
    st.subheader("Over training: how the masked tokens parted from the visible ones")
    # off at first: the page's first render stays within its budget (benchmarks/app_budgets.py)
    if not st.toggle("Replay " + ("these two runs'" if len(pair) == 2 else "this run's") + " training", key="tokens-over-training"):
        return
    runs = {label: traced_run(ckpt.path) for label, ckpt in pair}
    missing = [label for label, run in runs.items() if run is None]
    if missing:
        st.caption(f"No traces for {', '.join(missing)}: train with `--set train.trace_every=25` (the Train page "
                   "and the shipped checkpoints do) to see this view.")
        return
    shown = {label: str(ckpt.path) for label, ckpt in pair}
    frames = {label: _frames(str(run), layer, tuple(snapshot_steps(run)), shown[label]) for label, run in runs.items()}
    scatter = scatter_figure(frames, layer, animate=True)
    if scatter is None:
        st.caption(f"The traces hold no tokens of layer {layer}.")
    else:
        chart(scatter, key="tokens-over-training-scatter")
        st.caption(f"Layer {layer} of the {where}: the patch tokens of 4 fixed held-out images under one fixed mask "
                   "(the same for both runs) at each token snapshot the run kept, and, where the checkpoint shown "
                   "was saved after the last of them, at the checkpoint's own step. One plane per run for all its frames (the "
                   "first two principal axes of all its snapshots' tokens pooled), so a point that moves has changed. "
                   "Press ▶ Play or drag the step slider.")
    figure = measure_figure({label: read_metrics(run) for label, run in runs.items()}, height=170)
    if figure is not None:
        chart(figure, key="tokens-over-training-measures")


def traced_measures(rows: dict[str, list[dict]], short: dict[str, str], colour: dict[str, str],
                    dash: dict[str, str] | None = None) -> None:
    """Any traced measure of one layer against epoch, one line per run that has traces."""
    traced = {label: trace_rows(r) for label, r in rows.items()}
    traced = {label: r for label, r in traced.items() if r}
    if not traced:
        return
    st.subheader("Traced measures vs epoch")
    c1, c2 = st.columns(2)
    measure = c1.radio("Measure", list(MEASURES), horizontal=True, key="curves-trace-measure",
                       format_func=MEASURES.get)
    layers = sorted({r["layer"] for r in traced.values() for r in r if measure in r})
    layer = c2.select_slider("Layer", layers, value=layers[min(1, len(layers) - 1)], key="curves-trace-layer")
    fig = go.Figure()
    for label, r in traced.items():
        points = [(x["epoch"], x[measure]) for x in r if x["layer"] == layer and measure in x]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=short[label],
                                 line=dict(color=colour[label], dash=(dash or {}).get(label, "solid"))))
    fig.update_layout(height=380, yaxis_title=f"{MEASURES[measure]}, layer {layer}", legend_title_text="",
                      margin=dict(l=60, r=10, t=30, b=50))
    chart(integer_layers(fig, "epoch"), key="curves-trace")
    st.caption("Measured every train.trace_every steps on one fixed held-out batch and mask, the same for every "
               "run of one data and mask setting (mto_core/analysis/trace.py).")
