"""ELM network -> integer graph, from each neuron's folded step (edgemem/models/elm.py, ELMNeuron.folded):

    s  = LEAKY(lambda_s; FC(W_s, x))                 traces, int16 at trace_clip / 32767
    h  = ACT(FC(W_1s, s) + FC(W_1m', m_prev))        tanh: 256-entry table at lut.TANH_SCALES; relu: int8 at peak
    m  = LEAKY(lambda_m; FC(W_2', h))                memory, int16 at memory_clip / 32767
    y += FC(W_y, m)                                  logits, int16 at margin * peak / 32767 (neuron 0 adds the bias)

The float model clamps traces and memory at those bounds, so the integer saturation is the same operation.
"""

from __future__ import annotations

import numpy as np
import torch

from edgemem.models.elm import ELMNet
from edgemem.quant.lowering import INT16_MAX, Builder, Lowered, calibration_tensor, int8_scale, snap_peaks, to_np
from edgemem.quant.lut import TANH_SCALES, tanh


@torch.no_grad()
def _peaks(model: ELMNet, x: torch.Tensor) -> dict[str, float]:
    """Input, logits and (for relu MLPs) every neuron's hidden activation over the calibration sequences."""
    peak = {"input": float(x.abs().max()), "logits": 0.0}
    state = model.init_state(x.shape[0])
    for t in range(x.shape[1]):
        for k, neuron in enumerate(model.neurons):
            c, f = neuron.cfg, neuron.folded()
            s = (f["lambda_s"] * state[f"trace_{k}"] + x[:, t] @ f["W_s"].T).clamp(-c.trace_clip, c.trace_clip)
            h = neuron.act(s @ f["W_1s"].T + state[f"memory_{k}"] @ f["W_1m"].T + f["b_1"])
            peak[f"h{k}"] = max(peak.get(f"h{k}", 0.0), float(h.abs().max()))
        y, state = model.step(x[:, t], state)
        peak["logits"] = max(peak["logits"], float(y.abs().max()))
    return peak


def lower_elm(model: ELMNet, calib_x: np.ndarray, margin: float,
              weight_bits: dict[str, int] | None = None) -> Lowered:
    cfg = model.cfg
    peak = snap_peaks(_peaks(model, calibration_tensor(calib_x)))
    b = Builder(cfg.n_in, cfg.n_out, int8_scale(peak["input"]), weight_bits)
    s_trace, s_mem = cfg.trace_clip / INT16_MAX, cfg.memory_clip / INT16_MAX
    s_logits = margin * peak["logits"] / INT16_MAX
    x, logits = b.g.in_buffer, None
    for k, neuron in enumerate(model.neurons):
        f = {name: to_np(v) for name, v in neuron.folded().items()}
        s = b.leaky(f"trace{k}", b.fc(f"syn{k}", f["W_s"], None, x, s_trace), f["lambda_s"])  # type: ignore[arg-type]
        # m is read here, before this step's LEAKY writes it: the previous step's memory (a state buffer)
        m = b.state16(f"memory{k}", cfg.n_m, s_mem)
        s_pre = TANH_SCALES[0] if cfg.mlp_act == "tanh" else int8_scale(peak[f"h{k}"])
        pre = b.fc(f"mlp_a{k}", f["W_1s"], f["b_1"], s, s_pre)  # type: ignore[arg-type]
        b.fc(f"mlp_m{k}", f["W_1m"], None, m, s_pre, out=pre)  # type: ignore[arg-type]
        if cfg.mlp_act == "tanh":
            h = b.act(f"h{k}", pre, "lut", s_out=TANH_SCALES[1], fn=tanh)
        else:
            h = b.act(f"h{k}", pre, "relu")
        dm = b.fc(f"mlp_out{k}", f["W_2"], f["b_2"], h, s_mem)  # type: ignore[arg-type]
        b.leaky_into(f"memory{k}.update", dm, m, f["lambda_m"])  # type: ignore[arg-type]
        bias = to_np(model.out_bias) if k == 0 else None
        logits = b.fc(f"readout{k}", f["W_y"], bias, m, s_logits, out=logits)  # type: ignore[arg-type]
    assert logits is not None
    g = b.output(logits)
    return Lowered(g, b.scale[g.in_buffer], b.output_scale, peak, **b.extras())
