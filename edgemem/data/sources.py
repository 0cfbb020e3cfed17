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


# The graph ops' dimension limit (edgemem.graph.ir.MAX_DIM): the model's input and output widths live within it.
MAX_CHANNELS = 1024
MAX_CLASSES = 1024
NPZ_ARRAYS = ("X", "y", "lengths", "subject", "class_names")
NPZ_LAYOUT = ("an .npz archive (np.savez(path, X=X, y=y, ...)) holding X float [recordings][time][channels], y int "
              "[recordings] from 0, and optionally lengths, subject, class_names (README 'Your own data')")
RAGGED_HINT = ("save recordings of different lengths as X zero-padded to the longest, float [recordings][time][channels], "
               "plus lengths (int [recordings], the valid steps of each), or X concatenated [steps][channels] plus lengths")


def _read_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One .npy member, its header checked before any data is read: no object arrays (pickles), and no more data
    than the member holds (a header may declare any shape)."""
    key = info.filename[:-4]
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f, max_header_size=100_000)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise EdgememError(f"{path}: '{key}' is not a readable NumPy array ({_first_line(e)})") from None
        if dtype.hasobject:
            hint = f": {RAGGED_HINT}" if key == "X" else " (store numbers or fixed-width strings)"
            raise EdgememError(f"{path}: '{key}' is an array of Python objects{hint}")
        count = int(np.prod(shape, dtype=object))
        nbytes = count * dtype.itemsize
        if nbytes > info.file_size:
            raise EdgememError(f"{path}: '{key}' declares shape {tuple(shape)} of {dtype} ({nbytes:,} bytes) but its "
                               f"file holds {info.file_size:,} bytes")
        try:
            data = f.read(nbytes)
        except (OSError, EOFError, zipfile.BadZipFile, MemoryError) as e:
            raise EdgememError(f"{path}: '{key}' cannot be read ({_first_line(e)})") from None
    if len(data) != nbytes:
        raise EdgememError(f"{path}: '{key}' is truncated ({len(data):,} of {nbytes:,} bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0][:120] if lines else type(e).__name__


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise EdgememError(f"data file {path} does not exist")
    with path.open("rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        raise EdgememError(f"data file {path} is a single .npy array; edgemem reads {NPZ_LAYOUT}")
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise EdgememError(f"data file {path} is not a readable .npz (not a zip archive: {_first_line(e)}); "
                           f"edgemem reads {NPZ_LAYOUT}") from None
    arrays: dict[str, np.ndarray] = {}
    with z:
        for info in z.infolist():
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key not in NPZ_ARRAYS:
                raise EdgememError(f"{path}: holds '{key}', which edgemem does not read (it reads "
                                   f"{', '.join(NPZ_ARRAYS)}); a misspelt name would be ignored silently")
            if not info.filename.endswith(".npy"):
                raise EdgememError(f"{path}: '{info.filename}' is not a NumPy array (.npy) member")
            try:
                arrays[key] = _read_member(z, info, path)
            except MemoryError:
                raise EdgememError(f"{path}: '{key}' is too large to load into memory") from None
    return arrays


def _integers(path: Path, key: str, a: np.ndarray, n: int, what: str) -> np.ndarray:
    if a.ndim != 1 or a.shape[0] != n or not np.issubdtype(a.dtype, np.integer):
        hint = " (cast whole numbers with .astype(int))" if np.issubdtype(a.dtype, np.floating) else ""
        raise EdgememError(f"{path}: {key} must be integers, {what} ({n}), got {a.dtype} {a.shape}{hint}")
    return a.astype(np.int64)


def load_npz(path: Path) -> Recordings:
    """A user's own recordings (README "Your own data"): X [recordings][time][channels] (zero-padded when
    `lengths` gives each recording's valid steps) or X [steps][channels] with `lengths` (recordings back to back);
    y [recordings] int from 0; optional subject (int per recording) and class_names. Padding never reaches a window:
    each recording is cut to its valid steps here."""
    arrays = _npz_arrays(path)
    for key in ("X", "y"):
        if key not in arrays:
            raise EdgememError(f"data file {path} has no array '{key}' (it has {sorted(arrays)}); edgemem reads "
                               f"{NPZ_LAYOUT}")
    x, y = arrays["X"], arrays["y"]
    if x.dtype == bool or not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise EdgememError(f"{path}: X must hold real numbers, got {x.dtype}")
    lengths = arrays.get("lengths")
    if x.ndim == 2 and lengths is None:
        raise EdgememError(f"{path}: X is 2-D {x.shape}: concatenated recordings need lengths (int per recording, "
                           "summing to X's rows); one recording is X[None]")
    if x.ndim not in (2, 3):
        raise EdgememError(f"{path}: X must be a numeric array [recordings][time][channels], got shape {x.shape}")
    if x.shape[-1] < 1 or x.shape[-1] > MAX_CHANNELS:
        raise EdgememError(f"{path}: X has {x.shape[-1]} channels; a model takes 1 to {MAX_CHANNELS}")
    if x.ndim == 2 and lengths.ndim != 1:
        raise EdgememError(f"{path}: lengths must be integers, one per recording, got shape {lengths.shape}")
    n = x.shape[0] if x.ndim == 3 else lengths.shape[0]
    if n == 0:
        raise EdgememError(f"{path}: X holds no recordings (shape {x.shape})")
    if x.ndim == 3 and x.shape[1] == 0:
        raise EdgememError(f"{path}: X's recordings have no time steps (shape {x.shape})")
    if lengths is not None:
        lengths = _integers(path, "lengths", lengths, n, "one per recording")
        if lengths.min() < 1:
            raise EdgememError(f"{path}: lengths must be >= 1, got {int(lengths.min())}")
        if x.ndim == 3 and lengths.max() > x.shape[1]:
            raise EdgememError(f"{path}: lengths has {int(lengths.max())} steps but X is padded to {x.shape[1]}")
        if x.ndim == 2 and int(lengths.sum()) != x.shape[0]:
            raise EdgememError(f"{path}: lengths sum to {int(lengths.sum())} but X has {x.shape[0]} rows")
    if y.ndim != 1 or y.shape[0] != n or y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        raise EdgememError(f"{path}: y must be integers, one per recording ({n}), got {y.dtype} {y.shape}")
    if y.min() < 0:
        raise EdgememError(f"{path}: labels in y must be >= 0")
    if y.max() >= MAX_CLASSES:
        raise EdgememError(f"{path}: y has label {int(y.max())}; a model has at most {MAX_CLASSES} classes "
                           f"(labels 0 to {MAX_CLASSES - 1})")
    if x.ndim == 3:
        valid = [x[i, : lengths[i]] for i in range(n)] if lengths is not None else list(x)
    else:
        valid = np.split(x, np.cumsum(lengths)[:-1])
    if not all(np.all(np.isfinite(v)) for v in valid):
        raise EdgememError(f"{path}: X contains NaN or infinite values" + (" within lengths" if lengths is not None
                                                                           else ""))
    subjects = np.ones(n, dtype=np.int64)
    if "subject" in arrays:
        subjects = _integers(path, "subject", arrays["subject"], n, "one per recording")
    n_classes = int(y.max()) + 1
    if "class_names" in arrays:
        c = arrays["class_names"]
        if c.ndim != 1 or c.dtype.kind not in "US":
            raise EdgememError(f"{path}: class_names must be strings, one per class, got {c.dtype} {c.shape}")
        names = [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in c]
        if len(names) < n_classes:
            raise EdgememError(f"{path}: class_names has {len(names)} names but y uses {n_classes} classes")
        if len(names) > MAX_CLASSES:
            raise EdgememError(f"{path}: class_names has {len(names)} names; a model has at most {MAX_CLASSES} classes")
    else:
        missing = np.setdiff1d(np.arange(n_classes), y)
        if len(missing):
            what = "start at 1 (no recording has label 0)" if missing[0] == 0 and len(missing) == 1 and \
                n_classes > 1 else f"skip {missing[:5].tolist()}{'...' if len(missing) > 5 else ''}"
            raise EdgememError(f"{path}: the labels in y {what} and there are no class_names, so every label from 0 "
                               f"to {n_classes - 1} would be an output class; renumber y as 0..K-1 (y - 1 for labels "
                               "from 1) or name every class in class_names")
        names = [str(i) for i in range(n_classes)]
    return Recordings([np.asarray(v, dtype=np.float32) for v in valid], y.astype(np.int64), subjects, names, 0.0)


def load_hapt() -> Recordings:
    """UCI HAPT, activities 1-6 (edgemem.data.hapt): smartphone acc (g) + gyro (rad/s), 50 Hz, subjects 1-30."""
    from edgemem.data import hapt

    return hapt.load_hapt()


SOURCES = {"watch": load_watch, "basic_motions": load_basic_motions, "hapt": load_hapt}
# Sources whose channels are raw sensor readings: their exports get a SENSOR input stage (edgemem.graph.sensor).
SENSOR_SOURCES = ("watch", "basic_motions", "npz", "hapt")
# int16 full scale per channel of a sensor source, in its units: the watch's accelerometer channels peak at 5.8 and
# its gyroscope channels at 29.0 over the whole set, which an IMU's +-8 g and +-2000 deg/s (34.9 rad/s) ranges hold.
# HAPT's phone peaks at 2.01 g and 10.01 rad/s over the whole set (2.00 g and 6.2 rad/s within activities 1-6): an IMU
# at +-4 g and +-1000 deg/s (17.45 rad/s) holds both; a scale derived from the training windows gives some axes 2 g.
SENSOR_FULL_SCALE = {"watch": (8.0, 8.0, 8.0, 34.906585, 34.906585, 34.906585),
                     "hapt": (4.0, 4.0, 4.0, 17.453293, 17.453293, 17.453293)}
# Sources that take parameters (a dict, e.g. a recipe's data.params); each documents its keys.
PARAM_SOURCES = ("kws", "psmnist", "digits")
SOURCE_NAMES = (*SOURCES, "npz", *PARAM_SOURCES)  # every name a recipe's data.source may take


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
