"""`edgemem verify EXPORT_DIR`: one table across torch float, onnxruntime, the integer reference, C host and C on
an emulated Cortex-M4, on the held-out test subjects of the model's recipe; with model_qcdq.onnx in the folder, also
its weight codes and onnxruntime run against the integer reference (edgemem.verify.qcdq, the `qcdq_onnx` section)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemem.checkpoint import load_checkpoint
from edgemem.errors import EdgememError
from edgemem.export.blob import parse_blob
from edgemem.export.graph_blob import blob_version, parse_graph_blob
from edgemem.export.onnx_export import run_onnx, state_shapes
from edgemem.export.run import QCDQ_FILE, TFLITE_FILE, load_meta, recipe_of
from edgemem.models.registry import per_step_logits
from edgemem.quant.graph_ref import lif_spikes, run_graph
from edgemem.quant.intops import quantize
from edgemem.quant.intref import run as run_int
from edgemem.train.pipeline import load_windows
from edgemem.verify import c_runtime

QCDQ_WINDOWS = 2000  # held-out windows for the QCDQ check (onnxruntime streams them as one batch: seconds)


@dataclass
class HeldOut:
    x: np.ndarray  # [n][T][c] normalized float
    y: np.ndarray
    recording: np.ndarray
    start: np.ndarray


def held_out_set(export_dir: Path) -> tuple[dict[str, Any], Any, HeldOut]:
    meta = load_meta(export_dir)
    ckpt_path = (export_dir / meta["checkpoint"]).resolve()
    ckpt = load_checkpoint(ckpt_path)
    recipe = recipe_of(ckpt)
    windows, _ = load_windows(recipe)
    test = windows.of_subjects(recipe.data.test_subjects)
    return meta, ckpt, HeldOut(ckpt.normalizer(test.x), test.y, test.recording, test.start)


def check_hashes(export_dir: Path, meta: dict[str, Any]) -> None:
    """Every artifact must be the one `edgemem export` wrote (damage a loader cannot see, e.g. an ONNX weight)."""
    for name, digest in meta["files"].items():
        path = export_dir / name
        if not path.is_file():
            raise EdgememError(f"{export_dir} has no {name}; export with --to onnx,c")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise EdgememError(f"{path} does not match meta.json (sha256 differs): it was edited or damaged; "
                               "re-run `edgemem export`")


def predictions(logits: np.ndarray, readout: str) -> np.ndarray:
    """Class per sequence from per-step logits [n][T][n_out]: argmax of their sum, or of the last step's."""
    if readout == "last":
        return logits[:, -1].argmax(axis=1)
    return logits.astype(np.float64).sum(axis=1).argmax(axis=1)


@dataclass
class IntModel:
    """The integer reference of an exported blob, whatever its version."""

    input_scale: float
    n_out: int
    run: Any  # x [n][T][n_in] int8 -> (logits [n][T][n_out], spikes per step)


def int_model(blob: bytes, meta: dict[str, Any]) -> IntModel:
    if blob_version(blob) != 2:  # as em_run: anything but a graph goes to the version-1 parser, which names it
        q = parse_blob(blob, meta["input_scale"], meta["output_scale"], meta["population_scales"])
        return IntModel(q.input_scale, q.n_out, lambda x: run_int(q, x))
    g = parse_graph_blob(blob)

    def run(x: np.ndarray) -> tuple[np.ndarray, float]:
        spikes = [0]

        def count(_: int, values: dict[str, np.ndarray]) -> None:
            spikes[0] += int(lif_spikes(g, values).sum())

        logits = run_graph(g, x, count)
        return logits, spikes[0] / max(1, x.shape[0] * x.shape[1])

    return IntModel(float(meta["input_scale"]), g.n_out, run)


PATCH_FILE = "patch.bin"  # the patch schedule's plan (edgemem plan --patch-out), where the model has one


def _check_patch(export_dir: Path, blob_path: Path, xq: np.ndarray, ref: np.ndarray, n_out: int) -> dict[str, Any]:
    """The shipped patch plan run by C on the host over every held-out window: bit-exact with the streaming
    reference, and the arena it asked for against the planner's figure for the same patch size."""
    from edgemem.schedule.patch import HEADER
    from edgemem.schedule.plan import load_export_graph, plan_graph

    plan_blob = (export_dir / PATCH_FILE).read_bytes()
    frames = int.from_bytes(plan_blob[20:22], "little") if len(plan_blob) >= HEADER else 0
    g, steps = load_export_graph(export_dir)
    planned = plan_graph(g, steps, patch_frames=frames).schedules["patch"].peak_ram_bytes
    logits, arena = c_runtime.run_host_patch(blob_path, export_dir / PATCH_FILE, xq, n_out)
    return {"patch_frames": frames, "bit_exact_host": bool(np.array_equal(logits, ref)), "arena_bytes": arena,
            "plan_peak_ram_bytes": planned, "steps_compared": int(ref.shape[0] * ref.shape[1])}


def verify(export_dir: Path, m4_windows: int | None = None, progress: Any = None) -> dict[str, Any]:
    """Runs every runtime; m4_windows limits the (slow) emulated run to the first N test windows."""
    def say(msg: str) -> None:
        if progress:
            progress(msg)

    meta, ckpt, ts = held_out_set(export_dir)
    for f in ("model.onnx", "model.bin", "model.c", "model.h"):
        if not (export_dir / f).is_file():
            raise EdgememError(f"{export_dir} has no {f}; export with --to onnx,c")
    blob_path = export_dir / "model.bin"
    q = int_model(blob_path.read_bytes(), meta)
    check_hashes(export_dir, meta)  # after the blob parse, whose messages are more specific
    n_out = q.n_out
    readout = meta.get("readout", "sum")

    def acc(pred: np.ndarray, y: np.ndarray | None = None) -> float:
        y = ts.y if y is None else y
        return float((pred == y[: len(pred)]).mean())

    say("torch float")
    with torch.no_grad():
        torch_logits = torch.cat([per_step_logits(ckpt.model, torch.from_numpy(ts.x[i : i + 256]))
                                  for i in range(0, len(ts.x), 256)]).numpy()
    pf = predictions(torch_logits, readout)
    say("onnxruntime float")
    onnx_logits = run_onnx(export_dir / "model.onnx", ts.x, meta["state_names"], state_shapes(ckpt.model))
    po = predictions(onnx_logits, readout)
    say("integer reference")
    xq = quantize(ts.x, q.input_scale).astype(np.int8)
    ref, spikes = q.run(xq)
    say("C host")
    host = c_runtime.run_host(blob_path, xq, n_out)
    n_m4 = len(xq) if m4_windows is None else min(m4_windows, len(xq))
    say(f"C Cortex-M4 (QEMU, {n_m4} windows)")
    m4 = c_runtime.run_cortex_m4(blob_path, xq[:n_m4], n_out)
    say("footprint")
    fp = c_runtime.footprint(export_dir)
    stack = c_runtime.stack_bytes(export_dir)
    host_exact = bool(np.array_equal(ref, host))
    m4_exact = bool(np.array_equal(ref[:n_m4], m4.logits))
    report = {
        "model": meta["name"],
        "test_windows": int(len(ts.y)),
        "accuracy": {
            "torch_float": acc(pf),
            "onnx_float": acc(po),
            "int_reference": acc(predictions(ref, readout)),
            "c_host": acc(predictions(host, readout)),
            "c_cortex_m4": acc(predictions(m4.logits, readout)),
        },
        "c_cortex_m4_windows": n_m4,
        "bit_exact": host_exact and m4_exact,
        "bit_exact_host": host_exact,
        "bit_exact_cortex_m4": m4_exact,
        "steps_per_window": int(ref.shape[1]),
        "steps_compared": int(ref.shape[0] * ref.shape[1]),
        "steps_compared_cortex_m4": int(n_m4 * ref.shape[1]),
        "onnx_max_abs_diff_vs_torch": float(np.abs(onnx_logits - torch_logits).max()),
        "flash_bytes": fp.flash_bytes,
        "ram_bytes": fp.ram_bytes,
        "arena_bytes": meta["arena_bytes"],
        "stack_bytes": stack,
        "instructions_per_step": m4.instructions_per_step,
        "spikes_per_step": spikes,  # integer reference, all LIF populations, mean over the test steps
        "readout": readout,
    }
    if (export_dir / PATCH_FILE).is_file():
        say("C host, patch schedule")
        report["patch_schedule"] = _check_patch(export_dir, blob_path, xq, ref, n_out)
    if (export_dir / QCDQ_FILE).is_file():
        from edgemem.verify.qcdq import check_export

        say("onnxruntime QCDQ")
        report["qcdq_onnx"] = check_export(export_dir, QCDQ_WINDOWS, (meta, ckpt, ts))
    if (export_dir / TFLITE_FILE).is_file():
        from edgemem.verify import tflite

        say(f"TFLite: TFLM, LiteRT (reference and optimized kernels), {tflite.STEPS} held-out steps")
        report["tflite"] = tflite.check_export(export_dir)
    return report
