"""A new run that starts from another checkpoint's weights (``mto train --init``): one trained here,
a shipped one, or a published model imported with ``mto import``.

Both configs must build the same network, the same method and shape; the MTO parts, the mask,
the data and the optimisation may differ (continuing a published MAE with MTO is what this is
for). The run's ``train.init`` records the checkpoint its weights came from.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import ConfigError, RunConfig
from ..models.checkpoint import WEIGHTS, CheckpointError, load_weights, read_config, resolve

# The fields of the model section that decide the network's parameters.
SHAPE = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio", "decoder_dim",
         "decoder_depth", "decoder_heads")


def init_source(config: RunConfig) -> tuple[Path, RunConfig]:
    """The checkpoint folder of ``train.init`` and its config; ConfigError in one line when it
    does not build this run's network (another method or shape)."""
    folder = resolve(config.train.init)
    source = read_config(folder)
    have, want = source.model, config.model
    if have.method != want.method:
        raise ConfigError(f"--init {config.train.init} holds a {have.method} model; this run trains "
                          f"{want.method}. Start from a {want.method} checkpoint, or train {have.method} "
                          f"(--preset {have.method}-mto)")
    differ = [f"model.{k} {getattr(have, k)} there, {getattr(want, k)} here" for k in SHAPE
              if getattr(have, k) != getattr(want, k)]
    if differ:
        raise ConfigError(f"--init {config.train.init} has another shape than this run ({'; '.join(differ)}); "
                          "leave the model's shape as the checkpoint's (mto train --init copies it unless "
                          "--config or --set changes it)")
    return folder, source


def load_init(model: torch.nn.Module, config: RunConfig) -> None:
    """Load ``train.init``'s weights into ``model`` (checked by :func:`init_source`)."""
    folder, _ = init_source(config)
    try:
        load_weights(model, folder / WEIGHTS)
    except CheckpointError as error:
        raise ConfigError(f"--init {config.train.init}: {error}") from None
