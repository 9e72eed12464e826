"""Start the app with the heavy modules already imported.

``streamlit run`` imports torch, timm and scikit-learn only when the first visitor opens a page,
which then waits seconds for them. Importing them here first, in the server's own process, moves
that wait to start-up. Extra arguments go to ``streamlit run`` (e.g. --server.port 8502), after
the app's own settings (localhost only, 10 MB uploads, no usage statistics), which hold wherever
the server is started from.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plotly.express  # noqa: E402,F401
import sklearn.linear_model  # noqa: E402,F401
from streamlit.web import cli  # noqa: E402

import mto_core.analysis  # noqa: E402,F401
import mto_core.jobs  # noqa: E402,F401
from mto_core.app_support import server_args  # noqa: E402

if __name__ == "__main__":
    try:
        options = server_args(sys.argv[1:])
    except ValueError as error:
        sys.exit(f"app/serve.py: error: {error}")
    sys.argv = ["streamlit", "run", str(Path(__file__).resolve().parent / "Home.py"), *options]
    sys.exit(cli.main())
