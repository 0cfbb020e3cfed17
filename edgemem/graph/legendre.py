"""The LEGENDRE structure of an LMU op's A codes (docs/graph.md "LMU, Euler substeps"): what the C kernel's O(order)
pass assumes and the blob parsers check when the op's FLAG_LEGENDRE is set.

a[i][j] = a[i][i] [j == i] + r_i s_ij with s_ij = -1 (j > i), (-1)^(i-j+1) (j < i): the continuous Legendre A's sign
pattern with a per-row scale, so an Euler substep I + A/k quantized at a power-of-two scale keeps it (round() is odd,
and adding 2^shift to the diagonal commutes with rounding).
"""

from __future__ import annotations

import numpy as np


def sign_pattern(order: int) -> np.ndarray:
    """s [order][order] (int64): -1 above the diagonal, (-1)^(i-j+1) on and below it."""
    i, j = np.meshgrid(np.arange(order), np.arange(order), indexing="ij")
    return np.where(i < j, -1, np.where((i - j) % 2 == 1, 1, -1)).astype(np.int64)


def row_scales(a: np.ndarray) -> np.ndarray:
    """r_i = -a[i][i+1], a[i][i-1] on the last row (0 for order 1): the scales the kernel reads from A."""
    a = np.asarray(a, dtype=np.int64)
    n = a.shape[0]
    if n < 2:
        return np.zeros(n, dtype=np.int64)
    return np.concatenate([-np.diagonal(a, 1), [a[n - 1, n - 2]]])


B_LIMIT = 1 << 22  # |B[i]| below it: the kernel's B term 2 u B fits int32 (|u| <= 128)


def is_legendre(a: np.ndarray) -> bool:
    """True when every off-diagonal code of the square A is r_i s_ij."""
    a = np.asarray(a, dtype=np.int64)
    off = ~np.eye(a.shape[0], dtype=bool)
    return bool((a[off] == (row_scales(a)[:, None] * sign_pattern(a.shape[0]))[off]).all())


def legendre_op_ok(a: np.ndarray, b: np.ndarray, a_shift: int) -> bool:
    """What a LEGENDRE-flagged LMU op must satisfy (the C parser's lmu_legendre_ok): A structured, a_shift >= 2 (the
    kernel's rounding shifts by a_shift - 1 >= 1 within 32-bit words) and |B| < 2^22."""
    return a_shift >= 2 and bool((np.abs(np.asarray(b, dtype=np.int64)) < B_LIMIT).all()) and is_legendre(a)
