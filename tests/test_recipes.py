"""Recipes as pydantic models: every field's type, range and choices, the same validation for a recipe stored in a
checkpoint, and the JSON Schema for editors (docs/recipe.schema.json). Every bad recipe is one line naming the field,
exit status 2, no traceback, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, random_l2mu
from edgemem.errors import EdgememError
from edgemem.training import recipe as recipe_mod
from edgemem.training.recipe import load_recipe, recipe_from_dict, recipe_schema

BAD = [
    ("train: {batch_size: 0}", "recipe field 'train.batch_size' must be >= 1, got 0"),
    ("train: {threads: 0}", "recipe field 'train.threads' must be >= 1, got 0"),
    ("train: {lr: .nan}", "recipe field 'train.lr' must be a finite number, got nan"),
    ("train: {lr: .inf}", "recipe field 'train.lr' must be a finite number, got inf"),
    ("train: {epochs: -3}", "recipe field 'train.epochs' must be >= 1, got -3"),
    ("train: {epochs: 0}", "recipe field 'train.epochs' must be >= 1, got 0"),
    ("train: {seed: -1}", "recipe field 'train.seed' must be >= 0, got -1"),
    ("train: {augment: {scale: -0.1}}", "recipe field 'train.augment.scale' must be >= 0"),
    ("model: {n_u: 0}", "recipe field 'model.n_u' must be >= 1, got 0"),
    ("model: {order: 0}", "recipe field 'model.order' must be >= 1, got 0"),
    ("model: {n_h: -8}", "recipe field 'model.n_h' must be >= 1, got -8"),
    ("model: {dropout: 1.5}", "recipe field 'model.dropout' must be < 1"),
    ("model: {surrogate: relu}", "recipe field 'model.surrogate' must be one of atan, fast_sigmoid, got 'relu'"),
    ("model: {neurons: [lif, lif]}", "recipe field 'model.neurons' must have at least 3 entries"),
    ("model: {neurons: [lif, izhikevich, lif]}", "recipe field 'model.neurons' must hold values among lif, cuba"),
    ("model: {n_u: 100, order: 8}", "memory neurons, above 1024 (graph op limit)"),
    ("model: {kind: lmu, theta: .inf}", "recipe field 'model.theta' must be a finite number"),
    ("model: {kind: elm, n_neurons: 0}", "n_neurons must be >= 1"),
    ("model: {kind: lmuformer, surrogate: relu}", "unknown surrogate 'relu'"),
    ("quant: {calib_windows: 0}", "recipe field 'quant.calib_windows' must be >= 1, got 0"),
    ("quant: {margin: 0}", "recipe field 'quant.margin' must be > 0"),
    ("quant: {weight_bits: {enc_h: 3}}", "recipe field 'quant.weight_bits.enc_h' must be one of 8, 4, 2, got 3"),
    ("quant: {act_bits: {y: 12}}", "recipe field 'quant.act_bits.y' must be one of 8, 16, got 12"),
    ("data: {window: '100'}", "recipe field 'data.window' must be int, got '100'"),
    ("data: {window: 100, downsample: 3}", "recipe field 'data.window' (100) must be a multiple of data.downsample"),
    ("data: {hop: 0}", "recipe field 'data.hop' must be >= 1, got 0"),
    ("data: {source: npz}", "recipe field 'data.path' is needed for source 'npz'"),
    ("data: {source: watch, path: w.npz}", "recipe field 'data.path' applies to source 'npz' only"),
    ("data: {source: csv}", "recipe field 'data.source' must be one of watch, basic_motions, hapt, npz"),
    ("data: {val_subjects: [9]}", "recipe field 'data.test_subjects' shares subjects [9] with data.val_subjects"),
    ("data: {train_subjects: []}", "recipe field 'data.train_subjects' must have at least 1 entries"),
    ("baselines: [lstm]", "recipe field 'baselines' must hold values among gru, cnn, features_rf, transformer"),
    ("cv: {folds: 1}", "recipe field 'cv.folds' must be >= 2, got 1"),
]


def _entry(args: list[str], monkeypatch, capsys) -> tuple[int | None, str]:
    """The console-script entry in process (a fresh interpreter per case costs seconds of imports)."""
    from edgemem.cli import entry

    monkeypatch.setattr(sys, "argv", ["edgemem", *args])
    with pytest.raises(SystemExit) as e:
        entry()
    return e.value.code, capsys.readouterr().err


def _one_line(code: int | None, stderr: str, words: str) -> None:
    assert code == 2, (code, stderr[-2000:])
    assert "Traceback" not in stderr
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], stderr


@pytest.mark.parametrize("text,words", BAD)
def test_bad_values_are_one_line_errors_before_anything_runs(tmp_path, monkeypatch, capsys, text, words):
    (tmp_path / "r.yaml").write_text(f"name: x\n{text}\n")
    code, err = _entry(["train", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "out")], monkeypatch, capsys)
    _one_line(code, err, words)
    assert not (tmp_path / "out").exists()


def test_negative_epochs_exit_2_from_the_command(tmp_path):
    """`epochs: -3` used to train nothing and exit 0."""
    (tmp_path / "r.yaml").write_text("name: x\ntrain: {epochs: -3}\n")
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "train", str(tmp_path / "r.yaml")], capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    _one_line(res.returncode, res.stderr, "recipe field 'train.epochs' must be >= 1, got -3")
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize("args,words", [
    (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    (["--epochs", "-2"], "--epochs must be >= 1, got -2"),
])
def test_epochs_override_is_checked(tmp_path, monkeypatch, capsys, args, words):
    (tmp_path / "r.yaml").write_text("name: x\n")
    code, err = _entry(["train", str(tmp_path / "r.yaml"), *args], monkeypatch, capsys)
    _one_line(code, err, words)


def test_a_recipe_that_is_not_utf8_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "r.yaml").write_bytes(b"name: x\n# caf\xe9 latin-1\n")
    code, err = _entry(["train", str(tmp_path / "r.yaml")], monkeypatch, capsys)
    _one_line(code, err, "is not UTF-8 text (byte 0xe9 at offset 13)")


def test_a_name_that_cannot_be_a_c_symbol_is_refused_at_load(tmp_path):
    (tmp_path / "r.yaml").write_text("name: my-har\n")
    with pytest.raises(EdgememError, match="recipe field 'name' must be a C identifier"):
        load_recipe(tmp_path / "r.yaml")


def test_the_shipped_recipes_and_their_checkpoints_validate():
    from edgemem.checkpoint import load_checkpoint

    for folder in sorted(p.parent for p in (ROOT / "models").glob("*/recipe.yaml")):
        recipe = load_recipe(folder / "recipe.yaml")
        if not (folder / "model.pt").is_file():  # a recipe not trained yet (models/hapt_l2mu): the file validates
            continue
        stored = load_checkpoint(folder / "model.pt").recipe
        assert recipe_from_dict(stored, folder / "recipe.yaml").to_dict() == stored == recipe.to_dict(), folder.name


def test_a_checkpoints_recipe_is_validated_like_a_file(tmp_path, monkeypatch, capsys):
    """`data.window: "100"` inside a checkpoint was a TypeError deep in windowing."""
    from edgemem.checkpoint import Checkpoint, save_checkpoint
    from edgemem.data.windows import Normalizer

    raw = recipe_mod.Recipe(name="x").to_dict()
    raw["data"]["window"] = "100"
    with pytest.raises(EdgememError, match="recipe field 'data.window' must be int, got '100'"):
        recipe_from_dict(raw, None)
    import numpy as np

    ckpt = Checkpoint(random_l2mu(0), Normalizer(np.zeros(6, np.float32), np.ones(6, np.float32)),
                      [str(i) for i in range(5)], 100, raw, "x")
    save_checkpoint(tmp_path / "model.pt", ckpt)
    code, err = _entry(["export", str(tmp_path / "model.pt"), "--to", "c", "--out", str(tmp_path / "exp")],
                       monkeypatch, capsys)
    _one_line(code, err, "is invalid: recipe field 'data.window' must be int, got '100'")
    assert not (tmp_path / "exp").exists()


def test_replace_validates_and_names_the_field():
    r = recipe_mod.Recipe(name="x")
    assert recipe_mod.replace(r.train, "train", epochs=3).epochs == 3
    with pytest.raises(EdgememError, match="recipe field 'train.epochs' must be >= 1, got 0"):
        recipe_mod.replace(r.train, "train", epochs=0)


def test_moved_to_keeps_naming_the_same_data_file(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "r.yaml").write_text("name: x\ndata: {source: npz, path: d/w.npz}\n")
    r = load_recipe(tmp_path / "a" / "r.yaml")
    assert r.moved_to(tmp_path / "a").data.path == "d/w.npz"  # same folder: unchanged
    moved = r.moved_to(tmp_path / "b" / "c")
    assert moved.data.path == "../../a/d/w.npz" and moved.data_file.resolve() == r.data_file.resolve()


def test_the_committed_json_schema_is_current():
    committed = json.loads((ROOT / "docs" / "recipe.schema.json").read_text())
    assert committed == recipe_schema(), "stale: run `edgemem schema --out docs/recipe.schema.json`"
    assert committed["properties"]["train"]["$ref"] == "#/$defs/TrainSpec"
    assert committed["$defs"]["TrainSpec"]["properties"]["epochs"]["minimum"] == 1
    assert {"$ref": "#/$defs/model_lmuformer"} in committed["properties"]["model"]["oneOf"]


def test_schema_command_prints_the_schema(monkeypatch, capsys):
    from edgemem.cli import app

    monkeypatch.setattr(sys, "argv", ["edgemem", "schema"])
    with pytest.raises(SystemExit) as e:
        app()
    assert e.value.code in (0, None)
    assert json.loads(capsys.readouterr().out) == recipe_schema()


def test_schema_lists_every_source_and_kind():
    s = recipe_schema()
    assert set(s["$defs"]["DataSpec"]["properties"]["source"]["enum"]) >= {"watch", "npz", "kws", "psmnist"}
    assert Path(ROOT / "docs" / "recipe.schema.json").read_text().endswith("\n")


@pytest.mark.parametrize("command,says", [
    ("export", ["trains and searches nothing", "post-training quantized at the widths the checkpoint's recipe gives",
                "model.bin", "meta.json", "model_qcdq.onnx", "model.nir", "model.tflite"]),
    ("quantize", ["new, mixed-precision model", "exports nothing", "quantization-aware training", "NAME_mixed",
                  "beside the checkpoint's folder", "edgemem export NAME_mixed/model.pt", "0: none"]),
])
def test_quantize_and_export_help_say_what_they_do(monkeypatch, capsys, command, says):
    """export's help said it quantizes, quantize's that export does; --out's default named models/NAME_mixed."""
    from edgemem.cli import app

    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["edgemem", command, "--help"])
    with pytest.raises(SystemExit):
        app()
    text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for words in says:
        assert words in text, (words, text)
    assert "models/NAME_mixed" not in text


def test_the_models_limits_are_the_graph_formats():
    from edgemem.graph import ir
    from edgemem.models import limits

    assert (limits.MAX_DIM, limits.MAX_LMU_CELLS, limits.MAX_KERNEL) == (ir.MAX_DIM, ir.MAX_LMU_CELLS, ir.MAX_KERNEL)


@pytest.mark.parametrize("model,words", [
    ("{kind: lmu, n_h: 2000}", "n_h = 2000 outside [1, 1024]"),
    ("{kind: lmu, n_u: 64, order: 128}", "n_u * order = 8192 > 4096"),
    ("{kind: elm, n_mlp: 5000}", "n_mlp = 5000 outside [1, 1024]"),
    ("{kind: lmuformer, beta_init: 1.5}", "beta_init must be in [0, 1]"),
    ("{kind: lmuformer, surrogate_slope: 0.0}", "surrogate_slope > 0"),
])
def test_zoo_models_are_checked_against_their_configs_at_load(tmp_path, model, words):
    (tmp_path / "r.yaml").write_text(f"name: x\nmodel: {model}\n")
    with pytest.raises(EdgememError, match="recipe field 'model' does not make a valid") as e:
        load_recipe(tmp_path / "r.yaml")
    assert words in str(e.value)
