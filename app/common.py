"""What every page shares: finding and caching checkpoints, images, small drawing helpers.

Computation lives in mto_core; this module only loads, caches and draws.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from app_support import (MAX_UPLOAD_BYTES, METHOD_NAMES, describe_config, describe_run, pair_problem, safe_path,
                         scan_checkpoints, short_label)
from mto_core import CheckpointError, DataError, load_checkpoint, load_fashion_mnist

ROOT = Path(__file__).resolve().parent.parent

CHECKPOINTS, RUNS = ROOT / "checkpoints", ROOT / "runs"
SPEC = ROOT / "docs" / "mto-spec.md"
CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"]  # D3's ten: every one readable on white
TOKEN_COLOURS = {"masked": "#d62728", "visible": "#1f77b4"}
MASK_RGBA = "rgba(255,0,200,0.75)"  # the mask colour of app_support.MASK_COLOUR, see-through


def page(title: str, icon: str) -> None:
    st.set_page_config(page_title=f"MTO · {title}", page_icon=icon, layout="wide")
    st.title(title)


# Every cache has a size limit: a server that many visitors share keeps its memory bounded
# (benchmarks/load.py).
def _memory_bytes() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


# The checkpoints every session shares, the least recently used dropped first once their weights pass
# this bound: a count would not do, when one model may be a tiny 3 MB one or a ViT-L of 1.2 GB.
MODEL_CACHE_BYTES = min(8 * 2**30, int(0.4 * _memory_bytes()))
_MODELS: "OrderedDict[str, object]" = OrderedDict()
_MODELS_LOCK = threading.Lock()


def _weights_bytes(checkpoint) -> int:
    return sum(t.numel() * t.element_size() for t in checkpoint.model.state_dict().values())


_LOADING: dict[str, threading.Lock] = {}  # one lock per checkpoint being loaded


def load(path: str):
    """The checkpoint at ``path`` (a checkpoint folder or a run's, whose newest step is read), loaded
    once for every session and kept while the cache's weights stay within MODEL_CACHE_BYTES (the two
    most recent always: a pair is never loaded in turn); the run it belongs to counts as open, so
    the pruning of app runs leaves it alone (app/jobs.py). Other sessions do not wait while one loads."""
    from jobs import opened
    from mto_core.models.checkpoint import resolve

    opened(path)
    try:
        key = str(resolve(path).resolve())  # a run folder and its newest step are one entry
    except CheckpointError:  # removed since a page showed it: the copy in memory still serves that page
        where = str(Path(path).resolve())
        with _MODELS_LOCK:
            kept = [k for k in _MODELS if k == where or k.startswith(where + "/")]
            if kept:
                return _MODELS[kept[-1]]
        raise
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        lock = _LOADING.setdefault(key, threading.Lock())
    with lock:
        with _MODELS_LOCK:
            if key in _MODELS:
                return _MODELS[key]
        with st.spinner("Loading checkpoint…"):
            checkpoint = load_checkpoint(key)
        with _MODELS_LOCK:
            _MODELS[key] = checkpoint
            while len(_MODELS) > 2 and sum(_weights_bytes(c) for c in _MODELS.values()) > MODEL_CACHE_BYTES:
                _MODELS.popitem(last=False)
            _LOADING.pop(key, None)
        return checkpoint


@st.cache_resource(show_spinner=False, max_entries=1)
def test_set() -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The whole test split (10,000 images with the full dataset, 1,000 with the shipped subset).

    One object shared by every page run and session, never modified: ``st.cache_data`` would hand
    each run a copy (7.5 MiB of images), and the copies outlive the runs until a full garbage
    collection (benchmarks/load.py found about 100 of them, 760 MiB, after 20 sessions)."""
    data = load_fashion_mnist("test")
    return data.images, data.labels, data.classes


@dataclass(frozen=True)
class Inputs:
    """What a model is shown: Fashion-MNIST's test split for the grey models, the bundled photos for
    RGB ones (a checkpoint's own config decides). images: (N, C, H, W) uint8, at the model's size for
    photos; names: each image's class or photo name; held_out: the images the per-layer measures use
    (not among those the pages show first); seen: what the model sees, in words."""

    kind: str  # "fashion-mnist" or "photos"
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    names: tuple[str, ...]
    held_out: torch.Tensor
    seen: str

    @property
    def photos(self) -> bool:
        return self.kind == "photos"


PHOTO_COUNT = 16  # the gallery: the colour photos of scikit-image's package, then grey ones


@st.cache_resource(show_spinner="Preparing the photos…", max_entries=4)
def _photos(size: int) -> Inputs:
    from mto_core.data.photos import GALLERY, bundled_photos

    names = list(GALLERY)[:PHOTO_COUNT]
    photos = bundled_photos(size, names)
    return Inputs("photos", photos.images, torch.arange(len(names)), tuple(names), tuple(names),
                  photos.images[:4],
                  f"photos that ship with scikit-image, each resized on its short side to {size} and centre-cropped "
                  f"to {size} x {size}, normalised per channel by the model (ImageNet's mean and std for published "
                  "models)")


@st.cache_resource(show_spinner="Resizing the test images…", max_entries=2)
def _fashion_at(size: int) -> Inputs:
    """The first 1,000 test images at ``size`` (a grey model of another size than 28)."""
    from mto_core.data.images import prepare_images

    images, labels, classes = test_set()
    resized = (prepare_images(images[:1000], size, 1) * 255).round().to(torch.uint8)
    return Inputs("fashion-mnist", resized, labels[:1000], classes, tuple(classes[int(i)] for i in labels[:1000]),
                  resized[100:132], f"Fashion-MNIST's grey test images (the first 1,000), resized to {size} x {size}")


def inputs_for(model) -> Inputs:
    """The images for a model config, at its size: photos for RGB models, Fashion-MNIST for grey ones."""
    if model.in_chans == 3:
        return _photos(model.img_size)
    if model.img_size != 28:
        return _fashion_at(model.img_size)
    images, labels, classes = test_set()
    return Inputs("fashion-mnist", images, labels, classes, tuple(classes[int(i)] for i in labels), images[100:132],
                  "Fashion-MNIST's 28 x 28 grey test images"
                  + (f", resized to {model.img_size} x {model.img_size}" if model.img_size != 28 else ""))


@st.cache_data(show_spinner=False, ttl=3, max_entries=4)
def _scan(stamp: tuple) -> tuple[dict[str, str], dict[str, str]]:
    """One scan serves every call of a page run. ``stamp`` (the folders' modification times) makes
    a new or removed folder show at once; weights written later into a folder show within 3 s."""
    return scan_checkpoints([CHECKPOINTS, RUNS], ROOT)


def _stamp() -> tuple:
    return tuple(root.stat().st_mtime_ns if root.is_dir() else None for root in (CHECKPOINTS, RUNS))


def available() -> dict[str, str]:
    """{label: path} of the shipped checkpoints and the runs, newest runs last; the sidebar
    lists those that cannot be opened, and why."""
    found, unusable = _scan(_stamp())
    for label, why in unusable.items():
        st.sidebar.warning(f"{label} is not usable: {why}")
    return found


@st.cache_data(show_spinner=False, ttl=30, max_entries=128)
def _info(path: str):
    return describe_run(path)


def run_label(label: str) -> str:
    """'simmim-mto · SimMIM + MTO': the folder's short name and what its own config says it is."""
    return f"{short_label(label)} · {_info(available()[label]).label}" if label in available() else label


ALONE = "— none: this checkpoint alone —"


def choose_pair(key: str = "pair", methods: tuple[str, ...] = tuple(METHOD_NAMES)) -> tuple | None:
    """Sidebar pickers for one checkpoint, and another of the same method and input shape to compare
    it with, or none (the page then shows the one alone): a tuple of one or two (label, checkpoint);
    None (with a message) if unusable. Each list holds only that method's checkpoints (and unreadable
    ones, which then say why), so a cross-method pair cannot be picked; a pair that still differs
    (another input shape) is refused in one line. The lists put the shipped checkpoints, the runs of
    ``mto train`` and this visitor's own Train-page runs first (:func:`ordered`)."""
    found = available()
    if not found:
        st.error("No checkpoint found under checkpoints/ or runs/. Train one on the Train page or "
                 "with `mto train --out runs/x`.")
        return None
    shared = _shared()
    method = st.sidebar.radio("Method", methods, horizontal=True, key=f"{key}-method",
                              index=methods.index(shared["method"]) if shared.get("method") in methods else 0,
                              format_func=lambda m: METHOD_NAMES.get(m, m),
                              help="Both checkpoints are of this method: comparing two methods "
                                   "would compare two objectives, not the effect of MTO.")
    shared["method"] = method
    infos = {label: _info(path) for label, path in found.items()}
    mine = ordered([k for k, v in infos.items() if v.method in (method, "")])
    if not mine:
        st.sidebar.info(f"No {METHOD_NAMES.get(method, method)} checkpoint here yet.")
        st.info(f"No {METHOD_NAMES.get(method, method)} checkpoint is under checkpoints/ or runs/: pick another "
                "method, train one, or import a published one (`mto import`).")
        return None
    bases = [k for k in mine if not infos[k].mto] + [k for k in mine if infos[k].mto]
    others = [k for k in mine if infos[k].mto] + [k for k in mine if not infos[k].mto]

    def default(options: list[str], name: str) -> int:
        return options.index(name) if name in options else 0

    base = st.sidebar.selectbox("Checkpoint", bases,
                                index=default(bases, shared.get(f"base-{method}", f"checkpoints/{method}")),
                                key=f"{key}-base-{method}", format_func=run_label,
                                help="Full path: the label's folder under checkpoints/ or runs/.")
    options = [*others, ALONE]
    other = st.sidebar.selectbox("Compare with", options,
                                 index=default(options, shared.get(f"mto-{method}", f"checkpoints/{method}-mto")),
                                 key=f"{key}-mto-{method}", format_func=lambda k: k if k == ALONE else run_label(k),
                                 help="Another checkpoint of this method and input shape (its MTO partner, a larger "
                                      "model, a published one), or none: every page shows one checkpoint alone too.")
    shared[f"base-{method}"], shared[f"mto-{method}"] = base, other
    chosen = [base] if other in (ALONE, base) else [base, other]
    st.sidebar.caption("  \n".join(f"`{label}`" for label in chosen))
    pair = []
    for label in chosen:
        try:
            ckpt = load(str(safe_path(found[label], [CHECKPOINTS, RUNS])))
        except (CheckpointError, ValueError, OSError) as error:
            st.error(f"Cannot open {label}: {str(error).splitlines()[0]}")
            return None
        pair.append((f"{short_label(label)} · {describe_config(ckpt.config).label}", ckpt))
    if len(pair) == 2:
        problem = pair_problem(pair[0][1].config, pair[1][1].config)
        if problem:
            st.error(f"These two cannot be compared: {problem}")
            return None
        if not any(c.config.mto.enabled for _, c in pair):
            st.caption("Neither checkpoint was trained with MTO: this compares two baselines.")
        elif pair[0][1].config.mto.enabled and pair[1][1].config.mto.enabled:
            st.caption("Both checkpoints were trained with MTO.")
    return tuple(pair)


def ordered(labels: list[str]) -> list[str]:
    """Picker order: the shipped checkpoints, then the runs of ``mto train`` (and imported models),
    then this visitor's own Train-page runs, newest first; other visitors' app runs last, or not at
    all where the server hides them (``app/serve.py --hide-others-runs``)."""
    from jobs import _read_index, hide_others

    index, me = _read_index(RUNS), visitor()
    shipped = [k for k in labels if k.startswith("checkpoints/")]
    app = [k for k in labels if k.startswith("runs/") and Path(k).name in index]
    cli = [k for k in labels if k not in shipped and k not in app]

    def newest_first(names: list[str]) -> list[str]:
        return sorted(names, key=lambda k: float(index[Path(k).name].get("started", 0)), reverse=True)

    own = newest_first([k for k in app if index[Path(k).name].get("visitor") == me])
    theirs = newest_first([k for k in app if k not in own])
    return shipped + cli + own + ([] if hide_others() else theirs)


def visitor() -> str:
    """Who this browser is, for the order of the pickers: an id kept in the session (page switches
    keep it) and in the page's address (a reload keeps it too); '' outside a page run."""
    import secrets

    try:
        found = st.session_state.get("visitor") or st.query_params.get("visitor") or secrets.token_hex(6)
        st.session_state["visitor"] = found
        if st.query_params.get("visitor") != found:
            st.query_params["visitor"] = found
        return str(found)
    except Exception:  # outside a script run there is no page to ask
        return ""


def _shared() -> dict:
    """The sidebar's choices (method, checkpoints, mask ratio and seed), kept across pages: each
    page's widgets start from them and write them back, so a choice made on one page holds on the
    next (a page's own widgets are forgotten when another page is open)."""
    return st.session_state.setdefault("sidebar-choices", {})


def mask_controls(key: str, kinds: tuple[str, ...] = (), patches: int = 49) -> tuple[float, int, str]:
    """The mask ratio, seed and (where a page offers several) type, in the sidebar under the
    checkpoints, shared across the pages that have them: (ratio, seed, kind)."""
    shared = _shared()
    ratio = st.sidebar.slider("Mask ratio", 0.1, 0.9, shared.get("ratio", 0.6), 0.05, key=f"{key}-ratio",
                              help=f"Share of the {patches} patches hidden")
    seed = st.sidebar.number_input("Mask seed", 0, 10_000, shared.get("seed", 0), key=f"{key}-seed")
    shared["ratio"], shared["seed"] = float(ratio), int(seed)
    kind = st.sidebar.radio("Mask type", kinds, key=f"{key}-kind") if kinds else "random"
    return float(ratio), int(seed), kind


_PLACEHOLDER = re.compile(r"^#0000([0-3][0-9]|40)$", re.IGNORECASE)


def _no_placeholders(value):
    """Streamlit's browser code replaces the colours #000001..#000040 (its theme's placeholders)
    in every chart, themed or not; Magma and Inferno start at #000004, which became pale pink or
    lavender at zero. Such colours are moved to the next shade, #010105."""
    if isinstance(value, str) and _PLACEHOLDER.match(value):
        return "#010105"
    if isinstance(value, dict):
        return {k: _no_placeholders(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_no_placeholders(v) for v in value]
    return value


_WHITE: dict | None = None  # Plotly's white template as a plain dict, made once


def styled(fig: go.Figure) -> go.Figure:
    """``fig`` with Plotly's own white template (Streamlit's theme, and the template it makes
    Plotly's default, rewrite colour scales and palettes) and no placeholder colours. The figure
    ``fig`` already passed Plotly's validation while it was built: its copy is made without it
    (``_validate=False``; validating a template and every trace again took most of a page run's
    time, docs/performance.md, "A classroom on one server")."""
    global _WHITE
    if _WHITE is None:
        import plotly.io as pio

        _WHITE = _no_placeholders(pio.templates["plotly_white"].to_plotly_json())
    spec = fig.to_dict()
    spec["layout"].pop("template", None)
    out = {key: _no_placeholders(spec[key]) for key in ("data", "layout", "frames") if key in spec}
    out["layout"]["template"] = _WHITE
    return go.Figure(out, _validate=False)


def chart(fig: go.Figure, key: str, modebar: bool = True, ready: bool = False, **kwargs):
    """st.plotly_chart of ``styled(fig)`` (``ready``: ``fig`` is already a ``styled`` figure)."""
    config = {"displaylogo": False, "displayModeBar": "hover" if modebar else False}
    return st.plotly_chart(fig if ready else styled(fig), key=key, theme=None, config=config, **kwargs)


def picture(where, array: np.ndarray, caption: str) -> None:
    """An image at its own pixel size, as PNG: no browser rescaling, no JPEG blur."""
    where.image(array, caption=caption, width=int(array.shape[1]), output_format="PNG")


def spec_expander() -> None:
    """The project's MTO specification (docs/mto-spec.md), readable inside the app."""
    with st.expander("The project's MTO specification (docs/mto-spec.md): what is the paper's, what is ours"):
        # its headings two levels down: inside the expander they sit under the page's own
        text = SPEC.read_text() if SPEC.exists() else "docs/mto-spec.md is missing from this copy."
        st.markdown(re.sub(r"^(#{1,4}) ", lambda m: "#" * min(6, len(m[1]) + 2) + " ", text, flags=re.MULTILINE))


@st.cache_data(show_spinner="Measuring layers…", max_entries=64)
def _measures(path: str, ratio: float):
    import pandas as pd

    from mto_core.analysis.measures import layer_measures
    from mto_core.data.masking import make_mask

    ckpt = load(path)
    images = inputs_for(ckpt.config.model).held_out  # held out from the examples the pages show first
    mask = make_mask(len(images), ckpt.config.model.grid, ratio, 1)
    return pd.DataFrame([m.to_dict() for m in layer_measures(ckpt, images, mask, ratio, full_auc=False)])


def layer_table(pair, ratio: float):
    """Per-layer measures of both checkpoints, one frame with a 'checkpoint' column."""
    import pandas as pd

    frames = []
    for label, ckpt in pair:
        frame = _measures(str(ckpt.path), ratio).copy()
        frame["checkpoint"] = label
        frames.append(frame)
    return pd.concat(frames)


def train_frame(rows_by_run: dict):
    """One frame of the 'train' metrics rows of several runs, with a 'run' column; None if empty."""
    import pandas as pd

    frames = [pd.DataFrame(train).assign(run=name) for name, rows in rows_by_run.items()
              if (train := [r for r in list(rows) if r.get("kind") == "train"])]
    return pd.concat(frames) if frames else None


def to_image(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W[, 3]) uint8 for st.image."""
    arr = (x.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def heat(z: np.ndarray, title: str = "", zmax: float | None = None, colorscale: str = "Viridis",
         height: int = 300, colorbar: str | None = None, blank: str = "white") -> go.Figure:
    """A square heatmap (row 0 at the top) on a fixed scale 0..zmax, with a colour bar if titled;
    NaN cells show the background ``blank``."""
    fig = go.Figure(go.Heatmap(z=z, colorscale=colorscale, zmin=0, zmax=zmax, showscale=colorbar is not None,
                               colorbar=dict(title=dict(text=colorbar or "", side="right"), thickness=12)))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x", constrain="domain")
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height,
                      margin=dict(l=0, r=0, t=30 if title else 0, b=0), plot_bgcolor=blank)
    fig.update_xaxes(title_standoff=4)
    return fig


def integer_layers(fig: go.Figure, title: str = "layer") -> go.Figure:
    """Whole-number ticks on the x axis (layers, epochs), at most about 12 of them."""
    xs = [float(x) for trace in fig.data if getattr(trace, "x", None) is not None for x in trace.x]
    span = (max(xs) - min(xs)) if xs else 1
    fig.update_xaxes(tickmode="linear", tick0=0, dtick=max(1, int(np.ceil(span / 12))), title=title)
    return fig


__all__ = ["CHECKPOINTS", "CLASS_COLOURS", "MASK_RGBA", "MAX_UPLOAD_BYTES", "RUNS", "SPEC", "TOKEN_COLOURS",
           "CheckpointError", "DataError", "available", "chart", "choose_pair", "heat", "integer_layers",
           "layer_table", "load", "mask_controls", "page", "picture", "run_label", "spec_expander", "test_set",
           "to_image", "train_frame", "Inputs", "inputs_for", "visitor", "ordered", "ALONE"]


def patch_picker(image: torch.Tensor, mask: torch.Tensor, patch_size: int, key: str, size: int,
                 query: int | None = None) -> list[int]:
    """The image with its masked patches in magenta (and ``query`` framed in cyan), clickable:
    the patch indices of the click, if any."""
    n = mask.numel()
    g = int(round(n ** 0.5))
    p = patch_size
    ys, xs = np.divmod(np.arange(n), g)
    pixels = image[0].float()
    pixels = pixels / 255 if image.dtype == torch.uint8 else pixels
    if pixels.shape[0] == 3:  # a photo in colour; each pixel's centre at (column, row) / patch size
        fig = go.Figure(go.Image(z=(pixels.permute(1, 2, 0).numpy() * 255).round(), x0=0.5 / p - 0.5, dx=1 / p,
                                 y0=0.5 / p - 0.5, dy=1 / p, hoverinfo="skip"))
    else:
        fig = go.Figure(go.Heatmap(z=pixels.mean(0).numpy(), colorscale="gray", showscale=False,
                                   x0=0.5 / p - 0.5, dx=1 / p, y0=0.5 / p - 0.5, dy=1 / p, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", customdata=np.arange(n),
                             marker=dict(size=max(6, int(0.8 * size / g)), symbol="square",
                                         color=[MASK_RGBA if m else "rgba(0,0,0,0)" for m in mask.tolist()],
                                         line=dict(width=[4 if i == query else (1 if g < 10 else 0.5) for i in range(n)],
                                                   color=["#00e5ff" if i == query else "rgba(255,255,255,0.4)"
                                                          for i in range(n)])),
                             hovertemplate="patch %{customdata}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    fig.update_layout(height=size, width=size, margin=dict(l=0, r=0, t=0, b=0), clickmode="event+select")
    event = chart(fig, key=key, on_select="rerun", selection_mode="points", width="content", modebar=False)
    return [int(pt["customdata"]) for pt in (event.selection.points if event else []) if "customdata" in pt]
