"""Shared fixtures. Under CI=true a missing toolchain fails the test; elsewhere it is skipped with a reason."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from edgemem.models.l2mu import L2MU, L2MUConfig

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "export" / "har_l2mu"
CHECKPOINT = ROOT / "models" / "har_l2mu" / "model.pt"


def need_module(name: str, install: str = "make setup installs it") -> ModuleType:
    """import_module(name), or a skip locally and a failure under CI=true (as need() does for toolchains)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        msg = f"python package missing: {name} ({install})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg, allow_module_level=True)


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    msg = f"toolchain missing: {', '.join(missing)} (make setup installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_l2mu(seed: int, neurons: tuple[str, str, str] = ("lif", "cuba", "lif"), **dims: int) -> L2MU:
    """A small model with weights scaled so that every population spikes."""
    torch.manual_seed(seed)
    cfg = L2MUConfig(**{"n_in": 6, "n_u": 3, "order": 6, "n_h": 12, "n_out": 5, **dims}, neurons=neurons,
                     threshold_init=0.5, memory_threshold_init=0.05)
    model = L2MU(cfg)
    with torch.no_grad():
        for p in model.pops.values():
            p.beta.uniform_(0.6, 0.98)
            p.threshold.mul_(torch.empty_like(p.threshold).uniform_(0.5, 1.5))
            if hasattr(p, "alpha"):
                p.alpha.uniform_(0.3, 0.9)
        for lin in (model.enc_x, model.hid_x):
            lin.weight.mul_(2.0)
    return model.eval()


@pytest.fixture(scope="session")
def em_run() -> Path:
    """The host em_run, built once for the whole session (skipped locally, failed under CI, without gcc)."""
    need("gcc", "make")
    from edgemem.verification import c_runtime

    return c_runtime.build_host()


def check_png(path: Path, min_size: tuple[int, int] = (500, 300), min_bytes: int = 15_000) -> np.ndarray:
    """A PNG someone can read: at least min_size pixels (width, height), min_bytes on disk, and a picture rather than
    a blank canvas (many distinct colours). Returns its pixels [h][w][channels]."""
    import matplotlib.image

    assert path.is_file() and path.stat().st_size >= min_bytes, (path, path.stat().st_size if path.exists() else 0)
    img = matplotlib.image.imread(path)
    assert img.shape[1] >= min_size[0] and img.shape[0] >= min_size[1], img.shape
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 50
    return img


@contextlib.contextmanager
def chromium_page(console: list[str] | None = None, **page_args: Any) -> Iterator[Any]:
    """A page of Debian's headless chromium (playwright), closed afterwards; with `console`, the page's console lines
    and uncaught errors are appended to it ("error: ...", "pageerror: ...")."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            page = browser.new_page(**page_args)
            if console is not None:
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
                page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            yield page
        finally:
            browser.close()
