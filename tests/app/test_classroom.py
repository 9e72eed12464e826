"""server/classroom.py: the app runs' index, their bound and owner, the disk guard; the pickers' order."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .apptest import APP, run, texts

ROOT = APP.parent


RUNS = ROOT / "runs"


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


def AppTestWithVisitor(visitor: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP / "pages" / "1_Reconstruct.py"), default_timeout=180)
    at.query_params["visitor"] = visitor
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_pickers_put_the_visitor_s_own_runs_first_and_can_hide_others(classroom_runs, monkeypatch):
    theirs = classroom_runs("app-20261201-100000-simmim", "someone-else", 100.0)
    mine_old = classroom_runs("app-20261201-090000-simmim", "me", 50.0)
    mine_new = classroom_runs("app-20261201-110000-simmim", "me", 200.0)
    cli = classroom_runs("zz-cli-simmim", None, 0.0)
    from logic.labels import short_label

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


def test_the_app_s_runs_stay_bounded_oldest_removed_never_a_cli_run_a_busy_one_or_an_open_one(classroom_runs):
    from server.classroom import app_runs, opened, prune_app_runs

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

    import streamlit as st
    from server.classroom import app_runs
    from streamlit.testing.v1 import AppTest

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
    st.cache_resource.clear()  # the page's job slot with it: a later Train page starts with no job
    present = app_runs(RUNS)
    new = [n for n in present if n not in earlier]
    assert len(new) == 2 and len(present) == 4, present  # bounded: two new, the two newest earlier ones
    assert present[2:] == [earlier[3], earlier[2]] and not (RUNS / earlier[0]).exists()


def test_a_start_with_too_little_free_disk_is_refused_in_one_line_and_nothing_starts(monkeypatch, tmp_path):
    from server.classroom import check_free_disk
    from streamlit.testing.v1 import AppTest

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
    import widgets.models as common
    from streamlit.testing.v1 import AppTest

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
