"""What the input pipeline of a streamed image folder costs (mto_core/data/streaming.py).

1. Images per second one worker decodes and augments (MAE's crop of the original, bicubic, flip)
   into 224 x 224 from JPEG files of ImageNet's typical size, beside the images per second a
   ViT-B step consumes on a GPU (docs/performance.md, "Before on the GPU"): how many CPU cores
   keep one GPU fed.
2. Peak memory and time to the first step of ``mto train`` on folders of 500 and 5,000 224 px
   JPEGs: neither should grow with the number of images.

    python benchmarks/input_pipeline.py                 # both, markdown tables
    python benchmarks/input_pipeline.py --sizes 500 5000 --images 512

Every image is generated here (random smooth colours); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch

import mto_core  # noqa: F401  (before torch's friends)
from mto_core.data.streaming import ImageFolder, available_cores, read_batches

# ViT-B steps on one H100 (bf16, batch 256): docs/performance.md, "Before on the GPU", ms per step.
VIT_B_GPU_MS = {"SimMIM": 96.3, "SimMIM+MTO": 169.9, "MAE": 81.5, "MAE+MTO": 137.4}
VIT_B_BATCH = 256


def make_jpegs(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``count`` JPEGs (quality 90) of ``size`` in 10 class folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        sub = folder / f"class{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (size[1] // 16 + 1, size[0] // 16 + 1, 3), dtype=np.uint8)
        Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(sub / f"{i:06d}.JPEG", quality=90)
    return folder


def throughput(count: int, workers: int, source: tuple[int, int], repeat: int = 3) -> dict:
    """Images decoded and augmented into 224 x 224 x 3 per CPU second of one process (per core:
    what other work on a shared machine does not change), and per second of wall time with
    ``workers`` processes; the best of ``repeat`` passes."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = ImageFolder(make_jpegs(Path(tmp), count, source))
        batches = [torch.arange(s, min(s + 64, len(data))) for s in range(0, len(data), 64)]
        result = {}
        list(read_batches(data, batches, 224, 3, augment=True))  # the files in the page cache
        for n in sorted({0, workers}):
            clock = time.process_time if n == 0 else time.perf_counter
            times = []
            for epoch in range(1, repeat + 1):
                start = clock()
                for _ in read_batches(data, batches, 224, 3, epoch=epoch, augment=True, workers=n):
                    pass
                times.append(clock() - start)
            result[n] = len(data) / min(times)
    return {"per_worker": result[0], "workers": workers, "with_workers": result[workers]}


TRAIN = """
import json, resource, sys, time
start = time.perf_counter()
import mto_core
from mto_core.config import apply_overrides, preset
from mto_core.training.engine import train
first = []
config = apply_overrides(preset("mae"), json.loads(sys.argv[1]))
train(config, sys.argv[2], progress=False, on_log=lambda row: first or first.append(time.perf_counter() - start))
print(json.dumps({"first_step_s": first[0], "total_s": time.perf_counter() - start,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def memory(count: int, workers: int) -> dict:
    """``mto train`` (a small MAE at 224 x 224, 3 steps of 16 images) on a folder of ``count`` 224 px
    JPEGs, in a fresh process: its peak memory, its workers' and its time to the first step."""
    sets = ["model.embed_dim=64", "model.depth=2", "model.num_heads=2", "model.decoder_dim=64",
            "model.decoder_depth=1", "model.decoder_heads=2", "model.img_size=224", "model.patch_size=16",
            "model.in_chans=3", "data.dataset=folder", f"data.workers={workers}", "train.batch_size=16",
            "train.max_steps=3", "train.epochs=0", "train.log_every=1", "train.device=cpu"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_jpegs(Path(tmp) / "images", count, (224, 224))
        out = subprocess.run([sys.executable, "-c", TRAIN, json.dumps([*sets, f"data.root={folder}"]),
                              str(Path(tmp) / "run")], capture_output=True, text=True, check=True, cwd=ROOT)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    return {"images": count, **row, "in_memory_mib": count * 3 * 224 * 224 / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512, help="JPEGs decoded for the throughput")
    parser.add_argument("--source", default="500x375", help="their size (ImageNet's typical: 500x375)")
    parser.add_argument("--workers", type=int, default=max(1, available_cores() - 1))
    parser.add_argument("--sizes", type=int, nargs="*", default=[500, 5000], help="folder sizes for memory")
    parser.add_argument("--repeat", type=int, default=3, help="runs per folder size, alternating (median)")
    args = parser.parse_args()
    w, h = (int(v) for v in args.source.split("x"))
    speed = throughput(args.images, args.workers, (w, h))
    print(f"Machine: {available_cores()} cores, torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n")
    print(f"Decoded and augmented into 224 x 224 (MAE's crop, bicubic, flip) from {args.images} JPEGs of "
          f"{w} x {h}: **{speed['per_worker']:.0f} images per CPU second**, i.e. per "
          f"worker on a core of its own (one process, best of 3 passes); {speed['with_workers']:.0f} images/s "
          f"of wall time with {speed['workers']} worker(s) on this machine as it was.\n")
    print("| ViT-B step (H100, bf16, batch 256) | images/s it consumes | worker processes (cores) to feed it |")
    print("|---|---|---|")
    for name, ms in VIT_B_GPU_MS.items():
        rate = VIT_B_BATCH / ms * 1000
        print(f"| {name} | {rate:,.0f} | {math.ceil(rate / speed['per_worker'])} |")
    print(f"\n`mto train`, a small MAE at 224 x 224, 3 steps of 16 images, 1 worker; median of {args.repeat} "
          "fresh processes per size, alternating.\n")
    print("| images in the folder | peak memory (training process) | peak memory (one worker) | "
          "time to the first step | the same images held in memory at 224 x 224 x 3 |")
    print("|---|---|---|---|---|")
    runs: dict[int, list[dict]] = {count: [] for count in args.sizes}
    for _ in range(args.repeat):  # alternating, so that a busy moment of the machine hits every size
        for count in args.sizes:
            runs[count].append(memory(count, 1))
    for count, rows in runs.items():
        row = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
        print(f"| {count:,} | {row['peak_mib']:.0f} MiB | {row['worker_peak_mib']:.0f} MiB | "
              f"{row['first_step_s']:.1f} s | {row['in_memory_mib']:,.0f} MiB |")


if __name__ == "__main__":
    main()
