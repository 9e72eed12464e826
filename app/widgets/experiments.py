"""The Curves page's view of the committed experiments (docs/results/*-runs): computed by
mto_core.experiments, drawn here."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from logic.labels import method_name, method_names

from mto_core.experiments import (committed_experiments, compare, compare_figure, families, family_figure,
                                  format_compare, format_interval, summarize_family)
from mto_core.experiments.registry import experiment_named
from mto_core.experiments.report import decision

from .charts import chart


@st.cache_data(show_spinner="Reading the experiment's runs...", max_entries=16)
def _summary(folder: str, base: str, method: str) -> dict:
    name = Path(folder).name[:-len("-runs")]
    groups = committed_experiments(Path(folder).parent)[name]
    experiment = experiment_named(name)
    threshold_epoch = experiment.threshold_epoch if experiment else 3.0
    return summarize_family(groups, base, method, Path(folder), threshold_epoch)


def _scale(runs: list[Path], seeds: int) -> str:
    """The scale a result holds at, in words, from the runs' own config."""
    from mto_core.config import RunConfig

    config = RunConfig.load(runs[0] / "config.json")
    m, d, t = config.model, config.data, config.train
    images = f"{d.train_limit:,}" if d.train_limit else "all the"
    return (f"The scale this holds at: a ViT of width {m.embed_dim} and depth {m.depth}, {images} Fashion-MNIST "
            f"images at {m.img_size} x {m.img_size}, {t.epochs} epochs, {seeds} paired seeds. Nothing here says "
            "what MTO does for a ViT-B on ImageNet over hundreds of epochs (the paper's scale).")


def show_committed_experiments(results: Path) -> None:
    """An experiment picker, then per family: mean curves with 95% bands and the floors, and the
    speed-up estimate (efficiency protocol), or the per-epoch comparison (older protocol)."""
    st.subheader("Committed experiments")
    experiments = committed_experiments(results)
    if not experiments:
        st.info("No experiment report under docs/results/ (run `mto experiment efficiency --preset cpu`).")
        return
    names = list(experiments)
    name = st.selectbox("Experiment", names, key="curves-experiment",
                        index=names.index("efficiency-cpu") if "efficiency-cpu" in names else 0,
                        help="Made by `mto experiment`; the report is docs/results/<experiment>.md.")
    groups = experiments[name]
    options = families(list(groups))
    base = st.radio("Family", list(options), horizontal=True, key="curves-experiment-base",
                    format_func=method_name,
                    help="Each method is compared with the baseline of its own family.")
    missing = [name for method, name in method_names().items() if method not in options]
    if missing:
        st.caption(f"This experiment has no runs of {' or '.join(missing)}: only the families above were run.")
    runs = [r for g in options[base] for r in groups[g]]
    protocol = any('"kind": "probe"' in (r / "metrics.jsonl").read_text() for r in runs)
    if protocol and len(options[base]) == 2:
        summary = _summary(str(results / f"{name}-runs"), base, options[base][1])
        chart(family_figure(summary), key="curves-experiment-plot")
        floors = summary["floors"]
        if "pixels_knn" in floors:
            top = max(max(summary["curves"][g]["mean"]) for g in options[base])
            below = top < floors["pixels_knn"]
            st.caption(f"The dotted line is the **raw-pixel floor**: k-NN on the images' pixels themselves, on the "
                       f"same probe sets ({floors['pixels_knn']:.3f}); the dashed one, the untrained encoders. "
                       + ("Every pre-trained curve here stays below the raw pixels: at this scale (a tiny ViT, 6 epochs "
                          "of 10,000 grey 28 x 28 images) the encoders are still learning what the pixels already "
                          "give a k-NN probe on Fashion-MNIST, not yet features that beat them; that is the regime "
                          "these runs measure, not the paper's (ViT-B, ImageNet, hundreds of epochs)."
                          if below else "Some curves pass the raw pixels: those encoders give a k-NN probe more than "
                                        "the pixels do."))
        sp = summary["speedup"]
        if sp.get("s") is not None:
            low, high = sp["ci"]
            reading = ("MTO learns faster" if low > 1 else "MTO learns slower" if high < 1 else
                       "no clear speed-up (the interval includes 1, which means no effect)")
            st.markdown(f"**Speed-up factor s = {sp['s']:.2f}, 95% interval [{low:.2f}, {high:.2f}]: {reading}.** "
                        f"By the report's decision rule: {decision('s', sp['s'], low, high)}.",
                        help="MTO at epoch t reaches what the baseline reaches at epoch s t; s = 1 is no "
                             "effect, s = 2 the paper's 'about half the epochs'. Read the interval, not the "
                             "point: the point alone can sit above 1 while the curves cross.")
            st.markdown(f"Over "
                        f"{len(summary['seeds'])} paired seeds. The smallest speed-up these runs could "
                        f"detect: **{sp['detectable']:.2f}**. Mean k-NN accuracy over the run, MTO minus "
                        f"baseline: {format_interval(summary['area'])} ({summary['area']['reading']}).")
            st.caption(_scale(runs, len(summary["seeds"])))
            wall = summary["wall"]
            if wall is not None:
                w_low, w_high = wall["ci"]
                st.markdown(f"**Wall-clock speed-up s_wall = s / c = {wall['s_wall']:.2f}, 95% interval "
                            f"[{w_low:.2f}, {w_high:.2f}]**: to reach the same k-NN accuracy, MTO took "
                            f"**{wall['time_ratio']:.2f}x** the baseline's time (an MTO step costs c = "
                            f"{wall['c']:.3f}x a baseline step, measured interleaved and stored with the runs).",
                            help="s counts epochs; a user pays in time. s_wall > 1: MTO reaches an accuracy "
                                 "sooner in time. The full report has the minutes to each threshold.")
            else:
                st.caption("No step cost stored with these runs (step_cost.json): no wall-clock speed-up.")
        else:
            st.info("No speed-up estimate, in epochs or in time: some run never reaches the thresholds above "
                    f"the random-init level. Mean k-NN accuracy over the run, MTO minus baseline: "
                    f"{format_interval(summary['area'])} ({summary['area']['reading']}).")
    else:
        result = compare(runs, baseline=base)
        chart(compare_figure(result), key="curves-experiment-plot")
        st.markdown(format_compare(result))
    st.caption(f"Every seed of every run the experiment made; the full report with its verdicts is "
               f"docs/results/{name}.md. Bands: 95% t-interval of the mean over seeds (efficiency protocol) "
               "or ± one sample std (older reports).")
