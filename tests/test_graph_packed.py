"""Packed sub-byte weights (docs/graph.md "Packed weights"): s4 / s2 FC and CONV1D weights, bit-exact between the
integer reference and the C runtime (host and emulated Cortex-M4), the packing itself, malformed packed blobs
rejected by both parsers for the same reason, and lowered zoo models with some layers at 4 and 2 bits.
"""

from __future__ import annotations

import functools
import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from test_graph import (
    C_STATUS,
    TENSOR_SIZE,
    _em_run_verdict,
    _first_mismatch,
    _inputs,
    _layout,
    _sealed,
    assert_rejected_alike,
)
from test_zoo import _warm

from conftest import need
from edgemem.errors import EdgememError
from edgemem.graph.blob import build_graph_blob, pack_values, parse_graph_blob, unpack_values
from edgemem.graph.check import GraphDefect
from edgemem.graph.intops import quantize, quantize_multiplier, quantize_multiplier15
from edgemem.graph.ir import FLAG_ACC, FLAG_EVENTS, NONE, Act, DType, Graph, Op, OpType, lut_op_flags
from edgemem.graph.ref import run_graph, validate
from edgemem.models.elm import ELMConfig, ELMNet
from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig
from edgemem.quant.lower import lower
from edgemem.quant.lowering import Builder, quantize_fc
from edgemem.verification import c_runtime

S8, S16, S32, S4, S2 = DType.S8, DType.S16, DType.S32, DType.S4, DType.S2
W_STD = {S8: 73.0, S4: 4.6, S2: 1.1}  # spread of uniform weights over each dtype's whole range


# ------------------------------------------------------------------------------------------------ random graphs

class _Packed:
    def __init__(self, g: Graph, rng: np.random.Generator):
        self.g, self.rng = g, rng

    def params(self, name: str, shape: tuple[int, ...], wdt: DType, in_spread: float,
               target: float) -> tuple[int, int, int, int]:
        lo, hi = wdt.value_range  # the whole storage range: -8 and -2 too, which the quantizer never makes
        w = self.rng.integers(lo, hi + 1, size=shape)
        acc_spread = math.sqrt(int(np.prod(shape[1:]))) * W_STD[wdt] * in_spread
        bias = self.rng.integers(-int(acc_spread), int(acc_spread) + 1, size=shape[0])
        pairs = [quantize_multiplier(float(r)) for r in target / acc_spread * self.rng.uniform(0.7, 1.4, shape[0])]
        g = self.g
        return (g.tensor(f"{name}_w", w, wdt), g.tensor(f"{name}_b", bias, S32),
                g.tensor(f"{name}_mult", [m for m, _ in pairs], S32), g.tensor(f"{name}_shift", [s for _, s in pairs], S8))

    def fc(self, name: str, src: int, dst: int, wdt: DType, in_spread: float, target: float, acc: bool,
           events: bool = False) -> None:
        d_in, d_out = self.g.buffers[src].count, self.g.buffers[dst].count
        t = self.params(name, (d_out, d_in), wdt, in_spread, target)
        scratch = self.g.buffer(f"{name}_events", S16, d_in) if events else NONE
        flags = (FLAG_ACC if acc else 0) | (FLAG_EVENTS if events else 0)
        self.g.op(Op(OpType.FC, name, in0=src, out=dst, scratch=scratch, d=(d_in, d_out, 0, 0), t=t, flags=flags))

    def conv(self, name: str, src: int, dst: int, k: int, wdt: DType, in_spread: float, target: float,
             acc: bool) -> None:
        g = self.g
        c_in, c_out = g.buffers[src].count, g.buffers[dst].count
        ring = g.buffer(f"{name}_ring", S8, (k - 1) * c_in, state=True) if k > 1 else NONE
        head = g.buffer(f"{name}_head", S32, 1, state=True) if k > 1 else NONE
        t = self.params(name, (c_out, k, c_in), wdt, in_spread, target)
        g.op(Op(OpType.CONV1D, name, in0=src, out=dst, state0=ring, state1=head, d=(c_in, c_out, k, 0), t=t,
                flags=FLAG_ACC if acc else 0))

    def sat(self, name: str, src: int, dst: int) -> None:
        self.g.op(Op(OpType.ACT, name, in0=src, out=dst, d=(self.g.buffers[src].count, 0, 0, 0),
                     flags=lut_op_flags(Act.SAT)))


def packed_graph(seed: int) -> Graph:
    """FC with s8 and s16 input and CONV1D k = 1, 2, 3, 4 at s4 and s2 (taps starting inside a byte: k = 4 over 3
    channels at s4, k = 2 over 2 channels at s2), next to s8 layers; plus unnamed packed tensors of odd counts."""
    rng = np.random.default_rng(seed)
    a, b = (S4, S2) if seed % 2 == 0 else (S2, S4)
    n_h = 8
    g = Graph(8, 4)
    bld = _Packed(g, rng)
    buf = g.buffer
    g.in_buffer = x = buf("x", S8, 8)
    a32, a8 = buf("a32", S32, 3), buf("a8", S8, 3)
    bld.fc("fc_a", x, a32, S2, 73, 60, acc=False)
    bld.sat("sat_a", a32, a8)
    b32, b8 = buf("b32", S32, 2), buf("b8", S8, 2)
    bld.fc("fc_b", x, b32, S4, 73, 60, acc=False)
    bld.sat("sat_b", b32, b8)
    c1 = buf("c1", S32, n_h)
    bld.conv("conv4", a8, c1, 4, S4, 60, 1500, acc=False)  # row 12, taps at elements 0, 3, 6, 9
    bld.conv("conv2", b8, c1, 2, S2, 60, 800, acc=True)  # row 4, tap 1 at element 2
    bld.conv("conv3", x, c1, 3, a, 73, 800, acc=True)
    bld.conv("conv1", x, c1, 1, b, 73, 800, acc=True)
    bld.conv("conv1_s8", x, c1, 1, S8, 73, 400, acc=True)
    bld.conv("conv_odd", a8, c1, 3, S8, 60, 400, acc=True)  # k * c_in = 9: s8 only
    h16, h8 = buf("h16", S16, n_h), buf("h8", S8, n_h)
    bld.sat("sat16", c1, h16)
    bld.sat("sat8", c1, h8)
    l32 = buf("l32", S32, 4)
    bld.fc("head16_a", h16, l32, a, 1500, 2000, acc=False)
    bld.fc("head16_b", h16, l32, b, 1500, 2000, acc=True)
    bld.fc("head8", h8, l32, b, 60, 2000, acc=True)
    bld.fc("head8_events", h8, l32, a, 60, 2000, acc=True, events=True)  # packed weights, event-driven
    bld.fc("head_odd", a8, l32, S8, 60, 500, acc=True)  # d_in = 3: s8 only (the malformed cases pack it)
    g.out_buffer = out = buf("logits", S16, 4)
    bld.sat("out", l32, out)
    g.tensor("unused_s4", [-8, 7, 3], S4)  # 3 nibbles: the last byte's high nibble is padding
    g.tensor("unused_s2", [1, -2, 0, -1, 1], S2)  # 5 pairs: 6 padding bits
    g.place()
    return g


SEEDS = (0, 1, 2, 3)


def test_packed_graph_covers_what_it_claims():
    graphs = [packed_graph(s) for s in SEEDS]

    def w(g: Graph, op: Op) -> DType:
        return g.tensors[op.t[0]].dtype

    ops = [(g, o) for g in graphs for o in g.ops]
    for in_dt in (S8, S16):
        assert {w(g, o) for g, o in ops if o.type == OpType.FC and g.buffers[o.in0].dtype == in_dt} >= {S4, S2}
    assert {(o.d[2], w(g, o)) for g, o in ops if o.type == OpType.CONV1D} >= \
        {(k, dt) for k in (1, 3) for dt in (S4, S2)} | {(4, S4), (2, S2), (1, S8)}
    g = graphs[0]
    assert g.weight_bytes() < _as_s8(g).weight_bytes()
    assert len(build_graph_blob(g)) < len(build_graph_blob(_as_s8(g)))


def _as_s8(g: Graph) -> Graph:
    """The same graph with every packed tensor stored as s8 (same values, same results)."""
    import copy

    h = copy.deepcopy(g)
    for t in h.tensors:
        if t.dtype.packed:
            t.dtype = S8
    return h


@pytest.mark.parametrize("seed", SEEDS)
def test_packed_graph_c_host_matches_reference_bit_for_bit(seed, tmp_path):
    need("gcc", "make")
    g = packed_graph(seed)
    path = tmp_path / "model.bin"
    path.write_bytes(build_graph_blob(g))
    x = _inputs(np.random.default_rng(seed), g.n_in, steps=40)
    ref = run_graph(parse_graph_blob(path.read_bytes()), x)  # exactly what C reads
    assert len(np.unique(ref)) > 20, "the logits must vary"
    np.testing.assert_array_equal(ref, run_graph(_as_s8(g), x))  # packing changes storage, never values
    host = c_runtime.run_host(path, x, g.n_out)
    assert not _first_mismatch(ref, host), f"seed {seed}: {_first_mismatch(ref, host)}"


def test_packed_graph_on_cortex_m4_matches_reference(tmp_path):
    need("arm-none-eabi-gcc", "qemu-system-arm", "make")
    g = packed_graph(5)
    path = tmp_path / "model.bin"
    path.write_bytes(build_graph_blob(g))
    x = _inputs(np.random.default_rng(5), g.n_in, steps=30, n=4)
    ref = run_graph(g, x)
    m4 = c_runtime.run_cortex_m4(path, x, g.n_out)
    assert not _first_mismatch(ref, m4.logits), _first_mismatch(ref, m4.logits)


# ------------------------------------------------------------------------------------------------ the packing

def test_packing_is_the_documented_layout():
    # s4: element 2j low nibble, 2j+1 high; 1 = 0x1, -1 = 0xF, -8 = 0x8, 7 = 0x7
    assert pack_values(np.array([1, -1, -8, 7]), S4) == bytes([0xF1, 0x78])
    assert pack_values(np.array([-8, 7, 3]), S4) == bytes([0x78, 0x03])  # unused high nibble zero
    # s2: element 4j+i in bits 2i..2i+1; 1 = 01, -1 = 11, -2 = 10, 0 = 00
    assert pack_values(np.array([1, -1, -2, 0]), S2) == bytes([0b00_10_11_01])
    assert pack_values(np.array([-2, 1]), S2) == bytes([0b01_10])
    for dt, vals in ((S4, np.arange(-8, 8)), (S2, np.arange(-2, 2))):
        for n in range(1, 2 * vals.size + 1):
            v = np.resize(vals, n)
            np.testing.assert_array_equal(unpack_values(pack_values(v, dt), dt, n), v)


def test_tensor_ranges_sizes_and_buffers():
    g = Graph(1, 1)
    with pytest.raises(EdgememError, match="fit s4"):
        g.tensor("w", [8], S4)
    with pytest.raises(EdgememError, match="fit s2"):
        g.tensor("w", [-3], S2)
    g.tensor("w4", [-8, 7, 0], S4)
    g.tensor("w2", [-2, 1, 0, 0, 1], S2)
    assert g.weight_bytes() == 2 + 2
    assert S4.nbytes(3) == 2 and S2.nbytes(5) == 2 and S8.nbytes(3) == 3 and S32.nbytes(3) == 12
    with pytest.raises(EdgememError, match="tensor-only"):
        g.buffer("b", S4, 4)
    with pytest.raises(EdgememError, match="packed"):
        _ = S2.size


# --------------------------------------------------------------------------------------------- quantization

def test_quantize_fc_bits_keeps_8_bit_results_and_uses_narrow_ranges():
    rng = np.random.default_rng(0)
    w = torch.from_numpy(rng.normal(size=(6, 10)))
    w[2] = 0.0
    b = torch.from_numpy(rng.normal(size=6))
    q8, q8b = quantize_fc(w, b, 0.02, 0.1), quantize_fc(w, b, 0.02, 0.1, 8)
    for x, y in zip((q8.w, q8.bias, q8.mult, q8.shift), (q8b.w, q8b.bias, q8b.mult, q8b.shift)):
        np.testing.assert_array_equal(x, y)
    # the int8 rule, written out: max|w| / 127 per row, round half away
    scale = np.abs(w.numpy()).max(axis=1)
    scale = np.where(scale > 0, scale, np.abs(w.numpy()).max()) / 127
    np.testing.assert_array_equal(q8.w, quantize(w.numpy() / scale[:, None], 1.0))
    peak = np.abs(w.numpy()).max(axis=1)
    for bits, qmax in ((4, 7), (2, 1)):
        q = quantize_fc(w, b, 0.02, 0.1, bits)
        s = np.where(peak > 0, peak, peak.max()) / qmax
        np.testing.assert_allclose(q.w_scale, s, rtol=1e-15)
        np.testing.assert_array_equal(q.w, quantize(w.numpy() / s[:, None], 1.0))
        assert (np.abs(q.w).max(axis=1)[[0, 1, 3, 4, 5]] == qmax).all()  # every non-zero row reaches +-qmax
        assert np.abs(q.w).max() == qmax and not q.w[2].any()
        np.testing.assert_array_equal(q.bias, np.round(b.numpy() / (0.02 * s)))
        # 15-bit multipliers, exact in every TFLite interpreter (intops.quantize_multiplier15)
        np.testing.assert_array_equal(q.mult, [quantize_multiplier15(0.02 * x / 0.1)[0] for x in s])
    with pytest.raises(EdgememError, match="8, 4 or 2"):
        quantize_fc(w, b, 0.02, 0.1, 3)


def test_builder_rejects_rows_that_cannot_be_packed_and_unknown_layers():
    bld = Builder(6, 2, 0.05, {"odd": 4})
    w = np.random.default_rng(1).normal(size=(2, 6))
    with pytest.raises(EdgememError, match="whole bytes"):
        Builder(3, 2, 0.05, {"odd": 4}).fc("odd", w[:, :3], None, 0, 0.1)
    bld.fc("odd", w, None, bld.g.in_buffer, 0.1)  # 6 weights a row: fine at 4 bits
    assert bld.g.tensors[bld.g.ops[0].t[0]].dtype == S4
    with pytest.raises(EdgememError, match="whole bytes"):
        Builder(6, 2, 0.05, {"odd": 2}).fc("odd", w, None, 0, 0.1)
    with pytest.raises(EdgememError, match="8, 4 or 2"):
        Builder(6, 2, 0.05, {"odd": 3})
    typo = Builder(6, 2, 0.05, {"od": 4})
    typo.fc("odd", w, None, typo.g.in_buffer, 0.1)
    with pytest.raises(EdgememError, match="names no FC"):
        typo.output(1)


# ------------------------------------------------------------------------------------------- malformed blobs

@functools.cache
def _good() -> tuple[bytes, np.ndarray]:
    g = packed_graph(0)
    return build_graph_blob(g), _inputs(np.random.default_rng(0), g.n_in, steps=6, n=2)


def _tensor_index(name: str) -> int:
    return next(i for i, t in enumerate(packed_graph(0).tensors) if t.name == name)


def _op_of(name: str) -> int:
    return next(i for i, o in enumerate(packed_graph(0).ops) if o.name == name)


def _mutate(case: str) -> bytes:
    good, _ = _good()
    b = bytearray(good)
    lay = _layout(good)

    def entry(t: int) -> int:
        return lay["tensors"] + TENSOR_SIZE * t

    def data_at(t: int) -> int:
        return struct.unpack_from("<I", good, entry(t) + 4)[0]

    g = packed_graph(0)
    if case == "pad_s4":  # high nibble of the last byte of a 3-element s4 tensor
        b[data_at(_tensor_index("unused_s4")) + 1] |= 0x10
    elif case == "pad_s2":  # bits 2..7 of the second byte of a 5-element s2 tensor
        b[data_at(_tensor_index("unused_s2")) + 1] |= 0x80
    elif case == "count":  # the s4 conv weights claim one element more
        t = g.ops[_op_of("conv4")].t[0]
        struct.pack_into("<I", b, entry(t) + 8, g.tensors[t].data.size + 1)
    elif case == "s4_bias":
        b[entry(g.ops[_op_of("head16_a")].t[1]) + 2] = int(S4)
    elif case == "s2_mult":
        b[entry(g.ops[_op_of("conv1")].t[2]) + 2] = int(S2)
    elif case == "row_s4":  # an FC over 3 inputs: its rows would start inside bytes
        b[entry(g.ops[_op_of("head_odd")].t[0]) + 2] = int(S4)
    elif case == "row_s2":  # a CONV1D with k * c_in = 3 * 3 = 9
        b[entry(g.ops[_op_of("conv_odd")].t[0]) + 2] = int(S2)
    elif case == "buffer_s4":
        b[lay["buffers"] + 12 * g.index("h8")] = int(S4)
    elif case == "dtype_6":
        b[entry(_tensor_index("unused_s2")) + 2] = 6
    else:
        raise AssertionError(case)
    return _sealed(b)


MALFORMED = [  # case, C status, words the Python message must hold
    ("pad_s4", "TENSOR", "unused bits"), ("pad_s2", "TENSOR", "unused bits"), ("count", "TENSOR", "t0"),
    ("s4_bias", "TENSOR", "t1"), ("s2_mult", "TENSOR", "t2"), ("row_s4", "TENSOR", "whole bytes"),
    ("row_s2", "TENSOR", "whole bytes"), ("buffer_s4", "BUFFER", "unknown dtype"),
    ("dtype_6", "TENSOR", "dtype code 6"),
]



@pytest.mark.parametrize("case,status,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_packed_blob_rejected_by_python_and_c_for_the_same_reason(em_run, case, status, words):
    assert_rejected_alike(em_run, _mutate(case), _good()[1], status, words)


def test_validate_allows_packing_only_the_weights():
    g = packed_graph(1)
    validate(g)
    bias = g.ops[_op_of("head8")].t[1]
    g.tensors[bias].dtype = S4
    g.tensors[bias].data = np.zeros_like(g.tensors[bias].data)
    with pytest.raises(GraphDefect, match="t1") as e:
        validate(g)
    assert e.value.status == "TENSOR"


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(edits=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=3))
def test_python_and_c_parsers_agree_on_edited_packed_blobs(em_run, edits):
    """Random byte edits of the tensor table and data (dtype codes 4 and 5, counts, padding bits) after the CRC."""
    good, x = _good()
    lay = _layout(good)
    b = bytearray(good)
    for pos, value in edits:
        b[lay["tensors"] + pos % (len(good) - lay["tensors"])] = value
    blob = _sealed(b)
    rc, stderr, host = _em_run_verdict(em_run, blob, x)
    try:
        parsed = parse_graph_blob(blob)
    except GraphDefect as e:
        event(f"rejected: {e.status}")
        assert rc == 2 and C_STATUS[e.status] in stderr, f"Python: {e.status} ({e}); C: rc {rc} {stderr.strip()}"
        return
    event("accepted")
    assert rc == 0, f"Python accepts, C rejects: {stderr.strip()}"
    assert np.array_equal(run_graph(parsed, x).reshape(-1), host), "accepted edited blob is not bit-exact"


# ------------------------------------------------------------------------------------ lowered zoo models

N_IN, N_OUT, STEPS = 8, 5, 20
LOWERED = {  # model, and the widths of some of its layers (the rest stay 8 bits)
    "lmuformer_relu": (lambda: LMUFormer(LMUFormerConfig(n_in=N_IN, n_out=N_OUT, channels=16, n_u=2, order=8,
                                                         theta=20.0, kernel=3)),
                       {"conv0": 4, "conv1": 2, "lmu_hm": 4, "mix1": 2, "mix2": 4, "head": 4}),
    "lmuformer_spiking": (lambda: LMUFormer(LMUFormerConfig(n_in=N_IN, n_out=N_OUT, channels=16, n_u=2, order=8,
                                                            theta=20.0, kernel=3, spiking=True)),
                          {"conv0": 2, "lmu_u": 4, "lmu_he": 2, "mix2": 2}),
    "elm_tanh": (lambda: ELMNet(ELMConfig(n_in=N_IN, n_out=N_OUT, n_s=16, n_m=8, n_mlp=16)),
                 {"syn0": 4, "mlp_a0": 2, "mlp_m0": 4, "mlp_out0": 2, "readout0": 4}),
}


@pytest.mark.parametrize("name", list(LOWERED))
def test_lowered_model_with_packed_layers_is_bit_exact_in_c(name, tmp_path):
    need("gcc", "make")
    make, bits = LOWERED[name]
    torch.manual_seed(3)
    model = _warm(make(), 3)  # real BatchNorm statistics (else the spiking model never spikes)
    rng = np.random.default_rng(3)
    calib = rng.normal(size=(8, STEPS, N_IN)).astype(np.float32)
    low8, low = lower(model, calib), lower(model, calib, weight_bits=bits)
    g = low.graph
    dtypes = {op.name: g.tensors[op.t[0]].dtype for op in g.ops if op.type in (OpType.FC, OpType.CONV1D)}
    assert {dtypes[n] for n in bits} == {S4, S2} and all(dtypes[n].bits == b for n, b in bits.items())
    assert all(d == S8 for n, d in dtypes.items() if n not in bits)
    assert g.weight_bytes() < low8.graph.weight_bytes()
    xq = quantize(rng.normal(size=(4, STEPS, N_IN)), low.input_scale).astype(np.int8)
    ref = run_graph(g, xq)
    assert len(np.unique(ref)) > 10, "the logits must vary"
    path = tmp_path / "model.bin"
    path.write_bytes(build_graph_blob(g))
    host = c_runtime.run_host(path, xq, g.n_out)
    assert not _first_mismatch(ref, host), _first_mismatch(ref, host)
