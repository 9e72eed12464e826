"""The app's colours, each defined once."""

CLASS_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"]  # D3's ten: every one readable on white
TOKEN_COLOURS = {"masked": "#d62728", "visible": "#1f77b4"}
MASK_COLOUR = (255, 0, 200)  # magenta: absent from Fashion-MNIST's greys and from most photos
MASK_RGBA = "rgba(255,0,200,0.75)"  # MASK_COLOUR, see-through


def layer_colours(n: int) -> list[str]:
    """n colours a reader can tell apart, one hue per layer (beyond ten, the hues repeat in order):
    shades of one scale could not be told apart."""
    return [CLASS_COLOURS[i % len(CLASS_COLOURS)] for i in range(n)]
