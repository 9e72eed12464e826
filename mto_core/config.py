"""Typed run configuration: presets, ``--set key=value`` overrides, JSON round trip.

A run is described by one :class:`RunConfig` made of five sections (``model``, ``mask``,
``mto``, ``data``, ``train``). It is saved as ``config.json`` next to the weights, so a
checkpoint always says how it was made.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

SIZES = ("tiny", "tiny-rgb", "vit-s", "vit-b")


@dataclass(frozen=True)
class MethodFacts:
    """What configs, the command line, the benchmarks and the app know of a method. Each model class
    owns its facts (``MIMModel.facts``); registering the class (:func:`mto_core.register_method`)
    puts them in :data:`METHODS`.

    name: ``model.method`` and the presets' stem ('simmim'); display: its name in tables and the app
    ('SimMIM'); mask_in_encoder: whether the encoder sees the mask token, else a decoder does;
    mto_layers: the layers MTO reads, in words ('encoder', 'decoder', 'pixel decoder');
    mask_ratio: its presets' mask ratio; teacher: whether it learns from a momentum teacher."""

    name: str
    display: str
    mask_in_encoder: bool
    mto_layers: str
    mask_ratio: float
    teacher: bool = False


# Filled by the model classes as they register (mto_core.models.build registers the four built in).
METHODS: dict[str, MethodFacts] = {}


def method_facts(method: str) -> MethodFacts:
    """The facts of ``method``; ConfigError naming the registered ones if it is unknown."""
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    return METHODS[method]


def preset_names() -> tuple[str, ...]:
    """Every registered method, each alone and with MTO: ('simmim', 'simmim-mto', ...)."""
    return tuple(name for method in METHODS for name in (method, f"{method}-mto"))


class ConfigError(ValueError):
    """A configuration value or key that cannot be used; the message says what to do."""


class MTOWarning(UserWarning):
    """Something the user should know that does not stop the work (the command prints it as one
    line)."""


@dataclass
class ModelConfig:
    """Network shape. ``size`` names the preset the other fields came from.

    The momentum teacher (ConMIM, BootMAE): ``teacher_momentum`` m0, the EMA momentum at step 0,
    rising on a cosine to 1 at the last step. ``contrast_temperature``: ConMIM's InfoNCE
    temperature. ``feature_loss_weight``: the weight of BootMAE's feature loss beside its pixel
    loss. Defaults: docs/results/new-methods-sweep.md.

    ``pixel_mean`` / ``pixel_std``: one number for every channel, or one per channel (ImageNet's
    for published RGB models). ``layer_norm_eps``: every LayerNorm's epsilon (MAE's 1e-6; models
    made by transformers carry theirs, 1e-12 by default).

    ``pixel_loss``: SimMIM's loss on the masked pixels, ``"l1"`` (its paper's choice, the default) or
    ``"l2"`` (squared error, which that paper reports working about as well); the other methods
    ignore it (MAE and BootMAE train on squared error).
    """

    method: str = "simmim"
    size: str = "tiny"
    img_size: int = 28
    patch_size: int = 4
    in_chans: int = 1
    embed_dim: int = 128
    depth: int = 6
    num_heads: int = 4
    mlp_ratio: float = 4.0
    decoder_dim: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    norm_pix_loss: bool = False
    pixel_loss: Literal["l1", "l2"] = "l1"
    pixel_mean: float | list[float] = 0.286
    pixel_std: float | list[float] = 0.353
    layer_norm_eps: float = 1e-6
    teacher_momentum: float = 0.996
    contrast_temperature: float = 0.05
    feature_loss_weight: float = 0.5

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid**2

    @property
    def mask_layers(self) -> int:
        """How many transformer layers see mask tokens (SimMIM, ConMIM: the encoder; MAE: the
        decoder; BootMAE: each of its two decoders, both of decoder_depth layers)."""
        return self.depth if self.mask_in_encoder else self.decoder_depth

    @property
    def mask_in_encoder(self) -> bool:
        """Whether the encoder sees the mask tokens (SimMIM, ConMIM) or a decoder does (MAE, BootMAE)."""
        return method_facts(self.method).mask_in_encoder


@dataclass
class MaskConfig:
    """How patches are hidden. ``mask_patch_size`` is in model patches (SimMIM's unit)."""

    kind: Literal["random", "block"] = "random"
    ratio: float = 0.6
    mask_patch_size: int = 1
    min_block: int = 4


@dataclass
class MTOConfig:
    """Masked Token Optimization parts; each one switches on or off by itself.

    ``depth`` is K of docs/mto-spec.md (null: half the mask-token layers, rounded up).
    ``recalibrated_layers`` counts the first layers with hard recalibration (null: all).
    """

    hard_recalibration: bool = False
    recalibrated_layers: int | None = None
    recalibration_weight: float = 0.0
    singularity_weight: float = 0.0
    entropy_weight: float = 0.0
    tau: float = 0.1
    depth: int | None = None

    @property
    def enabled(self) -> bool:
        return self.hard_recalibration or any(
            w > 0 for w in (self.recalibration_weight, self.singularity_weight, self.entropy_weight)
        )


@dataclass
class DataConfig:
    """Where images come from.

    ``root``: empty for Fashion-MNIST from the system folder, falling back to the subset
    shipped in the repo; ``shipped`` forces the subset; any other value is a folder (``folder``)
    or, for ``hf``, a Hugging Face ``datasets`` set: a folder saved by save_to_disk, Parquet,
    Arrow or WebDataset .tar files, a folder of images, or a Hub id already in the local cache. A folder or ``hf``
    set is read lazily, each image decoded and augmented (MAE's crop of the original) when its
    batch needs it, in ``workers`` DataLoader processes per training process (null: one per
    core left over, at most 8; 0: in the training process); mto_core/data/streaming.py.
    ``photo-crops``: crops of the photographs that ship in scikit-image and scikit-learn, drawn
    from ``split_seed`` (mto_core/data/photo_crops.py); ``root`` unused. ``held_out``: the photos
    photo-crops keeps out of training, comma-separated (empty: astronaut, chelsea, coffee, rocket).
    ``streaming``: read an ``hf`` set with ``datasets``' ``streaming=True``, in a fixed order
    shuffled through a buffer of ``shuffle_buffer`` examples (mto_core/data/hf_stream.py).
    """

    dataset: Literal["fashion-mnist", "folder", "hf", "photo-crops"] = "fashion-mnist"
    root: str = ""
    train_limit: int = 0
    val_fraction: float = 0.1
    split_seed: int = 0
    augment: bool = True
    workers: int | None = None
    held_out: str = ""
    streaming: bool = False
    shuffle_buffer: int = 10_000


@dataclass
class TrainConfig:
    """Optimisation. ``lr`` = ``base_lr`` x effective batch / 256 (MAE's rule).

    ``fused_optimizer``: one fused AdamW kernel instead of per-tensor updates.
    ``knn_every`` / ``linear_every``: probe on the validation split every N epochs (the linear
    probe also after the last epoch), with ``probe_bank`` training images and ``probe_val``
    validation images (0 = all); logged as knn_val / linear_val in the epoch rows.
    ``compile``: ``torch.compile`` the whole model, in a mode chosen per device (CUDA graphs for
    small models on CUDA), falling back to eager with one warning where compiling fails
    (mto_core/training/compiled.py; measured slower on the tiny CPU preset, docs/performance.md).
    ``schedule``: ``cosine`` (warmup, then cosine decay to ``min_lr_fraction``) or ``constant``
    (warmup, then the peak rate): with ``constant`` and a fixed ``warmup_steps``, the model at
    a given step does not depend on the planned length of the run.
    ``warmup_steps``: warmup length in steps; 0 = ``warmup_fraction`` of the run.
    ``probe_points``: epochs (fractions allowed, comma-separated, e.g. ``0,0.5,1,2``) at which
    the k-NN probe runs on the validation split (``probe`` rows in metrics.jsonl); epoch 0 is
    the untrained initialization. ``linear_points``: the same for the linear probe.
    ``snapshot_points``: epochs at which the weights are kept in ``snapshots/epoch-<e>/``
    (never pruned), e.g. for fine-tuning from several points of one run.
    ``checkpoint_every``: also write a checkpoint every N steps within an epoch (0 = only at the
    end of each epoch, of the run and at a stop), so that a killed run loses at most N steps;
    ``keep_checkpoints`` of them are kept, these and the epochs' together.
    ``trace_spacing``: ``even`` (every ``trace_every`` steps) or ``doubling`` (the spacing doubles
    after the first 20 points, and the step a run stops or ends at is traced: a run stopped early
    still has its 20 points and ends on one; the app's Train page).
    ``init``: the checkpoint whose weights a new run starts from (``mto train --init``; empty:
    random weights), recorded so that the run says where its weights came from.
    ``trace_every``: every N steps (and at step 0), measure how the masked tokens part from the
    visible ones on a fixed held-out batch (``trace`` rows in metrics.jsonl, token snapshots in
    ``traces/``; mto_core/analysis/trace.py); 0 = off. 25 costs under 5% of the tiny preset's training
    speed on a CPU (docs/performance.md).
    """

    epochs: int = 10
    max_steps: int = 0
    batch_size: int = 128
    accum_steps: int = 1
    base_lr: float = 1.5e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    min_lr_fraction: float = 0.01
    clip_grad: float = 1.0
    seed: int = 0
    device: str = "auto"
    log_every: int = 10
    keep_checkpoints: int = 2
    checkpoint_every: int = 0
    knn_every: int = 0
    linear_every: int = 0
    probe_bank: int = 5000
    probe_val: int = 0
    fused_optimizer: bool = True
    compile: bool = False
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = 0
    probe_points: str = ""
    linear_points: str = ""
    snapshot_points: str = ""
    trace_every: int = 0
    trace_spacing: Literal["even", "doubling"] = "even"
    init: str = ""


@dataclass
class OriginConfig:
    """Where the weights came from: empty for a model trained here; set by ``mto import``.

    ``source``: the path or Hub id imported; ``format``: the layout read (e.g. ``transformers-4``,
    ``transformers-5``, ``mae-official``); ``revision``: the Hub commit where known; ``note``:
    what the import had to assume (e.g. a setting read from a file name)."""

    source: str = ""
    format: str = ""
    revision: str = ""
    note: str = ""


@dataclass
class RunConfig:
    preset: str = "simmim"
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    mto: MTOConfig = field(default_factory=MTOConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    origin: OriginConfig = field(default_factory=OriginConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        config = cls()
        for key, value in data.items():
            if key == "preset":
                config.preset = _coerce("preset", value, str)
            elif key in _SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"config section '{key}' must be an object")
                for sub, subvalue in value.items():
                    set_value(config, f"{key}.{sub}", subvalue, size_preset=False)
            else:
                raise ConfigError(f"unknown config section '{key}'; known: preset, {', '.join(_SECTIONS)}")
        validate(config)
        return config

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {path} is a folder; give the JSON file itself "
                              f"(e.g. {path / 'config.json'})") from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}); a config "
                              "is the JSON a run saves as config.json") from None
        except json.JSONDecodeError as error:
            raise ConfigError(f"config file {path} is not valid JSON: {error}") from None
        except OSError as error:
            raise ConfigError(f"config file {path} cannot be read: {error.strerror or error}") from None
        return cls.from_dict(data)


_SECTIONS = ("model", "mask", "mto", "data", "train", "origin")

SIZE_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(img_size=28, patch_size=4, in_chans=1, embed_dim=128, depth=6, num_heads=4,
                 decoder_dim=128, decoder_depth=2, decoder_heads=4, pixel_mean=0.286, pixel_std=0.353),
    # colour for CPUs: the tiny model's width and depth on 32 x 32 RGB; ImageNet's mean and std
    "tiny-rgb": dict(img_size=32, patch_size=4, in_chans=3, embed_dim=128, depth=6, num_heads=4,
                     decoder_dim=128, decoder_depth=2, decoder_heads=4, pixel_mean=[0.485, 0.456, 0.406],
                     pixel_std=[0.229, 0.224, 0.225]),
    "vit-s": dict(img_size=224, patch_size=16, in_chans=3, embed_dim=384, depth=12, num_heads=6,
                  decoder_dim=256, decoder_depth=4, decoder_heads=8, pixel_mean=0.45, pixel_std=0.25),
    "vit-b": dict(img_size=224, patch_size=16, in_chans=3, embed_dim=768, depth=12, num_heads=12,
                  decoder_dim=512, decoder_depth=8, decoder_heads=16, pixel_mean=0.45, pixel_std=0.25),
}

# The starting defaults of docs/mto-spec.md.
MTO_DEFAULTS = dict(hard_recalibration=True, singularity_weight=0.1, entropy_weight=0.01,
                    recalibration_weight=0.0)


def preset(name: str, size: str = "tiny") -> RunConfig:
    """The configuration of a named preset (``simmim``, ``mae``, ``conmim``, ``bootmae``, each also
    with ``-mto``)."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'; choose one of {', '.join(preset_names())}")
    method = name.removesuffix("-mto")
    config = RunConfig(preset=name)
    set_size(config, size)
    config.model.method = method
    config.mask.ratio = method_facts(method).mask_ratio
    if name.endswith("-mto"):
        for key, value in MTO_DEFAULTS.items():
            setattr(config.mto, key, value)
    return config


def set_size(config: RunConfig, size: str) -> None:
    if size not in SIZE_PRESETS:
        raise ConfigError(f"unknown model size '{size}'; choose one of {', '.join(SIZE_PRESETS)}")
    config.model.size = size
    for key, value in SIZE_PRESETS[size].items():
        setattr(config.model, key, value)


def _field_types(section: object) -> dict[str, Any]:
    return _type_hints(type(section))


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def known_keys() -> list[str]:
    config = RunConfig()
    return [f"{s}.{f}" for s in _SECTIONS for f in _field_types(getattr(config, s))]


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the annotation ``hint``; convert int -> float where exact."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"'{key}' must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list) or not value:
            raise ConfigError(f"'{key}' must be a number or a non-empty list of numbers, got {value!r}")
        return [_coerce(key, v, item) for v in value]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{key}' must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{key}' must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{key}' must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # --set key=1 reads the value as JSON
        if not isinstance(value, str):
            raise ConfigError(f"'{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"'{key}' has an unsupported type {hint}")


def set_value(config: RunConfig, key: str, value: Any, size_preset: bool = True) -> None:
    """Set ``section.field`` to ``value`` after checking the key and the value's type.

    ``model.size`` also sets the shape fields of that size, unless ``size_preset`` is False
    (reading a saved config, whose fields are already explicit).
    """
    section_name, _, name = key.partition(".")
    if section_name not in _SECTIONS or not name:
        raise ConfigError(f"unknown config key '{key}'; keys look like 'mto.entropy_weight'. "
                          f"Known keys: {', '.join(known_keys())}")
    section = getattr(config, section_name)
    hints = _field_types(section)
    if name not in hints:
        raise ConfigError(f"unknown config key '{key}'; keys of '{section_name}': "
                          f"{', '.join(hints)}")
    if section_name == "model" and name == "size" and size_preset:
        set_size(config, _coerce(key, value, str))
        return
    setattr(section, name, _coerce(key, value, hints[name]))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is read as JSON (numbers, true/false, null) or a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key=value (for example mto.entropy_weight=0), got '{text}'")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def apply_overrides(config: RunConfig, assignments: list[str]) -> RunConfig:
    for text in assignments:
        key, value = parse_assignment(text)
        set_value(config, key, value)
    validate(config)
    return config


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: RunConfig) -> None:
    """Raise :class:`ConfigError` naming the first value that cannot work."""
    m, k, o, d, t = config.model, config.mask, config.mto, config.data, config.train
    _check(m.method in METHODS, f"model.method must be one of {', '.join(METHODS)}, got {m.method!r}")
    for name in ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                 "decoder_dim", "decoder_depth", "decoder_heads"):
        _check(getattr(m, name) > 0, f"model.{name} must be positive, got {getattr(m, name)}")
    _check(m.img_size % m.patch_size == 0,
           f"model.patch_size ({m.patch_size}) must divide model.img_size ({m.img_size})")
    _check(m.embed_dim % m.num_heads == 0,
           f"model.num_heads ({m.num_heads}) must divide model.embed_dim ({m.embed_dim})")
    _check(m.decoder_dim % m.decoder_heads == 0,
           f"model.decoder_heads ({m.decoder_heads}) must divide model.decoder_dim ({m.decoder_dim})")
    _check(math.isfinite(m.mlp_ratio) and m.mlp_ratio > 0, "model.mlp_ratio must be positive")
    for name in ("pixel_mean", "pixel_std"):
        values = getattr(m, name) if isinstance(getattr(m, name), list) else [getattr(m, name)]
        _check(all(math.isfinite(v) for v in values), f"model.{name} must be finite")
        _check(len(values) in (1, m.in_chans), f"model.{name} must be one number or one per channel "
               f"({m.in_chans}), got {len(values)}")
    stds = m.pixel_std if isinstance(m.pixel_std, list) else [m.pixel_std]
    _check(all(v > 0 for v in stds), "model.pixel_std must be positive")
    _check(math.isfinite(m.layer_norm_eps) and m.layer_norm_eps > 0,
           f"model.layer_norm_eps must be > 0, got {m.layer_norm_eps}")
    _check(m.embed_dim % 4 == 0 and m.decoder_dim % 4 == 0,
           "model.embed_dim and model.decoder_dim must be divisible by 4 (2-D sin-cos positions)")
    _check(0 <= m.teacher_momentum <= 1 and math.isfinite(m.teacher_momentum),
           f"model.teacher_momentum must be in [0, 1] (the EMA momentum at step 0), got {m.teacher_momentum}")
    _check(math.isfinite(m.contrast_temperature) and m.contrast_temperature > 0,
           f"model.contrast_temperature must be > 0, got {m.contrast_temperature}")
    _check(math.isfinite(m.feature_loss_weight) and m.feature_loss_weight >= 0,
           f"model.feature_loss_weight must be >= 0, got {m.feature_loss_weight}")
    _check(m.pixel_loss == "l1" or m.method == "simmim",
           f"model.pixel_loss={m.pixel_loss} applies to SimMIM only ({m.method} has its own loss)")
    check_ratio(k.ratio)
    _check(k.mask_patch_size > 0 and m.grid % k.mask_patch_size == 0,
           f"mask.mask_patch_size ({k.mask_patch_size}) must divide the patch grid ({m.grid})")
    _check(k.min_block > 0, "mask.min_block must be positive")
    for name in ("recalibration_weight", "singularity_weight", "entropy_weight"):
        value = getattr(o, name)
        _check(math.isfinite(value) and value >= 0, f"mto.{name} must be >= 0, got {value}")
    _check(math.isfinite(o.tau) and o.tau > 0, f"mto.tau must be > 0, got {o.tau}")
    for name in ("depth", "recalibrated_layers"):
        value = getattr(o, name)
        _check(value is None or 0 <= value <= m.mask_layers,
               f"mto.{name} must be between 0 and {m.mask_layers} (the layers that see mask "
               f"tokens) or null, got {value}")
    _check(d.train_limit >= 0, "data.train_limit must be >= 0 (0 = all)")
    _check(d.workers is None or d.workers >= 0,
           f"data.workers must be >= 0 (0 = decode in the training process) or null (auto), got {d.workers}")
    _check(0 <= d.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {d.val_fraction}")
    _check(not d.streaming or d.dataset == "hf", f"data.streaming=true needs data.dataset=hf (Parquet, Arrow or "
           f"WebDataset shards, a folder of images or a Hub id), got data.dataset={d.dataset}; a folder is read "
           "lazily already: drop data.streaming")
    _check(not d.streaming or not d.train_limit, "data.train_limit does not apply to a streamed set; use "
           "train.max_steps to read less of it")
    _check(d.shuffle_buffer > 0, f"data.shuffle_buffer must be positive, got {d.shuffle_buffer}")
    _check(t.epochs > 0 or t.max_steps > 0, "train.epochs or train.max_steps must be positive")
    _check(t.epochs >= 0 and t.max_steps >= 0, "train.epochs and train.max_steps must be >= 0")
    for name in ("batch_size", "accum_steps", "log_every"):
        _check(getattr(t, name) > 0, f"train.{name} must be positive, got {getattr(t, name)}")
    _check(math.isfinite(t.base_lr) and t.base_lr > 0, f"train.base_lr must be > 0, got {t.base_lr}")
    _check(0 <= t.warmup_fraction < 1, "train.warmup_fraction must be in [0, 1)")
    _check(0 <= t.min_lr_fraction <= 1, "train.min_lr_fraction must be in [0, 1]")
    _check(t.weight_decay >= 0 and t.clip_grad >= 0, "train.weight_decay and train.clip_grad must be >= 0")
    _check(t.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
    _check(t.trace_every >= 0, "train.trace_every must be >= 0 (0 = no traces)")
    _check(t.checkpoint_every >= 0, "train.checkpoint_every must be >= 0 (0 = at the end of each epoch only)")
    _check(t.knn_every >= 0 and t.linear_every >= 0,
           "train.knn_every and train.linear_every must be >= 0 (0 = never)")
    _check(d.dataset != "photo-crops" or not (t.knn_every or t.linear_every or t.probe_points or t.linear_points),
           "data.dataset=photo-crops has no classes to probe (the held-out photos are not among the training "
           "photos); leave train.knn_every, linear_every, probe_points and linear_points at 0 or empty")
    _check(t.probe_bank > 0 and t.probe_val >= 0, "train.probe_bank must be > 0, train.probe_val >= 0 (0 = all)")
    _check(t.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {t.warmup_steps}")
    for name in ("probe_points", "linear_points", "snapshot_points"):
        parse_points(getattr(t, name), f"train.{name}")
    _check(t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:"),
           f"train.device must be auto, cpu or cuda, got '{t.device}'")


def parse_points(text: str, key: str = "train.probe_points") -> tuple[float, ...]:
    """``"0, 0.5, 1"`` -> (0.0, 0.5, 1.0): sorted, distinct epochs >= 0."""
    try:
        points = sorted({float(p) for p in text.split(",") if p.strip()})
    except ValueError:
        raise ConfigError(f"{key} must be comma-separated epochs such as 0,0.5,1,2; got {text!r}") from None
    if any(not math.isfinite(p) or p < 0 for p in points):
        raise ConfigError(f"{key} must hold finite epochs >= 0; got {text!r}")
    return tuple(points)


def check_ratio(ratio: float) -> None:
    """A mask ratio must hide some patches and keep some: 0 < ratio < 1."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) \
            or not 0 < ratio < 1:
        raise ConfigError(f"mask ratio must be a number strictly between 0 and 1 (some patches "
                          f"hidden, some visible), got {ratio!r}")
