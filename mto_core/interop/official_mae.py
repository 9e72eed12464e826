"""The checkpoints released with facebookresearch/mae: ``{'model': state_dict}`` in MAE's own
names, read with ``torch.load(weights_only=True)`` and nothing else.

MAE's names are mto's MAE names without ``encoder.`` on the encoder's tensors (``cls_token``,
``pos_embed``, ``patch_embed.proj``, ``blocks.N.*``, ``norm``), because both build on timm's
blocks; the decoder's (``mask_token``, ``decoder_embed``, ``decoder_pos_embed``, ``decoder_blocks.N``,
``decoder_norm``, ``decoder_pred``) are the same. The files carry no config: the shape comes from
the tensors, the head counts from MAE's models (``mae_vit_{base,large,huge}_patch{16,14}_dec512d8b``),
``norm_pix_loss`` from the file's name (``mae_visualize_*`` were trained on pixels,
``mae_pretrain_*_full`` with normalised pixels); ``--set`` overrides any of them.
"""

from __future__ import annotations

import re
import struct
import warnings
from _pickle import UnpicklingError  # the error weights_only raises: nothing is unpickled here
from pathlib import Path

import torch

from ..config import ConfigError, RunConfig, preset, validate
from ..models.objective import check_model_fits
from .hf import IMAGENET_MEAN, IMAGENET_STD, InteropError, set_overrides

# MAE's encoders: width -> heads (ViT-B 768/12, ViT-L 1024/16, ViT-H 1280/16); its decoder: 512 wide, 16 heads
HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}
DECODER_HEADS = {512: 16}


def read_state(file: Path) -> dict[str, torch.Tensor]:
    """The state dict inside an official file; InteropError, in one line, for a file that holds
    pickled objects beyond tensors (weights_only refuses it and is never retried without), or that
    is no checkpoint at all."""
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol is not the user's concern
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(file, map_location="cpu", weights_only=True)
    except UnpicklingError as error:
        text = str(error)
        if "Weights only load failed" not in text and "Unsupported global" not in text:
            raise InteropError(f"{file} is not a readable PyTorch checkpoint (it may be truncated, or not a "
                               "checkpoint at all: a web page saved under that name, say); download it again") from None
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        what = f" (torch.load(weights_only=True) refused {found.group(1)})" if found else ""
        raise InteropError(f"{file} holds pickled objects beyond tensors, which mto never loads{what}; use a file "
                           "of tensors only, e.g. torch.save({'model': model.state_dict()})") from None
    except (LookupError, TypeError, AttributeError, struct.error) as error:
        # the weights-only unpickler, fed bytes that are no pickle (a text file named .pth), fails inside
        raise InteropError(f"{file} is not a PyTorch checkpoint: its bytes are not a saved file of tensors "
                           f"({type(error).__name__} while reading it); check the file, or download it again") from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InteropError(f"{file} is not a readable PyTorch checkpoint ({first[:160]}); it may be truncated: "
                           "download it again") from None
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InteropError(f"{file} holds no state dict of tensors (MAE's files hold {{'model': state_dict}})")
    if any(str(k).startswith(("vit.", "decoder.decoder")) for k in state):
        raise InteropError(f"{file} holds a transformers model's weights (names vit.*), not MAE's own; import the "
                           f"folder that holds it with its config.json ({file.parent})")
    return state


def run_config(state: dict[str, torch.Tensor], file: Path,
               overrides: list[str] | None = None) -> tuple[RunConfig, list[str]]:
    """The mto MAE config of an official state dict, and what was assumed; ``overrides``
    (``--set``) may give the head counts of a width none of MAE's models has."""
    if "mask_token" not in state or "decoder_pred.weight" not in state:
        full = re.sub(r"(mae_pretrain_vit_\w+?)(\.pth)$", r"\1_full\2", file.name)
        hint = f" ({full})" if full != file.name else ""
        raise InteropError(f"{file} holds MAE's encoder only (no decoder, no mask token), so it cannot "
                           f"reconstruct; import the full checkpoint{hint}: mae_pretrain_vit_*_full.pth or "
                           "mae_visualize_vit_*.pth")
    try:
        patch_w = state["patch_embed.proj.weight"]
        dim, channels, patch = patch_w.shape[0], patch_w.shape[1], patch_w.shape[2]
        positions = state["pos_embed"].shape[1] - 1
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        decoder_dim = state["decoder_embed.weight"].shape[0]
        decoder_depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("decoder_blocks."))
        hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    except (KeyError, IndexError, ValueError) as error:
        raise InteropError(f"{file} is not an MAE checkpoint (no {error} in it, or of another shape)") from None
    grid = round(positions**0.5)
    if grid * grid != positions:
        raise InteropError(f"{file}: {positions} patch positions do not make a square grid")
    config = preset("mae")
    m = config.model
    m.size = "imported"
    m.img_size, m.patch_size, m.in_chans = grid * patch, patch, channels
    m.embed_dim, m.depth, m.mlp_ratio = dim, depth, hidden / dim
    m.decoder_dim, m.decoder_depth = decoder_dim, decoder_depth
    notes = []
    given = {text.partition("=")[0].strip() for text in overrides or []}
    if (dim not in HEADS and "model.num_heads" not in given) or \
            (decoder_dim not in DECODER_HEADS and "model.decoder_heads" not in given):
        raise InteropError(f"{file}: a width of {dim} (decoder {decoder_dim}) is none of MAE's released models, so "
                           "the number of attention heads is unknown; give it with --set model.num_heads=N "
                           "--set model.decoder_heads=N")
    m.num_heads, m.decoder_heads = HEADS.get(dim, 1), DECODER_HEADS.get(decoder_dim, 1)
    m.norm_pix_loss = "pretrain" in file.name
    notes.append(f"norm_pix_loss {str(m.norm_pix_loss).lower()} from the file name ("
                 + ("MAE's pre-training recipe" if m.norm_pix_loss else "not a pre-training file: pixels as targets")
                 + "); heads from MAE's model definitions")
    m.layer_norm_eps = 1e-6
    m.pixel_mean, m.pixel_std = list(IMAGENET_MEAN), list(IMAGENET_STD)
    config.mask.ratio = 0.75
    try:
        if overrides:
            set_overrides(config, overrides)
        validate(config)
        check_model_fits(m)
    except ConfigError as error:
        raise InteropError(f"{file}: {error}") from None
    return config, notes


def to_mto_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MAE's names -> mto's: the encoder's tensors gain ``encoder.``."""
    decoder = ("mask_token", "decoder_")
    return {(k if k.startswith(decoder) else f"encoder.{k}"): v.float().contiguous() for k, v in state.items()}
