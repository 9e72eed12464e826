"""Reconstruct: one checkpoint, or two side by side, on the same image and mask, and over a batch.

Pixel predictors (SimMIM, MAE, BootMAE) show their prediction and its error; feature predictors
show how well each masked patch's predicted feature matches the momentum teacher's (ConMIM only
that: it predicts no pixels, so no image of its is drawn; BootMAE both). The checkpoint's config
decides what it sees: Fashion-MNIST for the tiny grey models, photos for RGB models (224 x 224)."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from mto_core import feature_match, make_mask, reconstruct
from mto_core.analysis.floors import floor_fills
from mto_core.analysis.measures import masked_error_over
from mto_core.data.images import prepare_images
from mto_core.data.photos import read_photo

from logic.files import MAX_UPLOAD_BYTES, read_upload
from logic.labels import method_name
from logic.pixels import display_size, paint_patches, toggle_patches, upscale
from logic.verdicts import floor_sentence, unfair_pixel_pair
from mto_core import DataError
from widgets.charts import chart, heat, patch_picker, picture
from widgets.models import inputs_for, load, seen_names
from widgets.page import page
from widgets.sidebar import choose_pair, mask_controls

page("Reconstruct", "🧩")
pair = choose_pair("recon")
if not pair:
    mask_controls("recon", ("random", "block", "hand-edited"))
    st.stop()
cfg = pair[0][1].config.model
ratio, seed, kind = mask_controls("recon", ("random", "block", "hand-edited"), cfg.num_patches)
shown_in = inputs_for(cfg)
images, names = shown_in.images, seen_names(shown_in, pair)
BATCH = 256 if not shown_in.photos else len(images)  # every gallery photo for an RGB model
SIZE = display_size(cfg.img_size, shown_in.photos)  # pictures pixel-exact; a photo at its own 224 px

st.caption(f"What the model sees: {shown_in.seen}.")
sources = ["gallery", "upload"] if shown_in.photos else ["gallery", "dataset index", "upload"]
source = st.radio("Image", sources, horizontal=True, key="recon-source")
image = None
if source == "gallery" and shown_in.photos:
    choice = st.select_slider("Gallery (photos that ship with scikit-image)", options=list(range(len(images))),
                              value=0, format_func=lambda i: names[i], key="recon-photo")
    image = images[choice:choice + 1]
elif source == "gallery":
    labels, classes = shown_in.labels, shown_in.classes
    picks = [int(np.flatnonzero(labels.numpy() == c)[0]) for c in range(len(classes))]
    choice = st.select_slider("Gallery (one image per class)", options=picks, value=picks[0],
                              format_func=lambda i: classes[int(labels[i])], key="recon-gallery")
    image = images[choice:choice + 1]
elif source == "dataset index":
    index = st.number_input(f"Test-split index (0 to {len(images) - 1:,})", 0, len(images) - 1, 0,
                            key="recon-index")
    image = images[int(index):int(index) + 1]
else:
    c1, c2 = st.columns([3, 1])
    what = (f"resized on its short side and centre-cropped to {cfg.img_size} x {cfg.img_size}, in colour"
            if shown_in.photos else f"it is turned grey and shrunk to {cfg.img_size} x {cfg.img_size}")
    upload = c1.file_uploader(f"An image: PNG, JPEG, GIF, BMP, TIFF or WebP, up to {MAX_UPLOAD_BYTES // 2**20} MB; "
                              f"{what}, as the model sees it", key="recon-upload")
    background = c2.radio("Transparent pixels on", ["black (like Fashion-MNIST)", "white"], key="recon-background",
                          disabled=shown_in.photos)
    invert = c2.checkbox("Invert the grey levels", key="recon-invert", disabled=shown_in.photos,
                         help="Fashion-MNIST's items are light on black: a dark item on a light background "
                              "looks like the models' data once inverted.")
    if upload is not None:
        try:
            if shown_in.photos:
                data = upload.getvalue()
                if len(data) > MAX_UPLOAD_BYTES:
                    raise DataError(f"the upload is {len(data) / 2**20:.1f} MiB; the limit is "
                                    f"{MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
                photo = read_photo(data, cfg.img_size)
                image, notes, preview = photo.unsqueeze(0), [], photo
            else:
                loaded = read_upload(upload.getvalue(), cfg.img_size, cfg.in_chans, MAX_UPLOAD_BYTES,
                                     (0, 0, 0) if background.startswith("black") else (255, 255, 255))
                image = (255 - loaded.image if invert else loaded.image).unsqueeze(0)
                notes, preview = loaded.notes, loaded.preview
        except DataError as error:
            st.error(f"**{upload.name}** cannot be used: {error}. Nothing of the previous image is shown; "
                     "choose another file.")
            st.stop()
        for note in notes:
            if not (invert and note.startswith("Its background is light")):
                st.warning(note)
        p1, p2 = st.columns(2)
        if not shown_in.photos:
            picture(p1, upscale(preview, 160), caption=f"your upload ({upload.name})")
        picture(p2 if not shown_in.photos else p1, upscale(image[0], SIZE),
                caption=f"what the model sees: {cfg.img_size} x {cfg.img_size}" + (", inverted" if invert else ""))
    if image is None:
        st.info("Upload an image to reconstruct it.")
        st.stop()

n, g, p = cfg.num_patches, cfg.grid, cfg.patch_size
mask = make_mask(1, g, ratio, seed, kind="random" if kind == "hand-edited" else kind)[0]
if kind == "hand-edited":
    state_key, clicks_key = f"recon-edit-{g}", f"recon-clicks-{g}"
    reset = st.button("Start again from the random mask", key="recon-reset")
    if reset or state_key not in st.session_state:
        st.session_state[state_key] = mask.clone()
    st.session_state.setdefault(clicks_key, 0)
    mask = st.session_state[state_key]
    st.caption("Click a patch to hide or show it (click it again to undo). The sidebar's mask ratio and seed "
               "set only the random mask you start from (\"Start again\") and the batch's masks below.")
    # A new key after every click: Plotly keeps a selection until the chart is redrawn, so the same
    # patch clicked twice would otherwise not count as a new click.
    points = patch_picker(image, mask, p, f"recon-click-{g}-{st.session_state[clicks_key]}", 320 if g < 10 else 448)
    if points:
        st.session_state[state_key] = toggle_patches(mask, points[:1])
        st.session_state[clicks_key] += 1
        st.rerun()
    if not 0 < int(mask.sum()) < n:
        st.warning("Hide at least one patch and keep at least one visible.")
        st.stop()

model = pair[0][1].model
name = method_name(cfg.method)
pixels = model.predicts == "pixels"  # ConMIM: "features"
matches = hasattr(model, "feature_pair")  # ConMIM, BootMAE: a feature prediction and its teacher target
shown_image = prepare_images(image, cfg.img_size, cfg.in_chans)[0]
both = len(pair) == 2

if not pixels:
    st.info(f"**{name} predicts features, not pixels.** For each masked patch it predicts the feature that its "
            "momentum teacher (a copy of the encoder that sees the whole image) gives that patch. It never "
            "predicts an image, so this page draws none for it: it shows how well each masked patch's "
            "predicted feature matches the teacher's.")
elif matches:
    st.info(f"**{name} predicts both:** its pixel decoder predicts the masked patches' pixels, its feature "
            "decoder the momentum teacher's feature of each masked patch. Both are shown.")


def match_figure(cosine: np.ndarray, chance: float, title: str) -> go.Figure:
    """A (g, g) map of each masked patch's feature match: the cosine of its predicted feature to the
    teacher's feature of the same patch, from the chance level (the prediction's mean cosine to the
    image's other patches) to 1 (identical), each cell labelled; visible patches grey."""
    fig = go.Figure(go.Heatmap(
        z=cosine, zmin=chance, zmax=1, colorscale="Viridis", xgap=1, ygap=1,
        texttemplate="%{z:.2f}" if cosine.shape[0] <= 8 else "", textfont=dict(size=10),
        hovertemplate="patch row %{y}, column %{x}: cosine %{z:.3f}<extra></extra>",
        colorbar=dict(title=dict(text="cosine to own target", side="right"), thickness=12,
                      tickvals=[chance, 1], ticktext=[f"{chance:.2f} = chance", "1 = identical (better)"])))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x", constrain="domain")
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=280, margin=dict(l=0, r=0, t=30, b=0),
                      plot_bgcolor="#bdbdbd")
    return fig


@st.cache_data(show_spinner="Inpainting the photo…", max_entries=64)
def floors_of(image: np.ndarray, mask: np.ndarray, patch_size: int) -> dict[str, tuple[np.ndarray, float]]:
    """The two floors of one photo (C, H, W) in [0, 1] under ``mask`` (N,): {fill: (the filled photo, its
    masked-patch MSE)}."""
    fills = floor_fills(torch.from_numpy(image)[None], torch.from_numpy(mask)[None], patch_size)
    return {fill: (filled[0].numpy(), float(error[0])) for fill, (filled, error) in fills.items()}


unfair = unfair_pixel_pair([ck.config.model.norm_pix_loss for _, ck in pair]) if pixels else ""
st.subheader("One image")
widths = [1, 1, 1.3]
c = st.columns(widths)  # the columns of the rows below, so the pictures line up
picture(c[0], upscale(shown_image, SIZE), caption="original")
picture(c[1], upscale(paint_patches(shown_image, mask, p), SIZE), caption="masked (what the model is given)")
if pixels:
    results = [(label, ckpt, reconstruct(ckpt, image, mask)) for label, ckpt in pair]
    errors = [rec.patch_error[0].reshape(g, g).numpy() for _, _, rec in results]
    hidden = mask.reshape(g, g).numpy()
    # the scale tops at the largest error the maps draw: the masked patches' (visible positions are not
    # trained and can err far more, which would leave the drawn cells dark)
    top = float(max(e[hidden].max() for e in errors)) or 1.0
    st.caption(f"Mask: {int(mask.sum())} of {n} patches hidden (magenta). Error is the mean squared pixel "
               "error (pixels in 0..1) of the model's prediction in each patch, the same measure for every "
               "pixel-predicting method (their training losses differ: SimMIM's L1 on normalised pixels, MAE's "
               "and BootMAE's MSE). " + ("Both maps share one scale, from 0 to the largest masked-patch error of the "
                                         f"two ({top:.3f})" if both else f"The map's scale runs from 0 to its largest "
                                                                          f"masked-patch error ({top:.3f})")
               + "; the visible patches are grey: they are not scored.")
    for side, (label, ckpt, rec) in enumerate(results):
        given = " (the true patches' mean and std put back)" if ckpt.config.model.norm_pix_loss else ""
        st.markdown(f"**{label}** · masked-patch MSE{given} **{rec.masked_error[0]:.4f}**")
        a, b, d = st.columns(widths)
        norm_pix = " drawn with the true patches' mean and std" if ckpt.config.model.norm_pix_loss else ""
        picture(a, upscale(rec.prediction[0], SIZE), caption=f"prediction at every patch (at the visible ones untrained){norm_pix}")
        picture(b, upscale(rec.reconstruction[0], SIZE), caption=f"reconstruction (visible patches pasted back){norm_pix}")
        shown = np.where(hidden, errors[side], np.nan)
        with d:
            chart(heat(shown, "error per masked patch", zmax=top, colorscale="Magma", height=220 if g < 10 else 260,
                       colorbar="MSE", blank="#bdbdbd"), key=f"recon-err-{side}")
    if shown_in.photos and cfg.img_size < 160:
        floors = floors_of(shown_image.numpy(), mask.numpy(), p)
        st.markdown("**Beside two fills that learn nothing**, on the same photo and mask: every hidden pixel "
                    "given the mean colour of the visible patches, or inpainted from the visible pixels by "
                    "classical biharmonic inpainting (scikit-image's `inpaint_biharmonic`). "
                    "Masked-patch MSE, lower is better:")
        a, b, d = st.columns(widths)
        for col, (fill, (filled, error)) in zip((a, b), floors.items()):
            picture(col, upscale(torch.from_numpy(filled), SIZE), caption=f"{fill} fill · MSE {error:.4f}")
        with d:
            for label, ckpt, rec in results:
                st.markdown("- " + floor_sentence(label, float(rec.masked_error[0]),
                                                  {fill: error for fill, (_, error) in floors.items()}))
    st.caption("The prediction at every patch: the loss of SimMIM, MAE and BootMAE scores the hidden patches only, "
               "so at the visible positions the model was never trained to predict anything; what it shows there "
               "is not an attempt at the image. The reconstruction keeps the visible patches as they are."
               + (" This model was trained with norm_pix_loss: it predicts each patch's pixels after subtracting the "
                  "patch's own mean and dividing by its std, which it cannot know; its predictions are drawn with the "
                  "true patches' mean and std put back (as MAE's own demo does), so they show the model's shapes and "
                  "textures, with the brightness and contrast of the original."
                  if any(ck.config.model.norm_pix_loss for _, ck in pair) else "")
               + (f" So, between these two, {unfair}." if unfair else ""))
else:
    st.caption(f"Mask: {int(mask.sum())} of {n} patches hidden (magenta).")
if matches:
    st.markdown("**Feature match per masked patch.** The number in each masked patch is the cosine similarity "
                "between the model's predicted feature for that patch and the momentum teacher's feature of the "
                "same patch: **higher is better**, 1 = identical. The colour scale starts at the chance level, "
                "the prediction's mean cosine to the teacher's features of the image's *other* patches (what a "
                "prediction that knew nothing about its own patch would score). Grey: visible patches.")
    found = [(label, feature_match(ckpt, image, mask)) for label, ckpt in pair]
    floor = min(float(match.chance[0]) for _, match in found)  # one scale for both maps
    for side, (col, (label, match)) in enumerate(zip(st.columns(2), found)):
        cosine = match.cosine[0]
        with col:
            st.markdown(f"**{label}** · mean cosine **{float(torch.nanmean(cosine)):.3f}** "
                        f"(chance {float(match.chance[0]):.3f})")
            chart(match_figure(cosine.reshape(g, g).numpy(), floor, "feature match per masked patch"),
                  key=f"recon-rank-{side}")


def batch_images():
    return images[:BATCH]


@st.cache_data(show_spinner="Reconstructing a batch of images…", max_entries=64)
def batch_errors(path: str, ratio: float, seed: int, kind: str) -> dict:
    return masked_error_over(load(path), batch_images(), ratio, seed, kind)


@st.cache_data(show_spinner="Matching features over a batch of images…", max_entries=64)
def batch_matches(path: str, ratio: float, seed: int, kind: str) -> dict:
    """Mean feature-match cosine of each image's masked patches, over the batch (the masks of
    batch_errors), and the mean chance level."""
    ckpt = load(path)
    mask = make_mask(BATCH, ckpt.config.model.grid, ratio, seed, kind=kind)
    match = feature_match(ckpt, batch_images(), mask)
    per_image = torch.nanmean(match.cosine, 1).double()
    return {"mean": float(per_image.mean()), "std": float(per_image.std()), "errors": per_image.tolist(),
            "chance": float(match.chance.mean())}


def compare_over_batch(stats: list, measure: str, key: str, higher_is_better: bool = False,
                       no_winner: str = "") -> tuple | None:
    """A bar per checkpoint (mean ± sd of ``measure`` over the images); with two, the paired second −
    first difference with two standard errors and which side is better (or that neither clearly is,
    or ``no_winner``: why none can be named)."""
    fig = go.Figure(go.Bar(x=[s["mean"] for _, s in stats], orientation="h",
                           y=[f"{label}<br>{s['mean']:.4f} ± {s['std']:.4f}" for label, s in stats],
                           error_x=dict(type="data", array=[s["std"] for _, s in stats], color="#444"),
                           marker_color=["#1f77b4", "#d62728"][:len(stats)], width=0.5))
    fig.update_layout(height=160 + 40 * len(stats), xaxis_title=f"{measure} over images: mean ± standard deviation",
                      margin=dict(l=10, r=20, t=10, b=50), yaxis=dict(autorange="reversed", automargin=True))
    chart(fig, key=key)
    if len(stats) < 2:
        return None
    (base_label, base), (mto_label, mto) = stats
    paired = np.array(mto["errors"]) - np.array(base["errors"])  # same images, same masks
    diff, spread = float(paired.mean()), 2 * float(paired.std(ddof=1)) / len(paired) ** 0.5
    if no_winner:
        verdict = no_winner
    elif abs(diff) > spread:
        better = mto_label if (diff > 0) == higher_is_better else base_label
        verdict = f"{'higher' if higher_is_better else 'lower'} (better) mean {measure}: **{better}**"
    else:
        verdict = f"no clear difference in mean {measure}"
    return diff, spread, verdict


what = f"{BATCH} gallery photos" if shown_in.photos else f"{BATCH} test images"
st.subheader(f"Over {what}")
if shown_in.photos and names != shown_in.names:
    st.caption("Among them: " + "; ".join(names) + ".")
batch_kind = "random" if kind == "hand-edited" else kind
# a large model's batch is seconds of CPU per checkpoint: it runs when asked (the page's first render stays quick)
large = cfg.embed_dim * cfg.depth * cfg.num_patches > 128 * 6 * 49 * 20
if large and not st.toggle(f"Compare over the {what}", key="recon-batch-on",
                           help="Each checkpoint reconstructs every image once, with its own mask: a few seconds "
                                "per checkpoint for a ViT-B on a CPU."):
    st.caption(f"Switch it on to measure the checkpoints over {what}, each with its own mask.")
    st.stop()
readings = []
second = "the second − the first" if both else ""
if pixels:
    stats = [(label, batch_errors(str(ckpt.path), ratio, seed, batch_kind)) for label, ckpt in pair]
    result = compare_over_batch(stats, "masked-patch MSE", "recon-batch", no_winner=unfair)
    if result:
        diff, spread, verdict = result
        readings.append(f"{verdict} ({second}, paired by image: {diff:+.4f} ± {spread:.4f}, two standard errors)")
    else:
        readings.append(f"masked-patch MSE {stats[0][1]['mean']:.4f} ± {stats[0][1]['std']:.4f} (sd over images)")
if matches:
    stats = [(label, batch_matches(str(ckpt.path), ratio, seed, batch_kind)) for label, ckpt in pair]
    result = compare_over_batch(stats, "feature-match cosine", "recon-batch-rank", higher_is_better=True)
    if result:
        diff, spread, verdict = result
        readings.append(f"{verdict} ({second}, paired by image: {diff:+.3f} ± {spread:.3f}, two standard "
                        f"errors; higher is better, chance about {stats[0][1]['chance']:.2f})")
    else:
        readings.append(f"feature-match cosine {stats[0][1]['mean']:.3f} (higher is better, chance about "
                        f"{stats[0][1]['chance']:.2f})")
st.markdown(f"Over the {what}, each with its own {batch_kind} mask at ratio {ratio:.2f}: "
            f"{'; '.join(readings)}. A better prediction is not the aim of MTO: it aims at faster learning "
            "of features (the **Curves** page).")
