"""models/build.py and the method registry: a method registered once is known everywhere."""

import sys
from pathlib import Path

import pytest
import torch

from mto_core import MethodFacts, register_method
from mto_core.bench.measure import train_flops
from mto_core.cli import main
from mto_core.config import METHODS, ConfigError, preset
from mto_core.data.masking import make_mask
from mto_core.models.build import MODELS, build_model
from mto_core.models.objective import parameter_count
from mto_core.models.simmim import SimMIM

APP = Path(__file__).resolve().parent.parent / "app"


@pytest.fixture
def toy_method():
    """A fifth method, known only inside the test that asks for it."""

    class ToyMIM(SimMIM):
        facts = MethodFacts("toymim", "ToyMIM", mask_in_encoder=True, mto_layers="encoder", mask_ratio=0.5)

    register_method(ToyMIM)
    yield ToyMIM
    METHODS.pop("toymim")
    MODELS.pop("toymim")


def test_a_method_registered_in_a_test_is_in_the_cli_the_counts_and_the_app_s_labels(toy_method, capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    assert done.value.code == 0 and "toymim-mto" in capsys.readouterr().out

    config = preset("toymim-mto")
    assert config.mask.ratio == 0.5 and config.mto.enabled and config.model.mask_in_encoder
    model = build_model(config.model, config.mto)
    assert isinstance(model, toy_method)
    assert parameter_count(config.model) == sum(p.numel() for p in model.parameters())
    assert train_flops(config.model, 8, 0.5) == 8 * toy_method.step_flops(config.model, 0.5) > 0
    images = torch.rand(2, 1, 28, 28)
    assert torch.isfinite(model(images, make_mask(2, config.model.grid, 0.5, 0)).loss)

    sys.path.insert(0, str(APP))
    from logic.labels import describe_config, mask_site, method_names

    assert method_names()["toymim"] == "ToyMIM"
    assert describe_config(config).label == "ToyMIM + MTO"
    assert describe_config(preset("toymim")).label == "ToyMIM (baseline)"
    assert mask_site(config.model) == "encoder"


def test_a_method_no_longer_registered_is_refused_in_one_line(toy_method):
    config = preset("toymim")
    METHODS.pop("toymim")
    MODELS.pop("toymim")
    try:
        with pytest.raises(ConfigError, match="unknown preset 'toymim'; choose one of simmim"):
            preset("toymim")
        with pytest.raises(ConfigError, match="unknown method 'toymim'"):
            parameter_count(config.model)
    finally:
        register_method(toy_method)


def test_only_a_model_class_with_its_facts_can_register():
    class NoFacts(SimMIM):
        pass

    with pytest.raises(TypeError, match="MethodFacts"):
        register_method(NoFacts)
    with pytest.raises(TypeError, match="MethodFacts"):
        register_method(torch.nn.Linear)


@pytest.mark.parametrize("name", ["simmim", "mae", "conmim", "bootmae"])
def test_meta_device_counts_equal_the_built_models(name):
    config = preset(name)
    assert parameter_count(config.model) == sum(p.numel() for p in build_model(config.model, config.mto).parameters())
