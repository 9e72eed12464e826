"""The app's own modules (logic, widgets, server) import as the app's server imports them: with
app/ first on the path."""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))

from .browsing import CHROMIUM, FLAGS, ROOT, TEACHER, free_port


# one server and one Chromium for every browser test of the session: each start costs seconds
@pytest.fixture(scope="session")
def server():
    port = free_port()
    # a classroom (--public) on this machine's address only, with a known teacher token
    process = subprocess.Popen([sys.executable, str(ROOT / "app" / "serve.py"), "--public",
                                "--server.port", str(port), "--server.address", "127.0.0.1",
                                "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "MTO_TEACHER_TOKEN": TEACHER})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240  # it renders the pages' default views before it listens
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


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def no_leftover_runs():
    """The Train page writes runs/app-*: remove the ones the test made."""
    before = set((ROOT / "runs").glob("app-*"))
    yield
    for run_dir in set((ROOT / "runs").glob("app-*")) - before:
        shutil.rmtree(run_dir, ignore_errors=True)
