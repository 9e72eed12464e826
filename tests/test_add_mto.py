"""mto_core.add_mto: MTO on transformers' ViTMAEForPreTraining and ViTForMaskedImageModeling and on an
MAE in facebookresearch/mae's layout (timm blocks, written here), against mto's own ``mae-mto`` and
``simmim-mto``: the same loss and the same gradient of every parameter (1e-5 relative) given the
same weights and mask, each MTO part alone and all together; nothing changes with every part off
or after ``remove()``.

Every model is built here at random, width 32, depth 2; nothing is downloaded."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import mto_core  # noqa: F401  (torchvision fix before transformers and timm)
from mto_core import PlugError, add_mto
from mto_core.config import MTOConfig, apply_overrides, preset
from mto_core.interop import hf as hf_interop
from mto_core.interop.official_mae import to_mto_state
from mto_core.models.build import build_model
from mto_core.models.vit import patchify, sincos_pos_embed

import transformers  # noqa: E402, I001  (after mto_core's torchvision fix)
from timm.layers import PatchEmbed  # noqa: E402
from timm.models.vision_transformer import Block  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

transformers.logging.set_verbosity_error()

SMALL_MAE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
                 decoder_intermediate_size=64, image_size=32, patch_size=4, num_channels=3, mask_ratio=0.75)
SMALL_VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                 patch_size=4, num_channels=3, encoder_stride=4)
ON = preset("mae-mto").mto
# every part on, L_rec included (it reads the layers after the recalibrated ones), and each alone
PARTS = {
    "all": dataclasses.replace(ON, recalibration_weight=0.5, recalibrated_layers=1, depth=2),
    "hard recalibration": MTOConfig(hard_recalibration=True),
    "L_sing": MTOConfig(singularity_weight=0.1),
    "L_ent": MTOConfig(entropy_weight=0.5),
    "L_rec": MTOConfig(recalibration_weight=0.5),
}


def hf_mae(seed=0, attn="sdpa", **config):
    torch.manual_seed(seed)
    model = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**{**SMALL_MAE, **config}))
    model.set_attn_implementation(attn)
    with torch.no_grad():  # a fresh ViTMAE leaves its fixed tables and mask token at zero: give them values
        model.vit.embeddings.position_embeddings.normal_()
        model.decoder.decoder_pos_embed.normal_()
        model.decoder.mask_token.normal_()
    return model.eval()


def hf_simmim(seed=0, attn="sdpa", **config):
    torch.manual_seed(seed)
    model = transformers.ViTForMaskedImageModeling(transformers.ViTConfig(**{**SMALL_VIT, **config}))
    model.set_attn_implementation(attn)
    with torch.no_grad():
        model.vit.embeddings.mask_token.normal_()
    return model.eval()


class LayoutMAE(nn.Module):
    """An MAE in facebookresearch/mae's layout and interface, on timm's blocks (written for these tests)."""

    def __init__(self, img=32, patch=4, chans=3, dim=32, depth=2, heads=2, ddim=32, ddepth=2, dheads=2, mlp=2.0):
        super().__init__()
        norm = functools.partial(nn.LayerNorm, eps=1e-6)
        self.patch_size, grid = patch, img // patch
        self.patch_embed = PatchEmbed(img, patch, chans, dim)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(sincos_pos_embed(dim, grid), requires_grad=False)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp, qkv_bias=True, norm_layer=norm) for _ in range(depth))
        self.norm = norm(dim)
        self.decoder_embed = nn.Linear(dim, ddim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, ddim) * 0.02)
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(ddim, grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(Block(ddim, dheads, mlp, qkv_bias=True, norm_layer=norm)
                                            for _ in range(ddepth))
        self.decoder_norm = norm(ddim)
        self.decoder_pred = nn.Linear(ddim, patch * patch * chans)

    def random_masking(self, x, mask_ratio):
        b, n, d = x.shape
        keep = int(n * (1 - mask_ratio))
        order = torch.argsort(torch.rand(b, n, device=x.device), dim=1)
        ids_restore = torch.argsort(order, dim=1)
        kept = torch.gather(x, 1, order[:, :keep, None].expand(-1, -1, d))
        mask = torch.ones(b, n, device=x.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def forward_encoder(self, imgs, mask_ratio):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]
        x, mask, ids_restore = self.random_masking(x, mask_ratio)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)
        hidden = self.mask_token.expand(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], -1)
        tokens = torch.cat([x[:, 1:], hidden], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], tokens], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]

    def forward(self, imgs, mask_ratio=0.75):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)
        loss = ((pred - patchify(imgs, self.patch_size)) ** 2).mean(-1)
        return (loss * mask).sum() / mask.sum(), pred, mask


def layout_mae(seed=0):
    torch.manual_seed(seed)
    return LayoutMAE().eval()


def batch(n=3, seed=1, hidden=48, patches=64):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g)
    mask = torch.zeros(n, patches, dtype=torch.bool)
    for b in range(n):
        mask[b, torch.randperm(patches, generator=g)[:hidden]] = True
    return images, mask


def twin(model, mto: MTOConfig):
    """mto's own MAE or SimMIM holding ``model``'s weights, pixels taken as they are (mean 0, std 1)."""
    if isinstance(model, LayoutMAE):
        config = apply_overrides(preset("mae"), [
            "model.img_size=32", "model.in_chans=3", "model.embed_dim=32", "model.depth=2", "model.num_heads=2",
            "model.decoder_dim=32", "model.decoder_depth=2", "model.decoder_heads=2", "model.mlp_ratio=2.0",
            "model.pixel_mean=0", "model.pixel_std=1"])
        weights = to_mto_state(model.state_dict())
    else:
        arch = type(model).__name__
        config, _ = hf_interop.run_config(model.config.to_dict(), arch, {"do_normalize": False}, Path("test"))
        weights = hf_interop.from_hf_state(model.state_dict(), arch, config)
    config.mto = mto
    ours = build_model(config.model, config.mto)
    ours.load_state_dict(weights)
    return ours.eval(), config


def run(model, images, mask):
    """The plugged or unplugged model's loss on ``images`` under ``mask`` (True = hidden)."""
    if isinstance(model, transformers.ViTMAEForPreTraining):
        n = mask.shape[1]  # transformers keeps the patches of least noise: mask + a ramp keeps mto's order
        return model(pixel_values=images, noise=mask.float() + torch.arange(n) / (2 * n)).loss
    if isinstance(model, transformers.ViTForMaskedImageModeling):
        return model(pixel_values=images, bool_masked_pos=mask).loss
    return model(images, 0.75)[0]


def grads(model) -> dict[str, torch.Tensor]:
    return {k: (p.grad if p.grad is not None else torch.zeros_like(p)).clone() for k, p in model.named_parameters()}


def in_their_names(ours, config, model) -> dict[str, torch.Tensor]:
    """mto's gradients under ``model``'s parameter names; NaN for what mto keeps fixed (transformers'
    ViT learns its position table, mto's SimMIM keeps sin-cos positions)."""
    g = {k: v if p.requires_grad else torch.full_like(v, float("nan"))
         for (k, v), p in zip(grads(ours).items(), ours.parameters())}
    if isinstance(model, LayoutMAE):
        return {k.removeprefix("encoder."): v for k, v in g.items()}
    return hf_interop.to_hf_state(g, config)


def relative(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def without_key_bias(key: str, grad: torch.Tensor) -> torch.Tensor:
    """The gradient less its key-bias part, zero in exact arithmetic (softmax ignores a shift shared
    by a query's logits) and left by float rounding as noise of 1e-16 to 1e-10."""
    if key.endswith("k_proj.bias"):
        return grad[:0]
    if key.endswith("qkv.bias"):
        q, _, v = grad.chunk(3)
        return torch.cat([q, v])
    return grad


MODELS = {"ViTMAEForPreTraining": hf_mae, "ViTForMaskedImageModeling": hf_simmim, "mae-layout (timm)": layout_mae}


def layout_batch(model, seed=1):
    """Images, and the mask the layout model's own random_masking will draw under seed ``seed``."""
    images, _ = batch()
    torch.manual_seed(seed)
    _, mask, _ = model.random_masking(torch.zeros(3, 64, 1), 0.75)
    return images, mask.bool()


def loss_and_grads(model, images, mask, seed=1):
    model.zero_grad()
    torch.manual_seed(seed)
    loss = run(model, images, mask)
    loss.backward()
    return loss.detach(), grads(model)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("part", PARTS)
def test_loss_and_every_gradient_equal_mto_s_own(name, part):
    model = MODELS[name]()
    images, mask = layout_batch(model) if name.startswith("mae-layout") else batch()
    handle = add_mto(model, PARTS[part])
    loss, theirs = loss_and_grads(model, images, mask)
    ours, config = twin(model, handle.config)
    out = ours(images, mask)
    out.loss.backward()
    assert abs(float(loss) / float(out.loss.detach()) - 1) < 1e-5, (float(loss), float(out.loss))
    assert handle.terms.keys() == out.mto.keys()
    assert all(abs(float(handle.terms[k]) / float(out.mto[k].detach()) - 1) < 1e-5 for k in out.mto)
    expected = in_their_names(ours, config, model)
    for key, value in theirs.items():
        if model.get_parameter(key).requires_grad and not expected[key].isnan().any():
            a, b = without_key_bias(key, value), without_key_bias(key, expected[key])
            assert not b.numel() or relative(a, b) < 1e-5, (key, relative(a, b))


@pytest.mark.parametrize("name", MODELS)
def test_every_part_off_equals_the_unplugged_model_and_remove_gives_it_back(name):
    model = MODELS[name]()
    images, mask = layout_batch(model) if name.startswith("mae-layout") else batch()
    untouched = copy.deepcopy(model)
    before = loss_and_grads(model, images, mask)
    config_before = model.config.to_dict() if hasattr(model, "config") else None
    handle = add_mto(model, MTOConfig())
    off = loss_and_grads(model, images, mask)
    assert torch.equal(off[0], before[0]) and all(torch.equal(off[1][k], v) for k, v in before[1].items())
    assert handle.terms == {}
    handle = _replug(model, handle)
    assert float(loss_and_grads(model, images, mask)[0]) != float(before[0])  # MTO on: the loss moves
    handle.remove()
    handle.remove()  # twice: nothing more
    after = loss_and_grads(model, images, mask)
    assert torch.equal(after[0], before[0]) and all(torch.equal(after[1][k], v) for k, v in before[1].items())
    if config_before is not None:
        assert model.config.to_dict() == config_before
        stack = model.decoder if isinstance(model, transformers.ViTMAEForPreTraining) else model
        assert stack.config._attn_implementation == "sdpa"
    hooks = ("_forward_hooks", "_forward_pre_hooks")
    assert all(not getattr(m, h) for m in model.modules() for h in hooks)
    assert vars(model).keys() == vars(untouched).keys()
    assert all(getattr(a, "fused_attn", None) == getattr(b, "fused_attn", None)
               for a, b in zip(model.modules(), untouched.modules()))


def _replug(model, handle):
    handle.remove()
    return add_mto(model)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_either_attention_implementation_gives_mto_s_numbers(attn):
    for make in (hf_mae, hf_simmim):
        model = make(attn=attn)
        images, mask = batch()
        handle = add_mto(model)
        loss, _ = loss_and_grads(model, images, mask)
        ours, _ = twin(model, handle.config)
        assert abs(float(loss) / float(ours(images, mask).loss.detach()) - 1) < 1e-5


@torch.no_grad()
@pytest.mark.parametrize("name", MODELS)
def test_under_hard_recalibration_the_visible_tokens_do_not_move_with_the_mask_token(name):
    model = MODELS[name]()
    images, mask = layout_batch(model) if name.startswith("mae-layout") else batch()
    add_mto(model, MTOConfig(hard_recalibration=True))
    token = model.vit.embeddings.mask_token if name == "ViTForMaskedImageModeling" else (
        model.decoder.mask_token if name == "ViTMAEForPreTraining" else model.mask_token)

    def predictions():
        torch.manual_seed(1)
        if name == "ViTMAEForPreTraining":
            return model(pixel_values=images, noise=mask.float() + torch.arange(64) / 128).logits
        if name == "ViTForMaskedImageModeling":
            return model(pixel_values=images, bool_masked_pos=mask).reconstruction.unfold(2, 4, 4).unfold(3, 4, 4)
        return model(images, 0.75)[1]

    first = predictions()
    token.add_(torch.randn_like(token))
    second = predictions()
    if name == "ViTForMaskedImageModeling":  # (B, C, 8, 8, 4, 4) -> per patch
        first, second = first.permute(0, 2, 3, 1, 4, 5).flatten(1, 2), second.permute(0, 2, 3, 1, 4, 5).flatten(1, 2)
    assert torch.equal(first[~mask], second[~mask])
    assert not torch.allclose(first[mask], second[mask])


BF16_TOLERANCE = 1e-3  # a quarter of bf16's 2^-8 rounding: the loss is a mean, its errors average out


@pytest.mark.parametrize("name", ["ViTMAEForPreTraining", "ViTForMaskedImageModeling"])
def test_bf16_autocast_gives_mto_s_loss_to_bf16_precision(name):
    model = MODELS[name]()
    images, mask = batch()
    handle = add_mto(model)
    ours, _ = twin(model, handle.config)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = run(model, images, mask)
        expected = ours(images, mask).loss
    loss.backward()
    assert abs(float(loss) / float(expected) - 1) < BF16_TOLERANCE, (float(loss), float(expected))
    assert abs(float(loss) / float(ours(images, mask).loss) - 1) < BF16_TOLERANCE
    assert set(handle.terms) == {"sing", "ent"}
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["ViTMAEForPreTraining", "ViTForMaskedImageModeling"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(name):
    model = MODELS[name]().train()
    images, mask = batch()
    add_mto(model)
    plain = loss_and_grads(model, images, mask)
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed = loss_and_grads(model, images, mask)
    assert abs(float(checkpointed[0]) / float(plain[0]) - 1) < 1e-6
    assert all(relative(checkpointed[1][k], v) < 1e-5 for k, v in plain[1].items() if v.abs().max() > 0)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    with pytest.raises(PlugError, match="use_reentrant"):
        loss_and_grads(model, images, mask)


def test_trainer_scales_the_mto_loss_under_gradient_accumulation_as_without_mto(tmp_path):
    """One SGD step of Trainer on 4 samples as 2 micro-batches of 2: the update is the same multiple
    of the summed micro-batch gradients with MTO as without (Trainer cannot tell the loss has more)."""
    images, mask = batch(n=4)
    noise = mask.float() + torch.arange(64) / 128

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"pixel_values": images[i], "noise": noise[i]}

    def step(plugged: bool) -> float:
        model = hf_mae().train()
        if plugged:
            add_mto(model)
        start = {k: v.detach().clone() for k, v in model.named_parameters()}
        model.zero_grad()  # the summed micro-batch gradient = 2 x the gradient of the 4-sample mean
        (2 * model(pixel_values=images, noise=noise).loss).backward()
        summed = model.decoder.decoder_pred.weight.grad.clone()
        model.zero_grad()
        args = transformers.TrainingArguments(
            str(tmp_path / str(plugged)), per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=1,
            learning_rate=0.1, optim="sgd", lr_scheduler_type="constant", weight_decay=0.0, max_grad_norm=0.0,
            report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", seed=0)
        transformers.Trainer(model=model, args=args, train_dataset=Samples()).train()
        moved = start["decoder.decoder_pred.weight"] - model.decoder.decoder_pred.weight.detach()
        return float((moved * summed).sum() / (summed * summed).sum() / 0.1)

    without, with_mto = step(False), step(True)
    assert without in (pytest.approx(0.5, rel=1e-4), pytest.approx(1.0, rel=1e-4))
    assert with_mto == pytest.approx(without, rel=1e-4)


def test_the_mto_config_travels_in_config_json(tmp_path):
    model = hf_mae()
    config = dataclasses.replace(ON, entropy_weight=0.25, depth=2)
    add_mto(model, config)
    model.save_pretrained(str(tmp_path / "m"))
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["mto"] == dataclasses.asdict(config)
    assert saved.get("_attn_implementation") in (None, "sdpa")
    loaded = transformers.ViTMAEForPreTraining.from_pretrained(str(tmp_path / "m"))
    assert add_mto(loaded).config == config
    fresh = hf_mae()
    assert add_mto(fresh).config == preset("mae-mto").mto


@pytest.mark.parametrize("bad, match", [
    (nn.Linear(2, 2), "add_mto supports transformers' ViTMAEForPreTraining"),
    ("model", "add_mto takes a torch model"),
])
def test_models_of_other_kinds_are_refused_in_one_line(bad, match):
    with pytest.raises(PlugError, match=match) as error:
        add_mto(bad)
    assert "\n" not in str(error.value)


def test_bad_input_is_refused_in_one_line_and_the_model_is_left_unchanged():
    vit = transformers.ViTModel(transformers.ViTConfig(**{k: v for k, v in SMALL_VIT.items() if k != "encoder_stride"}))
    swin = transformers.SwinForMaskedImageModeling(transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=16, depths=[1, 1], num_heads=[1, 1], window_size=4))
    beit = transformers.BeitForMaskedImageModeling(transformers.BeitConfig(
        image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    for other in (vit, swin, beit):
        with pytest.raises(PlugError, match=f"got a {type(other).__name__}"):
            add_mto(other)
    model = hf_mae()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    config = model.config.to_dict()
    for mto, match in [(MTOConfig(entropy_weight=-1.0), "mto.entropy_weight must be >= 0"),
                       (MTOConfig(depth=3), "mto.depth must be between 0 and 2"),
                       ("mae-mto", "mto must be an MTOConfig")]:
        with pytest.raises(PlugError, match=match) as error:
            add_mto(model, mto)
        assert "\n" not in str(error.value) and "left unchanged" in str(error.value)
    with pytest.raises(PlugError, match="torch.compile"):
        add_mto(torch.compile(model))
    assert model.config.to_dict() == config and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model.decoder._forward_pre_hooks
    add_mto(model)
    with pytest.raises(PlugError, match="already has MTO"):
        add_mto(model)


def test_mto_import_reads_the_saved_mto_config_and_mto_export_writes_it(tmp_path):
    sys.path.insert(0, str(ROOT / "app"))
    from logic.labels import describe_config
    from mto_core import load_checkpoint
    from mto_core.interop.importer import export_model, import_model

    model = hf_mae()
    config = dataclasses.replace(ON, singularity_weight=0.3)
    add_mto(model, config)
    model.save_pretrained(str(tmp_path / "hf"))
    imported = load_checkpoint(import_model(str(tmp_path / "hf"), tmp_path / "ckpt").path)
    assert imported.config.preset == "mae-mto" and imported.config.mto == config
    assert imported.model.mto_config == config and describe_config(imported.config).label == "MAE + MTO"
    assert load_checkpoint(import_model(str(save_plain(tmp_path)), tmp_path / "plain").path).config.preset == "mae"
    # and back: an mto MTO run exported, loaded by transformers and plugged computes the run's own loss
    root = Path(__file__).resolve().parent.parent / "checkpoints"
    for name in ("mae-mto", "simmim-mto"):
        own = load_checkpoint(root / name)
        out = export_model(root / name, "hf", tmp_path / name)
        assert json.loads((out / "config.json").read_text())["mto"] == dataclasses.asdict(own.config.mto)
        cls = transformers.ViTMAEForPreTraining if name == "mae-mto" else transformers.ViTForMaskedImageModeling
        theirs = cls.from_pretrained(str(out)).eval()
        assert add_mto(theirs).config == own.config.mto
        m = own.config.model
        images, mask = batch(n=2, patches=m.num_patches, hidden=round(m.num_patches * 0.75))
        images = images[:, :m.in_chans, :m.img_size, :m.img_size]
        with torch.no_grad():
            expected = own.model(images, mask).loss
            got = run(theirs, (images - m.pixel_mean) / m.pixel_std, mask)
        assert abs(float(got) / float(expected) - 1) < 1e-5, (name, float(got), float(expected))


def save_plain(tmp_path):
    hf_mae().save_pretrained(str(tmp_path / "plain-hf"))
    return tmp_path / "plain-hf"


def test_a_transformers_without_attention_interface_is_refused_and_the_model_left_unchanged(monkeypatch):
    model = hf_mae()
    config = model.config.to_dict()
    monkeypatch.setattr(transformers.AttentionInterface, "register", None)  # as in a transformers without it
    with pytest.raises(PlugError, match="has no AttentionInterface.register") as error:
        add_mto(model)
    assert "\n" not in str(error.value)
    assert model.config.to_dict() == config and model.decoder.config._attn_implementation == "sdpa"
    assert not model._forward_hooks and not model._forward_pre_hooks
    monkeypatch.undo()
    assert add_mto(model).active  # nothing was left half done


def test_a_mim_vit_whose_samples_hide_different_counts_gives_mto_s_numbers_from_full_maps():
    """Equal counts: MTO reads only the rows its terms need (fused kernels); unequal: full maps."""
    model = hf_simmim()
    images, mask = batch()
    mask[0, :8] = True
    mask[1, :] = False
    mask[1, :20] = True
    assert len(set(mask.sum(1).tolist())) == 3
    handle = add_mto(model, PARTS["all"])
    loss, theirs = loss_and_grads(model, images, mask)
    ours, config = twin(model, handle.config)
    out = ours(images, mask)
    out.loss.backward()
    assert abs(float(loss) / float(out.loss.detach()) - 1) < 1e-5
    expected = in_their_names(ours, config, model)
    assert all(relative(without_key_bias(k, v), without_key_bias(k, expected[k])) < 1e-5
               for k, v in theirs.items() if not expected[k].isnan().any() and without_key_bias(k, v).numel())


@pytest.mark.parametrize("name", ["ViTMAEForPreTraining", "ViTForMaskedImageModeling"])
def test_asking_for_the_layers_outputs_keeps_token_order_and_mto_s_numbers(name):
    """Visible-first through the stack (the default) and a gather per layer (when the caller reads
    the layers' outputs) give the same loss, terms and logits in token order."""
    model = MODELS[name]()
    images, mask = batch()
    handle = add_mto(model, PARTS["all"])
    n = mask.shape[1]
    inputs = ({"noise": mask.float() + torch.arange(n) / (2 * n)} if name.startswith("ViTMAE")
              else {"bool_masked_pos": mask})
    fast = model(pixel_values=images, **inputs)
    fast_terms = dict(handle.terms)
    full = model(pixel_values=images, output_hidden_states=True, **inputs)
    assert abs(float(fast.loss) / float(full.loss) - 1) < 1e-5
    assert all(abs(float(fast_terms[k]) / float(handle.terms[k]) - 1) < 1e-5 for k in handle.terms)
    key = "logits" if name.startswith("ViTMAE") else "reconstruction"
    assert relative(fast[key], full[key]) < 1e-5
