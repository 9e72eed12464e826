"""Attention: where a query patch looks, per layer and head; how much visible tokens draw on masked ones."""

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from common import choose_pair, layer_table, page, test_set

from mto_core import make_mask, token_trace

page("Attention", "👁️")
pair = choose_pair("attn")
if not pair:
    st.stop()
images, labels, classes = test_set()
cfg = pair[0][1].config.model
g, n = cfg.grid, cfg.num_patches

c1, c2, c3 = st.columns(3)
index = c1.number_input("Test-split index", 0, len(images) - 1, 3, key="attn-index")
ratio = c2.slider("Mask ratio", 0.1, 0.9, 0.6, 0.05, key="attn-ratio")
seed = c3.number_input("Mask seed", 0, 10_000, 0, key="attn-seed")
image = images[int(index):int(index) + 1]
mask = make_mask(1, g, ratio, int(seed))[0]

st.caption("Click a patch to make it the query (orange: masked patches).")
ys, xs = np.divmod(np.arange(n), g)
p = cfg.patch_size
fig = go.Figure(go.Heatmap(z=image[0].float().mean(0).numpy(), colorscale="gray", showscale=False,
                           x0=0.5 / p - 0.5, dx=1 / p, y0=0.5 / p - 0.5, dy=1 / p, hoverinfo="skip"))
query = st.session_state.get("attn-query", int(np.flatnonzero(mask.numpy())[0]))
colors = ["rgba(255,80,0,0.45)" if m else "rgba(0,0,0,0)" for m in mask.tolist()]
colors[query] = "rgba(0,200,255,0.8)"
fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", customdata=np.arange(n),
                         marker=dict(size=34, symbol="square", color=colors,
                                     line=dict(width=1, color="rgba(255,255,255,0.4)")),
                         hovertemplate="patch %{customdata}<extra></extra>"))
fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
fig.update_xaxes(visible=False)
fig.update_layout(height=300, width=300, margin=dict(l=0, r=0, t=0, b=0))
event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key="attn-click", width="content")
points = [pt["customdata"] for pt in (event.selection.points if event else []) if "customdata" in pt]
if points and int(points[0]) != query:
    st.session_state["attn-query"] = int(points[0])
    st.rerun()
st.markdown(f"Query: patch **{query}** ({'masked' if mask[query] else 'visible'}).")

for side, (label, ckpt) in enumerate(pair):
    trace = token_trace(ckpt, image, mask, hidden_layers=[])
    layers = sorted(trace.attn)
    heads = trace.attn[layers[0]].shape[1]
    grid = make_subplots(rows=len(layers), cols=heads, horizontal_spacing=0.01, vertical_spacing=0.02,
                         row_titles=[f"layer {l}" for l in layers], column_titles=[f"head {h}" for h in range(heads)])
    for r, layer in enumerate(layers, start=1):
        for h in range(heads):
            row = trace.attn[layer][0, h, 1 + query, 1:].reshape(g, g).numpy()
            grid.add_trace(go.Heatmap(z=row, colorscale="Viridis", showscale=False, zmin=0), row=r, col=h + 1)
    grid.update_yaxes(autorange="reversed", visible=False)
    grid.update_xaxes(visible=False)
    grid.update_layout(height=110 * len(layers) + 60, margin=dict(l=0, r=40, t=40, b=0),
                       title=f"{label} ({'MAE decoder' if ckpt.config.model.method == 'mae' else 'encoder'})")
    st.plotly_chart(grid, key=f"attn-maps-{side}")

st.subheader("Heterogeneity between masked and visible tokens, per layer")
st.caption("Visible-to-masked attention mass a_VM (about the mask ratio r for uninformed attention; 0 with "
           "hard recalibration), heterogeneity HI = 1 − a_VM / r, and row entropy of masked and visible "
           "queries (divided by log of the number of keys). 32 held-out test images.")
table = layer_table(pair, ratio).dropna(subset=["attn_visible_to_masked"])
c1, c2 = st.columns(2)
c1.plotly_chart(px.line(table, x="layer", y="attn_visible_to_masked", color="checkpoint", markers=True,
                        height=300), key="attn-avm")
c2.plotly_chart(px.line(table, x="layer", y="heterogeneity", color="checkpoint", markers=True, height=300),
                key="attn-hi")
long = table.melt(id_vars=["layer", "checkpoint"], value_vars=["entropy_masked", "entropy_visible"],
                  var_name="queries", value_name="entropy")
st.plotly_chart(px.line(long, x="layer", y="entropy", color="checkpoint", line_dash="queries", markers=True,
                        height=320), key="attn-entropy")
