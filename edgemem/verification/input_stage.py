"""verify's input stage check (docs/graph.md "Input stages"): the held-out windows as the device receives them (raw
sensor values, or 16-bit PCM) through the stage's integer reference, the C host and the emulated Cortex-M4, bit for
bit, then through the model: the accuracy from raw input, and on the M4 the whole pipeline (the M4's stage output fed
to the M4's model) against the reference's predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgemem.errors import EdgememError
from edgemem.exporters.folder import BLOB_FILE, INPUT_STAGE_FILE
from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.ir import Graph
from edgemem.graph.ref import run_graph
from edgemem.graph.sensor import counts_from_float
from edgemem.models.readout import predictions
from edgemem.training.recipe import Recipe
from edgemem.training.sets import raw_held_out
from edgemem.verification import c_runtime


def stage_samples(g: Graph, stage_meta: dict[str, Any], raw: np.ndarray, steps: int) -> np.ndarray:
    """Raw held-out windows -> the stage's int16 input [n][steps][n_in]."""
    n = raw.shape[0]
    if stage_meta["kind"] == "sensor":
        inv_lsb = (np.float32(1.0) / np.asarray(stage_meta["lsb"], dtype=np.float32)).astype(np.float32)
        counts = counts_from_float(raw, inv_lsb)  # [n][window][C]
        if counts.shape[1] != steps * stage_meta["samples_per_step"]:
            raise EdgememError(f"raw windows of {counts.shape[1]} samples do not make {steps} steps of "
                               f"{stage_meta['samples_per_step']}")
        return counts.reshape(n, steps, g.n_in).astype(np.int16)
    pcm = np.asarray(raw, dtype=np.int16)
    if pcm.shape[1] < steps * g.n_in:
        raise EdgememError(f"clips of {pcm.shape[1]} samples are shorter than {steps} hops of {g.n_in}")
    return pcm[:, : steps * g.n_in].reshape(n, steps, g.n_in)


def check_input_stage(export_dir: Path, meta: dict[str, Any], recipe: Recipe, y: np.ndarray, xq: np.ndarray,
                      run_model: Any, m4_windows: int, say: Any) -> dict[str, Any]:
    """The report's input_stage (sensor) or front_end (log-mel) section. xq: the model's int8 input from the float
    path (what the rest of verify scores), run_model: int8 [n][T][n_in] -> (logits, spikes)."""
    stage_meta = meta["input_stage"]
    path = export_dir / INPUT_STAGE_FILE
    g = parse_graph_blob(path.read_bytes())
    raw = raw_held_out(recipe)
    if not np.array_equal(raw.y, y):
        raise EdgememError("the raw held-out windows are not the held-out set verify scores (labels differ)")
    steps = xq.shape[1]
    samples = stage_samples(g, stage_meta, raw.samples, steps)
    say(f"input stage ({stage_meta['kind']}): integer reference")
    feats = run_graph(g, samples).astype(np.int8)
    say("input stage: C host")
    host = c_runtime.run_host(path, samples, g.n_out)
    n_m4 = min(m4_windows, len(samples))
    say(f"input stage: C Cortex-M4 (QEMU, {n_m4} windows), then the model on its output")
    m4 = c_runtime.run_cortex_m4(path, samples[:n_m4], g.n_out)
    readout = meta.get("readout", "sum")
    logits, _ = run_model(feats)
    pred = predictions(logits, readout)
    m4_model = c_runtime.run_cortex_m4(export_dir / BLOB_FILE, m4.logits.astype(np.int8), int(logits.shape[2]))
    host_exact = bool(np.array_equal(host, feats))
    m4_exact = bool(np.array_equal(m4.logits, feats[:n_m4]))
    pipeline_equal = bool(np.array_equal(predictions(m4_model.logits, readout), pred[:n_m4]))
    section = {
        "kind": stage_meta["kind"],
        "bit_exact": host_exact and m4_exact and pipeline_equal,
        "bit_exact_host": host_exact,
        "bit_exact_cortex_m4": m4_exact,
        "pipeline_predictions_equal_cortex_m4": pipeline_equal,
        "windows": int(len(samples)),
        "cortex_m4_windows": int(n_m4),
        # the stage's int8 output against the float path's (normalize, then quantize): where they differ is where
        # the device's integer input departs from what the float pipeline would have fed
        "equal_to_float_path": float((feats == xq).mean()),
        "max_abs_diff_vs_float_path": int(np.abs(feats.astype(np.int64) - xq).max()),
        "ram_bytes": g.arena_size,
        "blob_bytes": len(path.read_bytes()),
        "samples_per_step": g.n_in,
    }
    acc = float((pred == y).mean())
    if stage_meta["kind"] == "logmel":
        section.update(accuracy_raw_audio=acc, instructions_per_frame=m4.instructions_per_step)
    else:
        section.update(accuracy_raw=acc, instructions_per_step=m4.instructions_per_step)
    return section
