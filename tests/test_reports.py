"""Reports are renderings of what the runs recorded: the same runs give the same page, wherever
and whenever it is rendered."""

import json
import shutil
from pathlib import Path

import streamlit  # noqa: F401  (it changes Plotly's default template: a report must not follow it)

from mto_core.cli import main

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def _render(tmp_path: Path, name: str, *extra: str) -> str:
    kind, preset, *methods = name.split("-")
    chosen = ["--methods", ",".join(methods)] if methods else []
    assert main(["experiment", kind, "--preset", preset, *chosen, "--report-only", "--quiet",
                 "--report", str(tmp_path / f"{name}.md"), *extra]) == 0
    return (tmp_path / f"{name}.md").read_text()


REPORTS = ("efficiency-cpu", "efficiency-cpu-conmim-bootmae", "ablation-cpu", "finetune-cpu")


def test_report_only_on_the_committed_runs_reproduces_the_committed_reports(tmp_path, capsys):
    for name in REPORTS:
        assert _render(tmp_path, name) == (RESULTS / f"{name}.md").read_text(), name
        plots = [p for p in RESULTS.glob(f"{name}-*.html") if not any(
            other != name and other.startswith(name) and p.name.startswith(other + "-") for other in REPORTS)]
        assert plots or name.startswith("finetune"), name  # a fine-tuning report has a table, no plot
        for plot in plots:
            assert (tmp_path / plot.name).read_bytes() == plot.read_bytes(), plot.name


def test_report_can_be_written_anywhere_and_from_a_copies_folder(tmp_path, capsys):
    elsewhere = tmp_path / "a" / "b"
    text = _render(elsewhere, "efficiency-cpu", "--out", str(RESULTS / "efficiency-cpu-runs"))
    assert "Machine: Intel(R) Xeon(R) Processor, 2 cores" in text
    assert (elsewhere / "efficiency-cpu-runs" / "mae-s7" / "metrics.jsonl").is_file()


def test_finetune_report_lists_only_the_seeds_it_holds(tmp_path, capsys):
    copies = tmp_path / "finetune-cpu-runs"
    shutil.copytree(RESULTS / "finetune-cpu-runs", copies)
    rows = [json.loads(line) for line in (copies / "finetune.jsonl").read_text().splitlines()]
    assert sorted({r["seed"] for r in rows}) == [0, 1]  # the preset plans seeds 0, 1, 2
    text = _render(tmp_path, "finetune-cpu")
    assert "seeds 0, 1;" in text and "seeds 0, 1, 2" not in text
