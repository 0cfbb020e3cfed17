"""Data sources that ship inside packages (nothing downloads at run time) and users' own .npz files."""

from __future__ import annotations

import zipfile
from pathlib import Path

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
    from aeon.datasets import load_basic_motions as _load

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


def load_source(source: str, path: Path | None = None) -> Recordings:
    if source == "npz":
        if path is None:
            raise EdgememError("data source 'npz' needs data.path")
        return load_npz(path)
    if source not in SOURCES:
        raise EdgememError(f"unknown data source '{source}' (choose from {sorted([*SOURCES, 'npz'])})")
    return SOURCES[source]()
