"""The shipped .tflite of an export against its integer model: the gate of docs/tflite.md.

The held-out recordings are streamed end to end (`steps` steps from reset, real input) through TFLite Micro, LiteRT's
reference kernels and LiteRT's optimized kernels, and through the integer reference of model.bin; every logit of every
step is compared. The resource-variable file is run in TFLM too. A folder without the files is an error naming them.

LiteRT rounds some exact ties differently (docs/tflite.md); run free, a one-unit difference in a state can grow
through later steps (a spike that flips), so its free-running logits say little about the rule. `step_deviation`
measures the rule itself: every step, LiteRT is given TFLM's state and input (TFLM is bit-exact with the
reference), and the largest difference of any state or logit output of that one step is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemem.errors import EdgememError
from edgemem.exporters.folder import TFLITE_FILE, TFLITE_FLOAT_FILE, TFLITE_INT8_FILE, TFLITE_VARS_FILE, load_meta
from edgemem.exporters.tflite_run import BACKENDS, open_session, run_sequence
from edgemem.tool import require_extra

TFLITE_PACKAGES = ("flatbuffers", "ai_edge_litert", "tflite_micro")  # the tflite extra (pyproject.toml)


def require_tflite(what: str) -> None:
    require_extra("tflite", what, *TFLITE_PACKAGES)

STEPS = 2000
INT8_STEPS = 200_000  # held-out steps model_int8.tflite runs per interpreter, in whole windows (all of HAR / KWS)


def _states(meta: dict[str, Any]) -> list[tuple[str, int]]:
    st = meta.get("tflite_states")
    if not isinstance(st, list) or not all(isinstance(s, list) and len(s) == 4 for s in st):
        raise EdgememError("meta.json has no 'tflite_states'; re-export with --to tflite")
    return [(str(s[1]), int(s[2])) for s in st]


def compare(ref: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Logits [T][n_out] of an interpreter against the reference's."""
    eq = (y == ref).all(axis=1)
    return {"bit_exact": bool(eq.all()), "exact_steps": float(eq.mean()),
            "first_difference_step": None if eq.all() else int(np.argmin(eq)),
            "max_abs_difference": int(np.abs(y.astype(np.int64) - ref).max(initial=0)),
            "argmax_agreement": float((y.argmax(axis=1) == ref.argmax(axis=1)).mean())}


def step_deviation(data: bytes, x: np.ndarray, states: list[tuple[str, int]], backend: str) -> int:
    """Largest |difference| of any output (logits and every state) of `backend`'s step against TFLM's, both given
    TFLM's state and the same input at every step."""
    ref, other = open_session(data, "tflm"), open_session(data, backend)
    state = [np.zeros((1, n), dtype=np.dtype(d)) for d, n in states]
    worst = 0
    for t in range(x.shape[0]):
        outs = []
        for s in (ref, other):
            s.set_input(0, x[t:t + 1])
            for i, v in enumerate(state):
                s.set_input(1 + i, v)
            s.invoke()
            outs.append([np.array(s.get_output(k)).reshape(-1).astype(np.int64) for k in range(1 + len(state))])
        worst = max(worst, *(int(np.abs(a - b).max(initial=0)) for a, b in zip(*outs)))
        state = [outs[0][1 + i].reshape(1, -1).astype(np.dtype(d)) for i, (d, _) in enumerate(states)]
    return worst


def check_export(export_dir: Path, steps: int = STEPS, checkpoint: Path | None = None) -> dict[str, Any]:
    from edgemem.verification.held_out import int_model
    from edgemem.verification.stress import real_stream

    for f in (TFLITE_FILE, TFLITE_VARS_FILE):
        if not (export_dir / f).is_file():
            raise EdgememError(f"{export_dir} has no {f}; export with --to tflite")
    require_tflite("checking model.tflite")
    meta = load_meta(export_dir)
    states = _states(meta)
    data = (export_dir / TFLITE_FILE).read_bytes()
    x = real_stream(export_dir, steps, checkpoint).astype(np.int8)
    q = int_model((export_dir / "model.bin").read_bytes(), meta)
    ref = np.asarray(q.run(x[None].astype(np.int64))[0])[0].astype(np.int64)
    out: dict[str, Any] = {"steps": int(steps), "file_bytes": len(data), "states": len(states)}
    for backend in BACKENDS:
        out[backend] = compare(ref, run_sequence(data, x, states, backend).astype(np.int64))
        if backend != "tflm":  # the rule itself, without the drift through the state (module docstring)
            out[backend]["step_max_abs_difference"] = step_deviation(data, x, states, backend)
    out["tflm_resource_variables"] = compare(
        ref, run_sequence((export_dir / TFLITE_VARS_FILE).read_bytes(), x, [], "tflm").astype(np.int64))
    out["tflm_arena_bytes"] = open_session(data, "tflm").arena_bytes
    if (export_dir / TFLITE_FLOAT_FILE).is_file():  # the float32 twin: close, not exact
        xf = (x.astype(np.float64) * float(meta["input_scale"])).astype(np.float32)
        states_f = [("float32", n) for _, n in states]
        y = run_sequence((export_dir / TFLITE_FLOAT_FILE).read_bytes(), xf, states_f, "litert-ref")
        real = ref * float(meta["output_scale"])
        out["float32"] = {"argmax_agreement": float((y.argmax(axis=1) == ref.argmax(axis=1)).mean()),
                          "max_abs_logit_difference": float(np.abs(y - real).max()),
                          "logit_range": float(np.abs(real).max())}
    return out


def int8_accuracy(export_dir: Path, meta: dict[str, Any], xq: np.ndarray, y: np.ndarray, ref: np.ndarray,
                  readout: str, steps: int = INT8_STEPS) -> dict[str, Any]:
    """model_int8.tflite (converter-style, not bit-exact) over the first held-out windows [n][T][n_in] that fit in
    `steps` (at least one)
    (int8 codes, each window from reset: states at their zero points), in TFLM and LiteRT's optimized kernels:
    its accuracy beside the integer model's (`ref`, the same windows and readout) and how often the two agree on
    the top class, per window and per step."""
    from edgemem.models.readout import predictions

    info = meta.get("tflite_int8")
    if not isinstance(info, dict) or not isinstance(info.get("states"), list):
        raise EdgememError("meta.json has no 'tflite_int8'; re-export with --to tflite")
    data = (export_dir / TFLITE_INT8_FILE).read_bytes()
    n = min(len(xq), max(1, steps // xq.shape[1]))
    states = [("int8", int(c)) for _, c, _, _ in info["states"]]
    zps = [int(z) for _, _, _, z in info["states"]]
    scale, zp = float(info["output"][0]), int(info["output"][1])
    p_ref = predictions(ref[:n], readout)
    out: dict[str, Any] = {"file_bytes": len(data), "form": info.get("form"), "windows": int(n),
                           "int_reference_accuracy": float((p_ref == y[:n]).mean())}
    for backend in ("tflm", "litert"):
        session = open_session(data, backend)
        logits = np.stack([run_sequence(data, xq[i].astype(np.int8), states, backend, zps, session)
                           for i in range(n)]).astype(np.float64)
        real = (logits - zp) * scale
        p = predictions(real, readout)
        out[backend] = {"accuracy": float((p == y[:n]).mean()),
                        "top_class_agreement": float((p == p_ref).mean()),
                        "step_argmax_agreement": float((real.argmax(-1) == ref[:n].argmax(-1)).mean())}
    out["tflm_arena_bytes"] = open_session(data, "tflm").arena_bytes
    return out
