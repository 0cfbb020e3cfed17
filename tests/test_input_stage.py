"""Input stages (docs/graph.md "Input stages"): the SENSOR op's Python spec against its graph reference, the C runtime
(host and emulated Cortex-M4) and the float->counts helper bit for bit; the exported stage of a shipped HAR model;
bad sensor values."""

from __future__ import annotations

import ctypes
import json

import numpy as np
import pytest

from conftest import need
from edgemem.errors import EdgememError
from edgemem.graph.blob import build_graph_blob, parse_graph_blob
from edgemem.graph.check import GraphDefect
from edgemem.graph.ref import run_graph
from edgemem.graph.sensor import counts_from_float, sensor_stage, sensor_tables
from edgemem.graph.stages import sensor_stage_graph
from edgemem.verification import c_runtime

MEAN = np.array([0.1, 0.4, -0.1, 0.0, 0.02, -0.3])
STD = np.array([0.9, 0.5, 0.56, 1.0, 2.6, 1.1])
FULL_SCALE = np.array([8.0, 8.0, 8.0, 34.906585, 34.906585, 34.906585])


def _counts(rng: np.random.Generator, n: int, steps: int, decim: int) -> np.ndarray:
    """Random, saturated and constant streams of int16 counts [n][steps][decim][6]."""
    c = rng.integers(-32768, 32768, size=(n, steps, decim, 6)).astype(np.int64)
    c[0] = 32767
    c[1] = -32768
    c[2] = rng.normal(scale=2000, size=c[2].shape).round().clip(-32768, 32767)
    return c.astype(np.int16)


@pytest.mark.parametrize("decim", [1, 2, 5])
def test_sensor_graph_equals_spec_and_c_host_and_m4(decim, rng, tmp_path):
    t = sensor_tables(MEAN, STD, 0.0647, FULL_SCALE, decim)
    g = sensor_stage_graph(t)
    blob = tmp_path / "stage.bin"
    blob.write_bytes(build_graph_blob(g))
    assert parse_graph_blob(blob.read_bytes()).is_input_stage
    c = _counts(rng, 6, 40, decim)
    spec = sensor_stage(t, c)
    x = c.reshape(6, 40, decim * 6)
    np.testing.assert_array_equal(run_graph(g, x), spec)
    assert {-128, 127} <= set(np.unique(spec).tolist()), "the test must reach both int8 bounds"
    need("gcc", "make")
    np.testing.assert_array_equal(c_runtime.run_host(blob, x, 6), spec)
    if decim == 2:
        need("arm-none-eabi-gcc", "qemu-system-arm")
        np.testing.assert_array_equal(c_runtime.run_cortex_m4(blob, x[:2], 6).logits, spec[:2])


def test_sensor_stage_agrees_with_the_float_formula(rng):
    """Against normalize-then-quantize in float64: equal except where the count rounding moves a value across an
    int8 boundary (one step at most)."""
    t = sensor_tables(MEAN, STD, 0.0647, FULL_SCALE, 2)
    x = rng.normal(size=(50, 30, 2, 6)) * np.array([1, 1, 1, 3, 3, 3])
    q = sensor_stage(t, counts_from_float(x, t.inv_lsb))
    v = ((x.mean(axis=2) - MEAN) / STD) / 0.0647
    f = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)
    assert (q == f).mean() > 0.995 and np.abs(q - f).max() <= 1


def test_counts_from_float_matches_c_bit_for_bit(rng):
    need("gcc", "make")
    from edgemem.demo.runtime import build_shared

    lib = ctypes.CDLL(str(build_shared()))
    inv = np.array([4096.0, 938.734, 1.0, 3.0, 0.5, 7.0], dtype=np.float32)
    ties = np.array([0.5, -0.5, 1.5, -2.5, 32766.5, -32767.5], dtype=np.float32)[:, None] / inv  # near-ties after *inv
    x = np.concatenate([rng.normal(scale=3.0, size=(500, 6)), rng.uniform(-40, 40, size=(500, 6)),
                        np.tile(ties, (1, 1))[:6], np.full((2, 6), 1e9), np.full((2, 6), -1e9)]).astype(np.float32)
    out = np.zeros(x.shape, dtype=np.int16)
    f32p, i16p = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_int16)
    st = lib.em_sensor_counts_f32(x.ctypes.data_as(f32p), x.shape[0], 6, inv.ctypes.data_as(f32p),
                                  out.ctypes.data_as(i16p))
    assert st == 0
    np.testing.assert_array_equal(out, counts_from_float(x, inv))
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[7, 3] = bad
        before = out.copy()
        assert lib.em_sensor_counts_f32(y.ctypes.data_as(f32p), y.shape[0], 6, inv.ctypes.data_as(f32p),
                                        out.ctypes.data_as(i16p)) == -18  # EM_ERR_VALUE, nothing written
        np.testing.assert_array_equal(out, before)
        with pytest.raises(EdgememError, match=r"index \(7, 3\).*NaN or infinite"):
            counts_from_float(y, inv)


def test_sensor_c_kernel_checks_its_arguments():
    need("gcc", "make")
    from edgemem.demo.runtime import build_shared

    lib = ctypes.CDLL(str(build_shared()))
    x = (ctypes.c_int16 * 12)()
    off, mult, out = (ctypes.c_int32 * 6)(), (ctypes.c_int32 * 6)(*([1 << 30] * 6)), (ctypes.c_int8 * 6)()
    shift = (ctypes.c_int8 * 6)(*([31] * 6))
    assert lib.em_sensor_s16(x, 6, 2, off, mult, shift, out) == 0
    assert lib.em_sensor_s16(None, 6, 2, off, mult, shift, out) == -1  # EM_ERR_NULL
    assert lib.em_sensor_s16(x, 0, 2, off, mult, shift, out) == -7  # EM_ERR_DIMS
    assert lib.em_sensor_s16(x, 6, 1025, off, mult, shift, out) == -7
    shift[3] = 0
    assert lib.em_sensor_s16(x, 6, 2, off, mult, shift, out) == -12  # EM_ERR_PARAM


def test_stage_graphs_are_checked():
    t = sensor_tables(MEAN, STD, 0.0647, FULL_SCALE, 2)
    g = sensor_stage_graph(t)
    g.tensors[2].data[0] = 0  # a shift of 0
    with pytest.raises(GraphDefect, match="out-of-range requantization") as e:
        build_graph_blob(g)
    assert e.value.status == "PARAM"
    g = sensor_stage_graph(t)
    g.buffers[g.out_buffer].dtype = g.buffers[g.in_buffer].dtype  # s16 out: neither a model nor a stage
    with pytest.raises(GraphDefect) as e:
        build_graph_blob(g)
    assert e.value.status == "BUFFER"


@pytest.mark.parametrize("args,msg", [
    (dict(full_scale=np.array([8.0] * 5)), "one value per channel"),
    (dict(full_scale=np.array([8.0, 8, 8, 0, 8, 8])), "positive and finite"),
    (dict(decim=0), "downsample"),
    (dict(input_scale=float("nan")), "input scale"),
])
def test_sensor_tables_refuse_bad_parameters(args, msg):
    kw = dict(mean=MEAN, std=STD, input_scale=0.0647, full_scale=FULL_SCALE, decim=2) | args
    with pytest.raises(EdgememError, match=msg):
        sensor_tables(**kw)


def test_shipped_har_export_has_a_sensor_stage():
    meta = json.loads(open("export/har_l2mu/meta.json").read())
    st = meta["input_stage"]
    assert st["kind"] == "sensor" and st["n_in"] == 12 and st["n_out"] == 6 and st["samples_per_step"] == 2
    g = parse_graph_blob(open("export/har_l2mu/input_stage.bin", "rb").read())
    assert g.is_input_stage and g.n_in == 12
    h = open("export/har_l2mu/model.h").read()
    assert "#define EM_INPUT_STAGE_SENSOR 1" in h and "EM_MODEL_SENSOR_INV_LSB {4096.0f" in h
