"""Reconstruct: baseline and MTO side by side on the same image and mask."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from common import DataError, MAX_UPLOAD_BYTES, choose_pair, heat, page, test_set, to_image

from mto_core import make_mask, reconstruct
from mto_core.app_support import read_upload, toggle_patches

page("Reconstruct", "🧩")
pair = choose_pair("recon")
if not pair:
    st.stop()
cfg = pair[0][1].config.model
if pair[1][1].config.model.grid != cfg.grid or pair[1][1].config.model.img_size != cfg.img_size:
    st.error("The two checkpoints have different image or patch sizes; pick a matching pair.")
    st.stop()
images, labels, classes = test_set()

source = st.radio("Image", ["gallery", "dataset index", "upload"], horizontal=True, key="recon-source")
image = None
if source == "gallery":
    picks = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in range(len(classes))]
    choice = st.select_slider("Gallery (one image per class)", options=picks, value=picks[0],
                              format_func=lambda i: classes[int(labels[i])], key="recon-gallery")
    image = images[choice:choice + 1]
elif source == "dataset index":
    index = st.number_input("Test-split index", 0, len(images) - 1, 0, key="recon-index")
    image = images[int(index):int(index) + 1]
else:
    upload = st.file_uploader("PNG, JPEG or any format PIL reads; any size or mode", key="recon-upload")
    if upload is not None:
        try:
            image = read_upload(upload.getvalue(), cfg.img_size, cfg.in_chans, MAX_UPLOAD_BYTES)
        except DataError as error:
            st.error(f"That file cannot be used: {error}")
    if image is None:
        st.info("Upload an image to reconstruct it.")
        st.stop()

c1, c2, c3 = st.columns(3)
ratio = c1.slider("Mask ratio", 0.1, 0.9, 0.6, 0.05, key="recon-ratio")
seed = c2.number_input("Mask seed", 0, 10_000, 0, key="recon-seed")
kind = c3.radio("Mask type", ["random", "block", "hand-edited"], horizontal=True, key="recon-kind")

n = cfg.num_patches
base_kind = "random" if kind == "hand-edited" else kind
mask = make_mask(1, cfg.grid, ratio, int(seed), kind=base_kind)[0]
if kind == "hand-edited":
    state_key = f"recon-edit-{cfg.grid}"
    if state_key not in st.session_state or st.button("Start again from the random mask"):
        st.session_state[state_key] = mask.clone()
    mask = st.session_state[state_key]
    st.caption("Click a patch to hide or show it.")
    g = cfg.grid
    ys, xs = np.divmod(np.arange(n), g)
    fig = go.Figure()
    fig.add_trace(go.Heatmap(z=image[0, 0].float().numpy() if image.shape[1] == 1 else
                             image[0].float().mean(0).numpy(), colorscale="gray", showscale=False,
                             x0=0.5 / cfg.patch_size - 0.5, dx=1 / cfg.patch_size,
                             y0=0.5 / cfg.patch_size - 0.5, dy=1 / cfg.patch_size, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers",
                             marker=dict(size=34, symbol="square", color=["rgba(255,80,0,0.55)" if m else
                                                                           "rgba(0,0,0,0)" for m in mask.tolist()],
                                         line=dict(width=1, color="rgba(255,255,255,0.4)")),
                             hovertemplate="patch %{customdata}<extra></extra>", customdata=np.arange(n)))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    fig.update_layout(height=320, width=320, margin=dict(l=0, r=0, t=0, b=0), clickmode="event+select")
    event = st.plotly_chart(fig, on_select="rerun", selection_mode="points", key=f"recon-click-{cfg.grid}",
                            width="content")
    points = [p["customdata"] for p in (event.selection.points if event else []) if "customdata" in p]
    if points and points != st.session_state.get("recon-last-click"):
        st.session_state["recon-last-click"] = points
        st.session_state[state_key] = toggle_patches(mask, [int(p) for p in points])
        st.rerun()
    if not 0 < int(mask.sum()) < n:
        st.warning("Hide at least one patch and keep at least one visible.")
        st.stop()

counts = {}
for side, (col, (label, ckpt)) in enumerate(zip(st.columns(2), pair)):
    rec = reconstruct(ckpt, image, mask)
    counts[f"{label} ({'baseline' if side == 0 else 'MTO'})"] = float(rec.masked_error[0])
    with col:
        st.subheader(label)
        st.caption(f"{ckpt.config.preset} · masked-patch MSE **{rec.masked_error[0]:.4f}**")
        a, b, c, d = st.columns(4)
        a.image(to_image(rec.images[0]), caption="original", width="stretch")
        b.image(to_image(rec.masked[0]), caption="masked", width="stretch")
        c.image(to_image(rec.reconstruction[0]), caption="reconstruction", width="stretch")
        err = rec.patch_error[0].reshape(cfg.grid, cfg.grid).numpy() * mask.reshape(cfg.grid, cfg.grid).numpy()
        d.plotly_chart(heat(err, "error per patch", height=150), key=f"recon-err-{side}")

best = min(counts, key=counts.get)
st.markdown(f"Lower masked-patch error: **{best}** "
            f"({' vs '.join(f'{v:.4f}' for v in counts.values())}). Mask: {int(mask.sum())} of {n} "
            "patches hidden.")
