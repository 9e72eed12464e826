"""Train: a short baseline and MTO run side by side, live, from the browser."""

import copy
import json
import time

import numpy as np

import plotly.graph_objects as go
from plotly.subplots import make_subplots
import streamlit as st

from mto_core import ConfigError, DataError
from mto_core.config import RunConfig, apply_overrides, preset
from mto_core.data.sources import open_dataset
from mto_core.analysis.trace import SNAPSHOT_IMAGES, snapshot_steps, token_frames, trace_batch, trace_rows
from mto_core.data.photo_crops import HELD_OUT, held_out_names

from logic.emergence import alike_sentence, look_for, measure_figure, scatter_figure
from logic.pixels import paint_patches, upscale
from logic.labels import method_name, method_names
from server.classroom import app_runs, check_free_disk, keep_app_runs, prune_app_runs, record_app_run, train_knn_bank
from server.settings import is_teacher
from server.training_job import JobSlot, TrainingJob
from widgets.charts import chart, note, picture, styled
from widgets.models import RUNS
from widgets.page import page
from widgets.sidebar import visitor

page("Train", "🏋️")
RUN_COLOURS = ["#1f77b4", "#d62728"]
CHARTS_EVERY_S = 5.0  # the charts' refresh while the runs go (docs/performance.md: the Train page)
SCATTER_LAYER = 1  # the first block that sees mask tokens: where MTO's constraints weigh most
# the sizes this page trains: what each sees, and the settings that give it its data
SIZES = {"tiny": ("Fashion-MNIST, 28 x 28 grey", []),
         "tiny-rgb": ("photo crops, 32 x 32 colour",
                      ["data.dataset=photo-crops", f"data.held_out={','.join(HELD_OUT)}"])}
TERMS = {"loss": "total loss", "mim": "L_MIM (the method's loss)", "sing": "L_sing (data singularity)",
         "ent": "L_ent (attention entropy)", "rec": "L_rec (soft recalibration)"}


@st.cache_resource(max_entries=1)
def slot() -> JobSlot:
    """One training at a time for the whole server (a 2-core machine stays responsive); the others queue."""
    return JobSlot()


TRACE_EVERY = 5  # the first 20 points every 5 steps, then the spacing doubles (train.trace_spacing=doubling):
# a run stopped at any step has 20 to about 40 points and ends on one (docs/performance.md: the Train page)


def me() -> str:
    """This visitor's id (kept in the page's address, so a reload keeps it): the owner of the training
    it starts, who alone may stop it (besides the teacher)."""
    return visitor()


def teacher() -> bool:
    """The page was opened with the server's teacher token (``?teacher=``, printed by app/serve.py --public)."""
    return is_teacher(st.query_params.get("teacher"))


jobs = slot()
st.markdown("Trains the tiny model on Fashion-MNIST, or its colour twin (`tiny-rgb`) on crops of photos, "
            f"four photos held out ({', '.join(HELD_OUT)}): the baseline and its MTO variant side by side, "
            "same data, masks and seed. The runs are saved under `runs/` and appear on the other pages. "
            + (f"A Fashion-MNIST run ends with a quick k-NN probe (up to {train_knn_bank():,} training images as "
               f"the bank, up to {train_knn_bank() // 2:,} validation images), with an accuracy point on **Curves**; "
               if train_knn_bank() else
               "This server ends its runs without a k-NN probe (`app/serve.py --train-knn-bank 0`); ")
            + "photo crops have no classes, so a colour run has none (its "
            "reconstructions on **Reconstruct** sit beside two floors instead).")
st.caption("Only the tiny models train here: one step of a ViT-B at 224 x 224 takes seconds on a CPU, so a run "
           "that shows anything would take hours. Larger models (`mto train --size vit-b`, or a published one "
           "imported with `mto import`) open on every other page.")
st.caption("**One training at a time on this server; the others queue.** A training started while another runs "
           "waits in line, with its place shown, and starts by itself when the one before it ends (one place per "
           "visitor). Only the visitor who started a training (known by the `visitor=` id in this page's address, "
           "so a reload keeps it) can stop it, and the teacher, whose address `app/serve.py --public` prints "
           "(`?teacher=...`).")
kept = app_runs(RUNS)
st.caption(f"This server keeps the newest {keep_app_runs()} runs made on this page ({len(kept)} now) and removes "
           "older ones when a new training starts: never a run made with `mto train`, one that is training, or one "
           "a page has open. Your own runs come first in every picker.")

def where_now() -> tuple:
    """What the top of the page shows: which training runs, and this visitor's place in line."""
    return id(jobs.job), jobs.place(me()), jobs.busy


st.session_state["train-where"] = where_now()
started = False
queued = jobs.place(me())
mine_running = jobs.running_owner == me()
if teacher():
    st.info("Teacher: you can stop any training on this server.")
if queued or mine_running:
    # A form's submit button keeps its enabled look in the browser after a rerun, so while this
    # visitor's run goes or waits the settings give way to a plain, disabled Start button.
    st.button("Start training", disabled=True, key="train-start-busy",
              help="Disabled while your training runs or waits: one per visitor.")
else:
    # the last run's settings (the form is not drawn while a run goes, so its widgets forget them)
    last = st.session_state.get("train-settings", {})
    with st.form("train-form", enter_to_submit=False):  # Enter in a field starts nothing: only the button does
        c1, c2, c3 = st.columns(3)
        methods = list(method_names())
        method = c1.radio("Method", methods, horizontal=True, index=methods.index(last.get("method", "simmim"))
                          if last.get("method") in methods else 0, format_func=method_name)
        steps = c2.number_input("Steps", 10, 5000, last.get("steps", 100), step=10)
        batch = c3.select_slider("Batch size", [16, 32, 64, 128], value=last.get("batch", 64))
        st.markdown("**MTO parts** (the baseline has all of them off)")
        d1, d2, d3, d4 = st.columns(4)
        hard = d1.checkbox("Hard recalibration", last.get("hard", True))
        sing = d2.number_input("λ_sing", 0.0, 10.0, last.get("sing", 0.1), step=0.05, format="%.3f")
        ent = d3.number_input("λ_ent", 0.0, 10.0, last.get("ent", 0.01), step=0.01, format="%.3f")
        rec = d4.number_input("λ_rec (soft)", 0.0, 10.0, last.get("rec", 0.0), step=0.05, format="%.3f")
        shipped = st.checkbox("Use the small shipped data subset (faster start)", last.get("shipped", False),
                              help="Fashion-MNIST only: the photo crops are cut from photos that ship with "
                                   "scikit-image and scikit-learn.")
        sizes = list(SIZES)
        size = st.radio("Model", sizes, horizontal=True, key="train-size",
                        index=sizes.index(last.get("size", "tiny")) if last.get("size") in sizes else 0,
                        format_func=lambda k: f"{k}: {SIZES[k][0]}")
        started = st.form_submit_button("Queue my training" if jobs.busy else "Start training",
                                        help="Another training runs: yours waits in line and starts when it "
                                             "ends." if jobs.busy else None)

if started:
    st.session_state["train-settings"] = dict(method=method, steps=int(steps), batch=int(batch), hard=hard,
                                              sing=float(sing), ent=float(ent), rec=float(rec), shipped=shipped,
                                              size=size)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    common = [f"train.max_steps={int(steps)}", "train.epochs=0", f"train.batch_size={int(batch)}",
              "train.log_every=5", "train.warmup_fraction=0.1", f"train.trace_every={TRACE_EVERY}",
              "train.trace_spacing=doubling", "train.keep_checkpoints=1"
              ] + SIZES[size][1] + (["data.root=shipped"] if shipped and size == "tiny" else [])
    mto = [f"mto.hard_recalibration={'true' if hard else 'false'}", f"mto.singularity_weight={sing}",
           f"mto.entropy_weight={ent}", f"mto.recalibration_weight={rec}"]
    full = check_free_disk(RUNS)
    if full:
        st.error(f"Cannot start: {full}")
    else:
        try:
            owner = me()
            names = {"baseline": f"app-{stamp}-{method}", "MTO": f"app-{stamp}-{method}-mto"}
            runs = {"baseline": (apply_overrides(preset(method, size), common), RUNS / names["baseline"]),
                    "MTO": (apply_overrides(preset(f"{method}-mto", size), common + mto), RUNS / names["MTO"])}
            with st.spinner("Preparing the training images…"):  # photo crops: cut once per server
                job = TrainingJob(runs, owner=owner)

            def make_room() -> None:
                """Room for the two new runs within the bound, the oldest app runs removed first; then
                the new runs recorded as this visitor's (under the slot's lock: no other start between)."""
                prune_app_runs(RUNS, keep=max(0, keep_app_runs() - len(runs)),
                               busy={run_dir for _, run_dir in runs.values()})
                for _, run_dir in runs.values():
                    record_app_run(run_dir, owner)

            if jobs.submit(job, before=make_room) < 0:
                st.error("Cannot start: you already have a training running or waiting; stop it or leave the "
                         "queue first.")
            else:
                st.rerun()  # redraw: the running job (or this one's place in line) and a disabled Start
        except (ConfigError, DataError) as error:
            st.error(f"Cannot start: {error}")

if queued:
    st.info(f"Your training is queued: place {queued} of {len(jobs.queue)}. It starts by itself when the "
            "training before it ends; keep this page open (or come back to this address) to see it.")
    st.button("Leave the queue", key="train-leave", on_click=jobs.leave, args=(me(),))

if jobs.busy:
    job = jobs.job
    running = ", ".join(f"{name}: `{state.run_dir.name}`" for name, state in job.runs.items())
    st.markdown(f"Training now: {running}.")
    mto_run = job.runs["MTO"]
    m, t = mto_run.config.mto, mto_run.config.train
    st.caption(f"Settings: the {mto_run.config.model.size} model on {SIZES.get(mto_run.config.model.size, ('its data',))[0]}, "
               f"{mto_run.total_steps} steps, batch {t.batch_size}; the MTO run with hard "
               f"recalibration {'on' if m.hard_recalibration else 'off'}, λ_sing {m.singularity_weight:g}, "
               f"λ_ent {m.entropy_weight:g}, λ_rec {m.recalibration_weight:g}."
               + (f" Waiting after it: {len(jobs.queue)}." if jobs.queue else ""))
    if job.owner == me() or teacher():
        st.button("Stop", key="train-stop", on_click=job.stop, args=(me(), teacher()), disabled=job.stopped,
                  type="primary",
                  help="Stops both runs at the same step, so that their k-NN points compare like with like: "
                       "the run that is ahead stops at once, the other catches up to it (a few seconds). "
                       "Each keeps a checkpoint and gets its k-NN point.")
    else:
        st.info("This training was started by another visitor: you can watch it here; only they (or the "
                "teacher) can stop it. " + ("Queue yours with the button above: it starts when this one ends."
                                            if not queued else ""))


@st.cache_resource(show_spinner=False, max_entries=8)
def live_layout(panels: tuple[str, ...]) -> dict:
    """The empty 2 x 3 grid of live_figure for these panels, as a plain dict (made once)."""
    fig = make_subplots(rows=2, cols=3, subplot_titles=[TERMS.get(t, "images/s") for t in panels],
                        horizontal_spacing=0.09, vertical_spacing=0.18)
    for i in range(len(panels)):
        row, col = divmod(i, 3)
        if row == 1 or i + 3 >= len(panels):
            fig.update_xaxes(title="step", row=row + 1, col=col + 1)
    fig.update_layout(height=580, margin=dict(l=60, r=10, t=70, b=50),
                      legend=dict(orientation="h", yanchor="bottom", y=1.07, x=0))
    return fig.to_dict()["layout"]


def live_figure(rows_by_run: dict[str, list[dict]]) -> go.Figure | None:
    """One figure, a 2 x 3 grid: every loss term the runs log, and images/s. Built from the rows
    directly (no data frame, no Plotly Express, the lines as plain dicts on a grid made once): it
    is drawn anew at every logged row while training runs."""
    panels = [t for t in TERMS if any(t in r for rows in rows_by_run.values() for r in rows)] + ["images_per_s"]
    train = {name: [r for r in rows if r.get("kind") == "train"] for name, rows in rows_by_run.items()}
    if not any(train.values()):
        return None
    panels = panels[:6]
    data = []
    for i, term in enumerate(panels):
        axis = "" if i == 0 else str(i + 1)  # subplot i + 1 of the grid: x, y, then x2, y2, ...
        for (name, rows), colour in zip(train.items(), RUN_COLOURS):
            points = [(r["step"], r[term]) for r in rows if r.get(term) is not None]
            data.append(dict(type="scatter", x=[p[0] for p in points], y=[p[1] for p in points],
                             mode="lines+markers", name=name, legendgroup=name, showlegend=i == 0,
                             line=dict(color=colour), marker=dict(size=5),  # a marker: the first row alone has no line
                             xaxis=f"x{axis}", yaxis=f"y{axis}"))
    return go.Figure({"data": data, "layout": copy.deepcopy(live_layout(tuple(panels)))}, _validate=False)


@st.cache_data(show_spinner=False, max_entries=8)
def frames_of(run_dir: str, steps: tuple[int, ...]):
    """The run's snapshot tokens of SCATTER_LAYER on its plane (``steps``: the snapshots there are)."""
    return token_frames(run_dir, SCATTER_LAYER, up_to=steps[-1]) if steps else None


def kept(key: str, signature: tuple, build) -> go.Figure | None:
    """The styled figure ``build()`` makes (or None), built again only when ``signature`` changes
    (kept in this browser session). Between two new points the page sends the same figure with
    the same ``datarevision``: neither the server nor the browser draws it anew, and the CPU
    stays with the training."""
    store = st.session_state.setdefault("train-figures", {})
    if key not in store or store[key][0] != signature:
        fig = build()
        if fig is not None:
            fig.update_layout(datarevision=str(hash(signature)))
        store[key] = (signature, None if fig is None else styled(fig))
    return store[key][1]


def emergence(job, rows: dict[str, list[dict]], replay: bool) -> None:
    """The masked tokens' measures over the steps and their scatter, the baseline beside MTO."""
    st.subheader("The masked tokens, as they emerge")
    runs = tuple(str(state.run_dir) for state in job.runs.values())
    figure = kept("train-emergence", (runs, tuple(len(trace_rows(r)) for r in rows.values())),
                  lambda: measure_figure(rows))
    if figure is None:
        st.caption("The first measures come at step 0, a few seconds after the start.")
        return
    sentence = alike_sentence(rows, SCATTER_LAYER)
    if sentence:
        st.markdown(f"**{sentence}**")
    st.markdown(look_for(max(state.step for state in job.runs.values())))
    chart(figure, key="train-emergence", ready=True)
    steps = {name: tuple(snapshot_steps(state.run_dir)) for name, state in job.runs.items()}
    scatter = kept("train-scatter", (runs, tuple(steps.values()), replay), lambda: scatter_figure(
        {name: frames_of(str(state.run_dir), steps[name]) for name, state in job.runs.items()},
        SCATTER_LAYER, animate=replay))
    config = next(iter(job.runs.values())).config
    photos = config.data.dataset == "photo-crops"
    if scatter is not None:
        chart(scatter, key="train-scatter-replay" if replay else "train-scatter", ready=True)
        st.caption(
            f"Layer {SCATTER_LAYER}'s patch tokens of 4 fixed held-out images under one fixed mask, the same for "
            + ("both runs (crops of the photos held out of training, never seen: "
               f"{', '.join(held_out_names(config.data.held_out))}; drawn below)." if photos else "both runs.")
            + " Each run has ONE plane for all its frames: the first two principal axes of its snapshots' "
            "tokens pooled, so a token that moves between frames has changed, not the axes (while the run goes "
            "the plane is refitted as snapshots arrive; once it has ended the plane is fixed). Each panel's axes "
            "hold every frame. The two runs' planes are their own: compare how the groups part, not positions."
            + (" Press ▶ Play or drag the step slider to replay from step 0." if replay else ""))
    if photos:
        for col, (crop, masked, name) in zip(st.columns(SNAPSHOT_IMAGES), traced_photos(config.to_json())):
            picture(col, crop, caption=f"a crop of {name} · never seen in training")
            picture(col, masked, caption="its mask in the scatter (hidden patches magenta)")


@st.cache_data(show_spinner=False, max_entries=4)
def traced_photos(config_json: str) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """The crops whose tokens a run's scatter shows (the run's config as JSON), drawn large, whole and with
    their hidden patches painted; each with the held-out photo it was cut from."""
    config = RunConfig.from_dict(json.loads(config_json))
    images, mask = trace_batch(config)
    data = open_dataset(config.data, config.model, "val")
    m = config.model
    size = 6 * m.img_size  # four in a row: each a quarter of the page
    return [(upscale(image, size), upscale(paint_patches(image.float() / 255, hidden, m.patch_size), size),
             data.classes[int(data.labels[i])])
            for i, (image, hidden) in enumerate(zip(images[:SNAPSHOT_IMAGES], mask[:SNAPSHOT_IMAGES]))]


@st.fragment(run_every=2.5)
def live() -> None:
    """Progress, status and errors every 2.5 s; at the end, where the runs were saved."""
    job = jobs.job
    if st.session_state.get("train-where") != where_now():
        st.rerun(scope="app")  # the queue moved or another training started: Start, Stop and the place anew
    if job is None:
        st.info("No training yet. Choose the settings above and start one.")
        return
    running = job.running
    st.progress(job.progress, text=job.status())
    for name, state in job.runs.items():
        if state.error:
            st.error(f"{name}: {state.error}")
    if not running:
        done = [f"`{s.run_dir.relative_to(RUNS.parent)}`"
                + (f" (k-NN {s.knn:.3f} ± {s.knn_margin:.3f} after {s.step} steps)" if s.knn is not None else "")
                for s in job.runs.values()]
        st.success("Saved: " + ", ".join(done))
        if all(s.knn is not None for s in job.runs.values()):
            st.caption(f"± : 95% interval of each accuracy over its {max(s.knn_images for s in job.runs.values()):,} "
                       "validation images (binomial). A difference between the two runs smaller than that is "
                       "not evidence that either learns better; the **Curves** page has the committed "
                       "multi-seed experiments.")
        skipped = {s.no_probe for s in job.runs.values() if s.no_probe}
        if skipped:
            st.caption(f"No k-NN point for these runs: {skipped.pop()}. The **Reconstruct** page puts their "
                       "reconstructions of the held-out photos beside two fills that learn nothing.")
        if st.session_state.get("train-was-running"):
            st.session_state["train-was-running"] = False
            st.rerun(scope="app")  # Start enabled again, Stop gone, the replay drawn
    else:
        st.session_state["train-was-running"] = True


@st.fragment(run_every=CHARTS_EVERY_S)
def charts() -> None:
    """The loss curves and the emergence charts. A chart whose data changed is drawn anew by the
    browser (Streamlit gives it a new element), CPU taken from training: so they refresh every
    CHARTS_EVERY_S, and only when a point has come (docs/performance.md: the Train page)."""
    job = jobs.job
    if job is None:
        return
    rows = {name: list(state.rows) for name, state in job.runs.items()}
    note("runs", "runs " + ", ".join(f"{name}: {state.run_dir.name}" for name, state in job.runs.items()))
    fig = kept("train-live", (tuple(str(s.run_dir) for s in job.runs.values()), tuple(map(len, rows.values()))),
               lambda: live_figure(rows))
    if fig is not None:
        chart(fig, key="train-live", ready=True)
    emergence(job, rows, replay=not job.running)


live()
charts()
