"""The paired cross-validation comparison (edgemem.training.cv_stats) on synthetic accuracies, checked by hand."""

from __future__ import annotations

import math

import pytest

from edgemem.errors import EdgememError
from edgemem.training.cv import summary_fields
from edgemem.training.cv_stats import paired_vs_best_baseline, per_fold_differences, t_interval
from edgemem.training.recipe import Recipe, validate
from edgemem.training.report import paired_lines

FOLDS = [[1, 2], [3, 4], [5, 6]]
SEEDS = [0, 1, 2]


def _runs(acc: dict[tuple[int, int], float]) -> list[dict]:
    """cv.json-style runs; acc[(fold index, seed)]."""
    return [{"test_subjects": FOLDS[f], "seed": s, "accuracy": a} for (f, s), a in acc.items()]


def _entry(acc: dict[tuple[int, int], float]) -> dict:
    return {"runs": _runs(acc), "mean": sum(acc.values()) / len(acc)}


# model - baseline per (fold, seed); each fold's mean: fold 0 +0.02, fold 1 +0.04, fold 2 0.00
DIFF = {(0, 0): 0.01, (0, 1): 0.03, (0, 2): 0.02, (1, 0): 0.06, (1, 1): 0.04, (1, 2): 0.02,
        (2, 0): -0.03, (2, 1): 0.01, (2, 2): 0.02}
BASE = {(f, s): 0.80 + 0.01 * f - 0.005 * s for f in range(3) for s in SEEDS}
MODEL = {k: BASE[k] + DIFF[k] for k in BASE}


def test_the_interval_is_students_t_over_the_folds_as_computed_by_hand():
    diffs = per_fold_differences(_runs(MODEL), _runs(BASE))
    assert diffs == pytest.approx([0.02, 0.04, 0.00], abs=1e-12)
    mean, low, high = t_interval(diffs)
    # by hand: mean 0.02; sd (n-1) = sqrt((0 + 0.0004 + 0.0004) / 2) = 0.02; se = 0.02 / sqrt(3) = 0.0115470;
    # t(0.975, 2 df) = 4.3027 (the printed t table); half width = 4.3027 * 0.0115470 = 0.049683
    assert mean == pytest.approx(0.02, abs=1e-12)
    assert (high - low) / 2 == pytest.approx(4.3027 * 0.02 / math.sqrt(3), rel=1e-4)
    assert low == pytest.approx(0.02 - 0.049683, abs=1e-5) and high == pytest.approx(0.02 + 0.049683, abs=1e-5)


def test_runs_pair_by_fold_and_seed_not_by_order():
    shuffled = list(reversed(_runs(MODEL)))
    assert per_fold_differences(shuffled, _runs(BASE)) == pytest.approx([0.02, 0.04, 0.00], abs=1e-12)
    # a fold's seeds averaged: the fold's difference is the difference of its means, whatever the seeds' order
    assert per_fold_differences(_runs(BASE), _runs(MODEL)) == pytest.approx([-0.02, -0.04, 0.00], abs=1e-12)


def test_different_folds_or_seeds_are_refused():
    fewer = {k: v for k, v in BASE.items() if k[1] != 2}
    with pytest.raises(EdgememError, match="did not run the same folds and seeds"):
        per_fold_differences(_runs(MODEL), _runs(fewer))
    with pytest.raises(EdgememError, match="at least 2 folds"):
        t_interval([0.01])
    twice = _runs(BASE) + _runs({(0, 0): 0.5})
    with pytest.raises(EdgememError, match="two runs for test subjects"):
        per_fold_differences(twice, _runs(BASE))


def test_the_best_baseline_is_the_highest_cv_mean():
    weak = {k: v - 0.05 for k, v in BASE.items()}
    entries = {"l2mu": _entry(MODEL), "gru": _entry(weak), "cnn": _entry(BASE)}
    p = paired_vs_best_baseline("l2mu", entries)
    assert p is not None and p["baseline"] == "cnn"
    assert p["mean_diff"] == pytest.approx(0.02, abs=1e-12) and p["per_fold_diff"] == pytest.approx([0.02, 0.04, 0])
    assert paired_vs_best_baseline("l2mu", {"l2mu": _entry(MODEL)}) is None
    assert paired_vs_best_baseline("l2mu", {"cnn": _entry(BASE)}) is None


def test_metrics_fields_and_the_card_sentence():
    recipe: Recipe = validate({"name": "x", "baselines": ["gru", "cnn"],
                               "cv": {"folds": 3, "seeds": SEEDS, "subjects": [1, 2, 3, 4, 5, 6]}})
    stale_only = {"gru": _entry(BASE)}
    assert summary_fields(recipe, stale_only) == {}  # no current entry of the model: nothing claimed
    # an entry of a model the recipe no longer lists as a baseline is not a candidate for "best"
    better = {k: v + 0.5 for k, v in BASE.items()}
    fields = summary_fields(recipe, {"l2mu": _entry(MODEL), "cnn": _entry(BASE), "transformer": _entry(better)})
    assert fields["cv_seeds"] == SEEDS and fields["cv_paired_vs_best_baseline"]["baseline"] == "cnn"
    lo, hi = fields["cv_paired_vs_best_baseline"]["ci95"]
    assert lo < 0 < hi
    text = "\n".join(paired_lines(fields, "the L2MU"))
    assert "the L2MU minus the cnn is **+2.0 points**, 95 % CI -3.0 to +7.0" in text
    assert "not distinguishable from it" in text and "Per fold: +2.0, +4.0, +0.0." in text
    assert paired_lines({}, "x") == []


def test_a_zoo_card_shows_the_cv_means_and_the_paired_comparison():
    from edgemem.training.zoo_card import zoo_card

    recipe = validate({"name": "z", "model": {"kind": "elm"}, "baselines": ["cnn"],
                       "cv": {"folds": 3, "seeds": SEEDS, "subjects": [1, 2, 3, 4, 5, 6]}})
    row = {"test_accuracy": 0.8, "val_accuracy": None, "params": 100, "macs_per_step": 100.0, "spikes_per_step": None}
    base = {**row, "cv_accuracy_mean": 0.81, "cv_accuracy_sd": 0.02}
    fields = summary_fields(recipe, {"elm": _entry(MODEL), "cnn": _entry(BASE)})
    metrics = {**row, "cv_accuracy_mean": 0.83, "cv_accuracy_sd": 0.03, **fields, "baselines": {"cnn": base}}
    card = zoo_card(metrics, recipe.to_dict(), "z")
    assert "Cross-validation (seeds [0, 1, 2], mean ± sd over folds × seeds): elm (this model) 83.0 ± 3.0 %; " \
           "cnn 81.0 ± 2.0 %." in card
    assert "elm minus the cnn is **+2.0 points**" in card
    plain = zoo_card({**row, "cv_accuracy_mean": None, "cv_accuracy_sd": None, "baselines": {}}, recipe.to_dict(), "z")
    assert "Cross-validation" not in plain and "Paired" not in plain
