"""This checkout's training steps against those of an earlier commit, interleaved in one process.

The earlier commit's mto_core is unpacked (git archive) into a temporary folder under another
package name, so both versions' steps run round by round in the same process, on the same data
and malloc settings: "no step slower than before" is then one ratio per variant, free of the
drift between two runs. Tiny preset, batch 128, CPU or the given device.

Usage: python benchmarks/versus_commit.py REV [--rounds 12] [--methods simmim mae] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

from mto_core.bench.measure import time_steps, training_step
from mto_core.config import preset
from mto_core.training.allocator import keep_freed_memory

ROOT = Path(__file__).resolve().parent.parent


def earlier_package(rev: str, folder: Path) -> str:
    """Unpack ``rev``'s mto_core into ``folder`` as the package ``mto_before``; its name."""
    archive = subprocess.run(["git", "archive", rev, "mto_core"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    (folder / "mto_core").rename(folder / "mto_before")
    sys.path.insert(0, str(folder))
    return "mto_before"


# Where each function lived: the layout by role first, then the flat one before it (commits up to 95a0f93).
_HOMES = {"build_model": ("models.build", "models"), "build_optimizer": ("training.engine", "engine"),
          "make_mask": ("data.masking", "masking")}


def earlier(package: str, name: str):
    """Function ``name`` of the earlier version, from whichever layout it has."""
    for module in _HOMES[name]:
        try:
            found = getattr(importlib.import_module(f"{package}.{module}"), name, None)
        except ModuleNotFoundError:
            continue
        if found is not None:
            return found
    raise SystemExit(f"{package} has no {name} in {' or '.join(_HOMES[name])}")


def earlier_step(package: str, name: str, device: torch.device, batch: int):
    """One training step of the earlier version, as its own bench timed it (model(images, mask))."""
    config = importlib.import_module(f"{package}.config").preset(name)
    torch.manual_seed(0)
    model = earlier(package, "build_model")(config.model, config.mto).to(device)
    optimizer = earlier(package, "build_optimizer")(model, config)
    images = torch.rand(batch, 1, 28, 28, device=device)
    mask = earlier(package, "make_mask")(batch, config.model.grid, config.mask.ratio, 0).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with autocast:
            loss = model(images, mask).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rev")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--methods", nargs="+", default=["simmim", "mae"])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        keep_freed_memory()  # as training does, for both versions
    print(f"{args.rev} (before) against this checkout (after), tiny preset, batch 128, {args.device}, median of "
          f"{args.rounds} interleaved rounds, {torch.get_num_threads()} torch threads")
    print("| method | before: baseline ms | before: MTO ms | before: MTO / baseline | after: baseline ms "
          "| after: MTO ms | after: MTO / baseline |\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        package = earlier_package(args.rev, Path(tmp))
        for method in args.methods:
            steps = {"before base": earlier_step(package, method, device, 128),
                     "before mto": earlier_step(package, f"{method}-mto", device, 128),
                     "after base": training_step(preset(method), device, 128),
                     "after mto": training_step(preset(f"{method}-mto"), device, 128)}
            ms = {k: 1000 * v for k, v in time_steps(steps, device, args.rounds).items()}
            print(f"| {method} | {ms['before base']:.1f} | {ms['before mto']:.1f} | "
                  f"{ms['before mto'] / ms['before base']:.3f}x | {ms['after base']:.1f} | {ms['after mto']:.1f} | "
                  f"{ms['after mto'] / ms['after base']:.3f}x |", flush=True)


if __name__ == "__main__":
    main()
