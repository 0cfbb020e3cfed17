"""The Python API (edgemem.api, exposed lazily by `import edgemem`): typed results, the CLI's errors, its reference
documentation (pdoc). The notebooks (tests/test_notebooks.py) run train, export, verify and quantize end to end."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from conftest import ROOT
from edgemem.errors import EdgememError

FUNCTIONS = ("train", "export", "verify", "quantize", "plan")


def test_import_edgemem_is_light_and_exposes_the_api_lazily():
    code = ("import sys, edgemem; assert 'torch' not in sys.modules and 'edgemem.api' not in sys.modules; "
            f"assert set(edgemem.__all__) == {{'__version__', *{FUNCTIONS!r}}}; "
            "assert all(n in dir(edgemem) for n in edgemem.__all__); "
            "f = edgemem.plan; assert f is edgemem.api.plan and 'torch' not in sys.modules; "
            "print(edgemem.__version__)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        import edgemem

        edgemem.frobnicate  # noqa: B018


def test_every_api_function_has_args_returns_and_an_example():
    import edgemem.api as api

    for name in FUNCTIONS:
        doc = getattr(api, name).__doc__
        for part in ("Args:", "Returns:", "Example:", ">>> "):
            assert part in doc, f"{name}: no {part}"


def test_plan_returns_a_frozen_typed_report_equal_to_the_cli_json():
    import json

    import edgemem

    p = edgemem.plan(ROOT / "export" / "kws_lmuformer", patch_frames=4)
    assert isinstance(p, edgemem.api.PlanReport) and p.chosen in p.peak_ram_bytes
    assert p.peak_ram_bytes == {k: s["peak_ram_bytes"] for k, s in p.raw["schedules"].items()}
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.chosen = "x"  # type: ignore[misc]
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "plan", str(ROOT / "export" / "kws_lmuformer"),
                          "--patch-frames", "4", "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and json.loads(res.stdout) == json.loads(json.dumps(p.raw))


def test_user_errors_are_the_clis_one_line_errors(tmp_path):
    import edgemem

    with pytest.raises(EdgememError, match="does not exist"):
        edgemem.export(tmp_path / "nope.pt", tmp_path / "o")
    with pytest.raises(EdgememError, match="unknown export format 'xml'"):
        edgemem.export(ROOT / "models" / "har_l2mu" / "model.pt", tmp_path / "o", to="onnx,xml")
    with pytest.raises(EdgememError, match="not an edgemem export"):
        edgemem.verify(tmp_path)
    with pytest.raises(EdgememError, match="unknown target"):
        edgemem.plan(ROOT / "export" / "har_l2mu", target="toaster")
    with pytest.raises(EdgememError, match="--epochs must be >= 0"):
        edgemem.quantize(ROOT / "models" / "har_l2mu" / "model.pt", "4KiB", epochs=-1)
    with pytest.raises(EdgememError, match="must be a path"):
        edgemem.train(3)  # type: ignore[arg-type]
    assert not any(tmp_path.iterdir())


def test_pdoc_documents_the_five_functions_and_the_result_types(tmp_path):
    pdoc = pytest.importorskip("pdoc")
    from pdoc import render

    render.configure(docformat="google")
    pdoc.pdoc("edgemem", "edgemem.api", output_directory=tmp_path)
    html = (tmp_path / "edgemem" / "api.html").read_text()
    for name in (*FUNCTIONS, "VerifyReport", "bit_exact", "instructions_per_step", "PlanReport", "TrainResult"):
        assert f'id="{name}' in html or f'id="VerifyReport.{name}' in html, name
    assert (tmp_path / "edgemem.html").is_file()
