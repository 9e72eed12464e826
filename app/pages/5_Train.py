"""Train: a short baseline and MTO run side by side, live, from the browser."""

import time

import plotly.express as px
import streamlit as st

from common import RUNS, page, train_frame

from mto_core import ConfigError, DataError
from mto_core.config import apply_overrides, preset
from mto_core.jobs import JobSlot, TrainingJob

page("Train", "🏋️")


@st.cache_resource
def slot() -> JobSlot:
    """One training at a time for the whole server: a 2-core machine stays responsive."""
    return JobSlot()


jobs = slot()
st.markdown("Trains the tiny model on Fashion-MNIST: the baseline and its MTO variant side by side, "
            "same data, masks and seed. The runs are saved under `runs/` and appear on the other pages.")

with st.form("train-form"):
    c1, c2, c3 = st.columns(3)
    method = c1.radio("Method", ["simmim", "mae"], horizontal=True)
    steps = c2.number_input("Steps", 10, 5000, 100, step=10)
    batch = c3.select_slider("Batch size", [16, 32, 64, 128], value=64)
    st.markdown("**MTO parts** (the baseline has all of them off)")
    d1, d2, d3, d4 = st.columns(4)
    hard = d1.checkbox("Hard recalibration", True)
    sing = d2.number_input("λ_sing", 0.0, 10.0, 0.1, step=0.05, format="%.3f")
    ent = d3.number_input("λ_ent", 0.0, 10.0, 0.01, step=0.01, format="%.3f")
    rec = d4.number_input("λ_rec (soft)", 0.0, 10.0, 0.0, step=0.05, format="%.3f")
    shipped = st.checkbox("Use the small shipped data subset (faster start)", False)
    started = st.form_submit_button("Start training", disabled=jobs.busy)

if started:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common = [f"train.max_steps={int(steps)}", "train.epochs=0", f"train.batch_size={int(batch)}",
              "train.log_every=5", "train.warmup_fraction=0.1"] + (["data.root=shipped"] if shipped else [])
    mto = [f"mto.hard_recalibration={'true' if hard else 'false'}", f"mto.singularity_weight={sing}",
           f"mto.entropy_weight={ent}", f"mto.recalibration_weight={rec}"]
    try:
        runs = {"baseline": (apply_overrides(preset(method), common), RUNS / f"app-{stamp}-{method}"),
                "MTO": (apply_overrides(preset(f"{method}-mto"), common + mto), RUNS / f"app-{stamp}-{method}-mto")}
        if not jobs.try_start(TrainingJob(runs)):
            st.warning("Another training is running on this server; wait for it to finish.")
    except (ConfigError, DataError) as error:
        st.error(f"Cannot start: {error}")


@st.fragment(run_every=1.0)
def live() -> None:
    job = jobs.job
    if job is None:
        st.info("No training yet. Choose the settings above and start one.")
        return
    running = job.running
    st.progress(job.progress, text=f"{'training' if running else 'finished'}: {100 * job.progress:.0f}%")
    if running and st.button("Stop", key="train-stop", help="Stops both runs; each keeps a checkpoint."):
        job.stop()
    for name, state in job.runs.items():
        if state.error:
            st.error(f"{name}: {state.error}")
    data = train_frame({name: state.rows for name, state in job.runs.items()})
    if data is not None:
        c1, c2 = st.columns(2)
        c1.plotly_chart(px.line(data, x="step", y="loss", color="run", height=320, title="total loss"),
                        key="train-loss")
        c2.plotly_chart(px.line(data, x="step", y="mim", color="run", height=320,
                                title="reconstruction loss (L_MIM)"), key="train-mim")
    if not running:
        st.success("Saved: " + ", ".join(f"`{s.run_dir.relative_to(RUNS.parent)}`" for s in job.runs.values()))


if jobs.busy and not started:
    st.info("A training is running on this server; its progress is shown below.")
live()
