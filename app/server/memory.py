"""Memory handed back to the system while the server runs."""

from __future__ import annotations

import threading


def give_memory_back(every_s: float = 10.0, collect_every: int = 6) -> threading.Event:
    """Every ``every_s``, hand the memory freed since back to the system (glibc's malloc_trim), and
    every ``collect_every``-th time first collect the page runs' cyclic garbage (a full
    ``gc.collect``): the memory that many sessions at once took returns near its idle level after
    they leave, instead of staying with the process (docs/performance.md, "A classroom on one
    server"). Streamlit's collection after every page run is off (``runner.postScriptGC``), so a
    run's script namespace, a cycle, would otherwise wait for Python's rare full collection.
    A thread of its own; the trim runs outside the interpreter lock. No trim where there is no glibc.
    Returns the event that stops the thread once set."""
    import ctypes
    import gc

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        trim = None

    stop = threading.Event()

    def loop() -> None:
        count = 0
        while not stop.wait(every_s):
            count += 1
            if count % collect_every == 0:
                gc.collect()
            if trim is not None:
                trim(0)

    threading.Thread(target=loop, name="give-memory-back", daemon=True).start()
    return stop
