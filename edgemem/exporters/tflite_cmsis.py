"""The .tflite forms that TFLite Micro built with CMSIS-NN kernels (OPTIMIZED_KERNEL_DIR=cmsis_nn) accepts, and
computes to the same integers as TFLM's reference kernels: docs/tflite.md "TFLM with CMSIS-NN kernels" gives each
rule and the TFLM / CMSIS-NN code it comes from. `cmsis_nn_problems` walks a file's flatbuffer and names every
operator outside those forms; an empty list is the claim that the file passes AllocateTensors in that build and
computes what the reference build computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as fb

Op = fb.BuiltinOperator
T = fb.TensorType
INT32_MAX = 2**31 - 1
# arm_nn_requantize_s64 keeps (acc * reduced_multiplier) >> (14 - shift) in an int32, one bit before the last shift
RESULT_LIMIT = 2**30
# operators whose kernels (CMSIS-NN or reference) take every form edgemem writes: int16 zero points 0 (checked below)
PLAIN = {Op.RESHAPE, Op.QUANTIZE, Op.ADD, Op.SUB, Op.MUL, Op.MAXIMUM, Op.MINIMUM, Op.CONCATENATION, Op.SLICE,
         Op.RELU, Op.CAST, Op.GATHER, Op.VAR_HANDLE, Op.READ_VARIABLE, Op.ASSIGN_VARIABLE, Op.CALL_ONCE, Op.TANH,
         Op.GREATER, Op.SELECT_V2}
NAMES = {v: k for k, v in vars(Op).items() if isinstance(v, int)}
# int8 operands whose kernels move codes without rescaling: they must carry the output's scale and zero point
# (TFLM's reference CONCATENATION / SLICE / SELECT_V2 copy codes; MAXIMUM / MINIMUM, reference and CMSIS-NN's
# arm_maximum_s8 / arm_minimum_s8, compare codes)
SAME_PARAMS = {Op.CONCATENATION: None, Op.SLICE: (0,), Op.MAXIMUM: (0, 1), Op.MINIMUM: (0, 1), Op.SELECT_V2: (1, 2)}
# int8 outputs whose parameters are fixed: TFLM's int8 TANH writes 1/128 codes whatever the output declares (measured)
FIXED_INT8_OUTPUT = {Op.TANH: (1.0 / 128, 0), Op.LOGISTIC: (1.0 / 256, -128)}


def _const(model: Any, t: Any) -> np.ndarray | None:
    data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dt = {T.INT8: np.int8, T.INT16: np.int16, T.INT32: np.int32, T.INT64: np.int64, T.FLOAT32: np.float32}[t.type]
    return np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dt).reshape(t.shape)


def _scales(t: Any) -> list[float]:
    q = t.quantization
    return [] if q is None or q.scale is None else [float(v) for v in q.scale]


TYPE_RANGE = {T.INT8: (-128, 127), T.INT16: (-32768, 32767)}


def _ranges(model: Any, sg: Any) -> dict[int, tuple[int, int]]:
    """A bound on each integer tensor's values, in execution order: its type's range, narrowed where an int8 value
    is widened (QUANTIZE at equal scales), viewed (RESHAPE) or clamped by a constant (MAXIMUM / MINIMUM)."""
    r: dict[int, tuple[int, int]] = {}
    for i, t in enumerate(sg.tensors):
        v = _const(model, t) if t.type in TYPE_RANGE else None
        if v is not None and v.size:
            r[i] = (int(v.min()), int(v.max()))
        elif t.type in TYPE_RANGE:
            r[i] = TYPE_RANGE[t.type]
    for op in sg.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        ins = [] if op.inputs is None else [int(i) for i in op.inputs]
        outs = [] if op.outputs is None else [int(i) for i in op.outputs]
        if not outs or outs[0] not in r or not ins or ins[0] not in r:
            continue
        y, (lo, hi) = outs[0], r[ins[0]]
        ty = TYPE_RANGE[sg.tensors[y].type]
        if code == Op.RESHAPE or (code == Op.QUANTIZE and _scales(sg.tensors[ins[0]]) == _scales(sg.tensors[y])):
            r[y] = (max(lo, ty[0]), min(hi, ty[1]))
        elif code in (Op.MAXIMUM, Op.MINIMUM) and len(ins) == 2 and ins[1] in r:
            c_lo, c_hi = r[ins[1]]
            r[y] = (max(lo, c_lo), max(hi, c_hi)) if code == Op.MAXIMUM else (min(lo, c_lo), min(hi, c_hi))
    return r


def _bounds(model: Any, ins: list[Any], out: Any, channel_axis: int, x_max: int) -> list[str]:
    """CMSIS-NN's 16x8 kernels add the products in int32 (SMLAD) and requantize through an int32 one bit wider
    than the result; TFLM's reference uses int64. Equal when, per output channel c, with |x| <= x_max,
    sum|w_c| * x_max fits int32 and (sum|w_c| * x_max + |bias_c|) * multiplier_c < 2^30."""
    x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    wv = _const(model, w)
    if wv is None:
        return ["weights are not constant"]
    axes = tuple(i for i in range(wv.ndim) if i != channel_axis)
    s = np.abs(wv.astype(np.int64)).sum(axis=axes) * x_max
    bv = None if b is None else _const(model, b)
    acc = s + (0 if bv is None else np.abs(bv.astype(np.int64)).reshape(-1))
    ws = np.asarray(_scales(w), dtype=np.float64)
    mult = _scales(x)[0] * ws / _scales(out)[0]
    bad = []
    if s.max(initial=0) > INT32_MAX:
        bad.append(f"sum|w| * max|x| = {int(s.max())} overflows CMSIS-NN's int32 accumulator")
    if (acc * mult).max(initial=0) >= RESULT_LIMIT:
        bad.append("|acc * multiplier| may reach 2^30 (CMSIS-NN's int32 requantization wraps there)")
    return bad


def _zero_points(t: Any) -> list[int]:
    q = t.quantization
    return [] if q is None or q.zeroPoint is None else [int(z) for z in q.zeroPoint]


def _params(t: Any) -> tuple[list[float], list[int]]:
    return _scales(t), _zero_points(t)


def _int8_params(code: int, op: Any, ins: list[Any], outs: list[Any]) -> list[str]:
    """The int8 parameter rules of converter-style files: operands of code-moving ops share the output's scale and
    zero point; TANH / LOGISTIC outputs carry the fixed parameters their int8 kernels require."""
    bad = []
    if code in SAME_PARAMS and outs and outs[0].type == T.INT8:
        pos = SAME_PARAMS[code] or range(len(ins))
        for k in pos:
            if k < len(ins) and ins[k] is not None and ins[k].type == T.INT8 and _params(ins[k]) != _params(outs[0]):
                bad.append(f"int8 input {k} has other scale / zero point than the output (the kernel copies codes)")
    if code in FIXED_INT8_OUTPUT and outs and outs[0].type == T.INT8:
        s, z = FIXED_INT8_OUTPUT[code]
        sc, zp = _params(outs[0])
        if len(sc) != 1 or abs(sc[0] - s) > 1e-9 * s or zp != [z]:
            bad.append(f"int8 output must have scale {s} and zero point {z}")
    return bad


def _check(model: Any, sg: Any, op: Any, ranges: dict[int, tuple[int, int]]) -> list[str]:
    code = max(model.operatorCodes[op.opcodeIndex].builtinCode,
               model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
    ins = [sg.tensors[i] if i >= 0 else None for i in ([] if op.inputs is None else op.inputs)]
    outs = [sg.tensors[i] for i in ([] if op.outputs is None else op.outputs)]
    bad = [f"int16 tensor {t.name!r} has a non-zero zero point" for t in [*ins, *outs]
           if t is not None and t.type == T.INT16 and t.quantization is not None
           and any(z != 0 for z in (t.quantization.zeroPoint if t.quantization.zeroPoint is not None else []))]
    bad += _int8_params(code, op, ins, outs)
    if code in PLAIN:
        return bad
    x = ins[0]
    if code in (Op.FULLY_CONNECTED, Op.CONV_2D, Op.DEPTHWISE_CONV_2D):
        w, b = ins[1], ins[2] if len(ins) > 2 else None
        if x.type == T.FLOAT32:
            return bad + ([] if w.type == T.FLOAT32 else ["hybrid float input / integer weights"])
        if w.type != T.INT8 or outs[0].type != x.type:
            return bad + ["weights must be int8 and the output the input's type"]
        if any(z != 0 for z in _zero_points(w)):
            bad.append("weights need zero point 0 (CMSIS-NN's kernels take symmetric weights only)")
        if x.type == T.INT8:
            return bad + ([] if b is None or b.type == T.INT32 else ["int8 input needs an int32 bias"])
        if x.type != T.INT16:
            return bad + [f"input type {x.type} not accepted"]
        if b is not None and b.type != T.INT64:
            bad.append("16x8 needs an int64 bias (an int32 bias takes another requantization in CMSIS-NN)")
        if code == Op.FULLY_CONNECTED and len(_scales(w)) > 1:
            bad.append("16x8 FULLY_CONNECTED with per-channel weight scales (CMSIS-NN's Prepare refuses it)")
        if code in (Op.CONV_2D, Op.DEPTHWISE_CONV_2D) and (len(x.shape) != 4 or len(outs[0].shape) != 4):
            bad.append("convolutions need 4-D input and output")
        axis = {Op.FULLY_CONNECTED: 0, Op.CONV_2D: 0, Op.DEPTHWISE_CONV_2D: 3}[code]
        lo, hi = ranges.get(int(op.inputs[0]), TYPE_RANGE[T.INT16])
        return bad + _bounds(model, ins, outs[0], axis, max(-lo, hi))
    if code == Op.BATCH_MATMUL:
        o = op.builtinOptions
        if o is not None and o.adjX:
            bad.append("BATCH_MATMUL with adj_x (TFLM transposes the LHS into its arena at every Invoke)")
        if o is None or not o.adjY:
            bad.append("BATCH_MATMUL without adj_y (TFLM transposes the RHS into its arena)")
        return bad
    return bad + [f"operator {NAMES.get(code, code)} is not among the forms docs/tflite.md lists"]


def cmsis_nn_problems(data: bytes) -> list[str]:
    """Every operator of the file outside the CMSIS-NN forms, as 'subgraph/op#i NAME: why' (empty: all accepted)."""
    model = fb.ModelT.InitFromPackedBuf(data, 0)
    out = []
    for sg in model.subgraphs:
        ranges = _ranges(model, sg)
        for i, op in enumerate(sg.operators):
            code = max(model.operatorCodes[op.opcodeIndex].builtinCode,
                       model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
            out += [f"{sg.name.decode() if isinstance(sg.name, bytes) else sg.name}/op#{i} "
                    f"{NAMES.get(code, code)}: {why}" for why in _check(model, sg, op, ranges)]
    return out


def op_counts(data: bytes) -> dict[str, int]:
    """TFLite builtin name -> number of operators, over every subgraph."""
    model = fb.ModelT.InitFromPackedBuf(data, 0)
    counts: dict[str, int] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            oc = model.operatorCodes[op.opcodeIndex]
            name = NAMES.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "?")
            counts[name] = counts.get(name, 0) + 1
    return counts
