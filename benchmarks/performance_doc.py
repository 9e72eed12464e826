"""Write docs/performance.md: every figure in it is measured by this run (or the saved run it renders).

Usage: python benchmarks/performance_doc.py [--compile] [--out docs/performance.md]
       [--save-json FILE] [--from-json FILE]
(--compile adds the torch.compile comparison, several minutes of compilation; --save-json keeps
the run's figures, --from-json writes the file from kept figures without measuring.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mto_core.bench.measure import profile_step, run_bench
from performance_text import render

HERE = Path(__file__).resolve().parent


def script_json(script: str, *args: str) -> dict:
    """The JSON that ``benchmarks/<script> --json`` prints, run in its own process."""
    out = subprocess.run([sys.executable, str(HERE / script), "--json", *args], check=True, capture_output=True,
                         text=True, cwd=HERE.parent).stdout
    return json.loads(out)


def measure(compile: bool) -> dict:
    """Every figure the doc shows: `mto bench`'s, the profile's and three scripts' JSON."""
    return {"bench": run_bench(),
            "unfused": run_bench(overrides=["train.fused_optimizer=false"], memory=False),
            "compiled": run_bench(overrides=["train.compile=true"], memory=False, rounds=5) if compile else None,
            "kernels": script_json("loss_kernels.py"),
            "profile": profile_step(),
            "attempts": script_json("attempts.py"),
            "app_budgets": script_json("app_budgets.py")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", default="docs/performance.md")
    parser.add_argument("--save-json", type=Path, help="also write the measured figures to this file")
    parser.add_argument("--from-json", type=Path, help="measure nothing: render the figures of this file")
    args = parser.parse_args()
    if args.from_json and (args.compile or args.save_json):
        parser.error("--from-json renders figures already measured: give it without --compile or --save-json")
    results = json.loads(args.from_json.read_text()) if args.from_json else measure(args.compile)
    if args.save_json:
        args.save_json.write_text(json.dumps(results, indent=1))
    out = Path(args.out)
    text = render(results, out.read_text() if out.is_file() else "")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
