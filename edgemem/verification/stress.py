"""Long streams: millions of steps of real and adversarial input through the C runtime and the graph's integer
reference, compared at every step, with the saturation of every int16 state buffer counted (nothing overflows
silently). Works for every model: all of them are op graphs (docs/graph.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemem.checkpoint import load_checkpoint
from edgemem.data.sources import load_source
from edgemem.exporters.folder import BLOB_FILE, checkpoint_of, load_meta
from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.intops import quantize
from edgemem.graph.ir import DType, Graph, OpType
from edgemem.graph.ref import run_graph
from edgemem.training.sets import recipe_of
from edgemem.verification import c_runtime

PATTERNS = ("real", "full_scale_random", "constant_max", "constant_min", "alternating", "zeros")
INT16_MIN, INT16_MAX = -32768, 32767


def real_stream(export_dir: Path, steps: int, checkpoint: Path | None = None) -> np.ndarray:
    """The held-out test subjects' recordings end to end (decimated and normalized like training), looped."""
    meta = load_meta(export_dir)
    ckpt_path = checkpoint_of(export_dir, meta, checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    recipe = recipe_of(ckpt, ckpt_path)
    d = recipe.data
    rec = load_source(d.source, recipe.data_file, d.params)
    parts = []
    for series, subject in zip(rec.series, rec.subjects):
        if subject in d.test_subjects:
            n = series.shape[0] // d.downsample * d.downsample
            parts.append(series[:n].reshape(-1, d.downsample, series.shape[1]).mean(axis=1))
            if sum(len(p) for p in parts) >= steps:  # enough: a long test set (psMNIST: 7.8M steps) is not read whole
                break
    x = quantize(ckpt.normalizer(np.concatenate(parts)), meta["input_scale"])
    reps = -(-steps // len(x))
    return np.tile(x, (reps, 1))[:steps]


# what an op keeps in its int16 state buffers, by field (LEAKY's trace is its out buffer)
_STATE_ROLES = {OpType.LIF: {"state0": "mem", "state1": "syn"}, OpType.LMU: {"state0": "memory"},
                OpType.LEAKY: {"out": "trace"}}


def state_names(g: Graph) -> dict[int, str]:
    """Each int16 state buffer's name by the op that owns it, e.g. 'op7_lif.mem' (a blob keeps no buffer names)."""
    names: dict[int, str] = {}
    for i, op in enumerate(g.ops):
        for field, role in _STATE_ROLES.get(op.type, {}).items():
            b = getattr(op, field)
            if b >= 0 and b < len(g.buffers) and g.buffers[b].state and g.buffers[b].dtype == DType.S16:
                names.setdefault(b, f"op{i}_{op.type.name.lower()}.{role}")
    for b, buf in enumerate(g.buffers):
        if buf.state and buf.dtype == DType.S16:
            names.setdefault(b, f"buffer{b}")
    return names


def pattern_stream(name: str, steps: int, n_in: int, rng: np.random.Generator) -> np.ndarray:
    if name == "full_scale_random":
        return rng.choice(np.array([-128, 127]), size=(steps, n_in))
    if name == "constant_max":
        return np.full((steps, n_in), 127)
    if name == "constant_min":
        return np.full((steps, n_in), -128)
    if name == "alternating":
        return np.where((np.arange(steps) % 2)[:, None] == 0, 127, -128).repeat(n_in, axis=1)
    return np.zeros((steps, n_in), dtype=np.int64)


def stress(export_dir: Path, steps: int = 1_000_000, streams: int = 10, check_every: int = 1,
           seed: int = 0, checkpoint: Path | None = None) -> dict[str, Any]:
    """Run `steps` steps in `streams` long independent streams (no reset inside a stream), half real input and the
    rest split over the adversarial patterns; compare C host and the integer reference at every `check_every`-th
    step; count, per int16 state buffer, how many (value, step) pairs sit at int16 full scale."""
    meta = load_meta(export_dir)
    blob = export_dir / BLOB_FILE
    g = parse_graph_blob(blob.read_bytes())
    per = steps // streams
    rng = np.random.default_rng(seed)
    kinds = ["real"] * (streams // 2) + [PATTERNS[1 + k % (len(PATTERNS) - 1)] for k in range(streams - streams // 2)]
    real = real_stream(export_dir, per * kinds.count("real"), checkpoint)
    xs, r = [], 0
    for kind in kinds:
        if kind == "real":
            xs.append(real[r * per : (r + 1) * per])
            r += 1
        else:
            xs.append(pattern_stream(kind, per, g.n_in, rng))
    x = np.stack(xs).astype(np.int8)  # [streams][per][n_in]
    host = c_runtime.run_host(blob, x, g.n_out)  # one reset at the start of each stream
    names = state_names(g)
    at_bound = {name: np.zeros(streams, dtype=np.int64) for name in names.values()}

    def count(_t: int, values: dict[str, np.ndarray]) -> None:
        for b, name in names.items():
            v = values[g.buffers[b].name]
            at_bound[name] += ((v == INT16_MAX) | (v == INT16_MIN)).sum(axis=1)

    ref = run_graph(g, x, count)
    checked = ref[:, ::check_every]
    mismatched = int((checked != host[:, ::check_every]).any(axis=2).sum())
    real_sel = np.array([k == "real" for k in kinds])
    sizes = {name: g.buffers[b].count for b, name in names.items()}
    return {
        "model": meta["name"],
        "steps": per * streams,
        "streams": dict(zip([f"{i}:{k}" for i, k in enumerate(kinds)], [per] * streams)),
        "steps_checked": int(checked.shape[0] * checked.shape[1]),
        "steps_mismatched": mismatched,
        # share of (value, step) pairs of each int16 state buffer pinned at full scale (= the float model's clamp)
        "saturated_fraction": {
            group: {k: float(v[sel].sum()) / (sizes[k] * per * int(sel.sum())) for k, v in at_bound.items()}
            for group, sel in (("real", real_sel), ("adversarial", ~real_sel)) if sel.any()
        },
        "saturated_values": {k: int(v.sum()) for k, v in at_bound.items()},
    }
