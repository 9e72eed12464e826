"""logic/curves.py and the Curves page: no efficiency from one seed or too few probe points; every
table cell text; the visitor's Train-page runs chosen by default."""

import json
import shutil

import pytest

from logic.curves import MIN_POINTS, NEEDS, pool_efficiency, score_row

from .apptest import APP, AppTest

RUNS = APP.parent / "runs"


def test_a_row_gives_no_efficiency_and_no_area_from_too_few_points():
    one = score_row("a-mto", "SimMIM + MTO", "a", {"rauc": 1.0565, "epochs_to_target": 0.71, "efficiency": 0.5}, 1)
    assert one["RAUC"].startswith("needs") and one["epochs to target"].startswith("needs")
    assert "0.5" not in json.dumps(one) and one["efficiency"] == NEEDS
    enough = score_row("a-mto", "SimMIM + MTO", "a", {"rauc": 1.0565, "epochs_to_target": None, "efficiency": None},
                       MIN_POINTS)
    assert enough["RAUC"] == "1.0565" and enough["epochs to target"] == "not reached"
    assert all(isinstance(v, str) for v in {**one, **enough}.values())


def _runs(seeds, points, mto_gain):
    """{label: (config, metrics rows)}: SimMIM baselines and MTO runs of ``seeds``, k-NN rising."""
    from mto_core.config import RunConfig

    out = {}
    for seed in seeds:
        for mto in (False, True):
            config = RunConfig.load(APP.parent / "checkpoints" / ("simmim-mto" if mto else "simmim") / "config.json")
            config.train.seed = seed
            rows = [{"kind": "epoch", "epoch": float(e), "knn_val": 0.1 + 0.1 * e * (mto_gain if mto else 1.0)
                     + 0.01 * seed} for e in range(points)]
            out[f"s{seed}{'-mto' if mto else ''}"] = (config, rows)
    return out


def test_a_family_of_several_seeds_is_pooled_into_a_speedup_with_its_interval():
    pooled = pool_efficiency(_runs([0, 1, 2], 5, 2.0), "knn_val")
    assert set(pooled) == {"s0-mto", "s1-mto", "s2-mto"}
    cell = pooled["s0-mto"]
    assert cell.startswith("s = 2.00 [") and "over 3 seeds" in cell, cell
    one_seed = pool_efficiency(_runs([0], 5, 2.0), "knn_val")["s0-mto"]
    assert one_seed == f"{NEEDS} (has 1 paired seed, 5 points)"
    one_point = pool_efficiency(_runs([0, 1], 1, 2.0), "knn_val")["s0-mto"]
    assert one_point.startswith(NEEDS) and "1 point)" in one_point


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
    assert row["RAUC"].iloc[0].startswith("needs") and row["efficiency"].iloc[0].startswith(NEEDS)
    assert all(table[c].map(type).eq(str).all() for c in table.columns)
    shipped = table[table["run"] == "conmim-mto"]
    assert shipped["efficiency"].iloc[0].startswith(NEEDS)  # one seed: no 0.5 beside the 12-seed 1.22
    said = " ".join(c.value for c in at.caption)
    assert "2 or more seeds" in said and "0.5" not in shipped["efficiency"].iloc[0]
