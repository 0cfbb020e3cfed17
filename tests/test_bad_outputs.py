"""Outputs: nothing half-written, output paths checked before any work, names that become paths checked.

A full disk is simulated by monkeypatching a writer to raise OSError(ENOSPC) part-way; Ctrl-C by raising
KeyboardInterrupt at the same place. An unwritable folder cannot be made with chmod here (the tests run as root, which
mode bits do not stop): the CLI cases use a path under a regular file (ENOTDIR for everyone), the in-process cases
monkeypatch the write probe (tempfile.mkstemp) to raise PermissionError."""

from __future__ import annotations

import errno
import json
import tempfile
import time
from pathlib import Path

import pytest
from test_bad_files import assert_user_error, cli, listing

from conftest import CHECKPOINT, SHIPPED
from edgemem import atomic
from edgemem.checkpoint import load_checkpoint, save_checkpoint
from edgemem.errors import EdgememError, check_name
from edgemem.exporters import run as export_run
from edgemem.exporters.folder import check_export_out, write_export

# ------------------------------------------------------------------------------------------------ helpers


def failing_after(n: int, exc: BaseException):
    """A Path.write_bytes / write_text that writes n files, then raises `exc` (a full disk, a Ctrl-C)."""
    calls = {"n": 0}
    real_bytes, real_text = Path.write_bytes, Path.write_text

    def gate() -> None:
        calls["n"] += 1
        if calls["n"] > n:
            raise exc

    def write_bytes(self, data):
        gate()
        return real_bytes(self, data)

    def write_text(self, data, *a, **k):
        gate()
        return real_text(self, data, *a, **k)

    return write_bytes, write_text


def full_disk() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def leftovers(folder: Path) -> list[str]:
    """Temp files or folders an atomic write left behind (names start with '.')."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def unwritable(monkeypatch, folder: Path) -> None:
    """mkstemp in `folder` fails as in a read-only folder for a non-root user (root ignores chmod)."""
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):  # noqa: A002 - tempfile's name
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


# ------------------------------------------------------------------------------------------- export: whole folder

OLD = {"model.onnx": b"old onnx", "model.bin": b"old bin", "model.c": b"old c", "model.h": b"old h",
       "model.tflite": b"old tflite"}
NEW = {"model.onnx": b"new onnx", "model.bin": b"new bin", "model.c": b"new c", "model.h": b"new h"}


@pytest.mark.parametrize("exc", [full_disk(), KeyboardInterrupt()], ids=["full_disk", "ctrl_c"])
@pytest.mark.parametrize("after", [0, 1, 3])
def test_export_folder_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch, exc, after):
    out = tmp_path / "export"
    write_export(out, dict(OLD), {"name": "old"})
    before = listing(out)
    wb, wt = failing_after(after, exc)
    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", wb)
        with pytest.raises(EdgememError if isinstance(exc, OSError) else KeyboardInterrupt) as e:
            write_export(out, dict(NEW), {"name": "new"})
    if isinstance(exc, OSError):
        assert "No space left on device" in str(e.value) and "\n" not in str(e.value)
    assert listing(out) == before  # not one new file beside the old ones
    assert leftovers(tmp_path) == []
    # a first export that fails leaves no folder at all (never one holding only model.onnx)
    fresh = tmp_path / "fresh"
    with monkeypatch.context() as m:
        m.setattr(Path, "write_bytes", wb)
        with pytest.raises((EdgememError, KeyboardInterrupt)):
            write_export(fresh, dict(NEW), {"name": "new"})
    assert not fresh.exists() and leftovers(tmp_path) == []
    # and one that succeeds replaces the folder whole: the old export's model.tflite does not survive
    write_export(out, dict(NEW), {"name": "new"})
    assert set(listing(out)) == {*NEW, "meta.json"} and listing(out)["model.bin"] == b"new bin"
    assert leftovers(tmp_path) == []


def test_a_real_export_on_a_full_disk_keeps_the_previous_export(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_export(out, dict(OLD), {"name": "old"})
    before = listing(out)
    wb, _ = failing_after(1, full_disk())  # model.onnx is written, then the disk is full
    monkeypatch.setattr(Path, "write_bytes", wb)
    with pytest.raises(EdgememError, match="No space left on device"):
        export_run.export(CHECKPOINT, ["onnx", "c"], out)
    assert listing(out) == before and leftovers(tmp_path) == []


def test_the_swap_without_rename_exchange_is_whole_too(tmp_path, monkeypatch):
    """Where the kernel or file system cannot exchange two paths, two renames with Ctrl-C held back."""
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = tmp_path / "export"
    write_export(out, dict(OLD), {"name": "old"})
    write_export(out, dict(NEW), {"name": "new"})
    assert set(listing(out)) == {*NEW, "meta.json"} and leftovers(tmp_path) == []


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(EdgememError, match="holds 'notes.txt', which no export writes"):
        check_export_out(tmp_path)
    sub = tmp_path / "sub"
    (sub / "inner").mkdir(parents=True)
    with pytest.raises(EdgememError, match="holds 'inner'"):
        check_export_out(sub)
    check_export_out(tmp_path / "new")  # a new folder, an empty one, an earlier export: fine
    check_export_out(SHIPPED)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_export_never_replaces_the_current_folder(tmp_path, monkeypatch):
    out = tmp_path / "export"
    write_export(out, dict(OLD), {"name": "old"})
    monkeypatch.chdir(out)
    for where in (Path("."), Path(".."), out):
        with pytest.raises(EdgememError, match="is the current folder or above it"):
            check_export_out(where)


# ------------------------------------------------------------------------------ output paths checked before work

def test_export_checks_out_before_loading_the_checkpoint(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    missing = str(tmp_path / "missing.pt")  # were the checkpoint read first, the error would name it
    assert_user_error(cli("export", missing, "--out", str(afile)), "--out", "is an existing file")
    assert_user_error(cli("export", missing, "--out", str(afile / "sub")), "--out", "which is a file")
    assert afile.read_text() == "x" and listing(tmp_path) == {"afile": b"x"}


def test_plan_checks_its_outputs_before_planning(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    nowhere = str(tmp_path / "no-export")  # were the export read first, the error would name it
    assert_user_error(cli("plan", nowhere, "--patch-out", str(afile / "p.bin")), "--patch-out", "which is a file")
    assert_user_error(cli("plan", nowhere, "--plot", str(tmp_path)), "--plot", "is a folder")
    assert_user_error(cli("plan", nowhere, "--plot", str(tmp_path / "t.txt")), "--plot", ".txt")


def test_quantize_checks_out_before_loading_anything(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    res = cli("quantize", str(tmp_path / "missing.pt"), "--flash", "4KiB", "--out", str(afile / "m"))
    assert_user_error(res, "--out", "which is a file")


def test_an_unwritable_output_folder_is_found_before_work(tmp_path, monkeypatch):
    from edgemem.commands import train as train_cmd
    from edgemem.quant import mixed_run
    from edgemem.training.recipe import load_recipe

    ro = tmp_path / "ro"
    ro.mkdir()
    unwritable(monkeypatch, ro)
    with pytest.raises(EdgememError, match=r"cannot be written .*Permission denied"):
        atomic.check_out_dir(ro / "new" / "deeper")  # created inside ro: ro must be writable
    with pytest.raises(EdgememError, match="cannot be written"):
        export_run.export(CHECKPOINT, ["onnx", "c"], ro / "out")

    def no_work(*_a, **_k):
        raise AssertionError("work started before the output folder was checked")

    monkeypatch.setattr(train_cmd, "load_windows", no_work)
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    with pytest.raises(EdgememError, match="cannot be written"):
        train_cmd.train_recipe(load_recipe(tmp_path / "recipe.yaml"), ro, quiet=True)
    monkeypatch.setattr(mixed_run, "load_checkpoint", no_work)
    with pytest.raises(EdgememError, match="cannot be written"):
        mixed_run.quantize_mixed(CHECKPOINT, 4096, out=ro)


def test_train_checks_its_folder_before_the_first_epoch(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    recipe = tmp_path / "r.yaml"  # its data would fail to load: the --out error must come first
    recipe.write_text("name: x\ndata: {source: npz, path: missing.npz}\n")
    started = time.monotonic()
    assert_user_error(cli("train", str(recipe), "--out", str(afile)), "output folder", "is an existing file")
    assert_user_error(cli("train", str(recipe), "--out", str(afile / "run")), "which is a file")
    assert time.monotonic() - started < 120


# ------------------------------------------------------------------------------------------ names that are paths

@pytest.mark.parametrize("name", ["../../evil", "/abs", "a/b", "x\x00y", "", "9lives", "é", "a b", "x" * 65, None, 3])
def test_model_names_are_checked(name):
    with pytest.raises(EdgememError, match="is not a valid model name"):
        check_name(name, "name")


def test_a_crafted_checkpoint_name_writes_nothing_outside(tmp_path):
    ckpt = load_checkpoint(CHECKPOINT)
    ckpt.name = "../../../escaped"
    models = tmp_path / "models" / "har"
    models.mkdir(parents=True)
    save_checkpoint(models / "model.pt", ckpt)
    res = cli("quantize", str(models / "model.pt"), "--flash", "4KiB")
    assert_user_error(res, "model name", "is not a valid model name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["har", "model.pt", "models"]
    from edgemem.training.recipe import recipe_from_dict

    with pytest.raises(EdgememError, match="recipe field 'name' must be a C identifier"):  # the recipe's own rule
        recipe_from_dict({"name": "../x"})
    meta = json.loads((SHIPPED / "meta.json").read_text())
    from edgemem.exporters.folder import load_meta

    bad = tmp_path / "export"
    bad.mkdir()
    (bad / "meta.json").write_text(json.dumps({**meta, "name": "../../models/x"}))
    with pytest.raises(EdgememError, match="field 'name' must be a model name"):
        load_meta(bad)


# ------------------------------------------------------------------------------------ train: outputs all at once

def test_train_outputs_are_committed_together_and_resume_is_coherent(tmp_path, monkeypatch):
    """Ctrl-C (or a full disk) after model.pt was written, while a plot is drawn: the old model.pt, metrics, plots
    and card all stay, the finished training stays resumable, and --resume then writes a coherent new set."""
    from test_train import RECIPE

    from edgemem.commands import train as train_cmd
    from edgemem.training import report
    from edgemem.training.loop import Interrupted
    from edgemem.training.recipe import load_recipe

    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("epochs: 2", "epochs: 1").replace("[gru, features_rf]", "[]"))
    for f in ("model.pt", "metrics.json", "README.md", "curves.png", "confusion.png"):
        (tmp_path / f).write_bytes(f"old {f}".encode())
    before = listing(tmp_path)
    recipe = load_recipe(tmp_path / "recipe.yaml")
    state = tmp_path / train_cmd.STATE_FILE

    def late(exc: BaseException):
        def plot(path, *_a, **_k):
            assert any(p.name == "model.pt" for p in path.parent.iterdir())  # model.pt was already written
            raise exc
        return plot

    for exc, resume, error in ((KeyboardInterrupt(), False, Interrupted), (full_disk(), True, EdgememError)):
        monkeypatch.setattr(report, "plot_confusion", late(exc))
        with pytest.raises(error) as e:
            train_cmd.train_recipe(recipe, tmp_path, quiet=True, resume=resume)
        if error is EdgememError:
            assert "No space left on device" in str(e.value)
        assert {k: v for k, v in listing(tmp_path).items() if k != state.name} == before
        assert state.is_file() and leftovers(tmp_path) == [state.name]
    monkeypatch.undo()
    metrics = train_cmd.train_recipe(recipe, tmp_path, quiet=True, resume=True)
    assert not state.exists() and leftovers(tmp_path) == []
    after = listing(tmp_path)
    assert json.loads(after["metrics.json"]) == json.loads(json.dumps(metrics))
    assert load_checkpoint(tmp_path / "model.pt").name == "smoke"
    assert all(after[f] != before[f] for f in ("model.pt", "README.md", "curves.png", "confusion.png"))
