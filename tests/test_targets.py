"""Target profiles (docs/targets.md): the shipped YAML files load, a user's board.yaml works with `plan --target`,
and a bad profile is one error line with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgemem.errors import EdgememError
from edgemem.schedule.profiles import FIELDS, load_target, shipped_targets

ROOT = Path(__file__).resolve().parents[1]
GOOD = """name: myboard
chip: nRF52833
flash_total: 512KiB
ram_total: 131072
flash_free_for_model: 200000
ram_free_for_model: 16KiB
source: my own measurement
"""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgemem.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_shipped_profiles_load():
    assert {"pinetime", "bangle2", "nrf52840dk", "mps2-an386"} <= set(shipped_targets())
    for name in shipped_targets():
        t = load_target(name)
        assert t.name == name and t.source
        assert 0 < t.flash_free_for_model <= t.flash_total and 0 < t.ram_free_for_model <= t.ram_total
    pt = load_target("pinetime")
    assert (pt.flash_total, pt.ram_total) == (512 * 1024, 64 * 1024)
    assert pt.ram_free_for_model < pt.ram_total and pt.flash_free_for_model < pt.flash_total


def test_shipped_figures():
    """The sourced figures of docs/targets.md; a change to a profile must change the derivation there too."""
    pt, b2, dk = load_target("pinetime"), load_target("bangle2"), load_target("nrf52840dk")
    assert pt.flash_free_for_model == 474632 - 372944 - 948  # InfiniTime PR #2172's 1.15.0 size report
    assert pt.ram_free_for_model == 6 * 1024  # PR #1709: minimum free FreeRTOS heap "around 6KB"
    binary = (594656 // 4096 + 1) * 4096 - 0x26000  # flash_binary_end, page-rounded, from the SoftDevice's end
    assert b2.flash_free_for_model == (1024 - (38 + 8 + 3 + 20) * 4) * 1024 - binary  # 2v29 flash_available
    assert b2.ram_free_for_model == 65536  # the one estimate left (docs/targets.md says why)
    assert (dk.flash_free_for_model, dk.ram_free_for_model) == (1048576 - 180, 262144 - 4)  # startup.c, measured


def test_user_yaml(tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text(GOOD)
    t = load_target(str(board))
    assert (t.flash_total, t.ram_free_for_model) == (512 * 1024, 16 * 1024)
    m = t.margins(ram_bytes=1000, flash_bytes=2000)
    assert m["ram_margin_bytes"] == 16 * 1024 - 1000 and m["flash_margin_bytes"] == 198000


def test_plan_with_a_user_yaml(tmp_path):
    export = ROOT / "export" / "har_l2mu"  # shipped in the repository
    board = tmp_path / "board.yaml"
    board.write_text(GOOD)
    res = _cli("plan", str(export), "--target", str(board), "--json")
    assert res.returncode == 0, res.stderr
    r = json.loads(res.stdout)
    assert r["ram_budget_bytes"] == 16 * 1024 and r["target"]["name"] == "myboard"
    peak = r["schedules"][r["chosen"]]["peak_ram_bytes"]
    # the input stage's arena (docs/frontend.md) is RAM the board holds too
    assert r["target"]["margin_bytes"] == 16 * 1024 - peak - r["input_stage_ram_bytes"] and r["input_stage_ram_bytes"] > 0
    res = _cli("plan", str(export), "--target", "pinetime", "--json")
    assert json.loads(res.stdout)["ram_budget_bytes"] == load_target("pinetime").ram_free_for_model


BAD = {
    "missing": (GOOD.replace("chip: nRF52833\n", ""), "missing field chip"),
    "negative": (GOOD.replace("ram_total: 131072", "ram_total: -5"), "ram_total must not be negative"),
    "free_over_total": (GOOD.replace("flash_free_for_model: 200000", "flash_free_for_model: 1MiB"),
                        "flash_free_for_model (1048576) exceeds flash_total (524288)"),
    "not_yaml": ("name: [unclosed\n", "not valid YAML"),
    "not_mapping": ("- 1\n- 2\n", "expected a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_yaml_is_one_line_exit_2(tmp_path, case):
    text, msg = BAD[case]
    board = tmp_path / "board.yaml"
    board.write_text(text)
    with pytest.raises(EdgememError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        load_target(str(board))
    res = _cli("plan", str(tmp_path), "--target", str(board))  # the profile is read before the export
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], res.stderr


def test_unknown_target_names_the_shipped_ones(tmp_path):
    res = _cli("plan", str(tmp_path), "--target", "toaster")
    assert res.returncode == 2 and "known: " in res.stderr and "pinetime" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_fields_documented():
    doc = (ROOT / "docs" / "targets.md").read_text()
    for k in FIELDS:
        assert k in doc
