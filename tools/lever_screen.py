"""Screen training levers on a recipe with the sweep's inner-validation protocol (docs/training.md).

    python tools/lever_screen.py NAME --set '{"train.mixup": 0.2}' [--recipe R] [--epochs 20] [--seeds 0]
                                 [--models l2mu] [--jobs 2] [--out bench/levers]
    python tools/lever_screen.py --table bench/levers      # the results so far as a Markdown table

Each fold k of the recipe's cross-validation trains on its training subjects minus fold k+1's test subjects for a
fixed number of epochs (the last epoch's weights, as `train --cv` keeps them), and is scored on those held-back
subjects ("val": what a lever is chosen by) and on fold k's test subjects ("test": reported, never chosen by). The
result is OUT/NAME.json: the overrides, per-run figures and their means.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgemem.atomic import write_text_atomic  # noqa: E402
from edgemem.errors import EdgememError  # noqa: E402
from edgemem.training.loop import predict  # noqa: E402
from edgemem.training.pipeline import build_main, load_windows, plain_logits, prepare, train_model  # noqa: E402
from edgemem.training.recipe import Recipe, load_recipe, replace  # noqa: E402
from edgemem.training.sweep_space import apply  # noqa: E402
from edgemem.training.sweep_trial import Fold, inner_folds  # noqa: E402


def run_one(args: tuple[str, Recipe, Any, list[str], Fold, int]) -> dict[str, Any]:
    name, recipe, windows, class_names, fold, seed = args
    recipe = replace(recipe, train=replace(recipe.train, threads=1))
    prep = prepare(windows, class_names, fold.train, [], fold.val)  # the held-back subjects are prepare's "test"
    started = time.perf_counter()
    trained = train_model(name, recipe, prep, seed, quiet=True)
    test = windows.of_subjects(sorted(fold.test))
    test_acc = None
    if trained.model is not None:
        fn = build_main(recipe, prep.n_in, len(class_names))[1] if name == recipe.model.kind else plain_logits
        test_acc = float((predict(trained.model, fn, prep.normalizer(test.x)) == test.y).mean())
    return {"fold": fold.index, "seed": seed, "val": trained.test_accuracy, "test": test_acc,
            "seconds": round(time.perf_counter() - started, 1)}


def table(folder: Path) -> str:
    """One row per (screen, model): mean val and test accuracy and the per-fold val figures."""
    rows = ["| screen | recipe | model | epochs | set | val | test | val per fold |",
            "|---|---|---|---|---|---|---|---|"]
    for path in sorted(folder.glob("*.json")):
        r = json.loads(path.read_text())
        for model, v in r["models"].items():
            test = f"{100 * v['test']:.1f} %" if v["test"] is not None else "–"
            folds = ", ".join(f"{100 * run['val']:.1f}" for run in v["runs"])
            changes = ", ".join(f"{k}={json.dumps(x)}" for k, x in r["set"].items()) or "(the recipe)"
            recipe = Path(r.get("recipe_file", "?")).stem
            rows.append(f"| {r['name']} | {recipe} | {model} | {r['epochs']} | {changes} | {100 * v['val']:.1f} % | "
                        f"{test} | {folds} |")
    return "\n".join(rows)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(table(Path(sys.argv[2])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("name")
    ap.add_argument("--set", default="{}", help="JSON object of dotted recipe keys -> values")
    ap.add_argument("--recipe", type=Path, default=ROOT / "models" / "har_l2mu" / "recipe.yaml")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0", help="comma-separated")
    ap.add_argument("--models", default="l2mu", help="comma-separated: the recipe's model kind and/or baselines")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "levers")
    a = ap.parse_args()
    try:
        overrides = json.loads(a.set)
        if not isinstance(overrides, dict):
            raise ValueError("not a JSON object")
        recipe = apply(load_recipe(a.recipe), {**overrides, "train.epochs": a.epochs})
        windows, class_names = load_windows(recipe)
    except (ValueError, EdgememError) as e:  # json.JSONDecodeError is a ValueError
        print(f"error: {e}" if isinstance(e, EdgememError) else f"error: --set is not a JSON object ({e})",
              file=sys.stderr)
        return 2
    seeds, models = [int(s) for s in a.seeds.split(",")], a.models.split(",")
    tasks = [(m, recipe, windows, class_names, f, s) for m in models for f in inner_folds(recipe) for s in seeds]
    started = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        runs = list(pool.map(run_one, tasks))
    recipe_file = a.recipe.resolve()
    shown = recipe_file.relative_to(ROOT) if recipe_file.is_relative_to(ROOT) else recipe_file
    result: dict[str, Any] = {"name": a.name, "recipe": recipe.name, "epochs": a.epochs, "seeds": seeds,
                              "set": overrides, "seconds": round(time.perf_counter() - started), "models": {},
                              "recipe_file": str(shown), "tool": f"tools/{Path(sys.argv[0]).name}"}
    for m in models:
        mine = [r for t, r in zip(tasks, runs) if t[0] == m]
        tests = [r["test"] for r in mine if r["test"] is not None]
        result["models"][m] = {"val": float(np.mean([r["val"] for r in mine])),
                               "test": float(np.mean(tests)) if tests else None, "runs": mine}
    a.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(a.out / f"{a.name}.json", json.dumps(result, indent=1) + "\n")
    print(a.name, {m: round(v["val"], 4) for m, v in result["models"].items()}, f"{result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
