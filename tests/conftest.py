"""Shared helpers: a very small model so that the whole suite runs in minutes on 2 cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One torch thread per test process: the xdist workers (one per core) already fill the cores, and two
# threads each, with the app's server and Chromium beside them, left every core oversubscribed. The
# subprocesses the tests start (mto train, torchrun, the app's server) inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from mto_core.config import RunConfig, apply_overrides, preset

SMALL = ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.decoder_dim=32",
         "model.decoder_depth=2", "model.decoder_heads=2", "data.root=shipped"]


TESTS = Path(__file__).resolve().parent
# The app's training threads yield the CPU to page runs (a niceness of 10 on a server); in the suite the
# other workers' tests would starve them (a 17 s test took 157 s beside another worker). The app servers
# the tests start inherit this; test_training_job checks the lowering itself and the server's default.
os.environ.setdefault("MTO_TRAINING_NICENESS", "0")
# The k-NN probe that ends a Train-page run reads 2,000 + 1,000 images by default: most of a short
# run's time. The suite's runs probe 200 + 100 (test_training_job checks the setting itself).
os.environ.setdefault("MTO_TRAIN_KNN_BANK", "200")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups off the markers
def pytest_collection_modifyitems(items) -> None:
    """Under pytest-xdist (``-n``), the tests of a file stay together (their module fixtures are made
    once), and the app's tests all run in one worker: they share the runs/ folder and one server."""
    for item in items:
        path = Path(str(item.fspath)).resolve()
        group = "app" if TESTS / "app" in path.parents else str(path.relative_to(TESTS))
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_xdist_auto_num_workers(config) -> int:
    """``-n auto``: a worker per core, at most four (each holds torch and a model or two in memory)."""
    return max(1, min(os.cpu_count() or 1, 4))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts on one torch thread, as the subprocesses it starts do: a test that compares
    its own run with a subprocess's, bit for bit, is not undone by an earlier test that set another
    count (the app's training threads set their own)."""
    torch.set_num_threads(1)


def small_config(name: str = "simmim-mto", *extra: str) -> RunConfig:
    """A preset shrunk to width 32 and depth 2, on the shipped Fashion-MNIST subset."""
    return apply_overrides(preset(name), [*SMALL, *extra])


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def make_rgb_checkpoint(folder, name: str = "mae", width: int = 64, depth: int = 2, size: str = "vit-b", *extra: str):
    """A randomly initialised RGB model at 224 x 224 (16 x 16 patches, 196 of them) in mto's own format,
    of the shape of ``size`` with the width and depth given (0: the preset's own, a real ViT-B)."""
    import torch

    from mto_core.config import apply_overrides
    from mto_core.models.build import build_model
    from mto_core.models.checkpoint import save_snapshot

    config = preset(name, size)
    shape = [] if not width else [f"model.embed_dim={width}", f"model.depth={depth}", "model.num_heads=2",
                                  f"model.decoder_dim={width}", "model.decoder_depth=1", "model.decoder_heads=2"]
    config = apply_overrides(config, [*shape, "model.pixel_mean=[0.485,0.456,0.406]",
                                      "model.pixel_std=[0.229,0.224,0.225]", *extra])
    torch.manual_seed(0)
    model = build_model(config.model, config.mto)
    return save_snapshot(folder, model, config)


def run_folder_with(folder, model_fields: dict):
    """A real run folder of the small SimMIM under ``folder`` whose config.json's model section is
    then edited by hand with ``model_fields``; its checkpoint folder."""
    import json

    from mto_core.models.build import build_model
    from mto_core.models.checkpoint import save_checkpoint

    config = small_config("simmim")
    saved_in = save_checkpoint(folder, 1, build_model(config.model, config.mto), config, {"step": 1}, 1)
    saved = json.loads((saved_in / "config.json").read_text())
    saved["model"].update(model_fields)
    (saved_in / "config.json").write_text(json.dumps(saved))
    return saved_in
