"""The app in a real browser: headless Chromium (Debian's) driven by Playwright.

Starts the server on a free localhost port, opens every page, moves a slider, clicks a patch,
checks that no exception box appears, and saves a screenshot of each page in test-artifacts/.
"""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]
PAGES = {"learn": "", "reconstruct": "Reconstruct", "tokens": "Tokens", "attention": "Attention",
         "curves": "Curves", "train": "Train"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "app" / "serve.py"),
                                "--server.port", str(port), "--server.address", "127.0.0.1",
                                "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        raise RuntimeError(f"the app did not start: {process.stdout.read().decode()[-2000:]}")
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def settle(page, timeout: float = 120_000) -> None:
    """Wait until the script has run to the end (the app marks its state on the root element)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


def test_every_page_renders_and_reacts(server, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name, path in PAGES.items():
        page.goto(f"{server}/{path}")
        page.wait_for_selector("h1", timeout=120_000)
        settle(page)
        if name == "reconstruct":
            caption = page.get_by_text("patches hidden").inner_text()
            slider = page.locator('[data-testid="stSlider"]').filter(has_text="Mask ratio").locator('[tabindex="0"]')
            slider.focus()
            slider.press("ArrowRight")
            settle(page)
            assert page.get_by_text("patches hidden").inner_text() != caption
        if name == "attention":
            before = page.get_by_text("Query: patch").inner_text()
            grid = page.locator(".js-plotly-plot").first
            box = grid.bounding_box()
            page.mouse.click(box["x"] + box["width"] * 0.93, box["y"] + box["height"] * 0.93)  # bottom-right patch
            settle(page)
            assert page.get_by_text("Query: patch").inner_text() != before
        assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {name}"
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.close()
