"""A shareable address: the sidebar's choices (method, checkpoint, pair, mask ratio, seed and type)
as query parameters, and back. A teacher sends it; every student who opens it sees that figure."""

from __future__ import annotations

from urllib.parse import urlencode

KINDS = ("random", "block", "hand-edited")
NONE = "none"  # "with=none": the checkpoint alone


def to_link(shared: dict, alone: str) -> dict[str, str]:
    """The query parameters of the choices in ``shared`` (the sidebar's store; ``alone``: its
    'this checkpoint alone' option)."""
    method = shared.get("method")
    if not method:
        return {}
    out = {"method": method}
    if shared.get(f"base-{method}"):
        out["ckpt"] = shared[f"base-{method}"]
    other = shared.get(f"mto-{method}")
    if other:
        out["with"] = NONE if other == alone else other
    if "ratio" in shared:
        out["ratio"] = f"{float(shared['ratio']):.2f}"
    if "seed" in shared:
        out["seed"] = str(int(shared["seed"]))
    if shared.get("kind") in KINDS:
        out["mask"] = shared["kind"]
    return out


def from_link(params: dict[str, str], methods: list[str], alone: str) -> dict:
    """The sidebar's store from query parameters; anything malformed or out of range is left out
    (the page then opens on its default), never an error."""
    shared: dict = {}
    method = params.get("method")
    if method not in methods:
        return shared
    shared["method"] = method
    if params.get("ckpt"):
        shared[f"base-{method}"] = str(params["ckpt"])
    if params.get("with"):
        shared[f"mto-{method}"] = alone if params["with"] == NONE else str(params["with"])
    try:
        ratio = round(float(params["ratio"]) / 0.05) * 0.05
        if 0.1 <= ratio <= 0.9:
            shared["ratio"] = round(ratio, 2)
    except (KeyError, TypeError, ValueError):  # absent (None where the sidebar asks for it) or not a number
        pass
    seed = str(params.get("seed", ""))
    if seed.isdigit() and int(seed) <= 10_000:
        shared["seed"] = int(seed)
    if params.get("mask") in KINDS:
        shared["kind"] = params["mask"]
    return shared


def link_text(path: str, params: dict[str, str]) -> str:
    """The address to share, relative to the server: ``/Reconstruct?method=mae&...``."""
    return f"/{path.strip('/')}?{urlencode(params)}" if params else f"/{path.strip('/')}"
