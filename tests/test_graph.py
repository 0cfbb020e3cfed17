"""The graph format (docs/graph.md, blob version 2): integer reference vs C, blob round trip, malformed blobs.

Random graphs use every op type and flag with realistic quantization (per-channel multipliers from
quantize_multiplier, Q15 decays, LUTs from edgemem.quant.lut) and recurrence through state buffers; the C runtime
(em_run, on the host and on the emulated Cortex-M4) must equal edgemem.graph.ref bit for bit, and both parsers
must reject the same malformed blobs with the same status.
"""

from __future__ import annotations

import functools
import math
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ROOT, SHIPPED, need
from edgemem.errors import EdgememError
from edgemem.exporters.graph_c_arrays import write_graph_c
from edgemem.graph.blob import (
    BUFFER_SIZE,
    HEADER_SIZE,
    OP_SIZE,
    TENSOR_SIZE,
    blob_version,
    build_graph_blob,
    parse_graph_blob,
)
from edgemem.graph.check import GraphDefect
from edgemem.graph.intops import Q15_ONE, quantize_multiplier
from edgemem.graph.ir import FLAG_ACC, FLAG_CUBA, FLAG_EVENTS, NONE, Act, DType, Graph, Op, OpType, lut_op_flags
from edgemem.graph.ref import arena_image, init_state, lif_spikes, run_graph, step, validate
from edgemem.quant import lut
from edgemem.verification import c_runtime

S8, S16, S32 = DType.S8, DType.S16, DType.S32
KS = (1, 2, 3, 5)
# em_status_str of each EM_ERR_* a malformed blob can get (firmware/src/em_status.c)
C_STATUS = {"TRUNCATED": "blob truncated", "MAGIC": "bad magic", "VERSION": "unsupported blob version",
            "CRC": "CRC-32 mismatch", "KIND": "unknown model kind", "DIMS": "bad dimensions",
            "TENSOR": "malformed tensor", "BOUNDS": "tensor outside the blob", "ALIGN": "misaligned tensor",
            "PARAM": "quantization parameter out of range", "OP": "bad op", "ORDER": "read before it is written",
            "BUFFER": "bad buffer"}


# ------------------------------------------------------------------------------------------------ random graphs

class _Builder:
    """Adds ops with realistic parameters: each requantizing op aims at a target output spread."""

    def __init__(self, g: Graph, rng: np.random.Generator):
        self.g, self.rng = g, rng

    def requant(self, name: str, real: np.ndarray) -> tuple[int, int]:
        pairs = [quantize_multiplier(float(r)) for r in real]
        return (self.g.tensor(f"{name}_mult", [m for m, _ in pairs], S32),
                self.g.tensor(f"{name}_shift", [s for _, s in pairs], S8))

    def weights(self, name: str, shape: tuple[int, ...], in_spread: float, target: float,
                huge_bias: bool = False) -> tuple[int, int, int, int]:
        """w s8, bias s32, mult, shift for outputs [shape[0]] whose spread is about `target`."""
        w = self.rng.integers(-127, 128, size=shape)
        fan_in = int(np.prod(shape[1:]))
        acc_spread = math.sqrt(fan_in) * 73.0 * in_spread
        bias = self.rng.integers(-int(acc_spread), int(acc_spread) + 1, size=shape[0])
        if huge_bias:  # bias + dot leaves int32: requant must saturate the accumulator first (docs/graph.md)
            bias[0], bias[-1] = 2**31 - 1 - 5, -(2**31) + 5
        real = target / acc_spread * self.rng.uniform(0.7, 1.4, size=shape[0])
        return (self.g.tensor(f"{name}_w", w, S8), self.g.tensor(f"{name}_b", bias, S32), *self.requant(name, real))

    def fc(self, name: str, src: int, dst: int, in_spread: float, target: float, acc: bool = False,
           huge_bias: bool = False, events: bool = False) -> None:
        """events: the event-driven kernel (an s16 [d_in] index-list scratch buffer, op flag EVENTS)."""
        d_in, d_out = self.g.buffers[src].count, self.g.buffers[dst].count
        t = self.weights(name, (d_out, d_in), in_spread, target, huge_bias)
        scratch = self.g.buffer(f"{name}_events", S16, d_in) if events else NONE
        flags = (FLAG_ACC if acc else 0) | (FLAG_EVENTS if events else 0)
        self.g.op(Op(OpType.FC, name, in0=src, out=dst, scratch=scratch, d=(d_in, d_out, 0, 0), t=t, flags=flags))

    def conv(self, name: str, src: int, dst: int, k: int, in_spread: float, target: float, acc: bool) -> None:
        g = self.g
        c_in, c_out = g.buffers[src].count, g.buffers[dst].count
        ring = head = NONE
        if k > 1:
            ring = g.buffer(f"{name}_ring", S8, (k - 1) * c_in, state=True)
            head = g.buffer(f"{name}_head", S32, 1, state=True)
        t = self.weights(name, (c_out, k, c_in), in_spread, target)
        g.op(Op(OpType.CONV1D, name, in0=src, out=dst, state0=ring, state1=head, d=(c_in, c_out, k, 0), t=t,
                flags=FLAG_ACC if acc else 0))

    def lif(self, name: str, cur: int, spk: int, cuba: bool, thr_lo: int = 300, thr_hi: int = 3000,
            mem: int | None = None, thr: int | None = None) -> None:
        """mem, thr: a membrane buffer and threshold tensor made earlier (for a SPIKE op placed before the LIF)."""
        g, rng = self.g, self.rng
        n = g.buffers[cur].count
        mem = g.buffer(f"{name}_mem", S16, n, state=True) if mem is None else mem
        syn = g.buffer(f"{name}_syn", S16, n, state=True) if cuba else NONE
        beta = g.tensor(f"{name}_beta", np.round(rng.uniform(0.6, 0.98, n) * Q15_ONE), S16)
        alpha = g.tensor(f"{name}_alpha", np.round(rng.uniform(0.3, 0.9, n) * Q15_ONE), S16) if cuba else NONE
        thr = g.tensor(f"{name}_thr", rng.integers(thr_lo, thr_hi, n), S16) if thr is None else thr
        g.op(Op(OpType.LIF, name, in0=cur, out=spk, state0=mem, state1=syn, d=(n, 0, 0, 0), t=(beta, alpha, thr, NONE),
                flags=FLAG_CUBA if cuba else 0))

    def lmu(self, name: str, u: int, order: int, b_shift: int, drive: float) -> int:
        g, rng = self.g, self.rng
        n_u = g.buffers[u].count
        a_shift = int(rng.integers(8, 15))
        a = np.round((0.9 * np.eye(order) + 0.08 * rng.normal(size=(order, order))) * 2**a_shift)
        b = np.round(rng.uniform(-1, 1, order) * drive * 2**b_shift)
        m = g.buffer(f"{name}_m", S16, n_u * order, state=True)
        scratch = g.buffer(f"{name}_scratch", S16, order)
        g.op(Op(OpType.LMU, name, in0=u, state0=m, scratch=scratch, d=(n_u, order, a_shift, b_shift),
                t=(g.tensor(f"{name}_A", a, S16), g.tensor(f"{name}_B", b, S32), NONE, NONE)))
        return m

    def act(self, name: str, src: int, dst: int, func: Act, table: np.ndarray | None = None) -> None:
        t0 = self.g.tensor(f"{name}_lut", table, S8) if table is not None else NONE
        self.g.op(Op(OpType.ACT, name, in0=src, out=dst, d=(self.g.buffers[src].count, 0, 0, 0), t=(t0, NONE, NONE, NONE),
                     flags=lut_op_flags(func)))

    def add(self, name: str, src: int, dst: int, real: float, acc: bool) -> None:
        mult, shift = quantize_multiplier(real)
        t = (self.g.tensor(f"{name}_mult", [mult], S32), self.g.tensor(f"{name}_shift", [shift], S8), NONE, NONE)
        self.g.op(Op(OpType.ADD, name, in0=src, out=dst, d=(self.g.buffers[src].count, 0, 0, 0), t=t,
                     flags=FLAG_ACC if acc else 0))


def random_graph(seed: int) -> Graph:
    """Every op type and flag; recurrence through state buffers (spikes, an integrator, traces, LMU memory)."""
    rng = np.random.default_rng(seed)
    n_in, n_h, n_u, n_z, n_out = (int(rng.integers(lo, hi)) for lo, hi in ((2, 9), (4, 17), (1, 4), (3, 10), (2, 7)))
    order1, order2 = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    cuba = seed % 2 == 0
    g = Graph(n_in, n_out)
    bld = _Builder(g, rng)
    buf = g.buffer
    g.in_buffer = x = buf("x", S8, n_in)
    spk = buf("spk", S8, n_h, state=True)  # read by op 2 before the LIF writes it: last step's spikes
    c1 = buf("c1", S32, n_h)
    bld.conv("conv_a", x, c1, KS[seed % 4], 73, 1500, acc=False)
    bld.conv("conv_b", x, c1, KS[(seed + 1) % 4], 73, 800, acc=True)
    bld.fc("rec", spk, c1, 0.5, 800, acc=True, events=seed % 2 == 1)
    bld.lif("lif_h", c1, spk, cuba)
    u_cur = buf("u_cur", S32, n_u)
    bld.fc("enc", spk, u_cur, 0.5, 60)
    u8 = buf("u8", S8, n_u)
    bld.act("tanh", u_cur, u8, Act.LUT, lut.tanh_lut())
    m1 = bld.lmu("lmu1", u8, order1, int(rng.integers(1, 12)), 20)  # general s8 input, b_shift > 0
    cells1 = n_u * order1
    on1 = buf("on1", S32, 2 * cells1)
    g.op(Op(OpType.ONOFF, "onoff1", in0=m1, out=on1, d=(cells1, 0, 0, 0)))
    # the L2MU's recurrence: last step's memory spikes recomputed from the membrane before the LIF updates it
    # (SPIKE), fed back into the LIF's current; negative thresholds spike on the zero membrane after a reset
    mem_m = buf("lif_m_mem", S16, 2 * cells1, state=True)
    thr_vals = rng.integers(-400, 2000, 2 * cells1)
    thr_vals[0] = -int(rng.integers(1, 300))
    thr_m = g.tensor("lif_m_thr", thr_vals, S16)
    prev = buf("s_m_prev", S8, 2 * cells1)
    g.op(Op(OpType.SPIKE, "spike_m", in0=mem_m, out=prev, d=(2 * cells1, 0, 0, 0), t=(thr_m, NONE, NONE, NONE)))
    bld.fc("rec_m", prev, on1, 0.5, 300, acc=True, events=True)
    s_m = buf("s_m", S8, 2 * cells1)
    bld.lif("lif_m", on1, s_m, not cuba, mem=mem_m, thr=thr_m)
    m2 = bld.lmu("lmu2", s_m, order2, 0, 1500)  # spikes in, b_shift 0 (v1's memory)
    cells2 = 2 * cells1 * order2
    integ = buf("integ", S32, 2 * cells2, state=True)  # ONOFF accumulating across steps
    g.op(Op(OpType.ONOFF, "onoff2", in0=m2, out=integ, d=(cells2, 0, 0, 0), flags=FLAG_ACC))
    sat_dt = S16 if seed % 3 else S8
    integ_q = buf("integ_q", sat_dt, 2 * cells2)
    bld.act("sat", integ, integ_q, Act.SAT)
    hcur = buf("hcur", S32, n_z)
    bld.fc("hid", integ_q, hcur, 3000 if sat_dt == S16 else 60, 2000)
    trace = buf("trace", S16, n_z, state=True)
    beta = g.tensor("trace_beta", np.round(rng.uniform(0.5, 0.95, n_z) * Q15_ONE), S16)
    g.op(Op(OpType.LEAKY, "leaky", in0=hcur, out=trace, d=(n_z, 0, 0, 0), t=(beta, NONE, NONE, NONE)))
    z = buf("z", S32, n_z)
    bld.fc("z_tr", trace, z, 4000, 60, huge_bias=True)  # s16 input
    bld.fc("z_x", x, z, 73, 40, acc=True, events=seed % 3 == 0)  # dense int8 input: events must stay exact
    relu_dt = S8 if seed % 2 else S16
    zr = buf("zr", relu_dt, n_z)
    bld.act("relu", z, zr, Act.RELU)
    z2 = buf("z2", S32, n_z)
    bld.add("res_a", zr, z2, float(rng.uniform(0.3, 1.0) if relu_dt == S8 else rng.uniform(0.002, 0.006)), acc=False)
    bld.add("res_b", trace, z2, float(rng.uniform(0.001, 0.004)), acc=True)
    g8 = buf("g8", S8, n_z)
    bld.act("squash", z2, g8, Act.LUT, lut.sigmoid_lut() if seed % 2 else lut.gelu_lut())
    l32 = buf("l32", S32, n_out)
    bld.fc("head", g8, l32, 60, 3000)
    bld.fc("head_spk", spk, l32, 0.5, 1000, acc=True, events=seed % 2 == 0)  # this step's spikes (after the LIF)
    g.out_buffer = out = buf("logits", S16, n_out)
    bld.act("out", l32, out, Act.SAT)
    g.place()
    return g


def wide_graph(seed: int) -> Graph:
    """Dims at the limits and full-scale values: sums far outside int32 (s16 FC over 1024 inputs, LMU over order 256),
    so an int32 accumulator, a missing sat32(acc) or a wrong rounding shows; CONV1D k = 16 over 1024 channels."""
    rng = np.random.default_rng(seed)
    g = Graph(4, 3)
    bld = _Builder(g, rng)
    buf = g.buffer
    g.in_buffer = x = buf("x", S8, 4)
    c = buf("c", S32, 1024)
    same_rows = np.tile(rng.integers(-127, 128, size=(1, 4)), (1024, 1))  # every c[i] alike: h16 all +-full scale
    g.op(Op(OpType.FC, "wide_in", in0=x, out=c, d=(4, 1024, 0, 0),
            t=(g.tensor("wi_w", same_rows, S8), g.tensor("wi_b", np.zeros(1024), S32),
               *bld.requant("wi", np.full(1024, 50.0)))))
    h16, h8 = buf("h16", S16, 1024), buf("h8", S8, 1024)
    bld.act("sat16", c, h16, Act.SAT)
    bld.act("sat8", c, h8, Act.SAT)
    l32 = buf("l32", S32, 3)
    w2 = np.stack([np.full(1024, 127), np.full(1024, -128), rng.integers(-128, 128, 1024)])
    g.op(Op(OpType.FC, "fc_s16", in0=h16, out=l32, d=(1024, 3, 0, 0),  # |acc| up to 2^32: sat32 first
            t=(g.tensor("f2_w", w2, S8), g.tensor("f2_b", [0, 0, 2**31 - 1], S32), *bld.requant("f2", np.full(3, 1e-5)))))
    wc = np.stack([np.full((16, 1024), 127), np.full((16, 1024), -128), rng.integers(-128, 128, (16, 1024))])
    ring, head = buf("ring", S8, 15 * 1024, state=True), buf("head", S32, 1, state=True)
    g.op(Op(OpType.CONV1D, "conv16", in0=h8, out=l32, state0=ring, state1=head, d=(1024, 3, 16, 0), flags=FLAG_ACC,
            t=(g.tensor("cv_w", wc, S8), g.tensor("cv_b", np.zeros(3), S32), *bld.requant("cv", np.full(3, 1e-4)))))
    u32, u8 = buf("u32", S32, 4), buf("u8", S8, 4)
    bld.fc("enc", x, u32, 73, 100)
    bld.act("sat_u", u32, u8, Act.SAT)
    order = 256
    a = rng.integers(16000, 32768, (order, order))  # sum_j A m ~ 2^38 >> 23: just below int16 full scale
    b = rng.integers(-(2**12), 2**12, order)
    m = buf("m", S16, 4 * order, state=True)
    g.op(Op(OpType.LMU, "lmu256", in0=u8, state0=m, scratch=buf("scr", S16, order), d=(4, order, 23, 4),
            t=(g.tensor("A", a, S16), g.tensor("B", b, S32), NONE, NONE)))
    bld.fc("fc_m", m, l32, 8000, 2000, acc=True)
    g.out_buffer = out = buf("logits", S16, 3)
    bld.act("out", l32, out, Act.SAT)
    g.place()
    return g


def odd_graph(seed: int) -> Graph:
    """Legal but unusual: a CONV1D head written by another op (taken mod k-1, negative too), two LEAKY ops on one
    trace, ops sharing tensors, an unused tensor, negative thresholds, and a state out_buffer."""
    rng = np.random.default_rng(seed)
    g = Graph(3, 4)
    bld = _Builder(g, rng)
    buf = g.buffer
    g.in_buffer = x = buf("x", S8, 3)
    ring, head = buf("ring", S8, 4 * 3, state=True), buf("head", S32, 1, state=True)
    bld.fc("to_head", x, head, 73, 2**30)  # any int32, negative included
    c = buf("c", S32, 5)
    wt = bld.weights("conv", (5, 5, 3), 73, 2000)
    g.op(Op(OpType.CONV1D, "conv", in0=x, out=c, state0=ring, state1=head, d=(3, 5, 5, 0), t=wt))
    tr = buf("trace", S16, 5, state=True)
    beta = g.tensor("beta", np.round(rng.uniform(0.5, 0.9, 5) * Q15_ONE), S16)
    for name in ("leaky_a", "leaky_b"):
        g.op(Op(OpType.LEAKY, name, in0=c, out=tr, d=(5, 0, 0, 0), t=(beta, NONE, NONE, NONE)))
    g.tensor("unused", rng.integers(-5, 5, 7), S16)
    spk = buf("spk", S8, 5)
    bld.lif("lif", c, spk, cuba=True, thr_lo=-300, thr_hi=1500)
    l32 = buf("l32", S32, 4)
    bld.fc("head_a", spk, l32, 0.5, 3000)
    w, b = g.ops[-1].t[0], g.ops[-1].t[1]
    bld.fc("head_b", tr, l32, 8000, 2000, acc=True)
    g.ops[-1].t = (w, b, *g.ops[-1].t[2:])  # head_b shares head_a's weights and bias
    g.out_buffer = out = buf("logits", S16, 4, state=True)
    bld.act("out", l32, out, Act.SAT)
    g.place()
    return g


def _inputs(rng: np.random.Generator, n_in: int, steps: int, n: int = 6) -> np.ndarray:
    """Random int8 over the whole range, full-scale values only (the saturation paths), and a constant extreme."""
    uniform = rng.integers(-128, 128, size=(n - 2, steps, n_in))
    extreme = rng.choice(np.array([-128, 127, 0]), size=(1, steps, n_in))
    const = np.full((1, steps, n_in), 127)
    return np.concatenate([uniform, extreme, const]).astype(np.int8)


def _run_ref(g: Graph, x: np.ndarray) -> tuple[np.ndarray, float]:
    spikes = [0]

    def count(_: int, values: dict[str, np.ndarray]) -> None:
        spikes[0] += int(lif_spikes(g, values).sum())

    return run_graph(g, x, count), spikes[0] / (x.shape[0] * x.shape[1])


def _first_mismatch(ref: np.ndarray, c: np.ndarray) -> str:
    bad = np.argwhere(ref != c)
    return "" if bad.size == 0 else f"first mismatch at sequence/step/logit {bad[0]}: ref {ref[tuple(bad[0])]}, " \
        f"C {c[tuple(bad[0])]}"


SEEDS = (0, 1, 2, 3)


def test_random_graphs_cover_every_op_flag_and_kernel_size():
    graphs = [random_graph(s) for s in SEEDS]
    ops = [op for g in graphs for op in g.ops]
    # the input stages' ops run in stage graphs (s16 in): tests/test_input_stage.py and tests/test_front_end.py
    assert {op.type for op in ops} == set(OpType) - {OpType.SENSOR, OpType.LOGMEL}
    for kind in (OpType.FC, OpType.CONV1D, OpType.ADD, OpType.ONOFF):
        assert {op.acc for op in ops if op.type == kind} == {False, True}, kind
    assert {op.act for op in ops if op.type == OpType.ACT} == set(Act)
    assert {bool(op.flags & FLAG_CUBA) for op in ops if op.type == OpType.LIF} == {False, True}
    assert {op.d[2] for op in ops if op.type == OpType.CONV1D} == set(KS)
    assert {op.d[3] > 0 for op in ops if op.type == OpType.LMU} == {False, True}
    assert {g.buffers[op.in0].dtype for g in graphs for op in g.ops if op.type == OpType.FC} == {S8, S16}
    assert {g.buffers[op.out].dtype for g in graphs for op in g.ops if op.type == OpType.ACT} == {S8, S16}
    spikes = [(g, op) for g in graphs for op in g.ops if op.type == OpType.SPIKE]
    for g, op in spikes:  # a LIF membrane, read before its LIF (last step's value), with a negative threshold
        lif = next(i for i, o in enumerate(g.ops) if o.type == OpType.LIF and o.state0 == op.in0)
        assert g.ops.index(op) < lif and g.buffers[op.in0].state and (g.tensors[op.t[0]].data < 0).any()


def test_spike_recomputes_last_steps_spikes_one_after_reset_where_thr_is_negative():
    g = random_graph(1)
    st = init_state(g, 2)
    x = _inputs(np.random.default_rng(1), g.n_in, steps=6, n=2)
    spike = next(op for op in g.ops if op.type == OpType.SPIKE)
    thr = g.tensors[spike.t[0]].data
    prev_spk = (thr < 0).astype(np.int64)[None].repeat(2, axis=0)  # mem = 0 after reset: 0 > thr
    for t in range(6):
        _, values = step(g, x[:, t], st)
        np.testing.assert_array_equal(values["s_m_prev"], prev_spk)
        prev_spk = values["s_m"].copy()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_graph_c_host_matches_reference_bit_for_bit(seed, tmp_path):
    need("gcc", "make")
    g = random_graph(seed)
    path = tmp_path / "model.bin"
    path.write_bytes(build_graph_blob(g))
    x = _inputs(np.random.default_rng(seed), g.n_in, steps=50)  # 300 steps, reset every 50
    ref, spikes = _run_ref(parse_graph_blob(path.read_bytes()), x)  # run exactly what C reads
    assert spikes > 1, "the test graph must spike"
    assert len(np.unique(ref)) > 20, "the logits must vary"
    host = c_runtime.run_host(path, x, g.n_out)
    assert not _first_mismatch(ref, host), f"seed {seed}: {_first_mismatch(ref, host)}"


@pytest.mark.parametrize("make", [wide_graph, odd_graph], ids=["wide", "odd"])
def test_extreme_and_odd_graphs_c_host_matches_reference(make, tmp_path):
    need("gcc", "make")
    g = make(7)
    path = tmp_path / "model.bin"
    path.write_bytes(build_graph_blob(g))
    x = _inputs(np.random.default_rng(7), g.n_in, steps=30, n=4)
    ref = run_graph(g, x)
    assert len(np.unique(ref)) > 10, "the logits must vary"
    host = c_runtime.run_host(path, x, g.n_out)
    assert not _first_mismatch(ref, host), _first_mismatch(ref, host)


@pytest.mark.parametrize("make,steps", [(random_graph, 40), (wide_graph, 8)], ids=["random", "wide"])
def test_graphs_on_cortex_m4_match_reference(make, steps, tmp_path):
    """The M4 build takes the DSP (SMLAD) dot-product paths the host never does."""
    need("arm-none-eabi-gcc", "qemu-system-arm", "make")
    g = make(5)
    path = tmp_path / "model.bin"
    path.write_bytes(build_graph_blob(g))
    x = _inputs(np.random.default_rng(5), g.n_in, steps=steps, n=4)
    ref = run_graph(g, x)
    m4 = c_runtime.run_cortex_m4(path, x, g.n_out)
    assert not _first_mismatch(ref, m4.logits), _first_mismatch(ref, m4.logits)
    assert m4.instructions_per_step > 0


# ----------------------------------------------------------------------------------- reference: spec, by hand

def _single_conv(k: int, c_in: int, c_out: int, seed: int) -> Graph:
    g = Graph(c_in, c_out)
    g.in_buffer = x = g.buffer("x", S8, c_in)
    c = g.buffer("c", S32, c_out)
    _Builder(g, np.random.default_rng(seed)).conv("conv", x, c, k, 73, 3000, acc=False)
    g.out_buffer = out = g.buffer("y", S16, c_out)
    g.op(Op(OpType.ACT, "out", in0=c, out=out, d=(c_out, 0, 0, 0)))
    return g


@pytest.mark.parametrize("k", KS)
def test_conv1d_is_the_causal_convolution_of_torch(k):
    """Against the definition (past frames zero after reset), not the ring: tap k-1 is the current frame."""
    from edgemem.graph.intops import requant, sat

    g = _single_conv(k, 3, 4, k)
    x = np.random.default_rng(k).integers(-128, 128, size=(2, 12, 3))
    w, bias, mult, shift = (g.tensors[i].data for i in g.ops[0].t)
    w = w.reshape(4, k, 3)
    padded = np.concatenate([np.zeros((2, k - 1, 3), dtype=np.int64), x], axis=1)
    want = np.stack([sat(requant(np.einsum("bjc,ojc->bo", padded[:, t:t + k], w) + bias, mult, shift), 16)
                     for t in range(12)], axis=1)
    np.testing.assert_array_equal(run_graph(g, x), want)


def test_conv1d_ring_layout_is_the_documented_one():
    """After steps f(0), f(1), f(2) with k = 3: head = 3 % 2 = 1, ring[1] = f(1), ring[0] = f(2) (state as C holds it)."""
    g = _single_conv(3, 2, 1, 0)
    g.place()
    st = init_state(g, 1)
    frames = np.array([[1, 2], [3, 4], [5, 6]])
    for f in frames:
        step(g, f[None], st)
    ring, head = g.index("conv_ring"), g.index("conv_head")
    image = arena_image(g, st, 0)
    assert image[g.buffers[ring].offset:g.buffers[ring].offset + 4] == bytes([5, 6, 3, 4])
    assert image[g.buffers[head].offset:g.buffers[head].offset + 4] == struct.pack("<i", 1)


def test_lmu_scratch_holds_the_last_channels_old_row():
    g = random_graph(0)
    st = init_state(g, 2)
    x = _inputs(np.random.default_rng(0), g.n_in, steps=5, n=2)
    for t in range(5):
        m_old = st.values[g.index("lmu1_m")].copy()
        _, values = step(g, x[:, t], st)
        order = g.buffers[g.index("lmu1_scratch")].count
        np.testing.assert_array_equal(values["lmu1_scratch"], m_old[:, -order:])


@pytest.mark.parametrize("name,fn,scales,bound", [
    ("tanh", lut.tanh, lut.TANH_SCALES, 0.019), ("sigmoid", lut.sigmoid, lut.SIGMOID_SCALES, 0.012),
    ("gelu", lut.gelu, lut.GELU_SCALES, 0.033)])
def test_lut_errors_are_those_documented(name, fn, scales, bound):
    s_in, s_out = scales
    table = lut.lut_for(fn, s_in, s_out)
    assert table.shape == (256,) and table.min() >= -128 and table.max() <= 127
    assert lut.lut_error(fn, table, s_in, s_out, -128 * s_in, 127 * s_in) <= bound
    if name != "gelu":  # bounded functions: the saturated input costs nothing more outside the table's range
        assert lut.lut_error(fn, table, s_in, s_out, -1000 * s_in, 1000 * s_in) <= bound
    assert np.array_equal(table, {"tanh": lut.tanh_lut, "sigmoid": lut.sigmoid_lut, "gelu": lut.gelu_lut}[name]())


def test_lut_rounds_half_away_and_saturates():
    table = lut.lut_for(lambda x: x, 1.0, 2.0)  # k - 128 halved: -64 .. 63.5
    assert table[0] == -64 and table[255] == 64 and table[129] == 1 and table[127] == -1
    assert lut.lut_for(lambda x: 10 * x, 1.0, 1.0)[255] == 127
    with pytest.raises(EdgememError):
        lut.lut_for(np.tanh, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------ round trip

def _same_graph(a: Graph, b: Graph) -> None:
    assert (a.n_in, a.n_out, a.in_buffer, a.out_buffer, a.arena_size) == (b.n_in, b.n_out, b.in_buffer, b.out_buffer,
                                                                           b.arena_size)
    assert [(x.dtype, x.count, x.state, x.offset) for x in a.buffers] == \
        [(x.dtype, x.count, x.state, x.offset) for x in b.buffers]
    assert [(o.type, o.flags, o.in0, o.out, o.state0, o.state1, o.scratch, o.d, o.t) for o in a.ops] == \
        [(o.type, o.flags, o.in0, o.out, o.state0, o.state1, o.scratch, o.d, o.t) for o in b.ops]
    assert len(a.tensors) == len(b.tensors)
    for x, y in zip(a.tensors, b.tensors):
        assert x.dtype == y.dtype and np.array_equal(x.data, y.data), x.name


@pytest.mark.parametrize("seed", SEEDS)
def test_blob_round_trip(seed):
    g = random_graph(seed)
    blob = build_graph_blob(g)
    back = parse_graph_blob(blob)
    _same_graph(g, back)
    assert build_graph_blob(back) == blob
    assert blob_version(blob) == 2
    x = _inputs(np.random.default_rng(seed), g.n_in, steps=8, n=3)
    assert np.array_equal(run_graph(g, x), run_graph(back, x))


def test_unplaced_graph_is_placed_and_the_retired_version_is_refused():
    g = random_graph(1)
    for b in g.buffers:
        b.offset = -1
    blob = build_graph_blob(g)
    assert all(b.offset >= 0 for b in g.buffers) and g.arena_size == parse_graph_blob(blob).arena_size
    assert blob_version((SHIPPED / "model.bin").read_bytes()) == 2
    with pytest.raises(GraphDefect, match="version 1 is no longer supported: re-export"):
        parse_graph_blob(blob[:4] + b"\x01\x00" + blob[6:])
    with pytest.raises(GraphDefect, match="truncated"):
        blob_version(b"EMMB\x02")


def test_model_c_compiles_aligned_with_the_blob_bytes(tmp_path):
    need("gcc")
    blob = build_graph_blob(random_graph(2))
    h, c = write_graph_c(tmp_path, "demo", blob, 0.02, 0.1, ["a", 'b"q'], np.zeros(3), np.ones(3), readout="last")
    text = h.read_text()
    for want in ("#define EM_MODEL_FORMAT 2", f"#define EM_MODEL_BLOB_SIZE {len(blob)}u",
                 f"#define EM_MODEL_ARENA_BYTES {parse_graph_blob(blob).arena_size}u", "EM_MODEL_INPUT_SCALE 0.02f",
                 "EM_MODEL_INPUT_MEAN {0.0f, 0.0f, 0.0f}", "EM_MODEL_READOUT_LAST 1",
                 "extern const uint8_t em_model_blob[EM_MODEL_BLOB_SIZE];"):
        assert want in text, want
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include "model.h"\nstatic const char *names[] = EM_MODEL_CLASS_NAMES;\n'
                    "int main(void) {\n  if ((unsigned long)(const void *)em_model_blob % 4u) return 3;\n"
                    "  if (names[1][1] != '\"') return 4;\n"
                    "  return fwrite(em_model_blob, 1, EM_MODEL_BLOB_SIZE, stdout) == EM_MODEL_BLOB_SIZE ? 0 : 5;\n}\n")
    exe = tmp_path / "dump"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(tmp_path), "-I",
                    str(ROOT / "firmware" / "include"), "-o", str(exe), str(main), str(c)], check=True, capture_output=True)
    res = subprocess.run([str(exe)], capture_output=True)
    assert res.returncode == 0 and res.stdout == blob


# ------------------------------------------------------------------------------------------- malformed blobs

@functools.cache
def _good() -> tuple[bytes, np.ndarray]:
    g = random_graph(2)
    return build_graph_blob(g), _inputs(np.random.default_rng(2), g.n_in, steps=6, n=2)


def _layout(blob: bytes) -> dict[str, int]:
    n_b, n_op, n_t = struct.unpack_from("<3H", blob, 22)
    ops = HEADER_SIZE + BUFFER_SIZE * n_b
    tensors = ops + OP_SIZE * n_op
    return {"buffers": HEADER_SIZE, "ops": ops, "tensors": tensors, "n_b": n_b, "n_op": n_op, "n_t": n_t}


def _op_index(blob: bytes, kind: OpType, nth: int = 0) -> int:
    lay = _layout(blob)
    hits = [i for i in range(lay["n_op"]) if struct.unpack_from("<H", blob, lay["ops"] + OP_SIZE * i)[0] == kind]
    return hits[nth]


def _put(fmt: str, where: str, field: int, index: int = 0):
    """A mutation writing one field of table `where` ('header' or a table) at entry `index`."""
    size = {"header": 0, "buffers": BUFFER_SIZE, "ops": OP_SIZE, "tensors": TENSOR_SIZE}[where]

    def edit(b: bytearray, value: int) -> None:
        base = 0 if where == "header" else _layout(bytes(b))[where] + size * index
        struct.pack_into(fmt, b, base + field, value)
    return edit


def _sealed(b: bytearray) -> bytes:
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[HEADER_SIZE:])))
    return bytes(b)


def _mutate(case: str) -> bytes:
    """The good blob with one defect per docs/graph.md check, CRC re-sealed (except where the CRC is the point)."""
    good, _ = _good()
    b = bytearray(good)
    lay = _layout(good)
    fc = _op_index(good, OpType.FC)
    conv = _op_index(good, OpType.CONV1D)
    lmu = _op_index(good, OpType.LMU)
    lif = _op_index(good, OpType.LIF)
    op_at = lambda i, field: lay["ops"] + OP_SIZE * i + 2 * field  # noqa: E731
    fc_t = struct.unpack_from("<4H", good, op_at(fc, 12))
    if case == "truncated":
        return good[:-4]
    if case == "magic":
        b[0:4] = b"EMMA"
    elif case == "header_size":
        _put("<H", "header", 6)(b, 32)
    elif case == "crc":
        b[-1] ^= 1
        return bytes(b)
    elif case == "kind":
        _put("<H", "header", 16)(b, 1)
    elif case == "n_in":
        _put("<H", "header", 18)(b, 0)
    elif case == "out_buffer":
        _put("<H", "header", 30)(b, lay["n_b"])
    elif case == "reserved":
        b[40] = 1
    elif case == "buffer_dtype":
        _put("<B", "buffers", 0, 3)(b, 4)
    elif case == "buffer_overlap":
        b[lay["buffers"] + BUFFER_SIZE * 2 + 8:lay["buffers"] + BUFFER_SIZE * 2 + 12] = \
            good[lay["buffers"] + BUFFER_SIZE + 8:lay["buffers"] + BUFFER_SIZE + 12]
    elif case == "op_type":
        struct.pack_into("<H", b, op_at(0, 0), 12)  # one past the last type (LOGMEL = 11)
    elif case == "op_in1":
        struct.pack_into("<H", b, op_at(fc, 3), 0)
    elif case == "op_flags":
        struct.pack_into("<H", b, op_at(lmu, 1), FLAG_ACC)
    elif case == "events_conv":  # EVENTS is an FC flag
        struct.pack_into("<H", b, op_at(conv, 1), FLAG_EVENTS)
    elif case in ("events_no_scratch", "events_scratch_dtype"):
        ev = next(i for i in range(lay["n_op"]) if struct.unpack_from("<H", good, op_at(i, 0))[0] == OpType.FC
                  and struct.unpack_from("<H", good, op_at(i, 1))[0] & FLAG_EVENTS)
        # no index list, or the s8 input buffer named as the s16 list
        struct.pack_into("<H", b, op_at(ev, 7), NONE if case == "events_no_scratch" else
                         struct.unpack_from("<H", good, 28)[0])
    elif case == "conv_k":
        struct.pack_into("<H", b, op_at(conv, 10), 17)
    elif case == "lmu_shift":
        struct.pack_into("<H", b, op_at(lmu, 10), 31)
    elif case == "op_buffer_dtype":  # the FC's input is now an s32 buffer (not its own output: that is OP)
        out = struct.unpack_from("<H", good, op_at(fc, 4))[0]
        s32 = next(i for i in range(lay["n_b"]) if good[lay["buffers"] + BUFFER_SIZE * i] == S32 and i != out)
        struct.pack_into("<H", b, op_at(fc, 2), s32)
    elif case == "state_flag":  # the LIF membrane is no longer a state buffer
        mem = struct.unpack_from("<H", good, op_at(lif, 5))[0]
        _put("<B", "buffers", 1, mem)(b, 0)
    elif case == "op_tensor":  # the FC's weight field names its bias
        struct.pack_into("<H", b, op_at(fc, 12), fc_t[1])
    elif case == "order":  # op 0 (a CONV1D writing c1) moved after op 2 (an FC accumulating into c1)
        row = lambda i: good[op_at(i, 0):op_at(i, 0) + OP_SIZE]  # noqa: E731
        b[op_at(0, 0):op_at(3, 0)] = row(1) + row(2) + row(0)
    elif case == "tensor_id":
        _put("<H", "tensors", 0, 2)(b, 7)
    elif case == "bounds":
        _put("<I", "tensors", 4, lay["n_t"] - 1)(b, len(good))
    elif case == "align":
        bias = fc_t[1]
        off = struct.unpack_from("<I", good, lay["tensors"] + TENSOR_SIZE * bias + 4)[0]
        _put("<I", "tensors", 4, bias)(b, off + 2)
    elif case == "mult":
        off = struct.unpack_from("<I", good, lay["tensors"] + TENSOR_SIZE * fc_t[2] + 4)[0]
        struct.pack_into("<i", b, off, 2**30 - 1)
    elif case == "spike_in0_dtype":  # the SPIKE reads the s8 input instead of an s16 membrane
        struct.pack_into("<H", b, op_at(_op_index(good, OpType.SPIKE), 2), struct.unpack_from("<H", good, 28)[0])
    elif case == "spike_thr_count":  # its threshold tensor (shared with the LIF after it) one value longer
        thr = struct.unpack_from("<H", good, op_at(_op_index(good, OpType.SPIKE), 12))[0]
        count = struct.unpack_from("<I", good, lay["tensors"] + TENSOR_SIZE * thr + 8)[0]
        _put("<I", "tensors", 8, thr)(b, count + 1)
    elif case == "beta":
        beta = struct.unpack_from("<H", good, op_at(lif, 12))[0]
        off = struct.unpack_from("<I", good, lay["tensors"] + TENSOR_SIZE * beta + 4)[0]
        struct.pack_into("<h", b, off, -1)
    else:
        raise AssertionError(case)
    return _sealed(b)


MALFORMED = [  # case, C status, words the Python message must hold
    ("truncated", "TRUNCATED", "truncated"), ("magic", "MAGIC", "magic"), ("header_size", "VERSION", "header size 32"),
    ("crc", "CRC", "CRC-32"), ("kind", "KIND", "kind 1"), ("n_in", "DIMS", "n_in = 0"),
    ("out_buffer", "BUFFER", "out_buffer"), ("reserved", "VERSION", "reserved"),
    ("buffer_dtype", "BUFFER", "buffer 3 has unknown dtype"), ("buffer_overlap", "BUFFER", "overlap"),
    ("op_type", "OP", "unknown type 12"), ("op_in1", "OP", "in1"), ("op_flags", "OP", "flags"),
    ("conv_k", "DIMS", "k = 17"), ("lmu_shift", "PARAM", "a_shift = 31"), ("op_buffer_dtype", "BUFFER", "in0"),
    ("state_flag", "BUFFER", "state buffer"), ("op_tensor", "TENSOR", "t0"), ("order", "ORDER", "before"),
    ("tensor_id", "TENSOR", "id 7"), ("bounds", "BOUNDS", "outside"), ("align", "ALIGN", "misaligned"),
    ("mult", "PARAM", "multiplier"), ("beta", "PARAM", "negative decay"),
    ("spike_in0_dtype", "BUFFER", "(SPIKE) in0"), ("spike_thr_count", "TENSOR", "(SPIKE) t0"),
    ("events_conv", "OP", "flags"), ("events_no_scratch", "OP", "scratch"),
    ("events_scratch_dtype", "BUFFER", "scratch"),
]


def _python_verdict(blob: bytes) -> tuple[str, str, Graph | None]:
    """(status, message, graph) as the graph parser decides (the only parser: blob version 1 is refused)."""
    try:
        return "OK", "", parse_graph_blob(blob)
    except GraphDefect as e:
        return e.status, str(e), None


def assert_rejected_alike(exe: Path, blob: bytes, x: np.ndarray, status: str, words: str) -> None:
    """Python rejects the blob with one line naming `words` and the status C uses; em_run exits 2 with that status."""
    with pytest.raises(GraphDefect) as e:
        parse_graph_blob(blob)
    msg = str(e.value)
    assert "\n" not in msg and words in msg and e.value.status == status, (msg, e.value.status)
    rc, stderr, _ = _em_run_verdict(exe, blob, x)
    assert rc == 2 and len(stderr.strip().splitlines()) == 1, (rc, stderr)
    assert C_STATUS[status] in stderr, f"Python: {status} ({msg}); C: {stderr.strip()}"


def _em_run_verdict(exe: Path, blob: bytes, x: np.ndarray) -> tuple[int, str, np.ndarray | None]:
    with tempfile.TemporaryDirectory(prefix="edgemem-graph-") as tmp:
        b, i, o = Path(tmp) / "m.bin", Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        b.write_bytes(blob)
        x.tofile(i)
        res = subprocess.run([str(exe), str(b), str(i), str(o), str(x.shape[1])], capture_output=True, text=True,
                             timeout=60)
        out = np.fromfile(o, dtype="<i2") if res.returncode == 0 else None
        return res.returncode, res.stderr, out



@pytest.mark.parametrize("case,status,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_blob_rejected_by_python_and_c_for_the_same_reason(em_run, case, status, words):
    assert_rejected_alike(em_run, _mutate(case), _good()[1], status, words)


def test_validate_rejects_a_graph_that_reads_scratch_before_writing_it():
    g = random_graph(3)
    g.ops.insert(0, g.ops.pop(3))  # the LIF now reads c1 before the convolutions write it
    with pytest.raises(GraphDefect, match="op 0 \\(LIF\\) reads scratch buffer") as e:
        validate(g)
    assert e.value.status == "ORDER"
    with pytest.raises(GraphDefect):
        build_graph_blob(g)


def test_step_rejects_bad_input():
    g = random_graph(0)
    st = init_state(g, 2)
    with pytest.raises(EdgememError, match="shape"):
        step(g, np.zeros((3, g.n_in)), st)
    with pytest.raises(EdgememError, match="int8"):
        step(g, np.full((2, g.n_in), 200), st)


# ---------------------------------------------------------------------------------------------- properties

FEW = settings(max_examples=30, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FEW
@given(seed=st.integers(10, 2**16))
def test_any_random_graph_round_trips_and_runs_bit_exact_in_c(em_run, seed):
    g = random_graph(seed)
    blob = build_graph_blob(g)
    back = parse_graph_blob(blob)
    assert build_graph_blob(back) == blob
    x = _inputs(np.random.default_rng(seed), g.n_in, steps=12, n=3)
    ref, _ = _run_ref(back, x)
    rc, stderr, host = _em_run_verdict(em_run, blob, x)
    assert rc == 0, stderr
    assert np.array_equal(ref.reshape(-1), host), f"seed {seed}"


@settings(FEW, max_examples=300)
@given(edits=st.lists(st.tuples(st.sampled_from(["header", "tables", "data"]), st.integers(0, 2**16),
                                st.integers(0, 255)), min_size=1, max_size=3))
def test_python_and_c_parsers_agree_on_edited_blobs(em_run, edits):
    good, x = _good()
    lay = _layout(good)
    data_start = lay["tensors"] + TENSOR_SIZE * lay["n_t"]
    b = bytearray(good)
    for region, pos, value in edits:
        # the header minus total_size and CRC (the fixed cases cover those; a changed total_size moves the CRC's range)
        spots = {"header": [*range(4, 8), *range(16, HEADER_SIZE)], "tables": range(HEADER_SIZE, data_start),
                 "data": range(data_start, len(good))}[region]
        b[spots[pos % len(spots)]] = value
    blob = _sealed(b)  # re-sealed: the edit reaches every check after the CRC
    rc, stderr, host = _em_run_verdict(em_run, blob, x)
    status, msg, parsed = _python_verdict(blob)
    if status != "OK":
        event(f"rejected: {status}")
        assert rc == 2 and C_STATUS[status] in stderr, f"Python: {status} ({msg}); C: rc {rc} {stderr.strip()}"
        return
    assert parsed is not None
    if rc == 2 and "more arena than em_run has" in stderr:  # the tool's capacity (EM_RUN_ARENA_BYTES), not a verdict
        assert parsed.arena_size > 64 * 1024, stderr
        event("accepted, arena beyond em_run's")
        return
    event("accepted")
    assert rc == 0, f"Python accepts, C rejects: {stderr.strip()}"
    ref = run_graph(parsed, x)
    assert np.array_equal(ref.reshape(-1), host), "accepted edited blob is not bit-exact"


def test_builder_spike_reads_the_lif_membrane_made_before_it():
    """Builder.spike before Builder.lif(..., mem=): last step's spikes of the same population, 1 after a reset where
    the threshold is negative; a membrane of the wrong shape is refused."""
    from edgemem.quant.lowering import Builder

    rng = np.random.default_rng(0)
    b = Builder(3, 4, 0.02)
    s_cur = 0.01
    mem = b.state16("pop.mem", 4, s_cur)
    thr_real = np.array([-0.5, 0.2, 0.4, 1.0])
    prev = b.spike("pop.prev", mem, np.round(thr_real / s_cur))
    cur = b.fc("enc", rng.normal(size=(4, 3)), None, b.g.in_buffer, s_cur)
    b.fc("rec", rng.normal(size=(4, 4)), None, prev, s_cur, out=cur)
    spk = b.lif("pop", cur, np.full(4, 0.9), thr_real, mem=mem)
    g = b.output(b.fc("head", rng.normal(size=(4, 4)), None, spk, 0.05))
    assert b.scale[prev] == 1.0 and g.ops[0].type == OpType.SPIKE
    lif = next(op for op in g.ops if op.type == OpType.LIF)
    assert lif.state0 == mem and np.array_equal(g.tensors[lif.t[2]].data, g.tensors[g.ops[0].t[0]].data)
    st = init_state(g, 1)
    x = rng.integers(-128, 128, size=(5, 1, 3))
    want = (thr_real < 0).astype(np.int64)[None]
    for t in range(5):
        _, values = step(g, x[t], st)
        np.testing.assert_array_equal(values["pop.prev"], want)
        want = values["pop"].copy()
    with pytest.raises(EdgememError, match="s16 state buffer"):
        b.lif("bad", cur, np.full(4, 0.9), thr_real, mem=b.state16("short", 3, s_cur))
