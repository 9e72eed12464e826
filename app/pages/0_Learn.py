"""Learn: masked image modeling as a guided story: the pipeline, the three masked-token properties
with live figures, weight recalibration before and after, what MTO changes, where to go next."""

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
import streamlit as st


from mto_core import make_mask, reconstruct
from mto_core.analysis.measures import mask_layer_inputs, mask_token_similarity, recalibration_views
from logic.pixels import display_size, paint_patches, pipeline_svg, upscale
from logic.verdicts import SINGULARITY_WHY, singularity_verdict, zero_token_note
from widgets.charts import chart, note, picture, styled
from widgets.models import CHECKPOINTS, inputs_for, load, seen_names, test_set
from widgets.page import page, spec_expander
from widgets.sidebar import choose_pair, mask_controls

page("Masked Token Optimization, explained", "🎭")
idea = st.container()  # the idea before the words: filled once the sidebar has picked a checkpoint

st.markdown("""
**Masked image modeling** (SimMIM, ConMIM, MAE, BootMAE) teaches a Vision Transformer by hiding
most of an image's patches and asking it to predict them: their pixels (SimMIM, MAE), or the
features a momentum teacher gives them (ConMIM), or both (BootMAE). The hidden patches are stood in for by one
learnable vector, the **mask token**. The paper *Emerging Property of Masked Token for Effective
Pre-training* (Choi et al., ECCV 2024) argues that how this token behaves decides how fast
pre-training converges, and proposes **Masked Token Optimization (MTO)**. The paper is public
(arXiv 2404.08330), but this project has not had its full text: the exact formulas drawn here are
**this project's reading** of the paper's idea, set apart in the specification below. The figures
are computed live from the checkpoints chosen in the sidebar, on what each sees: Fashion-MNIST for
the tiny models, photos for RGB models such as a published ViT-B.
""")
spec_expander()

pair = choose_pair("learn")
model_cfg = pair[0][1].config.model if pair else None
ratio, seed, _ = mask_controls("learn", patches=model_cfg.num_patches if pair else 49)
shown_in = inputs_for(model_cfg) if pair else None
if shown_in is not None and shown_in.photos:
    images, classes = shown_in.images, seen_names(shown_in, pair)
    labels = shown_in.labels
    index = st.select_slider("Example photo", options=list(range(len(images))), value=0,
                             format_func=lambda i: classes[i], key="learn-photo")
else:  # Fashion-MNIST at the model's own size
    images, labels, classes = (shown_in.images, shown_in.labels, shown_in.classes) if shown_in else test_set()
    index = st.slider("Example image (test split)", 0, 99, 7, key="learn-index")
image = images[index:index + 1].float() / 255
note("image", f"{'photo' if shown_in is not None and shown_in.photos else 'test image'} {index} "
              f"({classes[int(labels[index])]})")
if shown_in is not None:
    st.caption(f"What the model sees: {shown_in.seen}.")
G, P = (model_cfg.grid, model_cfg.patch_size) if pair else (7, 4)
N = G * G
KIND = shown_in.kind if shown_in is not None else "fashion-mnist"
SIZE = display_size(image.shape[-1], KIND == "photos")

IDEA_RATIO = 0.75  # the ratio MAE's paper uses


def fill_in_model(pair: tuple):
    """The first chosen checkpoint that predicts pixels, else the shipped SimMIM of the same colour
    (ConMIM predicts features: it has no picture to show)."""
    found = next((ckpt for _, ckpt in pair if ckpt.model.predicts == "pixels"), None)
    if found is None:
        shipped = CHECKPOINTS / ("simmim-rgb" if pair[0][1].config.model.in_chans == 3 else "simmim")
        found = load(str(shipped)) if shipped.is_dir() else None
    return found


@st.cache_data(show_spinner=False, max_entries=32)
def fill_in(path: str, kind: str, index: int, seed: int, shape: tuple, _image: torch.Tensor):
    """The idea's reconstruction, once for every session (keyed by checkpoint, image and mask seed)."""
    model = load(path)
    return reconstruct(model, _image, make_mask(1, model.config.model.grid, IDEA_RATIO, seed))


if pair:
    filler = fill_in_model(pair)
    if filler is not None:
        fcfg = filler.config.model
        hidden = make_mask(1, fcfg.grid, IDEA_RATIO, seed)[0]
        rec = fill_in(str(filler.path), KIND, index, seed, tuple(image.shape), image)
        big = 160 if fcfg.img_size < 160 else fcfg.img_size
        mask_fact = st.session_state["figure-facts"].get("mask", "")
        note("mask", f"mask {IDEA_RATIO:.0%} random, seed {seed}")  # the idea's own mask, not the sidebar's ratio
        with idea:
            st.markdown(f"**The idea in one picture:** {IDEA_RATIO:.0%} of the image's patches are hidden (magenta), "
                        "and the model fills them in from the quarter it sees, computed from this image by "
                        f"`{filler.name}`, not a stored picture.")
            a, b, c = st.columns(3)
            picture(a, upscale(rec.images[0], big), caption="the image")
            picture(b, upscale(paint_patches(rec.images[0], hidden, fcfg.patch_size), big),
                    caption=f"{int(hidden.sum())} of {fcfg.num_patches} patches hidden: what the model is given")
            picture(c, upscale(rec.reconstruction[0], big), caption=f"{filler.name}'s fill-in (the visible patches kept)"
                    + (", drawn with the true patches' mean and std" if fcfg.norm_pix_loss else ""))
        note("mask", mask_fact)

st.header("The pipeline")
PIPELINE = (Path(__file__).resolve().parent.parent / "assets" / "pipeline.svg").read_text()
st.image(pipeline_svg(PIPELINE, model_cfg.img_size, model_cfg.patch_size) if pair else PIPELINE,
         caption=f"For the checkpoint chosen: {G * P} x {G * P} input, {N} patches of {P} x {P} px. "
                 "Where the mask token w enters (magenta): every masked position of SimMIM's and ConMIM's "
                 "encoder, the masked positions of MAE's decoder and of both BootMAE decoders. ConMIM and "
                 "BootMAE also keep a momentum teacher, which sees the whole image and gives the target "
                 "features.")

st.markdown("MTO acts where the mask token lives: in the **encoder** of SimMIM and ConMIM, in MAE's "
            "**decoder**, and in **both** of BootMAE's decoders, the pixel and the feature decoder (each "
            "lets its visible tokens attend to a mask token that carries no content; the figures below "
            "trace its pixel decoder). The momentum teacher never sees a mask token, so MTO does not act "
            "there. The probes (and everything a downstream task uses) read the **encoder**.")

st.header("1 · Spatial randomness")
st.markdown("Masked positions are drawn at random. SimMIM and MAE hide scattered patches; "
            "BEiT-style block masks hide contiguous blocks. Same ratio, different puzzles "
            "(hidden patches in magenta; ratio and seed in the sidebar):")
cols = st.columns(3)
picture(cols[0], upscale(image[0], SIZE), caption=f"original ({classes[int(labels[index])]})")
for col, kind in zip(cols[1:], ("random", "block")):
    mask = make_mask(1, G, ratio, seed, kind=kind)[0]
    picture(col, upscale(paint_patches(image[0], mask, P), SIZE),
            caption=f"{kind}: {int(mask.sum())} of {N} patches hidden")
st.info("**What to look for:** with a random mask almost every hidden patch has a visible neighbour, so "
        "it can be filled in from local context; a block mask removes whole regions, so the model must "
        f"reason about the {'scene' if KIND == 'photos' else 'garment'}'s shape. Move the seed: the positions "
        "change, the count does not.")

if not pair:
    st.stop()
mto_label, mto = next(((label, ckpt) for label, ckpt in pair if ckpt.config.mto.enabled), pair[-1])

st.header("2 · Substitutional consistency")
st.markdown("Every masked position receives **the same** learnable vector w (position is added "
            "afterwards). Below: the tokens entering the first layer that sees mask tokens, one row per "
            "patch (hidden patches first), one column per component, for the example image.")


@st.cache_data(show_spinner=False, max_entries=32)
def zero_tokens(pair_key: tuple) -> list[str]:
    """The labels whose mask token is all zeros."""
    out = []
    for label, path in pair_key:
        model = load(path).model
        token = model.encoder.mask_token if model.config.mask_in_encoder else model.mask_token
        if not bool(token.detach().abs().sum()):
            out.append(label)
    return out


# The figures below depend only on the checkpoints, the image and the mask, never on the session: each
# is built once and shared by every visitor (a classroom opens this page at once; docs/performance.md).
def example(index: int, kind: str) -> torch.Tensor:
    """The example image (1, C, H, W) in [0, 1], of the inputs the picked models see (``kind``
    names them in the figures' cache keys)."""
    return images[index:index + 1].float() / 255


@st.cache_resource(show_spinner=False, max_entries=32)
def token_figure(pair_key: tuple, index: int, ratio: float, seed: int, kind: str) -> go.Figure:
    """Section 2: the tokens entering the first layer that sees mask tokens, each checkpoint."""
    pair = [(label, load(path)) for label, path in pair_key]
    image = example(index, kind)
    mask = make_mask(1, pair[0][1].config.model.grid, ratio, seed)[0]
    order = np.concatenate([np.flatnonzero(mask.numpy()), np.flatnonzero(~mask.numpy())])
    hidden = int(mask.sum())
    fig = make_subplots(rows=1, cols=len(pair), subplot_titles=[label for label, _ in pair], horizontal_spacing=0.06)
    for side, (label, ckpt) in enumerate(pair, start=1):
        tokens = mask_layer_inputs(ckpt, image, mask.unsqueeze(0))[0][order].numpy()
        # each row over its own largest |value|: the mask token is small, its pattern is what matters
        tokens = tokens / np.maximum(np.abs(tokens).max(1, keepdims=True), 1e-12)
        fig.add_trace(go.Heatmap(z=tokens, coloraxis="coloraxis", name=label), row=1, col=side)
        fig.add_shape(type="rect", x0=-0.5, x1=tokens.shape[1] - 0.5, y0=-0.5, y1=hidden - 0.5,
                      line=dict(color="#e0008c", width=2), row=1, col=side)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=side,
                         title=f"patches ({hidden} hidden, framed)" if side == 1 else None)
        fig.update_xaxes(title="component of the token", showticklabels=False, row=1, col=side)
    fig.update_layout(coloraxis=dict(colorscale="RdBu", cmid=0, cmin=-1, cmax=1, colorbar=dict(
        title=dict(text="value / row's max |value|", side="right"), thickness=12)),
        height=360, margin=dict(l=40, r=10, t=40, b=40))
    return styled(fig)


pair_key = tuple((label, str(ckpt.path)) for label, ckpt in pair)
chart(token_figure(pair_key, index, ratio, seed, KIND), key="learn-tokens", ready=True)
zero = zero_tokens(pair_key)  # a fresh transformers model's mask token is zeros
if zero:
    st.warning(zero_token_note(zero, "rows"))
if len(zero) < len(pair):
    st.info("**What to look for:** inside the frame every row is the same stripe pattern, the one mask token; "
            "below it each visible patch has its own embedding. The network tells a hidden patch only by this "
            "token and its position.")

st.header("3 · Data singularity")
st.markdown("The mask token should be unlike anything that occurs in real data, so the network can "
            "tell at once what is hidden. Histogram of the cosine similarity between the mask token "
            "and the embeddings of real patches ("
            + ("four of the photos" if KIND == "photos" else "64 test images") + ").")


@st.cache_resource(show_spinner=False, max_entries=16)
def singularity_figure(pair_key: tuple, kind: str) -> tuple[go.Figure, list[str]]:
    """Section 3: the histograms of cos(mask token, patch embedding), and a line of figures per checkpoint."""
    pair = [(label, load(path)) for label, path in pair_key]
    # four photos for a large model's decoder inputs (each needs the encoder's whole forward pass; 784 patches)
    shown = inputs_for(pair[0][1].config.model).images
    images = shown[:4] if kind == "photos" else shown
    fig = go.Figure()
    stats = []
    for (label, ckpt), colour in zip(pair, ("#1f77b4", "#d62728")):
        sim = mask_token_similarity(ckpt, images[:64])
        if float(sim["token_norm"]) == 0:  # no direction: no histogram (zero_token_note says why)
            continue
        fig.add_trace(go.Histogram(x=sim["cosine"], name=label, opacity=0.6, nbinsx=60, marker_color=colour))
        stats.append((label, float(sim["cosine"].mean()), float(sim["cosine"].max())))
    fig.update_layout(barmode="overlay", height=300, xaxis_title="cos(mask token, patch embedding)",
                      yaxis_title="patches", margin=dict(l=60, r=10, t=10, b=50), legend=dict(x=0.01, y=0.99))
    return styled(fig), stats


fig, stats = singularity_figure(pair_key, KIND)
if stats:
    chart(fig, key="learn-singularity", ready=True)
    st.markdown(" · ".join(f"**{label}**: mean cosine {mean:.3f}, largest {top:.3f}" for label, mean, top in stats))
if zero:
    st.warning(zero_token_note(zero, "cosine"))
if len(stats) == 2:
    st.markdown(singularity_verdict(*stats))
    st.caption(SINGULARITY_WHY)
elif not zero:
    st.caption("Pick a second checkpoint in the sidebar (its MTO partner) to see which token is the more distinct. "
               + SINGULARITY_WHY.replace("Why MTO's token need not stand further apart here: ", "Note: "))
if pair[0][1].config.model.mask_in_encoder and KIND != "photos":  # equal pixels, equal embedding, equal cosine
    p, g = pair[0][1].config.model.patch_size, pair[0][1].config.model.grid
    blank = images[:64].reshape(64, -1, g, p, g, p).amax(dim=(1, 3, 5)) == 0
    st.caption(f"The tall bars: {float(blank.float().mean()):.0%} of these patches are plain black background. "
               "Equal pixels give equal embeddings, so in each checkpoint they all share one cosine.")
st.info("**What to look for:** mass near 0 or below (the token points away from every real patch) means "
        "a distinct token; mass near 1 means the network could mistake a hidden patch for a real one. Two "
        "measures read it: the mean cosine (how far from the data on average) and the largest (how close its "
        "nearest real patch comes)"
        + ("; the sentence above says which token wins by each." if len(stats) == 2 else "."))

st.header("4 · Weight recalibration: before and after")
st.markdown(f"The full attention of the example image in layer 1 of **{mto_label}** (mean over heads), "
            "with the same weights run without and with hard recalibration. Tokens are ordered [CLS], "
            "visible, masked; the framed block is visible queries × masked keys.")


@st.cache_resource(show_spinner=False, max_entries=32)
def recalibration_figure(path: str, index: int, ratio: float, seed: int, kind: str) -> tuple[go.Figure, dict[str, float]]:
    """Section 4: one checkpoint's layer-1 attention without and with recalibration, and the
    visible-to-masked attention of each."""
    image = example(index, kind)
    mask = make_mask(1, load(path).config.model.grid, ratio, seed)[0]
    views = recalibration_views(load(path), image, mask, layer=1)
    token_mask = views["token_mask"]
    order = np.concatenate([np.flatnonzero(~token_mask), np.flatnonzero(token_mask)])
    visible = int((~token_mask).sum())
    top = float(max(views["without"].max(), views["with"].max()))
    fig = make_subplots(rows=1, cols=2, subplot_titles=["without recalibration", "with recalibration"],
                        horizontal_spacing=0.08)
    inside = {}
    for side, name in enumerate(("without", "with"), start=1):
        z = views[name][np.ix_(order, order)]
        t = z.shape[0]
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", name=f"{name} recalibration"), row=1, col=side)
        fig.add_shape(type="rect", x0=visible - 0.5, x1=t - 0.5, y0=-0.5, y1=visible - 0.5,
                      line=dict(color="#e0008c", width=3), row=1, col=side)
        axis = "x" if side == 1 else "x2"
        fig.update_yaxes(autorange="reversed", scaleanchor=axis, constrain="domain", title="query",
                         showticklabels=False, row=1, col=side)
        fig.update_xaxes(constrain="domain", title="key", showticklabels=False, row=1, col=side)
        inside[name] = z[:visible, visible:].sum(1).mean()
    fig.update_layout(coloraxis=dict(colorscale="Viridis", cmin=0, cmax=top, colorbar=dict(
        title=dict(text="attention", side="right"), thickness=12)), height=420, margin=dict(l=30, r=0, t=30, b=30),
        plot_bgcolor="white")
    return styled(fig), inside


fig, inside = recalibration_figure(str(mto.path), index, ratio, seed, KIND)
chart(fig, key="learn-recal", ready=True)
st.caption("Attention of visible queries on masked keys (mean row sum inside the frame): "
           f"{inside['without']:.3f} without, {inside['with']:.3f} with recalibration.")
st.info("**What to look for:** with recalibration the framed block is empty: visible tokens never draw on "
        "the semantically void mask token, and their rows renormalise over visible keys. Masked queries "
        "(the rows below) still look everywhere. The **Attention** page shows it for every layer and head.")

st.header("What MTO changes")
st.markdown("""
From the paper: (a) **weight recalibration**, excluding the semantically void masked tokens from
the visible tokens' attention; (b) **data-singularity constraints** enforced according to layer
depth; (c) **minimizing the entropy** of row-wise softmax attention so that mask tokens focus on
the most salient visible tokens. This project has not had the paper's full text, so the formulas
below are **this project's reading** (the specification above), and its loss weights are starting defaults,
not the paper's. Notation: M masked tokens, V visible tokens ([CLS] counts as visible), A attention,
h features.
""")
st.latex(r"\text{hard recalibration: } \mathrm{logit}_{ij} = -\infty \quad (i \in V,\ j \in M)")
st.latex(r"L_{rec} = \operatorname{mean}_{l \le K,\ \text{heads},\ i \in V} \sum_{j \in M} A^l_{ij}")
st.latex(r"L_{sing} = \sum_{l=0}^{K} w_l \operatorname{mean}_{i \in M} \sum_{j \in V} p_{ij},\quad "
         r"p_{ij} = \operatorname{softmax}_{j \ne i}\!\big(\cos(h^l_i, h^l_j)/\tau\big),\quad w_l \propto K+1-l")
st.latex(r"L_{ent} = \operatorname{mean}_{l \le K,\ \text{heads},\ i \in M} "
         r"\frac{-\sum_j A^l_{ij} \log A^l_{ij}}{\log N_{keys}}")
st.latex(r"L = L_{MIM} + \lambda_{sing} L_{sing} + \lambda_{ent} L_{ent} + \lambda_{rec} L_{rec}"
         r"\qquad (\lambda_{sing} = 0.1,\ \lambda_{ent} = 0.01,\ \lambda_{rec} = 0)")
st.markdown("K is half the layers that see mask tokens, rounded up; τ = 0.1.")

st.subheader("And MAE?")
st.markdown("""
In MAE the encoder never sees a mask token: it runs on the visible patches only, and the mask
token enters the light **decoder**, which is thrown away after pre-training. MTO can therefore act
on MAE only through the decoder's two layers, and reach the encoder only through the gradients the
decoder sends back. Pick **MAE** in the sidebar and compare sections 2 and 3 between MAE and
MAE + MTO. Where MTO barely moves MAE's mask token, that is expected: MAE's token already sits apart
from the decoder's inputs (the decoder embeds encoder outputs, not raw patches), and recalibration
only removes the visible tokens' attention to it inside two decoder layers. What reaches the
encoder, the part that is kept, is a second-hand effect, so a small or no speed-up for MAE is what
this reading predicts, not a sign that the code does nothing. At this project's scale neither
MAE's nor SimMIM's speed-up is measurable (see docs/results/README.md in the repository).
""")

st.subheader("And ConMIM and BootMAE?")
st.markdown("""
**ConMIM** is SimMIM's case: its encoder sees the mask tokens, so MTO acts in the encoder, the
part that is kept. What it predicts differs: each masked patch's output is pulled towards the
momentum teacher's feature of that patch and pushed away from the teacher's features of the
image's other patches, so it predicts no pixels (the **Reconstruct** page shows how well its
predictions match the teacher's features instead). **BootMAE** is MAE's case with two decoders,
one predicting pixels, one the teacher's features; MTO acts in both, and reaches the encoder only
through them, as in MAE. Of the four, ConMIM is the one where this project's runs resolve a
speed-up: about 1.2x in epochs (12 paired seeds of the tiny model; the **Curves** page shows it),
well short of the paper's 2x.
""")

st.subheader("Go deeper")
c = st.columns(5)
c[0].page_link("pages/1_Reconstruct.py", label="Reconstruct", icon=":material/image:", help="baseline vs MTO on your image")
c[1].page_link("pages/2_Tokens.py", label="Tokens", icon=":material/scatter_plot:", help="masked vs visible tokens, layer by layer")
c[2].page_link("pages/3_Attention.py", label="Attention", icon=":material/visibility:", help="where each patch looks")
c[3].page_link("pages/4_Curves.py", label="Curves", icon=":material/show_chart:", help="does MTO learn faster?")
c[4].page_link("pages/5_Train.py", label="Train", icon=":material/model_training:", help="a short run in the browser")
