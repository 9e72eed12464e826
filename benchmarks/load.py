"""A classroom's load on one app server: N sessions at once walk every page.

Starts ``app/serve.py`` on a free port of 127.0.0.1, then opens N sessions at once. Each is a
protocol-level client: it speaks Streamlit's own WebSocket protocol (protobuf BackMsg /
ForwardMsg, as the browser does) and asks for each page in turn, in its own order, and times
from the request to the server's ``script_finished``. No page is drawn: nothing of the figure is
client rendering, it is the server's script time plus the messages' transfer on the loopback.
A page whose script raised counts as an error (an exception element in its deltas), as does a
session that could not connect or a page that did not finish within the timeout.

The server's memory is read from /proc: idle after start-up and one warm-up walk, its peak
(VmHWM) under load, and again some seconds after every session has left.

    python benchmarks/load.py [--sessions 20] [--rounds 1] [--think 0] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from page_client import Session, crowd, start_training
from serving import ROOT, free_port, memory_map, memory_mib, p95, random_checkpoint, reset_peak, start_server, stop


def summary(everyone: list[Session]) -> dict:
    """Page times of a walk: all page runs, and those that computed anew (``--fresh``)."""
    times = [t for s in everyone for ts in s.times.values() for t in ts]
    fresh = [t for s in everyone for name, ts in s.times.items() if name.endswith("(new seed)") for t in ts]
    out = {"page_runs": len(times), "median_s": round(statistics.median(times), 2), "p95_s": round(p95(times), 2),
           "errors": [e for s in everyone for e in s.errors]}
    if fresh:
        out |= {"fresh_runs": len(fresh), "fresh_median_s": round(statistics.median(fresh), 2),
                "fresh_p95_s": round(p95(fresh), 2)}
    return out


class MemoryLog:
    """The server's resident memory every ``every_s`` seconds while the sessions walk, in a thread."""

    def __init__(self, pid: int, every_s: float = 2.0) -> None:
        import threading

        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        start = time.perf_counter()

        def loop() -> None:
            while not self._stop.wait(every_s):
                self.samples.append((time.perf_counter() - start, memory_mib(pid)["VmRSS"]))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def levels(samples: list[tuple[float, float]], parts: int = 4) -> list[float]:
    """The largest memory of each quarter (``parts``) of the walk, MiB: a series that stops rising levels."""
    if not samples:
        return []
    size = max(1, len(samples) // parts)
    return [round(max(m for _, m in samples[i:i + size])) for i in range(0, size * parts, size) if samples[i:i + size]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1, help="walks of every page per session")
    parser.add_argument("--think", type=float, default=0,
                        help="mean seconds a session pauses before each page (uniform 0..2x); 0 = none, the worst case")
    parser.add_argument("--settle", type=float, default=20, help="seconds to wait after the sessions leave")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the server (e.g. PYTHONMALLOC=malloc)")
    parser.add_argument("--training", type=int, default=0, metavar="STEPS",
                        help="also walk with a Train-page training of STEPS steps under way (started as a visitor "
                             "would), after the walk without: page times with and without it, and their ratio")
    parser.add_argument("--fresh", action="store_true",
                        help="each session also moves the mask seed on every page that has one, to a value no one "
                             "else uses: the page computes anew (timed as '<page> (new seed)')")
    parser.add_argument("--large-model", action="store_true",
                        help="every third session also opens a ViT-B-shaped MAE (randomly initialised, written under "
                             "runs/ for the walk) on Reconstruct and uploads a photo to it")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = free_port()
    bad = [e for e in args.env if "=" not in e or not e.split("=", 1)[0]]
    if bad:
        parser.error(f"--env takes KEY=VALUE, got {bad[0]!r}")
    large, large_dir = None, ROOT / "runs" / "bench-load-vit-b-mae"
    if args.large_model:
        import skimage.data

        if not (large_dir / "model.safetensors").is_file():
            random_checkpoint(large_dir, "mae", "vit-b")
        photo = (Path(skimage.data.__file__).parent / "chelsea.png").read_bytes()
        large = (f"http://127.0.0.1:{port}", str(large_dir), photo)
    runs = ROOT / "runs"
    runs_before = set(runs.glob("app-*"))
    index_before = (runs / ".app-runs.json").read_text() if (runs / ".app-runs.json").exists() else None
    server = start_server(port, dict(e.split("=", 1) for e in args.env))
    url = f"ws://127.0.0.1:{port}/_stcore/stream"
    try:
        warm = asyncio.run(crowd(url, 1, 1))[0]  # one visitor first: what every cache holds after one walk
        time.sleep(3)
        idle = memory_mib(server.pid)["VmRSS"]
        idle_map = memory_map(server.pid)
        reset_peak(server.pid)
        start = time.perf_counter()
        log = MemoryLog(server.pid)
        everyone = asyncio.run(crowd(url, args.sessions, args.rounds, args.think, args.fresh, large=large))
        wall = time.perf_counter() - start
        walk_memory = log.stop()
        peak = memory_mib(server.pid)["VmHWM"]
        with_training = None
        if args.training:
            asyncio.run(start_training(url, args.training))
            time.sleep(10)  # the runs are under way: past data loading, at their steps
            log = MemoryLog(server.pid)
            trained = asyncio.run(crowd(url, args.sessions, args.rounds, args.think, args.fresh, first=args.sessions,
                                        large=large))
            with_training = {**summary(trained), "memory_levels_mib": levels(log.stop())}
            peak = max(peak, memory_mib(server.pid)["VmHWM"])
        time.sleep(args.settle)
        after = memory_mib(server.pid)["VmRSS"]
        after_map = memory_map(server.pid)
    finally:
        import shutil

        stop(server)
        if args.large_model:
            shutil.rmtree(large_dir, ignore_errors=True)
        for made in set(runs.glob("app-*")) - runs_before:  # the benchmark's own trainings: not the user's runs
            shutil.rmtree(made, ignore_errors=True)
        if index_before is None:
            (runs / ".app-runs.json").unlink(missing_ok=True)
        else:
            (runs / ".app-runs.json").write_text(index_before)
    times = [t for s in everyone for ts in s.times.values() for t in ts]
    per_page = {}
    for name in sorted({n for s in everyone for n in s.times}):
        page = [t for s in everyone for t in s.times.get(name, [])]
        per_page[name] = {"n": len(page), "median_s": round(statistics.median(page), 2), "p95_s": round(p95(page), 2),
                          "max_s": round(max(page), 2)}
    result = {"sessions": args.sessions, "server_env": args.env, "rounds": args.rounds, "think_s": args.think,
              "fresh": args.fresh, "pages": len(per_page), "wall_s": round(wall, 1),
              "page_runs": len(times), "p95_s": round(p95(times), 2) if times else None,
              "median_s": round(statistics.median(times), 2) if times else None,
              "errors": [e for s in [warm, *everyone] for e in s.errors],
              "memory_mib": {"idle": round(idle), "peak": round(peak), "after": round(after)},
              "memory_map_mib": {"idle": idle_map, "after": after_map},
              "memory_levels_mib": levels(walk_memory),
              "per_page": per_page}
    idle_walk = summary(everyone)
    result |= {k: v for k, v in idle_walk.items() if k.startswith("fresh")}
    if with_training is not None:
        result["with_training"] = {**with_training, "steps": args.training,
                                   "p95_ratio": round(with_training["p95_s"] / result["p95_s"], 2),
                                   "median_ratio": round(with_training["median_s"] / result["median_s"], 2)}
        if "fresh_median_s" in idle_walk and "fresh_median_s" in with_training:
            result["with_training"] |= {
                "fresh_median_ratio": round(with_training["fresh_median_s"] / idle_walk["fresh_median_s"], 2),
                "fresh_p95_ratio": round(with_training["fresh_p95_s"] / idle_walk["fresh_p95_s"], 2)}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"{args.sessions} sessions x {args.rounds} walk(s) of {len(per_page)} pages (pauses {args.think:g} s on "
          f"average), {len(times)} page runs "
          f"in {wall:.0f} s: page script time median {result['median_s']} s, p95 {result['p95_s']} s; "
          f"{len(result['errors'])} errors")
    for name, page in per_page.items():
        print(f"  {name:12s} median {page['median_s']:6.2f} s  p95 {page['p95_s']:6.2f} s  max {page['max_s']:6.2f} s")
    if with_training is not None:
        t = result["with_training"]
        print(f"with a Train-page training of {args.training} steps under way: {t['page_runs']} page runs, median "
              f"{t['median_s']} s ({t['median_ratio']}x), p95 {t['p95_s']} s ({t['p95_ratio']}x the walk without); "
              f"{len(t['errors'])} errors; memory by quarter of that walk {t['memory_levels_mib']} MiB")
        if "fresh_median_ratio" in t:
            print(f"  page runs that computed anew (a new mask seed): median {result['fresh_median_s']} s without, "
                  f"{t['fresh_median_s']} s with the training ({t['fresh_median_ratio']}x); p95 {result['fresh_p95_s']} s "
                  f"and {t['fresh_p95_s']} s ({t['fresh_p95_ratio']}x)")
    m = result["memory_mib"]
    print(f"server memory: idle {m['idle']} MiB, peak {m['peak']} MiB, {args.settle:g} s after {m['after']} MiB; "
          f"largest by quarter of the walk {result['memory_levels_mib']} MiB")
    for when, parts in result["memory_map_mib"].items():
        print(f"  {when:5s} " + ", ".join(f"{k.replace('_', ' ')} {v} MiB" for k, v in parts.items()))
    for error in result["errors"][:10]:
        print("  error:", error)


if __name__ == "__main__":
    main()
