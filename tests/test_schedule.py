"""Arena planning by lifetime (edgemem/graph/arena.py, docs/graph.md "Placement") and `edgemem plan`."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from test_graph import C_STATUS, _em_run_verdict, _inputs, _layout, random_graph

from conftest import ROOT
from edgemem.exporters.folder import load_meta
from edgemem.graph.arena import packed_arena, place_by_lifetime, plan_arena
from edgemem.graph.blob import HEADER_SIZE, build_graph_blob, parse_graph_blob
from edgemem.graph.check import GraphDefect
from edgemem.graph.ir import NONE, Act, DType, Graph, Op, OpType, lut_op_flags
from edgemem.graph.ref import run_graph, validate
from edgemem.schedule.profiles import load_target

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]
GRAPH_MODELS = ("kws_lmuformer", "kws_slmuformer", "psmnist_lmu", "har_elm")
BUFFER_SIZE = 12


def _arena_of(blob: bytes) -> int:
    """The header's arena_size: what em_graph_arena_size() returns for the parsed blob."""
    return struct.unpack_from("<I", blob, 32)[0]


def _overlapping_scratch_pairs(g: Graph) -> list[tuple[int, int]]:
    spans = [(b.offset, b.offset + b.count * b.dtype.size) for b in g.buffers]
    return [(a, b) for a in range(len(spans)) for b in range(a + 1, len(spans))
            if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]]



@pytest.mark.parametrize("seed", [0, 1, 2, 3, 11, 12])
def test_planned_random_graph_is_bit_exact_in_c_with_shared_bytes(em_run, seed):
    g = random_graph(seed)
    packed = g.arena_size
    place_by_lifetime(g)
    assert g.arena_size <= packed == packed_arena(g)
    pairs = _overlapping_scratch_pairs(g)
    assert pairs, "the plan must share bytes between scratch buffers, or C never runs an overlapping placement"
    assert not any(g.buffers[a].state or g.buffers[b].state for a, b in pairs)
    blob = build_graph_blob(g)
    back = parse_graph_blob(blob)  # the Python parser accepts the shared bytes ...
    assert _arena_of(blob) == back.arena_size == plan_arena(back).arena_size == g.arena_size
    x = _inputs(np.random.default_rng(seed), g.n_in, steps=25, n=4)
    rc, stderr, host = _em_run_verdict(em_run, blob, x)  # ... and so does C, and computes the same logits
    assert rc == 0, stderr
    assert np.array_equal(run_graph(back, x).reshape(-1), host), f"seed {seed}"


def _reseal(b: bytearray) -> bytes:
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[HEADER_SIZE:])))
    return bytes(b)


def _moved(blob: bytes, buf: int, offset: int) -> bytes:
    b = bytearray(blob)
    struct.pack_into("<I", b, _layout(blob)["buffers"] + BUFFER_SIZE * buf + 8, offset)
    return _reseal(b)


def test_overlap_of_buffers_live_together_is_rejected_by_python_and_c(em_run):
    g = random_graph(2)
    place_by_lifetime(g)
    blob = build_graph_blob(g)
    plan = plan_arena(g)
    x = _inputs(np.random.default_rng(2), g.n_in, steps=4, n=2)
    scratch = [i for i, b in enumerate(g.buffers) if not b.state and plan.live[i] is not None]
    live_pair = next((a, b) for a in scratch for b in scratch if a != b and plan.live[a][0] <= plan.live[b][1]
                     and plan.live[b][0] <= plan.live[a][1] and plan.offsets[a] + plan.sizes[b] <= g.arena_size
                     and plan.offsets[a] != plan.offsets[b])
    state = next(i for i, b in enumerate(g.buffers) if b.state)
    dead_pair = next((a, b) for a in scratch for b in scratch if a != b and (plan.live[a][1] < plan.live[b][0])
                     and plan.offsets[a] + plan.sizes[b] <= g.arena_size and plan.offsets[a] != plan.offsets[b])
    for moved, want in ((_moved(blob, live_pair[1], plan.offsets[live_pair[0]]), "both live at op"),
                        (_moved(blob, scratch[-1], plan.offsets[state]), "state buffer")):
        with pytest.raises(GraphDefect, match=want) as e:
            parse_graph_blob(moved)
        assert e.value.status == "BUFFER"
        rc, stderr, _ = _em_run_verdict(em_run, moved, x)
        assert rc == 2 and C_STATUS["BUFFER"] in stderr, stderr
    # the same move between buffers whose ranges are disjoint is legal in both
    fine = _moved(blob, dead_pair[1], plan.offsets[dead_pair[0]])
    back = parse_graph_blob(fine)
    rc, stderr, host = _em_run_verdict(em_run, fine, x)
    assert rc == 0, stderr
    assert np.array_equal(run_graph(back, x).reshape(-1), host)


def test_validate_rejects_a_graph_placed_with_live_buffers_sharing_bytes():
    g = random_graph(0)  # packed back to back: moving one buffer onto another overlaps just those two
    c1, u_cur, hcur = g.index("c1"), g.index("u_cur"), g.index("hcur")
    g.buffers[u_cur].offset = g.buffers[c1].offset  # c1: ops 0..3 (the LIF reads it last); u_cur: ops 4..5
    validate(g)
    g.buffers[g.index("z")].offset = g.buffers[hcur].offset  # hcur: ops 14..15; z: ops 16..18
    validate(g)
    g.buffers[g.index("integ_q")].offset = g.buffers[hcur].offset  # op 14 (FC hid) reads integ_q, writes hcur
    with pytest.raises(GraphDefect, match="both live at op 14") as e:
        validate(g)
    assert e.value.status == "BUFFER"


def _chain() -> Graph:
    """conv(k=3) -> relu -> fc -> sat, every scratch buffer live for two ops: the optimum is computable by hand."""
    g = Graph(16, 8)
    g.in_buffer = x = g.buffer("x", DType.S8, 16)  # 16 B, live [-1, 0]
    a = g.buffer("a", DType.S32, 16)  # 64 B, [0, 1]
    ring = g.buffer("ring", DType.S8, 32, state=True)  # 32 B
    head = g.buffer("head", DType.S32, 1, state=True)  # 4 B
    b = g.buffer("b", DType.S8, 16)  # 16 B, [1, 2]
    c = g.buffer("c", DType.S32, 8)  # 32 B, [2, 3]
    g.out_buffer = y = g.buffer("y", DType.S16, 8)  # 16 B, [3, 4]

    def params(name: str, n_out: int, n_w: int) -> tuple[int, int, int, int]:
        return (g.tensor(f"{name}.w", np.ones(n_w), DType.S8), g.tensor(f"{name}.b", np.zeros(n_out), DType.S32),
                g.tensor(f"{name}.m", np.full(n_out, 1 << 30), DType.S32), g.tensor(f"{name}.s", np.full(n_out, 4),
                                                                                   DType.S8))

    g.op(Op(OpType.CONV1D, "conv", in0=x, out=a, state0=ring, state1=head, d=(16, 16, 3, 0),
            t=params("conv", 16, 16 * 3 * 16)))
    g.op(Op(OpType.ACT, "relu", in0=a, out=b, d=(16, 0, 0, 0), flags=lut_op_flags(Act.RELU)))
    g.op(Op(OpType.FC, "fc", in0=b, out=c, d=(16, 8, 0, 0), t=params("fc", 8, 8 * 16)))
    g.op(Op(OpType.ACT, "sat", in0=c, out=y, d=(8, 0, 0, 0), t=(NONE, NONE, NONE, NONE)))
    return g


def test_hand_computed_optimum():
    g = _chain()
    plan = plan_arena(g)
    # State first, packed: ring [0, 32), head [32, 36). Then by size: a (64 B) at 36; c (32 B, disjoint from a) at
    # 36 too; x and b (16 B each) must clear a: 100; y (16 B) must clear c only: 68. Peak: x + a or a + b = 80 B of
    # scratch (op 0 or 1), plus 36 B of state: 116, the lower bound, against 180 packed back to back.
    assert plan.live == [(-1, 0), (0, 1), (-1, 4), (-1, 4), (1, 2), (2, 3), (3, 4)]
    assert plan.offsets == [100, 36, 0, 32, 100, 36, 68]
    assert plan.arena_size == max(plan.bytes_live(len(g.ops))) == 116
    assert packed_arena(g) == 180
    place_by_lifetime(g)
    validate(g)
    x = np.random.default_rng(0).integers(-128, 128, size=(2, 5, 16)).astype(np.int8)
    assert run_graph(parse_graph_blob(build_graph_blob(g)), x).shape == (2, 5, 8)


@pytest.mark.parametrize("name", GRAPH_MODELS)
def test_shipped_graph_exports_are_planned(name):
    folder = ROOT / "export" / name
    blob = (folder / "model.bin").read_bytes()
    g = parse_graph_blob(blob)
    plan = plan_arena(g)
    assert plan.offsets == [b.offset for b in g.buffers]  # the exporter used the planner
    assert _arena_of(blob) == plan.arena_size == load_meta(folder)["arena_bytes"] < packed_arena(g)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEMEM, *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_plan_cli_json(tmp_path):
    png = tmp_path / "plan.png"
    res = cli("plan", "export/kws_lmuformer", "--ram", "4KiB", "--target", "pinetime", "--json", "--plot", str(png))
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert {"schedules", "chosen", "fits", "target"} <= r.keys()
    s = r["schedules"]
    assert set(s) == {"streaming", "layer_by_layer", "patch"}
    for v in s.values():
        assert {"peak_ram_bytes", "extra_macs_ratio"} <= v.keys()
    assert s["streaming"]["peak_ram_bytes"] == load_meta(ROOT / "export" / "kws_lmuformer")["arena_bytes"]
    # one step's activations against a whole window's: streaming wins and fits 4 KiB
    assert s["streaming"]["peak_ram_bytes"] < s["patch"]["peak_ram_bytes"] <= s["layer_by_layer"]["peak_ram_bytes"]
    assert s["patch"]["extra_macs_ratio"] > 0 == s["streaming"]["extra_macs_ratio"]
    assert r["chosen"] == "streaming" and r["fits"] is True
    # the margin is against what InfiniTime leaves free for a model (docs/targets.md), not the whole chip
    free = load_target("pinetime").ram_free_for_model
    assert free < 65536 and r["target"]["ram_total"] == 65536
    # ... and the device holds the input stage's arena beside the model's (docs/frontend.md)
    stage = r["input_stage_ram_bytes"]
    assert stage == load_meta(ROOT / "export" / "kws_lmuformer")["input_stage"]["arena_bytes"]
    assert {k: r["target"][k] for k in ("name", "ram_bytes", "margin_bytes")} == {
        "name": "pinetime", "ram_bytes": free, "margin_bytes": free - s["streaming"]["peak_ram_bytes"] - stage}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tight = json.loads(cli("plan", "export/kws_lmuformer", "--ram", "100B", "--json").stdout)
    assert tight["fits"] is False and tight["chosen"] == "streaming"  # none fits: the smallest


def test_plan_cli_says_why_a_schedule_is_missing():
    r = json.loads(cli("plan", "export/har_elm", "--json").stdout)
    assert set(r["schedules"]) == {"streaming"}
    assert "reads state buffer" in r["unavailable"]["layer_by_layer"]  # the ELM's feedback crosses ops
    assert "CONV1D" in json.loads(cli("plan", "export/psmnist_lmu", "--json").stdout)["unavailable"]["patch"]


@pytest.mark.parametrize("args,words", [
    (("export/kws_lmuformer", "--ram", "4 parsecs"), "bad size"),
    (("export/kws_lmuformer", "--target", "arduino"), "unknown target"),
    (("docs",), "not an edgemem export"),
])
def test_plan_cli_bad_input_is_one_line_exit_2(args, words):
    res = cli("plan", *args)
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in res.stderr, res.stderr


def test_plan_of_a_retired_version_1_blob_says_how_to_re_export(tmp_path):
    folder = tmp_path / "old"
    shutil.copytree(ROOT / "export" / "har_elm", folder)
    blob = (folder / "model.bin").read_bytes()
    (folder / "model.bin").write_bytes(blob[:4] + b"\x01\x00" + blob[6:])
    res = cli("plan", str(folder))
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "version 1 is no longer supported: re-export" in lines[0]


@pytest.mark.parametrize("name", ["kws_lmuformer", "har_l2mu"])
def test_plan_plot_draws_every_buffer_where_the_arena_holds_it(tmp_path, name):
    """plan --plot: every live buffer a labeled bar at its arena offset over its live ops, no two bars that are live
    at once overlapping in bytes, state bars across the whole step, every schedule's peak marked where it is."""
    from conftest import check_png
    from edgemem.schedule.plan import buffer_labels, load_export_graph, plan_graph, plot

    g, steps = load_export_graph(ROOT / "export" / name)
    report = plan_graph(g, steps, target="pinetime")
    drawn = plot(report, tmp_path / "plan.png", g)
    check_png(tmp_path / "plan.png", (1000, 800))
    bars, n = drawn["bars"], len(g.ops)
    arena = plan_arena(g).arena_size
    assert len(bars) == sum(1 for b in plan_arena(g).live if b is not None)
    assert max(b["offset"] + b["bytes"] for b in bars) <= arena
    for a in bars:
        if a["state"]:
            assert (a["first"], a["last"]) == (-1, n)
        for b in bars:
            if a is not b and a["first"] <= b["last"] and b["first"] <= a["last"]:
                assert a["offset"] + a["bytes"] <= b["offset"] or b["offset"] + b["bytes"] <= a["offset"]
    labels = buffer_labels(g)
    assert labels[g.in_buffer] == "input" and len(set(labels)) == len(labels)
    assert all(not lab.startswith("b") for lab in labels)  # every buffer is named by the op that writes it
    for sched, (x, peak) in drawn["peaks"].items():
        line = report.schedules[sched].timeline
        assert peak == max(line) and line[x + 1] == peak
    if "layer_by_layer" in report.schedules:  # not for har_l2mu: a recurrence across ops
        assert drawn["peaks"]["layer_by_layer"][1] == report.schedules["layer_by_layer"].peak_ram_bytes
    assert drawn["peaks"]["streaming"][1] <= arena == report.schedules["streaming"].peak_ram_bytes
