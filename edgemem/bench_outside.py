"""TFLite Micro built with CMSIS-NN on the emulated Cortex-M4: figures measured outside the project, beside edgemem's.

TFLM with CMSIS-NN is what Cortex-M users run, and it cannot be built from the package registries, so `make bench`
cannot build it. Its figures come from a scratch build outside the repository (nothing of it is committed) and are
kept with their provenance in bench/outside/tflm_cmsis_m4.json: per model and file, the sha256 of the .tflite that
was measured, TFLM's instructions per step on QEMU mps2-an386 (SysTick under -icount, steps 1..200 of the held-out
stream) and the arena TFLM reported. This module only reads that file, compares the hashes with today's
export/NAME files (a figure measured on another file is marked stale, never passed off as current) and puts the
figures beside edgemem's own M4 instructions per step from models/NAME/verify.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

OUTSIDE = Path("bench") / "outside" / "tflm_cmsis_m4.json"
FILES = ("model_vars.tflite", "model_int8.tflite")  # edgemem's bit-exact file; the converter-style int8 file
ESTIMATE = "converter_int8_estimate"  # no file: measured FC costs swapped into measured totals (provenance)


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def load(root: Path) -> dict[str, Any] | None:
    p = root / OUTSIDE
    return json.loads(p.read_text()) if p.is_file() else None


def compare(root: Path, cores: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Per model: edgemem's M4 instructions per step and, per measured file, TFLM + CMSIS-NN's, their ratio and
    whether the measured file is today's (`current`)."""
    doc = load(root)
    if doc is None:
        return None
    rows: dict[str, Any] = {}
    for name, files in doc["models"].items():
        m4 = cores.get(name, {}).get("m4")
        row: dict[str, Any] = {"edgemem_m4_instructions_per_step": m4["instructions_per_step"] if m4 else None}
        for f in FILES:
            e = files.get(f)
            if e is None:
                continue
            current = _sha256(root / "export" / name / f) == e["sha256"]
            r = {**e, "current": current}
            if m4 and e.get("instructions_per_step"):
                r["tflm_over_edgemem"] = e["instructions_per_step"] / m4["instructions_per_step"]
            row[f] = r
        est = files.get(ESTIMATE)
        if est is not None:
            row[ESTIMATE] = {**est, "tflm_over_edgemem": est["instructions_per_step"] / m4["instructions_per_step"]
                             if m4 else None}
        rows[name] = row
    return {"provenance": doc["provenance"], "models": rows}


def markdown(cmp: dict[str, Any] | None) -> str:
    if cmp is None:
        return ""
    p = cmp["provenance"]
    lines = ["", "## TFLite Micro with CMSIS-NN on the Cortex-M4 (outside measurement)", "",
             f"Not measured by `make bench`: {p['what']} Build: {p['build']} Method: {p['method']} "
             f"Measured {p['date']}. Figures are per .tflite file, identified by its sha256; a figure whose file is "
             "no longer the one in export/ is marked (stale). edgemem: the M4 instructions per step of "
             "models/NAME/verify.json (same QEMU machine and counting method). " + p.get("estimate", "")
             + " The aim: edgemem <= 0.5x the converter-style TFLM + CMSIS-NN (ratio >= 2), measured where a "
             "converter-style file was measured, else the estimate." + (f" {p['notes']}" if p.get("notes") else ""),
             "",
             "| model | edgemem M4 instr/step | TFLM+CMSIS-NN, edgemem's bit-exact file | ratio "
             "| TFLM+CMSIS-NN, converter-style int8 file | ratio | converter-style estimate | ratio | aim (>= 2x) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in cmp["models"].items():
        e = r["edgemem_m4_instructions_per_step"]
        cells = [name, f"{e:,.0f}" if e else "–"]
        converter = None
        for key in (*FILES, ESTIMATE):
            t = r.get(key)
            if t is None or not t.get("instructions_per_step"):
                cells += ["–", "–"]
                continue
            stale = "" if t.get("current", True) else " (stale)"
            cells.append(f"{t['instructions_per_step']:,.0f}{stale}")
            ratio = t.get("tflm_over_edgemem")
            cells.append(f"{ratio:.2f}x" if ratio else "–")
            if key != FILES[0] and converter is None:
                converter = ratio
        cells.append("–" if converter is None else ("met" if converter >= 2 else "missed"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
