"""The browser demo's files: the static page (edgemem/demo/web), the C runtime as WebAssembly, the model blob,
vendored uPlot and data.json with the held-out watch recordings.

data.json carries each held-out recording's raw samples (for the chart) and its windows exactly as `edgemem verify`
feeds them (normalized, quantized to int8 by edgemem.graph.intops.quantize), so the page runs the same int8 inputs
as the C host; it also carries what the page needs to quantize an uploaded CSV itself (normalizer, input scale).
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from edgemem import tool
from edgemem.errors import EdgememError

WEB = Path(__file__).resolve().parent / "web"
_CHECKOUT = tool.checkout_root()
# `make vendor`: uPlot from the npm registry into the checkout's build/vendor/uplot; an installed wheel looks in the
# user cache (<cache>/vendor/uplot, README "Install")
VENDOR = (_CHECKOUT / "build" if _CHECKOUT is not None else tool.cache_dir()) / "vendor" / "uplot"
# the built page: build/demo/har in a checkout, <cache>/demo/har otherwise
SITE = (_CHECKOUT / "build" if _CHECKOUT is not None else tool.cache_dir()) / "demo" / "har"
VENDOR_FILES = ("uPlot.iife.min.js", "uPlot.min.css")

def pinetime_budget() -> dict[str, Any]:
    """The PineTime profile (edgemem/schedule/targets/pinetime.yaml): what InfiniTime leaves free for a model."""
    from edgemem.schedule.profiles import load_target

    t = load_target("pinetime")
    return {"name": "PineTime (nRF52832, InfiniTime)", "flash_bytes": t.flash_free_for_model,
            "ram_bytes": t.ram_free_for_model, "flash_total": t.flash_total, "ram_total": t.ram_total, "mhz": 64}


CSV_COLUMNS = ("ax", "ay", "az", "gx", "gy", "gz")  # accelerometer in g, gyroscope in rad/s, 50 Hz


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()


def site_data(export_dir: Path) -> dict[str, Any]:
    from edgemem.data.sources import load_source
    from edgemem.exporters.folder import checkpoint_of
    from edgemem.graph.intops import quantize
    from edgemem.training.sets import recipe_of
    from edgemem.verification.held_out import held_out_set

    meta, ckpt, held = held_out_set(export_dir)
    ckpt_path = checkpoint_of(export_dir, meta)
    recipe = recipe_of(ckpt, ckpt_path)
    d = recipe.data
    rec = load_source(d.source, recipe.data_file, d.params)
    xq = quantize(held.x, float(meta["input_scale"])).astype(np.int8)  # what verify feeds the runtimes
    verify_path = ckpt_path.parent / "verify.json"  # `make verify` writes it beside the checkpoint
    verify = json.loads(verify_path.read_text()) if verify_path.is_file() else {}
    recordings = []
    for r in np.unique(held.recording):
        idx = np.nonzero(held.recording == r)[0]
        idx = idx[np.argsort(held.start[idx], kind="stable")]
        recordings.append({
            "id": int(r), "subject": int(rec.subjects[r]), "label": int(rec.labels[r]),
            "samples": int(rec.series[r].shape[0]),
            "raw": _b64(rec.series[r].astype("<f4")),  # [T][6] float32, the chart
            "starts": [int(s) for s in held.start[idx]],
            "labels": [int(y) for y in held.y[idx]],
            "x": _b64(xq[idx].astype(np.int8)),  # [windows][steps][n_in] int8, the model's input
        })
    return {
        "model": meta["name"], "class_names": ckpt.class_names, "rate_hz": rec.sample_rate_hz,
        "window_samples": d.window, "hop_samples": d.hop, "downsample": d.downsample,
        "steps_per_window": d.window // d.downsample, "n_in": int(held.x.shape[2]),
        "input_scale": meta["input_scale"], "output_scale": meta["output_scale"],
        "normalizer": {"mean": [float(v) for v in np.ravel(ckpt.normalizer.mean)],
                       "std": [float(v) for v in np.ravel(ckpt.normalizer.std)]},
        "csv_columns": list(CSV_COLUMNS),
        "footprint": {k: verify.get(k) for k in ("flash_bytes", "ram_bytes", "arena_bytes", "stack_bytes",
                                                 "instructions_per_step")},
        "accuracy_c_host": (verify.get("accuracy") or {}).get("c_host"),
        "budget": pinetime_budget(),
        "recordings": recordings,
    }


def build_site(export_dir: Path, out: Path) -> Path:
    """Write the page, edgemem.wasm, model.bin, uPlot and data.json into `out` (made fresh); returns `out`."""
    from edgemem.demo.runtime import wasm_site  # the C toolchain only when a site is built

    missing = [f for f in VENDOR_FILES if not (VENDOR / f).is_file()]
    if missing:
        how = ("run `make vendor`" if _CHECKOUT is not None else
               "copy dist/uPlot.iife.min.js and dist/uPlot.min.css of the npm package uplot@1.6.32 there")
        raise EdgememError(f"uPlot is not vendored ({VENDOR} lacks {', '.join(missing)}): {how}")
    if not (export_dir / "model.bin").is_file():
        raise EdgememError(f"{export_dir} has no model.bin; export the model first")
    wasm_site(WEB, out)
    for f in VENDOR_FILES:
        shutil.copy2(VENDOR / f, out / f)
    shutil.copy2(export_dir / "model.bin", out / "model.bin")
    (out / "data.json").write_text(json.dumps(site_data(export_dir)))
    return out
