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
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parent.parent
PAGE_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak resident) of a process, MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def memory_map(pid: int) -> dict[str, float]:
    """Where the resident memory of a process lies, MiB, from /proc/PID/smaps: the main malloc heap
    ([heap]), other anonymous memory (malloc's thread arenas and large blocks, Python's object
    arenas, thread stacks: the kernel merges neighbouring anonymous mappings, so these cannot be
    told apart here), and file-backed pages (code and data of the libraries)."""
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


class Session:
    """One browser tab, as the server sees it: a WebSocket and its reruns."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pages: dict[str, str] = {}  # name -> page_script_hash
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.session_id = ""
        self.widgets: dict[str, object] = {}  # widget id -> its WidgetState, all sent with each rerun
        self.replies: list = []  # ForwardMsgs that are not a page run's (file upload URLs)

    async def run_page(self, ws, page_hash: str, name: str, widgets: list | None = None) -> list:
        """Run a page (with ``widgets``: WidgetState values, as a browser sends them); its new elements."""
        message = BackMsg()
        message.rerun_script.page_script_hash = page_hash
        message.rerun_script.query_string = ""
        if widgets:
            message.rerun_script.widget_states.widgets.extend(widgets)
        elements = []
        start = time.perf_counter()
        await ws.send(message.SerializeToString())
        raised = False
        while True:
            raw = await asyncio.wait_for(ws.recv(), PAGE_TIMEOUT_S)
            reply = ForwardMsg()
            reply.ParseFromString(raw)
            kind = reply.WhichOneof("type")
            if kind in ("new_session", "navigation"):  # the page list: the latter's is the full one
                self.pages = {p.page_name or p.url_pathname or "Learn": p.page_script_hash
                              for p in getattr(reply, kind).app_pages}
                if kind == "new_session" and reply.new_session.initialize.session_id:
                    self.session_id = reply.new_session.initialize.session_id
            elif kind == "file_urls_response":
                self.replies.append(reply)
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                raised |= reply.delta.new_element.WhichOneof("type") == "exception"
                elements.append(reply.delta.new_element)
            elif kind == "script_finished":
                if reply.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    break
        self.times.setdefault(name, []).append(time.perf_counter() - start)
        if raised:
            self.errors.append(f"{name}: the script raised")
        return elements

    async def walk(self, rounds: int, seed: int, think: float = 0, fresh: bool = False,
                   large: tuple[str, str, bytes] | None = None) -> None:
        try:
            async with websockets.connect(self.url, subprotocols=["streamlit"], max_size=2**26,
                                          open_timeout=60) as ws:
                await self.run_page(ws, "", "Learn (first visit)")
                if not self.pages:
                    raise RuntimeError("the server sent no page list")
                rng = random.Random(seed)
                order = rng.sample(list(self.pages), len(self.pages))
                for _ in range(rounds):
                    for name in order:
                        await asyncio.sleep(rng.uniform(0, 2 * think))  # a reader's pause, ``think`` s on average
                        elements = await self.run_page(ws, self.pages[name], name)
                        if fresh:  # a visitor moves the mask seed: the page computes anew, nothing cached
                            from streamlit.proto.WidgetStates_pb2 import WidgetState

                            seeds = [e.number_input.id for e in elements if e.WhichOneof("type") == "number_input"
                                     and e.number_input.label == "Mask seed"]
                            if seeds:
                                value = 1000 + 97 * seed + len(self.times.get(f"{name} (new seed)", []))
                                await self.run_page(ws, self.pages[name], f"{name} (new seed)",
                                                    [WidgetState(id=seeds[0], int_value=value)])
                if large is not None:
                    await large_model_visit(self, ws, *large)
        except (OSError, RuntimeError, KeyError, asyncio.TimeoutError, websockets.WebSocketException) as error:
            self.errors.append(f"{type(error).__name__}: {error}")


def widget_id(elements: list, kind: str, label: str) -> str:
    """The id of the first ``kind`` element (selectbox, radio, file_uploader, ...) whose label starts
    with ``label``; KeyError naming what the page showed otherwise."""
    for element in elements:
        if element.WhichOneof("type") == kind and getattr(element, kind).label.startswith(label):
            return getattr(element, kind).id
    shown = [(e.WhichOneof("type"), getattr(getattr(e, e.WhichOneof("type")), "label", "")) for e in elements]
    raise KeyError(f"no {kind} {label!r} on the page: {[x for x in shown if x[1]][:12]}")


async def large_model_visit(session: Session, ws, http: str, checkpoint: str, photo: bytes) -> None:
    """As a visitor with a published-size model would: on Reconstruct, pick MAE, then the large
    checkpoint alone, then upload a photo and reconstruct it (each step a rerun, timed)."""
    from streamlit.proto.Common_pb2 import FileUploaderState, FileURLs, UploadedFileInfo
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    page = session.pages["Reconstruct"]

    async def choose(kind: str, label: str, name: str, **value) -> list:
        elements = session.last
        session.widgets[widget_id(elements, kind, label)] = WidgetState(id=widget_id(elements, kind, label), **value)
        session.last = await session.run_page(ws, page, name, list(session.widgets.values()))
        return session.last

    session.last = await session.run_page(ws, page, "Reconstruct")
    await choose("radio", "Method", "Reconstruct (method)", string_value="MAE")
    await choose("selectbox", "Checkpoint", "Reconstruct (a ViT-B picked)",
                 string_value=f"{Path(checkpoint).name} · MAE (baseline)")
    await choose("selectbox", "Compare with", "Reconstruct (ViT-B alone)", string_value="— none: this checkpoint alone —")
    await choose("radio", "Image", "Reconstruct (upload chosen)", string_value="upload")
    request = BackMsg()
    request.file_urls_request.request_id = "upload-1"
    request.file_urls_request.file_names.append("photo.png")
    request.file_urls_request.session_id = session.session_id
    await ws.send(request.SerializeToString())
    urls = None
    while urls is None:
        reply = ForwardMsg()
        reply.ParseFromString(await asyncio.wait_for(ws.recv(), PAGE_TIMEOUT_S))
        if reply.WhichOneof("type") == "file_urls_response":
            urls = reply.file_urls_response.file_urls[0]

    def put() -> None:
        import requests

        with requests.Session() as client:
            client.get(http + "/_stcore/health", timeout=60)  # where the server sets its XSRF cookie
            token = client.cookies.get("_streamlit_xsrf", "")
            target = urls.upload_url if urls.upload_url.startswith("http") else http + urls.upload_url
            client.put(target, files={"file": ("photo.png", photo, "image/png")},
                       headers={"X-Xsrftoken": token}, timeout=120).raise_for_status()

    await asyncio.to_thread(put)
    state = FileUploaderState(uploaded_file_info=[UploadedFileInfo(
        name="photo.png", size=len(photo), file_id=urls.file_id,
        file_urls=FileURLs(file_id=urls.file_id, upload_url=urls.upload_url, delete_url=urls.delete_url))])
    uploader = widget_id(session.last, "file_uploader", "An image")
    session.widgets[uploader] = WidgetState(id=uploader, file_uploader_state_value=state)
    session.last = await session.run_page(ws, page, "Reconstruct (ViT-B, an uploaded photo)",
                                          list(session.widgets.values()))
    if not any(e.WhichOneof("type") == "imgs" for e in session.last):
        session.errors.append("Reconstruct (ViT-B upload): no picture came back")


async def start_training(url: str, steps: int) -> None:
    """Start a training on the Train page as a visitor would: fill in Steps, press Start (the full
    Fashion-MNIST training split, so that it lasts). It trains in the server's threads after the
    visitor leaves."""
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    visitor = Session(url)
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=2**26, open_timeout=60) as ws:
        await visitor.run_page(ws, "", "Learn")
        page = visitor.pages["Train"]
        found = {}
        for element in await visitor.run_page(ws, page, "Train"):
            kind = element.WhichOneof("type")
            if kind in ("number_input", "button"):
                found[getattr(element, kind).label] = getattr(element, kind).id
        if "Steps" not in found or "Start training" not in found:
            raise SystemExit(f"the Train page shows no Steps and Start training (a training already runs?): {found}")
        await visitor.run_page(ws, page, "Train (start)", [WidgetState(id=found["Steps"], int_value=steps),
                                                          WidgetState(id=found["Start training"], trigger_value=True)])
    if visitor.errors:
        raise SystemExit(f"starting the training failed: {visitor.errors}")


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


async def crowd(url: str, sessions: int, rounds: int, think: float = 0, fresh: bool = False,
                first: int = 0, large: tuple[str, str, bytes] | None = None, large_every: int = 3) -> list[Session]:
    """``sessions`` walks at once; with ``large`` (http address, checkpoint, photo), every
    ``large_every``-th session also opens that checkpoint on Reconstruct and uploads the photo."""
    everyone = [Session(url) for _ in range(sessions)]
    await asyncio.gather(*(s.walk(rounds, first + i, think, fresh, large if large and i % large_every == 0 else None)
                           for i, s in enumerate(everyone)))
    return everyone


def start_server(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, str(ROOT / "app" / "serve.py"), "--server.port", str(port),
                               "--server.address", "127.0.0.1"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if wait_until_serving(f"http://127.0.0.1:{port}"):
        return server
    server.kill()
    raise SystemExit("the app did not start within 120 s")


def wait_until_serving(url: str, limit_s: float = 120) -> bool:
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


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


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
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from app_budgets import random_checkpoint

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

        server.terminate()
        server.wait(30)
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
