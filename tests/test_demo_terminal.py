"""The terminal demo (`edgemem demo har`): the C runtime through ctypes gives em_run's integers, and the accuracy
it prints is the C host's on the same held-out windows."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import numpy as np

from conftest import ROOT, SHIPPED, need
from edgemem.demo.har_site import site_data
from edgemem.demo.runtime import AppRuntime
from edgemem.verification import c_runtime


def test_ctypes_runtime_equals_em_run_on_both_blob_formats(rng):
    need("gcc")
    for name in ("har_l2mu", "har_elm"):  # the spiking flagship and the ELM
        blob = ROOT / "export" / name / "model.bin"
        rt = AppRuntime(blob.read_bytes())
        x = rng.integers(-128, 128, (3, 40, rt.n_in)).astype(np.int8)
        got = rt.run(x.reshape(-1, rt.n_in), 40).reshape(3, 40, rt.n_out)
        assert np.array_equal(got, c_runtime.run_host(blob, x, rt.n_out)), name
        assert rt.arena_bytes == json.loads((blob.parent / "meta.json").read_text())["arena_bytes"]


def test_terminal_demo_prints_the_c_host_accuracy():
    need("gcc")
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "demo", "har", "--speed", "0", "--recordings", "2"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    m = re.search(r"(\d+) of (\d+) held-out windows right", res.stdout)
    assert m, res.stdout[-500:]
    data = site_data(SHIPPED)
    steps, n_in = data["steps_per_window"], data["n_in"]
    right = total = 0
    for rec in data["recordings"][:2]:
        x = np.frombuffer(base64.b64decode(rec["x"]), dtype=np.int8).reshape(-1, steps, n_in)
        pred = c_runtime.run_host(SHIPPED / "model.bin", x, 7).astype(np.int64).sum(axis=1).argmax(axis=1)
        right += int((pred == np.array(rec["labels"])).sum())
        total += len(pred)
    assert (int(m.group(1)), int(m.group(2))) == (right, total)


def test_unknown_demo_is_one_line_and_status_2():
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "demo", "ecg"], capture_output=True, text=True,
                         cwd=ROOT)
    assert res.returncode == 2 and res.stderr.strip() == "error: unknown demo 'ecg' (available: har, kws)"
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "demo", "kws"], capture_output=True, text=True,
                         cwd=ROOT)  # neither a file nor the page
    assert res.returncode == 2 and res.stderr.strip() == (
        "error: demo kws takes a WAV file: `edgemem demo kws --wav FILE`, or `edgemem demo kws --serve` for the "
        "browser page")
