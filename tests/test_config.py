import json

import pytest

from mto_core.config import ConfigError, RunConfig, apply_overrides, parse_assignment, preset


def test_presets_differ_only_in_method_and_mto():
    base, mto = preset("simmim"), preset("simmim-mto")
    assert not base.mto.enabled
    assert mto.mto.hard_recalibration and mto.mto.singularity_weight == 0.1
    assert mto.mto.entropy_weight == 0.01 and mto.mto.recalibration_weight == 0
    assert preset("mae").model.method == "mae" and preset("mae").mask.ratio == 0.75


def test_json_round_trip():
    config = apply_overrides(preset("mae-mto"), ["mto.tau=0.2", "mto.depth=1"])
    again = RunConfig.from_dict(json.loads(config.to_json()))
    assert again == config


def test_set_parses_json_values():
    assert parse_assignment("mto.entropy_weight=0") == ("mto.entropy_weight", 0)
    assert parse_assignment("mto.depth=null") == ("mto.depth", None)
    assert parse_assignment("data.root=/x/y") == ("data.root", "/x/y")
    config = apply_overrides(preset("simmim-mto"), ["mto.entropy_weight=0", "mto.hard_recalibration=false"])
    assert config.mto.entropy_weight == 0.0 and config.mto.hard_recalibration is False


@pytest.mark.parametrize("assignment, words", [
    ("mto.no_such=1", "unknown config key"),
    ("nosection.x=1", "unknown config key"),
    ("mto.entropy_weight=abc", "must be a number"),
    ("mto.hard_recalibration=1", "true or false"),
    ("train.batch_size=1.5", "whole number"),
    ("mto.tau=0", "mto.tau"),
    ("model.patch_size=5", "must divide"),
    ("mask.ratio=1", "strictly between 0 and 1"),
    ("mask.ratio=0", "strictly between 0 and 1"),
    ("mask.ratio=-0.5", "strictly between 0 and 1"),
    ("mto.depth=9", "between 0 and 6"),
    ("model.size=huge", "unknown model size"),
    ("mask.kind=spiral", "must be one of"),
])
def test_bad_values_are_named(assignment, words):
    with pytest.raises(ConfigError, match=words):
        apply_overrides(preset("simmim-mto"), [assignment])


def test_nan_ratio_rejected():
    config = preset("simmim")
    config.mask.ratio = float("nan")
    with pytest.raises(ConfigError, match="strictly between"):
        apply_overrides(config, [])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("bert")
