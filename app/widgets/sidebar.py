"""The sidebar's pickers every page shares: which checkpoint (and which to compare it with), the
mask's ratio, seed and type; kept across pages, ordered for the visitor."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from logic.files import safe_path
from logic.link import from_link, link_text, to_link
from logic.labels import (describe_config, method_name, method_names, pair_problem, partner_choice,
                          partners, short_label)
from mto_core import CheckpointError
from server.classroom import hide_others, read_index

from .charts import note
from .models import CHECKPOINTS, RUNS, available, load, run_info, run_label


ALONE = "— none: this checkpoint alone —"


def choose_pair(key: str = "pair", methods: tuple[str, ...] | None = None) -> tuple | None:
    """Sidebar pickers for one checkpoint, and another of the same method and input shape to compare
    it with, or none (the page then shows the one alone): a tuple of one or two (label, checkpoint);
    None (with a message) if unusable. Each list holds only that method's checkpoints (and unreadable
    ones, which then say why), so a cross-method pair cannot be picked; a pair that still differs
    (another input shape) is refused in one line. The lists put the shipped checkpoints, the runs of
    ``mto train`` and this visitor's own Train-page runs first (:func:`ordered`)."""
    methods = tuple(method_names()) if methods is None else methods
    found = available()
    if not found:
        st.error("No checkpoint found under checkpoints/ or runs/. Train one on the Train page or "
                 "with `mto train --out runs/x`.")
        return None
    shared = _shared()
    method = st.sidebar.radio("Method", methods, horizontal=True, key=f"{key}-method",
                              index=methods.index(shared["method"]) if shared.get("method") in methods else 0,
                              format_func=lambda m: method_name(m),
                              help="Both checkpoints are of this method: comparing two methods "
                                   "would compare two objectives, not the effect of MTO.")
    shared["method"] = method
    infos = {label: run_info(path) for label, path in found.items()}
    mine = ordered([k for k, v in infos.items() if v.method in (method, "")])
    if not mine:
        st.sidebar.info(f"No {method_name(method)} checkpoint here yet.")
        st.info(f"No {method_name(method)} checkpoint is under checkpoints/ or runs/: pick another "
                "method, train one, or import a published one (`mto import`).")
        return None
    bases = [k for k in mine if not infos[k].mto] + [k for k in mine if infos[k].mto]

    def default(options: list[str], name: str) -> int:
        return options.index(name) if name in options else 0

    base = st.sidebar.selectbox("Checkpoint", bases,
                                index=default(bases, shared.get(f"base-{method}", f"checkpoints/{method}")),
                                key=f"{key}-base-{method}", format_func=run_label,
                                help="Full path: the label's folder under checkpoints/ or runs/.")
    # only what can be compared with the checkpoint picked: the same method and input shape
    options = [*partners(base, infos, mine), ALONE]
    remembered = shared.get(f"mto-{method}", f"checkpoints/{method}-mto")
    fallback = partner_choice(base, options, remembered, ALONE)
    picker = f"{key}-mto-{method}"
    # a pick this checkpoint cannot take, or one forced by the checkpoint before: its own fallback instead
    if st.session_state.get(picker) not in options or (st.session_state.get(f"{picker}-for") != base
                                                       and st.session_state.get(f"{picker}-forced")):
        st.session_state.pop(picker, None)
    st.session_state[f"{picker}-for"] = base
    other = st.sidebar.selectbox("Compare with", options, index=options.index(fallback), key=picker,
                                 format_func=lambda k: k if k == ALONE else run_label(k),
                                 help="Another checkpoint of this method and input shape (its MTO partner, a larger "
                                      "model, a published one), or none: every page shows one checkpoint alone too. "
                                      "Only those that can be compared with the checkpoint above are listed.")
    shared[f"base-{method}"] = base
    forced = other == fallback != remembered  # a fallback forced by this checkpoint is not a choice to keep
    st.session_state[f"{picker}-forced"] = forced
    if not forced:
        shared[f"mto-{method}"] = other
    chosen = [base] if other in (ALONE, base) else [base, other]
    st.sidebar.caption("  \n".join(f"`{label}`" for label in chosen))
    pair = []
    for label in chosen:
        try:
            ckpt = load(str(safe_path(found[label], [CHECKPOINTS, RUNS])))
        except (CheckpointError, ValueError, OSError) as error:
            st.error(f"Cannot open {label}: {str(error).splitlines()[0]}")
            return None
        pair.append((f"{short_label(label)} · {describe_config(ckpt.config).label}", ckpt))
    note("checkpoints", " vs ".join(_checkpoint_facts(label, ckpt) for label, (_, ckpt) in zip(chosen, pair)))
    if len(pair) == 2:
        problem = pair_problem(pair[0][1].config, pair[1][1].config)
        if problem:
            st.error(f"These two cannot be compared: {problem}")
            return None
        if not any(c.config.mto.enabled for _, c in pair):
            st.caption("Neither checkpoint was trained with MTO: this compares two baselines.")
        elif pair[0][1].config.mto.enabled and pair[1][1].config.mto.enabled:
            st.caption("Both checkpoints were trained with MTO.")
    return tuple(pair)


def _checkpoint_facts(label: str, ckpt) -> str:
    """'checkpoints/simmim (SimMIM (baseline), step 624, grey 28 px, patch 4)': what a figure shows."""
    m = ckpt.config.model
    step = f", {ckpt.path.name.replace('-', ' ')}" if ckpt.path.name.startswith("step-") else ""
    return (f"{label} ({describe_config(ckpt.config).label}{step}, {'RGB' if m.in_chans == 3 else 'grey'} "
            f"{m.img_size} px, patch {m.patch_size})")


def ordered(labels: list[str]) -> list[str]:
    """Picker order: the shipped checkpoints, then the runs of ``mto train`` (and imported models),
    then this visitor's own Train-page runs, newest first; other visitors' app runs last, or not at
    all where the server hides them (``app/serve.py --hide-others-runs``)."""
    index, me = read_index(RUNS), visitor()
    shipped = [k for k in labels if k.startswith("checkpoints/")]
    app = [k for k in labels if k.startswith("runs/") and Path(k).name in index]
    cli = [k for k in labels if k not in shipped and k not in app]

    def newest_first(names: list[str]) -> list[str]:
        return sorted(names, key=lambda k: float(index[Path(k).name].get("started", 0)), reverse=True)

    own = newest_first([k for k in app if index[Path(k).name].get("visitor") == me])
    theirs = newest_first([k for k in app if k not in own])
    return shipped + cli + own + ([] if hide_others() else theirs)


def own_runs(labels: list[str]) -> list[str]:
    """Of ``labels``, this visitor's own Train-page runs, newest first."""
    index, me = read_index(RUNS), visitor()
    mine = [k for k in labels if k.startswith("runs/") and index.get(Path(k).name, {}).get("visitor") == me]
    return sorted(mine, key=lambda k: float(index[Path(k).name].get("started", 0)), reverse=True)


def visitor() -> str:
    """Who this browser is, for the order of the pickers: an id kept in the session (page switches
    keep it) and in the page's address (a reload keeps it too); '' outside a page run."""
    import secrets

    try:
        found = st.session_state.get("visitor") or st.query_params.get("visitor") or secrets.token_hex(6)
        st.session_state["visitor"] = found
        if st.query_params.get("visitor") != found:
            st.query_params["visitor"] = found
        return str(found)
    except Exception:  # outside a script run there is no page to ask
        return ""


def _shared() -> dict:
    """The sidebar's choices (method, checkpoints, mask ratio, seed and type), kept across pages: each
    page's widgets start from them and write them back, so a choice made on one page holds on the
    next (a page's own widgets are forgotten when another page is open)."""
    if "sidebar-choices" not in st.session_state:  # a new visitor: the choices a shared address carries
        st.session_state["sidebar-choices"] = from_link(
            {k: st.query_params.get(k) for k in ("method", "ckpt", "with", "ratio", "seed", "mask")},
            list(method_names()), ALONE)
    return st.session_state["sidebar-choices"]


def mask_controls(key: str, kinds: tuple[str, ...] = (), patches: int = 49) -> tuple[float, int, str]:
    """The mask ratio, seed and (where a page offers several) type, in the sidebar under the
    checkpoints, shared across the pages that have them: (ratio, seed, kind)."""
    shared = _shared()
    ratio = st.sidebar.slider("Mask ratio", 0.1, 0.9, shared.get("ratio", 0.6), 0.05, key=f"{key}-ratio",
                              help=f"Share of the {patches} patches hidden")
    seed = st.sidebar.number_input("Mask seed", 0, 10_000, shared.get("seed", 0), key=f"{key}-seed")
    shared["ratio"], shared["seed"] = float(ratio), int(seed)
    kind = "random"
    if kinds:
        remembered = shared.get("kind", kinds[0])
        kind = st.sidebar.radio("Mask type", kinds, index=kinds.index(remembered) if remembered in kinds else 0,
                                key=f"{key}-kind")
        if kind != kinds[0] or remembered in kinds:  # a type this page lacks (hand-edited) is kept for the pages that have it
            shared["kind"] = kind
    note("mask", f"mask {ratio:.0%} {kind}, seed {int(seed)}")
    share_link(key)
    return float(ratio), int(seed), kind


PAGE_PATHS = {"learn": "", "recon": "Reconstruct", "tokens": "Tokens", "attn": "Attention"}


def share_link(key: str) -> None:
    """The choices in the page's address (a reload or a bookmark keeps them) and, in the sidebar, the
    address to send: the same without this visitor's id, so whoever opens it sees this figure as
    themselves."""
    params = to_link(_shared(), ALONE)
    for name, value in params.items():
        if st.query_params.get(name) != value:
            st.query_params[name] = value
    with st.sidebar.expander("Share this view"):
        st.caption("Send this address (after this server's, e.g. http://host:8501): whoever opens it sees the "
                   "same method, checkpoints, mask and page.")
        st.code(link_text(PAGE_PATHS.get(key, ""), params), language=None)
