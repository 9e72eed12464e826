"""Start the app with the heavy modules already imported.

``streamlit run`` imports torch, timm and scikit-learn only when the first visitor opens a page,
which then waits seconds for them. Importing them here first, in the server's own process, moves
that wait to start-up. Extra arguments go to ``streamlit run`` (e.g. --server.port 8502).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plotly.express  # noqa: E402,F401
import sklearn.linear_model  # noqa: E402,F401
from streamlit.web import cli  # noqa: E402

import mto_core.analysis  # noqa: E402,F401
import mto_core.jobs  # noqa: E402,F401

if __name__ == "__main__":
    sys.argv = ["streamlit", "run", str(Path(__file__).resolve().parent / "Home.py"), *sys.argv[1:]]
    sys.exit(cli.main())
