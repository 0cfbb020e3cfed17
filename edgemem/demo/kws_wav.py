"""`edgemem demo kws --wav FILE`: keywords in a WAV file, raw audio in, through the C runtime on the host.

The PCM goes through the export's input stage (input_stage.bin: the LOGMEL front end, edgemem.graph.logmel) as one
continuous stream, one hop per step, then every 1 s window of its features (the model's window, starting every
`every_s` seconds) through the model (reset per window, logits summed, argmax), as `edgemem verify` scores a clip.
A file shorter than one window is padded with silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgemem.data.wav import read_wav
from edgemem.errors import EdgememError
from edgemem.exporters.folder import BLOB_FILE, INPUT_STAGE_FILE, check_hashes, load_meta
from edgemem.models.readout import predictions
from edgemem.verification import c_runtime


@dataclass(frozen=True)
class Detection:
    start_s: float
    end_s: float
    word: str
    probability: float


def kws_meta(export_dir: Path) -> dict[str, Any]:
    """meta.json of a keyword export whose files are the ones `edgemem export` wrote and which has a log-mel front
    end (input_stage.bin); else the one-line error."""
    meta = load_meta(export_dir)
    stage = meta.get("input_stage")
    if not isinstance(stage, dict) or stage.get("kind") != "logmel":
        raise EdgememError(f"{export_dir} has no log-mel front end (a keyword model exported by this edgemem takes "
                           "raw audio; re-export it)")
    check_hashes(export_dir, meta)
    return meta


def classify_wav(export_dir: Path, wav: Path, every_s: float = 0.5) -> list[Detection]:
    meta = kws_meta(export_dir)
    stage = meta["input_stage"]
    if not every_s > 0:
        raise EdgememError(f"--every must be positive seconds, got {every_s}")
    rate, hop, steps = int(stage["sample_rate"]), int(stage["n_in"]), int(meta["window"])
    pcm = read_wav(wav, rate)
    frames = max(steps, pcm.size // hop)
    pcm = np.concatenate([pcm, np.zeros(frames * hop - min(pcm.size, frames * hop), np.int16)])[: frames * hop]
    feats = c_runtime.run_host(export_dir / INPUT_STAGE_FILE, pcm.reshape(1, frames, hop), int(stage["n_out"]))[0]
    every = max(1, round(every_s * rate / hop))
    starts = list(range(0, frames - steps + 1, every))
    x = np.stack([feats[s : s + steps] for s in starts]).astype(np.int8)
    n_out = len(meta["class_names"])
    logits = c_runtime.run_host(export_dir / BLOB_FILE, x, n_out)
    pred = predictions(logits, meta.get("readout", "sum"))
    total = logits.astype(np.float64).sum(axis=1) * float(meta["output_scale"]) / steps
    p = np.exp(total - total.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return [Detection(s * hop / rate, (s + steps) * hop / rate, meta["class_names"][int(k)], float(p[i, k]))
            for i, (s, k) in enumerate(zip(starts, pred))]
