"""`edgemem export CKPT --to onnx,c[,qcdq][,nir][,tflite] --out DIR`: lower a checkpoint to its integer graph and
write the release artifacts (the folder's files and meta.json: edgemem/exporters/folder.py).

Every model kind goes the same way: calibrate on the checkpoint's calibration windows (edgemem.training.sets), lower
to the op graph (edgemem.quant.lower), place its buffers (edgemem.graph.arena), write the blob (edgemem.graph.blob)
and whatever formats were asked for. Each step runs once; nothing is written until every file was generated, and
then the folder is written whole beside --out and swapped in (folder.write_folder): an interrupted or failed export
leaves the previous folder as it was. --out is checked before the checkpoint is even loaded.
qcdq: model_qcdq.onnx, the integer graph's step as QCDQ ONNX (edgemem/exporters/qcdq.py); nir: model.nir, the float
spiking model as a NIR graph (edgemem/exporters/nir_export.py); tflite: model.tflite, model_vars.tflite,
model_float.tflite and the converter-style model_int8.tflite (edgemem/exporters/tflite_export.py, tflite_float.py,
tflite_int8.py).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgemem.checkpoint import Checkpoint, load_checkpoint
from edgemem.errors import EdgememError, check_name
from edgemem.exporters import graph_c_arrays
from edgemem.exporters.bundle import bundle_files, check_bundle_out, write_bundle
from edgemem.exporters.folder import (
    BLOB_FILE,
    FORMATS,
    HEADER_FILE,
    INPUT_STAGE_FILE,
    NIR_FILE,
    ONNX_FILE,
    QCDQ_FILE,
    SOURCE_FILE,
    TFLITE_FILE,
    TFLITE_FLOAT_FILE,
    TFLITE_INT8_FILE,
    TFLITE_VARS_FILE,
    check_export_out,
    sha256,
    write_export,
    write_folder,
)
from edgemem.exporters.input_stage import input_stage
from edgemem.exporters.onnx_export import export_onnx, state_names
from edgemem.exporters.qcdq import check_exportable, export_qcdq
from edgemem.graph.arena import place_by_lifetime
from edgemem.graph.blob import build_graph_blob
from edgemem.models import registry
from edgemem.quant.lower import Lowered, lower
from edgemem.tool import require_extra, tool_info
from edgemem.training.recipe import Recipe
from edgemem.training.sets import DataSets, data_sets, recipe_of

# the optional packages a format needs (pyproject.toml's extras), checked before any work
FORMAT_EXTRAS = {"tflite": ("tflite", ("flatbuffers", "ai_edge_litert")), "nir": ("nir", ("nir",))}


def lower_checkpoint(ckpt: Checkpoint, checkpoint_path: Path, sets: DataSets | None = None) -> Lowered:
    """The integer graph of a checkpoint, calibrated on its recipe's calibration windows (deterministic), with
    the recipe's weight and activation widths."""
    sets = sets or data_sets(ckpt, checkpoint_path)
    q = sets.recipe.quant
    return lower(ckpt.model, sets.calibration, q.margin, q.weight_bits or None, q.act_bits or None)


def nir_bytes(model: Any) -> tuple[bytes, list[str]]:
    """The model's NIR file (an EdgememError for a model that is not spiking) and what NIR cannot express."""
    from edgemem.exporters.nir_export import write_nir  # imports nir (h5py) only when asked for

    with tempfile.TemporaryDirectory(prefix="edgemem-nir-") as tmp:
        unsupported = write_nir(model, Path(tmp) / NIR_FILE)
        return (Path(tmp) / NIR_FILE).read_bytes(), unsupported


def _onnx_bytes(model: Any) -> bytes:
    with tempfile.TemporaryDirectory(prefix="edgemem-onnx-") as tmp:
        export_onnx(model, Path(tmp) / ONNX_FILE)
        return (Path(tmp) / ONNX_FILE).read_bytes()


def _qcdq_bytes(model: Any, low: Lowered) -> bytes:
    with tempfile.TemporaryDirectory(prefix="edgemem-qcdq-") as tmp:
        export_qcdq(model, low, Path(tmp) / QCDQ_FILE)
        return (Path(tmp) / QCDQ_FILE).read_bytes()


def export(checkpoint: Path, formats: list[str], out: Path, name: str | None = None) -> dict[str, Any]:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise EdgememError(f"unknown export format '{unknown[0] if unknown else ''}' (choose from {', '.join(FORMATS)})")
    if name is not None:
        check_name(name, "--name")
    if "bundle" in formats and formats != ["bundle"]:
        raise EdgememError("--to bundle is a folder of its own (sources and build files): export it alone, to its "
                           "own --out")
    if formats == ["bundle"]:
        check_bundle_out(out)  # before the checkpoint is loaded and calibrated
    else:
        check_export_out(out)
    for f in formats:
        if f in FORMAT_EXTRAS:
            extra, modules = FORMAT_EXTRAS[f]
            require_extra(extra, f"edgemem export --to {f}", *modules)
    ckpt = load_checkpoint(checkpoint)
    name = check_name(name or ckpt.name, "model name")
    kind = registry.kind_of(ckpt.model)
    if "qcdq" in formats:
        check_exportable(kind)
    files: dict[str, bytes] = {}  # everything is generated first; nothing is written until all succeeded
    if "nir" in formats:
        files[NIR_FILE], unsupported = nir_bytes(ckpt.model)
        if formats == ["nir"]:  # the float model alone: no quantization, no meta.json (it describes the C export)
            return _write_nir_only(out, files[NIR_FILE], unsupported)
    if "onnx" in formats:
        files[ONNX_FILE] = _onnx_bytes(ckpt.model)
    recipe = recipe_of(ckpt, checkpoint)
    tool = tool_info()  # meta.json "tool", model.h EM_TOOL_VERSION / EM_TOOL_COMMIT (edgemem/tool.py: the rule)
    sets = data_sets(ckpt, checkpoint)
    low = lower_checkpoint(ckpt, checkpoint, sets)
    # scratch buffers whose lifetimes within a step are disjoint share arena bytes (docs/graph.md "Placement")
    place_by_lifetime(low.graph)
    blob = build_graph_blob(low.graph)
    files[BLOB_FILE] = blob
    stage = input_stage(recipe, sets, ckpt, low.input_scale)
    stage_blob = build_graph_blob(stage.graph) if stage else None
    if stage_blob is not None:
        files[INPUT_STAGE_FILE] = stage_blob
    files[HEADER_FILE] = graph_c_arrays.model_h(
        name, blob, low.input_scale, low.output_scale, ckpt.class_names, ckpt.normalizer.mean, ckpt.normalizer.std,
        recipe.data.downsample, readout=recipe.readout, tool=tool, stage_blob=stage_blob,
        stage_meta=stage.meta if stage else None).encode()
    files[SOURCE_FILE] = graph_c_arrays.model_c(name, blob, stage_blob).encode()
    if "qcdq" in formats:
        files[QCDQ_FILE] = _qcdq_bytes(ckpt.model, low)
    meta = _meta(checkpoint, ckpt, out, name, recipe, low, tool)
    if stage is not None:
        meta["input_stage"] = stage.meta
    if formats == ["bundle"]:
        meta["files"] = {BLOB_FILE: sha256(blob)}
        write_bundle(out, bundle_files(name, files[HEADER_FILE].decode(), files[SOURCE_FILE].decode(), blob, meta))
        return meta
    if "tflite" in formats:
        from edgemem.exporters.tflite_export import to_tflite  # the tflite extra: imported only when asked for
        from edgemem.exporters.tflite_float import to_tflite_float
        from edgemem.exporters.tflite_int8 import meta_of as int8_meta
        from edgemem.exporters.tflite_int8 import to_tflite_int8

        state_io = to_tflite(low, name)
        files[TFLITE_FILE] = state_io.data
        files[TFLITE_VARS_FILE] = to_tflite(low, name, variables=True).data
        files[TFLITE_FLOAT_FILE] = to_tflite_float(low, name).data
        # [name, dtype, count, scale] of each state input, in order
        meta["tflite_states"] = [[st.name, st.dtype, st.count, st.scale] for st in state_io.states]
        # the converter-style int8 file: the float twin quantized after training, calibrated on the calibration set
        int8 = to_tflite_int8(files[TFLITE_FLOAT_FILE], sets.calibration, low.input_scale,
                              [st.name for st in state_io.states], name)
        files[TFLITE_INT8_FILE] = int8.data
        meta["tflite_int8"] = int8_meta(int8)
    return write_export(out, files, meta)


def _write_nir_only(out: Path, data: bytes, unsupported: list[str]) -> dict[str, Any]:
    write_folder(out, {NIR_FILE: data})
    return {"files": {NIR_FILE: sha256(data)}, "unsupported": unsupported}


def _meta(checkpoint: Path, ckpt: Checkpoint, out: Path, name: str, recipe: Recipe, low: Lowered,
          tool: dict[str, str]) -> dict[str, Any]:
    return {
        "format": "edgemem-export",
        "version": 1,
        "tool": tool,
        "name": name,
        "kind": registry.kind_of(ckpt.model),
        "checkpoint": os.path.relpath(checkpoint.resolve(), out.resolve()),
        "checkpoint_sha256": sha256(checkpoint.read_bytes()),
        "class_names": ckpt.class_names,
        "window": ckpt.window,
        "downsample": recipe.data.downsample,
        "input_scale": low.input_scale,
        "output_scale": low.output_scale,
        "normalizer": ckpt.normalizer.to_dict(),
        "state_names": state_names(ckpt.model),
        "arena_bytes": low.graph.arena_size,
        "readout": recipe.readout,
        "weight_bytes": low.graph.weight_bytes(),
        "ops": len(low.graph.ops),
    }
