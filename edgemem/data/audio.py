"""Log-mel front end in NumPy: the exact computation a C front end on the device has to reproduce.

Definitions (``fs`` sample rate, ``W`` window length, ``H`` hop, ``K = n_fft // 2 + 1`` frequency bins):

- Input: float audio ``a[n]`` in [-1, 1) (int16 PCM / 32768), ``n = 0 .. S-1``.
- Lengths: ``W = round(win_ms * fs / 1000)`` (30 ms -> 480), ``H = round(hop_ms * fs / 1000)`` (20 ms -> 320),
  ``n_fft`` = the smallest power of two >= W unless given (512).
- Causal frames: frame ``t = 0 .. S // H - 1`` holds the W samples that end at the end of hop ``t``:
  ``f_t[i] = a[(t + 1) H - W + i]`` for ``i = 0 .. W-1``, with ``a[n] = 0`` for ``n < 0`` (before the stream
  starts there is silence). A 1 s clip at 16 kHz has 16000 // 320 = 50 frames. A stream produces one frame
  every H new samples from a ring buffer of the last W samples; no sample after the hop is ever needed.
- Window: periodic Hann, ``w[i] = 0.5 - 0.5 cos(2 pi i / W)``.
- Spectrum: the windowed frame zero-padded to n_fft, ``X_t[k] = sum_i w[i] f_t[i] exp(-2 pi j i k / n_fft)``,
  power ``P_t[k] = |X_t[k]|^2`` (no 1/n_fft scaling), ``k = 0 .. K-1``, bin frequency ``k fs / n_fft``.
- Mel scale: HTK, ``mel(f) = 2595 log10(1 + f / 700)``, ``f(m) = 700 (10^(m / 2595) - 1)``.
- Filterbank: ``n_mels + 2`` edges ``e_0 .. e_{n_mels+1}`` equally spaced in mel from ``mel(f_min)`` to
  ``mel(f_max)`` and mapped back to Hz; filter ``b`` (``b = 0 .. n_mels-1``) is the triangle
  ``F[b][k] = max(0, min((f_k - e_b) / (e_{b+1} - e_b), (e_{b+2} - f_k) / (e_{b+2} - e_{b+1})))`` on the bin
  frequencies ``f_k``: peak 1 at ``e_{b+1}``, no area normalization (librosa's ``mel(htk=True, norm=None)``).
- Output: ``x_t[b] = ln(sum_k F[b][k] P_t[k] + eps)`` with eps = 1e-6, float32, shape [clips][frames][n_mels].
  Computed in float64 and rounded once to float32 at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgemem.errors import EdgememError


@dataclass(frozen=True)
class MelConfig:
    """Front-end parameters; the defaults give 50 frames x 32 mel bands per 1 s clip at 16 kHz."""

    sample_rate: int = 16000
    win_ms: float = 30.0
    hop_ms: float = 20.0
    n_fft: int | None = None  # None: the smallest power of two >= the window
    n_mels: int = 32
    f_min: float = 20.0
    f_max: float | None = None  # None: fs / 2
    eps: float = 1e-6

    @property
    def win(self) -> int:
        return round(self.win_ms * self.sample_rate / 1000)

    @property
    def hop(self) -> int:
        return round(self.hop_ms * self.sample_rate / 1000)

    @property
    def fft_size(self) -> int:
        return self.n_fft if self.n_fft is not None else 1 << max(self.win - 1, 1).bit_length()

    @property
    def top(self) -> float:
        return self.f_max if self.f_max is not None else self.sample_rate / 2

    def frames(self, n_samples: int) -> int:
        return n_samples // self.hop

    def check(self) -> None:
        for name in ("sample_rate", "n_mels", "n_fft"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool)) and not (name == "n_fft" and v is None):
                raise EdgememError(f"mel front end: {name} must be an integer, got {v!r}")
        if self.sample_rate <= 0 or self.win <= 0 or self.hop <= 0:
            raise EdgememError(f"mel front end: sample rate, window and hop must be positive, got {self}")
        if self.fft_size < self.win:
            raise EdgememError(f"mel front end: n_fft ({self.fft_size}) is shorter than the window ({self.win})")
        if self.n_mels < 1:
            raise EdgememError(f"mel front end: n_mels must be >= 1, got {self.n_mels}")
        if not 0 <= self.f_min < self.top <= self.sample_rate / 2:
            raise EdgememError(f"mel front end: need 0 <= f_min < f_max <= fs/2, got {self.f_min}, {self.top}")
        if self.eps <= 0:
            raise EdgememError(f"mel front end: eps must be positive, got {self.eps}")
        # A filter narrower than the bin spacing can fall between bins and be all zero: log(eps) forever.
        edges = mel_to_hz(np.linspace(hz_to_mel(self.f_min), hz_to_mel(self.top), self.n_mels + 2))
        if np.min(np.diff(edges)) * 2 < self.sample_rate / self.fft_size:
            raise EdgememError(f"mel front end: {self.n_mels} mel bands are too narrow for n_fft {self.fft_size} "
                               f"(fewer bands or a larger n_fft)")


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def hann(n: int) -> np.ndarray:
    """Periodic Hann window (the DFT-even one used for spectral analysis)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """[n_mels][n_fft // 2 + 1] float64 triangular HTK filters (see the module docstring)."""
    cfg.check()
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.top), cfg.n_mels + 2))
    f = np.arange(cfg.fft_size // 2 + 1) * cfg.sample_rate / cfg.fft_size
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((f - lo) / (mid - lo), (hi - f) / (hi - mid)))


def frame_signal(audio: np.ndarray, win: int, hop: int) -> np.ndarray:
    """[..., S] -> [..., S // hop, win] causal frames (zeros before the first sample), a copy."""
    pad = [(0, 0)] * (audio.ndim - 1) + [(win - hop, 0)] if win > hop else None
    a = np.pad(audio, pad) if pad else audio[..., hop - win :]
    n = audio.shape[-1] // hop
    view = np.lib.stride_tricks.sliding_window_view(a, win, axis=-1)
    return np.ascontiguousarray(view[..., : n * hop : hop, :])


def log_mel(audio: np.ndarray, cfg: MelConfig | None = None, batch: int = 256) -> np.ndarray:
    """Audio [clips][samples] (or [samples]) in [-1, 1) -> log-mel features [clips][frames][n_mels] float32."""
    cfg = cfg or MelConfig()
    fb = mel_filterbank(cfg).T  # [K][n_mels]
    a = np.asarray(audio)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] < cfg.hop:
        raise EdgememError(f"log_mel wants audio [clips][samples] with at least one hop ({cfg.hop}), got {a.shape}")
    w = hann(cfg.win)
    out = np.empty((a.shape[0], cfg.frames(a.shape[1]), cfg.n_mels), dtype=np.float32)
    for i in range(0, a.shape[0], batch):  # bounded memory: 256 clips x 50 frames x 257 complex bins at a time
        frames = frame_signal(a[i : i + batch].astype(np.float64), cfg.win, cfg.hop) * w
        power = np.abs(np.fft.rfft(frames, n=cfg.fft_size, axis=-1)) ** 2
        out[i : i + batch] = np.log(power @ fb + cfg.eps)
    return out
