"""Verdicts in plain words: which mask token is the more distinct, and why MTO's need not be."""

from __future__ import annotations


def _lower(x: float, y: float) -> int:
    """-1 if x is the lower, 1 if y is, 0 if the two are equal as shown (three decimals)."""
    x, y = round(x, 3), round(y, 3)
    return 0 if x == y else (-1 if x < y else 1)


def singularity_verdict(first: tuple[str, float, float], second: tuple[str, float, float]) -> str:
    """Which of two checkpoints' mask tokens is the more distinct from real patch embeddings, in
    plain words and by their labels (neither is assumed to be the MTO one), by each of two measures:
    the mean cosine to the patches (lower: further from the data on average) and the largest (lower:
    further even from its nearest patch). Values equal as shown name no winner. Each: (label, mean, max)."""
    (a, a_mean, a_max), (b, b_mean, b_max) = first, second
    mean, near = _lower(a_mean, b_mean), _lower(a_max, b_max)

    def reading(order: int, x: float, y: float, what: str, measure: str) -> str:
        if order == 0:
            return f"{what} the two are equal ({measure} {x:.3f} each)"
        return f"{what} ({a if order < 0 else b}'s {measure} {min(x, y):.3f} vs {max(x, y):.3f})"

    on_average = reading(mean, a_mean, b_mean, "on average", "mean cosine")
    nearest = reading(near, a_max, b_max, "at its nearest real patch", "largest cosine")
    if mean == near == 0:
        return (f"**Neither token is the more distinct: the two measures are equal** ({on_average}; "
                f"{nearest}).")
    if mean == near or 0 in (mean, near):
        winner = a if mean + near < 0 else b
        how = "by both measures" if mean == near else "by one measure, the other a tie"
        return (f"**{winner}'s mask token is the more distinct {how}**: further from real patches "
                f"{on_average}; {nearest}.")
    return (f"**Neither token is the more distinct by both measures.** The token further from real patches "
            f"{on_average} is {a if mean < 0 else b}'s; the one further {nearest} is {a if near < 0 else b}'s.")


def zero_token_note(labels: list[str], where: str) -> str:
    """What a mask token of zeros means (a freshly initialised model's, as transformers makes one), for
    the rows of the tokens' figure (``where`` 'rows') or the cosine histogram ('cosine')."""
    who = " and ".join(f"**{label}**" for label in labels)
    its = "their" if len(labels) > 1 else "its"
    if where == "rows":
        return (f"{who}: the mask token is all zeros, so {its} framed rows are blank, not a stripe pattern. A zero "
                "token carries nothing: every hidden patch enters as its position embedding alone (added next). "
                "A model whose mask token is still zero was not trained with it (a fresh transformers model starts "
                "so); training moves it away from zero.")
    return (f"{who}: the mask token is all zeros. A vector of length 0 has no direction, so its cosine to every "
            "patch is 0 by convention, not because it sits apart from the data: no histogram is drawn for it and "
            "no token is called the more distinct.")


SINGULARITY_WHY = ("Why MTO's token need not stand further apart here: this histogram looks at the mask token where "
                   "it enters, before any layer. MTO's constraints act inside the layers (L_sing on the tokens' hidden "
                   "states layer by layer, recalibration on the attention), so the singularity MTO aims at is a "
                   "property of the layers' tokens, not of this input vector: the **Tokens** page measures it "
                   "there (the singularity score S per layer).")


def unfair_pixel_pair(norm_pix: list[bool]) -> str:
    """Why two pixel errors cannot name a winner ('' when they can): a norm_pix_loss model's
    prediction is drawn and scored with the true patches' mean and std put back, given to it
    for free, while a plain model has to predict them itself."""
    if len(norm_pix) < 2 or len(set(norm_pix)) == 1:
        return ""
    return ("no winner is named: one model was trained with norm_pix_loss and its prediction is scored with "
            "the true patches' mean and std put back (given to it, not predicted), while the other predicts "
            "the pixels themselves, brightness and contrast included; the two errors measure different tasks")


def floor_sentence(model: str, error: float, floors: dict[str, float]) -> str:
    """Where a model's masked-patch error stands against the fills that learn nothing ({name: error},
    e.g. the mean colour and biharmonic inpainting), in plain words: which it is below, and which not."""
    below = [name for name, floor in floors.items() if error < floor]
    above = [name for name in floors if name not in below]
    ratios = ", ".join(f"{error / floor:.2f} x {name}" for name, floor in floors.items() if floor > 0)
    if not above:
        verdict = f"lower than every fill that learns nothing ({' and '.join(below)})"
    elif not below:
        verdict = (f"not lower than any fill that learns nothing: {' and '.join(above)} fill these patches "
                   "better")
    else:
        verdict = f"lower than {' and '.join(below)}, but {' and '.join(above)} is lower still"
    return f"**{model}**: {error:.4f}, {verdict}" + (f" ({ratios})" if ratios else "") + "."
