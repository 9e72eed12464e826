import json
import re
from pathlib import Path

import numpy as np
import pytest

from mto_core.eval.probes import FinetuneSchedule
from mto_core.experiments import Experiment, compare, format_compare, group_name, report_only, write_report
from mto_core.experiments.finetune import FinetuneSpec, run_finetune

from .conftest import SMALL
from .test_cli import mto_here

TINY = [*SMALL, "data.train_limit=128", "train.batch_size=32", "train.probe_bank=200", "train.probe_val=100"]


def _fake_run(folder: Path, values, key="linear_val", seconds=None):
    folder.mkdir(parents=True)
    rows = [{"kind": "epoch", "epoch": e + 1, key: v} for e, v in enumerate(values)]
    if seconds is not None:
        rows = [{**r, "train_s": seconds, "probe_s": seconds / 2} for r in rows]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def _probe_run(folder: Path, values, epochs, linear=None):
    folder.mkdir(parents=True)
    rows = [{"kind": "probe", "step": int(e * 10), "epoch": float(e), "knn_val": float(v)} for e, v in zip(epochs, values)]
    for e, v in (linear or {}).items():
        rows.append({"kind": "probe", "step": int(e * 10), "epoch": float(e), "linear_val": v})
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def test_compare_groups_seeds_and_measures_efficiency(tmp_path):
    runs = [_fake_run(tmp_path / "base-s0", [0.5, 0.6, 0.7, 0.8]), _fake_run(tmp_path / "base-s1", [0.5, 0.6, 0.7, 0.8]),
            _fake_run(tmp_path / "fast-mto-s0", [0.7, 0.8, 0.82, 0.85]),
            _fake_run(tmp_path / "fast-mto-s1", [0.7, 0.8, 0.84, 0.87])]
    result = compare(runs)
    assert result["baseline"] == "base" and result["metric"] == "linear_val"
    fast = result["groups"]["fast-mto"]
    assert fast["seeds"] == 2 and fast["final_mean"] == pytest.approx(0.86)
    assert fast["final_std"] == pytest.approx(0.02 ** 0.5 / 10)  # sample std of 0.85, 0.87
    assert fast["epochs_to_target"] == 2 and fast["efficiency"] == 0.5 and fast["rauc"] > 1
    assert result["groups"]["base"]["rauc"] == 1
    assert "| fast-mto | 2 | 0.8600 ± 0.0141 |" in format_compare(result)
    assert group_name(Path("x/simmim-mto-s12")) == "simmim-mto"
    with pytest.raises(ValueError, match="no 'knn_val' probe point"):
        compare(runs, metric="knn_val")
    with pytest.raises(ValueError, match="not a run folder"):
        compare([*runs, tmp_path / "missing"])


def test_compare_refuses_runs_of_two_methods_and_a_run_given_twice(tmp_path):
    import shutil

    from mto_core.cli import main

    root = Path(__file__).resolve().parent.parent / "checkpoints"
    runs = [shutil.copytree(root / name, tmp_path / name) for name in ("simmim", "simmim-mto", "mae", "mae-mto")]
    with pytest.raises(ValueError, match=r"different methods \(simmim: simmim, simmim-mto; mae: mae, mae-mto\)"):
        compare(runs)
    with pytest.raises(ValueError, match="given twice"):
        compare([runs[0], runs[1], tmp_path / "simmim"])
    single = compare(runs[:2])
    assert single["baseline"] == "simmim" and single["groups"]["simmim"]["final_std"] is None
    assert "(one seed: no spread)" in format_compare(single) and "± 0.0000" not in format_compare(single)
    assert main(["compare", *map(str, runs)]) == 1
    knn_only = [_probe_run(tmp_path / "k-s0", [0.5, 0.6], [0, 1]), _probe_run(tmp_path / "k-mto-s0", [0.5, 0.7], [0, 1])]
    with pytest.raises(ValueError, match=r"train.linear_points=0,1,2 \(or train.linear_every=1\)"):
        compare(knn_only, metric="linear_val")  # the hint names the linear probe's keys, not the k-NN's


def test_finetune_without_its_source_names_the_missing_folder(tmp_path):
    from mto_core.experiments.finetune import FINETUNES

    with pytest.raises(ValueError, match=r"missing does not exist: fine-tuning reads the snapshots"):
        run_finetune(FINETUNES["cpu"], tmp_path / "missing", "mto experiment finetune", tmp_path / "ft.md",
                     progress=False)
    assert not (tmp_path / "ft-runs").exists()


def test_compare_cuts_runs_of_different_lengths_to_the_common_epochs(tmp_path):
    runs = [_fake_run(tmp_path / "base-s0", [0.5, 0.6, 0.7, 0.8]), _fake_run(tmp_path / "base-s1", [0.5, 0.6]),
            _fake_run(tmp_path / "x-mto-s0", [0.6, 0.7, 0.9]), _fake_run(tmp_path / "x-mto-s1", [0.6, 0.7])]
    result = compare(runs)
    assert result["groups"]["base"]["finals"] == [0.6, 0.6] and result["groups"]["x-mto"]["finals"] == [0.7, 0.7]
    assert result["groups"]["base"]["epochs"] == [1, 2]
    assert any("base-s0 has points up to epoch 4; compared up to epoch 2" in w for w in result["warnings"])
    assert "Warning: x-mto-s0 has points up to epoch 3" in format_compare(result)


def _efficiency_runs(tmp_path, speed=2.0, seeds=4):
    """SimMIM-family runs whose MTO curve is the baseline's at ``speed`` x the epoch, with seed noise."""
    epochs = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6])
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(seeds):
        pace = speed * np.exp(rng.normal(0, 0.05))
        base = lambda t: 0.55 + 0.25 * (1 - np.exp(-np.asarray(t) / 2))  # noqa: E731
        runs.append(_probe_run(tmp_path / f"simmim-s{seed}", base(epochs), epochs, {0.0: 0.75, 6.0: 0.78}))
        runs.append(_probe_run(tmp_path / f"simmim-mto-s{seed}", base(pace * epochs), epochs, {0.0: 0.75, 6.0: 0.79}))
    (tmp_path / "floors.json").write_text(json.dumps({"pixels_knn": 0.757, "pixels_linear": 0.774}))
    cost = {"baseline": "simmim", "batch": 128, "base_ms": 100.0, "method_ms": 125.0, "c": 1.25, "c_iqr": [1.2, 1.3]}
    (tmp_path / "step_cost.json").write_text(json.dumps({"machine": {"cpu": "test"}, "measured": "today",
                                                        "rounds": 30, "families": {"simmim-mto": cost}}))
    return runs


def test_efficiency_report_shows_floors_intervals_and_the_speedup(tmp_path):
    runs = _efficiency_runs(tmp_path / "runs")
    experiment = Experiment("efficiency-test", {"simmim": ("simmim", []), "simmim-mto": ("simmim-mto", [])},
                            [0, 1, 2, 3], 6)
    report = tmp_path / "results" / "eff.md"
    text = write_report(experiment, runs, report).read_text()
    assert "raw pixels k-NN 0.7570; raw pixels linear 0.7740; random init (the runs at epoch 0) k-NN 0.5500" in text
    speed = re.search(r"\*\*Speed-up factor s\*\* = ([\d.]+), 95% interval \[([\d.]+), ([\d.]+)\]", text)
    assert speed and 1.9 < float(speed[1]) < 2.1 and float(speed[2]) > 1.5
    assert "from 4 of 4 thresholds" in text and "MTO is faster" in text
    assert re.search(r"the paper's s = 2 is (ruled out|inside the interval)|the interval lies above 2", text)
    assert "| 6 | 0.7800 | 0.7900 | +0.0100 [+0.0100, +0.0100] |" in text  # the linear probe, secondary
    wall = re.search(r"\*\*Wall-clock speed-up s_wall\*\* = s / c = ([\d.]+), 95% interval \[([\d.]+), ([\d.]+)\]", text)
    assert wall and float(wall[1]) == pytest.approx(float(speed[1]) / 1.25, abs=0.01)
    assert float(wall[2]) == pytest.approx(float(speed[2]) / 1.25, abs=0.01)
    assert f"simmim-mto took {1.25 / float(speed[1]):.2f}x the time simmim took" in text
    assert "| k-NN threshold | simmim epochs | simmim min |" in text and "Step cost c = 1.250" in text
    assert (report.parent / "eff-simmim.html").exists()
    copies = report.parent / "eff-runs"
    assert sorted(p.name for p in copies.iterdir()) == sorted([*(r.name for r in runs), "floors.json",
                                                               "step_cost.json"])
    assert report_only(experiment, tmp_path / "again" / "eff.md", copies).read_text() == text


def test_efficiency_report_says_when_nothing_is_resolved(tmp_path):
    runs = _efficiency_runs(tmp_path / "runs", speed=1.0)
    experiment = Experiment("efficiency-test", {"simmim": ("simmim", []), "simmim-mto": ("simmim-mto", [])},
                            [0, 1, 2, 3], 6)
    text = write_report(experiment, runs, tmp_path / "e.md").read_text()
    assert "no speed-up resolved" in text and "the paper's s = 2 is ruled out" in text


def test_ablation_report_reads_each_family_against_its_own_baseline(tmp_path):
    curves = {"simmim": ([0.70, 0.75], [0.70, 0.76]), "entropy": ([0.71, 0.78], [0.70, 0.79]),
              "mae": ([0.72, 0.80], [0.72, 0.81]), "mae-entropy": ([0.70, 0.77], [0.71, 0.78])}
    runs = [_fake_run(tmp_path / f"{name}-s{seed}", values[seed]) for name, values in curves.items() for seed in (0, 1)]
    experiment = Experiment("ablation-test", {"simmim": ("simmim", []), "entropy": ("simmim", ["mto.entropy_weight=0.01"]),
                                              "mae": ("mae", []), "mae-entropy": ("mae", ["mto.entropy_weight=0.01"])},
                            [0, 1], 2)
    text = write_report(experiment, runs, tmp_path / "a.md").read_text()
    assert "## simmim family: effect of each variant" in text and "## mae family: effect of each variant" in text
    # two seeds, both +0.03: the interval is a point and excludes 0
    assert "| entropy | +0.0300 [+0.0300, +0.0300] **helps** |" in text
    assert "| mae-entropy | -0.0300 [-0.0300, -0.0300] **hurts** |" in text
    assert "1 degree(s) of freedom" in text
    assert (tmp_path / "a-simmim.html").exists() and (tmp_path / "a-mae.html").exists()


def test_experiment_runs_every_variant_and_seed_then_skips_finished_runs_then_finetunes(tmp_path, capsys):
    out, report = tmp_path / "runs", tmp_path / "results" / "efficiency.md"
    points = ["train.probe_points=0,0.5,2", "train.linear_points=2", "train.snapshot_points=1"]
    args = ["experiment", "efficiency", "--preset", "cpu", "--seeds", "2", "--epochs", "2", "--quiet",
            "--out", str(out), "--report", str(report), *[a for s in [*TINY, *points] for a in ("--set", s)]]
    mto_here(capsys, *args, check=True)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(
        f"{m}-s{s}" for m in ("simmim", "simmim-mto", "mae", "mae-mto") for s in (0, 1))
    rows = [json.loads(line) for line in (out / "mae-s0" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "probe" and "knn_val" in r] == [0, 0.5, 2]
    assert (out / "mae-s0" / "snapshots" / "epoch-1" / "model.safetensors").is_file()
    text = report.read_text()
    assert "mto experiment efficiency --preset cpu" in text and "## simmim-mto vs simmim (2 paired seeds)" in text
    assert "## mae-mto vs mae (2 paired seeds)" in text and "raw pixels k-NN" in text
    assert "What the data says" in text and (report.parent / "efficiency-simmim.html").exists()
    again = mto_here(capsys, *args, check=True)
    assert "8 of 8 runs finished already; training 0" in again.stdout
    spec = FinetuneSpec("finetune-test", [("mae", "mae-mto")], [0], [1.0], FinetuneSchedule(epochs=1))
    ft = run_finetune(spec, out, "mto experiment finetune", tmp_path / "results" / "ft.md", progress=False)
    results = [json.loads(line) for line in (tmp_path / "results" / "ft-runs" / "finetune.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in results) == ["mae", "mae-mto", "mae-scratch"]
    assert all(0 <= r["accuracy"] <= 1 for r in results)
    assert "From-scratch floor (1 seeds)" in ft.read_text() and "| 1 |" in ft.read_text()


def test_more_seeds_extend_an_experiment_from_its_committed_copies_without_training_them_again(tmp_path,
                                                                                                 capsys):
    from mto_core.experiments.registry import for_methods

    mae = for_methods("efficiency", "cpu", ["mae"])
    assert mae.with_seeds(2).seeds_for("mae") == [0, 1] and mae.with_seeds(11).seeds_for("mae-mto") == list(range(11))
    assert Experiment("x", {}, [0, 1, 2, 3], 1).with_seeds(6).seeds == [0, 1, 2, 3, 4, 5]
    assert for_methods("efficiency", "cpu", ["conmim"]).seeds_for("conmim") == list(range(12))
    out, report = tmp_path / "runs", tmp_path / "results" / "efficiency.md"
    points = ["train.probe_points=0,1,2", "train.linear_points=2", "train.snapshot_points=2"]
    common = ["experiment", "efficiency", "--preset", "cpu", "--methods", "mae", "--epochs", "2", "--quiet",
              "--out", str(out), "--report", str(report), *[a for s in [*TINY, *points] for a in ("--set", s)]]
    mto_here(capsys, *common, "--seeds", "1", check=True)
    copies = report.with_name("efficiency-runs")
    assert sorted(p.name for p in copies.iterdir() if p.is_dir()) == ["mae-mto-s0", "mae-s0"]
    first = json.loads((copies / "record.json").read_text())
    import shutil

    shutil.rmtree(out)  # a fresh clone: the weights are gone, the committed copies remain
    again = mto_here(capsys, *common, "--seeds", "2", check=True)
    assert "2 of 4 runs finished already (2 recorded in" in again.stdout and "training 2" in again.stdout
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["mae-mto-s1", "mae-s1"]  # seed 0 not retrained
    assert sorted(p.name for p in copies.iterdir() if p.is_dir()) == ["mae-mto-s0", "mae-mto-s1", "mae-s0", "mae-s1"]
    record = json.loads((copies / "record.json").read_text())
    assert record["command"] == first["command"] and record["calls"][:1] == first["calls"] and len(record["calls"]) == 2
    assert "## mae-mto vs mae (2 paired seeds)" in report.read_text()
    last = mto_here(capsys, *common, "--seeds", "2", check=True)
    assert "4 of 4 runs finished already (2 recorded in" in last.stdout  # and 2 in out


def test_methods_flag_runs_the_protocol_on_other_methods_under_its_own_name(capsys):
    from mto_core.experiments import EXPERIMENTS
    from mto_core.experiments.registry import experiment_named, for_methods
    from mto_core.experiments.report import rerender_command
    from mto_core.experiments.stats import families

    from .test_cli import mto_here

    assert for_methods("efficiency", "cpu", None) is EXPERIMENTS[("efficiency", "cpu")]
    assert for_methods("efficiency", "cpu", ["simmim", "mae"]) is EXPERIMENTS[("efficiency", "cpu")]
    both = for_methods("efficiency", "cpu", ["conmim", "bootmae"])
    assert both.name == "efficiency-cpu-conmim-bootmae"
    assert list(both.variants) == ["conmim", "conmim-mto", "bootmae", "bootmae-mto"]
    assert all(len(both.seeds_for(v)) >= 4 for v in both.variants)
    assert both.common == EXPERIMENTS[("efficiency", "cpu")].common and both.epochs == 6
    assert families(list(both.variants)) == {"conmim": ["conmim", "conmim-mto"], "bootmae": ["bootmae", "bootmae-mto"]}
    assert rerender_command(both.name, both.methods) == \
        "mto experiment efficiency --preset cpu --methods conmim,bootmae --report-only"
    assert rerender_command("efficiency-gpu") == "mto experiment efficiency --preset gpu --report-only"
    bad = mto_here(capsys, "experiment", "efficiency", "--methods", "conmim,byol", "--report-only")
    assert bad.returncode == 2 and "unknown method byol" in bad.stderr
    for args in (["ablation", "--methods", "conmim"], ["ablation", "--methods", "simmim,mae"],
                 ["finetune", "--methods", "mae"]):
        bad = mto_here(capsys, "experiment", *args, "--report-only")
        assert bad.returncode == 2 and "efficiency experiment only" in bad.stderr, args
    bad = mto_here(capsys, "experiment", "efficiency", "--methods", ",", "--report-only")
    assert bad.returncode == 2 and "--methods names no method" in bad.stderr
    # a method named twice counts once; SimMIM and MAE in any order are the registered experiment
    assert for_methods("efficiency", "cpu", ["mae", "simmim", "mae"]) is EXPERIMENTS[("efficiency", "cpu")]
    assert for_methods("efficiency", "cpu", ["conmim", "bootmae", "conmim"]).name == both.name
    assert experiment_named(both.name) == both and experiment_named("efficiency-gpu-mae").threshold_epoch == 4.0
    assert experiment_named("efficiency-cpu-simmim-mae") is None and experiment_named("efficiency-cpu-x") is None


def test_analyze_command(tmp_path, capsys):
    run = tmp_path / "run"
    mto_here(capsys, "train", "--preset", "simmim-mto", "--max-steps", "2", "--batch-size", "32",
             "--out", str(run), "--quiet", *[a for s in SMALL for a in ("--set", s)], check=True)
    plot = str(tmp_path / "a.html")
    out = json.loads(mto_here(capsys, "analyze", str(run), "--images", "16", "--json", "--plot", plot,
                              check=True).stdout)
    assert [r["layer"] for r in out["layers"]] == [0, 1, 2]
    assert out["layers"][1]["attn_visible_to_masked"] == 0  # hard recalibration
    assert (tmp_path / "a.html").exists()
    assert "| layer | a_VM |" in mto_here(capsys, "analyze", str(run), "--images", "16", check=True).stdout

