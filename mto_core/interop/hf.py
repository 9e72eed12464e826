"""Hugging Face transformers' MAE (``ViTMAEForPreTraining``) and SimMIM (``ViTForMaskedImageModeling``)
in and out of mto's form.

In: a model folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) is read
through transformers itself, which knows every key layout in the wild: files written by
transformers 4 (``vit.encoder.layer.N.attention.attention.query``, ``decoder.decoder_layers.N``),
files written by transformers 5's ``save_pretrained`` (``decoder.decoder_encoder.layer.N``), and
files holding transformers 5's own module names (``vit.layers.N.attention.q_proj``, ``mlp.fc1``).
The loaded model's weights are then renamed to mto's (q, k, v stacked into one qkv; SimMIM's 1x1
convolution and pixel shuffle become one linear head).

Out: an mto MAE or SimMIM checkpoint becomes a folder that ``from_pretrained`` loads, with a
``preprocessor_config.json`` holding the model's size and normalisation.

What the two computations share and where they differ is in docs/interop.md: with the same
weights and mask, predictions and loss agree to float rounding (SimMIM's loss differs by the
1e-5 transformers adds to its denominator). MTO's hard recalibration is part of mto's forward
pass, not of the weights: transformers' forward does not have it until ``mto_core.add_mto`` puts
it there. The MTO config travels as config.json's ``mto`` object both ways: ``mto import`` reads
it (the run is then ``mae-mto`` / ``simmim-mto``), ``mto export`` of an MTO run writes it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError, RunConfig, preset, set_value, validate
from ..models.objective import check_model_fits

MAE_ARCH, SIMMIM_ARCH = "ViTMAEForPreTraining", "ViTForMaskedImageModeling"
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# model types that share the name ViT or the MIM task but not mto's architecture
OTHER_ARCHITECTURES = {"swin": "Swin", "swinv2": "Swin V2", "beit": "BEiT", "data2vec-vision": "Data2Vec (BEiT's "
                       "relative position bias)", "deit": "DeiT", "vit_msn": "ViT-MSN", "dinov2": "DINOv2",
                       "vit_hybrid": "hybrid ViT"}


class InteropError(ValueError):
    """A model that cannot be imported or exported; the message says why and what would work."""


def transformers_module():
    """``transformers``, imported after the torchvision fix; InteropError if it is missing."""
    from .._torchvision_compat import ensure_torchvision

    ensure_torchvision()
    try:
        import transformers
    except ImportError:
        raise InteropError("reading and writing Hugging Face models needs transformers: pip install "
                           "'mto[hf]' (scripts/install.sh installs it)") from None
    transformers.logging.set_verbosity_error()  # its load report is read below, not printed
    transformers.utils.logging.disable_progress_bar()
    return transformers


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InteropError(f"{path.parent} has no {path.name}: a Hugging Face model folder holds config.json "
                           "beside its weights") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InteropError(f"{path} is not readable JSON ({error}); {what}") from None
    if not isinstance(data, dict):
        raise InteropError(f"{path} is not a JSON object; {what}")
    return data


def architecture(hf_config: dict[str, Any], where: Path, names: list[str] | None = None) -> str:
    """:data:`MAE_ARCH` or :data:`SIMMIM_ARCH`; InteropError, naming what it is, for anything else.
    A ViT config without ``architectures`` (written by ``config.to_json_file``) is told by its
    weights' ``names``: SimMIM's have a mask token and a decoder."""
    kind = hf_config.get("model_type")
    arches = hf_config.get("architectures") or []
    wanted = f"mto imports {MAE_ARCH} (model_type vit_mae) and {SIMMIM_ARCH} (model_type vit)"
    if kind in OTHER_ARCHITECTURES:
        raise InteropError(f"{where} is a {OTHER_ARCHITECTURES[kind]} model (model_type {kind}), not the plain "
                           f"ViT mto builds (absolute positions, no relative position bias); {wanted}")
    if kind == "vit_mae":
        return MAE_ARCH
    if kind == "vit":
        if SIMMIM_ARCH in arches or (not arches and names and any(n.endswith("embeddings.mask_token") for n in names)
                                     and any(n.startswith("decoder.0.") for n in names)):
            return SIMMIM_ARCH
        raise InteropError(f"{where} is a ViT without the masked-image-modeling head (architectures "
                           f"{', '.join(arches) or 'not given'}): it has no decoder to reconstruct with; {wanted}")
    raise InteropError(f"{where} holds a model of type {kind or 'unknown'} ({', '.join(arches) or 'no architectures'}); "
                       f"{wanted}")


def run_config(hf_config: dict[str, Any], arch: str, processor: dict[str, Any] | None,
               where: Path) -> tuple[RunConfig, list[str]]:
    """The mto config of a transformers config (and its image processor's, if any), with the notes
    of what had to be assumed. InteropError for a setting mto's ViT does not have."""
    c = hf_config
    notes: list[str] = []

    def need(key: str, ok: Any, value: Any = None) -> None:
        got = c.get(key, value)
        if got != ok:
            raise InteropError(f"{where}/config.json has {key} = {got!r}; mto's ViT has {key} = {ok!r} only")

    need("hidden_act", "gelu", "gelu")
    need("qkv_bias", True, True)
    whole = ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size",
             "patch_size", "num_channels"]
    if arch == MAE_ARCH:
        whole += [k for k in ("decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
                              "decoder_intermediate_size") if k in c]
    for key in whole:
        if not isinstance(c.get(key), int) or isinstance(c.get(key), bool) or c[key] <= 0:
            raise InteropError(f"{where}/config.json: {key} must be a positive whole number, got {c.get(key)!r}")
    for key in ("layer_norm_eps", "mask_ratio"):
        if key in c and (isinstance(c[key], bool) or not isinstance(c[key], (int, float))):
            raise InteropError(f"{where}/config.json: {key} must be a number, got {c[key]!r}")
    method = "mae" if arch == MAE_ARCH else "simmim"
    config = preset(f"{method}-mto" if "mto" in c else method)
    if "mto" in c:  # written by mto_core.add_mto before save_pretrained, or by mto export
        try:
            if not isinstance(c["mto"], dict):
                raise ConfigError(f"'mto' must be an object of MTO settings, got {c['mto']!r}")
            for key, value in c["mto"].items():
                set_value(config, f"mto.{key}", value)
        except ConfigError as error:
            raise InteropError(f"{where}/config.json: {error}") from None
    config.model.size = "imported"
    m = config.model
    m.img_size, m.patch_size, m.in_chans = c["image_size"], c["patch_size"], c["num_channels"]
    m.embed_dim, m.depth, m.num_heads = c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"]
    m.mlp_ratio = c["intermediate_size"] / c["hidden_size"]
    if int(m.embed_dim * m.mlp_ratio) != c["intermediate_size"]:  # timm rounds width x ratio down
        m.mlp_ratio += 1e-9
    m.layer_norm_eps = float(c.get("layer_norm_eps", 1e-12))
    if arch == MAE_ARCH:
        m.decoder_dim, m.decoder_depth = c.get("decoder_hidden_size", 512), c.get("decoder_num_hidden_layers", 8)
        m.decoder_heads = c.get("decoder_num_attention_heads", 16)
        if c.get("decoder_intermediate_size", 2048) != m.mlp_ratio * m.decoder_dim:
            raise InteropError(f"{where}/config.json: the decoder's MLP ratio (decoder_intermediate_size / "
                               "decoder_hidden_size) differs from the encoder's; mto's MAE has one ratio for both")
        m.norm_pix_loss = bool(c.get("norm_pix_loss", False))
        config.mask.ratio = float(c.get("mask_ratio", 0.75))
    else:
        if c.get("encoder_stride", m.patch_size) != m.patch_size:
            raise InteropError(f"{where}/config.json has encoder_stride {c.get('encoder_stride')} and patch_size "
                               f"{m.patch_size}: mto's SimMIM head predicts one patch per token (they must be equal)")
        # SimMIM masks 32 x 32 pixel blocks (2 x 2 patches of 16) at 0.6
        block = max(1, 32 // m.patch_size)
        if m.grid % block == 0 and m.grid // block >= 4:
            config.mask.mask_patch_size = block
        notes.append(f"masks for the analysis: 0.6 of {config.mask.mask_patch_size * m.patch_size}-pixel blocks "
                     "(SimMIM's recipe; the transformers config does not say)")
    mean, std = (processor or {}).get("image_mean"), (processor or {}).get("image_std")
    if processor is not None and processor.get("do_normalize") is False:
        mean, std = 0.0, 1.0
        notes.append("the image processor does not normalise: pixels in 0..1 as they are")
    elif processor is None or mean is None or std is None:
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if m.in_chans == 3 else ([0.5] * m.in_chans, [0.5] * m.in_chans)
        notes.append(("no preprocessor_config.json" if processor is None else "the image processor gives no mean "
                      "and std") + ": normalised with " + ("ImageNet's mean and std" if m.in_chans == 3
                                                          else "mean 0.5 and std 0.5"))
    m.pixel_mean, m.pixel_std = _per_channel(mean, m.in_chans, where), _per_channel(std, m.in_chans, where)
    try:
        validate(config)
        check_model_fits(m)
    except ConfigError as error:
        raise InteropError(f"{where}/config.json: {error}") from None
    return config, notes


def _per_channel(value: Any, channels: int, where: Path) -> float | list[float]:
    """The processor's mean or std as mto keeps it: one number, or one per channel; equal values
    for a grey model's one channel collapse into one."""
    values = value if isinstance(value, list) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise InteropError(f"{where}/preprocessor_config.json: image_mean and image_std must be numbers, got {value!r}")
    if len(set(values)) == 1:
        return float(values[0])
    if len(values) != channels:
        raise InteropError(f"{where}/preprocessor_config.json gives {len(values)} values for a model of {channels} "
                           "channel(s)")
    return [float(v) for v in values]


def layout_of(names: list[str]) -> str:
    """Which key layout a weights file holds, from its tensor names."""
    if any(".attention.q_proj." in n for n in names):
        return "transformers-5-modules"
    if any("decoder.decoder_encoder.layer." in n for n in names):
        return "transformers-5"
    return "transformers-4"


def weight_names(folder: Path) -> tuple[Path, list[str]]:
    """The weights file of a model folder and its tensor names (read from the header only);
    InteropError for a file that is not a readable safetensors file."""
    from safetensors import SafetensorError, safe_open

    file = folder / "model.safetensors"
    if file.is_file():
        try:
            with safe_open(str(file), "pt") as handle:
                return file, list(handle.keys())
        except (SafetensorError, OSError, ValueError) as error:
            raise InteropError(f"{file} is not a readable safetensors file ({str(error).splitlines()[0]}): it may "
                               "be truncated or another format; download the model folder again") from None
    if (folder / "pytorch_model.bin").is_file():
        return folder / "pytorch_model.bin", []
    shards = sorted(folder.glob("model-*.safetensors"))
    if shards:
        return shards[0], [n for s in shards for n in weight_names_of(s)]
    raise InteropError(f"{folder} holds no weights (model.safetensors or pytorch_model.bin beside config.json)")


def weight_names_of(file: Path) -> list[str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), "pt") as handle:
            return list(handle.keys())
    except (SafetensorError, OSError, ValueError) as error:
        raise InteropError(f"{file} is not a readable safetensors file ({str(error).splitlines()[0]}); download "
                           "the model folder again") from None


def read_folder(folder: Path) -> tuple[RunConfig, dict[str, torch.Tensor], str, list[str]]:
    """(mto config, mto weights, layout, notes) of a transformers model folder."""
    hf_config = read_json(folder / "config.json", "a Hugging Face model folder's config.json is "
                          "what save_pretrained writes")
    arch = architecture(hf_config, folder)  if hf_config.get("architectures") or hf_config.get("model_type") != "vit" \
        else None
    processor_file = folder / "preprocessor_config.json"
    processor = read_json(processor_file, "it is the image processor's settings") if processor_file.is_file() else None
    file, names = weight_names(folder)
    arch = arch or architecture(hf_config, folder, names)
    config, notes = run_config(hf_config, arch, processor, folder)
    layout = layout_of(names) if names else "transformers-pytorch-bin"
    transformers = transformers_module()
    cls = getattr(transformers, arch)
    try:
        try:
            model, info = cls.from_pretrained(str(folder), output_loading_info=True)
        except RuntimeError as error:
            if "ignore_mismatched_sizes" not in str(error):
                raise
            # to name the tensors of another shape (transformers only points to a report it printed)
            model, info = cls.from_pretrained(str(folder), output_loading_info=True, ignore_mismatched_sizes=True)
    except Exception as error:  # transformers raises many kinds for a broken folder: each becomes one line
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise InteropError(f"transformers could not load {folder} ({first}); check that its weights match its "
                           "config.json") from None
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        words = {"missing_keys": "missing", "unexpected_keys": "unexpected", "mismatched_keys": "of another shape"}
        said = "; ".join(f"{len(v)} {words[k]} (e.g. {_key_text(sorted(v, key=str)[0])})" for k, v in problems.items())
        raise InteropError(f"{file} does not fit {folder}/config.json: {said}. Its shapes or names are another "
                           "model's; mto imports a folder whose weights match its config")
    weights = from_hf_state(model.state_dict(), arch, config)
    return config, weights, layout, notes


def _key_text(item: Any) -> str:
    """A key of transformers' load report: a name, or (name, saved shape, model shape)."""
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return f"{item[0]}: {tuple(item[1])} in the file, {tuple(item[2])} in the config"
    return str(item)


# (transformers 5 name, timm's) within one layer, besides q, k, v, which timm stacks into one qkv
_BLOCK = [("attention.o_proj", "attn.proj"), ("layernorm_before", "norm1"), ("layernorm_after", "norm2"),
          ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")]


def _block_in(sd: dict[str, torch.Tensor], src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
    """One transformers ViT layer (5.x module names) ``src`` -> timm's block names ``dst``."""
    for part in ("weight", "bias"):
        out[f"{dst}attn.qkv.{part}"] = torch.cat([sd[f"{src}attention.{p}_proj.{part}"] for p in "qkv"])
        out |= {f"{dst}{theirs}.{part}": sd[f"{src}{ours}.{part}"] for ours, theirs in _BLOCK}


def _block_out(sd: dict[str, torch.Tensor], src: str, dst: str, out: dict[str, torch.Tensor]) -> None:
    """The inverse of :func:`_block_in`."""
    for part in ("weight", "bias"):
        for p, value in zip("qkv", sd[f"{src}attn.qkv.{part}"].chunk(3)):
            out[f"{dst}attention.{p}_proj.{part}"] = value
        out |= {f"{dst}{ours}.{part}": sd[f"{src}{theirs}.{part}"] for ours, theirs in _BLOCK}


# (transformers 5 module name, mto name) of the tensors outside the blocks
_ENCODER = [("vit.embeddings.cls_token", "encoder.cls_token"),
            ("vit.embeddings.position_embeddings", "encoder.pos_embed"),
            ("vit.embeddings.patch_embeddings.projection.weight", "encoder.patch_embed.proj.weight"),
            ("vit.embeddings.patch_embeddings.projection.bias", "encoder.patch_embed.proj.bias"),
            ("vit.layernorm.weight", "encoder.norm.weight"), ("vit.layernorm.bias", "encoder.norm.bias")]
_MAE_DECODER = [("decoder.mask_token", "mask_token"), ("decoder.decoder_pos_embed", "decoder_pos_embed"),
                *((f"decoder.{n}.{p}", f"{n}.{p}") for n in ("decoder_embed", "decoder_norm", "decoder_pred")
                  for p in ("weight", "bias"))]


def _head_order(patch: int, channels: int) -> torch.Tensor:
    """For each output of mto's SimMIM head (pixels of a patch in (row, column, channel) order),
    the channel of transformers' 1x1 convolution before its pixel shuffle (channel, row, column)."""
    i, j, c = torch.meshgrid(torch.arange(patch), torch.arange(patch), torch.arange(channels), indexing="ij")
    return (c * patch * patch + i * patch + j).flatten()


def from_hf_state(sd: dict[str, torch.Tensor], arch: str, config: RunConfig) -> dict[str, torch.Tensor]:
    """transformers 5 module names -> mto's names (the model's whole state)."""
    m = config.model
    out = {dst: sd[src] for src, dst in _ENCODER}
    for i in range(m.depth):
        _block_in(sd, f"vit.layers.{i}.", f"encoder.blocks.{i}.", out)
    if arch == MAE_ARCH:
        out |= {dst: sd[src] for src, dst in _MAE_DECODER}
        for i in range(m.decoder_depth):
            _block_in(sd, f"decoder.decoder_layers.{i}.", f"decoder_blocks.{i}.", out)
    else:
        order = _head_order(m.patch_size, m.in_chans)
        out["encoder.mask_token"] = sd["vit.embeddings.mask_token"]
        out["head.weight"] = sd["decoder.0.weight"].flatten(1)[order]
        out["head.bias"] = sd["decoder.0.bias"][order]
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def to_hf_state(sd: dict[str, torch.Tensor], config: RunConfig) -> dict[str, torch.Tensor]:
    """mto's names -> transformers 5 module names, the inverse of :func:`from_hf_state`."""
    m = config.model
    out = {src: sd[dst] for src, dst in _ENCODER}
    for i in range(m.depth):
        _block_out(sd, f"encoder.blocks.{i}.", f"vit.layers.{i}.", out)
    if m.method == "mae":
        out |= {src: sd[dst] for src, dst in _MAE_DECODER}
        for i in range(m.decoder_depth):
            _block_out(sd, f"decoder_blocks.{i}.", f"decoder.decoder_layers.{i}.", out)
    else:
        order = _head_order(m.patch_size, m.in_chans)
        out["vit.embeddings.mask_token"] = sd["encoder.mask_token"]
        weight, bias = torch.empty_like(sd["head.weight"]), torch.empty_like(sd["head.bias"])
        weight[order], bias[order] = sd["head.weight"], sd["head.bias"]
        out["decoder.0.weight"] = weight[:, :, None, None]
        out["decoder.0.bias"] = bias
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def hf_config_of(config: RunConfig, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """The transformers config (as keyword arguments) of an mto MAE or SimMIM config; the MLP widths
    are ``model``'s own where it is given (timm rounds width x ratio down)."""
    m = config.model
    hidden = model.encoder.blocks[0].mlp.fc1.out_features if model is not None else int(m.embed_dim * m.mlp_ratio)
    decoder_hidden = (model.decoder_blocks[0].mlp.fc1.out_features if model is not None and m.method == "mae"
                      else int(m.decoder_dim * m.mlp_ratio))
    common = dict(hidden_size=m.embed_dim, num_hidden_layers=m.depth, num_attention_heads=m.num_heads,
                  intermediate_size=hidden, hidden_act="gelu", image_size=m.img_size,
                  patch_size=m.patch_size, num_channels=m.in_chans, qkv_bias=True,
                  layer_norm_eps=m.layer_norm_eps, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if m.method == "mae":
        return dict(common, decoder_hidden_size=m.decoder_dim, decoder_num_hidden_layers=m.decoder_depth,
                    decoder_num_attention_heads=m.decoder_heads,
                    decoder_intermediate_size=decoder_hidden,
                    mask_ratio=config.mask.ratio, norm_pix_loss=m.norm_pix_loss)
    return dict(common, encoder_stride=m.patch_size)


def export(model: torch.nn.Module, config: RunConfig, out: Path) -> Path:
    """Write an mto MAE or SimMIM model as a transformers folder (``save_pretrained``) with its
    image processor's settings; InteropError for the other methods."""
    method = config.model.method
    if method not in ("mae", "simmim"):
        raise InteropError(f"{method} has no transformers architecture to export to; --format hf takes MAE "
                           "(ViTMAEForPreTraining) and SimMIM (ViTForMaskedImageModeling) runs")
    import shutil

    transformers = transformers_module()
    kwargs = hf_config_of(config, model)
    if method == "mae":
        hf = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**kwargs))
    else:
        hf = transformers.ViTForMaskedImageModeling(transformers.ViTConfig(**kwargs))
    try:
        hf.load_state_dict(to_hf_state(model.state_dict(), config), strict=True)
    except RuntimeError as error:
        raise InteropError(f"the {method} model does not fit transformers' {type(hf).__name__} of its shape "
                           f"({str(error).splitlines()[0][:200]}); nothing was written") from None
    hf.config.architectures = [MAE_ARCH if method == "mae" else SIMMIM_ARCH]
    if config.mto.enabled:  # what mto_core.add_mto restores and mto import reads
        hf.config.mto = dataclasses.asdict(config.mto)
    m = config.model
    per_channel = lambda v: (v * m.in_chans if len(v) == 1 else v) if isinstance(v, list) else [v] * m.in_chans  # noqa: E731
    processor = transformers.ViTImageProcessor(do_resize=True, size={"height": m.img_size, "width": m.img_size},
                                               do_normalize=True, image_mean=per_channel(m.pixel_mean),
                                               image_std=per_channel(m.pixel_std))
    tmp = out.with_name(f".{out.name}.tmp")  # written whole, then renamed: a failure leaves no half folder
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        hf.save_pretrained(str(tmp))
        processor.save_pretrained(str(tmp))
        if out.exists():
            out.rmdir()  # an empty folder (export_model checked it)
        tmp.rename(out)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InteropError(f"could not write {out} ({error.strerror or error}); nothing was left there") from None
    return out


def set_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """``--set`` values on an imported config (before its weights are checked against it)."""
    from ..config import parse_assignment

    for text in overrides:
        key, value = parse_assignment(text)
        set_value(config, key, value, size_preset=False)
    validate(config)
    return config
