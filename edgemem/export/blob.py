"""The model blob (format in firmware/include/edgemem.h): header, tensor table, aligned tensor data, CRC-32."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edgemem.quant.model import FC_NAMES, POP_NAMES, QuantL2MU

MAGIC = b"EMMB"
VERSION = 1
HEADER_SIZE = 64
ENTRY_SIZE = 12
KIND_L2MU = 1
DTYPES = {1: np.int8, 2: np.int16, 3: np.int32}
DTYPE_CODE = {np.dtype(v): k for k, v in DTYPES.items()}
LMU_A_ID, LMU_B_ID = 37, 38
TENSOR_COUNT = 39
MAX_DIM = 1024  # EM_MAX_DIM
_HEADER = "<4sHHII10H"
_ENTRY = "<HBBII"


@dataclass(frozen=True)
class Tensor:
    id: int
    name: str
    data: np.ndarray  # already in its storage dtype


def _checked(values: np.ndarray, dtype: type) -> np.ndarray:
    info = np.iinfo(dtype)
    if values.min(initial=0) < info.min or values.max(initial=0) > info.max:
        raise ValueError(f"values do not fit {np.dtype(dtype).name}")
    return np.ascontiguousarray(values, dtype=dtype).reshape(-1)


def tensors(q: QuantL2MU) -> list[Tensor]:
    """All 39 tensors in id order (names are those used in model.c)."""
    out = []
    for f, name in enumerate(FC_NAMES):
        layer = q.fc[name]
        out += [
            Tensor(4 * f, f"{name}_w", _checked(layer.w, np.int8)),
            Tensor(4 * f + 1, f"{name}_bias", _checked(layer.bias, np.int32)),
            Tensor(4 * f + 2, f"{name}_mult", _checked(layer.mult, np.int32)),
            Tensor(4 * f + 3, f"{name}_shift", _checked(layer.shift, np.int8)),
        ]
    for p, name in enumerate(POP_NAMES):
        pop = q.pops[name]
        out += [
            Tensor(28 + 3 * p, f"{name}_beta", _checked(pop.beta, np.int16)),
            Tensor(29 + 3 * p, f"{name}_alpha", _checked(pop.alpha, np.int16)),
            Tensor(30 + 3 * p, f"{name}_thr", _checked(pop.thr, np.int16)),
        ]
    out += [Tensor(LMU_A_ID, "lmu_a", _checked(q.lmu_a, np.int16)), Tensor(LMU_B_ID, "lmu_b", _checked(q.lmu_b, np.int32))]
    return out


def _tensor_spec(tid: int, fc_shapes: dict[str, tuple[int, int]], pop_n: tuple[int, int, int],
                 order: int) -> tuple[int, int]:
    """Expected (dtype code, element count) of tensor `tid` (tensor_spec in firmware/src/blob.c)."""
    if tid < 28:
        out, inp = fc_shapes[FC_NAMES[tid // 4]]
        return (1, 3, 3, 1)[tid % 4], out * inp if tid % 4 == 0 else out
    if tid < LMU_A_ID:
        return 2, pop_n[(tid - 28) // 3]
    return (2, order * order) if tid == LMU_A_ID else (3, order)


def _tensor_name(tid: int) -> str:
    if tid < 28:
        return f"{FC_NAMES[tid // 4]}_{('w', 'bias', 'mult', 'shift')[tid % 4]}"
    if tid < LMU_A_ID:
        return f"{POP_NAMES[(tid - 28) // 3]}_{('beta', 'alpha', 'thr')[(tid - 28) % 3]}"
    return "lmu_a" if tid == LMU_A_ID else "lmu_b"


def flags(q: QuantL2MU) -> int:
    return sum(1 << p for p, name in enumerate(POP_NAMES) if q.pops[name].cuba)


def build_blob(q: QuantL2MU) -> bytes:
    ts = tensors(q)
    table = bytearray()
    data = bytearray()
    offset = HEADER_SIZE + ENTRY_SIZE * len(ts)
    for t in ts:
        size = t.data.dtype.itemsize
        pad = (-(offset + len(data))) % max(size, 4)
        data += b"\0" * pad
        table += struct.pack(_ENTRY, t.id, DTYPE_CODE[t.data.dtype], 0, offset + len(data), t.data.size)
        data += t.data.astype(t.data.dtype.newbyteorder("<")).tobytes()
    payload = bytes(table + data)
    total = HEADER_SIZE + len(payload)
    header = struct.pack(
        _HEADER, MAGIC, VERSION, HEADER_SIZE, total, zlib.crc32(payload), KIND_L2MU, flags(q),
        q.n_in, q.n_u, q.order, q.n_h, q.n_out, q.a_shift, len(ts), 0,
    )
    return header.ljust(HEADER_SIZE, b"\0") + payload


def parse_blob(blob: bytes, input_scale: float = 1.0, output_scale: float = 1.0,
               pop_scales: dict[str, float] | None = None) -> QuantL2MU:
    """Read a blob back into a QuantL2MU (the integer reference then runs exactly what was exported).

    Any byte string either parses or raises EdgememError with one line naming the first defect; the checks run in
    the C parser's order (firmware/src/blob.c: size, magic, version, CRC, kind, dims, tensor table, extents,
    alignment, parameter ranges), so both reject the same blobs for the same reason. One deliberate difference:
    bytes after the declared total size are an error here (edgemem never writes them), C ignores them.
    """
    from edgemem.errors import EdgememError
    from edgemem.quant.model import QuantFC, QuantPop

    def bad(why: str) -> EdgememError:
        return EdgememError(f"model blob {why}")

    blob = bytes(blob)
    size = len(blob)
    if size < HEADER_SIZE:
        raise bad(f"is truncated ({size} bytes, shorter than its {HEADER_SIZE}-byte header)")
    (magic, version, hsize, total, crc, kind, fl, n_in, n_u, order, n_h, n_out, a_shift, n_t,
     _) = struct.unpack_from(_HEADER, blob)
    if total > size:
        raise bad(f"is truncated ({size} bytes, its header says {total})")
    if total < HEADER_SIZE + ENTRY_SIZE * n_t:
        raise bad(f"is truncated (declared size {total} cannot hold {n_t} tensor table entries)")
    if magic != MAGIC:
        raise bad(f"has a bad magic number {magic!r} (expected {MAGIC!r}; not an edgemem model blob)")
    if version != VERSION or hsize != HEADER_SIZE:
        raise bad(f"has version {version} / header size {hsize}; expected version {VERSION} / {HEADER_SIZE}")
    if total < size:
        raise bad(f"has {size - total} bytes after its declared size {total}")
    if zlib.crc32(blob[HEADER_SIZE:total]) != crc:
        raise bad(f"is corrupt: its CRC-32 does not match (stored {crc:#010x}, computed "
                  f"{zlib.crc32(blob[HEADER_SIZE:total]):#010x})")
    if kind != KIND_L2MU:
        raise bad(f"has model kind {kind}; expected {KIND_L2MU} (L2MU)")
    dims = {"n_in": n_in, "n_u": n_u, "order": order, "n_h": n_h, "n_out": n_out}
    for k, v in dims.items():
        if not 1 <= v <= MAX_DIM:
            raise bad(f"has {k} = {v}, outside [1, {MAX_DIM}]")
    n_m = 2 * n_u * order
    if n_m > MAX_DIM:
        raise bad(f"has n_m = 2 * n_u * order = {n_m}, above {MAX_DIM}")
    if n_t != TENSOR_COUNT:
        raise bad(f"has {n_t} tensors; expected {TENSOR_COUNT}")
    shapes = {"enc_x": (n_u, n_in), "enc_h": (n_u, n_h), "enc_m": (n_u, n_m), "hid_x": (n_h, n_in),
              "hid_h": (n_h, n_h), "hid_m": (n_h, n_m), "out": (n_out, n_h)}
    entries = [struct.unpack_from(_ENTRY, blob, HEADER_SIZE + ENTRY_SIZE * i) for i in range(n_t)]
    seen: set[int] = set()
    for i, (tid, code, _, _, count) in enumerate(entries):
        if tid >= TENSOR_COUNT or tid in seen:
            raise bad(f"tensor table entry {i} has {'a duplicate' if tid in seen else 'an unknown'} id {tid}")
        seen.add(tid)
        want_code, want_count = _tensor_spec(tid, shapes, (n_u, n_m, n_h), order)
        if code != want_code or count != want_count:
            raise bad(f"tensor {tid} ({_tensor_name(tid)}) has dtype {code} and {count} elements; expected dtype "
                      f"{want_code} and {want_count}")
    data_start = HEADER_SIZE + ENTRY_SIZE * n_t
    for tid, code, _, off, count in entries:
        nbytes = count * np.dtype(DTYPES[code]).itemsize
        if off < data_start or off >= total or off + nbytes > total:
            raise bad(f"tensor {tid} ({_tensor_name(tid)}) lies outside the blob's data area (offset {off}, "
                      f"{nbytes} bytes, data in [{data_start}, {total}))")
    for tid, code, _, off, _ in entries:
        if off % np.dtype(DTYPES[code]).itemsize:
            raise bad(f"tensor {tid} ({_tensor_name(tid)}) has misaligned offset {off}")
    arrays = {tid: np.frombuffer(blob, dtype=np.dtype(DTYPES[code]).newbyteorder("<"), count=count,
                                 offset=off).astype(np.int64) for tid, code, _, off, count in entries}

    fcs = {name: QuantFC(arrays[4 * f].reshape(shapes[name]), arrays[4 * f + 1], arrays[4 * f + 2],
                         arrays[4 * f + 3], np.ones(shapes[name][0])) for f, name in enumerate(FC_NAMES)}
    scales = pop_scales or {}
    pops = {name: QuantPop(arrays[28 + 3 * p], arrays[29 + 3 * p], arrays[30 + 3 * p], bool(fl >> p & 1),
                           scales.get(name, 1.0)) for p, name in enumerate(POP_NAMES)}
    for name, layer in fcs.items():
        if (layer.mult < 1 << 30).any() or (layer.shift < 1).any() or (layer.shift > 62).any():
            raise bad(f"has an out-of-range requantization multiplier or shift in {name} "
                      "(multipliers must lie in [2^30, 2^31), shifts in [1, 62])")
    for name, pop in pops.items():
        if (pop.beta < 0).any() or (pop.cuba and (pop.alpha < 0).any()):
            raise bad(f"has a negative decay in the {name} population")
    if not 1 <= a_shift <= 30:
        raise bad(f"has a_shift = {a_shift}, outside [1, 30]")
    return QuantL2MU(n_in, n_u, order, n_h, n_out, fcs, pops, arrays[LMU_A_ID].reshape(order, order), a_shift,
                     arrays[LMU_B_ID], input_scale, scales.get("memory", 1.0), output_scale)
