"""One trial of `edgemem sweep`: a recipe's model trained on every CV fold and seed, each (fold, seed) a Ray task.

Honesty of the figures: the search must not pick on the subjects it reports. Each fold's training subjects give
up one fold's worth of subjects (the next fold's test subjects) as an inner validation set; a (fold, seed) run
trains on the rest, keeps the weights of its best validation epoch, and reports its validation accuracy after
every epoch. The trial's score, which Optuna and ASHA see, is the mean over its runs of the best validation accuracy
so far; the fold's test subjects are scored once, at the end, and never steer the search, the stopping or the
epoch choice (docs/sweep.md says what is still optimistic and the nested figure that is not).
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgemem.data.windows import Windows, cv_folds
from edgemem.errors import EdgememError
from edgemem.training.recipe import Recipe


@dataclass(frozen=True)
class Fold:
    index: int
    train: list[int]
    val: list[int]
    test: list[int]


def inner_folds(recipe: Recipe) -> list[Fold]:
    """The recipe's leave-subjects-out folds, each with the next fold's test subjects as inner validation."""
    folds = cv_folds(recipe.cv.subjects, recipe.cv.folds)
    if len(folds) < 3:
        raise EdgememError(f"edgemem sweep needs cv.folds >= 3 (got {len(folds)}): each fold gives one fold's subjects "
                           "to inner validation and still needs subjects to train on")
    out = []
    for k, (train, test) in enumerate(folds):
        val = folds[(k + 1) % len(folds)][1]
        out.append(Fold(k, [s for s in train if s not in val], list(val), list(test)))
    return out


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' where torch sees a GPU, else 'cpu'; 'cuda' without one is a one-line error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise EdgememError(f"--device must be auto, cpu or cuda, got {device!r}")
    has_gpu = torch.cuda.is_available()
    if device == "cuda" and not has_gpu:
        raise EdgememError("--device cuda: torch sees no CUDA GPU here (torch " + torch.__version__ + ")")
    return "cuda" if device == "auto" and has_gpu else ("cpu" if device == "auto" else device)


class EpochBoard:
    """Where runs post each epoch's validation accuracy and their trials collect it: one Ray actor per sweep.

    A run posts without waiting (`board.put.remote`): a task blocked in ray.get would hand its CPU to another task
    and the CPUs would be oversubscribed. Calls from one run arrive in order."""

    def __init__(self) -> None:
        self.posts: dict[str, list[tuple[int, int, float]]] = {}

    def put(self, key: str, run: int, epoch: int, accuracy: float) -> None:
        self.posts.setdefault(key, []).append((run, epoch, accuracy))

    def take(self, key: str) -> list[tuple[int, int, float]]:
        return self.posts.pop(key, [])


def run_fold_seed(recipe: Recipe, windows: Windows, class_names: list[str], fold: Fold, seed: int, run: int,
                  device: str, board: Any, key: str) -> dict[str, Any]:
    """Train the recipe's model on one fold with one seed; every epoch's validation accuracy is posted to `board`
    (an EpochBoard actor) under `key` as (run, epoch, accuracy); returns the run's figures."""
    import torch

    from edgemem.training.loop import accuracy, fit, seed_everything
    from edgemem.training.pipeline import build_main, prepare

    train = dataclasses.replace(recipe.train, threads=1, seed=seed)  # one CPU per Ray task
    prep = prepare(windows, class_names, fold.train, fold.val, fold.test)
    s = prep.split
    seed_everything(seed)
    model, logits_fn = build_main(recipe, prep.n_in, len(class_names))

    def report(epoch: int, hist: Any) -> None:
        board.put.remote(key, run, epoch, hist.val_acc[-1])

    started = time.perf_counter()
    hist = fit(model, logits_fn, (s.train.x, s.train.y), (s.val.x, s.val.y), train, quiet=True, on_epoch=report,
               device=torch.device(device), channel_stats=prep.normalizer.stats)
    return {"fold": fold.index, "seed": seed, "train_subjects": fold.train, "val_subjects": fold.val,
            "test_subjects": fold.test, "best_epoch": hist.best_epoch + 1,
            "val_accuracy": accuracy(model, logits_fn, s.val.x, s.val.y),
            "test_accuracy": accuracy(model, logits_fn, s.test.x, s.test.y),
            "val_curve": hist.val_acc, "seconds": round(time.perf_counter() - started, 2)}


def score_after(curves: list[list[float]], epochs: int) -> float:
    """Mean over runs of the best validation accuracy within the first `epochs` epochs: the validation accuracy of
    the weights each run would keep if it stopped there."""
    return float(np.mean([max(c[:epochs]) for c in curves]))


def new_board() -> Any:
    """The sweep's EpochBoard actor (it holds no CPU; "DEFAULT": outside any trial's placement group)."""
    import ray

    return ray.remote(EpochBoard).options(num_cpus=0, scheduling_strategy="DEFAULT").remote()


def run_trial(recipe: Recipe, windows_ref: Any, class_names: list[str], device: str, gpus_per_run: float,
              board: Any, report: Any) -> None:
    """Every (fold, seed) run of `recipe` as Ray tasks, in parallel; `report(metrics)` (ray.tune.report) once per
    epoch with the score after that epoch, the last report with the runs' final figures."""
    import ray

    folds = inner_folds(recipe)
    jobs = [(f, seed) for f in folds for seed in recipe.cv.seeds]
    key = uuid.uuid4().hex  # this attempt of the trial (a resumed trial starts again under a new key)
    # "DEFAULT": the runs take the cluster's CPUs, not the trial's own placement group, which Tune would make
    # them share (a trial holds no CPU: see commands/sweep.py)
    task = ray.remote(run_fold_seed).options(num_cpus=1, num_gpus=gpus_per_run if device == "cuda" else 0,
                                             max_retries=0, scheduling_strategy="DEFAULT")
    refs = [task.remote(recipe, windows_ref, class_names, f, seed, i, device, board, key)
            for i, (f, seed) in enumerate(jobs)]
    epochs = recipe.train.epochs
    curves: list[list[float]] = [[] for _ in jobs]
    reported = 0
    finished = False
    try:
        while reported < epochs - 1:
            posts = ray.get(board.take.remote(key))
            for run, _, acc in posts:
                curves[run].append(float(acc))
            if not posts:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5)
                for r in ready:
                    ray.get(r)  # a failed run raises here, failing the trial with its error
                if len(ready) == len(refs):  # every run has finished: its own curve is complete
                    curves = [[float(a) for a in r["val_curve"]] for r in ray.get(refs)]
            while reported < epochs - 1 and all(len(c) > reported for c in curves):
                reported += 1
                report({"score": score_after(curves, reported), "epochs": reported})
        runs = ray.get(refs)
        finished = True
    finally:
        if not finished:  # stopped by ASHA (Tune exits the trial inside report) or a run failed: end the others
            _, running = ray.wait(refs, num_returns=len(refs), timeout=0)
            for r in running:
                ray.cancel(r)
        ray.get(board.take.remote(key))  # drop what the runs posted after the trial stopped reading
    vals = np.array([r["val_accuracy"] for r in runs])
    tests = np.array([r["test_accuracy"] for r in runs])
    report({"score": float(vals.mean()), "epochs": epochs, "final": True,
            "cv_val_mean": float(vals.mean()), "cv_test_mean": float(tests.mean()),
            "cv_test_sd": float(tests.std(ddof=1)) if len(tests) > 1 else 0.0, "runs": runs})
