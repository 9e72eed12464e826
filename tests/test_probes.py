"""One sampling of the probe sets and one schedule for every probe a run or a checkpoint gets."""

import torch

from mto_core.models.build import build_model
from mto_core.eval.schedule import QUICK_BANK, ProbeSchedule, probe_sets

from .conftest import small_config


def test_eval_and_training_probe_the_same_bank_draw():
    config = small_config("simmim", "train.probe_bank=300", "train.probe_val=50")
    bank, val = probe_sets(config)
    wider, test = probe_sets(config, 500, 0, "test")
    # one draw: a larger bank starts with the smaller one (a prefix of the same permutation)
    assert torch.equal(wider.images[:300], bank.images) and torch.equal(wider.labels[:300], bank.labels)
    assert len(val) == 50 and len(test) > 50
    assert len(probe_sets(config, QUICK_BANK, 10)[1]) == 10


def test_schedule_keys_points_by_step_and_epochs_by_every():
    config = small_config("simmim", "train.probe_points=0,0.5", "train.linear_points=1", "train.knn_every=2",
                          "train.linear_every=0", "train.probe_bank=100", "train.probe_val=40")
    schedule = ProbeSchedule(config, 10, torch.device("cpu"))
    assert schedule.knn == {0: 0.0, 5: 0.5} and schedule.linear == {10: 1.0}
    torch.manual_seed(0)
    model = build_model(config.model, config.mto)
    row = schedule.at_step(model, 5)
    assert row["kind"] == "probe" and row["epoch"] == 0.5 and set(row) >= {"knn_val", "probe_s"}
    assert schedule.at_step(model, 3) is None
    assert set(schedule.at_epoch(model, 2, final=False)) == {"knn_val"}
    assert schedule.at_epoch(model, 1, final=False) == {}
