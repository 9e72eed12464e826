"""The GPU protocol in miniature on the CPU: several runs at once, one process each; a clean
stop at a time limit; the next call resumes; the step cost and the record stored with the runs."""

import json
import subprocess
import sys
import time

from mto_core.models.checkpoint import list_checkpoints, read_metrics, step_of
from mto_core.config import apply_overrides
from mto_core.experiments import EXPERIMENTS, run_config

from .test_cli import mto_here
from .test_experiment import TINY

MINI = [*TINY, "train.probe_points=0,0.5,1", "train.linear_points=1", "train.snapshot_points=1"]


def _flags(out, report):
    # MAE's family alone (--methods mae): the protocol is the same for every family, at half the runs
    return ["experiment", "efficiency", "--preset", "gpu", "--methods", "mae", "--device", "cpu", "--seeds", "1",
            "--epochs", "1",
            "--quiet", "--out", str(out), "--report", str(report), *[a for s in MINI for a in ("--set", s)]]


def test_gpu_preset_is_the_tiny_model_at_native_size_on_the_full_split():
    gpu = EXPERIMENTS[("efficiency", "gpu")]
    config = run_config(gpu, "mae", 0, [])
    assert config.model.size == "tiny" and config.model.img_size == 28 and config.data.train_limit == 0
    assert config.train.schedule == "constant" and config.train.device == "cuda" and gpu.parallel > 1
    assert len(gpu.seeds_for("mae")) >= 6 and len(gpu.seeds_for("simmim")) >= 4


def test_time_limit_stops_a_run_cleanly_and_the_next_call_resumes_it_in_parallel(tmp_path, capsys):
    out, report = tmp_path / "runs", tmp_path / "results" / "efficiency-gpu.md"
    stopped = mto_here(capsys, *_flags(out, report), "--time-limit", "0.00001", "--parallel", "2", check=True)
    assert "no run of" in stopped.stdout and not report.exists()
    first = len(json.loads((out / "record.json").read_text())["calls"]) if (out / "record.json").exists() else 0
    # a run stopped by its deadline (a real process, a deadline already past): one step more, a checkpoint
    # (the call above may have started this run before its own deadline: then it holds step 1 already)
    config = apply_overrides(run_config(EXPERIMENTS[("efficiency", "gpu")], "mae", 0, []),
                             [*MINI, "train.device=cpu", "train.epochs=1"])
    before = [step_of(c) for c in list_checkpoints(out / "mae-s0")]
    assert before in ([], [1])
    subprocess.run([sys.executable, "-m", "mto_core.experiments.worker", str(out / "mae-s0"), str(time.time()), "1"],
                   input=config.to_json(), text=True, check=True, capture_output=True)
    assert [step_of(c) for c in list_checkpoints(out / "mae-s0")] == [*before, len(before) + 1]
    done = mto_here(capsys, *_flags(out, report), "--parallel", "2", check=True)
    assert "0 of 2 runs finished already; training 2, 2 at a time" in done.stdout
    assert step_of(list_checkpoints(out / "mae-s0")[-1]) == 4
    probes = [r["step"] for r in read_metrics(out / "mae-s0") if r["kind"] == "probe"]
    assert probes == sorted(set(probes)) == [0, 2, 4]  # resumed mid-run: nothing measured twice
    assert (out / "logs" / "mae-s0.log").is_file()
    cost = json.loads((out / "step_cost.json").read_text())
    assert set(cost["families"]) == {"mae-mto"} and cost["families"]["mae-mto"]["c"] > 0
    record = json.loads((out / "record.json").read_text())
    assert record["command"].startswith("mto experiment efficiency --preset gpu --methods mae") and len(record["calls"]) == first + 1  # the calls that trained
    text = report.read_text()
    assert "Step cost c = " in text and "mae-mto vs mae: time to accuracy" in text
    assert "runs made from " in text and (report.parent / "efficiency-gpu-runs" / "step_cost.json").is_file()


def test_parallel_and_time_limit_refuse_nonsense_in_one_line(tmp_path, capsys):
    from mto_core.cli import main

    assert main(["experiment", "efficiency", "--preset", "gpu", "--parallel", "0"]) == 2
    assert main(["experiment", "efficiency", "--time-limit", "0"]) == 2
    err = capsys.readouterr().err
    assert "--parallel must be positive, got 0" in err and "--time-limit must be a positive number" in err
    assert "Traceback" not in err
