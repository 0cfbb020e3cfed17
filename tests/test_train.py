"""Training end to end on tiny real data (aeon BasicMotions), and checkpoints that load back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from edgemem.checkpoint import load_checkpoint
from edgemem.commands.train import train_recipe
from edgemem.training.recipe import load_recipe

RECIPE = """name: smoke
data: {source: basic_motions, window: 50, hop: 25, train_subjects: [1], val_subjects: [], test_subjects: [2]}
model: {n_u: 2, order: 4, theta: 50.0, n_h: 8, neurons: [lif, cuba, lif], surrogate: fast_sigmoid, surrogate_slope: 10.0}
train: {epochs: 2, batch_size: 32, lr: 0.01}
baselines: [gru, features_rf]
quant: {calib_windows: 32}
"""

KEYS = {"test_accuracy", "val_accuracy", "cv_accuracy_mean", "cv_accuracy_sd", "params", "macs_per_step",
        "spikes_per_step", "baselines"}


def test_train_writes_checkpoint_metrics_and_plots(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "train", str(tmp_path / "recipe.yaml")],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert KEYS <= set(metrics) and set(metrics["baselines"]) == {"gru", "features_rf"}
    assert metrics["baselines"]["features_rf"]["params"] is None
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["spikes_per_step"] > 0
    for f in ("model.pt", "curves.png", "confusion.png", "README.md"):
        assert (tmp_path / f).stat().st_size > 0, f
    ckpt = load_checkpoint(tmp_path / "model.pt")
    assert len(ckpt.class_names) == 4
    assert ckpt.window == 50 and ckpt.model.cfg.neurons == ("lif", "cuba", "lif")


def test_same_recipe_and_seed_give_byte_identical_checkpoints_and_exports(tmp_path):
    from edgemem.exporters.run import export

    (tmp_path / "recipe.yaml").write_text(RECIPE.replace("epochs: 2", "epochs: 1"))
    recipe = load_recipe(tmp_path / "recipe.yaml")
    for k in range(2):
        train_recipe(recipe, tmp_path / f"run{k}", quiet=True)
        export(tmp_path / f"run{k}" / "model.pt", ["onnx", "c"], tmp_path / f"export{k}", name="smoke")
    assert (tmp_path / "run0" / "model.pt").read_bytes() == (tmp_path / "run1" / "model.pt").read_bytes()
    assert (tmp_path / "run0" / "metrics.json").read_text() == (tmp_path / "run1" / "metrics.json").read_text()
    for f in ("model.onnx", "model.bin", "model.c", "model.h"):
        assert (tmp_path / "export0" / f).read_bytes() == (tmp_path / "export1" / f).read_bytes(), f


def test_cross_validation_fills_the_cv_keys(tmp_path, monkeypatch, capsys):
    from edgemem.cli import entry

    recipe_text = RECIPE.replace("epochs: 2", "epochs: 1").replace("baselines: [gru, features_rf]",
                                                                   "baselines: [features_rf]")
    (tmp_path / "recipe.yaml").write_text(recipe_text + "cv: {folds: 2, seeds: [0, 1, 2], subjects: [1, 2]}\n")
    monkeypatch.setattr(sys, "argv", ["edgemem", "train", str(tmp_path / "recipe.yaml"), "--cv", "--jobs", "2"])
    with pytest.raises(SystemExit) as e:
        entry()
    printed = capsys.readouterr().out
    assert e.value.code == 0, printed
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert [len(cv["models"][m]["runs"]) for m in ("l2mu", "features_rf")] == [6, 6]
    assert {tuple(r["test_subjects"]) for r in cv["models"]["l2mu"]["runs"]} == {(1,), (2,)}
    for m in (metrics, metrics["baselines"]["features_rf"]):
        assert 0 <= m["cv_accuracy_mean"] <= 1 and m["cv_accuracy_sd"] >= 0
    # the paired comparison: every model on the same folds and seeds, recomputed here from cv.json's runs
    assert metrics["cv_seeds"] == [0, 1, 2]
    p = metrics["cv_paired_vs_best_baseline"]
    acc = {m: {(r["test_subjects"][0], r["seed"]): r["accuracy"] for r in cv["models"][m]["runs"]}
           for m in ("l2mu", "features_rf")}
    assert set(acc["l2mu"]) == set(acc["features_rf"]) == {(f, s) for f in (1, 2) for s in (0, 1, 2)}
    fold_diff = [sum(acc["l2mu"][(f, s)] - acc["features_rf"][(f, s)] for s in (0, 1, 2)) / 3 for f in (1, 2)]
    assert p["baseline"] == "features_rf" and p["per_fold_diff"] == pytest.approx(fold_diff)
    assert p["mean_diff"] == pytest.approx(sum(fold_diff) / 2)
    # two folds: t(0.975, 1 df) = 12.706 times the standard error |d1 - d2| / 2
    half = 12.706 * abs(fold_diff[0] - fold_diff[1]) / 2
    assert p["ci95"] == pytest.approx([p["mean_diff"] - half, p["mean_diff"] + half], abs=1e-4)
    keys = list(json.loads((tmp_path / "metrics.json").read_text()))
    assert keys[keys.index("cv_accuracy_sd") + 1 : keys.index("cv_accuracy_sd") + 3] == ["cv_seeds",
                                                                                           "cv_paired_vs_best_baseline"]
    assert "Paired with the features_rf on the same 2 folds and seeds [0, 1, 2]" in (tmp_path / "README.md").read_text()
    low, high = (100 * v for v in p["ci95"])
    assert (f"paired with features_rf (same folds, seeds [0, 1, 2]): {100 * p['mean_diff']:+.1f} points, 95 % CI "
            f"{low:+.1f} to {high:+.1f}") in printed


def _weights(path):
    return load_checkpoint(path).model.state_dict()


def test_ctrl_c_keeps_the_last_checkpoint_and_resume_finishes_identically(tmp_path):
    """A real SIGINT mid-training: exit 130, model.pt untouched, --resume gives the uninterrupted weights."""
    import signal
    import time

    recipe = RECIPE.replace("epochs: 2", "epochs: 8").replace("baselines: [gru, features_rf]", "baselines: []")
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    for d in (ref_dir, run_dir):
        d.mkdir()
        (d / "recipe.yaml").write_text(recipe)
    train_recipe(load_recipe(ref_dir / "recipe.yaml"), ref_dir, quiet=True)
    previous = b"an older, good checkpoint"
    (run_dir / "model.pt").write_bytes(previous)
    cmd = [sys.executable, "-m", "edgemem.cli", "train", str(run_dir / "recipe.yaml")]
    # a child of a background job inherits SIGINT ignored (and Python keeps it so): give it the default back
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = run_dir / ".train_state.pt"
    deadline = time.time() + 300
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    assert "--resume" in stderr and "Traceback" not in stderr
    assert (run_dir / "model.pt").read_bytes() == previous and state.is_file()
    res = subprocess.run([*cmd, "--resume"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert not state.exists()
    ref, got = _weights(ref_dir / "model.pt"), _weights(run_dir / "model.pt")
    for name, value in ref.items():
        assert torch.equal(value, got[name]), name


def test_resume_without_state_is_a_clear_error(tmp_path):
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "train", str(tmp_path / "recipe.yaml"), "--resume"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "nothing to resume" in res.stderr and len(res.stderr.strip().splitlines()) == 1
