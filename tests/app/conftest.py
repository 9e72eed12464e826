"""The app's own modules (logic, widgets, server) import as the app's server imports them: with
app/ first on the path."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))
