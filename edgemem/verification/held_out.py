"""What every check of an export runs on: the held-out windows of its checkpoint and the integer reference of its
blob (the graph's pure-integer model, edgemem.graph.ref)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.checkpoint import load_checkpoint
from edgemem.data.windows import Windows
from edgemem.exporters.folder import checkpoint_of, load_meta
from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.ref import lif_spikes, run_graph
from edgemem.training.sets import data_sets


def held_out_set(export_dir: Path, checkpoint: Path | None = None) -> tuple[dict[str, Any], Any, Windows]:
    """An export's meta.json, its checkpoint and the checkpoint's held-out windows (normalized; edgemem.training.sets).
    The checkpoint is `checkpoint` or meta.json's, and must have meta.json's checkpoint_sha256."""
    meta = load_meta(export_dir)
    ckpt_path = checkpoint_of(export_dir, meta, checkpoint)
    ckpt = load_checkpoint(ckpt_path)
    return meta, ckpt, data_sets(ckpt, ckpt_path).held_out


@dataclass
class IntModel:
    """The integer reference of an exported graph blob."""

    input_scale: float
    n_out: int
    run: Any  # x [n][T][n_in] int8 -> (logits [n][T][n_out], spikes per step)


def int_model(blob: bytes, meta: dict[str, Any]) -> IntModel:
    g = parse_graph_blob(blob)

    def run(x: np.ndarray) -> tuple[np.ndarray, float]:
        spikes = [0]

        def count(_: int, values: dict[str, np.ndarray]) -> None:
            spikes[0] += int(lif_spikes(g, values).sum())

        logits = run_graph(g, x, count)
        return logits, spikes[0] / max(1, x.shape[0] * x.shape[1])

    return IntModel(float(meta["input_scale"]), g.n_out, run)


