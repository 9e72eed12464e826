"""``mto import`` and ``mto export``: published models into mto's own checkpoints, and mto's MAE
and SimMIM runs out to transformers.

An imported checkpoint is a folder like every other (``model.safetensors`` + ``config.json``,
and a ``card.md`` saying where it came from); its config's ``origin`` section records the source,
the layout read and the Hub revision where known. Every command and the app then treat it like a
model trained here. Nothing is written unless the whole model was read and fits its config.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import RunConfig
from ..models.build import build_model
from ..models.checkpoint import WEIGHTS, load_checkpoint, save_snapshot, state_mismatch
from . import hf, official_mae
from .hf import InteropError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_FILES = ["config.json", "preprocessor_config.json", "*.safetensors", "*.safetensors.index.json"]


@dataclass
class Imported:
    path: Path
    config: RunConfig
    notes: list[str]


def check_out(out: Path) -> None:
    """``--out`` must be new or an empty folder: nothing is ever written over."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that holds files"
        raise InteropError(f"--out {out} is {what}; nothing was written. Give a new or empty folder "
                           f"(e.g. {out.parent / (out.name + '-2')})")


def from_hub(repo: str, revision: str | None = None) -> tuple[Path, str]:
    """The local folder of Hub model ``repo`` (from huggingface_hub's cache, or downloaded where
    the machine has network) and its revision; InteropError in one line when neither works."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:
        raise InteropError("a Hub id needs huggingface_hub: pip install 'mto[hf]'") from None
    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES, local_files_only=True)
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        if offline:
            raise InteropError(f"{repo} is not in the Hugging Face cache and HF_HUB_OFFLINE is set, so it cannot be "
                               "downloaded; run once with network, or give the model's folder instead") from None
        try:
            folder = snapshot_download(repo, revision=revision, allow_patterns=HUB_FILES)
        except RepositoryNotFoundError:
            raise InteropError(f"{repo}: no such model on the Hugging Face Hub (or it is private)") from None
        except Exception as error:  # huggingface_hub raises many kinds for a machine without network
            raise InteropError(f"{repo} is not in the Hugging Face cache and cannot be downloaded here "
                               f"({type(error).__name__}: no network?); give the model's folder instead") from None
    path = Path(folder)
    if not list(path.glob("*.safetensors")):  # an older repository with PyTorch weights only
        try:
            path = Path(snapshot_download(repo, revision=revision, allow_patterns=["pytorch_model.bin"],
                                          local_files_only=os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")))
        except Exception:  # the first call's files are there; read_folder says what is missing
            pass
    return path, path.name if path.parent.name == "snapshots" else (revision or "")


def read_source(source: str, overrides: list[str] | None = None) -> tuple[RunConfig, dict[str, torch.Tensor], list[str]]:
    """(config, mto weights, notes) of SOURCE: a transformers folder, an official MAE ``.pth``,
    or a Hub id. The config's ``origin`` says which."""
    path = Path(source).expanduser()
    revision = ""
    if not path.exists():
        if not HUB_ID.match(source):
            raise InteropError(f"{source} does not exist; give a Hugging Face model folder, an MAE .pth file, "
                               "or a Hub id such as facebook/vit-mae-base")
        path, revision = from_hub(source)
    if path.is_dir():
        if (path / WEIGHTS).is_file() and _is_mto(path):
            raise InteropError(f"{path} is already an mto checkpoint; every command reads it as it is")
        config, weights, layout, notes = hf.read_folder(path)
    elif path.suffix in (".pth", ".pt", ".bin", ".ckpt"):
        state = official_mae.read_state(path)
        config, notes = official_mae.run_config(state, path, overrides)
        weights, layout = official_mae.to_mto_state(state), "mae-official"
    elif path.suffix == ".safetensors":
        raise InteropError(f"{path} is a weights file alone; give the folder that holds it with its config.json")
    else:
        raise InteropError(f"{path} is neither a model folder nor an MAE .pth file")
    config.origin.source, config.origin.format, config.origin.revision = source, layout, revision
    config.origin.note = "; ".join(notes)
    if overrides:
        hf.set_overrides(config, overrides)
    return config, weights, notes


def _is_mto(folder: Path) -> bool:
    try:
        RunConfig.load(folder / "config.json")
        return True
    except ValueError:
        return False


def build_loaded(config: RunConfig, weights: dict[str, torch.Tensor], where: str) -> torch.nn.Module:
    """The mto model of ``config`` holding ``weights``; InteropError if names or shapes differ."""
    model = build_model(config.model, config.mto)
    problem = state_mismatch(model.state_dict(), weights)
    if problem:
        raise InteropError(f"{where}: the weights do not fit the model their settings describe: {problem}; "
                           "nothing was written")
    model.load_state_dict(weights)
    return model.eval()


def card(config: RunConfig, notes: list[str]) -> str:
    o, m = config.origin, config.model
    lines = [f"# {m.method} imported from {o.source}", "",
             f"Made by `mto import {o.source} --out <this folder>`.", "",
             f"- Source: {o.source}" + (f" (revision {o.revision})" if o.revision else ""),
             f"- Layout read: {o.format}",
             f"- Shape: {m.img_size} x {m.img_size} x {m.in_chans}, patches {m.patch_size}, width {m.embed_dim}, "
             f"depth {m.depth}, heads {m.num_heads}"
             + (f"; decoder width {m.decoder_dim}, depth {m.decoder_depth}" if m.method == "mae" else ""),
             f"- Normalisation: mean {m.pixel_mean}, std {m.pixel_std}; LayerNorm eps {m.layer_norm_eps:g}; "
             f"norm_pix_loss {str(m.norm_pix_loss).lower()}"]
    lines += [f"- Assumed: {n}" for n in notes]
    lines += ["- Weights in float32, as read; no accuracy of this model is measured here.", ""]
    return "\n".join(lines)


def import_model(source: str, out: str | Path, overrides: list[str] | None = None) -> Imported:
    """Read SOURCE and write it to ``out`` as an mto checkpoint (see :func:`read_source`)."""
    out = Path(out)
    check_out(out)
    config, weights, notes = read_source(source, overrides)
    model = build_loaded(config, weights, source)
    check_out(out)  # still new: the read can take a while
    save_snapshot(out, model, config, {"card.md": card(config, notes).encode()})
    return Imported(out, config, notes)


def export_model(run: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the checkpoint of ``run`` in another library's format (``hf``: transformers)."""
    if fmt != "hf":
        raise InteropError(f"unknown export format {fmt!r}; --format hf writes a transformers folder "
                           "(the encoder alone into timm: mto_core.to_timm)")
    out = Path(out)
    check_out(out)
    checkpoint = load_checkpoint(run)
    hf.export(checkpoint.model, checkpoint.config, out)
    return out
