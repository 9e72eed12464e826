"""Tokens: where masked and visible tokens sit, layer by layer, baseline vs MTO."""

import numpy as np
import pandas as pd
import plotly.express as px
import streamlit as st

from common import choose_pair, layer_table, load, page, test_set, to_image

from mto_core import make_mask
from mto_core.analysis import embed_2d, layer_tokens

page("Tokens", "🔬")
pair = choose_pair("tokens")
if not pair:
    st.stop()
images, labels, classes = test_set()
layers = min(ckpt.config.model.mask_layers for _, ckpt in pair)

c1, c2, c3, c4 = st.columns(4)
layer = c1.slider("Layer (0 = input with position)", 0, layers, 1, key="tokens-layer")
method = c2.radio("Embedding", ["pca", "umap"], horizontal=True, key="tokens-embedding",
                  help="PCA is instant; UMAP (cosine) shows neighbourhoods better and takes a few seconds.")
count = c3.select_slider("Images", [10, 20, 40], value=40, key="tokens-count",
                         help="40 images give 1,960 patch tokens")
colour = c4.radio("Colour", ["masked / visible", "class"], horizontal=True, key="tokens-colour")
ratio = st.sidebar.slider("Mask ratio", 0.1, 0.9, 0.6, 0.05, key="tokens-ratio")


@st.cache_data(show_spinner="Embedding tokens…")
def embedding(path: str, layer: int, count: int, ratio: float, method: str):
    ckpt = load(path)
    mask = make_mask(count, ckpt.config.model.grid, ratio, 0)
    tokens = layer_tokens(ckpt, images[:count], mask, layer)
    xy = embed_2d(tokens["features"], method)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1],
                         "token": np.where(tokens["masked"], "masked", "visible"),
                         "class": [classes[int(labels[i])] for i in tokens["image"]],
                         "image": tokens["image"], "patch": tokens["patch"]})


for side, (col, (label, ckpt)) in enumerate(zip(st.columns(2), pair)):
    frame = embedding(str(ckpt.path), layer, count, ratio, method)
    key = "token" if colour == "masked / visible" else "class"
    fig = px.scatter(frame, x="x", y="y", color=key, hover_data={"image": True, "patch": True, "class": True,
                                                                   "x": False, "y": False},
                     opacity=0.7, height=420,
                     color_discrete_map={"masked": "#e4572e", "visible": "#2e86ab"})
    fig.update_traces(marker=dict(size=5))
    fig.update_layout(margin=dict(l=0, r=0, t=30, b=0), title=f"{label} · layer {layer}")
    with col:
        event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"tokens-{side}")
        points = event.selection.points if event else []
        # one trace per colour: find the clicked token by its coordinates
        hits = frame[(frame["x"] == points[0]["x"]) & (frame["y"] == points[0]["y"])] if points else frame[:0]
        if len(hits):
            row = hits.iloc[0]
            g, p = ckpt.config.model.grid, ckpt.config.model.patch_size
            r, c = divmod(int(row["patch"]), g)
            patch = images[int(row["image"]), :, r * p:(r + 1) * p, c * p:(c + 1) * p].float() / 255
            st.image(to_image(patch), width=96,
                     caption=f"{row['token']} token: image {row['image']}, patch {row['patch']}")
        else:
            st.caption("Click a point to see its patch.")

st.subheader("Per layer: singularity score and masked-vs-visible separability")
st.caption("Singularity S = 1 − mean over masked tokens of the best cosine to a visible token of the same "
           "image (higher: more distinct). Separability: held-out ROC-AUC of a linear probe telling masked "
           "from visible tokens. 32 held-out test images.")
both = layer_table(pair, ratio)
c1, c2 = st.columns(2)
c1.plotly_chart(px.line(both, x="layer", y="singularity", color="checkpoint", markers=True, height=300),
                key="tokens-sing")
c2.plotly_chart(px.line(both, x="layer", y="separability_auc", color="checkpoint", markers=True, height=300),
                key="tokens-auc")
