"""logic/palette.py: colours a reader can tell apart."""



def test_emergence_layers_have_colours_that_can_be_told_apart():
    from logic.palette import layer_colours

    colours = layer_colours(7)
    assert len(set(colours)) == 7
    rgb = [tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in colours]
    closest = min(sum((a - b) ** 2 for a, b in zip(x, y)) ** 0.5 for i, x in enumerate(rgb) for y in rgb[i + 1:])
    assert closest > 60, colours
