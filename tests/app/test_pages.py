"""The pages, run by Streamlit's AppTest on the shipped checkpoints, on grey and RGB models
(alone and in pairs): what each draws and says."""

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ..conftest import make_rgb_checkpoint
from .apptest import ALONE_OPTION, APP, run, specs, texts, values


def check_charts(at: AppTest) -> None:
    """Every chart has a trace, a readable height, and none of the colours #000001..#000040 that
    Streamlit's browser code swaps for its theme's (Magma's #000004 turned zero error pink)."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        assert spec["data"], spec["layout"].get("title")
        assert spec["layout"].get("height", 450) >= 120
        assert not chart.proto.theme, spec["layout"].get("title")
        assert not re.search(r'"#0000(?:[0-3][0-9]|40)"', json.dumps(spec)), spec["layout"].get("title")


def _png(image, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, **{"format": "PNG", **options})
    return buffer.getvalue()


@pytest.fixture(scope="module")
def traced_pair():
    """A small traced baseline and MTO run in runs/ (removed afterwards): their labels."""
    from mto_core.training.engine import train

    from ..conftest import small_config

    labels = []
    for name in ("simmim", "simmim-mto"):
        run_dir = APP.parent / "runs" / f"app-traced-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        train(small_config(name, "data.train_limit=256", "train.batch_size=32", "train.epochs=1",
                           "train.trace_every=4"), run_dir, progress=False)
        labels.append(f"runs/app-traced-{name}")
    yield labels
    for label in labels:
        shutil.rmtree(APP.parent / label, ignore_errors=True)


METHOD_PAGES = {"Home.py": "learn", "pages/1_Reconstruct.py": "recon", "pages/2_Tokens.py": "tokens",
                "pages/3_Attention.py": "attn"}


def _rank_maps(at: AppTest) -> list[dict]:
    return [s for s in specs(at) if "feature match per masked patch" in str(s["layout"].get("title"))]


def _captions(at: AppTest) -> list[str]:
    return [img.caption for element in at.get("image") for img in element.proto.imgs]


ROOT = APP.parent


RUNS = ROOT / "runs"


PAGES = {"Home.py": "learn", "pages/1_Reconstruct.py": "recon", "pages/2_Tokens.py": "tokens",
         "pages/3_Attention.py": "attn"}


@pytest.fixture(scope="module")
def rgb():
    """Randomly initialised 224 x 224 RGB models under runs/: MAE and SimMIM, each with and without MTO."""
    made = {name: make_rgb_checkpoint(RUNS / f"zz-rgb-{name}", name)
            for name in ("mae", "mae-mto", "simmim", "simmim-mto")}
    yield {name: f"runs/{path.name}" for name, path in made.items()}
    for path in made.values():
        shutil.rmtree(path, ignore_errors=True)


def shape(z) -> tuple[int, ...]:
    """The shape of a Plotly array as sent (base64 with its shape, or nested lists)."""
    if isinstance(z, dict):
        return tuple(int(v) for v in z["shape"].split(","))
    return (len(z), len(z[0]))


def said_now(at) -> str:
    return texts(at) + "".join(m.value for m in at.markdown)


def choose(at, key: str, method: str, first: str, second: str = ALONE_OPTION):
    at.sidebar.radio(key=f"{key}-method").set_value(method).run()
    at.sidebar.selectbox(key=f"{key}-base-{method}").set_value(first).run()
    at.sidebar.selectbox(key=f"{key}-mto-{method}").set_value(second).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _z(trace) -> list[float]:
    z = trace["z"]
    flat = [v for row in z for v in (values(row) if isinstance(row, dict) else row)] if isinstance(z, list) else values(z)
    return [v for v in flat if v is not None and v == v]


def test_learn_page_masks_follow_the_ratio():
    at = run("Home.py")  # the entry point: its first page is Learn
    check_charts(at)
    assert "Data singularity" in texts(at) and "mask token" in texts(at)
    def images():
        return [str(i.proto) for i in at.get("image")]

    before = images()
    assert any("29 of 49 patches hidden" in i for i in before)
    at.slider(key="learn-ratio").set_value(0.3).run()
    assert not at.exception
    assert any("15 of 49 patches hidden" in i for i in images()) and images() != before


def test_reconstruct_page_reports_errors_that_change_with_the_mask():
    at = run("pages/1_Reconstruct.py")
    check_charts(at)
    assert "masked-patch MSE" in texts(at) and "29 of 49 patches hidden" in texts(at)
    first = [c.value for c in at.caption]
    at.slider(key="recon-ratio").set_value(0.8).run()
    assert not at.exception
    assert "39 of 49 patches hidden" in texts(at) and [c.value for c in at.caption] != first
    at.radio(key="recon-kind").set_value("hand-edited").run()
    assert not at.exception and "Click a patch" in texts(at)


def test_reconstruct_page_asks_for_an_upload():
    at = run("pages/1_Reconstruct.py")
    at.radio(key="recon-source").set_value("upload").run()
    assert not at.exception and "Upload an image" in at.info[0].value


def test_tokens_page_changes_with_the_layer():
    at = run("pages/2_Tokens.py")
    def charts():
        return " ".join(str(chart.proto) for chart in at.get("plotly_chart"))

    first = charts()
    assert "· layer 1" in texts(at)  # each scatter's title, above it (the chart's toolbar would cover its own)
    at.slider(key="tokens-layer").set_value(3).run()
    assert not at.exception and "· layer 3" in texts(at) and "· layer 1" not in texts(at) and charts() != first


def test_attention_page_changes_with_the_mask():
    at = run("pages/3_Attention.py")
    assert "Query: patch" in texts(at)
    before = texts(at)
    at.number_input(key="attn-seed").set_value(5).run()
    assert not at.exception and texts(at) != before


def test_curves_page_shows_rauc_of_the_shipped_runs():
    at = run("pages/4_Curves.py")
    assert len(at.dataframe) == 1 and "RAUC" in at.dataframe[0].value.columns
    at.multiselect(key="curves-runs").set_value(["checkpoints/simmim"]).run()
    assert not at.exception and len(at.dataframe) == 0


def test_curves_page_shows_the_committed_efficiency_experiment():
    at = run("pages/4_Curves.py")
    assert at.selectbox(key="curves-experiment").value == "efficiency-cpu"  # the default
    loss = [s for s in specs(at) if any(t.get("legendgroup") == "mae-mto" for t in s["data"])
            and any("facet" not in str(a) for a in s["layout"].get("annotations", [{}]))]
    colours = {t["line"]["color"] for s in loss for t in s["data"] if t.get("mode", "lines") == "lines"}
    assert len(colours) >= 4, colours  # one colour per run, not every line near-black
    simmim = str(at.get("plotly_chart")[-1].proto)
    assert "simmim-mto vs simmim" in simmim and "raw pixels" in simmim and "random init" in simmim
    at.radio(key="curves-experiment-base").set_value("mae").run()
    assert not at.exception and "mae-mto vs mae" in str(at.get("plotly_chart")[-1].proto)
    found = re.search(r"Speed-up factor s = ([\d.]+), 95% interval \[([\d.]+), ([\d.]+)\]: ([^.]+)", texts(at))
    assert found and float(found[1]) > 0 and "paired seeds" in texts(at), texts(at)
    low, high = float(found[2]), float(found[3])  # the headline reads the interval, not the point
    assert found[4].startswith("MTO learns faster" if low > 1 else "MTO learns slower" if high < 1
                               else "no clear speed-up"), found[0]
    wall = re.search(r"Wall-clock speed-up s_wall = s / c = ([\d.]+), 95% interval .*MTO took \*\*([\d.]+)x\*\*", texts(at))
    assert wall and abs(float(wall[1]) * float(wall[2]) - 1) < 0.02, texts(at)  # s_wall and the time ratio agree
    at.selectbox(key="curves-experiment").set_value("ablation-cpu").run()
    at.radio(key="curves-experiment-base").set_value("mae").run()
    assert not at.exception and "| mae-entropy | 2 |" in texts(at) and "| entropy |" not in texts(at)


def test_sidebar_choices_hold_on_the_next_page():
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=180)
    at.run()
    at.radio(key="learn-method").set_value("mae").run()
    at.slider(key="learn-ratio").set_value(0.75).run()
    at.number_input(key="learn-seed").set_value(7).run()
    at.switch_page("pages/1_Reconstruct.py").run()
    assert not at.exception
    assert at.radio(key="recon-method").value == "mae"
    assert at.slider(key="recon-ratio").value == 0.75 and at.number_input(key="recon-seed").value == 7
    assert [box.value for box in at.sidebar.selectbox] == ["checkpoints/mae", "checkpoints/mae-mto"]
    at.selectbox(key="recon-mto-mae").set_value(ALONE_OPTION).run()  # a checkpoint choice holds too
    at.switch_page("pages/3_Attention.py").run()
    assert not at.exception and at.selectbox(key="attn-mto-mae").value == ALONE_OPTION


def test_curves_page_gives_each_run_one_colour_on_every_chart():
    at = run("pages/4_Curves.py")
    accuracy, loss = specs(at)[0], specs(at)[1]
    first = {t["name"]: t["line"]["color"] for t in accuracy["data"] if t.get("name") and t.get("meta") != "target"}
    second = {t["name"]: t["line"]["color"] for t in loss["data"] if t.get("name")}
    # the eight grey checkpoints have k-NN points; the four colour ones (photo crops, no classes) only losses
    assert len(first) == 8 and first.items() <= second.items() and len(second) == 12, (first, second)
    assert len(set(second.values())) == 12
    table = at.dataframe[0].value
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()


def test_train_page_runs_baseline_and_mto():
    at = run("pages/5_Train.py")
    assert "No training yet" in at.info[0].value
    assert "k-NN probe (up to 200 training images as the bank, up to 100 validation images)" in texts(at)  # the server's
    at.number_input[0].set_value(10)
    at.select_slider[0].set_value(16)
    at.checkbox[1].check()  # the shipped subset
    at.button[0].click().run()
    assert not at.exception
    deadline = time.time() + 300
    while time.time() < deadline and not at.success:
        time.sleep(1)
        at.run()
    assert not at.exception and at.success and "runs/app-" in at.success[0].value
    live = [s for s in specs(at) if any(a.get("text") == "images/s" for a in s["layout"].get("annotations", []))]
    panels = {a["text"] for a in live[0]["layout"]["annotations"]}
    assert {"total loss", "L_MIM (the method's loss)", "L_sing (data singularity)", "L_ent (attention entropy)",
            "images/s"} <= panels  # every term MTO logs, and the speed
    assert {t["name"] for t in live[0]["data"]} == {"baseline", "MTO"}
    emergence = [s for s in specs(at) if any("singularity score S" in a.get("text", "")
                                             for a in s["layout"].get("annotations", []))][0]
    titles = {a["text"] for a in emergence["layout"]["annotations"]}
    assert {"baseline: singularity score S", "MTO: silhouette, masked vs visible",
            "MTO: visible-to-masked attention a_VM", "baseline: masked rows' attention entropy"} <= titles
    for panel in ("", "2"):  # the baseline's and MTO's S panels: a line per layer, steps 0, 5 and 10
        lines = [t for t in emergence["data"] if t.get("xaxis", "x") == f"x{panel}"]
        assert len(lines) == 7 and all(values(t["x"]) == [0, 5, 10] for t in lines)
    replay = [s for s in specs(at) if s.get("frames")][0]
    assert [f["name"] for f in replay["frames"]] == ["0", "5", "10"] and replay["layout"]["sliders"]
    assert len(replay["frames"][-1]["data"]) == 4  # masked and visible, both runs
    assert "PCA" not in texts(at) or "principal axes" in texts(at)
    assert re.search(r"At step 10, layer 1: (the two runs look alike|MTO.s masked|the baseline.s|the two measures|neither run)",
                     texts(at))


def test_a_broken_checkpoint_gives_a_message_not_a_crash():
    broken = APP.parent / "runs" / "zz-broken-test-checkpoint"
    broken.mkdir(parents=True, exist_ok=True)
    try:
        (broken / "model.safetensors").write_bytes(b"\x00not safetensors")
        (broken / "config.json").write_text("{}")
        at = run("pages/1_Reconstruct.py")
        at.sidebar.selectbox(key="recon-base-simmim").set_value("runs/zz-broken-test-checkpoint").run()
        assert not at.exception
        assert any("Cannot open runs/zz-broken-test-checkpoint" in e.value for e in at.error)
    finally:
        for file in broken.iterdir():
            file.unlink()
        broken.rmdir()


def test_learn_page_draws_every_figure_at_a_readable_size():
    at = run("Home.py")
    titles = [str(s["layout"].get("title", {}).get("text", "")) for s in specs(at)] + \
        [str(a.get("text", "")) for s in specs(at) for a in s["layout"].get("annotations", [])]
    assert any("SimMIM (baseline)" in t for t in titles)  # section 2: the token rows, one per checkpoint
    assert any(t == "with recalibration" for t in titles) and any(t == "without recalibration" for t in titles)
    recal = [s for s in specs(at) if any(a.get("text") == "with recalibration" for a in s["layout"].get("annotations", []))]
    assert len(recal) == 1 and len(recal[0]["data"]) == 2  # before and after on one shared scale
    assert all(trace["coloraxis"] == "coloraxis" for trace in recal[0]["data"])
    assert all(s["layout"].get("height", 450) >= 300 for s in specs(at))
    assert "docs/mto-spec.md" in " ".join(e.label for e in at.expander)
    spec = [m.value for m in at.markdown if "what comes from the paper" in m.value][0]
    assert not re.search(r"^#{1,2} ", spec, flags=re.MULTILINE)  # no heading as large as the page's title
    tall = [c.value for c in at.caption if c.value.startswith("The tall bars: ")]
    assert len(tall) == 1 and 0.2 < int(tall[0].split("%")[0].split()[-1]) / 100 < 0.6, tall


def test_reconstruct_page_shares_one_error_scale_with_a_colour_bar():
    at = run("pages/1_Reconstruct.py")
    maps = [s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]
    assert len(maps) == 2
    assert maps[0]["data"][0]["zmax"] == maps[1]["data"][0]["zmax"] and maps[0]["data"][0]["zmin"] == 0
    assert all(m["data"][0]["showscale"] for m in maps)
    assert "Over 256 test images" in texts(at) and "paired by image" in texts(at)
    widths = [img.width for element in at.get("imgs") for img in element.proto.imgs] or \
             [element.proto.width for element in at.get("imgs")]
    assert all(w >= 160 for w in widths), widths


def test_reconstruct_page_reaches_every_test_image_and_offers_reset_at_once():
    at = run("pages/1_Reconstruct.py")
    at.radio(key="recon-source").set_value("dataset index").run()
    assert at.number_input(key="recon-index").max == 9999
    at.number_input(key="recon-index").set_value(9999).run()
    assert not at.exception
    at.radio(key="recon-kind").set_value("hand-edited").run()
    assert not at.exception and [b.label for b in at.button] == ["Start again from the random mask"]


def test_pairs_stay_within_a_method_and_labels_come_from_the_config():
    at = run("pages/1_Reconstruct.py")
    assert "simmim · SimMIM (baseline)" in texts(at) and "simmim-mto · SimMIM + MTO" in texts(at)
    assert not any("mae" in o for o in at.sidebar.selectbox(key="recon-mto-simmim").options)
    at.sidebar.radio(key="recon-method").set_value("mae").run()
    assert not at.exception
    assert "mae · MAE (baseline)" in texts(at) and "mae-mto · MAE + MTO" in texts(at)
    assert not any("simmim" in o for o in at.sidebar.selectbox(key="recon-base-mae").options)


def test_two_baselines_are_said_to_be_two_baselines_and_one_checkpoint_shows_alone():
    at = run("pages/1_Reconstruct.py")
    at.sidebar.selectbox(key="recon-mto-simmim").set_value(ALONE_OPTION).run()
    assert not at.exception and "simmim-mto · SimMIM + MTO" not in texts(at)
    assert len([s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]) == 1
    copy = APP.parent / "runs" / "zz-simmim-copy"
    shutil.copytree(APP.parent / "checkpoints" / "simmim", copy)
    try:
        at = run("pages/1_Reconstruct.py")
        at.sidebar.selectbox(key="recon-mto-simmim").set_value("runs/zz-simmim-copy").run()
        assert not at.exception and "Neither checkpoint was trained with MTO: this compares two baselines." in \
            [c.value for c in at.caption]
        assert len([s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]) == 2
        # Learn on the same two baselines, equal to the last digit: no MTO named, no winner
        learn = run("Home.py")
        learn.sidebar.selectbox(key="learn-mto-simmim").set_value("runs/zz-simmim-copy").run()
        said = said_now(learn)
        assert "MTO's mean cosine" not in said and "MTO's largest" not in said
        assert "Neither token is the more distinct: the two measures are equal" in said, said
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_tokens_page_measures_vary_and_axes_have_names():
    at = run("pages/2_Tokens.py")
    check_charts(at)
    figures = specs(at)
    assert figures[0]["layout"]["xaxis"]["title"]["text"] == "PC 1"
    silhouette = [f for f in figures if "silhouette" in str(f["layout"]["yaxis"].get("title"))][0]
    for trace in silhouette["data"]:
        assert max(values(trace["y"])) - min(values(trace["y"])) > 0.05  # the old measure moved by 6e-6
        assert silhouette["layout"]["xaxis"]["dtick"] == 1
    auc = [f for f in figures if "ROC-AUC" in str(f["layout"]["yaxis"].get("title"))][0]
    low, high = auc["layout"]["yaxis"]["range"]  # chance to 1 on a fixed scale, not zoomed into 1e-4 steps
    assert low <= 0.5 and 1 <= high <= 1.05 and high - low < 0.7


def plot_height(spec: dict) -> int:
    """A chart's height without the footer of facts under it (widgets.charts.chart adds one)."""
    facts = [a for a in spec["layout"].get("annotations", []) if a.get("name") == "facts"]
    grow = spec["layout"]["margin"]["b"] + facts[0]["yshift"] if facts else 0
    return spec["layout"]["height"] - grow


def test_attention_page_has_layer_and_head_pickers_and_flags_a_flipped_query():
    at = run("pages/3_Attention.py")
    check_charts(at)
    maps = [s for s in specs(at) if s["data"][0].get("type") == "heatmap" and plot_height(s) == 330]
    assert len(maps) == 2 and maps[0]["data"][0]["zmax"] == maps[1]["data"][0]["zmax"]
    before = [m["data"][0]["z"] for m in maps]
    at.selectbox(key="attn-head").set_value(1).run()
    at.selectbox(key="attn-layer").set_value(3).run()
    assert not at.exception and "layer 3 (head 1)" in texts(at)
    after = [s["data"][0]["z"] for s in specs(at) if s["data"][0].get("type") == "heatmap" and plot_height(s) == 330]
    assert after != before
    at.session_state["attn-query-7"] = query = 48  # as if patch 48 had been clicked
    at.run()
    masked = "(masked)" in texts(at).split("Query: patch")[1][:30]
    for seed in range(1, 40):
        at.sidebar.number_input(key="attn-seed").set_value(seed).run()
        if ("(masked)" in texts(at).split("Query: patch")[1][:30]) != masked:
            break
    assert any(f"query patch {query} is now" in w.value for w in at.warning)


def test_curves_page_scores_each_run_against_its_own_method():
    at = run("pages/4_Curves.py")
    check_charts(at)
    table = at.dataframe[0].value
    assert dict(zip(table["run"], table["baseline"])) == {"mae-mto": "mae", "simmim-mto": "simmim",
                                                          "conmim-mto": "conmim", "bootmae-mto": "bootmae"}
    at.multiselect(key="curves-runs").set_value(["checkpoints/mae", "checkpoints/simmim-mto"]).run()
    assert not at.exception and len(at.dataframe) == 0
    assert "no baseline of its method" in texts(at)
    acc = [s for s in specs(at) if s["layout"].get("xaxis", {}).get("title", {}).get("text") == "epoch"][0]
    assert acc["layout"]["xaxis"]["dtick"] == 1 and {t["name"] for t in acc["data"]} == {"mae", "simmim-mto"}


def test_train_page_stop_says_stopped_and_start_is_disabled_while_running():
    at = run("pages/5_Train.py")
    at.number_input[0].set_value(5000)
    at.checkbox[1].check()  # the shipped subset
    at.button[0].click().run()
    assert not at.exception
    start = [b for b in at.button if b.label == "Start training"][0]
    assert start.disabled
    deadline = time.time() + 120
    while time.time() < deadline and not at.get("progress")[0].proto.text.startswith("training: "):
        time.sleep(1)
        at.run()
    at.button(key="train-stop").click().run()
    stopped = time.time()
    deadline = stopped + 300
    while time.time() < deadline and not at.success:
        time.sleep(0.5)
        at.run()
    text = at.get("progress")[0].proto.text
    assert text.startswith("stopped: step ") and "finished" not in text, text  # both runs at one step
    assert "k-NN" in at.success[0].value
    at.run()  # the form is back with the settings of the run, not the defaults
    assert at.number_input[0].value == 5000 and at.checkbox[1].value


def test_uploads_say_what_was_done_to_them():
    import numpy as np
    from PIL import Image

    at = run("pages/1_Reconstruct.py")
    at.radio(key="recon-source").set_value("upload").run()
    uploader = at.file_uploader(key="recon-upload")
    assert "any size or mode" not in uploader.label and "10 MB" in uploader.label
    ramp = np.tile(np.linspace(0, 65535, 28), (28, 1)).astype(np.uint16)
    uploader.set_value(("ramp.png", _png(Image.fromarray(ramp)), "image/png")).run()
    assert not at.exception and any("16-bit" in w.value for w in at.warning)
    assert "masked-patch MSE" in texts(at)
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[:14, :, 3] = 255
    at.file_uploader(key="recon-upload").set_value(("clear.png", _png(Image.fromarray(rgba, "RGBA")), "image/png"))
    at.radio(key="recon-background").set_value("white").run()
    assert any("transparent" in w.value and "white background" in w.value for w in at.warning)
    frames = [Image.new("L", (28, 28), v) for v in (10, 200)]
    import io

    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    at.file_uploader(key="recon-upload").set_value(("moving.gif", gif.getvalue(), "image/gif")).run()
    assert any("first frame" in w.value for w in at.warning)
    light = np.full((28, 28), 240, np.uint8)
    light[6:22, 9:19] = 20  # a dark item on a light background
    at.file_uploader(key="recon-upload").set_value(("light.png", _png(Image.fromarray(light)), "image/png")).run()
    assert any("background is light" in w.value for w in at.warning)
    before = texts(at)
    at.checkbox(key="recon-invert").check().run()
    assert not at.exception and not any("background is light" in w.value for w in at.warning)
    assert texts(at) != before  # a new reconstruction: the inverted image
    at.file_uploader(key="recon-upload").set_value(("notes.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert any("not a readable image" in e.value and "BytesIO" not in e.value for e in at.error)


def test_tokens_page_replays_a_traced_pair_over_training(traced_pair):
    at = AppTest.from_file(str(APP / "pages/2_Tokens.py"), default_timeout=180)
    at.run()
    at.sidebar.selectbox(key="tokens-base-simmim").set_value(traced_pair[0])
    at.sidebar.selectbox(key="tokens-mto-simmim").set_value(traced_pair[1]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [s for s in specs(at) if s.get("frames")]  # off until asked: the first render stays quick
    at.toggle(key="tokens-over-training").set_value(True).run()
    replay = [s for s in specs(at) if s.get("frames")][0]
    assert [f["name"] for f in replay["frames"]] == ["0", "4", "8"] and len(replay["frames"][0]["data"]) == 4
    assert any("singularity score S" in a.get("text", "") for s in specs(at)
               for a in s["layout"].get("annotations", []))


def test_curves_page_plots_a_traced_measure_against_epoch(traced_pair):
    at = AppTest.from_file(str(APP / "pages/4_Curves.py"), default_timeout=180)
    at.run()
    at.multiselect(key="curves-runs").set_value(traced_pair).run()
    at.radio(key="curves-trace-measure").set_value("silhouette").run()
    assert not at.exception, [e.value for e in at.exception]
    traced = [s for s in specs(at) if "silhouette" in s["layout"].get("yaxis", {}).get("title", {}).get("text", "")]
    assert traced and {t["name"] for t in traced[0]["data"]} == {"app-traced-simmim", "app-traced-simmim-mto"}
    assert all(values(t["x"]) == [0, 0.5, 1] for t in traced[0]["data"])


@pytest.mark.parametrize("method, where", [("conmim", "encoder"), ("bootmae", "BootMAE pixel decoder")])
def test_every_page_works_with_the_new_methods(method, where):
    for page, key in METHOD_PAGES.items():
        at = run(page)
        at.sidebar.radio(key=f"{key}-method").set_value(method).run()
        assert not at.exception, (page, [e.value for e in at.exception])
        check_charts(at)
        assert [box.value for box in at.sidebar.selectbox][:2] == [f"checkpoints/{method}", f"checkpoints/{method}-mto"]
        if key == "tokens":
            assert at.slider(key="tokens-layer").label.startswith(f"Layer of the {where} ")
        if key == "attn":
            assert at.selectbox(key="attn-layer").label == f"Layer of the {where}"
    at = run("pages/5_Train.py")
    assert at.radio[0].options == ["SimMIM", "ConMIM", "MAE", "BootMAE"]
    at.radio[0].set_value(method).run()
    assert not at.exception
    from widgets.models import test_set

    from mto_core.data.images import load_fashion_mnist

    images, labels, _ = test_set()  # one object every page run shares: no page may change it
    fresh = load_fashion_mnist("test")
    assert torch.equal(images, fresh.images) and torch.equal(labels, fresh.labels)


def test_conmim_reconstruct_shows_a_feature_match_that_varies_with_chance_and_direction_and_draws_no_image():
    at = run("pages/1_Reconstruct.py")
    at.sidebar.radio(key="recon-method").set_value("conmim").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("ConMIM predicts features, not pixels" in info.value for info in at.info)
    assert _captions(at) == ["original", "masked (what the model is given)"]  # no predicted image
    assert not [s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]
    maps = _rank_maps(at)
    assert len(maps) == 2  # baseline beside MTO
    hidden = int(re.search(r"Mask: (\d+) of 49 patches hidden", texts(at))[1])
    chances = [float(c) for c in re.findall(r"\(chance (-?[\d.]+)\)", texts(at))]
    assert len(chances) == 2 and all(-1 <= c < 0.5 for c in chances)
    for spec in maps:
        trace = spec["data"][0]
        assert trace["zmax"] == 1 and round(trace["zmin"], 3) == min(chances)  # one scale, from chance to identical
        assert trace["colorbar"]["ticktext"][0].endswith("= chance") and "better" in trace["colorbar"]["ticktext"][1]
        z = [v for row in trace["z"] for v in (values(row) if isinstance(row, dict) else row)] \
            if isinstance(trace["z"], list) else values(trace["z"])
        cosines = [v for v in z if v is not None and v == v]  # visible patches blank (NaN)
        assert len(cosines) == hidden and all(-1 <= c <= 1 for c in cosines)
        # a measure that teaches something: it varies across the masked patches (the rank was 1 everywhere)
        assert max(cosines) - min(cosines) > 0.05, cosines
    assert len(re.findall(r"mean cosine \*\*[\d.]+\*\*", texts(at))) == 2
    assert "higher is better" in texts(at) and "feature-match cosine" in texts(at)


def test_bootmae_reconstruct_shows_pixels_and_the_feature_match():
    at = run("pages/1_Reconstruct.py")
    at.sidebar.radio(key="recon-method").set_value("bootmae").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "prediction at every patch (at the visible ones untrained)" in _captions(at)
    assert len([s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]) == 2
    assert len(_rank_maps(at)) == 2 and "masked-patch MSE" in texts(at) and "higher is better" in texts(at)


def test_curves_page_says_which_methods_an_experiment_has_not_run():
    from logic.labels import method_names

    from mto_core.experiments import committed_experiments, families

    at = run("pages/4_Curves.py")
    ran = families(list(committed_experiments(APP.parent / "docs" / "results")["efficiency-cpu"]))
    missing = [name for method, name in method_names().items() if method not in ran]
    assert at.radio(key="curves-experiment-base").options == [method_names()[m] for m in ran]
    assert (f"This experiment has no runs of {' or '.join(missing)}" in texts(at)) == bool(missing), texts(at)


def test_curves_page_shows_the_conmim_and_bootmae_experiment():
    at = run("pages/4_Curves.py")
    at.selectbox(key="curves-experiment").set_value("efficiency-cpu-conmim-bootmae").run()
    assert not at.exception and sorted(at.radio(key="curves-experiment-base").options) == ["BootMAE", "ConMIM"]
    assert "This experiment has no runs of SimMIM or MAE" in texts(at)
    for method in ("conmim", "bootmae"):
        at.radio(key="curves-experiment-base").set_value(method).run()
        assert not at.exception and f"{method}-mto vs {method}" in str(at.get("plotly_chart")[-1].proto)
        assert re.search(r"Speed-up factor s = [\d.]+, 95% interval", texts(at)) and "s_wall" in texts(at)


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_an_rgb_model_on_photos_alone_and_in_a_pair(rgb, page):
    key = PAGES[page]
    at = choose(run(page), key, "mae", rgb["mae"], rgb["mae-mto"])
    said = texts(at)
    assert "photos that ship with scikit-image" in said and "centre-cropped to 224 x 224" in said
    shown = lambda: str(specs(at)) + said_now(at)  # noqa: E731
    assert "zz-rgb-mae-mto" in shown() and "zz-rgb-mae ·" in shown()  # the pair, side by side
    choose(at, key, "mae", rgb["mae"])  # the one alone
    assert specs(at) and "zz-rgb-mae-mto" not in str(specs(at)) and "zz-rgb-mae-mto ·" not in said_now(at)
    choose(at, key, "simmim", rgb["simmim"], rgb["simmim-mto"])  # SimMIM's pair, then its baseline alone
    assert "zz-rgb-simmim-mto" in shown() and "zz-rgb-simmim ·" in shown() and not at.error
    choose(at, key, "simmim", rgb["simmim"])
    assert "photos that ship with scikit-image" in texts(at) and not at.error, [e.value for e in at.error]
    if page == "pages/3_Attention.py":
        full = [s for s in specs(at) if s["layout"].get("xaxis", {}).get("title", {}).get("text") == "key"]
        assert full and shape(full[0]["data"][0]["z"]) == (197, 197)  # [CLS] and 196 patches
        assert "Tokens: [CLS] and 196 patches (197 in all)" in texts(at)
    if page == "pages/2_Tokens.py":
        scatter = specs(at)[0]
        assert sum(len(t["x"]) if isinstance(t["x"], list) else 0 for t in scatter["data"]) in (0, 4 * 196) \
            or "bdata" in str(scatter["data"][0]["x"])
    if page == "pages/1_Reconstruct.py":
        captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
        assert "original" in captions and "masked (what the model is given)" in captions


def test_reconstruct_draws_photos_at_full_size_and_norm_pix_models_with_the_true_patch_statistics(rgb):
    folder = make_rgb_checkpoint(RUNS / "zz-rgb-mae-normpix", "mae", 64, 2, "vit-b", "model.norm_pix_loss=true")
    try:
        at = choose(run("pages/1_Reconstruct.py"), "recon", "mae", "runs/zz-rgb-mae-normpix")
        captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
        assert "prediction at every patch (at the visible ones untrained) drawn with the true patches' mean and std" \
            in captions
        assert "trained with norm_pix_loss" in texts(at)
        maps = [s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]
        assert len(maps) == 1 and shape(maps[0]["data"][0]["z"]) == (14, 14)  # the 14 x 14 patch grid
        # beside a plain model: no winner on errors of two different tasks, and the page says why
        at = choose(at, "recon", "mae", "runs/zz-rgb-mae-normpix", rgb["mae"])
        said = said_now(at)
        assert "(better)" not in said and "no winner is named: one model was trained with norm_pix_loss" in said
        assert "masked-patch MSE (the true patches' mean and std put back)" in said
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_compare_with_offers_only_matching_checkpoints_and_a_pick_never_lands_on_a_refusal(rgb):
    at = run("pages/1_Reconstruct.py")
    at.sidebar.radio(key="recon-method").set_value("mae").run()
    offered = at.sidebar.selectbox(key="recon-mto-mae").options
    assert not any("zz-rgb" in o for o in offered) and offered[-1] == ALONE_OPTION  # 28 px: no 224 px partner
    at.sidebar.selectbox(key="recon-base-mae").set_value(rgb["mae"]).run()  # a 224 px RGB model picked
    assert not at.exception and not at.error, [e.value for e in at.error]
    partner = at.sidebar.selectbox(key="recon-mto-mae")
    assert partner.value == rgb["mae-mto"]  # its MTO twin, not the 28 px model it was on
    assert not any(o.startswith("checkpoints/") for o in partner.options)
    assert not any(rgb["simmim"] == o for o in partner.options)  # one method
    folder = make_rgb_checkpoint(RUNS / "zz-rgb-mae-alone", "mae")
    try:
        at = run("pages/1_Reconstruct.py")
        at.sidebar.radio(key="recon-method").set_value("mae").run()
        at.sidebar.selectbox(key="recon-base-mae").set_value("runs/zz-rgb-mae-alone").run()
        assert not at.error and at.sidebar.selectbox(key="recon-mto-mae").value in (ALONE_OPTION, rgb["mae-mto"],
                                                                                     rgb["mae"])
        at.sidebar.selectbox(key="recon-base-mae").set_value("checkpoints/mae").run()  # back to 28 px
        assert not at.error and at.sidebar.selectbox(key="recon-mto-mae").value == "checkpoints/mae-mto"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_grey_models_keep_fashion_mnist_and_say_so():
    at = run("pages/3_Attention.py")
    assert "Fashion-MNIST's 28 x 28 grey test images" in texts(at) and "Tokens: [CLS] and 49 patches" in texts(at)


def test_an_upload_for_a_photo_model_that_is_not_an_image_is_one_line():
    import skimage.data

    from mto_core import DataError
    from mto_core.data.photos import read_photo

    with pytest.raises(DataError, match="the upload is not a readable image") as raised:
        read_photo(b"plain text, not pixels", 224)
    assert "\n" not in str(raised.value)
    coffee = (Path(skimage.data.__file__).parent / "coffee.png").read_bytes()
    assert tuple(read_photo(coffee, 224).shape) == (3, 224, 224)


@pytest.mark.parametrize("method", ["mae", "simmim", "bootmae"])
def test_reconstruct_error_maps_are_scaled_by_the_masked_patches_they_draw(method):
    at = run("pages/1_Reconstruct.py")
    if method != "simmim":
        at.sidebar.radio(key="recon-method").set_value(method).run()
    maps = [s for s in specs(at) if "error per masked patch" in str(s["layout"].get("title"))]
    assert len(maps) == 2
    drawn = [v for m in maps for v in _z(m["data"][0])]
    assert maps[0]["data"][0]["zmax"] == maps[1]["data"][0]["zmax"] == pytest.approx(max(drawn))
    assert maps[0]["layout"]["plot_bgcolor"] != "white"  # blank (visible) cells apart from Magma's pale top
    assert f"largest masked-patch error of the two ({max(drawn):.3f})" in texts(at)


def test_no_sentence_a_user_reads_says_the_paper_or_its_formulas_are_not_public():
    read = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("checkpoints/**/*.md"), ROOT / "docs" / "tour.ipynb",
            *ROOT.glob("app/**/*.py"), *ROOT.glob("mto_core/**/*.py"), *ROOT.glob("app/assets/*.svg")]
    said = [f"{p.relative_to(ROOT)}: {line.strip()[:90]}" for p in read for line in p.read_text().splitlines()
            if re.search(r"not public|unpublished|(paper|formulas?|text) (is |are |has |have )?not (been )?published", line, re.IGNORECASE)]
    assert not said, said


def test_curves_accuracy_chart_reads_with_eight_runs():
    at = run("pages/4_Curves.py")
    accuracy = [s for s in specs(at) if s["layout"].get("xaxis", {}).get("title", {}).get("text") == "epoch"][0]
    assert all(a.get("name") == "facts" for a in accuracy["layout"].get("annotations", [])), \
        "no text printed over the curves (the facts' footer lies under them)"
    runs = {t["name"]: t for t in accuracy["data"] if t.get("meta") != "target"}
    assert len(runs) == 8
    for method in ("simmim", "conmim", "mae", "bootmae"):
        base, mto = runs[method]["line"], runs[f"{method}-mto"]["line"]
        assert base.get("dash", "solid") == "solid" and mto["dash"] == "dash"
        hue = lambda c: int(c[1:3], 16) - int(c[5:7], 16)  # noqa: E731  a crude hue: red minus blue
        assert (hue(base["color"]) > 0) == (hue(mto["color"]) > 0), (method, base, mto)  # related colours
    targets = [t for t in accuracy["data"] if t.get("meta") == "target" and t["mode"] == "lines"]
    assert len(targets) == 4 and all(t["name"].startswith("target: ") for t in targets)
    assert all(t["line"]["color"] == runs[t["legendgroup"].rsplit("/", 1)[-1]]["line"]["color"] for t in targets)
    at.selectbox(key="curves-experiment").set_value("efficiency-cpu").run()
    assert "raw-pixel floor" in texts(at) and "Every pre-trained curve here stays below the raw pixels" in texts(at)


def test_reconstruct_says_the_prediction_at_visible_patches_is_untrained():
    at = run("pages/1_Reconstruct.py")
    captions = [img.caption for element in at.get("image") for img in element.proto.imgs]
    assert "prediction at every patch (at the visible ones untrained)" in captions
    assert "at the visible positions the model was never trained to predict anything" in texts(at)


def test_readme_does_not_promise_the_mask_controls_on_every_page():
    readme = (ROOT / "README.md").read_text()
    assert "on every page; what you choose" not in readme
    for page in ("4_Curves.py", "5_Train.py"):
        assert "mask_controls(" not in (APP / "pages" / page).read_text()


def _train_page(visitor: str = "", teacher: str = "") -> AppTest:
    at = AppTest.from_file(str(APP / "pages/5_Train.py"), default_timeout=180)
    if visitor:
        at.query_params["visitor"] = visitor
    if teacher:
        at.query_params["teacher"] = teacher
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _stop_button(at: AppTest) -> list:
    return [b for b in at.button if b.key == "train-stop"]


def _wait_for(at: AppTest, done, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and not done(at):
        time.sleep(1)
        at.run()
    assert done(at), texts(at)


def test_train_stop_follows_the_visitor_a_second_visitor_queues_and_the_teacher_stops_any(monkeypatch):
    before = set(RUNS.glob("app-*"))
    monkeypatch.setenv("MTO_TEACHER_TOKEN", "t0ken-for-tests")
    owner = _train_page("visitor-a")
    owner.number_input[0].set_value(5000)
    owner.checkbox[1].check()  # the shipped subset
    owner.button[0].click().run()
    assert _stop_button(owner)
    reloaded = _train_page("visitor-a")  # a new session at the same address: the same owner
    assert _stop_button(reloaded) and not [b for b in reloaded.button if b.label == "Start training"
                                            and not b.disabled]
    second = _train_page("visitor-b")
    assert not _stop_button(second) and "started by another visitor" in " ".join(i.value for i in second.info)
    queue = [b for b in second.button if b.label == "Queue my training"]
    assert queue, [b.label for b in second.button]
    second.number_input[0].set_value(5000)
    second.checkbox[1].check()
    queue[0].click().run()
    assert "Your training is queued: place 1 of 1" in " ".join(i.value for i in second.info)
    wrong = _train_page("visitor-c", teacher="not-the-token")
    assert not _stop_button(wrong)
    teacher = _train_page("visitor-c", teacher="t0ken-for-tests")
    teacher.button(key="train-stop").click().run()  # the teacher stops the first visitor's run
    _wait_for(second, lambda at: bool(_stop_button(at)))  # ... and the queued one starts, owned by the second
    assert "queued" not in " ".join(i.value for i in second.info)
    assert not _stop_button(_train_page("visitor-a"))
    second.button(key="train-stop").click().run()
    _wait_for(second, lambda at: bool(at.success))
    for run_dir in set(RUNS.glob("app-*")) - before:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_the_block_mask_type_holds_on_tokens_and_attention():
    at = AppTest.from_file(str(APP / "Home.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/1_Reconstruct.py").run()
    at.sidebar.radio(key="recon-kind").set_value("block").run()
    at.switch_page("pages/2_Tokens.py").run()
    assert not at.exception and at.sidebar.radio(key="tokens-kind").value == "block"
    at.switch_page("pages/3_Attention.py").run()
    assert not at.exception and at.sidebar.radio(key="attn-kind").value == "block"
    said = said_now(at)
    at.sidebar.radio(key="attn-kind").set_value("random").run()
    assert said_now(at) != said  # the mask drawn is another: the type is used, not only shown
    at.switch_page("pages/1_Reconstruct.py").run()
    assert at.sidebar.radio(key="recon-kind").value == "random"


def test_learn_says_what_a_zero_mask_token_means_instead_of_a_blank_frame():
    from safetensors.torch import load_file, save_file

    folder = RUNS / "zz-mae-zero-token"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ROOT / "checkpoints" / "mae", folder)
    weights = load_file(folder / "model.safetensors")
    weights["mask_token"] = torch.zeros_like(weights["mask_token"])
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    try:
        at = choose(run("Home.py"), "learn", "mae", "runs/zz-mae-zero-token", "checkpoints/mae-mto")
        said = said_now(at) + " ".join(w.value for w in at.warning)
        assert "the mask token is all zeros, so its framed rows are blank" in said
        assert "its cosine to every patch is 0 by convention" in said
        assert "mean cosine 0.000, largest 0.000" not in said and "more distinct by" not in said
        hist = [s for s in specs(at) if s["layout"].get("xaxis", {}).get("title", {}).get("text")
                == "cos(mask token, patch embedding)"]
        assert len(hist) == 1 and [t["name"] for t in hist[0]["data"]] == ["mae-mto · MAE + MTO"]
        at = choose(at, "learn", "mae", "runs/zz-mae-zero-token")  # alone: no histogram at all, no empty chart
        assert not any(s["layout"].get("xaxis", {}).get("title", {}).get("text") == "cos(mask token, patch embedding)"
                       for s in specs(at))
        check_charts(at)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_tokens_replay_of_the_shipped_pair_reaches_the_checkpoint_shown():
    """The shipped runs kept snapshots at steps 0, 225 and 450; their checkpoints are of step 624:
    the replay ends there, with a frame of the checkpoint the page shows."""
    at = run("pages/2_Tokens.py")
    at.toggle(key="tokens-over-training").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    replay = [s for s in specs(at) if s.get("frames")][0]
    assert [f["name"] for f in replay["frames"]] == ["0", "225", "450", "624"]
    last, before = replay["frames"][-1]["data"], replay["frames"][-2]["data"]
    assert values(last[0]["x"]) != values(before[0]["x"])  # a frame of its own, not the 450 one again


def test_a_replay_frame_runs_over_every_run_s_snapshots():
    import numpy as np

    from logic.emergence import scatter_figure
    from mto_core.analysis.trace import TokenFrames

    def frames(steps):
        xy = np.random.default_rng(len(steps)).normal(size=(len(steps), 6, 2))
        return TokenFrames(np.array(steps), xy, np.array([True, False] * 3), np.zeros(6, int), np.arange(6), 0.5)

    fig = scatter_figure({"baseline": frames([0, 10]), "MTO": frames([0, 5, 10, 15])}, 1, animate=True)
    assert [f.name for f in fig.frames] == ["0", "5", "10", "15"]


def test_learn_pipeline_follows_the_chosen_model(rgb):
    import base64
    import urllib.parse

    def pipeline(at) -> str:
        for element in at.get("image"):
            for img in element.proto.imgs:
                if "For the checkpoint chosen" in img.caption:
                    url = img.url
                    if url.startswith("data:image/svg+xml;base64,"):
                        return base64.b64decode(url.split(",", 1)[1]).decode() + img.caption
                    return urllib.parse.unquote(url) + img.caption
        raise AssertionError("no pipeline diagram")

    at = run("Home.py")
    tiny = pipeline(at)
    assert "49 patches" in tiny and "28 x 28" in tiny and "4 x 4 px" in tiny
    at = choose(at, "learn", "mae", rgb["mae"])
    big = pipeline(at)
    assert "196 patches" in big and "224 x 224" in big and "16 x 16 px" in big and "49 patches" not in big


COLOUR_PAIRS = {"mae": ("checkpoints/mae-rgb", "checkpoints/mae-rgb-mto"),
                "simmim": ("checkpoints/simmim-rgb", "checkpoints/simmim-rgb-mto")}


@pytest.mark.parametrize("method", list(COLOUR_PAIRS))
def test_reconstruct_shows_a_colour_pair_on_photos_marked_seen_or_not_beside_both_floors(method):
    at = choose(run("pages/1_Reconstruct.py"), "recon", method, *COLOUR_PAIRS[method])
    gallery = at.select_slider(key="recon-photo")
    assert gallery.options[0] == "astronaut · never seen in training"  # data.held_out of both configs
    assert "camera · seen in training" in gallery.options
    captions = _captions(at)
    assert any(c.startswith("mean colour fill · MSE") for c in captions)
    assert any(c.startswith("biharmonic fill · MSE") for c in captions)
    said = said_now(at)
    for label in COLOUR_PAIRS[method]:
        name = label.split("/")[1]
        assert re.search(rf"\*\*{name} · [^*]+\*\*: 0\.\d{{4}}, (lower than|not lower than)", said), said
    assert "Among them: astronaut · never seen in training" in said
    choose(at, "recon", method, COLOUR_PAIRS[method][0])  # alone: one model beside the floors
    assert sum("x mean colour" in m.value for m in at.markdown) == 1 and not at.error


@pytest.mark.parametrize("page", ["Home.py", "pages/2_Tokens.py", "pages/3_Attention.py"])
def test_every_page_marks_the_photos_a_colour_pair_never_saw(page):
    key = PAGES[page]
    at = choose(run(page), key, "simmim", *COLOUR_PAIRS["simmim"])
    said = said_now(at)
    assert "simmim-rgb-mto ·" in str(specs(at)) + said and not at.error
    if page == "Home.py":
        assert at.select_slider(key="learn-photo").options[0] == "astronaut · never seen in training"
        assert "original (astronaut · never seen in training)" in _captions(at)
    if page == "pages/2_Tokens.py":
        assert "The photos: astronaut · never seen in training; chelsea · never seen in training" in said
        assert "Four of the photos (astronaut · never seen in training;" in said
    if page == "pages/3_Attention.py":
        photos = at.selectbox(key="attn-photo").options
        assert photos[3] == "rocket · never seen in training" and "brick · seen in training" in photos
    choose(at, key, "simmim", COLOUR_PAIRS["simmim"][0])  # alone
    assert not at.error and "never seen in training" in said_now(at) + str(_captions(at)) + str(
        at.selectbox(key="attn-photo").options if page == "pages/3_Attention.py" else "")


def test_train_page_trains_the_colour_preset_on_photo_crops_and_skips_the_knn_probe(monkeypatch):
    from mto_core.data import photo_crops as pc

    monkeypatch.setattr(pc, "TRAIN_CROPS", 256)  # a few crops: the set is cut in a moment
    pc._photo_crops.cache_clear()
    before = set(RUNS.glob("app-*"))
    try:
        at = _train_page("visitor-rgb")
        at.radio[0].set_value("mae")
        at.radio(key="train-size").set_value("tiny-rgb")
        at.number_input[0].set_value(10)
        at.select_slider[0].set_value(16)
        at.button[0].click().run()
        _wait_for(at, lambda at: bool(at.success))
        assert not at.exception and not at.error, [e.value for e in at.error]
        made = set(RUNS.glob("app-*")) - before
        assert len(made) == 2 and all("photo-crops" in (d / "config.json").read_text() for d in made)
        assert "No k-NN point for these runs: a model trained on photo crops has no classes" in texts(at)
        crops = [c for c in _captions(at) if c.startswith("a crop of ")]
        assert len(crops) == 4 and all(c.split(" · ")[0][len("a crop of "):] in pc.HELD_OUT for c in crops)
        assert any("singularity score S" in a.get("text", "") for s in specs(at)
                   for a in s["layout"].get("annotations", []))  # the emergence panels, on the photos' crops
    finally:
        pc._photo_crops.cache_clear()
        for run_dir in set(RUNS.glob("app-*")) - before:
            shutil.rmtree(run_dir, ignore_errors=True)


def test_curves_shows_a_colour_pair_and_one_alone_by_their_losses():
    at = run("pages/4_Curves.py")
    for chosen in (list(COLOUR_PAIRS["mae"]), [COLOUR_PAIRS["mae"][0]]):
        at.multiselect(key="curves-runs").set_value(chosen).run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        names = {t.get("name") for s in specs(at) for t in s["data"] if t.get("name")}
        assert {c.split("/")[1] for c in chosen} <= names and not names & {"mae", "mae-mto", "simmim"}, names
    check_charts(at)


def test_learn_opens_on_the_idea_and_every_figure_carries_its_facts():
    at = run("Home.py")
    shown = [str(i.proto) for i in at.get("image")]
    assert any("37 of 49 patches hidden" in i for i in shown) and any("fill-in" in i for i in shown)
    idea = [m.value for m in at.markdown if m.value.startswith("**The idea in one picture:**")]
    assert idea and "75%" in idea[0] and "simmim" in idea[0]
    story = [m.value for m in at.markdown if "Masked image modeling" in m.value][0]
    order = [m.value for m in at.markdown]
    assert order.index(idea[0]) < order.index(story)  # the picture before the words
    footers = [a["text"] for s in specs(at) for a in s["layout"].get("annotations", []) if a.get("name") == "facts"]
    assert footers and all("checkpoints/simmim" in f and "mask 60% random, seed 0" in f for f in footers)
    buttons = at.get("download_button")
    assert len(buttons) >= 6  # the idea's three pictures and section 1's three
