"""The browser demo in a real browser: Debian's chromium, headless, driven by Playwright. The page runs the C runtime
as WebAssembly; what it computes and shows for a held-out recording must equal the C host's outputs (em_run) on the
same int8 windows, step for step. The screenshot is kept in build/test-artifacts/demo_browser.png."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest

from conftest import ROOT, SHIPPED, chromium_page, need
from edgemem.demo.har_site import build_site
from edgemem.demo.serve import make_server
from edgemem.errors import EdgememError
from edgemem.verification import c_runtime

ARTIFACTS = ROOT / "build" / "test-artifacts"
RECORDING = 3  # a held-out recording (index into data.json's recordings)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    need("clang-14", "wasm-ld-14", "chromium", "npm")
    if not (ROOT / "build" / "vendor" / "uplot" / "uPlot.iife.min.js").is_file():
        import subprocess

        subprocess.run(["make", "-s", "-C", str(ROOT), "vendor"], check=True, capture_output=True)
    return build_site(SHIPPED, tmp_path_factory.mktemp("site") / "har")


@pytest.fixture(scope="module")
def server(site):
    srv = make_server(site, 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()


def test_page_predictions_equal_the_c_host(site, server):
    import json

    data = json.loads((site / "data.json").read_text())
    rec = data["recordings"][RECORDING]
    steps, n_in, n_out = data["steps_per_window"], data["n_in"], len(data["class_names"])
    x = np.frombuffer(base64.b64decode(rec["x"]), dtype=np.int8).reshape(-1, steps, n_in)
    host = c_runtime.run_host(SHIPPED / "model.bin", x, n_out)  # [windows][steps][n_out], reset per window
    host_pred = host.astype(np.int64).sum(axis=1).argmax(axis=1)

    console: list[str] = []
    with chromium_page(console, viewport={"width": 1280, "height": 900}) as page:
        page.goto(f"{server}/?recording={RECORDING}&speed=0&autoplay=1")
        page.wait_for_function("window.edgemem && window.edgemem.done", timeout=60_000)
        run = page.evaluate("window.edgemem.runs[0]")
        shown = page.eval_on_selector_all("#pred-row div", "els => els.map(e => Number(e.dataset.pred))")
        accuracy = page.inner_text("#accuracy")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "demo_browser.png"), full_page=True)
    assert not [c for c in console if c.startswith(("error", "pageerror"))], console
    page_logits = np.array(run["logits"], dtype=np.int64).reshape(host.shape)
    assert np.array_equal(page_logits, host), "the page's per-step logits differ from the C host's"
    assert run["predictions"] == shown == host_pred.tolist()
    assert run["recording"] == rec["id"] and run["labels"] == rec["labels"]
    right = int((host_pred == np.array(rec["labels"])).sum())
    assert accuracy == f"{100 * right / len(host_pred):.1f} %"


def test_a_bad_csv_gets_a_message_in_the_page(site, server, tmp_path):
    bad = tmp_path / "watch.csv"
    bad.write_text("ax,ay,az,gx,gy,gz\n0.1,0.2,0.3,0.4,0.5\n")
    short = tmp_path / "short.csv"
    short.write_text("".join("0.1,0.2,-1.0,0.0,0.1,0.2\n" for _ in range(10)))
    with chromium_page() as page:
        page.goto(server)
        page.wait_for_selector("body[data-ready='1']")
        page.set_input_files("#csv", str(bad))
        page.wait_for_function("document.getElementById('message').textContent.includes('columns')")
        assert "line 2 has 5 columns; expected 6" in page.inner_text("#message")
        page.set_input_files("#csv", str(short))
        page.wait_for_function("document.getElementById('message').textContent.includes('window')")
        assert "10 samples is less than one window" in page.inner_text("#message")


def test_site_needs_the_vendored_chart_library(monkeypatch, tmp_path):
    from edgemem.demo import har_site

    monkeypatch.setattr(har_site, "VENDOR", tmp_path / "nowhere")
    with pytest.raises(EdgememError, match="run `make vendor`"):
        har_site.build_site(SHIPPED, tmp_path / "site")


def test_server_binds_localhost_only(site):
    srv = make_server(site, 0)
    try:
        assert srv.server_address[0] == "127.0.0.1"
        with pytest.raises(EdgememError, match="cannot serve on 127.0.0.1"):
            make_server(site, srv.server_port)  # taken
    finally:
        srv.server_close()


def test_class_names_are_text_never_markup(site, tmp_path):
    """Class names come from data.json (a checkpoint's): shown as text in the bars and the legend, never parsed."""
    import json
    import shutil

    evil = tmp_path / "site"
    shutil.copytree(site, evil)
    data = json.loads((evil / "data.json").read_text())
    marker = '<img src=x onerror="window.pwned=1">'
    data["class_names"] = [marker + n for n in data["class_names"]]
    (evil / "data.json").write_text(json.dumps(data))
    srv = make_server(evil, 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        with chromium_page() as page:
            page.goto(f"http://127.0.0.1:{srv.server_port}/?recording={RECORDING}&speed=0&autoplay=1")
            page.wait_for_function("window.edgemem && window.edgemem.done", timeout=60_000)
            assert page.evaluate("window.pwned") is None
            assert page.locator("#bars img, #legend img").count() == 0
            assert marker in page.inner_text("#bars") and marker in page.inner_text("#legend")
    finally:
        srv.shutdown()
        srv.server_close()
