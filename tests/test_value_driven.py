"""Value-driven precision per patch (edgemem/schedule/value_driven.py) and `edgemem plan --value-driven`."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from test_graph import _inputs, random_graph

from conftest import ROOT
from edgemem.errors import EdgememError
from edgemem.graph.ir import DType, Graph
from edgemem.graph.ref import init_state, run_graph
from edgemem.quant.lowering import Builder
from edgemem.schedule import value_driven as vd
from edgemem.schedule.plan import load_export_graph

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]
KWS = ("kws_lmuformer", "kws_lmuformer_mixed")


def tiny(weight_bits: dict[str, int] | None = None) -> Graph:
    """conv_a (k 3) -> relu h1 -> conv_b (k 2) + residual h1 -> relu -> fc_c -> sat | fc_d -> LEAKY trace (s16)
    -> head.

    The residual reads h1 too, which conv_b requantizes: only conv_b's view of h1 may change. The front stage is
    ops 0..6 (MAC ops 0, 2, 5), cut after the narrowest buffer; the head reads s16 values (16-bit activations in
    the BitOPs)."""
    rng = np.random.default_rng(0)
    b = Builder(4, 3, 0.05, weight_bits)
    a = b.conv1d("conv_a", rng.normal(0, 0.3, (8, 4, 3)), rng.normal(0, 0.2, 8), b.g.in_buffer, 0.06)
    h1 = b.act("h1", a, "relu")
    c = b.conv1d("conv_b", rng.normal(0, 0.3, (8, 8, 2)), None, h1, 0.06)
    b.add("res", h1, out=c)
    h2 = b.act("h2", c, "relu")
    f = b.fc("fc_c", rng.normal(0, 0.4, (5, 8)), None, h2, 0.05)
    h3 = b.act("h3", f, "sat")
    d = b.fc("fc_d", rng.normal(0, 0.4, (5, 5)), None, h3, 0.05)
    tr = b.leaky("trace", d, np.full(5, 0.8))
    return b.output(b.fc("head", rng.normal(0, 0.5, (3, 5)), None, tr, 0.05))


def bursty(seed: int, n: int = 6, steps: int = 20) -> np.ndarray:
    """int8 inputs: small values with a few loud frames, so that some patches hold outliers and others do not."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 12, (n, steps, 4))
    loud = rng.random((n, steps)) < 0.08
    x[loud] = rng.choice([-1, 1], (int(loud.sum()), 4)) * rng.uniform(90, 127, (int(loud.sum()), 4))
    return np.clip(np.round(x), -128, 127).astype(np.int64)


def streaming(g: Graph, x: np.ndarray, low: dict[int, np.ndarray], step: dict[int, float], bits: int) -> np.ndarray:
    """The graph step by step, as run_graph runs it, except that op i's kernel reads its input requantized at the
    frames where low[i] [B][T] is set (the buffer keeps its int8 codes for every other op): the reference that the
    module's op-major runner must reproduce."""
    st = init_state(g, x.shape[0])
    v = st.values
    out = np.zeros((x.shape[0], x.shape[1], g.n_out), dtype=np.int64)
    for t in range(x.shape[1]):
        v[g.in_buffer] = x[:, t].astype(np.int64)
        for i, run in enumerate(st.plan):
            if i not in low:
                run(v)
                continue
            op = g.ops[i]
            orig = v[op.in0]
            v[op.in0] = np.where(low[i][:, t, None], vd.requantize(orig, step[i], bits), orig)
            run(v)
            v[op.in0] = orig
        out[:, t] = v[g.out_buffer]
    return out


def test_tiny_graph_stage():
    g = tiny()
    assert vd.stage_end(g) == 6 and vd.mac_ops(g, 6) == [0, 2, 5]


def test_requantize_by_hand():
    # step 2: 3 -> 1.5 -> 2 (half away from zero) -> 4; 127 -> 63.5 -> 64 -> sat4 7 -> 14
    q = vd.requantize(np.array([3, -3, 1, -1, 0, 127, -128, 5]), 2.0, 4)
    assert q.tolist() == [4, -4, 2, -2, 0, 14, -16, 6]
    # 2 bits at step 30: codes -2..1 -> -60, -30, 0, 30
    assert vd.requantize(np.array([44, 46, -46, -100, 100]), 30.0, 2).tolist() == [30, 30, -60, -60, 30]
    # a step below one code reproduces every code that fits the low grid
    assert np.array_equal(vd.requantize(np.arange(-4, 5), 0.6, 4), np.arange(-4, 5))
    assert vd.requantize(np.array([5, -5]), 0.6, 4).tolist() == [4, -5]  # 8.3 -> 7 -> 4.2; -8.3 -> -8 -> -4.8


def test_outlier_patches_by_hand():
    x = np.zeros((2, 7, 3), dtype=np.int64)
    x[0, 1, 2] = 50  # patch 0 of window 0
    x[0, 4, 0] = -50  # patch 1 (frames 3..5)
    x[1, 6, 1] = 49  # the short last patch (frame 6), not above 49
    assert vd.outlier_patches(x, 49, 3).tolist() == [[True, True, False], [False, False, False]]
    assert vd.outlier_patches(x, 48, 3).tolist() == [[True, True, False], [False, False, True]]
    assert vd.outlier_patches(x, 0, 10).tolist() == [[True], [True]]


@pytest.mark.parametrize("seed", [0, 5, 10])
def test_op_major_stage_equals_run_graph(seed):
    """Every op type (random graphs: two convs on the input, which a later FC reads too) and the tiny graph."""
    for g, x in ((random_graph(seed), _inputs(np.random.default_rng(seed), random_graph(seed).n_in, 9, 3)),
                 (tiny(), bursty(seed))):
        end = vd.stage_end(g)
        st, seq = vd.run_front(g, x, end)
        assert np.array_equal(vd.run_rest(g, st, seq, end), run_graph(g, x))


def _cals(g: Graph, threshold: float, step: float) -> list[vd.OpCalibration]:
    return [vd.OpCalibration(i, threshold, step) for i in vd.mac_ops(g, vd.stage_end(g))]


@pytest.mark.parametrize("name", KWS)
def test_threshold_zero_keeps_8_bits_and_equals_run_graph_on_the_shipped_models(name):
    g, steps = load_export_graph(ROOT / "export" / name)
    x = np.random.default_rng(1).integers(-128, 128, (6, steps, g.n_in))
    x[0, :8] = 0  # an all-zero first patch of op 0 goes low (nothing above 0), which is exact
    coarse = 40.0  # a step that changes almost every code: requantizing anything else would show
    sim = vd.simulate(g, x, _cals(g, 0.0, coarse), 8, 4)
    assert np.array_equal(sim.logits, run_graph(g, x))
    assert not sim.keep8[0][0, 0] and sim.keep8[0].sum() == sim.keep8[0].size - 1
    assert all(k.all() for i, k in sim.keep8.items() if i != 0)
    low = vd.simulate(g, x, _cals(g, math.inf, coarse), 8, 4)
    assert not np.array_equal(low.logits, sim.logits) and not any(k.any() for k in low.keep8.values())


def test_infinite_threshold_is_every_patch_low():
    g = tiny()
    x = bursty(3)
    step = {0: 9.0, 2: 5.0, 5: 7.0}
    cals = [vd.OpCalibration(i, math.inf, s) for i, s in step.items()]
    sim = vd.simulate(g, x, cals, 4, 4)
    every = np.ones(x.shape[:2], dtype=bool)
    assert np.array_equal(sim.logits, streaming(g, x, dict.fromkeys(step, every), step, 4))
    # op 0 alone: the only reader of the input, so this is the int8 model on requantized input
    only0 = vd.simulate(g, x, [cals[0]], 4, 4)
    assert np.array_equal(only0.logits, run_graph(g, vd.requantize(x, 9.0, 4)))
    assert not np.array_equal(only0.logits, sim.logits)


@pytest.mark.parametrize("bits", [4, 2])
def test_value_driven_equals_the_streaming_reference(bits):
    g = tiny()
    cals, outliers = vd.calibrate(g, bursty(100, n=16), bits)
    qmax = (1 << (bits - 1)) - 1
    for c in cals:  # the rule as documented
        _, seq = vd.run_front(g, bursty(100, n=16), vd.stage_end(g))
        vals = seq[g.ops[c.op].in0].astype(np.float64)
        assert c.threshold == pytest.approx(abs(vals.mean()) + 3 * vals.std())
        assert c.step == pytest.approx(max(c.threshold, 1) / qmax)
        assert outliers[c.op] == pytest.approx((np.abs(vals) > c.threshold).mean())
    x = bursty(7)
    sim = vd.simulate(g, x, cals, 4, bits)
    # op 0 reads the input: its patch classes by a plain loop
    thr0 = cals[0].threshold
    expect = [[bool((np.abs(x[w, p:p + 4]) > thr0).any()) for p in range(0, 20, 4)] for w in range(len(x))]
    assert sim.keep8[0].tolist() == expect
    for k in sim.keep8.values():  # both classes occur, or the test proves little
        assert 0 < k.mean() < 1
    low = {i: ~np.repeat(k, 4, axis=1) for i, k in sim.keep8.items()}
    ref = streaming(g, x, low, {c.op: c.step for c in cals}, bits)
    assert np.array_equal(sim.logits, ref)
    assert not np.array_equal(sim.logits, run_graph(g, x))


def test_bitops_by_hand():
    """T = 5, patches of 2 frames (frames 0-1, 2-3, 4), weights conv_a 4 bits, fc_c 2 bits, the rest 8."""
    g = tiny({"conv_a": 4, "fc_c": 2})
    assert [vd.weight_bits(g, i) for i in (0, 2, 5, 7, 9)] == [4, 8, 2, 8, 8]
    assert g.buffers[g.ops[9].in0].dtype == DType.S16
    keep = {0: np.array([[True, False, True]]), 2: np.array([[False, False, False]]), 5: np.array([[False, True, False]])}
    bits = {i: np.where(np.repeat(k, 2, axis=1)[:, :5], 8, 4) for i, k in keep.items()}
    whole, front = vd.bitops(g, 5, bits)
    # conv_a (4 in, 8 out, k 3): frames at 8, 8, 4, 4, 8 bits; taps read frames 0..4 6, 3, 3, 2, 1 times (the
    # causal padding counts as frame 0): 4*8 pairs * 4 weight bits * (6*8 + 3*8 + 3*4 + 2*4 + 1*8) = 12,800
    # conv_b (8 x 8, k 2) all at 4 bits: 64 * 8 * 4 * 10 taps = 20,480; fc_c (8 x 5) at 4, 4, 8, 8, 4: 40 * 2 * 28
    # = 2,240; after the stage fc_d (5 x 5) 25 * 8 * 8 * 5 = 8,000, head (5 x 3, s16 input) 15 * 8 * 16 * 5 = 9,600
    assert front == 12_800 + 20_480 + 2_240
    assert whole == front + 8_000 + 9_600
    # all at 8 bits: conv_a 32 * 3 * 4 * 5 * 8 = 15,360, conv_b 64 * 2 * 8 * 5 * 8 = 40,960, fc_c 40 * 2 * 5 * 8
    # = 3,200
    assert vd.bitops(g, 5, {i: np.full((1, 5), 8) for i in keep}) == (77_120, 59_520)
    assert vd.bitops(g, 5) == (77_120, 0.0)  # ops not named run at their buffers' widths, none counted as front


def test_no_conv_front_or_a_stateful_stage_is_refused():
    g, _ = load_export_graph(ROOT / "export" / "psmnist_lmu")
    with pytest.raises(EdgememError, match="convolutional front stage"):
        vd.stage_end(g)
    # a stage op reading last step's activation (a state buffer written later in the step) cannot run op-major
    b = Builder(4, 3, 0.05)
    rng = np.random.default_rng(0)
    a = b.conv1d("conv_a", rng.normal(0, 0.3, (6, 4, 3)), None, b.g.in_buffer, 0.05)
    prev = b.state8("prev", 6, 0.05)
    b.fc("rec", rng.normal(0, 0.3, (6, 6)), None, prev, 0.05, out=a)
    h = b.act("h", a, "relu")
    b.act("keep", h, "sat", out=prev)
    g = b.output(b.fc("head", rng.normal(0, 0.3, (3, 6)), None, h, 0.05))
    with pytest.raises(EdgememError, match="op-major"):
        vd.stage_end(g)
    for p, bits in ((0, 4), (8, 3), (8, 8)):
        with pytest.raises(EdgememError):
            vd.check_args(p, bits)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEMEM, *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("args,words", [
    (("export/kws_lmuformer", "--value-driven", "--patch-frames", "0"), "--patch-frames"),
    (("export/kws_lmuformer", "--value-driven", "--low-bits", "3"), "--low-bits must be 4 or 2"),
    (("export/kws_lmuformer", "--low-bits", "2"), "--value-driven only"),
    (("export/psmnist_lmu", "--value-driven"), "convolutional front stage"),
    (("export/har_l2mu", "--value-driven"), "convolutional front stage"),
])
def test_plan_value_driven_bad_input_is_one_line_exit_2(args, words):
    res = cli("plan", *args)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_plan_value_driven_json_on_the_shipped_kws_model():
    res = cli("plan", "export/kws_lmuformer", "--value-driven", "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert {"schedules", "chosen"} <= r.keys()  # the plan is still there
    v = r["value_driven"]
    assert (v["patch_frames"], v["low_bits"], v["stage_ops"]) == (8, 4, 4)
    assert [o["op"] for o in v["ops"]] == [0, 2] and v["calibration_windows"] == 256 and v["test_windows"] == 800
    metrics = json.loads((ROOT / "models" / "kws_lmuformer" / "metrics.json").read_text())
    assert v["accuracy"]["int8"] == metrics["int8"]["test_accuracy"]  # the same scored windows and int8 model
    for o in v["ops"]:
        assert 0 < o["patches_8bit_fraction"] < 1 and o["outlier_threshold_codes"] == pytest.approx(
            7 * o["low_step_codes"], rel=1e-3)
    b, f = v["bitops_per_window"], v["front_stage_bitops_per_window"]
    assert b["uniform_low"] < b["value_driven"] < b["int8"] and f["uniform_low"] < f["value_driven"] < f["int8"]
    assert b["int8"] - b["value_driven"] == pytest.approx(f["int8"] - f["value_driven"])  # only the stage changes
    assert f["int8"] == 50 * 8 * 8 * (32 * 48 * 3 + 48 * 48 * 3)
    assert v["bitops_saved"]["front_stage"] == pytest.approx(1 - f["value_driven"] / f["int8"], abs=1e-6)
    assert 0 < v["bitops_saved"]["whole_model"] < v["bitops_saved"]["front_stage"] < 0.5
