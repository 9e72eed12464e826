"""Charts and pictures as the pages draw them: Plotly figures on a white template without
Streamlit's placeholder colours, heatmaps, whole-number layer axes, images at their own pixel
size, a clickable patch grid."""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict

import numpy as np
import plotly.graph_objects as go
import streamlit as st
import torch

from logic.captions import captioned_png, facts_text, with_footer
from logic.palette import MASK_RGBA


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
    out["layout"].setdefault("modebar", {"orientation": "v", "bgcolor": "rgba(255,255,255,0.6)"})  # see chart()
    return go.Figure(out, _validate=False)


FACTS = "figure-facts"  # this page run's facts every figure carries (checkpoints, mask, input)


def note(name: str, value: str) -> None:
    """A fact of this page run (``note("mask", "mask 60% random, seed 0")``) that every chart and
    picture drawn after it carries into its PNG; page() starts each run afresh."""
    st.session_state.setdefault(FACTS, {})[name] = value


def facts(extra: str = "") -> str:
    """This page run's facts, then ``extra`` (what one figure shows: an image, a layer, a step)."""
    return facts_text({**st.session_state.get(FACTS, {}), "figure": extra})


def chart(fig: go.Figure, key: str, modebar: bool = True, ready: bool = False, **kwargs):
    """st.plotly_chart of ``styled(fig)`` (``ready``: ``fig`` is already a ``styled`` figure), with the
    page's facts as a footer inside it, so that its PNG download keeps them."""
    # one button, the PNG download, standing upright in the corner: a full toolbar lay over the titles
    config = {"displaylogo": False, "displayModeBar": "hover" if modebar else False,
              "modeBarButtons": [["toImage"]],
              "toImageButtonOptions": {"format": "png", "scale": 2, "filename": key}}
    fig = fig if ready else styled(fig)
    if modebar:  # a figure that cannot be downloaded (a patch picker) keeps its size
        fig = _footed(fig, facts())
    return st.plotly_chart(fig, key=key, theme=None, config=config, **kwargs)


_FOOTED: "OrderedDict[tuple[int, str], tuple[weakref.ref, go.Figure]]" = OrderedDict()
_FOOTED_LOCK = threading.Lock()


def _footed(fig: go.Figure, text: str) -> go.Figure:
    """``fig`` with ``text`` as its footer; made once per shared figure and text (the cached figures
    every session draws, the Train page's redrawn every few seconds while it trains)."""
    key = (id(fig), text)
    with _FOOTED_LOCK:
        found = _FOOTED.get(key)
        if found is not None and found[0]() is fig:
            _FOOTED.move_to_end(key)
            return found[1]
    out = go.Figure(with_footer(fig.to_dict(), text), _validate=False)
    with _FOOTED_LOCK:
        _FOOTED[key] = (weakref.ref(fig), out)
        while len(_FOOTED) > 64:
            _FOOTED.popitem(last=False)
    return out


def picture(where, array: np.ndarray, caption: str) -> None:
    """An image at its own pixel size, as PNG: no browser rescaling, no JPEG blur; under it a button
    that downloads it with its caption and the page's facts written beneath."""
    where.image(array, caption=caption, width=int(array.shape[1]), output_format="PNG")
    count = st.session_state["figure-count"] = st.session_state.get("figure-count", 0) + 1
    text = facts(caption)
    # the PNG is made when the button is clicked, not at every page run
    where.download_button("⬇ PNG", lambda: captioned_png(array, text), file_name=f"mto-{count}.png",
                          mime="image/png", key=f"png-{count}", on_click="ignore",
                          help=f"This picture with its facts: {text}")


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
