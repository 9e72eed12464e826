"""Curves: accuracy vs epoch and loss of the shipped checkpoints and of any run, RAUC marked."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from common import (CHECKPOINTS, ROOT, RUNS, available, chart, integer_layers, page, run_label, styled,
                    train_frame)
from experiment_section import show_committed_experiments
from trace_section import traced_measures

from mto_core import read_metrics
from app_support import accuracy_points, baseline_for, describe_run, safe_path, short_label
from mto_core.eval.efficiency import curve, efficiency

RESULTS = ROOT / "docs" / "results"
TERMS = {"loss": "total loss", "mim": "L_MIM (the method's loss)", "sing": "L_sing", "ent": "L_ent", "rec": "L_rec"}


@st.cache_resource(show_spinner=False, max_entries=16)
def loss_figure(data: pd.DataFrame, part: str, colours: tuple) -> go.Figure:
    """The loss curves, a panel per method: built once per data and shared by every session that
    chose the same runs (a classroom opens this page at once; docs/performance.md)."""
    fig = px.line(data, x="epoch", y=part, color="label", facet_col="method", height=360, facet_col_spacing=0.08,
                  color_discrete_map=dict(colours), hover_data={"run": True, "label": False})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_layout(legend_title_text="", margin=dict(l=60, r=10, t=40, b=50), yaxis_title=TERMS.get(part, part))
    return styled(fig)


page("Curves", "📈")
found = available()
if not found:
    st.error("No checkpoint or run found under checkpoints/ or runs/.")
    st.stop()
defaults = [k for k in found if k.startswith("checkpoints/")] or list(found)[:2]
chosen = st.multiselect("Runs", list(found), default=defaults, key="curves-runs", format_func=run_label,
                        help="Each run is labelled with its folder name and what its own config says it is.")
if not chosen:
    st.info("Choose at least one run.")
    st.stop()
rows = {label: read_metrics(safe_path(found[label], [CHECKPOINTS, RUNS])) for label in chosen}
infos = {label: describe_run(found[label]) for label in chosen}
short = {label: short_label(label) for label in chosen}
# one colour per run on every chart of the page: blues and greens for baselines, reds and oranges for MTO
BASELINE_COLOURS, MTO_COLOURS = ["#1f77b4", "#2ca02c", "#17becf", "#7f7f7f"], ["#d62728", "#ff7f0e", "#e377c2", "#8c564b"]
colour, counts = {}, {True: 0, False: 0}
for label in chosen:
    palette = MTO_COLOURS if infos[label].mto else BASELINE_COLOURS
    colour[label] = palette[counts[infos[label].mto] % len(palette)]
    counts[infos[label].mto] += 1

st.subheader("Probe accuracy vs epoch")
present = [k for k in ("linear_val", "knn_val") if any(k in x for r in rows.values() for x in r)] or ["knn_val"]
metric = st.radio("Accuracy", present, horizontal=True, key="curves-metric",
                  format_func=lambda k: {"linear_val": "linear probe", "knn_val": "k-NN"}[k],
                  help="Validation split: linear probe (train.linear_every) or k-NN, k = 20, cosine "
                       "(train.knn_every), after each epoch. Runs made on the Train page have one k-NN "
                       "point, measured when they end.")
points = {label: accuracy_points(r, metric) for label, r in rows.items()}
with_curve = [label for label, c in points.items() if len(c[0])]
if with_curve:
    fig = go.Figure()
    for label in with_curve:
        fig.add_trace(go.Scatter(x=points[label][0], y=points[label][1], mode="lines+markers", name=short[label],
                                 line=dict(color=colour[label]), customdata=[label] * len(points[label][0]),
                                 hovertemplate="%{customdata} (" + infos[label].label + ")<br>epoch %{x}, "
                                               "accuracy %{y:.4f}<extra></extra>"))
    table, targets, shapes, notes = [], {}, [], []
    for label in with_curve:
        baseline = baseline_for(label, {k: infos[k] for k in with_curve})
        if baseline is None:
            if infos[label].mto:
                st.caption(f"{short[label]}: no baseline of its method ({infos[label].label.split(' ')[0]}) "
                           "among the chosen runs, so no RAUC.")
            continue
        try:
            result = efficiency(curve(rows[label], metric), curve(rows[baseline], metric))
        except ValueError as error:
            st.warning(f"{label} vs {baseline}: {error}")
            continue
        targets[baseline] = float(curve(rows[baseline], metric)[1][-1])
        hit, ratio = result["epochs_to_target"], result["efficiency"]
        table.append({"run": short[label], "method": infos[label].label, "baseline": short[baseline],
                      "RAUC": round(result["rauc"], 4),
                      "epochs to target": "not reached" if hit is None else round(hit, 2),
                      "efficiency (epochs / baseline's)": "not reached" if ratio is None else round(ratio, 3)})
        if result["epochs_to_target"] is not None:
            x = result["epochs_to_target"]
            shapes.append(dict(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1,
                               line=dict(dash="dash", color="#888")))
            notes.append(dict(xref="x", yref="paper", x=x, y=1, xanchor="left", yanchor="top", showarrow=False,
                              textangle=-90, text=f"{short[label]} reaches its target"))
    for baseline, target in targets.items():
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=target, y1=target,
                           line=dict(dash="dot", color="#888")))
        notes.append(dict(xref="paper", yref="y", x=0, y=target, xanchor="left", yanchor="bottom", showarrow=False,
                          text=f"target: {short[baseline]} final"))
    # the target lines as plain shapes in one update: add_vline / add_hline took 0.3 s of the page run
    fig.update_layout(shapes=shapes, annotations=notes, height=400, yaxis_title=f"{'k-NN' if metric == 'knn_val' else 'linear probe'} accuracy",
                      margin=dict(l=60, r=10, t=30, b=50), legend_title_text="")
    chart(integer_layers(fig, "epoch"), key="curves-acc")
    if table:
        st.dataframe(pd.DataFrame(table), hide_index=True)
    st.caption("Each MTO run is scored against a baseline **of its own method** among the chosen runs (the one "
               "with the closest name). RAUC = area under a run's accuracy-vs-epoch curve / its baseline's "
               "(trapezoids, shared epochs); > 1 learns faster. Epochs to target: the first epoch (interpolated) "
               "at which the run reaches its baseline's final accuracy; \"not reached\" if it stays below it, "
               "even by a little. Efficiency: that epoch over the baseline's epochs. These are the project's "
               "definitions: the paper's are not public.")
else:
    st.info("None of these runs logged per-epoch accuracy (train with --set train.knn_every=1).")

st.subheader("Training loss")
data = train_frame(rows)
if data is not None:
    part = st.radio("Term", [c for c in ("loss", "mim", "sing", "ent", "rec") if c in data], horizontal=True,
                    key="curves-term", format_func=lambda t: TERMS.get(t, t))
    data = data.dropna(subset=[part]).assign(method=lambda d: d["run"].map(lambda r: infos[r].label.split(" ")[0]),
                                             label=lambda d: d["run"].map(short))
    chart(loss_figure(data, part, tuple((short[label], colour[label]) for label in chosen)), key="curves-loss",
          ready=True)
    st.caption("Each method is drawn apart: SimMIM's L_MIM is an L1 error on normalised pixels, MAE's a "
               "squared error, ConMIM's a contrastive loss over features, BootMAE's a sum of a pixel and a "
               "feature error, so their values are in different units and cannot be compared with each other.")

traced_measures(rows, short, colour)
show_committed_experiments(RESULTS)
