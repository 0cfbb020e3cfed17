"""The LOGMEL input stage as a graph (docs/graph.md "Input stages"): spec = graph reference = C host = emulated M4;
the parser's table bounds; the shipped keyword export's front end; WAV files in (`edgemem demo kws --wav`)."""

from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import need
from edgemem.data.audio import MelConfig
from edgemem.data.wav import read_wav, wav_bytes
from edgemem.errors import EdgememError
from edgemem.graph.blob import build_graph_blob, parse_graph_blob
from edgemem.graph.check import GraphDefect
from edgemem.graph.logmel import logmel_stream, logmel_tables
from edgemem.graph.ref import run_graph
from edgemem.graph.stages import logmel_stage_graph
from edgemem.verification import c_runtime

KWS = Path("export/kws_lmuformer")


def _tables():
    meta = json.loads((KWS / "meta.json").read_text())
    n = meta["normalizer"]
    return logmel_tables(MelConfig(), np.array(n["mean"]), np.array(n["std"]), meta["input_scale"])


def _pcm(rng: np.random.Generator) -> np.ndarray:
    """Noise at three levels, silence, a full-scale square wave and a tone, 1 s each at 16 kHz."""
    t = np.arange(16000) / 16000
    rows = [rng.normal(scale=s, size=16000) for s in (30, 1000, 9000)]
    rows += [np.zeros(16000), np.where(np.arange(16000) % 40 < 20, 32767, -32768), 12000 * np.sin(2 * np.pi * 440 * t)]
    return np.clip(np.round(np.stack(rows)), -32768, 32767).astype(np.int16)


def test_logmel_stage_graph_equals_spec_c_host_and_m4(rng, tmp_path):
    t = _tables()
    g = logmel_stage_graph(t)
    blob = tmp_path / "stage.bin"
    blob.write_bytes(build_graph_blob(g))
    g2 = parse_graph_blob(blob.read_bytes())
    assert g2.is_input_stage and (g2.n_in, g2.n_out) == (320, 32)
    pcm = _pcm(rng)
    spec = logmel_stream(t, pcm)
    x = pcm.reshape(len(pcm), 50, 320)
    np.testing.assert_array_equal(run_graph(g2, x), spec)
    need("gcc", "make")
    np.testing.assert_array_equal(c_runtime.run_host(blob, x, 32), spec)
    need("arm-none-eabi-gcc", "qemu-system-arm")
    m4 = c_runtime.run_cortex_m4(blob, x[[2, 4]], 32)
    np.testing.assert_array_equal(m4.logits, spec[[2, 4]])
    assert 20_000 < m4.instructions_per_step < 200_000


@pytest.mark.parametrize("what", ["twiddle", "rotation", "log_table", "band", "filterbank_tail", "eps", "shift"])
def test_logmel_tables_out_of_bounds_are_refused(what):
    g = logmel_stage_graph(_tables())
    t1, fb, bq = g.tensors[1].data, g.tensors[2].data, g.tensors[3].data
    m = 256
    if what == "twiddle":
        t1[5] = (1 << 30) + 1
    elif what == "rotation":
        t1[10] = t1[m // 2 - 10] = 1 << 30  # |cos - j sin| = sqrt(2): the FFT could overflow int32
    elif what == "log_table":
        t1[m + 1 + 10] = t1[m + 1 + 9] - 1
    elif what == "band":
        fb[0] = m  # band 0 starts at the last bin and runs past it
    elif what == "filterbank_tail":
        g.tensors[2].data = np.concatenate([fb, [0]])
    elif what == "eps":
        bq[-2:] = 0
    else:
        bq[2] = 63
    with pytest.raises(GraphDefect) as e:
        build_graph_blob(g)
    assert e.value.status == "PARAM"


def test_shipped_keyword_export_has_its_front_end():
    meta = json.loads((KWS / "meta.json").read_text())
    st = meta["input_stage"]
    assert st["kind"] == "logmel" and (st["n_in"], st["n_out"], st["sample_rate"]) == (320, 32, 16000)
    stage = (KWS / "input_stage.bin").read_bytes()
    assert parse_graph_blob(stage).is_input_stage
    t = _tables()  # what the export wrote is what the spec builds from the same normalizer and scale
    g = parse_graph_blob(stage)
    for k, a in enumerate((t.window, t.t1, t.filterbank, t.band_quant)):
        np.testing.assert_array_equal(g.tensors[k].data, a)
    h = (KWS / "model.h").read_text()
    assert "#define EM_INPUT_STAGE_LOGMEL 1" in h and "#define EM_MODEL_SAMPLE_RATE 16000" in h


def _wav(path: Path, rate: int = 16000, channels: int = 1, width: int = 2, frames: int = 1600) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01" * (frames * channels * width))
    return path


@pytest.mark.parametrize("kw,msg", [
    (dict(rate=44100), "44100 Hz"), (dict(channels=2), "2 channels"), (dict(width=1), "8-bit"),
    (dict(frames=0), "no samples")])
def test_read_wav_refuses_what_the_model_does_not_take(tmp_path, kw, msg):
    with pytest.raises(EdgememError, match=msg):
        read_wav(_wav(tmp_path / "x.wav", **kw), 16000)


def test_read_wav_refuses_a_file_that_is_not_a_wav(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"not a riff file at all")
    with pytest.raises(EdgememError, match="not a 16-bit PCM WAV"):
        read_wav(tmp_path / "x.wav", 16000)
    pcm = (np.arange(100) - 50).astype(np.int16)
    (tmp_path / "ok.wav").write_bytes(wav_bytes(pcm, 16000))
    np.testing.assert_array_equal(read_wav(tmp_path / "ok.wav", 16000), pcm)


def test_demo_kws_bad_wav_is_one_line_and_status_2(tmp_path):
    bad = _wav(tmp_path / "stereo.wav", channels=2)
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "demo", "kws", "--wav", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "2 channels" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_demo_kws_finds_the_word_in_a_wav(tmp_path, rng):
    """Raw audio in, keyword out, through the C front end and model: a held-out-style clip placed in 2 s of noise."""
    need("gcc", "make", "espeak-ng")
    from edgemem.data import kws
    from edgemem.demo.kws_wav import classify_wav

    cfg = kws.KwsConfig(seed=11, clips_per_word=1, accents=("en-us",), variants=("m1",), words=("yes", "stop"),
                        snr_db=(25.0, 30.0))
    clips = kws.load_clips(cfg, cache_dir=tmp_path / "cache", workers=1)
    for k, word in enumerate(cfg.words):
        pcm = np.concatenate([np.zeros(8000, np.int16), clips.audio[k], np.zeros(8000, np.int16)])
        path = tmp_path / f"{word}.wav"
        path.write_bytes(wav_bytes(pcm, 16000))
        found = classify_wav(KWS, path, every_s=0.5)
        assert len(found) == 3 and [d.start_s for d in found] == [0.0, 0.5, 1.0]
        assert found[1].word == word  # the window that holds the clip exactly
