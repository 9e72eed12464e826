"""A classroom that lasts a term: the app's own runs are bounded, each has an owner, and no
training starts on a full disk.

The server's options (app/serve.py passes them in these environment variables):
MTO_KEEP_APP_RUNS, the newest app runs kept (older ones removed); MTO_MIN_FREE_MB, the free disk
below which no training starts; MTO_HIDE_OTHERS_RUNS, whether a visitor's pickers leave out the
runs other visitors started; MTO_TRAIN_KNN_BANK, the training images of the k-NN probe at the end
of a Train-page run (0: no probe).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

APP_INDEX = ".app-runs.json"  # in runs/: {run folder name: {"visitor": id, "started": unix time}}
# a Train-page click makes two runs; their size on disk: docs/performance.md (benchmarks/app_budgets.py)
DEFAULT_KEEP_APP_RUNS = 40
DEFAULT_MIN_FREE_MB = 500
RECENTLY_OPEN_S = 1800  # a run a page has shown within this is "open": never removed
STARTING_S = 600  # an index entry whose folder is not there yet is kept this long: its run is starting
APP_RUN_NAME = re.compile(r"^app-\d{8}-\d{6}-[a-z]+(-mto)?$")  # what the Train page names its runs
_INDEX_LOCK = threading.Lock()
_OPENED: dict[str, float] = {}  # run folder (resolved) -> when a page last loaded it
_OPENED_LOCK = threading.Lock()


def keep_app_runs() -> int:
    import os

    return max(1, int(os.environ.get("MTO_KEEP_APP_RUNS", DEFAULT_KEEP_APP_RUNS)))


def min_free_mb() -> float:
    import os

    return float(os.environ.get("MTO_MIN_FREE_MB", DEFAULT_MIN_FREE_MB))


def train_knn_bank() -> int:
    """The training images of the k-NN probe that ends a Train-page run (the probe reads half as many
    validation images); 0: the runs end without one. A slow classroom machine can make it smaller."""
    import os

    from mto_core.eval.schedule import QUICK_BANK

    return max(0, int(os.environ.get("MTO_TRAIN_KNN_BANK", QUICK_BANK)))


def hide_others() -> bool:
    import os

    return os.environ.get("MTO_HIDE_OTHERS_RUNS", "") not in ("", "0", "false")


def opened(path: str | Path) -> None:
    """A page has loaded ``path`` (a checkpoint or a run's): its run is open, not to be removed."""
    import time

    with _OPENED_LOCK:
        _OPENED[str(Path(path).resolve())] = time.time()


def read_index(runs: Path) -> dict[str, dict[str, Any]]:
    """The app runs' index: only entries of the Train page's own names, each with a visitor and a
    numeric start (a damaged or hand-edited file loses its bad entries, never more)."""
    import json

    try:
        data = json.loads((runs / APP_INDEX).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: entry for name, entry in data.items()
            if isinstance(name, str) and APP_RUN_NAME.match(name) and isinstance(entry, dict)
            and isinstance(entry.get("started"), (int, float)) and not isinstance(entry.get("started"), bool)}


def _write_index(runs: Path, index: dict[str, dict[str, Any]]) -> None:
    import json
    import os

    runs.mkdir(parents=True, exist_ok=True)
    tmp = runs / f"{APP_INDEX}.tmp"
    tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
    os.replace(tmp, runs / APP_INDEX)


def record_app_run(run_dir: Path, visitor: str) -> None:
    """Note that the app started ``run_dir`` for ``visitor``."""
    import time

    with _INDEX_LOCK:
        index = read_index(run_dir.parent)
        index[run_dir.name] = {"visitor": visitor, "started": time.time()}
        _write_index(run_dir.parent, index)


def prune_app_runs(runs: Path, keep: int | None = None, busy: set[Path] = frozenset()) -> list[str]:
    """Remove the oldest app runs beyond the newest ``keep``; never a run the app did not make,
    one that is training (``busy``) or one a page has opened within RECENTLY_OPEN_S. The names
    removed, oldest first."""
    import shutil
    import time

    keep = keep_app_runs() if keep is None else keep
    now = time.time()
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    protected = {str(Path(p).resolve()) for p in busy}
    with _OPENED_LOCK:
        protected |= {p for p, when in list(_OPENED.items()) if now - when < RECENTLY_OPEN_S}
    home = runs.resolve()
    with _INDEX_LOCK:
        index = read_index(runs)
        present = {name: entry for name, entry in index.items() if (runs / name).is_dir()}
        starting = {name: entry for name, entry in index.items()
                    if name not in present and now - float(entry["started"]) < STARTING_S}
        newest_first = sorted(present, key=lambda n: float(present[n]["started"]), reverse=True)
        removed = []
        for name in reversed(newest_first[keep:]):
            folder = runs / name
            if folder.is_symlink() or folder.resolve().parent != home:  # only a folder of runs/ itself
                continue
            folder = folder.resolve()
            if str(folder) in protected or any(p.startswith(str(folder) + "/") for p in protected):
                continue
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(name)
        for name in removed:
            present.pop(name, None)
        _write_index(runs, {**present, **starting})
    return removed


def app_runs(runs: Path) -> list[str]:
    """The app runs present, newest first."""
    index = read_index(runs)
    return sorted((n for n in index if (runs / n).is_dir()), key=lambda n: float(index[n].get("started", 0)),
                  reverse=True)


def check_free_disk(folder: Path, needed_mb: float | None = None) -> str | None:
    """Why a training cannot start for lack of disk under ``folder``, in one line; None if there is room
    (at least ``needed_mb``, by default the server's MTO_MIN_FREE_MB)."""
    import shutil

    needed = min_free_mb() if needed_mb is None else needed_mb
    probe = folder
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free / 2**20
    if free < needed:
        return (f"only {free:,.0f} MB are free on the disk that holds {folder}, and a training needs at least "
                f"{needed:,.0f} MB; nothing was started. Free some space (older runs under {folder}) and try again.")
    return None
