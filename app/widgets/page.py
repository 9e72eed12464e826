"""A page's frame: its title and tab, and the project's MTO specification readable inside it."""

from __future__ import annotations

import re

import streamlit as st

from .models import ROOT

SPEC = ROOT / "docs" / "mto-spec.md"


def page(title: str, icon: str) -> None:
    st.set_page_config(page_title=f"MTO · {title}", page_icon=icon, layout="wide")
    st.session_state["figure-facts"], st.session_state["figure-count"] = {"page": f"MTO app, {title}"}, 0
    st.title(title)


def spec_expander() -> None:
    """The project's MTO specification (docs/mto-spec.md), readable inside the app."""
    with st.expander("The project's MTO specification (docs/mto-spec.md): what is the paper's, what is ours"):
        # its headings two levels down: inside the expander they sit under the page's own
        text = SPEC.read_text() if SPEC.exists() else "docs/mto-spec.md is missing from this copy."
        st.markdown(re.sub(r"^(#{1,4}) ", lambda m: "#" * min(6, len(m[1]) + 2) + " ", text, flags=re.MULTILINE))
