"""The graph model blob (version 2, docs/graph.md): header, buffer, op and tensor tables, aligned data, CRC-32.

parse_graph_blob checks what the C parser checks, in its order (docs/graph.md "Parse order"), so both reject the
same blobs for the same reason; the structural checks are edgemem.graph.check, shared with validate(g). Bytes after the
declared total size are an error here (and in em_run) while em_graph_parse ignores them: edgemem never writes them, so
in a file they mean a damaged one; a firmware may hand the C parser a buffer larger than the blob.
A version-1 blob (the retired fixed-L2MU format) is refused first, with a line that says how to re-export it.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from edgemem.graph.check import (
    PER_BYTE,
    TENSOR_DTYPES,
    GraphDefect,
    Tables,
    check_buffers,
    check_header,
    check_ops,
    check_overlaps,
    check_params,
    tables_of,
    tensor_align,
    tensor_bytes,
    validate,
)
from edgemem.graph.ir import Buffer, DType, Graph, Op, OpType, Tensor

MAGIC = b"EMMB"
VERSION = 2
HEADER_SIZE = 64
KIND_GRAPH = 2
BUFFER_SIZE, OP_SIZE, TENSOR_SIZE = 12, 32, 12
_HEADER = "<4sHHIIHHHHHHHHI"  # through arena_size; 28 reserved bytes follow
_BUFFER = "<BBHII"  # dtype, flags, pad, count, offset
_OP = "<16H"
_TENSOR = "<HBBII"  # id, dtype, pad, offset, count


RETIRED_VERSION_MESSAGE = ("model blob version 1 is no longer supported: re-export it with "
                           "`edgemem export CHECKPOINT --to c`")


def blob_version(blob: bytes) -> int:
    """The version field of a model blob (2: the graph format, the only one this runtime reads)."""
    if len(blob) < 6:
        raise GraphDefect("TRUNCATED", f"model blob is truncated ({len(blob)} bytes, too short to hold a version)")
    return struct.unpack_from("<H", blob, 4)[0]


def refuse_retired(blob: bytes) -> None:
    """Blob version 1 (the fixed L2MU format) was retired: it gets its own line before any other check, as in C."""
    if len(blob) >= 6 and bytes(blob[:4]) == MAGIC and blob_version(blob) == 1:
        raise GraphDefect("VERSION", RETIRED_VERSION_MESSAGE)


def pack_values(values: np.ndarray, dtype: DType) -> bytes:
    """Packed tensor bytes (docs/graph.md "Packed weights"): element k in byte k // per_byte at bits
    (k % per_byte) * bits, two's complement, the last byte's unused high bits zero."""
    per, bits = dtype.per_byte, dtype.bits
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    fields = np.zeros(-(-v.size // per) * per, dtype=np.int64)
    fields[:v.size] = v & ((1 << bits) - 1)
    shifts = np.arange(per, dtype=np.int64) * bits
    return (fields.reshape(-1, per) << shifts).sum(axis=1).astype(np.uint8).tobytes()


def unpack_values(raw: bytes, dtype: DType, count: int) -> np.ndarray:
    """The inverse of pack_values: `count` signed values (int64) from ceil(count / per_byte) bytes."""
    per, bits = dtype.per_byte, dtype.bits
    b = np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    fields = (b[:, None] >> (np.arange(per, dtype=np.int64) * bits)) & ((1 << bits) - 1)
    half = 1 << (bits - 1)
    return ((fields ^ half) - half).reshape(-1)[:count]  # sign extension, as C does it


def _tensor_bytes(x: np.ndarray, dtype: DType) -> bytes:
    if dtype.packed:
        return pack_values(x, dtype)
    return x.astype(np.dtype(dtype.np).newbyteorder("<")).tobytes()


def build_graph_blob(g: Graph) -> bytes:
    """The blob of g (placing its buffers first if they are not placed); g must pass validate."""
    if any(b.offset < 0 for b in g.buffers):
        g.place()
    validate(g)
    t = tables_of(g)
    data_start = HEADER_SIZE + BUFFER_SIZE * len(t.buffers) + OP_SIZE * len(t.ops) + TENSOR_SIZE * len(g.tensors)
    tables = bytearray()
    for entry in t.buffers:
        tables += struct.pack(_BUFFER, *entry)
    for entry in t.ops:
        tables += struct.pack(_OP, *entry)
    data = bytearray()
    stored: dict[tuple[int, bytes], int] = {}  # (dtype, bytes) -> offset: identical tensors share their data
    for i, x in enumerate(g.tensors):
        raw = _tensor_bytes(x.data, x.dtype)
        offset = stored.get((int(x.dtype), raw))
        if offset is None:
            data += b"\0" * (-(data_start + len(data)) % 4)  # every tensor 4-byte aligned, whatever its dtype
            offset = stored[(int(x.dtype), raw)] = data_start + len(data)
            data += raw
        tables += struct.pack(_TENSOR, i, int(x.dtype), 0, offset, x.data.size)
    payload = bytes(tables + data)
    total = HEADER_SIZE + len(payload)
    header = struct.pack(_HEADER, MAGIC, VERSION, HEADER_SIZE, total, zlib.crc32(payload), KIND_GRAPH, g.n_in,
                         g.n_out, len(t.buffers), len(t.ops), len(g.tensors), g.in_buffer, g.out_buffer,
                         t.arena_size)
    return header.ljust(HEADER_SIZE, b"\0") + payload


def parse_graph_blob(blob: bytes) -> Graph:
    """Read a version-2 blob back into a Graph; any byte string parses or raises one GraphDefect line."""

    def bad(status: str, why: str) -> GraphDefect:
        return GraphDefect(status, f"model blob {why}")

    blob = bytes(blob)
    refuse_retired(blob)
    size = len(blob)
    if size < HEADER_SIZE:
        raise bad("TRUNCATED", f"is truncated ({size} bytes, shorter than its {HEADER_SIZE}-byte header)")
    (magic, version, hsize, total, crc, kind, n_in, n_out, n_b, n_op, n_t, in_buf, out_buf,
     arena) = struct.unpack_from(_HEADER, blob)
    tables_end = HEADER_SIZE + BUFFER_SIZE * n_b + OP_SIZE * n_op + TENSOR_SIZE * n_t
    if total > size:
        raise bad("TRUNCATED", f"is truncated ({size} bytes, its header says {total})")
    if total < tables_end:
        raise bad("TRUNCATED", f"is truncated (declared size {total} cannot hold its tables of {n_b} buffers, "
                  f"{n_op} ops and {n_t} tensors)")
    if magic != MAGIC:
        raise bad("MAGIC", f"has a bad magic number {magic!r} (expected {MAGIC!r}; not an edgemem model blob)")
    if version != VERSION or hsize != HEADER_SIZE:
        raise bad("VERSION", f"has version {version} / header size {hsize}; expected version {VERSION} / "
                  f"{HEADER_SIZE}")
    if total < size:
        raise bad("TRAILING", f"has {size - total} bytes after its declared size {total}")
    if zlib.crc32(blob[HEADER_SIZE:total]) != crc:
        raise bad("CRC", f"is corrupt: its CRC-32 does not match (stored {crc:#010x}, computed "
                  f"{zlib.crc32(blob[HEADER_SIZE:total]):#010x})")
    if kind != KIND_GRAPH:
        raise bad("KIND", f"has model kind {kind}; expected {KIND_GRAPH} (graph)")

    at = HEADER_SIZE
    buffers = [struct.unpack_from(_BUFFER, blob, at + BUFFER_SIZE * i) for i in range(n_b)]
    at += BUFFER_SIZE * n_b
    ops = [struct.unpack_from(_OP, blob, at + OP_SIZE * i) for i in range(n_op)]
    at += OP_SIZE * n_op
    entries = [struct.unpack_from(_TENSOR, blob, at + TENSOR_SIZE * i) for i in range(n_t)]
    t = Tables(n_in, n_out, n_b, n_op, n_t, in_buf, out_buf, arena, blob[36:HEADER_SIZE], buffers, ops,
               [(dtype, count) for _, dtype, _, _, count in entries])
    check_header(t, bad)
    check_buffers(t, bad)
    check_ops(t, bad)
    check_overlaps(t, bad)
    for i, (tid, dtype, pad, off, count) in enumerate(entries):
        if tid != i or dtype not in TENSOR_DTYPES or pad:
            raise bad("TENSOR", f"tensor table entry {i} has id {tid}, dtype code {dtype}, pad {pad}; expected id "
                      f"{i}, a dtype code in 1..5 and pad 0")
        nbytes = tensor_bytes(dtype, count)
        if off < tables_end or off >= total or off + nbytes > total:
            raise bad("BOUNDS", f"tensor {i} lies outside the blob's data area (offset {off}, {nbytes} bytes, data "
                      f"in [{tables_end}, {total}))")
        used = count % PER_BYTE.get(dtype, 1) * DType(dtype).bits
        if used and blob[off + nbytes - 1] >> used:  # one encoding per value: unused bits are zero
            raise bad("TENSOR", f"tensor {i} ({DType(dtype).name.lower()} [{count}]) has non-zero unused bits in "
                      "its last byte")
    for i, (_, dtype, _, off, _) in enumerate(entries):
        if off % tensor_align(dtype):
            raise bad("ALIGN", f"tensor {i} has misaligned offset {off} for its {tensor_align(dtype)}-byte elements")
    data = [unpack_values(blob[off:off + tensor_bytes(dtype, count)], DType(dtype), count) if dtype in PER_BYTE
            else np.frombuffer(blob, dtype=np.dtype(DType(dtype).np).newbyteorder("<"), count=count,
                               offset=off).astype(np.int64) for _, dtype, _, off, count in entries]
    check_params(t, data, bad)

    g = Graph(n_in, n_out, in_buffer=in_buf, out_buffer=out_buf, arena_size=arena)
    g.buffers = [Buffer(f"b{i}", DType(dt), count, bool(fl & 1), off) for i, (dt, fl, _, count, off) in enumerate(buffers)]
    g.ops = [Op(OpType(r[0]), f"op{i}", in0=r[2], out=r[4], state0=r[5], state1=r[6], scratch=r[7],
                d=(r[8], r[9], r[10], r[11]), t=(r[12], r[13], r[14], r[15]), flags=r[1]) for i, r in enumerate(ops)]
    g.tensors = [Tensor(f"t{i}", x, DType(dtype)) for i, (x, (_, dtype, _, _, _)) in enumerate(zip(data, entries))]
    return g
