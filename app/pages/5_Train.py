"""Train: a short baseline and MTO run side by side, live, from the browser."""

import time

import plotly.express as px
import streamlit as st

from common import RUNS, chart, page, train_frame

from mto_core import ConfigError, DataError
from mto_core.config import apply_overrides, preset
from mto_core.jobs import JobSlot, TrainingJob

page("Train", "🏋️")
TERMS = {"loss": "total loss", "mim": "L_MIM (reconstruction)", "sing": "L_sing (data singularity)",
         "ent": "L_ent (attention entropy)", "rec": "L_rec (soft recalibration)"}


@st.cache_resource
def slot() -> JobSlot:
    """One training at a time for the whole server: a 2-core machine stays responsive."""
    return JobSlot()


jobs = slot()
st.markdown("Trains the tiny model on Fashion-MNIST: the baseline and its MTO variant side by side, "
            "same data, masks and seed. The runs are saved under `runs/`, end with a quick k-NN probe "
            "(2,000 training images as the bank, 1,000 validation images) and appear on the other pages, "
            "with an accuracy point on **Curves**.")

started = False
if jobs.busy:
    # A form's submit button keeps its enabled look in the browser after a rerun, so while a run
    # goes the settings give way to a plain, disabled Start button.
    running = ", ".join(f"{name}: `{state.run_dir.name}`" for name, state in jobs.job.runs.items())
    st.markdown(f"Training now: {running}.")
    st.button("Start training", disabled=True, key="train-start-busy",
              help="Disabled while a training runs on this server.")
else:
    with st.form("train-form"):
        c1, c2, c3 = st.columns(3)
        method = c1.radio("Method", ["simmim", "mae"], horizontal=True,
                          format_func=lambda m: {"simmim": "SimMIM", "mae": "MAE"}[m])
        steps = c2.number_input("Steps", 10, 5000, 100, step=10)
        batch = c3.select_slider("Batch size", [16, 32, 64, 128], value=64)
        st.markdown("**MTO parts** (the baseline has all of them off)")
        d1, d2, d3, d4 = st.columns(4)
        hard = d1.checkbox("Hard recalibration", True)
        sing = d2.number_input("λ_sing", 0.0, 10.0, 0.1, step=0.05, format="%.3f")
        ent = d3.number_input("λ_ent", 0.0, 10.0, 0.01, step=0.01, format="%.3f")
        rec = d4.number_input("λ_rec (soft)", 0.0, 10.0, 0.0, step=0.05, format="%.3f")
        shipped = st.checkbox("Use the small shipped data subset (faster start)", False)
        started = st.form_submit_button("Start training")

if started and not jobs.busy:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common = [f"train.max_steps={int(steps)}", "train.epochs=0", f"train.batch_size={int(batch)}",
              "train.log_every=5", "train.warmup_fraction=0.1"] + (["data.root=shipped"] if shipped else [])
    mto = [f"mto.hard_recalibration={'true' if hard else 'false'}", f"mto.singularity_weight={sing}",
           f"mto.entropy_weight={ent}", f"mto.recalibration_weight={rec}"]
    try:
        runs = {"baseline": (apply_overrides(preset(method), common), RUNS / f"app-{stamp}-{method}"),
                "MTO": (apply_overrides(preset(f"{method}-mto"), common + mto), RUNS / f"app-{stamp}-{method}-mto")}
        jobs.try_start(TrainingJob(runs))  # False if another started first: that one is shown
        st.rerun()  # redraw: the running job's runs and a disabled Start instead of the form
    except (ConfigError, DataError) as error:
        st.error(f"Cannot start: {error}")

if jobs.busy:
    job = jobs.job
    st.button("Stop", key="train-stop", on_click=job.stop, disabled=job.stopped, type="primary",
              help="Stops both runs within a second or two; each keeps a checkpoint and gets its k-NN point.")


@st.fragment(run_every=1.0)
def live() -> None:
    job = jobs.job
    if job is None:
        st.info("No training yet. Choose the settings above and start one.")
        return
    running = job.running
    st.progress(job.progress, text=job.status())
    for name, state in job.runs.items():
        if state.error:
            st.error(f"{name}: {state.error}")
    data = train_frame({name: state.rows for name, state in job.runs.items()})
    if data is not None:
        terms = [t for t in TERMS if t in data]
        long = data.melt(id_vars=["step", "run"], value_vars=terms, var_name="term", value_name="value").dropna()
        long["term"] = long["term"].map(TERMS)
        fig = px.line(long, x="step", y="value", color="run", facet_col="term", facet_col_wrap=3,
                      facet_row_spacing=0.12, facet_col_spacing=0.07, height=300 * ((len(terms) + 2) // 3),
                      category_orders={"term": [TERMS[t] for t in terms]},
                      color_discrete_sequence=["#1f77b4", "#d62728"])
        fig.update_yaxes(matches=None, showticklabels=True, title="")
        fig.update_xaxes(showticklabels=True)
        fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
        fig.update_layout(legend_title_text="", margin=dict(l=60, r=10, t=30, b=50))
        chart(fig, key="train-terms")
        speed = data.dropna(subset=["images_per_s"]) if "images_per_s" in data else None
        if speed is not None and len(speed):
            fig = px.line(speed, x="step", y="images_per_s", color="run", height=260,
                          color_discrete_sequence=["#1f77b4", "#d62728"])
            fig.update_layout(yaxis_title="images/s", legend_title_text="", margin=dict(l=60, r=10, t=10, b=50))
            chart(fig, key="train-speed")
    if not running:
        done = [f"`{s.run_dir.relative_to(RUNS.parent)}`" + (f" (k-NN {s.knn:.3f})" if s.knn is not None else "")
                for s in job.runs.values()]
        st.success("Saved: " + ", ".join(done))
        if st.session_state.get("train-was-running"):
            st.session_state["train-was-running"] = False
            st.rerun(scope="app")  # Start enabled again, Stop gone
    else:
        st.session_state["train-was-running"] = True


live()
