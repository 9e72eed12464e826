"""Building a SimMIM or MAE model from a config; sits above objective.py, simmim.py and mae.py."""

from __future__ import annotations

from .config import ModelConfig, MTOConfig
from .mae import MAE
from .objective import MIMModel, check_model_fits
from .simmim import SimMIM


def build_model(model: ModelConfig, mto: MTOConfig) -> MIMModel:
    """A SimMIM or MAE model for ``model.method``, with the MTO parts of ``mto``; ConfigError,
    before anything is allocated, if it cannot fit in memory."""
    check_model_fits(model)
    return SimMIM(model, mto) if model.method == "simmim" else MAE(model, mto)
