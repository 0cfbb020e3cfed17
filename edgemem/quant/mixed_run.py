"""`edgemem quantize CKPT --flash SIZE`: choose weight widths per layer under a flash budget, fine-tune with
quantization-aware training (brevitas), and write the mixed-precision model next to the original as NAME_mixed.

What `--flash` bounds: the estimated device image (image.py): the runtime core, the code of every kernel the graph
runs on (a layer at 4 or 2 bits brings its packed kernel) and the blob (weights packed at their widths, biases,
multipliers, tables, graph metadata), for the Cortex-M4 at -O2. The verify report measures the linked image.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

from edgemem.atomic import check_out_dir, commit_files, write_atomic
from edgemem.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from edgemem.errors import EdgememError
from edgemem.graph.intops import quantize
from edgemem.graph.ir import NONE, DType, Graph, OpType
from edgemem.graph.ref import run_graph
from edgemem.models import registry
from edgemem.quant import mixed
from edgemem.quant.image import ImageModel, image_of
from edgemem.quant.lower import Lowered, lower
from edgemem.quant.lowering import packable
from edgemem.training.loop import fit, seed_everything
from edgemem.training.pipeline import zoo_logits
from edgemem.training.recipe import Recipe, replace
from edgemem.training.sets import data_sets


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


def _arena(model: nn.Module, calib: np.ndarray, margin: float, bits: dict[str, int], act_bits: dict[str, int]
           ) -> Lowered:
    """The lowered graph, placed as the exporter places it (arena_size set)."""
    from edgemem.graph.arena import place_by_lifetime

    low = lower(model, calib, margin, bits, act_bits)
    place_by_lifetime(low.graph)
    return low


def _int_accuracy(model: nn.Module, calib: np.ndarray, margin: float, bits: dict[str, int], x: np.ndarray,
                  y: np.ndarray, readout: str, act_bits: dict[str, int] | None = None) -> tuple[float, int, Lowered]:
    """(test accuracy of the integer graph, its weight bytes as stored, the placed graph)."""
    from edgemem.models.readout import predictions

    low = _arena(model, calib, margin, bits, act_bits or {})
    logits = run_graph(low.graph, quantize(x, low.input_scale))
    stored = sum(t.dtype.nbytes(t.data.size) for t in low.graph.tensors if t.name.endswith(".w"))
    return float((predictions(logits, readout) == y).mean()), int(stored), low


def _act_readers(kind: str, model: nn.Module) -> dict[str, tuple[str, ...]]:
    """The activations this model could keep at 16 bits, with the layers reading each (none but the ANN LMUFormer;
    a GELU table writes int8, so e and z need ReLU)."""
    cfg = getattr(model, "cfg", None)
    if kind != "lmuformer" or cfg is None or cfg.spiking:
        return {}
    from edgemem.quant.lower_lmuformer import ACT16

    return {p: r for p, r in ACT16.items() if cfg.activation == "relu" or p in ("y", "o")}


def _widths_report(g: Graph, weight_ops: list[str]) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Per weight layer its weight and input-activation widths, and per stateful op its state width, as the
    integer graph stores them (spikes are int8 buffers of 0/1)."""
    bits = {}
    for op in g.ops:
        if op.type in (OpType.FC, OpType.CONV1D) and op.name in weight_ops:  # an ACT may share its layer's name
            w = g.tensors[op.t[0]].dtype
            bits[op.name] = {"weight": {DType.S4: 4, DType.S2: 2}.get(w, 8),
                             "activation": g.buffers[op.in0].dtype.bits}
    state = {op.name: g.buffers[op.state0].dtype.bits for op in g.ops
             if op.type in (OpType.LMU, OpType.LIF) and op.state0 != NONE}
    return bits, state


def quantize_mixed(checkpoint: Path, flash: int, ram: int | None = None, epochs: int = 5, out: Path | None = None,
                   progress: Any = None, distill: bool = False) -> dict[str, Any]:
    """distill: fine-tune against the float model's logits as well as the labels (knowledge distillation)."""
    def say(msg: str) -> None:
        if progress:
            progress(msg)

    if out is not None:
        check_out_dir(out, "--out")  # before the search and the fine-tuning, not after
    ckpt = load_checkpoint(checkpoint)
    kind = registry.kind_of(ckpt.model)
    sets = data_sets(ckpt, checkpoint)
    recipe, s = sets.recipe, sets.split
    if not len(s.val):
        raise EdgememError("mixed precision needs a validation split (the search must not look at the test split)")
    calib = sets.calibration
    fn = zoo_logits(recipe.readout)
    layers = mixed.weight_layers(ckpt.model)
    sizes = {n: mixed.weight_count(m) for n, m in layers.items()}
    # the image model first: a budget no configuration fits is refused before the sensitivity runs
    image = ImageModel(_arena(ckpt.model, calib, recipe.quant.margin, {}, {}).graph, lambda n: op_name(kind, n), sizes)
    smallest = image.smallest({n: min(_widths(m), default=8) for n, m in layers.items()})
    mixed.refuse_unless_fits(image, smallest, flash, "image")
    say("sensitivity per layer and width (validation split)")
    sens = {n: v for n, v in mixed.sensitivity(ckpt.model, fn, s.val.x, s.val.y).items()}
    sens = {n: {b: c for b, c in v.items() if b in _widths(layers[n])} for n, v in sens.items()}
    say("greedy search under the image budget")
    search = mixed.greedy(sens, sizes, flash, image, smallest)
    mixed.evaluate(ckpt.model, fn, s.val.x, s.val.y, search)
    assert search.chosen is not None
    say("the configurations around the search (validation split): the Pareto front")
    configs = evaluated_configurations(ckpt.model, fn, s.val.x, s.val.y, sizes, sens, search, image)
    bits = search.chosen.bits
    op_bits = {op_name(kind, n): b for n, b in bits.items() if b != 8}
    readers = _act_readers(kind, ckpt.model)
    act_bits: dict[str, int] = dict.fromkeys(readers, 8)
    act_sens: dict[str, dict[int, float]] = {}
    if readers:
        say("activation sensitivity (8 vs 16 bits) and widths under the RAM budget")
        peaks = mixed.act_peaks(ckpt.model, fn, calib, readers)
        act_sens = mixed.act_sensitivity(ckpt.model, fn, s.val.x, s.val.y, readers, peaks)
        lowered: dict[tuple[int, ...], Graph] = {}

        def placed(trial: dict[str, int]) -> Graph:
            key = tuple(trial[p] for p in readers)
            if key not in lowered:
                lowered[key] = _arena(ckpt.model, calib, recipe.quant.margin, op_bits, trial).graph
            return lowered[key]

        act_bits = mixed.choose_act_bits(act_sens, lambda trial: placed(trial).arena_size, ram,
                                         lambda trial: image_of(placed(trial)).total, flash)
    input_bits = {r: act_bits[p] for p, names in readers.items() for r in names}
    say(f"quantization-aware fine-tuning, {epochs} epochs")
    qat = mixed.quantization_aware(ckpt.model, bits, input_bits)
    if epochs:
        spec = replace(recipe.train, "train", epochs=epochs, lr=recipe.train.lr / 10)
        teacher = ckpt.model.eval() if distill else None
        fit(qat, fn, (s.train.x, s.train.y), (s.val.x, s.val.y), spec, label="QAT", quiet=progress is None,
            teacher=teacher, channel_stats=ckpt.normalizer.stats)
    else:  # no fine-tuning: the weights as they are (what fit() leaves after zero epochs)
        seed_everything(recipe.train.seed)
        qat.eval()
    tuned = mixed.back_to_float(ckpt.model, qat)
    wide = {p: b for p, b in act_bits.items() if b != 8}
    say("integer models on the test split")
    acc8, bytes8, int8 = _int_accuracy(ckpt.model, calib, recipe.quant.margin, {}, s.test.x, s.test.y,
                                       recipe.readout)
    acc_mixed, bytes_mixed, low = _int_accuracy(tuned, calib, recipe.quant.margin, op_bits, s.test.x, s.test.y,
                                                recipe.readout, wide)
    arena = int(low.graph.arena_size)
    img, img8 = image_of(low.graph), image_of(int8.graph)
    widths, state_bits = _widths_report(low.graph, [op_name(kind, n) for n in bits])
    name = f"{recipe.name}_mixed"
    result = {
        "model": name,
        "sensitivity": "validation cross-entropy increase with one layer at 4 or 2 bits, the others float",
        "flash_budget_bytes": flash,
        "flash_bounds": "the estimated Cortex-M4 image (-O2): runtime core + the graph's kernels + the blob",
        "image_bytes": img.total,
        "image_bytes_int8": img8.total,
        "fits_flash": img.total <= flash,
        "image": img.to_dict(),
        "image_int8": img8.to_dict(),
        "weight_bytes": bytes_mixed,
        "weight_bytes_int8": bytes8,
        "weight_bytes_ratio": bytes8 / bytes_mixed,
        "accuracy": acc_mixed,
        "accuracy_int8": acc8,
        "bits": widths,
        "state_bits": state_bits,
        "activation_bits": act_bits,
        "activation_sensitivity": {p: {str(b): v for b, v in d.items()} for p, d in act_sens.items()},
        "qat_epochs": epochs,
        "qat_distillation": distill,
        "arena_bytes": arena,
        "ram_budget_bytes": ram,
        "fits_ram": None if ram is None else arena <= ram,
        "configurations": [{**c, "bits": {op_name(kind, n): b for n, b in c["bits"].items()}} for c in configs],
    }
    if out is not None:
        _write(out, ckpt, tuned, recipe, name, op_bits, wide, result)
    return result


def evaluated_configurations(model: nn.Module, fn: Any, x: np.ndarray, y: np.ndarray, sizes: dict[str, int],
                             sens: dict[str, dict[int, float]], search: mixed.Search,
                             image: ImageModel | None = None) -> list[dict[str, Any]]:
    """Every configuration the report plots (mixed.candidates: the search path first, its last step the chosen one),
    with its validation accuracy (fake-quantized), its image estimate (with `image`) and whether it is on the search
    path and on the Pareto front (of image bytes where there are some, else weight bytes)."""
    cands = mixed.candidates(sizes, {n: tuple(v) for n, v in sens.items()}, search, image)
    known = {tuple(st.bits[n] for n in sizes): st.accuracy for st in search.steps}
    for c in cands:
        c.accuracy = known.get(tuple(c.bits[n] for n in sizes))
    mixed.evaluate(model, fn, x, y, mixed.Search([c for c in cands if c.accuracy is None]))
    front = set(mixed.pareto_front([(c.weight_bytes if c.image_bytes is None else c.image_bytes, c.accuracy)
                                    for c in cands]))
    return [{"weight_bytes": c.weight_bytes, **({} if c.image_bytes is None else {"image_bytes": c.image_bytes}),
             "val_accuracy_fake_quant": c.accuracy, "bits": c.bits,
             "search_path": i < len(search.steps), "pareto_front": i in front} for i, c in enumerate(cands)]


def _write(out: Path, ckpt: Checkpoint, tuned: nn.Module, recipe: Recipe, name: str, op_bits: dict[str, int],
           act_bits: dict[str, int], result: dict[str, Any]) -> None:
    """recipe.yaml, model.pt, quantize.json and pareto.png, all or nothing (a card or verify.json already in the
    folder stays)."""
    quant = replace(recipe.quant, "quant", weight_bits=op_bits, act_bits=act_bits)
    # a relative data.path is rewritten to name the same file from the new folder (recipe.yaml and model.pt there)
    new_recipe = replace(recipe, "", name=name, quant=quant).moved_to(out)
    text = yaml.safe_dump(new_recipe.to_dict(), sort_keys=False)
    tuned_ckpt = dataclasses.replace(ckpt, model=tuned, recipe=new_recipe.to_dict(), name=name)
    configs = result["configurations"]
    chosen = max(i for i, c in enumerate(configs) if c["search_path"])  # the search's last step
    commit_files(out, {
        "recipe.yaml": lambda p: p.write_text(f"# Written by `edgemem quantize` from {recipe.name}.\n{text}"),
        "model.pt": lambda p: save_checkpoint(p, tuned_ckpt),
        "quantize.json": lambda p: p.write_text(json.dumps(result, indent=2) + "\n"),
        "pareto.png": lambda p: plot_pareto(p, configs, chosen, result["flash_budget_bytes"],
                                            f"{name}: weight widths per layer under the image budget",
                                            f"after QAT, the integer model: {100 * result['accuracy']:.1f} % on the "
                                            f"test split (int8: {100 * result['accuracy_int8']:.1f} %)"),
    })


ZOOM = 3.0  # accuracy points the second panel of pareto.png shows below the best configuration


def plot_pareto(path: Path, configs: list[dict[str, Any]], chosen: int, budget: int, title: str, note: str = ""
                ) -> list[int]:
    """pareto.png: bytes (the image estimate where every configuration has one, else the weight bytes: the
    quantize.json of a search that bounded the weights) against validation accuracy of every evaluated configuration
    (quantize.json's `configurations`), their Pareto front, the chosen one, the all-8-bit one (the int8 model) and
    the budget. Returns the front (indices into configs, by bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "image_bytes" if all("image_bytes" in c for c in configs) else "weight_bytes"
    xs = np.array([c[key] for c in configs], dtype=float)
    ys = np.array([100 * c["val_accuracy_fake_quant"] for c in configs])
    front = mixed.pareto_front(list(zip(xs, ys)))
    int8 = next(i for i, c in enumerate(configs) if all(b == 8 for b in c["bits"].values()))

    spread = ys.max() - ys.min()

    def panel(ax: Any, zoom: bool) -> None:
        ax.scatter(xs, ys, s=22, color="0.65", label=f"evaluated configurations ({len(configs)})", zorder=2)
        ax.step(xs[front], ys[front], where="post", color="C0", lw=1.5, zorder=3)
        ax.scatter(xs[front], ys[front], s=40, color="C0", label=f"Pareto front ({len(front)})", zorder=4)
        ax.scatter([xs[int8]], [ys[int8]], s=90, marker="s", facecolor="none", edgecolor="k", lw=1.5, zorder=5,
                   label=f"int8 model ({xs[int8]:,.0f} B, {ys[int8]:.1f} %)")
        ax.scatter([xs[chosen]], [ys[chosen]], s=220, marker="*", color="C3", zorder=6,
                   label=f"chosen ({xs[chosen]:,.0f} B, {ys[chosen]:.1f} %)")
        ax.axvline(budget, color="C3", ls="--", lw=1, label=f"flash budget ({budget:,} B)", zorder=1)
        ax.set_xlabel("estimated Cortex-M4 image (core + kernels + blob), bytes" if key == "image_bytes" else
                      "weight bytes as stored (packed 8/4/2-bit rows)")
        ax.set_ylabel("validation accuracy (%, fake-quantized)")
        ax.grid(alpha=0.3)
        if zoom:  # the top ZOOM points: where the front's useful part and the chosen configuration are
            ax.set_ylim(ys.max() - ZOOM, ys.max() + 0.1 * ZOOM)
            ax.set_title(f"zoom: the top {ZOOM:g} points", fontsize=10)
        else:
            ax.set_ylim(ys.min() - max(0.5, 0.06 * spread), ys.max() + max(0.5, 0.06 * spread))
            ax.set_title("every evaluated configuration", fontsize=10)

    def draw(tmp: Path) -> None:
        two = spread > 2 * ZOOM
        fig, axes = plt.subplots(1, 2 if two else 1, figsize=(12, 4.8) if two else (7.2, 4.8), squeeze=False)
        panel(axes[0][0], False)
        if two:
            panel(axes[0][1], True)
        axes[0][-1].legend(fontsize=8, loc="lower right", framealpha=0.9)
        fig.suptitle(title + (f"\n{note}" if note else ""), fontsize=11)
        fig.tight_layout()
        fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    write_atomic(path, draw)
    return front
