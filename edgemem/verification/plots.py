"""Pictures of an export's deployed integer model (what C computes: the integer reference of its blob) on the
held-out windows of its checkpoint:

- the confusion matrix, normalized per true class (`edgemem verify EXPORT --plot-confusion PATH`);
- per spiking population (LIF op): a spike raster over one held-out window and the mean firing rate of every neuron
  over the held-out windows (`edgemem plot-spikes EXPORT --out DIR`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from edgemem.atomic import write_atomic  # noqa: E402
from edgemem.errors import EdgememError  # noqa: E402
from edgemem.exporters.folder import load_meta  # noqa: E402
from edgemem.graph.blob import parse_graph_blob  # noqa: E402
from edgemem.graph.intops import quantize  # noqa: E402
from edgemem.graph.ir import Graph, OpType  # noqa: E402
from edgemem.graph.ref import run_graph  # noqa: E402
from edgemem.models.readout import predictions  # noqa: E402
from edgemem.verification.held_out import held_out_set  # noqa: E402

RASTER_FILE = "spike_raster.png"
RATES_FILE = "firing_rates.png"


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Counts [true][predicted] of k classes."""
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y), np.asarray(pred)), 1)
    return cm


def plot_confusion(path: Path, counts: np.ndarray, names: list[str], title: str) -> np.ndarray:
    """The confusion matrix normalized per true class (each row sums to 1; a class without windows is a row of 0),
    with class names, each cell's fraction written in it and the row's window count beside the class name.
    Returns the normalized matrix."""
    k = len(names)
    if counts.shape != (k, k):
        raise EdgememError(f"confusion matrix of {counts.shape} for {k} class names")
    rows = counts.sum(1, keepdims=True)
    norm = counts / np.maximum(rows, 1)
    acc = np.trace(counts) / max(1, counts.sum())

    def draw(tmp: Path) -> None:
        side = max(5.5, 0.75 * k + 2.5)
        fig, ax = plt.subplots(figsize=(side + 1.2, side))
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8 if k <= 12 else 6,
                            color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(k), names, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(k), [f"{n} ({r})" for n, r in zip(names, rows[:, 0])])
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class (held-out windows)")
        ax.set_title(f"{title}\naccuracy {acc:.4f} on {int(counts.sum())} windows; rows sum to 1", fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
        fig.tight_layout()
        fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    write_atomic(path, draw)
    return norm


def int_confusion(export_dir: Path, path: Path) -> np.ndarray:
    """The integer reference's confusion matrix on the held-out windows, drawn to `path`; the normalized matrix."""
    meta, ckpt, ts = held_out_set(export_dir)
    g = parse_graph_blob((export_dir / "model.bin").read_bytes())
    logits = run_graph(g, quantize(ts.x, float(meta["input_scale"])).astype(np.int8))
    return plot_integer_confusion(path, meta, ckpt.class_names, ts.y, predictions(logits, meta.get("readout", "sum")))


def plot_integer_confusion(path: Path, meta: dict[str, Any], names: list[str], y: np.ndarray, pred: np.ndarray
                           ) -> np.ndarray:
    return plot_confusion(path, confusion(y, pred, len(names)), list(names),
                          f"{meta['name']}: the integer model (what the C runtime computes)")


# ---------------------------------------------------------------------------------------------------- spikes

def lif_populations(g: Graph, model: Any = None) -> list[tuple[int, str]]:
    """(op index, name) of every LIF op, in step order. The blob keeps no names: where the checkpoint's model lists
    its populations (the L2MU's `pops`, the spiking LMUFormer's `lifs`) in the same order and sizes, their names."""
    ops = [i for i, op in enumerate(g.ops) if op.type == OpType.LIF]
    cells = getattr(model, "lifs", None) or getattr(model, "pops", None) or {}
    sizes = [g.buffers[g.ops[i].out].count for i in ops]
    if len(cells) == len(ops) and [int(c.threshold.numel()) for c in cells.values()] == sizes:
        return list(zip(ops, cells))
    return [(i, f"LIF op {i}") for i in ops]


@dataclass
class Spikes:
    names: list[str]  # population per LIF op
    raster: dict[str, np.ndarray]  # population -> [T][n] 0/1 of the shown window
    rates: dict[str, np.ndarray]  # population -> [n] mean spikes per step over the rate windows
    window: int  # the shown window's index among the held-out windows
    true: str
    predicted: str
    rate_windows: int
    model: str


def spikes(export_dir: Path, window: int = 0, rate_windows: int | None = None) -> Spikes:
    """The integer reference's spikes: every LIF op's output at every step (run_graph's on_step) of held-out window
    `window`, and each neuron's mean over the first `rate_windows` held-out windows (all by default)."""
    load_meta(export_dir)  # a folder that is not an export: that message first
    g = parse_graph_blob((export_dir / "model.bin").read_bytes())
    if not any(op.type == OpType.LIF for op in g.ops):  # before the data set loads
        raise EdgememError(f"{export_dir} has no spiking population (no LIF op): plot-spikes needs a spiking model")
    meta, ckpt, ts = held_out_set(export_dir)
    pops = lif_populations(g, ckpt.model)
    n = len(ts.y)
    if not 0 <= window < n:
        raise EdgememError(f"--window must be in [0, {n - 1}] (the held-out windows), got {window}")
    m = n if rate_windows is None else max(1, min(rate_windows, n))
    xq = quantize(ts.x, float(meta["input_scale"])).astype(np.int8)
    outs = {name: g.buffers[g.ops[i].out].name for i, name in pops}
    totals = {name: np.zeros(g.buffers[g.ops[i].out].count, dtype=np.int64) for i, name in pops}
    steps: list[dict[str, np.ndarray]] = []

    def count(_: int, values: dict[str, np.ndarray]) -> None:
        for name, buf in outs.items():
            totals[name] += values[buf].sum(axis=0)

    def keep(_: int, values: dict[str, np.ndarray]) -> None:
        steps.append({name: values[buf][0].copy() for name, buf in outs.items()})

    for start in range(0, m, 256):
        run_graph(g, xq[start:min(m, start + 256)], count)
    logits = run_graph(g, xq[window:window + 1], keep)
    pred = int(predictions(logits, meta.get("readout", "sum"))[0])
    t = xq.shape[1]
    return Spikes([name for _, name in pops], {k: np.stack([s[k] for s in steps]).astype(np.int8) for k in outs},
                  {k: v / (m * t) for k, v in totals.items()}, window, ckpt.class_names[int(ts.y[window])],
                  ckpt.class_names[pred], m, meta["name"])


def plot_spikes(s: Spikes, out: Path) -> tuple[Path, Path]:
    """out/spike_raster.png (one panel per population: neuron x step, the window's spikes) and out/firing_rates.png
    (one panel per population: each neuron's mean spikes per step)."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = [s.raster[p].shape[1] for p in s.names]
    ratios = [max(1.0, np.sqrt(n)) for n in sizes]

    def raster(tmp: Path) -> None:
        fig, axes = plt.subplots(len(s.names), 1, figsize=(10, 1.5 + 0.4 * sum(ratios) + 0.5 * len(ratios)),
                                 sharex=True, height_ratios=ratios, squeeze=False, layout="constrained")
        for ax, p in zip(axes[:, 0], s.names):
            r = s.raster[p]
            ax.imshow(r.T, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest", origin="lower",
                      extent=(-0.5, r.shape[0] - 0.5, -0.5, r.shape[1] - 0.5))
            ax.set_ylabel(f"{p}\nneuron", fontsize=8)
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
            ax.set_title(f"{p}: {r.shape[1]} neurons, {int(r.sum())} spikes ({r.mean():.3f} per neuron per step)",
                         fontsize=9, loc="left")
            ax.tick_params(labelsize=7)
        axes[-1, 0].set_xlabel("step")
        fig.suptitle(f"{s.model}: spikes of the integer model, held-out window {s.window} "
                     f"(true {s.true}, predicted {s.predicted})", fontsize=11)
        fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)

    def rates(tmp: Path) -> None:
        fig, axes = plt.subplots(len(s.names), 1, figsize=(10, 1.2 + 1.7 * len(s.names)), squeeze=False,
                                 layout="constrained")
        for ax, p in zip(axes[:, 0], s.names):
            r = s.rates[p]
            silent, full = int((r == 0).sum()), int((r == 1).sum())
            ax.bar(np.arange(len(r)), r, width=0.85, color="C0")
            ax.set_xlim(-0.7, len(r) - 0.3)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("spikes / step", fontsize=8)
            ax.set_title(f"{p}: mean {r.mean():.3f}; {silent} silent, {full} spiking every step", fontsize=9,
                         loc="left")
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[-1, 0].set_xlabel("neuron (index in its population)")
        fig.suptitle(f"{s.model}: firing rate per neuron, integer model, {s.rate_windows} held-out windows",
                     fontsize=11)
        fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)

    write_atomic(out / RASTER_FILE, raster)
    write_atomic(out / RATES_FILE, rates)
    return out / RASTER_FILE, out / RATES_FILE
