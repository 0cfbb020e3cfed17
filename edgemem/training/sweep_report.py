"""The figures of a finished `edgemem sweep`: one row per trial, the selected trial, the nested figure, the plot.

Selection is on `score` (the mean inner-validation accuracy over folds x seeds; sweep_trial.py) only. Two test
figures are reported, labelled for what they are:
- `selected_cv_test_mean`: the CV test accuracy of the trial with the best score. Its test subjects never steered
  its training, stopping or epoch choice, but every subject is another fold's validation subject, so the choice of
  configuration has seen them: optimistic by the selection.
- `nested_cv_test_mean`: for each fold, the completed trial with the best validation accuracy on that fold alone
  (its seeds' mean), scored on that fold's test subjects; the mean over folds. The per-fold choice sees only the
  fold's own training subjects. The search itself (Optuna's proposals, ASHA's stops) still pools all folds.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np


def trial_row(number: int, trial_id: str, params: dict[str, Any], last: dict[str, Any] | None, error: str | None,
              max_epochs: int, cut: bool = False) -> dict[str, Any]:
    """One trial's row of results.csv / results.json; `cut`: Ctrl-C ended it (a resume runs it again)."""
    last = last or {}
    done = bool(last.get("final"))
    if error:
        status = "error"
    elif done:
        status = "completed"
    elif cut:
        status = f"interrupted at epoch {last.get('epochs', 0)}"
    else:
        status = f"stopped at epoch {last.get('epochs', 0)}"
    return {
        "number": number, "trial": trial_id, "status": status, "epochs": int(last.get("epochs", 0)),
        "max_epochs": max_epochs,
        "score": last.get("score"), "cv_test_mean": last.get("cv_test_mean"), "cv_test_sd": last.get("cv_test_sd"),
        "params": params, "runs": last.get("runs", []), "error": error,
    }


def best_trial(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The completed trial with the highest score (the earliest on ties)."""
    done = [r for r in rows if r["status"] == "completed"]
    return max(done, key=lambda r: r["score"]) if done else None


def nested_figure(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per fold: the completed trial best on that fold's validation subjects, scored on its test subjects."""
    done = [r for r in rows if r["status"] == "completed" and r["runs"]]
    if not done:
        return None
    per_fold = []
    for fold in sorted({run["fold"] for run in done[0]["runs"]}):
        def fold_mean(r: dict[str, Any], key: str, k: int = fold) -> float:
            return float(np.mean([run[key] for run in r["runs"] if run["fold"] == k]))

        pick = max(done, key=lambda r: fold_mean(r, "val_accuracy"))
        per_fold.append({"fold": fold, "trial": pick["trial"], "val_accuracy": fold_mean(pick, "val_accuracy"),
                         "test_accuracy": fold_mean(pick, "test_accuracy")})
    tests = [f["test_accuracy"] for f in per_fold]
    return {"mean": float(np.mean(tests)), "sd": float(np.std(tests, ddof=1)) if len(tests) > 1 else 0.0,
            "folds": per_fold}


def results_csv(rows: list[dict[str, Any]]) -> str:
    keys = sorted({k for r in rows for k in r["params"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "trial", "status", "epochs", "score", "cv_test_mean", "cv_test_sd", *keys])
    for r in rows:
        w.writerow([r["number"], r["trial"], r["status"], r["epochs"], _num(r["score"]), _num(r["cv_test_mean"]),
                    _num(r["cv_test_sd"]), *[_show(r["params"].get(k)) for k in keys]])
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.6f}"


def _show(v: Any) -> str:
    return "" if v is None else (",".join(str(x) for x in v) if isinstance(v, list) else str(v))


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Score per trial (filled: completed, hollow: stopped early at its last score) and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    xs = list(range(1, len(rows) + 1))
    scores = [r["score"] if r["score"] is not None else np.nan for r in rows]
    done = [r["status"] == "completed" for r in rows]
    ax.scatter([x for x, d in zip(xs, done) if d], [s for s, d in zip(scores, done) if d], color="C0",
               label="completed")
    ax.scatter([x for x, d in zip(xs, done) if not d], [s for s, d in zip(scores, done) if not d],
               facecolors="none", edgecolors="C1", label="stopped early (last score)")
    best, line = -np.inf, []
    for s, d in zip(scores, done):
        best = max(best, s) if d and not np.isnan(s) else best
        line.append(best if np.isfinite(best) else np.nan)
    ax.step(xs, line, where="post", color="C2", label="best so far (completed)")
    ax.set_xlabel("trial (in the order proposed)")
    ax.set_ylabel("score: mean inner-validation accuracy")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")  # path may be a temp name
    plt.close(fig)
