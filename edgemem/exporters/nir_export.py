"""The spiking models (L2MU, spiking LMUFormer) as a NIR graph (Neuromorphic Intermediate Representation, `nir` 1.0),
in the form snntorch's `import_from_nir` imports (docs/nir.md: what snntorch, Norse and Rockpool load, and how close
each one computes).

Time. NIR nodes are continuous-time; one model step is one time step of length DT (snntorch's export convention,
dt = 1e-4 s). A snntorch neuron with decay beta (alpha for the synaptic current) becomes

    Leaky    -> nir.LIF     tau = dt / (1 - beta), r = tau / dt, v_leak = 0
    Synaptic -> nir.CubaLIF tau_mem = dt / (1 - beta), r = tau_mem / dt, tau_syn = dt / (1 - alpha), w_in = tau_syn / dt

so that the forward-Euler step of NIR's equations with step dt (edgemem/exporters/nir_sim.py) is exactly snntorch's update:
v = beta v + I (LIF), and I = alpha I + x, v = beta v + I (CubaLIF, the new I). snntorch clamps beta and alpha to
[0, 1] when it steps, so the exported values are clamped the same way; a decay of 1 (no leak) is written as
tau = 1e12 dt (decay 1 - 1e-12, which is 1.0 in float32), not as tau = inf: the importers compute r dt / tau, and
inf / inf is NaN.

Thresholds. snntorch's importer takes one threshold per node, and the models learn one per neuron. Each neuron's
membrane is therefore written in units of its own |threshold|: the weights and biases into it are divided by
|threshold| and the node's v_threshold is 1. This is exact (spikes and the reset by subtraction scale with it). A
population with negative thresholds (the L2MU's memory cells may learn one) becomes two nodes, `NAME` (threshold 1) and
`NAME_neg` (threshold -1; `NAME_zero`, threshold 0, for a threshold of exactly 0). Each neuron node keeps the model's
thresholds (`edgemem_threshold`), its population (`edgemem_population`) and the population's neuron indices
(`edgemem_neurons`) in its metadata.

Graph. Only standard nodes: nir.Input, nir.Affine / nir.Linear (every weight product, BatchNorm's running statistics
folded into the product before it), nir.LIF, nir.CubaLIF, nir.Output. Edges into one node are summed (NIR's rule), so
the LMUFormer's residuals are edges. State other than membranes is a recurrent linear system written as a cycle:
    * the LMU memory m_t = A m_{t-1} + B u_t: node `lmu_m` (the identity) sums `lmu_B` (B u_t) and `lmu_A`
      (A m_{t-1}, an edge back from the node after it);
    * the LMUFormer's causal Conv1d over time (kernel k): node `conv{i}_hist` holds the last k frames,
      h_t = E x_t + S h_{t-1} (`conv{i}_in` embeds the new frame, `conv{i}_shift` shifts the older ones down), and the
      conv is one nir.Affine on h_t; the zero start of h is the left zero padding;
    * the L2MU's previous hidden and memory spikes feed the encoder (and the hidden population) through edges back.
Discrete time of a cycle: nodes are evaluated in name order (`nir.read` returns them sorted by name; nirtorch, which
snntorch's importer uses, evaluates them in that order), and an edge into a node that comes earlier (or the same) reads
the previous step's output of its source, zero before the first step. The exporter names every node `NN_name`, NN its
place in the evaluation order, so that this order is a topological order of the graph without the recurrent edges,
every recurrent edge goes back in it, and every node a recurrent edge enters has another input (nirtorch reads a
previous output only there). The graph's metadata lists the recurrent edges (`recurrent_edges`).

What NIR cannot express (returned by `to_nir` as "node: reason" and stored in the graph's metadata `unsupported`;
the node carries the detail in metadata keys `edgemem_*`, which nir_sim honours unless told to ignore them):
  * reset by subtraction: snntorch subtracts the threshold at the step after a spike (v = beta v + I - thr s_{t-1});
    NIR's LIF/CubaLIF reset the membrane to v_reset (`edgemem_reset` = "subtract");
  * saturation (the models' `state_clip` / `memory_clip`): the neuron's input current and updated membrane (and
    synaptic current) clamped to +-clip, in the node's threshold units (`edgemem_clip`, one per neuron), and the LMU
    memory clamped to +-memory_clip (`edgemem_clip` on `lmu_m`);
  * a nonzero start: the L2MU recomputes the previous step's spikes from the stored membranes, so before the first
    step a neuron with a negative threshold has "spiked"; the recurrent edge that carries it starts at
    `edgemem_initial` (on its source), not at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

from edgemem.atomic import write_atomic
from edgemem.errors import EdgememError
from edgemem.models import registry

DT = 1e-4  # seconds per model step (snntorch's NIR convention)
MIN_LEAK = 1e-12  # 1 - decay is at least this: a decay of 1 is tau = 1e12 dt, finite (see the module docstring)
RESET_SUBTRACT = "reset by subtraction (NIR LIF resets to v_reset)"
_SIGNS = ((1.0, ""), (-1.0, "_neg"), (0.0, "_zero"))  # threshold sign -> node name suffix


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()  # float64 in the file: tau = dt / (1 - beta) round-trips beta closely


def _tau(decay: torch.Tensor, n: int) -> np.ndarray:
    d = np.broadcast_to(_np(decay.clamp(0, 1)), (n,))
    return DT / np.maximum(1.0 - d, MIN_LEAK)


def _bn_fold(bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as y = scale * x + shift."""
    if isinstance(bn, nn.Identity):
        raise EdgememError("NIR export: BatchNorm already folded into a layer (a QCDQ twin); export the checkpoint")
    scale = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    return scale, _np(bn.bias) - _np(bn.running_mean) * scale


@dataclass
class _Pop:
    """What feeds and is fed: a population's nodes (one per threshold sign) or one plain node.

    groups: (node, indices of the population's neurons it holds); unit: each neuron's |threshold| (1 for a plain
    node), the unit its inputs are divided by; at_rest: the output the model reads before the first step."""

    groups: list[tuple[str, np.ndarray]]
    unit: np.ndarray
    at_rest: np.ndarray


def _plain(name: str, n: int) -> _Pop:
    return _Pop([(name, np.arange(n))], np.ones(n), np.zeros(n))


class _Builder:
    def __init__(self) -> None:
        self.nodes: dict[str, nir.NIRNode] = {}
        self.edges: list[tuple[str, str]] = []
        self.recurrent: set[tuple[str, str]] = set()
        self.unsupported: list[tuple[str, str]] = []  # (node, reason); node names get their order prefix at the end

    def add(self, name: str, node: nir.NIRNode) -> str:
        if name in self.nodes:
            raise EdgememError(f"NIR export: node {name} defined twice")
        self.nodes[name] = node
        return name

    def flag(self, name: str, reason: str) -> None:
        self.unsupported.append((name, reason))

    def feed(self, name: str, target: _Pop, w: np.ndarray | None, b: np.ndarray | None, source: _Pop,
             recurrent: bool = False) -> None:
        """target += w @ source + b (w None: the identity), one nir.Linear / nir.Affine per (target node, source
        node), its rows divided by the target neurons' units. `recurrent`: the edge into the target reads the
        previous step's output (its source must come after the target in the evaluation order)."""
        n_src = len(source.unit)
        w = np.eye(n_src) if w is None else w
        for t_node, t_idx in target.groups:
            unit = target.unit[t_idx]
            for k, (s_node, s_idx) in enumerate(source.groups):
                weight = w[np.ix_(t_idx, s_idx)] / unit[:, None]
                bias = b[t_idx] / unit if b is not None and k == 0 else None
                dense = f"{name}{_suffix(t_node, target)}{_suffix(s_node, source)}"
                meta = {}
                if recurrent:
                    start = weight @ source.at_rest[s_idx] + (0.0 if bias is None else bias)
                    if start.any():
                        meta["edgemem_initial"] = start.astype(np.float64)
                        self.flag(dense, f"output before the first step nonzero for {int(np.count_nonzero(start))} "
                                         f"of {len(start)} (a recurrent edge starts at 0)")
                node = nir.Linear(weight=weight, metadata=meta) if bias is None else \
                    nir.Affine(weight=weight, bias=bias, metadata=meta)
                self.add(dense, node)
                self.edges += [(s_node, dense), (dense, t_node)]
                if recurrent:
                    self.recurrent.add((dense, t_node))

    def neuron(self, name: str, cell: nn.Module, n: int, clip: float) -> _Pop:
        """A snntorch Leaky (-> LIF) or Synaptic (-> CubaLIF), reset by subtraction, saturated at +-clip, in units of
        each neuron's |threshold| (one node per threshold sign). Its inputs come from `feed`."""
        thr = np.broadcast_to(_np(cell.threshold), (n,)).copy()
        unit = np.where(thr != 0, np.abs(thr), 1.0)
        tau = _tau(cell.beta, n)
        tau_syn = _tau(cell.alpha, n) if hasattr(cell, "alpha") else None
        groups = []
        for sign, suffix in _SIGNS:
            idx = np.flatnonzero(np.sign(thr) == sign)
            if not idx.size:
                continue
            k, zeros = len(idx), np.zeros(len(idx))
            meta = {"edgemem_reset": "subtract", "edgemem_clip": clip / unit[idx], "edgemem_threshold": thr[idx],
                    "edgemem_population": name, "edgemem_neurons": idx.astype(np.int64)}
            if tau_syn is not None:
                node: nir.NIRNode = nir.CubaLIF(
                    tau_syn=tau_syn[idx], tau_mem=tau[idx], r=tau[idx] / DT, v_leak=zeros,
                    v_threshold=np.full(k, sign), v_reset=zeros, w_in=tau_syn[idx] / DT, metadata=meta)
            else:
                node = nir.LIF(tau=tau[idx], r=tau[idx] / DT, v_leak=zeros, v_threshold=np.full(k, sign),
                               v_reset=zeros, metadata=meta)
            node_name = self.add(name + suffix, node)
            self.flag(node_name, RESET_SUBTRACT)
            self.flag(node_name, f"saturation of input current and state at +-{clip:g} (in threshold units)")
            groups.append((node_name, idx))
        return _Pop(groups, unit, (thr < 0).astype(np.float64))  # thr < 0: mem 0 > thr, a spike at rest

    def identity(self, name: str, n: int, clip: float | None = None) -> _Pop:
        """A node that sums its inputs (nir.Linear of the identity): the state of a recurrent linear system."""
        meta = {} if clip is None else {"edgemem_clip": float(clip)}
        self.add(name, nir.Linear(weight=np.eye(n), metadata=meta))
        if clip is not None:
            self.flag(name, f"saturation at +-{clip:g}")
        return _plain(name, n)

    def relay(self, name: str, pop: _Pop) -> _Pop:
        """The population's spikes through identity nodes: a neuron's recurrence then has no neuron <-> dense 2-cycle,
        which snntorch's importer rewrites into a subgraph that sends the external input through the recurrent
        weights (snntorch 1.0.0, `_create_rnn_subgraph`: an edge input -> W_rec)."""
        groups = []
        for node, idx in pop.groups:
            relay = self.add(name + _suffix(node, pop), nir.Linear(weight=np.eye(len(idx))))
            self.edges.append((node, relay))
            groups.append((relay, idx))
        return _Pop(groups, np.ones(len(pop.unit)), pop.at_rest)

    def memory(self, lmu: nn.Module, clip: float, source: _Pop) -> _Pop:
        """m_t = A m_{t-1} + B u_t per channel (flat index channel * order + i), saturated at +-clip."""
        eye = np.eye(lmu.channels)
        m = self.identity("lmu_m", lmu.channels * lmu.order, clip)
        self.feed("lmu_B", m, np.kron(eye, _np(lmu.B)[:, None]), None, source)
        self.feed("lmu_A", m, np.kron(eye, _np(lmu.A)), None, m, recurrent=True)
        return m

    def graph(self, description: str) -> tuple[nir.NIRGraph, list[str]]:
        order = self._order()
        width = len(str(len(order) - 1))
        new = {old: f"{i:0{width}d}_{old}" for i, old in enumerate(order)}
        nodes = {new[o]: self.nodes[o] for o in order}
        edges = [(new[s], new[d]) for s, d in self.edges]
        unsupported = [f"{new[n]}: {r}" for n, r in self.unsupported]
        recurrent = sorted(f"{new[s]}->{new[d]}" for s, d in self.recurrent)
        meta = {"producer": "edgemem", "model": description, "dt": DT, "unsupported": "\n".join(unsupported),
                "recurrent_edges": "\n".join(recurrent),
                "evaluation": "nodes in name order; an edge into an earlier node reads the previous step's output"}
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta), unsupported

    def _order(self) -> list[str]:
        """Topological order of the graph without its recurrent edges (ties: the order the nodes were added), checked
        for what the cycle rule needs (the module docstring)."""
        deps: dict[str, set[str]] = {n: set() for n in self.nodes}
        for s, d in self.edges:
            if (s, d) not in self.recurrent:
                deps[d].add(s)
        order: list[str] = []
        while len(order) < len(deps):
            ready = next((n for n in self.nodes if n not in order and deps[n] <= set(order)), None)
            if ready is None:
                raise EdgememError("NIR export: a cycle without a recurrent edge")
            order.append(ready)
        pos = {n: i for i, n in enumerate(order)}
        fan_in = {d: sum(1 for _, e in self.edges if e == d) for _, d in self.edges}
        for s, d in self.recurrent:
            if pos[s] <= pos[d] or fan_in[d] < 2:
                raise EdgememError(f"NIR export: recurrent edge {s}->{d} does not go back into a node with two inputs")
        for s, d in self.edges:
            if (s, d) not in self.recurrent and pos[s] >= pos[d]:
                raise EdgememError(f"NIR export: edge {s}->{d} goes back in the evaluation order")
        return order


def _suffix(node: str, pop: _Pop) -> str:
    """The threshold-sign suffix of a population's node ("" for a plain node or the positive one)."""
    return next((s for _, s in _SIGNS if s and len(pop.groups) > 1 and node.endswith(s)), "")


def _l2mu(model: nn.Module) -> _Builder:
    cfg, b = model.cfg, _Builder()
    w = {k: _np(getattr(model, k).weight) for k in ("enc_x", "enc_h", "enc_m", "hid_x", "hid_h", "hid_m", "out")}
    b.add("input", nir.Input(input_type={"input": np.array([cfg.n_in])}))
    x = _plain("input", cfg.n_in)
    enc = b.neuron("encoder", model.pops["encoder"], cfg.n_u, cfg.state_clip)
    b.feed("enc_x", enc, w["enc_x"], _np(model.enc_x.bias), x)
    m = b.memory(model.memory, cfg.memory_clip, enc)
    n_lmu = cfg.n_u * cfg.order
    mem = b.neuron("memory", model.pops["memory"], cfg.n_m, cfg.memory_clip)
    b.feed("memory_onoff", mem, np.concatenate([np.eye(n_lmu), -np.eye(n_lmu)]), None, m)  # [m, -m]: on, off cells
    hid = b.neuron("hidden", model.pops["hidden"], cfg.n_h, cfg.state_clip)
    b.feed("hid_x", hid, w["hid_x"], _np(model.hid_x.bias), x)
    b.feed("hid_m", hid, w["hid_m"], None, mem)
    # the previous step's spikes: edges back (the model recomputes them from the stored membranes: the same 0/1
    # values, except before the first step, where a neuron with a negative threshold spikes at rest)
    hid_spikes = b.relay("hidden_spikes", hid)
    b.feed("hid_h", hid, w["hid_h"], None, hid_spikes, recurrent=True)
    b.feed("enc_h", enc, w["enc_h"], None, hid_spikes, recurrent=True)
    b.feed("enc_m", enc, w["enc_m"], None, mem, recurrent=True)
    b.add("output", nir.Output(output_type={"output": np.array([cfg.n_out])}))
    b.feed("out", _plain("output", cfg.n_out), w["out"], _np(model.out.bias), hid)
    return b


def _lmuformer(model: nn.Module) -> _Builder:
    cfg, b = model.cfg, _Builder()
    clip, k = cfg.state_clip, cfg.kernel
    b.add("input", nir.Input(input_type={"input": np.array([cfg.n_in])}))
    src = _plain("input", cfg.n_in)
    for i, conv in enumerate(model.convs):
        scale, shift = _bn_fold(model.conv_bns[i])
        weight = _np(conv.weight) * scale[:, None, None]  # [out][in][k]; tap k-1 meets the current frame
        bias = shift + (scale * _np(conv.bias) if conv.bias is not None else 0.0)
        c_in = conv.in_channels
        hist = b.identity(f"conv{i}_hist", k * c_in)  # [x_t, x_{t-1}, ..., x_{t-k+1}]
        b.feed(f"conv{i}_in", hist, np.eye(k * c_in, c_in), None, src)
        b.feed(f"conv{i}_shift", hist, np.eye(k * c_in, k=-c_in), None, hist, recurrent=True)
        lif = b.neuron(f"emb{i}", model.lifs[f"emb{i}"], cfg.channels, clip)
        b.feed(f"conv{i}", lif, weight[:, :, ::-1].transpose(0, 2, 1).reshape(cfg.channels, k * c_in), bias, hist)
        src = lif
    e = src
    s, t = _bn_fold(model.lmu_u_bn)
    u = b.neuron("u", model.lifs["u"], cfg.n_u, clip)
    b.feed("lmu_u", u, _np(model.lmu_u.weight) * s[:, None], t, e)
    m = b.memory(model.memory, cfg.memory_clip, u)
    s, t = _bn_fold(model.lmu_bn)  # one BN over lmu_hm(m) + lmu_he(e): its scale into both, its shift once
    y = b.neuron("hid", model.lifs["hid"], cfg.channels, clip)
    b.feed("lmu_hm", y, _np(model.lmu_hm.weight) * s[:, None], None, m)
    b.feed("lmu_he", y, _np(model.lmu_he.weight) * s[:, None] + np.eye(cfg.channels), t, e)  # + e: the residual
    s, t = _bn_fold(model.mix1_bn)
    z = b.neuron("mix1", model.lifs["mix1"], cfg.mixer_hidden, clip)
    b.feed("mix1_fc", z, _np(model.mix1.weight) * s[:, None], t, y)
    s, t = _bn_fold(model.mix2_bn)
    o = b.neuron("mix2", model.lifs["mix2"], cfg.channels, clip)
    b.feed("mix2_fc", o, _np(model.mix2.weight) * s[:, None], t, z)
    b.feed("mix2_res", o, None, None, y)  # + y: the residual
    b.add("output", nir.Output(output_type={"output": np.array([cfg.n_out])}))
    b.feed("head", _plain("output", cfg.n_out), _np(model.head.weight), _np(model.head.bias), o)
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
    return b.graph(kind)


def populations(graph: nir.NIRGraph) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Population name -> its neuron nodes and the neuron indices each holds (from the nodes' metadata)."""
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for name, node in graph.nodes.items():
        pop = (node.metadata or {}).get("edgemem_population")
        if pop is not None:
            pop = pop.decode() if isinstance(pop, bytes) else str(pop)
            out.setdefault(pop, []).append((name, np.asarray(node.metadata["edgemem_neurons"], dtype=np.int64)))
    return out


def population_spikes(graph: nir.NIRGraph, spikes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Spikes per neuron node [..][k] (nir_sim, or a consumer's) -> spikes per population [..][n], in model order."""
    out = {}
    for pop, groups in populations(graph).items():
        n = sum(len(idx) for _, idx in groups)
        first = spikes[groups[0][0]]
        full = np.zeros((*first.shape[:-1], n), dtype=first.dtype)
        for node, idx in groups:
            full[..., idx] = spikes[node]
        out[pop] = full
    return out


def write_nir(model: nn.Module, path: Path) -> list[str]:
    """Write `model`'s NIR graph to `path` (a temp file renamed over it); returns the unsupported list."""
    graph, unsupported = to_nir(model)
    write_atomic(path, lambda tmp: nir.write(tmp, graph))
    return unsupported
