"""ONNX export of one float L2MU step with explicit state inputs and outputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from edgemem.atomic import write_atomic
from edgemem.models.l2mu import L2MU, L2MUStep

OPSET = 17


def export_onnx(model: L2MU, path: Path) -> list[str]:
    """Write the step as ONNX (checked with onnx.checker); returns the state names in input/output order."""
    was_training = model.training
    step = L2MUStep(model).eval()  # the exporter restores the wrapper's mode afterwards: make that eval too
    names = step.names
    shapes = model.state_shapes()
    args = (torch.zeros(1, model.cfg.n_in), *[torch.zeros(1, *shapes[k]) for k in names])
    inputs = ["x", *[f"{k}_in" for k in names]]
    outputs = ["logits", *[f"{k}_out" for k in names]]
    axes = {n: {0: "batch"} for n in inputs + outputs}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                step, args, str(tmp), input_names=inputs, output_names=outputs, dynamic_axes=axes,
                opset_version=OPSET, dynamo=False, do_constant_folding=True,
            )
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        proto.doc_string = "edgemem L2MU: one streaming step, state in and out"
        onnx.save(proto, str(tmp))

    try:
        write_atomic(path, write)
    finally:
        model.train(was_training)
    return names


def run_onnx(path: Path, x: np.ndarray, state_names: list[str], state_shapes: dict[str, tuple[int, ...]]) -> np.ndarray:
    """Stream windows x [b][T][n_in] (float) through the ONNX step in onnxruntime; returns logits [b][T][n_out]."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    state = {k: np.zeros((x.shape[0], *state_shapes[k]), dtype=np.float32) for k in state_names}
    out = []
    for t in range(x.shape[1]):
        feeds = {"x": np.ascontiguousarray(x[:, t], dtype=np.float32), **{f"{k}_in": v for k, v in state.items()}}
        res = sess.run(None, feeds)
        out.append(res[0])
        state = dict(zip(state_names, res[1:]))
    return np.stack(out, axis=1)
