"""benchmarks/gpu_check.sh refuses clearly without CUDA; its doc section writer fills the markers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_table  # noqa: E402


@pytest.mark.parametrize("args", [["OUT"], []])
def test_gpu_check_refuses_in_one_line_without_cuda_or_an_out_folder(tmp_path, args):
    out = tmp_path / "results"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *[str(out) for _ in args]],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 2 and run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert ("no CUDA device is visible" if args else "give one argument") in run.stderr
    assert not out.exists()


def test_the_gpu_section_goes_between_the_markers(tmp_path):
    rows = [{"size": size, "batch": batch, "method": method, "variant": variant, "compiled": False, "ms": 10.0,
             "images_per_s": 1.0, "mfu": 0.3, "vs_baseline": 1.0, "peak_mib": 100.0}
            for size, batch in gpu_table.SIZES for method in ("simmim", "mae") for variant in gpu_table.MTO_PARTS]
    result = {"machine": {"gpu": "a test GPU", "torch": "x", "date": "today"}, "matmul_peak_tflops": 800.0,
              "rounds": 6, "warmup": 3, "rows": rows, "skipped": ["compiled: vit-b (needs about 90 s, 3 s left)"],
              "plain": {"batch": 1024, "plain_ms": 9.0, "mto_ms": 10.0, "speedup": 0.9}}
    doc = tmp_path / "performance.md"
    doc.write_text(f"# before\n{gpu_table.BEGIN}\nnot measured\n{gpu_table.END}\nafter\n")
    gpu_table.update_doc(doc, gpu_table.section(json.loads(json.dumps(result))))
    text = doc.read_text()
    assert text.startswith("# before\n") and text.endswith(f"{gpu_table.END}\nafter\n") and "not measured" not in text
    assert "| vit-b | 256 | eager | 10.0 | 10.0 | 1.00x | 30.0% -> 30.0% | 100 -> 100 |" in text
    assert "**0.90x**" in text and "Not reached within the time budget: compiled: vit-b" in text
