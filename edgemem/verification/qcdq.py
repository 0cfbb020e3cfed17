"""The QCDQ ONNX of an export (model_qcdq.onnx, edgemem/exporters/qcdq.py) against the integer model it was made from.

Weights: the integer codes the file implies (its int8 initializers through their Clip nodes, per output channel,
zero point 0) must equal the integer graph's weight tensors exactly, layer by layer, at the same width; any
difference raises EdgememError.

End to end: onnxruntime (graph optimizations disabled) streams the held-out windows through the QCDQ step, fed the
same int8 inputs as the integer reference (dequantized, which the file's input QuantizeLinear maps back exactly), and
the report gives the agreement of the predicted classes, the largest |logit difference| in units of the integer
model's output LSB, and both test accuracies. It is not bit-exact, and is not expected to be: onnxruntime accumulates
in float32 and requantizes by a float multiply and round-half-to-even (QuantizeLinear), where the integer model
accumulates in int32 and requantizes by fixed-point multipliers rounding half up (intops.requant, residual adds
rounded term by term); biases, int16 tensors (the LMU memory, spiking currents and membranes) and the logits stay
float in the file, while the integer model rounds and saturates them (LMU A/B in fixed point, LIF decays in Q15, GELU
through a 256-entry table). Each difference is at most an LSB where it happens, but the recurrent state carries it on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgemem.errors import EdgememError
from edgemem.exporters.qcdq import WEIGHTS_KEY
from edgemem.graph.intops import quantize
from edgemem.graph.ir import Graph, OpType
from edgemem.graph.ref import run_graph

FILE = "model_qcdq.onnx"


def _constants(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def onnx_weight_codes(proto: onnx.ModelProto) -> dict[str, tuple[np.ndarray, int]]:
    """Graph op -> (its integer weight codes in graph layout, flat; the width its Clip allows), from the file alone:
    the int8 initializer of `edgemem.weights`, through the Clip that reads it, into a DequantizeLinear of zero point 0."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if WEIGHTS_KEY not in meta:
        raise EdgememError(f"the QCDQ ONNX has no '{WEIGHTS_KEY}' metadata (not written by `edgemem export --to qcdq`)")
    const = _constants(proto)
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for i in node.input:
            users.setdefault(i, []).append(node)
    out: dict[str, tuple[np.ndarray, int]] = {}
    for op, name in json.loads(meta[WEIGHTS_KEY]).items():
        w = const.get(name)
        if w is None or w.dtype != np.int8:
            raise EdgememError(f"{op}: the QCDQ ONNX has no int8 weight initializer '{name}'")
        codes, lo, hi = w.astype(np.int64), -128, 127
        node = users.get(name, [None])[0]
        if node is not None and node.op_type == "Clip":
            lo, hi = int(const[node.input[1]]), int(const[node.input[2]])
            codes = np.clip(codes, lo, hi)
            node = users.get(node.output[0], [None])[0]
        if node is None or node.op_type != "DequantizeLinear":
            raise EdgememError(f"{op}: its weight does not reach a DequantizeLinear")
        if len(node.input) > 2 and np.any(const[node.input[2]] != 0):
            raise EdgememError(f"{op}: its weights have a non-zero zero point")
        if lo != -hi or hi + 1 & hi:
            raise EdgememError(f"{op}: its weights are clipped to [{lo}, {hi}], not a symmetric narrow range")
        if codes.ndim == 3:  # torch Conv1d [out][in][k] -> the graph's [out][k][in]
            codes = codes.transpose(0, 2, 1)
        out[op] = (codes.reshape(-1), hi.bit_length() + 1)
    return out


def check_weight_codes(proto: onnx.ModelProto, g: Graph) -> dict[str, int]:
    """Raise EdgememError unless the file's codes are the graph's, op for op (FC and CONV1D in graph order; names are
    compared where the graph has them, a parsed blob's are op0, op1, ...); returns op -> width in bits."""
    codes = onnx_weight_codes(proto)
    ops = [op for op in g.ops if op.type in (OpType.FC, OpType.CONV1D)]
    if len(ops) != len(codes):
        raise EdgememError(f"the QCDQ ONNX has {len(codes)} weight layers, the integer graph {len(ops)}")
    widths: dict[str, int] = {}
    for op, (name, (c, bits)) in zip(ops, codes.items()):
        if not op.name.startswith("op") and op.name != name:
            raise EdgememError(f"the QCDQ ONNX's weight layers are out of order: {name} where the graph has {op.name}")
        t = g.tensors[op.t[0]]
        if t.dtype.bits != bits:
            raise EdgememError(f"{name}: {bits}-bit weights in the QCDQ ONNX, {t.dtype.bits}-bit in the integer graph")
        if c.shape != t.data.shape:
            raise EdgememError(f"{name}: {c.size} weights in the QCDQ ONNX, {t.data.size} in the integer graph")
        bad = np.flatnonzero(c != t.data)
        if bad.size:
            i = int(bad[0])
            raise EdgememError(f"{name}: {bad.size} of {c.size} weight codes in the QCDQ ONNX differ from the integer "
                               f"graph's (first at {i}: {c[i]} vs {t.data[i]})")
        widths[name] = bits
    return widths


def compare(path: Path, g: Graph, input_scale: float, output_scale: float, x: np.ndarray, y: np.ndarray,
            readout: str, state_names: list[str], state_shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Weight codes (exact, or EdgememError), then onnxruntime vs the integer reference on windows x [n][T][n_in]
    (normalized float; quantized at input_scale for both) with labels y."""
    from edgemem.exporters.onnx_export import run_onnx
    from edgemem.models.readout import predictions

    widths = check_weight_codes(onnx.load(str(path)), g)
    xq = quantize(x, input_scale).astype(np.int8)
    ref = run_graph(g, xq)
    ort = run_onnx(path, xq.astype(np.float32) * np.float32(input_scale), state_names, state_shapes)
    lsb = np.abs(ort.astype(np.float64) / output_scale - ref)
    p_ref, p_ort = predictions(ref, readout), predictions(ort, readout)
    return {
        "windows": int(len(xq)),
        "steps_compared": int(ref.shape[0] * ref.shape[1]),
        "weight_bits": widths,
        "weight_codes_exact": True,  # check_weight_codes raised otherwise
        "class_agreement": float((p_ref == p_ort).mean()),
        "max_abs_logit_diff_lsb": float(lsb.max()),
        "mean_abs_logit_diff_lsb": float(lsb.mean()),
        "int_logit_peak_lsb": int(np.abs(ref).max()),  # the scale of those differences: the largest |integer logit|
        "accuracy_onnx_qcdq": float((p_ort == y).mean()),
        "accuracy_int_reference": float((p_ref == y).mean()),
        "onnxruntime": "CPUExecutionProvider, ORT_DISABLE_ALL",
    }


def subset(n: int, windows: int | None) -> np.ndarray:
    """`windows` indices spread evenly over n held-out windows (all of them when None or at least n)."""
    if windows is None or windows >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, windows).round().astype(np.int64))


def check_export(export_dir: Path, windows: int | None = None, held: Any = None) -> dict[str, Any]:
    """The QCDQ file of an export folder against its model.bin on the recipe's held-out windows (`held`: what
    verify.held_out_set returned, when the caller has it already)."""
    from edgemem.exporters.onnx_export import state_shapes
    from edgemem.graph.blob import parse_graph_blob
    from edgemem.verification.held_out import held_out_set

    path = export_dir / FILE
    if not path.is_file():
        raise EdgememError(f"{export_dir} has no {FILE}; export with --to qcdq")
    meta, ckpt, ts = held if held is not None else held_out_set(export_dir)
    blob = (export_dir / "model.bin").read_bytes()
    idx = subset(len(ts.y), windows)
    return compare(path, parse_graph_blob(blob), float(meta["input_scale"]), float(meta["output_scale"]), ts.x[idx],
                   ts.y[idx], meta.get("readout", "sum"), meta["state_names"], state_shapes(ckpt.model))
