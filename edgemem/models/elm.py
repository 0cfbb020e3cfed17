"""The Expressive Leaky Memory (ELM) neuron (Spieler, Rahaman, Martius, Schölkopf, Levina, ICLR 2024) and a network
of them, written so that every step lowers to the integer ops of docs/graph.md (FC, ACT, LEAKY).

One neuron, per step t (x_t: [n_in]; all products below are per element unless written as a matrix):

    s_t   = clamp(lambda_s * s_{t-1} + W_s x_t, +-trace_clip)                      synaptic traces [n_s]
    a_t   = s_t, or with branches the sum of each branch's traces                   MLP input [n_a]
    h_t   = act(W_1a a_t + W_1m (lambda_m * m_{t-1}) + b_1)                         MLP hidden [n_mlp]
    dm_t  = W_2 h_t + b_2                                                            memory update [n_m]
    m_t   = clamp(lambda_m * m_{t-1} + (1 - lambda_m) * dm_t, +-memory_clip)         memory [n_m]
    y_t   = W_y m_t                                                                  per-step logits [n_out]

with lambda = exp(-1 / tau) and tau learned inside [tau_min, tau_max]. A network sums its neurons' y_t and adds
one shared bias. `ELMNeuron.folded()` gives the same step with the branch sums, lambda_m and (1 - lambda_m) folded
into the weights, which is the form the integer graph runs:

    s  = sat(lambda_s s + W_s x)                    FC(W_s, x) -> LEAKY(lambda_s)
    h  = act(W_1s s + W_1m' m_prev + b_1)           FC(W_1s, s) + FC(W_1m', m, ACC) -> ACT (LUT tanh or RELU)
    m  = sat(lambda_m m + W_2' h + b_2')            FC(W_2', h) -> LEAKY(lambda_m)
    y += W_y m                                      FC(W_y, m, ACC) (each neuron accumulates into the logits)

Differences from the paper, and why:
- The paper's MLP uses ReLU hidden layers and squashes its output with 1.7159 tanh(2x/3), scaled by lambda = 5 in
  the memory update (reference code: github.com/AaronSpieler/elmneuron). Here the hidden activation is `mlp_act`
  (tanh by default: the integer graph has a 256-entry tanh table; relu is the paper's) and the MLP output is linear:
  a tanh hidden layer already bounds dm, the memory is a unit-gain low-pass of dm, and a linear output lets
  (1 - lambda_m) fold into W_2 so that the memory update is one FC and one LEAKY op (an output tanh would need an
  elementwise product after the table, which the op set lacks). The paper's lambda = 5 is absorbed into W_2.
- The paper routes each input to its synapses with fixed indices and a positive weight w_s; here W_s is a full
  Linear n_in -> n_s (routing and weights learned), as one FC op.
- The MLP reads lambda_m * m_{t-1}, as the reference code does; it costs nothing after folding into W_1m.
- Traces and memory are clamped at `trace_clip` and `memory_clip`, the int16 full scale of the integer model, so
  that its saturation is this clamp (as l2mu.py does for its states).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgemem.models.limits import MAX_DIM

ACTIVATIONS = ("tanh", "relu")
READOUTS = ("sum", "last")


@dataclass(frozen=True)
class ELMConfig:
    n_in: int = 6
    n_out: int = 7
    n_neurons: int = 1  # each with its own traces, memory and MLP; all read x; their readouts add up
    n_s: int = 16  # synapses per neuron
    n_branch: int = 0  # 0: the MLP reads every trace; else n_s / n_branch consecutive synapses per branch, summed
    n_m: int = 16  # memory units per neuron
    n_mlp: int = 32  # hidden units of the integration MLP
    mlp_act: str = "tanh"  # tanh (integer LUT) or relu (the paper's)
    tau_s_min: float = 1.0  # synaptic time constants in steps: log-spaced init inside [min, max], learned there
    tau_s_max: float = 20.0
    tau_m_min: float = 1.0  # memory time constants in steps (the paper: 1 to 1000 on NeuronIO)
    tau_m_max: float = 150.0
    learn_tau: bool = True
    # Saturation bounds (= int16 full scale). On the watch data after 30 epochs about 1 % of trace and of memory
    # values sit at the bound (test subjects, 2 seeds); memory_clip 4 saturated 12 % of the memory and tested about
    # 1 point lower at the last epoch (one seed).
    trace_clip: float = 8.0  # traces s
    memory_clip: float = 8.0  # memory m
    readout: str = "sum"  # a sequence's class: argmax of the summed per-step logits

    def __post_init__(self) -> None:
        for name in ("n_in", "n_out", "n_neurons", "n_s", "n_m", "n_mlp"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
            if getattr(self, name) > MAX_DIM:
                raise ValueError(f"{name} = {getattr(self, name)} outside [1, {MAX_DIM}] (graph op limit)")
        if self.n_branch < 0 or (self.n_branch and self.n_s % self.n_branch):
            raise ValueError(f"n_branch must be 0 or divide n_s={self.n_s} (got {self.n_branch})")
        if self.mlp_act not in ACTIVATIONS:
            raise ValueError(f"mlp_act '{self.mlp_act}' (choose from {', '.join(ACTIVATIONS)})")
        if self.readout not in READOUTS:
            raise ValueError(f"readout '{self.readout}' (choose from {', '.join(READOUTS)})")
        for lo, hi in ((self.tau_s_min, self.tau_s_max), (self.tau_m_min, self.tau_m_max)):
            if not 0 < lo < hi:
                raise ValueError(f"time constant bounds need 0 < min < max (got {lo}, {hi})")
        if self.trace_clip <= 0 or self.memory_clip <= 0:
            raise ValueError("trace_clip and memory_clip must be > 0")

    @property
    def n_a(self) -> int:
        """Width of the MLP's synaptic input: the branch sums, or every trace without branches."""
        return self.n_branch or self.n_s

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> ELMConfig:
        return ELMConfig(**d)


class BoundedTau(nn.Module):
    """Time constants tau in [lo, hi]: log tau = log lo + (log hi - log lo) sigmoid(raw).

    The init is log-spaced at the centres of n equal bins of [log lo, log hi], so no unit starts on a bound, where the
    sigmoid's gradient vanishes (the paper's init puts the extremes 1e-6 from the bounds)."""

    def __init__(self, n: int, lo: float, hi: float, learn: bool) -> None:
        super().__init__()
        self.lo, self.hi = math.log(lo), math.log(hi)
        frac = (torch.arange(n, dtype=torch.float32) + 0.5) / n
        self.raw = nn.Parameter(torch.log(frac / (1 - frac)), requires_grad=learn)

    def tau(self) -> torch.Tensor:
        return torch.exp(self.lo + (self.hi - self.lo) * torch.sigmoid(self.raw))

    def decay(self) -> torch.Tensor:
        """lambda = exp(-1 / tau): the per-step decay (Q15 `beta` of a LEAKY op)."""
        return torch.exp(-1.0 / self.tau())


State = dict[str, torch.Tensor]


class ELMNeuron(nn.Module):
    """One ELM neuron; attribute names are those of the module docstring's equations."""

    def __init__(self, cfg: ELMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.syn = nn.Linear(cfg.n_in, cfg.n_s, bias=False)  # W_s
        self.tau_s = BoundedTau(cfg.n_s, cfg.tau_s_min, cfg.tau_s_max, cfg.learn_tau)
        self.tau_m = BoundedTau(cfg.n_m, cfg.tau_m_min, cfg.tau_m_max, cfg.learn_tau)
        self.mlp_a = nn.Linear(cfg.n_a, cfg.n_mlp)  # W_1a, b_1
        self.mlp_m = nn.Linear(cfg.n_m, cfg.n_mlp, bias=False)  # W_1m
        self.mlp_out = nn.Linear(cfg.n_mlp, cfg.n_m)  # W_2, b_2
        self.readout = nn.Linear(cfg.n_m, cfg.n_out, bias=False)  # W_y (the network adds one shared bias)
        with torch.no_grad():
            # A trace is a low-pass of W_s x with DC gain 1 / (1 - lambda_s): scaling W_s's rows by (1 - lambda_s)
            # starts every trace at the input's magnitude whatever its tau, well inside trace_clip.
            self.syn.weight.mul_((1 - self.tau_s.decay()).unsqueeze(1))

    def branch_matrix(self) -> torch.Tensor:
        """G [n_a][n_s]: 0/1, G[b][i] = 1 when synapse i is in branch b (identity without branches)."""
        c = self.cfg
        if not c.n_branch:
            return torch.eye(c.n_s)
        per = c.n_s // c.n_branch
        return (torch.arange(c.n_s)[None, :] // per == torch.arange(c.n_branch)[:, None]).float()

    def act(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z) if self.cfg.mlp_act == "tanh" else torch.relu(z)

    def step(self, x: torch.Tensor, s: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [b][n_in], traces s [b][n_s], memory m [b][n_m] -> y [b][n_out], s, m."""
        c = self.cfg
        lam_s, lam_m = self.tau_s.decay(), self.tau_m.decay()
        s = (lam_s * s + self.syn(x)).clamp(-c.trace_clip, c.trace_clip)
        a = s.view(s.shape[0], c.n_branch, -1).sum(-1) if c.n_branch else s
        h = self.act(self.mlp_a(a) + self.mlp_m(lam_m * m))
        dm = self.mlp_out(h)
        m = (lam_m * m + (1 - lam_m) * dm).clamp(-c.memory_clip, c.memory_clip)
        return self.readout(m), s, m

    @torch.no_grad()
    def folded(self) -> dict[str, torch.Tensor]:
        """The step as the integer graph runs it (module docstring), in float: branch sums folded into W_1s,
        lambda_m into W_1m, (1 - lambda_m) into W_2 and b_2. Shapes: W_s [n_s][n_in], lambda_s [n_s],
        W_1s [n_mlp][n_s], W_1m [n_mlp][n_m], b_1 [n_mlp], W_2 [n_m][n_mlp], b_2 [n_m], lambda_m [n_m],
        W_y [n_out][n_m]."""
        lam_s, lam_m = self.tau_s.decay(), self.tau_m.decay()
        g = self.branch_matrix().to(self.mlp_a.weight)
        return {
            "W_s": self.syn.weight.clone(), "lambda_s": lam_s,
            "W_1s": self.mlp_a.weight @ g, "W_1m": self.mlp_m.weight * lam_m[None, :], "b_1": self.mlp_a.bias.clone(),
            "W_2": self.mlp_out.weight * (1 - lam_m)[:, None], "b_2": self.mlp_out.bias * (1 - lam_m),
            "lambda_m": lam_m, "W_y": self.readout.weight.clone(),
        }


class ELMNet(nn.Module):
    """n_neurons ELM neurons reading the same input; logits = sum of their readouts + a shared bias."""

    def __init__(self, cfg: ELMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.neurons = nn.ModuleList(ELMNeuron(cfg) for _ in range(cfg.n_neurons))
        self.out_bias = nn.Parameter(torch.zeros(cfg.n_out))

    # ---- state -------------------------------------------------------------------------------------------
    def state_names(self) -> list[str]:
        return [f"{kind}_{k}" for k in range(self.cfg.n_neurons) for kind in ("trace", "memory")]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: (self.cfg.n_s,) if n.startswith("trace") else (self.cfg.n_m,) for n in self.state_names()}

    def init_state(self, batch: int, device: torch.device | None = None) -> State:
        dtype = self.out_bias.dtype  # a model converted with .double() steps in float64
        return {k: torch.zeros(batch, *s, device=device, dtype=dtype) for k, s in self.state_shapes().items()}

    # ---- running -----------------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """x [b][n_in] -> logits [b][n_out], new state."""
        new: State = {}
        logits = self.out_bias.expand(x.shape[0], -1)
        for k, neuron in enumerate(self.neurons):
            y, new[f"trace_{k}"], new[f"memory_{k}"] = neuron.step(x, state[f"trace_{k}"], state[f"memory_{k}"])
            logits = logits + y
        return logits, new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b][T][n_in] -> per-step logits [b][T][n_out] (sequential: the memory feeds the MLP)."""
        state = self.init_state(x.shape[0], x.device)
        out = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            out.append(y)
        return torch.stack(out, dim=1)

    # ---- cost --------------------------------------------------------------------------------------------
    def param_count(self) -> int:
        """Trained parameters (the time constants count when learn_tau)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def macs_per_step(self) -> int:
        """Multiply-accumulates of one step: the dense layers of every neuron, in the model's own form (the MLP
        reads n_a branch sums; folding the branches into W_1 for the integer graph makes that n_s)."""
        c = self.cfg
        per_neuron = c.n_in * c.n_s + c.n_mlp * (c.n_a + c.n_m) + c.n_m * c.n_mlp + c.n_out * c.n_m
        return c.n_neurons * per_neuron

    def elementwise_per_step(self) -> int:
        """Other arithmetic of one step, one op per element: trace decay and add (2 n_s), branch sums
        (n_s - n_branch), lambda_m * m_prev (n_m), biases b_1 and b_2 (n_mlp + n_m), the activation (n_mlp),
        the memory update lambda_m * m + (1 - lambda_m) * dm (3 n_m); per network, summing the neurons' readouts
        and the bias (n_neurons * n_out). Clamps are not counted (free saturation in the integer model)."""
        c = self.cfg
        branch = c.n_s - c.n_branch if c.n_branch else 0
        per_neuron = 2 * c.n_s + branch + c.n_m + (c.n_mlp + c.n_m) + c.n_mlp + 3 * c.n_m
        return c.n_neurons * (per_neuron + c.n_out)

    def flops_per_inference(self, steps: int) -> int:
        """FLOPs of a whole sequence: steps * (2 * macs_per_step + elementwise_per_step)."""
        return steps * (2 * self.macs_per_step() + self.elementwise_per_step())
