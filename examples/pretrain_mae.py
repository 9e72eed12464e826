"""Pre-train transformers' ViTMAE with MTO through an unchanged ``transformers.Trainer``, on any image folder.

One call puts MTO on the model (``mto_core.add_mto``); the rest is the usual recipe of transformers'
``run_mae.py``: RandomResizedCrop(scale 0.2-1, bicubic), horizontal flip, normalisation; AdamW with
lr = base_lr x total batch / 256, weight decay 0.05, cosine schedule with warmup.

    python examples/pretrain_mae.py --data photos/ --out runs/vit-mae-mto
    torchrun --nproc_per_node 4 examples/pretrain_mae.py --data photos/ --out runs/vit-mae-mto
    accelerate launch --multi_gpu --num_processes 4 examples/pretrain_mae.py --data photos/ --out runs/vit-mae-mto

Several nodes: torchrun's ``--nnodes``/``--node_rank``/``--rdzv_endpoint`` (or accelerate's config) as for
any Trainer script. CPUs talk over gloo, GPUs over nccl. ``--model`` starts from a saved ViTMAE folder
(``from_pretrained``; a folder saved after ``add_mto`` brings its MTO config back), otherwise a new
model of the shape given. The output folder is what ``save_pretrained`` writes, its config.json holding
the MTO config, plus ``preprocessor_config.json``: ``mto import OUT --out CKPT`` reads it as ``mae-mto``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's mto_core, run from anywhere
import mto_core  # noqa: E402  (first: its torchvision fix runs before transformers is imported)
from mto_core.config import ConfigError, apply_overrides, preset  # noqa: E402

import torch  # noqa: E402, I001
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class ImageFolder(torch.utils.data.Dataset):
    """Every image file under ``root`` (sub-folders included), as ``{"pixel_values": (3, S, S)}``."""

    def __init__(self, root: Path, transform) -> None:
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        with Image.open(self.files[i]) as image:
            return {"pixel_values": self.transform(image.convert("RGB"))}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="a folder of images (any depth)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--model", default="", help="a ViTMAE folder to start from (default: a new model)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--decoder-width", type=int, default=512)
    p.add_argument("--decoder-depth", type=int, default=8)
    p.add_argument("--decoder-heads", type=int, default=16)
    p.add_argument("--mask-ratio", type=float, default=0.75)
    p.add_argument("--norm-pix-loss", action="store_true")
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--accum", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--base-lr", type=float, default=1.5e-4, help="lr = base_lr x total batch / 256")
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-ratio", type=float, default=0.05)
    p.add_argument("--epochs", type=float, default=800)
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-mto", action="store_true", help="train the plain MAE (the baseline)")
    p.add_argument("--set", action="append", default=[], metavar="mto.KEY=VALUE",
                   help="an MTO setting, e.g. --set mto.entropy_weight=0.05 (keys: mto_core.config.MTOConfig)")
    return p.parse_args(argv)


def build_model(args: argparse.Namespace) -> transformers.ViTMAEForPreTraining:
    if args.model:
        return transformers.ViTMAEForPreTraining.from_pretrained(args.model, mask_ratio=args.mask_ratio)
    config = transformers.ViTMAEConfig(
        image_size=args.image_size, patch_size=args.patch_size, num_channels=3, hidden_size=args.width,
        num_hidden_layers=args.depth, num_attention_heads=args.heads, intermediate_size=4 * args.width,
        decoder_hidden_size=args.decoder_width, decoder_num_hidden_layers=args.decoder_depth,
        decoder_num_attention_heads=args.decoder_heads, decoder_intermediate_size=4 * args.decoder_width,
        mask_ratio=args.mask_ratio, norm_pix_loss=args.norm_pix_loss, layer_norm_eps=1e-6)
    model = transformers.ViTMAEForPreTraining(config)
    with torch.no_grad():  # a new transformers 5 ViTMAE leaves its sin-cos tables and mask token at zero
        model.vit.embeddings.initialize_weights()
        model.decoder.initialize_weights(model.vit.embeddings.patch_embeddings.num_patches)
    return model


class LogTerms(transformers.TrainerCallback):
    """MTO's unweighted terms of the last micro-batch beside Trainer's own loss in each log row."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.handle is not None and state.log_history:
            state.log_history[-1].update({f"mto_{k}": round(float(v), 6) for k, v in self.handle.terms.items()})


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    files = ImageFolder(args.data, None).files if args.data.is_dir() else []
    if not files:
        print(f"error: {args.data} holds no images ({', '.join(sorted(SUFFIXES))}); give a folder of images",
              file=sys.stderr)
        return 2
    model = build_model(args)
    handle = None
    if not args.no_mto:
        mto = None
        if args.set:
            try:
                mto = apply_overrides(preset("mae-mto"), args.set).mto
            except ConfigError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
        handle = mto_core.add_mto(model, mto)
    size = model.config.image_size
    dataset = ImageFolder(args.data, transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]))
    cuda = torch.cuda.is_available()
    training = transformers.TrainingArguments(
        output_dir=str(args.out), per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.accum, learning_rate=args.base_lr, weight_decay=args.weight_decay,
        lr_scheduler_type="cosine", warmup_steps=args.warmup_ratio, num_train_epochs=args.epochs,
        max_steps=args.max_steps, logging_steps=args.log_every, save_strategy="epoch" if args.max_steps < 0 else "no",
        dataloader_num_workers=args.workers, remove_unused_columns=False, report_to=[], seed=args.seed,
        use_cpu=not cuda, disable_tqdm=True,
        ddp_backend=("nccl" if cuda else "gloo") if int(os.environ.get("WORLD_SIZE", "1")) > 1 else None)
    # run_mae.py's rule: the learning rate scales with the total batch over every process
    total = args.batch_size * args.accum * training.world_size
    training.learning_rate = args.base_lr * total / 256
    trainer = transformers.Trainer(model=model, args=training, train_dataset=dataset,
                                   callbacks=[LogTerms(handle)])
    trainer.train()
    trainer.save_model(str(args.out))
    if training.process_index == 0:
        transformers.ViTImageProcessor(do_resize=True, size={"height": size, "width": size}, image_mean=MEAN,
                                       image_std=STD).save_pretrained(str(args.out))
        trainer.state.save_to_json(str(args.out / "trainer_state.json"))  # the log rows, MTO's terms included
        mto = "MTO " + str(handle.config) if handle else "no MTO"
        print(f"saved {args.out} ({training.world_size} process(es), total batch {total}, lr "
              f"{training.learning_rate:.3g}, {mto}); read it into mto with: mto import {args.out} --out CKPT")
    if torch.distributed.is_initialized():  # every rank leaves together: no gloo thread torn down mid-exit
        torch.distributed.barrier()
        # Freeing DDP's reducer can deadlock on gloo: it joins gloo's loop thread while holding the GIL,
        # and that thread waits for the GIL to free a finished all-gather. Every file is written and
        # every rank is past the barrier, so each leaves without running destructors.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
