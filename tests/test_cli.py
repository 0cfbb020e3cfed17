"""Every bad input: one line naming the problem, exit status 2, no traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHECKPOINT, ROOT, SHIPPED, need

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEMEM, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def assert_user_error(res: subprocess.CompletedProcess, words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert words in lines[0], lines[0]


def test_missing_and_corrupt_checkpoints(tmp_path):
    assert_user_error(run("export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")), "does not exist")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    assert_user_error(run("export", str(bad), "--out", str(tmp_path / "o")), "corrupt")
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(CHECKPOINT.read_bytes()[:5000])
    assert_user_error(run("export", str(truncated), "--out", str(tmp_path / "o")), "corrupt")
    assert not (tmp_path / "o").exists()


def test_recipe_errors(tmp_path):
    r = tmp_path / "r.yaml"
    r.write_text("name: x\nmodel: {n_h: 8, colour: red}\n")
    assert_user_error(run("train", str(r)), "unknown field 'model.colour'")
    r.write_text("name: x\ntrain: {epochs: many}\n")
    assert_user_error(run("train", str(r)), "'train.epochs' must be int")
    r.write_text("name: [unclosed\n")
    assert_user_error(run("train", str(r)), "not valid YAML")
    assert_user_error(run("train", str(tmp_path / "none.yaml")), "does not exist")
    r.write_text("name: x\ndata: {source: npz, path: missing.npz}\n")
    assert_user_error(run("train", str(r)), "missing.npz does not exist")


def test_verify_rejects_folders_that_are_not_exports(tmp_path):
    assert_user_error(run("verify", str(tmp_path)), "is not an edgemem export")


def test_verify_rejects_a_blob_with_a_bad_crc_or_version(tmp_path):
    need("gcc", "make")
    for name, offset in (("crc", 200), ("version", 4)):
        folder = tmp_path / name
        shutil.copytree(SHIPPED, folder)
        m = json.loads((folder / "meta.json").read_text())
        m["checkpoint"] = str(CHECKPOINT)
        (folder / "meta.json").write_text(json.dumps(m))  # the copy still finds the checkpoint
        blob = bytearray((folder / "model.bin").read_bytes())
        blob[offset] ^= 0x5A
        (folder / "model.bin").write_bytes(bytes(blob))
        res = run("verify", str(folder))
        assert_user_error(res, "CRC" if name == "crc" else "version")


def test_em_run_rejects_bad_input(tmp_path):
    need("gcc", "make")
    from edgemem.verification.c_runtime import build_host

    exe = build_host()
    blob = SHIPPED / "model.bin"
    wrong = tmp_path / "wrong.bin"
    wrong.write_bytes(b"\x01" * 7)  # not a multiple of 6 channels
    res = subprocess.run([str(exe), str(blob), str(wrong), str(tmp_path / "o.bin"), "100"], capture_output=True,
                         text=True)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o.bin").exists() and not (tmp_path / "o.bin.tmp").exists()  # not even an empty file


@pytest.mark.parametrize("args", [["export"], ["verify", "--bogus"], ["frobnicate"]])
def test_usage_errors_exit_2(args):
    res = run(*args)
    assert res.returncode == 2 and "Traceback" not in res.stderr
