"""Euler-discretized LMU memory (models/lmu.py, docs/graph.md "LMU, Euler substeps"): the float model composes k
substeps, the lowering writes k LEGENDRE-flagged LMU ops whose A codes keep the Legendre structure, the C kernel's
O(order) pass equals the dense integer reference bit for bit (saturation included), and both blob parsers refuse a
LEGENDRE flag that lies."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest
import torch
from test_graph import _em_run_verdict, assert_rejected_alike

from conftest import ROOT, need
from edgemem.errors import EdgememError
from edgemem.graph.blob import BUFFER_SIZE, HEADER_SIZE, OP_SIZE, TENSOR_SIZE, build_graph_blob, parse_graph_blob
from edgemem.graph.intops import quantize
from edgemem.graph.ir import FLAG_LEGENDRE, KERNELS, OpType, kernel_mask, kernel_of
from edgemem.graph.legendre import is_legendre, row_scales, sign_pattern
from edgemem.graph.ref import run_graph
from edgemem.models.lmu import LMUMemory, legendre_delay
from edgemem.models.lmu_rnn import LMURNN, LMURNNConfig
from edgemem.quant.lower import lower
from edgemem.training.recipe import validate
from edgemem.verification import c_runtime


def _euler(order: int = 12, theta: float = 30.0, k: int = 3, n_u: int = 2, clip: float = 4.0, seed: int = 0):
    torch.manual_seed(seed)
    model = LMURNN(LMURNNConfig(n_in=3, n_out=4, n_u=n_u, order=order, theta=theta, n_h=10,
                                discretization="euler", substeps=k, memory_clip=clip)).eval()
    low = lower(model, np.random.default_rng(seed).normal(size=(8, 40, 3)).astype(np.float32))
    return model, low


def test_euler_step_is_k_substeps_of_i_plus_a_over_k():
    a, b = legendre_delay(10, 25.0)
    mem = LMUMemory(1, 10, 25.0, "euler", 4)
    s, bs = np.eye(10) + a / 4, b[:, 0] / 4
    m, u = np.random.default_rng(0).normal(size=10), 0.7
    want = m.copy()
    for _ in range(4):
        want = s @ want + bs * u
    got = mem.A.double().numpy() @ m + mem.B.double().numpy() * u
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mem.substep()[0], s)


def test_one_euler_step_is_refused_where_it_is_unstable():
    with pytest.raises(ValueError, match="unstable"):
        LMUMemory(1, 128, 784.0, "euler", 1)  # spectral radius of I + A: 1.030
    with pytest.raises(ValueError, match="substeps"):
        LMURNNConfig(substeps=2)  # zoh has exactly one


def test_recipe_field_is_checked_and_omitted_when_default():
    def recipe(**model: object) -> dict:
        return validate({"name": "t", "model": {"kind": "lmu", "order": 8, "theta": 20.0, **model}}).to_dict()

    assert "discretization" not in recipe()["model"]  # existing recipes keep their hash
    assert recipe(discretization="euler", substeps=3)["model"]["substeps"] == 3
    with pytest.raises(EdgememError, match="discretization"):
        recipe(discretization="rk4")
    with pytest.raises(EdgememError, match="substeps"):
        recipe(discretization="euler", substeps=0)


def test_lowering_writes_k_legendre_ops_on_one_memory():
    _, low = _euler(k=3)
    lmus = [op for op in low.graph.ops if op.type == OpType.LMU]
    assert len(lmus) == 3 and all(op.flags & FLAG_LEGENDRE for op in lmus)
    assert len({(op.state0, op.scratch, op.t) for op in lmus}) == 1  # one memory, one scratch, one A and B
    a = low.graph.tensors[lmus[0].t[0]].data.reshape(12, 12)
    assert is_legendre(a) and (np.diag(a) + row_scales(a) == 1 << lmus[0].d[2]).all()  # diagonal: 2^shift - r_i
    calib = np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)
    zoh = lower(LMURNN(LMURNNConfig(n_in=3, n_out=4, order=12, theta=30.0, n_h=10)).eval(), calib)
    assert [op.flags for op in zoh.graph.ops if op.type == OpType.LMU] == [0]  # ZOH: dense, unflagged
    # at order 2 any A fits the pattern: a ZOH memory still keeps its dense op (blobs and kernel masks unchanged)
    zoh2 = lower(LMURNN(LMURNNConfig(n_in=3, n_out=4, order=2, theta=30.0, n_h=10)).eval(), calib)
    assert [op.flags for op in zoh2.graph.ops if op.type == OpType.LMU] == [0]


def test_structure_check_finds_every_wrong_code():
    a = np.round(np.eye(7) * 30000 - 5 * np.arange(1, 8)[:, None] * sign_pattern(7))
    assert is_legendre(a) and is_legendre(np.array([[123]]))
    for i, j in ((0, 6), (6, 0), (3, 2), (3, 4), (5, 1)):
        bad = a.copy()
        bad[i, j] += 1
        assert not is_legendre(bad), (i, j)


@pytest.mark.parametrize("order,k,n_u,clip", [(12, 3, 2, 4.0), (1, 2, 3, 4.0), (2, 2, 1, 4.0), (33, 4, 2, 0.05)])
def test_c_legendre_pass_equals_the_dense_reference(order, k, n_u, clip, tmp_path):
    """Random and full-scale input; clip 0.05 drives the memory into int16 saturation on most steps."""
    need("gcc", "make")
    _, low = _euler(order=order, theta=max(2.0 * order, 4.0), k=k, n_u=n_u, clip=clip, seed=order)
    assert all(op.flags & FLAG_LEGENDRE for op in low.graph.ops if op.type == OpType.LMU)
    path = tmp_path / "m.bin"
    path.write_bytes(build_graph_blob(low.graph))
    rng = np.random.default_rng(order)
    x = np.concatenate([quantize(rng.normal(size=(6, 60, 3)), low.input_scale),
                        np.where(rng.random((4, 60, 3)) < 0.5, -128, 127)]).astype(np.int8)
    mem = {}

    def peak(_t: int, v: dict) -> None:
        lmu = next(op for op in low.graph.ops if op.type == OpType.LMU)
        mem["max"] = max(mem.get("max", 0), int(np.abs(v[low.graph.buffers[lmu.state0].name]).max()))

    ref = run_graph(low.graph, x, peak)
    assert np.array_equal(ref, c_runtime.run_host(path, x, 4))
    if clip < 1:
        assert mem["max"] >= 32767, "the saturation path went untested"


def _op_field(blob: bytes, op: int, field: int) -> int:
    n_b = struct.unpack_from("<H", blob, 22)[0]
    return HEADER_SIZE + BUFFER_SIZE * n_b + OP_SIZE * op + 2 * field


def _sealed(b: bytearray) -> bytes:
    import zlib

    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[HEADER_SIZE:])))
    return bytes(b)


def test_a_lying_legendre_flag_is_refused_by_python_and_c(em_run):
    _, low = _euler(k=2)
    good = build_graph_blob(low.graph)
    x = np.zeros((1, 3, 3), np.int8)
    i = next(n for n, op in enumerate(low.graph.ops) if op.type == OpType.LMU)
    # one A code off the pattern: the flag now lies
    n_b, n_op = struct.unpack_from("<HH", good, 22)
    t0 = struct.unpack_from("<H", good, _op_field(good, i, 12))[0]
    off = struct.unpack_from("<I", good, HEADER_SIZE + BUFFER_SIZE * n_b + OP_SIZE * n_op + TENSOR_SIZE * t0 + 4)[0]
    b = bytearray(good)
    struct.pack_into("<h", b, off + 2 * 12 * 5 + 2 * 9, struct.unpack_from("<h", good, off + 2 * (12 * 5 + 9))[0] + 1)
    assert_rejected_alike(em_run, _sealed(b), x, "PARAM", "LEGENDRE")
    # a B code at 2^22 (the kernel's 32-bit B term needs less), and a_shift 1 (its rounding shifts by a_shift - 1)
    t1 = struct.unpack_from("<H", good, _op_field(good, i, 13))[0]
    b_off = struct.unpack_from("<I", good, HEADER_SIZE + BUFFER_SIZE * n_b + OP_SIZE * n_op + TENSOR_SIZE * t1 + 4)[0]
    b = bytearray(good)
    struct.pack_into("<i", b, b_off + 4 * 3, -(1 << 22))
    assert_rejected_alike(em_run, _sealed(b), x, "PARAM", "LEGENDRE")
    b = bytearray(good)
    for j in range(n_op):
        if struct.unpack_from("<H", good, _op_field(good, j, 0))[0] == OpType.LMU:
            struct.pack_into("<H", b, _op_field(good, j, 10), 1)
    assert_rejected_alike(em_run, _sealed(b), x, "PARAM", "LEGENDRE")
    # a dense ZOH A flagged LEGENDRE
    calib = np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)
    zoh = lower(LMURNN(LMURNNConfig(n_in=3, n_out=4, order=12, theta=30.0, n_h=10)).eval(), calib)
    dense = bytearray(build_graph_blob(zoh.graph))
    j = next(n for n, op in enumerate(zoh.graph.ops) if op.type == OpType.LMU)
    struct.pack_into("<H", dense, _op_field(bytes(dense), j, 1), FLAG_LEGENDRE)
    assert_rejected_alike(em_run, _sealed(dense), x, "PARAM", "LEGENDRE")
    # the intact blob parses and runs
    assert parse_graph_blob(good).ops[i].flags == FLAG_LEGENDRE
    assert _em_run_verdict(em_run, good, x)[0] == 0


def test_a_zoh_only_firmware_links_no_legendre_kernel_and_refuses_the_flag(tmp_path):
    """LMU_LEGENDRE is a kernel variant of its own (bit 19): a build with a ZOH model's mask (LMU) refuses a flagged
    blob at parse, one line, exit 2, and the Euler model's mask names LMU_LEGENDRE, not LMU."""
    need("gcc", "make")
    model, low = _euler(k=2)
    assert {kernel_of(low.graph, op) for op in low.graph.ops if op.type == OpType.LMU} == {"LMU_LEGENDRE"}
    zoh = LMURNN(LMURNNConfig(**{**model.cfg.to_dict(), "discretization": "zoh", "substeps": 1})).eval()
    zoh_graph = lower(zoh, np.random.default_rng(1).normal(size=(2, 5, 3)).astype(np.float32)).graph
    assert kernel_mask(zoh_graph) & (1 << KERNELS.index("LMU_LEGENDRE")) == 0
    build = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware"), f"BUILD={build}", f"{build}/host/em_run",
                    f"EM_DEFS=-DEM_GRAPH_KERNELS={kernel_mask(zoh_graph):#x}"], check=True, capture_output=True)
    x = np.zeros((1, 3, 3), np.int8)
    rc, err, _ = _em_run_verdict(build / "host" / "em_run", build_graph_blob(low.graph), x)
    assert rc == 2 and "bad op" in err and len(err.strip().splitlines()) == 1, err
    assert _em_run_verdict(build / "host" / "em_run", build_graph_blob(zoh_graph), x)[0] == 0
