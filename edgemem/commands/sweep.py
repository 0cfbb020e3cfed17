"""`edgemem sweep RECIPE --space SPACE.yaml`: a hyperparameter search on Ray Tune, Optuna proposing, ASHA stopping.

Every trial is the recipe with the sampled values, trained on every CV fold and seed (edgemem/training/sweep_trial.py;
each (fold, seed) a Ray task, so folds, seeds and trials spread over the local CPUs or a Ray cluster). The run lives
in `--out`: `sweep.json` ties it to the recipe and space, `tune/` is Ray Tune's experiment (its Optuna searcher
included), so running the same command again continues it (finished trials are kept; a trial that was running is
started again from its first epoch). At the end: results.csv, results.json, sweep.png, best_recipe.yaml.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from edgemem.atomic import check_out_dir, write_atomic, write_text_atomic
from edgemem.errors import EdgememError
from edgemem.tool import require_extra
from edgemem.training import sweep_report
from edgemem.training.recipe import Recipe, load_recipe
from edgemem.training.sweep_space import SpaceFile, apply, load_space
from edgemem.training.sweep_trial import inner_folds, resolve_device

SCORE = "score"  # what Optuna maximizes and ASHA compares: see sweep_trial.py


@dataclasses.dataclass(frozen=True)
class SweepResult:
    folder: Path
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    nested: dict[str, Any] | None
    seconds: float
    resumed: bool
    trials: int  # asked for by the space file

    @property
    def interrupted(self) -> bool:
        """Ctrl-C ended it before every trial finished: the same command continues it."""
        return len(self.rows) < self.trials or any(r["status"].startswith("interrupted") for r in self.rows)


def _distributions(space: SpaceFile) -> dict[str, Any]:
    """SPACE.yaml -> Optuna distributions; a choice's values travel as JSON strings (Optuna's choices must be
    scalars, a recipe's may be lists)."""
    import optuna.distributions as od

    out: dict[str, Any] = {}
    for key, d in space.space.items():
        if d.int is not None:
            out[key] = od.IntDistribution(d.int[0], d.int[1], log=d.log)
        elif d.float is not None:
            out[key] = od.FloatDistribution(float(d.float[0]), float(d.float[1]), log=d.log)
        else:
            out[key] = od.CategoricalDistribution([json.dumps(v) for v in d.choice or []])
    return out


def decode(space: SpaceFile, config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config (as Optuna proposed it) -> recipe values."""
    return {k: json.loads(config[k]) if space.space[k].choice is not None else config[k] for k in space.space}


def _sweep_recipe(recipe: Recipe, space: SpaceFile) -> Recipe:
    epochs = space.search.max_epochs or recipe.train.epochs
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, epochs=epochs))


def _identity(recipe: Recipe, space: SpaceFile, device: str) -> dict[str, Any]:
    return {"recipe": recipe.to_dict(), "space_digest": space.digest(), "space": dataclasses.asdict(space),
            "device": device}


def _check_folder(out: Path, ident: dict[str, Any]) -> bool:
    """True when `out` holds this sweep already (resume); one line when it holds another."""
    check_out_dir(out, "sweep folder")
    state = out / "sweep.json"
    if not state.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise EdgememError(f"sweep folder {out} is not empty and holds no sweep.json; choose a new --out")
        return False
    try:
        old = json.loads(state.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EdgememError(f"{state} is not valid JSON ({e}); choose a new --out") from None
    for key, what in (("space_digest", "space file"), ("recipe", "recipe"), ("device", "--device")):
        if old.get(key) != ident[key]:
            raise EdgememError(f"sweep folder {out} holds a sweep with another {what}; a changed search starts in a "
                               "new --out (the finished trials were measured on the old one)")
    return True


def _init_ray(address: str | None, cpus: int | None) -> None:
    import logging

    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # results come from ResultGrid, not logfiles
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune tables, the live view is ours
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
                              "configure_logging": True}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # "local": a Ray of its own even where `ray start` left one running on this machine
            ray.init(address="local", num_cpus=cpus, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = (str(e).splitlines() or ["?"])[0][:160]
        if address:  # Ray 2.5x clusters check a token by default: the usual reason a join fails
            raise EdgememError(f"cannot join the Ray cluster at {address} ({first}); a cluster with token "
                               "authentication needs RAY_AUTH_MODE=token and its token (docs/sweep.md)") from None
        raise EdgememError(f"cannot start a local Ray ({first})") from None


def run_sweep(recipe_path: Path, space_path: Path, out: Path, *, address: str | None = None, cpus: int | None = None,
              device: str = "cpu", gpus_per_run: float = 0.25, say: Callable[[str], None] | None = None,
              live: bool = True) -> SweepResult:
    """Run (or continue) a sweep; write its results into `out`."""
    require_extra("sweep", "edgemem sweep", "ray.tune", "optuna")
    if cpus is not None and cpus < 1:
        raise EdgememError(f"--cpus must be >= 1, got {cpus}")
    if not 0 < gpus_per_run <= 1:
        raise EdgememError(f"--gpus-per-run must be in (0, 1], got {gpus_per_run}")
    base = load_recipe(recipe_path)
    space = load_space(space_path, base)
    recipe = _sweep_recipe(base, space)
    folds = inner_folds(recipe)
    dev = resolve_device(device)
    ident = _identity(recipe, space, dev)
    resumed = _check_folder(out, ident)
    say = say or (lambda m: None)

    from edgemem.training.pipeline import load_windows

    windows, class_names = load_windows(recipe)
    _init_ray(address, cpus)
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from edgemem.commands.sweep_view import ProgressView

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # Optuna's per-study INFO lines would break the view
    from edgemem.training.sweep_trial import new_board, run_trial

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "sweep.json", json.dumps(ident, indent=1) + "\n")
    windows_ref = [ray.put(windows)]  # in a list: handed to the tasks as a reference, not copied into each trial
    runs_per_trial = len(folds) * len(recipe.cv.seeds)
    board = new_board()

    def trainable(config: dict[str, Any]) -> None:
        trial_recipe = apply(recipe, decode(space, config))
        run_trial(trial_recipe, windows_ref[0], class_names, dev, gpus_per_run, board, tune.report)

    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    concurrent = space.search.concurrent or max(1, math.ceil(cluster_cpus / runs_per_trial))
    epochs = recipe.train.epochs
    # A trial only waits on its runs' tasks, which hold the CPUs (and GPUs): it asks for no CPU, and for 1 MiB of
    # memory because Ray Tune refuses a trial that asks for nothing at all.
    fn = tune.with_resources(trainable, {"cpu": 0, "memory": 2**20})
    view = ProgressView(space.search.trials, epochs, live=live, say=say)
    run_config = tune.RunConfig(name="tune", storage_path=str(out.resolve()), verbose=0, callbacks=[view])
    tune_dir = out.resolve() / "tune"
    started = time.perf_counter()
    try:
        if resumed and tune.Tuner.can_restore(str(tune_dir)):
            say(f"continuing the sweep in {out}")
            tuner = tune.Tuner.restore(str(tune_dir), fn, resume_unfinished=True, resume_errored=True)
        else:
            resumed = False
            searcher = OptunaSearch(space=_distributions(space), metric=SCORE, mode="max", seed=space.search.seed)
            scheduler = ASHAScheduler(time_attr="epochs", max_t=epochs, grace_period=min(space.search.grace_period,
                                                                                         epochs),
                                      reduction_factor=space.search.reduction_factor)
            tuner = tune.Tuner(fn, run_config=run_config, tune_config=tune.TuneConfig(
                metric=SCORE, mode="max", search_alg=searcher, scheduler=scheduler,
                num_samples=space.search.trials, max_concurrent_trials=concurrent,
                reuse_actors=True))  # a trial only waits on its runs: no state to lose, a process start saved
        say(f"{space.search.trials} trials x {len(folds)} folds x {len(recipe.cv.seeds)} seeds, up to {epochs} "
            f"epochs each, on {cluster_cpus} CPUs ({concurrent} trials at once, device {dev})")
        with view:
            grid = tuner.fit()
    finally:
        ray.shutdown()
    seconds = time.perf_counter() - started
    rows = []
    # Tune's Trial objects, in the ResultGrid's order: the only place a trial's status (finished or cut off by
    # Ctrl-C) and its number (the order Optuna proposed it in: the tag's first field) can be read
    trials = list(grid._experiment_analysis.trials)
    saved = saved_statuses(tune_dir)
    for trial, res in zip(trials, grid, strict=True):
        metrics = res.metrics or {}
        found = re.match(r"(\d+)_", str(trial.experiment_tag))
        number = int(found.group(1)) if found else len(rows) + 1
        err = (str(res.error).strip().splitlines() or ["error"])[-1][:300] if res.error else None
        params = decode(space, res.config) if res.config and all(k in res.config for k in space.space) else {}
        # Ctrl-C leaves the running trials TERMINATED in memory but RUNNING in the saved state, which is what a
        # resume goes by: they were cut, not stopped by ASHA
        cut = trial.status not in ("TERMINATED", "ERROR") or saved.get(str(trial.trial_id)) in UNFINISHED
        rows.append(sweep_report.trial_row(number, str(trial.trial_id), params, metrics, err, epochs, cut))
    rows.sort(key=lambda r: (r["number"], r["trial"]))
    best = sweep_report.best_trial(rows)
    nested = sweep_report.nested_figure(rows)
    _write(out, recipe, rows, best, nested, seconds, resumed)
    return SweepResult(out, rows, best, nested, seconds, resumed, space.search.trials)


UNFINISHED = ("RUNNING", "PENDING", "PAUSED")  # Tune trial statuses that `resume_unfinished` runs again


def saved_statuses(tune_dir: Path) -> dict[str, str]:
    """Trial id -> status in Tune's newest saved experiment state (empty where there is none)."""
    files = sorted(tune_dir.glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        return {}
    statuses = {}
    for entry in json.loads(files[-1].read_text()).get("trial_data", []):
        first = entry[0] if isinstance(entry, list) else entry
        trial = json.loads(first) if isinstance(first, str) else first
        statuses[str(trial.get("trial_id"))] = str(trial.get("status"))
    return statuses


def _write(out: Path, recipe: Recipe, rows: list[dict[str, Any]], best: dict[str, Any] | None,
           nested: dict[str, Any] | None, seconds: float, resumed: bool) -> None:
    history = out / "invocations.json"
    runs = json.loads(history.read_text()) if history.is_file() else []
    runs.append({"seconds": round(seconds, 1), "resumed": resumed})
    write_text_atomic(history, json.dumps(runs, indent=1) + "\n")
    summary = {
        "metric": "score = mean over folds x seeds of the inner-validation accuracy (validation subjects = the next "
                  "fold's test subjects); selection uses nothing else (docs/sweep.md)",
        "trials": len(rows), "completed": sum(r["status"] == "completed" for r in rows),
        "stopped_early": sum(r["status"].startswith("stopped") for r in rows),
        "interrupted": sum(r["status"].startswith("interrupted") for r in rows),
        "errors": sum(r["status"] == "error" for r in rows),
        "seconds": round(sum(r["seconds"] for r in runs), 1),
        "best": None if best is None else {
            "trial": best["trial"], "params": best["params"], "score": best["score"],
            "selected_cv_test_mean": best["cv_test_mean"], "selected_cv_test_sd": best["cv_test_sd"]},
        "nested_cv_test": nested, "rows": rows,
    }
    write_text_atomic(out / "results.json", json.dumps(summary, indent=1) + "\n")
    write_text_atomic(out / "results.csv", sweep_report.results_csv(rows))
    write_atomic(out / "sweep.png", lambda p: sweep_report.plot(rows, p))
    if best is not None:
        winner = apply(recipe, best["params"]).moved_to(out)
        text = (f"# edgemem sweep's best trial {best['trial']}: score {best['score']:.4f} (mean inner-validation "
                f"accuracy);\n# train it with `edgemem train {out / 'best_recipe.yaml'} --cv` for its own labelled "
                "CV figures\n") + yaml.safe_dump(winner.to_dict(), sort_keys=False)
        write_text_atomic(out / "best_recipe.yaml", text)
