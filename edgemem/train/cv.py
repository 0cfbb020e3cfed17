"""Leave-k-subjects-out cross-validation of the L2MU and every baseline, runs spread over processes."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import numpy as np

from edgemem.data.windows import Windows, cv_folds
from edgemem.train.recipe import Recipe


def recipe_hash(recipe: Recipe) -> str:
    """Identifies the recipe content the CV numbers belong to (stale cv.json files are not reused)."""
    return hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _one(args: tuple[str, Recipe, Windows, list[str], list[int], list[int], int]) -> float | None:
    from edgemem.train.pipeline import prepare, train_model

    name, recipe, windows, class_names, train_s, test_s, seed = args
    recipe = replace(recipe, train=replace(recipe.train, threads=1))
    prep = prepare(windows, class_names, train_s, [], test_s)
    return train_model(name, recipe, prep, seed, quiet=True).test_accuracy


def cross_validate(
    recipe: Recipe, windows: Windows, class_names: list[str], names: list[str], jobs: int = 2
) -> dict[str, object]:
    """Every model on every fold and seed; fixed epochs (no peeking at the test subjects for model selection)."""
    folds = cv_folds(recipe.cv.subjects, recipe.cv.folds)
    tasks = [
        (name, recipe, windows, class_names, train_s, test_s, seed)
        for name in names
        for train_s, test_s in folds
        for seed in recipe.cv.seeds
    ]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        accs = list(pool.map(_one, tasks))
    results: dict[str, object] = {"recipe_hash": recipe_hash(recipe), "folds": [t for _, t in folds], "models": {}}
    for name in names:
        runs = [
            {"test_subjects": t[5], "seed": t[6], "accuracy": a}
            for t, a in zip(tasks, accs)
            if t[0] == name
        ]
        values = np.array([r["accuracy"] for r in runs], dtype=np.float64)
        results["models"][name] = {  # type: ignore[index]
            "runs": runs, "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        }
    return results
