"""Long streams: millions of steps of real and adversarial input through the C runtime and the integer reference,
compared at every step, with the saturation of every state counted (nothing overflows silently)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemem.export.blob import parse_blob
from edgemem.export.run import load_meta, recipe_of
from edgemem.quant.intops import quantize
from edgemem.quant.intref import init_state, step
from edgemem.verify import c_runtime

PATTERNS = ("real", "full_scale_random", "constant_max", "constant_min", "alternating", "zeros")


def real_stream(export_dir: Path, steps: int) -> np.ndarray:
    """The held-out test subjects' recordings end to end (decimated and normalized like training), looped."""
    from edgemem.checkpoint import load_checkpoint
    from edgemem.data.sources import load_source

    meta = load_meta(export_dir)
    ckpt = load_checkpoint((export_dir / meta["checkpoint"]).resolve())
    recipe = recipe_of(ckpt)
    d = recipe.data
    rec = load_source(d.source, recipe.folder / d.path if d.path else None)
    parts = []
    for series, subject in zip(rec.series, rec.subjects):
        if subject in d.test_subjects:
            n = series.shape[0] // d.downsample * d.downsample
            parts.append(series[:n].reshape(-1, d.downsample, series.shape[1]).mean(axis=1))
    x = quantize(ckpt.normalizer(np.concatenate(parts)), meta["input_scale"])
    reps = -(-steps // len(x))
    return np.tile(x, (reps, 1))[:steps]


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
           seed: int = 0) -> dict[str, Any]:
    """Run `steps` steps in `streams` long independent streams (no reset inside a stream), half real input and the
    rest split over the adversarial patterns; compare C host and the integer reference at every `check_every`-th
    step; count, per state, how many (neuron, step) values sit at int16 full scale."""
    meta = load_meta(export_dir)
    blob = export_dir / "model.bin"
    q = parse_blob(blob.read_bytes())
    per = steps // streams
    rng = np.random.default_rng(seed)
    kinds = ["real"] * (streams // 2) + [PATTERNS[1 + k % (len(PATTERNS) - 1)] for k in range(streams - streams // 2)]
    real = real_stream(export_dir, per * kinds.count("real"))
    xs, r = [], 0
    for kind in kinds:
        if kind == "real":
            xs.append(real[r * per : (r + 1) * per])
            r += 1
        else:
            xs.append(pattern_stream(kind, per, q.n_in, rng))
    x = np.stack(xs).astype(np.int8)  # [streams][per][n_in]
    host = c_runtime.run_host(blob, x, q.n_out)
    st = init_state(q, streams)
    mismatched, checked = 0, 0
    at_bound: dict[str, np.ndarray] = {}  # state -> values at full scale, per stream
    for t in range(per):
        logits, _ = step(q, x[:, t].astype(np.int64), st)
        if t % check_every == 0:
            mismatched += int((logits != host[:, t]).any(axis=1).sum())
            checked += streams
        states = {**{f"mem_{p}": v for p, v in st.mem.items()},
                  **{f"syn_{p}": v for p, v in st.syn.items() if q.pops[p].cuba}, "lmu_m": st.m}
        for k, v in states.items():
            pinned = ((v == 32767) | (v == -32768)).reshape(streams, -1).sum(axis=1)
            at_bound[k] = at_bound.get(k, 0) + pinned
    real_sel = np.array([k == "real" for k in kinds])
    sizes = {**{f"mem_{p}": n for p, n in (("encoder", q.n_u), ("memory", q.n_m), ("hidden", q.n_h))},
             **{f"syn_{p}": q.pops[p].thr.size for p in q.pops if q.pops[p].cuba}, "lmu_m": q.n_u * q.order}
    return {
        "model": meta["name"],
        "steps": per * streams,
        "streams": dict(zip([f"{i}:{k}" for i, k in enumerate(kinds)], [per] * streams)),
        "steps_checked": checked,
        "steps_mismatched": mismatched,
        # share of (neuron, step) values pinned at int16 full scale (= the float model's clamp), by input kind
        "saturated_fraction": {
            group: {k: float(v[sel].sum()) / (sizes[k] * per * int(sel.sum())) for k, v in at_bound.items()}
            for group, sel in (("real", real_sel), ("adversarial", ~real_sel))
        },
        "saturated_values": {k: int(v.sum()) for k, v in at_bound.items()},
    }
