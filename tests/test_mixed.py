"""Mixed precision: the fake quantizer is the integer model's rule (and brevitas'), the search meets its budget
step by step, and quantization-aware layers round-trip to plain torch layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemem.errors import EdgememError
from edgemem.models.elm import ELMConfig, ELMNet
from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig
from edgemem.quant import mixed
from edgemem.quant.calibrate import quantize_fc
from edgemem.train.pipeline import zoo_logits


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_fake_quant_is_brevitas_per_channel_rule(bits):
    torch.manual_seed(bits)
    lin = torch.nn.Linear(12, 5)
    q = mixed.quantization_aware(torch.nn.Sequential(lin), {"0": bits})[0]
    expected = mixed.fake_quant(lin.weight.data, bits)
    torch.testing.assert_close(q.quant_weight().value.detach(), expected, rtol=0, atol=1e-6)
    levels = (expected / (lin.weight.data.abs().amax(1, keepdim=True) / ((1 << (bits - 1)) - 1))).round()
    assert levels.abs().max() <= (1 << (bits - 1)) - 1


def test_eight_bit_fake_quant_equals_the_integer_weights():
    torch.manual_seed(0)
    w = torch.randn(7, 9)
    q = quantize_fc(w, None, 1.0, 1.0)
    torch.testing.assert_close(mixed.fake_quant(w, 8).double(), torch.from_numpy(q.w * q.w_scale[:, None]),
                               rtol=0, atol=1e-6)


def _data(n: int = 64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 20, 6)).astype(np.float32)
    y = (x[:, :, 0].mean(1) > 0).astype(np.int64)
    return x, y


def test_greedy_search_meets_the_budget_one_step_at_a_time():
    torch.manual_seed(0)
    model = ELMNet(ELMConfig(n_in=6, n_out=2, n_s=8, n_m=8, n_mlp=16)).eval()
    x, y = _data()
    fn = zoo_logits("sum")
    sens = mixed.sensitivity(model, fn, x, y)
    sizes = {n: mixed.weight_count(m) for n, m in mixed.weight_layers(model).items()}
    assert set(sens) == set(sizes) and all(set(v) == {4, 2} for v in sens.values())
    full = mixed.config_bytes(sizes, dict.fromkeys(sizes, 8))
    search = mixed.greedy(sens, sizes, full // 3)
    assert search.chosen is search.steps[-1] and search.chosen.weight_bytes <= full // 3
    assert search.steps[0].weight_bytes == full and all(s.bits[n] == 8 for s in search.steps[:1] for n in sizes)
    for a, b in zip(search.steps, search.steps[1:]):
        changed = [n for n in sizes if a.bits[n] != b.bits[n]]
        assert len(changed) == 1 and b.bits[changed[0]] < a.bits[changed[0]] and b.weight_bytes < a.weight_bytes
    mixed.evaluate(model, fn, x, y, search)
    assert all(0 <= s.accuracy <= 1 for s in search.steps)
    with pytest.raises(EdgememError, match="cannot fit"):
        mixed.greedy(sens, sizes, 1)


def test_quantization_aware_model_returns_to_plain_layers():
    torch.manual_seed(0)
    model = LMUFormer(LMUFormerConfig(n_in=6, n_out=3, channels=8, n_u=2, order=4, theta=10.0)).eval()
    bits = dict.fromkeys(mixed.weight_layers(model), 4)
    q = mixed.quantization_aware(model, bits).eval()
    x = torch.randn(2, 12, 6)
    with torch.no_grad():
        torch.testing.assert_close(q(x), mixed.with_bits(model, bits)(x), rtol=1e-5, atol=1e-5)
    back = mixed.back_to_float(model, q)
    assert type(back.convs[0]) is torch.nn.Conv1d
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))


def test_quantize_end_to_end_packs_weights_and_stays_bit_exact(tmp_path):
    """edgemem train (digits LMU, 1 epoch) -> quantize under a budget -> export -> verify: bit-exact on the host and
    the emulated M4, the weights in the budget, quantize.json with the issue's keys."""
    import json
    import subprocess
    import sys

    import yaml

    from conftest import ROOT, need

    need("gcc", "arm-none-eabi-gcc", "qemu-system-arm")

    def edgemem(*args: str) -> str:
        res = subprocess.run([sys.executable, "-m", "edgemem.cli", *args], capture_output=True, text=True, cwd=ROOT,
                             timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        return res.stdout

    recipe = {"name": "tiny_digits", "data": {"source": "digits", "window": 64, "hop": 64, "train_subjects": [1],
                                              "val_subjects": [2], "test_subjects": [3]},
              "model": {"kind": "lmu", "readout": "last", "order": 16, "theta": 64.0, "n_h": 32, "memory_clip": 16.0},
              "train": {"epochs": 2, "batch_size": 16, "lr": 0.02, "threads": 1}, "baselines": [],
              "quant": {"calib_windows": 32}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    edgemem("train", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "out"))
    budget = 700  # int8: hid_m 16*32 + out 32*10 + enc_x 1 + hid_x 32 = 865 bytes
    r = json.loads(edgemem("quantize", str(tmp_path / "out" / "model.pt"), "--flash", f"{budget}", "--ram", "2KiB",
                           "--epochs", "1", "--out", str(tmp_path / "mixed"), "--json"))
    assert {"weight_bytes", "weight_bytes_int8", "accuracy", "accuracy_int8", "bits"} <= set(r)
    assert r["weight_bytes"] <= budget < r["weight_bytes_int8"] == 865 and r["fits_ram"] is True
    assert any(v["weight"] < 8 for v in r["bits"].values())
    for f in ("model.pt", "recipe.yaml", "quantize.json", "pareto.png"):
        assert (tmp_path / "mixed" / f).stat().st_size > 0, f
    edgemem("export", str(tmp_path / "mixed" / "model.pt"), "--out", str(tmp_path / "export"))
    report = json.loads(edgemem("verify", str(tmp_path / "export"), "--json", "--m4-windows", "3"))
    assert report["bit_exact"] and report["bit_exact_host"] and report["bit_exact_cortex_m4"], report
    assert report["accuracy"]["int_reference"] == r["accuracy"]  # quantize's figure is the exported model's


def test_l2mu_graph_lowering_equals_the_version_1_integer_model():
    """The L2MU lowered to the graph format (what its packed weights need) is the version-1 integer model, exactly:
    same scales, same B, the previous spikes recomputed from the membranes (negative thresholds fire after a reset)."""
    from conftest import CHECKPOINT
    from edgemem.checkpoint import load_checkpoint
    from edgemem.export.run import _calibration, quantize_checkpoint
    from edgemem.quant.graph_ref import run_graph
    from edgemem.quant.intops import quantize
    from edgemem.quant.intref import run as run_v1
    from edgemem.quant.lower import lower

    ckpt = load_checkpoint(CHECKPOINT)
    recipe, calib = _calibration(ckpt)
    q = quantize_checkpoint(ckpt)
    low = lower(ckpt.model, calib, recipe.quant.margin)
    assert low.input_scale == q.input_scale and low.output_scale == q.output_scale
    thr = q.pops["memory"].thr
    assert (thr < 0).any()  # the case a zero-initialized spike state would get wrong at the first step
    x = quantize(calib[:64], q.input_scale)
    np.testing.assert_array_equal(run_graph(low.graph, x), run_v1(q, x)[0])
