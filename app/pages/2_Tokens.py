"""Tokens: where masked and visible tokens sit, layer by layer, baseline vs MTO."""

import time

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st


from mto_core import make_mask
from mto_core.analysis.measures import embed_2d, layer_tokens
from logic.labels import mask_site
from logic.palette import CLASS_COLOURS, TOKEN_COLOURS
from logic.pixels import display_size, outline_patch
from logic.scales import measure_range
from widgets.charts import chart, integer_layers, picture, styled
from widgets.layers import layer_table
from widgets.models import inputs_for, load, seen_names
from widgets.page import page
from widgets.sidebar import choose_pair, mask_controls
from widgets.traces import over_training

page("Tokens", "🔬")
pair = choose_pair("tokens")
if not pair:
    mask_controls("tokens")
    st.stop()
cfg = pair[0][1].config.model
ratio, seed, mask_kind = mask_controls("tokens", ("random", "block"), patches=cfg.num_patches)
shown_in = inputs_for(cfg)
images, labels, classes = shown_in.images, shown_in.labels, shown_in.classes
names = seen_names(shown_in, pair)  # a photo's with whether the checkpoints trained on it
layers = min(ckpt.config.model.mask_layers for _, ckpt in pair)
where = mask_site(cfg)
st.caption(f"What the model sees: {shown_in.seen}.")

c1, c2, c3, c4 = st.columns(4)
layer = c1.slider(f"Layer of the {where} (0 = input with position)", 0, layers, 1, key="tokens-layer")
method = c2.radio("Embedding", ["pca", "umap"], horizontal=True, key="tokens-embedding",
                  help="PCA is instant. UMAP (cosine) shows neighbourhoods better; the first UMAP on a "
                       "fresh server also compiles its kernels (about 6 s on an idle 2-core machine, "
                       "benchmarks/app_budgets.py); each result is then kept for this checkpoint, layer, ratio and seed.")
counts = [1, 2, 4, 8, 16] if shown_in.photos else [10, 20, 40]
count = c3.select_slider("Photos" if shown_in.photos else "Images", counts, value=4 if shown_in.photos else 40,
                         key=f"tokens-count-{shown_in.kind}",
                         help=f"each gives {cfg.num_patches} patch tokens" + (
                             "; a ViT-B's forward pass takes about a second per photo on a CPU" if shown_in.photos else ""))
colour = c4.radio("Colour", ["masked / visible", "photo" if shown_in.photos else "class"], horizontal=True,
                  key="tokens-colour")
axis = "PC" if method == "pca" else "UMAP"
if shown_in.photos:
    st.caption(f"The photos: {'; '.join(names[:count])}.")


@st.cache_data(show_spinner=False, max_entries=64)
def embedding(path: str, layer: int, count: int, ratio: float, seed: int, method: str, kind: str,
              mask_kind: str = "random"):
    ckpt = load(path)
    mask = make_mask(count, ckpt.config.model.grid, ratio, seed, kind=mask_kind)
    tokens = layer_tokens(ckpt, images[:count], mask, layer)
    start = time.perf_counter()
    xy = embed_2d(tokens["features"], method)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1],
                         "token": np.where(tokens["masked"], "masked", "visible"),
                         "class": [classes[int(labels[i])] for i in tokens["image"]],
                         "image": tokens["image"], "patch": tokens["patch"]}), time.perf_counter() - start


def embedding_for(path: str, layer: int, count: int, ratio: float, seed: int, method: str, mask_kind: str = "random"):
    """:func:`embedding` of this page's images (Fashion-MNIST or the photos: what the model sees)."""
    return embedding(path, layer, count, ratio, seed, method, shown_in.kind, mask_kind)


@st.cache_resource(show_spinner=False, max_entries=64)
def token_scatter(args: tuple, key: str, label: str, layer: int, axis: str) -> go.Figure:
    """The styled scatter of ``embedding(*args)`` coloured by ``key``: the same for every session,
    built once (a classroom opens this page at once; docs/performance.md)."""
    frame, _ = embedding_for(*args)
    frame = frame.rename(columns={"class": "photo"}) if shown_in.photos else frame
    key = "photo" if key == "class" and shown_in.photos else key
    fig = px.scatter(frame, x="x", y="y", color=key, opacity=0.7, height=420, render_mode="svg",
                     hover_data={"image": True, "patch": True, "photo" if shown_in.photos else "class": True,
                                 "x": False, "y": False},
                     color_discrete_map=TOKEN_COLOURS if key == "token" else None,
                     color_discrete_sequence=CLASS_COLOURS * 2, category_orders={key: list(classes)})
    fig.update_traces(marker=dict(size=5 if len(frame) < 2500 else 4))
    # no Plotly title: the toolbar sits over a chart's top edge; the page writes the title above the chart
    fig.update_layout(margin=dict(l=60, r=10, t=30, b=50), xaxis_title=f"{axis} 1", yaxis_title=f"{axis} 2",
                      legend_title_text="", plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return styled(fig)


for side, (col, (label, ckpt)) in enumerate(zip(st.columns(2), pair)):
    args = (str(ckpt.path), layer, count, ratio, seed, method, mask_kind)
    if method == "umap":
        with st.spinner(f"UMAP of {count * cfg.num_patches:,} tokens for {label}: about a second, "
                        "or several if this is the server's first UMAP (its kernels compile once)…"):
            frame, seconds = embedding_for(*args)
    else:
        frame, seconds = embedding_for(*args)
    key = "token" if colour == "masked / visible" else "class"
    fig = token_scatter(args, key, label, layer, axis)
    # the clicked token (image, patch) is kept, so it stays picked when the colouring, layer or
    # embedding changes (the chart is redrawn then and forgets its selection)
    picked_key = f"tokens-picked-{side}"
    state = st.session_state.get(f"tokens-{side}")
    points = list(state["selection"]["points"]) if state and "selection" in state else []
    # the clicked point by its coordinates (the figure has one trace per colour)
    hits = frame[(frame["x"] == points[0]["x"]) & (frame["y"] == points[0]["y"])] if points else frame[:0]
    if len(hits):
        st.session_state[picked_key] = (int(hits.iloc[0]["image"]), int(hits.iloc[0]["patch"]))
    picked = st.session_state.get(picked_key)
    row = None
    if picked is not None:
        match = frame[(frame["image"] == picked[0]) & (frame["patch"] == picked[1])]
        row = match.iloc[0] if len(match) else None
    if row is not None:  # on a copy: the cached figure is every session's
        fig = go.Figure(fig.to_dict(), _validate=False)
        fig.add_trace(go.Scatter(x=[row["x"]], y=[row["y"]], mode="markers", name="picked", hoverinfo="skip",
                                 marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(color="#111", width=2.5))))
    with col:
        st.markdown(f"**{label} · layer {layer}**")
        chart(fig, key=f"tokens-{side}", on_select="rerun", selection_mode="points", ready=True)
        if method == "umap":
            st.caption(f"UMAP computed in {seconds:.1f} s (kept for this checkpoint, layer, ratio and seed)")
        if row is not None:
            whole = images[int(row["image"])].float() / 255
            picture(st, outline_patch(whole, int(row["patch"]), ckpt.config.model.patch_size,
                                      display_size(cfg.img_size, shown_in.photos)),
                    caption=f"{row['token']} token: image {row['image']} ({names[int(row['image'])]}), "
                            f"patch {row['patch']} "
                            "(framed; ringed in the plot). Click another point to change it.")
        else:
            st.caption("Click a point to see its patch inside its image.")

over_training(pair, layer, where)

st.subheader("Per layer: how distinct are masked and visible tokens?")
st.caption((f"Four of the photos ({'; '.join(names[:len(shown_in.held_out)])})" if shown_in.photos
            else "Held-out test images (32)")
           + ", with one fixed random mask at the sidebar's ratio (mask seed 1, so "
           "these numbers do not move with the sidebar's seed). Singularity S = 1 − mean over masked tokens of the best cosine to a "
           "visible token of the same image (higher: the mask token stays unlike the data). Silhouette of the "
           "masked / visible split (cosine; 1 = two tight, separate groups, 0 = overlapping) and the Fisher "
           "ratio along the line between the two groups' means measure how far apart they are. A linear probe "
           "in the full feature space scores 1.00 at every layer of every trained checkpoint, so it cannot tell "
           "them apart; in the 2-D PCA plane drawn above it sometimes can.")


@st.cache_resource(show_spinner=False, max_entries=32)
def layer_figures(pair_key: tuple, ratio: float, where: str) -> tuple[pd.DataFrame, dict[str, go.Figure]]:
    """The per-layer table of both checkpoints and its four styled figures, shared by every session."""
    both = layer_table([(label, load(path)) for label, path in pair_key], ratio)
    names = {"singularity": "singularity score S", "silhouette": "silhouette (masked vs visible)",
             "fisher_ratio": "Fisher ratio (masked vs visible)",
             "separability_plane_auc": "probe ROC-AUC in the PCA plane"}
    figures = {}
    for measure, title in names.items():
        fig = px.line(both, x="layer", y=measure, color="checkpoint", markers=True, height=330,
                      color_discrete_sequence=["#1f77b4", "#d62728"])
        fig.update_layout(yaxis_title=title, legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0,
                                                         title_text=""),
                          margin=dict(l=60, r=10, t=70, b=50))
        fig.update_yaxes(range=measure_range(measure, both[measure], ratio))  # fixed: no zoom into 1e-4 steps
        if measure == "separability_plane_auc":  # on its whole scale, chance (0.5) to 1
            fig.add_hline(y=0.5, line_dash="dot", line_color="#888", annotation_text="chance",
                          annotation_position="bottom right")
        figures[measure] = styled(integer_layers(fig, f"layer of the {where}"))
    return both, figures


both, figures = layer_figures(tuple((label, str(ckpt.path)) for label, ckpt in pair), ratio, where)
cols = st.columns(2)
for i, (measure, fig) in enumerate(figures.items()):
    with cols[i % 2]:
        chart(fig, key=f"tokens-{measure}", ready=True)
if float(both["separability_plane_auc"].min()) > 0.99:
    st.caption("Here both checkpoints score about 1 in the PCA plane as well, at every layer: the probe AUC "
               "cannot tell them apart for this method; the silhouette and the Fisher ratio can.")
