"""What ``mto_core.add_mto`` costs a training step: transformers' ViTMAEForPreTraining and
ViTForMaskedImageModeling with MTO against the same model without it, beside mto's own ``mae-mto`` /
``simmim-mto`` step against mto's own ``mae`` / ``simmim`` of the same shape. One process; the four
steps of a family are timed in rounds, in a shuffled order each round (forward, backward, AdamW
step); each round gives an overhead ratio, and the median of the rounds is kept with its 95% interval.

    python3 benchmarks/add_mto_cost.py                 # the table in docs/performance.md
    python3 benchmarks/add_mto_cost.py --rounds 3      # a quick look

The overhead ratio is (plugged / unplugged) / (mto-mto / mto): 1 when the plug-in adds what mto's
own implementation adds. mto's own step takes the visible-first path its training takes.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mto_core  # noqa: E402  (first: the torchvision fix)
from mto_core.config import apply_overrides, preset  # noqa: E402
from mto_core.data.masking import hidden_count, make_mask  # noqa: E402
from mto_core.interop import hf as hf_interop  # noqa: E402
from mto_core.models.build import build_model  # noqa: E402
from mto_core.models.vit import VisibleFirst  # noqa: E402

import torch  # noqa: E402, I001
import transformers  # noqa: E402


def shape(args) -> list[str]:
    return [f"model.img_size={args.img}", f"model.patch_size={args.patch}", "model.in_chans=3",
            f"model.embed_dim={args.width}", f"model.depth={args.depth}", f"model.num_heads={args.heads}",
            f"model.decoder_dim={args.decoder_width}", f"model.decoder_depth={args.decoder_depth}",
            f"model.decoder_heads={args.decoder_heads}", "model.pixel_mean=0", "model.pixel_std=1",
            "model.layer_norm_eps=1e-12"]


def steps(method: str, args) -> dict[str, callable]:
    """The four training steps of ``method``, each a function of (images, mask)."""
    base, mto = (apply_overrides(preset(name), shape(args)) for name in (method, f"{method}-mto"))
    mto.mask.ratio = base.mask.ratio
    torch.manual_seed(0)
    ours = {"mto": build_model(base.model, base.mto), "mto-mto": build_model(mto.model, mto.mto)}
    ours["mto-mto"].load_state_dict(ours["mto"].state_dict())
    kwargs = hf_interop.hf_config_of(base, ours["mto"])
    make = (lambda: transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**kwargs))) if method == "mae" else (
        lambda: transformers.ViTForMaskedImageModeling(transformers.ViTConfig(**kwargs)))
    theirs = {"unplugged": make(), "plugged": make()}
    for model in theirs.values():
        model.load_state_dict(hf_interop.to_hf_state(ours["mto"].state_dict(), base), strict=True)
    mto_core.add_mto(theirs["plugged"])
    path = VisibleFirst(hidden_count(base.model.grid, base.mask))
    out: dict[str, callable] = {}
    for name, model in {**ours, **theirs}.items():
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

        def step(images, mask, model=model, optimizer=optimizer, name=name):
            if name.startswith("mto"):
                loss = model(images, mask, path=path).loss
            elif method == "mae":
                n = mask.shape[1]
                loss = model(pixel_values=images, noise=mask.float() + torch.arange(n) / (2 * n)).loss
            else:
                loss = model(pixel_values=images, bool_masked_pos=mask).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        out[name] = step
    return out, base


def measure(method: str, args) -> tuple[dict[str, float], list[float]]:
    """Median ms of each step, and the overhead ratio of every round: its four steps run back to back
    in a shuffled order, so a change of load hits the four alike and the round's ratio keeps it out."""
    runs, config = steps(method, args)
    images = torch.rand(args.batch, 3, args.img, args.img, generator=torch.Generator().manual_seed(0))
    k = config.mask
    mask = make_mask(args.batch, config.model.grid, k.ratio, 1, k.kind, k.mask_patch_size, k.min_block)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, run in runs.items():  # warm-up
        run(images, mask)
    order, shuffle = list(runs), random.Random(0)
    for _ in range(args.rounds):
        shuffle.shuffle(order)
        for name in order:
            start = time.perf_counter()
            runs[name](images, mask)
            times[name].append(time.perf_counter() - start)
    ratios = [(p / u) / (m / o) for p, u, m, o in zip(times["plugged"], times["unplugged"], times["mto-mto"],
                                                       times["mto"])]
    return {name: 1000 * statistics.median(t) for name, t in times.items()}, ratios


def interval(ratios: list[float], draws: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of the median of the per-round ratios."""
    pick = random.Random(1)
    medians = sorted(statistics.median(pick.choices(ratios, k=len(ratios))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--img", type=int, default=64)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--decoder-width", type=int, default=128)
    parser.add_argument("--decoder-depth", type=int, default=4)
    parser.add_argument("--decoder-heads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    print(f"shape: {args.img} x {args.img} x 3, patches {args.patch}, width {args.width}, depth {args.depth}, "
          f"decoder {args.decoder_width} x {args.decoder_depth}, batch {args.batch}, {args.rounds} rounds, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, transformers {transformers.__version__}")
    print("| model | unplugged ms | plugged ms | plugged / unplugged | mto ms | mto-mto ms | mto-mto / mto | "
          "overhead ratio (median of rounds) | 95% interval |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method, name in (("mae", "ViTMAEForPreTraining"), ("simmim", "ViTForMaskedImageModeling")):
        t, ratios = measure(method, args)
        plug, own = t["plugged"] / t["unplugged"], t["mto-mto"] / t["mto"]
        low, high = interval(ratios)
        print(f"| {name} | {t['unplugged']:.1f} | {t['plugged']:.1f} | {plug:.3f} | {t['mto']:.1f} | "
              f"{t['mto-mto']:.1f} | {own:.3f} | {statistics.median(ratios):.3f} | {low:.3f}-{high:.3f} |",
              flush=True)


if __name__ == "__main__":
    main()
