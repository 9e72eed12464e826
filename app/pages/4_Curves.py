"""Curves: accuracy vs epoch and loss of the shipped checkpoints and of any run, RAUC marked."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st


from mto_core import read_metrics
from mto_core.eval.efficiency import curve, efficiency

from logic.curves import EFFICIENCY_NOTE, MIN_POINTS, pool_efficiency, score_row
from logic.files import safe_path
from logic.labels import baseline_for, describe_run, short_label
from logic.progress import accuracy_points, train_frame
from server.classroom import opened
from widgets.charts import chart, integer_layers, note, styled
from widgets.experiments import show_committed_experiments
from widgets.models import CHECKPOINTS, ROOT, RUNS, available, run_label
from widgets.page import page
from widgets.sidebar import own_runs
from widgets.traces import traced_measures

RESULTS = ROOT / "docs" / "results"
TERMS = {"loss": "total loss", "mim": "L_MIM (the method's loss)", "sing": "L_sing", "ent": "L_ent", "rec": "L_rec"}


@st.cache_resource(show_spinner=False, max_entries=16)
def loss_figure(data: pd.DataFrame, part: str, colours: tuple, dashed: tuple = ()) -> go.Figure:
    """The loss curves, a panel per method: built once per data and shared by every session that
    chose the same runs (a classroom opens this page at once; docs/performance.md)."""
    fig = px.line(data, x="epoch", y=part, color="label", facet_col="method", height=360, facet_col_spacing=0.08,
                  color_discrete_map=dict(colours), hover_data={"run": True, "label": False})
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_trace(lambda t: t.update(line_dash="dash") if t.name in dashed else None)  # MTO runs dashed
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    fig.update_layout(legend_title_text="", margin=dict(l=60, r=10, t=40, b=50), yaxis_title=TERMS.get(part, part))
    return styled(fig)


def run_config(path: str):
    """A run's own config (its family and seed), None where it cannot be read."""
    from mto_core.config import RunConfig

    try:
        return RunConfig.load(safe_path(path, [CHECKPOINTS, RUNS]) / "config.json")
    except Exception:  # an unreadable config: the run is shown, never pooled
        return None


page("Curves", "📈")
found = available()
if not found:
    st.error("No checkpoint or run found under checkpoints/ or runs/.")
    st.stop()
defaults = [k for k in found if k.startswith("checkpoints/")] or list(found)[:2]
defaults += [k for k in own_runs(list(found))[:2] if k not in defaults]  # the Train page's last click, as it says
chosen = st.multiselect("Runs", list(found), default=defaults, key="curves-runs", format_func=run_label,
                        help="Each run is labelled with its folder name and what its own config says it is.")
if not chosen:
    st.info("Choose at least one run.")
    st.stop()
note("runs", "runs " + ", ".join(chosen))
rows = {label: read_metrics(safe_path(found[label], [CHECKPOINTS, RUNS])) for label in chosen}
for label in chosen:  # shown here: open, so the pruning of app runs leaves them alone
    opened(found[label])
infos = {label: describe_run(found[label]) for label in chosen}
configs = {label: run_config(found[label]) for label in chosen}
short = {label: short_label(label) for label in chosen}
# one colour per run on every chart of the page, related within a method: a hue per method, a light
# shade for its baselines and a dark one for its MTO runs (drawn dashed), further shades for more runs
SHADES = {"simmim": (["#6baed6", "#9ecae1", "#4292c6"], ["#08519c", "#2171b5", "#08306b"]),
          "conmim": (["#74c476", "#a1d99b", "#41ab5d"], ["#006d2c", "#238b45", "#00441b"]),
          "mae": (["#fd8d3c", "#fdae6b", "#f16913"], ["#a63603", "#d94801", "#7f2704"]),
          "bootmae": (["#9e9ac8", "#bcbddc", "#807dba"], ["#54278f", "#6a51a3", "#3f007d"]),
          "": (["#969696", "#bdbdbd", "#737373"], ["#525252", "#252525", "#000000"])}
colour, counts = {}, {}
for label in chosen:
    key = (infos[label].method if infos[label].method in SHADES else "", infos[label].mto)
    shades = SHADES[key[0]][key[1]]
    colour[label] = shades[counts.get(key, 0) % len(shades)]
    counts[key] = counts.get(key, 0) + 1
dash = {label: "dash" if infos[label].mto else "solid" for label in chosen}

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
                                 line=dict(color=colour[label], dash=dash[label]), legendgroup=label,
                                 marker=dict(symbol="diamond" if infos[label].mto else "circle"),
                                 customdata=[label] * len(points[label][0]),
                                 hovertemplate="%{customdata} (" + infos[label].label + ")<br>epoch %{x}, "
                                               "accuracy %{y:.4f}<extra></extra>"))
    table, targets, reached = [], {}, []
    pooled = pool_efficiency({k: (configs[k], rows[k]) for k in with_curve if configs.get(k)}, metric)
    for label in with_curve:
        baseline = baseline_for(label, {k: infos[k] for k in with_curve})
        if baseline is None:
            if infos[label].mto:
                st.caption(f"{short[label]}: no baseline of its method ({infos[label].label.split(' ')[0]}) "
                           "among the chosen runs, so no RAUC.")
            continue
        n = min(len(points[label][0]), len(points[baseline][0]))
        result = None
        if n >= MIN_POINTS:
            try:
                result = efficiency(curve(rows[label], metric), curve(rows[baseline], metric))
            except ValueError as error:
                st.warning(f"{label} vs {baseline}: {error}")
                continue
        table.append(score_row(short[label], infos[label].label, short[baseline], result, n))
        table[-1]["efficiency"] = pooled.get(label, table[-1]["efficiency"])
        if result is None:
            continue
        targets[baseline] = float(curve(rows[baseline], metric)[1][-1])
        if result["epochs_to_target"] is not None:
            reached.append((label, baseline, result["epochs_to_target"]))
    # no text on the plot (with eight runs the labels printed over each other): each target is a dotted
    # line in its baseline's colour, named in the legend, and where an MTO run reaches it, a cross
    span = [min(float(points[k][0].min()) for k in with_curve), max(float(points[k][0].max()) for k in with_curve)]
    for baseline, target in targets.items():
        fig.add_trace(go.Scatter(x=span, y=[target, target], mode="lines", meta="target", legendgroup=baseline,
                                 name=f"target: {short[baseline]}'s final ({target:.3f})", hoverinfo="name",
                                 line=dict(color=colour[baseline], dash="dot", width=1.5)))
    for label, baseline, hit in reached:
        fig.add_trace(go.Scatter(x=[hit], y=[targets[baseline]], mode="markers", meta="target", showlegend=False,
                                 legendgroup=label, marker=dict(symbol="x", size=12, color=colour[label]),
                                 hovertemplate=f"{short[label]} reaches {short[baseline]}'s final accuracy at epoch "
                                               f"{hit:.2f}<extra></extra>"))
    fig.update_layout(height=420, yaxis_title=f"{'k-NN' if metric == 'knn_val' else 'linear probe'} accuracy",
                      margin=dict(l=60, r=10, t=30, b=50), legend_title_text="")
    chart(integer_layers(fig, "epoch"), key="curves-acc")
    if table:
        st.dataframe(pd.DataFrame(table, dtype=str), hide_index=True)
        st.caption(EFFICIENCY_NOTE)
    st.caption("Each MTO run is scored against a baseline **of its own method** among the chosen runs (the one "
               "with the closest name). RAUC = area under a run's accuracy-vs-epoch curve / its baseline's "
               "(trapezoids, shared epochs); > 1 learns faster. Epochs to target: the first epoch (interpolated) "
               "at which the run reaches its baseline's final accuracy (its dotted line; a cross marks where the "
               "MTO run gets there); \"not reached\" if it stays below it, even by a little. Both only where each "
               "curve has at least 3 probe points. Colours: one hue per method, light and solid for the baseline, dark and "
               "dashed for MTO. These are the project's definitions, made without the paper's full text "
               "(docs/mto-spec.md).")
else:
    st.info("None of these runs logged per-epoch accuracy (train with --set train.knn_every=1).")

st.subheader("Training loss")
data = train_frame(rows)
if data is not None:
    part = st.radio("Term", [c for c in ("loss", "mim", "sing", "ent", "rec") if c in data], horizontal=True,
                    key="curves-term", format_func=lambda t: TERMS.get(t, t))
    data = data.dropna(subset=[part]).assign(method=lambda d: d["run"].map(lambda r: infos[r].label.split(" ")[0]),
                                             label=lambda d: d["run"].map(short))
    chart(loss_figure(data, part, tuple((short[label], colour[label]) for label in chosen),
                      tuple(short[label] for label in chosen if infos[label].mto)), key="curves-loss", ready=True)
    st.caption("Each method is drawn apart: SimMIM's L_MIM is an L1 error on normalised pixels, MAE's a "
               "squared error, ConMIM's a contrastive loss over features, BootMAE's a sum of a pixel and a "
               "feature error, so their values are in different units and cannot be compared with each other.")

traced_measures(rows, short, colour, dash)
show_committed_experiments(RESULTS)
