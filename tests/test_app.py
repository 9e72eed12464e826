"""Every page of the app, driven without a browser by Streamlit's AppTest: it renders without an
exception, and moving a widget changes what is shown."""

import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parent.parent / "app"
sys.path.insert(0, str(APP))


def run(page: str) -> AppTest:
    at = AppTest.from_file(str(APP / page), default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in [*at.header, *at.subheader, *at.markdown, *at.caption]])


def test_learn_page_masks_follow_the_ratio():
    at = run("Home.py")
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

    assert "layer 1" in charts()
    at.slider(key="tokens-layer").set_value(3).run()
    assert not at.exception and "layer 3" in charts() and "layer 1" not in charts()


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
    at.selectbox(key="curves-experiment").set_value("efficiency-cpu").run()
    assert not at.exception
    speedup = [m for m in at.metric if m.label.startswith("Speed-up factor")]
    assert len(speedup) == 1 and float(speedup[0].value) > 0 and "paired seeds" in texts(at)
    simmim = str(at.get("plotly_chart")[-1].proto)
    assert "simmim-mto vs simmim" in simmim and "raw pixels" in simmim and "random init" in simmim
    at.radio(key="curves-experiment-base").set_value("mae").run()
    assert not at.exception and "mae-mto vs mae" in str(at.get("plotly_chart")[-1].proto)
    at.selectbox(key="curves-experiment").set_value("ablation-cpu").run()
    at.radio(key="curves-experiment-base").set_value("mae").run()
    assert not at.exception and "| mae-entropy | 2 |" in texts(at) and "| entropy |" not in texts(at)


def test_train_page_runs_baseline_and_mto():
    at = run("pages/5_Train.py")
    assert "No training yet" in at.info[0].value
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
