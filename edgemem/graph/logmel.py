"""Fixed-point log-mel front end: the integer spec that firmware/src/kernels/logmel_s16.c computes bit for bit.

It approximates ``edgemem.data.audio.log_mel`` (float64; read its docstring) followed by the model's input
quantization ``quantize((x - mean[b]) / std[b], input_scale) + zero_point``, so models trained on the float features
run on the integer ones without retraining. Tables are built once in float64 from a MelConfig and frozen as
integers; everything after that is int64 NumPy arithmetic (and the same int32/int64 arithmetic in C).

Tables (``LogMelTables``, the four arrays are the blob tensors t0..t3 of one op; N = n_fft, M = N / 2):

- ``window`` t0 int16 [W]: periodic Hann in Q15, ``min(32767, round(w[i] * 32768))``.
- ``t1`` int32 [M + 1 + 65]: ``cos(2 pi k / N)`` in Q30, ``round(cos * 2^30)``, k = 0 .. M (the FFT and split
  twiddles; ``sin(2 pi k / N)`` is ``cos`` at ``|M/2 - k|``), then the log2 table ``L[i] = round(log2(1 + i/64) *
  2^26)``, i = 0 .. 64.
- ``filterbank`` t2 int16, band after band: ``start_b, count_b, q[0 .. count_b - 1]``, the Q15 weights
  ``min(32767, round(F[b][k] * 32768))`` of bins ``start_b .. start_b + count_b - 1`` (the first to the last
  nonzero weight of the float filter).
- ``band_quant`` t3 int32 [3 * n_mels + 3]: per band ``off_b, mult_b, shift_b`` (``off_b = round(mean_b / ln 2 *
  2^20)``, the band mean in the Q20 log2 domain; ``mult_b, shift_b = quantize_multiplier(ln 2 / (std_b *
  input_scale * 2^20))``), then ``zero_point, eps_lo, eps_hi``: ``E = round(eps * 2^71)`` as a uint64 split into
  two 32-bit words (low first, stored as int32 bit patterns).
- The C kernel refuses (EM_ERR_PARAM) tables it cannot compute exactly: ``t1[0] != 2^30`` or ``t1[M/2] != 0`` (its
  j = 0 butterflies skip the multiply), a band outside bins 0 .. M, a negative weight, a shift outside [1, 62],
  ``|off_b| > 2^27``, a zero point outside int8, ``E`` outside [1, 2^56).
- dims ``win, hop, n_fft, n_mels`` (u16 each). History state: int16 [win - hop]; the C scratch: 4 * (n_fft + 2) bytes.

One frame (``rshift_round(x, s) = (x + 2^(s-1)) >> s`` with a flooring shift, i.e. ties towards +inf;
``rshift_round(x, 0) = x``):

1. Frame ``f = history ++ pcm`` (W int16 samples); the new history is ``f[H:]``.
2. Window: ``p[i] = f[i] * window[i]`` (exact, ``|p| < 2^30``).
3. Block normalization: ``m = max |p|``, ``nb`` = bit length of m (0 for m = 0), ``g = 15 - nb``;
   ``v[i] = p[i] << g`` for ``g >= 0``, else ``rshift_round(p[i], -g)``. Then ``|v| <= 2^15``: quiet frames keep
   every bit (g > 0 is exact), loud ones round once to 16 bits.
4. Real FFT of v zero-padded to N, as an M-point complex FFT of ``z[n] = v[2n] + j v[2n+1]``: radix-2
   decimation in time (input in bit-reversed order), stages of length ``len = 2, 4, .., M``; butterfly
   ``(a, b) -> (a + t, a - t)``, ``t = b * tw`` with ``tw = cos(2 pi r / N) - j sin(2 pi r / N)``,
   ``r = 2 j M / len`` (j = position in the half): ``t.re = rshift_round(b.re c + b.im s, 30)``,
   ``t.im = rshift_round(b.im c - b.re s, 30)`` (c, s the Q30 table values, products in int64). No scaling:
   ``|Z| <= 2^24.5``, int32 holds every value.
5. Split (k = 0 .. M, ``Z[M] = Z[0]``): ``A = Z[k]``, ``B = conj Z[M - k]``, ``E = A + B``,
   ``O = -j (A - B)``, ``2X[k] = E + O * (cos - j sin)(2 pi k / N)`` with the same rounding
   (``re = E.re + rshift_round(O.re c + O.im s, 30)``, ``im = E.im + rshift_round(O.im c - O.re s, 30)``).
   ``|2X| <= 2^26``.
6. Power ``P[k] = rshift_round(re^2 + im^2, 6)`` (= |X|^2 / 16, int64, ``<= 2^46``; Parseval bounds the sum
   over k by 2^46, so every band sum below is ``< 2^61``).
7. Mel: ``S_b = sum_k q_b[k] P[k]`` (int64, exact). Then, in the real units (``mel = S_b * 2^(-71 - 2g)``), the
   eps is added at a common scale: ``g >= 0``: ``T = rshift_round(S_b, 2g) + E`` (units 2^-71);
   ``g < 0``: ``T = S_b + rshift_round(E, -2g)`` (units 2^(-71 - 2g)). ``T < 2^62``, ``T >= 1``.
8. log2 in Q20: ``e`` = bit length of T minus 1; ``r = T >> (e - 30)`` (floor) if ``e >= 30`` else
   ``T << (30 - e)``, so ``r`` in [2^30, 2^31); ``x = r - 2^30``, ``i = x >> 24``, ``u = x & (2^24 - 1)``;
   ``lf = L[i] + rshift_round((L[i+1] - L[i]) u, 24)`` (Q26); ``y = (e - 71 - 2 min(g, 0)) * 2^20 +
   rshift_round(lf, 6)``. ``y / 2^20`` is ``log2(mel + eps)`` within about 3e-5 (the table's interpolation error).
9. Output: ``out_b = sat8(requant(y - off_b, mult_b, shift_b) + zero_point)`` (edgemem.graph.intops.requant:
   single rounding, ties towards +inf, where the float pipeline rounds ties away from zero).

``logmel_log`` gives ``y * ln 2 / 2^20`` (the integer pipeline's ``ln(mel + eps)``) as float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgemem.data.audio import MelConfig, hann, mel_filterbank
from edgemem.errors import EdgememError
from edgemem.graph.intops import quantize_multiplier, requant, rshift_round, sat

TW_BITS = 30  # twiddles in Q30
LOG_SEG = 64  # log2 table segments
LOG_Q = 26  # log2 table format
Y_Q = 20  # log2 output format
P_SHIFT = 6  # power = |2X|^2 >> 6 = |X|^2 / 16
UNIT = 71  # mel = S * 2^(-UNIT - 2g): 30 (window Q15 x int16 full scale) * 2 - 4 (P_SHIFT - 2) + 15 (weights)


@dataclass(frozen=True)
class LogMelTables:
    window: np.ndarray  # t0 int16 [win], Q15
    t1: np.ndarray  # int32 [n_fft / 2 + 1 + 65]: cos Q30, then the log2 table Q26
    filterbank: np.ndarray  # t2 int16: per band start, count, Q15 weights
    band_quant: np.ndarray  # t3 int32 [3 * n_mels + 3]: (off, mult, shift) per band, zero_point, eps lo, eps hi
    win: int
    hop: int
    n_fft: int
    n_mels: int


def _q15(x: np.ndarray) -> np.ndarray:
    return np.minimum(32767, np.round(np.asarray(x, dtype=np.float64) * 32768)).astype(np.int64)


def check_dims(win: int, hop: int, n_fft: int, n_mels: int) -> None:
    """The C kernel's EM_ERR_DIMS rule."""
    if not (64 <= n_fft <= 1024 and n_fft & (n_fft - 1) == 0 and 1 <= win <= n_fft and 1 <= hop <= win
            and 1 <= n_mels <= 256):
        raise EdgememError(f"logmel: unsupported dims win {win}, hop {hop}, n_fft {n_fft}, n_mels {n_mels} "
                           f"(n_fft a power of two in [64, 1024], 1 <= hop <= win <= n_fft, 1 <= n_mels <= 256)")


def logmel_tables(cfg: MelConfig, mean: np.ndarray | None = None, std: np.ndarray | None = None,
                  input_scale: float = 1.0, zero_point: int = 0) -> LogMelTables:
    """Integer tables for ``cfg`` and the model input quantization ``((ln_mel - mean) / std) / input_scale``.

    mean / std None: 0 / 1 (the output is then ``quantize(ln_mel, input_scale)``).
    """
    cfg.check()
    win, hop, n_fft, n_mels = cfg.win, cfg.hop, cfg.fft_size, cfg.n_mels
    check_dims(win, hop, n_fft, n_mels)
    mean = np.zeros(n_mels) if mean is None else np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.ones(n_mels) if std is None else np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.size != n_mels or std.size != n_mels or not (np.isfinite(mean).all() and (std > 0).all()):
        raise EdgememError(f"logmel: mean and std need {n_mels} finite values, std positive")
    if not -128 <= zero_point <= 127:
        raise EdgememError(f"logmel: zero point {zero_point} is not an int8")
    e = round(cfg.eps * 2.0**UNIT)
    if not 2**32 <= e < 2**56:  # eps >= 2^-39: a loud frame's eps term stays >= 1 (the C parser's rule)
        raise EdgememError(f"logmel: eps {cfg.eps} is out of the integer front end's range")
    m = n_fft // 2
    cos = np.round(np.cos(2 * np.pi * np.arange(m + 1) / n_fft) * 2.0**TW_BITS).astype(np.int64)
    logt = np.round(np.log2(1 + np.arange(LOG_SEG + 1) / LOG_SEG) * 2.0**LOG_Q).astype(np.int64)
    fb = mel_filterbank(cfg)
    parts = []
    for b in range(n_mels):
        q = _q15(fb[b])
        nz = np.flatnonzero(q)
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 0)
        parts += [[lo, hi - lo], q[lo:hi]]
    bq = []
    for b in range(n_mels):
        mult, shift = quantize_multiplier(math.log(2) / (std[b] * input_scale * 2.0**Y_Q))
        bq += [round(mean[b] / math.log(2) * 2.0**Y_Q), mult, shift]
    lo32 = e & 0xFFFFFFFF
    bq += [zero_point, lo32 - (1 << 32) if lo32 >= 1 << 31 else lo32, e >> 32]
    tabs = LogMelTables(_q15(hann(win)).astype(np.int16), np.concatenate([cos, logt]).astype(np.int32),
                        np.concatenate(parts).astype(np.int16), np.asarray(bq, dtype=np.int64).astype(np.int32),
                        win, hop, n_fft, n_mels)
    for a in (tabs.window, tabs.t1, tabs.filterbank, tabs.band_quant):
        a.setflags(write=False)
    return tabs


def _bitlen(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values < 2^62 (0 for 0), exact."""
    x = np.asarray(x, dtype=np.int64)
    n = np.zeros(x.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = (x >> s) > 0
        n = np.where(big, n + s, n)
        x = np.where(big, x >> s, x)
    return n + (x > 0)


def _bitrev(m: int) -> np.ndarray:
    bits = m.bit_length() - 1
    r = np.zeros(m, dtype=np.int64)
    for i in range(bits):
        r |= ((np.arange(m) >> i) & 1) << (bits - 1 - i)
    return r


def _cmul(br: np.ndarray, bi: np.ndarray, c: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """b * (c - j s) in Q30, each part rounded once."""
    return rshift_round(br * c + bi * s, TW_BITS), rshift_round(bi * c - br * s, TW_BITS)


def _log2_q20(tabs: LogMelTables, frames: np.ndarray) -> np.ndarray:
    """int16 frames [..., W] -> y [..., n_mels] int64: log2(mel + eps) in Q20 (steps 2-8 of the docstring)."""
    n, m = tabs.n_fft, tabs.n_fft // 2
    cos = tabs.t1[: m + 1].astype(np.int64)
    sin = cos[np.abs(m // 2 - np.arange(m + 1))]
    logt = tabs.t1[m + 1 :].astype(np.int64)
    p = frames.astype(np.int64) * tabs.window.astype(np.int64)
    g = 15 - _bitlen(np.abs(p).max(axis=-1))  # [...]
    gg = g[..., None]
    v = np.where(gg >= 0, p << np.maximum(gg, 0), rshift_round(p, np.maximum(-gg, 1)))
    v = np.concatenate([v, np.zeros(v.shape[:-1] + (n - tabs.win,), dtype=np.int64)], axis=-1)
    zr, zi = v[..., 0::2][..., _bitrev(m)], v[..., 1::2][..., _bitrev(m)]
    length = 2
    while length <= m:
        half = length // 2
        shp = zr.shape[:-1] + (m // length, 2, half)
        zr, zi = zr.reshape(shp), zi.reshape(shp)
        r = np.arange(half) * (n // length)
        tr, ti = _cmul(zr[..., 1, :], zi[..., 1, :], cos[r], sin[r])
        ar, ai = zr[..., 0, :], zi[..., 0, :]
        zr = np.stack([ar + tr, ar - tr], axis=-2).reshape(shp[:-3] + (m,))
        zi = np.stack([ai + ti, ai - ti], axis=-2).reshape(shp[:-3] + (m,))
        length *= 2
    k = np.arange(m + 1)
    ar, ai = zr[..., k % m], zi[..., k % m]
    br, bi = zr[..., (m - k) % m], -zi[..., (m - k) % m]
    er, ei = ar + br, ai + bi
    orr, oi = ai - bi, -(ar - br)  # -j (A - B)
    tr, ti = _cmul(orr, oi, cos, sin)
    xr, xi = er + tr, ei + ti
    power = rshift_round(xr * xr + xi * xi, P_SHIFT)  # [..., M + 1]
    fb = tabs.filterbank.astype(np.int64)
    sums, pos = [], 0
    for _ in range(tabs.n_mels):
        lo, cnt = int(fb[pos]), int(fb[pos + 1])
        sums.append(power[..., lo : lo + cnt] @ fb[pos + 2 : pos + 2 + cnt])
        pos += 2 + cnt
    s = np.stack(sums, axis=-1)  # [..., n_mels]
    bq = tabs.band_quant.astype(np.int64)
    e = (bq[3 * tabs.n_mels + 1] & 0xFFFFFFFF) | (bq[3 * tabs.n_mels + 2] << 32)
    # shifts clamped to >= 1 in the unselected lanes; g = 0 adds without a shift
    t_pos = np.where(gg > 0, rshift_round(s, np.maximum(2 * gg, 1)), s) + e
    t_neg = s + rshift_round(np.full_like(s, e), np.maximum(-2 * gg, 1))
    t = np.where(gg >= 0, t_pos, t_neg)
    ex = _bitlen(t) - 1
    r = np.where(ex >= 30, t >> np.maximum(ex - 30, 0), t << np.maximum(30 - ex, 0))
    x = r - (1 << 30)
    i, u = x >> 24, x & ((1 << 24) - 1)
    lf = logt[i] + rshift_round((logt[np.minimum(i + 1, LOG_SEG)] - logt[i]) * u, 24)
    return (ex - UNIT - 2 * np.minimum(gg, 0)) * (1 << Y_Q) + rshift_round(lf, LOG_Q - Y_Q)


def _quant(tabs: LogMelTables, y: np.ndarray) -> np.ndarray:
    bq = tabs.band_quant.astype(np.int64)
    nm = tabs.n_mels
    off, mult, shift = bq[0 : 3 * nm : 3], bq[1 : 3 * nm : 3], bq[2 : 3 * nm : 3]
    return sat(requant(y - off, mult, shift) + bq[3 * nm], 8).astype(np.int8)


def logmel_int8(tabs: LogMelTables, frames: np.ndarray) -> np.ndarray:
    """Whole frames int16 values [..., W] (history ++ pcm) -> int8 [..., n_mels]: steps 2-9 (the LOGMEL op)."""
    return _quant(tabs, _log2_q20(tabs, np.asarray(frames, dtype=np.int64)))


def logmel_frame(tabs: LogMelTables, history: np.ndarray, pcm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame: history int16 [W - H] and pcm int16 [H] -> (int8 [n_mels], the new history int16 [W - H])."""
    history, pcm = np.asarray(history, dtype=np.int16), np.asarray(pcm, dtype=np.int16)
    if history.shape != (tabs.win - tabs.hop,) or pcm.shape != (tabs.hop,):
        raise EdgememError(f"logmel_frame wants history [{tabs.win - tabs.hop}] and pcm [{tabs.hop}], got "
                           f"{history.shape} and {pcm.shape}")
    f = np.concatenate([history, pcm])
    return _quant(tabs, _log2_q20(tabs, f[None])[0]), f[tabs.hop :].copy()


def _frames(tabs: LogMelTables, pcm: np.ndarray) -> np.ndarray:
    a = np.asarray(pcm)
    if a.ndim == 1:
        a = a[None]
    if a.dtype != np.int16 or a.ndim != 2 or a.shape[1] < tabs.hop:
        raise EdgememError(f"logmel wants int16 PCM [clips][samples] with at least one hop, got {a.dtype} {a.shape}")
    n = a.shape[1] // tabs.hop
    a = np.pad(a[:, : n * tabs.hop], ((0, 0), (tabs.win - tabs.hop, 0)))
    view = np.lib.stride_tricks.sliding_window_view(a, tabs.win, axis=-1)
    return view[:, : n * tabs.hop : tabs.hop, :]


def _batched(tabs: LogMelTables, pcm: np.ndarray, fn, batch: int = 64) -> np.ndarray:
    fr = _frames(tabs, pcm)
    return np.concatenate([fn(_log2_q20(tabs, fr[i : i + batch])) for i in range(0, fr.shape[0], batch)])


def logmel_stream(tabs: LogMelTables, pcm: np.ndarray) -> np.ndarray:
    """int16 PCM [clips][S] -> int8 [clips][S // H][n_mels], each clip from a zero history (silence before it)."""
    return _batched(tabs, pcm, lambda y: _quant(tabs, y))


def logmel_log(tabs: LogMelTables | MelConfig, pcm: np.ndarray) -> np.ndarray:
    """The integer pipeline's ln(mel + eps) before normalization, float32 [clips][S // H][n_mels]."""
    if isinstance(tabs, MelConfig):
        tabs = logmel_tables(tabs)
    return _batched(tabs, pcm, lambda y: (y * (math.log(2) / 2.0**Y_Q)).astype(np.float32))
