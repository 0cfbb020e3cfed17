"""The checks of a graph (docs/graph.md "Parse order"), shared by validate(g) and the blob parser.

They run on the graph's tables as the blob stores them (plain integers), so a Graph in memory and a parsed blob are
judged by the same code, in the C parser's order, and fail with the same C status: header dims, buffer table, op
table (per op: type, fields, dims, buffers, tensors, written-before-read), then (blob only: tensor table extents and
alignment) parameter ranges. Every failure is a GraphDefect: one EdgememError line naming the defect, and `status`,
the name of the EM_ERR_* code C returns for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError
from edgemem.graph.ir import (
    FLAG_ACC,
    FLAG_CUBA,
    FLAG_EVENTS,
    FLAG_LEGENDRE,
    MAX_BUFFERS,
    MAX_DIM,
    MAX_KERNEL,
    MAX_LMU_CELLS,
    MAX_OPS,
    MAX_TENSORS,
    NONE,
    STATE,
    Act,
    DType,
    Graph,
    OpType,
)
from edgemem.graph.legendre import legendre_op_ok

S8, S16, S32 = int(DType.S8), int(DType.S16), int(DType.S32)
S4, S2 = int(DType.S4), int(DType.S2)
DTYPE_NAMES = {S8: "s8", S16: "s16", S32: "s32", S4: "s4", S2: "s2"}
ELSIZE = {S8: 1, S16: 2, S32: 4}  # buffer dtypes (and whole-byte tensor dtypes): bytes per element
PER_BYTE = {S4: 2, S2: 4}  # packed tensor dtypes: elements per byte
TENSOR_DTYPES = (S8, S16, S32, S4, S2)
BUFFER_FIELDS = ("in0", "in1", "out", "state0", "state1", "scratch")
# which flag bits each op type may set
OP_FLAGS = {OpType.FC: FLAG_ACC | FLAG_EVENTS, OpType.CONV1D: FLAG_ACC, OpType.ACT: 6, OpType.LIF: FLAG_CUBA,
            OpType.LEAKY: 0, OpType.LMU: FLAG_LEGENDRE, OpType.ADD: FLAG_ACC, OpType.ONOFF: FLAG_ACC,
            OpType.SPIKE: 0, OpType.SENSOR: 0, OpType.LOGMEL: 0}
ANY = -1  # an OpSpec tensor count the op's dims do not fix (LOGMEL's filterbank): checked with the parameters


class GraphDefect(EdgememError):
    """A malformed graph or blob; `status` names the C parser's EM_ERR_* code for the same defect."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


Bad = Callable[[str, str], GraphDefect]  # (status, why) -> the error to raise


@dataclass
class Tables:
    """A graph as the blob's header fields and tables hold it (raw integers, not yet trusted)."""

    n_in: int
    n_out: int
    n_buffers: int
    n_ops: int
    n_tensors: int
    in_buffer: int
    out_buffer: int
    arena_size: int
    reserved: bytes  # header bytes 36..63
    buffers: list[tuple[int, int, int, int, int]]  # dtype, flags, pad, count, offset
    ops: list[tuple[int, ...]]  # type, flags, in0, in1, out, state0, state1, scratch, d0..d3, t0..t3
    tensors: list[tuple[int, int]]  # dtype, count (the blob's id and offset are the parser's own checks)


@dataclass(frozen=True)
class BufSpec:
    field: str
    dtypes: tuple[int, ...]
    count: int
    state: bool | None  # True: must be STATE, False: must not be, None: either
    reads: bool  # the op reads it before writing it this step
    writes: bool


@dataclass(frozen=True)
class OpSpec:
    buffers: tuple[BufSpec, ...]
    tensors: tuple[tuple[int, int] | None, ...]  # t0..t3: (dtype, count) or None (must be NONE)


def dtype_name(code: int) -> str:
    return DTYPE_NAMES.get(code, f"code {code}")


def tensor_bytes(dtype: int, count: int) -> int:
    """Blob bytes of a tensor (dtype in TENSOR_DTYPES): packed ones take ceil(count / elements per byte)."""
    return -(-count // PER_BYTE[dtype]) if dtype in PER_BYTE else count * ELSIZE[dtype]


def tensor_align(dtype: int) -> int:
    """Alignment a tensor's offset needs: its element size; packed tensors are read byte by byte."""
    return ELSIZE.get(dtype, 1)


def _dim_rule(kind: OpType, i: int) -> tuple[str, int, int, str] | None:
    """(name, lo, hi, status) of d[i] for this op type, or None if the type does not use it."""
    names = {OpType.FC: ("d_in", "d_out"), OpType.CONV1D: ("c_in", "c_out", "k"),
             OpType.LMU: ("n_u", "order", "a_shift", "b_shift"), OpType.SENSOR: ("channels", "decim"),
             OpType.LOGMEL: ("win", "hop", "n_fft", "n_mels")}.get(kind, ("n",))
    if i >= len(names):
        return None
    if kind == OpType.CONV1D and i == 2:
        return names[i], 1, MAX_KERNEL, "DIMS"
    if kind == OpType.LMU and i >= 2:
        return names[i], 1 if i == 2 else 0, 30, "PARAM"  # the shifts are parameters, checked in place
    return names[i], 1, MAX_DIM, "DIMS"


def op_spec(kind: OpType, flags: int, d: tuple[int, ...]) -> OpSpec:
    """Expected buffers and tensors of an op whose type, flags and dims are already checked."""
    acc = bool(flags & FLAG_ACC)
    if kind in (OpType.FC, OpType.CONV1D):
        n_in, n_out = d[0], d[1]
        k = d[2] if kind == OpType.CONV1D else 1
        events = kind == OpType.FC and bool(flags & FLAG_EVENTS)
        bufs = [BufSpec("in0", (S8, S16) if kind == OpType.FC and not events else (S8,), n_in, None, True, False),
                BufSpec("out", (S32,), n_out, None, acc, True)]
        if events:  # the index list the C kernel builds (an FC reading spikes sums only the columns that spiked)
            bufs.append(BufSpec("scratch", (S16,), n_in, False, False, True))
        if k > 1:
            bufs += [BufSpec("state0", (S8,), (k - 1) * n_in, True, True, True),
                     BufSpec("state1", (S32,), 1, True, True, True)]
        return OpSpec(tuple(bufs), ((S8, n_out * k * n_in), (S32, n_out), (S32, n_out), (S8, n_out)))
    if kind == OpType.LOGMEL:  # d = (win, hop, n_fft, n_mels): one hop of PCM in, n_mels int8 out
        win, hop, n_fft, n_mels = d
        bufs = [BufSpec("in0", (S16,), hop, False, True, False), BufSpec("out", (S8,), n_mels, None, False, True),
                BufSpec("scratch", (S32,), n_fft + 2, False, False, True)]
        if win > hop:
            bufs.append(BufSpec("state0", (S16,), win - hop, True, True, True))
        return OpSpec(tuple(bufs), ((S16, win), (S32, n_fft // 2 + 66), (S16, ANY), (S32, 3 * n_mels + 3)))
    if kind == OpType.SENSOR:  # d = (C, D): D samples of C channels in, C int8 out
        c, dec = d[0], d[1]
        return OpSpec((BufSpec("in0", (S16,), c * dec, False, True, False), BufSpec("out", (S8,), c, None, False, True)),
                      ((S32, c), (S32, c), (S8, c), None))
    n = d[0]
    if kind == OpType.ACT:
        lut = Act((flags >> 1) & 3) == Act.LUT
        return OpSpec((BufSpec("in0", (S32,), n, None, True, False),
                       BufSpec("out", (S8,) if lut else (S8, S16), n, None, False, True)),
                      ((S8, 256) if lut else None, None, None, None))
    if kind == OpType.LIF:
        cuba = bool(flags & FLAG_CUBA)
        bufs = [BufSpec("in0", (S32,), n, None, True, False), BufSpec("out", (S8,), n, None, False, True),
                BufSpec("state0", (S16,), n, True, True, True)]
        if cuba:
            bufs.append(BufSpec("state1", (S16,), n, True, True, True))
        return OpSpec(tuple(bufs), ((S16, n), (S16, n) if cuba else None, (S16, n), None))
    if kind == OpType.LEAKY:
        return OpSpec((BufSpec("in0", (S32,), n, None, True, False), BufSpec("out", (S16,), n, True, True, True)),
                      ((S16, n), None, None, None))
    if kind == OpType.LMU:
        n_u, order = d[0], d[1]
        return OpSpec((BufSpec("in0", (S8,), n_u, None, True, False),
                       BufSpec("state0", (S16,), n_u * order, True, True, True),
                       BufSpec("scratch", (S16,), order, False, False, True)),
                      ((S16, order * order), (S32, order), None, None))
    if kind == OpType.ADD:
        return OpSpec((BufSpec("in0", (S8, S16), n, None, True, False), BufSpec("out", (S32,), n, None, acc, True)),
                      ((S32, 1), (S8, 1), None, None))
    if kind == OpType.SPIKE:  # in0 is typically a LIF membrane (a state buffer: last step's value before the LIF)
        return OpSpec((BufSpec("in0", (S16,), n, None, True, False), BufSpec("out", (S8,), n, None, False, True)),
                      ((S16, n), None, None, None))
    assert kind == OpType.ONOFF
    return OpSpec((BufSpec("in0", (S16,), n, None, True, False), BufSpec("out", (S32,), 2 * n, None, acc, True)),
                  (None, None, None, None))


def _used_fields(kind: OpType, flags: int, d: tuple[int, ...]) -> set[str]:
    """Buffer fields an op must set, before its dims are trusted (CONV1D's state follows d2 = k)."""
    base = {OpType.LMU: {"in0", "state0", "scratch"}, OpType.LOGMEL: {"in0", "out", "scratch"}}.get(kind, {"in0", "out"})
    if kind == OpType.LOGMEL and d[0] > d[1]:
        base |= {"state0"}  # the history, win - hop samples
    if kind == OpType.CONV1D and d[2] != 1:
        base |= {"state0", "state1"}
    if kind == OpType.FC and flags & FLAG_EVENTS:
        base |= {"scratch"}
    if kind == OpType.LIF:
        base |= {"state0", "state1"} if flags & FLAG_CUBA else {"state0"}
    return base


def _used_tensors(kind: OpType, flags: int) -> tuple[bool, bool, bool, bool]:
    if kind in (OpType.FC, OpType.CONV1D):
        return (True, True, True, True)
    if kind == OpType.SENSOR:
        return (True, True, True, False)
    if kind == OpType.LOGMEL:
        return (True, True, True, True)
    if kind == OpType.ACT:
        return ((flags >> 1) & 3 == Act.LUT, False, False, False)
    if kind == OpType.LIF:
        return (True, bool(flags & FLAG_CUBA), True, False)
    if kind in (OpType.LEAKY, OpType.SPIKE):
        return (True, False, False, False)
    if kind in (OpType.LMU, OpType.ADD):
        return (True, True, False, False)
    return (False, False, False, False)


def check_header(t: Tables, bad: Bad) -> None:
    for name, v, lo, hi in (("n_in", t.n_in, 1, MAX_DIM), ("n_out", t.n_out, 1, MAX_DIM),
                            ("n_buffers", t.n_buffers, 0, MAX_BUFFERS), ("n_ops", t.n_ops, 0, MAX_OPS),
                            ("n_tensors", t.n_tensors, 0, MAX_TENSORS)):
        if not lo <= v <= hi:
            raise bad("DIMS", f"has {name} = {v}, outside [{lo}, {hi}]")
    for name, idx in (("in_buffer", t.in_buffer), ("out_buffer", t.out_buffer)):
        if not 0 <= idx < t.n_buffers:
            raise bad("BUFFER", f"has {name} = {idx}, not one of its {t.n_buffers} buffers")
    if any(t.reserved):
        raise bad("VERSION", "has non-zero reserved header bytes 36..63 (a newer writer's field)")


def check_buffers(t: Tables, bad: Bad) -> None:
    for i, (dtype, flags, pad, count, offset) in enumerate(t.buffers):
        if dtype not in ELSIZE:
            raise bad("BUFFER", f"buffer {i} has unknown dtype code {dtype}")
        if flags & ~STATE or pad:
            raise bad("BUFFER", f"buffer {i} has flags {flags:#x} and pad {pad} (only STATE = 1 is defined; pad 0)")
        if count < 1:
            raise bad("BUFFER", f"buffer {i} has count 0")
        if offset % 4:
            raise bad("BUFFER", f"buffer {i} has arena offset {offset}, not 4-byte aligned")
        end = offset + count * ELSIZE[dtype]
        if end > t.arena_size:
            raise bad("BUFFER", f"buffer {i} ([{offset}, {end})) lies outside the arena of {t.arena_size} bytes")
    # a model reads int8 and writes int16 logits; an input stage reads int16 samples and writes int8 (the model's
    # input): the in_buffer's dtype says which, and the out_buffer must be the other one
    stage = t.buffers[t.in_buffer][0] == S16
    for name, idx, dt, n in (("in_buffer", t.in_buffer, S16 if stage else S8, t.n_in),
                             ("out_buffer", t.out_buffer, S8 if stage else S16, t.n_out)):
        dtype, _, _, count, _ = t.buffers[idx]
        if dtype != dt or count != n:
            raise bad("BUFFER", f"{name} {idx} is {dtype_name(dtype)} [{count}]; expected {dtype_name(dt)} [{n}]"
                      + (" (an input stage: s16 in, s8 out)" if stage else ""))
    if t.buffers[t.in_buffer][1] & STATE:
        raise bad("BUFFER", f"in_buffer {t.in_buffer} is a state buffer (the input is not state)")


def _check_fields(t: Tables, kind: OpType, raw: tuple[int, ...], where: str, bad: Bad) -> None:
    flags, tids = raw[1], raw[12:16]
    fields = dict(zip(BUFFER_FIELDS, raw[2:8]))
    if flags & ~OP_FLAGS[kind] or (kind == OpType.ACT and (flags >> 1) & 3 == 3):
        raise bad("OP", f"{where} has flags {flags:#x}, not defined for its type")
    used = _used_fields(kind, flags, raw[8:12])
    for name, v in fields.items():
        if name not in used and v != NONE:
            raise bad("OP", f"{where} field {name} = {v}; unused by this op, it must be NONE")
        if name in used and not 0 <= v < t.n_buffers:
            raise bad("OP", f"{where} field {name} = {v}, not one of the {t.n_buffers} buffers")
    named = [fields[f] for f in BUFFER_FIELDS if f in used]
    if len(set(named)) != len(named):
        raise bad("OP", f"{where} names one buffer in two fields")
    for k, (use, v) in enumerate(zip(_used_tensors(kind, flags), tids)):
        if not use and v != NONE:
            raise bad("OP", f"{where} field t{k} = {v}; unused by this op, it must be NONE")
        if use and not 0 <= v < t.n_tensors:
            raise bad("OP", f"{where} field t{k} = {v}, not one of the {t.n_tensors} tensors")


def _check_dims(kind: OpType, d: tuple[int, ...], where: str, bad: Bad) -> None:
    for i in range(4):
        rule = _dim_rule(kind, i)
        if rule is None:
            if d[i] != 0:
                raise bad("OP", f"{where} has d{i} = {d[i]}; unused by this op, it must be 0")
            continue
        name, lo, hi, status = rule
        if not lo <= d[i] <= hi:
            raise bad(status, f"{where} has {name} = {d[i]}, outside [{lo}, {hi}]")
    if kind == OpType.LMU and d[0] * d[1] > MAX_LMU_CELLS:
        raise bad("DIMS", f"{where} has n_u * order = {d[0] * d[1]}, above {MAX_LMU_CELLS}")
    if kind == OpType.LOGMEL and not (64 <= d[2] and d[2] & (d[2] - 1) == 0 and d[1] <= d[0] <= d[2] and d[3] <= 256):
        raise bad("DIMS", f"{where} has win {d[0]}, hop {d[1]}, n_fft {d[2]}, n_mels {d[3]} (need n_fft a power of "
                  "two >= 64, hop <= win <= n_fft, n_mels <= 256)")


def check_ops(t: Tables, bad: Bad) -> None:
    """Per op, in list order: type, fields, dims, buffers, tensors, written-before-read; then out_buffer written."""
    written = {t.in_buffer}
    for i, raw in enumerate(t.ops):
        if raw[0] not in OpType._value2member_map_:
            raise bad("OP", f"op {i} has unknown type {raw[0]}")
        kind, flags, d, tids = OpType(raw[0]), raw[1], tuple(raw[8:12]), raw[12:16]
        fields = dict(zip(BUFFER_FIELDS, raw[2:8]))
        where = f"op {i} ({kind.name})"
        _check_fields(t, kind, raw, where, bad)
        _check_dims(kind, d, where, bad)
        spec = op_spec(kind, flags, d)
        for s in spec.buffers:
            b = fields[s.field]
            dtype, _, _, count, _ = t.buffers[b]
            if dtype not in s.dtypes or count != s.count:
                want = " or ".join(dtype_name(x) for x in s.dtypes)
                raise bad("BUFFER", f"{where} {s.field} is buffer {b}, {dtype_name(dtype)} [{count}]; expected "
                          f"{want} [{s.count}]")
        for s in spec.buffers:
            b = fields[s.field]
            if s.state is not None and bool(t.buffers[b][1] & STATE) != s.state:
                raise bad("BUFFER", f"{where} {s.field} is buffer {b}, which must {'' if s.state else 'not '}be a "
                          "state buffer")
        for k, want in enumerate(spec.tensors):
            if want is None:
                continue
            dtype, count = t.tensors[tids[k]]
            packed_w = k == 0 and kind in (OpType.FC, OpType.CONV1D) and dtype in PER_BYTE
            if want[1] == ANY:
                want = (want[0], count)
            if (dtype, count) != want and not (packed_w and count == want[1]):
                alt = " (or s4 / s2)" if k == 0 and kind in (OpType.FC, OpType.CONV1D) else ""
                raise bad("TENSOR", f"{where} t{k} is tensor {tids[k]}, {dtype_name(dtype)} [{count}]; expected "
                          f"{dtype_name(want[0])}{alt} [{want[1]}]")
            row = d[0] * (d[2] if kind == OpType.CONV1D else 1)
            if packed_w and row % PER_BYTE[dtype]:  # every output row must start on a byte (docs/graph.md)
                raise bad("TENSOR", f"{where} t0 is {dtype_name(dtype)} but its rows of {row} weights do not fill "
                          f"whole bytes ({PER_BYTE[dtype]} a byte)")
        for s in spec.buffers:
            b = fields[s.field]
            if s.reads and b not in written and not t.buffers[b][1] & STATE:
                raise bad("ORDER", f"{where} reads scratch buffer {b} ({s.field}) before any op writes it this step")
        written |= {fields[s.field] for s in spec.buffers if s.writes}
    if t.out_buffer not in written and not t.buffers[t.out_buffer][1] & STATE:
        raise bad("ORDER", f"out_buffer {t.out_buffer} is a scratch buffer that no op writes")


def live_ranges(t: Tables) -> list[tuple[int, int] | None]:
    """Each buffer's live range within a step, as closed op-index intervals (docs/graph.md "Placement").

    A scratch buffer is live from the first op that names it to the last op that names it, in any field: after
    check_ops, the first op naming it writes it (written before read), and counting later writes too (a dead write,
    an ACC op) keeps any op that touches its bytes inside the range. The input buffer is live from the step start
    (-1: the runtime fills it before op 0), the output buffer to the step end (n_ops: copied out after the last op).
    A scratch buffer no op names has no range (None). State buffers are live always: (-1, n_ops).
    Valid only on tables that passed check_ops (every used field names a buffer, unused fields are NONE).
    """
    ranges: list[tuple[int, int] | None] = [None] * t.n_buffers
    for i, raw in enumerate(t.ops):
        for b in raw[2:8]:
            if b != NONE:
                r = ranges[b]
                ranges[b] = (i, i) if r is None else (r[0], i)
    start, end = -1, t.n_ops
    r = ranges[t.in_buffer]
    ranges[t.in_buffer] = (start, start if r is None else r[1])
    r = ranges[t.out_buffer]
    ranges[t.out_buffer] = (end if r is None else r[0], end)
    for b, entry in enumerate(t.buffers):
        if entry[1] & STATE:
            ranges[b] = (start, end)
    return ranges


def check_overlaps(t: Tables, bad: Bad) -> None:
    """The arena rule, after the op table (live ranges need valid ops): a state buffer overlaps no buffer; two
    scratch buffers overlap only if their live ranges are disjoint. Pairs in index order; C checks the same pairs
    and returns the same status (BUFFER) for any of them."""
    ranges = live_ranges(t)
    spans = [(off, off + cnt * ELSIZE[dt], bool(fl & STATE)) for dt, fl, _, cnt, off in t.buffers]
    for a, (start_a, end_a, state_a) in enumerate(spans):
        for b in range(a + 1, len(spans)):
            start_b, end_b, state_b = spans[b]
            if not (start_a < end_b and start_b < end_a):
                continue
            if state_a or state_b:
                raise bad("BUFFER", f"buffers {a} and {b} overlap in the arena, and {a if state_a else b} is a "
                          "state buffer (state overlaps nothing)")
            ra, rb = ranges[a], ranges[b]
            if ra is not None and rb is not None and ra[0] <= rb[1] and rb[0] <= ra[1]:
                raise bad("BUFFER", f"buffers {a} and {b} overlap in the arena and are both live at op "
                          f"{max(ra[0], rb[0])} (live ranges {ra} and {rb})")


def check_params(t: Tables, data: list[np.ndarray], bad: Bad) -> None:
    """Parameter ranges, op by op (tensors already match their op's dtypes and counts)."""
    for i, raw in enumerate(t.ops):
        kind, flags, tids = OpType(raw[0]), raw[1], raw[12:16]
        where = f"op {i} ({kind.name})"
        if kind in (OpType.FC, OpType.CONV1D, OpType.ADD, OpType.SENSOR):
            k = {OpType.ADD: 0, OpType.SENSOR: 1}.get(kind, 2)
            mult, shift = data[tids[k]], data[tids[k + 1]]
            if (mult < 1 << 30).any() or (shift < 1).any() or (shift > 62).any():
                raise bad("PARAM", f"{where} has an out-of-range requantization multiplier or shift (multipliers "
                          "must lie in [2^30, 2^31), shifts in [1, 62])")
        if kind == OpType.LMU and flags & FLAG_LEGENDRE and not legendre_op_ok(
                data[tids[0]].reshape(raw[9], raw[9]), data[tids[1]], raw[10]):
            raise bad("PARAM", f"{where} is flagged LEGENDRE but its A is not a diagonal plus a per-row scale times the "
                      "Legendre sign pattern, or a_shift < 2, or a |B| >= 2^22")
        if kind == OpType.LOGMEL:
            _check_logmel(tuple(raw[8:12]), [data[k] for k in tids], where, bad)
        decays = {OpType.LIF: [0, 1] if flags & FLAG_CUBA else [0], OpType.LEAKY: [0]}.get(kind, [])
        for k in decays:
            if (data[tids[k]] < 0).any():
                raise bad("PARAM", f"{where} has a negative decay ({'beta' if k == 0 else 'alpha'})")


def _check_logmel(d: tuple[int, ...], t: list[np.ndarray], where: str, bad: Bad) -> None:
    """LOGMEL's tables (edgemem.graph.logmel): twiddles in [-2^30, 2^30], the log2 table in [0, 2^26] and
    nondecreasing, every band inside bins 0 .. n_fft/2 with weights >= 0 and the bands filling t2 exactly, per band
    mult >= 2^30, shift in [1, 62] and |offset| <= 2^27, zero point in int8, eps in [1, 2^56). These bounds keep every
    intermediate of the kernel inside its integer type, whatever the blob holds (twiddles also no longer than one,
    cos^2 + sin^2 <= 2^60 + 2^32, and eps >= 2^32)."""
    _, _, n_fft, n_mels = d
    m = n_fft // 2
    cos, logt, fb, bq = t[1][: m + 1].astype(np.int64), t[1][m + 1 :], t[2], t[3]
    sin = cos[np.abs(m // 2 - np.arange(m + 1))]
    if (cos[0] != 1 << 30 or cos[m // 2] != 0 or (np.abs(cos) > 1 << 30).any()
            or (cos * cos + sin * sin > (1 << 60) + (1 << 32)).any() or (logt < 0).any()
            or (logt > 1 << 26).any() or (np.diff(logt) < 0).any()):
        raise bad("PARAM", f"{where} has twiddles outside [-2^30, 2^30] or longer than one (cos^2 + sin^2), or a log2 "
                  "table outside [0, 2^26] or decreasing")
    pos = 0
    for b in range(n_mels):
        if pos + 2 > fb.size:
            raise bad("PARAM", f"{where} filterbank ends inside band {b}")
        lo, cnt = int(fb[pos]), int(fb[pos + 1])
        if lo < 0 or cnt < 0 or lo + cnt > m + 1 or pos + 2 + cnt > fb.size or (fb[pos + 2 : pos + 2 + cnt] < 0).any():
            raise bad("PARAM", f"{where} band {b} lies outside bins 0..{m} or the filterbank, or has a negative weight")
        pos += 2 + cnt
    if pos != fb.size:
        raise bad("PARAM", f"{where} filterbank has {fb.size - pos} values after its {n_mels} bands")
    off, mult, shift = bq[0 : 3 * n_mels : 3], bq[1 : 3 * n_mels : 3], bq[2 : 3 * n_mels : 3]
    eps = (int(bq[3 * n_mels + 1]) & 0xFFFFFFFF) | (int(bq[3 * n_mels + 2]) << 32)
    if ((mult < 1 << 30).any() or (shift < 1).any() or (shift > 62).any() or (np.abs(off) > 1 << 27).any()
            or not -128 <= bq[3 * n_mels] <= 127 or not 1 << 32 <= eps < 1 << 56):
        raise bad("PARAM", f"{where} has an out-of-range band multiplier, shift or offset, zero point or eps")


def tables_of(g: Graph) -> Tables:
    """The tables a blob of g would hold (unplaced buffers as g.place() would place them, without changing g)."""
    offsets = [b.offset for b in g.buffers]
    arena = g.arena_size
    if any(o < 0 for o in offsets):
        at = 0
        for k, b in enumerate(g.buffers):
            offsets[k] = at
            at += (b.count * b.dtype.size + 3) & ~3
        arena = at
    bufs = [(int(b.dtype), STATE if b.state else 0, 0, b.count, off) for b, off in zip(g.buffers, offsets)]
    ops = [(int(o.type), o.flags, o.in0, NONE, o.out, o.state0, o.state1, o.scratch, *o.d, *o.t) for o in g.ops]
    return Tables(g.n_in, g.n_out, len(bufs), len(ops), len(g.tensors), g.in_buffer, g.out_buffer, arena, bytes(28),
                  bufs, ops,
                  [(int(x.dtype), int(x.data.size)) for x in g.tensors])


def validate(g: Graph) -> None:
    """Raise GraphDefect (one line) unless the blob parser and the C runtime would accept g."""

    def bad(status: str, why: str) -> GraphDefect:
        return GraphDefect(status, f"graph {why}")

    names = [b.name for b in g.buffers]
    if len(set(names)) != len(names):  # the IR's own rule: step() reports values by buffer name
        raise bad("BUFFER", "has two buffers with the same name")
    t = tables_of(g)
    check_header(t, bad)
    check_buffers(t, bad)
    check_ops(t, bad)
    check_overlaps(t, bad)
    check_params(t, [x.data for x in g.tensors], bad)
