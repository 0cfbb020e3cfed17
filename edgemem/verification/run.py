"""`edgemem verify EXPORT_DIR`: one table across torch float, onnxruntime, the integer reference, C host and C on
an emulated Cortex-M4, on the held-out test subjects of the model's recipe; with model_qcdq.onnx in the folder, also
its weight codes and onnxruntime run against the integer reference (edgemem.verification.qcdq, the `qcdq_onnx` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemem.errors import EdgememError
from edgemem.exporters.folder import (
    PATCH_FILE,
    QCDQ_FILE,
    TFLITE_FILE,
    TFLITE_INT8_FILE,
    check_files,
    check_hashes,
    checkpoint_of,
    load_meta,
)
from edgemem.exporters.onnx_export import run_onnx, state_shapes
from edgemem.graph.intops import quantize
from edgemem.models.readout import predictions
from edgemem.models.registry import per_step_logits
from edgemem.verification import c_runtime
from edgemem.verification.held_out import held_out_set, int_model

QCDQ_WINDOWS = 2000  # held-out windows for the QCDQ check (onnxruntime streams them as one batch: seconds)


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


def verify(export_dir: Path, m4_windows: int | None = None, progress: Any = None,
           checkpoint: Path | None = None, confusion_png: Path | None = None,
           cores: list[str] | None = None, cores_windows: int | None = None,
           port: str | None = None) -> dict[str, Any]:
    """Runs every runtime; m4_windows limits the (slow) emulated run to the first N test windows (N >= 1). The
    checkpoint is `checkpoint` or meta.json's (relative to the folder); either must have meta.json's
    checkpoint_sha256. confusion_png: where to draw the integer reference's confusion matrix (edgemem.verification.plots;
    the report is the same). port: also validate on a target running firmware/apps/uart_validate over this serial line
    (a device, or socket://HOST:PORT), the same windows as the M4: the report's `serial` section, and its bit_exact
    joins the overall one."""
    def say(msg: str) -> None:
        if progress:
            progress(msg)

    if m4_windows is not None and (isinstance(m4_windows, bool) or m4_windows < 1):
        raise EdgememError(f"--m4-windows must be a positive number of windows, got {m4_windows}")
    if cores_windows is not None and (isinstance(cores_windows, bool) or cores_windows < 1):
        raise EdgememError(f"--cores-windows must be a positive number of windows, got {cores_windows}")

    check_files(export_dir, load_meta(export_dir))  # nothing of the folder is read before its names are checked
    if (export_dir / TFLITE_FILE).is_file():  # before any work: the TFLite check needs the tflite extra
        from edgemem.verification.tflite import require_tflite

        require_tflite(f"verifying {export_dir} (it has {TFLITE_FILE})")
    meta, ckpt, ts = held_out_set(export_dir, checkpoint)
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
    if confusion_png is not None:
        from edgemem.verification.plots import plot_integer_confusion

        say(f"confusion matrix of the integer reference -> {confusion_png}")
        plot_integer_confusion(confusion_png, meta, ckpt.class_names, ts.y, predictions(ref, readout))
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
    if "input_stage" in meta:  # raw samples through the stage, bit-exact, then through the model
        from edgemem.training.sets import recipe_of
        from edgemem.verification.input_stage import check_input_stage

        ckpt_path = checkpoint_of(export_dir, meta, checkpoint)
        section = check_input_stage(export_dir, meta, recipe_of(ckpt, ckpt_path), ts.y, xq, q.run, n_m4, say)
        report["front_end" if section["kind"] == "logmel" else "input_stage"] = section
        report["bit_exact"] = report["bit_exact"] and section["bit_exact"]
    if cores:  # em_run on each named core (the M4's windows, or the first cores_windows), against the integer reference
        report["cores"] = {}
        n_c = n_m4 if cores_windows is None else min(cores_windows, len(xq))
        for core in cores:
            say(f"C {core} (QEMU, {n_c} windows)")
            run = c_runtime.run_core(core, blob_path, xq[:n_c], n_out, arena_bytes=meta["arena_bytes"])
            cfp = c_runtime.core_footprint(core, export_dir)
            report["cores"][core] = {"bit_exact": bool(np.array_equal(ref[:n_c], run.logits)),
                                     "instructions_per_step": run.instructions_per_step,
                                     "flash_bytes": cfp.flash_bytes, "ram_bytes": cfp.ram_bytes,
                                     "board": run.board, "windows": int(n_c)}
        report["bit_exact"] = report["bit_exact"] and all(c["bit_exact"] for c in report["cores"].values())
    if port is not None:  # the compiled-in model on a target over a serial line (edgemem.verification.serial_link)
        from edgemem.verification.serial_link import validate

        say(f"C on the target over {port} ({n_m4} windows)")
        sr = validate(port, blob_path.read_bytes(), xq[:n_m4], n_out)
        serial_exact = bool(np.array_equal(ref[:n_m4], sr.logits))
        report["serial"] = {"port": port, "windows": n_m4, "accuracy": acc(predictions(sr.logits, readout)),
                            "bit_exact": serial_exact, "instructions_per_step": sr.instructions_per_step,
                            "steps_compared": int(n_m4 * ref.shape[1]), "seconds": round(sr.seconds, 3),
                            "runtime_version": sr.hello.version, "blob_crc32": f"{sr.hello.blob_crc32:08x}"}
        report["bit_exact"] = report["bit_exact"] and serial_exact
    if (export_dir / PATCH_FILE).is_file():
        say("C host, patch schedule")
        report["patch_schedule"] = _check_patch(export_dir, blob_path, xq, ref, n_out)
    if (export_dir / QCDQ_FILE).is_file():
        from edgemem.verification.qcdq import check_export

        say("onnxruntime QCDQ")
        report["qcdq_onnx"] = check_export(export_dir, QCDQ_WINDOWS, (meta, ckpt, ts))
    if (export_dir / TFLITE_FILE).is_file():
        from edgemem.verification import tflite

        say(f"TFLite: TFLM, LiteRT (reference and optimized kernels), {tflite.STEPS} held-out steps")
        report["tflite"] = tflite.check_export(export_dir, checkpoint=checkpoint)
        if (export_dir / TFLITE_INT8_FILE).is_file():  # converter-style int8: its own accuracy, not bit-exact
            say(f"TFLite int8 (converter-style): TFLM and LiteRT, up to {tflite.INT8_STEPS} held-out steps")
            report["tflite"]["int8"] = tflite.int8_accuracy(export_dir, meta, xq, ts.y, ref, readout)
    return report
