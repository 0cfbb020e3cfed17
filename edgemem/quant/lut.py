"""256-entry int8 tables for the nonlinearities of ACT LUT (docs/graph.md): C looks them up, so it is exact.

An ACT LUT reads an int32 value that the op before it requantized to the scale s_in, saturates it to int8 and
returns `lut[q + 128]`, with `lut[k] = sat8(round_half_away(f((k - 128) * s_in) / s_out))`.

Default scales and the largest error vs float, measured as |lut[sat8(floor(x / s_in + 1/2)) + 128] * s_out - f(x)|
over a dense grid of x (tests/test_graph.py checks these bounds):

| f       | s_in    | s_out   | table covers     | max error in range | outside the range                         |
|---------|---------|---------|------------------|--------------------|-------------------------------------------|
| tanh    | 4/128   | 1/127   | x in [-4, 3.97]  | 0.0188             | same (tanh is within 7e-4 of +-1 there)   |
| sigmoid | 8/128   | 1/127   | x in [-8, 7.94]  | 0.0118             | same (within 3.4e-4 of 0 or 1)            |
| gelu    | 4/128   | 4/128   | x in [-4, 3.97]  | 0.0322             | grows like x - 3.97 (the input saturates) |

In range, the error is about s_in / 2 * max|f'| (the input rounding) + s_out / 2 (the table's own rounding).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from edgemem.errors import EdgememError
from edgemem.graph.intops import round_half_away, sat

TANH_SCALES = (4 / 128, 1 / 127)
SIGMOID_SCALES = (8 / 128, 1 / 127)  # sigmoid needs |x| <= 8 to come within 3.4e-4 of 0 and 1
GELU_SCALES = (4 / 128, 4 / 128)  # GELU(x) ~ x for x >> 0: the output needs the input's range


def lut_for(fn: Callable[[np.ndarray], np.ndarray], s_in: float, s_out: float) -> np.ndarray:
    """lut[k] = sat8(round_half_away(fn((k - 128) * s_in) / s_out)), k in 0..255, as int64 values."""
    if not (s_in > 0 and s_out > 0 and math.isfinite(s_in) and math.isfinite(s_out)):
        raise EdgememError(f"LUT scales must be positive and finite (s_in {s_in}, s_out {s_out})")
    x = (np.arange(256, dtype=np.int64) - 128) * s_in
    y = np.asarray(fn(x), dtype=np.float64)
    if y.shape != (256,) or not np.isfinite(y).all():
        raise EdgememError("LUT function must map 256 inputs to 256 finite values")
    return sat(round_half_away(y / s_out).astype(np.int64), 8)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + e^-x) without overflow for large |x|


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU, as torch.nn.GELU() by default."""
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)))


def tanh_lut(s_in: float = TANH_SCALES[0], s_out: float = TANH_SCALES[1]) -> np.ndarray:
    return lut_for(tanh, s_in, s_out)


def sigmoid_lut(s_in: float = SIGMOID_SCALES[0], s_out: float = SIGMOID_SCALES[1]) -> np.ndarray:
    return lut_for(sigmoid, s_in, s_out)


def gelu_lut(s_in: float = GELU_SCALES[0], s_out: float = GELU_SCALES[1]) -> np.ndarray:
    return lut_for(gelu, s_in, s_out)


def lut_error(fn: Callable[[np.ndarray], np.ndarray], lut: np.ndarray, s_in: float, s_out: float, lo: float,
              hi: float, points: int = 100_001) -> float:
    """Largest |table output - fn(x)| for x on a grid over [lo, hi], with the input rounded as requant does."""
    x = np.linspace(lo, hi, points)
    q = sat(np.floor(x / s_in + 0.5).astype(np.int64), 8)
    return float(np.abs(lut[q + 128] * s_out - fn(x)).max())
