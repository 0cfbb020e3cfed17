"""Mixed-precision weights: a measured per-layer sensitivity, a greedy search under a weight-byte budget, and
quantization-aware fine-tuning of the chosen configuration with brevitas.

Sensitivity of layer l at b bits: the increase of the validation cross-entropy when only l's weights are
fake-quantized to b bits (per output channel, symmetric, narrow range: the integer model's own rule) and every other
layer stays float. It is the quantity a Hessian-trace criterion (HAWQ) estimates to second order, measured directly:
the models here are small enough to evaluate once per layer and width.

Search: start with every layer at 8 bits; repeatedly take the single step (one layer to its next lower width) with the
smallest sensitivity increase per weight byte saved, until the weights fit the budget. Every configuration on the way
is kept: they form the accuracy-versus-bytes curve the report plots.
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
from edgemem.quant.intops import round_half_away

WIDTHS = (8, 4, 2)
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


@dataclass
class Step:
    bits: dict[str, int]
    weight_bytes: int
    predicted_loss_increase: float
    accuracy: float | None = None  # fake-quantized model on the validation set, filled by evaluate()


@dataclass
class Search:
    steps: list[Step] = field(default_factory=list)
    chosen: Step | None = None


def greedy(sens: dict[str, dict[int, float]], sizes: dict[str, int], budget_bytes: int) -> Search:
    """From all-8-bit down, one layer one width at a time, cheapest loss increase per byte saved first."""
    bits = {n: 8 for n in sizes}
    pred = 0.0
    search = Search([Step(dict(bits), config_bytes(sizes, bits), pred)])
    while config_bytes(sizes, bits) > budget_bytes:
        best: tuple[float, str, int, float] | None = None
        for name, b in bits.items():
            lower = [w for w in WIDTHS if w < b and w in sens[name]]
            if not lower:
                continue
            nb = max(lower)
            saved = config_bytes({name: sizes[name]}, {name: b}) - config_bytes({name: sizes[name]}, {name: nb})
            cost = max(sens[name][nb] - sens[name].get(b, 0.0), 0.0)
            if saved > 0 and (best is None or cost / saved < best[0]):
                best = (cost / saved, name, nb, cost)
        if best is None:
            raise EdgememError(f"the weights cannot fit {budget_bytes} bytes: every layer is at its lowest width "
                               f"({config_bytes(sizes, bits)} bytes)")
        _, name, nb, cost = best
        bits[name] = nb
        pred += cost
        search.steps.append(Step(dict(bits), config_bytes(sizes, bits), pred))
    search.chosen = search.steps[-1]
    return search


def evaluate(model: nn.Module, fn: LogitsFn, x: np.ndarray, y: np.ndarray, search: Search) -> None:
    for step in search.steps:
        step.accuracy = _loss(with_bits(model, step.bits), fn, x, y)[1]


def _quant_layer(m: nn.Module, bits: int) -> nn.Module:
    """The brevitas twin of a Linear/Conv1d: weight-only, per output channel, narrow range, `bits` wide (the integer
    model's rule exactly: brevitas' abs-max statistics give max|w| / (2^(b-1) - 1) per channel)."""
    from brevitas.nn import QuantConv1d, QuantLinear
    from brevitas.quant import Int8WeightPerChannelFloat

    has_bias = getattr(m, "bias", None) is not None
    kw = {"bias": has_bias, "weight_quant": Int8WeightPerChannelFloat, "weight_bit_width": bits,
          "return_quant_tensor": False}
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


def quantization_aware(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy of the model with each named layer replaced by its brevitas twin at its width (8 bits included, so that
    fine-tuning sees every rounding the integer model will make)."""
    q = copy.deepcopy(model)
    for name in weight_layers(model):
        if name in bits:
            _swap(q, name, _quant_layer(weight_layers(q)[name], bits[name]))
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
