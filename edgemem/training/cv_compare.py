"""Two cross-validation results side by side: is recipe B's model better than recipe A's, paired fold by fold?

A side is `PATH[:MODEL]`: a cv.json, or a folder holding one (what `edgemem train --cv --out DIR` writes), and one
of its models (default: the first, the recipe's own model). Both sides must have tested the same folds (the same
subject pairs); the runs compared are the (fold, seed) pairs both have, so a one-seed trial compares with a
three-seed CV on the seed they share. The interval is cv_stats' paired t-interval over the folds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.errors import EdgememError
from edgemem.training.cv_stats import per_fold_differences, runs_by_key, t_interval


def load_side(spec: str) -> tuple[str, list[dict[str, Any]]]:
    """`PATH[:MODEL]` -> (label, that model's runs in the cv.json)."""
    path, model = Path(spec), None
    if not path.exists() and ":" in spec:
        head, model = spec.rsplit(":", 1)
        path = Path(head)
    file = path / "cv.json" if path.is_dir() else path
    if not file.is_file():
        raise EdgememError(f"no cross-validation result at {file} (a cv.json, or a folder `edgemem train --cv` wrote)")
    try:
        models = json.loads(file.read_text())["models"]
        if not isinstance(models, dict) or not models:
            raise ValueError("no models")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise EdgememError(f"{file} is not a cv.json written by `edgemem train --cv` ({e})") from None
    name = model or next(iter(models))
    if name not in models:
        raise EdgememError(f"{file} has no model '{name}' (it has {', '.join(models)})")
    runs = models[name].get("runs")
    if not isinstance(runs, list) or not runs:
        raise EdgememError(f"{file}: model '{name}' has no runs")
    return f"{file}:{name}", runs


def compare(a_spec: str, b_spec: str) -> dict[str, Any]:
    """B minus A on the runs both have: means, the paired difference per fold and its 95 % t-interval (fractions of
    1), the folds (test subjects) and seeds used."""
    a_label, a_runs = load_side(a_spec)
    b_label, b_runs = load_side(b_spec)
    a, b = runs_by_key(a_runs), runs_by_key(b_runs)
    a_folds, b_folds = {k[0] for k in a}, {k[0] for k in b}
    if a_folds != b_folds:
        raise EdgememError(f"the two tested different folds ({sorted(a_folds)} against {sorted(b_folds)}): "
                           "no paired comparison")
    common = sorted(set(a) & set(b))
    folds = sorted(a_folds)
    if {k[0] for k in common} != a_folds:
        raise EdgememError(f"{a_label} and {b_label} share no seed on some fold: no paired comparison")
    keep = lambda runs: [r for r in runs if (tuple(r["test_subjects"]), int(r["seed"])) in common]  # noqa: E731
    diffs = per_fold_differences(keep(b_runs), keep(a_runs))
    mean, low, high = t_interval(diffs)
    return {
        "a": a_label, "b": b_label,
        "a_mean": float(np.mean([a[k] for k in common])), "b_mean": float(np.mean([b[k] for k in common])),
        "mean_diff": mean, "ci95": [low, high], "per_fold_diff": diffs,
        "folds": [list(f) for f in folds], "seeds": sorted({k[1] for k in common}), "runs": len(common),
    }
