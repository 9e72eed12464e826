"""What an experiment records beside its runs, and how it is read back: the floors
(``floors.json``), the step cost (``step_cost.json``) and the record of the calls that trained
(``record.json``). Readers return None or nothing, never raise, on a file that is missing or
unreadable: a report then says what it lacks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

FLOORS = "floors.json"
RECORD = "record.json"
STEP_COST = "step_cost.json"



def read_record(folder: Path) -> dict[str, Any] | None:
    """What ``folder``'s runs recorded about how they were made (``record.json``); None if nothing."""
    return read_recorded(folder / RECORD, "calls", list)


def read_floors(folder: Path) -> dict[str, float]:
    file = folder / FLOORS
    try:
        data = json.loads(file.read_text()) if file.exists() else {}
    except (OSError, json.JSONDecodeError):
        warnings.warn(f"{file} cannot be read; the report shows no pixel floor", stacklevel=2)
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, (int, float))} if isinstance(data, dict) else {}


def read_recorded(path: Path, key: str, kind: type) -> dict[str, Any] | None:
    """The JSON object an experiment recorded at ``path`` if it holds ``key`` of type ``kind``;
    None if there is none, or it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get(key), kind) else None


def read_step_cost(folder: Path) -> dict[str, Any] | None:
    """The step cost stored with the runs in ``folder``; None if there is none (or it is unreadable)."""
    return read_recorded(folder / STEP_COST, "families", dict)
