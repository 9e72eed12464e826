"""What the app's benchmarks share: a server on a free port, its memory, a large model to open.

Imported by the scripts that start or measure the app; it imports no script, so none of them
needs another to start a server.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "app" / "serve.py"
START_LIMIT_S = 120


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, limit_s: float = START_LIMIT_S) -> bool:
    """True once the Streamlit server at ``url`` (http://host:port) answers its health check;
    False if it has not within ``limit_s`` seconds."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            return True
        except OSError:
            time.sleep(0.5)
    return False


def start_server(port: int, env: dict[str, str] | None = None, command: list[str] | None = None) -> subprocess.Popen:
    """``command`` (default: app/serve.py on ``port`` of 127.0.0.1) started and serving, or exit."""
    command = command or [sys.executable, str(SERVE), "--server.port", str(port), "--server.address", "127.0.0.1"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})})
    if wait_until_serving(f"http://127.0.0.1:{port}"):
        return server
    server.kill()
    raise SystemExit(f"the app did not start within {START_LIMIT_S} s: run `python app/serve.py` to see why")


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    server.wait(timeout=30)


@contextmanager
def app_server(env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """A fresh server on a free port; yields its http URL and its process id (for its memory)."""
    port = free_port()
    server = start_server(port, env)
    try:
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        stop(server)


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak resident) of a process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def memory_map(pid: int) -> dict[str, float]:
    """Where the resident memory of a process lies, MiB, from /proc/PID/smaps: the main malloc heap
    ([heap]), other anonymous memory (the kernel merges neighbouring anonymous mappings, so malloc's
    arenas, Python's and thread stacks cannot be told apart here), and file-backed pages."""
    out = {"heap": 0.0, "anonymous": 0.0, "files": 0.0}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else ""
        elif head[0] == "Rss:":
            out["heap" if name == "[heap]" else "files" if name.startswith("/") else "anonymous"] += int(head[1]) / 1024
    return {k: round(v) for k, v in out.items()}


def reset_peak(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux: write 5 to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def train_rate(rows: list[dict]) -> float:
    """Mean images/s of a run's 'train' rows, the first two left out (start-up is not the rate)."""
    rates = [r["images_per_s"] for r in rows if r.get("kind") == "train"][2:]
    return sum(rates) / max(len(rates), 1)


def random_checkpoint(folder: Path, name: str, size: str) -> Path:
    """A randomly initialised ``name`` model of ``size`` (``vit-b``, ``vit-l``) with ImageNet's
    per-channel normalisation, in mto's format, weights in float16 (loaded into float32): the
    shapes, not the values, set the app's times, and no published weights can be downloaded."""
    import torch

    from mto_core.config import SIZE_PRESETS, apply_overrides, preset, set_value
    from mto_core.models.build import build_model
    from mto_core.models.checkpoint import save_snapshot

    if size == "vit-l":  # MAE's ViT-L: 1024 wide, 24 layers, 16 heads; its decoder as ViT-B's
        config = preset(name, "vit-b")
        for key, value in {"embed_dim": 1024, "depth": 24, "num_heads": 16}.items():
            set_value(config, f"model.{key}", value, size_preset=False)
        config.model.size = "vit-l"
    else:
        assert size in SIZE_PRESETS
        config = preset(name, size)
    config = apply_overrides(config, ["model.pixel_mean=[0.485,0.456,0.406]", "model.pixel_std=[0.229,0.224,0.225]"])
    torch.manual_seed(0)
    model = build_model(config.model, config.mto).half()
    return save_snapshot(folder, model, config)
