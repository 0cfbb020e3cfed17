"""Arena planning by lifetime (docs/graph.md "Placement"), the way TFLite Micro's greedy planner does it.

Within one step a scratch buffer only has to hold its bytes over its live range (graph_check.live_ranges: from the
first op that names it, which writes it, to the last op that names it; the input from the step start, the output to
the step end), so two scratch buffers whose ranges are disjoint may share bytes. State buffers hold their bytes
across steps and share nothing.

Placement: state buffers first, packed in table order from offset 0; then the scratch buffers by decreasing size
(ties: earlier first op, then table order, so the plan is deterministic), each at the lowest 4-byte-aligned offset
where it overlaps no already placed buffer whose live range meets its own (a state buffer meets every range). The
greedy order is not optimal in general, but big buffers placed first leave the small ones to fill the gaps, which is
what makes it good in practice (TFLM's GreedyMemoryPlanner, Pisarchyk & Lee 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgemem.graph.check import live_ranges, tables_of
from edgemem.graph.ir import Graph


def _align4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(frozen=True)
class ArenaPlan:
    offsets: list[int]  # per buffer, arena byte offset (4-byte aligned)
    sizes: list[int]  # per buffer, bytes (count * element size)
    live: list[tuple[int, int] | None]  # per buffer, closed op-index live range; None: no op names it
    arena_size: int  # bytes: the peak, 4-byte aligned

    def bytes_live(self, n_ops: int) -> list[int]:
        """Bytes held by live buffers at each point of a step: index 0 is the step start (input filled), index
        i + 1 op i, the last index the step end (output copied out). A buffer's bytes count where its range covers
        the point (state buffers everywhere)."""
        points = range(-1, n_ops + 1)
        return [sum(s for s, r in zip(self.sizes, self.live) if r is not None and r[0] <= p <= r[1]) for p in points]


def _meets(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def plan_arena(g: Graph) -> ArenaPlan:
    """The lifetime-aware placement of g's buffers (g is not changed). g's op table must be valid (check_ops)."""
    t = tables_of(g)
    live = live_ranges(t)
    sizes = [b.count * b.dtype.size for b in g.buffers]
    offsets, arena = greedy_place(sizes, live, [b.state for b in g.buffers])
    return ArenaPlan(offsets, sizes, live, arena)


def greedy_place(sizes: list[int], live: list[tuple[int, int] | None], fixed: list[bool]) -> tuple[list[int], int]:
    """(offsets, arena bytes): `fixed` buffers (live always) packed in table order from 0, then the others by
    decreasing size (ties: earlier first op, then index), each at the lowest 4-byte-aligned offset clear of every
    placed buffer that is fixed or whose range meets its own. Also the patch schedule's placer (schedule.patch)."""
    offsets = [-1] * len(sizes)
    at = 0
    for i, f in enumerate(fixed):
        if f:
            offsets[i] = at
            at += _align4(sizes[i])
    placed = [i for i, f in enumerate(fixed) if f]
    rest = [i for i, f in enumerate(fixed) if not f]
    rest.sort(key=lambda i: (-sizes[i], live[i][0] if live[i] is not None else 1 << 30, i))  # type: ignore[index]
    for i in rest:
        # a buffer no op names meets no range, but it must still stay clear of the fixed buffers
        busy = sorted((offsets[j], offsets[j] + sizes[j]) for j in placed if fixed[j] or _meets(live[i], live[j]))
        at = 0
        for start, end in busy:
            if at + sizes[i] <= start:
                break
            at = max(at, _align4(end))
        offsets[i] = at
        placed.append(i)
    return offsets, _align4(max((o + s for o, s in zip(offsets, sizes)), default=0))


def place_by_lifetime(g: Graph) -> int:
    """Place g's buffers with plan_arena (offsets and arena_size set in g); returns the arena size."""
    plan = plan_arena(g)
    for b, off in zip(g.buffers, plan.offsets):
        b.offset = off
    g.arena_size = plan.arena_size
    return plan.arena_size


def packed_arena(g: Graph) -> int:
    """The arena of Graph.place()'s back-to-back packing (every buffer, 4-byte aligned), for comparison."""
    return sum(_align4(b.count * b.dtype.size) for b in g.buffers)
