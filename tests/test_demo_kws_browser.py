"""The browser keyword demo (`edgemem demo kws --serve`): a WAV file picked in the page, its header read by the page's
JavaScript (kws_web/wav.js), its PCM through the export's input stage and model in the C runtime as WebAssembly.

The glue the page runs (firmware/targets/app/em_app.c: model + input stage) is loaded on the host through ctypes and
must give exactly `demo kws --wav`'s words and probabilities; wav.js runs under node against good and bad files; the
page itself runs in Debian's chromium (Playwright), as tests/test_demo_browser.py runs the HAR page. The screenshot
is kept in build/test-artifacts/demo_kws_browser.png."""

from __future__ import annotations

import http.client
import json
import struct
import subprocess
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from test_bad_files import assert_user_error, cli

from conftest import ROOT, SHIPPED, chromium_page, need
from edgemem.data.wav import read_wav, wav_bytes
from edgemem.demo import serve
from edgemem.demo.kws_site import WEB, build_kws_site, classify_pcm, site_config
from edgemem.errors import EdgememError
from edgemem.verification import c_runtime

KWS = ROOT / "export" / "kws_lmuformer"
ARTIFACTS = ROOT / "build" / "test-artifacts"
MODEL_TAKES = "the model takes 16000 Hz mono 16-bit PCM"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Two synthesized keywords ("yes", then "stop") in silence, as a 16 kHz mono 16-bit WAV (3.3 s: 5 windows)."""
    need("espeak-ng")
    from edgemem.data import kws

    tmp = tmp_path_factory.mktemp("speech")
    cfg = kws.KwsConfig(seed=11, clips_per_word=1, accents=("en-us",), variants=("m1",), words=("yes", "stop"),
                        snr_db=(25.0, 30.0))
    clips = kws.load_clips(cfg, cache_dir=tmp / "cache", workers=1)
    z = np.zeros(8000, np.int16)
    pcm = np.concatenate([z, clips.audio[0], z, clips.audio[1], z[:5000]])
    path = tmp / "yes_stop.wav"
    path.write_bytes(wav_bytes(pcm, 16000))
    return path


def _runtime():
    from edgemem.demo.runtime import AppRuntime

    need("gcc", "make")
    return AppRuntime((KWS / "model.bin").read_bytes(), stage=(KWS / "input_stage.bin").read_bytes())


# ---- (1) the glue's stage + model path, on the host ----

def test_the_glue_gives_exactly_the_terminal_demos_words(speech):
    from edgemem.demo.kws_wav import classify_wav

    rt = _runtime()
    assert (rt.stage_n_in, rt.stage_n_out, rt.n_in) == (320, 32, 32)
    cfg = site_config(KWS)
    pcm = read_wav(speech, 16000)
    got = classify_pcm(rt, pcm, cfg)
    ref = classify_wav(KWS, speech, every_s=0.5)
    assert len(got) == len(ref) == 5
    assert [cfg["class_names"][w.pred] for w in got] == [d.word for d in ref]
    assert [w.probs[w.pred] for w in got] == [d.probability for d in ref]  # bit for bit
    assert [w.start_frame * cfg["hop"] / 16000 for w in got] == [d.start_s for d in ref]
    assert {ref[1].word, ref[3].word} == {"yes", "stop"} and ref[1].word == "yes" and ref[3].word == "stop"
    # the stage alone: em_app_stage_step's features equal em_run's on the same stream
    frames = pcm.size // 320
    rt.stage_reset()
    feats = np.stack([rt.stage_step(pcm[t * 320 : (t + 1) * 320]) for t in range(frames)])
    host = c_runtime.run_host(KWS / "input_stage.bin", pcm[: frames * 320].reshape(1, frames, 320), 32)[0]
    assert np.array_equal(feats, host)


def test_the_glue_keeps_a_stage_and_a_model_apart():
    from edgemem.demo.runtime import AppRuntime

    need("gcc", "make")
    har = (SHIPPED / "model.bin").read_bytes()
    with pytest.raises(EdgememError, match=r"refused the input stage blob \(status -16\)"):  # EM_ERR_BUFFER
        AppRuntime(har, stage=har)
    rt = AppRuntime(har)  # the HAR page's use: no stage, the model as before
    assert rt.stage_n_in == 0 and rt.run(np.zeros((3, rt.n_in), np.int8)).shape == (3, rt.n_out)
    with pytest.raises(EdgememError, match="no input stage open"):
        rt.stage_step(np.zeros(320, np.int16))
    with pytest.raises(EdgememError, match="exceeds the glue's"):
        AppRuntime(har, stage=bytes(64 << 10))


# ---- (2) the page's WAV parser, under node ----

def _wav(path: Path, rate: int, channels: int, width: int, frames: int = 1600) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(frames * channels * width))
    return path


def _float_wav(path: Path) -> Path:
    data = np.zeros(1600, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _parse_in_node(files: list[Path]) -> list[dict]:
    need("node")
    script = f"""
import {{ readFileSync }} from "node:fs";
import {{ parseWav }} from {json.dumps((WEB / "wav.js").as_uri())};
const out = [];
for (const f of {json.dumps([str(f) for f in files])}) {{
  const b = readFileSync(f);
  try {{
    const pcm = parseWav(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength), 16000);
    out.push({{ samples: Array.from(pcm) }});
  }} catch (e) {{ out.push({{ error: e.message }}); }}
}}
console.log(JSON.stringify(out));
"""
    res = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_the_pages_wav_parser_refuses_what_the_model_cannot_take(tmp_path, rng):
    good = tmp_path / "good.wav"
    pcm = rng.integers(-32768, 32768, 4001).astype(np.int16)
    good.write_bytes(wav_bytes(pcm, 16000) + b"LIST\x04\x00\x00\x00abcd")  # a chunk after the data is skipped
    odd = tmp_path / "odd.wav"  # a chunk of odd length before "fmt " (padded), as some editors write
    riff = wav_bytes(pcm[:100], 16000)
    odd.write_bytes(b"RIFF" + struct.pack("<I", len(riff) - 8 + 10) + b"WAVE" + b"junk\x01\x00\x00\x00x\x00" + riff[12:])
    notwav = tmp_path / "notes.wav"
    notwav.write_bytes(b"ID3\x04" + bytes(100))
    files = [good, odd, _wav(tmp_path / "cd.wav", 44100, 2, 2), _wav(tmp_path / "8bit.wav", 16000, 1, 1),
             _float_wav(tmp_path / "float.wav"), notwav, _wav(tmp_path / "empty.wav", 16000, 1, 2, frames=0)]
    ok, odd_ok, cd, eight, flt, nothing, empty = _parse_in_node(files)
    assert ok == {"samples": read_wav(good, 16000).tolist()} and ok["samples"] == pcm.tolist()
    assert odd_ok == {"samples": pcm[:100].tolist()}
    assert cd == {"error": f"44100 Hz stereo 16-bit PCM: {MODEL_TAKES}"}
    assert eight == {"error": f"16000 Hz mono 8-bit PCM: {MODEL_TAKES}"}
    assert flt == {"error": f"16000 Hz mono 32-bit float: {MODEL_TAKES}"}
    assert nothing == {"error": f"not a WAV file (no RIFF/WAVE header): {MODEL_TAKES}"}
    assert empty == {"error": "16000 Hz mono 16-bit PCM but it holds no samples"}


# ---- (3) the site and its server ----

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    need("clang-14", "wasm-ld-14", "make")
    return build_kws_site(KWS, tmp_path_factory.mktemp("site") / "kws")


def _get(port: int, path: str) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_serve_site_serves_the_page_and_the_blobs(tmp_path):
    need("clang-14", "wasm-ld-14", "make")
    servers: list = []
    said: list[str] = []
    t = threading.Thread(target=serve.serve_site, daemon=True,
                         kwargs={"export_dir": KWS, "port": 0, "say": said.append, "build": build_kws_site,
                                 "on_start": servers.append, "demo": "kws"})
    t.start()
    deadline = time.monotonic() + 300
    while not servers and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert servers, "the keyword site did not start"
    srv = servers[0]
    try:
        port = srv.server_port
        assert said == [f"the keyword demo (pick a WAV file) is at http://127.0.0.1:{port}/ (Ctrl-C stops it)"]
        status, page = _get(port, "/")
        assert status == 200 and b'id="wav"' in page and b'type="file"' in page
        for name in ("model.bin", "input_stage.bin"):
            assert _get(port, f"/{name}") == (200, (KWS / name).read_bytes())
        status, wasm = _get(port, "/edgemem.wasm")
        assert status == 200 and wasm[:4] == b"\0asm"
        for name in ("app.js", "wav.js", "style.css", "kws.css"):
            assert _get(port, f"/{name}")[0] == 200
        status, cfg = _get(port, "/config.json")
        assert status == 200 and json.loads(cfg) == site_config(KWS)
        site = Path(srv.RequestHandlerClass.keywords["directory"])
    finally:
        srv.shutdown()
        t.join(timeout=30)
    assert not site.exists()  # the instance's folder goes with it


# ---- (4) the CLI ----

def test_the_cli_refuses_a_bad_export_in_one_line(tmp_path):
    started = time.monotonic()
    assert_user_error(cli("demo", "kws", "--serve", "--port", "0", "--export", str(tmp_path / "nowhere")),
                      "is not an edgemem export")
    assert_user_error(cli("demo", "kws", "--serve", "--port", "0", "--export", "export/har_l2mu"),
                      "has no log-mel front end")
    assert_user_error(cli("demo", "kws", "--serve", "--wav", "x.wav"), "--wav is for the terminal")
    assert time.monotonic() - started < 120


# ---- the page in a real browser ----

def test_page_finds_the_words_the_terminal_demo_finds(site, speech, tmp_path):
    need("chromium")
    from edgemem.demo.kws_wav import classify_wav

    cfg = site_config(KWS)
    ref = classify_wav(KWS, speech, every_s=0.5)
    glue = classify_pcm(_runtime(), read_wav(speech, 16000), cfg)
    stereo = _wav(tmp_path / "stereo.wav", 44100, 2, 2)
    srv = serve.make_server(site, 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    console: list[str] = []
    try:
        with chromium_page(console, viewport={"width": 1280, "height": 900}) as page:
            page.goto(f"http://127.0.0.1:{srv.server_port}/")
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            page.set_input_files("#wav", str(speech))
            page.wait_for_function("window.edgemem.handled >= 1", timeout=60_000)
            run = page.evaluate("window.edgemem.runs[0]")
            error = page.evaluate("window.edgemem.error")
            shown = page.eval_on_selector_all(".window", "els => els.map(e => Number(e.dataset.pred))")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "demo_kws_browser.png"), full_page=True)
            page.set_input_files("#wav", str(stereo))
            page.wait_for_function("window.edgemem.handled >= 2", timeout=60_000)
            message = page.inner_text("#message")
    finally:
        srv.shutdown()
        srv.server_close()
    assert error is None and not [c for c in console if c.startswith(("error", "pageerror"))], (error, console)
    ws = run["windows"]
    assert [w["word"] for w in ws] == [d.word for d in ref]
    assert [w["start_s"] for w in ws] == [d.start_s for d in ref] and [w["end_s"] for w in ws] == [d.end_s for d in ref]
    assert [w["sums"] for w in ws] == [g.sums for g in glue]  # the integers: exactly the glue's on the host
    assert shown == [g.pred for g in glue]
    for w, g, d in zip(ws, glue, ref):  # JS Math.exp and numpy's exp may differ in the last bit
        assert w["probs"] == pytest.approx(g.probs, rel=1e-12, abs=1e-15)
        assert w["probs"][w["pred"]] == pytest.approx(d.probability, rel=1e-12)
    assert message == f"stereo.wav: 44100 Hz stereo 16-bit PCM: {MODEL_TAKES}"
