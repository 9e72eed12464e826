import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mto_core.bench.measure import format_report, time_steps, train_flops
from mto_core.data.masking import make_mask
from mto_core.models.build import build_model

from .conftest import small_config
from .test_cli import mto_here


def test_analytic_flops_match_the_counted_ones():
    """With every layer on the explicit attention path, torch's counter sees every matmul."""
    config = small_config("simmim")
    model = build_model(config.model, config.mto)
    images, mask = torch.rand(8, 1, 28, 28), make_mask(8, 7, 0.6, 0)
    with FlopCounterMode(display=False) as counter:
        model(images, mask, probs_layers=range(1, config.model.depth + 1)).loss.backward()
    assert train_flops(config.model, 8, 0.6) == pytest.approx(counter.get_total_flops(), rel=0.01)


def test_mae_encoder_flops_count_visible_tokens_only():
    mae, simmim = small_config("mae").model, small_config("simmim").model
    assert train_flops(mae, 8, 0.75) < train_flops(mae, 8, 0.25)
    assert train_flops(simmim, 8, 0.75) == train_flops(simmim, 8, 0.25)


def test_time_steps_runs_every_variant_each_round():
    calls = {"a": 0, "b": 0}

    def make(name):
        def step():
            calls[name] += 1
        return step

    result = time_steps({"a": make("a"), "b": make("b")}, torch.device("cpu"), rounds=3, warmup=1)
    assert set(result) == {"a", "b"} and calls == {"a": 4, "b": 4}


def test_bench_command_reports_every_figure(capsys):
    bench = mto_here(capsys, "bench", "--json", "--rounds", "1", "--batch-size", "8", "--no-memory",
                     check=True)
    result = json.loads(bench.stdout)
    assert result["matmul_peak_gflops"] > 0
    variants = {(r["method"], r["variant"]) for r in result["training"]}
    assert ("simmim", "MTO (all defaults)") in variants and ("mae", "+L_sing") in variants
    assert {("conmim", "baseline"), ("conmim", "MTO (all defaults)"), ("bootmae", "MTO (all defaults)")} <= variants
    assert set(result["plain_references"]) == {"conmim", "bootmae"}  # their plain PyTorch loops
    assert all(r["images_per_s"] > 0 and 0 < r["share_of_peak"] for r in result["training"])
    assert {r["operation"] for r in result["app_latency"]} >= {"reconstruct 1 image, baseline + MTO"}
    assert "| tiny | simmim | baseline |" in format_report(result)
    plain = result["plain_reference"]  # the plain PyTorch loop of mto_core/bench/plain_loop.py
    assert plain["plain_ms"] > 0 and plain["speedup"] == pytest.approx(plain["plain_ms"] / plain["mto_ms"])
    assert "plain PyTorch loop of the same shape" in format_report(result)
