"""Memory schedules of an exported graph model (`edgemem plan`): peak RAM and recompute of three ways to run it.

A window is T = window / downsample steps. Every schedule holds all state buffers (state bytes, S) for its whole
run; what differs is how much of the activations it keeps.

- ``streaming``: one step at a time through every op (what the C runtime does). Peak = the lifetime-planned arena
  (edgemem.graph.arena), state included; independent of T.
- ``layer_by_layer``: each op runs over the whole window before the next starts (the usual schedule of a CNN
  runtime applied to a sequence). A buffer that carries data between ops becomes a sequence tensor of T copies,
  resident over the same op-index live range as in the step (from the op that first writes it to the last op that
  names it; the input from the start, the output to the end). Precisely, at op i the bytes live are
  S + sum(T * bytes(b)) over the carrying buffers b whose range covers i + sum(bytes(b)) over the op-private
  scratch buffers whose range covers i; peak = the maximum over i. A carrying buffer is a scratch buffer named by
  two or more ops, or a state buffer that another op reads (a LEAKY trace read by the next FC: its sequence of
  values is an activation). A scratch buffer named by one op only (LMU scratch, a dead output) needs one step's
  bytes. Not possible where an op reads a state buffer that a later op writes (a recurrence across ops, har_elm):
  no op could finish its window first.
- ``patch`` (models whose first op is a CONV1D; MCUNetV2's patch-based inference over the time axis, executed by
  the C runtime: em_graph_patch_run): the front stage (ops 0 .. the last CONV1D of the leading run of CONV1D / ACT /
  FC / ADD / ONOFF ops, cut where the fewest bytes cross) runs op by op over blocks of P frames, each op also
  recomputing the halo frames the convs after it need instead of keeping conv rings; the rest then runs one frame at
  a time. Peak = the arena of that layout placed by lifetime (edgemem.schedule.patch), exactly what the runtime
  asks for. Extra MACs = the recomputed halo frames' MACs over the window's (none before the first frame: that is
  zero padding). The patch size reported is the one with the least RAM among those costing at most
  MAX_EXTRA_MACS of recompute.

MACs per frame: FC d_in * d_out, CONV1D c_in * c_out * k, LMU n_u * order * (order + 1), ADD / LIF / LEAKY one
multiply an element, ACT and ONOFF none.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgemem.errors import EdgememError
from edgemem.graph.arena import plan_arena
from edgemem.graph.check import live_ranges, tables_of
from edgemem.graph.ir import NONE, Graph, OpType
from edgemem.schedule.patch import MAX_FRAMES as MAX_PATCH_FRAMES
from edgemem.schedule.patch import extra_macs, front_stage, op_buffers, patch_layout
from edgemem.schedule.profiles import Target, load_target, parse_size, shipped_targets

__all__ = ["TARGETS", "Report", "Schedule", "buffer_labels", "front_stage", "load_export_graph", "parse_size",
           "plan_graph", "plot"]

# the shipped target profiles (edgemem/schedule/targets/*.yaml, docs/targets.md): name -> (RAM, flash) that the
# board's firmware leaves free for a model, bytes
TARGETS: dict[str, tuple[int, int]] = {
    n: (t.ram_free_for_model, t.flash_free_for_model) for n, t in ((n, load_target(n)) for n in shipped_targets())}
PATCH_SIZES = (1, 2, 4, 8, 16)
MAX_EXTRA_MACS = 0.10  # the recompute a patch size may cost (MCUNetV2 keeps its halo overhead near 10 %)
_STAGE_OPS = (OpType.CONV1D, OpType.ACT, OpType.FC, OpType.ADD, OpType.ONOFF)


@dataclass
class Schedule:
    name: str
    peak_ram_bytes: int
    extra_macs_ratio: float
    timeline: list[int]  # bytes live at each point (x axis: the op index, -1 = step / window start)
    detail: dict[str, Any] = field(default_factory=dict)


def _macs(g: Graph, i: int) -> int:
    op = g.ops[i]
    d = op.d
    if op.type == OpType.FC:
        return d[0] * d[1]
    if op.type == OpType.CONV1D:
        return d[0] * d[1] * d[2]
    if op.type == OpType.LMU:
        return d[0] * d[1] * (d[1] + 1)
    if op.type in (OpType.ADD, OpType.LIF, OpType.LEAKY):
        return d[0]
    return 0


def _users(g: Graph) -> list[set[int]]:
    users: list[set[int]] = [set() for _ in g.buffers]
    for i in range(len(g.ops)):
        for b in op_buffers(g, i):
            users[b].add(i)
    return users


def cross_op_recurrence(g: Graph) -> str | None:
    """Why the graph cannot run op by op over a window (a state buffer read by one op, written by a later other
    op: the value crosses steps between ops), or None."""
    for b, buf in enumerate(g.buffers):
        if not buf.state:
            continue
        for i, op in enumerate(g.ops):
            if op.in0 == b:  # the only field through which an op reads another op's state
                for j in range(i + 1, len(g.ops)):
                    if b in op_buffers(g, j) and g.ops[j].in0 != b:
                        return f"op {i} ({op.type.name}) reads state buffer {b} that op {j} ({g.ops[j].type.name}) " \
                               "writes later in the step"
    return None


def _carrying(g: Graph, users: list[set[int]]) -> list[bool]:
    """Buffers whose values pass from one op to another (sequence tensors in a layer-by-layer schedule)."""
    out = []
    for b, buf in enumerate(g.buffers):
        if buf.state:
            out.append(any(g.ops[i].in0 == b for i in users[b]) and len(users[b]) > 1)
        else:
            out.append(len(users[b]) > 1 or b in (g.in_buffer, g.out_buffer))
    return out


def streaming(g: Graph) -> Schedule:
    plan = plan_arena(g)
    return Schedule("streaming", plan.arena_size, 0.0, plan.bytes_live(len(g.ops)),
                    {"state_bytes": sum(s for s, b in zip(plan.sizes, g.buffers) if b.state)})


def _layered(g: Graph, steps: int, state: int, live: list[tuple[int, int] | None], carry: list[bool]) -> list[int]:
    """Bytes live at the window start (index 0), after each op, and at the end: carrying buffers hold `steps`
    frames."""
    sizes = [b.count * b.dtype.size for b in g.buffers]
    line = []
    for p in range(-1, len(g.ops) + 1):
        total = state
        for b, buf in enumerate(g.buffers):
            r = live[b]
            if buf.state and not carry[b]:
                continue
            if r is None or not r[0] <= p <= r[1]:
                continue
            total += sizes[b] * (steps if carry[b] else 1)
        line.append(total)
    return line


def layer_by_layer(g: Graph, steps: int) -> Schedule | str:
    """The layer-by-layer schedule, or why there is none."""
    why = cross_op_recurrence(g)
    if why:
        return why
    users = _users(g)
    carry = _carrying(g, users)
    live = _seq_ranges(g, users)
    state = sum(b.count * b.dtype.size for b in g.buffers if b.state)
    line = _layered(g, steps, state, live, carry)
    return Schedule("layer_by_layer", max(line), 0.0, line)


def _seq_ranges(g: Graph, users: list[set[int]]) -> list[tuple[int, int] | None]:
    """Live ranges of the step, with state buffers as sequence tensors ranging over the ops that name them."""
    live = live_ranges(tables_of(g))
    for b, buf in enumerate(g.buffers):
        if buf.state:
            live[b] = (min(users[b]), max(users[b])) if users[b] else None
    return live


def patch(g: Graph, steps: int, p: int) -> Schedule | str:
    """The patch schedule with blocks of p frames (edgemem.schedule.patch), or why there is none."""
    try:
        lay = patch_layout(g, p)
    except EdgememError as e:
        return str(e)
    macs = [_macs(g, i) for i in range(len(g.ops))]
    total = sum(macs) * steps
    extra = extra_macs(g, lay, macs, steps)
    return Schedule(f"patch_{p}", lay.arena_size, extra / total if total else 0.0, lay.bytes_live(g),
                    {"patch_frames": p, "halo_frames": lay.halo_frames, "stage_ops": lay.stage_ops})


@dataclass
class Report:
    schedules: dict[str, Schedule]
    unavailable: dict[str, str]
    chosen: str
    fits: bool
    budget: int | None
    target: Target | None
    steps: int
    stage_ram: int = 0  # the input stage's arena (docs/frontend.md): RAM the device needs beside the model's

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "steps_per_window": self.steps,
            "schedules": {k: {"peak_ram_bytes": s.peak_ram_bytes, "extra_macs_ratio": round(s.extra_macs_ratio, 6),
                              **s.detail} for k, s in self.schedules.items()},
            "unavailable": self.unavailable,
            "chosen": self.chosen,
            "fits": self.fits,
            "ram_budget_bytes": self.budget,
        }
        if self.stage_ram:
            out["input_stage_ram_bytes"] = self.stage_ram  # counted against the budget with every schedule
        if self.target is not None:
            out["target"] = self.target.margins(ram_bytes=self.schedules[self.chosen].peak_ram_bytes + self.stage_ram)
        return out


def plan_graph(g: Graph, steps: int, ram: int | None = None, target: str | Target | None = None,
               patch_frames: int | None = None, stage_ram: int = 0) -> Report:
    """Every schedule's peak RAM and recompute; patch sizes PATCH_SIZES unless `patch_frames` names one. `target`: a
    profile (or its name / YAML path); its RAM free for a model is the budget unless `ram` is given. stage_ram: the
    input stage's arena, which the device holds beside whichever schedule runs the model (counted in the fit)."""
    if target is not None and not isinstance(target, Target):
        target = load_target(target)
    if patch_frames is not None and not 1 <= patch_frames <= MAX_PATCH_FRAMES:
        raise EdgememError(f"--patch-frames must be in [1, {MAX_PATCH_FRAMES}], got {patch_frames}")
    if steps < 1:
        raise EdgememError(f"a window must have at least one step (got {steps})")
    schedules: dict[str, Schedule] = {"streaming": streaming(g)}
    unavailable: dict[str, str] = {}
    lbl = layer_by_layer(g, steps)
    if isinstance(lbl, str):
        unavailable["layer_by_layer"] = lbl
    else:
        schedules["layer_by_layer"] = lbl
    sizes = PATCH_SIZES if patch_frames is None else (patch_frames,)
    patches = [patch(g, steps, p) for p in sizes if p <= steps]
    found = [s for s in patches if isinstance(s, Schedule)]
    if found:
        # the best patch size: the least RAM among those within MAX_EXTRA_MACS of recompute, else the least recompute
        cheap = [s for s in found if s.extra_macs_ratio <= MAX_EXTRA_MACS]
        best = min(cheap, key=lambda s: (s.peak_ram_bytes, s.extra_macs_ratio)) if cheap else \
            min(found, key=lambda s: (s.extra_macs_ratio, s.peak_ram_bytes))
        best.detail["tried"] = {s.detail["patch_frames"]: {"peak_ram_bytes": s.peak_ram_bytes,
                                                          "extra_macs_ratio": round(s.extra_macs_ratio, 6)}
                                for s in found}
        best.name = "patch"
        schedules["patch"] = best
    else:
        unavailable["patch"] = next((s for s in patches if isinstance(s, str)), "window shorter than a patch")
    budget = ram if ram is not None else (target.ram_free_for_model if target is not None else None)
    order = sorted(schedules.values(), key=lambda s: (s.extra_macs_ratio, s.peak_ram_bytes))
    fitting = [s for s in order if budget is None or s.peak_ram_bytes + stage_ram <= budget]
    chosen = fitting[0] if fitting else min(order, key=lambda s: s.peak_ram_bytes)
    return Report(schedules, unavailable, chosen.name, bool(fitting), budget, target, steps, stage_ram)


def input_stage_ram(folder: Path) -> int:
    """The arena of an export's input stage (input_stage.bin), 0 where it has none."""
    from edgemem.graph.blob import parse_graph_blob

    path = folder / "input_stage.bin"
    return parse_graph_blob(path.read_bytes()).arena_size if path.is_file() else 0


def load_export_graph(folder: Path) -> tuple[Graph, int]:
    """The graph and steps per window of an export folder (version-2 blob only).

    Reads meta.json's window and downsample itself rather than through export.run.load_meta, which imports torch:
    `edgemem plan` is a quick look at a folder and starts in a fraction of the time."""
    from edgemem.graph.blob import parse_graph_blob

    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise EdgememError(f"{folder} is not an edgemem export (no meta.json); run `edgemem export` first")
    try:
        meta = json.loads(meta_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise EdgememError(f"{meta_path} is not valid JSON; re-export with `edgemem export`") from None
    if not isinstance(meta, dict) or meta.get("format") != "edgemem-export":
        raise EdgememError(f"{meta_path} is not an edgemem export's meta.json")
    for key in ("window", "downsample"):
        v = meta.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise EdgememError(f"{meta_path} field '{key}' must be a positive integer; re-export with `edgemem export`")
    blob_path = folder / "model.bin"
    if not blob_path.is_file():
        raise EdgememError(f"{folder} has no model.bin; run `edgemem export` first")
    return parse_graph_blob(blob_path.read_bytes()), max(1, meta["window"] // meta["downsample"])


PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: Path) -> str:
    """The image format `--plot` writes, from the file's suffix (none: PNG); checked before any work."""
    fmt = path.suffix[1:].lower() or "png"
    if fmt not in PLOT_FORMATS:
        raise EdgememError(f"--plot {path}: cannot write a .{fmt} image (use .png, .svg or .pdf)")
    return fmt


_ROLE = {("state0", OpType.LIF): "mem", ("state1", OpType.LIF): "syn", ("state0", OpType.LMU): "memory",
         ("state0", OpType.CONV1D): "ring", ("state0", OpType.LEAKY): "trace"}


def buffer_labels(g: Graph) -> list[str]:
    """A name per buffer from the op that first writes it (the blob keeps no buffer names): "FC4 out", "LIF5 mem",
    "LMU6 memory", "CONV1D0 ring", the graph's "input"; "b7" for a buffer no op names."""
    labels = [f"b{b}" for b in range(len(g.buffers))]
    for i in reversed(range(len(g.ops))):  # the first op that names a buffer (as anything but its input) wins
        op = g.ops[i]
        for part in ("scratch", "state1", "state0", "out"):
            b = getattr(op, part)
            if b != NONE:
                role = _ROLE.get((part, op.type), "state" if part.startswith("state") else part)
                labels[b] = f"{op.type.name}{i} {role}"
    labels[g.in_buffer] = "input"
    return labels


def plot(report: Report, path: Path, g: Graph) -> dict[str, Any]:
    """The memory timeline (PNG): above, the streaming arena as placed, each buffer a labeled bar over the ops it is
    live at (x) and the bytes it occupies (y), the arena size (the streaming peak) marked; below, the bytes live at
    each op of every schedule (log scale), each peak marked, the RAM budget dashed. Buffers too small to hold their
    label carry their number, named in the key at the right. Returns what it drew: "bars" (buffer, label, first and
    last op, offset, bytes, state) and "peaks" (schedule -> op index, bytes)."""
    import matplotlib

    from edgemem.atomic import write_atomic

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle


    arena = plan_arena(g)
    labels = buffer_labels(g)
    n = len(g.ops)
    bars = [{"buffer": b, "label": labels[b], "first": r[0], "last": r[1], "offset": arena.offsets[b],
             "bytes": arena.sizes[b], "state": g.buffers[b].state}
            for b, r in enumerate(arena.live) if r is not None and arena.sizes[b] > 0]
    xs = list(range(-1, n + 1))
    peaks = {}
    for name, sch in report.schedules.items():
        k = max(range(len(sch.timeline)), key=lambda j: sch.timeline[j])
        peaks[name] = (xs[k], sch.timeline[k])

    def draw(tmp: Path) -> None:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 9), height_ratios=[3, 2], sharex=True)
        fig.subplots_adjust(left=0.08, right=0.78, top=0.93, bottom=0.1, hspace=0.12)
        keyed = []
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        top.set_xlim(-1.6, n + 0.6)
        top.set_ylim(0, arena.arena_size * 1.08)
        for bar in bars:
            x0, x1 = bar["first"] - 0.45, bar["last"] + 0.45
            colour = "#c6dbef" if bar["state"] else "#fdd0a2"
            top.add_patch(Rectangle((x0, bar["offset"]), x1 - x0, bar["bytes"], facecolor=colour, edgecolor="0.3",
                                    lw=0.6, hatch="//" if bar["state"] else None))
            box = top.transData.transform([(x0, bar["offset"]), (x1, bar["offset"] + bar["bytes"])])
            w, h = box[1] - box[0]
            full = f"{bar['label']} · {bar['bytes']} B"
            for text in (full, f"{bar['label']}\n{bar['bytes']} B", f"b{bar['buffer']}"):
                t = top.text((x0 + x1) / 2, bar["offset"] + bar["bytes"] / 2, text, ha="center", va="center",
                             fontsize=7)
                ext = t.get_window_extent(renderer)
                if ext.width <= w - 2 and ext.height <= h - 1:
                    break
                t.remove()
            else:
                text = None
            if text is None or text == f"b{bar['buffer']}":
                keyed.append(f"b{bar['buffer']}: {bar['label']}, {bar['bytes']} B" + (" (state)" if bar["state"]
                                                                                       else ""))
        top.axhline(arena.arena_size, color="C3", ls="--", lw=1)
        top.text(n + 0.5, arena.arena_size * 1.005, f"arena {arena.arena_size:,} B (streaming peak)", color="C3",
                 ha="right", va="bottom", fontsize=8)
        top.set_ylabel("arena offset (bytes)")
        top.set_title("streaming: every buffer over the ops it is live at (hatched: state, kept across steps)",
                      fontsize=10)
        if keyed:
            fig.text(0.795, 0.93, "buffers too small for their label\n" + "\n".join(keyed), fontsize=7, va="top",
                     family="monospace")
        for k, (name, sch) in enumerate(report.schedules.items()):
            bottom.step(xs, sch.timeline, where="mid", color=f"C{k}", label=f"{name}: peak {sch.peak_ram_bytes:,} B"
                        + (f", +{sch.extra_macs_ratio:.1%} MACs" if sch.extra_macs_ratio else ""))
            px, py = peaks[name]
            bottom.plot([px], [py], "o", color=f"C{k}", ms=7)
        if report.budget is not None:
            bottom.axhline(report.budget, color="C3", ls="--", lw=1, label=f"RAM budget {report.budget:,} B")
        if report.unavailable:
            why = [textwrap.fill(f"{k}: not possible ({v})", 42) for k, v in report.unavailable.items()]
            fig.text(0.795, 0.3, "\n".join(why), fontsize=7, va="top")
        bottom.set_yscale("log")
        bottom.set_ylabel("bytes live (log)")
        bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        bottom.set_xticks(xs)
        bottom.set_xticklabels(["start"] + [f"{i} {op.type.name}" for i, op in enumerate(g.ops)] + ["end"],
                               rotation=90, fontsize=7)
        bottom.set_xlabel("op index (the step's ops in order)")
        bottom.grid(alpha=0.3, which="both", axis="y")
        fig.suptitle(f"memory timeline: {report.steps} steps a window, chosen schedule {report.chosen}", fontsize=11)
        fig.savefig(tmp, format=plot_format(path), dpi=100)
        plt.close(fig)

    write_atomic(path, draw)
    return {"bars": bars, "peaks": peaks}
