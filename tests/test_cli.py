"""End to end through the ``mto`` command: in a process of its own (:func:`mto`) where a process is what
is tested (the README's quick start, torchrun), else its ``main()`` in this one (:func:`mto_here`)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mto_core.cli import main
from mto_core.models.checkpoint import CheckpointError, resolve

from .conftest import SMALL, small_config

ROOT = Path(__file__).resolve().parent.parent


def mto(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "mto_core.cli", *args], capture_output=True, text=True,
                            timeout=600)
    if check and result.returncode:
        raise AssertionError(f"mto {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def mto_here(capsys, *args, check=False):
    """``mto ARGS`` in this process: the same ``main()`` without an interpreter's start-up (about 3 s
    each). Its trainings run here too (an experiment's as well, unless ``--parallel`` gives each run a
    process). mto's warnings show as in a new process (each once per place). With ``check``, a
    non-zero exit fails as :func:`mto` does."""
    import warnings
    from types import SimpleNamespace

    from mto_core.cli import main
    from mto_core.config import MTOWarning

    capsys.readouterr()
    with warnings.catch_warnings():  # a changed filter forgets the warnings already shown
        warnings.filterwarnings("default", category=MTOWarning)  # a new process's: once per place
        try:
            code = main(list(args))
        except SystemExit as stop:  # argparse: --help, or a usage error
            code = stop.code
    out = capsys.readouterr()
    if check and code:
        raise AssertionError(f"mto {' '.join(args)} failed:\n{out.out}\n{out.err}")
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def mto_here_as(capsys, command):
    """A process's command line, ``[python, -m, mto_core.cli, ARGS...]``, run in this process instead
    (a run that is not killed needs no process of its own); a non-zero exit fails."""
    assert command[:3] == [sys.executable, "-m", "mto_core.cli"], command[:3]
    return mto_here(capsys, *command[3:], check=True)


def _sets(*extra):
    return [arg for item in (*SMALL, *extra) for arg in ("--set", item)]


def test_help_shows_examples(capsys):
    for command in ([], ["train"], ["eval"]):
        out = mto_here(capsys, *command, "--help").stdout
        assert "examples:" in out and "mto " in out
    assert "mto.entropy_weight" in mto_here(capsys, "train", "--help").stdout


def test_train_eval_resume(tmp_path, capsys):
    run = str(tmp_path / "run")
    mto_here(capsys, "train", "--preset", "mae-mto", "--max-steps", "4", "--batch-size", "32", "--out", run,
             "--quiet", *_sets("train.warmup_fraction=0"), check=True)
    result = json.loads(mto_here(capsys, "eval", run, "--probe", "knn", "--json", "--bank-size", "2000").stdout)
    assert result["probe"] == "knn" and 0.1 < result["accuracy"] <= 1
    assert result["checkpoint"].endswith("step-00000004") and result["scratch"] is False
    scratch = mto_here(capsys, "eval", run, "--probe", "knn", "--bank-size", "2000", "--scratch").stdout
    assert "untrained (--scratch)" in scratch  # not printed as if it were the trained checkpoint's
    again = mto_here(capsys, "train", "--preset", "mae-mto", "--max-steps", "6", "--batch-size", "32",
                     "--out", run, "--quiet", "--resume", *_sets("train.warmup_fraction=0"), check=True)
    assert "trained 6 steps" in again.stdout
    linear = json.loads(mto_here(capsys, "eval", run, "--probe", "linear", "--json", "--bank-size",
                                  "1000").stdout)
    assert linear["probe"] == "linear" and linear["checkpoint"].endswith("step-00000006")
    bare = mto_here(capsys, "train", "--out", run, "--quiet", "--resume", "--max-steps", "7",  # own config
                    check=True)
    assert "trained 7 steps" in bare.stdout and json.loads((tmp_path / "run" / "config.json").read_text())[
        "model"]["method"] == "mae"


def test_quick_start_scores_clearly_above_chance(tmp_path, capsys):
    """The README's quick start: one epoch of the tiny preset on the shipped subset."""
    run = str(tmp_path / "x")
    mto("train", "--preset", "simmim-mto", "--epochs", "1", "--out", run, "--quiet", "--set", "data.root=shipped")
    result = json.loads(mto_here(capsys, "eval", run, "--probe", "knn", "--json", check=True).stdout)
    assert result["accuracy"] > 0.5  # chance is 0.1


@pytest.mark.parametrize("args, words", [
    (["train", "--out", "X", "--set", "mto.nope=1"], "unknown config key 'mto.nope'"),
    (["train", "--out", "X", "--set", "mask.ratio=1.0"], "strictly between 0 and 1"),
    (["train", "--out", "X", "--set", "notakeyvalue"], "key=value"),
    (["eval", "does-not-exist"], "does not exist"),
])
def test_errors_are_one_clear_line(tmp_path, capsys, args, words):
    args = [str(tmp_path / a) if a in ("X", "does-not-exist") else a for a in args]
    result = mto_here(capsys, *args)
    assert result.returncode in (1, 2) and words in result.stderr and "Traceback" not in result.stderr


# ConMIM is SimMIM's path (mask tokens in the encoder) and BootMAE MAE's (in a decoder), each with MTO
# and a momentum teacher on every rank
@pytest.mark.parametrize("name", ["conmim-mto", "bootmae-mto"])
def test_two_process_ddp_equals_single_process_with_same_global_batch(tmp_path, name, capsys):
    """torchrun with 2 CPU processes (gloo) x 16 images == 1 process x 32 images."""
    sets = _sets("data.train_limit=256", "train.log_every=2")
    common = ["train", "--preset", name, "--epochs", "1", "--quiet", *sets]
    # --standalone: the rendezvous on a port that is free at the time (a fixed one may be taken)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "mto_core.cli"]
    ddp = subprocess.run([*torchrun, *common, "--batch-size", "16", "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-5000:]
    mto_here(capsys, *common, "--batch-size", "32", "--out", str(tmp_path / "single"), check=True)
    a = load_file(str(tmp_path / "ddp" / "step-00000008" / "model.safetensors"))
    b = load_file(str(tmp_path / "single" / "step-00000008" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    rows_ddp = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    rows_one = [json.loads(x) for x in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows_ddp] == [r["step"] for r in rows_one]
    assert rows_ddp[0]["loss"] == pytest.approx(rows_one[0]["loss"], rel=1e-4)


def _train_rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_non_finite_loss_advice_can_be_followed(tmp_path, capsys):
    """A learning rate of 1e30 from epoch 2 on gives a NaN loss; the message's advice, resuming
    with a lower learning rate or a longer warmup, is accepted and recorded."""
    run = tmp_path / "run"
    common = ["train", "--preset", "simmim-mto", "--out", str(run), "--quiet", "--batch-size", "32",
              *_sets("data.train_limit=64", "train.log_every=1")]
    mto_here(capsys, *common, "--epochs", "1", check=True)
    failed = mto_here(capsys, *common, "--epochs", "3", "--resume", "--set", "train.base_lr=1e30")
    warning, *lines = failed.stderr.strip().splitlines()  # the new length's schedule, then the error
    assert "warning: resuming with a new length (train.epochs 1 -> 3)" in warning, failed.stderr
    assert failed.returncode == 1 and len(lines) == 1 and "non-finite" in lines[0], failed.stderr
    assert "step-00000002" in lines[0] and "--resume --set train.base_lr=LOWER (now 1e+30)" in lines[0]
    assert "--set train.warmup_fraction=HIGHER (now 0.1)" in lines[0]
    mto_here(capsys, *common, "--epochs", "3", "--resume", "--set", "train.base_lr=0.0015", check=True)
    mto_here(capsys, *common, "--epochs", "4", "--resume", "--set", "train.warmup_fraction=0.5", check=True)
    rows = _train_rows(run)
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 9))
    resumes = [r for r in rows if r["kind"] == "resume"]
    assert resumes[-2:] == [{"kind": "resume", "step": 2, "base_lr": 0.0015, "base_lr_was": 1e30},
                            {"kind": "resume", "step": 6, "warmup_fraction": 0.5, "warmup_fraction_was": 0.1,
                             "epochs": 4, "epochs_was": 3}]
    other = mto_here(capsys, *common, "--epochs", "4", "--resume", "--set", "mto.entropy_weight=1")
    assert other.returncode == 1 and "mto.entropy_weight" in other.stderr


def test_a_start_that_failed_does_not_block_the_retry(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", "--preset", "simmim", "--out", str(run), "--quiet", "--max-steps", "2",
              *_sets("data.train_limit=64")]
    failed = mto_here(capsys, *common, "--batch-size", "1000000000")
    assert failed.returncode == 2 and "fewer than one global batch" in failed.stderr
    assert not run.exists()  # refused before anything was written
    retry = mto_here(capsys, *common, "--batch-size", "32", check=True)
    assert "trained 2 steps" in retry.stdout
    again = mto_here(capsys, *common, "--batch-size", "32", "--resume", check=True)
    assert "already trained to step 2" in again.stdout and "nan" not in again.stdout


def test_resume_of_a_run_that_does_not_exist_is_an_error(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    result = mto_here(capsys, "train", "--out", str(missing), "--resume", "--quiet",
                      *_sets("data.train_limit=64"))
    assert result.returncode == 1 and not missing.exists()
    assert result.stderr.strip() == (f"mto train: error: --resume: {missing} holds no run to resume (no "
                                     "config.json, no checkpoint); nothing was changed. Check the --out "
                                     "path, or leave out --resume to start a new run")


def _nan_checkpoint(folder):
    from mto_core.models.checkpoint import save_checkpoint
    from mto_core.config import apply_overrides, preset
    from mto_core.models.build import build_model

    config = apply_overrides(preset("simmim"), list(SMALL))
    model = build_model(config.model, config.mto)
    with torch.no_grad():
        model.encoder.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    save_checkpoint(folder, 1, model, config, {"step": 1}, 1)


def _bad_file(tmp_path, name):
    if name == "latin1":
        (tmp_path / "config.json").write_bytes('{"preset": "simmim", "note": "café"}'.encode("latin-1"))
        return tmp_path / "config.json"
    if name == "nan":
        _nan_checkpoint(tmp_path / "nan")
        return tmp_path / "nan"
    if name == "metrics":
        for group in ("a", "b"):
            (tmp_path / group).mkdir()
            (tmp_path / group / "metrics.jsonl").write_text(
                '{"kind": "epoch", "epoch": 1, "knn_val": 0.5}\n[1]\n'
                '{"kind": "epoch", "epoch": 2, "knn_val": "0.9"}\n{"kind": "epoch", "epoch": 3, "knn_val": 0.7}\n')
        return tmp_path
    if name == "config":
        (tmp_path / "run.json").write_text((Path(__file__).resolve().parent.parent / "checkpoints" / "simmim"
                                            / "config.json").read_text())
        return tmp_path / "run.json"
    if name == "file":
        (tmp_path / "notes.txt").write_text("a file")
        return tmp_path / "notes.txt"
    return tmp_path / name


@pytest.mark.parametrize("args, words", [
    (["train", "--out", "X", "--config", "@latin1"], "is not UTF-8 text"),
    (["train", "--out", "X", "--config", "@"], "is a folder; give the JSON file itself"),
    (["eval", "@", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--out", "X", "--device", "tpu"], "train.device must be auto, cpu or cuda"),
    (["eval", "@nan", "--bank-size", "100", "--json"], "features are not finite"),
    (["analyze", "@", "--images", "-5"], "--images must be positive, got -5"),
    (["eval", "@", "--bank-size", "-1"], "--bank-size must be at least 0, got -1"),
    (["train", "--out", ""], "--out is empty"),
    (["compare", "@missing", "@missing2"], "missing does not exist"),
    (["compare", "@file", "@missing"], "notes.txt is a file; give run folders"),
    (["train", "--out", "@file", "--max-steps", "1"], "notes.txt is a file; choose a folder for --out"),
    (["eval", "@file"], "notes.txt is a file; give the folder that holds it"),
    (["train", "--out", "X", "--config", "@config", "--preset", "mae"], "give --config or --preset, not both"),
])
def test_small_mistakes_get_one_line(tmp_path, capsys, args, words):
    args = [str(_bad_file(tmp_path, a[1:])) if a.startswith("@") else a for a in args]
    args = [str(tmp_path / "X") if a == "X" else a for a in args]
    result = mto_here(capsys, *args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode in (1, 2) and len(lines) == 1 and words in lines[0], result.stderr
    if words == "is not UTF-8 text":
        assert str(tmp_path / "config.json") in lines[0]


def test_warnings_are_one_line_and_the_work_goes_on(tmp_path, capsys):
    from mto_core.config import apply_overrides, preset

    started = tmp_path / "started"  # a run killed after its start, before its first step
    started.mkdir()
    config = apply_overrides(preset("simmim"), [*SMALL, "data.train_limit=64", "train.batch_size=32",
                                                "train.max_steps=1", "train.epochs=0"])
    (started / "config.json").write_text(config.to_json())
    result = mto_here(capsys, "train", "--out", str(started), "--quiet", "--resume", check=True)
    assert result.stderr.strip() == (f"mto train: warning: {started} holds no checkpoint and no logged step, "
                                     "so there is nothing to resume: starting at step 0")
    metrics = _bad_file(tmp_path, "metrics")
    compared = mto_here(capsys, "compare", str(metrics / "a"), str(metrics / "b"), check=True)
    assert "Traceback" not in compared.stderr
    assert compared.stderr.count("mto compare: warning:") == 2 and "knn_val on line 3" in compared.stderr


def test_eval_on_a_folder_without_checkpoints_suggests_a_command_that_works(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=re.escape(f"Train one with: mto train --out {empty}")):
        resolve(empty)
    other = tmp_path / "docs"  # a folder of other files: training into it is refused, so not suggested
    other.mkdir()
    (other / "notes.md").write_text("x")
    with pytest.raises(CheckpointError) as error:
        resolve(other)
    assert "mto train --out" not in str(error.value) and "not a run folder" in str(error.value)
    started = tmp_path / "started"  # a run stopped before its first checkpoint
    started.mkdir()
    (started / "config.json").write_text(small_config("simmim").to_json())
    with pytest.raises(CheckpointError, match=re.escape(f"mto train --out {started} --resume")):
        resolve(started)


def _help(capsys, *args):
    with pytest.raises(SystemExit):
        main([*args, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_says_what_is_true(capsys):
    eval_help = _help(capsys, "eval")
    assert "Fashion-MNIST test split" not in eval_help and "image folder" in eval_help
    assert re.search(r"--split \{test,val\} .*held-out", eval_help)
    minutes = re.search(r": (\d+) min for \d+ runs", (ROOT / "docs/results/efficiency-cpu.md").read_text())[1]
    assert f"{minutes} min" in _help(capsys, "experiment")
    assert "90 min" not in _help(capsys, "experiment")
