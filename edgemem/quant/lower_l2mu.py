"""L2MU -> integer graph, in the step order of docs/architecture.md ("One L2MU step"). Every population's int16
full scale is its float clip (so saturation is the float model's clamp); FCs reading spikes are event-driven.

    s_h_prev = SPIKE(mem_hidden), s_m_prev = SPIKE(mem_memory)       previous spikes from the membranes
    s_u = LIF_enc(FC(enc_x, x) + FC(enc_h, s_h_prev) + FC(enc_m, s_m_prev))
    m   = LMU(A, B; s_u)                                              int16 at memory_clip / 32767, B unshifted
    s_m = LIF_mem(ONOFF(m))                                           the on/off cells, at the memory's scale
    s_h = LIF_hid(FC(hid_x, x) + FC(hid_h, s_h_prev) + FC(hid_m, s_m))
    logits = FC(out, s_h)                                             int16 at margin * peak / 32767
"""

from __future__ import annotations

import numpy as np
import torch

from edgemem.models.l2mu import L2MU, POPULATIONS
from edgemem.quant.lowering import INT16_MAX, Builder, Lowered, calibration_tensor, int8_scale, snap_peaks, to_np


def lower_l2mu(model: L2MU, calib_x: np.ndarray, margin: float, weight_bits: dict[str, int] | None = None,
               events: bool = True) -> Lowered:
    cfg = model.cfg
    x_cal = calibration_tensor(calib_x)
    with torch.no_grad():
        peak = snap_peaks({"input": float(x_cal.abs().max()), "logits": float(model(x_cal)[0].abs().max())})
    b = Builder(cfg.n_in, cfg.n_out, int8_scale(peak["input"]), weight_bits, events)
    scale = {p: model.clip(p) / INT16_MAX for p in POPULATIONS}
    x = b.g.in_buffer

    def neuron(p: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        n = model.pops[p]
        alpha = to_np(n.alpha) if hasattr(n, "alpha") else None
        return to_np(n.beta), to_np(n.threshold), alpha  # type: ignore[return-value]

    def thr_int(p: str) -> np.ndarray:
        return np.round(np.broadcast_to(neuron(p)[1], (cfg.pop_size(p),)) / scale[p])

    # membranes read (as spikes) before this step's LIF ops update them: state buffers made first
    mem = {p: b.state16(f"{p}.mem", cfg.pop_size(p), scale[p]) for p in ("memory", "hidden")}
    s_h_prev = b.spike("hidden.prev", mem["hidden"], thr_int("hidden"))
    s_m_prev = b.spike("memory.prev", mem["memory"], thr_int("memory"))

    def w(name: str) -> tuple[np.ndarray, np.ndarray | None]:
        layer = getattr(model, name)
        return to_np(layer.weight), to_np(layer.bias)  # type: ignore[return-value]

    cur = b.fc("enc_x", *w("enc_x"), x, scale["encoder"])
    b.fc("enc_h", *w("enc_h"), s_h_prev, scale["encoder"], out=cur)
    b.fc("enc_m", *w("enc_m"), s_m_prev, scale["encoder"], out=cur)
    beta, thr, alpha = neuron("encoder")
    s_u = b.lif("encoder", cur, beta, thr, alpha)
    m = b.lmu("lmu", s_u, to_np(model.memory.A), to_np(model.memory.B), scale["memory"], b_shift=0)  # type: ignore[arg-type]
    beta, thr, alpha = neuron("memory")
    s_m = b.lif("memory", b.onoff("onoff", m), beta, thr, alpha, mem=mem["memory"])
    cur = b.fc("hid_x", *w("hid_x"), x, scale["hidden"])
    b.fc("hid_h", *w("hid_h"), s_h_prev, scale["hidden"], out=cur)
    b.fc("hid_m", *w("hid_m"), s_m, scale["hidden"], out=cur)
    beta, thr, alpha = neuron("hidden")
    s_h = b.lif("hidden", cur, beta, thr, alpha, mem=mem["hidden"])
    logits = b.fc("out", *w("out"), s_h, margin * peak["logits"] / INT16_MAX)
    g = b.output(logits)
    return Lowered(g, b.scale[g.in_buffer], b.output_scale, peak, **b.extras())
