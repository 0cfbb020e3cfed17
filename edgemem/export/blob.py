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
        table += struct.pack("<HBBII", t.id, DTYPE_CODE[t.data.dtype], 0, offset + len(data), t.data.size)
        data += t.data.astype(t.data.dtype.newbyteorder("<")).tobytes()
    payload = bytes(table + data)
    total = HEADER_SIZE + len(payload)
    header = struct.pack(
        "<4sHHII10H", MAGIC, VERSION, HEADER_SIZE, total, zlib.crc32(payload), KIND_L2MU, flags(q),
        q.n_in, q.n_u, q.order, q.n_h, q.n_out, q.a_shift, len(ts), 0,
    )
    return header.ljust(HEADER_SIZE, b"\0") + payload


def parse_blob(blob: bytes, input_scale: float = 1.0, output_scale: float = 1.0,
               pop_scales: dict[str, float] | None = None) -> QuantL2MU:
    """Read a blob back into a QuantL2MU (the integer reference then runs exactly what was exported).

    Validation here is for edgemem's own files; the C parser is the one hardened against hostile input.
    """
    from edgemem.errors import EdgememError
    from edgemem.quant.model import QuantFC, QuantPop

    if len(blob) < HEADER_SIZE or blob[:4] != MAGIC:
        raise EdgememError("model blob is truncated or has a bad magic number")
    _, version, hsize, total, crc, kind, fl, n_in, n_u, order, n_h, n_out, a_shift, n_t, _ = struct.unpack_from(
        "<4sHHII10H", blob)
    if version != VERSION or kind != KIND_L2MU:
        raise EdgememError(f"model blob has version {version} / kind {kind}; expected {VERSION} / {KIND_L2MU}")
    if total != len(blob) or zlib.crc32(blob[hsize:total]) != crc:
        raise EdgememError("model blob is truncated or its CRC-32 does not match")
    arrays: dict[int, np.ndarray] = {}
    for i in range(n_t):
        tid, code, _, off, count = struct.unpack_from("<HBBII", blob, hsize + ENTRY_SIZE * i)
        arrays[tid] = np.frombuffer(blob, dtype=np.dtype(DTYPES[code]).newbyteorder("<"), count=count,
                                    offset=off).astype(np.int64)
    n_m = 2 * n_u * order
    dims = {"enc_x": (n_u, n_in), "enc_h": (n_u, n_h), "enc_m": (n_u, n_m), "hid_x": (n_h, n_in),
            "hid_h": (n_h, n_h), "hid_m": (n_h, n_m), "out": (n_out, n_h)}
    fcs = {name: QuantFC(arrays[4 * f].reshape(dims[name]), arrays[4 * f + 1], arrays[4 * f + 2],
                         arrays[4 * f + 3], np.ones(dims[name][0])) for f, name in enumerate(FC_NAMES)}
    scales = pop_scales or {}
    pops = {name: QuantPop(arrays[28 + 3 * p], arrays[29 + 3 * p], arrays[30 + 3 * p], bool(fl >> p & 1),
                           scales.get(name, 1.0)) for p, name in enumerate(POP_NAMES)}
    return QuantL2MU(n_in, n_u, order, n_h, n_out, fcs, pops, arrays[LMU_A_ID].reshape(order, order), a_shift,
                     arrays[LMU_B_ID], input_scale, scales.get("memory", 1.0), output_scale)
