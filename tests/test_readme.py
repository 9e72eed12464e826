"""The README's Python API snippet runs as written, from the repository root."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_python_api_snippet_runs_as_written_and_prints_what_it_computed(tmp_path):
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"## Python API\n.*?```python\n(.*?)```", readme, re.S)[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}  # its run folder
    result = subprocess.run([sys.executable, "-c", snippet], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"trained 5 steps, loss \d\.\d{4}, checkpoint .*step-00000005", lines[0]), lines
    assert re.fullmatch(r"masked-patch MSE per image: \[(0\.\d+, ){7}0\.\d+\]", lines[1]), lines
    assert lines[2] == "h^0 (8, 50, 128) A^1 (8, 4, 50, 50) token mask (8, 50)"
    assert re.fullmatch(r"\{'mim': [\d.]+, 'rec': [\d.]+, 'ent': [\d.]+, 'sing': [\d.]+\}", lines[3]), lines


def test_the_method_of_your_own_snippet_registers_a_method():
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"### A method of your own\n.*?```python\n(.*?)```", readme, re.S)[1]
    check = """
import contextlib, io
from mto_core.cli import main
from mto_core.config import preset
shown = io.StringIO()
with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):
    main(["train", "--help"])
print(preset("mymim-mto").model.method, "mymim-mto" in shown.getvalue())
"""
    result = subprocess.run([sys.executable, "-c", snippet + check], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mymim", "True"]
