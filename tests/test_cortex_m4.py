"""The shipped model on the emulated Cortex-M4 (QEMU mps2-an386): bit-exact on real windows, and it fits."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from conftest import ROOT, SHIPPED, need
from edgemem.exporters.folder import load_meta
from edgemem.graph.intops import quantize
from edgemem.verification import c_runtime
from edgemem.verification.held_out import held_out_set, int_model


def test_cortex_m4_is_bit_exact_on_real_test_windows():
    need("arm-none-eabi-gcc", "qemu-system-arm", "make")
    meta, _, ts = held_out_set(SHIPPED)
    q = int_model((SHIPPED / "model.bin").read_bytes(), meta)
    x = quantize(ts.x[::25], meta["input_scale"]).astype(np.int8)  # 41 windows over both test subjects
    ref, _ = q.run(x)
    m4 = c_runtime.run_cortex_m4(SHIPPED / "model.bin", x, q.n_out)
    assert np.array_equal(ref, m4.logits)
    assert m4.instructions_per_step > 0


def test_footprint_fits_a_pinetime_class_watch():
    need("arm-none-eabi-gcc", "make")
    fp = c_runtime.footprint(SHIPPED)
    assert fp.flash_bytes <= 32768 and fp.ram_bytes <= 8192, fp
    assert fp.ram_bytes >= load_meta(SHIPPED)["arena_bytes"]  # the arena is really in the image


def test_verify_json_reports_every_runtime(tmp_path):
    need("gcc", "arm-none-eabi-gcc", "qemu-system-arm", "make")
    png = tmp_path / "confusion.png"
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "verify", str(SHIPPED), "--json", "--m4-windows", "8",
                          "--plot-confusion", str(png)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert png.stat().st_size > 15_000 and "confusion" not in json.dumps(r)  # the picture; the report unchanged
    assert set(r["accuracy"]) == {"torch_float", "onnx_float", "int_reference", "c_host", "c_cortex_m4"}
    assert r["bit_exact"] is True and r["steps_compared"] == r["test_windows"] * r["steps_per_window"]
    for key in ("model", "flash_bytes", "ram_bytes", "instructions_per_step"):
        assert r[key]
