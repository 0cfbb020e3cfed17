"""ONNX export of one float streaming step (any model of the zoo) with explicit state inputs and outputs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edgemem.atomic import write_atomic
from edgemem.models.l2mu import L2MU, L2MUStep

OPSET = 17


def state_names(model: nn.Module) -> list[str]:
    names = getattr(model, "state_names", None)
    return list(names()) if names is not None else sorted(model.init_state(1))  # type: ignore[operator]


def state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape[1:]) for k, v in model.init_state(1).items()}  # type: ignore[operator]


class StepModule(nn.Module):
    """(x, *state) -> (logits, *state), state tensors in `state_names` order, for any model with init_state/step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.names = state_names(model)

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = self.model.step(x, dict(zip(self.names, state)))  # type: ignore[operator]
        logits, new = result[0], result[1]
        return (logits, *[new[k] for k in self.names])


def export_onnx(model: nn.Module, path: Path) -> list[str]:
    """Write the step as ONNX (checked with onnx.checker); returns the state names in input/output order."""
    was_training = model.training
    # the exporter restores the wrapper's mode afterwards: make that eval too
    step = (L2MUStep(model) if isinstance(model, L2MU) else StepModule(model)).eval()
    names = step.names
    shapes = state_shapes(model)
    args = (torch.zeros(1, model.cfg.n_in), *[torch.zeros(1, *shapes[k]) for k in names])  # type: ignore[union-attr]
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
        proto.doc_string = f"edgemem {type(model).__name__}: one streaming step, state in and out"
        onnx.save(proto, str(tmp))

    try:
        write_atomic(path, write)
    finally:
        model.train(was_training)
    return names


def _why(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:160] if lines else type(e).__name__


def run_onnx(path: Path, x: np.ndarray, state_names: list[str], state_shapes: dict[str, tuple[int, ...]]) -> np.ndarray:
    """Stream windows x [b][T][n_in] (float) through the ONNX step in onnxruntime; returns logits [b][T][n_out].

    A file onnxruntime cannot load, a graph whose inputs and outputs are not this model's step, and a run that fails
    or yields non-finite logits raise EdgememError."""
    import onnxruntime as ort

    from edgemem.errors import EdgememError

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4  # failures become one EdgememError line, not native log lines on stderr
    try:
        # enable_fallback=0: on a load failure onnxruntime would print an "EP Error" banner and retry the same provider
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"], enable_fallback=0)
        inputs = [(i.name, i.type) for i in sess.get_inputs()]
        outputs = [(o.name, o.type) for o in sess.get_outputs()]
    except Exception as e:  # InvalidProtobuf, Fail, InvalidGraph, UnicodeDecodeError on a garbled name, ...
        raise EdgememError(f"{path.name} is not a valid ONNX model ({_why(e)})") from None
    want_in = ["x", *[f"{k}_in" for k in state_names]]
    want_out = ["logits", *[f"{k}_out" for k in state_names]]
    if [n for n, _ in inputs] != want_in or [n for n, _ in outputs] != want_out \
            or any(t != "tensor(float)" for _, t in inputs + outputs):
        raise EdgememError(f"{path.name} is not this model's step: inputs {[n for n, _ in inputs]}, outputs "
                           f"{[n for n, _ in outputs]} (expected float {want_in} -> {want_out})")
    unknown = [k for k in state_names if k not in state_shapes]
    if unknown:
        raise EdgememError(f"{path.name} has state '{unknown[0]}', which the checkpoint's model does not have")
    state = {k: np.zeros((x.shape[0], *state_shapes[k]), dtype=np.float32) for k in state_names}
    out = []
    try:
        for t in range(x.shape[1]):
            feeds = {"x": np.ascontiguousarray(x[:, t], dtype=np.float32), **{f"{k}_in": v for k, v in state.items()}}
            res = sess.run(None, feeds)
            out.append(res[0])
            state = dict(zip(state_names, res[1:]))
        logits = np.stack(out, axis=1)
    except Exception as e:  # a graph that loads but cannot run on this model's shapes
        raise EdgememError(f"{path.name} failed to run this model's step in onnxruntime ({_why(e)})") from None
    if logits.shape[:2] != x.shape[:2] or not np.isfinite(logits).all():
        raise EdgememError(f"{path.name} produced {'non-finite' if logits.shape[:2] == x.shape[:2] else 'misshapen'} "
                           "logits (the file is damaged)")
    return logits
