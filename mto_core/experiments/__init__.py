"""Experiments: compare runs by method; the efficiency, fine-tuning and ablation experiments.

Runs are grouped by their folder name without a trailing ``-s<seed>`` (``simmim-mto-s2`` ->
``simmim-mto``); runs of the same seed are paired (same data order and masks). Curves are
validation-split probe accuracies per probe point (metrics.jsonl).

- :mod:`.registry`: the experiments (variants, seeds, settings of each preset);
- :mod:`.runner`: trains them, resumes them, measures the floors; :mod:`.worker`: one run in a process;
- :mod:`.step_cost`: the cost of an MTO step over its baseline's (the c of s_wall);
- :mod:`.records`: what an experiment records beside its runs, and how it is read back;
- :mod:`.stats`: comparisons and paired statistics over seeds;
- :mod:`.report`: the markdown reports, renderings of what the runs recorded;
- :mod:`.figures`: the Plotly figures;
- :mod:`.finetune`: the fine-tuning experiment on the efficiency runs' snapshots.
"""

from .figures import compare_figure, family_figure, plot_compare
from .records import read_floors
from .registry import EXPERIMENTS, Experiment, plan_runs, run_config
from .report import format_compare, report_only, write_report
from .runner import is_complete, run_experiment
from .stats import (committed_experiments, compare, families, family_summary, format_interval, group_name,
                    summarize_family)

__all__ = ["EXPERIMENTS", "Experiment", "committed_experiments", "compare", "compare_figure", "families",
           "family_figure", "family_summary", "format_compare", "format_interval", "group_name", "is_complete",
           "plan_runs", "plot_compare", "read_floors", "report_only", "run_config", "run_experiment",
           "summarize_family", "write_report"]
