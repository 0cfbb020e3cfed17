"""Data sources that ship inside packages (nothing downloads at run time) and users' own .npz files."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.data.windows import Recordings
from edgemem.errors import EdgememError


def load_watch() -> Recordings:
    """seglearn's smartwatch set: accel + gyro (6 channels), 50 Hz, 7 shoulder exercises, subjects 1-10."""
    from seglearn.datasets import load_watch as _load

    d = _load()
    return Recordings(
        series=[np.asarray(s, dtype=np.float32) for s in d["X"]],
        labels=np.asarray(d["y"], dtype=np.int64),
        subjects=np.asarray(d["subject"], dtype=np.int64),
        class_names=[str(c) for c in d["y_labels"]],
        sample_rate_hz=50.0,
    )


def load_basic_motions() -> Recordings:
    """aeon's BasicMotions (smartwatch, 4 activities, 10 Hz): tiny, for smoke tests.

    It has no subject ids; train and test cases become pseudo-subjects 1 and 2 so the subject split still applies.
    """
    from edgemem.tool import optional

    _load = optional("aeon.datasets", "data", "data source 'basic_motions'").load_basic_motions

    series, labels, subjects = [], [], []
    names: list[str] = []
    for subject, split in ((1, "train"), (2, "test")):
        x, y = _load(split=split)
        if not names:
            names = sorted({str(v) for v in y})
        series += [np.asarray(case.T, dtype=np.float32) for case in x]
        labels += [names.index(str(v)) for v in y]
        subjects += [subject] * len(y)
    return Recordings(series, np.asarray(labels), np.asarray(subjects), names, 10.0)


def load_npz(path: Path) -> Recordings:
    """A user's own windows: X [windows][time][channels] float, y [windows] int; optional subject, class_names."""
    if not path.is_file():
        raise EdgememError(f"data file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise EdgememError(f"data file {path} is not a readable .npz ({e})") from None
    for key in ("X", "y"):
        if key not in arrays:
            raise EdgememError(f"data file {path} has no array '{key}' (it has {sorted(arrays)})")
    x, y = arrays["X"], arrays["y"]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number):
        raise EdgememError(f"{path}: X must be a numeric array [windows][time][channels], got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0] or not np.issubdtype(y.dtype, np.integer):
        raise EdgememError(f"{path}: y must be integers, one per window ({x.shape[0]}), got {y.dtype} {y.shape}")
    if y.min() < 0:
        raise EdgememError(f"{path}: labels in y must be >= 0")
    if not np.all(np.isfinite(x)):
        raise EdgememError(f"{path}: X contains NaN or infinite values")
    subjects = arrays.get("subject", np.ones(x.shape[0], dtype=np.int64))
    if subjects.shape != y.shape:
        raise EdgememError(f"{path}: subject must have one entry per window, got shape {subjects.shape}")
    n_classes = int(y.max()) + 1
    names = [str(c) for c in arrays["class_names"]] if "class_names" in arrays else [str(i) for i in range(n_classes)]
    if len(names) < n_classes:
        raise EdgememError(f"{path}: class_names has {len(names)} names but y uses {n_classes} classes")
    return Recordings(
        [np.asarray(w, dtype=np.float32) for w in x], y.astype(np.int64), subjects.astype(np.int64), names, 0.0
    )


SOURCES = {"watch": load_watch, "basic_motions": load_basic_motions}
# Sources that take parameters (a dict, e.g. a recipe's data.params); each documents its keys.
PARAM_SOURCES = ("kws", "psmnist", "digits")


def _seed_only(source: str, params: Mapping[str, Any], default: int) -> int:
    unknown = sorted(set(params) - {"seed"})
    if unknown:
        raise EdgememError(f"data source '{source}' takes only the parameter 'seed', got {unknown}")
    seed = params.get("seed", default)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise EdgememError(f"data source '{source}': seed must be a non-negative integer, got {seed!r}")
    return seed


def load_source(source: str, path: Path | None = None, params: Mapping[str, Any] | None = None) -> Recordings:
    """Recordings of a named source. ``params`` configures the generated and permuted sources:

    - ``kws``: keys of ``KwsConfig`` (seed, clips_per_word, speed_wpm, snr_db, ...) and ``MelConfig`` (n_mels,
      win_ms, hop_ms, n_fft, f_min, f_max, eps), plus ``cache_dir`` and ``workers``; one recording per clip,
      frames x n_mels, subject = speaker id (see ``kws.split_speakers``).
    - ``psmnist``: ``seed`` of the pixel permutation (default ``mnist.PSMNIST_SEED``); 784 x 1 per image,
      subject 1/2/3 = train/validation/test.
    - ``digits``: ``seed`` of the permutation and of the 70/15/15 split; 64 x 1 per image, subject 1/2/3.
    """
    params = dict(params or {})
    if source in PARAM_SOURCES:
        from edgemem.data import kws, mnist  # imported here: scipy.signal and friends only when used

        if source == "kws":
            cfg, mel, cache_dir, workers = kws.from_params(params)
            return kws.kws_recordings(cfg, mel, cache_dir, workers)
        if source == "psmnist":
            return mnist.as_recordings(mnist.psmnist_windows(_seed_only(source, params, mnist.PSMNIST_SEED)))
        return mnist.as_recordings(mnist.digits_windows(_seed_only(source, params, mnist.DIGITS_SEED)))
    if params:
        raise EdgememError(f"data source '{source}' takes no parameters, got {sorted(params)}")
    if source == "npz":
        if path is None:
            raise EdgememError("data source 'npz' needs data.path")
        return load_npz(path)
    if source not in SOURCES:
        raise EdgememError(f"unknown data source '{source}' (choose from {sorted([*SOURCES, 'npz', *PARAM_SOURCES])})")
    return SOURCES[source]()
