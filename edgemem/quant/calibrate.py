"""Post-training quantization of the L2MU: calibrate ranges on training windows, then build QuantL2MU."""

from __future__ import annotations

import math

import numpy as np
import torch

from edgemem.errors import EdgememError
from edgemem.models.l2mu import L2MU
from edgemem.quant.intops import quantize, quantize_multiplier15, to_q15
from edgemem.quant.model import FC_NAMES, POP_NAMES, QuantFC, QuantL2MU, QuantPop

INT16_MAX = 32767
SPIKE_INPUTS = {"enc_h", "enc_m", "hid_h", "hid_m", "out"}  # fed by 0/1 spikes: input scale 1
FEEDS = {"enc_x": "encoder", "enc_h": "encoder", "enc_m": "encoder", "hid_x": "hidden", "hid_h": "hidden",
         "hid_m": "hidden"}


@torch.no_grad()
def _ranges(model: L2MU, x: np.ndarray) -> dict[str, float]:
    """Largest magnitude of every state, current and output over the calibration windows (float model)."""
    xt = torch.from_numpy(x)
    state = model.init_state(xt.shape[0])
    peak: dict[str, float] = {"input": float(xt.abs().max())}

    def note(key: str, v: torch.Tensor) -> None:
        peak[key] = max(peak.get(key, 0.0), float(v.abs().max()))

    for t in range(xt.shape[1]):
        s_h_prev = model._spike("hidden", state["mem_hidden"])
        s_m_prev = model._spike("memory", state["mem_memory"])
        note("cur_encoder", model.enc_x(xt[:, t]) + model.enc_h(s_h_prev) + model.enc_m(s_m_prev))
        logits, state, spikes = model.step(xt[:, t], state)
        note("cur_hidden", model.hid_x(xt[:, t]) + model.hid_h(s_h_prev) + model.hid_m(spikes["memory"]))
        note("logits", logits)
        for k, v in state.items():
            note(k, v)
    return peak


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


def _pop(neuron: torch.nn.Module, scale: float, cuba: bool) -> QuantPop:
    thr = neuron.threshold.detach().double().numpy()
    thr_q = np.round(thr / scale).astype(np.int64)  # may be <= 0: a learned threshold below rest fires at rest
    alpha = to_q15(neuron.alpha.detach().numpy()) if cuba else np.zeros_like(thr_q)
    return QuantPop(to_q15(neuron.beta.detach().numpy()), alpha, thr_q, cuba, scale)


def quantize_l2mu(model: L2MU, calib_x: np.ndarray, margin: float = 1.25) -> QuantL2MU:
    """int8 weights per output channel; int16 states whose full scale is the model's saturation bound (so the
    integer saturation is the float clamp); input and logit scales from calibration with `margin` headroom."""
    cfg = model.cfg
    model.eval()
    peak = _ranges(model, calib_x)
    s_x = peak["input"] / 127.0
    s_m = cfg.memory_clip / INT16_MAX
    pop_scale = {p: model.clip(p) / INT16_MAX for p in POP_NAMES}
    for p in POP_NAMES:
        thr = float(model.threshold(p).detach().max())
        if thr >= model.clip(p):
            raise EdgememError(f"the {p} population's threshold {thr:.3g} is not below its clip {model.clip(p)}")
    s_y = margin * peak["logits"] / INT16_MAX
    fcs = {}
    for name in FC_NAMES:
        layer = getattr(model, name)
        s_in = 1.0 if name in SPIKE_INPUTS else s_x
        s_out = s_y if name == "out" else pop_scale[FEEDS[name]]
        fcs[name] = quantize_fc(layer.weight, layer.bias, s_in, s_out)
    pops = {p: _pop(model.pops[p], pop_scale[p], k == "cuba") for p, k in zip(POP_NAMES, cfg.neurons)}
    a = model.memory.A.double().numpy()
    a_shift = 15 - (math.floor(math.log2(np.abs(a).max())) + 1)
    a_q = np.clip(np.round(a * (1 << a_shift)), -32768, 32767).astype(np.int64)
    b_q = np.round(model.memory.B.double().numpy() / s_m).astype(np.int64)
    return QuantL2MU(
        cfg.n_in, cfg.n_u, cfg.order, cfg.n_h, cfg.n_out, fcs, pops, a_q, a_shift, b_q, s_x, s_m, s_y,
        info={k: float(v) for k, v in peak.items()},
    )
