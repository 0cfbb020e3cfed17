"""The pure-integer reference of the quantized L2MU: the specification the C runtime matches bit for bit.

Vectorized over independent sequences (windows); every operation is an exact int64 computation of the rules in
edgemem.quant.intops, in the order of docs/architecture.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError
from edgemem.quant.intops import requant, rshift_round, sat
from edgemem.quant.model import QuantFC, QuantL2MU, QuantPop


def fc(q: QuantFC, x: np.ndarray) -> np.ndarray:
    """x [b][in] int -> requantized int32 currents [b][out]."""
    acc = x.astype(np.int64) @ q.w.T.astype(np.int64) + q.bias
    return sat(requant(acc, q.mult, q.shift), 16)  # int16 contributions and sums, as TFLite (docs/tflite.md)


def add32(*parts: np.ndarray) -> np.ndarray:
    total = parts[0]
    for p in parts[1:]:
        total = sat(total + p, 16)
    return total


def neuron_step(p: QuantPop, cur: np.ndarray, mem: np.ndarray, syn: np.ndarray | None):
    """LIF/CuBa step with reset by subtraction; returns spikes, mem, syn."""
    reset = np.where(mem > p.thr, p.thr, 0)
    c = sat(cur, 16)
    if p.cuba:
        assert syn is not None
        syn = c = sat(rshift_round(p.alpha * syn, 15) + c, 16)  # the membrane integrates the stored (saturated) syn
    # int16 at every step, as TFLite's SUB and ADD: sat16(sat16(decay - reset) + c)
    mem = sat(sat(rshift_round(p.beta * mem, 15) - reset, 16) + c, 16)
    return (mem > p.thr).astype(np.int64), mem, syn


@dataclass
class IntState:
    mem: dict[str, np.ndarray]
    syn: dict[str, np.ndarray]
    m: np.ndarray  # [b][n_u][order]


def init_state(q: QuantL2MU, batch: int) -> IntState:
    sizes = {"encoder": q.n_u, "memory": q.n_m, "hidden": q.n_h}
    z = {p: np.zeros((batch, n), dtype=np.int64) for p, n in sizes.items()}
    return IntState(z, {p: v.copy() for p, v in z.items()}, np.zeros((batch, q.n_u, q.order), dtype=np.int64))


def step(q: QuantL2MU, x: np.ndarray, st: IntState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """x [b][n_in] int8 values -> logits [b][n_out] int16 values; updates st in place."""
    pops = q.pops
    s_h_prev = (st.mem["hidden"] > pops["hidden"].thr).astype(np.int64)
    s_m_prev = (st.mem["memory"] > pops["memory"].thr).astype(np.int64)
    spikes = {}

    def fire(pop: str, cur: np.ndarray) -> np.ndarray:
        s, st.mem[pop], syn = neuron_step(pops[pop], cur, st.mem[pop], st.syn[pop])
        st.syn[pop] = syn if syn is not None else st.syn[pop]
        spikes[pop] = s
        return s

    s_u = fire("encoder", add32(fc(q.fc["enc_x"], x), fc(q.fc["enc_h"], s_h_prev), fc(q.fc["enc_m"], s_m_prev)))
    acc = st.m @ q.lmu_a.T  # [b][n_u][order], exact in int64
    # int16 terms, then their saturated sum (as TFLite computes it: docs/tflite.md)
    st.m = sat(sat(rshift_round(acc, q.a_shift), 16) + sat(s_u[:, :, None] * q.lmu_b, 16), 16)
    flat = st.m.reshape(st.m.shape[0], -1)
    s_m = fire("memory", np.concatenate([flat, -flat], axis=1))
    fire("hidden", add32(fc(q.fc["hid_x"], x), fc(q.fc["hid_h"], s_h_prev), fc(q.fc["hid_m"], s_m)))
    logits = sat(fc(q.fc["out"], spikes["hidden"]), 16)
    return logits, spikes


def run(q: QuantL2MU, x: np.ndarray) -> tuple[np.ndarray, float]:
    """x [b][T][n_in] int8 -> per-step logits [b][T][n_out] (int16 values) and mean spikes per step."""
    if x.ndim != 3 or x.shape[2] != q.n_in:
        raise EdgememError(f"input must be [windows][steps][{q.n_in}], got shape {x.shape}")
    st = init_state(q, x.shape[0])
    out, spikes = [], 0
    for t in range(x.shape[1]):
        y, s = step(q, x[:, t].astype(np.int64), st)
        out.append(y)
        spikes += sum(int(v.sum()) for v in s.values())
    return np.stack(out, axis=1), spikes / max(1, x.shape[0] * x.shape[1])


def window_predictions(logits: np.ndarray) -> np.ndarray:
    """Class per window: argmax of the per-step logits summed over the window."""
    return logits.astype(np.int64).sum(axis=1).argmax(axis=1)
