"""`edgemem export CKPT --to onnx,c --out DIR`: quantize a checkpoint and write its release artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.atomic import write_bytes_atomic
from edgemem.checkpoint import Checkpoint, load_checkpoint
from edgemem.errors import EdgememError
from edgemem.export.blob import build_blob
from edgemem.export.c_arrays import model_c, model_h
from edgemem.export.onnx_export import export_onnx
from edgemem.quant.calibrate import quantize_l2mu
from edgemem.quant.model import POP_NAMES, QuantL2MU
from edgemem.train.pipeline import load_windows, prepare
from edgemem.train.recipe import Recipe, _build
from edgemem.train.run import calibration_windows

FORMATS = ("onnx", "c")
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


def quantize_checkpoint(ckpt: Checkpoint) -> QuantL2MU:
    """Post-training quantization, calibrated on the checkpoint recipe's training windows (deterministic)."""
    recipe = recipe_of(ckpt)
    d = recipe.data
    windows, names = load_windows(recipe)
    prep = prepare(windows, names, d.train_subjects, d.val_subjects, d.test_subjects)
    calib = calibration_windows(prep.split.train.x, recipe.quant.calib_windows, 0)
    return quantize_l2mu(ckpt.model, calib, recipe.quant.margin)


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
    q = quantize_checkpoint(ckpt)
    files: dict[str, bytes] = {}  # everything is generated first; nothing is written until all succeeded
    if "onnx" in formats:
        with tempfile.TemporaryDirectory(prefix="edgemem-onnx-") as tmp:
            state_names = export_onnx(ckpt.model, Path(tmp) / "model.onnx")
            files["model.onnx"] = (Path(tmp) / "model.onnx").read_bytes()
    else:
        state_names = ckpt.model.state_names()
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
        "state_names": state_names,
        "arena_bytes": arena,
        "a_shift": q.a_shift,
        "population_scales": {p: q.pops[p].scale for p in POP_NAMES},
        "files": {k: _sha(v) for k, v in sorted(files.items())},
    }
    files[META] = (json.dumps(meta, indent=2) + "\n").encode()
    for fname, data in files.items():
        write_bytes_atomic(out / fname, data)
    return meta


def load_meta(folder: Path) -> dict[str, Any]:
    path = folder / META
    if not path.is_file():
        raise EdgememError(f"{folder} is not an edgemem export (no {META}); run `edgemem export` first")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EdgememError(f"{path} is not valid JSON ({e})") from None
    if meta.get("format") != "edgemem-export" or meta.get("version") != 1:
        raise EdgememError(f"{path} is not an edgemem export of format version 1")
    return meta


def quantized_from_export(folder: Path) -> tuple[dict[str, Any], Checkpoint, QuantL2MU]:
    meta = load_meta(folder)
    ckpt = load_checkpoint((folder / meta["checkpoint"]).resolve())
    return meta, ckpt, quantize_checkpoint(ckpt)


def arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))
