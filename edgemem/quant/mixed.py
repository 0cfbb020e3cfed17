"""Mixed-precision weights: a measured per-layer sensitivity, a greedy search under a flash budget, and
quantization-aware fine-tuning of the chosen configuration with brevitas.

Sensitivity of layer l at b bits: the increase of the validation cross-entropy when only l's weights are
fake-quantized to b bits (per output channel, symmetric, narrow range: the integer model's own rule) and every other
layer stays float. It is the quantity a Hessian-trace criterion (HAWQ) estimates to second order, measured directly:
the models here are small enough to evaluate once per layer and width.

Search: start with every layer at 8 bits; repeatedly take the single step (one layer to its next lower width) with the
smallest sensitivity increase per byte saved, until the bytes bounded fit the budget (`edgemem quantize`: the device
image, image.py: the first layer at 4 or 2 bits of a kind brings that kind's packed kernel, which can cost more
than the weights it saves; a move that saves nothing is taken only when no move saves); when some step would reach the
budget, take the one of those with the smallest increase instead (the ratio rule alone overshoots: a big cheap layer
can halve the bytes where a small step would have done). Every configuration on the way
is kept; with the configurations one move from all-8-bit (one layer at each lower width) and the uniform ones (every
layer at 4, every layer at 2 where its rows allow it) they are evaluated on the validation set, and the report plots
their Pareto front of bytes (the image, else the weights) against validation accuracy (`candidates`,
`pareto_front`).

Activations (the kinds whose lowering names activations it can keep at 16 bits: lower_lmuformer.ACT16): the same
measure, with the input of the layers that read an activation fake-quantized per tensor at 8 or 16 bits (scale =
calibrated peak / (2^(b-1) - 1)). An activation goes to 16 bits, most sensitive first, when that lowers the validation
loss by more than ACT_GAIN and the arena still fits the RAM budget; state (LMU memory, membranes) stays int16.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgemem.errors import EdgememError
from edgemem.graph.intops import round_half_away

WIDTHS = (8, 4, 2)
ACT_GAIN = 0.01  # nats of validation loss a 16-bit activation must win to be worth its RAM
LogitsFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


def weight_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear and Conv1d of the model by module name, in definition order (the layers whose weights the
    integer graph stores)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv1d)}


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric quantization to [-(2^(b-1)-1), 2^(b-1)-1], back in float."""
    qmax = (1 << (bits - 1)) - 1
    flat = w.detach().double().reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp_min(1e-12) / qmax
    q = torch.from_numpy(round_half_away((flat / scale[:, None]).numpy())).clamp(-qmax, qmax)
    return (q * scale[:, None]).reshape(w.shape).to(w.dtype)


def weight_count(m: nn.Module) -> int:
    return int(m.weight.numel())  # type: ignore[union-attr]


def config_bytes(sizes: dict[str, int], bits: dict[str, int]) -> int:
    """Weight bytes as stored: packed rows (ceil(elements * bits / 8) per layer)."""
    return sum(math.ceil(sizes[n] * bits[n] / 8) for n in sizes)


@torch.no_grad()
def _loss(model: nn.Module, fn: LogitsFn, x: np.ndarray, y: np.ndarray, batch: int = 256) -> tuple[float, float]:
    model.eval()
    total, correct = 0.0, 0
    for i in range(0, len(x), batch):
        logits = fn(model, torch.from_numpy(x[i : i + batch]))
        yb = torch.from_numpy(y[i : i + batch])
        total += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    return total / len(x), correct / len(x)


def with_bits(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy of the model whose named layers' weights are fake-quantized to their widths (others stay float)."""
    q = copy.deepcopy(model)
    for name, m in weight_layers(q).items():
        if name in bits:
            m.weight.data = fake_quant(m.weight.data, bits[name])  # type: ignore[union-attr]
    return q


def sensitivity(model: nn.Module, fn: LogitsFn, x: np.ndarray, y: np.ndarray,
                widths: tuple[int, ...] = (4, 2)) -> dict[str, dict[int, float]]:
    """Validation cross-entropy increase with one layer at each width, every other layer float."""
    base, _ = _loss(model, fn, x, y)
    out: dict[str, dict[int, float]] = {}
    for name in weight_layers(model):
        out[name] = {b: _loss(with_bits(model, {name: b}), fn, x, y)[0] - base for b in widths}
    return out


def fake_quant_act(x: torch.Tensor, bits: int, peak: float) -> torch.Tensor:
    """Per-tensor symmetric fake quantization at the calibrated peak (the integer model's activation rule)."""
    qmax = (1 << (bits - 1)) - 1
    scale = max(peak, 1e-8) / qmax
    return torch.clamp(torch.round(x / scale), -qmax - 1, qmax) * scale


def _pre_hooks(model: nn.Module, readers: dict[str, tuple[str, ...]], fn: Callable[[str, torch.Tensor], torch.Tensor]
               ) -> list[torch.utils.hooks.RemovableHandle]:
    mods = dict(model.named_modules())
    return [mods[r].register_forward_pre_hook(lambda _m, inp, p=point: (fn(p, inp[0]), *inp[1:]))
            for point, names in readers.items() for r in names]


@torch.no_grad()
def act_peaks(model: nn.Module, fn: LogitsFn, x: np.ndarray, readers: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Largest |input| of each activation's reading layers on x (the calibration windows)."""
    peaks = dict.fromkeys(readers, 0.0)

    def note(point: str, v: torch.Tensor) -> torch.Tensor:
        peaks[point] = max(peaks[point], float(v.abs().max()))
        return v

    model.eval()
    hooks = _pre_hooks(model, readers, note)
    try:
        fn(model, torch.from_numpy(x))
    finally:
        for h in hooks:
            h.remove()
    return peaks


def act_sensitivity(model: nn.Module, fn: LogitsFn, x: np.ndarray, y: np.ndarray,
                    readers: dict[str, tuple[str, ...]], peaks: dict[str, float]) -> dict[str, dict[int, float]]:
    """Validation cross-entropy increase with one activation fake-quantized at 8 and at 16 bits, all else float."""
    base, _ = _loss(model, fn, x, y)
    out: dict[str, dict[int, float]] = {}
    for point in readers:
        out[point] = {}
        for bits in (8, 16):
            hooks = _pre_hooks(model, {point: readers[point]}, lambda p, v, b=bits: fake_quant_act(v, b, peaks[p]))
            try:
                out[point][bits] = _loss(model, fn, x, y)[0] - base
            finally:
                for h in hooks:
                    h.remove()
    return out


def choose_act_bits(sens: dict[str, dict[int, float]], arena_of: Callable[[dict[str, int]], int],
                    ram: int | None, image_of: Callable[[dict[str, int]], int] | None = None,
                    flash: int | None = None) -> dict[str, int]:
    """Widths per activation: 16 for those worth it (validation loss gain > ACT_GAIN), largest gain first, each as
    long as arena_of(the widths so far plus it) still fits `ram` (no budget: all of them) and image_of(them) still
    fits `flash` (an int16 activation can bring the FC_S16 / ACT_S16 kernels); 8 for the rest."""
    gains = {p: v[8] - v[16] for p, v in sens.items()}
    bits = dict.fromkeys(sens, 8)
    for p in sorted(gains, key=lambda p: -gains[p]):
        if gains[p] <= ACT_GAIN:
            break
        trial = {**bits, p: 16}
        if (ram is None or arena_of(trial) <= ram) and (flash is None or image_of is None or image_of(trial) <= flash):
            bits = trial
    return bits


@dataclass
class Step:
    bits: dict[str, int]
    weight_bytes: int
    predicted_loss_increase: float
    accuracy: float | None = None  # fake-quantized model on the validation set, filled by evaluate()
    image_bytes: int | None = None  # the device image the search bounded (greedy's size_of), when it had one


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    chosen: Step | None = None


def refuse_unless_fits(size_of: Callable[[dict[str, int]], int], smallest: dict[str, int], budget_bytes: int,
                       what: str) -> None:
    """One EdgememError line when even the smallest configuration's bytes exceed the budget."""
    if size_of(smallest) > budget_bytes:
        raise EdgememError(f"no configuration fits {budget_bytes} bytes: the smallest {what} is {size_of(smallest)} "
                           f"bytes ({', '.join(f'{n} {b}' for n, b in smallest.items())} bits), so the {what} "
                           "cannot fit it")


def greedy(sens: dict[str, dict[int, float]], sizes: dict[str, int], budget_bytes: int,
           size_of: Callable[[dict[str, int]], int] | None = None,
           smallest: dict[str, int] | None = None) -> Search:
    """From all-8-bit down, one layer one width at a time, cheapest loss increase per byte saved first, until
    size_of(bits) fits the budget. size_of: the bytes bounded (default: the weight bytes; quantize passes the device
    image, image.ImageModel, where the first layer at 4 or 2 bits of a kind adds that kind's packed kernel, so a move
    can save less than its weights or nothing). smallest: the configuration with the smallest size_of (default:
    every layer at its lowest width); a budget below it is refused, and if the greedy path ends above the budget
    while smallest fits, smallest is the last step."""
    size_of = size_of or (lambda b: config_bytes(sizes, b))
    lowest = {n: min((w for w in WIDTHS if w in sens[n]), default=8) for n in sizes}
    floor = smallest or lowest
    refuse_unless_fits(size_of, floor, budget_bytes, "set of weights" if smallest is None else "image")
    bits = {n: 8 for n in sizes}
    pred = 0.0

    def step() -> Step:
        return Step(dict(bits), config_bytes(sizes, bits), pred, None, size_of(bits) if smallest is not None else None)

    search = Search([step()])
    while size_of(bits) > budget_bytes:
        now = size_of(bits)
        over = now - budget_bytes
        moves: list[tuple[float, str, int, float, int]] = []
        for name, b in bits.items():
            lower = [w for w in WIDTHS if w < b and w in sens[name]]
            if not lower:
                continue
            nb = max(lower)
            saved = now - size_of({**bits, name: nb})
            cost = max(sens[name][nb] - sens[name].get(b, 0.0), 0.0)
            moves.append((cost / saved if saved > 0 else math.inf, name, nb, cost, saved))
        saving = [m for m in moves if m[4] > 0]
        finishing = [m for m in saving if m[4] >= over]
        if finishing:
            best = min(finishing, key=lambda m: (m[3], -m[4]))
        elif saving:
            best = min(saving)
        elif moves:  # only moves that add a kernel's code: the one that costs the fewest bytes, then the least loss
            best = min(moves, key=lambda m: (-m[4], m[3]))
        else:
            bits = dict(floor)  # the path ended above the budget: the smallest configuration fits it
            pred = sum(sens[n].get(b, 0.0) for n, b in bits.items() if b != 8)
            search.steps.append(step())
            break
        _, name, nb, cost, _ = best
        bits[name] = nb
        pred += cost
        search.steps.append(step())
    search.chosen = search.steps[-1]
    return search


def evaluate(model: nn.Module, fn: LogitsFn, x: np.ndarray, y: np.ndarray, search: Search) -> None:
    for step in search.steps:
        step.accuracy = _loss(with_bits(model, step.bits), fn, x, y)[1]


def candidates(sizes: dict[str, int], widths: dict[str, tuple[int, ...]], search: Search,
               size_of: Callable[[dict[str, int]], int] | None = None) -> list[Step]:
    """The configurations the report evaluates: the search path, then every single move from all-8-bit (one layer at
    one of its lower `widths`) and the uniform ones (every layer at its lowest allowed width not above 4, then 2),
    each once (the first occurrence kept); with size_of, each with its image_bytes."""
    full = dict.fromkeys(sizes, 8)
    configs = [dict(st.bits) for st in search.steps]
    configs += [{**full, n: b} for n in sizes for b in widths.get(n, ())]
    for top in (4, 2):
        configs.append({n: min((b for b in widths.get(n, ()) if b <= top), default=8) for n in sizes})
    seen: set[tuple[int, ...]] = set()
    out = []
    for bits in configs:
        key = tuple(bits[n] for n in sizes)
        if key not in seen:
            seen.add(key)
            out.append(Step(bits, config_bytes(sizes, bits), float("nan"), None,
                            None if size_of is None else size_of(bits)))
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (bytes, accuracy) points (fewer bytes and higher accuracy are better; of equal
    points the first), by bytes."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _quant_layer(m: nn.Module, bits: int, input_bits: int | None = None) -> nn.Module:
    """The brevitas twin of a Linear/Conv1d: weights per output channel, narrow range, `bits` wide (the integer
    model's rule exactly: brevitas' abs-max statistics give max|w| / (2^(b-1) - 1) per channel); with input_bits,
    its input quantized per tensor at that width too (the activation it reads)."""
    from brevitas.nn import QuantConv1d, QuantLinear
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat

    has_bias = getattr(m, "bias", None) is not None
    kw: dict[str, object] = {"bias": has_bias, "weight_quant": Int8WeightPerChannelFloat, "weight_bit_width": bits,
                             "return_quant_tensor": False}
    if input_bits is not None:
        kw.update(input_quant=Int8ActPerTensorFloat, input_bit_width=input_bits)
    if isinstance(m, nn.Conv1d):
        q: nn.Module = QuantConv1d(m.in_channels, m.out_channels, m.kernel_size[0], stride=m.stride[0],  # type: ignore[index]
                                   padding=m.padding[0], dilation=m.dilation[0], groups=m.groups, **kw)  # type: ignore[index]
    else:
        q = QuantLinear(m.in_features, m.out_features, **kw)  # type: ignore[arg-type]
    q.weight.data.copy_(m.weight.data)  # type: ignore[union-attr, operator]
    if has_bias:
        q.bias.data.copy_(m.bias.data)  # type: ignore[union-attr, operator]
    return q


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)


def quantization_aware(model: nn.Module, bits: dict[str, int], input_bits: dict[str, int] | None = None
                       ) -> nn.Module:
    """A copy of the model with each named layer replaced by its brevitas twin at its width (8 bits included, so that
    fine-tuning sees every rounding the integer model will make); input_bits: layer -> width of the activation it
    reads, quantized in the twin too."""
    q = copy.deepcopy(model)
    input_bits = input_bits or {}
    for name in weight_layers(model):
        if name in bits:
            _swap(q, name, _quant_layer(weight_layers(q)[name], bits[name], input_bits.get(name)))
    return q


def back_to_float(model: nn.Module, trained: nn.Module) -> nn.Module:
    """The fine-tuned weights, in a copy of the original (plain torch) model, for the lowering to quantize again."""
    out = copy.deepcopy(model)
    src = dict(trained.named_modules())
    for name, m in weight_layers(out).items():
        m.weight.data.copy_(src[name].weight.data)  # type: ignore[union-attr, operator]
        if getattr(m, "bias", None) is not None:
            m.bias.data.copy_(src[name].bias.data)  # type: ignore[union-attr, operator]
    state = {k: v for k, v in trained.state_dict().items() if k in out.state_dict() and "weight" not in k.split(".")[-1]
             and not k.endswith(".bias")}
    out.load_state_dict({**out.state_dict(), **state})  # BatchNorm statistics, neuron parameters, ...
    return out.eval()
