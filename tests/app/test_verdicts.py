"""logic/verdicts.py: which mask token is the more distinct, in words."""

import re

from .apptest import run, texts


def test_learn_says_which_mask_token_is_more_distinct_by_each_measure_and_why_mto_s_may_not_be():
    from logic.verdicts import singularity_verdict

    both = singularity_verdict(("base", 0.2, 0.5), ("mto", 0.1, 0.4))
    assert both.startswith("**mto's mask token is the more distinct by both measures**")
    neither = singularity_verdict(("base", 0.2, 0.5), ("mto", 0.3, 0.6))
    assert neither.startswith("**base's mask token is the more distinct by both measures**")
    mixed = singularity_verdict(("base", -0.122, 0.055), ("mto", -0.197, 0.091))  # the shipped SimMIM pair, as found
    assert mixed.startswith("**Neither token is the more distinct by both measures.**")
    assert "on average (mto's mean cosine -0.197 vs -0.122) is mto's" in mixed
    assert "at its nearest real patch (base's largest cosine 0.055 vs 0.091) is base's" in mixed


def test_two_baselines_or_equal_values_name_no_mto_and_no_winner():
    from logic.verdicts import singularity_verdict

    two = singularity_verdict(("SimMIM (baseline)", -0.053, 0.2), ("SimMIM (baseline) b", 0.119, 0.3))
    assert "MTO" not in two and two.startswith("**SimMIM (baseline)'s mask token is the more distinct")
    equal = singularity_verdict(("a", 0.0, 0.0), ("b", 0.0, 0.0))
    assert equal.startswith("**Neither token is the more distinct: the two measures are equal**")
    assert "a's" not in equal and "b's" not in equal
    one_tie = singularity_verdict(("a", 0.1, 0.3), ("b", 0.1, 0.2))
    assert one_tie.startswith("**b's mask token is the more distinct by one measure, the other a tie**")
    one_tie = singularity_verdict(("a", 0.2, 0.3), ("b", 0.1, 0.3))
    assert one_tie.startswith("**b's mask token is the more distinct by one measure, the other a tie**")
    for method in ("simmim", "mae"):
        at = run("Home.py")
        if method != "simmim":
            at.sidebar.radio(key="learn-method").set_value(method).run()
        said = texts(at)
        stats = re.findall(r"\*\*([^*]+)\*\*: mean cosine (-?[\d.]+), largest (-?[\d.]+)", said)
        assert len(stats) == 2, said
        (b, bm, bx), (m, mm, mx) = stats
        expected = singularity_verdict((b, float(bm), float(bx)), (m, float(mm), float(mx)))
        assert expected.split(":")[0][:40] in said
        assert "the singularity MTO aims at is a property of the layers' tokens" in said



def test_floor_sentence_names_the_floors_a_model_is_and_is_not_below():
    from logic.verdicts import floor_sentence

    floors = {"mean colour": 0.04, "biharmonic": 0.02}
    assert "lower than every fill" in floor_sentence("m", 0.01, floors)
    assert "lower than mean colour, but biharmonic is lower still" in floor_sentence("m", 0.03, floors)
    assert "0.75 x mean colour, 1.50 x biharmonic" in floor_sentence("m", 0.03, floors)
    assert "not lower than any" in floor_sentence("m", 0.05, floors)
