"""mto: Masked Token Optimization for masked image modeling (SimMIM, MAE, ConMIM, BootMAE).

Public API (see README.md):

    from mto_core import load_checkpoint, make_mask, reconstruct, token_trace, compute_mto_losses, add_mto

The package by role, one subpackage each (``training``, not ``train``: ``mto_core.train`` is the
training function of the public API); at the top only what a user sets (``config``), calls
(``api``) and runs (``cli``), and ``_torchvision_compat``, the import-time fix that must run
before anything in the package imports timm or transformers (so it belongs to no one role).

Layers, lowest first. A module imports only from its own layer or from the layers listed before
it, and no two modules import each other, directly or in a circle (tests/test_layering.py
checks both, imports inside functions included); the package imports neither app/ nor
benchmarks/:

    config _torchvision_compat
    data
    mto
    models
    interop
    api
    analysis
    eval
    training
    bench
    experiments
    cli __init__
"""

from .api import (FeatureMatch, Reconstruction, compute_mto_losses, feature_match, feature_match_ranks, features,
                  reconstruct, require_pixels, token_trace)
from .config import ConfigError, MethodFacts, RunConfig, preset
from .data.images import DataError, load_dataset, load_fashion_mnist, prepare_images, read_image
from .data.masking import make_mask
from .eval.schedule import evaluate_checkpoint
from .interop.add_mto import MTOHandle, PlugError, add_mto
from .interop.timm_encoder import to_timm
from .models.build import build_model, register_method
from .models.checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_metrics
from .models.objective import MIMModel, MIMOutput
from .mto.plugin import mto_losses
from .mto.records import TokenTrace
from .training.engine import train
from .training.run_folder import TrainingError

__version__ = "0.1.0"

__all__ = [
    "add_mto", "Checkpoint", "CheckpointError", "ConfigError", "DataError", "MIMModel", "MIMOutput", "MethodFacts",
    "MTOHandle", "PlugError", "Reconstruction", "RunConfig", "TokenTrace", "TrainingError", "build_model",
    "FeatureMatch", "compute_mto_losses", "evaluate_checkpoint", "feature_match", "feature_match_ranks", "features", "load_checkpoint", "load_dataset",
    "load_fashion_mnist", "make_mask", "mto_losses", "prepare_images", "preset", "read_image",
    "read_metrics", "reconstruct", "register_method", "require_pixels", "to_timm", "token_trace", "train",
]
