"""The spiking models (L2MU, spiking LMUFormer) as a NIR graph (Neuromorphic Intermediate Representation, `nir` 1.0).

Time. NIR nodes are continuous-time; one model step is one time step of length DT (snntorch's export convention,
dt = 1e-4 s). A snntorch neuron with decay beta (alpha for the synaptic current) becomes

    Leaky    -> nir.LIF     tau = dt / (1 - beta), r = tau / dt, v_leak = 0, v_threshold = the neuron's threshold
    Synaptic -> nir.CubaLIF tau_mem = dt / (1 - beta), r = tau_mem / dt, tau_syn = dt / (1 - alpha), w_in = tau_syn / dt

so that the forward-Euler step of NIR's equations with step dt (edgemem/export/nir_sim.py) is exactly snntorch's update:
v = beta v + I (LIF), and I = alpha I + x, v = beta v + I (CubaLIF, the new I). beta = 1 gives tau = inf (no leak).
snntorch clamps beta and alpha to [0, 1] when it steps, so the exported values are clamped the same way.

What is expressed with plain NIR nodes:
  * every weight product: nir.Affine / nir.Linear, BatchNorm (running statistics) folded into the product before it;
  * edges into one node are summed (NIR's rule), so the residuals of the LMUFormer (a spike vector added to the next
    LIF's current) are plain edges;
  * recurrence (the L2MU's previous hidden/memory spikes) through nir.Delay nodes of one step (delay = dt);
  * the causal Conv1d of the LMUFormer over time: a conv with kernel k over the time axis is, per tap j, a Linear of
    W[:, :, j] on the input delayed by k-1-j steps (nir.Delay); the zero-initialised delays are the left zero padding;
  * the LMU memory m_t = A m_{t-1} + B u_t: a nir.Scale node `lmu_m` (scale 1) that sums a Linear of B (kron(I, B)) on u and
    a Linear of A (kron(I, A)) on m delayed by one step: a Linear and a Delay in a cycle, exact in discrete time.

What NIR cannot express (returned by `to_nir` as "node: reason" and stored in the graph's metadata `unsupported`;
the node carries the detail in metadata keys `edgemem_*`, which nir_sim honours unless told to ignore them):
  * reset by subtraction: snntorch subtracts the threshold at the step after a spike (v = beta v + I - thr s_{t-1});
    NIR's LIF/CubaLIF reset the membrane to v_reset;
  * a nonzero start: the L2MU recomputes the previous step's spikes from the stored membranes, so before the first
    step a neuron with a negative threshold has "spiked" (edgemem_initial on its Delay); NIR delays start at zero;
  * saturation (the models' `state_clip` / `memory_clip`): the LIF input current and the updated membrane (and the
    synaptic current) clamped to +-clip, and the LMU memory clamped to +-memory_clip.
"""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from edgemem.atomic import write_atomic
from edgemem.errors import EdgememError
from edgemem.models import registry

DT = 1e-4  # seconds per model step (snntorch's NIR convention)
RESET_SUBTRACT = "reset by subtraction (NIR LIF resets to v_reset)"


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()  # float64 in the file: tau = dt / (1 - beta) round-trips beta closely


def _tau(decay: torch.Tensor, n: int) -> np.ndarray:
    d = np.broadcast_to(_np(decay.clamp(0, 1)), (n,)).copy()
    with np.errstate(divide="ignore"):
        return DT / (1.0 - d)  # decay 1 -> inf: a pure integrator


def _bn_fold(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as y = scale * x + shift."""
    if isinstance(bn, nn.Identity):
        raise EdgememError("NIR export: BatchNorm already folded into a layer (a QCDQ twin); export the checkpoint")
    scale = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    return scale, _np(bn.bias) - _np(bn.running_mean) * scale


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.unsupported: list[str] = []

    def add(self, name: str, node: nir.NIRNode, *sources: str) -> str:
        self.nodes[name] = node
        self.edges += [(s, name) for s in sources]
        return name

    def flag(self, name: str, reason: str) -> None:
        self.unsupported.append(f"{name}: {reason}")

    def dense(self, name: str, w: np.ndarray, b: np.ndarray | None, *sources: str) -> str:
        node = nir.Linear(weight=w) if b is None else nir.Affine(weight=w, bias=b)
        return self.add(name, node, *sources)

    def delay(self, name: str, n: int, steps: int, source: str, initial: np.ndarray | None = None) -> str:
        """`initial`: the output before the first input arrives, where it is not NIR's zero (edgemem_initial)."""
        meta = {}
        if initial is not None and initial.any():
            meta["edgemem_initial"] = initial.astype(np.float64)
            self.flag(name, f"initial output nonzero for {int(np.count_nonzero(initial))} of {n} (NIR delays start at 0)")
        return self.add(name, nir.Delay(delay=np.full((n,), steps * DT), metadata=meta), source)

    def neuron(self, name: str, cell: nn.Module, n: int, clip: float, *sources: str) -> str:
        """A snntorch Leaky (-> LIF) or Synaptic (-> CubaLIF), reset by subtraction, saturated at +-clip."""
        thr = np.broadcast_to(_np(cell.threshold), (n,)).copy()
        tau = _tau(cell.beta, n)
        zeros = np.zeros(n)
        meta = {"edgemem_reset": "subtract", "edgemem_clip": float(clip)}
        if hasattr(cell, "alpha"):
            tau_syn = _tau(cell.alpha, n)
            node: nir.NIRNode = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau, r=tau / DT, v_leak=zeros, v_threshold=thr,
                                            v_reset=zeros, w_in=tau_syn / DT, metadata=meta)
        else:
            node = nir.LIF(tau=tau, r=tau / DT, v_leak=zeros, v_threshold=thr, v_reset=zeros, metadata=meta)
        self.flag(name, RESET_SUBTRACT)
        self.flag(name, f"saturation of input current and state at +-{clip:g}")
        return self.add(name, node, *sources)

    def memory(self, lmu: nn.Module, clip: float, source: str) -> str:
        """m_t = A m_{t-1} + B u_t per channel (flat index channel * order + i), saturated at +-clip."""
        eye = np.eye(lmu.channels)
        n = lmu.channels * lmu.order
        self.dense("lmu_B", np.kron(eye, _np(lmu.B)[:, None]), None, source)
        self.add("lmu_m", nir.Scale(scale=np.ones(n), metadata={"edgemem_clip": float(clip)}), "lmu_B", "lmu_A")
        self.delay("lmu_m_prev", n, 1, "lmu_m")
        self.dense("lmu_A", np.kron(eye, _np(lmu.A)), None, "lmu_m_prev")
        self.flag("lmu_m", f"saturation at +-{clip:g}")
        return "lmu_m"

    def graph(self, description: str) -> nir.NIRGraph:
        meta = {"producer": "edgemem", "model": description, "dt": DT, "unsupported": "\n".join(self.unsupported)}
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=meta)


def _l2mu(model: nn.Module) -> _Builder:
    cfg, b = model.cfg, _Builder()
    w = {k: _np(getattr(model, k).weight) for k in ("enc_x", "enc_h", "enc_m", "hid_x", "hid_h", "hid_m", "out")}
    b.add("input", nir.Input(input_type={"input": np.array([cfg.n_in])}))
    # the previous step's spikes (the model recomputes them from the stored membranes: the same 0/1 values, except
    # before the first step, where a neuron with a negative threshold spikes at rest)
    def at_rest(pop: str) -> np.ndarray:
        return (np.broadcast_to(_np(model.pops[pop].threshold), (cfg.pop_size(pop),)) < 0).astype(np.float64)

    b.delay("hidden_prev", cfg.n_h, 1, "hidden", at_rest("hidden"))
    b.delay("memory_prev", cfg.n_m, 1, "memory", at_rest("memory"))
    b.dense("enc_x", w["enc_x"], _np(model.enc_x.bias), "input")
    b.dense("enc_h", w["enc_h"], None, "hidden_prev")
    b.dense("enc_m", w["enc_m"], None, "memory_prev")
    b.neuron("encoder", model.pops["encoder"], cfg.n_u, cfg.state_clip, "enc_x", "enc_h", "enc_m")
    m = b.memory(model.memory, cfg.memory_clip, "encoder")
    n_lmu = cfg.n_u * cfg.order
    b.dense("memory_onoff", np.concatenate([np.eye(n_lmu), -np.eye(n_lmu)]), None, m)  # [m, -m]: on and off cells
    b.neuron("memory", model.pops["memory"], cfg.n_m, cfg.memory_clip, "memory_onoff")
    b.dense("hid_x", w["hid_x"], _np(model.hid_x.bias), "input")
    b.dense("hid_h", w["hid_h"], None, "hidden_prev")
    b.dense("hid_m", w["hid_m"], None, "memory")
    b.neuron("hidden", model.pops["hidden"], cfg.n_h, cfg.state_clip, "hid_x", "hid_h", "hid_m")
    b.dense("out", w["out"], _np(model.out.bias), "hidden")
    b.add("output", nir.Output(output_type={"output": np.array([cfg.n_out])}), "out")
    return b


def _lmuformer(model: nn.Module) -> _Builder:
    cfg, b = model.cfg, _Builder()
    clip = cfg.state_clip
    b.add("input", nir.Input(input_type={"input": np.array([cfg.n_in])}))
    src = "input"
    for i, conv in enumerate(model.convs):
        scale, shift = _bn_fold(model.conv_bns[i])
        weight = _np(conv.weight) * scale[:, None, None]  # [out][in][k]; tap k-1 meets the current frame
        bias = shift + (scale * _np(conv.bias) if conv.bias is not None else 0.0)
        taps = []
        for j in range(cfg.kernel):
            lag = cfg.kernel - 1 - j
            tap_src = src if lag == 0 else b.delay(f"conv{i}_lag{lag}", conv.in_channels, lag, src)
            taps.append(b.dense(f"conv{i}_tap{j}", weight[:, :, j], bias if lag == 0 else None, tap_src))
        src = b.neuron(f"emb{i}", model.lifs[f"emb{i}"], cfg.channels, clip, *taps)
    e = src
    s, t = _bn_fold(model.lmu_u_bn)
    b.dense("lmu_u", _np(model.lmu_u.weight) * s[:, None], t, e)
    u = b.neuron("u", model.lifs["u"], cfg.n_u, clip, "lmu_u")
    m = b.memory(model.memory, cfg.memory_clip, u)
    s, t = _bn_fold(model.lmu_bn)  # one BN over lmu_hm(m) + lmu_he(e): its scale into both, its shift once
    b.dense("lmu_hm", _np(model.lmu_hm.weight) * s[:, None], None, m)
    b.dense("lmu_he", _np(model.lmu_he.weight) * s[:, None], t, e)
    y = b.neuron("hid", model.lifs["hid"], cfg.channels, clip, "lmu_hm", "lmu_he", e)  # + e: the residual edge
    s, t = _bn_fold(model.mix1_bn)
    b.dense("mix1", _np(model.mix1.weight) * s[:, None], t, y)
    z = b.neuron("mix1_lif", model.lifs["mix1"], cfg.mixer_hidden, clip, "mix1")
    s, t = _bn_fold(model.mix2_bn)
    b.dense("mix2", _np(model.mix2.weight) * s[:, None], t, z)
    o = b.neuron("mix2_lif", model.lifs["mix2"], cfg.channels, clip, "mix2", y)  # + y: the residual edge
    b.dense("head", _np(model.head.weight), _np(model.head.bias), o)
    b.add("output", nir.Output(output_type={"output": np.array([cfg.n_out])}), "head")
    return b


def to_nir(model: nn.Module) -> tuple[nir.NIRGraph, list[str]]:
    """The model's streaming step as a NIR graph, and what NIR cannot express ("node: reason", also in metadata)."""
    kind = registry.kind_of(model)
    if kind == "l2mu":
        b = _l2mu(model)
    elif kind == "lmuformer" and model.cfg.spiking:
        b = _lmuformer(model)
    else:
        what = "a non-spiking lmuformer" if kind == "lmuformer" else f"a model of kind {kind}"
        raise EdgememError(f"NIR export needs a spiking model (l2mu or a spiking lmuformer), not {what}")
    return b.graph(kind), b.unsupported


def write_nir(model: nn.Module, path: Path) -> list[str]:
    """Write `model`'s NIR graph to `path` (a temp file renamed over it); returns the unsupported list."""
    graph, unsupported = to_nir(model)
    write_atomic(path, lambda tmp: nir.write(tmp, graph))
    return unsupported
