"""Building a model of any of the four methods from a config; sits above objective.py and the
method modules (simmim.py, mae.py, conmim.py, bootmae.py)."""

from __future__ import annotations

from ..config import ModelConfig, MTOConfig
from .bootmae import BootMAE
from .conmim import ConMIM
from .mae import MAE
from .objective import MIMModel, check_model_fits
from .simmim import SimMIM

MODELS: dict[str, type[MIMModel]] = {"simmim": SimMIM, "mae": MAE, "conmim": ConMIM, "bootmae": BootMAE}


def build_model(model: ModelConfig, mto: MTOConfig) -> MIMModel:
    """The model of ``model.method``, with the MTO parts of ``mto``; ConfigError, before anything
    is allocated, if it cannot fit in memory."""
    check_model_fits(model)
    return MODELS[model.method](model, mto)
