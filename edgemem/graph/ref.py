"""The pure-integer reference of a Graph (docs/graph.md): the specification the C graph runtime matches bit for bit.

Vectorized over a batch of independent sequences: every buffer holds an int64 array [batch][count] of values of its
dtype, and every op is an exact int64 computation of the rules in edgemem.graph.intops, run in list order. The
arrays are laid out as the C arena holds them (arena_image), so a state dump of either side compares byte for byte.

An op replaces the arrays it writes instead of changing them in place, so the dict that step() returns stays a
snapshot of that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError
from edgemem.graph.check import tables_of, validate
from edgemem.graph.intops import requant, rshift_round, sat
from edgemem.graph.ir import FLAG_CUBA, NONE, Act, Graph, Op, OpType
from edgemem.graph.logmel import LogMelTables, logmel_int8

__all__ = ["GraphState", "arena_image", "init_state", "lif_spikes", "reset", "run_graph", "step", "validate"]

Values = list[np.ndarray]  # per buffer index: [batch][count] int64


@dataclass
class GraphState:
    """Every buffer's values for a batch of sequences; state buffers persist, scratch ones hold their last write."""

    graph: Graph
    values: Values
    plan: list[Callable[[Values], None]]

    @property
    def batch(self) -> int:
        return self.values[0].shape[0]


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b of int64 arrays, exactly: through float64 BLAS when every partial sum stays below 2^53 (then each
    product and sum is an exact float64 integer), else in int64 (numpy's slow non-BLAS loop)."""
    k = a.shape[-1]
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) * k
    if bound < 2.0**53:
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def _rshift_round(x: np.ndarray, s: int) -> np.ndarray:
    """rshift_round with docs/graph.md's s = 0 case (identity), which intops leaves out (1 << -1 is undefined)."""
    return x if s == 0 else rshift_round(x, s)


def lif_step(beta: np.ndarray, alpha: np.ndarray | None, thr: np.ndarray, cur: np.ndarray, mem: np.ndarray,
             syn: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One LIF (alpha None) or CuBa step with reset by subtraction (docs/graph.md LIF): spikes, mem, syn.
    Every intermediate is int16, as TFLite's SUB and ADD compute it; the membrane integrates the stored syn."""
    reset = np.where(mem > thr, thr, 0)
    c = sat(cur, 16)
    if alpha is not None:
        assert syn is not None
        syn = c = sat(rshift_round(alpha * syn, 15) + c, 16)
    mem = sat(sat(rshift_round(beta * mem, 15) - reset, 16) + c, 16)
    return (mem > thr).astype(np.int64), mem, syn


def _store(v: Values, out: int, r: np.ndarray, acc: bool) -> None:
    """A contribution into a sum buffer: int16 each and an int16 sum (docs/graph.md), as TFLite computes it."""
    r = sat(r, 16)
    v[out] = sat(v[out] + r, 16) if acc else r


def _compile(g: Graph, op: Op) -> Callable[[Values], None]:
    """One op as a function of the buffer values (tensors converted and reshaped once, here)."""
    none = np.zeros(0, dtype=np.int64)  # an unused tensor field (the checks guarantee it is never read)
    t = [g.tensors[i].data if i != NONE else none for i in op.t]
    d0, d1, d2, d3 = op.d
    acc = op.acc

    if op.type == OpType.FC:
        w, bias, mult, shift = t[0].reshape(d1, d0), t[1], t[2], t[3]

        def fc(v: Values) -> None:
            _store(v, op.out, requant(_matmul(v[op.in0], w.T) + bias, mult, shift), acc)
        return fc

    if op.type == OpType.CONV1D:
        k = d2
        w, bias, mult, shift = t[0].reshape(d1, k, d0), t[1], t[2], t[3]

        def conv1d(v: Values) -> None:
            cur = v[op.in0]
            if k == 1:
                total = _matmul(cur, w[:, 0, :].T)
            else:
                b = cur.shape[0]
                ring = v[op.state0].reshape(b, k - 1, d0)
                head = v[op.state1][:, 0]
                # tap j < k-1 sees frame t-(k-1)+j, held in ring[(head + j) % (k-1)]; tap k-1 the current frame
                slots = (head[:, None] + np.arange(k - 1)) % (k - 1)
                frames = np.concatenate([np.take_along_axis(ring, slots[:, :, None], axis=1), cur[:, None, :]], axis=1)
                total = _matmul(frames.reshape(b, -1), w.reshape(d1, -1).T)
                ring = ring.copy()
                ring[np.arange(b), head % (k - 1)] = cur
                v[op.state0] = ring.reshape(b, -1)
                v[op.state1] = ((head + 1) % (k - 1))[:, None]
            _store(v, op.out, requant(total + bias, mult, shift), acc)
        return conv1d

    if op.type == OpType.ACT:
        bits = g.buffers[op.out].dtype.bits
        func = op.act
        lut = t[0]

        def act(v: Values) -> None:
            x = v[op.in0]
            if func == Act.SAT:
                v[op.out] = sat(x, bits)
            elif func == Act.RELU:
                v[op.out] = np.clip(x, 0, (1 << (bits - 1)) - 1)
            else:
                v[op.out] = lut[sat(x, 8) + 128]
        return act

    if op.type == OpType.LIF:
        cuba = bool(op.flags & FLAG_CUBA)
        beta, alpha, thr = t[0], t[1] if cuba else None, t[2]

        def lif(v: Values) -> None:
            spk, mem, syn = lif_step(beta, alpha, thr, v[op.in0], v[op.state0], v[op.state1] if cuba else None)
            v[op.out], v[op.state0] = spk, mem
            if cuba:
                v[op.state1] = syn
        return lif

    if op.type == OpType.LEAKY:
        beta = t[0]

        def leaky(v: Values) -> None:
            v[op.out] = sat(rshift_round(beta * v[op.out], 15) + v[op.in0], 16)  # no pre-saturation of in
        return leaky

    if op.type == OpType.LMU:
        n_u, order, a_shift, b_shift = d0, d1, d2, d3
        a, bvec = t[0].reshape(order, order), t[1]

        def lmu(v: Values) -> None:
            b = v[op.in0].shape[0]
            m = v[op.state0].reshape(b, n_u, order)
            drive = _rshift_round(v[op.in0][:, :, None] * bvec, b_shift)  # |u * B| < 2^39: exact
            # int16 terms, then their saturated sum (as TFLite's BATCH_MATMULs and ADD: docs/tflite.md)
            v[op.state0] = sat(sat(rshift_round(_matmul(m, a.T), a_shift), 16) + sat(drive, 16), 16).reshape(b, -1)
            # the kernel keeps each old row aside in scratch; the last channel's is what remains
            v[op.scratch] = m[:, -1, :]
        return lmu

    if op.type == OpType.ADD:
        mult, shift = t[0], t[1]

        def add(v: Values) -> None:
            _store(v, op.out, requant(v[op.in0], mult[0], shift[0]), acc)
        return add

    if op.type == OpType.SENSOR:
        c, dec = d0, d1
        offset, mult, shift = t[0], t[1], t[2]

        def sensor(v: Values) -> None:  # edgemem.graph.sensor.sensor_stage, on the flat [D * C] input
            total = v[op.in0].reshape(-1, dec, c).sum(axis=1)
            v[op.out] = sat(requant(sat(total - offset, 32), mult, shift), 8)
        return sensor

    if op.type == OpType.LOGMEL:
        tabs = LogMelTables(t[0], t[1], t[2], t[3], d0, d1, d2, d3)

        def logmel(v: Values) -> None:  # edgemem.graph.logmel.logmel_frame, for the batch at once
            hist = v[op.state0] if d0 > d1 else np.zeros((v[op.in0].shape[0], 0), dtype=np.int64)
            frame = np.concatenate([hist, v[op.in0]], axis=1)
            v[op.out] = logmel_int8(tabs, frame).astype(np.int64)
            if d0 > d1:
                v[op.state0] = frame[:, d1:]
            v[op.scratch] = np.zeros_like(v[op.scratch])  # garbage in C: not part of the contract
        return logmel

    if op.type == OpType.SPIKE:
        thr = t[0]

        def spike(v: Values) -> None:
            v[op.out] = (v[op.in0] > thr).astype(np.int64)
        return spike

    assert op.type == OpType.ONOFF

    def onoff(v: Values) -> None:
        x = v[op.in0]
        _store(v, op.out, np.concatenate([x, -x], axis=1), acc)
    return onoff


def init_state(g: Graph, batch: int) -> GraphState:
    """Validate g and return the zero state of `batch` sequences (scratch buffers start at zero too)."""
    validate(g)
    if batch < 1:
        raise EdgememError(f"batch must be at least 1, got {batch}")
    values = [np.zeros((batch, b.count), dtype=np.int64) for b in g.buffers]
    return GraphState(g, values, [_compile(g, op) for op in g.ops])


def reset(st: GraphState) -> None:
    """Zero every state buffer (em_reset): the next step starts a new sequence."""
    for i, b in enumerate(st.graph.buffers):
        if b.state:
            st.values[i] = np.zeros_like(st.values[i])


def step(g: Graph, x_t: np.ndarray, st: GraphState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """x_t [batch][n_in] int8 values (int16 for an input stage) -> (logits [batch][n_out] int16 values (the int8
    model input for a stage), every buffer's values by name)."""
    if st.graph is not g:
        raise EdgememError("the state was made for another graph (init_state(g, batch) first)")
    x = np.asarray(x_t)
    if x.shape != (st.batch, g.n_in):
        raise EdgememError(f"step input must be [{st.batch}][{g.n_in}], got shape {x.shape}")
    x = x.astype(np.int64)
    lo, hi = g.buffers[g.in_buffer].dtype.value_range
    if x.size and (x.min() < lo or x.max() > hi):
        raise EdgememError(f"step input holds values outside int{8 * g.buffers[g.in_buffer].dtype.size}")
    v = st.values
    v[g.in_buffer] = x
    for run in st.plan:
        run(v)
    return v[g.out_buffer].copy(), {b.name: v[i] for i, b in enumerate(g.buffers)}


def run_graph(g: Graph, x: np.ndarray,
              on_step: Callable[[int, dict[str, np.ndarray]], None] | None = None) -> np.ndarray:
    """x [b][T][n_in] int8 values -> per-step logits [b][T][n_out] (int64 holding int16), each sequence from reset
    (an input stage: int16 samples in, its int8 output out).

    on_step(t, values) sees every buffer after step t (calibration, debugging, spike counts via lif_spikes).
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != g.n_in:
        raise EdgememError(f"input must be [sequences][steps][{g.n_in}], got shape {x.shape}")
    st = init_state(g, x.shape[0])
    out = np.zeros((x.shape[0], x.shape[1], g.n_out), dtype=np.int64)
    for t in range(x.shape[1]):
        out[:, t], values = step(g, x[:, t], st)
        if on_step is not None:
            on_step(t, values)
    return out


def lif_spikes(g: Graph, values: dict[str, np.ndarray]) -> np.ndarray:
    """Spikes of one step per sequence: the sum of every LIF op's output."""
    total = np.zeros(next(iter(values.values())).shape[0], dtype=np.int64)
    for op in g.ops:
        if op.type == OpType.LIF:
            total += values[g.buffers[op.out].name].sum(axis=1)
    return total


def arena_image(g: Graph, st: GraphState, row: int, state_only: bool = True) -> bytes:
    """Sequence `row`'s arena as the C runtime holds it (little endian, at the exporter's offsets).

    With state_only, scratch buffers read as zero: their bytes between steps are not part of the contract.
    """
    t = tables_of(g)
    image = bytearray(t.arena_size)
    for b, (_, _, _, _, offset), vals in zip(g.buffers, t.buffers, st.values):
        if b.state or not state_only:
            raw = vals[row].astype(np.dtype(b.dtype.np).newbyteorder("<")).tobytes()
            image[offset:offset + len(raw)] = raw
    return bytes(image)
