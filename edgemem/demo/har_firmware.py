"""The firmware HAR demo (firmware/apps/har_demo): the held-out windows of `edgemem verify` written as the demo's data
file, the demo run on the emulated Cortex-M4 (QEMU mps2-an386, semihosting) or on the host, its output parsed; and
the nRF52832 / nRF52840 link checks (`make -C firmware har-demo-fit`).

    python -m edgemem.demo.har_firmware [EXPORT_DIR] [--windows N] [--host] [--data PATH] [--fit]

The data file layout is documented at the top of firmware/apps/har_demo/har_demo.c.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemem import tool
from edgemem.errors import EdgememError

_CHECKOUT = tool.checkout_root()
FIRMWARE = tool.firmware_dir()  # the checkout's firmware/ or the wheel's copy: only read
# the shipped export in a checkout; installed from a wheel, export/har_l2mu under the current folder
DEFAULT_EXPORT = _CHECKOUT / "export" / "har_l2mu" if _CHECKOUT is not None else Path("export") / "har_l2mu"

MAGIC = b"EMHD"
VERSION = 1
HEADER = struct.Struct("<4sHHHHIHHI")  # magic, version, n_in, steps, n_classes, n_windows, rate, downsample, 0
RECORD = struct.Struct("<BBHI")  # label, reserved, recording, stream sample at the window's end

CHANGE = re.compile(r"^t=(\d+\.\d{2})s window (\d+) rec (\d+): (\S+) -> (\S+) \(true (\S+), (ok|wrong)\)$")
TOTAL = re.compile(r"^windows=(\d+) correct=(\d+) accuracy=(\d\.\d{4})$")
INSTR = re.compile(r"^instructions_per_window=([0-9.]+) instructions_per_step=([0-9.]+)$")
FIT = re.compile(r"^(nrf528\d\d): flash (\d+) of (\d+) B \(-?\d+ B free\), RAM (\d+) of (\d+) B "
                 r"\(data (\d+) \+ bss (\d+) \+ stack (\d+); -?\d+ B free\)$")
OVERFLOW = re.compile(r"^har-demo-overflow: FLASH (\S+) / RAM (\S+): region `(\w+)' overflowed by (\d+) bytes")


@dataclass
class DemoData:
    """Held-out windows as the demo streams them."""

    xq: np.ndarray  # [n][T][n_in] int8, normalized and quantized with the model's input scale
    y: np.ndarray  # [n] true labels
    recording: np.ndarray  # [n] source recording of each window
    end_sample: np.ndarray  # [n] stream sample (sensor rate) at each window's end
    sample_rate_hz: int
    downsample: int
    class_names: list[str]
    readout: str


def held_out_data(export_dir: Path = DEFAULT_EXPORT, windows: int | None = None) -> DemoData:
    """The first `windows` (all by default) held-out windows of the recipe, exactly as `edgemem verify` feeds the C
    runtimes (same split, normalization and quantize). The stream is the test recordings back to back, each cut
    after its last full window; a window's timestamp is the stream time at its end."""
    from edgemem.data.sources import load_source
    from edgemem.exporters.folder import checkpoint_of
    from edgemem.graph.intops import quantize
    from edgemem.training.sets import recipe_of
    from edgemem.verification.held_out import held_out_set, int_model

    meta, ckpt, ts = held_out_set(export_dir)
    q = int_model((export_dir / "model.bin").read_bytes(), meta)
    recipe = recipe_of(ckpt, checkpoint_of(export_dir, meta))
    d = recipe.data
    rate = load_source(d.source, recipe.data_file, d.params).sample_rate_hz
    if rate <= 0 or rate != int(rate) or rate > 0xFFFF:
        raise EdgememError(f"data source '{d.source}' has no integer sample rate ({rate}): the demo needs one")
    xq = quantize(ts.x, q.input_scale).astype(np.int8)
    n = len(xq) if windows is None else max(0, min(windows, len(xq)))
    end = np.zeros(len(xq), dtype=np.int64)
    offset, extent = 0, 0
    for i in range(len(xq)):
        if i and ts.recording[i] != ts.recording[i - 1]:
            offset, extent = offset + extent, 0
        extent = max(extent, int(ts.start[i]) + d.window)
        end[i] = offset + int(ts.start[i]) + d.window
    return DemoData(xq[:n], ts.y[:n].astype(np.int64), ts.recording[:n].astype(np.int64), end[:n], int(rate),
                    d.downsample, list(meta["class_names"]), str(meta.get("readout", "sum")))


def write_data(data: DemoData, path: Path) -> Path:
    n, steps, n_in = data.xq.shape
    if n == 0:
        raise EdgememError("no windows to write")
    if int(data.recording.max()) > 0xFFFF or int(data.end_sample.max()) > 0xFFFFFFFF:
        raise EdgememError("recording index or stream position does not fit the data file's fields")
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [HEADER.pack(MAGIC, VERSION, n_in, steps, len(data.class_names), n, data.sample_rate_hz,
                         data.downsample, 0)]
    for i in range(n):
        parts.append(RECORD.pack(int(data.y[i]), 0, int(data.recording[i]), int(data.end_sample[i])))
        parts.append(np.ascontiguousarray(data.xq[i], dtype=np.int8).tobytes())
    path.write_bytes(b"".join(parts))
    return path


def reference_predictions(export_dir: Path, data: DemoData) -> np.ndarray:
    """Class per window from the integer reference (verify's int_model and predictions), for comparison."""
    from edgemem.exporters.folder import load_meta
    from edgemem.models.readout import predictions
    from edgemem.verification.held_out import int_model

    q = int_model((export_dir / "model.bin").read_bytes(), load_meta(export_dir))
    logits, _ = q.run(data.xq)
    return np.asarray(predictions(logits, data.readout))


def _make(*targets: str, **variables: str) -> subprocess.CompletedProcess[str]:
    from edgemem.verification.c_runtime import run_make

    return run_make(*targets, **variables)


def build_dir(export_dir: Path = DEFAULT_EXPORT) -> Path:
    """The firmware build folder (edgemem.tool: firmware/build in a checkout, the user cache otherwise); another
    model than the default gets its own subfolder, since the outputs do not track HAR_DIR."""
    from edgemem.verification.c_runtime import build_dir as firmware_build

    build = firmware_build()
    if export_dir.resolve() != DEFAULT_EXPORT.resolve():
        build = build / f"har_{export_dir.resolve().name}"
    return build


def build(host: bool = False, export_dir: Path = DEFAULT_EXPORT) -> Path:
    """BUILD/m4/har_demo.elf (or BUILD/host/har_demo) for the model in export_dir (BUILD: build_dir)."""
    for t in (["gcc"] if host else ["arm-none-eabi-gcc"]):
        if shutil.which(t) is None:
            raise EdgememError(f"'{t}' is not installed (run `make setup`)")
    build_dir_ = build_dir(export_dir)
    target = build_dir_ / ("host/har_demo" if host else "m4/har_demo.elf")
    res = _make(str(target), HAR_DIR=str(export_dir.resolve()), BUILD=str(build_dir_))
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise EdgememError(f"har_demo build failed: {' | '.join(tail)}")
    return target


def run_demo(data_path: Path, host: bool = False, export_dir: Path = DEFAULT_EXPORT,
             timeout_s: int = 600) -> dict[str, Any]:
    """Runs the demo on a data file and returns its parsed output (see parse_output), plus returncode/stdout/stderr.
    A nonzero exit is returned, not raised (the caller decides; bad input is exit 2 with one line on stderr)."""
    exe = build(host, export_dir)
    data_path = data_path.resolve()
    if host:
        cmd, cwd = [str(exe), str(data_path)], None
    else:
        if shutil.which("qemu-system-arm") is None:
            raise EdgememError("'qemu-system-arm' is not installed (run `make setup`)")
        if " " in data_path.name or "," in data_path.name:
            raise EdgememError(f"semihosting cannot pass the file name '{data_path.name}'")
        # relative name from the file's folder: QEMU's semihosting joins arguments with spaces
        cmd = ["sh", str(FIRMWARE / "targets" / "cortex_m4" / "run_qemu.sh"), str(exe), data_path.name]
        cwd = data_path.parent
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout_s)
    out = parse_output(res.stdout) if res.returncode == 0 else {}
    return {**out, "returncode": res.returncode, "stdout": res.stdout, "stderr": res.stderr}


def parse_output(stdout: str) -> dict[str, Any]:
    """Activity changes, totals and instruction counts from the demo's stdout; per-window predictions rebuilt from
    the change lines (a prediction holds until the next change)."""
    changes: list[dict[str, Any]] = []
    totals: dict[str, Any] = {}
    for line in stdout.splitlines():
        if m := CHANGE.match(line):
            changes.append({"t_s": float(m[1]), "window": int(m[2]), "recording": int(m[3]), "from": m[4],
                            "to": m[5], "true": m[6], "correct": m[7] == "ok"})
        elif m := TOTAL.match(line):
            totals.update(windows=int(m[1]), correct=int(m[2]), accuracy=float(m[3]), accuracy_text=m[3])
        elif m := INSTR.match(line):
            totals.update(instructions_per_window=float(m[1]), instructions_per_step=float(m[2]))
    if "windows" not in totals:
        raise EdgememError(f"har_demo printed no totals line: {stdout.strip()[-200:]}")
    return {**totals, "changes": changes}


def predictions_from_changes(changes: list[dict[str, Any]], windows: int, class_names: list[str]) -> np.ndarray:
    pred = np.full(windows, -1, dtype=np.int64)
    for c in changes:
        pred[c["window"]:] = class_names.index(c["to"])
    return pred


def fit(export_dir: Path = DEFAULT_EXPORT) -> dict[str, Any]:
    """`make -C firmware har-demo-fit`: flash/RAM of the demo against each chip and the too-small maps' failures."""
    for t in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm"):
        if shutil.which(t) is None:
            raise EdgememError(f"'{t}' is not installed (run `make setup`)")
    res = _make("har-demo-fit", HAR_DIR=str(export_dir.resolve()), BUILD=str(build_dir(export_dir)))
    chips: dict[str, Any] = {}
    overflow: list[dict[str, Any]] = []
    for line in res.stdout.splitlines():
        if m := FIT.match(line):
            chips[m[1]] = {"flash_bytes": int(m[2]), "flash_budget": int(m[3]), "ram_bytes": int(m[4]),
                           "ram_budget": int(m[5]), "data": int(m[6]), "bss": int(m[7]), "stack": int(m[8])}
        elif m := OVERFLOW.match(line):
            overflow.append({"flash": m[1], "ram": m[2], "region": m[3], "by_bytes": int(m[4])})
    return {"returncode": res.returncode, "chips": chips, "overflow": overflow, "stdout": res.stdout,
            "stderr": res.stderr}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgemem.demo.har_firmware", description=__doc__.split("\n\n")[0])
    ap.add_argument("export_dir", nargs="?", type=Path, default=DEFAULT_EXPORT)
    ap.add_argument("--windows", type=int, default=None, help="first N held-out windows (default: all)")
    ap.add_argument("--data", type=Path, default=None, help="the data file (default: BUILD/har_demo/data.bin)")
    ap.add_argument("--host", action="store_true", help="run the host build instead of QEMU")
    ap.add_argument("--fit", action="store_true", help="also link the nRF52832 / nRF52840 images and report")
    args = ap.parse_args(argv)
    try:
        data = held_out_data(args.export_dir, args.windows)
        data_path = args.data or build_dir() / "har_demo" / "data.bin"
        write_data(data, data_path)
        res = run_demo(data_path, args.host, args.export_dir)
        sys.stdout.write(res["stdout"])
        sys.stderr.write(res["stderr"])
        if res["returncode"] != 0:
            return res["returncode"]
        if args.fit:
            f = fit(args.export_dir)
            sys.stdout.write(f["stdout"])
            sys.stderr.write(f["stderr"])
            return f["returncode"]
    except EdgememError as e:
        print(f"har_firmware: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
