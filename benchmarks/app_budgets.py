"""The app's latency budgets, measured.

- first render of every page on a fresh server (headless Chromium opening the pages in turn, Learn
  first; the median over 3 fresh servers) <= 3 s
- UMAP of 2,000 tokens <= 10 s cold (a fresh process: numba compiles its kernels) and <= 3 s warm
- one baseline + MTO reconstruction <= 50 ms
- training from the Train page, with the page open in the browser, at >= 0.8x the images/s of
  `mto train` on the same settings (SimMIM, batch 64, the shipped subset). The page trains the
  baseline and the MTO run side by side: their images/s are summed; `mto train` runs the
  baseline alone, which is the faster of the two, so the ratio errs low. `mto train` is measured
  before and after the page (the mean of the two), as the machine's speed drifts.

The machine's load average is recorded with the figures: on a busy machine they are not the
app's own. Usage: python benchmarks/app_budgets.py [--json] [--update-doc docs/performance.md]
[--training-only] (--update-doc rewrites only the "The app's budgets" section of that file).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from performance_text import SCALE_INTRO, app_budgets_table, replace_section, scale_table
from serving import ROOT, app_server, memory_mib, random_checkpoint, train_rate

sys.path.insert(0, str(ROOT))  # run from a checkout, installed or not
PAGES = {"Learn": "", "Reconstruct": "Reconstruct", "Tokens": "Tokens", "Attention": "Attention",
         "Curves": "Curves", "Train": "Train"}
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]
TRAIN_STEPS, TRAIN_BATCH = 60, 64
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # subprocesses import this checkout's mto_core


def settled(page, timeout_ms: int = 120_000) -> None:
    """Wait until the page's script has run (Streamlit marks the app not running)."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def machine(load_before: float) -> dict:
    """Where and when the figures were taken; the load average says whether the machine was quiet."""
    return {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


@contextmanager
def chromium_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def first_renders(servers: int = 3) -> dict[str, float]:
    """Seconds from opening each page until its script has run: on each of ``servers`` fresh
    servers the pages are opened in turn (Learn first, as a visitor would); the median per page."""
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    for _ in range(servers):
        with app_server() as (url, _), chromium_page() as page:
            for name, path in PAGES.items():
                start = time.perf_counter()
                page.goto(f"{url}/{path}")
                page.wait_for_selector("h1", timeout=120_000)
                settled(page)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def reconstruction_ms(rounds: int = 30) -> float:
    from mto_core import load_checkpoint, load_fashion_mnist, make_mask, reconstruct

    base, mto = (load_checkpoint(ROOT / "checkpoints" / n) for n in ("simmim", "simmim-mto"))
    image, mask = load_fashion_mnist("test").images[:1], make_mask(1, 7, 0.6, 0)
    times = []
    for _ in range(rounds + 3):
        start = time.perf_counter()
        reconstruct(base, image, mask)
        reconstruct(mto, image, mask)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[3:])


UMAP_SCRIPT = """
import time, numpy as np
from mto_core import load_checkpoint, load_fashion_mnist, make_mask
from mto_core.analysis.measures import embed_2d, layer_tokens
ckpt = load_checkpoint("checkpoints/simmim-mto")
tokens = layer_tokens(ckpt, load_fashion_mnist("test").images[:41], make_mask(41, 7, 0.6, 0), 1)
features = tokens["features"][:2000].astype(np.float32)
start = time.perf_counter(); embed_2d(features, "umap"); cold = time.perf_counter() - start
start = time.perf_counter(); embed_2d(features, "umap"); warm = time.perf_counter() - start
print(cold, warm)
"""


def umap_seconds() -> dict[str, float]:
    """UMAP of 2,000 tokens in a fresh process: the first call (cold) and the second (warm)."""
    out = subprocess.run([sys.executable, "-c", UMAP_SCRIPT], cwd=ROOT, env=ENV, check=True,
                         capture_output=True, text=True).stdout.split()
    return {"cold": float(out[-2]), "warm": float(out[-1])}


def _rate(metrics: Path) -> float:
    return train_rate([json.loads(line) for line in metrics.read_text().splitlines() if line.strip()])


def training_rates() -> dict[str, float]:
    """images/s of `mto train` and of the Train page (both runs summed) on the same settings."""
    sets = [f"train.max_steps={TRAIN_STEPS}", "train.epochs=0", f"train.batch_size={TRAIN_BATCH}",
            "train.log_every=5", "train.warmup_fraction=0.1", "data.root=shipped"]
    with tempfile.TemporaryDirectory() as tmp:
        cli = [sys.executable, "-m", "mto_core.cli", "train", "--preset", "simmim"]

        def command_line(name: str) -> float:
            subprocess.run(cli + ["--out", f"{tmp}/{name}"] + [a for s in sets for a in ("--set", s)], cwd=ROOT,
                           env=ENV, check=True, capture_output=True)
            return _rate(Path(tmp) / name / "metrics.jsonl")

        before = command_line("before")
    runs = ROOT / "runs"
    existing = set(runs.glob("app-*"))
    try:
        with app_server() as (url, _), chromium_page() as page:
            page.goto(f"{url}/Train")
            settled(page)
            page.get_by_text("Use the small shipped data subset").click()
            steps = page.get_by_label("Steps")
            steps.fill(str(TRAIN_STEPS))
            steps.press("Tab")
            page.get_by_role("button", name="Start training").click()
            page.get_by_text("Saved:").first.wait_for(timeout=600_000)
        made = sorted(set(runs.glob("app-*")) - existing)
        app = sum(_rate(run / "metrics.jsonl") for run in made)
    finally:
        for run in set(runs.glob("app-*")) - existing:
            shutil.rmtree(run, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        after = command_line("after")  # the machine's speed can drift: the mean of before and after
    return {"mto_train": (before + after) / 2, "mto_train_before_after": [before, after], "train_page": app,
            "batch": TRAIN_BATCH}


def wait_for_quiet(limit_s: float = 300) -> None:
    """Wait (up to ``limit_s``) until the 1-minute load average is below a quarter of the cores."""
    end = time.monotonic() + limit_s
    while os.getloadavg()[0] > 0.25 * (os.cpu_count() or 1) and time.monotonic() < end:
        time.sleep(5)


def measure() -> dict:
    wait_for_quiet()
    load_before = os.getloadavg()[0]
    result = {"first_render_s": first_renders(), "reconstruction_ms": reconstruction_ms(),
              "umap_2000_tokens_s": umap_seconds(), "training_images_per_s": training_rates()}
    result["machine"] = machine(load_before)
    return result


# The app at the paper's scale: the shapes of published models set its times, so random weights do.

SCALE_PAGES = {"Learn": 0, "Reconstruct": 1, "Tokens": 2, "Attention": 3}  # their places in the page list


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` (the start of its text) in the sidebar's selectbox ``label``, typing it to
    filter the list (a long list shows only its first options)."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first.click()
    page.keyboard.type(option.split(" · ")[0])
    page.get_by_role("option", name=option).first.click()
    page.wait_for_timeout(300)
    settled(page, 600_000)


def _open(page, place: int) -> float:
    """Open the page at ``place`` in the sidebar's page list, within the same session (a new address
    would start a new session, without the sidebar's choices); the seconds until it has run."""
    start = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"] a').nth(place).click()
    page.wait_for_timeout(300)
    settled(page, 600_000)
    return time.perf_counter() - start


def scale_pages(made: dict[str, Path]) -> dict:
    """In headless Chromium on a fresh server: the time from picking the ViT-B checkpoint in the
    sidebar until the page has run (Reconstruct; the load included), then each page's first render
    with it (alone), then the same with each beside its MTO twin; the server's memory with those ViT-Bs
    and a ViT-L loaded."""
    out: dict = {"pick_s": {}, "alone_s": {}, "pair_s": {}}
    with app_server() as (url, pid), chromium_page() as page:
        for method, checkpoint in (("MAE", made["mae-b"]), ("SimMIM", made["simmim-b"])):
            page.goto(f"{url}/Reconstruct")
            settled(page)
            page.locator('[data-testid="stSidebar"]').get_by_text(method, exact=True).click()
            settled(page)
            start = time.perf_counter()
            _pick(page, "Checkpoint", f"{checkpoint.name} · ")
            _pick(page, "Compare with", "— none: this checkpoint alone —")
            out["pick_s"][method] = time.perf_counter() - start
            for name, place in SCALE_PAGES.items():
                out["alone_s"][f"{name} ({method})"] = _open(page, place)
        for method, key in (("SimMIM", "simmim-b"), ("MAE", "mae-b")):  # pairs: each beside its MTO twin
            _open(page, SCALE_PAGES["Reconstruct"])
            page.locator('[data-testid="stSidebar"]').get_by_text(method, exact=True).click()
            settled(page)
            _pick(page, "Checkpoint", f"{made[key].name} · ")
            _pick(page, "Compare with", f"{made[key + '-mto'].name} · ")
            for name, place in SCALE_PAGES.items():
                out["pair_s"][f"{name} ({method} pair)"] = _open(page, place)
        before = memory_mib(pid)["VmRSS"]
        _pick(page, "Compare with", f"{made['mae-l'].name} · ")  # a ViT-L beside the ViT-B MAE
        out["memory_mib"] = {"with ViT-B MAE and SimMIM, each with its MTO twin": round(before),
                             "after also a ViT-L MAE": round(memory_mib(pid)["VmRSS"])}
    return out


def scale_budgets() -> dict:
    """The app's budgets on ViT-B-shaped models (docs/performance.md, "The app at the paper's scale")."""
    from mto_core import load_checkpoint, make_mask, reconstruct
    from mto_core.analysis.measures import embed_2d, layer_tokens
    from mto_core.data.photos import GALLERY, bundled_photos

    wait_for_quiet()
    load_before = os.getloadavg()[0]
    runs = ROOT / "runs"
    made = {"mae-b": ("mae", "vit-b"), "mae-b-mto": ("mae-mto", "vit-b"), "simmim-b": ("simmim", "vit-b"),
            "simmim-b-mto": ("simmim-mto", "vit-b"), "mae-l": ("mae", "vit-l")}
    paths = {key: runs / f"bench-scale-{key}" for key in made}
    try:
        for key, (name, size) in made.items():
            if not (paths[key] / "model.safetensors").is_file():
                random_checkpoint(paths[key], name, size)
        result: dict = {"load_s": {}, "reconstruction_s": {}, "pca_s": {}, "tokens_forward_s": {}}
        photos = bundled_photos(224, list(GALLERY)[:16]).images
        embed_2d(np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32), "pca")  # scikit-learn's import
        for key in ("mae-b", "simmim-b"):
            start = time.perf_counter()
            checkpoint = load_checkpoint(paths[key])
            result["load_s"][key] = time.perf_counter() - start
            mask = make_mask(1, checkpoint.config.model.grid, 0.75, 0)
            reconstruct(checkpoint, photos[:1], mask)  # first kernels
            start = time.perf_counter()
            reconstruct(checkpoint, photos[:1], mask)
            result["reconstruction_s"][key] = time.perf_counter() - start
            masks = make_mask(16, checkpoint.config.model.grid, 0.75, 0)
            start = time.perf_counter()
            tokens = layer_tokens(checkpoint, photos, masks, 1)
            result["tokens_forward_s"][key] = time.perf_counter() - start
            start = time.perf_counter()
            embed_2d(tokens["features"], "pca")
            result["pca_s"][key] = time.perf_counter() - start
            np.save(runs / f"bench-scale-{key}-tokens.npy", tokens["features"].astype(np.float32))
        script = ("import time, numpy as np; from mto_core.analysis.measures import embed_2d; "
                  f"x = np.load({str(runs / 'bench-scale-mae-b-tokens.npy')!r}); "
                  "t = time.perf_counter(); embed_2d(x, 'umap'); print(time.perf_counter() - t)")
        result["umap_cold_s"] = float(subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=ENV, check=True,
                                                     capture_output=True, text=True).stdout.split()[-1])
        result["tokens"] = int(tokens["features"].shape[0])
        result["pages"] = scale_pages(paths)
        sys.path.insert(0, str(ROOT / "app"))
        from widgets.models import MODEL_CACHE_BYTES

        result["cache_gib"] = MODEL_CACHE_BYTES / 2**30
    finally:
        for key in made:
            shutil.rmtree(paths[key], ignore_errors=True)
            (runs / f"bench-scale-{key}-tokens.npy").unlink(missing_ok=True)
    result["machine"] = machine(load_before)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--update-doc", type=Path, help="rewrite the app's budgets section of this file")
    parser.add_argument("--training-only", action="store_true",
                        help="measure only the Train page against `mto train` and print the images/s as JSON")
    parser.add_argument("--scale", action="store_true",
                        help="the budgets on ViT-B-shaped models opened on photos (randomly initialised, written "
                             "under runs/ and removed after); with --update-doc, its section of that file")
    args = parser.parse_args()
    if args.scale:
        result = scale_budgets()
        print(json.dumps(result, indent=2) if args.json else scale_table(result))
        if args.update_doc:
            replace_section(args.update_doc, scale_table(result), "## The app at the paper's scale", SCALE_INTRO)
        return
    if args.training_only:
        rates = training_rates()
        print(json.dumps({**rates, "ratio": round(rates["train_page"] / rates["mto_train"], 3)}))
        return
    result = measure()
    print(json.dumps(result, indent=2) if args.json else app_budgets_table(result))
    if args.update_doc:
        replace_section(args.update_doc, app_budgets_table(result))


if __name__ == "__main__":
    main()
