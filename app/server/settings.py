"""The settings the app's server starts with, and the addresses a classroom can open."""

from __future__ import annotations

import os

# above the app's own limit on purpose: a file between the two reaches the page, which refuses it in words
UPLOAD_TRANSPORT_MB = 50
# on the command line: Streamlit reads .streamlit/config.toml only from the working directory
SERVER_SETTINGS = {"server.address": "localhost", "server.maxUploadSize": str(UPLOAD_TRANSPORT_MB),
                   "server.headless": "true", "browser.gatherUsageStats": "false", "theme.base": "light",
                   # a full collection after every page run holds the interpreter lock (docs/performance.md)
                   "runner.postScriptGC": "false",
                   # a watcher walks every loaded module per new session (docs/performance.md); edits need a restart
                   "server.fileWatcherType": "none"}
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def _given(extra: list[str]) -> dict[str, str]:
    given: dict[str, str] = {}
    for i, arg in enumerate(extra):
        if arg.startswith("--"):
            key, sep, value = arg[2:].partition("=")
            given[key] = value if sep else (extra[i + 1] if i + 1 < len(extra) else "")
    return given


def server_args(extra: list[str], public: bool = False) -> list[str]:
    """Streamlit options for the app: ``SERVER_SETTINGS`` where ``extra`` does not give them,
    then ``extra``; ValueError for an address other than this machine's (unless ``public``: then
    every interface by default) or a larger upload limit."""
    given = _given(extra)
    if public:
        given.setdefault("server.address", "0.0.0.0")
        extra = [*extra, f"--server.address={given['server.address']}"]
    elif given.get("server.address", "localhost") not in LOOPBACK:
        raise ValueError(f"the app serves this machine only (--server.address one of {', '.join(LOOPBACK)}), "
                         f"got {given['server.address']}; to serve a classroom on this network start it with "
                         "--public, or reach it from elsewhere through an SSH tunnel")
    limit = given.get("server.maxUploadSize", SERVER_SETTINGS["server.maxUploadSize"])
    if not limit.isdigit() or int(limit) > UPLOAD_TRANSPORT_MB:
        raise ValueError(f"--server.maxUploadSize must be at most {UPLOAD_TRANSPORT_MB} (MB), got {limit}")
    return [f"--{key}={value}" for key, value in SERVER_SETTINGS.items() if key not in given] + extra


def share_addresses(extra: list[str]) -> list[str]:
    """The addresses others on the network can open: http://<this machine's IPv4 address>:<port>,
    the one of the default route first, then those the host name resolves to (no packet is sent);
    a placeholder to fill in where none is found."""
    import socket

    port = _given(extra).get("server.port", "8501")
    found = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # a documentation address: connecting a UDP socket sends nothing
            found.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        found += [info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    except OSError:
        pass
    ips = [ip for ip in dict.fromkeys(found) if not ip.startswith("127.")]
    return [f"http://{ip}:{port}" for ip in ips] or [f"http://<this machine's address>:{port}"]


def classroom_options(args: list[str]) -> list[str]:
    """Take the app's own options out of ``args`` (the rest go to Streamlit) and pass them to the
    pages through the environment (server.classroom reads them):

    --keep-app-runs N      the newest N runs made on the Train page are kept (default 40);
    --min-free-mb M        no training starts with less free disk than this under runs/ (default 500);
    --hide-others-runs     a visitor's pickers leave out the runs other visitors started
                           (by default they come after the visitor's own);
    --train-knn-bank N     the k-NN probe that ends a Train-page run uses N training images and
                           N/2 validation images (default 2000; 0: no probe, the runs end sooner)."""
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        name, sep, value = arg.partition("=")
        if name == "--train-knn-bank":
            if not sep:
                if i + 1 >= len(args):
                    raise ValueError(f"{name} needs a value")
                value, i = args[i + 1], i + 1
            if not value.isdigit() or int(value) == 1:
                raise ValueError(f"{name} must be 0 (no probe) or a whole number of at least 2, got {value!r}")
            os.environ["MTO_TRAIN_KNN_BANK"] = value
        elif name in ("--keep-app-runs", "--min-free-mb"):
            if not sep:
                if i + 1 >= len(args):
                    raise ValueError(f"{name} needs a value")
                value, i = args[i + 1], i + 1
            try:
                number = float(value) if name == "--min-free-mb" else int(value) if value.isdigit() else -1
            except ValueError:
                number = -1
            if number < (1 if name == "--keep-app-runs" else 0):
                raise ValueError(f"{name} must be a {'positive whole number' if name == '--keep-app-runs' else 'number >= 0'}, "
                                 f"got {value!r}")
            os.environ["MTO_KEEP_APP_RUNS" if name == "--keep-app-runs" else "MTO_MIN_FREE_MB"] = value
        elif arg == "--hide-others-runs":
            os.environ["MTO_HIDE_OTHERS_RUNS"] = "1"
        else:
            out.append(arg)
        i += 1
    return out


TEACHER_TOKEN_ENV = "MTO_TEACHER_TOKEN"


def teacher_token(create: bool = False) -> str:
    """The classroom's teacher token (``app/serve.py --public`` makes one and prints it): '' when
    none was set; with ``create``, a new random one where none is set yet (kept in the environment,
    where the pages read it)."""
    import secrets

    token = os.environ.get(TEACHER_TOKEN_ENV, "")
    if not token and create:
        token = os.environ[TEACHER_TOKEN_ENV] = secrets.token_urlsafe(12)
    return token


def is_teacher(given: str | None) -> bool:
    """Whether ``given`` (a page address's ``?teacher=``) is the server's teacher token; never
    when the server has none."""
    import hmac

    token = teacher_token()
    return bool(token and given) and hmac.compare_digest(str(given), token)
