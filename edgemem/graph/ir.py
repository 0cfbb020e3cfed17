"""The integer graph IR (docs/graph.md): buffers, ops and tensors of one streaming step.

Every quantized model is lowered to a Graph; the integer reference (graph_ref), the blob writer (export/graph_blob)
and the C runtime all read this one description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from edgemem.errors import EdgememError

NONE = 0xFFFF
MAX_DIM = 1024
MAX_LMU_CELLS = 4096
MAX_KERNEL = 16
MAX_BUFFERS = 256
MAX_OPS = 256
MAX_TENSORS = 1024


class DType(IntEnum):
    S8 = 1
    S16 = 2
    S32 = 3
    S4 = 4  # packed weights (docs/graph.md "Packed weights"): tensors only, FC/CONV1D t0 only
    S2 = 5

    @property
    def packed(self) -> bool:
        return self in (DType.S4, DType.S2)

    @property
    def np(self) -> type:
        """The numpy type of one element; packed dtypes hold their values in int8 (their bytes are packed by the
        blob writer, never by numpy)."""
        return {DType.S8: np.int8, DType.S16: np.int16, DType.S32: np.int32, DType.S4: np.int8,
                DType.S2: np.int8}[self]

    @property
    def size(self) -> int:
        """Bytes per element, and the alignment of a tensor of this dtype; a packed dtype has no whole-byte
        element (nbytes gives its storage), so asking is an error rather than a silent 1."""
        if self.packed:
            raise EdgememError(f"{self.name.lower()} is packed: use nbytes(count)")
        return {DType.S8: 1, DType.S16: 2, DType.S32: 4}[self]

    @property
    def bits(self) -> int:
        return {DType.S4: 4, DType.S2: 2}.get(self, 0) or 8 * self.size

    @property
    def per_byte(self) -> int:
        """Elements per byte of a packed dtype (1 for the others, which span one or more bytes)."""
        return {DType.S4: 2, DType.S2: 4}.get(self, 1)

    @property
    def value_range(self) -> tuple[int, int]:
        return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1

    def nbytes(self, count: int) -> int:
        """Storage of `count` elements: ceil(count / per_byte) bytes packed, count * size otherwise."""
        return -(-count // self.per_byte) if self.packed else count * self.size


class OpType(IntEnum):
    FC = 1
    CONV1D = 2
    ACT = 3
    LIF = 4
    LEAKY = 5
    LMU = 6
    ADD = 7
    ONOFF = 8
    SPIKE = 9  # out = mem > thr: the previous step's spikes recomputed from a LIF membrane (docs/graph.md)
    SENSOR = 10  # input stage: int16 sensor counts [D][C] -> int8 [C] (edgemem.graph.sensor)
    LOGMEL = 11  # input stage: int16 PCM [hop] -> int8 log-mel [n_mels] (edgemem.graph.logmel)


class Act(IntEnum):
    SAT = 0
    RELU = 1
    LUT = 2


FLAG_ACC = 1  # FC, CONV1D, ADD, ONOFF: add into out
FLAG_CUBA = 2  # LIF
FLAG_EVENTS = 8  # FC: event-driven (s8 input; scratch = s16 [d_in], the index list of its nonzero inputs)
FLAG_LEGENDRE = 16  # LMU: A has the Legendre structure (edgemem.graph.legendre): the C kernel runs O(order) a row
STATE = 1  # buffer flag


@dataclass
class Buffer:
    name: str
    dtype: DType
    count: int
    state: bool = False
    offset: int = -1  # arena byte offset; -1 until placed


@dataclass
class Op:
    """One op; buffer fields are buffer indices (or NONE), t are tensor indices (or NONE)."""

    type: OpType
    name: str
    in0: int = NONE
    out: int = NONE
    state0: int = NONE
    state1: int = NONE
    scratch: int = NONE
    d: tuple[int, int, int, int] = (0, 0, 0, 0)
    t: tuple[int, int, int, int] = (NONE, NONE, NONE, NONE)
    flags: int = 0

    @property
    def acc(self) -> bool:
        return bool(self.flags & FLAG_ACC)

    @property
    def act(self) -> Act:
        return Act((self.flags >> 1) & 3)


@dataclass
class Tensor:
    name: str
    data: np.ndarray  # int64 values; stored as `dtype`
    dtype: DType


@dataclass
class Graph:
    n_in: int
    n_out: int
    buffers: list[Buffer] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    in_buffer: int = NONE
    out_buffer: int = NONE
    arena_size: int = 0

    # ---- building ----
    def buffer(self, name: str, dtype: DType, count: int, state: bool = False) -> int:
        if dtype.packed:  # only weight tensors are packed; the kernels read and write whole-byte buffers
            raise EdgememError(f"buffer {name}: {dtype.name.lower()} is a tensor-only dtype")
        self.buffers.append(Buffer(name, dtype, int(count), state))
        return len(self.buffers) - 1

    def tensor(self, name: str, data: np.ndarray, dtype: DType) -> int:
        values = np.asarray(data, dtype=np.int64).reshape(-1)
        lo, hi = dtype.value_range
        if values.size and (values.min() < lo or values.max() > hi):
            raise EdgememError(f"tensor {name} does not fit {dtype.name.lower()}")
        self.tensors.append(Tensor(name, values, dtype))
        return len(self.tensors) - 1

    def op(self, op: Op) -> Op:
        self.ops.append(op)
        return op

    def place(self) -> int:
        """Pack every buffer back to back (4-byte aligned) in table order; returns the arena size."""
        at = 0
        for b in self.buffers:
            b.offset = at
            at += (b.count * b.dtype.size + 3) & ~3
        self.arena_size = at
        return at

    # ---- reading ----
    @property
    def is_input_stage(self) -> bool:
        """An input stage (docs/graph.md "Input stages") reads int16 samples and writes the model's int8 input; a
        model reads int8 and writes int16 logits."""
        return self.buffers[self.in_buffer].dtype == DType.S16

    def index(self, name: str) -> int:
        for i, b in enumerate(self.buffers):
            if b.name == name:
                return i
        raise KeyError(name)

    def weight_bytes(self) -> int:
        """Bytes of tensor data as stored (packed tensors in their packed size; alignment padding not counted)."""
        return sum(t.dtype.nbytes(t.data.size) for t in self.tensors)


def lut_op_flags(act: Act, acc: bool = False) -> int:
    return (int(act) << 1) | (FLAG_ACC if acc else 0)


# Kernel variants (em_graph.h em_graph_kernel_t, bit k of EM_GRAPH_KERNELS): an op's type and dtypes pick one.
KERNELS = ("FC_S8", "FC_S16", "FC_S8_PACKED", "FC_S16_PACKED", "CONV1D_S8", "CONV1D_PACKED", "ACT_S8", "ACT_S16",
           "LIF", "LEAKY", "LMU", "ADD_S8", "ADD_S16", "ONOFF", "SPIKE", "FC_S8_EVENTS", "FC_S8_PACKED_EVENTS",
           "SENSOR", "LOGMEL", "LMU_LEGENDRE")


def kernel_of(g: Graph, op: Op) -> str:
    """The C kernel variant op runs on (em_graph_kernel in firmware/src/em_graph_internal.h, the same rule)."""
    packed = op.type in (OpType.FC, OpType.CONV1D) and g.tensors[op.t[0]].dtype in (DType.S4, DType.S2)
    if op.type == OpType.FC and op.flags & FLAG_EVENTS:
        return "FC_S8_PACKED_EVENTS" if packed else "FC_S8_EVENTS"
    if op.type == OpType.FC:
        s8 = g.buffers[op.in0].dtype == DType.S8
        return ("FC_S8" if s8 else "FC_S16") + ("_PACKED" if packed else "")
    if op.type == OpType.CONV1D:
        return "CONV1D_PACKED" if packed else "CONV1D_S8"
    if op.type == OpType.ACT:
        return "ACT_S8" if g.buffers[op.out].dtype == DType.S8 else "ACT_S16"
    if op.type == OpType.ADD:
        return "ADD_S8" if g.buffers[op.in0].dtype == DType.S8 else "ADD_S16"
    if op.type == OpType.LMU and op.flags & FLAG_LEGENDRE:
        return "LMU_LEGENDRE"
    return op.type.name


def kernel_mask(g: Graph, patch: bool = False) -> int:
    """EM_GRAPH_KERNELS for a firmware that runs only g (with `patch`, also its patch schedule's FC-over-window
    kernels for the convs)."""
    names = {kernel_of(g, op) for op in g.ops}
    if patch:
        names |= {n.replace("CONV1D_S8", "FC_S8").replace("CONV1D_PACKED", "FC_S8_PACKED") for n in names}
    return sum(1 << KERNELS.index(n) for n in names)
