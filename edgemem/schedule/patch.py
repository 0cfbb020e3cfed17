"""The patch schedule (MCUNetV2's patch-based inference, over time): its layout, plan blob and integer reference.

The front stage (ops 0 .. end, CONV1D / ACT / FC / ADD / ONOFF from a CONV1D at op 0: no state but the conv
rings) runs op by op over a block of up to P frames. Instead of rings, every stage op also recomputes the `lead`
frames before the block that the convs after it need (the halo): an op whose output feeds convs of kernels k_j
produces P + sum(k_j - 1) frames. The rest of the graph then runs one frame at a time, as when streaming. Only the
input is kept between blocks (its last `lead` frames): the stage's rings are gone, the rest keeps its state.

Layout: each buffer gets `frames` copies (stage buffers P + lead, the rest's 1, stage rings 0) placed by
lifetime (edgemem.graph.arena.greedy_place) with the input and the rest's state fixed. The C runtime reads the
placement from the plan blob (docs/graph.md "Patch schedule"), checks it is safe, and asks for exactly its
arena_size: the number `edgemem plan` reports as the schedule's peak RAM.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError
from edgemem.graph.arena import greedy_place
from edgemem.graph.check import live_ranges, tables_of
from edgemem.graph.intops import requant
from edgemem.graph.ir import NONE, Graph, OpType
from edgemem.graph.ref import Values, _compile, _matmul, _store, validate

STAGE_OPS = (OpType.CONV1D, OpType.ACT, OpType.FC, OpType.ADD, OpType.ONOFF)
MAGIC = b"EMPS"
VERSION = 1
HEADER = 32
ENTRY = 8
MAX_FRAMES = 1024


def op_buffers(g: Graph, i: int) -> list[int]:
    """The buffers op i names, in field order (in0, out, state0, state1, scratch)."""
    op = g.ops[i]
    return [b for b in (op.in0, op.out, op.state0, op.state1, op.scratch) if b != NONE]


def crossing(g: Graph, live: list[tuple[int, int] | None], cut: int) -> dict[int, int]:
    """Scratch buffers live both at op `cut` and after it, with their bytes (what a cut after `cut` hands on)."""
    return {b: buf.count * buf.dtype.size for b, buf in enumerate(g.buffers)
            if not buf.state and live[b] is not None and live[b][0] <= cut < live[b][1]}


def front_stage(g: Graph, live: list[tuple[int, int] | None]) -> int | None:
    """Index of the last op of the patchable front stage, or None if op 0 is no CONV1D. The stage ends after the
    last CONV1D of the leading run of STAGE_OPS ops, at the cut where the fewest bytes cross to the rest (after an
    ACT that narrows s32 to s8, say)."""
    if not g.ops or g.ops[0].type != OpType.CONV1D:
        return None
    last = run_end = 0
    for i, op in enumerate(g.ops):
        if op.type not in STAGE_OPS:
            break
        run_end = i
        if op.type == OpType.CONV1D:
            last = i
    return min(range(last, run_end + 1), key=lambda cut: sum(crossing(g, live, cut).values()))


@dataclass(frozen=True)
class PatchLayout:
    patch_frames: int
    stage_ops: int
    lead: list[int]  # per buffer: frames kept before the block (halo)
    frames: list[int]  # per buffer: frames held (0: unused in this schedule)
    offsets: list[int]
    live: list[tuple[int, int] | None]  # op-index ranges the placement used (fixed buffers: whole step)
    fixed: list[bool]  # live across blocks: the input (history) and the rest's state
    arena_size: int

    @property
    def halo_frames(self) -> int:
        return max(self.lead)

    def sizes(self, g: Graph) -> list[int]:
        return [f * b.count * b.dtype.size for f, b in zip(self.frames, g.buffers)]

    def bytes_live(self, g: Graph) -> list[int]:
        """Bytes held at the block start (index 0), after each op, and at the end."""
        sizes = self.sizes(g)
        return [sum(s for s, r, f in zip(sizes, self.live, self.fixed) if f or (r is not None and r[0] <= p <= r[1]))
                for p in range(-1, len(g.ops) + 1)]


def patch_layout(g: Graph, patch_frames: int) -> PatchLayout:
    """The patch schedule's buffers and their placement; EdgememError if g has no patchable front."""
    if not 1 <= patch_frames <= MAX_FRAMES:
        raise EdgememError(f"patch frames must be in [1, {MAX_FRAMES}], got {patch_frames}")
    live = live_ranges(tables_of(g))
    end = front_stage(g, live)
    if end is None:
        raise EdgememError("the model has no convolutional front (op 0 is not a CONV1D): no patch schedule")
    n_b = len(g.buffers)
    lead = [0] * n_b
    for i in range(end, -1, -1):
        op = g.ops[i]
        need = lead[op.out] + (op.d[2] - 1 if op.type == OpType.CONV1D else 0)
        lead[op.in0] = max(lead[op.in0], need)
    stage, rest, ring = set(), set(), set()
    for i, op in enumerate(g.ops):
        for b in op_buffers(g, i):
            if i > end:
                rest.add(b)
            elif b in (op.state0, op.state1):
                ring.add(b)
            else:
                stage.add(b)
    frames = [patch_frames + lead[b] if b in stage else 1 if b in rest else 0 for b in range(n_b)]
    lead = [lead[b] if b in stage else 0 for b in range(n_b)]
    fixed = [f > 0 and (b == g.in_buffer or g.buffers[b].state) for b, f in enumerate(frames)]
    # a stage buffer the rest reads lives to the end: the rest reads one of its frames per pass over its ops
    ranges = [None if f == 0 else (-1, len(g.ops)) if x else (r[0], len(g.ops)) if b in stage and b in rest else r
              for b, (f, x, r) in enumerate(zip(frames, fixed, live))]
    sizes = [f * b.count * b.dtype.size for f, b in zip(frames, g.buffers)]
    offsets, arena = greedy_place(sizes, ranges, fixed)
    return PatchLayout(patch_frames, end + 1, lead, frames, offsets, ranges, fixed, arena)


def extra_macs(g: Graph, lay: PatchLayout, macs: list[int], steps: int) -> int:
    """MACs the halo recomputes over a window of `steps` frames: stage op i computes min(lead, t0) frames before
    each block at t0 (none before the first frame: that is padding, written as zeros)."""
    total = 0
    for t0 in range(0, steps, lay.patch_frames):
        total += sum(macs[i] * min(lay.lead[g.ops[i].out], t0) for i in range(lay.stage_ops))
    return total


def build_patch_blob(lay: PatchLayout, graph_blob: bytes) -> bytes:
    """The plan blob of docs/graph.md "Patch schedule", bound to the graph blob it was laid out for."""
    table = b"".join(struct.pack("<IHH", o, f, le) for o, f, le in zip(lay.offsets, lay.frames, lay.lead))
    total = HEADER + len(table)
    header = MAGIC + struct.pack("<HHII", VERSION, HEADER, total, zlib.crc32(table)) + graph_blob[12:16] + \
        struct.pack("<HHHHI", lay.patch_frames, lay.stage_ops, len(lay.frames), 0, lay.arena_size)
    assert len(header) == HEADER
    return header + table


def run_patch(g: Graph, lay: PatchLayout, x: np.ndarray) -> np.ndarray:
    """The integer reference of the patch schedule: x [b][T][n_in] int8 values -> logits [b][T][n_out], each
    sequence from reset, blocks of P frames (the last may be shorter). Equals run_graph (tested)."""
    validate(g)
    x = np.asarray(x, dtype=np.int64)
    b_n, steps = x.shape[0], x.shape[1]
    seq = [np.zeros((b_n, max(f, 1), buf.count), dtype=np.int64) for f, buf in zip(lay.frames, g.buffers)]
    fns = [_compile(g, op) for op in g.ops]
    out = np.zeros((b_n, steps, g.n_out), dtype=np.int64)
    h_in = lay.lead[g.in_buffer]
    for t0 in range(0, steps, lay.patch_frames):
        n = min(lay.patch_frames, steps - t0)
        seq[g.in_buffer][:, h_in:h_in + n] = x[:, t0:t0 + n]
        for i in range(lay.stage_ops):
            _stage_op(g, lay, seq, fns[i], i, t0, n)
        for f in range(n):
            for i in range(lay.stage_ops, len(g.ops)):
                named = op_buffers(g, i)
                at = {b: lay.lead[b] + f if lay.frames[b] > 1 or lay.lead[b] else 0 for b in named}
                v: Values = [np.zeros((0, 0), dtype=np.int64)] * len(seq)
                for b in named:
                    v[b] = seq[b][:, at[b]]
                fns[i](v)
                for b in named:
                    seq[b][:, at[b]] = v[b]
            ob = g.out_buffer
            out[:, t0 + f] = seq[ob][:, lay.lead[ob] + f if lay.frames[ob] > 1 or lay.lead[ob] else 0]
        seq[g.in_buffer][:, :h_in] = seq[g.in_buffer][:, n:n + h_in].copy()
    return out


def _stage_op(g: Graph, lay: PatchLayout, seq: list[np.ndarray], fn: object, i: int, t0: int, n: int) -> None:
    """Stage op i over its output frames j = 0 .. lead + n - 1 (time t0 - lead + j); padding frames are zero."""
    op = g.ops[i]
    lead_out, lead_in = lay.lead[op.out], lay.lead[op.in0]
    first = max(0, lead_out - t0)  # frames before it are times < 0
    js = np.arange(first, lead_out + n)
    if not op.acc:
        seq[op.out][:, :first] = 0
    src = lead_in - lead_out + js
    b_n = seq[op.in0].shape[0]
    m = len(js)
    if op.type == OpType.CONV1D:
        k, c_in, c_out = op.d[2], op.d[0], op.d[1]
        w = g.tensors[op.t[0]].data.reshape(c_out, k * c_in)
        bias, mult, shift = (g.tensors[t].data for t in op.t[1:4])
        window = np.stack([seq[op.in0][:, s - (k - 1):s + 1].reshape(b_n, -1) for s in src], axis=1)
        r = requant(_matmul(window.reshape(b_n * m, -1), w.T) + bias, mult, shift)
        v: Values = [np.zeros((0, 0), dtype=np.int64)] * len(seq)
        v[op.out] = seq[op.out][:, js].reshape(b_n * m, -1)
        _store(v, op.out, r, op.acc)
    else:
        v = [np.zeros((0, 0), dtype=np.int64)] * len(seq)
        v[op.in0] = seq[op.in0][:, src].reshape(b_n * m, -1)
        v[op.out] = seq[op.out][:, js].reshape(b_n * m, -1)
        fn(v)  # type: ignore[operator]
    seq[op.out][:, js] = v[op.out].reshape(b_n, m, -1)
