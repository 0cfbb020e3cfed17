"""Running an exported step .tflite over a sequence in a TFLite interpreter, state fed back step to step.

Interpreters (`backend`):
- "litert-ref": ai-edge-litert with the reference kernels (BUILTIN_REF),
- "litert": ai-edge-litert's optimized built-in kernels, XNNPACK off (BUILTIN_WITHOUT_DEFAULT_DELEGATES),
- "tflm": TFLite Micro's Python package (tflite-micro).
tflite-runtime's Interpreter is taken where ai-edge-litert is missing: the one adapter below.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgemem.errors import EdgememError

BACKENDS = ("litert-ref", "litert", "tflm")


def _litert(kind: str) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # the older package: same Interpreter API
        from tflite_runtime.interpreter import Interpreter, OpResolverType  # type: ignore[no-redef]
    resolver = OpResolverType.BUILTIN_REF if kind == "litert-ref" else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter, resolver


@dataclass
class Session:
    """One interpreter holding one model: set inputs, invoke, read outputs (by position)."""

    set_input: Callable[[int, np.ndarray], None]
    invoke: Callable[[], None]
    get_output: Callable[[int], np.ndarray]
    n_inputs: int
    n_outputs: int
    arena_bytes: int | None = None


def open_session(data: bytes, backend: str, arena_size: int = 1 << 20) -> Session:
    if backend not in BACKENDS:
        raise EdgememError(f"unknown TFLite backend '{backend}' (one of {', '.join(BACKENDS)})")
    if backend == "tflm":
        from tflite_micro.python.tflite_micro import runtime

        try:
            it = runtime.Interpreter.from_bytes(data, arena_size=arena_size)
        except Exception as e:  # noqa: BLE001 - the package raises a bare RuntimeError
            raise EdgememError(f"TFLM cannot load the model: {str(e).splitlines()[0]}") from None
        n_in, n_out = _io_counts(data)
        return Session(lambda i, x: it.set_input(x, i), it.invoke, it.get_output, n_in, n_out,
                       tflm_arena_bytes(it))
    interp_cls, resolver = _litert(backend)
    try:
        it = interp_cls(model_content=data, experimental_op_resolver_type=resolver)
        it.allocate_tensors()
    except Exception as e:  # noqa: BLE001
        raise EdgememError(f"LiteRT cannot load the model: {str(e).splitlines()[0]}") from None
    ins = [d["index"] for d in it.get_input_details()]
    outs = [d["index"] for d in it.get_output_details()]
    return Session(lambda i, x: it.set_tensor(ins[i], x), it.invoke, lambda i: it.get_tensor(outs[i]), len(ins),
                   len(outs))


def _io_counts(data: bytes) -> tuple[int, int]:
    """Inputs and outputs of the main subgraph, read from the file (TFLM's Python API has no count)."""
    from ai_edge_litert import schema_py_generated as fb

    sg = fb.Model.GetRootAs(data, 0).Subgraphs(0)
    return sg.InputsLength(), sg.OutputsLength()


def tflm_arena_bytes(it: Any) -> int | None:
    """TFLM's arena use, read from print_allocations() (C++ prints it to stderr; no Python call returns it)."""
    # file descriptors 1 and 2 themselves, not sys.stdout/sys.stderr (pytest or a notebook may have replaced those)
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile() as f:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in saved:
            os.dup2(f.fileno(), fd)
        try:
            it.print_allocations()
        finally:
            for fd, keep in saved.items():
                os.dup2(keep, fd)
                os.close(keep)
        f.seek(0)
        text = f.read().decode(errors="replace")
    m = re.search(r"Arena allocation total (\d+) bytes", text)
    return int(m.group(1)) if m else None


def run_sequence(data: bytes, x: np.ndarray, states: list[tuple[str, int]], backend: str,
                 zero_points: list[int] | None = None, session: Session | None = None) -> np.ndarray:
    """x [T][n_in] int8 (or float32 for a float file) -> logits [T][n_out], from zero state; `states`:
    (dtype, count) of each state input in order (TfliteModel.states). A file with resource variables has none.
    `zero_points`: each state's code for real 0 where it is not 0 (model_int8.tflite); `session`: one already
    open on `data`, reused (many short sequences)."""
    s = session or open_session(data, backend)
    dt = x.dtype
    if s.n_inputs != 1 + len(states):
        raise EdgememError(f"the model has {s.n_inputs} inputs, expected 1 + {len(states)} states")
    zps = zero_points or [0] * len(states)
    state = [np.full((1, n), z, dtype=np.float32 if dt == np.float32 else np.dtype(d))
             for (d, n), z in zip(states, zps)]
    out = []
    for t in range(x.shape[0]):
        s.set_input(0, x[t:t + 1])
        for i, v in enumerate(state):
            s.set_input(1 + i, v)
        s.invoke()
        out.append(np.array(s.get_output(0)).reshape(-1).copy())
        state = [np.array(s.get_output(1 + i)).reshape(1, -1).copy() for i in range(len(state))]
    return np.stack(out)
