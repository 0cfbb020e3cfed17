"""Build and run the C runtime: host em_run, em_run.elf on QEMU mps2-an386, the footprint probe and the stack bound.

em_run loads a graph blob at run time (em_graph_parse, every kernel built in); the footprint probe and the stack
analysis build what a firmware with the model compiled in links: em_graph_bind and only the kernels model.h's
EM_MODEL_GRAPH_KERNELS names (firmware/README.md).

The sources are the checkout's firmware/ or, installed from a wheel, the packaged copy (edgemem/_firmware), which is
only read: every build goes to build_dir() (edgemem.tool: firmware/build in a checkout, the user cache otherwise).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemem import tool
from edgemem.errors import EdgememError

FIRMWARE = tool.firmware_dir()  # the Makefile's folder: read, never written


def build_dir() -> Path:
    """Where the firmware is built (the Makefile's BUILD)."""
    return tool.firmware_build_dir()


class ToolchainMissing(EdgememError):
    """A required tool (gcc, arm-none-eabi-gcc, qemu-system-arm) is not installed."""


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolchainMissing(f"'{tool}' is not installed (run `make setup`)")
    return path


def run_make(*targets: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """make in the firmware folder with BUILD (build_dir() unless given) and PYTHON (this interpreter) set."""
    require("make")
    src = tool.require_firmware()
    variables = {"BUILD": str(build_dir()), "PYTHON": sys.executable, **variables}
    args = ["make", "-s", "--no-print-directory", "-C", str(src), *targets,
            *[f"{k}={v}" for k, v in variables.items()]]
    return subprocess.run(args, capture_output=True, text=True)


def _make(*targets: str, **variables: str) -> None:
    res = run_make(*targets, **variables)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        raise EdgememError(f"firmware build failed ({' '.join(targets)}): {' | '.join(tail)}")


def build_host() -> Path:
    require("gcc")
    _make("host")
    return build_dir() / "host" / "em_run"


def build_m4() -> Path:
    require("arm-none-eabi-gcc")
    _make("m4")
    return build_dir() / "m4" / "em_run.elf"


def _io(blob: Path, x: np.ndarray, run: Callable[[Path, Path, Path, int], str], n_out: int) -> tuple[np.ndarray, str]:
    """Write int8 windows [N][T][n_in] to a file, run, read int16 logits [N][T][n_out] back. An input stage (x of
    dtype int16: raw samples) the other way round: int16 little endian in, int8 out."""
    n, steps, _ = x.shape
    stage = x.dtype == np.int16
    with tempfile.TemporaryDirectory(prefix="edgemem-run-") as tmp:
        inp, out = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        np.ascontiguousarray(x, dtype="<i2" if stage else np.int8).tofile(inp)
        stdout = run(blob.resolve(), inp, out, steps)
        y = np.fromfile(out, dtype=np.int8 if stage else "<i2")
    if y.size != n * steps * n_out:
        raise EdgememError(f"C runtime wrote {y.size} logits, expected {n * steps * n_out}")
    return y.reshape(n, steps, n_out), stdout


def _check(res: subprocess.CompletedProcess, what: str) -> str:
    if res.returncode != 0:
        raise EdgememError(f"{what} failed (exit {res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def run_host(blob: Path, x: np.ndarray, n_out: int) -> np.ndarray:
    exe = build_host()

    def run(b: Path, inp: Path, out: Path, steps: int) -> str:
        res = subprocess.run([str(exe), str(b), str(inp), str(out), str(steps)], capture_output=True, text=True)
        return _check(res, "C host run")

    return _io(blob, x, run, n_out)[0]


def run_host_patch(blob: Path, plan: Path, x: np.ndarray, n_out: int) -> tuple[np.ndarray, int]:
    """The patch schedule (em_run's PATCH.bin argument): (logits [N][T][n_out], the arena bytes it asked for)."""
    exe = build_host()

    def run(b: Path, inp: Path, out: Path, steps: int) -> str:
        res = subprocess.run([str(exe), str(b), str(inp), str(out), str(steps), str(plan.resolve())],
                             capture_output=True, text=True)
        return _check(res, "C host run (patch schedule)")

    logits, stdout = _io(blob, x, run, n_out)
    m = re.search(r"arena_bytes=(\d+)", stdout)
    if not m:
        raise EdgememError(f"em_run printed no arena size for the patch schedule: {stdout.strip()[:200]}")
    return logits, int(m.group(1))


@dataclass
class M4Run:
    logits: np.ndarray
    instructions_per_step: float


def _qemu_em_run(cmd: list[str], blob: Path, x: np.ndarray, n_out: int, what: str) -> tuple[np.ndarray, float]:
    """em_run under QEMU through a runner script (`cmd` + MODEL IN OUT STEPS): logits and instructions per step.
    Semihosting paths must not contain spaces: it runs from a temp dir holding links to the files. The console is
    read from stdout and stderr together (rv32's semihosting writes to QEMU's stderr)."""

    def run(b: Path, inp: Path, out: Path, steps: int) -> str:
        with tempfile.TemporaryDirectory(prefix="edgemem-qemu-") as cwd:
            for name, src in (("model.bin", b), ("in.bin", inp)):
                os.symlink(src, Path(cwd) / name)
            res = subprocess.run([*cmd, "model.bin", "in.bin", "out.bin", str(steps)], capture_output=True, text=True,
                                 cwd=cwd)
            res = subprocess.CompletedProcess(res.args, res.returncode, res.stdout + res.stderr, res.stderr)
            out_text = _check(res, what)
            shutil.copyfile(Path(cwd) / "out.bin", out)
        return out_text

    logits, stdout = _io(blob, x, run, n_out)
    m = re.search(r"instructions_per_step=([0-9.]+)", stdout)
    if not m:
        raise EdgememError(f"{what} printed no instruction count: {stdout.strip()[:200]}")
    return logits, float(m.group(1))


def run_cortex_m4(blob: Path, x: np.ndarray, n_out: int) -> M4Run:
    elf = build_m4()
    require("qemu-system-arm")
    script = FIRMWARE / "targets" / "cortex_m4" / "run_qemu.sh"
    return M4Run(*_qemu_em_run(["sh", str(script), str(elf)], blob, x, n_out, "C Cortex-M4 (QEMU) run"))


CORES = ("m0", "m3", "m4", "m7", "m33", "m55", "rv32")
_CORE_TOOLS = {"rv32": ("riscv64-unknown-elf-gcc", "qemu-system-riscv32")}
# The QEMU machine each core's em_run runs on (firmware/targets/cores/run_qemu.sh)
BOARDS = {"m0": "microbit", "m3": "mps2-an385", "m4": "mps2-an386", "m7": "mps2-an500", "m33": "mps2-an505",
          "m55": "mps3-an547", "rv32": "virt"}
# The microbit build's em_run buffers (firmware/Makefile RUN_DEFS_m0): larger models run the M0 build on mps2-an385
M0_MICROBIT_BLOB_MAX = 8192
M0_MICROBIT_ARENA_MAX = 1024
M0_MICROBIT_IN_MAX = 256  # EM_RUN_IN_BUF: bytes of one step's input
M0_MICROBIT_OUT_MAX = 64  # EM_RUN_OUT_BUF: logits of one step's output


@dataclass
class CoreRun:
    logits: np.ndarray
    instructions_per_step: float
    board: str = ""


def m0_board(blob_bytes: int, arena_bytes: int | None, n_in: int = 1, n_out: int = 1) -> str:
    """Where the M0 build runs: the microbit (nRF51, 16 KB RAM) when the blob, the arena and one step's input and
    output fit its em_run buffers (firmware/Makefile RUN_DEFS_m0), else mps2-an385 (the same -mcpu=cortex-m0 code,
    full-size buffers, executed by QEMU's Cortex-M3)."""
    fits = (blob_bytes <= M0_MICROBIT_BLOB_MAX and (arena_bytes is None or arena_bytes <= M0_MICROBIT_ARENA_MAX)
            and n_in <= M0_MICROBIT_IN_MAX and n_out <= M0_MICROBIT_OUT_MAX)
    return "microbit" if fits else "mps2-an385"


def run_core(core: str, blob: Path, x: np.ndarray, n_out: int, arena_bytes: int | None = None) -> CoreRun:
    """em_run on one core under QEMU (firmware/targets/cores/run_qemu.sh; `make cores`): the M0 (microbit, 16 KB
    RAM: blobs up to 8 KiB, arenas up to 1 KiB, steps of up to 256 inputs and 64 outputs; larger models run the M0
    build on mps2-an385, see m0_board), M3, M4, M7, M33, M55 and RISC-V rv32. arena_bytes: the graph's arena (picks
    the M0 board; None: the blob decides)."""
    if core not in CORES:
        raise EdgememError(f"unknown core '{core}' (one of {', '.join(CORES)})")
    for t in _CORE_TOOLS.get(core, ("arm-none-eabi-gcc", "qemu-system-arm")):
        require(t)
    board = BOARDS[core]
    target = core
    if core == "m0":
        stage = x.dtype == np.int16  # an input stage: int16 samples in (bytes count), at most 64 a step (RUN_DEFS_m0)
        fits_stage = not stage or (x.shape[-1] <= 64 and n_out <= 64)
        board = m0_board(Path(blob).stat().st_size, arena_bytes, int(x.shape[-1]) * x.itemsize, n_out)
        board = board if fits_stage else "mps2-an385"
        if board != "microbit":
            target = "m0-an385"
    _make(f"{build_dir()}/{target}/em_run.elf")
    elf = build_dir() / target / "em_run.elf"
    script = FIRMWARE / "targets" / "cores" / "run_qemu.sh"
    logits, instructions = _qemu_em_run(["sh", str(script), target, str(elf)], blob, x, n_out,
                                        f"C {core} (QEMU {board}) run")
    return CoreRun(logits, instructions, board)


def core_footprint(core: str, model_dir: Path) -> Footprint:
    """footprint() for one core: the probe built with that core's flags (rv32: picolibc's minimal crt0)."""
    if core == "m4":
        return footprint(model_dir)
    return _footprint(core, model_dir, "riscv64-unknown-elf-size" if core == "rv32" else "arm-none-eabi-size")


def parse_cores(spec: str | None) -> list[str]:
    """--cores: None or "" -> [], "all" -> every core, else a comma list of CORES."""
    if not spec:
        return []
    if spec.strip() == "all":
        return list(CORES)
    cores = [c.strip() for c in spec.split(",") if c.strip()]
    bad = [c for c in cores if c not in CORES]
    if bad:
        raise EdgememError(f"--cores: unknown core(s) {', '.join(bad)} (all or a comma list of {', '.join(CORES)})")
    return cores


@dataclass
class Footprint:
    flash_bytes: int
    ram_bytes: int
    text: int
    data: int
    bss: int


def footprint(model_dir: Path) -> Footprint:
    """Flash = text + data, RAM = data + bss (arena included) of the footprint probe linked for the Cortex-M4:
    model_dir's model.c bound (no parser) with the kernels its model.h names."""
    require("arm-none-eabi-gcc")
    return _footprint("m4", model_dir, "arm-none-eabi-size")


def _footprint(core: str, model_dir: Path, size_tool: str) -> Footprint:
    """The footprint probe of `core` built in a temp folder, measured by `size_tool`."""
    size = require(size_tool)
    with tempfile.TemporaryDirectory(prefix="edgemem-fp-") as build:
        _make(f"{build}/{core}/footprint.elf", MODEL_DIR=str(model_dir.resolve()), BUILD=build)
        res = subprocess.run([size, f"{build}/{core}/footprint.elf"], capture_output=True, text=True)
    line = _check(res, size_tool).strip().splitlines()[-1].split()
    text, data, bss = int(line[0]), int(line[1]), int(line[2])
    return Footprint(text + data, data + bss, text, data, bss)


def stack_bytes(model_dir: Path) -> int:
    """Worst-case stack depth of em_graph_step on the Cortex-M4, built as the footprint probe is (the kernels
    model_dir's model.h names; gcc -fstack-usage + call graph; firmware/README.md)."""
    require("arm-none-eabi-gcc")
    with tempfile.TemporaryDirectory(prefix="edgemem-stack-") as build:
        res = run_make("stack", MODEL_DIR=str(model_dir.resolve()), BUILD=build)
    m = re.search(r"stack: em_graph_step (\d+) bytes", _check(res, "stack analysis"))
    if not m:
        raise EdgememError(f"stack analysis printed no figure: {res.stdout.strip()[-200:]}")
    return int(m.group(1))


def build_uart_validate(model_dir: Path, build: Path | None = None, defs: str = "") -> Path:
    """firmware/apps/uart_validate for QEMU mps2-an386 with model_dir's model.c compiled in (`make uart-validate
    MODEL_DIR=...`); defs: extra -D flags (UV_DEFS). -> the ELF (BUILD/m4/uart_validate.elf)."""
    require("arm-none-eabi-gcc")
    build = build_dir() if build is None else build
    _make("uart-validate", MODEL_DIR=str(model_dir.resolve()), BUILD=str(build), UV_DEFS=defs)
    return build / "m4" / "uart_validate.elf"
