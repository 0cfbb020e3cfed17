"""Long streams of real and adversarial input: C equals the integer reference at every step, and saturation is
counted (make longstream runs the full 10^6 steps; this runs 60,000)."""

from __future__ import annotations

import numpy as np

from conftest import SHIPPED, need
from edgemem.verify.stress import PATTERNS, pattern_stream, stress


def test_patterns_are_what_they_say():
    rng = np.random.default_rng(0)
    assert set(np.unique(pattern_stream("full_scale_random", 100, 6, rng))) == {-128, 127}
    alt = pattern_stream("alternating", 4, 2, rng)
    assert alt[:, 0].tolist() == [127, -128, 127, -128]
    assert len(PATTERNS) == 6


def test_long_streams_match_at_every_step_and_count_saturation():
    need("gcc", "make")
    r = stress(SHIPPED, steps=60_000, streams=12)
    assert r["steps"] == 60_000 and r["steps_checked"] == 60_000
    assert r["steps_mismatched"] == 0
    assert set(r["saturated_fraction"]) == {"real", "adversarial"}
    assert r["saturated_values"]["mem_hidden"] > 0  # full-scale input drives membranes to the clip: counted
