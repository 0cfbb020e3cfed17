"""A small .tflite writer over the TFLite schema's object API (flatbuffers), with no TensorFlow.

The file carries exactly the scales and zero points given here: no converter re-derives them. The schema classes
come from ai-edge-litert (`schema_py_generated`, the same schema the interpreter reads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as fb

from edgemem.errors import EdgememError

Op = fb.BuiltinOperator
Opt = fb.BuiltinOptions
TYPES: dict[str, int] = {"int8": fb.TensorType.INT8, "int16": fb.TensorType.INT16, "int32": fb.TensorType.INT32,
                         "int64": fb.TensorType.INT64, "float32": fb.TensorType.FLOAT32, "bool": fb.TensorType.BOOL,
                         "resource": fb.TensorType.RESOURCE, "uint8": fb.TensorType.UINT8}
NP_TYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "float32": np.float32,
            "bool": np.bool_, "uint8": np.uint8}
# per-operator kernel versions: the lowest each interpreter accepts for the types edgemem writes
VERSIONS = {Op.CONV_2D: 4, Op.DEPTHWISE_CONV_2D: 5, Op.FULLY_CONNECTED: 7, Op.ADD: 3, Op.SUB: 3, Op.MUL: 4, Op.QUANTIZE: 2,
            Op.CONCATENATION: 3,
            Op.GATHER: 2, Op.CAST: 1, Op.SELECT_V2: 1, Op.GREATER: 2, Op.BATCH_MATMUL: 4, Op.STRIDED_SLICE: 4,
            Op.RESHAPE: 1, Op.RELU: 2, Op.MAXIMUM: 2, Op.MINIMUM: 2, Op.VAR_HANDLE: 1, Op.READ_VARIABLE: 1,
            Op.ASSIGN_VARIABLE: 1, Op.CALL_ONCE: 1, Op.TANH: 1, Op.LOGISTIC: 1, Op.GELU: 1, Op.DEQUANTIZE: 2,
            Op.SLICE: 2}


@dataclass
class Quant:
    scale: list[float]
    zero_point: list[int]
    axis: int = 0


@dataclass
class SubGraph:
    """Tensors and operators of one subgraph, added in execution order."""

    name: str
    model: Model
    tensors: list[fb.TensorT] = field(default_factory=list)
    operators: list[fb.OperatorT] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def tensor(self, name: str, shape: tuple[int, ...], dtype: str, scale: float | list[float] | None = None,
               zero_point: int | list[int] = 0, data: np.ndarray | None = None, axis: int = 0) -> int:
        t = fb.TensorT()
        t.name = name
        t.shape = [int(d) for d in shape]
        t.type = TYPES[dtype]
        t.buffer = 0 if data is None else self.model.buffer(np.asarray(data).astype(NP_TYPES[dtype]))
        if data is not None and np.asarray(data).size != int(np.prod(shape)):
            raise EdgememError(f"tensor {name}: {np.asarray(data).size} values for shape {shape}")
        if scale is not None:
            scales = [float(s) for s in np.atleast_1d(scale)]
            zps = [int(z) for z in np.atleast_1d(zero_point)]
            if len(zps) == 1 and len(scales) > 1:
                zps = zps * len(scales)
            q = fb.QuantizationParametersT()
            q.scale, q.zeroPoint, q.quantizedDimension = scales, zps, axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray, dtype: str, scale: float | list[float] | None = None,
              zero_point: int | list[int] = 0, axis: int = 0) -> int:
        arr = np.asarray(data)
        return self.tensor(name, arr.shape, dtype, scale, zero_point, arr, axis)

    def op(self, code: int, inputs: list[int], outputs: list[int], options: Any = None,
           options_type: int = 0) -> None:
        o = fb.OperatorT()
        o.opcodeIndex = self.model.opcode(code)
        o.inputs, o.outputs = [int(i) for i in inputs], [int(i) for i in outputs]
        if options is not None:
            o.builtinOptionsType, o.builtinOptions = options_type, options
        self.operators.append(o)

    def build(self) -> fb.SubGraphT:
        s = fb.SubGraphT()
        s.name, s.tensors, s.operators, s.inputs, s.outputs = (self.name, self.tensors, self.operators, self.inputs,
                                                                self.outputs)
        return s


class Model:
    def __init__(self, description: str) -> None:
        self.description = description
        empty = fb.BufferT()  # buffer 0 is the empty sentinel of every tensor without constant data
        self.buffers: list[fb.BufferT] = [empty]
        self.codes: list[int] = []
        self.subgraphs: list[SubGraph] = []

    def subgraph(self, name: str) -> SubGraph:
        sg = SubGraph(name, self)
        self.subgraphs.append(sg)
        return sg

    def buffer(self, data: np.ndarray) -> int:
        b = fb.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<")).tobytes(),
                               dtype=np.uint8)
        self.buffers.append(b)
        return len(self.buffers) - 1

    def opcode(self, code: int) -> int:
        if code not in self.codes:
            self.codes.append(code)
        return self.codes.index(code)

    def to_bytes(self) -> bytes:
        m = fb.ModelT()
        m.version = 3
        m.description = self.description
        m.buffers = self.buffers
        m.subgraphs = [s.build() for s in self.subgraphs]
        codes = []
        for c in self.codes:
            oc = fb.OperatorCodeT()
            oc.builtinCode = c
            oc.deprecatedBuiltinCode = min(c, Op.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = VERSIONS.get(c, 1)
            codes.append(oc)
        m.operatorCodes = codes
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def options(kind: str, **fields: Any) -> tuple[Any, int]:
    """(options object, BuiltinOptions type) for `kind`, e.g. options("FullyConnected", keepNumDims=False)."""
    obj = getattr(fb, f"{kind}OptionsT")()
    for k, v in fields.items():
        if not hasattr(obj, k):
            raise EdgememError(f"{kind}Options has no field {k}")
        setattr(obj, k, v)
    return obj, getattr(Opt, f"{kind}Options")
