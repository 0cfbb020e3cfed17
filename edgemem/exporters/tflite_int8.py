"""The converter-style int8 .tflite (model_int8.tflite): the float32 twin (tflite_float) quantized after training
the way TF's converter quantizes a model, for TFLite Micro's fastest kernels. Not bit-exact with edgemem.

- Calibration: the float step runs in LiteRT (reference kernels, every intermediate tensor kept) over calibration
  windows from reset, state fed back; each tensor's min / max over all steps gives its range.
- Activations: int8, asymmetric, scale (max - min) / 255 over a range that includes 0, zero point so that 0 is exact.
  The step input keeps edgemem's own input scale and zero point 0, so the file reads the same int8 codes as
  model.tflite. TANH's output is 1/128 with zero point 0 (TFLM's int8 TANH writes codes at that scale whatever the
  tensor declares), LOGISTIC's 1/256 with -128, as the converter writes them.
- Ops that move integers without rescaling share one set of parameters across their operands, as the converter
  makes them: RESHAPE, SLICE, CONCATENATION, MAXIMUM / MINIMUM (a constant bound is quantized at its operand's
  parameters, saturating), SELECT_V2's two values and its output. Each state input and its next-state output share
  theirs, so the state feeds back with no requantization. GREATER compares a constant threshold quantized at its
  operand's parameters.
- FULLY_CONNECTED weights: int8, symmetric, one scale per output channel (axis 0), bias int32 at
  input scale x channel scale. BATCH_MATMUL's constant operand: int8 symmetric, one scale.
- MUL by a constant vector (a per-channel decay or threshold) becomes a 1x1 int8 DEPTHWISE_CONV_2D with one weight
  scale per channel: each factor then keeps 8 significant bits of its own, where one int8 scale shared by every
  channel would round a 0.996 decay to 1. Other constants (ADD / SUB operands): int8 with their own range.

The file keeps the float twin's form: one step, state as inputs and outputs (states zeroed to their zero points).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgemem.errors import EdgememError
from edgemem.exporters.tflite_writer import Model, Op, fb, options

T = fb.TensorType
# output shares its parameters with these input positions
SHARED_INPUTS = {Op.RESHAPE: (0,), Op.SLICE: (0,), Op.MAXIMUM: (0,), Op.MINIMUM: (0,), Op.SELECT_V2: (1, 2)}
FIXED_OUTPUT = {Op.TANH: (1.0 / 128, 0), Op.LOGISTIC: (1.0 / 256, -128)}
NAMES = {v: k for k, v in vars(Op).items() if isinstance(v, int)}


@dataclass
class QParams:
    scale: float
    zero_point: int


@dataclass
class Int8Model:
    data: bytes
    input: QParams
    output: QParams
    states: list[tuple[str, int, QParams]] = field(default_factory=list)  # name, count, params of each state input
    ops: dict[str, int] = field(default_factory=dict)


def _code(model: Any, op: Any) -> int:
    oc = model.operatorCodes[op.opcodeIndex]
    return max(oc.builtinCode, oc.deprecatedBuiltinCode)


def _const(model: Any, t: Any) -> np.ndarray | None:
    data = model.buffers[t.buffer].data if 0 < t.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dt = {T.INT32: np.int32, T.FLOAT32: np.float32, T.BOOL: np.bool_}[t.type]
    return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dt).reshape(t.shape)


def calibrate(data: bytes, windows: np.ndarray, n_states: int) -> dict[int, tuple[float, float]]:
    """Each float tensor's (min, max) over every step of `windows` [n][T][n_in] (float32), each window from zero
    state, in LiteRT's reference kernels with every intermediate kept."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                     experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    ins = [d["index"] for d in it.get_input_details()]
    outs = [d["index"] for d in it.get_output_details()]
    if len(ins) != 1 + n_states or len(outs) != 1 + n_states:
        raise EdgememError(f"the float step has {len(ins)} inputs, expected 1 + {n_states} states")
    watch = [d["index"] for d in it.get_tensor_details() if d["dtype"] == np.float32]
    lo = {i: np.inf for i in watch}
    hi = {i: -np.inf for i in watch}
    for w in windows:
        state = [np.zeros(it.get_input_details()[1 + k]["shape"], np.float32) for k in range(n_states)]
        for t in range(w.shape[0]):
            it.set_tensor(ins[0], w[t:t + 1].astype(np.float32))
            for k, v in enumerate(state):
                it.set_tensor(ins[1 + k], v)
            it.invoke()
            for i in watch:
                v = it.get_tensor(i)
                if v.size:
                    lo[i], hi[i] = min(lo[i], float(v.min())), max(hi[i], float(v.max()))
            state = [it.get_tensor(outs[1 + k]).copy() for k in range(n_states)]
    return {i: (lo[i], hi[i]) for i in watch if np.isfinite(lo[i])}


def params_of(lo: float, hi: float) -> QParams:
    """Asymmetric int8 over [lo, hi] widened to include 0 (so 0 is exact), as TF's converter chooses them."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return QParams(1.0, 0)
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return QParams(scale, zp)


def quantize(v: np.ndarray, p: QParams) -> np.ndarray:
    return np.clip(np.round(np.asarray(v, np.float64) / p.scale) + p.zero_point, -128, 127).astype(np.int8)


class _Groups:
    """Union-find over tensor indices: tensors that must share quantization parameters."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        self.parent.setdefault(i, i)
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


class _Converter:
    def __init__(self, float_data: bytes, ranges: dict[int, tuple[float, float]], input_scale: float,
                 state_names: list[str], name: str) -> None:
        self.src = fb.ModelT.InitFromPackedBuf(float_data, 0)
        if len(self.src.subgraphs) != 1:
            raise EdgememError("the float step must have one subgraph (state as inputs and outputs)")
        self.sg = self.src.subgraphs[0]
        self.ranges, self.input_scale, self.state_names = ranges, input_scale, state_names
        self.model = Model(f"edgemem {name}: one streaming step, converter-style int8 (not bit-exact)")
        self.out = self.model.subgraph("step")
        self.map: dict[int, int] = {}
        self.params: dict[int, QParams] = {}

    def is_const(self, i: int) -> bool:
        return _const(self.src, self.sg.tensors[i]) is not None

    def name(self, i: int) -> str:
        n = self.sg.tensors[i].name
        return n.decode() if isinstance(n, bytes) else str(n)

    # ---- parameters ----
    def assign_params(self) -> None:
        g = _Groups()
        fixed: dict[int, QParams] = {}
        const_in_group: set[int] = set()
        for op in self.sg.operators:
            code = _code(self.src, op)
            ins, outs = list(op.inputs), list(op.outputs)
            if code in SHARED_INPUTS:
                for k in SHARED_INPUTS[code]:
                    g.union(ins[k], outs[0])
                    if self.is_const(ins[k]):
                        const_in_group.add(ins[k])
            elif code == Op.CONCATENATION:
                for i in ins:
                    g.union(i, outs[0])
            elif code in FIXED_OUTPUT:
                fixed[outs[0]] = QParams(*FIXED_OUTPUT[code])
        n_states = len(self.sg.inputs) - 1
        for k in range(n_states):
            g.union(self.sg.inputs[1 + k], self.sg.outputs[1 + k])
        fixed[self.sg.inputs[0]] = QParams(float(np.float32(self.input_scale)), 0)
        members: dict[int, list[int]] = {}
        for i, t in enumerate(self.sg.tensors):
            if t.type == T.FLOAT32 and (not self.is_const(i) or i in const_in_group):
                members.setdefault(g.find(i), []).append(i)
        for ms in members.values():
            pinned = {(fixed[i].scale, fixed[i].zero_point) for i in ms if i in fixed}
            if len(pinned) > 1:
                raise EdgememError(f"tensors {[self.name(i) for i in ms][:4]} must share parameters but two "
                                   f"are fixed: {sorted(pinned)}")
            if pinned:
                p = QParams(*next(iter(pinned)))
            else:
                lo, hi = 0.0, 0.0
                for i in ms:
                    r = self.ranges.get(i)
                    if i in const_in_group:
                        v = _const(self.src, self.sg.tensors[i])
                        r = (float(v.min()), float(v.max()))
                    if r is not None:
                        lo, hi = min(lo, r[0]), max(hi, r[1])
                p = params_of(lo, hi)
            for i in ms:
                self.params[i] = p

    # ---- tensors of the new file ----
    def tensor(self, i: int) -> int:
        """The int8 (or int32 / bool) tensor standing for source tensor i: made once; constants are made per use."""
        if i in self.map:
            return self.map[i]
        t = self.sg.tensors[i]
        shape = tuple(int(d) for d in t.shape)
        if t.type == T.FLOAT32:
            p = self.params[i]
            v = _const(self.src, t)
            data = None if v is None else quantize(v, p)
            j = self.out.tensor(self.name(i), shape, "int8", p.scale, p.zero_point, data)
        else:
            dtype = {T.INT32: "int32", T.BOOL: "bool"}[t.type]
            j = self.out.tensor(self.name(i), shape, dtype, None, 0, _const(self.src, t))
        self.map[i] = j
        return j

    def const_at(self, i: int, p: QParams, tag: str) -> int:
        v = _const(self.src, self.sg.tensors[i])
        return self.out.const(f"{self.name(i)}.{tag}", quantize(v, p), "int8", p.scale, p.zero_point)

    def const_own(self, i: int) -> int:
        v = _const(self.src, self.sg.tensors[i])
        return self.const_at(i, params_of(float(v.min()), float(v.max())), "q")

    def const_symmetric(self, i: int) -> tuple[int, float]:
        v = _const(self.src, self.sg.tensors[i]).astype(np.float64)
        s = float(np.float32(max(np.abs(v).max(initial=0.0), 1e-30) / 127))
        q = np.clip(np.round(v / s), -127, 127)
        return self.out.const(self.name(i) + ".q", q, "int8", s, 0), s

    # ---- ops ----
    def emit(self, code: int, ins: list[int], outs: list[int], op: Any) -> None:
        self.out.op(code, ins, outs, op.builtinOptions, op.builtinOptionsType)

    def fully_connected(self, x: int, wv: np.ndarray, bias: np.ndarray | None, y: int, opts: tuple[Any, int],
                        wname: str) -> None:
        """FULLY_CONNECTED y = x W^T + b: W [out][in] int8 symmetric per output channel, b int32 at s_in * s_w."""
        wv = wv.astype(np.float64)
        s_w = (np.maximum(np.abs(wv).max(axis=1), 1e-30) / 127).astype(np.float32).astype(np.float64)
        wq = self.out.const(wname + ".q", np.clip(np.round(wv / s_w[:, None]), -127, 127), "int8", list(s_w), 0,
                            axis=0)
        s_in = float(np.float32(self.params[x].scale))
        b = np.zeros(len(s_w)) if bias is None else bias.astype(np.float64).reshape(-1)
        bq = self.out.const(wname + ".bias", np.clip(np.round(b / (s_in * s_w)), -2**31, 2**31 - 1), "int32",
                            list((s_in * s_w).astype(np.float32)), 0)
        self.out.op(Op.FULLY_CONNECTED, [self.tensor(x), wq, bq], [self.tensor(y)], *opts)

    def batch_matmul(self, op: Any) -> bool:
        """x R^T with a constant R stored [N][K] (adj_y): a FULLY_CONNECTED over x's rows with per-channel weights,
        as a converter writes a dense layer (BATCH_MATMUL's int8 kernels take one scale for all of R)."""
        x, r = int(op.inputs[0]), int(op.inputs[1])
        o = op.builtinOptions
        if not self.is_const(r) or self.is_const(x) or o is None or not o.adjY or o.adjX:
            return False
        rv = _const(self.src, self.sg.tensors[r])
        if rv.ndim != 2 or len(self.sg.tensors[x].shape) != 2:
            return False
        self.fully_connected(x, rv, None, int(op.outputs[0]), options("FullyConnected"), self.name(r))
        return True

    def mul(self, op: Any) -> bool:
        """MUL by a constant vector as a 1x1 int8 DEPTHWISE_CONV_2D with a weight scale per channel (module
        docstring); False where the MUL is not of that form."""
        a, c = op.inputs[0], op.inputs[1]
        if self.is_const(a):
            a, c = c, a
        if self.is_const(a) or not self.is_const(c):
            return False
        cv = _const(self.src, self.sg.tensors[c]).astype(np.float64).reshape(-1)
        shape = tuple(int(d) for d in self.sg.tensors[a].shape)
        n = shape[-1]
        if len(shape) != 2 or shape[0] != 1 or cv.size != n or n == 1:
            return False
        y = op.outputs[0]
        scales = np.where(cv != 0, np.abs(cv), 1.0) / 127
        scales = scales.astype(np.float32).astype(np.float64)
        codes = np.where(cv != 0, np.sign(cv) * 127, 0)
        px, py = self.params[a], self.params[y]
        x4 = self.view(self.tensor(a), (1, 1, 1, n), px, self.name(a) + ".4d")
        w = self.out.const(self.name(c) + ".dw", codes.reshape(1, 1, 1, n), "int8", list(scales), 0, axis=3)
        b = self.out.const(self.name(c) + ".bias", np.zeros(n), "int32",
                           list(np.float32(px.scale) * scales.astype(np.float32)), 0)
        y4 = self.out.tensor(self.name(y) + ".4d", (1, 1, 1, n), "int8", py.scale, py.zero_point)
        self.out.op(Op.DEPTHWISE_CONV_2D, [x4, w, b], [y4],
                    *options("DepthwiseConv2D", padding=fb.Padding.VALID, strideW=1, strideH=1, depthMultiplier=1,
                             dilationWFactor=1, dilationHFactor=1))
        self.map[y] = self.view(y4, shape, py, self.name(y))
        return True

    def view(self, t: int, shape: tuple[int, ...], p: QParams, name: str) -> int:
        y = self.out.tensor(name, shape, "int8", p.scale, p.zero_point)
        s = self.out.const(name + ".shape", np.array(shape), "int32")
        self.out.op(Op.RESHAPE, [t, s], [y], *options("Reshape", newShape=list(shape)))
        return y

    def convert(self) -> Int8Model:
        self.assign_params()
        for op in self.sg.operators:
            code = _code(self.src, op)
            ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
            if code == Op.FULLY_CONNECTED:
                b = ins[2] if len(ins) > 2 and ins[2] >= 0 else None
                self.fully_connected(ins[0], _const(self.src, self.sg.tensors[ins[1]]),
                                     None if b is None else _const(self.src, self.sg.tensors[b]), outs[0],
                                     (op.builtinOptions, op.builtinOptionsType), self.name(ins[1]))
                continue
            if code == Op.BATCH_MATMUL and self.batch_matmul(op):
                continue
            if code == Op.MUL and self.mul(op):
                continue
            new_ins = []
            for k, i in enumerate(ins):
                if i < 0 or not self.is_const(i) or self.sg.tensors[i].type != T.FLOAT32:
                    new_ins.append(-1 if i < 0 else self.tensor(i))
                elif i in self.params:  # a constant inside a shared group (SELECT_V2's values)
                    new_ins.append(self.tensor(i))
                elif code in (Op.MAXIMUM, Op.MINIMUM, Op.GREATER):  # at the other operand's parameters
                    new_ins.append(self.const_at(i, self.params[ins[1 - k]], f"at{k}"))
                elif code == Op.BATCH_MATMUL:
                    new_ins.append(self.const_symmetric(i)[0])
                elif code in (Op.ADD, Op.SUB, Op.MUL):
                    new_ins.append(self.const_own(i))
                else:
                    raise EdgememError(f"int8 conversion: a constant input of {NAMES.get(code, code)} has no rule")
            self.emit(code, new_ins, [self.tensor(o) for o in outs], op)
        self.out.inputs = [self.tensor(int(i)) for i in self.sg.inputs]
        self.out.outputs = [self.tensor(int(i)) for i in self.sg.outputs]
        n_states = len(self.sg.inputs) - 1
        states = []
        for k in range(n_states):
            i = int(self.sg.inputs[1 + k])
            states.append((self.state_names[k], int(np.prod(self.sg.tensors[i].shape)), self.params[i]))
        counts: dict[str, int] = {}
        for o in self.out.operators:
            nm = NAMES[self.model.codes[o.opcodeIndex]]
            counts[nm] = counts.get(nm, 0) + 1
        return Int8Model(self.model.to_bytes(), self.params[int(self.sg.inputs[0])],
                         self.params[int(self.sg.outputs[0])], states, counts)


CALIBRATION_WINDOWS = 64  # of the recipe's calibration windows, from reset (psMNIST: 64 x 784 steps, ~10 s)
FORM = "state as inputs and outputs"  # the step's form (meta.json tflite_int8.form)


def to_tflite_int8(float_data: bytes, calibration: np.ndarray, input_scale: float, state_names: list[str],
                   name: str = "model") -> Int8Model:
    """model_float.tflite's step as a converter-style int8 file, calibrated on the first CALIBRATION_WINDOWS of
    `calibration` [n][T][n_in] (normalized float input), put on edgemem's int8 input grid first so that calibration
    sees what the file will be given."""
    if not np.isfinite(input_scale) or input_scale <= 0:
        raise EdgememError(f"bad input scale {input_scale}")
    x = np.asarray(calibration, np.float64)[:CALIBRATION_WINDOWS]
    x = (np.clip(np.round(x / input_scale), -128, 127) * input_scale).astype(np.float32)
    ranges = calibrate(float_data, x, len(state_names))
    return _Converter(float_data, ranges, input_scale, state_names, name).convert()


def meta_of(m: Int8Model) -> dict[str, Any]:
    """meta.json's "tflite_int8": the form, input / output parameters and each state's [name, count, scale, zero
    point] (a state starts at its zero point: real 0)."""
    return {"form": FORM, "input": [m.input.scale, m.input.zero_point],
            "output": [m.output.scale, m.output.zero_point],
            "states": [[n, c, p.scale, p.zero_point] for n, c, p in m.states]}
