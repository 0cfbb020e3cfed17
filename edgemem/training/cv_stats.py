"""The paired comparison of cross-validation results: the recipe's model against its best baseline.

Every model runs on the same folds and seeds (edgemem.training.cv), so run (fold, seed) of one model pairs with run
(fold, seed) of another. The unit of the interval is the fold: the differences of the seeds of one fold are averaged
first, because those seeds test the same subjects and their differences are not independent draws; the folds test
disjoint subjects. The 95 % interval is Student's t over the per-fold differences (n = folds, n - 1 degrees of
freedom). The folds share training subjects, so even they are not fully independent (Nadeau & Bengio 2003): read the
interval as a lower bound on the uncertainty, not an exact coverage (docs/data.md "Cross-validation statistics").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from edgemem.errors import EdgememError

Key = tuple[tuple[int, ...], int]  # (test subjects of the fold, seed)


def runs_by_key(runs: list[dict[str, Any]]) -> dict[Key, float]:
    """cv.json runs -> {(fold's test subjects, seed): accuracy}."""
    out: dict[Key, float] = {}
    for r in runs:
        key = (tuple(int(s) for s in r["test_subjects"]), int(r["seed"]))
        if key in out:
            raise EdgememError(f"cross-validation has two runs for test subjects {list(key[0])} and seed {key[1]}")
        out[key] = float(r["accuracy"])
    return out


def per_fold_differences(model_runs: list[dict[str, Any]], baseline_runs: list[dict[str, Any]]) -> list[float]:
    """model - baseline accuracy per fold, each the mean over that fold's seeds of the paired (same seed)
    differences (which equals the difference of the fold's means: the seeds' pairing matters for the check that both
    ran the same runs, not for the value). Folds ordered by their test subjects. Both must have run exactly the same
    folds and seeds."""
    a, b = runs_by_key(model_runs), runs_by_key(baseline_runs)
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))[:3]
        raise EdgememError(f"the models did not run the same folds and seeds (e.g. {only}): no paired comparison")
    folds: dict[tuple[int, ...], list[float]] = {}
    for key in a:
        folds.setdefault(key[0], []).append(a[key] - b[key])
    return [float(np.mean(folds[f])) for f in sorted(folds)]


def t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of the mean of `values` (at least 2)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size < 2:
        raise EdgememError(f"a confidence interval needs at least 2 folds, got {x.size}")
    mean = float(x.mean())
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_vs_best_baseline(main: str, entries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The main model against the baseline with the highest CV mean, from current cv.json entries (name -> entry
    with "mean" and "runs"): {"baseline", "mean_diff", "ci95": [low, high], "per_fold_diff"}, as fractions of 1
    (0.01 = one point). None when the main model or every baseline lacks a CV entry."""
    if main not in entries:
        return None
    baselines = {n: e for n, e in entries.items() if n != main}
    if not baselines:
        return None
    best = max(baselines, key=lambda n: baselines[n]["mean"])
    diffs = per_fold_differences(entries[main]["runs"], baselines[best]["runs"])
    mean, low, high = t_interval(diffs)
    return {"baseline": best, "mean_diff": mean, "ci95": [low, high], "per_fold_diff": diffs}
