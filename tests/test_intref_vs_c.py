"""The integer rules, and the L2MU's integer graph against the C runtime bit for bit: random models, random and
extreme input, every real held-out window."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import need, random_l2mu
from edgemem.graph.arena import place_by_lifetime
from edgemem.graph.blob import build_graph_blob
from edgemem.graph.intops import quantize, quantize_multiplier, requant, rshift_round, sat
from edgemem.quant.lower import lower
from edgemem.verification import c_runtime
from edgemem.verification.held_out import int_model


def test_requant_rounds_half_up_and_saturates():
    m, s = quantize_multiplier(0.5)
    assert (m, s) == (1 << 30, 31)
    np.testing.assert_array_equal(requant(np.array([3, -3, 1, -1, 5]), m, s), [2, -1, 1, 0, 3])
    big, bs = quantize_multiplier(1000.0)
    np.testing.assert_array_equal(requant(np.array([2**31 - 1, -(2**31)]), big, bs), [2**31 - 1, -(2**31)])
    assert rshift_round(np.array([-3]), 1)[0] == -1 and rshift_round(np.array([3]), 1)[0] == 2
    np.testing.assert_array_equal(sat(np.array([40000, -40000, 5]), 16), [32767, -32768, 5])


@pytest.mark.parametrize("real", [1e-9, 3.3e-5, 0.5, 0.999999999, 1.0, 7.25, 12345.6])
def test_quantize_multiplier_is_accurate(real):
    m, s = quantize_multiplier(real)
    assert 2**30 <= m < 2**31 and 1 <= s <= 62
    assert abs(m * 2.0**-s - real) <= real * 2**-30


def _models():
    yield "lif", random_l2mu(0, ("lif", "lif", "lif"))
    yield "cuba", random_l2mu(1, ("cuba", "cuba", "cuba"), n_u=2, order=4, n_h=9, n_in=3, n_out=4)
    yield "mixed", random_l2mu(2, ("lif", "cuba", "lif"), n_u=5, order=10, n_h=20)


@pytest.mark.parametrize("name,model", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_c_host_matches_integer_reference_over_10000_steps(name, model, rng, tmp_path):
    need("gcc", "make")
    n_in = model.cfg.n_in
    calib = rng.normal(size=(32, 60, n_in)).astype(np.float32)
    low = lower(model, calib)
    place_by_lifetime(low.graph)
    blob = tmp_path / "model.bin"
    blob.write_bytes(build_graph_blob(low.graph))
    q = int_model(blob.read_bytes(), {"input_scale": low.input_scale})  # run exactly what the C runtime reads
    random_in = quantize(rng.normal(scale=1.5, size=(80, 100, n_in)), calib.std() * 3 / 127)
    extreme = rng.choice(np.array([-128, 127, 0]), size=(20, 100, n_in))  # full scale: saturation paths
    constant = np.full((10, 100, n_in), 127)
    for x in (random_in, extreme, constant):
        x = x.astype(np.int8)
        ref, spikes = q.run(x)
        host = c_runtime.run_host(blob, x, q.n_out)
        assert spikes > 0.5, "the test model must spike"
        mismatch = np.argwhere(ref != host)
        assert mismatch.size == 0, f"{name}: first mismatch at window/step/logit {mismatch[0]}"
    assert sum(v.shape[0] * v.shape[1] for v in (random_in, extreme, constant)) >= 10_000


def test_c_host_matches_integer_reference_on_every_real_test_window():
    need("gcc", "make")
    from conftest import SHIPPED
    from edgemem.verification.held_out import held_out_set

    meta, _, ts = held_out_set(SHIPPED)
    q = int_model((SHIPPED / "model.bin").read_bytes(), meta)
    x = quantize(ts.x, meta["input_scale"]).astype(np.int8)
    ref, _ = q.run(x)
    host = c_runtime.run_host(SHIPPED / "model.bin", x, q.n_out)
    assert x.shape[0] * x.shape[1] >= 10_000
    assert np.array_equal(ref, host)
