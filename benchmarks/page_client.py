"""A protocol-level visitor of the app: Streamlit's own WebSocket messages, as a browser sends them.

Shared by load.py (many visitors at once) and profile_pages.py (one, under a profiler). Each
page run is timed from the request to the server's ``script_finished``; nothing is drawn.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

PAGE_TIMEOUT_S = 120


class Session:
    """One browser tab, as the server sees it: a WebSocket and its reruns."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pages: dict[str, str] = {}  # name -> page_script_hash
        self.times: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.session_id = ""
        self.widgets: dict[str, object] = {}  # widget id -> its WidgetState, all sent with each rerun

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


async def crowd(url: str, sessions: int, rounds: int, think: float = 0, fresh: bool = False,
                first: int = 0, large: tuple[str, str, bytes] | None = None, large_every: int = 3) -> list[Session]:
    """``sessions`` walks at once; with ``large`` (http address, checkpoint, photo), every
    ``large_every``-th session also opens that checkpoint on Reconstruct and uploads the photo."""
    everyone = [Session(url) for _ in range(sessions)]
    await asyncio.gather(*(s.walk(rounds, first + i, think, fresh, large if large and i % large_every == 0 else None)
                           for i, s in enumerate(everyone)))
    return everyone
