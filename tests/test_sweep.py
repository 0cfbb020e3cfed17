"""`edgemem sweep`: a tiny real sweep on Ray Tune (Optuna, ASHA) over 3 folds, its outputs, its resume, bad spaces."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT
from edgemem.commands.sweep import saved_statuses
from edgemem.errors import EdgememError
from edgemem.training.recipe import load_recipe
from edgemem.training.sweep_space import apply, load_space
from edgemem.training.sweep_trial import inner_folds, score_after

RECIPE = """name: tiny
data: {source: npz, path: rec.npz, window: 20, hop: 20, train_subjects: [1], val_subjects: [2], test_subjects: [3]}
model: {n_u: 2, order: 4, theta: 20.0, n_h: 8, neurons: [lif, cuba, lif], surrogate: fast_sigmoid, surrogate_slope: 10.0}
train: {epochs: 3, batch_size: 16, lr: 0.01}
baselines: []
cv: {folds: 3, seeds: [0], subjects: [1, 2, 3]}
"""

SPACE = """space:
  model.n_h: {int: [4, 12]}
  train.lr: {float: [0.003, 0.03], log: true}
  model.neurons: {choice: [[lif, cuba, lif], [lif, lif, lif]]}
search: {trials: 3, max_epochs: 2, grace_period: 1, reduction_factor: 2, seed: 0}
"""


def _project(root: Path) -> tuple[Path, Path]:
    """3 subjects x 12 recordings of 3 channels: class k is a sine of k + 1 cycles per window, plus noise."""
    rng = np.random.default_rng(0)
    n, t = 36, 40
    y = np.arange(n) % 3
    phase = np.arange(t)[None, :, None] * 2 * np.pi / 20
    x = np.sin(phase * (y[:, None, None] + 1) + rng.uniform(0, 6, (n, 1, 3))) + 0.3 * rng.standard_normal((n, t, 3))
    np.savez(root / "rec.npz", X=x.astype(np.float32), y=y, subject=np.arange(n) // 12 + 1)
    (root / "recipe.yaml").write_text(RECIPE)
    (root / "space.yaml").write_text(SPACE)
    return root / "recipe.yaml", root / "space.yaml"


def _sweep(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgemem.cli", "sweep", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_inner_folds_validate_on_the_next_folds_subjects_never_the_test_ones(tmp_path):
    recipe_path, _ = _project(tmp_path)
    folds = inner_folds(load_recipe(recipe_path))
    assert [(f.train, f.val, f.test) for f in folds] == [([3], [2], [1]), ([1], [3], [2]), ([2], [1], [3])]
    r = load_recipe(recipe_path)
    with pytest.raises(EdgememError, match="cv.folds >= 3"):
        inner_folds(dataclasses.replace(r, cv=dataclasses.replace(r.cv, folds=2, subjects=[1, 2])))


def test_score_is_the_mean_of_each_runs_best_validation_so_far():
    curves = [[0.2, 0.5, 0.4], [0.6, 0.3, 0.7]]
    assert score_after(curves, 1) == pytest.approx(0.4)
    assert score_after(curves, 2) == pytest.approx(0.55)
    assert score_after(curves, 3) == pytest.approx(0.6)


def test_saved_statuses_read_the_newest_experiment_state(tmp_path):
    assert saved_statuses(tmp_path) == {}
    old, new = tmp_path / "experiment_state-2026-01-01_00-00-00.json", tmp_path / "experiment_state-2026-01-02.json"
    old.write_text(json.dumps({"trial_data": [[json.dumps({"trial_id": "a", "status": "TERMINATED"}), "{}"]]}))
    new.write_text(json.dumps({"trial_data": [[json.dumps({"trial_id": "a", "status": "RUNNING"}), "{}"],
                                              [json.dumps({"trial_id": "b", "status": "TERMINATED"}), "{}"]]}))
    os.utime(old, (1, 1))
    assert saved_statuses(tmp_path) == {"a": "RUNNING", "b": "TERMINATED"}


FINISHED = re.compile(r"^trial (\w+): score ", re.M)  # the view's line for a trial that finished (not on a terminal)


def test_sweep_interrupted_continues_without_redoing_finished_trials_and_writes_results(tmp_path):
    recipe_path, space_path = _project(tmp_path)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "edgemem.cli", "sweep", str(recipe_path), "--space", str(space_path), "--out",
            str(out), "--cpus", "2"]
    first = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert first.stderr is not None
    seen = ""
    for line in first.stderr:  # Ctrl-C as soon as one trial has finished
        seen += line
        if FINISHED.search(line):
            first.send_signal(signal.SIGINT)
            break
    rest_out, rest_err = first.communicate(timeout=300)
    seen += rest_err
    finished_first = set(FINISHED.findall(seen))
    assert finished_first, seen[-3000:]
    partial = json.loads((out / "results.json").read_text())
    if first.returncode == 130:  # cut off before the last trial (else it had already finished them all)
        assert "interrupted:" in seen and "continue with the same command" in seen
        assert partial["completed"] + partial["stopped_early"] < 3 or len(partial["rows"]) < 3
    else:
        assert first.returncode == 0, seen[-3000:]

    res = _sweep(recipe_path, "--space", space_path, "--out", out, "--cpus", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "continuing the sweep" in res.stderr
    finished_second = set(FINISHED.findall(res.stderr))
    assert not finished_first & finished_second, (finished_first, finished_second)  # none of them ran again
    for r in partial["rows"]:  # a trial the resume ran again was labelled as cut off, not as stopped by ASHA
        if r["trial"] in finished_second:
            assert r["status"].startswith("interrupted"), partial["rows"]
    summary = json.loads((out / "results.json").read_text())
    rows = summary["rows"]
    assert len(rows) == 3 and summary["errors"] == 0 and summary["interrupted"] == 0, rows
    assert {r["trial"] for r in rows} == finished_first | finished_second
    assert [r["number"] for r in rows] == [1, 2, 3]
    assert summary["completed"] + summary["stopped_early"] == 3
    for r in rows:
        assert 4 <= r["params"]["model.n_h"] <= 12 and 0.003 <= r["params"]["train.lr"] <= 0.03
        assert r["params"]["model.neurons"] in (["lif", "cuba", "lif"], ["lif", "lif", "lif"])
    done = [r for r in rows if r["status"] == "completed"]
    assert done, rows
    for r in done:  # every (fold, seed) ran, validated on other subjects than it was tested on
        assert sorted(run["fold"] for run in r["runs"]) == [0, 1, 2]
        for run in r["runs"]:
            assert not set(run["val_subjects"]) & set(run["test_subjects"])
            assert len(run["val_curve"]) == 2 and 0 <= run["test_accuracy"] <= 1
        assert r["score"] == pytest.approx(np.mean([run["val_accuracy"] for run in r["runs"]]))
    best = summary["best"]
    assert best["score"] == max(r["score"] for r in done)
    assert 0 <= summary["nested_cv_test"]["mean"] <= 1
    assert (out / "results.csv").read_text().count("\n") == 4
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    winner = load_recipe(out / "best_recipe.yaml")  # loadable by `edgemem train`, data.path still resolving
    assert winner.model.n_h == best["params"]["model.n_h"] and winner.train.epochs == 2
    assert winner.data_file is not None and winner.data_file.resolve() == (tmp_path / "rec.npz").resolve()
    assert "best:" in res.stdout and "nested CV test" in res.stdout
    invocations = json.loads((out / "invocations.json").read_text())
    assert [i["resumed"] for i in invocations] == [False, True]

    space_path.write_text(SPACE.replace("trials: 3", "trials: 4"))
    changed = _sweep(recipe_path, "--space", space_path, "--out", out)
    assert changed.returncode == 2 and changed.stderr.count("\n") == 1, changed.stderr
    assert "another space file" in changed.stderr


BAD = [
    ("space:\n  model.n_hh: {int: [4, 8]}\n", "key 'model.n_hh'"),
    ("space:\n  model.n_h: {int: [4, 100000]}\n", "key 'model.n_h' value 100000"),
    ("space:\n  model.n_h: {int: [8, 4]}\n", "'space.'model.n_h'' range must be [low, high]"),
    ("space:\n  train.lr: {float: [0, 0.1], log: true}\n", "log range needs low > 0"),
    ("space:\n  train.lr: {float: [0.1, 0.2], choice: [1]}\n", "exactly one of int, float, choice"),
    ("space:\n  cv.folds: {int: [3, 5]}\n", "key 'cv.folds' is fixed"),
    ("space:\n  train.epochs: {int: [3, 5]}\n", "key 'train.epochs' is fixed"),
    ("space:\n  model.n_h: {int: [4, 8]}\nsearch: {trials: 0}\n", "'search.trials'"),
    ("space:\n  model.n_h: {int: [4, 8]}\nsearch: {trails: 3}\n", "'search.trails' is not a known setting"),
    ("spaces: {}\n", "sections: space, search"),
    ("[1, 2]\n", "must be a mapping"),
    ("space: {a: [\n", "not valid YAML"),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_space_files_are_one_line_naming_the_key(tmp_path, text, expected):
    recipe_path, space_path = _project(tmp_path)
    space_path.write_text(text)
    with pytest.raises(EdgememError) as e:
        load_space(space_path, load_recipe(recipe_path))
    assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_bad_space_file_from_the_command_line_exits_2_with_one_line(tmp_path):
    recipe_path, space_path = _project(tmp_path)
    space_path.write_text(BAD[0][0])
    res = _sweep(recipe_path, "--space", space_path, "--out", tmp_path / "out")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and BAD[0][1] in res.stderr, res.stderr
    assert not (tmp_path / "out").exists()


def test_sampled_values_go_through_the_recipe_validation(tmp_path):
    recipe_path, _ = _project(tmp_path)
    r = apply(load_recipe(recipe_path), {"model.neurons": ["lif", "lif", "lif"], "train.augment.noise": 0.1})
    assert r.model.neurons == ["lif", "lif", "lif"] and r.train.augment.noise == 0.1
    with pytest.raises(EdgememError, match="model.neurons"):
        apply(r, {"model.neurons": ["lif", "gru", "lif"]})
    assert yaml.safe_load(RECIPE)["name"] == r.name


@pytest.mark.parametrize("module", ["ray.tune", "optuna"])
def test_without_the_sweep_extra_it_is_one_line_saying_what_to_install(tmp_path, monkeypatch, capsys, module):
    from edgemem.cli import entry

    recipe_path, space_path = _project(tmp_path)
    monkeypatch.setitem(sys.modules, module, None)  # import raises ModuleNotFoundError, as when not installed
    monkeypatch.setattr(sys, "argv", ["edgemem", "sweep", str(recipe_path), "--space", str(space_path), "--out",
                                      str(tmp_path / "out")])
    with pytest.raises(SystemExit) as e:
        entry()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert e.value.code == 2 and len(lines) == 1, lines
    assert "edgemem sweep needs the sweep extra: pip install 'edgemem[sweep]'" in lines[0]
    assert not (tmp_path / "out").exists()


def test_device_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    recipe_path, space_path = _project(tmp_path)
    res = _sweep(recipe_path, "--space", space_path, "--out", tmp_path / "out", "--device", "cuda")
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "--device cuda" in res.stderr, res.stderr


def test_progress_view_counts_trials_and_tracks_the_best_completed_score():
    from types import SimpleNamespace

    from rich.console import Console

    from edgemem.commands.sweep_view import ProgressView

    lines: list[str] = []
    view = ProgressView(3, 4, live=False, say=lines.append)
    a, b = SimpleNamespace(trial_id="a", config={"x": 1}), SimpleNamespace(trial_id="b", config={"x": 2})
    for t in (a, b):
        view.on_trial_start(0, [], t)
    view.on_trial_result(0, [], a, {"score": 0.5, "epochs": 1})
    view.on_trial_result(0, [], b, {"score": 0.7, "epochs": 4, "final": True, "cv_test_mean": 0.6})
    view.on_trial_complete(0, [], b)
    assert lines[-1].startswith("trial b: score 0.7000, CV test 0.600; 1 completed, 0 stopped early, 1 running")
    assert lines[-1].endswith("best 0.7000 (b)")
    view.on_trial_complete(0, [], a)  # no final report: ASHA stopped it
    assert "stopped by ASHA after 1 epochs" in lines[-1] and "1 stopped early, 0 running" in lines[-1]
    console = Console(record=True, width=120)
    view.state["c"], view.last["c"] = "running", {"score": 0.4, "epochs": 2}
    console.print(view._render())
    text = console.export_text()
    assert "1 completed, 1 stopped early, 1 running, 0 failed of 3; best 0.7000 (b)" in text
    assert "2/4" in text and "0.4000" in text


def test_fit_reports_every_epoch_and_an_explicit_cpu_device_changes_nothing(tmp_path):
    import torch

    from edgemem.training.loop import fit
    from edgemem.training.pipeline import build_main

    recipe = load_recipe(_project(tmp_path)[0])
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 20, 3)).astype(np.float32), rng.integers(0, 3, 40)
    val = (x[:10], y[:10])
    weights, seen = [], []
    for device in (None, torch.device("cpu")):
        torch.manual_seed(0)
        model, fn = build_main(recipe, 3, 3)
        hist = fit(model, fn, (x, y), val, recipe.train, quiet=True, device=device,
                   on_epoch=lambda e, h: seen.append((e, h.val_acc[-1])))
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        assert len(hist.val_acc) == recipe.train.epochs
    assert [e for e, _ in seen] == [0, 1, 2] * 2 and seen[:3] == seen[3:]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("space_path", sorted(p for p in (ROOT / "sweeps").glob("*.yaml")
                                              if not p.name.endswith("_recipe.yaml")), ids=lambda p: p.name)
def test_shipped_space_files_load_with_the_recipe_their_command_names(space_path):
    command = re.search(r"edgemem sweep (\S+) --space (\S+)", space_path.read_text())
    assert command, f"{space_path.name} documents no `edgemem sweep RECIPE --space SPACE` command"
    assert ROOT / command.group(2) == space_path
    recipe = load_recipe(ROOT / command.group(1))
    space = load_space(space_path, recipe)  # every key, at both ends of its range, is a valid recipe
    assert space.search.trials >= 1
