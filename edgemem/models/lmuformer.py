"""LMUFormer (Liu et al., 2024) for streaming keyword spotting, as a float ANN or fully spiking, built so that every
step lowers to the integer graph ops of docs/graph.md (CONV1D, FC, ACT, LIF, LMU, ADD).

Layout: a causal convolutional patch embedding, one LMU block (token mixing over time by the Legendre memory) and
one channel mixer (two 1x1 convolutions), both with residual connections, and a per-step linear classifier. A
sequence's class is the argmax of the per-step logits summed over time (the classifier is linear, so this equals
classifying the time-averaged features).

Training runs layer-parallel over the whole sequence (convolutions and linears over all T at once, the LMU memory by
FFT, LIF neurons as an elementwise loop over T); `step` is the streaming form with explicit state (conv ring buffers,
LMU memory, LIF membranes) that the exporter lowers. `step` is always the deployed model: BatchNorm uses its running
statistics (folded into the preceding weights at export) and there is no dropout, whatever the module's mode;
`forward` in eval mode computes the same thing in parallel.

One step, ANN (act = ReLU or GELU; BN(.) in eval mode is an affine map folded into the layer before it):
    f_0 = x_t                                                            [n_in]
    f_i = act(conv_bns[i-1](convs[i-1](f_{i-1}(t-k+1..t))))               [C],  i = 1..n_conv   (CONV1D, ACT)
    e   = f_{n_conv}
    u   = lmu_u_bn(lmu_u(e))                                             [n_u]                  (FC, ACT SAT -> s8)
    m   = A m + B u   per channel                                        [n_u][order]           (LMU)
    h   = act(lmu_bn(lmu_hm(m) + lmu_he(e)))                             [C]                    (FC, FC ACC, ACT)
    y   = e + h                                                                                  (ADD, ADD ACC, SAT)
    z   = act(mix1_bn(mix1(y)))                                          [rC]                   (FC, ACT)
    o   = y + mix2_bn(mix2(z))                                           [C]                    (FC, ADD ACC, SAT)
    logits = head(o)                                                     [n_out]                (FC)

One step, spiking (LIF_p = lifs[p]: snntorch Leaky, reset by subtraction, current and membrane clamped at
+-state_clip; every residual is the incoming 0/1 spike vector added, with scale 1, to the next LIF's current):
    s_0 = x_t (real input)
    s_i = LIF_emb{i-1}(conv_bns[i-1](convs[i-1](s_{i-1}(t-k+1..t))))      i = 1..n_conv          (CONV1D, LIF)
    e   = s_{n_conv}
    s_u = LIF_u(lmu_u_bn(lmu_u(e)))                                                             (FC, LIF)
    m   = clamp(A m + B s_u, +-memory_clip)                                                    (LMU, u = spikes)
    y   = LIF_hid(lmu_bn(lmu_hm(m) + lmu_he(e)) + e)                                            (FC, FC ACC, ADD ACC, LIF)
    z   = LIF_mix1(mix1_bn(mix1(y)))                                                            (FC, LIF)
    o   = LIF_mix2(mix2_bn(mix2(z)) + y)                                                        (FC, ADD ACC, LIF)
    logits = head(o)                                                                            (FC)

The spiking memory's input is 0/1, so |m| is bounded by the memory's impulse response (LMUMemory.peak_magnitude);
the config must have memory_clip at or above that bound, so the clamp never acts: the FFT in `forward` then equals
the recurrent `step` exactly and the int16 memory (full scale = memory_clip) never saturates. The ANN memory is
driven by a real u and is not clamped (its int16 scale comes from calibration, as for every other ANN tensor).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import snntorch as snn
import torch
import torch.nn.functional as F
from snntorch import surrogate
from torch import nn

from edgemem.models.limits import MAX_DIM, MAX_KERNEL, MAX_LMU_CELLS
from edgemem.models.lmu import LMUMemory

ACTIVATIONS = ("relu", "gelu")


@dataclass(frozen=True)
class LMUFormerConfig:
    n_in: int = 32  # mel bins per frame
    n_out: int = 12
    channels: int = 64  # C: width of the embedding, the LMU block output and the mixer
    kernel: int = 3  # causal conv kernel k (frames), stride 1
    n_conv: int = 2  # conv layers in the patch embedding (the first maps n_in -> C)
    n_u: int = 8  # LMU input channels, each with its own Legendre memory
    order: int = 16  # Legendre memory order d
    theta: float = 50.0  # memory window, in steps (frames)
    mixer_ratio: int = 2  # r: the channel mixer's hidden width is r * C
    activation: str = "relu"  # ANN only: relu (ACT RELU) or gelu (ACT LUT)
    spiking: bool = False
    beta_init: float = 0.5  # LIF decay; 0.5 is the tau = 2 LIF of Spikformer/LMUFormer
    threshold_init: float = 1.0
    surrogate: str = "atan"  # surrogate gradient: atan or fast_sigmoid
    surrogate_slope: float = 2.0
    # Saturation bounds of the spiking model, as in the integer model (int16 full scale = the bound): LIF currents
    # and membranes at state_clip, the LMU memory at memory_clip (which must cover the 0/1-input peak of |m|).
    state_clip: float = 8.0
    memory_clip: float = 2.0
    dropout: float = 0.1  # training only: on the inputs of lmu_u/lmu_he, mix1, mix2 and head

    def __post_init__(self) -> None:
        dims = {"n_in": self.n_in, "n_out": self.n_out, "channels": self.channels, "n_u": self.n_u,
                "order": self.order, "mixer hidden": self.mixer_ratio * self.channels}
        for name, v in dims.items():
            if not 1 <= v <= MAX_DIM:
                raise ValueError(f"{name} = {v} outside [1, {MAX_DIM}] (graph op limit)")
        if self.n_u * self.order > MAX_LMU_CELLS:
            raise ValueError(f"n_u * order = {self.n_u * self.order} > {MAX_LMU_CELLS} (graph LMU op limit)")
        if not 1 <= self.kernel <= MAX_KERNEL:
            raise ValueError(f"kernel = {self.kernel} outside [1, {MAX_KERNEL}] (graph CONV1D limit)")
        if self.n_conv < 1:
            raise ValueError(f"n_conv = {self.n_conv}: the patch embedding needs at least one conv layer")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{self.activation}' ({' or '.join(ACTIVATIONS)})")
        if self.surrogate not in ("atan", "fast_sigmoid"):
            raise ValueError(f"unknown surrogate '{self.surrogate}' (atan or fast_sigmoid)")
        if self.theta <= 0 or self.state_clip <= 0 or self.memory_clip <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("theta, state_clip and memory_clip must be > 0 and dropout in [0, 1)")
        if not 0 <= self.beta_init <= 1 or self.threshold_init <= 0 or self.surrogate_slope <= 0:
            raise ValueError("beta_init must be in [0, 1], threshold_init and surrogate_slope > 0")
        if self.spiking and self.threshold_init >= self.state_clip:
            # the float model decides spikes before clamping, the integer one after: equal only below the clip
            raise ValueError(f"threshold_init {self.threshold_init} must be below state_clip {self.state_clip}")

    @property
    def mixer_hidden(self) -> int:
        return self.mixer_ratio * self.channels

    def populations(self) -> dict[str, int]:
        """LIF populations of the spiking model, in step order, with their sizes."""
        c = self.channels
        pops = {f"emb{i}": c for i in range(self.n_conv)}
        return {**pops, "u": self.n_u, "hid": c, "mix1": self.mixer_hidden, "mix2": c}

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> LMUFormerConfig:
        return LMUFormerConfig(**d)


def _lif(n: int, cfg: LMUFormerConfig) -> snn.Leaky:
    grad = (surrogate.atan(alpha=cfg.surrogate_slope) if cfg.surrogate == "atan"
            else surrogate.fast_sigmoid(slope=cfg.surrogate_slope))
    return snn.Leaky(beta=torch.full((n,), cfg.beta_init), threshold=torch.full((n,), cfg.threshold_init),
                     spike_grad=grad, learn_beta=True, learn_threshold=True, reset_mechanism="subtract")


def _bn_eval(bn: nn.BatchNorm1d | nn.Identity, x: torch.Tensor) -> torch.Tensor:
    """The deployed BatchNorm on one step x [b][C]: running statistics whatever the mode (export folds exactly this).
    An nn.Identity in its place (a BN already folded into the layer before it: edgemem/exporters/qcdq.py) passes x."""
    if isinstance(bn, nn.Identity):
        return x
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)


def _bn_seq(bn: nn.BatchNorm1d | nn.Identity, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over a sequence x [b][T][C] (statistics over batch and time in training)."""
    return bn(x.transpose(1, 2)).transpose(1, 2)


def layer_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a layer computes with, for code that reads it directly instead of calling the layer: `.weight`, or
    for a brevitas layer its quantized weight (edgemem/exporters/qcdq.py), so that such code never bypasses a quantizer."""
    quant = getattr(layer, "quant_weight", None)
    if quant is None:
        return layer.weight  # type: ignore[return-value]
    w = quant()
    return w.value if hasattr(w, "value") else w  # a QuantTensor, or a plain tensor when brevitas skips wrapping it


State = dict[str, torch.Tensor]


class LMUFormer(nn.Module):
    """x [b][T][n_in] -> per-step logits [b][T][n_out]; `step` streams one frame. Equations: the module docstring."""

    def __init__(self, cfg: LMUFormerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c, k, r = cfg.channels, cfg.kernel, cfg.mixer_hidden
        # Layers followed by BatchNorm carry no bias: BN's shift is the bias, and folding gives one per output.
        self.convs = nn.ModuleList(nn.Conv1d(cfg.n_in if i == 0 else c, c, k, bias=False) for i in range(cfg.n_conv))
        self.conv_bns = nn.ModuleList(nn.BatchNorm1d(c) for _ in range(cfg.n_conv))
        # u gets a BN too (folded into lmu_u at export): it keeps the memory's drive near unit scale, which the int16
        # memory and, in the spiking model, the u neurons' thresholds need from the first step of training.
        self.lmu_u = nn.Linear(c, cfg.n_u, bias=False)
        self.lmu_u_bn = nn.BatchNorm1d(cfg.n_u)
        self.memory = LMUMemory(cfg.n_u, cfg.order, cfg.theta)
        self.lmu_hm = nn.Linear(cfg.n_u * cfg.order, c, bias=False)  # input index = channel * order + i (LMU op layout)
        self.lmu_he = nn.Linear(c, c, bias=False)
        self.lmu_bn = nn.BatchNorm1d(c)  # one BN over the sum: folds into both FCs, which accumulate into one buffer
        self.mix1 = nn.Linear(c, r, bias=False)
        self.mix1_bn = nn.BatchNorm1d(r)
        self.mix2 = nn.Linear(r, c, bias=False)
        self.mix2_bn = nn.BatchNorm1d(c)
        self.head = nn.Linear(c, cfg.n_out)
        self.drop = nn.Dropout(cfg.dropout)
        self.lifs = nn.ModuleDict({p: _lif(n, cfg) for p, n in cfg.populations().items()} if cfg.spiking else {})
        if cfg.spiking:
            peak = float(self.memory.peak_magnitude(0.0, 1.0).max())
            if cfg.memory_clip < peak:
                raise ValueError(
                    f"memory_clip {cfg.memory_clip} is below the peak |m| = {peak:.3f} that 0/1 spikes can drive "
                    f"(order {cfg.order}, theta {cfg.theta}): the clamp would act and the parallel (FFT) training "
                    f"model would no longer equal the streaming one; raise memory_clip")

    # ---- pieces shared by forward and step ---------------------------------------------------------------
    def _act(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.cfg.activation == "relu" else F.gelu(x)

    def _tap(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """Identity. The QCDQ export twin (edgemem/exporters/qcdq.py) hangs an activation quantizer on a name here through
        an `act_quant` ModuleDict: the names are the integer graph's int8 buffers (lower_lmuformer's peak keys, with
        `_pre` for `.pre`: a module name has no dots)."""
        taps = self._modules.get("act_quant")
        return taps[name](v) if taps is not None and name in taps else v  # type: ignore[index, operator]

    def _act_step(self, name: str, z: torch.Tensor) -> torch.Tensor:
        """The ANN activation in `step`, tapped before (`NAME_pre`: a GELU table's input) and after (`NAME`)."""
        return self._tap(name, self._act(self._tap(f"{name}_pre", z)))

    def _fire(self, pop: str, cur: torch.Tensor, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One LIF update with saturation, as l2mu: clamp the current, update, clamp the membrane.

        Spikes are decided on the unclamped membrane; thresholds stay below state_clip, so this equals the integer
        model's saturate-then-compare.
        """
        c = self.cfg.state_clip
        spk, mem = self.lifs[pop](cur.clamp(-c, c), mem)
        if spk.dtype != cur.dtype:  # snntorch's surrogates give float32 spikes; the lowering's float64 copy needs
            spk = spk.to(cur.dtype)  # float64 (0/1: exact); a float32 trace (the ONNX export) gains no cast
        return spk, mem.clamp(-c, c)

    def _fire_seq(self, pop: str, cur: torch.Tensor, rates: dict[str, torch.Tensor] | None) -> torch.Tensor:
        """LIF over a whole sequence: cur [b][T][n] -> spikes [b][T][n] (an elementwise loop over T)."""
        mem = cur.new_zeros(cur.shape[0], cur.shape[2])
        out = []
        for t in range(cur.shape[1]):
            spk, mem = self._fire(pop, cur[:, t], mem)
            out.append(spk)
        spikes = torch.stack(out, dim=1)
        if rates is not None:
            rates[pop] = spikes.detach().mean()
        return spikes

    def _clamp_memory(self, m: torch.Tensor) -> torch.Tensor:
        c = self.cfg.memory_clip
        return m.clamp(-c, c) if self.cfg.spiking else m

    # ---- parallel (training) ------------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor, rates: dict[str, torch.Tensor] | None) -> torch.Tensor:
        cfg = self.cfg
        f = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.conv_bns)):
            z = conv(F.pad(f.transpose(1, 2), (cfg.kernel - 1, 0))).transpose(1, 2)  # causal: left padding only
            z = _bn_seq(bn, z)
            f = self._fire_seq(f"emb{i}", z, rates) if cfg.spiking else self._act(z)
        e = f
        e_in = self.drop(e)
        u = _bn_seq(self.lmu_u_bn, self.lmu_u(e_in))
        if cfg.spiking:
            u = self._fire_seq("u", u, rates)
        m = self._clamp_memory(self.memory.parallel(u)).flatten(2)  # [b][T][n_u * order]
        cur_h = _bn_seq(self.lmu_bn, self.lmu_hm(m) + self.lmu_he(e_in))
        y = self._fire_seq("hid", cur_h + e, rates) if cfg.spiking else e + self._act(cur_h)
        cur_1 = _bn_seq(self.mix1_bn, self.mix1(self.drop(y)))
        z = self._fire_seq("mix1", cur_1, rates) if cfg.spiking else self._act(cur_1)
        cur_2 = _bn_seq(self.mix2_bn, self.mix2(self.drop(z)))
        o = self._fire_seq("mix2", cur_2 + y, rates) if cfg.spiking else y + cur_2
        return self.head(self.drop(o))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [b][T][n_in] -> per-step logits [b][T][n_out], layer-parallel over T."""
        return self._forward(x, None)

    @torch.no_grad()
    def spike_rates(self, x: torch.Tensor) -> dict[str, float]:
        """Mean firing rate (spikes per neuron per step) of every LIF population on x [b][T][n_in], in eval mode."""
        if not self.cfg.spiking:
            raise ValueError("spike_rates: this LMUFormer is not spiking")
        was = self.training
        self.eval()
        rates: dict[str, torch.Tensor] = {}
        try:
            self._forward(x, rates)
        finally:
            self.train(was)
        return {p: float(r) for p, r in rates.items()}

    # ---- streaming ----------------------------------------------------------------------------------------
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample state shapes, in a fixed order: conv rings (the last k-1 input frames, oldest first), the LMU
        memory (flat, index channel * order + i) and, when spiking, the LIF membranes."""
        cfg = self.cfg
        shapes: dict[str, tuple[int, ...]] = {}
        if cfg.kernel > 1:
            for i, conv in enumerate(self.convs):
                shapes[f"conv{i}"] = (cfg.kernel - 1, conv.in_channels)
        shapes["lmu_m"] = (cfg.n_u * cfg.order,)
        if cfg.spiking:
            for p, n in cfg.populations().items():
                shapes[f"mem_{p}"] = (n,)
        return shapes

    def state_names(self) -> list[str]:
        return list(self.state_shapes())

    def init_state(self, batch: int, device: torch.device | None = None) -> State:
        dtype = self.head.weight.dtype
        return {k: torch.zeros(batch, *s, device=device, dtype=dtype) for k, s in self.state_shapes().items()}

    def _conv_step(self, i: int, f: torch.Tensor, state: State, new: State) -> torch.Tensor:
        conv = self.convs[i]
        weight = layer_weight(conv)
        if self.cfg.kernel == 1:
            out = f @ weight[:, :, 0].T
        else:
            window = torch.cat([state[f"conv{i}"], f.unsqueeze(1)], dim=1)  # [b][k][c_in], current frame last
            new[f"conv{i}"] = window[:, 1:]
            out = torch.einsum("bkc,ock->bo", window, weight)  # tap k-1 (the last) meets the current frame
        # the convs have no bias (BN's shift is theirs); a twin with BN folded in (edgemem/exporters/qcdq.py) has one
        return out if conv.bias is None else out + conv.bias

    def step(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One frame x [b][n_in] -> logits [b][n_out], new state. Deployed semantics (BN running stats, no dropout)."""
        cfg = self.cfg
        new: State = {}

        def fire(pop: str, cur: torch.Tensor) -> torch.Tensor:
            spk, new[f"mem_{pop}"] = self._fire(pop, cur, state[f"mem_{pop}"])
            return spk

        f = x
        for i in range(cfg.n_conv):
            z = _bn_eval(self.conv_bns[i], self._conv_step(i, f, state, new))
            f = fire(f"emb{i}", z) if cfg.spiking else self._act_step(f"conv{i}", z)
        e = f
        u = _bn_eval(self.lmu_u_bn, self.lmu_u(e))
        u = fire("u", u) if cfg.spiking else self._tap("u", u)
        m = self.memory.step(state["lmu_m"].view(-1, cfg.n_u, cfg.order), u)
        new["lmu_m"] = m = self._clamp_memory(m).flatten(1)
        cur_h = _bn_eval(self.lmu_bn, self.lmu_hm(m) + self.lmu_he(e))
        y = fire("hid", cur_h + e) if cfg.spiking else self._tap("y", e + self._act_step("h", cur_h))
        cur_1 = _bn_eval(self.mix1_bn, self.mix1(y))
        z = fire("mix1", cur_1) if cfg.spiking else self._act_step("z", cur_1)
        cur_2 = _bn_eval(self.mix2_bn, self.mix2(z))
        o = fire("mix2", cur_2 + y) if cfg.spiking else self._tap("o", y + cur_2)
        return self.head(o), new

    # ---- cost -----------------------------------------------------------------------------------------------
    def layer_macs(self) -> dict[str, tuple[int, str | None]]:
        """Dense multiply-accumulates per step of every weight product, with the LIF population whose 0/1 spikes are
        its input (None: a real-valued input — the audio frame, or the LMU memory m).

        conv i: c_in * C * k; lmu_A: the memory update A m, n_u * order^2; lmu_B: B u, n_u * order; the FCs in * out.
        BN is folded into the layer before it; biases, activations, LIF updates and residual adds are O(C) per step
        elementwise work and are not counted.
        """
        cfg = self.cfg
        c, r, n_m = cfg.channels, cfg.mixer_hidden, cfg.n_u * cfg.order
        spk = cfg.spiking
        last = f"emb{cfg.n_conv - 1}" if spk else None
        out: dict[str, tuple[int, str | None]] = {}
        for i, conv in enumerate(self.convs):
            out[f"conv{i}"] = (conv.in_channels * c * cfg.kernel, f"emb{i - 1}" if spk and i > 0 else None)
        out["lmu_u"] = (c * cfg.n_u, last)
        out["lmu_A"] = (n_m * cfg.order, None)
        out["lmu_B"] = (n_m, "u" if spk else None)
        out["lmu_hm"] = (n_m * c, None)
        out["lmu_he"] = (c * c, last)
        out["mix1"] = (c * r, "hid" if spk else None)
        out["mix2"] = (r * c, "mix1" if spk else None)
        out["head"] = (c * cfg.n_out, "mix2" if spk else None)
        return out

    def macs_per_step(self) -> int:
        """Dense MACs of one step (every weight product, the LMU memory's A and B included)."""
        return sum(n for n, _ in self.layer_macs().values())

    def ops_per_step(self, spike_rates: dict[str, float] | None = None) -> dict[str, float]:
        """{"mac": ..., "ac": ...} per step. A product whose input is a 0/1 spike needs no multiply: it is an
        accumulate (AC), done only for the inputs that spiked, so it costs rate * dense count ACs (rate 1, the worst
        case, when `spike_rates` does not name the population). ANN: every product is a MAC."""
        rates = spike_rates or {}
        mac = ac = 0.0
        for n, pop in self.layer_macs().values():
            if pop is None:
                mac += n
            else:
                ac += rates.get(pop, 1.0) * n
        return {"mac": mac, "ac": ac}

    def flops_per_inference(self, steps: int) -> int:
        """2 x dense MACs per step x steps (a MAC = 2 FLOPs; the LMU memory's n_u * order^2 + n_u * order included)."""
        return 2 * self.macs_per_step() * steps

    def param_count(self, deployed: bool = False) -> int:
        """Trainable parameters (weights, biases, BN affine, LIF beta and threshold), or, with `deployed`, what the
        exported model stores after BN folding: weights, one bias per output of every layer, LIF beta and threshold
        (the LMU's A and B are fixed constants, not counted either way)."""
        if not deployed:
            return sum(p.numel() for p in self.parameters() if p.requires_grad)
        layers = [*self.convs, self.lmu_u, self.lmu_hm, self.lmu_he, self.mix1, self.mix2, self.head]
        weights = sum(m.weight.numel() for m in layers)
        biases = sum(m.weight.shape[0] for m in [*self.convs, self.lmu_u, self.lmu_he, self.mix1, self.mix2, self.head])
        lif = 2 * sum(self.cfg.populations().values()) if self.cfg.spiking else 0
        return weights + biases + lif
