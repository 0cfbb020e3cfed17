"""WAV files for the keyword models: 16-bit PCM mono at the front end's sample rate, checked, never guessed.

A file that is not that (another rate, stereo, 8- or 24-bit, float or compressed samples, not a WAV at all) is an
error naming what it is and what the model takes; it is never resampled or mixed down silently, because the front
end's integers (edgemem.graph.logmel) are only the features the model was trained on at that rate.
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np

from edgemem.errors import EdgememError


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """int16 [samples] of a 16-bit PCM mono WAV at `sample_rate` Hz."""
    want = f"the model takes {sample_rate} Hz mono 16-bit PCM (e.g. `sox IN.wav -r {sample_rate} -c 1 -b 16 OUT.wav`)"
    if not path.is_file():
        raise EdgememError(f"{path} is not a file")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            data = w.readframes(frames)
    except (wave.Error, EOFError) as e:  # not RIFF/WAVE, or a format code wave cannot read (float, compressed)
        raise EdgememError(f"{path} is not a 16-bit PCM WAV file ({e}); {want}") from None
    problems = [p for p, bad in ((f"{rate} Hz", rate != sample_rate), (f"{channels} channels", channels != 1),
                                 (f"{8 * width}-bit", width != 2)) if bad]
    if problems:
        raise EdgememError(f"{path} is {', '.join(problems)}; {want}")
    pcm = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
    if pcm.size == 0:
        raise EdgememError(f"{path} holds no samples")
    return pcm


def wav_bytes(pcm: np.ndarray, sample_rate: int) -> bytes:
    """int16 mono samples as a 16-bit PCM WAV file's bytes."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()
