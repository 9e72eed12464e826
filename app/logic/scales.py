"""Fixed, meaningful y ranges for the per-layer measures: noise on a tiny scale should look like noise,
not structure, so each axis spans what the measure can mean, widened only to show a value outside it."""

from __future__ import annotations

import math

# (low, high) each measure is read on; "r": the mask ratio; None: the data's own (from 0)
_SPANS = {"attn_visible_to_masked": (0.0, "r"), "heterogeneity": (0.0, 1.0), "entropy": (0.0, 1.0),
          "entropy_masked": (0.0, 1.0), "entropy_visible": (0.0, 1.0), "singularity": (0.0, 1.0),
          "silhouette": (-0.2, 1.0), "separability_plane_auc": (0.45, 1.0), "fisher_ratio": (0.0, None)}


def measure_range(measure: str, values, ratio: float) -> list[float] | None:
    """The y range of ``measure`` on a per-layer chart: a_VM from 0 to the mask ratio r (what
    uninformed attention gives), HI, the entropies and S from 0 to 1, the silhouette from -0.2 to 1,
    the plane AUC from chance to 1, the Fisher ratio from 0; each widened to hold ``values``, with a
    small margin so that markers at the edge show. None for a measure without a fixed range."""
    if measure not in _SPANS:
        return None
    low, high = _SPANS[measure]
    high = ratio if high == "r" else high
    found = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if found:
        low = min(low, min(found))
        high = max(high if high is not None else 0.0, max(found))
    high = 1.0 if high is None or high <= low else high
    pad = 0.03 * (high - low)
    return [low - pad, high + pad]
