"""An export folder, written once: its file names, meta.json (what every consumer reads, checked field by field),
the sha256 of every artifact, the checkpoint it was made from (checked against its sha256), and the all-or-nothing
write (the folder is filled beside `--out` and swapped in as a whole: edgemem.atomic.write_dir_atomic)."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgemem.atomic import check_out_dir, write_dir_atomic
from edgemem.errors import EdgememError, check_name
from edgemem.graph.blob import RETIRED_VERSION_MESSAGE
from edgemem.models import registry

FORMATS = ("onnx", "c", "qcdq", "nir", "tflite", "bundle")  # bundle: alone (edgemem/exporters/bundle.py)
BLOB_FILE = "model.bin"  # the graph blob (docs/graph.md)
HEADER_FILE, SOURCE_FILE = "model.h", "model.c"  # the blob as a C array, with the model's constants
ONNX_FILE = "model.onnx"  # one float step, state in and out
TFLITE_FILE = "model.tflite"  # one step, states as inputs and outputs (edgemem.exporters.tflite_export)
TFLITE_VARS_FILE = "model_vars.tflite"  # the same step with its state in resource variables
TFLITE_FLOAT_FILE = "model_float.tflite"  # the same step in float32 (edgemem.exporters.tflite_float)
TFLITE_INT8_FILE = "model_int8.tflite"  # converter-style int8, not bit-exact (edgemem.exporters.tflite_int8)
QCDQ_FILE = "model_qcdq.onnx"
NIR_FILE = "model.nir"
META = "meta.json"
PATCH_FILE = "patch.bin"  # the patch schedule's plan (`edgemem plan --patch-out`), where the model has one
INPUT_STAGE_FILE = "input_stage.bin"  # the input stage's graph blob (raw samples -> model input), where it has one
# every file an export folder may hold: `export` replaces such a folder as a whole, and refuses to replace any other
EXPORT_FILES = frozenset({BLOB_FILE, HEADER_FILE, SOURCE_FILE, ONNX_FILE, TFLITE_FILE, TFLITE_VARS_FILE,
                          TFLITE_FLOAT_FILE, TFLITE_INT8_FILE, QCDQ_FILE, NIR_FILE, META, PATCH_FILE, INPUT_STAGE_FILE})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_export_out(out: Path) -> None:
    """`--out` before any work: a new folder, an empty one or an earlier export (only export files in it), which
    the export replaces as a whole; never a file, a path under a file, an unwritable place or another folder."""
    check_out_dir(out, "--out", whole=True)
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES or not p.is_file())
        if foreign:
            raise EdgememError(f"--out {out} holds {foreign[0]!r}, which no export writes; an export replaces its "
                               "folder as a whole, so pick a new or empty folder (or an earlier export)")


def write_export(out: Path, files: dict[str, bytes], meta: dict[str, Any]) -> dict[str, Any]:
    """The files and meta.json (with every file's sha256), as one folder that replaces `out` whole."""
    meta["files"] = {k: sha256(v) for k, v in sorted(files.items())}
    write_folder(out, {**files, META: (json.dumps(meta, indent=2) + "\n").encode()})
    return meta


def write_folder(out: Path, files: dict[str, bytes]) -> None:
    """Fill a temp folder beside `out` and swap it in as a whole: a failure (a full disk) or Ctrl-C leaves the
    previous folder exactly as it was, never a mix of old and new files or a folder holding some of them."""
    def fill(tmp: Path) -> None:
        for fname, data in files.items():
            (tmp / fname).write_bytes(data)

    write_dir_atomic(out, fill)


def _inside(export_dir: Path, name: str) -> Path:
    """meta.json's file name as a path inside the folder: a plain name, no folder part, no link out."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name
            or os.path.isabs(name)):
        raise EdgememError(f"{export_dir / META} lists a file {name!r} that is not a plain file name in the folder")
    path = export_dir / name
    if path.is_symlink():
        raise EdgememError(f"{path} is a symbolic link; an export holds only its own files")
    return path


def check_files(export_dir: Path, meta: dict[str, Any]) -> None:
    """Before anything is read: meta.json lists the files a consumer reads (an empty list hashes nothing), each a
    plain name of a regular file in the folder, no symbolic link (a link could point anywhere, /dev/zero included)."""
    files = meta["files"]
    if not files:
        raise EdgememError(f"{export_dir / META} lists no files ('files' is empty), so nothing can be checked; "
                           "re-run `edgemem export`")
    for name in files:
        _inside(export_dir, name)
    for known in sorted(EXPORT_FILES - {META, PATCH_FILE}):  # what a consumer reads must be what was hashed
        if known not in files and (export_dir / known).exists():
            raise EdgememError(f"{export_dir / META} does not list {known} in 'files', so it cannot be checked; "
                               "re-run `edgemem export`")
    for required in (BLOB_FILE, ONNX_FILE, HEADER_FILE, SOURCE_FILE):
        if required not in files:
            raise EdgememError(f"{export_dir / META} does not list {required} in 'files'; export with --to onnx,c")
    for name in [*files, PATCH_FILE]:
        path = _inside(export_dir, name)
        if path.exists() and not path.is_file():
            raise EdgememError(f"{path} is not a regular file")
        if name in files and not path.is_file():
            raise EdgememError(f"{export_dir} has no {name}; export with --to onnx,c")


def check_hashes(export_dir: Path, meta: dict[str, Any]) -> None:
    """Every artifact must be the one `edgemem export` wrote (damage a loader cannot see, e.g. an ONNX weight);
    check_files first."""
    check_files(export_dir, meta)
    for name, digest in meta["files"].items():
        path = export_dir / name
        if not isinstance(digest, str) or sha256(path.read_bytes()) != digest:
            raise EdgememError(f"{path} does not match meta.json (sha256 differs): it was edited or damaged; "
                               "re-run `edgemem export`")


def checkpoint_of(export_dir: Path, meta: dict[str, Any], checkpoint: Path | None = None) -> Path:
    """The checkpoint an export was made from: `checkpoint` when given (an export folder moved away from it), else
    meta.json's path relative to the folder. Either way its sha256 must be meta.json's checkpoint_sha256: a
    replaced or retrained checkpoint would otherwise be scored against the wrong artifacts."""
    if checkpoint is None:
        path = (export_dir / meta["checkpoint"]).resolve()
        if not path.is_file():
            raise EdgememError(f"{export_dir}: its checkpoint {meta['checkpoint']} (meta.json, relative to the folder) "
                               f"does not exist; pass the checkpoint with --checkpoint PATH")
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise EdgememError(f"checkpoint {path} does not exist")
    if sha256(path.read_bytes()) != meta["checkpoint_sha256"]:
        raise EdgememError(f"checkpoint {path} is not the one {export_dir} was exported from (its sha256 differs from "
                           "meta.json's checkpoint_sha256); pass the right one with --checkpoint PATH or re-export")
    return path


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_name(v: Any) -> bool:
    try:
        check_name(v, "name")
    except EdgememError:
        return False
    return True


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(s, str) for s in v)


# Every key `export` writes, with what its value must be; the consumers (verify, stress, the tests)
# index these directly, so a missing or mistyped one is reported here by name instead of as a KeyError later.
_META_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "name": ("a model name (ASCII letters, digits, '_')", lambda v: _is_name(v)),
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
_TFLITE_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "tflite_states": ("a list of [name, dtype, count, scale]", lambda v: isinstance(v, list) and all(
        isinstance(s, list) and len(s) == 4 and isinstance(s[0], str) and s[1] in ("int8", "int16")
        and _is_int(s[2]) and _is_num(s[3]) for s in v)),
}


def _is_params(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and _is_num(v[0]) and _is_int(v[1]) and -128 <= v[1] <= 127


_TFLITE_INT8_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "tflite_int8": ("a mapping of form, input and output [scale, zero point] and states [name, count, scale, zero "
                    "point]", lambda v: isinstance(v, dict) and isinstance(v.get("form"), str)
                    and _is_params(v.get("input")) and _is_params(v.get("output"))
                    and isinstance(v.get("states"), list) and all(
                        isinstance(s, list) and len(s) == 4 and isinstance(s[0], str) and _is_int(s[1])
                        and _is_params(s[2:]) for s in v["states"])),
}
# Optional: exports written before edgemem recorded itself have no "tool"; checked where present.
_OPTIONAL_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "tool": ("a mapping of name, version and commit strings", lambda v: isinstance(v, dict) and all(
        isinstance(v.get(k), str) and v.get(k) for k in ("name", "version", "commit"))),
}
# An export with input_stage.bin (edgemem/exporters/input_stage.py) says what the stage is.
_STAGE_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "input_stage": ("a mapping with kind 'sensor' or 'logmel', n_in, n_out and arena_bytes", lambda v: isinstance(
        v, dict) and v.get("kind") in ("sensor", "logmel") and all(_is_int(v.get(k)) for k in
                                                                   ("n_in", "n_out", "arena_bytes"))),
}
_GRAPH_FIELDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "readout": ("'sum' or 'last'", lambda v: v in registry.READOUTS),
    "weight_bytes": ("an integer", _is_int),
    "ops": ("an integer", _is_int),
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
    if "readout" not in meta and "population_scales" in meta:  # an export of the retired blob version 1
        raise EdgememError(f"{folder}: {RETIRED_VERSION_MESSAGE}")
    extra = _GRAPH_FIELDS
    if TFLITE_FILE in (meta.get("files") or {}):  # a TFLite export says what its state inputs are
        extra = {**extra, **_TFLITE_FIELDS}
    if TFLITE_INT8_FILE in (meta.get("files") or {}):  # and the int8 file its parameters
        extra = {**extra, **_TFLITE_INT8_FIELDS}
    if INPUT_STAGE_FILE in (meta.get("files") or {}) or "input_stage" in meta:
        extra = {**extra, **_STAGE_FIELDS}
    for key, (what, ok) in {**_META_FIELDS, **extra}.items():
        if key not in meta:
            raise EdgememError(f"{path} has no '{key}' field; re-export with `edgemem export`")
        if not ok(meta[key]):
            raise EdgememError(f"{path} field '{key}' must be {what}, got {json.dumps(meta[key])[:60]}")
    for key, (what, ok) in _OPTIONAL_FIELDS.items():
        if key in meta and not ok(meta[key]):
            raise EdgememError(f"{path} field '{key}' must be {what}, got {json.dumps(meta[key])[:60]}")
    return meta
