"""mto: Masked Token Optimization for masked image modeling (SimMIM, MAE, ConMIM, BootMAE).

Public API (see README.md):

    from mto_core import load_checkpoint, make_mask, reconstruct, token_trace, compute_mto_losses
"""

from .api import (Reconstruction, compute_mto_losses, feature_match_ranks, features, reconstruct, require_pixels,
                  token_trace)
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_metrics
from .config import ConfigError, RunConfig, preset
from .data import DataError, load_dataset, load_fashion_mnist, prepare_images, read_image
from .engine import TrainingError, train
from .evaluate import evaluate_checkpoint
from .masking import make_mask
from .models import build_model
from .mto import mto_losses
from .objective import MIMModel, MIMOutput
from .vit import TokenTrace, to_timm

__version__ = "0.1.0"

__all__ = [
    "Checkpoint", "CheckpointError", "ConfigError", "DataError", "MIMModel", "MIMOutput",
    "Reconstruction", "RunConfig", "TokenTrace", "TrainingError", "build_model",
    "compute_mto_losses", "evaluate_checkpoint", "feature_match_ranks", "features", "load_checkpoint", "load_dataset",
    "load_fashion_mnist", "make_mask", "mto_losses", "prepare_images", "preset", "read_image",
    "read_metrics", "reconstruct", "require_pixels", "to_timm", "token_trace", "train",
]
