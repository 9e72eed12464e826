"""Curves: accuracy vs epoch and loss of the shipped checkpoints and of any run, RAUC marked."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from common import CHECKPOINTS, ROOT, RUNS, available, page, train_frame
from experiment_section import show_committed_experiments

from mto_core import read_metrics
from mto_core.app_support import safe_path
from mto_core.efficiency import curve, efficiency

RESULTS = ROOT / "docs" / "results"

page("Curves", "📈")
found = available()
if not found:
    st.error("No checkpoint or run found under checkpoints/ or runs/.")
    st.stop()
defaults = [k for k in found if k.startswith("checkpoints/")] or list(found)[:2]
chosen = st.multiselect("Runs", list(found), default=defaults, key="curves-runs")
if not chosen:
    st.info("Choose at least one run.")
    st.stop()
rows = {label: read_metrics(safe_path(found[label], [CHECKPOINTS, RUNS])) for label in chosen}

st.subheader("Probe accuracy vs epoch")
present = [k for k in ("linear_val", "knn_val") if any(k in x for r in rows.values() for x in r)] or ["knn_val"]
metric = st.radio("Accuracy", present, horizontal=True, key="curves-metric",
                  help="Validation split: linear probe (train.linear_every) or k-NN, k = 20, cosine "
                       "(train.knn_every), after each epoch.")
curves = {label: curve(r, metric) for label, r in rows.items()}
with_curve = [label for label, c in curves.items() if len(c[0])]
fig = go.Figure()
for label in with_curve:
    fig.add_trace(go.Scatter(x=curves[label][0], y=curves[label][1], mode="lines+markers", name=label))
if with_curve:
    baseline = st.selectbox("Baseline for RAUC and epochs-to-target", with_curve,
                            index=next((i for i, l in enumerate(with_curve) if not l.endswith("-mto")), 0),
                            key="curves-baseline")
    base = curves[baseline]
    fig.add_hline(y=float(base[1][-1]), line_dash="dot", annotation_text=f"target: {baseline} final")
    table = []
    for label in with_curve:
        if label == baseline:
            continue
        try:
            result = efficiency(curves[label], base)
        except ValueError as error:
            st.warning(f"{label}: {error}")
            continue
        table.append({"run": label, "RAUC": round(result["rauc"], 4),
                      "epochs to target": result["epochs_to_target"],
                      "efficiency (epochs / baseline's)": result["efficiency"]})
        if result["epochs_to_target"] is not None:
            fig.add_vline(x=result["epochs_to_target"], line_dash="dash",
                          annotation_text=f"{label} reaches target")
    fig.update_layout(height=380, xaxis_title="epoch", yaxis_title=metric, margin=dict(t=30))
    st.plotly_chart(fig, key="curves-acc")
    if table:
        st.dataframe(pd.DataFrame(table), hide_index=True)
    st.caption("RAUC = area under a run's accuracy-vs-epoch curve / the baseline's (trapezoids, shared "
               "epochs); > 1 learns faster. This is the project's definition: the paper's is not public.")
else:
    st.info("None of these runs logged per-epoch accuracy (train with --set train.knn_every=1).")

st.subheader("Training loss")
data = train_frame(rows)
if data is not None:
    part = st.radio("Term", [c for c in ("loss", "mim", "sing", "ent", "rec") if c in data], horizontal=True,
                    key="curves-term")
    st.plotly_chart(px.line(data.dropna(subset=[part]), x="epoch", y=part, color="run", height=360),
                    key="curves-loss")

show_committed_experiments(RESULTS)
