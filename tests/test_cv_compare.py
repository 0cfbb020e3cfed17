"""`edgemem compare`: two cv.json results paired fold by fold (edgemem/training/cv_compare.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from edgemem.errors import EdgememError
from edgemem.training.cv_compare import compare

ROOT = Path(__file__).resolve().parents[1]
FOLDS = [[1, 2], [3, 4], [5, 6]]


def _write(path: Path, models: dict[str, dict[tuple[int, int], float]]) -> Path:
    """models: name -> {(fold index, seed): accuracy} -> a cv.json as `edgemem train --cv` writes it."""
    body = {"folds": FOLDS, "models": {
        name: {"hash": "x", "runs": [{"test_subjects": FOLDS[f], "seed": s, "accuracy": a} for (f, s), a in runs.items()],
               "mean": float(np.mean(list(runs.values()))), "sd": 0.0}
        for name, runs in models.items()}}
    path.mkdir(parents=True, exist_ok=True)
    (path / "cv.json").write_text(json.dumps(body))
    return path


def test_the_difference_is_b_minus_a_per_fold_with_the_t_interval(tmp_path):
    a = _write(tmp_path / "a", {"l2mu": {(0, 0): 0.80, (0, 1): 0.82, (1, 0): 0.90, (1, 1): 0.88, (2, 0): 0.70,
                                         (2, 1): 0.74}, "gru": {(f, s): 0.9 for f in range(3) for s in (0, 1)}})
    b = _write(tmp_path / "b", {"l2mu": {(0, 0): 0.83, (0, 1): 0.85, (1, 0): 0.90, (1, 1): 0.90, (2, 0): 0.75,
                                         (2, 1): 0.75}})
    r = compare(str(a), str(b))  # default model: the first in each file
    assert r["a"].endswith("cv.json:l2mu") and r["seeds"] == [0, 1] and r["runs"] == 6
    diffs = [0.03, 0.01, 0.03]
    assert r["per_fold_diff"] == pytest.approx(diffs)
    half = stats.t.ppf(0.975, 2) * np.std(diffs, ddof=1) / np.sqrt(3)
    assert r["mean_diff"] == pytest.approx(np.mean(diffs)) and r["ci95"] == pytest.approx(
        [np.mean(diffs) - half, np.mean(diffs) + half])
    assert r["a_mean"] == pytest.approx(4.84 / 6) and r["b_mean"] == pytest.approx(4.98 / 6)
    gru = compare(f"{a}:gru", str(b / "cv.json"))  # a named model; a cv.json path
    assert gru["mean_diff"] == pytest.approx(0.83 - 0.9)


def test_only_the_seeds_both_ran_are_paired(tmp_path):
    a = _write(tmp_path / "a", {"m": {(f, s): 0.8 + 0.01 * s for f in range(3) for s in (0, 1, 2)}})
    b = _write(tmp_path / "b", {"m": {(f, 1): 0.85 for f in range(3)}})
    r = compare(str(a), str(b))
    assert r["seeds"] == [1] and r["runs"] == 3 and r["mean_diff"] == pytest.approx(0.04)


@pytest.mark.parametrize(("b_runs", "message"), [
    ({(0, 0): 0.8, (1, 0): 0.8}, "tested different folds"),
    ({(0, 0): 0.8, (1, 0): 0.8, (2, 5): 0.8}, "share no seed on some fold"),
])
def test_unpaired_results_are_refused(tmp_path, b_runs, message):
    a = _write(tmp_path / "a", {"m": {(f, 0): 0.8 for f in range(3)}})
    b = _write(tmp_path / "b", {"m": b_runs})
    with pytest.raises(EdgememError, match=message):
        compare(str(a), str(b))


def test_the_command_prints_the_comparison_and_refuses_bad_sides_in_one_line(tmp_path):
    a = _write(tmp_path / "a", {"m": {(f, 0): 0.8 for f in range(3)}})
    b = _write(tmp_path / "b", {"m": {(0, 0): 0.82, (1, 0): 0.81, (2, 0): 0.83}})
    cli = lambda *args: subprocess.run([sys.executable, "-m", "edgemem.cli", "compare", *args],  # noqa: E731
                                       capture_output=True, text=True, cwd=ROOT)
    ok = cli(str(a), str(b), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["mean_diff"] == pytest.approx(0.02)
    assert "B - A: +2.0 points" in cli(str(a), str(b)).stdout
    (tmp_path / "bad.json").write_text("{")
    for side, message in ((str(tmp_path / "none"), "no cross-validation result at"),
                          (f"{a}:gru", "has no model 'gru' (it has m)"),
                          (str(tmp_path / "bad.json"), "is not a cv.json")):
        res = cli(side, str(b))
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and message in lines[0], res.stderr
