"""The input stage of an export (docs/graph.md "Input stages"): the graph that turns the device's raw samples into
the model's int8 input, written as input_stage.bin beside model.bin and compiled into model.c.

- Sensor sources (edgemem.data.sources.SENSOR_SOURCES): a SENSOR op (edgemem.graph.sensor) from int16 counts at the
  sensor's rate, D = downsample samples per model step, with the recipe's data.sensor_full_scale (or the source's).
- The keyword source (kws): a LOGMEL op (edgemem.graph.logmel) from 16-bit PCM, one hop per model step.
- Other sources (images read as pixel sequences) have no input stage: their input is not a stream of samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgemem.checkpoint import Checkpoint
from edgemem.data.sources import SENSOR_FULL_SCALE, SENSOR_SOURCES
from edgemem.errors import EdgememError
from edgemem.graph.ir import Graph
from edgemem.graph.logmel import logmel_tables
from edgemem.graph.sensor import FULL_SCALE_COUNTS, SensorTables, sensor_tables
from edgemem.graph.stages import logmel_stage_graph, sensor_stage_graph
from edgemem.training.recipe import Recipe
from edgemem.training.sets import DataSets


@dataclass(frozen=True)
class InputStage:
    kind: str  # "sensor" or "logmel"
    graph: Graph
    meta: dict[str, Any]  # meta.json "input_stage"
    sensor: SensorTables | None = None


def derived_full_scale(train_x_raw: np.ndarray) -> np.ndarray:
    """The power of two at or above 1.25 x the largest |value| per channel ([..., C] raw training values)."""
    peak = np.abs(train_x_raw.reshape(-1, train_x_raw.shape[-1])).max(axis=0) * 1.25
    return np.exp2(np.ceil(np.log2(np.maximum(peak, 1e-30))))


def sensor_full_scale(recipe: Recipe, sets: DataSets, ckpt: Checkpoint) -> tuple[np.ndarray, str]:
    """(full scale per channel, where it came from)."""
    n_in = ckpt.normalizer.mean.size
    if recipe.data.sensor_full_scale is not None:
        fs, origin = np.asarray(recipe.data.sensor_full_scale, dtype=np.float64), "recipe data.sensor_full_scale"
    elif recipe.data.source in SENSOR_FULL_SCALE:
        fs, origin = np.asarray(SENSOR_FULL_SCALE[recipe.data.source]), f"the {recipe.data.source} source's default"
    else:  # the normalized training windows, back in the data's units
        raw = sets.split.train.x * ckpt.normalizer.std + ckpt.normalizer.mean
        fs, origin = derived_full_scale(raw), "derived from the training data (set data.sensor_full_scale)"
    if fs.size != n_in:
        raise EdgememError(f"data.sensor_full_scale has {fs.size} values; the model has {n_in} input channels")
    return fs, origin


def input_stage(recipe: Recipe, sets: DataSets, ckpt: Checkpoint, input_scale: float) -> InputStage | None:
    """The export's input stage, or None for a source without one."""
    source = recipe.data.source
    if source in SENSOR_SOURCES:
        fs, origin = sensor_full_scale(recipe, sets, ckpt)
        t = sensor_tables(ckpt.normalizer.mean, ckpt.normalizer.std, input_scale, fs, recipe.data.downsample)
        g = sensor_stage_graph(t)
        meta = {"kind": "sensor", "n_in": g.n_in, "n_out": g.n_out, "arena_bytes": g.arena_size,
                "channels": t.channels, "samples_per_step": t.decim, "full_scale": [float(v) for v in fs],
                "full_scale_counts": FULL_SCALE_COUNTS, "lsb": [float(v) for v in t.lsb],
                "full_scale_source": origin}
        return InputStage("sensor", g, meta, t)
    if source == "kws":
        from edgemem.data import kws

        _, mel, _, _ = kws.from_params(recipe.data.params)
        lt = logmel_tables(mel, ckpt.normalizer.mean, ckpt.normalizer.std, input_scale)
        g = logmel_stage_graph(lt)
        meta = {"kind": "logmel", "n_in": g.n_in, "n_out": g.n_out, "arena_bytes": g.arena_size,
                "sample_rate": mel.sample_rate, "win": lt.win, "hop": lt.hop, "n_fft": lt.n_fft, "n_mels": lt.n_mels,
                "f_min": mel.f_min, "f_max": mel.top, "eps": mel.eps}
        return InputStage("logmel", g, meta)
    return None
