"""L2MU: the LMU with every population spiking (encoder, memory, hidden), built from snntorch neurons.

One time step is a module with explicit state in and out, so the same step is trained, exported and run in C.
Order of operations: docs/architecture.md ("One L2MU step").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import snntorch as snn
import torch
from snntorch import surrogate
from torch import nn
from torch.nn.utils import parametrize

from edgemem.models.lmu import LMUMemory

POPULATIONS = ("encoder", "memory", "hidden")


@dataclass(frozen=True)
class L2MUConfig:
    n_in: int = 6
    n_u: int = 4  # encoder neurons = LMU input channels
    order: int = 8  # Legendre memory order d
    theta: float = 100.0  # memory window, in steps
    n_h: int = 32  # hidden neurons
    n_out: int = 7
    neurons: tuple[str, str, str] = ("lif", "lif", "lif")  # encoder, memory, hidden: "lif" or "cuba"
    beta_init: float = 0.9
    alpha_init: float = 0.8
    threshold_init: float = 1.0
    memory_threshold_init: float = 0.1  # the memory m is small (|m| ~ 1), so its cells need a lower threshold
    surrogate: str = "atan"  # surrogate gradient: atan or fast_sigmoid
    surrogate_slope: float = 2.0
    dropout: float = 0.0  # on spikes between populations, training only (inference is unchanged)
    # Saturation bounds, as in the integer model (int16 full scale = the bound): currents, membranes and synaptic
    # currents of the encoder and hidden populations, and the LMU memory with its memory population. Without them
    # a neuron driven above threshold every step integrates without limit and no fixed int16 scale fits.
    state_clip: float = 8.0
    memory_clip: float = 2.0

    @property
    def n_m(self) -> int:
        return 2 * self.n_u * self.order  # on and off cells for every memory dimension

    def pop_size(self, pop: str) -> int:
        return {"encoder": self.n_u, "memory": self.n_m, "hidden": self.n_h}[pop]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["neurons"] = list(self.neurons)
        return d

    @staticmethod
    def from_dict(d: dict) -> L2MUConfig:
        return L2MUConfig(**{**d, "neurons": tuple(d["neurons"])})


def _surrogate(cfg: L2MUConfig):  # noqa: ANN202 (snntorch returns a callable)
    if cfg.surrogate == "atan":
        return surrogate.atan(alpha=cfg.surrogate_slope)
    if cfg.surrogate == "fast_sigmoid":
        return surrogate.fast_sigmoid(slope=cfg.surrogate_slope)
    raise ValueError(f"unknown surrogate '{cfg.surrogate}' (atan or fast_sigmoid)")


def _population(kind: str, n: int, cfg: L2MUConfig, threshold: float) -> nn.Module:
    beta = torch.full((n,), cfg.beta_init)
    thr = torch.full((n,), threshold)
    grad = _surrogate(cfg)
    if kind == "lif":
        return snn.Leaky(beta=beta, threshold=thr, spike_grad=grad, learn_beta=True, learn_threshold=True,
                         reset_mechanism="subtract")
    if kind == "cuba":
        return snn.Synaptic(
            alpha=torch.full((n,), cfg.alpha_init), beta=beta, threshold=thr, spike_grad=grad,
            learn_alpha=True, learn_beta=True, learn_threshold=True, reset_mechanism="subtract",
        )
    raise ValueError(f"unknown neuron kind '{kind}' (lif or cuba)")


State = dict[str, torch.Tensor]


def _as(spikes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """snntorch's surrogates return float32 spikes; a float64 model (the lowering's copy) needs them in float64
    (0/1: exact). Left alone when the dtypes agree, so a float32 trace (the ONNX export) gains no cast."""
    return spikes if spikes.dtype == like.dtype else spikes.to(like.dtype)


class L2MU(nn.Module):
    """Fully spiking LMU. Input: normalized sensor values (encoding-free: the encoder turns currents into spikes)."""

    def __init__(self, cfg: L2MUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        n_in, n_u, n_m, n_h = cfg.n_in, cfg.n_u, cfg.n_m, cfg.n_h
        self.enc_x = nn.Linear(n_in, n_u)
        self.enc_h = nn.Linear(n_h, n_u, bias=False)
        self.enc_m = nn.Linear(n_m, n_u, bias=False)
        self.hid_x = nn.Linear(n_in, n_h)
        self.hid_h = nn.Linear(n_h, n_h, bias=False)
        self.hid_m = nn.Linear(n_m, n_h, bias=False)
        self.out = nn.Linear(n_h, cfg.n_out)
        self.memory = LMUMemory(n_u, cfg.order, cfg.theta)
        self.drop = nn.Dropout(cfg.dropout)
        thresholds = {"encoder": cfg.threshold_init, "memory": cfg.memory_threshold_init, "hidden": cfg.threshold_init}
        self.pops = nn.ModuleDict(
            {p: _population(k, cfg.pop_size(p), cfg, thresholds[p]) for p, k in zip(POPULATIONS, cfg.neurons)}
        )
        # Training only (recipe model.norm_currents): BatchNorm of the encoder's and hidden population's input
        # currents; fold_current_norm puts it into the weights before the model is saved. Identity: no parameters.
        self.norm_enc: nn.Module = nn.Identity()
        self.norm_hid: nn.Module = nn.Identity()

    # ---- state -------------------------------------------------------------------------------------------
    def state_names(self) -> list[str]:
        names = []
        for p, kind in zip(POPULATIONS, self.cfg.neurons):
            if kind == "cuba":
                names.append(f"syn_{p}")
            names.append(f"mem_{p}")
        return [*names, "lmu_m"]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for name in self.state_names():
            shapes[name] = (self.cfg.n_u * self.cfg.order,) if name == "lmu_m" else (self.cfg.pop_size(name[4:]),)
        return shapes

    def init_state(self, batch: int, device: torch.device | None = None) -> State:
        dtype = self.out.weight.dtype  # a model converted with .double() (the lowering's copy) steps in float64
        return {k: torch.zeros(batch, *s, device=device, dtype=dtype) for k, s in self.state_shapes().items()}

    def threshold(self, pop: str) -> torch.Tensor:
        return self.pops[pop].threshold

    def _spike(self, pop: str, mem: torch.Tensor) -> torch.Tensor:
        """Spike of the previous step, recomputed from its membrane (same surrogate gradient as the neuron)."""
        neuron = self.pops[pop]
        return _as(neuron.spike_grad(mem - neuron.threshold), mem)

    def clip(self, pop: str) -> float:
        return self.cfg.memory_clip if pop == "memory" else self.cfg.state_clip

    def _fire(self, pop: str, cur: torch.Tensor, state: State, new: State) -> torch.Tensor:
        """snntorch neuron step with saturation: current, then (after the update) syn and mem are clamped.

        A spike needs mem > threshold, and thresholds stay below the clip, so clamping after the spike decision
        gives the same spikes as the integer model's saturate-then-compare.
        """
        neuron, c = self.pops[pop], self.clip(pop)
        cur = cur.clamp(-c, c)
        if f"syn_{pop}" in state:
            spk, syn, mem = neuron(cur, state[f"syn_{pop}"], state[f"mem_{pop}"])
            new[f"syn_{pop}"] = syn.clamp(-c, c)
        else:
            spk, mem = neuron(cur, state[f"mem_{pop}"])
        new[f"mem_{pop}"] = mem.clamp(-c, c)
        return _as(spk, cur)

    # ---- one step ----------------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State, dict[str, torch.Tensor]]:
        """x [b][n_in] -> logits [b][n_out], new state, spikes per population."""
        new: State = {}
        s_h_prev = self._spike("hidden", state["mem_hidden"])
        s_m_prev = self._spike("memory", state["mem_memory"])
        s_h_prev, s_m_prev = self.drop(s_h_prev), self.drop(s_m_prev)
        s_u = self._fire("encoder", self.norm_enc(self.enc_x(x) + self.enc_h(s_h_prev) + self.enc_m(s_m_prev)), state,
                         new)
        m = self.memory.step(state["lmu_m"].view(-1, self.cfg.n_u, self.cfg.order), s_u).flatten(1)
        m = m.clamp(-self.cfg.memory_clip, self.cfg.memory_clip)
        new["lmu_m"] = m
        s_m = self._fire("memory", torch.cat([m, -m], dim=1), state, new)
        s_h = self._fire("hidden", self.norm_hid(self.hid_x(x) + self.hid_h(s_h_prev) + self.hid_m(self.drop(s_m))),
                         state, new)
        return self.out(self.drop(s_h)), new, {"encoder": s_u, "memory": s_m, "hidden": s_h}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x [b][T][n_in] -> per-step logits [b][T][n_out] and spike counts per population [b]."""
        state = self.init_state(x.shape[0], x.device)
        logits, counts = [], {p: x.new_zeros(x.shape[0]) for p in POPULATIONS}
        for t in range(x.shape[1]):
            y, state, spikes = self.step(x[:, t], state)
            logits.append(y)
            for p, s in spikes.items():
                counts[p] = counts[p] + s.sum(dim=1)
        return torch.stack(logits, dim=1), counts

    def macs_per_step(self) -> int:
        """Multiply-accumulates of one step as dense layers (the LMU A matrix included)."""
        c = self.cfg
        fc = c.n_u * (c.n_in + c.n_h + c.n_m) + c.n_h * (c.n_in + c.n_h + c.n_m) + c.n_out * c.n_h
        return fc + c.n_u * c.order * (c.order + 1)


class _UnitInterval(nn.Module):
    """A leak as sigmoid(raw): inside (0, 1) with a gradient everywhere (snntorch clamps beta at 1, gradient 0)."""

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(raw)

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        v = value.clamp(1e-4, 1 - 1e-4)
        return torch.log(v) - torch.log1p(-v)


def bound_leaks(model: L2MU) -> None:
    """Train every learnable leak (beta; alpha of CuBa) of `model` through _UnitInterval (recipe
    model.bounded_leaks). `plain_leaks` turns them back into plain parameters holding the bounded values."""
    for neuron in model.pops.values():
        for name in ("beta", "alpha"):
            if isinstance(getattr(neuron, name, None), nn.Parameter):
                parametrize.register_parametrization(neuron, name, _UnitInterval())


def plain_leaks(model: L2MU) -> None:
    for neuron in model.pops.values():
        for name in ("beta", "alpha"):
            if parametrize.is_parametrized(neuron, name):
                parametrize.remove_parametrizations(neuron, name, leave_parametrized=True)


def add_current_norm(model: L2MU) -> None:
    """BatchNorm (statistics over the batch, per step) of the summed input current of the encoder and the hidden
    population, before their clip and neuron: the normalization the SNN-HAR and LMUFormer papers put before each
    LIF. `fold_current_norm` removes it again, exactly as the float model computes at inference."""
    model.norm_enc = nn.BatchNorm1d(model.cfg.n_u)
    model.norm_hid = nn.BatchNorm1d(model.cfg.n_h)


@torch.no_grad()
def fold_current_norm(model: L2MU) -> None:
    """Inference BatchNorm is k * cur + (b - k mu) per neuron, k = gamma / sqrt(var + eps): scale the rows of the
    three weight matrices feeding the current by k and move the offset into the input layer's bias. The model
    is then a plain L2MU (Identity norms, no extra keys), which every exporter takes as it is."""
    for norm_name, layers in (("norm_enc", ("enc_x", "enc_h", "enc_m")), ("norm_hid", ("hid_x", "hid_h", "hid_m"))):
        norm = getattr(model, norm_name)
        if not isinstance(norm, nn.BatchNorm1d):
            continue
        k = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        for name in layers:
            layer = getattr(model, name)
            layer.weight.mul_(k.unsqueeze(1))
        first = getattr(model, layers[0])
        first.bias.copy_(first.bias * k + norm.bias - k * norm.running_mean)
        setattr(model, norm_name, nn.Identity())


class L2MUStep(nn.Module):
    """Export wrapper: (x, *state) -> (logits, *state) with state tensors in `state_names()` order."""

    def __init__(self, model: L2MU) -> None:
        super().__init__()
        self.model = model
        self.names = model.state_names()

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits, new, _ = self.model.step(x, dict(zip(self.names, state)))
        return (logits, *[new[k] for k in self.names])
