import json
from pathlib import Path

import pytest

from mto_core.experiment import Experiment, compare, format_compare, group_name, paired_differences, write_report

from .conftest import SMALL
from .test_cli import mto

TINY = [*SMALL, "data.train_limit=128", "train.batch_size=32", "train.probe_bank=200", "train.probe_val=100"]


def _fake_run(folder: Path, values, key="linear_val", seconds=None):
    folder.mkdir(parents=True)
    rows = [{"kind": "epoch", "epoch": e + 1, key: v} for e, v in enumerate(values)]
    if seconds is not None:
        rows = [{**r, "train_s": seconds, "probe_s": seconds / 2} for r in rows]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_compare_groups_seeds_and_measures_efficiency(tmp_path):
    runs = [_fake_run(tmp_path / "base-s0", [0.5, 0.6, 0.7, 0.8]), _fake_run(tmp_path / "base-s1", [0.5, 0.6, 0.7, 0.8]),
            _fake_run(tmp_path / "fast-mto-s0", [0.7, 0.8, 0.82, 0.85]),
            _fake_run(tmp_path / "fast-mto-s1", [0.7, 0.8, 0.84, 0.87])]
    result = compare(runs)
    assert result["baseline"] == "base" and result["metric"] == "linear_val"
    fast = result["groups"]["fast-mto"]
    assert fast["seeds"] == 2 and fast["final_mean"] == pytest.approx(0.86) and fast["final_std"] == pytest.approx(0.01)
    assert fast["epochs_to_target"] == 2 and fast["efficiency"] == 0.5 and fast["rauc"] > 1
    assert result["groups"]["base"]["rauc"] == 1
    assert "| fast-mto | 2 | 0.8600 ± 0.0100 |" in format_compare(result)
    assert group_name(Path("x/simmim-mto-s12")) == "simmim-mto"
    with pytest.raises(ValueError, match="no per-epoch 'knn_val'"):
        compare(runs, metric="knn_val")


def test_report_pairs_seeds_times_runs_and_flags_a_saturated_measure(tmp_path):
    # the baseline peaks at epoch 2 and drifts down: every method "reaches its final" early
    runs = [_fake_run(tmp_path / "simmim-s0", [0.70, 0.80, 0.76, 0.75], seconds=60),
            _fake_run(tmp_path / "simmim-s1", [0.70, 0.78, 0.76, 0.77], seconds=60),
            _fake_run(tmp_path / "simmim-mto-s0", [0.72, 0.79, 0.80, 0.78], seconds=90),
            _fake_run(tmp_path / "simmim-mto-s1", [0.71, 0.77, 0.77, 0.76])]
    result = compare(runs)
    assert paired_differences(result, "simmim-mto") == [("0", pytest.approx(0.03)), ("1", pytest.approx(-0.01))]
    assert result["groups"]["simmim"]["epochs_to_target"] == 2 and result["groups"]["simmim"]["epochs_to_best"] == 2
    assert result["groups"]["simmim-mto"]["minutes"] == [pytest.approx(9.0), None]
    experiment = Experiment("efficiency-test", {"simmim": ("simmim", []), "simmim-mto": ("simmim-mto", [])}, [0, 1], 4)
    text = write_report(experiment, runs, "mto experiment efficiency", tmp_path / "r.md").read_text()
    assert "+0.0300 (seed 0), -0.0100 (seed 1); mean +0.0100, spread 0.0200 over seeds: no clear effect" in text
    assert "**met only in the letter**" in text
    assert "measure is saturated here: the simmim baseline itself reaches its final accuracy at epoch 2 of 4" in text
    assert "| simmim | 2 | 0.7600 ± 0.0100 | 1.0000 | 2 of 4 | 0.50 | 2 of 4 | 6.0 |" in text
    assert sorted(p.name for p in (tmp_path / "r-runs").iterdir()) == sorted(r.name for r in runs)
    assert compare(sorted((tmp_path / "r-runs").iterdir()))["groups"]["simmim"]["finals"] == [0.75, 0.77]
    assert "| 9.0 (1 of 2 timed) |" in text and "1 runs were made before per-epoch timing" in text


def test_ablation_report_reads_each_family_against_its_own_baseline(tmp_path):
    curves = {"simmim": ([0.70, 0.75], [0.70, 0.76]), "entropy": ([0.71, 0.78], [0.70, 0.79]),
              "mae": ([0.72, 0.80], [0.72, 0.81]), "mae-entropy": ([0.70, 0.77], [0.71, 0.78])}
    runs = [_fake_run(tmp_path / f"{name}-s{seed}", values[seed]) for name, values in curves.items() for seed in (0, 1)]
    experiment = Experiment("ablation-test", {"simmim": ("simmim", []), "entropy": ("simmim", ["mto.entropy_weight=0.01"]),
                                              "mae": ("mae", []), "mae-entropy": ("mae", ["mto.entropy_weight=0.01"])},
                            [0, 1], 2)
    text = write_report(experiment, runs, "mto experiment ablation", tmp_path / "a.md").read_text()
    assert "## simmim family: effect of each variant" in text and "## mae family: effect of each variant" in text
    assert "| entropy | +0.0300 | 0.0000 | +0.0300, +0.0300 | helps |" in text
    assert "| mae-entropy | -0.0300 | 0.0000 | -0.0300, -0.0300 | hurts |" in text
    assert "**entropy (simmim family)**, **mae (mae family)**" in text
    assert (tmp_path / "a-simmim.html").exists() and (tmp_path / "a-mae.html").exists()


def test_experiment_runs_every_variant_and_seed_then_skips_finished_runs(tmp_path):
    out, report = tmp_path / "runs", tmp_path / "results" / "efficiency.md"
    args = ["experiment", "efficiency", "--preset", "cpu", "--seeds", "2", "--epochs", "2", "--quiet",
            "--out", str(out), "--report", str(report), *[a for s in TINY for a in ("--set", s)]]
    mto(*args)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{m}-s{s}" for m in ("simmim", "simmim-mto", "mae", "mae-mto")
                                                           for s in (0, 1))
    text = report.read_text()
    assert "mto experiment efficiency --preset cpu" in text and "| simmim-mto | 2 |" in text and "| mae-mto | 2 |" in text
    assert "What the data says" in text and (report.parent / "efficiency-simmim.html").exists()
    again = mto(*args)
    assert again.stdout.count("complete, kept") == 8


def test_analyze_command(tmp_path):
    run = tmp_path / "run"
    mto("train", "--preset", "simmim-mto", "--max-steps", "2", "--batch-size", "32", "--out", str(run), "--quiet",
        *[a for s in SMALL for a in ("--set", s)])
    out = json.loads(mto("analyze", str(run), "--images", "16", "--json", "--plot", str(tmp_path / "a.html")).stdout)
    assert [r["layer"] for r in out["layers"]] == [0, 1, 2]
    assert out["layers"][1]["attn_visible_to_masked"] == 0  # hard recalibration
    assert (tmp_path / "a.html").exists()
    assert "| layer | a_VM |" in mto("analyze", str(run), "--images", "16").stdout
