"""What the app's tests share: the pages run by Streamlit's AppTest and read back."""

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app"


ALONE_OPTION = "— none: this checkpoint alone —"


def run(page: str) -> AppTest:
    at = AppTest.from_file(str(APP / page), default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in [*at.header, *at.subheader, *at.markdown, *at.caption]])


def specs(at: AppTest) -> list[dict]:
    """The Plotly figures of the page as sent to the browser."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(array) -> list[float]:
    """A Plotly data array as numbers (Plotly sends numpy arrays base64-encoded)."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)
