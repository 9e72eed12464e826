"""The app's latency budgets, measured: first render of each page after the server starts (headless
Chromium), one baseline + MTO reconstruction, UMAP of 2,000 tokens once warm.

Usage: python benchmarks/app_budgets.py [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"Learn": "", "Reconstruct": "Reconstruct", "Tokens": "Tokens", "Attention": "Attention",
         "Curves": "Curves", "Train": "Train"}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]


def first_renders() -> dict[str, float]:
    """Seconds from opening each page (in a fresh server, pages in turn) until its script has run."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "app" / "serve.py"),
                               "--server.port", str(port), "--server.address", "127.0.0.1"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        times = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for name, path in PAGES.items():
                start = time.perf_counter()
                page.goto(f"{url}/{path}")
                page.wait_for_selector("h1", timeout=120_000)
                page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]',
                                       timeout=120_000)
                times[name] = time.perf_counter() - start
            browser.close()
        return times
    finally:
        server.terminate()
        server.wait(timeout=20)


def reconstruction_ms(rounds: int = 30) -> float:
    from mto_core import load_checkpoint, make_mask, reconstruct, load_fashion_mnist

    base, mto = (load_checkpoint(ROOT / "checkpoints" / n) for n in ("simmim", "simmim-mto"))
    image, mask = load_fashion_mnist("test").images[:1], make_mask(1, 7, 0.6, 0)
    times = []
    for _ in range(rounds + 3):
        start = time.perf_counter()
        reconstruct(base, image, mask)
        reconstruct(mto, image, mask)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


def umap_seconds() -> float:
    from mto_core import load_checkpoint, load_fashion_mnist, make_mask
    from mto_core.analysis import embed_2d, layer_tokens

    ckpt = load_checkpoint(ROOT / "checkpoints" / "simmim-mto")
    tokens = layer_tokens(ckpt, load_fashion_mnist("test").images[:41], make_mask(41, 7, 0.6, 0), 1)
    features = tokens["features"][:2000].astype(np.float32)
    embed_2d(features, "umap")  # compiles numba kernels once
    start = time.perf_counter()
    embed_2d(features, "umap")
    return time.perf_counter() - start


def measure() -> dict:
    torch.set_num_threads(torch.get_num_threads())
    return {"first_render_s": first_renders(), "reconstruction_ms": reconstruction_ms(),
            "umap_2000_tokens_s": umap_seconds()}


def report(result: dict) -> str:
    renders = result["first_render_s"]
    lines = ["| budget | measured | verdict |", "|---|---|---|"]
    worst = max(renders, key=renders.get)
    lines.append(f"| first render of a page <= 5 s after server start | slowest: {worst} {renders[worst]:.1f} s "
                 f"({', '.join(f'{k} {v:.1f} s' for k, v in renders.items())}) | "
                 f"{'holds' if renders[worst] <= 5 else 'does not hold'} |")
    lines.append(f"| one baseline + MTO reconstruction <= 200 ms (CPU) | {result['reconstruction_ms']:.1f} ms | "
                 f"{'holds' if result['reconstruction_ms'] <= 200 else 'does not hold'} |")
    lines.append(f"| UMAP of 2,000 tokens <= 5 s once warm | {result['umap_2000_tokens_s']:.1f} s | "
                 f"{'holds' if result['umap_2000_tokens_s'] <= 5 else 'does not hold'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure()
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    main()
