"""The patch schedule (edgemem/schedule/patch.py, firmware/src/graph_patch.c): the integer reference of the patch
loop equals streaming, C runs it bit-exactly on host and Cortex-M4 in the arena the plan reports, and C refuses
unsafe plans."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_graph import _inputs

from conftest import ROOT, need
from edgemem.graph.blob import build_graph_blob
from edgemem.graph.ir import Graph, kernel_mask, kernel_of
from edgemem.graph.ref import run_graph
from edgemem.quant.lowering import Builder
from edgemem.schedule.patch import HEADER, build_patch_blob, extra_macs, patch_layout, run_patch
from edgemem.schedule.plan import _macs, load_export_graph, plan_graph

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]
CONV_FRONT = ("kws_lmuformer", "kws_slmuformer", "kws_lmuformer_mixed")


def conv_front_graph(seed: int, packed: bool = False) -> Graph:
    """conv k3 -> ReLU -> conv k2 (4-bit if packed) -> ReLU -> FC, a residual ADD of the first ReLU into the FC
    (an accumulating op and a buffer two ops read), then a recurrent rest: LIF -> FC -> logits."""
    rng = np.random.default_rng(seed)
    b = Builder(6, 3, 0.05, {"c2": 4} if packed else None)
    c1 = b.conv1d("c1", rng.normal(0, 0.4, (8, 6, 3)), rng.normal(0, 0.1, 8), b.g.in_buffer, 0.05)
    r1 = b.act("r1", c1, "relu")
    c2 = b.conv1d("c2", rng.normal(0, 0.3, (8, 8, 2)), rng.normal(0, 0.1, 8), r1, 0.05)
    r2 = b.act("r2", c2, "relu")
    h = b.fc("f1", rng.normal(0, 0.3, (8, 8)), None, r2, 0.05)
    b.add("res", r1, out=h)
    spikes = b.lif("l1", h, np.full(8, 0.9), np.full(8, 0.5))
    logits = b.fc("head", rng.normal(0, 0.5, (3, 8)), rng.normal(0, 0.1, 3), spikes, 0.05)
    return b.output(logits)


def _run_c(em_run: Path, blob: bytes, x: np.ndarray, plan: bytes, tmp: Path, qemu: bool = False) -> tuple[int, str,
                                                                                                           np.ndarray]:
    (tmp / "model.bin").write_bytes(blob)
    (tmp / "plan.bin").write_bytes(plan)
    np.ascontiguousarray(x, dtype=np.int8).tofile(tmp / "in.bin")
    args = ["model.bin", "in.bin", "out.bin", str(x.shape[1]), "plan.bin"]
    if qemu:
        elf = ROOT / "firmware" / "build" / "m4" / "em_run.elf"
        cmd = ["sh", str(ROOT / "firmware" / "targets" / "cortex_m4" / "run_qemu.sh"), str(elf), *args]
    else:
        cmd = [str(em_run), *args]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    out = np.fromfile(tmp / "out.bin", dtype="<i2") if res.returncode == 0 else np.zeros(0)
    return res.returncode, res.stdout + res.stderr, out


@pytest.mark.parametrize("seed,packed", [(0, False), (1, True), (2, False)])
@pytest.mark.parametrize("frames", [1, 2, 3, 5])
def test_patch_reference_equals_streaming(seed, packed, frames):
    g = conv_front_graph(seed, packed)
    x = _inputs(np.random.default_rng(seed), g.n_in, steps=13, n=3)  # 13: the last block is short
    lay = patch_layout(g, frames)
    # the cut after r2 hands on the fewest bytes: r1 then crosses to the rest too (the residual ADD reads it)
    assert lay.stage_ops == 4 and lay.lead[g.in_buffer] == 3  # halo: (3-1) + (2-1) input frames
    assert np.array_equal(run_patch(g, lay, x), run_graph(g, x))


@pytest.mark.parametrize("frames", [1, 4, 5])
def test_patch_loop_in_c_is_bit_exact_in_the_planned_arena(em_run, tmp_path, frames):
    g = conv_front_graph(3, packed=frames == 4)
    blob = build_graph_blob(g)
    x = _inputs(np.random.default_rng(frames), g.n_in, steps=17, n=3)
    lay = patch_layout(g, frames)
    rc, text, y = _run_c(em_run, blob, x, build_patch_blob(lay, blob), tmp_path)
    assert rc == 0, text
    assert np.array_equal(y, run_graph(g, x).reshape(-1))
    assert f"arena_bytes={lay.arena_size}" in text
    # the stage's rings are gone, its buffers hold patches: a different arena from streaming's
    assert lay.arena_size != g.arena_size


@pytest.mark.parametrize("name", CONV_FRONT)
def test_shipped_keyword_models_run_the_planned_patch_schedule_in_c(em_run, tmp_path, name):
    folder = ROOT / "export" / name
    g, steps = load_export_graph(folder)
    blob = (folder / "model.bin").read_bytes()
    out = tmp_path / "plan.bin"
    res = subprocess.run([*EDGEMEM, "plan", str(folder), "--json", "--patch-out", str(out)], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    planned = json.loads(res.stdout)["schedules"]["patch"]
    x = _inputs(np.random.default_rng(0), g.n_in, steps=steps, n=3)
    rc, text, y = _run_c(em_run, blob, x, out.read_bytes(), tmp_path)
    assert rc == 0, text
    assert np.array_equal(y, run_graph(g, x).reshape(-1))
    # the plan's peak RAM is the arena the runtime asked for
    assert f"arena_bytes={planned['peak_ram_bytes']}" in text


def test_patch_loop_on_cortex_m4(em_run, tmp_path):
    need("arm-none-eabi-gcc", "qemu-system-arm")
    subprocess.run(["make", "-C", str(ROOT / "firmware"), "m4"], check=True, capture_output=True)
    folder = ROOT / "export" / "kws_lmuformer_mixed"
    g, steps = load_export_graph(folder)
    blob = (folder / "model.bin").read_bytes()
    lay = patch_layout(g, 4)
    x = _inputs(np.random.default_rng(5), g.n_in, steps=steps, n=2)
    rc, text, y = _run_c(em_run, blob, x, build_patch_blob(lay, blob), tmp_path, qemu=True)
    assert rc == 0, text
    assert np.array_equal(y, run_graph(g, x).reshape(-1))
    assert f"arena_bytes={lay.arena_size}" in text


def _reseal(plan: bytearray) -> bytes:
    struct.pack_into("<I", plan, 12, zlib.crc32(bytes(plan[HEADER:])))
    return bytes(plan)


def _entry(plan: bytearray, b: int, offset: int | None = None, frames: int | None = None,
           lead: int | None = None) -> bytes:
    o, f, le = struct.unpack_from("<IHH", plan, HEADER + 8 * b)
    struct.pack_into("<IHH", plan, HEADER + 8 * b, o if offset is None else offset, f if frames is None else frames,
                     le if lead is None else lead)
    return _reseal(plan)


def test_c_refuses_unsafe_or_foreign_plans(em_run, tmp_path):
    g = conv_front_graph(4)
    blob = build_graph_blob(g)
    lay = patch_layout(g, 3)
    good = build_patch_blob(lay, blob)
    x = _inputs(np.random.default_rng(0), g.n_in, steps=4, n=3)
    stage_buf = g.ops[1].out  # r1: a stage buffer live while the input is
    ring = g.ops[0].state0
    other = build_graph_blob(conv_front_graph(5))
    plan_error = "bad patch plan"
    cases = [
        ("bad magic", b"XXXX" + good[4:]),
        ("CRC-32 mismatch", good[:-1] + bytes([good[-1] ^ 1])),
        ("blob truncated", good[:HEADER - 1]),
        (plan_error, build_patch_blob(lay, other)),  # laid out for another graph
        ("bad dimensions", _reseal(bytearray(good[:20] + struct.pack("<H", 0) + good[22:]))),  # P = 0
        (plan_error, _entry(bytearray(good), stage_buf, offset=lay.offsets[g.in_buffer])),  # on the input history
        (plan_error, _entry(bytearray(good), stage_buf, frames=lay.frames[stage_buf] + 1)),
        (plan_error, _entry(bytearray(good), ring, frames=1)),  # a stage ring has no place in the schedule
        (plan_error, _entry(bytearray(good), g.in_buffer, lead=0, frames=3)),  # no halo for the first conv
    ]
    assert _run_c(em_run, blob, x, good, tmp_path)[0] == 0
    for why, plan_blob in cases:
        rc, text, _ = _run_c(em_run, blob, x, plan_blob, tmp_path)
        assert rc == 2 and why in text, (why, text)
        assert len(text.strip().splitlines()) == 1


def test_extra_macs_count_the_recomputed_halo_frames():
    g = conv_front_graph(0)
    lay = patch_layout(g, 4)
    macs = [_macs(g, i) for i in range(len(g.ops))]
    # blocks start at 0, 4, 8: ops before conv c2 (lead 1) recompute min(1, t0) frames, c2 and after none
    ops_with_halo = [i for i in range(lay.stage_ops) if lay.lead[g.ops[i].out] == 1]
    assert [g.ops[i].name for i in ops_with_halo] == ["c1", "r1"]
    assert extra_macs(g, lay, macs, 12) == 2 * sum(macs[i] for i in ops_with_halo)
    report = plan_graph(g, 12)
    s = report.schedules["patch"]
    assert s.extra_macs_ratio <= 0.10 and s.peak_ram_bytes == patch_layout(g, s.detail["patch_frames"]).arena_size


def test_plan_patch_out_errors_exit_2_and_write_nothing(tmp_path):
    out = tmp_path / "plan.bin"
    res = subprocess.run([*EDGEMEM, "plan", str(ROOT / "export" / "har_elm"), "--patch-out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "no convolutional front" in res.stderr and not out.exists()
    res = subprocess.run([*EDGEMEM, "plan", str(ROOT / "export" / "kws_lmuformer"), "--patch-frames", "0"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--patch-frames" in res.stderr
    assert os.listdir(tmp_path) == []


def test_a_firmware_built_for_one_model_links_its_kernels_only_and_refuses_others(tmp_path):
    """EM_GRAPH_KERNELS (the op resolver): a build with har_elm's kernels runs har_elm and refuses a keyword model
    (it needs CONV1D) at parse time, one line, exit 2; the footprint probe links the model's kernels only."""
    need("gcc")
    elm = load_export_graph(ROOT / "export" / "har_elm")[0]
    build = tmp_path / "build"
    subprocess.run(["make", "-s", "-C", str(ROOT / "firmware"), f"BUILD={build}", f"{build}/host/em_run",
                    f"EM_DEFS=-DEM_GRAPH_KERNELS={kernel_mask(elm):#x}"], check=True, capture_output=True)
    exe = build / "host" / "em_run"
    x = _inputs(np.random.default_rng(0), elm.n_in, steps=5, n=3)
    x.tofile(tmp_path / "in.bin")
    ok = subprocess.run([str(exe), str(ROOT / "export" / "har_elm" / "model.bin"), str(tmp_path / "in.bin"),
                         str(tmp_path / "out.bin"), "5"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert np.array_equal(np.fromfile(tmp_path / "out.bin", dtype="<i2"), run_graph(elm, x).reshape(-1))
    kws = ROOT / "export" / "kws_lmuformer" / "model.bin"
    bad = subprocess.run([str(exe), str(kws), str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), "5"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "bad op" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    g = load_export_graph(ROOT / "export" / "kws_lmuformer")[0]
    assert {kernel_of(g, op) for op in g.ops} == {"CONV1D_S8", "ACT_S8", "FC_S8", "LMU", "FC_S16", "ADD_S8",
                                                  "ACT_S16"}
