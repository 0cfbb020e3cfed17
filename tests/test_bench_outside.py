"""bench_outside: the outside TFLM + CMSIS-NN figures are matched to today's files by hash, never passed off as current."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgemem import bench_outside


def _root(tmp_path: Path, measured: bytes, today: bytes) -> Path:
    (tmp_path / "export" / "m").mkdir(parents=True)
    (tmp_path / "export" / "m" / "model_vars.tflite").write_bytes(today)
    (tmp_path / "export" / "m" / "model_int8.tflite").write_bytes(b"int8")
    doc = {"provenance": {"what": "w.", "build": "b.", "method": "m.", "date": "d"},
           "models": {"m": {"model_vars.tflite": {"sha256": hashlib.sha256(measured).hexdigest(),
                                                  "instructions_per_step": 3000, "arena_used_bytes": 1},
                            "model_int8.tflite": {"sha256": hashlib.sha256(b"int8").hexdigest(),
                                                  "instructions_per_step": 1500, "arena_used_bytes": 1}}}}
    (tmp_path / "bench" / "outside").mkdir(parents=True)
    (tmp_path / bench_outside.OUTSIDE).write_text(json.dumps(doc))
    return tmp_path


def test_current_and_stale_files_and_the_aim(tmp_path: Path) -> None:
    cores = {"m": {"m4": {"instructions_per_step": 1000}}}
    cmp = bench_outside.compare(_root(tmp_path, b"old", b"new"), cores)
    assert cmp is not None
    row = cmp["models"]["m"]
    assert row["model_vars.tflite"]["current"] is False and row["model_int8.tflite"]["current"] is True
    assert row["model_int8.tflite"]["tflm_over_edgemem"] == 1.5
    md = bench_outside.markdown(cmp)
    assert "3,000 (stale)" in md and "| 1.50x | – | – | missed |" in md  # the measured int8 file: 1.5x, below 2x


def test_estimate_when_no_converter_file_was_measured(tmp_path: Path) -> None:
    root = _root(tmp_path, b"same", b"same")
    doc = json.loads((root / bench_outside.OUTSIDE).read_text())
    del doc["models"]["m"]["model_int8.tflite"]
    doc["models"]["m"][bench_outside.ESTIMATE] = {"instructions_per_step": 1900}
    (root / bench_outside.OUTSIDE).write_text(json.dumps(doc))
    md = bench_outside.markdown(bench_outside.compare(root, {"m": {"m4": {"instructions_per_step": 1000}}}))
    assert "| 3,000 | 3.00x | – | – | 1,900 | 1.90x | missed |" in md


def test_aim_met_and_no_file(tmp_path: Path) -> None:
    root = _root(tmp_path, b"same", b"same")
    cmp = bench_outside.compare(root, {"m": {"m4": {"instructions_per_step": 500}}})
    assert cmp is not None and "| 3.00x | – | – | met |" in bench_outside.markdown(cmp)
    assert bench_outside.compare(tmp_path / "nowhere", {}) is None and bench_outside.markdown(None) == ""
