"""The LMU as a sequence classifier: the parallelizable LMU of Chilkuri & Eliasmith (2021, "Parallelizing Legendre
Memory Unit Training") for psMNIST, and, with `recurrent=True`, the original LMU of Voelker et al. (2019).

One step, parallelizable (default; module attributes in brackets):

    u_t      = E_x x_t                                      [enc_x, unit-norm rows]    [n_u]          (FC, ACT SAT s8)
    m_t      = clamp(A m_{t-1} + B u_t, +-memory_clip)      [memory: LMUMemory]        [n_u][order]   (LMU)
    h_t      = act(W_m m_t + W_x x_t + b)                   [hid_m, hid_x (bias b)]    [n_h]          (FC, FC ACC, ACT)
    logits_t = W_o h_t + b_o                                [out]                      [n_out]        (FC)

act is tanh (256-entry table in the integer graph) or relu; m_t is flattened channel-major (index c * order + i).
Nothing feeds back except the linear memory, so the memory of the whole sequence is a convolution of u with the
impulse response H[k] = A^k B, and training needs only the last step:

    m_T[c] = sum_{k<T} H[T-1-k] u_k[c]                      (one matmul: `forward_last`)

which makes CPU training on 784-step sequences cheap. `forward` gives every step's logits (the memory by FFT) and
`step` streams; the three agree (tests/test_models_elm_lmu.py).

Recurrent (`recurrent=True`, Voelker et al. 2019): u and h also read the previous hidden state, u the previous memory:

    u_t = E_x x_t + E_h h_{t-1} + E_m m_{t-1}               [enc_x, enc_h, enc_m]
    m_t = clamp(A m_{t-1} + B u_t, +-memory_clip)
    h_t = act(W_x x_t + W_h h_{t-1} + W_m m_t + b)          [hid_x, hid_h, hid_m]
    logits_t = W_o h_t + b_o

It is trained by stepping (backpropagation through time, one Python step per sample step): fine for 64-step digits,
slow for 784-step psMNIST (tests and the sanity numbers in the report give the cost).

The memory bound: the parallel forms cannot clamp inside the recursion, so they equal the clamped `step` only while
the clamp never acts. In the parallelizable model u depends on x alone, and E_x's rows have unit L2 norm (a weight
normalization: u's scale is redundant with W_m's columns, since m is linear in u, so nothing is lost), so |m| has a
bound that depends only on the input range, not on training: `memory_bound(x_lo, x_hi)` computes it exactly (an
adversarial input reaches it). Set memory_clip at or above it for the data's normalized range and the clamp never
acts, the FFT/closed form equal stepping exactly, and the int16 memory (full scale = memory_clip) never saturates.
The recurrent model is trained through the clamped step, so there the clamp acts during training as in the integer
model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from edgemem.models.limits import MAX_DIM, MAX_LMU_CELLS
from edgemem.models.lmu import DISCRETIZATIONS, LMUMemory

MAX_SUBSTEPS = 16  # each substep is one LMU op of the graph

ACTIVATIONS = ("tanh", "relu")
READOUTS = ("sum", "last")


@dataclass(frozen=True)
class LMURNNConfig:
    n_in: int = 1  # one pixel per step for psMNIST
    n_out: int = 10
    n_u: int = 1  # memory input channels
    order: int = 256  # Legendre memory order d
    theta: float = 784.0  # memory window in steps (= the sequence length for psMNIST)
    n_h: int = 128
    act: str = "tanh"  # tanh or relu
    recurrent: bool = False  # Voelker et al. 2019: h and m feed back into u and h (trained by stepping)
    unit_encoder: bool = True  # rows of E_x have unit L2 norm: the memory's range depends on the data only
    # Saturation bound of the memory (= int16 full scale). With theta 784 and standardized MNIST pixels (-0.42 to
    # 2.82), memory_bound is 15.5 at order 128, 21.4 at 256 and 27.5 at 468, so 32 keeps the clamp idle for all of
    # them (real test images reach |m| = 2.7, 3.6, 4.7); check memory_bound for other data or settings.
    memory_clip: float = 32.0
    readout: str = "last"  # a sequence's class: argmax of the last step's logits
    # zoh (exact for u held over a step) or euler with `substeps` substeps (cheaper on the MCU: docs/graph.md)
    discretization: str = "zoh"
    substeps: int = 1

    def __post_init__(self) -> None:
        for name in ("n_in", "n_out", "n_u", "order", "n_h"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
            if getattr(self, name) > MAX_DIM:
                raise ValueError(f"{name} = {getattr(self, name)} outside [1, {MAX_DIM}] (graph op limit)")
        if self.n_u * self.order > MAX_LMU_CELLS:
            raise ValueError(f"n_u * order = {self.n_u * self.order} > {MAX_LMU_CELLS} (graph LMU op limit)")
        if self.theta <= 0 or self.memory_clip <= 0:
            raise ValueError("theta and memory_clip must be > 0")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"act '{self.act}' (choose from {', '.join(ACTIVATIONS)})")
        if self.readout not in READOUTS:
            raise ValueError(f"readout '{self.readout}' (choose from {', '.join(READOUTS)})")
        if self.discretization not in DISCRETIZATIONS:
            raise ValueError(f"discretization '{self.discretization}' (choose from {', '.join(DISCRETIZATIONS)})")
        if self.substeps < 1 or self.substeps > MAX_SUBSTEPS or (self.discretization == "zoh" and self.substeps != 1):
            raise ValueError(f"substeps = {self.substeps}: euler takes 1..{MAX_SUBSTEPS}, zoh exactly 1")

    @property
    def n_m(self) -> int:
        return self.n_u * self.order

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> LMURNNConfig:
        return LMURNNConfig(**d)


class _UnitRows(nn.Module):
    """Weight parametrization: every row scaled to unit L2 norm (so `enc_x.weight` is the weight in use)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return F.normalize(w, dim=1)


def impulse_response(memory: LMUMemory, steps: int, dtype: torch.dtype) -> torch.Tensor:
    """H[k] = A^k B, k < steps: [steps][order], powers in float64 (exact for a float64 test), then `dtype`."""
    a = memory.A.double()
    h = [memory.B.double()]
    for _ in range(steps - 1):
        h.append(a @ h[-1])
    return torch.stack(h).to(dtype)


State = dict[str, torch.Tensor]


class LMURNN(nn.Module):
    """LMU classifier; see the module docstring for the equations and attribute names."""

    def __init__(self, cfg: LMURNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_x = nn.Linear(cfg.n_in, cfg.n_u, bias=False)
        if cfg.unit_encoder:
            parametrize.register_parametrization(self.enc_x, "weight", _UnitRows())
        self.memory = LMUMemory(cfg.n_u, cfg.order, cfg.theta, cfg.discretization, cfg.substeps)
        self.hid_m = nn.Linear(cfg.n_m, cfg.n_h, bias=False)
        self.hid_x = nn.Linear(cfg.n_in, cfg.n_h)  # carries the hidden bias b
        self.out = nn.Linear(cfg.n_h, cfg.n_out)
        if cfg.recurrent:
            self.enc_h = nn.Linear(cfg.n_h, cfg.n_u, bias=False)
            self.enc_m = nn.Linear(cfg.n_m, cfg.n_u, bias=False)
            self.hid_h = nn.Linear(cfg.n_h, cfg.n_h, bias=False)
        # H reversed for the closed form, per (steps, dtype, device): the memory's A and B are fixed, so H is
        # computed once per sequence length instead of once per batch (784 d x d products in float64).
        self._h_rev: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}

    def act(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z) if self.cfg.act == "tanh" else torch.relu(z)

    # ---- state -------------------------------------------------------------------------------------------
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = {"lmu_m": (self.cfg.n_m,)}
        if self.cfg.recurrent:
            shapes["h"] = (self.cfg.n_h,)
        return shapes

    def state_names(self) -> list[str]:
        return list(self.state_shapes())

    def init_state(self, batch: int, device: torch.device | None = None) -> State:
        dtype = self.out.weight.dtype
        return {k: torch.zeros(batch, *s, device=device, dtype=dtype) for k, s in self.state_shapes().items()}

    # ---- streaming ----------------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """x [b][n_in] -> logits [b][n_out], new state."""
        c = self.cfg
        m_prev = state["lmu_m"]
        u = self.enc_x(x)
        if c.recurrent:
            u = u + self.enc_h(state["h"]) + self.enc_m(m_prev)
        m = self.memory.step(m_prev.view(-1, c.n_u, c.order), u).flatten(1).clamp(-c.memory_clip, c.memory_clip)
        z = self.hid_m(m) + self.hid_x(x)
        if c.recurrent:
            z = z + self.hid_h(state["h"])
        h = self.act(z)
        new = {"lmu_m": m, "h": h} if c.recurrent else {"lmu_m": m}
        return self.out(h), new

    def _stepped(self, x: torch.Tensor) -> torch.Tensor:
        state = self.init_state(x.shape[0], x.device)
        out = []
        for t in range(x.shape[1]):
            y, state = self.step(x[:, t], state)
            out.append(y)
        return torch.stack(out, dim=1)

    # ---- whole sequences ------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b][T][n_in] -> per-step logits [b][T][n_out]: the memory of every step by FFT (recurrent: stepped)."""
        if self.cfg.recurrent:
            return self._stepped(x)
        m = self.memory.parallel(self.enc_x(x)).to(x.dtype).flatten(2)  # [b][T][n_m]
        return self.out(self.act(self.hid_m(m) + self.hid_x(x)))

    def last_memory(self, x: torch.Tensor) -> torch.Tensor:
        """The memory after the last step, m_T [b][n_m], in closed form (parallelizable model only)."""
        if self.cfg.recurrent:
            raise ValueError("the recurrent LMU has no closed-form memory (its u reads h and m)")
        steps = x.shape[1]
        key = (steps, x.dtype, x.device)
        if key not in self._h_rev:
            self._h_rev[key] = impulse_response(self.memory, steps, x.dtype).flip(0).to(x.device)
        m = torch.einsum("btc,td->bcd", self.enc_x(x), self._h_rev[key])  # sum_k u_k H[T-1-k]
        return m.flatten(1)

    def forward_last(self, x: torch.Tensor) -> torch.Tensor:
        """x [b][T][n_in] -> logits of the last step [b][n_out] (what psMNIST training needs)."""
        if self.cfg.recurrent:
            return self._stepped(x)[:, -1]
        return self.out(self.act(self.hid_m(self.last_memory(x)) + self.hid_x(x[:, -1])))

    # ---- the memory bound -------------------------------------------------------------------------------------
    @torch.no_grad()
    def memory_bound(self, x_lo: float, x_hi: float, steps: int | None = None) -> float:
        """Largest |m| that any input with every x_t in [x_lo, x_hi]^n_in can drive (parallelizable model).

        u_c ranges over [lo_c, hi_c] (E_x's row c on the input box); m[c][i] = sum_k H[k][i] u_c(t-k) is extreme when
        every u_c(t-k) sits at lo_c or hi_c by the sign of H[k][i]. The memory is stable, so summing H over `steps`
        (default 20 theta + 100, where the response has died out) bounds an unbounded stream too."""
        if self.cfg.recurrent:
            raise ValueError("the recurrent LMU's u reads h and m: its memory is bounded by the clamp")
        w = self.enc_x.weight.double()  # [n_u][n_in]
        lo = (w.clamp(min=0) * x_lo + w.clamp(max=0) * x_hi).sum(1)  # [n_u]
        hi = (w.clamp(min=0) * x_hi + w.clamp(max=0) * x_lo).sum(1)
        h = impulse_response(self.memory, steps or int(20 * self.cfg.theta) + 100, torch.float64)  # [K][d]
        pos, neg = h.clamp(min=0).sum(0), h.clamp(max=0).sum(0)  # [d]
        top = pos[None, :] * hi[:, None] + neg[None, :] * lo[:, None]
        bottom = pos[None, :] * lo[:, None] + neg[None, :] * hi[:, None]
        return float(torch.maximum(top.abs(), bottom.abs()).max())

    # ---- cost ---------------------------------------------------------------------------------------------
    def layer_macs(self) -> dict[str, int]:
        """Dense multiply-accumulates per step of every weight product, the memory's A m and B u included."""
        c = self.cfg
        macs = {"enc_x": c.n_in * c.n_u, "lmu_A": c.n_m * c.order, "lmu_B": c.n_m,
                "hid_m": c.n_m * c.n_h, "hid_x": c.n_in * c.n_h, "out": c.n_h * c.n_out}
        if c.recurrent:
            macs |= {"enc_h": c.n_h * c.n_u, "enc_m": c.n_m * c.n_u, "hid_h": c.n_h * c.n_h}
        return macs

    def macs_per_step(self) -> int:
        return sum(self.layer_macs().values())

    def elementwise_per_step(self) -> int:
        """Other arithmetic of one step: the hidden bias and activation (2 n_h) and the output bias (n_out); the adds
        that join FC outputs are accumulations, counted in the MACs; the clamp is free saturation."""
        return 2 * self.cfg.n_h + self.cfg.n_out

    def flops_per_inference(self, steps: int) -> int:
        """FLOPs of streaming a whole sequence: steps * (2 * macs_per_step + elementwise_per_step). (Training with
        forward_last costs far less: T * n_m MACs for the memory, then one hidden and output layer.)"""
        return steps * (2 * self.macs_per_step() + self.elementwise_per_step())

    def param_count(self) -> int:
        """Trainable parameters (the memory's A and B are fixed buffers; a unit-norm E_x counts its raw weights)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
