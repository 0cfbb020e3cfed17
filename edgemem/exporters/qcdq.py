"""QCDQ ONNX of one streaming step of a graph model (mixed precision or int8), exported with brevitas.

The exported module is a twin of the float model whose every weight layer is a brevitas QuantLinear / QuantConv1d
(Int8WeightPerChannelFloat at the layer's width: the twin `edgemem quantize` fine-tunes, edgemem.quant.mixed) and
which runs the model's own `step`, state in and out as in model.onnx (inputs x, NAME_in; outputs logits, NAME_out).

Weights. Each twin layer holds the weights the integer graph was quantized from (BatchNorm folded in as the lowering
folds it, the BN modules replaced by identities), snapped to the graph's grid: its codes times the per-channel scale
max|w| / (2^(b-1) - 1). brevitas' quantizer is the integer model's rule (symmetric, narrow range, that scale), but it
rounds half to even in float32 (torch.round) where edgemem rounds half away from zero in float64
(intops.round_half_away): on the raw weights the two give different codes wherever w / scale lies within float32
rounding of a .5 tie (rare, but nothing rules it out). On the grid every w / scale is an integer to within ~1e-5, which
any rounding maps to the same code, so the int8 initializers of the file are the graph's codes exactly
(edgemem.verification.qcdq reads them back from the file and compares). Each weight is exported as an int8 initializer
named OP.weight_q (OP: the graph op), a Clip to +-(2^(b-1) - 1) and a per-channel DequantizeLinear; the
`edgemem.weights` metadata entry maps graph op names to those initializers.

Activations. The input is quantized (QuantizeLinear / DequantizeLinear, int8) at the graph's input scale; an ANN
LMUFormer also at every int8 buffer of its graph (the conv outputs, u, h, y, z, o; a GELU table's input too), at the
graph's scales. int16 tensors (the LMU memory, spiking currents and membranes, logits) and biases stay float: brevitas'
standard QCDQ export has 8-bit QuantizeLinear only.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from edgemem.atomic import write_atomic
from edgemem.errors import EdgememError
from edgemem.exporters.onnx_export import OPSET, StepModule, state_names, state_shapes
from edgemem.graph.intops import quantize
from edgemem.graph.ir import DType, OpType
from edgemem.models import registry
from edgemem.models.l2mu import L2MU, L2MUStep
from edgemem.quant import mixed
from edgemem.quant.lower import Lowered
from edgemem.quant.lowering import detached_copy, fold_bn, int8_scale, to_np

KINDS = ("lmuformer", "l2mu")  # the graph kinds whose step reads its weights through layers or layer_weight()
WEIGHTS_KEY = "edgemem.weights"


def check_exportable(kind: str) -> None:
    """One-line error for a model this exporter cannot write (before any work is done)."""
    if kind not in KINDS:
        raise EdgememError(f"qcdq export supports {' and '.join(KINDS)} models, not {kind}")


@dataclass(frozen=True)
class Fold:
    """A weight layer of the float model as the lowering quantizes it: `bn` folded in, its shift kept as the bias
    or (keep_bias False: a second FC accumulating into the same buffer) dropped."""

    module: str
    op: str
    bn: str | None = None
    keep_bias: bool = True


def folds(model: nn.Module) -> list[Fold]:
    """Every weight layer with the graph op it lowers to (lower_lmuformer.py, lower_l2mu.py)."""
    kind = registry.kind_of(model)
    if kind == "l2mu":
        return [Fold(n, n) for n in ("enc_x", "enc_h", "enc_m", "hid_x", "hid_h", "hid_m", "out")]
    if kind != "lmuformer":
        raise EdgememError(f"qcdq export supports {' and '.join(KINDS)} models, not {kind}")
    n_conv = model.cfg.n_conv  # type: ignore[union-attr]
    return [*[Fold(f"convs.{i}", f"conv{i}", f"conv_bns.{i}") for i in range(n_conv)],
            Fold("lmu_u", "lmu_u", "lmu_u_bn"), Fold("lmu_hm", "lmu_hm", "lmu_bn"),
            Fold("lmu_he", "lmu_he", "lmu_bn", keep_bias=False), Fold("mix1", "mix1", "mix1_bn"),
            Fold("mix2", "mix2", "mix2_bn"), Fold("head", "head")]


def activation_scales(model: nn.Module, low: Lowered) -> dict[str, float]:
    """Tap name (LMUFormer._tap) -> the int8 scale of that buffer in the graph: the ANN LMUFormer's activations, at
    the scales lower_lmuformer gives them (int8_scale of the calibrated peak; `NAME_pre`: peak key `NAME.pre`)."""
    if registry.kind_of(model) != "lmuformer" or model.cfg.spiking:  # type: ignore[union-attr]
        return {}
    cfg = model.cfg  # type: ignore[union-attr]
    dtypes = {b.name: b.dtype for b in low.graph.buffers}
    acts = [f"conv{i}" for i in range(cfg.n_conv)] + ["h", "z"]
    missing = [n for n in [*acts, "u", "y", "o"] if n not in dtypes]
    if missing:
        raise EdgememError(f"the integer graph has no activation buffers {missing} (lower_lmuformer's names)")
    # an activation the graph keeps in int16 stays float here (8-bit QuantizeLinear only)
    scales = {n: int8_scale(low.info[n]) for n in [*acts, "u", "y", "o"] if dtypes[n] == DType.S8}
    if cfg.activation == "gelu":  # the table's input: the accumulator saturated to int8 at its own scale
        scales.update({f"{n}_pre": int8_scale(low.info[f"{n}.pre"]) for n in acts})
    return scales


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, module)


def _graph_codes(low: Lowered, op: str, torch_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """The graph's weight codes of `op` in torch layout ([out][in], or [out][in][k] from the graph's [out][k][in])."""
    t = next((t for t in low.graph.tensors if t.name == f"{op}.w"), None)
    if t is None:
        raise EdgememError(f"the integer graph has no weights for op {op}")
    codes = t.data
    if len(torch_shape) == 3:
        o, c, k = torch_shape
        codes = codes.reshape(o, k, c).transpose(0, 2, 1)
    return codes.reshape(torch_shape), t.dtype.bits


def _on_grid(w: np.ndarray, codes: np.ndarray, bits: int, op: str, scale: np.ndarray | None = None) -> np.ndarray:
    """codes x the per-channel scale quantize_fc gave w (`scale`, else max|row| / qmax, an all-zero row borrowing
    the layer's range), after checking that the scale reproduces the codes: the twin's weights are then the graph's
    to float32 precision."""
    qmax = float((1 << (bits - 1)) - 1)
    rows = w.reshape(w.shape[0], -1)
    if scale is None:
        maxabs = np.abs(rows).max(axis=1)
        scale = np.where(maxabs > 0, maxabs, max(float(np.abs(rows).max()), 1e-12)) / qmax
    scale = np.asarray(scale, dtype=np.float64)
    if not np.array_equal(quantize(rows / scale[:, None], 1.0, bits), codes.reshape(rows.shape)):
        raise EdgememError(f"{op}: the folded float weights do not reproduce the integer graph's codes (the lowering "
                           "and edgemem/exporters/qcdq.py fold BatchNorm differently)")
    return (codes.reshape(rows.shape) * scale[:, None]).reshape(w.shape)


def quant_twin(model: nn.Module, low: Lowered) -> nn.Module:
    """A copy of the model (eval) with brevitas weight layers on the graph's grid, BN folded, activation taps."""
    plain = detached_copy(model).eval()  # after an ONNX export, snntorch's membrane buffers carry autograd history
    bits: dict[str, int] = {}
    for f in folds(model):
        layer = model.get_submodule(f.module)
        w = to_np(layer.weight)
        b = to_np(getattr(layer, "bias", None))
        if f.bn is not None:
            w, b = fold_bn(w, b, model.get_submodule(f.bn))  # type: ignore[arg-type]
            if not f.keep_bias:
                b = None
        codes, bits[f.module] = _graph_codes(low, f.op, tuple(w.shape))  # type: ignore[union-attr]
        new = copy.deepcopy(layer)
        grid = _on_grid(w, codes, bits[f.module], f.op)  # type: ignore[arg-type]
        new.weight = nn.Parameter(torch.from_numpy(grid).float())
        new.bias = None if b is None else nn.Parameter(torch.from_numpy(np.asarray(b)).float())
        _set(plain, f.module, new)
    for bn in {f.bn for f in folds(model) if f.bn is not None}:
        _set(plain, bn, nn.Identity())
    missing = set(mixed.weight_layers(plain)) - set(bits)
    if missing:
        raise EdgememError(f"weight layers without a graph op: {sorted(missing)}")
    twin = mixed.quantization_aware(plain, bits).eval()
    scales = activation_scales(model, low)
    if scales:
        twin.act_quant = nn.ModuleDict({n: _act_quant(s) for n, s in scales.items()})
    return twin


def _act_quant(scale: float) -> nn.Module:
    """int8 QuantIdentity at a fixed scale: signed, not narrow, so brevitas divides its constant threshold by 128 and
    128 * scale gives `scale` exactly (a power-of-two factor)."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.nn import QuantIdentity
    from brevitas.quant import Int8ActPerTensorFloat

    return QuantIdentity(act_quant=Int8ActPerTensorFloat, scaling_impl_type=ScalingImplType.CONST,
                         scaling_init=128.0 * scale, return_quant_tensor=False).eval()


class QCDQStep(nn.Module):
    """(x, *state) -> (logits, *state) of the twin, the input quantized at the graph's input scale first."""

    def __init__(self, twin: nn.Module, input_scale: float) -> None:
        super().__init__()
        self.input_quant = _act_quant(input_scale)
        self.step = L2MUStep(twin) if isinstance(twin, L2MU) else StepModule(twin)  # type: ignore[arg-type]
        self.names: list[str] = self.step.names  # type: ignore[assignment]

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.step(self.input_quant(x), *state)  # type: ignore[no-any-return]


def _weight_initializers(proto: onnx.ModelProto, twin: nn.Module, ops: dict[str, str]) -> dict[str, str]:
    """Graph op -> the int8 initializer brevitas wrote for its layer (found by its codes, brevitas' own), renamed
    OP.weight_q where only that layer uses it."""
    by_content: dict[tuple[tuple[int, ...], bytes], str] = {}
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8:
            a = numpy_helper.to_array(init)
            by_content.setdefault((a.shape, a.tobytes()), init.name)
    found: dict[str, str] = {}
    for module, op in ops.items():
        with torch.no_grad():
            codes = twin.get_submodule(module).quant_weight().int(float_datatype=False).numpy().astype(np.int8)
        name = by_content.get((codes.shape, codes.tobytes()))
        if name is None:
            raise EdgememError(f"the QCDQ export holds no int8 weight initializer for {op}")
        found[op] = name
    users = {n: [op for op, m in found.items() if m == n] for n in found.values()}
    renames = {n: f"{ops_[0]}.weight_q" for n, ops_ in users.items() if len(ops_) == 1}
    for init in proto.graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
    return {op: renames.get(n, n) for op, n in found.items()}


def export_qcdq(model: nn.Module, low: Lowered, path: Path) -> list[str]:
    """Write the QCDQ step of the model whose integer graph is `low` (checked with onnx.checker, written
    atomically); returns the state names in input/output order."""
    kind = registry.kind_of(model)
    check_exportable(kind)
    with warnings.catch_warnings():  # brevitas warns on import that an optional kernel package is missing
        warnings.simplefilter("ignore")
        from brevitas.export import export_onnx_qcdq

    twin = quant_twin(model, low)
    step = QCDQStep(twin, low.input_scale).eval()
    names = state_names(model)
    shapes = state_shapes(model)
    args = (torch.zeros(1, model.cfg.n_in), *[torch.zeros(1, *shapes[k]) for k in names])  # type: ignore[union-attr]
    inputs = ["x", *[f"{k}_in" for k in names]]
    outputs = ["logits", *[f"{k}_out" for k in names]]
    ops = {f.module: f.op for f in folds(model)}
    order = [op.name for op in low.graph.ops if op.type in (OpType.FC, OpType.CONV1D)]
    if sorted(order) != sorted(ops.values()):
        raise EdgememError(f"the graph's weight ops {order} are not the model's layers {sorted(ops.values())}")

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx_qcdq(step, args=args, export_path=str(tmp), input_names=inputs, output_names=outputs,
                             dynamic_axes={n: {0: "batch"} for n in inputs + outputs}, opset_version=OPSET,
                             dynamo=False, do_constant_folding=True, keep_initializers_as_inputs=False)
        proto = onnx.load(str(tmp))
        found = _weight_initializers(proto, twin, ops)
        onnx.helper.set_model_props(proto, {WEIGHTS_KEY: json.dumps({op: found[op] for op in order})})
        proto.doc_string = (f"edgemem {type(model).__name__}: one streaming step, state in and out, QCDQ "
                            f"(weights {', '.join(f'{op} {b}' for op, b in _bits(low).items())} bits)")
        onnx.checker.check_model(proto, full_check=True)
        onnx.save(proto, str(tmp))

    write_atomic(path, write)
    return names


def _bits(low: Lowered) -> dict[str, int]:
    t = {t.name: t for t in low.graph.tensors}
    return {op.name: t[f"{op.name}.w"].dtype.bits for op in low.graph.ops if op.type in (OpType.FC, OpType.CONV1D)}
