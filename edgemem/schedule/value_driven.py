"""Value-driven precision per patch (QuantMCU's VDPC, Tao et al., DATE 2024) on a graph model's conv front stage.

Patch-based inference (`edgemem plan`'s ``patch`` schedule) runs the front stage a patch of P frames at a time.
QuantMCU keeps 8-bit activations only in the patches that hold an outlier value and runs the others at a lower
width. Here, for every MAC op (CONV1D, FC) of the front stage (ops 0 .. plan.front_stage), its int8 input over a
window is cut into patches of P consecutive frames (the last one may be shorter). Per op, calibrated on windows
that are never scored:

- the outlier rule: a value is an outlier when its int8 code q has |q| > T = |mean| + k * std of the op's input
  codes over the calibration windows (the three-sigma rule at k = 3; the activations are roughly bell shaped around
  zero, and the few values beyond that range are the ones QuantMCU keeps at 8 bits);
- the low grid: b bits (4 or 2), symmetric, its largest code 2^(b-1) - 1 at T, i.e. a step s_low = T / (2^(b-1) - 1)
  int8 codes (s_low / s8 in real units: only the ratio of the two scales matters, so the int8 scale of inner
  buffers, which the graph does not store, is never needed).

A patch with any outlier keeps its 8-bit codes; every other patch is requantized before the op's integer kernel:
q_low = sat_b(round_half_away(q8 / s_low)), then back on the int8 grid q8' = sat_8(round_half_away(q_low * s_low)),
so the op's kernel and the rest of the integer model run unchanged. A conv ring stores q8', i.e. every input frame
carries its own patch's precision into the later taps. Only the op's view of its input changes: another op that
reads the same buffer (a residual) sees the int8 codes.

The stage runs op-major over the window (each op over all T frames before the next): a patch's class needs all its
frames before the op runs on the first one. The stage keeps no state but the conv rings (checked), so this gives
the streaming step's results exactly; the rest of the graph then runs step by step. Both reuse graph_ref's compiled
ops, so with no patch requantized the logits equal run_graph's bit for bit (tested).

BitOPs = sum over FC / CONV1D ops and frames of MACs x weight bits x activation bits (weight bits from the weight
tensor's dtype: s8 8, s4 4, s2 2; activation bits from the input buffer's dtype, 16 for an s16 input; the LMU's and
ADD's multiplies are not counted, they are the same in every variant). Each multiply of a front-stage op is charged
the bits of the input frame it reads (a conv's tap into the causal zero padding is charged to frame 0).

Calibration windows: the ones `edgemem export` calibrated the int8 scales on (edgemem.training.sets:
recipe.quant.calib_windows training windows, seed 0); the scored windows are the held-out test subjects, as in
`edgemem verify`. The training and test subjects are disjoint, so no scored window sets a threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.errors import EdgememError
from edgemem.graph.check import live_ranges, tables_of
from edgemem.graph.intops import round_half_away, sat
from edgemem.graph.ir import NONE, DType, Graph, OpType
from edgemem.graph.ref import GraphState, init_state
from edgemem.schedule.plan import front_stage

LOW_BITS = (4, 2)
DEFAULT_K = 3.0
MAC_OPS = (OpType.FC, OpType.CONV1D)

Hook = Callable[[int, np.ndarray], np.ndarray]  # (op index, its input [B][T][n]) -> what its kernel reads


@dataclass(frozen=True)
class OpCalibration:
    """One front-stage MAC op's patch rule, in int8 codes of its input."""

    op: int
    threshold: float  # |q| > threshold is an outlier: its patch keeps 8 bits
    step: float  # the low grid's step (s_low / s8)


@dataclass
class Simulation:
    logits: np.ndarray  # [B][T][n_out]
    keep8: dict[int, np.ndarray]  # op -> [B][n_patches] True where the patch kept 8 bits


def check_args(patch: int, low_bits: int) -> None:
    """The CLI's argument checks, before any file is read."""
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise EdgememError(f"--patch-frames must be a positive number of frames, got {patch}")
    if low_bits not in LOW_BITS:
        raise EdgememError(f"--low-bits must be 4 or 2, got {low_bits}")


def stage_end(g: Graph) -> int:
    """Last op of the front stage that can run op-major (plan.front_stage), or why not as an EdgememError."""
    end = front_stage(g, live_ranges(tables_of(g)))
    if end is None:
        first = g.ops[0].type.name if g.ops else "no op"
        raise EdgememError(f"value-driven patch precision needs a convolutional front stage (op 0 a CONV1D); "
                           f"this graph's op 0 is {first}")
    written: set[int] = set()
    for i in range(end + 1):
        op = g.ops[i]
        where = f"front-stage op {i} ({op.type.name} {op.name})"
        if op.in0 != g.in_buffer and op.in0 not in written:
            raise EdgememError(f"{where} reads buffer {op.in0}, which no earlier op of the stage writes: the stage "
                               "cannot run op-major")
        if g.buffers[op.out].state or (op.acc and op.out not in written):
            raise EdgememError(f"{where} keeps a value across steps in buffer {op.out}: the stage cannot run "
                               "op-major")
        if op.type != OpType.CONV1D and (op.state0, op.state1, op.scratch) != (NONE, NONE, NONE):
            raise EdgememError(f"{where} has state: the stage cannot run op-major")
        if op.type in MAC_OPS and g.buffers[op.in0].dtype != DType.S8:
            raise EdgememError(f"{where} reads {g.buffers[op.in0].dtype.name.lower()} values; value-driven patch "
                               "precision requantizes int8 inputs only")
        written.add(op.out)
    return end


def mac_ops(g: Graph, end: int) -> list[int]:
    return [i for i in range(end + 1) if g.ops[i].type in MAC_OPS]


def requantize(q8: np.ndarray, step: float, bits: int) -> np.ndarray:
    """int8 codes -> b-bit codes at `step` int8 codes each -> back on the int8 grid (what the op's kernel reads)."""
    q_low = sat(round_half_away(np.asarray(q8, dtype=np.float64) / step).astype(np.int64), bits)
    return sat(round_half_away(q_low * step).astype(np.int64), 8)


def outlier_patches(x: np.ndarray, threshold: float, patch: int) -> np.ndarray:
    """x [B][T][n] codes -> [B][ceil(T / patch)]: whether the patch of `patch` frames holds a value above threshold."""
    b, steps = x.shape[:2]
    frames = (np.abs(x) > threshold).any(axis=2)
    n = -(-steps // patch)
    padded = np.zeros((b, n * patch), dtype=bool)
    padded[:, :steps] = frames
    return padded.reshape(b, n, patch).any(axis=2)


def _frames(per_patch: np.ndarray, patch: int, steps: int) -> np.ndarray:
    return np.repeat(per_patch, patch, axis=1)[:, :steps]


def run_front(g: Graph, x: np.ndarray, end: int, hook: Hook | None = None) -> tuple[GraphState, dict[int, np.ndarray]]:
    """Ops 0..end op-major over the window: buffer -> its values [B][T][n] after the stage, the input included.

    `hook` replaces what op i's kernel reads (its input buffer keeps the original values for every other op)."""
    x = np.asarray(x, dtype=np.int64)
    if x.ndim != 3 or x.shape[2] != g.n_in:
        raise EdgememError(f"input must be [sequences][steps][{g.n_in}], got shape {x.shape}")
    st = init_state(g, x.shape[0])
    v = st.values
    b, steps = x.shape[:2]
    seq: dict[int, np.ndarray] = {g.in_buffer: x}
    for i in range(end + 1):
        op = g.ops[i]
        xin = seq[op.in0] if hook is None else hook(i, seq[op.in0])
        prev = seq[op.out] if op.acc else None
        out = np.empty((b, steps, g.buffers[op.out].count), dtype=np.int64)
        for t in range(steps):
            v[op.in0] = xin[:, t]
            if prev is not None:
                v[op.out] = prev[:, t]
            st.plan[i](v)
            out[:, t] = v[op.out]
        seq[op.out] = out
    return st, seq


def run_rest(g: Graph, st: GraphState, seq: dict[int, np.ndarray], end: int) -> np.ndarray:
    """Ops end+1.. step by step on the stage's buffers -> logits [B][T][n_out]."""
    v = st.values
    b, steps = seq[g.in_buffer].shape[:2]
    out = np.zeros((b, steps, g.n_out), dtype=np.int64)
    for t in range(steps):
        for k, s in seq.items():
            v[k] = s[:, t]
        for run in st.plan[end + 1:]:
            run(v)
        out[:, t] = v[g.out_buffer]
    return out


def simulate(g: Graph, x: np.ndarray, cals: list[OpCalibration], patch: int, low_bits: int,
             end: int | None = None) -> Simulation:
    """Logits of the graph with each calibrated op's non-outlier patches at low_bits (int8 codes x [B][T][n_in])."""
    check_args(patch, low_bits)
    end = stage_end(g) if end is None else end
    by_op = {c.op: c for c in cals}
    keep8: dict[int, np.ndarray] = {}

    def hook(i: int, xin: np.ndarray) -> np.ndarray:
        c = by_op.get(i)
        if c is None:
            return xin
        keep = outlier_patches(xin, c.threshold, patch)
        keep8[i] = keep
        low = ~_frames(keep, patch, xin.shape[1])
        return np.where(low[:, :, None], requantize(xin, c.step, low_bits), xin)

    st, seq = run_front(g, x, end, hook)
    return Simulation(run_rest(g, st, seq, end), keep8)


def calibrate(g: Graph, x: np.ndarray, low_bits: int, k: float = DEFAULT_K,
              end: int | None = None) -> tuple[list[OpCalibration], dict[int, float]]:
    """Each front MAC op's threshold |mean| + k std and low step threshold / (2^(b-1) - 1), from its int8 inputs on
    the calibration windows x (the int8 model's flow); also the fraction of its input values that are outliers."""
    end = stage_end(g) if end is None else end
    if not k >= 0:
        raise EdgememError(f"the outlier rule's k must be >= 0, got {k}")
    qmax = (1 << (low_bits - 1)) - 1
    _, seq = run_front(g, x, end)
    cals, outliers = [], {}
    for i in mac_ops(g, end):
        vals = seq[g.ops[i].in0].astype(np.float64)
        thr = abs(float(vals.mean())) + k * float(vals.std())
        cals.append(OpCalibration(i, thr, max(thr, 1.0) / qmax))
        outliers[i] = float((np.abs(vals) > thr).mean())
    return cals, outliers


def _tap_counts(k: int, steps: int) -> np.ndarray:
    """How many of a window's multiplies per (c_in, c_out) pair read each input frame (causal padding -> frame 0)."""
    src = np.clip(np.arange(steps)[:, None] - (k - 1) + np.arange(k)[None, :], 0, None)
    return np.bincount(src.reshape(-1), minlength=steps)


def weight_bits(g: Graph, i: int) -> int:
    return g.tensors[g.ops[i].t[0]].dtype.bits


def macs_per_frame(g: Graph, i: int) -> int:
    d = g.ops[i].d
    return d[0] * d[1] * (d[2] if g.ops[i].type == OpType.CONV1D else 1)


def bitops(g: Graph, steps: int, act_bits: dict[int, np.ndarray] | None = None) -> tuple[float, float]:
    """(whole graph, front ops named in act_bits) BitOPs per window, mean over windows. act_bits: op -> [B][T] the
    activation bits of each input frame; an op not named runs at its input buffer's width."""
    act_bits = act_bits or {}
    whole = front = 0.0
    for i, op in enumerate(g.ops):
        if op.type not in MAC_OPS:
            continue
        k = op.d[2] if op.type == OpType.CONV1D else 1
        per_tap = op.d[0] * op.d[1] * weight_bits(g, i)
        if i in act_bits:
            n = float((act_bits[i] @ _tap_counts(k, steps)).mean()) * per_tap
            front += n
        else:
            n = float(per_tap * k * steps * g.buffers[op.in0].dtype.bits)
        whole += n
    return whole, front


def _act_bits(keep8: np.ndarray, patch: int, steps: int, low_bits: int) -> np.ndarray:
    return np.where(_frames(keep8, patch, steps), 8, low_bits)


def value_driven_report(g: Graph, calib: np.ndarray, test: np.ndarray, y: np.ndarray, readout: str, patch: int = 8,
                        low_bits: int = 4, k: float = DEFAULT_K) -> dict[str, Any]:
    """The report on int8 codes: calibration windows calib, scored windows test with labels y ([B][T][n_in])."""
    from edgemem.models.readout import predictions  # imports torch: only here, so the simulation itself needs none

    check_args(patch, low_bits)
    end = stage_end(g)
    steps = test.shape[1]
    cals, outlier_values = calibrate(g, calib, low_bits, k, end)
    qmax = (1 << (low_bits - 1)) - 1
    macs = mac_ops(g, end)
    variants = {
        "int8": [],
        "value_driven": cals,
        "uniform_low": [OpCalibration(c.op, math.inf, c.step) for c in cals],
        "uniform_low_full_range": [OpCalibration(i, math.inf, 127 / qmax) for i in macs],
    }
    sims = {name: simulate(g, test, c, patch, low_bits, end) for name, c in variants.items()}
    calib_keep = simulate(g, calib, cals, patch, low_bits, end).keep8
    preds = {name: predictions(s.logits, readout) for name, s in sims.items()}
    b = len(test)
    bits = {
        "int8": bitops(g, steps, {i: np.full((b, steps), 8) for i in macs}),
        "value_driven": bitops(g, steps, {i: _act_bits(sims["value_driven"].keep8[i], patch, steps, low_bits)
                                          for i in macs}),
        "uniform_low": bitops(g, steps, {i: np.full((b, steps), low_bits) for i in macs}),
    }
    whole8, front8 = bits["int8"]
    whole_vd, front_vd = bits["value_driven"]
    ops = []
    for c in cals:
        op = g.ops[c.op]
        ops.append({
            "op": c.op, "name": op.name, "type": op.type.name, "weight_bits": weight_bits(g, c.op),
            "macs_per_frame": macs_per_frame(g, c.op), "outlier_threshold_codes": round(c.threshold, 4),
            "low_step_codes": round(c.step, 4),
            "outlier_values_fraction_calibration": round(outlier_values[c.op], 6),
            "patches_8bit_fraction": round(float(sims["value_driven"].keep8[c.op].mean()), 6),
            "patches_8bit_fraction_calibration": round(float(calib_keep[c.op].mean()), 6),
        })
    return {
        "patch_frames": patch,
        "low_bits": low_bits,
        "stage_ops": end + 1,
        "outlier_rule": f"|q| > |mean| + {k:g} std of the op's int8 input codes on the calibration windows",
        "calibration_windows": int(len(calib)),
        "test_windows": int(b),
        "ops": ops,
        "bitops_per_window": {name: round(w, 2) for name, (w, _) in bits.items()},
        "front_stage_bitops_per_window": {name: round(f, 2) for name, (_, f) in bits.items()},
        # saved = 1 - value-driven / int8; whole_model counts every FC / CONV1D op, the ones after the stage at
        # their unchanged widths; front_stage only the stage's MAC ops
        "bitops_saved": {"whole_model": round(1 - whole_vd / whole8, 6), "front_stage": round(1 - front_vd / front8, 6)},
        "bitops_int8_over_value_driven": {"whole_model": round(whole8 / whole_vd, 6),
                                          "front_stage": round(front8 / front_vd, 6)},
        "accuracy": {name: float((p == y).mean()) for name, p in preds.items()},
        "predictions_differing_from_int8": {name: int((p != preds["int8"]).sum()) for name, p in preds.items()
                                            if name != "int8"},
    }


def evaluate_export(folder: Path, patch: int = 8, low_bits: int = 4, k: float = DEFAULT_K,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """value_driven_report of an export folder: its graph, the export's calibration windows, its held-out test set
    (as `edgemem verify` builds it) at the export's input scale."""
    from edgemem.checkpoint import load_checkpoint
    from edgemem.exporters.folder import checkpoint_of, load_meta
    from edgemem.graph.intops import quantize
    from edgemem.schedule.plan import load_export_graph
    from edgemem.training.sets import data_sets

    check_args(patch, low_bits)
    g, _ = load_export_graph(folder)
    stage_end(g)  # a model without a conv front fails before the data is loaded
    meta = load_meta(folder)
    if progress:
        progress("loading the calibration and held-out windows")
    ckpt_path = checkpoint_of(folder, meta)
    ckpt = load_checkpoint(ckpt_path)
    sets = data_sets(ckpt, ckpt_path)
    calib, test = sets.calibration, sets.held_out  # what export calibrated on, what verify scores
    scale = float(meta["input_scale"])
    xc = quantize(calib, scale)
    xt = quantize(test.x, scale)
    if progress:
        progress("simulating int8, value-driven and uniform low-width activations")
    return value_driven_report(g, xc, xt, test.y, meta.get("readout", "sum"), patch, low_bits, k)
