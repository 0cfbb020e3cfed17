"""edgemem's C runtime against TFLite Micro, LiteRT and onnxruntime on each shipped model (`make bench`).

Same int8 model, same input: the held-out recordings streamed end to end for STEPS steps from reset.
- Instructions per step on the host (x86-64, gcc -O2 for edgemem; TFLM as its pip package ships it), by callgrind
  with collection toggled on the step function only (em_graph_step; TFLM's MicroInterpreter::Invoke),
  as (count at STEPS + 1 steps - count at 1 step) / STEPS: set-up and the first step's one-off work are excluded.
  TFLM runs model_vars.tflite (state in resource variables, like edgemem's arena), so no Python copies are counted.
  TFLM's best case: model_int8.tflite (converter-style int8, not bit-exact: docs/tflite.md) where the export has
  it, state as inputs and outputs fed back from Python outside the counted Invoke.
- RAM: edgemem's Cortex-M4 image (data + bss, arena and state included; verify.json) vs TFLM's arena (its
  allocation report; TFLM's interpreter object and op resolver come on top).
- Flash for the Cortex-M4: edgemem's whole footprint image (text + data, startup code included) vs a lower bound
  for TFLM: the .tflite file plus TFLM's runtime with FULLY_CONNECTED, ADD and CONCATENATION only (32.6 KB,
  measured for a Cortex-M4 build: ../shared/NOTES.md); the other ops the file uses would add more.
- Time per step, pinned to one core, best of REPEATS: edgemem's host em_run (wall time at STEPS + 1 minus at 1 step),
  LiteRT (built-in kernels, XNNPACK off, one thread, model_vars.tflite) and onnxruntime (one thread, model.onnx:
  the float step; there is no int8 ONNX of every model) called from Python, so their figures include a Python call.
Timings are reported, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.errors import EdgememError

STEPS = 1000
REPEATS = 5
TFLM_RUNTIME_FLASH = 32_600  # FULLY_CONNECTED + ADD + CONCATENATION, Cortex-M4 (../shared/NOTES.md, measured)
EDGEMEM_STEP = ("em_graph_step",)
TFLM_INVOKE = "tflite::micro::MicroInterpreter::Invoke()"

_TFLM_LOOP = """
import sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
x = np.load(sys.argv[2])
it = runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=1 << 20)
for t in range(int(sys.argv[3])):
    it.set_input(x[t:t + 1], 0)
    it.invoke()
"""

# the state-as-I/O file: each state fed back (set_input / get_output are outside the counted Invoke)
_TFLM_STATE_LOOP = """
import json, sys, numpy as np
from tflite_micro.python.tflite_micro import runtime
x = np.load(sys.argv[2])
it = runtime.Interpreter.from_bytes(open(sys.argv[1], 'rb').read(), arena_size=1 << 20)
state = [np.full((1, c), z, np.int8) for c, z in json.loads(sys.argv[4])]
for t in range(int(sys.argv[3])):
    it.set_input(x[t:t + 1], 0)
    for i, v in enumerate(state):
        it.set_input(v, 1 + i)
    it.invoke()
    state = [np.array(it.get_output(1 + i)).reshape(1, -1).copy() for i in range(len(state))]
"""


def _callgrind(cmd: list[str], toggles: tuple[str, ...]) -> int:
    with tempfile.TemporaryDirectory(prefix="edgemem-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        args += [f"--toggle-collect={t}" for t in toggles]
        res = subprocess.run(args + cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise EdgememError(f"callgrind failed (exit {res.returncode}): {res.stderr.strip()[-300:]}")
        m = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(), re.M)
    if not m:
        raise EdgememError("callgrind wrote no instruction total")
    return int(m.group(1))


def _per_step(count: Any, steps: int) -> float:
    """(count(steps + 1) - count(1)) / steps."""
    return (count(steps + 1) - count(1)) / steps


def edgemem_instructions(exe: Path, blob: Path, x: np.ndarray) -> float:
    def count(n: int) -> int:
        with tempfile.TemporaryDirectory(prefix="edgemem-b-") as tmp:
            inp, out = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            np.ascontiguousarray(x[:n], dtype=np.int8).tofile(inp)
            return _callgrind([str(exe), str(blob), str(inp), str(out), str(n)], EDGEMEM_STEP)

    return _per_step(count, x.shape[0] - 1)


def tflm_instructions(model: Path, x: np.ndarray, states: list[tuple[int, int]] | None = None) -> float:
    """`states`: (count, zero point) of each int8 state input of a state-as-I/O file, fed back every step."""
    with tempfile.TemporaryDirectory(prefix="edgemem-b-") as tmp:
        xs = Path(tmp) / "x.npy"
        np.save(xs, x)
        loop = _TFLM_LOOP if states is None else _TFLM_STATE_LOOP
        extra = [] if states is None else [json.dumps([[int(c), int(z)] for c, z in states])]

        def count(n: int) -> int:
            return _callgrind([sys.executable, "-c", loop, str(model), str(xs), str(n), *extra], (TFLM_INVOKE,))

        return _per_step(count, x.shape[0] - 1)


def best_time(fn: Any, repeats: int = REPEATS) -> float:
    """Seconds of fn's fastest run of `repeats`, after one warm-up run."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def edgemem_us_per_step(exe: Path, blob: Path, x: np.ndarray) -> float:
    with tempfile.TemporaryDirectory(prefix="edgemem-b-") as tmp:
        files = {}
        for n in (1, x.shape[0]):
            files[n] = Path(tmp) / f"in{n}.bin"
            np.ascontiguousarray(x[:n], dtype=np.int8).tofile(files[n])
        out = Path(tmp) / "out.bin"

        def run(n: int) -> float:
            return best_time(lambda: subprocess.run([str(exe), str(blob), str(files[n]), str(out), str(n)], check=True,
                                                capture_output=True))

        return (run(x.shape[0]) - run(1)) / (x.shape[0] - 1) * 1e6


def litert_us_per_step(model: Path, x: np.ndarray) -> float:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model), num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    rows = [x[t:t + 1] for t in range(x.shape[0])]

    def run() -> None:
        for r in rows:
            it.set_tensor(i_in, r)
            it.invoke()
            it.get_tensor(i_out)

    return best_time(run) / x.shape[0] * 1e6


def onnxruntime_us_per_step(model: Path, x_float: np.ndarray) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    shapes = {i.name: [d if isinstance(d, int) else 1 for d in i.shape] for i in ins[1:]}
    outs = [o.name for o in sess.get_outputs()]
    rows = [x_float[t:t + 1].astype(np.float32) for t in range(x_float.shape[0])]

    def run() -> None:
        state = {k: np.zeros(s, dtype=np.float32) for k, s in shapes.items()}
        for r in rows:
            res = sess.run(outs, {ins[0].name: r, **state})
            state = dict(zip(shapes, res[1:]))

    return best_time(run) / x_float.shape[0] * 1e6


def bench_model(root: Path, name: str) -> dict[str, Any]:
    import json

    from edgemem.exporters.folder import TFLITE_INT8_FILE, TFLITE_VARS_FILE, load_meta
    from edgemem.exporters.tflite_run import open_session
    from edgemem.verification import c_runtime
    from edgemem.verification.stress import real_stream

    exp = root / "export" / name
    meta = load_meta(exp)
    verify = json.loads((root / "models" / name / "verify.json").read_text())
    x = real_stream(exp, STEPS + 1).astype(np.int8)
    exe, blob, tfl = c_runtime.build_host(), exp / "model.bin", exp / TFLITE_VARS_FILE
    x_float = x.astype(np.float64) * float(meta["input_scale"])  # the float step's (normalized) input
    tflm_arena = open_session((exp / "model.tflite").read_bytes(), "tflm").arena_bytes
    edge = {"instructions_per_step": edgemem_instructions(exe, blob, x), "ram_bytes": verify["ram_bytes"],
            "flash_bytes": verify["flash_bytes"], "us_per_step": edgemem_us_per_step(exe, blob, x)}
    tflm = {"instructions_per_step": tflm_instructions(tfl, x), "ram_bytes": tflm_arena,
            "flash_bytes": TFLM_RUNTIME_FLASH + tfl.stat().st_size, "us_per_step": None}
    litert = {"instructions_per_step": None, "ram_bytes": None, "flash_bytes": None,
              "us_per_step": litert_us_per_step(tfl, x)}
    onnx = {"instructions_per_step": None, "ram_bytes": None, "flash_bytes": None,
            "us_per_step": onnxruntime_us_per_step(exp / "model.onnx", x_float)}
    peers = {"tflm": tflm, "litert": litert, "onnxruntime": onnx}
    if (exp / TFLITE_INT8_FILE).is_file() and "tflite_int8" in meta:
        peers["tflm_int8"] = tflm_int8(exp, meta, x, verify)
    out: dict[str, Any] = {"steps": STEPS, "edgemem": edge, **peers}
    for r in peers.values():  # peer / edgemem: > 1 means edgemem needs less
        r["ratios"] = {k: (r[k] / edge[k] if r[k] is not None and edge[k] else None)
                       for k in ("instructions_per_step", "ram_bytes", "flash_bytes", "us_per_step")}
    return out


def tflm_int8(exp: Path, meta: dict[str, Any], x: np.ndarray, verify: dict[str, Any]) -> dict[str, Any]:
    """TFLM's best case: model_int8.tflite in the TFLM pip package (x86-64 host, callgrind on Invoke), its arena,
    and its held-out accuracy beside the int8 model's where verify.json has them (tflite.int8)."""
    from edgemem.exporters.folder import TFLITE_INT8_FILE
    from edgemem.exporters.tflite_run import open_session

    f = exp / TFLITE_INT8_FILE
    states = [(int(c), int(z)) for _, c, _, z in meta["tflite_int8"]["states"]]
    acc = (verify.get("tflite") or {}).get("int8") or {}
    return {"instructions_per_step": tflm_instructions(f, x, states),
            "ram_bytes": open_session(f.read_bytes(), "tflm").arena_bytes,
            "flash_bytes": TFLM_RUNTIME_FLASH + f.stat().st_size, "us_per_step": None,
            "accuracy": (acc.get("tflm") or {}).get("accuracy"), "int_reference_accuracy":
                acc.get("int_reference_accuracy"), "accuracy_windows": acc.get("windows")}


def pin_one_core() -> int:
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def markdown(results: dict[str, Any], cores: dict[str, dict[str, Any]] | None = None) -> str:
    lines = ["# edgemem C vs TFLite Micro, LiteRT and onnxruntime",
             "",
             "Written by `make bench` (edgemem/bench_runtimes.py; method in its docstring and docs/tflite.md). Ratios "
             "are peer / edgemem: above 1, edgemem needs less. Aim: edgemem <= 0.5x TFLM (ratio >= 2).",
             "",
             "| model | edgemem instr/step | TFLM instr/step | TFLM / edgemem | edgemem RAM | TFLM arena | ratio "
             "| edgemem flash | TFLM flash (lower bound) | ratio | edgemem us/step | LiteRT us/step | ratio "
             "| onnxruntime us/step | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        e, t, lt, ox = r["edgemem"], r["tflm"], r["litert"], r["onnxruntime"]
        lines.append(
            f"| {name} | {e['instructions_per_step']:,.0f} | {t['instructions_per_step']:,.0f} | "
            f"{t['ratios']['instructions_per_step']:.2f}x | {e['ram_bytes']:,} B | {t['ram_bytes']:,} B | "
            f"{t['ratios']['ram_bytes']:.2f}x | {e['flash_bytes']:,} B | {t['flash_bytes']:,} B | "
            f"{t['ratios']['flash_bytes']:.2f}x | {e['us_per_step']:.2f} | {lt['us_per_step']:.2f} | "
            f"{lt['ratios']['us_per_step']:.2f}x | {ox['us_per_step']:.2f} | {ox['ratios']['us_per_step']:.2f}x |")
    best = {n: r for n, r in results.items() if "tflm_int8" in r}
    if best:
        lines += int8_markdown(best)
    if cores:
        lines += cores_markdown(cores)
    return "\n".join(lines) + "\n"


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def int8_markdown(results: dict[str, Any]) -> list[str]:
    """TFLM best case: the converter-style int8 file beside edgemem and the bit-exact model_vars.tflite."""
    lines = ["", "## TFLM best case (converter-style int8)", "",
             "x86-64 host, TFLM pip package under callgrind (instructions per step in Invoke, as above): "
             "model_int8.tflite is the float twin quantized as TF's converter quantizes (int8 activations with zero "
             "points, per-channel int8 weights: TFLM's fastest kernels); it is not bit-exact with edgemem. Accuracy: "
             "held-out windows from reset, TFLM (verify.json tflite.int8), beside the int8 model's on the same "
             "windows.", "",
             "| model | edgemem instr/step | TFLM int8 instr/step | TFLM int8 / edgemem | TFLM 16x8 instr/step "
             "| TFLM int8 arena | int8 file accuracy | edgemem int8 accuracy | windows |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        e, b, t = r["edgemem"], r["tflm_int8"], r["tflm"]
        lines.append(
            f"| {name} | {e['instructions_per_step']:,.0f} | {b['instructions_per_step']:,.0f} | "
            f"{b['ratios']['instructions_per_step']:.2f}x | {t['instructions_per_step']:,.0f} | "
            f"{b['ram_bytes']:,} B | {_pct(b.get('accuracy'))} | {_pct(b.get('int_reference_accuracy'))} | "
            f"{b.get('accuracy_windows') or '–'} |")
    return lines


def cores_from_verify(root: Path, models: Any) -> dict[str, dict[str, Any]]:
    """models/NAME/verify.json's "cores" (`make verify`: edgemem verify --cores all), for the models that have it."""
    out = {}
    for m in models:
        p = root / "models" / m / "verify.json"
        if p.is_file():
            c = json.loads(p.read_text()).get("cores")
            if c:
                out[m] = c
    return out


def cores_markdown(cores: dict[str, dict[str, Any]]) -> list[str]:
    """Instructions per step of em_run on each emulated core (QEMU -icount; firmware/README.md "Cores")."""
    names = list(dict.fromkeys(c for per in cores.values() for c in per))
    lines = ["", "## Instructions per step on each core", "",
             "From models/NAME/verify.json (`make verify`: `edgemem verify --cores all`, em_run under QEMU, bit-exact "
             "with the integer reference over the windows shown). m0: the -mcpu=cortex-m0 build, on the microbit or, "
             "where the model does not fit its 16 KB RAM, on mps2-an385 (marked *).", "",
             "| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for m, per in cores.items():
        cells = []
        for c in names:
            e = per.get(c)
            if e is None:
                cells.append("–")
                continue
            mark = "*" if c == "m0" and e.get("board") not in (None, "microbit") else ""
            cells.append(f"{e['instructions_per_step']:,.0f}{mark}" + ("" if e["bit_exact"] else " (DIFFERS)"))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines
