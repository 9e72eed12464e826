"""Start the app with the heavy modules already imported.

``streamlit run`` imports torch, timm and scikit-learn only when the first visitor opens a page,
which then waits seconds for them. Importing them here first, in the server's own process, moves
that wait to start-up. Extra arguments go to ``streamlit run`` (e.g. --server.port 8502), after
the app's own settings (localhost only, 10 MB uploads, no usage statistics), which hold wherever
the server is started from. ``--public`` serves a classroom: every network interface, with the
addresses to share, the teacher's address (its token stops any training) and a warning printed
at start (``MTO_TEACHER_TOKEN`` sets the token; else a random one). The classroom's own options
(``--keep-app-runs N``, ``--min-free-mb M``, ``--hide-others-runs``) are described in
:func:`server.settings.classroom_options`.

Before it listens, the server renders each page's default view once (:func:`warm_pages`), so the
first visitors find those figures computed; ``MTO_PREPARE_PAGES=0`` skips that. UMAP's kernels
compile in the background meanwhile.
"""

import os
import sys
from pathlib import Path

# this checkout's library, before any installed copy (an editable install may point at another checkout)
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import plotly.express  # noqa: F401, E402
import torch
import sklearn.decomposition  # noqa: F401
import sklearn.linear_model  # noqa: F401
import sklearn.metrics  # noqa: F401
import umap  # noqa: F401
from streamlit.web import cli

import mto_core.analysis.measures  # noqa: F401
import server.training_job  # noqa: F401  (app/ is on the path: python3 app/serve.py puts it first)
from server.memory import give_memory_back
from server.settings import classroom_options, server_args, share_addresses, teacher_token


def warm_up() -> None:
    """Pay once, at start-up, what the first visitor would otherwise wait for: Plotly's figure
    validators, torch's first kernels of the tiny model (forward with attention maps), PNG encoding."""
    import io

    import numpy as np
    import pandas as pd
    import plotly.express as px
    import plotly.graph_objects as go
    from PIL import Image

    from mto_core.api import token_trace
    from mto_core.config import preset
    from mto_core.data.masking import make_mask
    from mto_core.models.build import build_model

    for trace in (go.Scatter, go.Heatmap, go.Bar, go.Box):
        go.Figure(trace()).to_json()
    frame = pd.DataFrame({"x": [0.0, 1.0], "y": [1.0, 0.0], "c": ["a", "b"]})
    px.scatter(frame, x="x", y="y", color="c").to_json()
    px.line(frame, x="x", y="y", color="c").to_json()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(io.BytesIO(), format="PNG")
    for name in ("simmim-mto", "mae-mto"):
        config = preset(name)
        model = build_model(config.model, config.mto).eval()
        token_trace(model, torch.zeros(2, config.model.in_chans, config.model.img_size, config.model.img_size,
                                       dtype=torch.uint8), make_mask(2, config.model.grid, 0.6, 0))


def warm_pages() -> float:
    """Render each page's default view once before the first visitor comes (Streamlit's bare mode: no
    browser session, every widget at its default), so the figures the pages keep (keyed by checkpoint,
    image, mask ratio and seed) are ready when a class opens them at once. A page that fails here is
    reported in one line and served as usual. The Train page is left out: it computes nothing until
    asked. Returns the seconds it took."""
    import logging
    import runpy
    import time

    start = time.perf_counter()
    logging.disable(logging.WARNING)  # bare mode warns on every call that no browser is attached
    try:
        for page in sorted((Path(__file__).resolve().parent / "pages").glob("[0-4]_*.py")):
            try:
                runpy.run_path(str(page), run_name="__main__")
            except Exception as error:  # noqa: BLE001 (a page's own error shows to its visitor as usual)
                print(f"app/serve.py: {page.name} could not be prepared ({type(error).__name__}: {error})",
                      flush=True)
    finally:
        logging.disable(logging.NOTSET)
    return time.perf_counter() - start


def compile_umap_in_background() -> None:
    """UMAP's kernels compile (numba) on their first use, several seconds: do it while the server
    waits for visitors, so a visitor's first UMAP on the Tokens page does not pay it."""
    import threading

    def compile_umap() -> None:
        import numpy as np

        from mto_core.analysis.measures import embed_2d

        try:  # the lowest CPU priority: page runs and trainings go first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (AttributeError, OSError):
            pass

        embed_2d(np.random.default_rng(0).random((40, 8), dtype=np.float32), "umap")

    threading.Thread(target=compile_umap, name="umap-compile", daemon=True).start()


if __name__ == "__main__":
    # page computations are small: one thread each beats threads that wait on each other (training sets its own)
    torch.set_num_threads(1)
    # numpy's BLAS likewise: its threads spin while training holds the cores (docs/performance.md)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    public = "--public" in sys.argv[1:]
    try:
        extra = classroom_options([arg for arg in sys.argv[1:] if arg != "--public"])
    except ValueError as error:
        sys.exit(f"app/serve.py: error: {error}")
    try:
        options = server_args(extra, public)
    except ValueError as error:
        sys.exit(f"app/serve.py: error: {error}")
    warm_up()
    if os.environ.get("MTO_PREPARE_PAGES", "1") != "0":  # 0: start at once, each page computed when opened
        print("Preparing the pages' default views…", flush=True)
        print(f"Prepared them in {warm_pages():.0f} s.", flush=True)
        compile_umap_in_background()
    give_memory_back()
    if public:
        print("Serving on every network interface. Students open: " + "  ".join(share_addresses(extra)),
              flush=True)
        token = teacher_token(create=True)
        print(f"Teacher: open {share_addresses(extra)[0]}/Train?teacher={token} to stop any training "
              "(keep this address to yourself).", flush=True)
        print("Warning: anyone who can reach this machine can use the app, train on it and upload images: "
              "serve it only on a network you trust, and stop it (Ctrl+C) after class.", flush=True)
    # Home.py's page list from the first request on: Streamlit would otherwise read app/pages/ as an
    # old-style page folder (a "Home" entry, /Train run without Home.py) until someone opens the root
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    sys.argv = ["streamlit", "run", str(Path(__file__).resolve().parent / "Home.py"), *options]
    sys.exit(cli.main())
