"""The browser keyword demo (`edgemem demo kws --serve`): the static page (edgemem/demo/kws_web), the C runtime as
WebAssembly, the export's input_stage.bin (the log-mel front end) and model.bin, and config.json.

The page reads a WAV file the user picks (it never leaves the browser), checks its header itself (16-bit PCM, mono,
the front end's rate, else one message; never resampled), and scores it as `edgemem demo kws --wav` does
(edgemem.demo.kws_wav.classify_wav): the front end over the whole stream, then every 1 s window of features through
the model from reset, logits summed, argmax, softmax of the sum * output_scale / steps. `classify_pcm` is that
computation on the same glue (firmware/targets/app/em_app.c) as a host library: the page's JavaScript, in Python.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.demo.kws_wav import kws_meta
from edgemem.demo.runtime import AppRuntime, wasm_site
from edgemem.errors import EdgememError
from edgemem.exporters.folder import BLOB_FILE, INPUT_STAGE_FILE

WEB = Path(__file__).resolve().parent / "kws_web"
STYLE = Path(__file__).resolve().parent / "web" / "style.css"  # the HAR page's look
RUNTIME_JS = Path(__file__).resolve().parent / "web" / "runtime.js"  # the WebAssembly runtime both pages load
EVERY_S = 0.5  # seconds between the starts of 1 s windows, as `demo kws --wav`'s default


def site_config(export_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the page needs beside the two blobs (config.json)."""
    meta = meta if meta is not None else kws_meta(export_dir)
    stage = meta["input_stage"]
    rate, hop = int(stage["sample_rate"]), int(stage["n_in"])
    return {
        "model": meta["name"], "class_names": list(meta["class_names"]), "sample_rate": rate, "hop": hop,
        "n_features": int(stage["n_out"]), "steps": int(meta["window"]), "output_scale": float(meta["output_scale"]),
        "readout": meta.get("readout", "sum"), "every_frames": max(1, round(EVERY_S * rate / hop)),
    }


@dataclass(frozen=True)
class Window:
    start_frame: int
    pred: int
    sums: list[int]  # the model's int16 logits summed over the window's steps
    probs: list[float]


def classify_pcm(rt: AppRuntime, pcm: np.ndarray, cfg: dict[str, Any]) -> list[Window]:
    """int16 PCM at cfg's rate -> one Window per 1 s window, every cfg["every_frames"] hops; `rt` holds the model
    and its input stage. The page's classifyPcm (kws_web/app.js) step for step."""
    hop, steps, every = cfg["hop"], cfg["steps"], cfg["every_frames"]
    frames = max(steps, pcm.size // hop)  # shorter than one window: padded with silence
    x = np.zeros(frames * hop, np.int16)
    n = min(pcm.size, frames * hop)
    x[:n] = pcm[:n]
    rt.stage_reset()
    feats = np.stack([rt.stage_step(x[t * hop : (t + 1) * hop]) for t in range(frames)])
    out: list[Window] = []
    for s in range(0, frames - steps + 1, every):
        logits = rt.run(feats[s : s + steps])
        sums = logits.astype(np.int64).sum(axis=0)
        pred = int(logits[-1].argmax()) if cfg["readout"] == "last" else int(sums.argmax())
        z = sums.astype(np.float64) * cfg["output_scale"] / steps
        p = np.exp(z - z.max())
        p /= p.sum()
        out.append(Window(s, pred, [int(v) for v in sums], [float(v) for v in p]))
    return out


def build_kws_site(export_dir: Path, out: Path) -> Path:
    """Write the page, edgemem.wasm, input_stage.bin, model.bin and config.json into `out` (made fresh)."""

    meta = kws_meta(export_dir)  # a bad export is one line before anything is compiled or written
    cfg = site_config(export_dir, meta)
    for name in (BLOB_FILE, INPUT_STAGE_FILE):
        if not (export_dir / name).is_file():
            raise EdgememError(f"{export_dir} has no {name}; export the model first")
    wasm_site(WEB, out)
    shutil.copy2(STYLE, out / "style.css")
    shutil.copy2(RUNTIME_JS, out / "runtime.js")
    for name in (BLOB_FILE, INPUT_STAGE_FILE):
        shutil.copy2(export_dir / name, out / name)
    (out / "config.json").write_text(json.dumps(cfg))
    return out
