"""The sensor input stage in integers: raw sensor samples in, the model's int8 input out (the SENSOR op).

This module is the specification; `firmware/src/kernels/sensor_s16.c` is its C copy, tested bit for bit.

A sensor delivers int16 counts: ``x = count * lsb[c]`` in physical units, ``lsb[c] = full_scale[c] / 32768`` (an
accelerometer at +-8 g has full scale 8 g). The model was trained on windows averaged over ``D`` samples per step
(``downsample``), normalized per channel (``(x - mean) / std``) and quantized to int8 with the input scale ``s``:
``q = round(((mean_D(x) - mean) / std) / s)``. In integers, for one step (``D`` samples of ``C`` channels):

    sum[c]  = sum_{d < D} counts[d][c]                          exact int32 (|sum| <= D * 32768 <= 2^25)
    v[c]    = sum[c] - offset[c]                                offset[c] = round_half_even(D * mean[c] / lsb[c])
    out[c]  = sat8(requant(v[c], mult[c], shift[c]))            mult * 2^-shift = lsb[c] / (D * std[c] * s)

``requant`` is edgemem's single-rounding rule (edgemem.graph.intops.requant: ``(v * M + 2^(s-1)) >> s``, ties
towards +inf, M in [2^30, 2^31)). Against the float formula the result differs only where the float value lies
within about 2^-22 of a rounding boundary, or where the offset's rounding (half a count) moves it across one.

Float sensor values (a driver that reports m/s^2 or g) become counts first, in float32 exactly as the C helper
``em_sensor_counts_f32`` computes them: ``y = float32(x) * float32(1 / lsb)`` (one IEEE single multiply, correctly
rounded), then ``count = sat16(round_half_away(y))``. A NaN or infinite value is an error, never a count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError
from edgemem.graph.intops import quantize_multiplier, requant, sat

FULL_SCALE_COUNTS = 32768  # an int16 sensor reading: full scale maps to 2^15 counts


@dataclass(frozen=True)
class SensorTables:
    """The SENSOR op's parameters exactly as the C kernel gets them (blob tensors t0..t2, dims d0..d1)."""

    channels: int  # C
    decim: int  # D: samples summed per model step
    offset: np.ndarray  # int32 [C], in units of summed counts
    mult: np.ndarray  # int32 [C], in [2^30, 2^31)
    shift: np.ndarray  # int8 [C], in [1, 62]
    lsb: np.ndarray  # float32 [C]: physical units per count (not in the blob: model.h states it for float input)

    @property
    def inv_lsb(self) -> np.ndarray:
        """float32 counts per physical unit: the factor em_sensor_counts_f32 multiplies by."""
        return (np.float32(1.0) / self.lsb.astype(np.float32)).astype(np.float32)


def sensor_tables(mean: np.ndarray, std: np.ndarray, input_scale: float, full_scale: np.ndarray,
                  decim: int) -> SensorTables:
    """Fold decimation, normalization and int8 quantization into per-channel integers (module docstring)."""
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    fs = np.asarray(full_scale, dtype=np.float64).reshape(-1)
    c = mean.size
    if std.size != c or fs.size != c:
        raise EdgememError(f"sensor stage: mean ({mean.size}), std ({std.size}) and full scale ({fs.size}) need one "
                           "value per channel")
    if not 1 <= decim <= 1024:
        raise EdgememError(f"sensor stage: downsample must be in [1, 1024], got {decim}")
    if not (np.isfinite(fs).all() and (fs > 0).all()):
        raise EdgememError(f"sensor stage: every full scale must be positive and finite, got {fs.tolist()}")
    if not (np.isfinite(std).all() and (std > 0).all() and np.isfinite(mean).all()):
        raise EdgememError("sensor stage: the normalizer's mean and std must be finite, std positive")
    if not (math.isfinite(input_scale) and input_scale > 0):
        raise EdgememError(f"sensor stage: input scale must be positive, got {input_scale}")
    lsb = (fs / FULL_SCALE_COUNTS).astype(np.float32)
    lsb64 = lsb.astype(np.float64)  # the float32 lsb is the one the device uses: fold exactly that
    offset = np.rint(decim * mean / lsb64)
    if (np.abs(offset) >= 2**31).any():
        raise EdgememError("sensor stage: a channel's mean is far outside its full scale (offset overflows int32)")
    pairs = [quantize_multiplier(float(lsb64[k] / (decim * std[k] * input_scale))) for k in range(c)]
    return SensorTables(c, decim, offset.astype(np.int64), np.array([m for m, _ in pairs], dtype=np.int64),
                        np.array([s for _, s in pairs], dtype=np.int64), lsb)


def sensor_stage(t: SensorTables, counts: np.ndarray) -> np.ndarray:
    """counts [..., D, C] int16 values -> int8 values [..., C] (int64), the SENSOR op."""
    x = np.asarray(counts)
    if x.shape[-2:] != (t.decim, t.channels):
        raise EdgememError(f"sensor stage wants [..., {t.decim}, {t.channels}] counts, got shape {x.shape}")
    x = x.astype(np.int64)
    if x.size and (x.min() < -32768 or x.max() > 32767):
        raise EdgememError("sensor stage: counts outside int16")
    total = x.sum(axis=-2)
    return sat(requant(sat(total - t.offset, 32), t.mult, t.shift), 8)


def counts_from_float(x: np.ndarray, inv_lsb: np.ndarray) -> np.ndarray:
    """Physical values [..., C] -> int16 counts [..., C] (int64), as em_sensor_counts_f32: float32 multiply, round
    half away from zero, saturate. NaN or infinity raises (the C helper returns EM_ERR_VALUE)."""
    v = np.asarray(x, dtype=np.float32)
    if not np.isfinite(v).all():
        bad = np.argwhere(~np.isfinite(v))[0]
        raise EdgememError(f"sensor value at index {tuple(int(i) for i in bad)} is {v[tuple(bad)]} (NaN or infinite "
                           "values cannot be quantized)")
    y = (v * np.asarray(inv_lsb, dtype=np.float32)).astype(np.float32)
    y = np.clip(y, np.float32(-32768.0), np.float32(32767.0))  # saturate first: the cast below is then exact
    t = np.trunc(y)
    r = t + np.where(y - t >= 0.5, 1, 0) - np.where(y - t <= -0.5, 1, 0)
    return sat(r.astype(np.int64), 16)
