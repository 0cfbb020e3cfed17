"""edgemem's integer rules, the single Python copy (firmware/src/kernels/ is the single C copy).

All functions take and return int64 NumPy arrays holding the narrower integer values, so they are exact.
"""

from __future__ import annotations

import math

import numpy as np

from edgemem.errors import EdgememError

INT8 = (-128, 127)
INT16 = (-32768, 32767)
INT32 = (-(2**31), 2**31 - 1)
Q15_ONE = 32768


def sat(x: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(x, lo, hi).astype(np.int64)


def rshift_round(x: np.ndarray, shift: int | np.ndarray) -> np.ndarray:
    """(x + 2^(s-1)) >> s with an arithmetic (flooring) shift: ties round towards +inf."""
    s = np.asarray(shift, dtype=np.int64)
    return (np.asarray(x, dtype=np.int64) + (np.int64(1) << (s - 1))) >> s


def requant(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """sat32((acc * M + 2^(s-1)) >> s), M in [2^30, 2^31), s in [1, 62]: TFLite's single-rounding rule.

    acc is an int32 value, so acc * M fits in int64 (|acc * M| < 2^62).
    """
    acc = sat(np.asarray(acc, dtype=np.int64), 32)
    return sat(rshift_round(acc * np.asarray(mult, dtype=np.int64), shift), 32)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """real = M * 2^-s with M in [2^30, 2^31) and s in [1, 62]."""
    if not math.isfinite(real) or real <= 0:
        raise EdgememError(f"cannot quantize the rescale factor {real} (it must be positive and finite)")
    mant, exp = math.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    m = math.floor(mant * (1 << 31) + 0.5)  # std::round, as TFLite's QuantizeMultiplier
    if m == 1 << 31:
        m, exp = m // 2, exp + 1
    shift = 31 - exp
    if not 1 <= shift <= 62:
        raise EdgememError(f"rescale factor {real:g} is out of the representable range (shift {shift})")
    return m, shift


def quantize_multiplier15(real: float) -> tuple[int, int]:
    """quantize_multiplier with the mantissa rounded to 15 bits (M's low 16 bits zero), relative error <= 2^-15.

    TFLite's 16x8 kernels (int16 activations, int64 accumulators) keep only the top 15 bits of a multiplier in
    TFLM and all 31 in LiteRT; with the low 16 bits zero both equal edgemem's single-rounding requant with the same
    multiplier, and M * 2^-s is exactly a float32, the weight scale a .tflite stores (docs/tflite.md).
    """
    if not math.isfinite(real) or real <= 0:
        raise EdgememError(f"cannot quantize the rescale factor {real} (it must be positive and finite)")
    mant, exp = math.frexp(real)  # real = mant * 2^exp, mant in [0.5, 1)
    r = math.floor(mant * (1 << 15) + 0.5)
    if r == 1 << 15:
        r, exp = r // 2, exp + 1
    shift = 31 - exp
    if not 1 <= shift <= 62:
        raise EdgememError(f"rescale factor {real:g} is out of the representable range (shift {shift})")
    return r << 16, shift


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x: np.ndarray, scale: float, bits: int = 8) -> np.ndarray:
    """Float -> symmetric integer, zero point 0, round half away from zero, saturated."""
    return sat(round_half_away(np.asarray(x, dtype=np.float64) / scale).astype(np.int64), bits)


def to_q15(x: np.ndarray) -> np.ndarray:
    """A decay in [0, 1] as Q15, capped at 32767 so that it fits int16."""
    return np.clip(np.round(np.clip(np.asarray(x, dtype=np.float64), 0, 1) * Q15_ONE), 0, 32767).astype(np.int64)
