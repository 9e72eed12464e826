"""logic/scales.py: per-layer charts on fixed, meaningful ranges."""

from logic.scales import measure_range

from .apptest import ALONE_OPTION, run, specs


def test_ranges_are_fixed_and_widen_only_for_values_outside():
    low, high = measure_range("heterogeneity", [-0.01, 0.015], 0.6)  # noise around 0: not zoomed in
    assert low < 0 and -0.05 < low and 0.99 < high < 1.05
    low, high = measure_range("attn_visible_to_masked", [0.1, 0.2], 0.6)
    assert -0.03 < low <= 0 and 0.6 <= high < 0.65
    assert measure_range("attn_visible_to_masked", [0.7], 0.6)[1] >= 0.7
    assert measure_range("fisher_ratio", [3.0, 5.0], 0.6)[0] < 0 < 5.0 < measure_range("fisher_ratio", [3.0, 5.0], 0.6)[1]
    assert measure_range("no such measure", [1.0], 0.6) is None


def test_attention_and_tokens_per_layer_charts_with_one_checkpoint_keep_their_ranges():
    for page, key, titles in (("pages/3_Attention.py", "attn", ("heterogeneity HI", "visible → masked attention a_VM")),
                              ("pages/2_Tokens.py", "tokens", ("singularity score S",))):
        at = run(page)
        at.sidebar.selectbox(key=f"{key}-mto-simmim").set_value(ALONE_OPTION).run()
        ratio = at.sidebar.slider(key=f"{key}-ratio").value
        found = {}
        for spec in specs(at):
            title = spec["layout"].get("yaxis", {}).get("title", {}).get("text", "")
            if title in titles:
                found[title] = spec["layout"]["yaxis"]["range"]
        assert set(found) == set(titles), found
        for title, (low, high) in found.items():
            top = ratio if "a_VM" in title else 1.0
            assert low <= 0.0 and high >= top and high < top + 0.1, (title, low, high)
