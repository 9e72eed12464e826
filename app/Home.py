"""Learn: what masked image modeling does, the three masked-token properties, what MTO changes."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from common import choose_pair, page, test_set, to_image

from mto_core import make_mask
from mto_core.analysis import mask_token_similarity
from mto_core.api import patch_mask_to_pixels

page("Masked Token Optimization, explained", "🎭")

st.markdown("""
**Masked image modeling** (SimMIM, MAE) teaches a Vision Transformer by hiding most of an
image's patches and asking it to paint them back. The hidden patches are replaced by one
learnable vector, the **mask token**. The paper *Emerging Property of Masked Token for Effective
Pre-training* (Choi et al., ECCV 2024) argues that how this token behaves decides how fast
pre-training converges, and proposes **Masked Token Optimization (MTO)**.
Use the sidebar to pick the checkpoints the figures below are drawn from.
""")

pair = choose_pair("learn")
images, labels, classes = test_set()
index = st.slider("Example image (test split)", 0, 99, 7, key="learn-index")
image = images[index:index + 1].float() / 255

st.header("1 · Spatial randomness")
st.markdown("Masked positions are drawn at random. SimMIM and MAE hide scattered patches; "
            "BEiT-style block masks hide contiguous blocks. Same ratio, different puzzles:")
ratio = st.slider("Mask ratio", 0.1, 0.9, 0.6, 0.05, key="learn-ratio")
seed = st.number_input("Mask seed", 0, 10_000, 0, key="learn-seed")
cols = st.columns(4)
for col, kind in zip(cols[:2], ("random", "block")):
    mask = make_mask(1, 7, ratio, int(seed), kind=kind)
    shown = torch.where(patch_mask_to_pixels(mask, 4), torch.full_like(image, 0.5), image)
    col.image(to_image(shown[0]), caption=f"{kind}: {int(mask.sum())} of 49 patches hidden", width=180)
cols[2].image(to_image(image[0]), caption=f"original ({classes[int(labels[index])]})", width=180)

st.header("2 · Substitutional consistency")
st.markdown("Every masked position receives **the same** learnable vector w (plus its position "
            "embedding). Below, the mask token of each checkpoint drawn as a strip of its "
            "components: one vector, shared by every hidden patch.")
if pair:
    fig = go.Figure()
    for label, ckpt in pair:
        model = ckpt.model
        token = (model.encoder.mask_token if model.config.method == "simmim" else model.mask_token)
        fig.add_trace(go.Heatmap(z=token.detach().reshape(1, -1).numpy(), y=[label], colorscale="RdBu",
                                 zmid=0, showscale=False))
    fig.update_layout(height=160, margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig)

st.header("3 · Data singularity")
st.markdown("The mask token should be unlike anything that occurs in real data, so the network can "
            "tell at once what is hidden. Histogram of the cosine similarity between the mask token "
            "and the embeddings of real patches (64 test images); mass near 0 or below means a "
            "distinct token.")
if pair:
    fig = go.Figure()
    stats = []
    for label, ckpt in pair:
        sim = mask_token_similarity(ckpt, images[:64])
        fig.add_trace(go.Histogram(x=sim["cosine"], name=label, opacity=0.6, nbinsx=60))
        stats.append(f"**{label}**: max cosine {sim['cosine'].max():.3f}, mean {sim['cosine'].mean():.3f}")
    fig.update_layout(barmode="overlay", height=300, xaxis_title="cos(mask token, patch embedding)",
                      margin=dict(l=0, r=0, t=10, b=0))
    st.plotly_chart(fig)
    st.markdown(" · ".join(stats))

st.header("What MTO changes")
st.markdown("""
From the paper: (a) **weight recalibration**, excluding the semantically void masked tokens from
the visible tokens' attention; (b) **data-singularity constraints** enforced according to layer
depth; (c) **minimizing the entropy** of row-wise softmax attention so that mask tokens focus on
the most salient visible tokens. The paper's exact formulas are not public: the formulas below are
**this project's reading** (MTO-SPEC.md), and its loss weights are starting defaults, not the paper's.
Notation: M masked tokens, V visible tokens ([CLS] counts as visible), A attention, h features.
""")
st.latex(r"\text{hard recalibration: } \mathrm{logit}_{ij} = -\infty \quad (i \in V,\ j \in M)")
st.latex(r"L_{rec} = \operatorname{mean}_{l \le K,\ \text{heads},\ i \in V} \sum_{j \in M} A^l_{ij}")
st.latex(r"L_{sing} = \sum_{l=0}^{K} w_l \operatorname{mean}_{i \in M} \sum_{j \in V} p_{ij},\quad "
         r"p_{ij} = \operatorname{softmax}_{j \ne i}\!\big(\cos(h^l_i, h^l_j)/\tau\big),\quad w_l \propto K+1-l")
st.latex(r"L_{ent} = \operatorname{mean}_{l \le K,\ \text{heads},\ i \in M} "
         r"\frac{-\sum_j A^l_{ij} \log A^l_{ij}}{\log N_{keys}}")
st.latex(r"L = L_{MIM} + \lambda_{sing} L_{sing} + \lambda_{ent} L_{ent} + \lambda_{rec} L_{rec}"
         r"\qquad (\lambda_{sing} = 0.1,\ \lambda_{ent} = 0.01,\ \lambda_{rec} = 0)")
st.markdown("K is half the layers that see mask tokens, rounded up; τ = 0.1. For MAE every "
            "statement applies to the decoder, where the mask tokens live. The other pages: "
            "**Reconstruct**, **Tokens**, **Attention**, **Curves** and **Train**.")
