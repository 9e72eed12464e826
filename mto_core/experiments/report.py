"""Reports: markdown renderings of an experiment's recorded runs."""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ..eval.efficiency import curve, mean_accuracy, paired
from ..models.checkpoint import read_metrics
from .figures import family_figure, plot_compare, write_html
from .records import FLOORS, RECORD, STEP_COST, read_record, read_step_cost
from .registry import Experiment, plan_runs, run_config
from .runner import copy_runs, is_recorded
from .stats import (THRESHOLDS, compare, families, format_interval, format_sign, group_name,
                    paired_differences, run_minutes, seed_of, summarize_family)

# the decision rule's second bound: a speed-up of this or more is ruled out by an interval ending below it
RULED_OUT = 1.1


def format_compare(result: dict[str, Any]) -> str:
    base = result["groups"][result["baseline"]]
    lines = [f"Metric: {result['metric']} (validation split), baseline: {result['baseline']} "
             f"(final {base['target']:.4f}, best {base['best_target']:.4f}; mean over seeds). "
             "± is the sample standard deviation over seeds.", "",
             "| method | seeds | final accuracy | RAUC | epochs to baseline's final | efficiency "
             "| epochs to baseline's best | minutes per run |",
             "|---|---|---|---|---|---|---|---|"]
    for name, g in result["groups"].items():
        of = f" of {g['baseline_epochs']:g}"
        reach = "never" if g["epochs_to_target"] is None else f"{g['epochs_to_target']:g}{of}"
        best = "never" if g.get("epochs_to_best") is None else f"{g['epochs_to_best']:g}{of}"
        eff = "-" if g["efficiency"] is None else f"{g['efficiency']:.2f}"
        timed = [m for m in g.get("minutes", []) if m is not None]
        minutes = "-" if not timed else f"{statistics.fmean(timed):.1f}" + (
            f" ({len(timed)} of {g['seeds']} timed)" if len(timed) < g["seeds"] else "")
        spread = f" ± {g['final_std']:.4f}" if g["final_std"] is not None else " (one seed: no spread)"
        lines.append(f"| {name} | {g['seeds']} | {g['final_mean']:.4f}{spread} | {g['rauc']:.4f} "
                     f"| {reach} | {eff} | {best} | {minutes} |")
    lines += [f"\nWarning: {w}" for w in result.get("warnings", [])]
    return "\n".join(lines)


def write_report(experiment: Experiment, runs: list[Path], path: Path) -> Path:
    """A markdown report of the recorded ``runs``, plus HTML plots next to it. The runs' metrics
    and configs, and what the runs folder recorded (floors, step cost, record), are copied to
    ``<report stem>-runs/`` beside it (unless they are there already): the page renders only
    what those files hold, so the same runs give the same page on any machine, at any time."""
    copies = path.with_name(f"{path.stem}-runs")
    elsewhere = [run for run in runs if run.parent.resolve() != copies.resolve()]
    if elsewhere:
        source = elsewhere[0].parent
        copy_runs(elsewhere, copies, tuple(source / name for name in (FLOORS, STEP_COST, RECORD)))
        runs = [copies / run.name for run in runs]
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(curve(read_metrics(r), "knn_val")[0].size and any(
            row.get("kind") == "probe" for row in read_metrics(r)) for r in runs):
        text = _efficiency_report(experiment, runs, path, copies)
    else:
        text = _ablation_report(experiment, runs, path, copies)
    path.write_text(text)
    return path


def rerender_command(name: str, methods: tuple[str, ...] = ()) -> str:
    """The command that renders experiment ``name`` (``efficiency-cpu``, or with ``methods``
    ``efficiency-cpu-conmim-bootmae``) again from its runs."""
    if methods:
        suffix = "-" + "-".join(methods)
        if not name.endswith(suffix):
            raise ValueError(f"experiment {name} was not made with --methods {','.join(methods)}")
        name = name.removesuffix(suffix)
    kind, _, preset = name.rpartition("-")
    chosen = f" --methods {','.join(methods)}" if methods else ""
    return f"mto experiment {kind} --preset {preset}{chosen} --report-only"


def recorded_machine(record: dict[str, Any] | None) -> str:
    """The 'Machine:' sentence from what the runs recorded (``record.json``), never from the
    machine that renders the report."""
    if not record or not record.get("calls"):
        return "Machine: not recorded with these runs."
    machines = []
    for call in record["calls"]:
        m = call.get("machine", {})
        text = f"{m.get('gpu') or m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')}"
        if text not in machines:
            machines.append(text)
    first, last = record["calls"][0].get("started"), record["calls"][-1].get("ended")
    when = f"made from {first} to {last}" if first else f"finished by {last}"
    calls = len(record["calls"])
    return (f"Machine: {'; '.join(machines)}; runs {when}" + (f" in {calls} calls" if calls > 1 else "")
            + (f"; {record['note']}" if record.get("note") else "") + ".")


def _header(experiment: Experiment, runs: list[Path], copies: Path, path: Path) -> list[str]:
    record = read_record(copies)
    made: dict[str, list[int]] = {}
    for run in runs:
        if seed_of(run.name).isdigit():
            made.setdefault(group_name(run), []).append(int(seed_of(run.name)))
    seeds = {v: sorted(made.get(v, [])) for v in experiment.variants if made.get(v)}
    seed_text = "; ".join(f"{v}: seeds {_ranges(s)}" for v, s in seeds.items()) if len(
        {tuple(s) for s in seeds.values()}) > 1 else f"seeds {_ranges(next(iter(seeds.values())))} of every variant"
    planned = len(plan_runs(experiment))
    partial = (f" **This report covers {len(runs)} of the {planned} planned runs** (the runs finished so far; "
               "the same command trains the rest and rewrites the report)." if len(runs) < planned else "")
    link = Path(os.path.relpath(copies, path.parent)).as_posix()
    return [f"# {experiment.name}", "", "Runs made by:", "",
            f"    {record.get('command') if record and record.get('command') else 'not recorded'}", "",
            partial.strip(),
            f"Every run the experiment made is in this report: {len(runs)} runs ({seed_text}), "
            f"{experiment.epochs} epochs each, identical data and budget within a family."
            + (f" Common settings: `{' '.join(experiment.common)}`." if experiment.common else ""),
            "Variants: " + "; ".join(f"`{name}` = preset {base}" + (f" with `{' '.join(sets)}`" if sets else "")
                                    for name, (base, sets) in experiment.variants.items()) + ".",
            f"Every run's curves and config: [{link}/]({link}/); this page renders only what they recorded: "
            f"`{rerender_command(experiment.name, experiment.methods)}` writes it again, the same to the byte.",
            f"{recorded_machine(record)} " + _timing(runs), ""]


def _ranges(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 \
        else ", ".join(map(str, seeds))


def _timing(runs: list[Path]) -> str:
    minutes = [run_minutes(read_metrics(r)) for r in runs]
    timed = [m for m in minutes if m is not None]
    if not timed:
        return "No run has per-epoch timing in its metrics.jsonl."
    text = (f"Training and probing time recorded in the runs (train_s + probe_s): {sum(timed):.0f} min "
            f"for {len(timed)} runs")
    return text + (f" ({len(minutes) - len(timed)} runs without timing)." if len(timed) < len(minutes) else ".")


def _efficiency_report(experiment: Experiment, runs: list[Path], path: Path, copies: Path) -> str:
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    cost = read_step_cost(copies)
    lines = _header(experiment, runs, copies, path)
    lines += ["Protocol (docs/results/README.md): the primary measure is the k-NN probe (k = 20, cosine) on a "
              "fixed bank of training images and a fixed validation set, the same for every run, at each probe "
              "point; the linear probe is secondary. Runs of the same seed are paired (same initialisation, data "
              "order and masks). Intervals are 95% paired t-intervals over seeds; ± and sd are sample standard "
              "deviations; a sign test counts seeds up and down (ties within 1e-9). The speed-up factor s: the "
              "method at epoch t reaches what the baseline reaches at epoch s t, from the epochs each run needs "
              f"to reach {THRESHOLDS} k-NN thresholds evenly spaced above the highest accuracy any run of the "
              f"family has at epoch 0 (its random init) up to the baseline's mean accuracy at epoch "
              f"{experiment.threshold_epoch:g} (linear interpolation between probe points; a threshold counts "
              "only if every run reaches it). The paper's \"about half the epochs\" is s = 2. The wall-clock "
              "speed-up s_wall = s / c, where c is the time of the method's training step over its baseline's, "
              "measured interleaved at the experiment's batch and model size and stored with the runs "
              f"({STEP_COST}); s_wall > 1 means the method reaches a given accuracy sooner in time. Decision "
              "rule, for s and for s_wall alike: a speed-up is resolved if the 95% interval lies above 1; a "
              f"speed-up of {RULED_OUT:g} or more is ruled out if its upper end lies below {RULED_OUT:g}; "
              "otherwise these runs do not decide." + (f" {experiment.note}" if experiment.note else ""), ""]
    summaries = []
    for base, family in families(list(groups), experiment.baseline).items():
        for method in family[1:]:
            summary = summarize_family(groups, base, method, copies, experiment.threshold_epoch)
            summaries.append(summary)
            plot = write_html(family_figure(summary), path.with_name(f"{path.stem}-{base}.html"))
            lines += _family_section(summary, plot.name)
            lines += _wall_section(summary, cost)
    lines += ["## What the data says", ""] + [_verdict(s) for s in summaries] + [""]
    return "\n".join(lines) + "\n"


def _judged_by(s: dict[str, Any]) -> str:
    """Which probe the family is judged by, and why, from its own curves."""
    base, floors = s["base"], s["floors"]
    mean, epochs = s["curves"][base]["mean"], s["epochs"]
    text = (f"Judged by the k-NN probe, the primary measure: it is measured at {len(epochs)} points, enough to "
            "time a threshold, where the linear probe has " + (f"{len(s['linear'])}" if s["linear"] else "none"))
    if "init_linear" in floors and "pixels_linear" in floors:
        text += (f", and a random encoder already scores {floors['init_linear']:.4f} on the linear probe "
                 f"(raw pixels {floors['pixels_linear']:.4f}), which leaves it little room to show learning")
    dip = min(range(1, len(mean)), key=lambda j: mean[j], default=None)
    if dip is not None and mean[dip] < mean[0]:
        text += (f". The baseline's mean k-NN accuracy dips below its random-init level early on ({mean[0]:.4f} "
                 f"at epoch 0, {mean[dip]:.4f} at epoch {epochs[dip]:g}): the thresholds therefore start above "
                 "every run's epoch-0 accuracy, so that no run is credited with a level it started at")
    return text + "."


def _wall_section(s: dict[str, Any], cost: dict[str, Any] | None) -> list[str]:
    base, method, wall, recorded = s["base"], s["method"], s["wall"], s["recorded_cost"]
    lines = [f"### {method} vs {base}: time to accuracy", "", _judged_by(s), ""]
    if cost is None or method not in cost.get("families", {}):
        lines += [f"No step cost is stored with these runs ({STEP_COST}): no wall-clock speed-up.", ""]
    else:
        f = cost["families"][method]
        m = cost.get("machine", {})
        iqr = f"; interquartile range of the per-round ratios {f['c_iqr'][0]:.3f}-{f['c_iqr'][1]:.3f}" \
            if f.get("c_iqr") else ""
        lines += [f"Step cost c = {f['c']:.3f} ({method} {f['method_ms']:.1f} ms vs {base} {f['base_ms']:.1f} ms per "
                  f"step, batch {f['batch']}, median of {cost.get('rounds', '?')} interleaved rounds{iqr}; "
                  f"measured {cost.get('measured', '?')} on {m.get('gpu') or m.get('cpu', '?')}, "
                  f"{m.get('torch_threads', '?')} torch threads"
                  + (f"; {cost['note']}" if cost.get("note") else "") + ").", ""]
    if wall is not None:
        (lo, hi), (t_lo, t_hi) = wall["ci"], wall["time_ratio_ci"]
        one = len(wall["per_seed"]) < 2
        lines += [f"- **Wall-clock speed-up s_wall** = s / c = {wall['s_wall']:.2f}, "
                  + ("one seed: no interval" if one else f"95% interval [{lo:.2f}, {hi:.2f}]")
                  + f" (per seed {', '.join(f'{v:.2f}' for v in wall['per_seed'])}). Reading: **to reach the same "
                  f"k-NN accuracy, {method} took {wall['time_ratio']:.2f}x the time {base} took**"
                  + ("." if one else f" (95% interval {t_lo:.2f}-{t_hi:.2f}x)."), "",
                  "Time to reach each threshold, minutes of training (mean over seeds of the epochs to reach it, "
                  "x steps per epoch x the measured step time):", "",
                  f"| k-NN threshold | {base} epochs | {base} min | {method} epochs | {method} min | {method} / {base} |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {t['threshold']:.4f} | {t['epochs'][base]:.2f} | {t[base]:.2f} | {t['epochs'][method]:.2f} | "
                  f"{t[method]:.2f} | {t[method] / t[base] if t[base] else float('nan'):.2f} |" for t in wall["minutes"]]
        lines.append("")
    elif cost is not None:
        lines += ["- **Wall-clock speed-up**: not estimable, as s is not.", ""]
    if recorded:
        lines += [f"Cross-check only (flagged: these runs shared the machine with other work, so their recorded "
                  f"times carry its load): the recorded train_s of {method} over {base}, per seed, median "
                  f"{statistics.median(recorded):.2f} (range {min(recorded):.2f}-{max(recorded):.2f}, "
                  f"{len(recorded)} seeds).", ""]
    return lines


def _family_section(s: dict[str, Any], plot: str) -> list[str]:
    base, method, floors = s["base"], s["method"], s["floors"]
    lines = [f"## {method} vs {base} ({len(s['seeds'])} paired seeds)", "", f"Plot: [{plot}]({plot})", "",
             "Floors on the same probe sets: "
             + "; ".join(text for key, text in (
                 ("pixels_knn", f"raw pixels k-NN {floors.get('pixels_knn', 0):.4f}"),
                 ("pixels_linear", f"raw pixels linear {floors.get('pixels_linear', 0):.4f}"),
                 ("init_knn", f"random init (the runs at epoch 0) k-NN {floors.get('init_knn', 0):.4f} "
                              f"± {floors.get('init_knn_sd', 0):.4f} (sample sd over seeds)"),
                 ("init_linear", f"random init linear {floors.get('init_linear', 0):.4f}")) if key in floors) + ".", "",
             f"| epoch | {base} k-NN (mean ± sd) | {method} k-NN (mean ± sd) | {method} - {base} [95% CI] | sign test |",
             "|---|---|---|---|---|"]
    sd = lambda v: f" ± {v:.4f}" if np.isfinite(v) else ""  # noqa: E731  (one seed: no sd)
    for j, e in enumerate(s["epochs"]):
        b, m = s["curves"][base], s["curves"][method]
        lines.append(f"| {e:g} | {b['mean'][j]:.4f}{sd(b['sd'][j])} | {m['mean'][j]:.4f}{sd(m['sd'][j])} | "
                     f"{format_interval(s['per_point'][j])} | {format_sign(s['per_point'][j])} |")
    area, sp = s["area"], s["speedup"]
    if area["n"] < 2:
        lines += ["", f"- One paired seed so far: mean k-NN accuracy over the run, {method} - {base}: "
                  f"{area['mean']:+.4f}; speed-up factor on this seed: "
                  + (f"{sp['s']:.2f}." if sp.get("s") is not None else "not estimable.")
                  + " Intervals need at least two seeds."]
    else:
        lines += ["", f"- **Mean k-NN accuracy over the run** (area under the curve / its length), {method} - {base}: "
                  f"{format_interval(area)}, sd {area['sd']:.4f}; {format_sign(area)}; reading: "
                  f"**{area['reading']}**; the smallest difference these seeds detect (80% power, 5% level): "
                  f"{area['detectable']:.4f}.", _speedup_line(sp)]
    if s["linear"]:
        lines += ["", f"Linear probe (secondary), {method} - {base}:", "",
                  f"| epoch | {base} | {method} | difference [95% CI] | sign test |", "|---|---|---|---|---|"]
        lines += [f"| {p['epoch']:g} | {p['base']:.4f} | {p['method']:.4f} | {format_interval(p['diff'])} | "
                  f"{format_sign(p['diff'])} |" for p in s["linear"]]
    return lines + [""]


def _speedup_line(sp: dict[str, Any]) -> str:
    dropped = "; ".join(f"{d['threshold']:.4f}: met at epoch 0 by {d['at_start']} and never reached by "
                        f"{d['never']} of the {d['runs']} runs" for d in sp.get("dropped", []))
    if sp.get("s") is None:
        return (f"- **Speed-up factor**: cannot be estimated: no threshold is reached after epoch 0 by every "
                f"run ({dropped}). A threshold counts only when every run reaches it within the run.")
    per_seed = ", ".join(f"{v:.2f}" for v in sp["per_seed"])
    return (f"- **Speed-up factor s** = {sp['s']:.2f}, 95% interval [{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}] "
            f"(geometric mean over seeds; per seed {per_seed}; sd of log s {sp['log_s']['sd']:.3f}; "
            f"{format_sign(sp['log_s'])}), from {len(sp['used'])} of {len(sp['thresholds'])} thresholds "
            f"({', '.join(f'{t:.4f}' for t in sp['used'])}). Smallest speed-up these runs detect (80% "
            f"power): s = {sp['detectable']:.2f} (or 1/{sp['detectable']:.2f} for a slow-down)."
            + (f" Left out: {dropped}." if dropped else ""))


def _verdict(s: dict[str, Any]) -> str:
    sp, area = s["speedup"], s["area"]
    head = f"- **{s['method']} vs {s['base']}**: "
    if area["n"] < 2:
        return head + "one paired seed so far: no interval, no verdict."
    if sp.get("s") is None:
        return head + ("no speed-up estimate, in epochs or in time: some run never reaches even the lowest "
                       "threshold above the random-init level within the run. Mean k-NN accuracy over the run, "
                       "the other primary measure: "
                       f"{format_interval(area)} ({area['reading']}; the smallest difference these seeds "
                       f"detect is {area['detectable']:.4f}).")
    lo, hi = sp["ci"]
    paper = ("the paper's s = 2 is ruled out (the interval ends below 2)" if hi < 2 else
             "the paper's s = 2 is inside the interval: these runs cannot rule it out" if lo <= 2 else
             "the interval lies above 2")
    wall = s.get("wall")
    timed = "" if wall is None else (
        f" In wall-clock time, {decision('s_wall', wall['s_wall'], *wall['ci'])}. To reach the same k-NN accuracy, "
        f"{s['method']} took {wall['time_ratio']:.2f}x the time {s['base']} took.")
    return (head + f"{decision('s', sp['s'], lo, hi)}; {paper}. The smallest speed-up these seeds could detect is "
            f"{sp['detectable']:.2f}.{timed} Mean k-NN accuracy over the run: {format_interval(area)} "
            f"({area['reading']}).")


def decision(name: str, value: float, lo: float, hi: float) -> str:
    """The decision rule of the protocol, read on one speed-up and its 95% interval."""
    shown = f"{name} = {value:.2f} [{lo:.2f}, {hi:.2f}]"
    if lo > 1:
        return f"MTO is faster, a speed-up resolved: {shown} lies above 1"
    if hi < 1:
        return f"MTO is slower: {shown} lies below 1"
    if hi < RULED_OUT:
        return f"no speed-up resolved, and one of {RULED_OUT:g} or more ruled out: {shown} contains 1 and ends below {RULED_OUT:g}"
    return f"no speed-up resolved, none of {RULED_OUT:g} or more ruled out: {shown} contains 1 and reaches {RULED_OUT:g}"


def _ablation_report(experiment: Experiment, runs: list[Path], path: Path, copies: Path) -> str:
    groups: dict[str, list[Path]] = {}
    for run in runs:
        groups.setdefault(group_name(run), []).append(run)
    lines = _header(experiment, runs, copies, path)
    lines += ["Accuracy is the linear probe (or k-NN where named) on frozen average-pooled features, on the "
              "validation split of the training images. RAUC = area under a method's accuracy-vs-epoch curve / "
              "the baseline's (this project's definition, made without the paper's full text). ± is the sample standard "
              "deviation over seeds.", ""]
    comparisons = []
    for base, family in families(list(groups), experiment.baseline).items():
        chosen = [r for g in family for r in groups[g]]
        result = compare(chosen, baseline=base, metric="linear_val")
        comparisons.append(result)
        plot = plot_compare(result, path.with_name(f"{path.stem}-{base}.html"))
        lines += [f"## {base} family", "", format_compare(result), "", f"Plot: [{plot.name}]({plot.name})", ""]
        if all(curve(read_metrics(r), "knn_val")[0].size for r in chosen):
            lines += ["The k-NN probe, same runs:", "",
                      format_compare(compare(chosen, baseline=base, metric="knn_val")), ""]
    return "\n".join(lines + _ablation_choice(comparisons, groups)) + "\n"


def _ablation_choice(comparisons: list[dict[str, Any]], groups: dict[str, list[Path]]) -> list[str]:
    """Per family, each variant's paired effect against the family's baseline on the final
    linear probe, the final k-NN and the mean k-NN over the run, each with its 95% interval."""
    from ..config import MTO_DEFAULTS

    lines = []
    for result in comparisons:
        base = result["baseline"]
        ranked = sorted(result["groups"].items(), key=lambda kv: kv[1]["final_mean"], reverse=True)
        lines += [f"## {base} family: effect of each variant", "",
                  f"Paired by seed: variant - {base}, mean [95% t-interval]; a measure reads **helps** or "
                  "**hurts** only when its interval excludes 0, otherwise it has no clear effect. With "
                  f"{result['groups'][base]['seeds']} seeds the interval has {result['groups'][base]['seeds'] - 1} "
                  "degree(s) of freedom: one that excludes 0 says the seeds agree closely, and no sign test on "
                  "so few seeds can reach p < 0.05.", "",
                  "| variant | final linear probe | final k-NN | mean k-NN over the run |",
                  "|---|---|---|---|"]
        for name, _ in ranked:
            if name == base:
                continue
            measures = [paired([d for _, d in paired_differences(result, name)])]
            for reduce in (lambda c: float(c[1][-1]), mean_accuracy):
                measures.append(paired(_paired_values(groups, name, base, reduce)))
            lines.append(f"| {name} | " + " | ".join(
                format_interval(m) + ("" if m["reading"] == "no clear effect" else f" **{m['reading']}**")
                for m in measures) + " |")
        lines.append("")
    defaults = ", ".join(f"{k}={v}" for k, v in MTO_DEFAULTS.items())
    return lines + [f"The `-mto` presets' defaults are `{defaults}`; docs/results/README.md says how they follow "
                    "from these tables.", ""]


def _paired_values(groups: dict[str, list[Path]], name: str, base: str, reduce: Any) -> list[float]:
    """Per seed, ``reduce`` of the variant's k-NN curve minus the baseline's (seeds both have)."""
    def by_seed(group: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {seed_of(r.name): curve(read_metrics(r), "knn_val") for r in groups[group]}

    own, ref = by_seed(name), by_seed(base)
    return [reduce(own[s]) - reduce(ref[s]) for s in own if s in ref and own[s][0].size and ref[s][0].size]


def report_only(experiment: Experiment, path: Path, source: Path | None = None) -> Path:
    """Render the report again from recorded runs: those of ``source`` (a runs folder, or a
    folder of run copies), by default the committed copies ``docs/results/<experiment>-runs``."""
    source = source or Path("docs") / "results" / f"{experiment.name}-runs"
    if not source.is_dir():
        raise ValueError(f"{source} does not exist: there are no runs to report on; run the experiment "
                         "without --report-only first, or name its runs folder with --out")
    names = [(f"{v}-s{s}", run_config(experiment, v, s, [])) for v, s in plan_runs(experiment)]
    runs = [source / n for n, config in names if is_recorded(source / n, config)]
    if not runs:
        raise ValueError(f"{source} holds no finished run of the experiment yet ({names[0][0]}, ...)")
    return write_report(experiment, runs, path)
