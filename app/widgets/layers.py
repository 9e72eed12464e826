"""Per-layer measures of the chosen checkpoints, cached per checkpoint and mask ratio."""

from __future__ import annotations

import streamlit as st

from .models import inputs_for, load


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
