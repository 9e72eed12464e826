"""Small pure helpers behind the app: its server settings, finding checkpoints and telling what
they are, keeping paths inside the allowed folders, reading uploads, editing masks by hand, drawing
images pixel-exact with their masks and patches marked, reading runs' progress."""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mto_core.models.checkpoint import WEIGHTS, CheckpointError, list_checkpoints, read_config, resolve
from mto_core.config import RunConfig
from mto_core.data.images import DataError, LoadedImage, load_image
from mto_core.models.objective import check_model_fits

MAX_UPLOAD_BYTES = 10 * 2**20
# What the server accepts at all (MB). Above the app's limit on purpose: a file between the two
# reaches the page, which says in its own words that it is too large and drops the previous result;
# one the server refused would only get a small red icon in the uploader while the page went on
# showing the last image (docs/reliability.md).
UPLOAD_TRANSPORT_MB = 50
# Passed on Streamlit's command line by app/serve.py: Streamlit reads .streamlit/config.toml only
# from the working directory, and without these it listens on every interface, gathers usage
# statistics and accepts 200 MB uploads.
SERVER_SETTINGS = {"server.address": "localhost", "server.maxUploadSize": str(UPLOAD_TRANSPORT_MB),
                   "server.headless": "true", "browser.gatherUsageStats": "false", "theme.base": "light",
                   # no full garbage collection after every page run (Streamlit's default): with torch and
                   # Plotly loaded it took about 0.3 s of each run, under the interpreter lock that training
                   # and the other sessions wait for (docs/performance.md, "A classroom on one server")
                   "runner.postScriptGC": "false",
                   # no file watcher: each new session's watcher walked the path of every loaded module (torch,
                   # scikit-learn, Plotly: about 4,800), so 20 students opening the app at once queued behind
                   # it (docs/performance.md). Edits to the app need a restart instead.
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


def safe_path(path: str | Path, roots: list[Path]) -> Path:
    """``path`` resolved, if it lies inside one of ``roots``; ValueError otherwise."""
    resolved = Path(path).resolve()
    for root in roots:
        if resolved == root.resolve() or root.resolve() in resolved.parents:
            return resolved
    raise ValueError(f"{path} is outside the allowed folders ({', '.join(str(r) for r in roots)})")


def scan_checkpoints(roots: list[Path], base: Path) -> tuple[dict[str, str], dict[str, str]]:
    """({label relative to ``base``: path} of the checkpoint and run folders under ``roots`` the
    app can open, {label: why not} of the others: links leading outside ``roots``, unreadable
    configs, models too large for this machine). Only config.json files are read."""
    found: dict[str, str] = {}
    unusable: dict[str, str] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if not ((folder / WEIGHTS).is_file() or list_checkpoints(folder)):
                continue
            label = folder.relative_to(base).as_posix()
            try:
                safe_path(folder, roots)
                check_model_fits(read_config(resolve(folder)).model)
            except ValueError as error:  # CheckpointError and ConfigError among them
                unusable[label] = str(error)
                continue
            found[label] = str(folder)
    return found, unusable


def read_upload(data: bytes, size: int, channels: int, limit: int = MAX_UPLOAD_BYTES,
                background: tuple[int, int, int] = (0, 0, 0)) -> LoadedImage:
    """An uploaded file's bytes -> :class:`LoadedImage` (image (C, size, size) uint8, notes,
    preview); DataError in plain words if too big, empty or unreadable."""
    if len(data) > limit:
        raise DataError(f"the upload is {len(data) / 2**20:.1f} MiB; the limit is {limit / 2**20:.0f} MiB")
    if not data:
        raise DataError("the upload is empty")
    return load_image(data, size, channels, background)


def toggle_patches(mask: torch.Tensor, patches: list[int]) -> torch.Tensor:
    """A copy of the (N,) bool mask with the given patch indices flipped."""
    out = mask.clone()
    for index in patches:
        if not 0 <= index < out.numel():
            raise ValueError(f"patch {index} is outside the grid of {out.numel()} patches")
        out[index] = ~out[index]
    return out


# the methods, in the pickers' order
METHOD_NAMES = {"simmim": "SimMIM", "conmim": "ConMIM", "mae": "MAE", "bootmae": "BootMAE"}


def mask_site(model) -> str:
    """The layers of a model config that the pages trace, those that see the mask tokens: the
    encoder (SimMIM, ConMIM), MAE's decoder, BootMAE's pixel decoder (MTO acts in both of its
    decoders; the library traces the pixel decoder, docs/mto-spec.md)."""
    if model.mask_in_encoder:
        return "encoder"
    if model.method == "bootmae":
        return "BootMAE pixel decoder"
    return f"{METHOD_NAMES.get(model.method, model.method)} decoder"


def mask_heads(model) -> int:
    """The attention heads of the layers :func:`mask_site` names."""
    return model.num_heads if model.mask_in_encoder else model.decoder_heads


@dataclass(frozen=True)
class RunInfo:
    """What a checkpoint or run folder holds, from its config.json alone (no weights read).

    method: 'simmim' / 'conmim' / 'mae' / 'bootmae' ('' when the config cannot be read); mto: any MTO part on;
    label: 'SimMIM + MTO', 'MAE (baseline)', ... from the config, not from where it was picked.
    """

    method: str
    mto: bool

    @property
    def label(self) -> str:
        if not self.method:
            return "unreadable checkpoint"
        return f"{METHOD_NAMES.get(self.method, self.method)} {'+ MTO' if self.mto else '(baseline)'}"


def describe_config(config: RunConfig) -> RunInfo:
    return RunInfo(config.model.method, config.mto.enabled)


def describe_run(path: str | Path) -> RunInfo:
    """:class:`RunInfo` of a run or checkpoint folder; method '' if its config cannot be read."""
    path = Path(path)
    for folder in (path, *(list_checkpoints(path)[-1:] if path.is_dir() else [])):
        try:
            return describe_config(read_config(folder))
        except (CheckpointError, OSError, ValueError, TypeError, KeyError):
            continue
    try:
        return describe_config(read_config(resolve(path)))
    except (CheckpointError, OSError, ValueError, TypeError, KeyError):
        return RunInfo("", False)


def pair_problem(baseline: RunConfig, mto: RunConfig) -> str | None:
    """Why two checkpoints cannot be compared side by side, or None.

    Their methods must match: SimMIM's error is an L1 on normalised pixels of every masked patch
    from the encoder, MAE's an MSE from a decoder, ConMIM's a contrast of features; side by side
    they would compare two objectives,
    not the effect of MTO. Image and patch sizes must match to share masks.
    """
    a, b = baseline.model, mto.model
    if a.method != b.method:
        return (f"the baseline is {METHOD_NAMES.get(a.method, a.method)} and the other checkpoint is "
                f"{METHOD_NAMES.get(b.method, b.method)}: their errors come from different objectives "
                "and models, so the comparison would not show what MTO does. Pick two checkpoints "
                "of the same method.")
    if (a.img_size, a.patch_size, a.in_chans) != (b.img_size, b.patch_size, b.in_chans):
        return (f"the checkpoints see different inputs ({a.img_size}px / {a.patch_size}px patches / "
                f"{a.in_chans} channels vs {b.img_size} / {b.patch_size} / {b.in_chans}); pick a "
                "matching pair.")
    return None


_APP_RUN = re.compile(r"^app-(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})-(.+)$")


def short_label(label: str, width: int = 28) -> str:
    """A run's label for legends and pickers: its folder name, shortened in the middle past
    ``width``; a Train-page run (``app-20261202-004500-simmim-mto``) by its start time and variant
    (``app 00:45:00 simmim-mto``), which fits a sidebar."""
    name = label.rstrip("/").rsplit("/", 1)[-1]
    found = _APP_RUN.match(name)
    if found:
        name = f"app {found[4]}:{found[5]}:{found[6]} {found[7]}"
    if len(name) <= width:
        return name
    keep = (width - 1) // 2
    return f"{name[:keep]}…{name[-(width - 1 - keep):]}"


def baseline_for(label: str, infos: dict[str, RunInfo]) -> str | None:
    """The run among ``infos`` ({label: info}) that ``label`` should be scored against.

    A baseline of the same method with MTO off; among several, the one whose name is closest to
    ``label`` with '-mto' removed (runs/app-X-simmim-mto -> runs/app-X-simmim), then the first.
    None when the run is a baseline itself or no baseline of its method is among them.
    """
    info = infos[label]
    if not info.method or not info.mto:
        return None
    candidates = [k for k, v in infos.items() if v.method == info.method and not v.mto and k != label]
    if not candidates:
        return None
    wanted = label.replace("-mto", "")

    def shared_prefix(other: str) -> int:
        same = [x == y for x, y in zip(wanted, other)]
        return same.index(False) if False in same else len(same)

    return max(candidates, key=lambda k: (k == wanted, shared_prefix(k), -candidates.index(k)))


def upscale(image: torch.Tensor | np.ndarray, min_size: int = 160) -> np.ndarray:
    """(C, H, W) float in [0, 1] or uint8, or (H, W[, 3]) uint8 -> (H*k, W*k[, 3]) uint8 with
    each pixel repeated k x k times, k the smallest integer with H*k >= ``min_size``: pixel-exact,
    no browser smoothing."""
    if isinstance(image, torch.Tensor):
        x = image.detach().float().cpu()
        if image.dtype != torch.uint8:
            x = x.clamp(0, 1) * 255
        array = x.round().byte().numpy()
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    else:
        array = np.asarray(image, dtype=np.uint8)
    k = max(1, math.ceil(min_size / array.shape[0]))
    return array.repeat(k, axis=0).repeat(k, axis=1)


MASK_COLOUR = (255, 0, 200)  # magenta: absent from Fashion-MNIST's greys and from most photos


def paint_patches(image: torch.Tensor, mask: torch.Tensor, patch_size: int,
                  colour: tuple[int, int, int] = MASK_COLOUR) -> torch.Tensor:
    """(C, H, W) image in [0, 1] -> (3, H, W) with the patches of ``mask`` (N,) bool filled with
    ``colour``: hidden patches that stand out on any garment."""
    rgb = image.float().expand(3, -1, -1) if image.shape[0] == 1 else image.float()
    g = image.shape[-1] // patch_size
    pix = mask.view(g, 1, g, 1).expand(-1, patch_size, -1, patch_size).reshape(g * patch_size, -1)
    fill = torch.tensor(colour, dtype=torch.float32).view(3, 1, 1) / 255
    return torch.where(pix, fill.expand_as(rgb), rgb)


def outline_patch(image: torch.Tensor, patch: int, patch_size: int, min_size: int = 160,
                  colour: tuple[int, int, int] = (255, 60, 0)) -> np.ndarray:
    """(C, H, W) image -> upscaled RGB uint8 with a 2-pixel frame around patch ``patch``."""
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    big = upscale(rgb, min_size).copy()
    k = big.shape[0] // image.shape[-1]
    g = image.shape[-1] // patch_size
    r, c = divmod(int(patch), g)
    top, left, side = r * patch_size * k, c * patch_size * k, patch_size * k
    bottom, right = top + side, left + side
    for y0, y1, x0, x1 in ((top, top + 2, left, right), (bottom - 2, bottom, left, right),
                           (top, bottom, left, left + 2), (top, bottom, right - 2, right)):
        big[y0:y1, x0:x1] = colour
    return big


def run_progress(rows: list[dict[str, Any]], total_steps: int, batch_size: int) -> dict[str, float | None]:
    """Step, images/s and the seconds left of a run from its 'train' metrics rows.

    images/s is the mean of the last three log intervals (the first interval includes start-up);
    eta_s the steps left at that rate; None where not known yet.
    """
    train = [r for r in rows if r.get("kind") == "train"]
    if not train:
        return {"step": 0, "images_per_s": None, "eta_s": None}
    step = int(train[-1]["step"])
    recent = [float(r["images_per_s"]) for r in train[1:][-3:] if "images_per_s" in r] or \
             [float(train[-1].get("images_per_s", 0.0))]
    rate = sum(recent) / len(recent)
    eta = (total_steps - step) * batch_size / rate if rate > 0 else None
    return {"step": step, "images_per_s": rate, "eta_s": eta}


def accuracy_points(rows: list[dict[str, Any]], key: str = "knn_val") -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of ``key`` from 'epoch' rows, epochs as logged (an app run's single probe
    after 0.3 epochs stays at 0.3), sorted; the last row wins for a repeated epoch."""
    points = sorted({float(r["epoch"]): float(r[key]) for r in rows
                     if r.get("kind") == "epoch" and key in r}.items())
    if not points:
        return np.zeros(0), np.zeros(0)
    epochs, values = zip(*points)
    return np.asarray(epochs), np.asarray(values)


def give_memory_back(every_s: float = 10.0, collect_every: int = 6) -> threading.Event:
    """Every ``every_s``, hand the memory freed since back to the system (glibc's malloc_trim), and
    every ``collect_every``-th time first collect the page runs' cyclic garbage (a full
    ``gc.collect``): the memory that many sessions at once took returns near its idle level after
    they leave, instead of staying with the process (docs/performance.md, "A classroom on one
    server"). Streamlit's collection after every page run is off (``runner.postScriptGC``: about
    0.3 s under the interpreter lock each time, while training threads wait), so a run's script
    namespace, a cycle, would otherwise wait for Python's rare full collection with all it holds.
    A thread of its own; the trim runs outside the interpreter lock. No trim where there is no glibc.
    Returns the event that stops the thread once set."""
    import ctypes
    import gc

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        trim = None

    stop = threading.Event()

    def loop() -> None:
        count = 0
        while not stop.wait(every_s):
            count += 1
            if count % collect_every == 0:
                gc.collect()
            if trim is not None:
                trim(0)

    threading.Thread(target=loop, name="give-memory-back", daemon=True).start()
    return stop


def singularity_verdict(base: tuple[str, float, float], mto: tuple[str, float, float]) -> str:
    """Which mask token is the more distinct from real patch embeddings, in plain words, by each of
    two measures: the mean cosine to the patches (lower: further from the data on average) and the
    largest (lower: further even from its nearest patch). ``base`` and ``mto``: (label, mean, max)."""
    (b_label, b_mean, b_max), (m_label, m_mean, m_max) = base, mto
    mean_mto, max_mto = m_mean < b_mean, m_max < b_max
    on_average = (f"on average ({'MTO' if mean_mto else 'the baseline'}'s mean cosine {min(m_mean, b_mean):.3f} "
                  f"vs {max(m_mean, b_mean):.3f})")
    nearest = (f"at its nearest real patch ({'MTO' if max_mto else 'the baseline'}'s largest cosine "
               f"{min(m_max, b_max):.3f} vs {max(m_max, b_max):.3f})")
    if mean_mto and max_mto:
        return (f"**{m_label}'s mask token is the more distinct by both measures**: further from real patches "
                f"{on_average} and {nearest}.")
    if not mean_mto and not max_mto:
        return (f"**Here MTO's mask token is not the more distinct one: {b_label}'s is, by both measures**, "
                f"{on_average} and {nearest}.")
    return (f"**Neither token is the more distinct by both measures.** The token further from real patches "
            f"{on_average} is {m_label if mean_mto else b_label}'s; the one further {nearest} is "
            f"{m_label if max_mto else b_label}'s. So MTO's token is not plainly more distinct here.")


SINGULARITY_WHY = ("Why MTO's token need not stand further apart here: this histogram looks at the mask token where "
                   "it enters, before any layer. MTO's constraints act inside the layers (L_sing on the tokens' hidden "
                   "states layer by layer, recalibration on the attention), so the singularity MTO aims at is a "
                   "property of the layers' tokens, not of this input vector: the **Tokens** page measures it "
                   "there (the singularity score S per layer).")


def default_query(image: torch.Tensor, mask: torch.Tensor, patch_size: int, centre: bool = False) -> int:
    """The patch the Attention page opens on: a visible patch on the object, the one with the most
    ink (the largest mean pixel; Fashion-MNIST's items are light on black), the nearest to the
    centre among equals; not a masked or empty corner. ``centre``: a photo, whose subject is mostly
    in the middle (its brightest patch may be sky): the visible patch nearest the centre."""
    x = image.float()[0] if image.ndim == 4 else image.float()
    g = x.shape[-1] // patch_size
    ink = x.mean(0).reshape(g, patch_size, g, patch_size).mean(dim=(1, 3)).flatten()
    rows, cols = np.divmod(np.arange(g * g), g)
    middle = (g - 1) / 2
    distance = torch.tensor((rows - middle) ** 2 + (cols - middle) ** 2, dtype=torch.float32)
    score = -distance if centre else ink - 1e-6 * distance
    score = torch.where(mask.bool(), torch.full_like(ink, -float("inf")), score)
    return int(score.argmax())
