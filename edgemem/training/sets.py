"""The data every step after training derives from a checkpoint, written once: checkpoint -> recipe -> windows ->
split by subject -> normalized with the checkpoint's statistics -> calibration windows / held-out set.

Export (calibration), quantize (search and QAT), plan --value-driven, verify, stress and the demos all take their
windows from here, so they see the same data. Normalization uses the statistics stored in the checkpoint (not a
refit on the training split), so the calibration set is a function of committed inputs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgemem.checkpoint import Checkpoint
from edgemem.data.sources import load_source
from edgemem.data.windows import Split, Windows, cut_windows, split_by_subject
from edgemem.training.pipeline import load_windows
from edgemem.training.recipe import Recipe, recipe_from_dict

CALIBRATION_SEED = 0


def recipe_of(ckpt: Checkpoint, checkpoint_path: Path) -> Recipe:
    """The checkpoint's recipe, validated like a recipe file; a relative data.path resolves against the checkpoint's
    folder (where `edgemem train` and `edgemem quantize` write it relative to), never against the working directory."""
    return recipe_from_dict(ckpt.recipe, checkpoint_path.resolve().parent / "recipe.yaml",
                            f"checkpoint {checkpoint_path}")


def calibration_windows(x: np.ndarray, n: int, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """n training windows drawn without replacement by a fixed seed, kept in their original order."""
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[np.sort(idx)]


@dataclass
class DataSets:
    """One checkpoint's data, split as its recipe says and normalized with its statistics."""

    recipe: Recipe
    class_names: list[str]
    split: Split  # normalized windows of the train / val / test subjects

    @property
    def calibration(self) -> np.ndarray:
        """The training windows post-training quantization calibrates every scale on ([n][T][n_in] float)."""
        return calibration_windows(self.split.train.x, self.recipe.quant.calib_windows)

    @property
    def held_out(self) -> Windows:
        """The test subjects' windows: what verify, the benchmarks and the demos score."""
        return self.split.test


def data_sets(ckpt: Checkpoint, checkpoint_path: Path) -> DataSets:
    recipe = recipe_of(ckpt, checkpoint_path)
    d = recipe.data
    windows, names = load_windows(recipe)
    raw = split_by_subject(windows, d.train_subjects, d.val_subjects, d.test_subjects)

    def norm(w: Windows) -> Windows:
        return Windows(ckpt.normalizer(w.x), w.y, w.subject, w.recording, w.start)

    return DataSets(recipe, names, Split(norm(raw.train), norm(raw.val), norm(raw.test)))


@dataclass(frozen=True)
class RawHeldOut:
    """The held-out windows as a device receives them, in the same order as DataSets.held_out."""

    samples: np.ndarray  # sensor: float32 [n][window][C] at the source's rate (before averaging); kws: int16 PCM [n][S]
    y: np.ndarray  # [n] int64


def raw_held_out(recipe: Recipe) -> RawHeldOut:
    """The test subjects' raw windows: a sensor source's values before the downsampling average, or the keyword
    clips' 16-bit PCM (edgemem.data.kws.load_clips; held-out speakers in clip order)."""
    d = recipe.data
    if d.source == "kws":
        from edgemem.data import kws

        cfg, _, cache_dir, workers = kws.from_params(d.params)
        clips = kws.load_clips(cfg, cache_dir, workers)
        keep = np.isin(clips.speaker, np.asarray(sorted(set(d.test_subjects)), dtype=np.int64))
        return RawHeldOut(clips.audio[keep].astype(np.int16), clips.label[keep].astype(np.int64))
    rec = load_source(d.source, recipe.data_file, d.params)
    windows = cut_windows(rec, d.window, d.hop, 1)
    test = split_by_subject(windows, d.train_subjects, d.val_subjects, d.test_subjects).test
    return RawHeldOut(test.x.astype(np.float32), test.y)
