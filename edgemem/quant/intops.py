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


def f32(x: float) -> float:
    return float(np.float32(x))


def tflite_multiplier(s_in: float, s_w: float, s_out: float) -> tuple[int, int]:
    """quantize_multiplier of s_in * s_w / s_out computed as TFLite computes it from the float32 scales a .tflite
    file stores (double product and quotient of the float32 values), so that a TFLite interpreter derives the same
    integer multiplier from edgemem's exported scales."""
    return quantize_multiplier(f32(s_in) * f32(s_w) / f32(s_out))


def tflite_exact_scale(s_in: float, s_w: float, s_out: float, search: int = 1 << 20) -> float:
    """The smallest float32 weight scale >= s_w (within `search` float32 steps, about 6 %) whose TFLite
    multiplier (tflite_multiplier) has its low 16 bits zero; float32(s_w) where there is none.

    TFLite's 16x8 kernels (int16 activations, int64 accumulators) keep only the top 15 bits of a multiplier in
    TFLM and all 31 in LiteRT; with the low 16 bits zero both equal edgemem's single-rounding requant with the
    same multiplier: every interpreter then computes the same integers (ties aside: LiteRT rounds them away from
    zero, TFLM and edgemem up; an odd M >> 16 is preferred because it leaves the fewest exact ties).
    """
    if not (s_in > 0 and s_out > 0 and s_w > 0):
        raise EdgememError(f"scales must be positive (s_in {s_in}, s_w {s_w}, s_out {s_out})")
    start = np.array([s_w], dtype=np.float32).view(np.int32)[0]
    w = (start + np.arange(search, dtype=np.int64)).astype(np.int32).view(np.float32)
    real = f32(s_in) * w.astype(np.float64) / f32(s_out)
    mant, _ = np.frexp(real)
    m = np.floor(mant * 2.0**31 + 0.5).astype(np.int64)
    ok = m < 1 << 31
    odd = np.nonzero(ok[: 1 << 16] & ((m[: 1 << 16] & 0x1FFFF) == 0x10000))[0]  # within ~0.4 %
    hit = odd if odd.size else np.nonzero(ok & ((m & 0xFFFF) == 0))[0]
    return float(w[hit[0]]) if hit.size else f32(s_w)


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x: np.ndarray, scale: float, bits: int = 8) -> np.ndarray:
    """Float -> symmetric integer, zero point 0, round half away from zero, saturated."""
    return sat(round_half_away(np.asarray(x, dtype=np.float64) / scale).astype(np.int64), bits)


def to_q15(x: np.ndarray) -> np.ndarray:
    """A decay in [0, 1] as Q15, capped at 32767 so that it fits int16."""
    return np.clip(np.round(np.clip(np.asarray(x, dtype=np.float64), 0, 1) * Q15_ONE), 0, 32767).astype(np.int64)
