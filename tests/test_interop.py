"""Published models in, mto's models out: transformers' ViTMAE and ViT-SimMIM in every key layout,
facebookresearch/mae's files, a Hub id through huggingface_hub's cache, and the export back.

Every model here is built by transformers at random and saved; nothing is downloaded. Parity:
the imported checkpoint's predictions and loss equal transformers' under the same mask (1e-5
relative), each on its own path (the library's rename tables against the ones written here)."""

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import mto_core  # noqa: F401  (torchvision fix before transformers)
from mto_core import load_checkpoint
from mto_core.interop.hf import InteropError
from mto_core.interop.importer import export_model, import_model
from mto_core.models.vit import unpatchify

import transformers  # noqa: E402  (a test dependency: requirements.txt)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parent.parent
SMALL_MAE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64, image_size=32, patch_size=4, num_channels=3, mask_ratio=0.75)
SMALL_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                 patch_size=4, num_channels=3, encoder_stride=4)
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def hf_mae(seed=0, **config):
    torch.manual_seed(seed)
    model = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**SMALL_MAE, **config})).eval()
    with torch.no_grad():  # a fresh transformers 5 ViTMAE leaves its fixed tables at zero: give them values
        model.vit.embeddings.position_embeddings.normal_()
        model.decoder.decoder_pos_embed.normal_()
    return model


def hf_simmim(seed=0, **config):
    torch.manual_seed(seed)
    return transformers.ViTForMaskedImageModeling(transformers.ViTConfig(**{**SMALL_VIT, **config})).eval()


def to_v4(name: str) -> str:
    """transformers 5's module names -> the names transformers 4 wrote to files."""
    name = re.sub(r"^vit\.layers\.", "vit.encoder.layer.", name)
    for new, old in (("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
                     ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense"),
                     ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
        name = name.replace(new, old)
    return name


def to_official(state: dict) -> dict:
    """transformers' names (4.x) -> facebookresearch/mae's: convert_vit_mae_to_pytorch.py's table, reversed."""
    out = {}
    for key, value in state.items():
        key = to_v4(key)
        m = re.match(r"(vit\.encoder\.layer|decoder\.decoder_layers)\.(\d+)\.attention\.attention\.(query|key|value)\.(\w+)", key)
        if m:
            blocks = "blocks" if m.group(1).startswith("vit") else "decoder_blocks"
            out.setdefault(f"{blocks}.{m.group(2)}.attn.qkv.{m.group(4)}", {})[m.group(3)] = value
            continue
        for hf_name, mae in (("vit.embeddings.cls_token", "cls_token"), ("decoder.mask_token", "mask_token"),
                             ("decoder.decoder_pos_embed", "decoder_pos_embed"),
                             ("vit.embeddings.position_embeddings", "pos_embed"),
                             ("vit.embeddings.patch_embeddings.projection", "patch_embed.proj"),
                             ("decoder.decoder_layers", "decoder_blocks"), ("vit.encoder.layer", "blocks"),
                             ("attention.output.dense", "attn.proj"), ("layernorm_before", "norm1"),
                             ("layernorm_after", "norm2"), ("intermediate.dense", "mlp.fc1"),
                             ("output.dense", "mlp.fc2"), ("decoder.decoder_embed", "decoder_embed"),
                             ("decoder.decoder_norm", "decoder_norm"), ("decoder.decoder_pred", "decoder_pred"),
                             ("vit.layernorm", "norm")):
            key = key.replace(hf_name, mae)
        out[key] = value
    return {k: torch.cat([v["query"], v["key"], v["value"]]) if isinstance(v, dict) else v for k, v in out.items()}


def save_layout(model, folder: Path, layout: str) -> Path:
    """``model`` saved as transformers 5's save_pretrained writes it, in transformers 4's file names,
    or in transformers 5's module names; with ImageNet's image processor settings."""
    folder.mkdir(parents=True)
    if layout == "transformers-5":
        model.save_pretrained(str(folder))
    else:
        rename = to_v4 if layout == "transformers-4" else (lambda n: n)
        save_file({rename(k): v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        model.config.to_json_file(str(folder / "config.json"))
    transformers.ViTImageProcessor(image_mean=MEAN, image_std=STD).save_pretrained(str(folder))
    return folder


def batch(model_config, n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    size, channels = model_config.img_size, model_config.in_chans
    images = torch.rand(n, channels, size, size, generator=g)
    patches = model_config.num_patches
    hidden = round(patches * 0.75)
    mask = torch.zeros(n, patches, dtype=torch.bool)
    for b in range(n):
        mask[b, torch.randperm(patches, generator=g)[:hidden]] = True
    return images, mask


def normalized(images, model_config):
    stat = lambda v: torch.tensor(v if isinstance(v, list) else [v]).view(1, -1, 1, 1)  # noqa: E731
    return (images - stat(model_config.pixel_mean)) / stat(model_config.pixel_std)


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@torch.no_grad()
def assert_parity(checkpoint, hf, images=None, mask=None, tol=1e-5):
    """The same predictions and loss as transformers under the same mask (HF keeps the patches of
    least noise: mask + a ramp keeps mto's order)."""
    m = checkpoint.config.model
    if images is None:
        images, mask = batch(m)
    ours = checkpoint.model(images, mask)
    pixels = normalized(images, m)
    if m.method == "mae":
        n = mask.shape[1]
        theirs = hf(pixel_values=pixels, noise=mask.float() + torch.arange(n) / (2 * n))
        assert torch.equal(theirs.mask.bool(), mask)
        assert relative(ours.pred, theirs.logits) < tol
    else:
        theirs = hf(pixel_values=pixels, bool_masked_pos=mask)
        assert relative(unpatchify(ours.pred, m.patch_size, m.in_chans), theirs.reconstruction) < tol
    assert abs(float(ours.loss) / float(theirs.loss) - 1) < tol, (float(ours.loss), float(theirs.loss))


@pytest.mark.parametrize("layout", ["transformers-5", "transformers-4", "transformers-5-modules"])
def test_mae_in_every_key_layout_imports_and_computes_what_transformers_computes(tmp_path, layout):
    hf = hf_mae(layer_norm_eps=1e-12)
    done = import_model(str(save_layout(hf, tmp_path / "hf", layout)), tmp_path / "ckpt")
    checkpoint = load_checkpoint(done.path)
    o, m = checkpoint.config.origin, checkpoint.config.model
    assert o.format == layout and o.source == str(tmp_path / "hf")
    assert m.layer_norm_eps == 1e-12 and m.pixel_mean == MEAN and m.pixel_std == STD and checkpoint.config.mask.ratio == 0.75
    assert (done.path / "card.md").read_text().startswith("# mae imported from")
    assert_parity(checkpoint, hf)


@pytest.mark.parametrize("layout", ["transformers-5", "transformers-5-modules"])
def test_simmim_imports_and_computes_what_transformers_computes(tmp_path, layout):
    hf = hf_simmim()
    checkpoint = load_checkpoint(import_model(str(save_layout(hf, tmp_path / "hf", layout)), tmp_path / "c").path)
    # transformers 5's save_pretrained writes a ViT in transformers 4's names (only MAE's decoder differs)
    assert checkpoint.config.origin.format == ("transformers-4" if layout == "transformers-5" else layout)
    assert checkpoint.config.model.method == "simmim"
    assert_parity(checkpoint, hf)


def test_the_official_mae_pth_layout_imports_and_computes_what_transformers_computes(tmp_path):
    hf = hf_mae(layer_norm_eps=1e-6)  # MAE's own LayerNorms
    file = tmp_path / "mae_visualize_vit_base.pth"
    torch.save({"model": to_official(hf.state_dict())}, file)
    done = import_model(str(file), tmp_path / "ckpt", ["model.num_heads=2", "model.decoder_heads=2"])
    checkpoint = load_checkpoint(done.path)
    assert checkpoint.config.origin.format == "mae-official" and not checkpoint.config.model.norm_pix_loss
    assert any("norm_pix_loss false from the file name" in n for n in done.notes)
    assert_parity(checkpoint, hf)
    # norm_pix_loss follows the pre-training file's name, and transformers computes the same with it
    hf_norm = hf_mae(layer_norm_eps=1e-6, norm_pix_loss=True)
    file = tmp_path / "mae_pretrain_vit_base_full.pth"
    torch.save({"model": to_official(hf_norm.state_dict())}, file)
    checkpoint = load_checkpoint(import_model(str(file), tmp_path / "n", ["model.num_heads=2",
                                                                          "model.decoder_heads=2"]).path)
    assert checkpoint.config.model.norm_pix_loss
    assert_parity(checkpoint, hf_norm)


def test_a_vit_b_shaped_mae_imports_with_parity_and_mto_analyze_prints_every_column_on_the_photos(tmp_path, capsys):
    from .test_cli import mto_here

    def mto(*args):
        done = mto_here(capsys, *args)
        assert done.returncode == 0, done.stderr
        return done

    shape = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 decoder_hidden_size=512, decoder_num_hidden_layers=8, decoder_num_attention_heads=16,
                 decoder_intermediate_size=2048, image_size=224, patch_size=16, num_channels=3)
    hf = hf_mae(**shape)
    hf.save_pretrained(str(tmp_path / "vit-mae-base"))
    out = mto("import", str(tmp_path / "vit-mae-base"), "--out", str(tmp_path / "ckpt"))
    assert "mae (224 x 224 x 3, width 768, depth 12)" in out.stdout
    assert "no preprocessor_config.json: normalised with ImageNet's mean and std" in out.stdout
    checkpoint = load_checkpoint(tmp_path / "ckpt")
    images, mask = batch(checkpoint.config.model, n=2)
    assert_parity(checkpoint, hf, images, mask, tol=1e-5)
    del checkpoint, hf
    table = mto("analyze", str(tmp_path / "ckpt")).stdout
    assert "8 photos bundled with scikit-image (astronaut, chelsea" in table and "centre-cropped" in table
    rows = [line for line in table.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == 9  # the decoder's input and its 8 layers
    assert all(len(r.split("|")) == 9 and "nan" not in r for r in rows)
    assert all(v != "-" for r in rows[1:] for v in r.split("|")[2:-1])  # every column of every layer


def test_export_to_transformers_loads_with_from_pretrained_and_gives_mto_s_loss(tmp_path):
    for name in ("mae", "simmim"):
        out = export_model(ROOT / "checkpoints" / name, "hf", tmp_path / name)
        checkpoint = load_checkpoint(ROOT / "checkpoints" / name)
        cls = transformers.ViTMAEForPreTraining if name == "mae" else transformers.ViTForMaskedImageModeling
        hf = cls.from_pretrained(str(out)).eval()
        processor = json.loads((out / "preprocessor_config.json").read_text())
        assert processor["image_mean"] == [checkpoint.config.model.pixel_mean]
        assert_parity(checkpoint, hf)
        # and back: the export imports to the same weights
        again = load_checkpoint(import_model(str(out), tmp_path / f"{name}-again").path)
        assert all(torch.equal(v, again.model.state_dict()[k]) for k, v in checkpoint.model.state_dict().items())


@torch.no_grad()
def test_an_mto_run_s_encoder_features_equal_under_transformers_its_masked_forward_does_not(tmp_path):
    """Hard recalibration lives in mto's forward pass, not in the weights."""
    for name in ("mae-mto", "simmim-mto"):
        checkpoint = load_checkpoint(ROOT / "checkpoints" / name)
        assert checkpoint.config.mto.hard_recalibration
        out = export_model(ROOT / "checkpoints" / name, "hf", tmp_path / name)
        m = checkpoint.config.model
        images, mask = batch(m)
        tokens, _ = checkpoint.model.encoder(checkpoint.model.normalize(images))
        if name == "mae-mto":
            hf = transformers.ViTMAEModel.from_pretrained(str(out), mask_ratio=0.0).eval()
            n = m.num_patches
            features = hf(pixel_values=normalized(images, m), noise=torch.arange(n).float().expand(3, n)).last_hidden_state
            full = transformers.ViTMAEForPreTraining.from_pretrained(str(out)).eval()
            theirs = full(pixel_values=normalized(images, m), noise=mask.float() + torch.arange(n) / (2 * n)).loss
        else:
            hf = transformers.ViTModel.from_pretrained(str(out), add_pooling_layer=False).eval()
            features = hf(pixel_values=normalized(images, m)).last_hidden_state
            full = transformers.ViTForMaskedImageModeling.from_pretrained(str(out)).eval()
            theirs = full(pixel_values=normalized(images, m), bool_masked_pos=mask).loss
        assert relative(tokens, features) < 1e-5, name
        ours = checkpoint.model(images, mask).loss
        assert abs(float(ours) / float(theirs) - 1) > 1e-3, (name, float(ours), float(theirs))


def test_export_refuses_methods_transformers_has_no_architecture_for(tmp_path):
    with pytest.raises(InteropError, match="conmim has no transformers architecture"):
        export_model(ROOT / "checkpoints" / "conmim", "hf", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def _refused(tmp_path, source, match, out_name="out"):
    with pytest.raises(InteropError, match=match) as raised:
        import_model(str(source), tmp_path / out_name)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / out_name).exists()  # nothing written


def test_bad_sources_get_one_line_and_nothing_is_written(tmp_path):
    good = save_layout(hf_mae(), tmp_path / "good", "transformers-5")
    truncated = shutil.copytree(good, tmp_path / "truncated")
    blob = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(blob[:len(blob) // 2])
    _refused(tmp_path, truncated, "not a readable safetensors file")
    garbage = shutil.copytree(good, tmp_path / "garbage")
    (garbage / "model.safetensors").write_bytes(b"PK\x03\x04 this is a zip, not safetensors" * 10)
    _refused(tmp_path, garbage, "not a readable safetensors file")
    for kind, name in (("swin", "Swin"), ("beit", "BEiT"), ("data2vec-vision", "relative position bias")):
        other = shutil.copytree(good, tmp_path / kind)
        config = json.loads((other / "config.json").read_text())
        (other / "config.json").write_text(json.dumps({**config, "model_type": kind}))
        _refused(tmp_path, other, name)
    classifier = shutil.copytree(good, tmp_path / "classifier")
    config = json.loads((classifier / "config.json").read_text())
    (classifier / "config.json").write_text(json.dumps({**config, "model_type": "vit",
                                                        "architectures": ["ViTForImageClassification"]}))
    _refused(tmp_path, classifier, "without the masked-image-modeling head")
    shapes = shutil.copytree(good, tmp_path / "shapes")
    (shapes / "config.json").write_text(json.dumps({**config, "intermediate_size": 128,
                                                    "decoder_intermediate_size": 128}))
    _refused(tmp_path, shapes, r"of another shape \(e\.g\. .*in the file")
    huge = shutil.copytree(good, tmp_path / "huge")
    (huge / "config.json").write_text(json.dumps({**config, "hidden_size": 65536, "intermediate_size": 131072,
                                                  "num_hidden_layers": 1000, "num_attention_heads": 16}))
    _refused(tmp_path, huge, "cannot fit in memory")
    _refused(tmp_path, tmp_path / "nothing-here", "does not exist")
    _refused(tmp_path, good / "model.safetensors", "a weights file alone")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("keep me")
    with pytest.raises(InteropError, match="holds files; nothing was written"):
        import_model(str(good), tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    assert (tmp_path / "taken" / "notes.txt").read_text() == "keep me"
    _refused(tmp_path, ROOT / "checkpoints" / "mae", "already an mto checkpoint")


class _Hostile:
    """Unpickling this runs code: it writes a file. weights_only must refuse it before it does."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("the pickle ran",))


def test_a_pth_with_pickled_objects_is_refused_by_weights_only_and_never_run(tmp_path):
    marker = tmp_path / "ran.txt"
    hostile = tmp_path / "mae_pretrain_vit_base_full.pth"
    with open(hostile, "wb") as handle:
        pickle.dump({"model": {"cls_token": torch.zeros(1)}, "args": _Hostile(str(marker))}, handle)
    assert not marker.exists()
    _refused(tmp_path, hostile, "holds pickled objects beyond tensors")
    assert not marker.exists()
    encoder_only = tmp_path / "mae_pretrain_vit_base.pth"
    state = {k: v for k, v in to_official(hf_mae().state_dict()).items() if not k.startswith(("decoder", "mask"))}
    torch.save({"model": state}, encoder_only)
    _refused(tmp_path, encoder_only, r"encoder only .*mae_pretrain_vit_base_full\.pth")
    (tmp_path / "cut.pth").write_bytes(encoder_only.read_bytes()[:1000])
    _refused(tmp_path, tmp_path / "cut.pth", "not a readable PyTorch checkpoint")


def _hub_env(tmp_path):
    return {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home"),
            "HF_HUB_OFFLINE": "1"}


def test_a_hub_id_is_read_from_huggingface_hub_s_cache_with_its_revision_and_offline_says_so(tmp_path):
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-mae"
    snapshot = save_layout(hf_mae(), repo / "snapshots" / revision, "transformers-5")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    assert snapshot.is_dir()
    cli = [sys.executable, "-m", "mto_core.cli", "import"]
    done = subprocess.run([*cli, "someone/tiny-mae", "--out", str(tmp_path / "ckpt")], capture_output=True,
                          text=True, env=_hub_env(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"revision {revision}" in done.stdout
    origin = load_checkpoint(tmp_path / "ckpt").config.origin
    assert (origin.source, origin.revision) == ("someone/tiny-mae", revision)
    missing = subprocess.run([*cli, "facebook/vit-mae-base", "--out", str(tmp_path / "x")], capture_output=True,
                             text=True, env=_hub_env(tmp_path), timeout=300)
    assert missing.returncode == 1 and not (tmp_path / "x").exists()
    assert missing.stderr.count("\n") == 1 and "HF_HUB_OFFLINE is set" in missing.stderr


@pytest.mark.parametrize("content", [b"hello world\nthis is text\n", b"abc", b"K", b"}q\x00"])
def test_a_pth_that_is_not_a_pickle_is_one_line_through_the_command(tmp_path, capsys, content):
    from .test_cli import mto_here

    fake = tmp_path / "notes.pth"
    fake.write_bytes(content)
    done = mto_here(capsys, "import", str(fake), "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert re.search(r"notes\.pth is not a (readable )?PyTorch checkpoint", done.stderr), done.stderr
    assert not (tmp_path / "out").exists()
