"""logic/captions.py: a chart's facts as a footer inside the figure, a picture's under it in its PNG."""

import io

import numpy as np
from PIL import Image

from logic.captions import captioned_png, facts_text, with_footer


def test_the_footer_carries_the_facts_and_keeps_the_plot_s_size():
    spec = {"data": [], "layout": {"height": 300, "margin": {"l": 10, "b": 40}}}
    text = facts_text({"page": "MTO app, Learn", "checkpoints": "checkpoints/simmim", "mask": "", "figure": "layer 2"})
    assert text == "MTO app, Learn · checkpoints/simmim · layer 2"
    out = with_footer(spec, text + " " + "x" * 150)
    footer = out["layout"]["annotations"][-1]
    assert "checkpoints/simmim" in footer["text"] and "<br>" in footer["text"]  # long facts wrap
    grow = out["layout"]["margin"]["b"] - 40
    assert grow > 0 and out["layout"]["height"] == 300 + grow and footer["yshift"] == -40
    assert with_footer({"layout": {}}, "") == {"layout": {}}


def test_a_picture_s_png_has_its_caption_written_beneath():
    picture = np.full((40, 40, 3), 200, np.uint8)
    png = Image.open(io.BytesIO(captioned_png(picture, "checkpoints/simmim · mask 75% random, seed 0 · " * 3)))
    pixels = np.asarray(png)
    assert pixels.shape[0] > 40 + 16 * 2 and pixels.shape[1] >= 40
    assert (pixels[:40, :40] == 200).all()  # the picture itself unchanged
    below = pixels[42:]
    assert (below < 100).any() and (below == 255).mean() > 0.5  # dark text on white
    grey = captioned_png(np.linspace(0, 1, 16 * 16).reshape(16, 16), "a")  # floats in 0..1, one channel
    assert Image.open(io.BytesIO(grey)).size[1] > 16
