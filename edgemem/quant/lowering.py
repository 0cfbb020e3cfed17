"""Building integer graphs from float layers: the shared half of every model's lowering.

A Builder tracks the real value of one integer unit (the scale) of every buffer it creates, quantizes each layer's
weights per output channel to int8 (quantize_fc), and appends the op of docs/graph.md.
Model files (lower_*.py) only say which layer feeds which, at which scale. FC and CONV1D weights may instead be
stored in 4 or 2 bits (packed s4 / s2 tensors): `weight_bits` maps op names to widths.

Reproducibility (docs/architecture.md "Quantization"): an export is a function of the checkpoint, the recipe and the
packaged data only, whatever the CPU, thread count or kernel. The lowering runs on a float64 copy of the model
(`float64_copy`), and every range measured on the calibration windows goes through `snap_peak` before a scale is
derived from it: float64 last-bit noise (~1e-16 relative) moves a snapped peak only where it straddles a grid point
(grid steps are 2^-9 to 2^-8 of the peak).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from edgemem.errors import EdgememError
from edgemem.graph.intops import quantize, quantize_multiplier15, to_q15
from edgemem.graph.ir import (
    FLAG_ACC,
    FLAG_CUBA,
    FLAG_EVENTS,
    FLAG_LEGENDRE,
    NONE,
    Act,
    DType,
    Graph,
    Op,
    OpType,
    lut_op_flags,
)
from edgemem.graph.legendre import legendre_op_ok
from edgemem.quant.lut import lut_for

INT8_MAX, INT16_MAX = 127, 32767
Array = np.ndarray


@dataclass
class Lowered:
    """A model lowered to its integer graph, with the scales it was built at."""

    graph: Graph
    input_scale: float
    output_scale: float
    info: dict[str, float] = field(default_factory=dict)  # calibrated peaks, for the report
    scales: dict[str, float] = field(default_factory=dict)  # buffer name -> real value of one unit (Builder.extras)
    w_scales: dict[str, np.ndarray] = field(default_factory=dict)  # FC / CONV1D op -> per-channel weight scales
    act_fns: dict[str, str] = field(default_factory=dict)  # ACT LUT op -> "tanh", "gelu", ...


class QuantFC(NamedTuple):
    w: Array  # [out][in] integer codes
    bias: Array  # [out] int32 values at scale s_in * s_w
    mult: Array  # [out] in [2^30, 2^31), low 16 bits zero
    shift: Array  # [out] in [1, 62]
    w_scale: Array  # [out] float weight scales


def quantize_fc(weight: torch.Tensor, bias: torch.Tensor | None, s_in: float, s_out: float,
                bits: int = 8) -> QuantFC:
    """Weights per output channel, symmetric narrow range [-qmax, qmax] with qmax = 2^(bits-1) - 1 (127, 7 or 1:
    the most negative code is left out so that w and -w quantize alike); bias and requantization from that scale."""
    if bits not in (8, 4, 2):
        raise EdgememError(f"weights can be stored in 8, 4 or 2 bits, not {bits}")
    qmax = float((1 << (bits - 1)) - 1)
    w = weight.detach().double().numpy()
    maxabs = np.abs(w).max(axis=1)
    fallback = max(float(np.abs(w).max()), 1e-12)  # an all-zero row borrows the layer's range
    w_scale = np.where(maxabs > 0, maxabs, fallback) / qmax
    wq = quantize(w / w_scale[:, None] * 1.0, 1.0, bits)  # |w / w_scale| <= qmax: the saturation never bites
    b = np.zeros(w.shape[0]) if bias is None else bias.detach().double().numpy()
    bq = np.round(b / (s_in * w_scale)).astype(np.int64)
    if np.abs(bq).max(initial=0) >= 2**31:
        raise EdgememError("a bias does not fit int32 at its accumulator scale")
    # 15-bit multipliers: what every TFLite interpreter computes exactly (quantize_multiplier15, docs/tflite.md)
    ms = [quantize_multiplier15(s_in * ws / s_out) for ws in w_scale]
    return QuantFC(wq, bq, np.array([m for m, _ in ms]), np.array([s for _, s in ms]), w_scale)


def to_np(t: torch.Tensor | Array | None) -> Array | None:
    if t is None:
        return None
    return t.detach().double().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t, dtype=np.float64)


def fold_bn(w: Array, b: Array | None, bn: torch.nn.Module | None) -> tuple[Array, Array]:
    """Fold an eval-mode BatchNorm that follows a layer into its weights: w [out][...], b [out]."""
    b = np.zeros(w.shape[0]) if b is None else b
    if bn is None:
        return w, b
    gamma, beta = to_np(bn.weight), to_np(bn.bias)  # type: ignore[arg-type]
    mean, var = to_np(bn.running_mean), to_np(bn.running_var)  # type: ignore[arg-type]
    k = gamma / np.sqrt(var + bn.eps)  # type: ignore[operator]
    return w * k.reshape(-1, *([1] * (w.ndim - 1))), (b - mean) * k + beta


PEAK_BITS = 9  # significant bits a calibrated peak keeps (snap_peak)


def snap_peak(peak: float) -> float:
    """The one rule every calibrated range goes through before a scale is derived from it (every model kind; the
    rule of docs/architecture.md "Quantization"): the peak rounded UP to the next value with PEAK_BITS significant
    bits, k * 2^(e - 9) for 2^(e-1) <= peak < 2^e and k = ceil(peak * 2^(9 - e)), an integer in [256, 512]
    (0 stays 0; a value already on the grid stays where it is).

    The forward pass that measures a peak differs between machines in its last bits (SIMD width, thread count,
    kernel choice); a snapped peak moves only if that noise straddles a grid point, i.e. with probability about
    (relative noise) x 2^9 -- ~1e-13 for the float64 calibration of `float64_copy`, ~1e-4 even for float32 noise of
    1e-7. Rounding up keeps every calibrated value inside its int8 / int16 range; the scale grows by less than
    2^-8 (0.39 %)."""
    p = float(peak)
    if not math.isfinite(p) or p < 0:
        raise EdgememError(f"a calibrated peak must be finite and >= 0, got {p}")
    if p == 0.0:
        return 0.0
    m, e = math.frexp(p)  # p = m * 2^e, 0.5 <= m < 1: exact
    return math.ldexp(math.ceil(math.ldexp(m, PEAK_BITS)), e - PEAK_BITS)  # exact: k < 2^9 fits a double


def snap_peaks(peaks: dict[str, float]) -> dict[str, float]:
    """snap_peak of every entry: the calibrated ranges a lowering derives its scales from (and reports in
    Lowered.info, which the QCDQ export reads its activation scales from)."""
    return {k: snap_peak(v) for k, v in peaks.items()}


def detached_copy(model: torch.nn.Module) -> torch.nn.Module:
    """copy.deepcopy of a model, also after a traced run: snntorch keeps its last membrane as a buffer, which has
    autograd history after an ONNX export and cannot be deep-copied as such (it is copied detached)."""
    memo: dict[int, object] = {}
    for module in model.modules():
        for v in [*module._buffers.values(), *vars(module).values()]:
            if isinstance(v, torch.Tensor) and not v.is_leaf:
                memo[id(v)] = v.detach().clone()
    return copy.deepcopy(model, memo)


def float64_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of the model in eval mode, for the lowering: calibration forward passes and derived weights
    (an ELM's folded decays, products and sums) are then computed in float64 from the checkpoint's float32 values
    (exactly representable), so run-to-run noise is ~1e-16 relative and reaches an artifact only through a coarse
    rounding (snap_peak, int8 codes, 15-bit multipliers, Q15, float32), never through a plain float32 result."""
    return detached_copy(model).double().eval()


def calibration_tensor(calib_x: Array) -> torch.Tensor:
    """The calibration windows [n][T][n_in] as a float64 tensor (what a float64_copy model takes)."""
    return torch.from_numpy(np.asarray(calib_x, dtype=np.float64))


def int8_scale(peak: float) -> float:
    return max(float(peak), 1e-8) / INT8_MAX


WEIGHT_DTYPES = {8: DType.S8, 4: DType.S4, 2: DType.S2}


def packable(row: int, bits: int) -> bool:
    """Whether rows of `row` weights at `bits` start on whole bytes (docs/graph.md: required of packed weights)."""
    return row % WEIGHT_DTYPES[bits].per_byte == 0


class Builder:
    def __init__(self, n_in: int, n_out: int, input_scale: float, weight_bits: dict[str, int] | None = None,
                 events: bool = True) -> None:
        """weight_bits: FC / CONV1D op name -> 8, 4 or 2 (8 where not named). events: an FC reading spikes (a LIF or
        SPIKE output) gets the EVENTS flag and an index-list scratch buffer, so C sums only the columns that spiked
        (same integers as the dense kernel)."""
        self.weight_bits = dict(weight_bits or {})
        self.events = events
        self.spikes: set[int] = set()  # buffers written by LIF / SPIKE ops (0/1 values)
        bad = {k: v for k, v in self.weight_bits.items() if v not in WEIGHT_DTYPES}
        if bad:
            raise EdgememError(f"weight widths must be 8, 4 or 2 bits: {bad}")
        self.g = Graph(n_in, n_out)
        self.g.in_buffer = self.g.buffer("input", DType.S8, n_in)
        self.scale: dict[int, float] = {self.g.in_buffer: input_scale}
        self.w_scales: dict[str, Array] = {}  # FC / CONV1D op name -> per-channel weight scales (TFLite export)
        self.act_fns: dict[str, str] = {}  # ACT LUT op name -> the function its table holds (float TFLite export)

    # ---- helpers ----
    def _buf(self, name: str, dtype: DType, count: int, scale: float, state: bool = False) -> int:
        i = self.g.buffer(name, dtype, count, state)
        self.scale[i] = scale
        return i

    def _params(self, name: str, w: Array, b: Array | None, s_in: float, s_out: float) -> tuple[int, int, int, int]:
        bits = self.weight_bits.get(name, 8)
        rows = np.ascontiguousarray(w.reshape(w.shape[0], -1))
        if not packable(rows.shape[1], bits):  # the format's rule; such a layer has to stay at 8 bits
            raise EdgememError(f"{name}: rows of {rows.shape[1]} weights cannot be packed at {bits} bits (a row "
                               f"must fill whole bytes)")
        q = quantize_fc(torch.from_numpy(rows), None if b is None else torch.from_numpy(np.asarray(b, dtype=np.float64)),
                        s_in, s_out, bits)
        self.w_scales[name] = q.w_scale
        g = self.g
        return (g.tensor(f"{name}.w", q.w, WEIGHT_DTYPES[bits]), g.tensor(f"{name}.bias", q.bias, DType.S32),
                g.tensor(f"{name}.mult", q.mult, DType.S32), g.tensor(f"{name}.shift", q.shift, DType.S8))

    def _out(self, name: str, out: int | None, n: int, s_out: float) -> tuple[int, int]:
        if out is None:
            return self._buf(f"{name}.acc", DType.S32, n, s_out), 0
        if not math.isclose(self.scale[out], s_out, rel_tol=1e-12):
            raise EdgememError(f"{name}: accumulating into a buffer of another scale")
        return out, FLAG_ACC

    # ---- ops ----
    def fc(self, name: str, w: Array, b: Array | None, src: int, s_out: float, out: int | None = None) -> int:
        """out s32 [d_out] at s_out (+)= W src + b. w [d_out][d_in] float."""
        d_out, d_in = w.shape
        if self.g.buffers[src].count != d_in:
            raise EdgememError(f"{name}: input has {self.g.buffers[src].count} values, the layer takes {d_in}")
        out, flags = self._out(name, out, d_out, s_out)
        t = self._params(name, w, b, self.scale[src], s_out)
        scratch = NONE
        if self.events and src in self.spikes:
            scratch = self._buf(f"{name}.events", DType.S16, d_in, 1.0)
            flags |= FLAG_EVENTS
        self.g.op(Op(OpType.FC, name, in0=src, out=out, scratch=scratch, d=(d_in, d_out, 0, 0), t=t, flags=flags))
        return out

    def conv1d(self, name: str, w: Array, b: Array | None, src: int, s_out: float, out: int | None = None) -> int:
        """Causal conv: w [c_out][c_in][k] (torch Conv1d layout, left padding k-1)."""
        c_out, c_in, k = w.shape
        out, flags = self._out(name, out, c_out, s_out)
        t = self._params(name, np.transpose(w, (0, 2, 1)), b, self.scale[src], s_out)  # -> [o][tap][c]
        ring = self._buf(f"{name}.ring", DType.S8, (k - 1) * c_in, self.scale[src], state=True) if k > 1 else NONE
        head = self._buf(f"{name}.head", DType.S32, 1, 1.0, state=True) if k > 1 else NONE
        self.g.op(Op(OpType.CONV1D, name, in0=src, out=out, state0=ring, state1=head, d=(c_in, c_out, k, 0), t=t,
                     flags=flags))
        return out

    def act(self, name: str, src: int, func: str, s_out: float | None = None,
            fn: Callable[[Array], Array] | None = None, dtype: DType = DType.S8, state: bool = False,
            out: int | None = None) -> int:
        """relu / sat (out at the input's scale) or a 256-entry table of fn (input at the table's scale); `state`
        keeps the output for the next step (a recurrent hidden state); `out`: write into a buffer made earlier."""
        n = self.g.buffers[src].count
        if func == "lut":
            assert fn is not None and s_out is not None
            table = lut_for(fn, self.scale[src], s_out)
            self.act_fns[name] = getattr(fn, "__name__", "lut").lstrip("_")
            out = self._buf(name, DType.S8, n, s_out, state) if out is None else out
            t0 = self.g.tensor(f"{name}.lut", table, DType.S8)
            self.g.op(Op(OpType.ACT, name, in0=src, out=out, d=(n, 0, 0, 0), t=(t0, NONE, NONE, NONE),
                         flags=lut_op_flags(Act.LUT)))
            return out
        kind = {"relu": Act.RELU, "sat": Act.SAT}[func]
        out = self._buf(name, dtype, n, self.scale[src], state) if out is None else out
        self.g.op(Op(OpType.ACT, name, in0=src, out=out, d=(n, 0, 0, 0), flags=lut_op_flags(kind)))
        return out

    def lif(self, name: str, cur: int, beta: Array, threshold: Array, alpha: Array | None = None,
            mem: int | None = None) -> int:
        """LIF (alpha None) or CuBa population on currents at the membrane scale of `cur`; spikes at scale 1.
        `mem`: an s16 [n] state buffer made earlier (state16, at cur's scale) when ops before this one read the
        previous step's membrane (a SPIKE op recomputing last step's spikes); a new one when None."""
        n, s = self.g.buffers[cur].count, self.scale[cur]
        thr = np.round(np.broadcast_to(threshold, (n,)) / s)
        g = self.g
        if mem is None:
            mem = self._buf(f"{name}.mem", DType.S16, n, s, state=True)
        else:
            b = g.buffers[mem]
            if (b.dtype, b.count, b.state) != (DType.S16, n, True):
                raise EdgememError(f"{name}: mem must be an s16 state buffer of {n} values, got "
                                   f"{b.dtype.name.lower()} [{b.count}]{' state' if b.state else ''}")
            if not math.isclose(self.scale[mem], s, rel_tol=1e-12):
                raise EdgememError(f"{name}: the membrane buffer and the currents must share a scale")
        syn = self._buf(f"{name}.syn", DType.S16, n, s, state=True) if alpha is not None else NONE
        tb = g.tensor(f"{name}.beta", to_q15(np.broadcast_to(beta, (n,))), DType.S16)
        ta = g.tensor(f"{name}.alpha", to_q15(np.broadcast_to(alpha, (n,))), DType.S16) if alpha is not None else NONE
        tt = g.tensor(f"{name}.thr", thr, DType.S16)
        spk = self._buf(name, DType.S8, n, 1.0)
        self.spikes.add(spk)
        g.op(Op(OpType.LIF, name, in0=cur, out=spk, state0=mem, state1=syn, d=(n, 0, 0, 0), t=(tb, ta, tt, NONE),
                flags=FLAG_CUBA if alpha is not None else 0))
        return spk

    def spike(self, name: str, mem: int, thr: Array) -> int:
        """out s8 [n] = mem > thr (0 or 1, scale 1 like LIF spikes): a LIF's spikes recomputed from its membrane.
        `thr`: integer thresholds in the membrane's units (the LIF's thr tensor values). Placed before the LIF op,
        it gives the previous step's spikes, which after a reset (mem = 0) are 1 where thr < 0 -- what a
        zero-initialized spike state buffer cannot hold."""
        b = self.g.buffers[mem]
        if b.dtype != DType.S16:
            raise EdgememError(f"{name}: SPIKE reads an s16 membrane, got {b.dtype.name.lower()}")
        n = b.count
        values = np.broadcast_to(np.asarray(thr), (n,))
        if not np.array_equal(values, np.round(values)):
            raise EdgememError(f"{name}: thresholds must be integers in the membrane's units")
        tt = self.g.tensor(f"{name}.thr", values, DType.S16)
        out = self._buf(name, DType.S8, n, 1.0)
        self.spikes.add(out)
        self.g.op(Op(OpType.SPIKE, name, in0=mem, out=out, d=(n, 0, 0, 0), t=(tt, NONE, NONE, NONE)))
        return out

    def state16(self, name: str, count: int, scale: float) -> int:
        """An int16 state buffer made before the op that writes it, so earlier ops can read last step's value."""
        return self._buf(name, DType.S16, count, scale, state=True)

    def state8(self, name: str, count: int, scale: float) -> int:
        """An int8 state buffer (a recurrent activation) made before the op that writes it."""
        return self._buf(name, DType.S8, count, scale, state=True)

    def leaky(self, name: str, src: int, beta: Array) -> int:
        """trace = sat16(beta * trace + src), a new state buffer at src's scale."""
        return self.leaky_into(name, src, self.state16(name, self.g.buffers[src].count, self.scale[src]), beta)

    def leaky_into(self, name: str, src: int, out: int, beta: Array) -> int:
        n = self.g.buffers[src].count
        if not math.isclose(self.scale[out], self.scale[src], rel_tol=1e-12):
            raise EdgememError(f"{name}: the leaky state and its input must share a scale")
        tb = self.g.tensor(f"{name}.beta", to_q15(np.broadcast_to(beta, (n,))), DType.S16)
        self.g.op(Op(OpType.LEAKY, name, in0=src, out=out, d=(n, 0, 0, 0), t=(tb, NONE, NONE, NONE)))
        return out

    def lmu(self, name: str, u: int, a: Array, b: Array, s_m: float, m: int | None = None,
            b_shift: int | None = None, substeps: int = 1, legendre: bool = False) -> int:
        """LMU memory m [n_u][order] (int16 at s_m) driven by u (s8; spikes have scale 1); `m`: a state buffer made
        earlier (state16) when ops before this one read the previous step's memory. With `substeps` k, (a, b) is one
        Euler substep, applied by k LMU ops in a row on the same memory and scratch (`name`, `name.s1`, ...). With
        `legendre` (an Euler substep's A) the ops are flagged FLAG_LEGENDRE (O(order) in C) where the codes keep the
        structure; a ZOH A is never flagged (so its blobs and kernel masks stay as they were, small orders included)."""
        n_u, order = self.g.buffers[u].count, a.shape[0]
        a_shift = 15 - (math.floor(math.log2(np.abs(a).max())) + 1)
        a_q = np.clip(np.round(a * (1 << a_shift)), -32768, 32767)
        real_b = b * self.scale[u] / s_m
        if b_shift is None:  # 15 bits, so that B is an int16 operand in TFLite (BATCH_MATMUL int16); 0 reproduces
            # the version-1 L2MU's whole-unit B exactly
            b_shift = int(np.clip(15 - (math.floor(math.log2(max(np.abs(real_b).max(), 1e-30))) + 1), 0, 30))
            while b_shift > 0 and np.abs(np.round(real_b * (1 << b_shift))).max() > INT16_MAX:
                b_shift -= 1  # the largest value rounded up to 2^15
        b_q = np.round(real_b * (1 << b_shift))
        if m is None:
            m = self._buf(f"{name}.m", DType.S16, n_u * order, s_m, state=True)
        scratch = self._buf(f"{name}.scratch", DType.S16, order, 1.0)
        ta = self.g.tensor(f"{name}.A", a_q, DType.S16)
        tb = self.g.tensor(f"{name}.B", b_q, DType.S32)
        flags = FLAG_LEGENDRE if legendre and legendre_op_ok(a_q, b_q, a_shift) else 0
        for k in range(substeps):
            self.g.op(Op(OpType.LMU, f"{name}.s{k}" if k else name, in0=u, state0=m, scratch=scratch,
                         d=(n_u, order, a_shift, b_shift), t=(ta, tb, NONE, NONE), flags=flags))
        return m

    def onoff(self, name: str, src: int) -> int:
        """s32 [2n] = [+src, -src]: the L2MU's on and off cells of every memory dimension, at src's scale."""
        n = self.g.buffers[src].count
        out = self._buf(f"{name}.acc", DType.S32, 2 * n, self.scale[src])
        self.g.op(Op(OpType.ONOFF, name, in0=src, out=out, d=(n, 0, 0, 0)))
        return out

    def add(self, name: str, src: int, out: int | None = None, s_out: float | None = None) -> int:
        """out (s32) (+)= src rescaled to out's scale (a residual); a new buffer at s_out when out is None."""
        n = self.g.buffers[src].count
        if out is None:
            assert s_out is not None
            out, flags = self._buf(f"{name}.acc", DType.S32, n, s_out), 0
        else:
            flags = FLAG_ACC
        mult, shift = quantize_multiplier15(self.scale[src] / self.scale[out])  # exact in TFLite (docs/tflite.md)
        tm = self.g.tensor(f"{name}.mult", np.array([mult]), DType.S32)
        ts = self.g.tensor(f"{name}.shift", np.array([shift]), DType.S8)
        self.g.op(Op(OpType.ADD, name, in0=src, out=out, d=(n, 0, 0, 0), t=(tm, ts, NONE, NONE), flags=flags))
        return out

    def output(self, src: int) -> Graph:
        """Logits: saturate the s32 logits buffer into the s16 output buffer; place buffers; done."""
        named = {op.name for op in self.g.ops if op.type in (OpType.FC, OpType.CONV1D)}
        if set(self.weight_bits) - named:  # a misspelt layer name would silently stay at 8 bits
            raise EdgememError(f"weight_bits names no FC or CONV1D op: {sorted(set(self.weight_bits) - named)}")
        n = self.g.buffers[src].count
        self.g.out_buffer = self.act("logits16", src, "sat", dtype=DType.S16)
        if n != self.g.n_out:
            raise EdgememError(f"the model's last layer has {n} outputs, the graph {self.g.n_out}")
        self.g.place()
        return self.g

    def extras(self) -> dict[str, dict]:
        """What the graph blob leaves out but a TFLite file carries: the real scale of every buffer by name, the
        per-channel weight scales and the functions of the LUT ops (Lowered's fields of the same names)."""
        return {"scales": {b.name: self.scale[i] for i, b in enumerate(self.g.buffers)},
                "w_scales": dict(self.w_scales), "act_fns": dict(self.act_fns)}

    @property
    def output_scale(self) -> float:
        return self.scale[self.g.out_buffer]
