"""`edgemem train RECIPE`: train the recipe's model and its baselines, quantize, write model.pt, metrics, plots, card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgemem.checkpoint import Checkpoint, save_checkpoint
from edgemem.errors import EdgememError
from edgemem.graph.intops import quantize
from edgemem.graph.ref import run_graph
from edgemem.models.readout import predictions
from edgemem.quant.lower import lower
from edgemem.quant.widths import check_widths
from edgemem.train import report
from edgemem.train.cv import cross_validate, current_entries
from edgemem.train.pipeline import Trained, build_main, load_windows, prepare, train_model
from edgemem.train.recipe import Recipe, replace
from edgemem.train.sets import calibration_windows


def _metrics(t: Trained, zoo: bool) -> dict[str, Any]:
    m = {
        "test_accuracy": t.test_accuracy, "val_accuracy": t.val_accuracy, "cv_accuracy_mean": None,
        "cv_accuracy_sd": None, "params": t.params, "macs_per_step": t.macs_per_step,
        "spikes_per_step": t.spikes_per_step,
    }
    if zoo:  # the zoo's extra figures (har_l2mu's metrics.json keeps its keys and stays byte-reproducible)
        m["flops_per_inference"] = t.flops_per_inference
        m["energy_uj_per_inference"] = t.energy_uj_per_inference
        m["train_seconds"] = t.train_seconds
        m["train_threads"] = torch.get_num_threads()
    return m


def int_accuracy(recipe: Recipe, model: Any, calib: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the post-training-quantized integer model (the integer reference C reproduces) on x, at the
    recipe's weight and activation widths (what `edgemem export` will deploy)."""
    q = recipe.quant
    low = lower(model, calib, q.margin, q.weight_bits or None, q.act_bits or None)
    logits = run_graph(low.graph, quantize(x, low.input_scale))
    return float((predictions(logits, recipe.readout) == y).mean())


STATE_FILE = ".train_state.pt"  # per-epoch L2MU training state; removed once training finished


def train_recipe(recipe: Recipe, out: Path | None = None, cv: bool = False, jobs: int = 2,
                 quiet: bool = False, resume: bool = False) -> dict[str, Any]:
    """Ctrl-C during the L2MU's training raises loop.Interrupted; model.pt is only ever replaced whole, and
    `resume=True` continues from the last finished epoch."""
    out = out or recipe.folder
    state_path = out / STATE_FILE
    if resume and not state_path.is_file():
        raise EdgememError(f"nothing to resume: {state_path} does not exist")
    d = recipe.data
    windows, class_names = load_windows(recipe)
    prep = prepare(windows, class_names, d.train_subjects, d.val_subjects, d.test_subjects)
    q = recipe.quant
    if q.weight_bits or q.act_bits:  # names and widths against this model, before a training that export would undo
        untrained, _ = build_main(recipe, prep.n_in, len(class_names))
        check_widths(untrained, calibration_windows(prep.split.train.x, 8), q.weight_bits, q.act_bits)
    main = recipe.model.kind
    trained = train_model(main, recipe, prep, recipe.train.seed, quiet=quiet, state_path=state_path, resume=resume)
    assert trained.model is not None and trained.history is not None
    # the checkpoint's recipe resolves a relative data.path against the checkpoint's folder (train.sets.recipe_of)
    stored = recipe.moved_to(out).to_dict()
    ckpt = Checkpoint(trained.model, prep.normalizer, class_names, d.window, stored, recipe.name)
    save_checkpoint(out / "model.pt", ckpt)
    state_path.unlink(missing_ok=True)

    zoo = main != "l2mu"
    metrics = _metrics(trained, zoo)
    # the windows export calibrates on, normalized with the checkpoint's statistics (edgemem.train.sets)
    calib = calibration_windows(prep.split.train.x, recipe.quant.calib_windows)
    metrics["int8"] = {"test_accuracy": int_accuracy(recipe, trained.model, calib, prep.split.test.x, prep.split.test.y)}
    metrics["baselines"] = {}
    for name in recipe.baselines:
        metrics["baselines"][name] = _metrics(train_model(name, recipe, prep, recipe.train.seed, quiet=quiet), zoo)

    cv_path = out / "cv.json"
    previous = json.loads(cv_path.read_text()) if cv_path.is_file() else None
    if cv:
        previous = cross_validate(recipe, windows, class_names, [main, *recipe.baselines], jobs, previous)
        report.write_json(cv_path, previous)
    for name, r in current_entries(recipe, previous).items():  # stale entries are never reported
        target = metrics if name == main else metrics["baselines"].get(name)
        if target is not None:
            target["cv_accuracy_mean"], target["cv_accuracy_sd"] = r["mean"], r["sd"]
    report.write_json(out / "metrics.json", metrics)
    report.plot_curves(out / "curves.png", trained.history, f"{recipe.name} ({main})" if main != "l2mu"
                       else f"{recipe.name} (L2MU)")
    report.plot_confusion(out / "confusion.png", prep.split.test.y, trained.test_pred, class_names,
                          f"{recipe.name}: test subjects {d.test_subjects}")
    return metrics


def peers(folder: Path, recipe: Recipe) -> dict[str, dict[str, Any]]:
    """metrics.json of the sibling model folders whose recipe trains on exactly this data and split."""
    from edgemem.train.recipe import load_recipe

    out = {}
    for other in sorted(folder.resolve().parent.iterdir()):
        if other == folder.resolve() or not (other / "metrics.json").is_file() or not (other / "recipe.yaml").is_file():
            continue
        try:
            theirs = load_recipe(other / "recipe.yaml").to_dict()["data"]
        except EdgememError:  # a sibling's broken recipe is its problem, not this card's
            continue
        if theirs == recipe.to_dict()["data"]:
            out[other.name] = json.loads((other / "metrics.json").read_text())
    return out


def write_card(folder: Path, recipe: Recipe, deployment: dict[str, Any] | None = None) -> None:
    if (folder / "quantize.json").is_file():  # written by `edgemem quantize`, not trained
        from edgemem.train.zoo_card import mixed_card

        report.write_text_atomic(folder / "README.md", mixed_card(folder, deployment))
        return
    metrics = json.loads((folder / "metrics.json").read_text())
    if deployment:
        metrics["deployment"] = deployment
    if recipe.model.kind == "l2mu":
        text = report.model_card(metrics, recipe.to_dict(), recipe.name)
    else:
        from edgemem.train.zoo_card import zoo_card

        text = zoo_card(metrics, recipe.to_dict(), recipe.name, peers(folder, recipe))
    report.write_text_atomic(folder / "README.md", text)
    if (folder.parent / "har_l2mu").is_dir():  # the repository's models/ folder: keep its index in step
        from edgemem.train.zoo_card import zoo_index

        report.write_text_atomic(folder.parent / "README.md", zoo_index(folder.parent))


def with_overrides(recipe: Recipe, epochs: int | None) -> Recipe:
    """The recipe with `--epochs` in place of train.epochs (validated like the recipe's own value)."""
    if epochs is None:
        return recipe
    if epochs < 1:
        raise EdgememError(f"--epochs must be >= 1, got {epochs}")
    return replace(recipe, train=replace(recipe.train, epochs=epochs))
