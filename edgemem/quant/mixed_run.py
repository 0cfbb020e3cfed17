"""`edgemem quantize CKPT --flash SIZE`: choose weight widths per layer under a weight-byte budget, fine-tune with
quantization-aware training (brevitas), and write the mixed-precision model next to the original as NAME_mixed.

What `--flash` bounds: the bytes of the weight tensors as stored (packed 4- and 2-bit rows). Biases, requantization
multipliers and the runtime's code come on top; the verify report gives the whole Cortex-M4 image.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

from edgemem.atomic import write_atomic, write_text_atomic
from edgemem.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgemem.errors import EdgememError
from edgemem.models import registry
from edgemem.quant import mixed
from edgemem.quant.graph_ref import run_graph
from edgemem.quant.intops import quantize
from edgemem.quant.lower import lower
from edgemem.quant.lowering import packable
from edgemem.train.loop import fit
from edgemem.train.pipeline import load_windows, prepare, zoo_logits
from edgemem.train.recipe import Recipe, _build


def op_name(kind: str, module: str) -> str:
    """The graph op a torch layer lowers to (the names lower_*.py give them)."""
    if kind == "lmuformer" and module.startswith("convs."):
        return f"conv{module.split('.')[1]}"
    if kind == "elm":
        _, k, layer = module.split(".")  # neurons.K.layer
        return f"{layer}{k}"
    return module


def _widths(m: nn.Module) -> tuple[int, ...]:
    """The lower widths a layer can be stored at: its rows must start on whole bytes (docs/graph.md)."""
    row = mixed.weight_count(m) // m.weight.shape[0]  # type: ignore[union-attr, index]
    return tuple(b for b in (4, 2) if packable(row, b))


def _int_accuracy(model: nn.Module, calib: np.ndarray, margin: float, bits: dict[str, int], x: np.ndarray,
                  y: np.ndarray, readout: str) -> tuple[float, int, int]:
    """(test accuracy of the integer graph, its weight bytes as stored, its arena as the exporter places it)."""
    from edgemem.schedule.arena import place_by_lifetime
    from edgemem.verify.run import predictions

    low = lower(model, calib, margin, bits)
    logits = run_graph(low.graph, quantize(x, low.input_scale))
    stored = sum(t.dtype.nbytes(t.data.size) for t in low.graph.tensors if t.name.endswith(".w"))
    place_by_lifetime(low.graph)
    return float((predictions(logits, readout) == y).mean()), int(stored), int(low.graph.arena_size)


def quantize_mixed(checkpoint: Path, flash: int, ram: int | None = None, epochs: int = 5, out: Path | None = None,
                   progress: Any = None) -> dict[str, Any]:
    def say(msg: str) -> None:
        if progress:
            progress(msg)

    ckpt = load_checkpoint(checkpoint)
    kind = registry.kind_of(ckpt.model)
    recipe: Recipe = _build(Recipe, ckpt.recipe, "")
    d = recipe.data
    windows, names = load_windows(recipe)
    prep = prepare(windows, names, d.train_subjects, d.val_subjects, d.test_subjects)
    s = prep.split
    if not len(s.val):
        raise EdgememError("mixed precision needs a validation split (the search must not look at the test split)")
    from edgemem.train.run import calibration_windows

    calib = calibration_windows(s.train.x, recipe.quant.calib_windows, 0)
    fn = zoo_logits(recipe.readout)
    layers = mixed.weight_layers(ckpt.model)
    sizes = {n: mixed.weight_count(m) for n, m in layers.items()}
    say("sensitivity per layer and width (validation split)")
    sens = {n: v for n, v in mixed.sensitivity(ckpt.model, fn, s.val.x, s.val.y).items()}
    sens = {n: {b: c for b, c in v.items() if b in _widths(layers[n])} for n, v in sens.items()}
    say("greedy search")
    search = mixed.greedy(sens, sizes, flash)
    mixed.evaluate(ckpt.model, fn, s.val.x, s.val.y, search)
    assert search.chosen is not None
    bits = search.chosen.bits
    say(f"quantization-aware fine-tuning, {epochs} epochs")
    qat = mixed.quantization_aware(ckpt.model, bits)
    spec = dataclasses.replace(recipe.train, epochs=epochs, lr=recipe.train.lr / 10)
    fit(qat, fn, (s.train.x, s.train.y), (s.val.x, s.val.y), spec, label="QAT", quiet=progress is None)
    tuned = mixed.back_to_float(ckpt.model, qat)
    op_bits = {op_name(kind, n): b for n, b in bits.items() if b != 8}
    say("integer models on the test split")
    acc8, bytes8, _ = _int_accuracy(ckpt.model, calib, recipe.quant.margin, {}, s.test.x, s.test.y, recipe.readout)
    acc_mixed, bytes_mixed, arena = _int_accuracy(tuned, calib, recipe.quant.margin, op_bits, s.test.x, s.test.y,
                                                  recipe.readout)
    name = f"{recipe.name}_mixed"
    result = {
        "model": name,
        "sensitivity": "validation cross-entropy increase with one layer at 4 or 2 bits, the others float",
        "flash_budget_bytes": flash,
        "weight_bytes": bytes_mixed,
        "weight_bytes_int8": bytes8,
        "weight_bytes_ratio": bytes8 / bytes_mixed,
        "accuracy": acc_mixed,
        "accuracy_int8": acc8,
        "bits": {op_name(kind, n): {"weight": b, "activation": 8} for n, b in bits.items()},
        "qat_epochs": epochs,
        "arena_bytes": arena,
        "ram_budget_bytes": ram,
        "fits_ram": None if ram is None else arena <= ram,
        "configurations": [{"weight_bytes": st.weight_bytes, "val_accuracy_fake_quant": st.accuracy,
                            "bits": {op_name(kind, n): b for n, b in st.bits.items()}} for st in search.steps],
    }
    if out is not None:
        _write(out, ckpt, tuned, recipe, name, op_bits, result, search)
    return result


def _write(out: Path, ckpt: Checkpoint, tuned: nn.Module, recipe: Recipe, name: str, op_bits: dict[str, int],
           result: dict[str, Any], search: mixed.Search) -> None:
    out.mkdir(parents=True, exist_ok=True)
    new_recipe = dataclasses.replace(recipe, name=name, quant=dataclasses.replace(recipe.quant, weight_bits=op_bits),
                                     path=str(out / "recipe.yaml"))
    text = yaml.safe_dump(new_recipe.to_dict(), sort_keys=False)
    write_text_atomic(out / "recipe.yaml", f"# Written by `edgemem quantize` from {recipe.name}.\n{text}")
    save_checkpoint(out / "model.pt", dataclasses.replace(ckpt, model=tuned, recipe=new_recipe.to_dict(), name=name))
    write_text_atomic(out / "quantize.json", json.dumps(result, indent=2) + "\n")
    _pareto(out / "pareto.png", search, result)


def _pareto(path: Path, search: mixed.Search, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def draw(tmp: Path) -> None:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        xs = [st.weight_bytes for st in search.steps]
        ys = [100 * (st.accuracy or 0) for st in search.steps]
        ax.plot(xs, ys, "o-", label="search path (validation, fake-quantized)")
        ax.axvline(result["flash_budget_bytes"], color="grey", ls="--", label="budget")
        ax.plot([result["weight_bytes"]], [100 * result["accuracy"]], "r*", ms=12, label="chosen after QAT (test, int)")
        ax.set_xlabel("weight bytes")
        ax.set_ylabel("accuracy (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    write_atomic(path, draw)
