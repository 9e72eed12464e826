"""Figures to take away: each chart and picture carries its caption's facts (which checkpoints,
mask, input, step) into the PNG a visitor downloads. A chart's facts are a footer line inside the
figure, so Plotly's own PNG button keeps them; a picture is redrawn with its caption beneath."""

from __future__ import annotations

import io
import textwrap

import numpy as np

FOOTER_PX = 15  # height of one footer line, in the figure's pixels
WIDTH = 120  # characters per footer line before it wraps


def facts_text(facts: dict[str, str]) -> str:
    """'Reconstruct · simmim vs simmim-mto · mask 60% random, seed 0': the non-empty facts in order."""
    return " · ".join(v for v in facts.values() if v)


def with_footer(spec: dict, text: str) -> dict:
    """A figure's dict (``fig.to_dict()``) with ``text`` as a small grey footer under its plot: the
    bottom margin and the height grow by its lines, so the plot keeps its size."""
    if not text:
        return spec
    lines = textwrap.wrap(text, WIDTH) or [text]
    layout = spec.setdefault("layout", {})
    margin = dict(layout.get("margin") or {})
    bottom = margin.get("b", 80)
    grow = FOOTER_PX * len(lines) + 6
    margin["b"] = bottom + grow
    layout["margin"] = margin
    layout["height"] = (layout.get("height") or 450) + grow
    layout["annotations"] = [*layout.get("annotations", ()), {
        "text": "<br>".join(lines), "showarrow": False, "xref": "paper", "yref": "paper", "x": 0, "y": 0,
        "xanchor": "left", "yanchor": "top", "yshift": -bottom, "align": "left", "name": "facts",
        "font": {"size": 10, "color": "#555555"}}]
    return spec


def captioned_png(array: np.ndarray, caption: str, width: int = 56) -> bytes:
    """The picture ``array`` (H, W[, 3], uint8 or 0..1 floats) as PNG bytes, with ``caption`` written
    beneath it in black on white, wrapped to the picture's width (at least ``width`` characters)."""
    from PIL import Image, ImageDraw, ImageFont

    pixels = np.asarray(array)
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    picture = Image.fromarray(pixels).convert("RGB")
    font = ImageFont.load_default(size=12)
    lines = textwrap.wrap(caption, max(width, picture.width // 7)) or [""]
    line = 16
    out = Image.new("RGB", (max(picture.width, 7 * max(len(s) for s in lines) + 8),
                            picture.height + line * len(lines) + 8), "white")
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, text in enumerate(lines):
        draw.text((4, picture.height + 4 + i * line), text, fill="black", font=font)
    buffer = io.BytesIO()
    out.save(buffer, format="PNG")
    return buffer.getvalue()
