"""logic/curves.py and the Curves page: no efficiency from one seed or too few probe points; every
table cell text; the visitor's Train-page runs chosen by default."""

import json
import shutil

import pytest

from logic.curves import MIN_POINTS, score_row

from .apptest import APP, AppTest

RUNS = APP.parent / "runs"


def test_a_row_gives_no_efficiency_and_no_area_from_too_few_points():
    one = score_row("a-mto", "SimMIM + MTO", "a", {"rauc": 1.0565, "epochs_to_target": 0.71, "efficiency": 0.5}, 1)
    assert one["RAUC"].startswith("needs") and one["epochs to target"].startswith("needs")
    assert "0.5" not in json.dumps(one) and one["efficiency"] == "needs several paired seeds"
    enough = score_row("a-mto", "SimMIM + MTO", "a", {"rauc": 1.0565, "epochs_to_target": None, "efficiency": None},
                       MIN_POINTS)
    assert enough["RAUC"] == "1.0565" and enough["epochs to target"] == "not reached"
    assert all(isinstance(v, str) for v in {**one, **enough}.values())


@pytest.fixture
def train_page_pair():
    """Two runs as the Train page leaves them (one k-NN point each), recorded for visitor 'curves-v'."""
    from server.classroom import record_app_run

    made = []
    for name, source in (("app-20260101-000000-simmim", "simmim"), ("app-20260101-000000-simmim-mto", "simmim-mto")):
        folder = RUNS / name
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(APP.parent / "checkpoints" / source, folder)
        rows = [{"kind": "train", "step": 5, "epoch": 0.05, "loss": 1.0},
                {"kind": "epoch", "step": 10, "epoch": 0.1, "knn_val": 0.5 if source == "simmim" else 0.52}]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        record_app_run(folder, "curves-v")
        made.append(folder)
    yield [f"runs/{f.name}" for f in made]
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


def test_curves_selects_the_visitors_train_runs_and_scores_them_without_an_efficiency(train_page_pair):
    at = AppTest.from_file(str(APP / "pages/4_Curves.py"), default_timeout=180)
    at.query_params["visitor"] = "curves-v"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(train_page_pair) <= set(at.multiselect(key="curves-runs").value)
    table = at.dataframe[0].value
    row = table[table["baseline"].str.contains("simmim") & table["run"].str.contains("00:00")]
    assert len(row) == 1, table
    assert row["RAUC"].iloc[0].startswith("needs") and row["efficiency"].iloc[0] == "needs several paired seeds"
    assert all(table[c].map(type).eq(str).all() for c in table.columns)
    shipped = table[table["run"] == "conmim-mto"]
    assert shipped["efficiency"].iloc[0] == "needs several paired seeds"  # one seed: no 0.5 beside the 12-seed 1.22
    said = " ".join(c.value for c in at.caption)
    assert "several paired seeds" in said
