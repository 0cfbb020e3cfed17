"""Leave-k-subjects-out cross-validation of the L2MU and every baseline, runs spread over processes.

Results live in cv.json, one entry per model with a hash of the recipe parts that model depends on, so a changed
L2MU config re-runs only the L2MU and a stale entry is never reported.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np

from edgemem.data.windows import Windows, cv_folds
from edgemem.training.cv_stats import paired_vs_best_baseline
from edgemem.training.recipe import Recipe


def model_hash(recipe: Recipe, name: str) -> str:
    """Hash of what model `name`'s CV numbers depend on: data, training, CV protocol, and its own config."""
    d = recipe.to_dict()
    own = d["model"] if name == d["model"]["kind"] else name
    key = {"data": d["data"], "train": d["train"], "cv": d["cv"], "model": own}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _one(args: tuple[str, Recipe, Windows, list[str], list[int], list[int], int]) -> float | None:
    from edgemem.training.pipeline import prepare, train_model

    name, recipe, windows, class_names, train_s, test_s, seed = args
    recipe = replace(recipe, train=replace(recipe.train, threads=1))
    prep = prepare(windows, class_names, train_s, [], test_s)
    return train_model(name, recipe, prep, seed, quiet=True).test_accuracy


def current_entries(recipe: Recipe, cv: dict[str, Any] | None) -> dict[str, Any]:
    """The entries of an existing cv.json that still match the recipe."""
    models = (cv or {}).get("models", {})
    return {n: e for n, e in models.items() if e.get("hash") == model_hash(recipe, n)}


def cross_validate(
    recipe: Recipe, windows: Windows, class_names: list[str], names: list[str], jobs: int = 2,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every model on every fold and seed; fixed epochs (no peeking at the test subjects for model selection).

    Models whose entry in `previous` still matches the recipe are kept, not re-run."""
    folds = cv_folds(recipe.cv.subjects, recipe.cv.folds)
    kept = current_entries(recipe, previous)
    todo = [n for n in names if n not in kept]
    tasks = [
        (name, recipe, windows, class_names, train_s, test_s, seed)
        for name in todo
        for train_s, test_s in folds
        for seed in recipe.cv.seeds
    ]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        accs = list(pool.map(_one, tasks))
    models: dict[str, Any] = {n: kept[n] for n in names if n in kept}
    for name in todo:
        runs = [{"test_subjects": t[5], "seed": t[6], "accuracy": a} for t, a in zip(tasks, accs) if t[0] == name]
        values = np.array([r["accuracy"] for r in runs], dtype=np.float64)
        models[name] = {
            "hash": model_hash(recipe, name), "runs": runs, "mean": float(values.mean()),
            "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        }
    return {"folds": [t for _, t in folds], "models": {n: models[n] for n in names}}


def summary_fields(recipe: Recipe, entries: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's top-level CV fields beside cv_accuracy_mean, from the current cv.json entries: the seeds, and
    the recipe's model paired with its best baseline by CV mean (edgemem.training.cv_stats). Empty when the model
    has no current CV entry (CV never ran, or the recipe changed since)."""
    main = recipe.model.kind
    if main not in entries:
        return {}
    fields: dict[str, Any] = {"cv_seeds": list(recipe.cv.seeds)}
    paired = paired_vs_best_baseline(main, {n: entries[n] for n in [main, *recipe.baselines] if n in entries})
    if paired is not None:
        fields["cv_paired_vs_best_baseline"] = paired
    return fields
