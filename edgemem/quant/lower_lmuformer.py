"""LMUFormer (ANN and spiking) -> integer graph, following the step equations of edgemem/models/lmuformer.py.

Scales: the input and every ANN activation are int8 at (calibrated peak) / 127 (int16 at peak / 32767 for the
activations named in act_bits: ACT16, ReLU only where a ReLU makes them); the ANN LMU memory is int16 at
margin * peak / 32767; spiking currents and membranes are int16 at state_clip / 32767 and the spiking memory at
memory_clip / 32767 (the float model clamps there, so saturation means the same); logits int16 at margin * peak.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgemem.errors import EdgememError
from edgemem.graph.ir import DType
from edgemem.models.lmuformer import LMUFormer, _bn_seq
from edgemem.quant.lowering import (
    INT16_MAX,
    Builder,
    Lowered,
    calibration_tensor,
    fold_bn,
    int8_scale,
    snap_peaks,
    to_np,
)

# ANN activations the graph may keep at 16 bits (every op reading them takes int16: FC and ADD), with the torch
# layers that read them: `edgemem quantize` measures and chooses their width (e: the last conv's output).
ACT16: dict[str, tuple[str, ...]] = {"e": ("lmu_u", "lmu_he"), "y": ("mix1",), "z": ("mix2",), "o": ("head",)}


def _gelu(v: np.ndarray) -> np.ndarray:
    return F.gelu(torch.from_numpy(np.asarray(v, dtype=np.float64))).numpy()


@torch.no_grad()
def _peaks(model: LMUFormer, x: torch.Tensor) -> dict[str, float]:
    """Largest magnitude of every tensor the integer graph stores, on the calibration set (eval, parallel form)."""
    cfg = model.cfg
    peak: dict[str, float] = {"input": float(x.abs().max())}

    def note(key: str, v: torch.Tensor) -> torch.Tensor:
        peak[key] = max(peak.get(key, 0.0), float(v.abs().max()))
        return v

    f = x
    for i, (conv, bn) in enumerate(zip(model.convs, model.conv_bns)):
        z = note(f"conv{i}.pre", _bn_seq(bn, conv(F.pad(f.transpose(1, 2), (cfg.kernel - 1, 0))).transpose(1, 2)))
        f = note(f"conv{i}", model._act(z))
    e = f
    u = note("u", _bn_seq(model.lmu_u_bn, model.lmu_u(e)))
    m = note("m", model.memory.parallel(u).flatten(2))
    pre = note("h.pre", _bn_seq(model.lmu_bn, model.lmu_hm(m) + model.lmu_he(e)))
    h = note("h", model._act(pre))
    y = note("y", e + h)
    pre1 = note("z.pre", _bn_seq(model.mix1_bn, model.mix1(y)))
    z = note("z", model._act(pre1))
    o = note("o", y + _bn_seq(model.mix2_bn, model.mix2(z)))
    note("logits", model.head(o))
    return peak


def _w(layer: torch.nn.Module, bn: torch.nn.Module | None) -> tuple[np.ndarray, np.ndarray]:
    return fold_bn(to_np(layer.weight), to_np(getattr(layer, "bias", None)), bn)  # type: ignore[arg-type]


def lower_lmuformer(model: LMUFormer, calib_x: np.ndarray, margin: float,
                    weight_bits: dict[str, int] | None = None, act_bits: dict[str, int] | None = None,
                    events: bool = True) -> Lowered:
    cfg = model.cfg
    wide = {k for k, v in (act_bits or {}).items() if v == 16}
    bad = {k: v for k, v in (act_bits or {}).items() if k not in ACT16 or v not in (8, 16)}
    if bad:
        raise EdgememError(f"activation widths are 8 or 16 bits for {', '.join(ACT16)}: got {bad}")
    if wide and (cfg.spiking or (cfg.activation != "relu" and wide & {"e", "z"})):
        raise EdgememError("16-bit activations need the ANN LMUFormer, and ReLU where e or z come from an activation "
                           "(a GELU table writes int8)")
    x = calibration_tensor(calib_x)
    if cfg.spiking:
        with torch.no_grad():
            peak = snap_peaks({"input": float(x.abs().max()), "logits": float(model(x).abs().max())})
    else:
        peak = snap_peaks(_peaks(model, x))
    b = Builder(cfg.n_in, cfg.n_out, int8_scale(peak["input"]), weight_bits, events)
    s_cur = cfg.state_clip / INT16_MAX

    def lif(name: str, cur: int) -> int:
        neuron = model.lifs[name]
        return b.lif(name, cur, to_np(neuron.beta), to_np(neuron.threshold))  # type: ignore[arg-type]

    def act_scale(point: str, p: float) -> float:
        return p / INT16_MAX if point in wide else int8_scale(p)

    def act(name: str, pre: int, point: str = "") -> int:
        if cfg.activation == "relu":
            return b.act(name, pre, "relu", dtype=DType.S16 if point in wide else DType.S8)
        return b.act(name, pre, "lut", s_out=int8_scale(peak[name]), fn=_gelu)

    def pre_scale(name: str, point: str = "") -> float:
        """Scale of the int32 value an ANN activation reads: its own output's (ReLU) or the table's input (GELU)."""
        return act_scale(point, peak[name]) if cfg.activation == "relu" else int8_scale(peak[f"{name}.pre"])

    f = b.g.in_buffer
    for i, (conv, bn) in enumerate(zip(model.convs, model.conv_bns)):
        w, bias = _w(conv, bn)
        if cfg.spiking:
            f = lif(f"emb{i}", b.conv1d(f"conv{i}", w, bias, f, s_cur))
        else:
            point = "e" if i == len(model.convs) - 1 else ""  # the last conv's output feeds no conv
            f = act(f"conv{i}", b.conv1d(f"conv{i}", w, bias, f, pre_scale(f"conv{i}", point)), point)
    e = f

    w, bias = _w(model.lmu_u, model.lmu_u_bn)
    if cfg.spiking:
        u = lif("u", b.fc("lmu_u", w, bias, e, s_cur))
        s_m = cfg.memory_clip / INT16_MAX
    else:
        u = b.act("u", b.fc("lmu_u", w, bias, e, int8_scale(peak["u"])), "sat")
        s_m = margin * peak["m"] / INT16_MAX
    m = b.lmu("lmu", u, to_np(model.memory.A), to_np(model.memory.B), s_m)  # type: ignore[arg-type]

    w_hm, b_h = _w(model.lmu_hm, model.lmu_bn)
    w_he, _ = fold_bn(to_np(model.lmu_he.weight), None, model.lmu_bn)  # type: ignore[arg-type]
    s_h = s_cur if cfg.spiking else pre_scale("h")
    cur = b.fc("lmu_hm", w_hm, b_h, m, s_h)  # the folded BN's shift rides on the first FC only
    b.fc("lmu_he", w_he, None, e, s_h, out=cur)
    if cfg.spiking:
        b.add("res_e", e, out=cur)
        y = lif("hid", cur)
    else:
        h = act("h", cur)
        y = b.act("y", b.add("res_h", h, out=b.add("res_e", e, s_out=act_scale("y", peak["y"]))), "sat",
                  dtype=DType.S16 if "y" in wide else DType.S8)

    w, bias = _w(model.mix1, model.mix1_bn)
    if cfg.spiking:
        z = lif("mix1", b.fc("mix1", w, bias, y, s_cur))
    else:
        z = act("z", b.fc("mix1", w, bias, y, pre_scale("z", "z")), "z")

    w, bias = _w(model.mix2, model.mix2_bn)
    if cfg.spiking:
        cur2 = b.fc("mix2", w, bias, z, s_cur)
        b.add("res_y", y, out=cur2)
        o = lif("mix2", cur2)
    else:
        cur2 = b.fc("mix2", w, bias, z, act_scale("o", peak["o"]))
        b.add("res_y", y, out=cur2)
        o = b.act("o", cur2, "sat", dtype=DType.S16 if "o" in wide else DType.S8)

    logits = b.fc("head", to_np(model.head.weight), to_np(model.head.bias), o,  # type: ignore[arg-type]
                  margin * peak["logits"] / INT16_MAX)
    g = b.output(logits)
    return Lowered(g, b.scale[g.in_buffer], b.output_scale, peak, **b.extras())
