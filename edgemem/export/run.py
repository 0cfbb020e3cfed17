"""`edgemem export CKPT --to onnx,c[,qcdq][,nir] --out DIR`: quantize a checkpoint and write its release artifacts
(qcdq: model_qcdq.onnx, the integer graph's step as QCDQ ONNX, edgemem/export/qcdq.py; graph models only; nir:
model.nir, the float spiking model as a NIR graph, edgemem/export/nir_export.py; spiking models only)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgemem.atomic import write_bytes_atomic
from edgemem.checkpoint import Checkpoint, load_checkpoint
from edgemem.data.windows import split_by_subject
from edgemem.errors import EdgememError
from edgemem.export import graph_c_arrays
from edgemem.export.blob import build_blob
from edgemem.export.c_arrays import model_c, model_h
from edgemem.export.graph_blob import build_graph_blob
from edgemem.export.onnx_export import export_onnx, state_names
from edgemem.export.qcdq import check_exportable, export_qcdq
from edgemem.export.tflite_export import to_tflite
from edgemem.export.tflite_float import to_tflite_float
from edgemem.models import registry
from edgemem.quant.calibrate import quantize_l2mu
from edgemem.quant.lower import Lowered, lower
from edgemem.quant.model import POP_NAMES, QuantL2MU
from edgemem.schedule.arena import place_by_lifetime
from edgemem.train.pipeline import load_windows
from edgemem.train.recipe import Recipe, _build
from edgemem.train.run import calibration_windows

FORMATS = ("onnx", "c", "qcdq", "nir", "tflite")
TFLITE_FILE = "model.tflite"  # one step, states as inputs and outputs (edgemem.export.tflite_export)
TFLITE_VARS_FILE = "model_vars.tflite"  # the same step with its state in resource variables
TFLITE_FLOAT_FILE = "model_float.tflite"  # the same step in float32 (edgemem.export.tflite_float)
QCDQ_FILE = "model_qcdq.onnx"
NIR_FILE = "model.nir"
META = "meta.json"


def _r4(n: int) -> int:
    return (n + 3) & ~3


def arena_bytes(q: QuantL2MU) -> int:
    """The C runtime's em_arena_size(), term by term (see firmware/include/edgemem.h)."""
    n = {"encoder": q.n_u, "memory": q.n_m, "hidden": q.n_h}
    total = _r4(4 * max(q.n_u, q.n_m, q.n_h, q.n_out))
    total += sum(_r4(2 * v) for v in n.values())
    total += sum(_r4(2 * n[p]) for p in POP_NAMES if q.pops[p].cuba)
    total += _r4(2 * q.n_u * q.order) + _r4(2 * q.order)
    return total + _r4(q.n_h) + _r4(q.n_m) + _r4(q.n_u) + _r4(q.n_m) + _r4(q.n_h)


def recipe_of(ckpt: Checkpoint) -> Recipe:
    return _build(Recipe, ckpt.recipe, "")


def _calibration(ckpt: Checkpoint) -> tuple[Recipe, Any]:
    """The recipe and its calibration windows: recipe.quant.calib_windows training windows (seed 0), normalized with
    the checkpoint's own statistics -- what the deployed model is fed -- rather than statistics fitted again here
    (the same numbers today, but then a function of the checkpoint, not of a reduction re-run on this machine)."""
    recipe = recipe_of(ckpt)
    d = recipe.data
    windows, _ = load_windows(recipe)
    train = split_by_subject(windows, d.train_subjects, d.val_subjects, d.test_subjects).train
    return recipe, ckpt.normalizer(calibration_windows(train.x, recipe.quant.calib_windows, 0))


def quantize_checkpoint(ckpt: Checkpoint) -> QuantL2MU:
    """Post-training quantization, calibrated on the checkpoint recipe's training windows (deterministic)."""
    recipe, calib = _calibration(ckpt)
    return quantize_l2mu(ckpt.model, calib, recipe.quant.margin)  # type: ignore[arg-type]


def lower_checkpoint(ckpt: Checkpoint) -> Lowered:
    """Any other zoo model: the integer graph, calibrated like the L2MU."""
    recipe, calib = _calibration(ckpt)
    return lower(ckpt.model, calib, recipe.quant.margin, recipe.quant.weight_bits or None,
                 recipe.quant.act_bits or None)


def nir_bytes(model: Any) -> tuple[bytes, list[str]]:
    """The model's NIR file (an EdgememError for a model that is not spiking) and what NIR cannot express."""
    from edgemem.export.nir_export import write_nir  # imports nir (h5py) only when asked for

    with tempfile.TemporaryDirectory(prefix="edgemem-nir-") as tmp:
        unsupported = write_nir(model, Path(tmp) / NIR_FILE)
        return (Path(tmp) / NIR_FILE).read_bytes(), unsupported


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def export(checkpoint: Path, formats: list[str], out: Path, name: str | None = None) -> dict[str, Any]:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise EdgememError(f"unknown export format '{unknown[0] if unknown else ''}' (choose from {', '.join(FORMATS)})")
    ckpt = load_checkpoint(checkpoint)
    name = name or ckpt.name
    if not name.isidentifier():
        raise EdgememError(f"model name '{name}' must be a C identifier")
    kind = registry.kind_of(ckpt.model)
    graph = kind != "l2mu" or bool(recipe_of(ckpt).quant.weight_bits)  # packed weights exist only in the graph format
    if "qcdq" in formats:
        check_exportable(kind, graph)
    files: dict[str, bytes] = {}  # everything is generated first; nothing is written until all succeeded
    if "nir" in formats:
        files[NIR_FILE], unsupported = nir_bytes(ckpt.model)
        if formats == ["nir"]:  # the float model alone: no quantization, no meta.json (it describes the C export)
            write_bytes_atomic(out / NIR_FILE, files[NIR_FILE])
            return {"files": {NIR_FILE: _sha(files[NIR_FILE])}, "unsupported": unsupported}
    if "onnx" in formats:
        with tempfile.TemporaryDirectory(prefix="edgemem-onnx-") as tmp:
            names = export_onnx(ckpt.model, Path(tmp) / "model.onnx")
            files["model.onnx"] = (Path(tmp) / "model.onnx").read_bytes()
    else:
        names = state_names(ckpt.model)
    tflite_states: list[list[Any]] = []
    if "tflite" in formats:  # the graph form, also of the version-1 L2MU (same integers: test_tflite)
        low = lower_checkpoint(ckpt)
        files[TFLITE_FILE] = to_tflite(low, name).data
        files[TFLITE_VARS_FILE] = to_tflite(low, name, variables=True).data
        files[TFLITE_FLOAT_FILE] = to_tflite_float(low, name).data
        tflite_states = [[st.name, st.dtype, st.count, st.scale] for st in to_tflite(low, name).states]
    if graph:
        meta = _export_graph(checkpoint, ckpt, out, name, files, names, "qcdq" in formats, tflite_states)
        return meta
    q = quantize_checkpoint(ckpt)
    arena = arena_bytes(q)
    if "c" in formats:
        files["model.bin"] = build_blob(q)
        files["model.h"] = model_h(name, q, arena, ckpt.class_names, ckpt.normalizer.mean, ckpt.normalizer.std,
                                   recipe_of(ckpt).data.downsample).encode()
        files["model.c"] = model_c(name, q).encode()
    meta = {
        "format": "edgemem-export",
        "version": 1,
        "name": name,
        "kind": "l2mu",
        "checkpoint": os.path.relpath(checkpoint.resolve(), out.resolve()),
        "checkpoint_sha256": _sha(checkpoint.read_bytes()),
        "class_names": ckpt.class_names,
        "window": ckpt.window,
        "downsample": recipe_of(ckpt).data.downsample,
        "input_scale": q.input_scale,
        "output_scale": q.output_scale,
        "normalizer": ckpt.normalizer.to_dict(),
        "state_names": names,
        "arena_bytes": arena,
        "a_shift": q.a_shift,
        "population_scales": {p: q.pops[p].scale for p in POP_NAMES},
    }
    if tflite_states:
        meta["tflite_states"] = tflite_states
    return _write(out, files, meta)


def _write(out: Path, files: dict[str, bytes], meta: dict[str, Any]) -> dict[str, Any]:
    meta["files"] = {k: _sha(v) for k, v in sorted(files.items())}
    files[META] = (json.dumps(meta, indent=2) + "\n").encode()
    for fname, data in files.items():
        write_bytes_atomic(out / fname, data)
    return meta


def _export_graph(checkpoint: Path, ckpt: Checkpoint, out: Path, name: str, files: dict[str, bytes],
                  names: list[str], qcdq: bool = False, tflite_states: list[list[Any]] | None = None) -> dict[str, Any]:
    """Every model other than the L2MU: an integer graph (blob version 2, docs/graph.md)."""
    recipe = recipe_of(ckpt)
    low = lower_checkpoint(ckpt)
    # scratch buffers whose lifetimes within a step are disjoint share arena bytes (docs/graph.md "Placement")
    place_by_lifetime(low.graph)
    blob = build_graph_blob(low.graph)
    readout = recipe.readout
    files["model.bin"] = blob
    files["model.h"] = graph_c_arrays.model_h(
        name, blob, low.input_scale, low.output_scale, ckpt.class_names, ckpt.normalizer.mean, ckpt.normalizer.std,
        recipe.data.downsample, readout=readout).encode()
    files["model.c"] = graph_c_arrays.model_c(name, blob).encode()
    if qcdq:
        with tempfile.TemporaryDirectory(prefix="edgemem-qcdq-") as tmp:
            export_qcdq(ckpt.model, low, Path(tmp) / QCDQ_FILE)
            files[QCDQ_FILE] = (Path(tmp) / QCDQ_FILE).read_bytes()
    meta = {
        "format": "edgemem-export",
        "version": 1,
        "name": name,
        "kind": registry.kind_of(ckpt.model),
        "checkpoint": os.path.relpath(checkpoint.resolve(), out.resolve()),
        "checkpoint_sha256": _sha(checkpoint.read_bytes()),
        "class_names": ckpt.class_names,
        "window": ckpt.window,
        "downsample": recipe.data.downsample,
        "input_scale": low.input_scale,
        "output_scale": low.output_scale,
        "normalizer": ckpt.normalizer.to_dict(),
        "state_names": names,
        "arena_bytes": low.graph.arena_size,
        "readout": readout,
        "weight_bytes": low.graph.weight_bytes(),
        "ops": len(low.graph.ops),
    }
    if tflite_states:
        meta["tflite_states"] = tflite_states  # [name, dtype, count, scale] of each state input, in order
    return _write(out, files, meta)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


# Every key `export` writes, with what its value must be; the consumers (verify, stress, the tests)
# index these directly, so a missing or mistyped one is reported here by name instead of as a KeyError later.
_META_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("a string", lambda v: isinstance(v, str) and v != ""),
    "kind": (f"one of {', '.join(registry.KINDS)}", lambda v: v in registry.KINDS),
    "checkpoint": ("a path string", lambda v: isinstance(v, str) and v != ""),
    "checkpoint_sha256": ("a string", lambda v: isinstance(v, str)),
    "class_names": ("a list of strings", _is_str_list),
    "window": ("an integer", _is_int),
    "downsample": ("an integer", _is_int),
    "input_scale": ("a positive number", _is_num),
    "output_scale": ("a positive number", _is_num),
    "normalizer": ("a mapping", lambda v: isinstance(v, dict)),
    "state_names": ("a list of strings", _is_str_list),
    "arena_bytes": ("an integer", _is_int),
    "files": ("a mapping", lambda v: isinstance(v, dict)),
}
_L2MU_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {  # the version-1 blob's extra constants
    "a_shift": ("an integer", _is_int),
    "population_scales": (f"a mapping of {', '.join(POP_NAMES)} to positive numbers",
                          lambda v: isinstance(v, dict) and all(_is_num(v.get(p)) for p in POP_NAMES)),
}
_TFLITE_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "tflite_states": ("a list of [name, dtype, count, scale]", lambda v: isinstance(v, list) and all(
        isinstance(s, list) and len(s) == 4 and isinstance(s[0], str) and s[1] in ("int8", "int16")
        and _is_int(s[2]) and _is_num(s[3]) for s in v)),
}
_GRAPH_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "readout": ("'sum' or 'last'", lambda v: v in registry.READOUTS),
}


def load_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    if not path.is_file():
        raise EdgememError(f"{folder} is not an edgemem export (no {META}); run `edgemem export` first")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise EdgememError(f"{path} is not valid JSON (not UTF-8 text: {e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise EdgememError(f"{path} is not valid JSON ({e})") from None
    except RecursionError:
        raise EdgememError(f"{path} is not valid JSON (nested too deeply)") from None
    if not isinstance(meta, dict) or meta.get("format") != "edgemem-export" or meta.get("version") != 1:
        raise EdgememError(f"{path} is not an edgemem export of format version 1")
    # a graph export has a readout (an L2MU too, once mixed precision moved it to the graph format)
    extra = _L2MU_FIELDS if meta.get("kind") == "l2mu" and "readout" not in meta else _GRAPH_FIELDS
    if TFLITE_FILE in (meta.get("files") or {}):  # a TFLite export says what its state inputs are
        extra = {**extra, **_TFLITE_FIELDS}
    for key, (what, ok) in {**_META_FIELDS, **extra}.items():
        if key not in meta:
            raise EdgememError(f"{path} has no '{key}' field; re-export with `edgemem export`")
        if not ok(meta[key]):
            raise EdgememError(f"{path} field '{key}' must be {what}, got {json.dumps(meta[key])[:60]}")
    return meta
