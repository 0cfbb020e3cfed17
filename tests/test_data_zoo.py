"""The model zoo's data sets: synthetic keyword spotting (espeak-ng), the log-mel front end, psMNIST and digits."""

from __future__ import annotations

import gzip
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from conftest import need
from edgemem.data import kws, mnist
from edgemem.data.audio import MelConfig, hz_to_mel, log_mel, mel_filterbank, mel_to_hz
from edgemem.data.sources import load_source
from edgemem.data.windows import cut_windows, split_by_subject
from edgemem.errors import EdgememError

# 2 accents x 2 variants = 4 speakers, 3 words, 2 clips each: 24 clips, well under a second of synthesis.
TINY = kws.KwsConfig(seed=7, clips_per_word=2, words=("yes", "stop", "go"), accents=("en-us", "en-gb-scotland"),
                     variants=("m3", "f2"), snr_db=(5.0, 20.0))


@pytest.fixture(scope="module")
def tiny_clips() -> kws.KwsClips:
    need("espeak-ng")
    return kws.generate_clips(TINY, workers=1)


# --- keyword spotting ------------------------------------------------------------------------------------------------


def test_kws_same_seed_gives_identical_arrays_in_a_pool_or_not(tiny_clips):
    pooled = kws.generate_clips(TINY, workers=2)
    for name in ("audio", "label", "speaker", "onset", "length", "snr_db", "speed_wpm", "pitch"):
        np.testing.assert_array_equal(getattr(pooled, name), getattr(tiny_clips, name), err_msg=name)
    other = kws.generate_clips(replace(TINY, seed=8), workers=1)
    np.testing.assert_array_equal(other.label, tiny_clips.label)
    assert not np.any(np.all(other.audio == tiny_clips.audio, axis=1))  # every clip changes with the seed


def test_kws_clip_order_labels_and_speakers(tiny_clips):
    assert tiny_clips.audio.shape == (24, 16000) and tiny_clips.audio.dtype == np.int16
    spk = kws.speakers(TINY)
    assert [s.voice for s in spk] == ["en-us+m3", "en-us+f2", "en-gb-scotland+m3", "en-gb-scotland+f2"]
    assert [s.id for s in spk] == [1, 2, 3, 4]
    np.testing.assert_array_equal(tiny_clips.speaker, np.repeat([1, 2, 3, 4], 6))
    np.testing.assert_array_equal(tiny_clips.label, np.tile(np.repeat([0, 1, 2], 2), 4))
    assert np.all((tiny_clips.speed_wpm >= 120) & (tiny_clips.speed_wpm <= 220))
    assert np.all((tiny_clips.pitch >= 20) & (tiny_clips.pitch <= 80))


def test_kws_word_lies_inside_the_clip_at_the_drawn_snr(tiny_clips):
    c = tiny_clips
    assert np.all(c.onset >= 0) and np.all(c.onset + c.length <= 16000)
    assert np.all(c.length > 0.1 * 16000) and np.all(c.length < 0.9 * 16000)
    assert len(set(c.onset.tolist())) > 12  # the onset is drawn per clip, not fixed
    x = c.float_audio().astype(np.float64)
    peak = np.abs(x).max(axis=1)
    assert np.all((peak > 0.1 - 1e-3) & (peak < 0.9 + 1e-3))
    for i in range(len(c)):
        word = np.zeros(16000, dtype=bool)
        word[c.onset[i] : c.onset[i] + c.length[i]] = True
        p_in, p_out = np.mean(x[i, word] ** 2), np.mean(x[i, ~word] ** 2)
        # Speech and noise are independent: power over the word = speech + noise; outside it, noise alone.
        measured = 10 * np.log10((p_in - p_out) / p_out)
        assert abs(measured - c.snr_db[i]) < 2.5, (i, measured, c.snr_db[i])


def test_kws_cache_is_written_once_then_loaded(tmp_path, monkeypatch):
    need("espeak-ng")
    cfg = replace(TINY, words=("go",), clips_per_word=1)
    first = kws.load_clips(cfg, cache_dir=tmp_path, workers=1)
    files = list(tmp_path.rglob("*"))
    assert [p.relative_to(tmp_path).parts[0::2] for p in files if p.is_file()] == [("kws", "clips.npz")]
    np.testing.assert_array_equal(first.audio, kws.generate_clips(cfg, workers=1).audio)

    def no_synthesis(*_args, **_kw):
        raise AssertionError("the cached clips should have been loaded")

    monkeypatch.setattr(kws, "generate_clips", no_synthesis)
    monkeypatch.setenv("EDGEMEM_CACHE", str(tmp_path))
    again = kws.load_clips(cfg, workers=1)  # found through $EDGEMEM_CACHE
    np.testing.assert_array_equal(again.audio, first.audio)
    np.testing.assert_array_equal(again.snr_db, first.snr_db)
    with pytest.raises(AssertionError, match="cached"):  # other parameters: another cache entry
        kws.load_clips(replace(cfg, seed=9), workers=1)


def test_split_speakers_deals_by_fraction_deterministically():
    ids = [s.id for s in kws.speakers(kws.KwsConfig())]
    assert len(ids) == 160
    s = kws.split_speakers(ids)
    assert (len(s.train), len(s.val), len(s.test)) == (128, 16, 16)
    assert sorted(s.train + s.val + s.test) == ids
    assert s == kws.split_speakers(ids) and s != kws.split_speakers(ids, seed=1)
    with pytest.raises(EdgememError, match="speakers cannot be split"):
        kws.split_speakers([1, 2], (0.5, 0.25, 0.25))


def test_kws_windows_split_by_speaker_never_share_one(tmp_path, tiny_clips):
    small = kws.split_speakers([1, 2, 3, 4], (0.5, 0.25, 0.25))
    w = kws.kws_windows(TINY, cache_dir=tmp_path, workers=1)
    parts = split_by_subject(w, small.train, small.val, small.test)
    seen = [set(p.subject.tolist()) for p in (parts.train, parts.val, parts.test)]
    assert seen == [set(small.train), set(small.val), set(small.test)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert len(parts.train) == 12 and len(parts.test) == 6
    np.testing.assert_array_equal(w.recording, np.arange(24))
    assert w.x.shape == (24, 50, 32) and w.x.dtype == np.float32
    np.testing.assert_array_equal(w.x, log_mel(tiny_clips.float_audio()))  # the same clips, cached and reloaded


def test_kws_rejects_bad_parameters():
    with pytest.raises(EdgememError, match="clips_per_word"):
        kws.KwsConfig(clips_per_word=0).check()
    with pytest.raises(EdgememError, match="snr_db"):
        kws.KwsConfig(snr_db=(20.0, 5.0)).check()
    with pytest.raises(EdgememError, match="unknown parameters"):
        kws.from_params({"clips": 3})
    with pytest.raises(EdgememError, match="bad parameter value"):
        kws.from_params({"speed_wpm": ["slow", "fast"]})
    with pytest.raises(EdgememError, match="n_mels must be an integer"):
        kws.from_params({"n_mels": 32.5})
    with pytest.raises(EdgememError, match="clips_per_word must be a non-negative integer"):
        kws.from_params({"clips_per_word": 1.5})


def test_kws_unknown_voice_is_an_error_not_a_silent_fallback():
    need("espeak-ng")  # espeak-ng itself would speak "en-us+nobody" with its default voice
    with pytest.raises(EdgememError, match="no variants"):
        kws.check_voices(replace(TINY, variants=("m3", "nobody")))
    with pytest.raises(EdgememError, match="no accents"):
        kws.check_voices(replace(TINY, accents=("en-us", "en-mars")))


def test_espeak_wav_reader_ignores_the_placeholder_sizes():
    samples = np.array([0, 1000, -1000, 32767, -32768], dtype="<i2")
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (22050).to_bytes(4, "little") \
        + (44100).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    bogus = (0x7FFFF000).to_bytes(4, "little")  # what espeak-ng writes: it cannot know the length up front
    wav = b"RIFF" + bogus + b"WAVE" + b"fmt " + (16).to_bytes(4, "little") + fmt + b"data" + bogus + samples.tobytes()
    x, rate = kws.read_espeak_wav(wav)
    assert rate == 22050
    np.testing.assert_array_equal(x, samples)
    with pytest.raises(EdgememError, match="WAV"):
        kws.read_espeak_wav(b"not a wav file at all")


# --- log-mel front end -----------------------------------------------------------------------------------------------


def test_log_mel_shape_and_a_frame_by_the_written_formula(rng):
    cfg = MelConfig()
    assert (cfg.win, cfg.hop, cfg.fft_size) == (480, 320, 512)
    audio = rng.uniform(-0.5, 0.5, size=(3, 16000))
    x = log_mel(audio, cfg)
    assert x.shape == (3, 50, 32) and x.dtype == np.float32
    # Frame t = 7 by the docstring: samples [(t+1)*320 - 480, (t+1)*320), periodic Hann, DFT, HTK triangles, ln.
    t, i, k = 7, np.arange(480), np.arange(257)
    frame = audio[1, (t + 1) * 320 - 480 : (t + 1) * 320] * (0.5 - 0.5 * np.cos(2 * np.pi * i / 480))
    spectrum = np.exp(-2j * np.pi * np.outer(k, i) / 512) @ frame
    want = np.log(mel_filterbank(cfg) @ np.abs(spectrum) ** 2 + 1e-6)
    np.testing.assert_allclose(x[1, t], want, rtol=1e-5, atol=1e-5)
    # Frame 0 reaches 160 samples before the clip: zeros, so it equals the frame of the clip with a silent prefix.
    padded = np.concatenate([np.zeros(160), audio[1, :320]])
    np.testing.assert_allclose(log_mel(padded, replace(cfg, hop_ms=30.0))[0, 0], x[1, 0], rtol=1e-6)


def test_log_mel_frames_are_causal(rng):
    audio = rng.normal(0, 0.1, size=16000)
    later = audio.copy()
    later[20 * 320 :] = rng.normal(0, 0.1, size=16000 - 20 * 320)  # change everything from hop 20 on
    a, b = log_mel(audio)[0], log_mel(later)[0]
    np.testing.assert_array_equal(a[:20], b[:20])
    assert not np.allclose(a[20], b[20])


def test_a_1khz_tone_lands_in_mel_band_10():
    # By hand (HTK): mel(20) = 31.75, mel(8000) = 2840.0, 34 edges 85.1 mel apart. Edge 11 is 967.9 mel = 952 Hz
    # and edge 12 is 1053.0 mel = 1082 Hz, so 1000 Hz sits on band 10's falling side (peak at edge 11, weight
    # (1082 - 1000) / 130 = 0.63) and band 11's rising side (0.37): band 10 gets the most energy.
    assert hz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)
    edges = mel_to_hz(np.linspace(hz_to_mel(20.0), hz_to_mel(8000.0), 34))
    assert edges[11] == pytest.approx(952, abs=1) and edges[12] == pytest.approx(1082, abs=1)
    t = np.arange(16000) / 16000
    x = log_mel(0.5 * np.sin(2 * np.pi * 1000 * t))[0]
    assert set(np.argmax(x[1:], axis=1).tolist()) == {10}  # frame 0 is two-thirds silence, the rest are alike
    assert np.all(x[1:, 10] > x[1:, 11]) and np.all(x[1:, 11] > x[1:, 20] + 10)
    silent = log_mel(np.zeros(16000))
    np.testing.assert_allclose(silent, np.log(1e-6), rtol=1e-6)


def test_mel_config_errors():
    with pytest.raises(EdgememError, match="n_fft"):
        mel_filterbank(MelConfig(n_fft=256))
    with pytest.raises(EdgememError, match="too narrow"):
        mel_filterbank(MelConfig(n_mels=128, n_fft=512))
    with pytest.raises(EdgememError, match="at least one hop"):
        log_mel(np.zeros((2, 100)))


# --- psMNIST and digits ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def psmnist():
    return mnist.psmnist_windows()


def test_psmnist_is_a_fixed_permutation_of_the_real_images(psmnist):
    perm = mnist.permutation(784, mnist.PSMNIST_SEED)
    np.testing.assert_array_equal(perm, mnist.permutation(784, mnist.PSMNIST_SEED))
    np.testing.assert_array_equal(np.sort(perm), np.arange(784))
    assert not np.array_equal(perm, np.arange(784))
    assert psmnist.x.shape == (70000, 784, 1) and psmnist.x.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(psmnist.subject), [0, 50000, 10000, 10000])
    (train_x, train_y), _, (test_x, test_y) = mnist.load_mnist()
    # Un-permuting step t back to pixel perm[t] gives the original image, for a train and a test image.
    image = np.empty(784, dtype=np.float32)
    image[perm] = psmnist.x[123, :, 0]
    np.testing.assert_array_equal(image, train_x[123])
    last = len(psmnist) - 1
    np.testing.assert_array_equal(psmnist.x[last, np.argsort(perm), 0], test_x[-1])
    assert psmnist.y[last] == test_y[-1] and psmnist.recording[last] == 9999
    assert 0.0 <= train_x.min() and train_x.max() < 1.0 and set(train_y.tolist()) == set(range(10))
    split = split_by_subject(psmnist, [mnist.TRAIN], [mnist.VAL], [mnist.TEST])
    assert (len(split.train), len(split.val), len(split.test)) == (50000, 10000, 10000)


def test_mnist_pickle_may_only_hold_arrays(tmp_path):
    evil = tmp_path / "evil.pkl.gz"

    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    with gzip.open(evil, "wb") as f:
        pickle.dump(Payload(), f, protocol=2)
    with pytest.raises(EdgememError, match="print is not allowed"):
        mnist.load_mnist(evil)


def test_digits_are_permuted_64_step_sequences():
    w = mnist.digits_windows()
    d = load_digits()
    assert w.x.shape == (1797, 64, 1) and w.x.dtype == np.float32
    assert w.x.min() == 0.0 and w.x.max() == 1.0
    np.testing.assert_array_equal(w.y, d.target)
    np.testing.assert_array_equal(np.bincount(w.subject), [0, 1257, 270, 270])
    perm = mnist.permutation(64, mnist.DIGITS_SEED)
    np.testing.assert_allclose(w.x[:, np.argsort(perm), 0], d.data / 16.0)
    plain = mnist.digits_windows(permute=False)
    np.testing.assert_allclose(plain.x[:, :, 0], d.data / 16.0)
    np.testing.assert_array_equal(plain.subject, w.subject)
    for s in (1, 2, 3):  # every class in every part
        assert set(w.y[w.subject == s].tolist()) == set(range(10))


# --- load_source -----------------------------------------------------------------------------------------------------


def test_load_source_names_the_new_sources(tmp_path: Path):
    digits = load_source("digits", params={"seed": 3})
    w = cut_windows(digits, 64, 64)
    assert w.x.shape == (1797, 64, 1) and digits.class_names == [str(i) for i in range(10)]
    np.testing.assert_array_equal(w.x, mnist.digits_windows(seed=3).x)
    with pytest.raises(EdgememError, match="only the parameter 'seed'"):
        load_source("psmnist", params={"n_mels": 3})
    with pytest.raises(EdgememError, match="takes no parameters"):
        load_source("watch", params={"seed": 1})
    with pytest.raises(EdgememError, match="'digits', 'hapt', 'kws', 'npz', 'psmnist'"):
        load_source("speech")


def test_load_source_kws_with_parameters(tmp_path: Path):
    need("espeak-ng")
    params = {"seed": 7, "clips_per_word": 1, "words": ["up"], "accents": ["en-us"], "variants": ["m3", "f2"],
              "n_mels": 20, "hop_ms": 10.0, "workers": 1, "cache_dir": str(tmp_path)}
    rec = load_source("kws", params=params)
    assert len(rec.series) == 2 and rec.series[0].shape == (100, 20)
    assert rec.class_names == ["up"] and rec.sample_rate_hz == 100.0
    np.testing.assert_array_equal(rec.subjects, [1, 2])
    w = cut_windows(rec, 100, 100)
    assert w.x.shape == (2, 100, 20)
