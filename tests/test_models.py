"""build_model lives in models/build.py, above objective.py, simmim.py and mae.py: no import circle."""

import ast
from pathlib import Path

import pytest
import torch

import mto_core
from mto_core.models.mae import MAE
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model
from mto_core.models.objective import MIMModel
from mto_core.models.simmim import SimMIM

from .conftest import small_config

PACKAGE = Path(mto_core.__file__).parent


def _imported(path: Path, top_level_only: bool = False) -> set[str]:
    """Dotted names of every module (and ``from x import name``) that ``path`` imports."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.add(module)
            names |= {f"{module}.{alias.name}".lstrip(".") for alias in node.names}
    return names


def _mentions(names: set[str], module: str) -> bool:
    return any(module in name.split(".") for name in names)


@pytest.mark.parametrize("module", ["simmim", "mae", "build"])
def test_objective_does_not_import_the_models_built_on_it(module):
    assert not _mentions(_imported(PACKAGE / "models" / "objective.py"), module)


def test_models_imports_both_methods_at_module_top():
    top = _imported(PACKAGE / "models" / "build.py", top_level_only=True)
    assert _mentions(top, "simmim") and _mentions(top, "mae")
    assert not hasattr(mto_core.models.objective, "build_model")
    assert mto_core.build_model is build_model


@pytest.mark.parametrize("name, cls", [("simmim-mto", SimMIM), ("mae-mto", MAE)])
def test_build_model_builds_both_methods(name, cls):
    config = small_config(name)
    model = build_model(config.model, config.mto)
    assert isinstance(model, cls) and isinstance(model, MIMModel)
    out = model(torch.rand(2, 1, 28, 28), make_mask(2, config.model.grid, 0.6, 0))
    assert torch.isfinite(out.loss)


def test_simmim_s_pixel_loss_is_l1_by_default_and_squared_error_with_l2():
    from mto_core.config import ConfigError, set_value, validate

    torch.manual_seed(0)
    config = small_config("simmim")
    model = build_model(config.model, config.mto).eval()
    images = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    mask = make_mask(2, config.model.grid, 0.6, 0)
    with torch.no_grad():
        out = model(images, mask)
        error = out.pred - model.target(images)
        assert torch.allclose(out.loss, error.abs().mean(-1)[mask].mean())
        model.config.pixel_loss = "l2"
        out = model(images, mask)
        assert torch.allclose(out.loss, error.square().mean(-1)[mask].mean())
    mae = small_config("mae")
    set_value(mae, "model.pixel_loss", "l2")
    with pytest.raises(ConfigError, match="applies to SimMIM only"):
        validate(mae)
    with pytest.raises(ConfigError, match="must be one of l1, l2"):
        set_value(config, "model.pixel_loss", "huber")
