"""A user's own .npz end to end: recordings of different lengths, a recipe whose data.path is relative to its
folder, and every later command run from other working directories (export, quantize, plan --value-driven, the
data of verify and stress); quant.weight_bits checked before training; the model card describes this data.

The commands run in process through the console-script entry (a fresh interpreter costs seconds of imports each)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgemem.errors import EdgememError

LMUFORMER = {"kind": "lmuformer", "channels": 8, "kernel": 3, "n_conv": 1, "n_u": 2, "order": 4, "theta": 16.0,
             "mixer_ratio": 1, "dropout": 0.0}
L2MU = {"n_u": 2, "order": 4, "theta": 16.0, "n_h": 8}


def _project(root: Path, model: dict, quant: dict | None = None, epochs: int = 1) -> Path:
    """root/proj/recipe.yaml over root/proj/data/rec.npz (data.path relative): 4 subjects x 12 recordings of
    24 to 40 steps, 3 channels, zero-padded to 40 with lengths; class 1 carries a sine."""
    rng = np.random.default_rng(0)
    n = 48
    lengths = rng.integers(24, 41, n)
    y = np.arange(n) % 2
    x = np.zeros((n, 40, 3), dtype=np.float32)
    t = np.arange(40)
    for i in range(n):
        x[i, : lengths[i]] = rng.normal(size=(lengths[i], 3)) * 0.3 + y[i] * np.sin(t[: lengths[i], None] / 3.0)
    (root / "proj" / "data").mkdir(parents=True)
    np.savez(root / "proj" / "data" / "rec.npz", X=x, y=y, lengths=lengths, subject=np.arange(n) // 12 + 1,
             class_names=np.array(["still", "wave"]))
    recipe = {"name": "own", "data": {"source": "npz", "path": "data/rec.npz", "window": 16, "hop": 8,
                                      "train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]},
              "model": model, "train": {"epochs": epochs, "batch_size": 16, "lr": 0.01, "threads": 1},
              "baselines": [], "quant": {"calib_windows": 16, **(quant or {})}}
    (root / "proj" / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return root / "proj" / "recipe.yaml"


def edgemem(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from edgemem.cli import entry

    monkeypatch.setattr(sys, "argv", ["edgemem", *args])
    try:
        entry()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _ok(res: tuple[int, str, str]) -> str:
    code, out, err = res
    assert code == 0, err[-3000:]
    return out


def test_relative_data_path_from_other_working_directories(tmp_path, monkeypatch, capsys):
    from edgemem.checkpoint import load_checkpoint
    from edgemem.exporters.run import lower_checkpoint
    from edgemem.graph.intops import quantize
    from edgemem.graph.ref import run_graph
    from edgemem.models.readout import predictions
    from edgemem.training.recipe import load_recipe
    from edgemem.training.sets import data_sets
    from edgemem.verification.held_out import held_out_set
    from edgemem.verification.stress import real_stream

    _project(tmp_path, LMUFORMER, {"weight_bits": {"head": 4}})
    npz = (tmp_path / "proj" / "data" / "rec.npz").resolve()
    for d in ("a", "b", "c"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    _ok(edgemem(monkeypatch, capsys, "train", "../proj/recipe.yaml", "--out", "../runs/own"))
    ckpt_path = tmp_path / "runs" / "own" / "model.pt"
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt.recipe["data"]["path"] == "../../proj/data/rec.npz"  # rewritten for the folder it was written to
    metrics = json.loads((tmp_path / "runs" / "own" / "metrics.json").read_text())

    monkeypatch.chdir(tmp_path / "b")
    sets = data_sets(ckpt, Path("../runs/own/model.pt"))
    # train's integer figure is the exported model's: quant.weight_bits applied (head at 4 bits)
    low = lower_checkpoint(ckpt, Path("../runs/own/model.pt"))
    head = next(t for t in low.graph.tensors if t.name == "head.w")
    assert head.dtype.name == "S4"
    logits = run_graph(low.graph, quantize(sets.held_out.x, low.input_scale))
    acc = float((predictions(logits, "sum") == sets.held_out.y).mean())
    assert metrics["int8"]["test_accuracy"] == acc
    _ok(edgemem(monkeypatch, capsys, "export", "../runs/own/model.pt", "--to", "onnx,c", "--out", "../exp/own"))
    plan = json.loads(_ok(edgemem(monkeypatch, capsys, "plan", "../exp/own", "--value-driven", "--json")))
    assert plan["value_driven"]["test_windows"] == len(sets.held_out)

    monkeypatch.chdir(tmp_path / "c")
    _, _, held = held_out_set(Path("../exp/own"))  # what verify scores
    np.testing.assert_array_equal(held.x, sets.held_out.x)
    assert real_stream(Path("../exp/own"), 50).shape == (50, 3)  # what stress streams
    r = json.loads(_ok(edgemem(monkeypatch, capsys, "quantize", "../runs/own/model.pt", "--flash", "64KiB", "--epochs",
                               "0", "--out", "../runs/mixed/own_mixed", "--json")))
    assert r["model"] == "own_mixed"
    mixed = load_recipe(tmp_path / "runs" / "mixed" / "own_mixed" / "recipe.yaml")
    assert mixed.data.path == "../../../proj/data/rec.npz" and mixed.data_file.resolve() == npz
    stored = load_checkpoint(tmp_path / "runs" / "mixed" / "own_mixed" / "model.pt").recipe
    assert stored["data"]["path"] == mixed.data.path

    if shutil.which("gcc") and shutil.which("make"):  # the commands themselves, C host included
        stress = json.loads(_ok(edgemem(monkeypatch, capsys, "stress", "../exp/own", "--steps", "200", "--streams", "2")))
        assert stress["steps_mismatched"] == 0
    if all(shutil.which(t) for t in ("gcc", "make", "arm-none-eabi-gcc", "qemu-system-arm")):
        report = json.loads(_ok(edgemem(monkeypatch, capsys, "verify", "../exp/own", "--json", "--m4-windows", "1")))
        assert report["bit_exact"] and report["test_windows"] == len(sets.held_out)

    card = (tmp_path / "runs" / "own" / "README.md").read_text()
    assert "seglearn" not in card and "rec.npz" in card and "9–10" not in card, card


@pytest.mark.parametrize("quant,words", [
    ({"weight_bits": {"enc_hh": 4}}, "recipe field 'quant.weight_bits' names 'enc_hh', which is no weight layer of "
                                     "this l2mu (its FC / CONV1D ops: enc_x, enc_h"),
    ({"weight_bits": {"enc_x": 4}}, "recipe field 'quant.weight_bits.enc_x': rows of 3 weights cannot be packed at 4 "
                                    "bits"),
    ({"weight_bits": {"out": 3}}, "recipe field 'quant.weight_bits.out' must be one of 8, 4, 2, got 3"),
    ({"act_bits": {"y": 16}}, "recipe field 'quant.act_bits': model kind 'l2mu' keeps its activations at 8 bits"),
])
def test_weight_bits_are_checked_before_training(tmp_path, monkeypatch, capsys, quant, words):
    """epochs 500: a check after training would time the test out."""
    recipe = _project(tmp_path, L2MU, quant, epochs=500)
    code, _, err = edgemem(monkeypatch, capsys, "train", str(recipe))
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1 and words in lines[0], err
    assert not (recipe.parent / "model.pt").exists() and not (recipe.parent / ".train_state.pt").exists()


def test_labels_from_one_without_names_exit_2(tmp_path, monkeypatch, capsys):
    recipe = _project(tmp_path, L2MU)
    npz = recipe.parent / "data" / "rec.npz"
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    del arrays["class_names"]
    np.savez(npz, **{**arrays, "y": arrays["y"] + 1})
    code, _, err = edgemem(monkeypatch, capsys, "train", str(recipe))
    assert code == 2 and "start at 1 (no recording has label 0)" in err and len(err.strip().splitlines()) == 1, err


def test_npy_instead_of_npz_exit_2(tmp_path, monkeypatch, capsys):
    recipe = _project(tmp_path, L2MU)
    np.save(recipe.parent / "data" / "rec.npy", np.zeros((4, 10, 3)))
    recipe.write_text(recipe.read_text().replace("rec.npz", "rec.npy"))
    code, _, err = edgemem(monkeypatch, capsys, "train", str(recipe))
    assert code == 2 and "is a single .npy array; edgemem reads an .npz archive" in err, err


def test_the_card_of_an_npz_l2mu_describes_its_data():
    """The L2MU card described seglearn's watch data, a "test (9–10)" column and a cross-validation that never ran."""
    from edgemem.training.recipe import Recipe, validate
    from edgemem.training.report import model_card

    recipe = validate({"name": "own", "data": {"source": "npz", "path": "data/rec.npz", "window": 16, "hop": 8,
                                               "train_subjects": [1, 2], "val_subjects": [3], "test_subjects": [4]}})
    assert isinstance(recipe, Recipe)
    m = {"test_accuracy": 0.8, "val_accuracy": 0.7, "cv_accuracy_mean": None, "cv_accuracy_sd": None, "params": 100,
         "macs_per_step": 50.0, "spikes_per_step": 3.0, "baselines": {}, "int8": {"test_accuracy": 0.75}}
    card = model_card(m, recipe.to_dict(), "own")
    for absent in ("seglearn", "smartwatch", "9–10", "Cross-validation", "CV mean", "export/har_l2mu"):
        assert absent not in card, (absent, card)
    assert "`data/rec.npz`" in card and "| model | test (4) | validation |" in card and "export/own" in card


def test_every_shipped_card_regenerates_byte_for_byte():
    """The card code describes each data source; the shipped cards (watch, keywords, psMNIST) stay as committed."""
    from conftest import ROOT
    from edgemem.commands.train import peers
    from edgemem.training import report
    from edgemem.training.recipe import load_recipe
    from edgemem.training.zoo_card import mixed_card, zoo_card

    for folder in sorted(p.parent for p in (ROOT / "models").glob("*/recipe.yaml")):
        r = load_recipe(folder / "recipe.yaml")
        if not (folder / "README.md").is_file():  # a recipe not trained yet (models/hapt_l2mu) has no card
            continue
        dep = json.loads((folder / "verify.json").read_text()) if (folder / "verify.json").is_file() else None
        if (folder / "quantize.json").is_file():
            text = mixed_card(folder, dep)
        else:
            m = json.loads((folder / "metrics.json").read_text())
            if dep:
                m["deployment"] = dep
            text = (report.model_card(m, r.to_dict(), r.name) if r.model.kind == "l2mu"
                    else zoo_card(m, r.to_dict(), r.name, peers(folder, r)))
        assert text == (folder / "README.md").read_text(), folder.name


def test_load_npz_is_what_train_reads(tmp_path):
    from edgemem.training.pipeline import load_windows
    from edgemem.training.recipe import load_recipe

    recipe = load_recipe(_project(tmp_path, L2MU))
    windows, names = load_windows(recipe)
    assert names == ["still", "wave"] and windows.x.shape[1:] == (16, 3) and np.isfinite(windows.x).all()
    with pytest.raises(EdgememError, match="no recording is at least 64 samples long"):
        load_windows(load_recipe(_write(recipe, window=64, hop=64)))


def _write(recipe, **data) -> Path:
    raw = recipe.to_dict()
    raw["data"].update(data)
    path = Path(recipe.path)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_siblings_invalid_recipe_does_not_break_this_card(tmp_path):
    from edgemem.commands.train import peers
    from edgemem.training.recipe import load_recipe

    recipe = load_recipe(_project(tmp_path, L2MU))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "recipe.yaml").write_text("name: other\ntrain: {epochs: -1}\n")
    (tmp_path / "other" / "metrics.json").write_text("{}")
    assert peers(tmp_path / "proj", recipe) == {}
