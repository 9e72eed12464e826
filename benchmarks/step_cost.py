"""Measure the step cost c of an experiment's MTO variants on this machine and store it with its
runs (step_cost.json), for runs that were made before the experiment measured it itself.

    python3 benchmarks/step_cost.py efficiency-cpu --note "measured after the runs, on the same kind of machine"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mto_core.experiments import EXPERIMENTS
from mto_core.experiments.registry import experiment_named
from mto_core.experiments.records import STEP_COST
from mto_core.experiments.step_cost import write_step_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="e.g. efficiency-cpu or efficiency-cpu-conmim-bootmae (its runs are "
                                           "docs/results/<experiment>-runs)")
    parser.add_argument("--rounds", type=int, default=60, help="interleaved rounds per family")
    parser.add_argument("--set", action="append", default=[], help="the experiment's --set flags")
    parser.add_argument("--note", default="", help="stored with the measurement and shown in the report")
    args = parser.parse_args()
    experiment = experiment_named(args.experiment)
    if experiment is None:
        names = ", ".join(e.name for e in EXPERIMENTS.values())
        parser.error(f"unknown experiment {args.experiment}; choose one of {names}, or efficiency-<preset>-<methods> "
                     "as `mto experiment efficiency --methods` names it")
    path = Path("docs") / "results" / f"{args.experiment}-runs" / STEP_COST
    cost = write_step_cost(experiment, args.set, path, args.rounds)
    if args.note:
        cost["note"] = args.note
        path.write_text(json.dumps(cost, indent=2) + "\n")
    for method, f in cost["families"].items():
        print(f"{method}: c = {f['c']:.3f} ({f['method_ms']:.1f} ms vs {f['baseline']} {f['base_ms']:.1f} ms)")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
