"""The efficiency measures and their statistics, against hand computations."""

import math
import statistics

import numpy as np
import pytest
from scipy import stats

from mto_core.eval.efficiency import (curve, detectable, epochs_to_target, mean_accuracy, paired, reach,
                                      sign_test, speedup)

EPOCHS = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6])


def _base(t):
    """A rising, saturating accuracy curve: 0.55 at init towards 0.80."""
    return 0.55 + 0.25 * (1 - np.exp(-np.asarray(t) / 2))


def test_reach_interpolates_between_probe_points():
    c = (np.array([0.0, 1, 2]), np.array([0.5, 0.6, 0.8]))
    assert reach(c, 0.7) == pytest.approx(1.5)
    assert reach(c, 0.4) == 0.0 and reach(c, 0.81) is None
    # a float tie counts as reached
    tied = (c[0], np.array([0.5, 0.6, 0.1 + 0.7]))  # 0.7999999999999999
    assert reach(tied, 0.8) == pytest.approx(2.0)
    assert epochs_to_target(c, 0.6 + 1e-12) == 1


def test_speedup_recovers_a_known_factor_and_its_interval():
    # the method at epoch t is the baseline at 2t, plus seed noise in the method's pace
    rng = np.random.default_rng(0)
    pairs, factors = [], []
    for _ in range(8):
        s = 2 * math.exp(rng.normal(0, 0.05))
        factors.append(s)
        pairs.append(((EPOCHS, _base(s * EPOCHS)), (EPOCHS, _base(EPOCHS))))
    thresholds = [float(_base(e)) for e in (1, 1.5, 2, 3)]
    result = speedup(pairs, thresholds)
    assert len(result["used"]) == 4
    assert result["s"] == pytest.approx(math.exp(statistics.fmean(map(math.log, factors))), rel=0.03)
    assert result["ci"][0] < result["s"] < result["ci"][1] and result["ci"][0] > 1.5
    # smallest detectable s by hand: exp((t_{0.975, 7} + t_{0.8, 7}) * sd(log s) / sqrt(8))
    from scipy.stats import t
    logs = [math.log(v) for v in result["per_seed"]]
    by_hand = math.exp((t.ppf(0.975, 7) + t.ppf(0.8, 7)) * statistics.stdev(logs) / math.sqrt(8))
    assert result["detectable"] == pytest.approx(by_hand, rel=1e-9) and 1 < result["detectable"] < 1.2
    same = speedup([((EPOCHS, _base(EPOCHS)), (EPOCHS, _base(EPOCHS)))] * 3, thresholds)
    assert same["s"] == pytest.approx(1.0)
    # a threshold that one run never reaches is not used
    assert speedup(pairs, [0.99])["s"] is None


def test_paired_uses_sample_std_t_interval_and_sign_test():
    diffs = [0.02, -0.01, 0.03, 0.01]
    result = paired(diffs)
    sd = statistics.stdev(diffs)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert result["sd"] == pytest.approx(sd) and result["sd"] != pytest.approx(statistics.pstdev(diffs))
    assert result["ci"] == pytest.approx((0.0125 - half, 0.0125 + half))
    assert result["reading"] == "no clear effect"  # the interval contains 0 although mean > sd
    assert result["sign"] == {"up": 3, "down": 1, "ties": 0, "p": pytest.approx(0.625)}
    assert paired([0.02, 0.021, 0.019])["reading"] == "helps"
    assert paired([-0.02, -0.021, -0.019])["reading"] == "hurts"
    assert paired([0.02])["reading"] == "no clear effect"
    assert sign_test([0.0, 1e-12, 0.1])["ties"] == 2


def test_detectable_matches_a_power_calculation():
    # by construction: a true mean of `d` gives a t statistic of t_.975 + t_.8 on average
    d = detectable(0.01, 8)
    assert d == pytest.approx((stats.t.ppf(0.975, 7) + stats.t.ppf(0.8, 7)) * 0.01 / math.sqrt(8))
    assert math.isnan(detectable(0.01, 1))


def test_curve_reads_probe_rows_at_fractions_of_an_epoch_and_skips_bad_values():
    rows = [{"kind": "probe", "epoch": 0.0, "knn_val": 0.5}, {"kind": "probe", "epoch": 0.5, "knn_val": 0.55},
            {"kind": "epoch", "epoch": 1, "knn_val": 0.6}, {"kind": "probe", "epoch": 2, "knn_val": "0.7"},
            {"kind": "train", "epoch": 1.5, "knn_val": 0.9}]
    assert curve(rows)[0].tolist() == [0, 0.5, 1] and curve(rows)[1].tolist() == [0.5, 0.55, 0.6]
    assert mean_accuracy((np.array([0.0, 2]), np.array([0.5, 0.7]))) == pytest.approx(0.6)
