"""Train the four checkpoints shipped in checkpoints/ with one identical budget, and write a card
for each (exact command, data, wall time, hardware, probe accuracy).

Usage: python3 scripts/make_checkpoints.py [--epochs 4] [--train-limit 20000] [--only simmim ...]
       python3 scripts/make_checkpoints.py --probes-only [--only ...]   (re-measure the cards' probe line)
Runs land in runs/shipped/<preset>; the checkpoint folders keep weights, config, metrics (with the
trace rows of train.trace_every), the token snapshots (traces/), card.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mto_core.bench import machine
from mto_core.checkpoint import resolve
from mto_core.config import PRESETS
from mto_core.trace import TRACES

TRACE_EVERY = 25  # under 5% of training speed on the CPU these are made on (docs/performance.md)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--train-limit", type=int, default=20000)
    parser.add_argument("--only", nargs="*", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--probes-only", action="store_true",
                        help="train nothing: measure the shipped checkpoints' probes again into their cards")
    args = parser.parse_args()
    for name in args.only:
        if args.probes_only:
            remeasure_card(name)
            continue
        run = Path("runs/shipped") / name
        shutil.rmtree(run, ignore_errors=True)
        command = ["mto", "train", "--preset", name, "--epochs", str(args.epochs), "--seed", "0",
                   "--out", str(run), "--quiet", "--set", f"data.train_limit={args.train_limit}",
                   "--set", "train.knn_every=1", "--set", f"train.trace_every={TRACE_EVERY}"]
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mto_core.cli", *command[1:]], check=True)
        wall = time.perf_counter() - start
        probes = measure_probes(run)
        target = Path("checkpoints") / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        step = resolve(run)
        for file in ("model.safetensors", "config.json"):
            shutil.copyfile(step / file, target / file)
        shutil.copyfile(run / "metrics.jsonl", target / "metrics.jsonl")
        shutil.copytree(run / TRACES, target / TRACES)
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
            f"- Weights: {(target / 'model.safetensors').stat().st_size / 2**20:.1f} MiB safetensors; "
            "config.json is the full run config; metrics.jsonl the learning curve (k-NN on the "
            "validation split after every epoch, and every trace row: S, silhouette, a_VM and masked-row "
            f"attention entropy per layer every {TRACE_EVERY} steps on a fixed held-out batch); traces/ the "
            "float16 token snapshots behind the Tokens page's view over training.",
            probe_line(probes),
            "",
        ]
        (target / "card.md").write_text("\n".join(card))
        print(f"{name}: {wall:.0f} s, knn {probes['knn']['accuracy']:.4f}, linear {probes['linear']['accuracy']:.4f}")


if __name__ == "__main__":
    main()
