"""The device image `quantize --flash` bounds: the shipped code-size table is a fresh build's, the estimate is within
IMAGE_TOLERANCE of the linked footprint probe, the width model predicts the lowered graph, and the search bounds the
image (counting the packed kernel a first narrow layer brings) and refuses a budget no configuration fits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, need
from edgemem.errors import EdgememError
from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.ir import KERNELS, kernel_mask
from edgemem.quant import mixed
from edgemem.quant.image import TABLE_PATH, ImageModel, code_bytes, graph_kernels, image_of
from edgemem.quant.lower import lower
from edgemem.quant.mixed_run import op_name

IMAGE_TOLERANCE = 256  # bytes: the estimate against the linked probe (measured -173 .. +2 B on the shipped models)
EXPORTS = sorted(p.parent.name for p in (ROOT / "export").glob("*/model.h"))


def test_shipped_kernel_size_table_equals_a_fresh_build():
    """edgemem/quant/kernel_sizes.json is what `make kernel-sizes` measures now (else: run it, commit the JSON)."""
    need("make", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm")
    from edgemem.verification.kernel_sizes import measure

    fresh = measure()
    assert json.loads(TABLE_PATH.read_text()) == fresh, "stale kernel_sizes.json: run `make kernel-sizes`"
    o2 = fresh["O2"]
    assert set(o2["kernels"]) == set(KERNELS) and all(v > 0 for v in o2["kernels"].values())
    # every kernel's own code plus all shared code and core is the all-kernel probe, up to alignment
    assert abs(code_bytes(KERNELS) - o2["all_kernels"]) <= IMAGE_TOLERANCE


@pytest.mark.parametrize("name", EXPORTS)
def test_image_estimate_is_close_to_the_linked_footprint_probe(name):
    """image_of(the shipped blob) against the flash (text + data) of the probe linked with it (verify's figure)."""
    need("make", "arm-none-eabi-gcc", "arm-none-eabi-size")
    from edgemem.verification.c_runtime import footprint

    folder = ROOT / "export" / name
    g = parse_graph_blob((folder / "model.bin").read_bytes())
    est = image_of(g)
    assert est.blob == (folder / "model.bin").stat().st_size
    assert f"#define EM_MODEL_GRAPH_KERNELS 0x{kernel_mask(g):04x}u" in (folder / "model.h").read_text()
    measured = footprint(folder).flash_bytes
    assert abs(est.total - measured) <= IMAGE_TOLERANCE, (est.to_dict(), measured)


def _tiny_lmuformer():
    from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig

    torch.manual_seed(0)
    return LMUFormer(LMUFormerConfig(n_in=6, n_out=4, channels=32, n_u=4, order=8, theta=10.0, kernel=3)).eval()


def _calib() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(8, 24, 6)).astype(np.float32)


def _image_model(model):
    sizes = {n: mixed.weight_count(m) for n, m in mixed.weight_layers(model).items()}
    low = lower(model, _calib(), 1.25, {}, {})
    return ImageModel(low.graph, lambda n: op_name("lmuformer", n), sizes), sizes


def test_width_model_predicts_the_lowered_graphs_image():
    """ImageModel(bits) names exactly the lowered graph's kernels and its bytes within 3 per layer (alignment)."""
    model = _tiny_lmuformer()
    im, sizes = _image_model(model)
    names = list(sizes)
    for bits in (dict.fromkeys(names, 8), dict.fromkeys(names, 4), {**dict.fromkeys(names, 8), names[0]: 4},
                 {**dict.fromkeys(names, 4), names[-1]: 2, names[1]: 8}):
        g = lower(model, _calib(), 1.25, {op_name("lmuformer", n): b for n, b in bits.items() if b != 8}, {}).graph
        assert im.kernels(bits) == graph_kernels(g), bits
        assert abs(im(bits) - image_of(g).total) <= 64, bits  # the quick model vs the lowered blob: tens of bytes
    # a narrow layer brings the packed kernel: the image shrinks by less than the weights, or grows
    first = {**dict.fromkeys(names, 8), names[0]: 4}
    saved_weights = mixed.config_bytes(sizes, dict.fromkeys(names, 8)) - mixed.config_bytes(sizes, first)
    assert im(dict.fromkeys(names, 8)) - im(first) < saved_weights


def test_search_bounds_the_image_and_refuses_a_budget_nothing_fits():
    model = _tiny_lmuformer()
    im, sizes = _image_model(model)
    sens = {n: {4: 0.01 * (i + 1), 2: 0.05 * (i + 1)} for i, n in enumerate(sizes)}
    lowest = dict.fromkeys(sizes, 2)
    smallest = im.smallest(lowest)
    int8 = im(dict.fromkeys(sizes, 8))
    assert im(smallest) < int8
    budget = (im(smallest) + int8) // 2  # between the two configurations' images
    search = mixed.greedy(sens, sizes, budget, im, smallest)
    assert search.chosen is not None and search.chosen.image_bytes == im(search.chosen.bits) <= budget < int8
    assert search.steps[0].image_bytes == int8 and all(s.image_bytes == im(s.bits) for s in search.steps)
    # the weights-only search under the same number of bytes saved stops too early: its image is over the budget
    weights8 = mixed.config_bytes(sizes, dict.fromkeys(sizes, 8))
    naive = mixed.greedy(sens, sizes, weights8 - (int8 - budget))
    assert im(naive.chosen.bits) > budget
    with pytest.raises(EdgememError, match=f"no configuration fits {im(smallest) - 1} bytes: the smallest image is "
                                           f"{im(smallest)} bytes"):
        mixed.greedy(sens, sizes, im(smallest) - 1, im, smallest)
    assert mixed.greedy(sens, sizes, im(smallest), im, smallest).chosen.image_bytes <= im(smallest)


def test_quantize_refuses_a_budget_below_the_smallest_image_in_one_line(tmp_path):
    """`edgemem quantize --flash` below any configuration's image: exit 2, one line, nothing written."""
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "quantize", str(ROOT / "models" / "har_l2mu" / "model.pt"),
                          "--flash", "5000", "--out", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = (res.stderr + res.stdout).strip().splitlines()
    assert len(lines) == 1 and "no configuration fits 5000 bytes: the smallest image is" in lines[0], lines
    assert not (tmp_path / "out").exists()


def test_card_and_summary_give_the_image_of_both_configurations(tmp_path):
    """The model card's table has the image estimates of quantize.json (a report without them keeps its table)."""
    from edgemem.training.zoo_card import mixed_card

    q = json.loads((ROOT / "models" / "har_l2mu_mixed" / "quantize.json").read_text())
    for key in ("image_bytes", "image_bytes_int8", "fits_flash", "flash_bounds"):  # as a report from before them
        q.pop(key, None)
    (tmp_path / "quantize.json").write_text(json.dumps(q))
    assert "| mixed (this model) |" in mixed_card(tmp_path, None) and "image" not in mixed_card(tmp_path, None)
    q.update(image_bytes=10723, image_bytes_int8=13871, fits_flash=True)
    (tmp_path / "quantize.json").write_text(json.dumps(q))
    card = mixed_card(tmp_path, None)
    assert "| 13,871 |" in card and "| 10,723 |" in card and "estimated device image" in card


def test_quantize_report_fields(tmp_path):
    """quantize_mixed on the shipped har_l2mu checkpoint with no fine-tuning: the image of the chosen and of the int8
    configuration (each the lowered graph's image_of), within the budget, and the search path's images."""
    from edgemem.quant.mixed_run import quantize_mixed

    r = quantize_mixed(ROOT / "models" / "har_l2mu" / "model.pt", 12000, epochs=0)
    assert {"image_bytes", "image_bytes_int8", "fits_flash", "image", "image_int8", "weight_bytes"} <= set(r)
    assert r["image_bytes"] <= 12000 < r["image_bytes_int8"] and r["fits_flash"] is True
    assert r["image"]["bytes"] == r["image_bytes"] and r["image"]["blob"] > r["weight_bytes"]
    assert r["image_int8"]["bytes"] == r["image_bytes_int8"]
    path = [c for c in r["configurations"] if c["search_path"]]
    assert path[0]["image_bytes"] == r["image_bytes_int8"] and path[-1]["image_bytes"] <= 12000
    assert Path(TABLE_PATH).is_file()


def test_quantize_summary_prints_both_images(monkeypatch):
    """The printed summary of `edgemem quantize` gives the chosen and the int8 configuration's images and the budget
    (and says so when the lowered graph misses it)."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from edgemem import api, cli

    raw = {"model": "m_mixed", "weight_bytes": 900, "weight_bytes_int8": 2000, "weight_bytes_ratio": 2000 / 900,
           "accuracy": 0.9, "accuracy_int8": 0.91, "arena_bytes": 500, "fits_ram": None, "image_bytes": 9000,
           "image_bytes_int8": 11000, "flash_budget_bytes": 9500, "fits_flash": True,
           "bits": {"fc": {"weight": 4, "activation": 8}}}
    monkeypatch.setattr(api, "quantize", lambda *a, **k: SimpleNamespace(raw=raw))
    res = CliRunner().invoke(cli.app, ["quantize", "x.pt", "--flash", "9500"])
    assert res.exit_code == 0, res.output
    assert "image 9,000 B estimated (int8 11,000 B), --flash 9,500 B bits: fc 4" in " ".join(res.output.split())
    raw.update(image_bytes=9600, fits_flash=False)
    again = CliRunner().invoke(cli.app, ["quantize", "x.pt", "--flash", "9500"]).output
    assert "--flash 9,500 B NOT met" in " ".join(again.split())
