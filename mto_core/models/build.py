"""Building a model of any registered method from a config; registers the four built in (their
modules simmim.py, mae.py, conmim.py, bootmae.py)."""

from __future__ import annotations

from ..config import ModelConfig, MTOConfig
from .bootmae import BootMAE
from .conmim import ConMIM
from .mae import MAE
from .objective import MODELS, MIMModel, check_model_fits, register_method
from .simmim import SimMIM

for _method in (SimMIM, ConMIM, MAE, BootMAE):  # the order of the app's pickers
    register_method(_method)


def build_model(model: ModelConfig, mto: MTOConfig) -> MIMModel:
    """The model of ``model.method``, with the MTO parts of ``mto``; ConfigError, before anything
    is allocated, if it cannot fit in memory."""
    check_model_fits(model)
    return MODELS[model.method](model, mto)


__all__ = ["MODELS", "build_model", "register_method"]
