"""Long streams of real and adversarial input: C equals the integer reference at every step, and saturation is
counted (make longstream runs 10^6 steps of every shipped model; this runs 60,000 of the L2MU, fewer of others)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT, SHIPPED, need
from edgemem.verification.stress import PATTERNS, pattern_stream, stress


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
    mems = {k: v for k, v in r["saturated_values"].items() if k.endswith("_lif.mem")}
    assert len(mems) == 3  # encoder, memory and hidden populations
    assert max(mems.values()) > 0  # full-scale input drives membranes to the clip: counted
    assert any(k.endswith("_lmu.memory") for k in r["saturated_values"])


@pytest.mark.parametrize("name", ["kws_slmuformer", "psmnist_lmu"])
def test_every_kind_of_model_streams_long(name):
    """Not only the L2MU: a spiking LMUFormer (conv rings, LIF) and the LMU (784-step images, memory clamp)."""
    need("gcc", "make")
    r = stress(ROOT / "export" / name, steps=6_000, streams=4)
    assert r["steps_checked"] == 6_000 and r["steps_mismatched"] == 0
    assert r["saturated_values"] and all(v >= 0 for v in r["saturated_values"].values())
