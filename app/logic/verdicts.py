"""Verdicts in plain words: which mask token is the more distinct, and why MTO's need not be."""

from __future__ import annotations


def singularity_verdict(base: tuple[str, float, float], mto: tuple[str, float, float]) -> str:
    """Which mask token is the more distinct from real patch embeddings, in plain words, by each of
    two measures: the mean cosine to the patches (lower: further from the data on average) and the
    largest (lower: further even from its nearest patch). ``base`` and ``mto``: (label, mean, max)."""
    (b_label, b_mean, b_max), (m_label, m_mean, m_max) = base, mto
    mean_mto, max_mto = m_mean < b_mean, m_max < b_max
    on_average = (f"on average ({'MTO' if mean_mto else 'the baseline'}'s mean cosine {min(m_mean, b_mean):.3f} "
                  f"vs {max(m_mean, b_mean):.3f})")
    nearest = (f"at its nearest real patch ({'MTO' if max_mto else 'the baseline'}'s largest cosine "
               f"{min(m_max, b_max):.3f} vs {max(m_max, b_max):.3f})")
    if mean_mto and max_mto:
        return (f"**{m_label}'s mask token is the more distinct by both measures**: further from real patches "
                f"{on_average} and {nearest}.")
    if not mean_mto and not max_mto:
        return (f"**Here MTO's mask token is not the more distinct one: {b_label}'s is, by both measures**, "
                f"{on_average} and {nearest}.")
    return (f"**Neither token is the more distinct by both measures.** The token further from real patches "
            f"{on_average} is {m_label if mean_mto else b_label}'s; the one further {nearest} is "
            f"{m_label if max_mto else b_label}'s. So MTO's token is not plainly more distinct here.")


SINGULARITY_WHY = ("Why MTO's token need not stand further apart here: this histogram looks at the mask token where "
                   "it enters, before any layer. MTO's constraints act inside the layers (L_sing on the tokens' hidden "
                   "states layer by layer, recalibration on the attention), so the singularity MTO aims at is a "
                   "property of the layers' tokens, not of this input vector: the **Tokens** page measures it "
                   "there (the singularity score S per layer).")
