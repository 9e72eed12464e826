"""server/settings.py and app/serve.py: where the server listens, its limits, the classroom's options."""

import os
import socket
import sys
from pathlib import Path

import pytest
from server.settings import server_args, share_addresses

ROOT = Path(__file__).resolve().parents[2]


def _listening(port):
    """Addresses with a socket listening on ``port``, from the kernel's tables."""
    import ipaddress

    found = []
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                raw = bytes.fromhex(address)
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))  # little-endian words
                found.append(ipaddress.ip_address(words))
    return found


def serve_and_listen(tmp_path, *args: str, env: dict | None = None, settle: float = 0.0):
    """Start app/serve.py ARGS from ``tmp_path`` on a free port, wait until it listens (then
    ``settle`` seconds more), stop it; the addresses it listened on, the port and its output."""
    import subprocess
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, str(ROOT / "app" / "serve.py"), *args, "--server.port", str(port)],
                                  cwd=tmp_path, env={**(env or os.environ), "MTO_PREPARE_PAGES": "0"},
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not _listening(port) and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
        time.sleep(settle)
        addresses = _listening(port)
    finally:
        server.terminate()
        server.wait(30)
    return addresses, port, log.read_text()


def test_public_serves_every_interface_only_when_asked():
    assert "--server.address=0.0.0.0" in server_args(["--server.port", "8502"], public=True)
    assert "--server.address=localhost" in server_args([])
    with pytest.raises(ValueError, match="--public"):
        server_args(["--server.address", "0.0.0.0"])
    assert all(a.startswith("http://") and a.endswith(":8502") and "127.0.0.1" not in a
               for a in share_addresses(["--server.port=8502"]))


def test_serve_public_listens_on_all_interfaces_and_prints_addresses_and_a_warning(tmp_path):
    addresses, port, text = serve_and_listen(tmp_path, "--public")
    assert addresses and any(a.is_unspecified for a in addresses), (addresses, text)
    lines = text.splitlines()
    shared = next(line for line in lines if line.startswith("Serving on every network interface"))
    assert f":{port}" in shared and "http://" in shared
    assert sum(line.startswith("Warning: anyone who can reach this machine") for line in lines) == 1


def test_serve_takes_the_classroom_options_and_refuses_bad_values():
    from server.settings import classroom_options

    keys = ("MTO_KEEP_APP_RUNS", "MTO_MIN_FREE_MB", "MTO_HIDE_OTHERS_RUNS", "MTO_TRAIN_KNN_BANK")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        rest = classroom_options(["--keep-app-runs", "12", "--min-free-mb=800", "--hide-others-runs",
                                  "--train-knn-bank", "600", "--server.port", "8502"])
        assert rest == ["--server.port", "8502"]
        assert tuple(os.environ[k] for k in keys) == ("12", "800", "1", "600")
        assert classroom_options(["--train-knn-bank=0"]) == [] and os.environ["MTO_TRAIN_KNN_BANK"] == "0"
        for bad in (["--keep-app-runs", "0"], ["--keep-app-runs=many"], ["--min-free-mb", "-5"], ["--keep-app-runs"],
                    ["--train-knn-bank", "1"], ["--train-knn-bank=-3"], ["--train-knn-bank", "all"], ["--train-knn-bank"]):
            with pytest.raises(ValueError):
                classroom_options(bad)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def test_app_started_from_another_folder_listens_on_localhost_without_usage_statistics(tmp_path):
    """app/serve.py run from a folder without .streamlit/config.toml (and a HOME without one)."""
    import os

    # a second socket (IPv6) may follow the first
    addresses, _, text = serve_and_listen(tmp_path, "--server.headless", "true",
                                          env={**os.environ, "HOME": str(tmp_path)}, settle=1)
    assert addresses and all(a.is_loopback for a in addresses), (addresses, text)
    assert "usage statistics" not in text


def test_app_refuses_to_listen_beyond_this_machine(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, str(ROOT / "app" / "serve.py"), "--server.address", "0.0.0.0"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "this machine only" in result.stderr and "Traceback" not in result.stderr


def test_server_settings_hold_wherever_the_app_starts_and_cannot_widen(tmp_path):
    from server.settings import server_args

    args = server_args(["--server.port", "8502"])
    assert "--server.address=localhost" in args and "--server.maxUploadSize=50" in args
    assert "--browser.gatherUsageStats=false" in args and args[-2:] == ["--server.port", "8502"]
    assert server_args(["--server.address", "127.0.0.1"]).count("--server.address=localhost") == 0
    for wider in (["--server.address", "0.0.0.0"], ["--server.address=192.168.1.5"], ["--server.maxUploadSize=200"]):
        with pytest.raises(ValueError, match="this machine only|at most 50"):
            server_args(wider)


def test_the_teacher_token_is_made_once_and_only_it_is_a_teacher(monkeypatch):
    from server.settings import is_teacher, teacher_token

    monkeypatch.delenv("MTO_TEACHER_TOKEN", raising=False)
    assert teacher_token() == "" and not is_teacher("") and not is_teacher(None)
    token = teacher_token(create=True)
    assert len(token) >= 16 and teacher_token(create=True) == token
    assert is_teacher(token) and not is_teacher(token[:-1]) and not is_teacher("")


def test_the_server_prepares_the_pages_default_views_and_a_first_visitor_gets_them_from_its_caches(tmp_path):
    """serve.warm_pages renders Learn to Curves in bare mode before the server listens; a visitor's
    first Reconstruct then takes its batch comparison from the cache: the measure is not run again."""
    import subprocess

    script = tmp_path / "warm.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(ROOT / "app")!r})
sys.argv = ["serve.py"]
import serve
serve.warm_up()
serve.warm_pages()
import mto_core.analysis.measures as measures
def refuse(*args, **kwargs):
    raise RuntimeError("computed again")
measures.masked_error_over = refuse
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / "app" / "pages" / "1_Reconstruct.py")!r}, default_timeout=120)
at.run()
print("EXCEPTIONS", [e.value for e in at.exception])
print("CHARTS", len(at.get("plotly_chart")))
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert "could not be prepared" not in out.stdout, out.stdout[-2000:]
    lines = {line.split(" ", 1)[0]: line for line in out.stdout.splitlines()}
    assert lines.get("EXCEPTIONS") == "EXCEPTIONS []", out.stdout[-2000:] + out.stderr[-2000:]
    assert int(lines["CHARTS"].split()[1]) > 0
