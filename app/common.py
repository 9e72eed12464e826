"""What every page shares: finding and caching checkpoints, images, small drawing helpers.

Computation lives in mto_core; this module only loads, caches and draws.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mto_core import CheckpointError, DataError, load_checkpoint, load_fashion_mnist  # noqa: E402
from mto_core.app_support import MAX_UPLOAD_BYTES, safe_path, scan_checkpoints  # noqa: E402

CHECKPOINTS, RUNS = ROOT / "checkpoints", ROOT / "runs"


def page(title: str, icon: str) -> None:
    st.set_page_config(page_title=f"MTO · {title}", page_icon=icon, layout="wide")
    st.title(title)


@st.cache_resource(show_spinner="Loading checkpoint…")
def load(path: str):
    return load_checkpoint(path)


@st.cache_data(show_spinner=False)
def test_set(n: int = 2000) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    data = load_fashion_mnist("test")
    return data.images[:n], data.labels[:n], data.classes


def available() -> dict[str, str]:
    """{label: path} of the shipped checkpoints and the runs, newest runs last; the sidebar
    lists those that cannot be opened, and why."""
    found, unusable = scan_checkpoints([CHECKPOINTS, RUNS], ROOT)
    for label, why in unusable.items():
        st.sidebar.warning(f"{label} is not usable: {why}")
    return found


def choose_pair(key: str = "pair", methods: tuple[str, ...] = ("simmim", "mae")) -> tuple | None:
    """Sidebar pickers for a baseline and an MTO checkpoint; None (with a message) if unusable."""
    found = available()
    if not found:
        st.error("No checkpoint found under checkpoints/ or runs/. Train one on the Train page or "
                 "with `mto train --out runs/x`.")
        return None
    labels = list(found)
    method = st.sidebar.radio("Method", methods, horizontal=True, key=f"{key}-method")

    def default(name: str) -> int:
        return labels.index(name) if name in labels else 0

    base = st.sidebar.selectbox("Baseline checkpoint", labels, index=default(f"checkpoints/{method}"),
                                key=f"{key}-base-{method}")
    mto = st.sidebar.selectbox("MTO checkpoint", labels, index=default(f"checkpoints/{method}-mto"),
                               key=f"{key}-mto-{method}")
    pair = []
    for label in (base, mto):
        try:
            pair.append((label, load(str(safe_path(found[label], [CHECKPOINTS, RUNS])))))
        except (CheckpointError, ValueError) as error:
            st.error(f"Cannot open {label}: {error}")
            return None
    return tuple(pair)


@st.cache_data(show_spinner="Measuring layers…")
def _measures(path: str, ratio: float):
    import pandas as pd

    from mto_core.analysis import layer_measures
    from mto_core.masking import make_mask

    ckpt = load(path)
    images = test_set()[0][100:132]  # held out from the examples the pages show
    mask = make_mask(32, ckpt.config.model.grid, ratio, 1)
    return pd.DataFrame([m.to_dict() for m in layer_measures(ckpt, images, mask, ratio)])


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


def heat(z: np.ndarray, title: str = "", zmax: float | None = None, colorscale: str = "Magma",
         height: int = 220) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=z, colorscale=colorscale, zmin=0, zmax=zmax, showscale=False))
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    fig.update_layout(title=title, height=height, margin=dict(l=0, r=0, t=30 if title else 0, b=0))
    return fig


__all__ = ["CHECKPOINTS", "RUNS", "MAX_UPLOAD_BYTES", "CheckpointError", "DataError", "available",
           "choose_pair", "heat", "layer_table", "load", "page", "test_set", "to_image", "train_frame"]
