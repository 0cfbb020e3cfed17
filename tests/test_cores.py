"""har_elm on every emulated core (firmware/targets/cores): em_run under QEMU, 2 windows, bit-exact with the host
run of the same blob, and each core's instruction count and footprint present (edgemem verify --cores)."""
from pathlib import Path

import numpy as np
import pytest

from conftest import need
from edgemem.verification import c_runtime

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "export" / "har_elm"
TOOLS = ("gcc", "arm-none-eabi-gcc", "qemu-system-arm", "riscv64-unknown-elf-gcc", "qemu-system-riscv32")



@pytest.fixture(autouse=True)
def _toolchains():
    need(*TOOLS)  # a skip locally, a failure under CI=true (make setup installs them)


def test_har_elm_on_every_core():
    blob = EXPORT / "model.bin"
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(2, 100, 6), dtype=np.int8)  # 2 windows of har_elm's 100 steps, 6 channels
    host = c_runtime.run_host(blob, x, 7)
    for core in c_runtime.CORES:
        run = c_runtime.run_core(core, blob, x, 7)
        assert np.array_equal(run.logits, host), core
        assert run.instructions_per_step > 1000, core
        fp = c_runtime.core_footprint(core, EXPORT)
        assert fp.flash_bytes > 3727 and fp.ram_bytes >= 224, core  # the blob in flash, the arena in RAM


def test_parse_cores():
    assert c_runtime.parse_cores(None) == []
    assert c_runtime.parse_cores("all") == list(c_runtime.CORES)
    assert c_runtime.parse_cores("m0, rv32") == ["m0", "rv32"]
    with pytest.raises(c_runtime.EdgememError):
        c_runtime.parse_cores("m4,m85")


def test_large_model_on_m0_and_rv32():
    """psmnist_lmu (54 KB blob, over the microbit build's 8 KiB): the M0 build runs it on mps2-an385, bit-exact."""
    exp = ROOT / "export" / "psmnist_lmu"  # shipped
    blob = exp / "model.bin"
    x = np.random.default_rng(1).integers(-128, 128, size=(1, 64, 1), dtype=np.int8)  # 1 window, 64 steps, 1 channel
    host = c_runtime.run_host(blob, x, 10)
    for core, board in (("m0", "mps2-an385"), ("rv32", "virt")):
        run = c_runtime.run_core(core, blob, x, 10, arena_bytes=896)
        assert np.array_equal(run.logits, host), core
        assert run.board == board and run.instructions_per_step > 10000, core


def test_m0_board():
    assert c_runtime.m0_board(3727, 224) == "microbit"
    assert c_runtime.m0_board(3727, None) == "microbit"
    assert c_runtime.m0_board(3727, 1544) == "mps2-an385"
    assert c_runtime.m0_board(54394, 896) == "mps2-an385"
    assert c_runtime.m0_board(5983, 824, 6, 7) == "microbit"  # har_l2mu_mixed: fits the 8 KiB blob buffer
    assert c_runtime.m0_board(9727, 824, 6, 7) == "mps2-an385"  # har_l2mu: over it
    assert c_runtime.m0_board(3727, 224, 257, 7) == "mps2-an385"  # a step's input over EM_RUN_IN_BUF
    assert c_runtime.m0_board(3727, 224, 6, 65) == "mps2-an385"  # a step's output over EM_RUN_OUT_BUF


def test_har_l2mu_mixed_on_the_microbit():
    """The largest shipped model whose blob fits the microbit build (5,983 B of 8 KiB): bit-exact on the nRF51."""
    exp = ROOT / "export" / "har_l2mu_mixed"
    blob = exp / "model.bin"
    x = np.random.default_rng(2).integers(-128, 128, size=(1, 40, 6), dtype=np.int8)
    host = c_runtime.run_host(blob, x, 7)
    run = c_runtime.run_core("m0", blob, x, 7, arena_bytes=824)
    assert run.board == "microbit" and np.array_equal(run.logits, host)


# Each machine's SysTick period over -icount shift=6's 64 ns (firmware/Makefile TICK_*; firmware/README.md "Cores"):
# the ratio em_run converts ticks with, and the raw ticks QEMU 7.2 gives for tick_check's 20,000 instructions.
TICKS = {"m0": ("125/128", 20480), "m0-an385": ("40/64", 31999), "m3": ("40/64", 31999), "m4": ("40/64", 31999),
         "m7": ("40/64", 31999), "m33": ("50/64", 25601), "m55": ("125/256", 40960), "rv32": ("1/64", 1280000)}


def test_tick_conversion_per_machine():
    """make cores-tick: a loop of 20,000 instructions timed on every machine as em_run times a step; each board's
    ticks-to-instructions ratio gives 20,000 back (one tick of SysTick quantisation either side)."""
    res = c_runtime.run_make("cores-tick")
    assert res.returncode == 0, (res.stdout + res.stderr)[-2000:]
    rows = {}
    for line in res.stdout.splitlines():
        if line.startswith("cores-tick: "):
            f = line.split()
            rows[f[1]] = dict(kv.split("=") for kv in f[2:] if "=" in kv)
    assert set(rows) == set(TICKS), rows
    for machine, (ratio, delta) in TICKS.items():
        r = rows[machine]
        assert r["ratio"] == ratio and abs(int(r["delta"]) - delta) <= 1, (machine, r)
        assert abs(int(r["instructions"]) - 20000) <= 1, (machine, r)
