"""What every page shares: finding and caching checkpoints, images, small drawing helpers.

Computation lives in mto_core; this module only loads, caches and draws.
"""

from __future__ import annotations

import re
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
@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=16)
def load(path: str):
    return load_checkpoint(path)


@st.cache_resource(show_spinner=False, max_entries=1)
def test_set() -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """The whole test split (10,000 images with the full dataset, 1,000 with the shipped subset).

    One object shared by every page run and session, never modified: ``st.cache_data`` would hand
    each run a copy (7.5 MiB of images), and the copies outlive the runs until a full garbage
    collection (benchmarks/load.py found about 100 of them, 760 MiB, after 20 sessions)."""
    data = load_fashion_mnist("test")
    return data.images, data.labels, data.classes


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


def choose_pair(key: str = "pair", methods: tuple[str, ...] = tuple(METHOD_NAMES)) -> tuple | None:
    """Sidebar pickers for a baseline and an MTO checkpoint of ONE method; None (with a message) if
    unusable. Each list holds only that method's checkpoints (and unreadable ones, which then say
    why), so a cross-method pair cannot be picked; a pair that still differs is refused."""
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
    mine = [k for k, v in infos.items() if v.method in (method, "")]
    bases = [k for k in mine if not infos[k].mto] + [k for k in mine if infos[k].mto]
    mtos = [k for k in mine if infos[k].mto] + [k for k in mine if not infos[k].mto]

    def default(options: list[str], name: str) -> int:
        return options.index(name) if name in options else 0

    base = st.sidebar.selectbox("Baseline checkpoint", bases,
                                index=default(bases, shared.get(f"base-{method}", f"checkpoints/{method}")),
                                key=f"{key}-base-{method}", format_func=run_label,
                                help="Full path: the label's folder under checkpoints/ or runs/.")
    mto = st.sidebar.selectbox("MTO checkpoint", mtos,
                               index=default(mtos, shared.get(f"mto-{method}", f"checkpoints/{method}-mto")),
                               key=f"{key}-mto-{method}", format_func=run_label)
    shared[f"base-{method}"], shared[f"mto-{method}"] = base, mto
    st.sidebar.caption(f"Baseline: `{base}`  \nMTO: `{mto}`")
    pair = []
    for label in (base, mto):
        try:
            ckpt = load(str(safe_path(found[label], [CHECKPOINTS, RUNS])))
        except (CheckpointError, ValueError) as error:
            st.error(f"Cannot open {label}: {error}")
            return None
        pair.append((f"{short_label(label)} · {describe_config(ckpt.config).label}", ckpt))
    problem = pair_problem(pair[0][1].config, pair[1][1].config)
    if problem:
        st.error(f"These two cannot be compared: {problem}")
        return None
    if not pair[1][1].config.mto.enabled:
        st.warning(f"The checkpoint in the MTO slot ({mto}) has every MTO part off: both sides are baselines.")
    if pair[0][1].config.mto.enabled:
        st.warning(f"The checkpoint in the baseline slot ({base}) was trained with MTO.")
    return tuple(pair)


def _shared() -> dict:
    """The sidebar's choices (method, checkpoints, mask ratio and seed), kept across pages: each
    page's widgets start from them and write them back, so a choice made on one page holds on the
    next (a page's own widgets are forgotten when another page is open)."""
    return st.session_state.setdefault("sidebar-choices", {})


def mask_controls(key: str, kinds: tuple[str, ...] = ()) -> tuple[float, int, str]:
    """The mask ratio, seed and (where a page offers several) type, in the sidebar under the
    checkpoints on every page, shared across pages: (ratio, seed, kind)."""
    shared = _shared()
    ratio = st.sidebar.slider("Mask ratio", 0.1, 0.9, shared.get("ratio", 0.6), 0.05, key=f"{key}-ratio",
                              help="Share of the 49 patches hidden")
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
    images = test_set()[0][100:132]  # held out from the examples the pages show
    mask = make_mask(32, ckpt.config.model.grid, ratio, 1)
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
           "to_image", "train_frame"]


def patch_picker(image: torch.Tensor, mask: torch.Tensor, patch_size: int, key: str, size: int,
                 query: int | None = None) -> list[int]:
    """The image with its masked patches in magenta (and ``query`` framed in cyan), clickable:
    the patch indices of the click, if any."""
    n = mask.numel()
    g = int(round(n ** 0.5))
    p = patch_size
    ys, xs = np.divmod(np.arange(n), g)
    fig = go.Figure(go.Heatmap(z=image[0].float().mean(0).numpy(), colorscale="gray", showscale=False,
                               x0=0.5 / p - 0.5, dx=1 / p, y0=0.5 / p - 0.5, dy=1 / p, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", customdata=np.arange(n),
                             marker=dict(size=34, symbol="square",
                                         color=[MASK_RGBA if m else "rgba(0,0,0,0)" for m in mask.tolist()],
                                         line=dict(width=[4 if i == query else 1 for i in range(n)],
                                                   color=["#00e5ff" if i == query else "rgba(255,255,255,0.4)"
                                                          for i in range(n)])),
                             hovertemplate="patch %{customdata}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    fig.update_layout(height=size, width=size, margin=dict(l=0, r=0, t=0, b=0), clickmode="event+select")
    event = chart(fig, key=key, on_select="rerun", selection_mode="points", width="content", modebar=False)
    return [int(pt["customdata"]) for pt in (event.selection.points if event else []) if "customdata" in pt]
