"""LMU classifier -> integer graph (edgemem/models/lmu_rnn.py; parallelizable and recurrent forms):

    u = ACT SAT(FC(E_x, x) [+ FC(E_h, h_prev) + FC(E_m, m_prev)])      int8 at peak / 127
    m = LMU(A, B; u)                                                    int16 at memory_clip / 32767 (the float clamp)
        (Euler: k LMU ops of one substep S = I + A/k, B/k each, flagged LEGENDRE)
    h = ACT(FC(W_m, m) + FC(W_x, x) [+ FC(W_h, h_prev)])                tanh table or ReLU, int8; a state when recurrent
    logits = FC(W_o, h)                                                 int16 at margin * peak / 32767
"""

from __future__ import annotations

import numpy as np
import torch

from edgemem.models.lmu_rnn import LMURNN
from edgemem.quant.lowering import INT16_MAX, Builder, Lowered, calibration_tensor, int8_scale, snap_peaks, to_np
from edgemem.quant.lut import TANH_SCALES, tanh


@torch.no_grad()
def _peaks(model: LMURNN, x: torch.Tensor) -> dict[str, float]:
    peak = {"input": float(x.abs().max()), "u": 0.0, "h": 0.0, "logits": 0.0}
    state = model.init_state(x.shape[0])
    c = model.cfg
    for t in range(x.shape[1]):  # stepping: the recurrent form has no parallel one
        u = model.enc_x(x[:, t])
        if c.recurrent:
            u = u + model.enc_h(state["h"]) + model.enc_m(state["lmu_m"])
        logits, new = model.step(x[:, t], state)
        m = new["lmu_m"]
        z = model.hid_m(m) + model.hid_x(x[:, t]) + (model.hid_h(state["h"]) if c.recurrent else 0)
        for key, v in (("u", u), ("h", model.act(z)), ("logits", logits)):
            peak[key] = max(peak[key], float(v.abs().max()))
        state = new
    return peak


def lower_lmu(model: LMURNN, calib_x: np.ndarray, margin: float,
              weight_bits: dict[str, int] | None = None) -> Lowered:
    c = model.cfg
    peak = snap_peaks(_peaks(model, calibration_tensor(calib_x)))
    b = Builder(c.n_in, c.n_out, int8_scale(peak["input"]), weight_bits)
    x = b.g.in_buffer
    s_m = c.memory_clip / INT16_MAX
    m_prev = h_prev = None
    s_h = TANH_SCALES[1] if c.act == "tanh" else int8_scale(peak["h"])
    if c.recurrent:  # states read before this step writes them
        m_prev = b.state16("lmu.m", c.n_m, s_m)
        h_prev = b.state8("h", c.n_h, s_h)
    u_acc = b.fc("enc_x", to_np(model.enc_x.weight), None, x, int8_scale(peak["u"]))  # type: ignore[arg-type]
    if c.recurrent:
        assert m_prev is not None and h_prev is not None
        b.fc("enc_h", to_np(model.enc_h.weight), None, h_prev, b.scale[u_acc], out=u_acc)  # type: ignore[arg-type]
        b.fc("enc_m", to_np(model.enc_m.weight), None, m_prev, b.scale[u_acc], out=u_acc)  # type: ignore[arg-type]
    u = b.act("u", u_acc, "sat")
    mem = model.memory
    if mem.discretization == "euler":  # k substeps of S = I + A/k: Legendre-structured, O(order) each in C
        a, bb = mem.substep()
    else:
        a, bb = to_np(mem.A), to_np(mem.B)  # type: ignore[assignment]
    m = b.lmu("lmu", u, a, bb, s_m, m=m_prev, substeps=mem.substeps,  # type: ignore[arg-type]
              legendre=mem.discretization == "euler")
    s_pre = TANH_SCALES[0] if c.act == "tanh" else s_h
    pre = b.fc("hid_m", to_np(model.hid_m.weight), None, m, s_pre)  # type: ignore[arg-type]
    b.fc("hid_x", to_np(model.hid_x.weight), to_np(model.hid_x.bias), x, s_pre, out=pre)  # type: ignore[arg-type]
    if c.recurrent:
        b.fc("hid_h", to_np(model.hid_h.weight), None, h_prev, s_pre, out=pre)  # type: ignore[arg-type]
        if c.act == "tanh":
            h = b.act("h.update", pre, "lut", s_out=TANH_SCALES[1], fn=tanh, out=h_prev)
        else:
            h = b.act("h.update", pre, "relu", out=h_prev)
    elif c.act == "tanh":
        h = b.act("h", pre, "lut", s_out=TANH_SCALES[1], fn=tanh)
    else:
        h = b.act("h", pre, "relu")
    logits = b.fc("out", to_np(model.out.weight), to_np(model.out.bias), h,  # type: ignore[arg-type]
                  margin * peak["logits"] / INT16_MAX)
    g = b.output(logits)
    return Lowered(g, b.scale[g.in_buffer], b.output_scale, peak, **b.extras())
