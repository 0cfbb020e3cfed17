"""The firmware HAR demo (firmware/apps/har_demo) on every held-out window: the QEMU Cortex-M4 run agrees with the
integer reference window for window, with em_run's instruction count and with the verify report; it fits the
nRF52832 and nRF52840 maps, and a too-small map fails the link."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT, SHIPPED, need
from edgemem.demo import har_firmware as hf

VERIFY = ROOT / "models" / "har_l2mu" / "verify.json"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    need("make", "arm-none-eabi-gcc", "qemu-system-arm")
    data = hf.held_out_data(SHIPPED)
    path = hf.write_data(data, tmp_path_factory.mktemp("har_demo") / "data.bin")
    return {"data": data, "path": path, "qemu": hf.run_demo(path), "ref": hf.reference_predictions(SHIPPED, data)}


def _accuracy_text(correct: int, n: int) -> str:
    """correct / n with 4 decimals, rounded half up as the firmware does (integers, no float formatting)."""
    q = (correct * 10000 * 2 + n) // (2 * n)
    return f"{q // 10000}.{q % 10000:04d}"


def test_qemu_demo_matches_integer_reference(demo: dict[str, Any]) -> None:
    data, res, ref = demo["data"], demo["qemu"], demo["ref"]
    assert res["returncode"] == 0, res["stderr"]
    n = len(data.y)
    correct = int((ref == data.y).sum())
    assert res["windows"] == n
    assert res["correct"] == correct
    assert res["accuracy_text"] == _accuracy_text(correct, n)
    # the change lines rebuild every window's prediction, and each line is consistent in itself
    pred = hf.predictions_from_changes(res["changes"], n, data.class_names)
    np.testing.assert_array_equal(pred, ref)
    prev = "-"
    for c in res["changes"]:
        w = c["window"]
        assert c["from"] == prev and c["to"] != prev
        assert c["true"] == data.class_names[data.y[w]]
        assert c["correct"] == (c["to"] == c["true"])
        assert c["recording"] == data.recording[w]
        assert c["t_s"] == pytest.approx(data.end_sample[w] / data.sample_rate_hz, abs=0.005)
        prev = c["to"]
    assert res["changes"][0]["window"] == 0


def test_qemu_instructions_match_em_run(demo: dict[str, Any]) -> None:
    """Per step as em_run (what verify reports) counts it on the same windows; per window = reset + steps +
    readout, so a little above steps x per step."""
    from edgemem.verification import c_runtime

    res, data = demo["qemu"], demo["data"]
    m4 = c_runtime.run_cortex_m4(SHIPPED / "model.bin", data.xq, len(data.class_names))
    assert res["instructions_per_step"] > 0
    assert res["instructions_per_step"] == pytest.approx(m4.instructions_per_step, rel=0.01)
    steps = data.xq.shape[1]
    assert steps * res["instructions_per_step"] < res["instructions_per_window"]
    assert res["instructions_per_window"] < 1.05 * steps * res["instructions_per_step"]


def test_qemu_demo_matches_verify_report(demo: dict[str, Any]) -> None:
    """The shipped report (models/har_l2mu/verify.json, `make verify`) on the same windows: fails when the report is
    older than the export or the C runtime it describes (re-run `make verify`)."""
    report = json.loads(VERIFY.read_text())
    res = demo["qemu"]
    assert report["c_cortex_m4_windows"] == report["test_windows"] == res["windows"]
    assert res["correct"] / res["windows"] == report["accuracy"]["c_cortex_m4"]
    assert res["instructions_per_step"] == pytest.approx(report["instructions_per_step"], rel=0.01)


def test_host_demo_prints_the_same(demo: dict[str, Any]) -> None:
    need("gcc")
    host = hf.run_demo(demo["path"], host=True)
    assert host["returncode"] == 0, host["stderr"]
    strip = [line for line in demo["qemu"]["stdout"].splitlines() if not line.startswith("instructions")]
    assert host["stdout"].splitlines() == [*strip, "instructions: not counted on this platform"]


@pytest.mark.parametrize("host", [False, True], ids=["qemu", "host"])
def test_bad_data_file_is_one_line_and_exit_2(demo: dict[str, Any], tmp_path: Path, host: bool) -> None:
    need("gcc")
    good = demo["path"].read_bytes()
    cases = {
        "missing.bin": None,
        "magic.bin": b"XXXX" + good[4:],
        "short.bin": good[:-1],
        "padded.bin": good + b"\0",
        "header.bin": good[:10],
    }
    for name, blob in cases.items():
        if blob is not None:
            (tmp_path / name).write_bytes(blob)
        res = hf.run_demo(tmp_path / name, host=host)
        assert res["returncode"] == 2, (name, res)
        assert res["stdout"] == "", (name, res["stdout"])
        lines = res["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("har_demo: "), (name, res["stderr"])
    assert "bad magic" in hf.run_demo(tmp_path / "magic.bin", host=host)["stderr"]


def test_fits_nrf52_and_too_small_map_fails() -> None:
    need("make", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm")
    res = hf.fit()
    assert res["returncode"] == 0, res["stderr"] or res["stdout"]
    budgets = {"nrf52832": (512 * 1024, 64 * 1024), "nrf52840": (1024 * 1024, 256 * 1024)}
    assert set(res["chips"]) == set(budgets)
    for chip, (flash, ram) in budgets.items():
        c = res["chips"][chip]
        assert (c["flash_budget"], c["ram_budget"]) == (flash, ram)
        assert 0 < c["flash_bytes"] <= flash and 0 < c["ram_bytes"] <= ram
        assert c["ram_bytes"] == c["data"] + c["bss"] + c["stack"] and c["stack"] > 0
    # both chips link the same code: only the maps differ
    assert res["chips"]["nrf52832"]["flash_bytes"] == res["chips"]["nrf52840"]["flash_bytes"]
    assert {o["region"] for o in res["overflow"]} == {"RAM", "FLASH"}
    assert all(o["by_bytes"] > 0 for o in res["overflow"])


def test_data_file_header(demo: dict[str, Any]) -> None:
    data, raw = demo["data"], demo["path"].read_bytes()
    n, steps, n_in = data.xq.shape
    magic, version, f_in, f_steps, classes, f_n, rate, ds, zero = hf.HEADER.unpack_from(raw)
    assert (magic, version, f_in, f_steps, classes, f_n, zero) == (b"EMHD", 1, n_in, steps, 7, n, 0)
    assert (rate, ds) == (50, 2) and steps * ds == 100  # 2 s windows of the 50 Hz watch data
    assert len(raw) == hf.HEADER.size + n * (hf.RECORD.size + steps * n_in)
    assert n == json.loads(VERIFY.read_text())["test_windows"]


def test_graph_model_demo(tmp_path: Path) -> None:
    """The same demo source with a graph export compiled in (HAR_DIR=export/har_elm, blob version 2), on the first
    100 held-out windows: every prediction equals the graph integer reference's."""
    need("make", "arm-none-eabi-gcc", "qemu-system-arm")
    export = ROOT / "export" / "har_elm"
    data = hf.held_out_data(export, windows=100)
    res = hf.run_demo(hf.write_data(data, tmp_path / "elm.bin"), export_dir=export)
    assert res["returncode"] == 0, res["stderr"]
    ref = hf.reference_predictions(export, data)
    assert res["correct"] == int((ref == data.y).sum()) and res["windows"] == 100
    np.testing.assert_array_equal(hf.predictions_from_changes(res["changes"], 100, data.class_names), ref)
    assert res["instructions_per_step"] > 0
