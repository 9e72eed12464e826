"""The Train page's own work while its two runs train, timed part by part, without a browser.

Trains the page's baseline and MTO runs in this process (app/jobs.py's TrainingJob, the page's
settings: SimMIM, batch 64, the shipped subset, a trace every 5 steps) and, every 5 s while they
go, does what the page does at a refresh: the measure figure, ``styled``, the token plane
(``token_frames``), the token scatter and their JSON. Prints each part's seconds per refresh and
each run's images/s. Torch and numpy's BLAS on one thread, as in the app's server.

    python benchmarks/train_page_work.py [--steps 60] [--trace-every 5] [--no-page]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from serving import ROOT, train_rate

sys.path.insert(0, str(ROOT / "app"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--trace-every", type=int, default=5)
    parser.add_argument("--no-page", action="store_true", help="train only: no figure is built")
    args = parser.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    from logic import emergence
    from server.training_job import TrainingJob
    from widgets.charts import styled
    from mto_core.config import apply_overrides, preset
    from mto_core.analysis.trace import snapshot_steps, token_frames

    common = [f"train.max_steps={args.steps}", "train.epochs=0", "train.batch_size=64", "train.log_every=5",
              "train.warmup_fraction=0.1", f"train.trace_every={args.trace_every}", "data.root=shipped"]
    with tempfile.TemporaryDirectory() as tmp:
        job = TrainingJob({"baseline": (apply_overrides(preset("simmim"), common), Path(tmp) / "b"),
                           "MTO": (apply_overrides(preset("simmim-mto"), common), Path(tmp) / "m")})
        job.start()
        refreshes = []
        while job.running:
            time.sleep(5)
            if args.no_page:
                continue
            rows = {name: list(state.rows) for name, state in job.runs.items()}
            times = {}
            start = time.perf_counter()
            fig = emergence.measure_figure(rows)
            times["measure_figure"] = time.perf_counter() - start
            start = time.perf_counter()
            fig = styled(fig) if fig is not None else None
            times["styled"] = time.perf_counter() - start
            start = time.perf_counter()
            frames = {name: token_frames(state.run_dir, 1) if snapshot_steps(state.run_dir) else None
                      for name, state in job.runs.items()}
            times["token_frames"] = time.perf_counter() - start
            start = time.perf_counter()
            scatter = emergence.scatter_figure(frames, 1)
            scatter = styled(scatter) if scatter is not None else None
            times["scatter_figure"] = time.perf_counter() - start
            start = time.perf_counter()
            for f in (fig, scatter):
                if f is not None:
                    f.to_json(validate=False)
            times["json"] = time.perf_counter() - start
            refreshes.append(times)
        job.wait()
        for name, state in job.runs.items():
            print(f"{name}: {train_rate(state.rows):.0f} images/s (trace every {args.trace_every})")
    for i, times in enumerate(refreshes):
        print(f"refresh {i + 1}: " + ", ".join(f"{k} {v:.3f} s" for k, v in times.items()))


if __name__ == "__main__":
    main()
