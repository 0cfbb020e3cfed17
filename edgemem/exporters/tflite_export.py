"""An integer graph (edgemem.graph.ir) as one streaming step in a .tflite file that TFLite Micro runs to the
same integers as edgemem (docs/tflite.md: the interpreters' rules as measured, and why this form).

| graph op          | TFLite ops                                                                              |
|-------------------|-----------------------------------------------------------------------------------------|
| FC                | in raw units (input and output scale 1, each channel's weight scale its multiplier       |
|                   | M * 2^-s: 15-bit M, exact in float32), int64 bias: a 1x1 16x8 CONV_2D (per-channel      |
|                   | multipliers), or a 16x8 FULLY_CONNECTED with a per-tensor scale (one multiplier): the    |
|                   | forms TFLM's CMSIS-NN kernels take (edgemem.exporters.tflite_cmsis)                      |
| CONV1D (causal)   | CONCATENATION of the last k-1 frames (a state) and the input, the FC above, SLICE        |
| ACT sat / relu    | QUANTIZE int16 -> int8 (a clamp at equal scales), RELU                                   |
| ACT lut           | CAST int8 -> int32, ADD 128, GATHER from the graph's 256-entry table                     |
| LIF / CuBa, SPIKE | decays as 1x1 16x8 DEPTHWISE_CONV_2D (weight 1 at scale beta / 2^15); spikes and the     |
|                   | reset from SUB, MAXIMUM, MINIMUM and MUL by 0 or 1; SUB and ADD                          |
| LEAKY             | the decay above, ADD                                                                     |
| LMU               | int16 BATCH_MATMULs (A m, B u) in raw units, constant operand pre-transposed (adj_y), ADD |
| ADD (residual)    | a 1x1 16x8 DEPTHWISE_CONV_2D with the graph's multiplier, ADD                            |
| ONOFF             | SUB from zero, CONCATENATION                                                             |

A graph's sums are int16 tensors at the sum's scale, as edgemem's are int16 values. The state is explicit: the file's
inputs are the step input and every state, its outputs the logits and every next state, in the same order (names
`state:X` and `next:X`). With `variables=True` the state lives in resource variables instead (VAR_HANDLE /
READ_VARIABLE / ASSIGN_VARIABLE, zeroed by a CALL_ONCE subgraph), and the file has one input and one output. The
float32 twin is edgemem.exporters.tflite_float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgemem.errors import EdgememError
from edgemem.exporters.tflite_writer import Model, Op, SubGraph, fb, options
from edgemem.graph.ir import FLAG_CUBA, Act, DType, OpType
from edgemem.quant.lower import Lowered

Q15 = 2.0**-15


@dataclass
class StateTensor:
    """One state of the TFLite step: graph buffer `name`, dtype, count and scale (the conv window's layout is
    oldest frame first, unlike the C runtime's ring)."""

    name: str
    dtype: str
    count: int
    scale: float


@dataclass
class TfliteModel:
    data: bytes
    states: list[StateTensor] = field(default_factory=list)
    ops: dict[str, int] = field(default_factory=dict)  # TFLite builtin name -> count


def _f32(x: float) -> float:
    return float(np.float32(x))


class _Lowering:
    def __init__(self, low: Lowered, variables: bool, name: str) -> None:
        if not low.scales:
            raise EdgememError("this Lowered has no buffer scales (made before TFLite export existed): lower again")
        self.low, self.g, self.variables = low, low.graph, variables
        self.model = Model(f"edgemem {name}: one streaming step, int8 I/O, 16x8 inside")
        self.sg: SubGraph = self.model.subgraph("step")
        self.cur: dict[int, int] = {}  # graph buffer -> TFLite tensor holding its value now
        self.casts: dict[tuple[int, str], int] = {}  # (tensor, dtype) -> its QUANTIZE'd copy
        self.states: list[StateTensor] = []
        self.state_in: dict[int, int] = {}
        self.views: dict[tuple[int, tuple[int, ...], float], int] = {}  # (tensor, shape, scale) -> its RESHAPE view
        self.root: dict[int, int] = {}  # view -> the tensor it relabels
        self.pending: dict[int, int] = {}  # graph buffer -> its raw-unit value, not yet relabelled to its scale
        self.counter = 0

    # ---- tensors ----
    def scale(self, buf: int) -> float:
        return self.low.scales[self.g.buffers[buf].name]

    def _name(self, base: str) -> str:
        self.counter += 1
        return f"{base}#{self.counter}"

    def tensor(self, base: str, n: int | tuple[int, ...], dtype: str, scale: float | None) -> int:
        shape = (1, n) if isinstance(n, int) else n
        return self.sg.tensor(self._name(base), shape, dtype, None if scale is None else _f32(scale))

    def const(self, base: str, values: np.ndarray, dtype: str, scale: float | list[float] | None,
              axis: int = 0) -> int:
        sc = None if scale is None else ([_f32(v) for v in scale] if isinstance(scale, list) else _f32(scale))
        return self.sg.const(self._name(base), np.asarray(values), dtype, sc, 0 if sc is None else 0, axis)

    def dtype_of(self, tid: int) -> str:
        from edgemem.exporters.tflite_writer import TYPES

        t = self.sg.tensors[tid].type
        return next(k for k, v in TYPES.items() if v == t)

    def op(self, code: int, inputs: list[int], outputs: list[int], opts: tuple | None = None) -> None:
        if opts is None:
            self.sg.op(code, inputs, outputs)
        else:
            self.sg.op(code, inputs, outputs, *opts)

    # ---- value access ----
    def value(self, buf: int) -> int:
        """buf's value as a [1, count] tensor at the buffer's scale (a sum still held in raw units is relabelled
        here, once, when something first reads it)."""
        if buf in self.pending:
            b = self.g.buffers[buf]
            self.cur[buf] = self.view(self.pending.pop(buf), (1, b.count), self.scale(buf))
        if buf not in self.cur:
            raise EdgememError(f"TFLite export: buffer {self.g.buffers[buf].name} is read before it is written")
        return self.cur[buf]

    def scale_of(self, t: int) -> float | None:
        q = self.sg.tensors[t].quantization
        return None if q is None or not q.scale else float(q.scale[0])

    def view(self, t: int, shape: tuple[int, ...], scale: float) -> int:
        """t with other dims and/or another scale (RESHAPE copies the integers unchanged): made once per tensor,
        shape and scale, always from the tensor that holds the integers, so views never chain."""
        t = self.root.get(t, t)
        src = self.sg.tensors[t]
        if tuple(src.shape) == tuple(shape) and self.scale_of(t) == _f32(scale):
            return t
        key = (t, tuple(shape), _f32(scale))
        if key not in self.views:
            y = self.reshape(src.name.split("#")[0] + ".view", t, shape, self.dtype_of(t), scale)
            self.views[key] = y
            self.root[y] = t
        return self.views[key]

    def _cast(self, t: int, dtype: str) -> int:
        """t as `dtype` at t's own scale: QUANTIZE widens int8 exactly and narrows int16 by a clamp to
        [-128, 127]; made once per tensor and type (a spike's int16 0/1 is registered as its int8 copy's twin)."""
        if self.dtype_of(t) == dtype:
            return t
        key = (t, dtype)
        if key not in self.casts:
            src = self.sg.tensors[t]
            self.casts[key] = self.tensor(f"{src.name.split('#')[0]}.s{dtype[3:]}", tuple(src.shape), dtype,
                                          self.scale_of(t))
            self.op(Op.QUANTIZE, [t], [self.casts[key]])
        return self.casts[key]

    def _as(self, buf: int, dtype: str) -> int:
        return self._cast(self.value(buf), dtype)

    def as16(self, buf: int) -> int:
        return self._as(buf, "int16")

    def as8(self, buf: int) -> int:
        return self._as(buf, "int8")

    def put(self, buf: int, t: int) -> None:
        """buf's value is now t ([1, count] at the buffer's scale)."""
        self.pending.pop(buf, None)
        self.cur[buf] = t

    def store(self, buf: int, t: int, acc: bool) -> None:
        if acc:
            out = self.tensor(self.g.buffers[buf].name, self.g.buffers[buf].count, self.dtype_of(self.value(buf)),
                              self.scale(buf))
            self.op(Op.ADD, [self.value(buf), t], [out], options("Add"))
            t = out
        self.put(buf, t)

    def store_raw(self, buf: int, raw: int, acc: bool) -> None:
        """An int16 result in raw units (scale 1) into buf; with `acc`, added to buf's value in raw units (ADD of
        equal scales is exact at any scale), so a sum of several FCs is relabelled once, by whoever reads it."""
        if acc:
            prev = self.pending.pop(buf) if buf in self.pending else None
            if prev is None:
                prev = self.view(self.as16(buf), tuple(self.sg.tensors[raw].shape), 1.0)
            out = self.tensor(self.g.buffers[buf].name + ".raw_sum", tuple(self.sg.tensors[raw].shape), "int16", 1.0)
            self.op(Op.ADD, [prev, raw], [out], options("Add"))
            raw = out
        self.cur.pop(buf, None)
        self.pending[buf] = raw

    # ---- states ----
    def add_state(self, buf: int, dtype: str, count: int, scale: float) -> None:
        name = self.g.buffers[buf].name
        self.states.append(StateTensor(name, dtype, count, scale))
        if self.variables:
            t = self.tensor(f"state:{name}", count, dtype, scale)
        else:
            t = self.sg.tensor(f"state:{name}", (1, count), dtype, None if dtype == "float32" else _f32(scale))
        self.state_in[buf] = t
        self.put(buf, t)

    def declare_states(self) -> None:
        g = self.g
        for op in g.ops:
            if op.type == OpType.CONV1D and op.d[2] > 1:
                self.add_state(op.state0, "int8", (op.d[2] - 1) * op.d[0], self.scale(op.in0))
        done = {s.name for s in self.states}
        heads = {op.state1 for op in g.ops if op.type == OpType.CONV1D}
        for i, b in enumerate(g.buffers):
            if b.state and b.name not in done and i not in heads:
                self.add_state(i, {DType.S8: "int8", DType.S16: "int16"}[b.dtype], b.count, self.scale(i))

    # ---- ops ----
    def multipliers(self, op) -> list[float]:
        """Each channel's requant multiplier M * 2^-s: exactly a float32 (M has 15 significant bits)."""
        mult, shift = self.g.tensors[op.t[2]].data, self.g.tensors[op.t[3]].data
        return [math.ldexp(int(m), -int(s)) for m, s in zip(mult, shift)]

    def fc(self, op, src: int, d_in: int, weights: np.ndarray) -> None:
        """The FC in raw units, as a form TFLM's CMSIS-NN kernels accept (docs/tflite.md "CMSIS-NN"): int16 input
        of scale 1 ([1, 1, 1, d_in], a RESHAPE view of the int16 value, shared by every FC that reads it), int8
        weights whose scale is the graph's multiplier M * 2^-s exactly, int64 bias, int16 output of scale 1.
        Per-channel multipliers: a 1x1 16x8 CONV_2D (arm_convolve_s16 takes per-channel multipliers; CMSIS-NN's
        16x8 FULLY_CONNECTED does not). One multiplier for every channel: a 16x8 FULLY_CONNECTED with a per-tensor
        weight scale (arm_fully_connected_s16). TFLite then derives edgemem's own multiplier and rounds as edgemem
        does; the result stays in raw units until something reads the sum (store_raw)."""
        d_out = op.d[1]
        ws = self.multipliers(op)
        x = self.view(self._cast(src, "int16"), (1, 1, 1, d_in), 1.0)
        bias = self.g.tensors[op.t[1]].data
        y = self.tensor(op.name + ".raw", (1, 1, 1, d_out), "int16", 1.0)
        if len(set(ws)) == 1:
            w = self.const(op.name + ".w", weights.reshape(d_out, d_in), "int8", ws[0])
            b = self.const(op.name + ".bias", bias, "int64", ws[0])
            self.op(Op.FULLY_CONNECTED, [x, w, b], [y], options("FullyConnected", keepNumDims=True))
        else:
            w = self.const(op.name + ".w", weights.reshape(d_out, 1, 1, d_in), "int8", ws, axis=0)
            b = self.const(op.name + ".bias", bias, "int64", ws)
            self.op(Op.CONV_2D, [x, w, b], [y], options("Conv2D", padding=fb.Padding.VALID, strideW=1, strideH=1,
                                                         dilationWFactor=1, dilationHFactor=1))
        self.store_raw(op.out, y, op.acc)

    def conv1d(self, op) -> None:
        c_in, _, k, _ = op.d
        w = self.g.tensors[op.t[0]].data  # [o][tap][c]: the window's order, oldest frame first
        x = self.value(op.in0)
        if k == 1:
            return self.fc(op, x, c_in, w)
        win = self.tensor(op.name + ".window", k * c_in, "int8", self.scale(op.in0))
        self.op(Op.CONCATENATION, [self.value(op.state0), x], [win], options("Concatenation", axis=1))
        nxt = self.tensor(op.name + ".ring", (k - 1) * c_in, "int8", self.scale(op.in0))
        begin = self.const(op.name + ".begin", np.array([0, c_in]), "int32", None)
        size = self.const(op.name + ".size", np.array([1, (k - 1) * c_in]), "int32", None)
        self.op(Op.SLICE, [win, begin, size], [nxt])
        self.put(op.state0, nxt)
        self.fc(op, win, k * c_in, w)

    def act(self, op) -> None:
        out_dt = self.g.buffers[op.out].dtype
        n = op.d[0]
        if op.act == Act.LUT:
            s_out = self.scale(op.out)
            i32 = self.tensor(op.name + ".index", n, "int32", None)
            self.op(Op.CAST, [self.as8(op.in0)], [i32])
            idx = self.tensor(op.name + ".index", n, "int32", None)
            self.op(Op.ADD, [i32, self.const(op.name + ".offset", np.array([128]), "int32", None)], [idx],
                    options("Add"))
            table = self.const(op.name + ".lut", self.g.tensors[op.t[0]].data, "int8", s_out)
            y = self.tensor(op.name, n, "int8", s_out)
            self.op(Op.GATHER, [table, idx], [y], options("Gather", axis=0))
            self.put(op.out, y)
            return
        src = self.as8(op.in0) if out_dt == DType.S8 else self.as16(op.in0)
        if op.act == Act.RELU:
            y = self.tensor(op.name, n, self.dtype_of(src), self.scale(op.out))
            self.op(Op.RELU, [src], [y])
            src = y
        self.put(op.out, src)

    def reshape(self, name: str, x: int, shape: tuple[int, ...], dtype: str, scale: float) -> int:
        """A view with other dims and, possibly, another scale: RESHAPE copies the integers unchanged."""
        y = self.tensor(name, shape, dtype, scale)
        self.op(Op.RESHAPE, [x, self.const(name + ".shape", np.array(shape), "int32", None)], [y],
                options("Reshape", newShape=list(shape)))
        return y

    def channel_scale(self, name: str, x: int, n: int, w_scales: np.ndarray, codes: np.ndarray, s_in: float,
                      s_out: float) -> int:
        """y[c] = requant(x[c] * codes[c]) with per-channel weight scales: a 1x1 16x8 DEPTHWISE_CONV_2D (int16 in,
        int16 out), the one TFLite op that multiplies each channel by its own exact fixed-point factor. x is
        viewed at s_in on the way in; the result is [1, 1, 1, n] at s_out."""
        x4 = self.view(x, (1, 1, 1, n), s_in)
        w = self.const(name + ".w", np.asarray(codes).reshape(1, 1, 1, n), "int8", [float(v) for v in w_scales],
                       axis=3)
        b = self.const(name + ".bias", np.zeros(n, dtype=np.int64), "int64",
                       [_f32(s_in) * _f32(v) for v in w_scales])
        y4 = self.tensor(name, (1, 1, 1, n), "int16", s_out)
        self.op(Op.DEPTHWISE_CONV_2D, [x4, w, b], [y4],
                options("DepthwiseConv2D", padding=fb.Padding.VALID, strideW=1, strideH=1, depthMultiplier=1,
                        dilationWFactor=1, dilationHFactor=1))
        return y4

    def decay(self, name: str, x: int, q15: np.ndarray, n: int, s: float) -> int:
        """rshift_round(q15 * x, 15): weight 1 at scale q15 / 2^15 (exact in float32; a zero factor is weight 0)."""
        q = np.asarray(q15).reshape(-1)
        scales = np.where(q > 0, q, 1) * Q15
        return self.view(self.channel_scale(name, x, n, scales, (q > 0).astype(np.int64), s, s), (1, n), s)

    def above(self, name: str, mem: int, thr: int, n: int, s: float) -> int:
        """(mem > thr) as int16 0/1 at scale 1: sat16(mem - thr) clamped to [0, 1] (the sign survives saturation).
        TFLM's GREATER on int16 does not give this (measured), so no comparison op is used."""
        d = self.tensor(name + ".margin", n, "int16", s)
        self.op(Op.SUB, [mem, thr], [d], options("Sub"))
        raw = self.view(d, (1, n), 1.0)
        lo = self.tensor(name + ".pos", n, "int16", 1.0)
        self.op(Op.MAXIMUM, [raw, self.const(name + ".zero", np.zeros((1, 1)), "int16", 1.0)], [lo])
        y = self.tensor(name + ".above", n, "int16", 1.0)
        self.op(Op.MINIMUM, [lo, self.const(name + ".one", np.ones((1, 1)), "int16", 1.0)], [y])
        return y

    def spikes8(self, name: str, above: int, n: int) -> int:
        y = self.tensor(name, n, "int8", 1.0)
        self.op(Op.QUANTIZE, [above], [y])
        self.casts[(y, "int16")] = above  # the same 0/1 at the same scale: no QUANTIZE back for an FC
        return y

    def add16(self, name: str, a: int, b: int, n: int, s: float, sub: bool = False) -> int:
        y = self.tensor(name, n, "int16", s)
        self.op(Op.SUB if sub else Op.ADD, [a, b], [y], options("Sub" if sub else "Add"))
        return y

    def lif(self, op) -> None:
        g = self.g
        n = op.d[0]
        s = self.scale(op.state0)
        cur = self.as16(op.in0)
        mem = self.value(op.state0)
        thr = self.const(op.name + ".thr", g.tensors[op.t[2]].data.reshape(1, n), "int16", s)
        reset = self.tensor(op.name + ".reset", n, "int16", s)  # thr where the old membrane was above it: 1 * thr
        self.op(Op.MUL, [self.above(op.name + ".old", mem, thr, n, s), thr], [reset], options("Mul"))
        decayed = self.decay(op.name + ".decay", mem, g.tensors[op.t[0]].data, n, s)
        if op.flags & FLAG_CUBA:
            syn_decay = self.decay(op.name + ".syn_decay", self.value(op.state1), g.tensors[op.t[1]].data, n, s)
            cur = self.add16(op.name + ".syn", syn_decay, cur, n, s)
            self.put(op.state1, cur)
        mem_next = self.add16(op.name + ".mem", self.add16(op.name + ".kept", decayed, reset, n, s, sub=True), cur,
                              n, s)
        self.put(op.state0, mem_next)
        self.put(op.out, self.spikes8(op.name, self.above(op.name, mem_next, thr, n, s), n))

    def spike(self, op) -> None:
        n = op.d[0]
        s = self.scale(op.in0)
        thr = self.const(op.name + ".thr", self.g.tensors[op.t[0]].data.reshape(1, n), "int16", s)
        self.put(op.out, self.spikes8(op.name, self.above(op.name, self.value(op.in0), thr, n, s), n))

    def leaky(self, op) -> None:
        n = op.d[0]
        s = self.scale(op.out)
        decayed = self.decay(op.name + ".decay", self.value(op.out), self.g.tensors[op.t[0]].data, n, s)
        self.put(op.out, self.add16(op.name, decayed, self.as16(op.in0), n, s))

    def lmu(self, op) -> None:
        g = self.g
        n_u, order, a_shift, b_shift = op.d
        s_m = self.scale(op.state0)
        a = g.tensors[op.t[0]].data.reshape(order, order)
        b = g.tensors[op.t[1]].data
        if np.abs(b).max(initial=0) > 32767:
            raise EdgememError(f"{op.name}: B does not fit int16 (lowered before B was 15-bit): lower again")
        # the memory runs in raw units (scale 1), so both multipliers are powers of two, exact in float32. The
        # constant operands are stored as [N][K] with adj_y: TFLM multiplies by rhs^T directly and transposes nothing
        # (without adj_y it copies a transposed rhs into its arena on the first Invoke).
        m = self.view(self.value(op.state0), (n_u, order), 1.0)
        am = self.tensor(op.name + ".Am", (n_u, order), "int16", 1.0)
        self.op(Op.BATCH_MATMUL, [m, self.const(op.name + ".A", a, "int16", 2.0**-a_shift)], [am],
                options("BatchMatMul", adjY=True))
        u = self.view(self.as16(op.in0), (n_u, 1), 1.0)
        drive = self.tensor(op.name + ".Bu", (n_u, order), "int16", 1.0)
        self.op(Op.BATCH_MATMUL, [u, self.const(op.name + ".B", b.reshape(order, 1), "int16", 2.0**-b_shift)],
                [drive], options("BatchMatMul", adjY=True))
        nxt = self.tensor(op.name + ".m_next_raw", (n_u, order), "int16", 1.0)
        self.op(Op.ADD, [am, drive], [nxt], options("Add"))
        self.put(op.state0, self.view(nxt, (1, n_u * order), s_m))

    def onoff(self, op) -> None:
        n = op.d[0]
        s = self.scale(op.in0)
        x = self.as16(op.in0)
        neg = self.add16(op.name + ".neg", self.const(op.name + ".zero", np.zeros((1, n)), "int16", s), x, n, s,
                         sub=True)
        y = self.tensor(op.name, 2 * n, "int16", s)
        self.op(Op.CONCATENATION, [x, neg], [y], options("Concatenation", axis=1))
        self.store(op.out, y, op.acc)

    def residual(self, op) -> None:
        """ADD: src rescaled to the sum's scale by the graph's own multiplier (a 1x1 depthwise conv of weight 1), in
        raw units like an FC's result."""
        n = op.d[0]
        m, s = self.g.tensors[op.t[0]].data[0], self.g.tensors[op.t[1]].data[0]
        y = self.channel_scale(op.name, self.as16(op.in0), n, np.full(n, math.ldexp(int(m), -int(s))),
                               np.ones(n, dtype=np.int64), 1.0, 1.0)  # raw units in and out
        self.store_raw(op.out, y, op.acc)

    # ---- whole graph ----
    def input_tensor(self) -> int:
        return self.sg.tensor("input", (1, self.g.n_in), "int8", _f32(self.low.input_scale))

    def build(self) -> TfliteModel:
        g = self.g
        x = self.input_tensor()
        self.put(g.in_buffer, x)
        self.declare_states()
        for op in g.ops:
            {OpType.FC: lambda o: self.fc(o, self.value(o.in0), o.d[0], g.tensors[o.t[0]].data),
             OpType.CONV1D: self.conv1d, OpType.ACT: self.act, OpType.LIF: self.lif, OpType.SPIKE: self.spike,
             OpType.LEAKY: self.leaky, OpType.LMU: self.lmu, OpType.ONOFF: self.onoff,
             OpType.ADD: self.residual}[op.type](op)
        logits = self.value(g.out_buffer)
        state_bufs = list(self.state_in)
        if self.variables:
            self._variables(x, logits, state_bufs)
        else:
            outs = []
            for b in state_bufs:
                outs.append(self._named_copy(self.value(b), f"next:{g.buffers[b].name}"))
            self.sg.inputs = [x] + [self.state_in[b] for b in state_bufs]
            self.sg.outputs = [logits] + outs
        counts: dict[str, int] = {}
        names = {v: k for k, v in vars(Op).items() if isinstance(v, int)}
        for sg in self.model.subgraphs:
            for o in sg.operators:
                nm = names[self.model.codes[o.opcodeIndex]]
                counts[nm] = counts.get(nm, 0) + 1
        return TfliteModel(self.model.to_bytes(), self.states, counts)

    def _named_copy(self, t: int, name: str) -> int:
        """An output tensor must be its own tensor with the given name (a state may be unchanged, i.e. an input)."""
        if t in self.sg.inputs or any(t == self.state_in[b] for b in self.state_in):
            src = self.sg.tensors[t]
            y = self.sg.tensor(name, tuple(src.shape), self.dtype_of(t),
                               None if src.quantization is None else src.quantization.scale[0])
            self.op(Op.RESHAPE, [t, self.const(name + ".shape", np.array(src.shape), "int32", None)], [y],
                    options("Reshape", newShape=list(src.shape)))
            return y
        self.sg.tensors[t].name = name
        return t

    def _variables(self, x: int, logits: int, state_bufs: list[int]) -> None:
        """State in resource variables: read at the start, assigned at the end, zeroed once by CALL_ONCE."""
        g = self.g
        init = self.model.subgraph("init")
        handles = []
        for b in state_bufs:
            st = next(s for s in self.states if s.name == g.buffers[b].name)
            h = self.sg.tensor(f"var:{st.name}", (), "resource")
            handles.append((h, st))
            hi = init.tensor(f"var:{st.name}", (), "resource")
            init.op(Op.VAR_HANDLE, [], [hi], *options("VarHandle", sharedName=st.name))
            zero = init.const(f"zero:{st.name}", np.zeros((1, st.count)), st.dtype, _f32(st.scale))
            init.op(Op.ASSIGN_VARIABLE, [hi, zero], [])
        # the step: CALL_ONCE(init), VAR_HANDLE + READ_VARIABLE before the ops that read the state, ASSIGN at the end
        pre = []
        o = fb.OperatorT()
        o.opcodeIndex = self.model.opcode(Op.CALL_ONCE)
        o.inputs, o.outputs = [], []
        o.builtinOptionsType, o.builtinOptions = options("CallOnce", initSubgraphIndex=1)[::-1]
        pre.append(o)
        for h, st in handles:
            for code, ins, outs, opts in ((Op.VAR_HANDLE, [], [h], options("VarHandle", sharedName=st.name)),):
                v = fb.OperatorT()
                v.opcodeIndex = self.model.opcode(code)
                v.inputs, v.outputs = ins, outs
                v.builtinOptionsType, v.builtinOptions = opts[1], opts[0]
                pre.append(v)
        for (h, _st), b in zip(handles, state_bufs):
            r = fb.OperatorT()
            r.opcodeIndex = self.model.opcode(Op.READ_VARIABLE)
            r.inputs, r.outputs = [h], [self.state_in[b]]
            pre.append(r)
        self.sg.operators[:0] = pre
        for (h, _), b in zip(handles, state_bufs):
            self.op(Op.ASSIGN_VARIABLE, [h, self.value(b)], [])
        self.sg.inputs, self.sg.outputs = [x], [logits]


def to_tflite(low: Lowered, name: str = "model", variables: bool = False) -> TfliteModel:
    """The graph's streaming step as a .tflite file: int8 input, int16 logits, states as I/O (or, with
    `variables`, in resource variables)."""
    if not math.isfinite(low.input_scale) or low.input_scale <= 0:
        raise EdgememError(f"bad input scale {low.input_scale}")
    return _Lowering(low, variables, name).build()
