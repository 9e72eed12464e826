"""Checkpoints: weights in safetensors, the run config in JSON, resumable training state.

A run folder holds ``config.json``, ``metrics.jsonl`` and one folder per saved step::

    runs/x/step-00000470/  model.safetensors  config.json  train_state.pt  metrics.jsonl

Each step folder is written under a temporary name, flushed to disk and renamed in one atomic
step, so a run killed at any moment leaves only complete checkpoints behind. Weights are never
unpickled; ``train_state.pt`` (optimizer moments, step counters) is read with
``torch.load(weights_only=True)`` and only from the project's own runs.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from ..config import ConfigError, MTOWarning, RunConfig
from .build import build_model
from .objective import MIMModel

WEIGHTS, CONFIG, STATE, METRICS = "model.safetensors", "config.json", "train_state.pt", "metrics.jsonl"
_PREFIX = "step-"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be used; the message says why and what to do."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its config and the folder it came from."""

    model: MIMModel
    config: RunConfig
    path: Path

    @property
    def name(self) -> str:
        return self.path.parent.name if self.path.name.startswith(_PREFIX) else self.path.name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, step: int, model: MIMModel, config: RunConfig,
                    state: dict[str, Any], keep: int) -> Path:
    """Write ``run_dir/step-NNNNNNNN`` atomically; keep the newest ``keep`` step folders.

    The files are serialized in memory and written by Python, so that a failed write (disk
    full, file size limit) is an OSError naming its cause, whichever file it hit; the
    half-written folder is then removed.
    """
    metrics = run_dir / METRICS
    state_bytes = io.BytesIO()
    torch.save(state, state_bytes)
    final = _write_folder(run_dir / f"{_PREFIX}{step:08d}", {
        **_model_files(model, config), STATE: state_bytes.getvalue(),
        **({METRICS: metrics.read_bytes()} if metrics.exists() else {})})
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_snapshot(folder: Path, model: MIMModel, config: RunConfig, extra: dict[str, bytes] | None = None) -> Path:
    """Weights and config only (and ``extra`` files, such as a card): a loadable checkpoint folder
    without training state, written the same atomic way (a killed run leaves no half snapshot)."""
    return _write_folder(folder, {**_model_files(model, config), **(extra or {})})


def _model_files(model: MIMModel, config: RunConfig) -> dict[str, bytes]:
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = safetensors_bytes(weights, metadata={"format": "mto", "method": config.model.method})
    return {WEIGHTS: _sorted_metadata(blob), CONFIG: config.to_json().encode()}


def _sorted_metadata(blob: bytes) -> bytes:
    """The safetensors file with its metadata keys in sorted order: safetensors writes them in
    the order of a hash map seeded anew in each process, so equal weights would give files that
    differ byte for byte. The tensors' bytes, placed relative to the header's end, are untouched."""
    length = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + length])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the tensors stay 8-byte aligned
    return len(text).to_bytes(8, "little") + text + blob[8 + length:]


def _write_folder(final: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` into ``.<final>.tmp``, flush them, then rename the folder to ``final``;
    a failed write removes the half-written folder and raises the OSError."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, data in files.items():
            _write_synced(tmp / name, data)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(final.parent)
    return final


def step_of(folder: Path) -> int:
    """The step a ``step-NNNNNNNN`` folder was saved at."""
    return int(folder.name[len(_PREFIX):])


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete step folders of a run, oldest first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir()
             if p.is_dir() and p.name.startswith(_PREFIX) and p.name[len(_PREFIX):].isdigit()
             and all((p / f).is_file() for f in (WEIGHTS, CONFIG, STATE))]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX):]))


def resolve(path: str | Path) -> Path:
    """A checkpoint folder: ``path`` itself if it holds weights, else its newest step folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a run folder (runs/x) or a "
                              "checkpoint folder holding model.safetensors and config.json")
    if path.is_file():
        raise CheckpointError(f"{path} is a file; give the folder that holds it ({path.parent}) if it is a "
                              "checkpoint's, or a run folder (runs/x)")
    if (path / WEIGHTS).is_file():
        return path
    steps = list_checkpoints(path)
    if not steps:
        inside = sorted(p.name for p in path.iterdir()
                        if p.is_dir() and ((p / WEIGHTS).is_file() or list_checkpoints(p)))
        if inside:
            raise CheckpointError(f"{path} is not a checkpoint but holds some: give one of its folders, e.g. "
                                  f"{path / inside[0]} ({', '.join(inside[:6])}{', ...' if len(inside) > 6 else ''})")
        raise CheckpointError(f"{path} holds no checkpoint (no {WEIGHTS}, no complete {_PREFIX}* folder)"
                              f"{_no_checkpoint_advice(path)}")
    return steps[-1]


def _no_checkpoint_advice(path: Path) -> str:
    """What to do with a folder that holds no checkpoint: only a command that training accepts."""
    if (path / CONFIG).is_file():
        return (f"; it is a run stopped before its first checkpoint. Continue it with: "
                f"mto train --out {path} --resume")
    if any(path.iterdir()):
        return ("; it is not a run folder either. Give a run folder made by mto train (runs/x) or a "
                "checkpoint folder (checkpoints/simmim)")
    return f". Train one with: mto train --out {path}"


def read_config(folder: Path) -> RunConfig:
    try:
        return RunConfig.load(folder / CONFIG)
    except ConfigError as error:
        raise CheckpointError(f"{folder}: {error}") from None


def load_weights(model: torch.nn.Module, file: Path) -> None:
    """Load safetensors weights into ``model``, explaining any mismatch of names or shapes."""
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{file} is not a readable safetensors file ({error}); it may be "
                              "truncated or corrupt. Use another checkpoint or retrain.") from None
    problem = state_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(f"{file} does not fit the model of its config.json: {problem}. It was saved by "
                              "another architecture or size.")
    model.load_state_dict(state)


def state_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str | None:
    """How ``state`` fails to fit a model whose state is ``own`` (missing, unexpected and mis-shaped
    tensors, with an example of each), or None if it fits."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
             f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
             f"{len(wrong)} of another shape (e.g. {wrong[0]}: {tuple(state[wrong[0]].shape)}"
             f" vs {tuple(own[wrong[0]].shape)})" if wrong else ""]
    return "; ".join(p for p in parts if p) or None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a run folder (its newest checkpoint) or a checkpoint folder, ready for inference."""
    folder = resolve(path)
    config = read_config(folder)
    try:
        model = build_model(config.model, config.mto)
    except ConfigError as error:
        raise CheckpointError(f"{folder / CONFIG}: {error}") from None
    load_weights(model, folder / WEIGHTS)
    return Checkpoint(model.to(device).eval(), config, folder)


def load_train_state(folder: Path) -> dict[str, Any]:
    try:
        return torch.load(folder / STATE, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise CheckpointError(f"{folder / STATE} cannot be read ({error}); delete that step "
                              "folder to resume from the one before") from None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl (a run folder, checkpoint folder or the file).

    What a consumer could trip on is left out, with one warning per file: a line that is not a
    JSON object (a torn last line after a kill is skipped silently), any value other than a
    number besides the row's ``kind`` name, and a train or epoch row then left without its epoch.
    """
    path = Path(path)
    file = path if path.is_file() else path / METRICS
    if not file.exists():
        return []
    lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
    rows, bad_lines, bad_values = [], [], []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            if line.strip() and number < len(lines):
                bad_lines.append(number)
            continue
        for key, value in list(row.items()):
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (numeric or (key == "kind" and isinstance(value, str))):
                bad_values.append(f"{key} on line {number}")
                del row[key]
        if row.get("kind") in ("train", "epoch") and "epoch" not in row:
            bad_lines.append(number)
            continue
        rows.append(row)
    if bad_lines or bad_values:
        parts = ([f"{len(bad_lines)} line(s) that are not metrics rows (line {bad_lines[0]})"] if bad_lines else []) \
            + ([f"{len(bad_values)} value(s) that are not numbers ({bad_values[0]})"] if bad_values else [])
        warnings.warn(f"{file}: skipped {' and '.join(parts)}", MTOWarning, stacklevel=2)
    return rows
