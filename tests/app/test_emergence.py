"""logic/emergence.py: the Train page's sentence on the two runs names a run ahead only beyond noise."""

from logic.emergence import alike_sentence


def _rows(points: list[tuple[int, float, float]]) -> list[dict]:
    return [{"kind": "trace", "step": step, "layer": 1, "singularity": s, "silhouette": sil, "a_vm": 0.0,
             "entropy_masked": 0.5} for step, s, sil in points]


def test_mto_is_called_ahead_only_when_both_gaps_are_beyond_their_noise():
    base = _rows([(0, 0.10, 0.10), (5, 0.11, 0.10), (10, 0.114, 0.10)])
    close = _rows([(0, 0.10, 0.10), (5, 0.11, 0.10), (10, 0.121, 0.20)])  # S 0.114 vs 0.121: within noise
    said = alike_sentence({"baseline": base, "MTO": close})
    assert "stand further apart" not in said and "neither run is clearly ahead" in said, said
    assert "only the silhouette differs beyond its noise" in said
    far = _rows([(0, 0.10, 0.10), (5, 0.11, 0.10), (10, 0.30, 0.30)])
    assert "MTO's masked tokens stand further apart" in alike_sentence({"baseline": base, "MTO": far})
    same = _rows([(0, 0.10, 0.10), (5, 0.11, 0.10), (10, 0.12, 0.11)])
    assert "look alike" in alike_sentence({"baseline": base, "MTO": same})


def test_a_gap_that_swings_from_point_to_point_is_noise():
    base = _rows([(s, 0.1, 0.1) for s in range(0, 30, 5)])
    swinging = _rows([(0, 0.1, 0.1), (5, 0.3, 0.3), (10, 0.0, 0.0), (15, 0.3, 0.3), (20, 0.0, 0.0), (25, 0.25, 0.25)])
    said = alike_sentence({"baseline": base, "MTO": swinging})
    assert "stand further apart" not in said, said
