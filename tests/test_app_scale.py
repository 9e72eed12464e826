"""The app at the paper's scale: RGB models at 224 x 224 on photos, any checkpoint alone or in a
pair, and a classroom whose runs stay bounded. The models here are randomly initialised at 224 x 224
with 16 x 16 patches (196 of them, as a ViT-B's) and a small width, so that every page is tested in
seconds; the browser test opens the pages on a real ViT-B's shape."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_rgb_checkpoint
from .test_app import ALONE_OPTION, APP, run, specs, texts

ROOT = APP.parent
RUNS = ROOT / "runs"
PAGES = {"learn.py": "learn", "pages/1_Reconstruct.py": "recon", "pages/2_Tokens.py": "tokens",
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
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_pair_of_two_input_shapes_or_two_methods_is_refused_in_one_line(rgb):
    at = run("pages/1_Reconstruct.py")
    at.sidebar.radio(key="recon-method").set_value("mae").run()
    at.sidebar.selectbox(key="recon-base-mae").set_value("checkpoints/mae").run()
    at.sidebar.selectbox(key="recon-mto-mae").set_value(rgb["mae"]).run()
    assert not at.exception
    refused = [e.value for e in at.error]
    assert len(refused) == 1 and "cannot be compared" in refused[0] and "different inputs" in refused[0]
    assert "\n" not in refused[0]
    assert not any(rgb["simmim"] == o for o in at.sidebar.selectbox(key="recon-mto-mae").options)  # one method


def test_grey_models_keep_fashion_mnist_and_say_so():
    at = run("pages/3_Attention.py")
    assert "Fashion-MNIST's 28 x 28 grey test images" in texts(at) and "Tokens: [CLS] and 49 patches" in texts(at)


def _index(entries: dict) -> None:
    RUNS.mkdir(exist_ok=True)
    (RUNS / ".app-runs.json").write_text(json.dumps(entries))


@pytest.fixture
def classroom_runs():
    """Fake app runs (each a real run folder copy of a shipped checkpoint) and a CLI run, with the
    index that owns them; everything removed afterwards, the index put back."""
    index = RUNS / ".app-runs.json"
    saved = index.read_text() if index.exists() else None
    index.unlink(missing_ok=True)  # the app runs already here are not this test's: out of its index
    made = []

    def make(name: str, visitor: str | None, started: float) -> str:
        folder = RUNS / name
        shutil.copytree(ROOT / "checkpoints" / "simmim", folder)
        made.append(folder)
        if visitor is not None:
            entries = json.loads(index.read_text()) if index.exists() else {}
            entries[name] = {"visitor": visitor, "started": started}
            _index(entries)
        return f"runs/{name}"

    yield make
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
    if saved is None:
        index.unlink(missing_ok=True)
    else:
        index.write_text(saved)


@pytest.fixture(autouse=True)
def no_leftover_app_runs():
    """The Train page writes runs/app-*: remove the ones a test made, once its training threads end."""
    import threading

    before = set(RUNS.glob("app-*"))
    yield
    for thread in [t for t in threading.enumerate() if t.name.startswith("train-")]:
        thread.join(300)
    for run_dir in set(RUNS.glob("app-*")) - before:
        shutil.rmtree(run_dir, ignore_errors=True)


def test_pickers_put_the_visitor_s_own_runs_first_and_can_hide_others(classroom_runs, monkeypatch):
    theirs = classroom_runs("app-20261201-100000-simmim", "someone-else", 100.0)
    mine_old = classroom_runs("app-20261201-090000-simmim", "me", 50.0)
    mine_new = classroom_runs("app-20261201-110000-simmim", "me", 200.0)
    cli = classroom_runs("zz-cli-simmim", None, 0.0)
    from app_support import short_label

    def order(at) -> list[str]:
        options = at.sidebar.selectbox(key="recon-base-simmim").options  # as shown: '<short label> · <what>'
        return [label for option in options for label in (theirs, mine_old, mine_new, cli)
                if option.startswith(short_label(label) + " · ")]

    at = AppTestWithVisitor("me")
    options = at.sidebar.selectbox(key="recon-base-simmim").options
    assert options[0].startswith("simmim · ")  # the shipped first (baselines before MTO runs in this list)
    assert order(at) == [cli, mine_new, mine_old, theirs], order(at)
    monkeypatch.setenv("MTO_HIDE_OTHERS_RUNS", "1")
    at = AppTestWithVisitor("me")
    assert order(at) == [cli, mine_new, mine_old]


def AppTestWithVisitor(visitor: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP / "pages" / "1_Reconstruct.py"), default_timeout=180)
    at.query_params["visitor"] = visitor
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_app_s_runs_stay_bounded_oldest_removed_never_a_cli_run_a_busy_one_or_an_open_one(classroom_runs):
    from jobs import app_runs, opened, prune_app_runs

    names = [classroom_runs(f"app-2026120{i}-000000-simmim", "v", float(i)) for i in range(1, 8)]
    cli = classroom_runs("zz-cli-run", None, 0.0)
    opened(ROOT / names[1])  # a page has it open
    removed = prune_app_runs(RUNS, keep=3, busy={ROOT / names[0]})
    # the 7 runs, newest first: 7, 6, 5 kept; of 4, 3, 2, 1 the busy (1) and the open (2) stay
    assert removed == [Path(names[2]).name, Path(names[3]).name], removed
    assert (ROOT / cli).is_dir() and all((ROOT / n).is_dir() for n in (names[0], names[1], *names[4:]))
    assert app_runs(RUNS)[:3] == [Path(n).name for n in names[6:3:-1]]
    assert prune_app_runs(RUNS, keep=3, busy={ROOT / names[0]}) == []  # the busy and the open one still stay


def test_repeated_train_page_runs_keep_runs_bounded_and_the_page_says_how_many(classroom_runs, monkeypatch):
    """Starting a training on the Train page past the server's bound: the oldest app runs go first."""
    import threading

    from streamlit.testing.v1 import AppTest

    from jobs import app_runs

    earlier = [Path(classroom_runs(f"app-2026110{i}-000000-simmim", "earlier", float(i))).name for i in range(4)]
    monkeypatch.setenv("MTO_KEEP_APP_RUNS", "4")
    at = AppTest.from_file(str(APP / "pages" / "5_Train.py"), default_timeout=180)
    at.run()
    assert "keeps the newest 4 runs made on this page (4 now)" in texts(at)
    at.checkbox[0].check()  # the shipped subset
    at.number_input[0].set_value(10)
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    for thread in [t for t in threading.enumerate() if t.name.startswith("train-")]:
        thread.join(300)
    present = app_runs(RUNS)
    new = [n for n in present if n not in earlier]
    assert len(new) == 2 and len(present) == 4, present  # bounded: two new, the two newest earlier ones
    assert present[2:] == [earlier[3], earlier[2]] and not (RUNS / earlier[0]).exists()


def test_a_start_with_too_little_free_disk_is_refused_in_one_line_and_nothing_starts(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from jobs import check_free_disk

    free_mb = shutil.disk_usage(RUNS if RUNS.exists() else ROOT).free / 2**20
    monkeypatch.setenv("MTO_MIN_FREE_MB", str(int(free_mb) + 10**6))  # more than this disk has
    before = set(RUNS.glob("app-*"))
    at = AppTest.from_file(str(APP / "pages" / "5_Train.py"), default_timeout=180)
    at.run()
    at.button[0].click().run()
    refused = [e.value for e in at.error]
    assert len(refused) == 1 and refused[0].startswith("Cannot start: only") and "nothing was started" in refused[0]
    assert set(RUNS.glob("app-*")) == before
    # and on a real small filesystem where one can be mounted (a 16 MB tmpfs)
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(small)], capture_output=True).returncode == 0:
        try:
            assert "16 MB are free" in (check_free_disk(small / "runs", 100) or "")
            assert check_free_disk(small / "runs", 8) is None
        finally:
            subprocess.run(["umount", str(small)], check=True)


def test_a_disk_that_fills_while_the_train_page_runs_gives_one_line_and_the_server_keeps_serving(tmp_path):
    """The Train page's training in a process whose files may not grow past 1 MB (RLIMIT_FSIZE, as a
    full disk refuses writes): the run's checkpoint cannot be written; the page says so in one
    line, and the other pages still render."""
    script = tmp_path / "full.py"
    script.write_text(f"""
import resource, sys, time, threading
sys.path.insert(0, {str(APP)!r})
from streamlit.testing.v1 import AppTest
resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
at = AppTest.from_file({str(APP / "pages" / "5_Train.py")!r}, default_timeout=180)
at.run()
at.checkbox[0].check()
at.number_input[0].set_value(10)
at.button[0].click().run()
for t in [t for t in threading.enumerate() if t.name.startswith("train-")]:
    t.join(240)
at.run()
print("ERRORS", [e.value for e in at.error])
other = AppTest.from_file({str(APP / "pages" / "1_Reconstruct.py")!r}, default_timeout=180)
other.run()
print("SERVING", not other.exception and len(other.get("plotly_chart")) > 0)
""")
    before = set(RUNS.glob("app-*"))
    try:
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    finally:
        for extra in set(RUNS.glob("app-*")) - before:
            shutil.rmtree(extra, ignore_errors=True)
    errors = next(line for line in out.stdout.splitlines() if line.startswith("ERRORS"))
    assert "could not write a checkpoint" in errors and "free space" in errors, out.stdout + out.stderr
    assert "SERVING True" in out.stdout


def test_a_run_folder_removed_while_a_page_shows_it_leaves_the_server_serving(classroom_runs):
    from streamlit.testing.v1 import AppTest

    import common

    label = classroom_runs("zz-soon-gone", None, 0.0)
    at = run("pages/1_Reconstruct.py")
    at.sidebar.selectbox(key="recon-base-simmim").set_value(label).run()
    assert not at.exception and "zz-soon-gone · SimMIM (baseline)" in texts(at)
    shutil.rmtree(ROOT / label)  # runs/ changes: the next page run scans it again at once
    # the visitor's next page run, with the vanished run still chosen: the page falls back, no error
    again = AppTest.from_file(str(APP / "pages" / "1_Reconstruct.py"), default_timeout=180)
    again.session_state["sidebar-choices"] = {"method": "simmim", "base-simmim": label}
    again.run()
    assert not again.exception and not again.error, [e.value for e in again.error]
    assert not any(o.startswith("zz-soon-gone") for o in again.sidebar.selectbox(key="recon-base-simmim").options)
    assert "simmim · SimMIM (baseline)" in texts(again)
    common.load(str(ROOT / label))  # a page run that already held it: the shared cache still has it


def test_the_checkpoint_cache_is_bounded_by_the_weights_it_holds(monkeypatch):
    import common

    monkeypatch.setattr(common, "MODEL_CACHE_BYTES", 1)  # room for the two most recent only (a pair)
    common._MODELS.clear()
    path = lambda name: str(ROOT / "checkpoints" / name)  # noqa: E731
    first = common.load(path("mae"))
    common.load(path("simmim"))
    common.load(path("conmim"))
    assert list(common._MODELS) == [path("simmim"), path("conmim")]
    assert common.load(path("mae")) is not first  # dropped, so loaded again
    monkeypatch.setattr(common, "MODEL_CACHE_BYTES", 10**12)
    common.load(path("simmim"))
    assert len(common._MODELS) == 3
    try:  # two spellings of one folder are one entry, not two copies of its weights
        assert common.load(path("simmim")) is common.load(str(Path("checkpoints") / ".." / "checkpoints" / "simmim"))
        assert len(common._MODELS) == 3
    finally:
        common._MODELS.clear()


def test_an_upload_for_a_photo_model_that_is_not_an_image_is_one_line():
    import skimage.data

    from mto_core import DataError
    from mto_core.data.photos import read_photo

    with pytest.raises(DataError, match="the upload is not a readable image") as raised:
        read_photo(b"plain text, not pixels", 224)
    assert "\n" not in str(raised.value)
    coffee = (Path(skimage.data.__file__).parent / "coffee.png").read_bytes()
    assert tuple(read_photo(coffee, 224).shape) == (3, 224, 224)


def test_serve_takes_the_classroom_options_and_refuses_bad_values():
    sys.path.insert(0, str(APP))
    from serve import classroom_options

    saved = {k: os.environ.get(k) for k in ("MTO_KEEP_APP_RUNS", "MTO_MIN_FREE_MB", "MTO_HIDE_OTHERS_RUNS")}
    try:
        rest = classroom_options(["--keep-app-runs", "12", "--min-free-mb=800", "--hide-others-runs",
                                  "--server.port", "8502"])
        assert rest == ["--server.port", "8502"]
        assert (os.environ["MTO_KEEP_APP_RUNS"], os.environ["MTO_MIN_FREE_MB"], os.environ["MTO_HIDE_OTHERS_RUNS"]) == \
            ("12", "800", "1")
        for bad in (["--keep-app-runs", "0"], ["--keep-app-runs=many"], ["--min-free-mb", "-5"], ["--keep-app-runs"]):
            with pytest.raises(ValueError):
                classroom_options(bad)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
