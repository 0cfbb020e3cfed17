"""Synthetic keyword spotting in the style of Speech Commands, spoken by Debian's espeak-ng (no downloads).

Ten words (yes, no, up, down, left, right, on, off, stop, go). A *speaker* is one (English accent, voice variant)
pair, e.g. ``en-gb-scotland+f3``; speakers are numbered from 1 in accent-major order and become the ``subject`` of
every clip, so ``split_by_subject`` keeps a speaker's clips in one split (``split_speakers`` picks the splits).
Accents and variants are crossed, so a held-out speaker's accent and variant each also occur in training, in
other pairs: the split is speaker-disjoint, not accent- or variant-disjoint.

One clip: espeak-ng speaks the word at a random speed (``-s``, words per minute) and pitch (``-p``); the 22050 Hz
output is resampled to 16 kHz (``resample_poly``), its leading and trailing silence is trimmed, and the word is
placed at a random onset inside a 1 s clip. Background noise (two coloured-noise components with random spectral
slopes, sometimes mains hum, a slow amplitude wobble; all from the clip's seeded RNG) is added at a random SNR,
where SNR = mean power of the speech over the word's samples / mean power of the noise over the whole clip. The
mixture is scaled to a random peak level and stored as 16-bit PCM.

Every random draw comes from ``np.random.default_rng([seed, clip])``, so a clip depends only on the seed, the
parameters and its index, never on how clips are shared among worker processes: the same seed and parameters
give identical arrays. Clips are cached under ``<cache>/kws/<hash of the parameters and espeak-ng version>/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import re
import shutil
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

from edgemem.atomic import write_atomic
from edgemem.data.audio import MelConfig, log_mel
from edgemem.data.windows import Recordings, Windows
from edgemem.errors import EdgememError

WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# espeak-ng's own English accents (the mbrola "en" voices need the separate mbrola synthesizer, so they are left out).
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
           "en-us-nyc")
# Variants that change the voice (formants, breathiness, pitch range) rather than add effects such as echo.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
            "klatt3", "croak", "whisper", "grandma", "grandpa")
ESPEAK_RATE = 22050
# Part of the cache key: bump it whenever the synthesis below changes, so that stale caches are not reused.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class KwsConfig:
    """Everything that determines the clips (and the cache key). Ranges are inclusive (lo, hi) uniform draws."""

    seed: int = 0
    clips_per_word: int = 3  # per speaker: 8 accents x 20 variants x 10 words x 3 = 4800 clips
    words: tuple[str, ...] = WORDS
    accents: tuple[str, ...] = ACCENTS
    variants: tuple[str, ...] = VARIANTS
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    speed_wpm: tuple[int, int] = (120, 220)  # espeak-ng -s
    pitch: tuple[int, int] = (20, 80)  # espeak-ng -p, 0-99 (50 is the voice's own)
    snr_db: tuple[float, float] = (5.0, 30.0)
    peak: tuple[float, float] = (0.1, 0.9)  # peak level of the mixture, fraction of int16 full scale

    @property
    def clip_samples(self) -> int:
        return round(self.clip_seconds * self.sample_rate)

    def check(self) -> None:
        def bad(msg: str) -> EdgememError:
            return EdgememError(f"kws: {msg}")

        for name in ("seed", "clips_per_word", "sample_rate"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise bad(f"{name} must be a non-negative integer, got {v!r}")
        if self.clips_per_word < 1:
            raise bad(f"clips_per_word must be >= 1, got {self.clips_per_word}")
        for name in ("words", "accents", "variants"):
            v = getattr(self, name)
            if not v or len(set(v)) != len(v) or not all(isinstance(s, str) and s for s in v):
                raise bad(f"{name} must be distinct non-empty strings, got {list(v)}")
        if any(not re.fullmatch(r"[a-z' ]+", w) for w in self.words):
            raise bad(f"words must be lower-case letters, got {list(self.words)}")
        if self.sample_rate < 8000 or self.clip_samples < self.sample_rate // 10:
            raise bad(f"need sample_rate >= 8000 and clips of at least 0.1 s, got {self.sample_rate}, "
                      f"{self.clip_seconds}")
        for name, lo_ok, hi_ok in (("speed_wpm", 80, 450), ("pitch", 0, 99), ("snr_db", -20, 100), ("peak", 1e-3, 1)):
            r = getattr(self, name)
            if len(r) != 2 or not lo_ok <= r[0] <= r[1] <= hi_ok:
                raise bad(f"{name} must be [lo, hi] with {lo_ok} <= lo <= hi <= {hi_ok}, got {list(r)}")

    def key(self, espeak_version: str) -> str:
        spec = {"config": asdict(self), "espeak": espeak_version, "generator": GENERATOR_VERSION}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Speaker:
    id: int  # 1-based, the clips' subject
    accent: str
    variant: str

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"


def speakers(cfg: KwsConfig) -> list[Speaker]:
    """All (accent, variant) pairs, numbered from 1 in accent-major order."""
    return [Speaker(1 + a * len(cfg.variants) + v, accent, variant)
            for a, accent in enumerate(cfg.accents) for v, variant in enumerate(cfg.variants)]


@dataclass(frozen=True)
class SpeakerSplit:
    train: list[int]
    val: list[int]
    test: list[int]


def split_speakers(speaker_ids: Sequence[int], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                   seed: int = 0) -> SpeakerSplit:
    """Deal speakers into train/val/test by fraction after a seeded shuffle; each list sorted.

    val and test get ``round(fraction * n)`` speakers (at least one when their fraction is positive); train gets
    the rest. Same ids, fractions and seed -> same split.
    """
    ids = sorted({int(s) for s in speaker_ids})
    if len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0 or not math.isclose(sum(fractions), 1.0):
        raise EdgememError(f"speaker fractions must be (train > 0, val >= 0, test >= 0) summing to 1, got {fractions}")
    n = len(ids)
    n_val, n_test = (max(1, round(f * n)) if f > 0 else 0 for f in fractions[1:])
    if n - n_val - n_test < 1:
        raise EdgememError(f"{n} speakers cannot be split {fractions} with at least one per non-empty split")
    order = [ids[i] for i in np.random.default_rng(seed).permutation(n)]
    return SpeakerSplit(sorted(order[n_val + n_test :]), sorted(order[:n_val]), sorted(order[n_val : n_val + n_test]))


@dataclass(frozen=True)
class KwsClips:
    """Generated clips; per clip: audio and what was drawn for it."""

    audio: np.ndarray  # [n][clip_samples] int16 PCM
    label: np.ndarray  # [n] int64, index into words
    speaker: np.ndarray  # [n] int64, Speaker.id
    onset: np.ndarray  # [n] int64, first sample of the (trimmed) word in the clip
    length: np.ndarray  # [n] int64, samples of the word in the clip
    snr_db: np.ndarray  # [n] float64, as drawn (speech over the word vs noise over the clip)
    speed_wpm: np.ndarray  # [n] int64
    pitch: np.ndarray  # [n] int64
    words: tuple[str, ...]
    speakers: tuple[Speaker, ...]

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def float_audio(self) -> np.ndarray:
        return (self.audio.astype(np.float32) / 32768.0).astype(np.float32)


# --- espeak-ng -----------------------------------------------------------------------------------------------------


def _espeak(*args: str) -> bytes:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EdgememError("espeak-ng is not installed (make setup installs it)")
    try:
        return subprocess.run([exe, *args], capture_output=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as e:
        raise EdgememError(f"espeak-ng {' '.join(args)} failed: {e.stderr.decode(errors='replace').strip()}") from None


@cache
def espeak_version() -> str:
    out = _espeak("--version").decode(errors="replace")
    m = re.search(r"text-to-speech:\s*(\S+)", out)
    return m.group(1) if m else out.split("Data at")[0].strip()


@cache
def _installed_voices() -> tuple[frozenset[str], frozenset[str]]:
    """Languages of espeak-ng's own English voices and the variant names (the file column without '!v/')."""

    def rows(text: bytes) -> list[list[str]]:
        return [line.split() for line in text.decode(errors="replace").splitlines()[1:] if line.strip()]

    # Columns: Pty Language Age/Gender VoiceName File [Other languages]; mbrola voices live under mb/.
    accents = {r[1] for r in rows(_espeak("--voices=en")) if len(r) >= 5 and not r[4].startswith("mb/")}
    variants = {r[4].removeprefix("!v/") for r in rows(_espeak("--voices=variant")) if len(r) >= 5}
    return frozenset(accents), frozenset(variants)


def check_voices(cfg: KwsConfig) -> None:
    """espeak-ng falls back to a default voice for an unknown name without a word, so check the names first."""
    accents, variants = _installed_voices()
    for kind, want, have in (("accents", cfg.accents, accents), ("variants", cfg.variants, variants)):
        missing = [v for v in want if v not in have]
        if missing:
            raise EdgememError(f"kws: espeak-ng {espeak_version()} has no {kind} {missing}")


def read_espeak_wav(data: bytes) -> tuple[np.ndarray, int]:
    """int16 samples and rate of espeak-ng's --stdout WAV. Its RIFF and data sizes are placeholders (the stream
    length is unknown when the header is written), so the samples are everything after the data chunk's header."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EdgememError("espeak-ng did not write a WAV stream")
    pos, rate = 12, 0
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if tag == b"fmt ":
            channels, rate, bits = (int.from_bytes(data[pos + 10 : pos + 12], "little"),
                                    int.from_bytes(data[pos + 12 : pos + 16], "little"),
                                    int.from_bytes(data[pos + 22 : pos + 24], "little"))
            if channels != 1 or bits != 16:
                raise EdgememError(f"espeak-ng wrote {channels} channels of {bits} bits, expected mono 16-bit")
        elif tag == b"data":
            body = data[pos + 8 :]
            return np.frombuffer(body[: len(body) // 2 * 2], dtype="<i2").astype(np.int16), rate
        pos += 8 + size + (size & 1)
    raise EdgememError("espeak-ng's WAV stream has no data chunk")


# --- one clip ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    index: int
    seed: int
    voice: str
    word: str
    speed: int
    pitch: int
    onset_u: float  # onset = floor(onset_u * (free samples + 1))
    snr_db: float
    peak: float
    sample_rate: int
    clip_samples: int


def coloured_noise(rng: np.random.Generator, n: int, sample_rate: int) -> np.ndarray:
    """Unit-power background: two 1/f^beta components (beta in [0, 2]: white to brown), mains hum (50 or 60 Hz
    and harmonics) in 30 % of clips, and a slow amplitude wobble. High-passed at 20 Hz like a microphone."""
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = np.zeros_like(f)
    shape[f >= 20.0] = 1.0
    out = np.zeros(n)
    for _ in range(2):
        beta = rng.uniform(0.0, 2.0)
        spec = (rng.normal(size=f.size) + 1j * rng.normal(size=f.size)) * shape * np.maximum(f, 20.0) ** (-beta / 2)
        c = np.fft.irfft(spec, n)
        out += rng.uniform(0.2, 1.0) * c / c.std()
    t = np.arange(n) / sample_rate
    if rng.random() < 0.3:
        mains = rng.choice([50.0, 60.0])
        hum = sum(rng.uniform(0.0, 1.0) / h * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 2 * np.pi))
                  for h in (1, 2, 3))
        out += rng.uniform(0.1, 0.7) * out.std() * hum / np.std(hum)
    out *= 1.0 + rng.uniform(0.0, 0.4) * np.sin(2 * np.pi * rng.uniform(0.3, 3.0) * t + rng.uniform(0, 2 * np.pi))
    return out / np.sqrt(np.mean(out**2))


def _speech(job: _Job) -> np.ndarray:
    """The word at job.sample_rate, float in [-1, 1), silence trimmed, at most one clip long."""
    raw, rate = read_espeak_wav(_espeak("-v", job.voice, "-s", str(job.speed), "-p", str(job.pitch), "--stdout",
                                        job.word))
    g = math.gcd(job.sample_rate, rate)
    x = resample_poly(raw.astype(np.float64) / 32768.0, job.sample_rate // g, rate // g)
    # espeak-ng pads the word with digital silence; the resampler's ringing stays far below 1e-3 of the peak.
    loud = np.flatnonzero(np.abs(x) > 1e-3 * np.max(np.abs(x)))
    if loud.size == 0:
        raise EdgememError(f"espeak-ng produced silence for {job.word!r} with voice {job.voice}")
    return x[loud[0] : loud[-1] + 1][: job.clip_samples]


def render_clip(job: _Job) -> tuple[np.ndarray, int, int]:
    """(int16 clip, onset, length) for one job; deterministic given the job."""
    rng = np.random.default_rng([job.seed, job.index])
    word = _speech(job)
    onset = int(job.onset_u * (job.clip_samples - word.size + 1))
    speech = np.zeros(job.clip_samples)
    speech[onset : onset + word.size] = word
    noise = coloured_noise(rng, job.clip_samples, job.sample_rate)
    p_speech = float(np.mean(word**2))
    mix = speech + noise * math.sqrt(p_speech / 10.0 ** (job.snr_db / 10.0))
    mix *= job.peak / np.max(np.abs(mix))
    return np.clip(np.round(mix * 32767.0), -32768, 32767).astype(np.int16), onset, int(word.size)


# --- the data set --------------------------------------------------------------------------------------------------


def _jobs(cfg: KwsConfig) -> tuple[list[_Job], np.ndarray, np.ndarray]:
    """Clip order: speaker, then word, then repetition. Returns jobs, labels, speaker ids."""
    jobs, labels, spk = [], [], []
    for s in speakers(cfg):
        for w, word in enumerate(cfg.words):
            for _ in range(cfg.clips_per_word):
                i = len(jobs)
                # The parameters come from a different stream ([seed, clip, 1]) than the clip's noise ([seed, clip]).
                r = np.random.default_rng([cfg.seed, i, 1])
                jobs.append(_Job(
                    index=i, seed=cfg.seed, voice=s.voice, word=word,
                    speed=int(r.integers(cfg.speed_wpm[0], cfg.speed_wpm[1] + 1)),
                    pitch=int(r.integers(cfg.pitch[0], cfg.pitch[1] + 1)),
                    onset_u=float(r.random()), snr_db=float(r.uniform(*cfg.snr_db)), peak=float(r.uniform(*cfg.peak)),
                    sample_rate=cfg.sample_rate, clip_samples=cfg.clip_samples))
                labels.append(w)
                spk.append(s.id)
    return jobs, np.asarray(labels, dtype=np.int64), np.asarray(spk, dtype=np.int64)


def generate_clips(cfg: KwsConfig, workers: int = 2) -> KwsClips:
    """Synthesize every clip (no cache); ``workers`` > 1 uses a pool of spawned processes."""
    cfg.check()
    check_voices(cfg)
    jobs, labels, spk = _jobs(cfg)
    if workers > 1:
        # spawn, not fork: the caller may hold torch's threads, which a forked child would inherit half-locked.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            rendered = list(ex.map(render_clip, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        rendered = [render_clip(j) for j in jobs]
    return KwsClips(
        audio=np.stack([r[0] for r in rendered]),
        label=labels,
        speaker=spk,
        onset=np.asarray([r[1] for r in rendered], dtype=np.int64),
        length=np.asarray([r[2] for r in rendered], dtype=np.int64),
        snr_db=np.asarray([j.snr_db for j in jobs]),
        speed_wpm=np.asarray([j.speed for j in jobs], dtype=np.int64),
        pitch=np.asarray([j.pitch for j in jobs], dtype=np.int64),
        words=cfg.words,
        speakers=tuple(speakers(cfg)),
    )


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The argument, else edgemem's cache: $EDGEMEM_CACHE, else <checkout>/.cache (gitignored), else (installed from a
    wheel) $XDG_CACHE_HOME/edgemem or ~/.cache/edgemem (edgemem.tool.cache_dir)."""
    from edgemem.tool import cache_dir as tool_cache

    return Path(cache_dir) if cache_dir is not None else tool_cache()


_ARRAYS = ("audio", "label", "speaker", "onset", "length", "snr_db", "speed_wpm", "pitch")


def _save(path: Path, clips: KwsClips, cfg: KwsConfig) -> None:
    meta = {"config": asdict(cfg), "espeak": espeak_version(), "generator": GENERATOR_VERSION}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temp name
            np.savez(f, meta=np.asarray(json.dumps(meta)), **{k: getattr(clips, k) for k in _ARRAYS})

    write_atomic(path, write)


def _load(path: Path, cfg: KwsConfig) -> KwsClips | None:
    """The cached clips, or None when the file is missing, unreadable or for other parameters."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            arrays = {k: f[k] for k in _ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if meta.get("config") != json.loads(json.dumps(asdict(cfg))):
        return None
    return KwsClips(**arrays, words=cfg.words, speakers=tuple(speakers(cfg)))


def load_clips(cfg: KwsConfig | None = None, cache_dir: Path | str | None = None, workers: int = 2) -> KwsClips:
    """The clips for ``cfg``: from the cache when present, else generated and cached (written atomically)."""
    cfg = cfg or KwsConfig()
    cfg.check()
    path = cache_root(cache_dir) / "kws" / cfg.key(espeak_version()) / "clips.npz"
    clips = _load(path, cfg)
    if clips is None:
        clips = generate_clips(cfg, workers)
        _save(path, clips, cfg)
    return clips


def kws_windows(cfg: KwsConfig | None = None, mel: MelConfig | None = None, cache_dir: Path | str | None = None,
                workers: int = 2) -> Windows:
    """Log-mel windows, one per clip: x [clips][frames][n_mels], subject = speaker id, recording = clip index."""
    cfg = cfg or KwsConfig()
    mel = mel or MelConfig(sample_rate=cfg.sample_rate)
    if mel.sample_rate != cfg.sample_rate:
        raise EdgememError(f"kws: the mel front end runs at {mel.sample_rate} Hz but the clips are {cfg.sample_rate} Hz")
    clips = load_clips(cfg, cache_dir, workers)
    x = log_mel(clips.float_audio(), mel)
    n = len(clips)
    return Windows(x, clips.label.copy(), clips.speaker.copy(), np.arange(n, dtype=np.int64), np.zeros(n, np.int64))


def kws_recordings(cfg: KwsConfig | None = None, mel: MelConfig | None = None, cache_dir: Path | str | None = None,
                   workers: int = 2) -> Recordings:
    """The same clips as recordings (one per clip, frames x n_mels) for ``cut_windows(rec, frames, frames)``."""
    cfg = cfg or KwsConfig()
    mel = mel or MelConfig(sample_rate=cfg.sample_rate)
    w = kws_windows(cfg, mel, cache_dir, workers)
    return Recordings(list(w.x), w.y, w.subject, list(cfg.words), 1000.0 / mel.hop_ms)


_MEL_KEYS = {f.name for f in fields(MelConfig)} - {"sample_rate"}
_KWS_KEYS = {f.name for f in fields(KwsConfig)}


def from_params(params: Mapping[str, Any]) -> tuple[KwsConfig, MelConfig, Path | None, int]:
    """Recipe-style parameters -> (KwsConfig, MelConfig, cache_dir, workers). Lists become tuples."""
    unknown = sorted(set(params) - _KWS_KEYS - _MEL_KEYS - {"cache_dir", "workers"})
    if unknown:
        raise EdgememError(f"kws: unknown parameters {unknown} (known: {sorted(_KWS_KEYS | _MEL_KEYS)}, cache_dir, "
                           f"workers)")
    kws = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in _KWS_KEYS}
    try:
        cfg = KwsConfig(**kws)
        mel = MelConfig(sample_rate=cfg.sample_rate, **{k: v for k, v in params.items() if k in _MEL_KEYS})
        cfg.check()
        mel.check()
    except TypeError as e:  # e.g. a string where a number belongs
        raise EdgememError(f"kws: bad parameter value ({e})") from None
    workers = params.get("workers", 2)
    if not isinstance(workers, int) or workers < 1:
        raise EdgememError(f"kws: workers must be a positive integer, got {workers!r}")
    cache_dir = params.get("cache_dir")
    return cfg, mel, Path(cache_dir) if cache_dir is not None else None, workers
