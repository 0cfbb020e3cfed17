"""A discrete-time simulator of NIR graphs, with the discretization edgemem/exporters/nir_export.py exports with.

One step of length dt (the graph's metadata `dt`, else nir_export.DT) evaluates every node once, in the graph's node
order (`nir.read` returns nodes sorted by name; the exporter's names put them in evaluation order, and nirtorch, which
snntorch's importer uses, evaluates them in the same order). A node's input is the sum of its sources' outputs; an
edge from a source that comes later in the order (or from the node itself) carries that source's output of the
previous step, zero before the first step: that is how a cycle (a recurrent edge) is stepped. A nir.Delay of k steps
outputs its input of k steps ago (zero before), available from the start of the step.

Neurons, forward Euler with step dt (the new synaptic current feeds the membrane in the same step, as in snntorch):
    LIF      v = (1 - dt/tau) v + (dt/tau) v_leak + (dt r/tau) x;  s = v > v_threshold;  v = v_reset where s
    CubaLIF  I = (1 - dt/tau_syn) I + (dt w_in/tau_syn) x;  then v as LIF with x = I
tau = inf (no leak, exported with r = inf) takes dt r / tau = 1, the limit of r = tau / dt.
With `extensions` (the default) the edgemem_* node metadata that NIR has no field for is honoured: reset by
subtraction (v -= v_threshold at the step after the membrane was above it, snntorch's reset_mechanism="subtract",
instead of the reset to v_reset), a node's nonzero output before the first step (`edgemem_initial`, what a recurrent
edge from it reads at the first step) and saturation (`edgemem_clip`: a neuron's input and updated states clamped,
per neuron; a Linear's or Scale's output, e.g. the LMU memory's, clamped). Without them the graph is run as plain NIR.
"""

from __future__ import annotations

from collections import deque

import nir
import numpy as np

from edgemem.errors import EdgememError
from edgemem.exporters.nir_export import DT


def _meta(node: nir.NIRNode, key: str) -> object:
    v = (node.metadata or {}).get(key)
    return v.decode() if isinstance(v, bytes) else v


def _width(node: nir.NIRNode) -> int:
    shape = next(iter(node.output_type.values()))
    return int(np.prod(shape))


def back_edges(graph: nir.NIRGraph) -> set[tuple[str, str]]:
    """The edges that read the previous step's output: into a node that is not after their source in node order
    (edges of a Delay excepted: its output is ready at the start of the step, its input taken at the end)."""
    pos = {n: i for i, n in enumerate(graph.nodes)}
    delay = {n for n, node in graph.nodes.items() if isinstance(node, nir.Delay)}
    return {(s, d) for s, d in graph.edges if pos[s] >= pos[d] and s not in delay and d not in delay}


class NIRSim:
    """Steps a (flat) NIR graph over a batch: `step(x [b][n_in]) -> y [b][n_out]`; `spikes` holds the last step's."""

    def __init__(self, graph: nir.NIRGraph, batch: int, extensions: bool = True, dtype: type = np.float32) -> None:
        self.g, self.ext, self.dtype = graph, extensions, dtype
        dt = (graph.metadata or {}).get("dt", DT)
        self.dt = float(dt)
        self.order = list(graph.nodes)
        self.sources: dict[str, list[str]] = {n: [] for n in graph.nodes}
        for src, dst in graph.edges:
            self.sources[dst].append(src)
        self.back = back_edges(graph)
        ins, outs = list(graph.inputs), list(graph.outputs)
        if len(ins) != 1 or len(outs) != 1:
            raise EdgememError(f"NIR simulation needs one Input and one Output node (got {len(ins)} and {len(outs)})")
        self.input, self.output = ins[0], outs[0]
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.delays: dict[str, deque[np.ndarray]] = {}
        self.spikes: dict[str, np.ndarray] = {}
        self.prev: dict[str, np.ndarray] = {}  # the previous step's output of every source of a back edge
        for s, _ in self.back:
            node = graph.nodes[s]
            init = _meta(node, "edgemem_initial") if extensions else None
            self.prev[s] = (np.zeros((batch, _width(node)), dtype) if init is None
                            else np.broadcast_to(self._c(init), (batch, _width(node))).copy())
        for name, node in graph.nodes.items():
            if isinstance(node, nir.Delay):
                steps = np.rint(np.asarray(node.delay, dtype=np.float64) / self.dt).astype(int)
                if steps.size == 0 or (steps != steps.flat[0]).any() or steps.flat[0] < 1:
                    raise EdgememError(f"NIR node {name}: delays must be one whole number >= 1 of steps")
                n = node.delay.shape[0]
                init = _meta(node, "edgemem_initial") if extensions else None
                start = np.zeros((batch, n), dtype) if init is None else np.broadcast_to(self._c(init), (batch, n))
                self.delays[name] = deque(start.copy() for _ in range(int(steps.flat[0])))
            elif isinstance(node, nir.LIF | nir.CubaLIF):
                n = np.asarray(node.v_threshold).shape[0]
                self.state[name] = {"v": np.zeros((batch, n), dtype)}
                if isinstance(node, nir.CubaLIF):
                    self.state[name]["i"] = np.zeros((batch, n), dtype)

    def _c(self, a: object) -> np.ndarray:
        return np.asarray(a, dtype=np.float64).astype(self.dtype)

    def _gain(self, scale: object, tau: np.ndarray) -> np.ndarray:
        """dt * scale / tau for the input of an Euler step; where tau and scale are both inf (a decay of 1 exported
        with the snntorch convention r = tau / dt, w_in = tau_syn / dt), its limit 1."""
        scale = np.broadcast_to(np.asarray(scale, np.float64), tau.shape)
        with np.errstate(invalid="ignore"):
            g = self.dt * scale / tau
        return self._c(np.where(np.isinf(tau) & np.isinf(scale), 1.0, g))

    def _clip(self, node: nir.NIRNode, x: np.ndarray) -> np.ndarray:
        c = _meta(node, "edgemem_clip") if self.ext else None
        if c is None:
            return x
        c = self._c(c)
        return np.clip(x, -c, c).astype(self.dtype)

    def _neuron(self, name: str, node: nir.NIRNode, x: np.ndarray) -> np.ndarray:
        st, dt = self.state[name], self.dt
        x = self._clip(node, x)
        if isinstance(node, nir.CubaLIF):
            tau_s = np.asarray(node.tau_syn, np.float64)
            st["i"] = self._c(1 - dt / tau_s) * st["i"] + self._gain(node.w_in, tau_s) * x
            x = st["i"]
            tau = np.asarray(node.tau_mem, np.float64)
        else:
            tau = np.asarray(node.tau, np.float64)
        v = self._c(1 - dt / tau) * st["v"] + self._gain(node.r, tau) * x
        leak = dt / tau * np.asarray(node.v_leak, np.float64)
        if leak.any():
            v = v + self._c(leak)
        thr = self._c(node.v_threshold)
        subtract = self.ext and _meta(node, "edgemem_reset") == "subtract"
        if subtract:  # snntorch: the previous membrane's spike (a negative threshold spikes at rest) subtracts now
            v = v - (st["v"] > thr).astype(self.dtype) * thr
        s = (v > thr).astype(self.dtype)
        if not subtract:
            v = np.where(s > 0, self._c(node.v_reset), v)
        st["v"] = self._clip(node, v)
        if "i" in st:
            st["i"] = self._clip(node, st["i"])
        self.spikes[name] = s
        return s

    def step(self, x: np.ndarray) -> np.ndarray:
        out: dict[str, np.ndarray] = {name: buf[0] for name, buf in self.delays.items()}
        for name in self.order:
            node = self.g.nodes[name]
            if name in self.delays:
                continue
            if name == self.input:
                out[name] = x.astype(self.dtype)
                continue
            srcs = self.sources[name]
            if not srcs:
                raise EdgememError(f"NIR node {name} has no input")
            parts = [self.prev[s] if (s, name) in self.back else out[s] for s in srcs]
            v = parts[0]
            for p in parts[1:]:
                v = v + p
            if isinstance(node, nir.Affine):
                out[name] = self._clip(node, v @ self._c(node.weight).T + self._c(node.bias))
            elif isinstance(node, nir.Linear):
                out[name] = self._clip(node, v @ self._c(node.weight).T)
            elif isinstance(node, nir.Scale):
                out[name] = self._clip(node, v * self._c(node.scale))
            elif isinstance(node, nir.Output):
                out[name] = v
            elif isinstance(node, nir.LIF | nir.CubaLIF):
                out[name] = self._neuron(name, node, v)
            else:
                raise EdgememError(f"NIR node {name}: {type(node).__name__} is not simulated")
        for name, buf in self.delays.items():
            buf.popleft()
            buf.append(sum(out[s] for s in self.sources[name]))
        for s in self.prev:
            self.prev[s] = out[s]
        return out[self.output]


def simulate(graph: nir.NIRGraph, xs: np.ndarray, extensions: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """xs [b][T][n_in] -> outputs [b][T][n_out] and every neuron node's spikes [b][T][n]."""
    sim = NIRSim(graph, xs.shape[0], extensions)
    ys, spikes = [], []
    for t in range(xs.shape[1]):
        ys.append(sim.step(xs[:, t]))
        spikes.append(dict(sim.spikes))
    return np.stack(ys, 1), {k: np.stack([s[k] for s in spikes], 1) for k in spikes[0]} if spikes else {}
