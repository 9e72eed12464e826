"""Train the eight checkpoints shipped in checkpoints/ (every preset) with one identical budget,
and write a card for each (exact command, data, wall time, hardware, probe accuracy).

Usage: python3 scripts/make_checkpoints.py [--epochs 4] [--train-limit 20000] [--only simmim ...]
       python3 scripts/make_checkpoints.py --only mae-rgb mae-rgb-mto simmim-rgb simmim-rgb-mto
                                                 (the colour ones: tiny-rgb on photo crops, --colour-steps)
       python3 scripts/make_checkpoints.py --probes-only [--only ...]   (re-measure the cards' probe line)
       python3 scripts/make_checkpoints.py --convert-only [--only ...]  (store shipped weights in
                                                  --weights' dtype and thin traces/, training nothing)
Runs land in runs/shipped/<preset>; the checkpoint folders keep weights (float16 by default: the
loader copies them into the float32 model), config, metrics (with the trace rows of
train.trace_every), the token snapshots (traces/, every k-th kept so that a folder's snapshots stay
within TRACE_BYTES), card. Training prints the probes of the run's float32 weights and of the
shipped ones; the card gives the shipped ones.

The colour checkpoints (COLOUR: ``<method>-rgb[-mto]``) are the tiny-rgb size trained on photo crops
(data.dataset=photo-crops, astronaut, chelsea, coffee and rocket held out) for --colour-steps steps;
photos have no classes to probe, so their cards give the masked-patch error on the four held-out
photos beside the mean-colour and biharmonic-inpainting floors (mto_core/analysis/floors.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mto_core.bench.measure import machine
from mto_core.models.checkpoint import load_checkpoint, resolve
from mto_core.config import METHODS, preset_names
from mto_core.analysis.trace import TRACES
from mto_core.analysis.floors import FLOOR_RATIO, FLOOR_SEEDS, held_out_floors
from mto_core.data.photo_crops import HELD_OUT, PHOTOS, TRAIN_CROPS

TRACE_EVERY = 25  # often enough for the Tokens page's view over training; its cost: docs/performance.md
TRACE_BYTES = int(1.5 * 2**20)  # each shipped traces/ folder at most: checkpoints/ stays under 65 MB
DTYPES = {"float16": torch.float16, "float32": torch.float32}
# colour checkpoint -> the preset it trains: tiny-rgb on photo crops
COLOUR = {"mae-rgb": "mae", "mae-rgb-mto": "mae-mto", "simmim-rgb": "simmim", "simmim-rgb-mto": "simmim-mto"}


def ship(run: Path, name: str, weights: str) -> Path:
    """checkpoints/NAME made anew from the run's newest step: weights stored as ``weights`` says, its
    config, the run's metrics and its thinned traces."""
    target = Path("checkpoints") / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    step = resolve(run)
    store_weights(step / "model.safetensors", target / "model.safetensors", weights)
    shutil.copyfile(step / "config.json", target / "config.json")
    shutil.copyfile(run / "metrics.jsonl", target / "metrics.jsonl")
    shutil.copytree(run / TRACES, target / TRACES)
    thin_traces(target / TRACES)
    return target


def store_weights(source: Path, target: Path, dtype: str) -> None:
    """``source``'s safetensors weights written to ``target`` with every floating tensor in
    ``dtype`` (integer buffers as they are), keeping the file's metadata."""
    with safe_open(str(source), "pt") as file:
        metadata = file.metadata()
    state = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
    tmp = target.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=dict(sorted((metadata or {}).items())))
    tmp.replace(target)


def thin_traces(folder: Path, limit: int = TRACE_BYTES) -> int:
    """Keep every k-th token snapshot of ``folder`` (the first always; k the smallest that fits
    ``limit`` bytes) and remove the others; returns k."""
    snapshots = sorted(folder.glob("step-*.safetensors"))
    for k in range(1, len(snapshots) + 1):
        kept = snapshots[::k]
        if sum(p.stat().st_size for p in kept) <= limit:
            break
    for path in set(snapshots) - set(kept):
        path.unlink()
    return k


def weights_line(target: Path, dtype: str) -> str:
    return (f"- Weights: {(target / 'model.safetensors').stat().st_size / 2**20:.1f} MiB safetensors, "
            f"stored in {dtype} (`--weights {dtype}`; the loader copies them into the float32 model); "
            "config.json is the full run config; metrics.jsonl the learning curve (k-NN on the "
            "validation split after every epoch, and every trace row: S, silhouette, a_VM and masked-row "
            f"attention entropy per layer every {TRACE_EVERY} steps on a fixed held-out batch); traces/ the "
            f"float16 token snapshots behind the Tokens page's view over training (every k-th kept, "
            f"at most {TRACE_BYTES / 2**20:.1f} MiB).")


def convert(name: str, dtype: str) -> None:
    """Store a shipped checkpoint's weights in ``dtype`` and thin its traces/, training nothing."""
    target = Path("checkpoints") / name
    before = (target / "model.safetensors").stat().st_size
    store_weights(target / "model.safetensors", target / "model.safetensors", dtype)
    k = thin_traces(target / TRACES) if (target / TRACES).is_dir() else 0
    card = target / "card.md"
    card.write_text(re.sub(r"^- Weights: .*$", lambda _: weights_line(target, dtype), card.read_text(),
                           flags=re.M))
    print(f"{name}: weights {before / 2**20:.1f} -> {(target / 'model.safetensors').stat().st_size / 2**20:.1f}"
          f" MiB ({dtype}), traces: every {k}-th snapshot kept")


def measure_probes(folder: Path) -> dict[str, dict]:
    """``mto eval`` of ``folder`` with the k-NN and the linear probe, as JSON."""
    probes = {}
    for probe in ("knn", "linear"):
        out = subprocess.run([sys.executable, "-m", "mto_core.cli", "eval", str(folder), "--probe", probe,
                              "--json"], check=True, capture_output=True, text=True).stdout
        probes[probe] = json.loads(out)
    return probes


def probe_line(probes: dict[str, dict]) -> str:
    return (f"- Probe accuracy on the Fashion-MNIST test split ({probes['knn']['test_images']} images, "
            f"{probes['knn']['train_images']} training images as the probe's training set):"
            f" k-NN (k = 20, cosine) {probes['knn']['accuracy']:.4f}, linear {probes['linear']['accuracy']:.4f}"
            " (`mto eval DIR --probe knn|linear`).")


def remeasure_card(name: str) -> None:
    """The card's probe line measured again on the shipped weights (the rest of the card is kept)."""
    card = Path("checkpoints") / name / "card.md"
    line = probe_line(measure_probes(card.parent))
    card.write_text(re.sub(r"^- Probe accuracy on .*$", lambda _: line, card.read_text(), flags=re.M))
    print(f"{name}: {line}")


def floors_section(target: Path) -> list[str]:
    """The card's floors: the shipped weights' masked-patch MSE on the held-out photos beside the
    mean-colour and biharmonic fills, and in words where the model beats the inpainting. Prints
    the row of all four photos."""
    table = held_out_floors(load_checkpoint(target))
    o = table.overall
    print(f"| `{target.name}` | {o['model']:.4f} | {o['mean colour']:.4f} | {o['biharmonic']:.4f} | "
          f"{o['model'] / o['mean colour']:.2f} | {o['model'] / o['biharmonic']:.2f} |", flush=True)
    beats = [n for n, row in table.rows.items() if row["model"] < row["biharmonic"]]
    loses = [n for n, row in table.rows.items() if row["model"] >= row["biharmonic"]]
    overall = table.overall
    verdict = (f"Over all four the model's error is {overall['model'] / overall['mean colour']:.2f} x the mean-colour "
               f"floor and {overall['model'] / overall['biharmonic']:.2f} x classical inpainting's: it "
               f"{'beats' if overall['model'] < overall['biharmonic'] else 'does not beat'} inpainting overall. "
               f"It beats inpainting on {', '.join(beats) or 'none of the photos'}"
               f"{'; not on ' + ', '.join(loses) if loses else ''}.")
    return [
        "## Floors on the held-out photos",
        "",
        f"Masked-patch MSE (pixel values in [0, 1], over the hidden pixels) on the four photos held out of "
        f"training ({', '.join(HELD_OUT)}; whole photo, short side resized to the model's size, centre "
        f"cropped), {len(FLOOR_SEEDS)} random masks each (ratio {FLOOR_RATIO}, seeds "
        f"{FLOOR_SEEDS[0]}-{FLOOR_SEEDS[-1]}), the same masks for every column: the model; the mean colour "
        "of the visible patches; scikit-image's `inpaint_biharmonic` from the visible pixels "
        "(`mto_core.analysis.floors.held_out_floors`, float16 weights):",
        "",
        table.markdown(),
        "",
        verdict,
        "",
    ]


def write_floors(name: str) -> None:
    """The card's floors section measured again on the shipped weights (the rest is kept)."""
    card = Path("checkpoints") / name / "card.md"
    text = card.read_text()
    head = text.split("## Floors on the held-out photos")[0].rstrip("\n")
    card.write_text(head + "\n\n" + "\n".join(floors_section(card.parent)))
    print(f"{name}: floors measured again")


def pixel_loss(name: str, args: argparse.Namespace) -> str:
    """``--colour-pixel-loss`` where it applies (the SimMIM checkpoints), else ''."""
    return args.colour_pixel_loss if COLOUR[name].startswith("simmim") else ""


def model_line(preset_name: str, ratio: float = 0.0, loss: str = "") -> str:
    """The card's line on the model of a colour checkpoint trained with ``preset_name`` (and mask
    ratio ``ratio``; 0: the preset's; SimMIM's pixel loss ``loss``, '': the preset's L1)."""
    facts = METHODS[preset_name.removesuffix("-mto")]
    mto = (f"+ MTO (hard recalibration, L_sing 0.1, L_ent 0.01) in its {facts.mto_layers}"
           if preset_name.endswith("-mto") else "baseline")
    trained = {"l2": ", trained with squared error on the masked pixels (`model.pixel_loss=l2`) instead of "
                     "SimMIM's L1, as the floors below are scored", "l1": ", L1 on the masked pixels"}.get(loss, "")
    return (f"- Model: {facts.display} {mto}, mask ratio {ratio or facts.mask_ratio} (preset `{preset_name}`){trained}, at the "
            "tiny-rgb size: 32 x 32 RGB, 4 x 4 patches, width 128, depth 6, ImageNet's mean and std.")


def make_colour(name: str, args: argparse.Namespace) -> None:
    """Train the colour checkpoint ``name`` (:data:`COLOUR`) on photo crops and write its card."""
    run = Path("runs/shipped") / name
    shutil.rmtree(run, ignore_errors=True)
    command = ["mto", "train", "--preset", COLOUR[name], "--size", "tiny-rgb", "--max-steps", str(args.colour_steps),
               "--batch-size", str(args.colour_batch), "--seed", "0", "--out", str(run), "--quiet",
               "--set", "data.dataset=photo-crops", "--set", f"data.held_out={','.join(HELD_OUT)}",
               "--set", f"train.base_lr={args.colour_lr}", "--set", f"train.trace_every={TRACE_EVERY}",
               *(["--set", f"mask.ratio={args.colour_mask_ratio}"] if args.colour_mask_ratio else []),
               *(["--set", f"model.pixel_loss={args.colour_pixel_loss}"] if pixel_loss(name, args) else [])]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mto_core.cli", *command[1:]], check=True, env=env)
    wall = time.perf_counter() - start
    target = ship(run, name, args.weights)
    info = machine()
    trained = [n for n in PHOTOS if n not in HELD_OUT]
    threads = f" with OMP_NUM_THREADS={args.threads}" if args.threads else ""
    card = [
        f"# {name}",
        "",
        f"Made by `python3 scripts/make_checkpoints.py --only {name} --colour-steps {args.colour_steps} "
        f"--colour-batch {args.colour_batch} --colour-lr {args.colour_lr}"
        f"{f' --colour-mask-ratio {args.colour_mask_ratio}' if args.colour_mask_ratio else ''}"
        f"{f' --colour-pixel-loss {args.colour_pixel_loss}' if args.colour_pixel_loss else ''}"
        f"{f' --threads {args.threads}' if args.threads else ''}`, which ran{threads}:",
        "",
        f"    {' '.join(command)}",
        "",
        model_line(COLOUR[name], args.colour_mask_ratio, pixel_loss(name, args)),
        f"- Data: photo crops (`data.dataset=photo-crops`, split seed 0; mto_core/data/photo_crops.py): "
        f"{TRAIN_CROPS} crops of the {len(trained)} photographs that ship in scikit-image and scikit-learn "
        f"({', '.join(trained)}; china and flower under CC BY 2.0, as scikit-learn's images README "
        "states), each a region of a random scale (side from 32 px to the photo's short side) with MAE's "
        "random resized crop (area 0.2-1) and a mirror, shrunk to 32 x 32; the training loop's light "
        f"augmentation on top. It saw {args.colour_steps * args.colour_batch} crops "
        f"({args.colour_steps} steps of {args.colour_batch}).",
        f"- Held out: {', '.join(HELD_OUT)} (config.json: `data.held_out`): never in a training crop; every "
        "reconstruction of them is of a photo the model never saw.",
        f"- Wall time: {wall:.0f} s on {info['cpu']}, {info['cores']} cores (shared with other work while it "
        f"ran), torch {info['torch']}, Python {platform.python_version()}, {info['date']}.",
        weights_line(target, args.weights).replace("(k-NN on the validation split after every epoch, and every "
                                                   "trace row", "(every trace row").replace(
            "a fixed held-out batch", "a fixed batch of crops of the held-out photos"),
        "- No probe accuracy: photos have no classes; the floors below say what the model learnt.",
        "",
        *floors_section(target),
    ]
    (target / "card.md").write_text("\n".join(card))
    print(f"{name}: {wall:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--only", nargs="*", choices=[*preset_names(), *COLOUR], default=list(preset_names()))
    parser.add_argument("--colour-steps", type=int, default=200, help="training steps of a colour checkpoint")
    parser.add_argument("--colour-batch", type=int, default=64, help="batch of a colour checkpoint")
    parser.add_argument("--colour-lr", type=float, default=1.5e-3, help="train.base_lr of a colour checkpoint")
    parser.add_argument("--colour-pixel-loss", choices=["l1", "l2"], default="",
                        help="model.pixel_loss of the SimMIM colour checkpoints ('': the preset's, L1)")
    parser.add_argument("--colour-mask-ratio", type=float, default=0.0,
                        help="mask.ratio of a colour checkpoint (0: the preset's)")
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS of a colour run (0: torch's default)")
    parser.add_argument("--floors-only", action="store_true",
                        help="train nothing: measure the colour checkpoints' floors again into their cards")
    parser.add_argument("--probes-only", action="store_true",
                        help="train nothing: measure the shipped checkpoints' probes again into their cards")
    parser.add_argument("--weights", choices=DTYPES, default="float16",
                        help="the dtype of the shipped weights (default float16)")
    parser.add_argument("--convert-only", action="store_true",
                        help="train nothing: store the shipped weights in --weights' dtype, thin traces/")
    args = parser.parse_args()
    for name in args.only:
        if name in COLOUR:
            if args.floors_only:
                write_floors(name)
            elif not (args.convert_only or args.probes_only):
                make_colour(name, args)
            continue
        if args.floors_only:
            continue
        if args.convert_only:
            convert(name, args.weights)
        if args.probes_only:
            remeasure_card(name)
        if args.convert_only or args.probes_only:
            continue
        run = Path("runs/shipped") / name
        shutil.rmtree(run, ignore_errors=True)
        command = ["mto", "train", "--preset", name, "--epochs", str(args.epochs), "--seed", "0",
                   "--out", str(run), "--quiet", "--set", f"data.train_limit={args.train_limit}",
                   "--set", "train.knn_every=1", "--set", f"train.trace_every={TRACE_EVERY}"]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mto_core.cli", *command[1:]], check=True)
        wall = time.perf_counter() - start
        run_probes = measure_probes(run)
        target = ship(run, name, args.weights)
        probes = measure_probes(target)
        info = machine()
        card = [
            f"# {name}",
            "",
            f"Made by `python3 scripts/make_checkpoints.py --epochs {args.epochs} --train-limit "
            f"{args.train_limit}`, which ran:",
            "",
            f"    {' '.join(command)}",
            "",
            f"- Data: Fashion-MNIST training split, first {args.train_limit} images of the "
            "deterministic train/validation split (data.val_fraction 0.1, split seed 0).",
            f"- Wall time: {wall:.0f} s on {info['cpu']}, {info['cores']} cores, torch {info['torch']}, "
            f"Python {platform.python_version()}, {info['date']}.",
            weights_line(target, args.weights),
            probe_line(probes),
            "",
        ]
        (target / "card.md").write_text("\n".join(card))
        print(f"{name}: {wall:.0f} s; run's float32 weights: knn {run_probes['knn']['accuracy']:.4f}, linear "
              f"{run_probes['linear']['accuracy']:.4f}; shipped {args.weights} weights: knn "
              f"{probes['knn']['accuracy']:.4f}, linear {probes['linear']['accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
