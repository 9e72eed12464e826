"""What every browser test of the app shares: where the server and Chromium are, waiting for a
script run to end, checking the figures as drawn, and full-page screenshots."""

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]
TEACHER = "teacher-token-for-tests"
PAGES = {"learn": "", "reconstruct": "Reconstruct", "tokens": "Tokens", "attention": "Attention",
         "curves": "Curves", "train": "Train"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(page, timeout: float = 120_000) -> None:
    """Wait until the script has run to the end (the app marks its state on the root element)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_timeout(500)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


MIN_PX = 120
# the charts on show: while a fragment reruns, Streamlit keeps the previous copy of a changed element
# hidden (data-stale="true", 0 x 0 px) until the run ends
CHARTS = '[data-testid="stElementContainer"]:not([data-stale="true"]) .js-plotly-plot'


def check_figures(page, name: str) -> None:
    """Every Plotly chart drawn at a readable size with a trace; every image wide enough."""
    assert page.locator('[data-testid="stException"]').count() == 0, f"exception on {name}"
    charts = page.locator(CHARTS)
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        traces = chart.evaluate("el => (el.data || []).length")
        assert box and box["width"] >= MIN_PX and box["height"] >= MIN_PX, f"{name}: chart {i} drawn at {box}"
        assert traces >= 1, f"{name}: chart {i} has no trace"
    images = page.locator('[data-testid="stImage"] img, [data-testid="stFullScreenFrame"] img')
    for i in range(images.count()):
        box = images.nth(i).bounding_box()
        assert box and box["width"] >= MIN_PX, f"{name}: image {i} is {box and box['width']} px wide"


def screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main section, so the window is made as tall as
    the content for the picture, then put back."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 50, 16000)})
    page.wait_for_timeout(300)  # the page lays out at the new height (the charts' widths stay)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
