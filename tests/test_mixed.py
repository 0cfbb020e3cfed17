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
from edgemem.quant.lowering import quantize_fc
from edgemem.training.pipeline import zoo_logits


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
              "model": {"kind": "lmu", "readout": "last", "order": 32, "theta": 64.0, "n_h": 256, "memory_clip": 16.0},
              "train": {"epochs": 2, "batch_size": 16, "lr": 0.02, "threads": 1}, "baselines": [],
              "quant": {"calib_windows": 32}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    edgemem("train", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "out"))
    # --flash bounds the image: a budget between the int8 image and the smallest one (weights: hid_m 32*256 + out
    # 256*10 + enc_x 1 + hid_x 256 = 11,009 bytes at int8; at 16*128, 3,457 bytes, the packed kernels (with their
    # paired-input SMLAD loops) cost more than 2-bit weights save: the int8 image is the smallest)
    from edgemem.checkpoint import load_checkpoint
    from edgemem.quant.image import ImageModel
    from edgemem.quant.lower import lower
    from edgemem.quant.mixed_run import _widths

    model = load_checkpoint(tmp_path / "out" / "model.pt").model
    layers = mixed.weight_layers(model)
    sizes = {n: mixed.weight_count(m) for n, m in layers.items()}
    calib = np.random.default_rng(0).normal(size=(4, 64, 1)).astype(np.float32)
    image = ImageModel(lower(model, calib, 1.25, {}, {}).graph, lambda n: n, sizes)
    int8 = image(dict.fromkeys(sizes, 8))
    low = image(image.smallest({n: min(_widths(m), default=8) for n, m in layers.items()}))
    budget = (int8 + low) // 2
    assert low < budget < int8
    r = json.loads(edgemem("quantize", str(tmp_path / "out" / "model.pt"), "--flash", f"{budget}", "--ram", "4KiB",
                           "--epochs", "1", "--out", str(tmp_path / "mixed"), "--json"))
    assert {"weight_bytes", "weight_bytes_int8", "accuracy", "accuracy_int8", "bits", "image_bytes",
            "image_bytes_int8"} <= set(r)
    assert r["weight_bytes"] < r["weight_bytes_int8"] == 11009 and r["fits_ram"] is True
    assert r["image_bytes"] <= budget < r["image_bytes_int8"] == int8 and r["fits_flash"] is True
    assert any(v["weight"] < 8 for v in r["bits"].values())
    for f in ("model.pt", "recipe.yaml", "quantize.json", "pareto.png"):
        assert (tmp_path / "mixed" / f).stat().st_size > 0, f
    edgemem("export", str(tmp_path / "mixed" / "model.pt"), "--out", str(tmp_path / "export"))
    report = json.loads(edgemem("verify", str(tmp_path / "export"), "--json", "--m4-windows", "3"))
    assert report["bit_exact"] and report["bit_exact_host"] and report["bit_exact_cortex_m4"], report
    assert report["accuracy"]["int_reference"] == r["accuracy"]  # quantize's figure is the exported model's
    assert abs(report["flash_bytes"] - r["image_bytes"]) <= 256  # the estimate against the linked probe


# ------------------------------------------------------------------------------ activation widths (8 or 16 bits)

def _tiny_lmuformer(activation: str = "relu"):
    from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig

    torch.manual_seed(0)
    model = LMUFormer(LMUFormerConfig(n_in=6, n_out=4, channels=8, n_u=2, order=4, theta=10.0, kernel=3,
                                      activation=activation))
    for m in model.modules():  # real BatchNorm statistics, as test_models_lmuformer does
        if isinstance(m, torch.nn.BatchNorm1d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 20, 6))
    return model.eval()


def test_16_bit_activations_lower_to_int16_buffers_and_run_bit_exact_in_c(em_run, tmp_path):
    """Every ACT16 activation at 16 bits: int16 buffers read by FC_S16 / ADD_S16, a larger arena, the same C
    outputs as the integer reference, and closer to the float model than all-int8 activations."""
    from test_graph import _em_run_verdict

    from edgemem.graph.arena import place_by_lifetime
    from edgemem.graph.blob import build_graph_blob
    from edgemem.graph.intops import quantize
    from edgemem.graph.ir import DType, kernel_of
    from edgemem.graph.ref import run_graph
    from edgemem.quant.lower import lower
    from edgemem.quant.lower_lmuformer import ACT16

    model = _tiny_lmuformer()
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(16, 20, 6)).astype(np.float32)
    x = rng.normal(size=(6, 20, 6)).astype(np.float32)
    lows = {w: lower(model, calib, 1.25, None, dict.fromkeys(ACT16, w)) for w in (8, 16)}
    for low in lows.values():
        place_by_lifetime(low.graph)
    g8, g16 = lows[8].graph, lows[16].graph
    wide = {b.name for b in g16.buffers if b.dtype == DType.S16 and not b.state} - {"logits16"}
    assert {"y", "o", "conv1", "z"} <= wide
    assert {kernel_of(g16, op) for op in g16.ops} >= {"FC_S16", "ADD_S16", "ACT_S16"}
    assert g16.arena_size > g8.arena_size
    xq = quantize(x, lows[16].input_scale)
    ref = run_graph(g16, xq)
    rc, stderr, host = _em_run_verdict(em_run, build_graph_blob(g16), xq.astype(np.int8))
    assert rc == 0, stderr
    assert np.array_equal(ref.reshape(-1), host)
    with torch.no_grad():
        f = model(torch.from_numpy(xq.astype(np.float32) * np.float32(lows[16].input_scale))).numpy()
    err = {w: float(np.abs(run_graph(lows[w].graph, xq) * lows[w].output_scale - f).mean()) for w in (8, 16)}
    assert err[16] < err[8], err


def test_activation_widths_other_than_the_supported_ones_are_errors():
    from edgemem.errors import EdgememError
    from edgemem.quant.lower import lower

    calib = np.zeros((2, 10, 6), dtype=np.float32)
    with pytest.raises(EdgememError, match="8 or 16 bits"):
        lower(_tiny_lmuformer(), calib, 1.25, None, {"z": 12})
    with pytest.raises(EdgememError, match="GELU"):
        lower(_tiny_lmuformer("gelu"), calib, 1.25, None, {"z": 16})


def test_activation_sensitivity_and_the_choice_under_a_ram_budget():
    from edgemem.quant.lower_lmuformer import ACT16
    from edgemem.quant.mixed import ACT_GAIN, act_peaks, act_sensitivity, choose_act_bits
    from edgemem.training.pipeline import zoo_logits

    model = _tiny_lmuformer()
    fn = zoo_logits("sum")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 20, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=32)
    with torch.no_grad():
        before = model(torch.from_numpy(x))
    peaks = act_peaks(model, fn, x, ACT16)
    sens = act_sensitivity(model, fn, x, y, ACT16, peaks)
    with torch.no_grad():
        assert torch.equal(model(torch.from_numpy(x)), before)  # the hooks are gone
    assert all(p > 0 for p in peaks.values())
    assert all(abs(v[16]) < 1e-3 and v[8] != v[16] for v in sens.values())  # 16-bit rounding is nearly float
    # the choice: by gain, as RAM allows (arena_of here: 100 B a wide activation on top of 1000 B)
    fake = {"e": {8: 0.5, 16: 0.0}, "y": {8: 0.2, 16: 0.0}, "z": {8: ACT_GAIN / 2, 16: 0.0}, "o": {8: 0.3, 16: 0.0}}

    def arena(bits: dict[str, int]) -> int:
        return 1000 + 100 * sum(b == 16 for b in bits.values())

    assert choose_act_bits(fake, arena, None) == {"e": 16, "y": 16, "z": 8, "o": 16}  # z's gain is too small
    assert choose_act_bits(fake, arena, 1200) == {"e": 16, "y": 8, "z": 8, "o": 16}  # the two largest gains fit
    assert choose_act_bits(fake, arena, 999) == dict.fromkeys(fake, 8)


def test_widths_report_reads_the_integer_graph():
    """Per weight layer: its packed width and the width of the buffer it reads; per LMU/LIF op: its state width.
    The conv layers share their names with the ACT ops after them: only FC/CONV1D ops count."""
    from edgemem.quant.lower import lower
    from edgemem.quant.mixed_run import _widths_report

    calib = np.random.default_rng(0).normal(size=(8, 20, 6)).astype(np.float32)
    g = lower(_tiny_lmuformer(), calib, 1.25, {"conv0": 4, "mix2": 2}, {"z": 16}).graph
    bits, state = _widths_report(g, ["conv0", "conv1", "lmu_u", "lmu_hm", "mix2", "head"])
    assert bits["conv0"] == {"weight": 4, "activation": 8} and bits["mix2"] == {"weight": 2, "activation": 16}
    assert bits["lmu_hm"] == {"weight": 8, "activation": 16}  # it reads the int16 LMU memory
    assert bits["head"]["activation"] == 8 and state == {"lmu": 16}


def test_greedy_final_step_reaches_the_budget_with_the_cheapest_move():
    """Sizes and costs by hand: per byte, 'big' 8->4 is cheapest (1e-4/B) and would halve 1000 B; but 40 bytes over
    the budget, 'small' 8->4 (50 B saved, cost 0.01) also reaches it, for less loss than 'big' (0.05)."""
    sens = {"big": {4: 0.05, 2: 1.0}, "small": {4: 0.01, 2: 1.0}, "rest": {4: 5.0, 2: 9.0}}
    sizes = {"big": 1000, "small": 100, "rest": 100}  # int8: 1200 B
    search = mixed.greedy(sens, sizes, 1160)
    assert search.chosen.bits == {"big": 8, "small": 4, "rest": 8} and search.chosen.weight_bytes == 1150
    # far from the budget, the ratio rule still leads: big first
    assert mixed.greedy(sens, sizes, 700).steps[1].bits["big"] == 4


def test_distillation_pulls_the_student_toward_the_teacher():
    """Quantization-aware fine-tuning with --distill: a teacher trained on flipped labels; the same student, seed and
    epochs end closer to its output distribution (KL) with the KD term than with cross-entropy alone."""
    import copy

    from edgemem.training.loop import fit
    from edgemem.training.recipe import TrainSpec

    torch.manual_seed(0)
    x, y = _data()
    fn = zoo_logits("sum")
    spec = TrainSpec(epochs=4, batch_size=16, lr=0.02)
    teacher = ELMNet(ELMConfig(n_in=6, n_out=2, n_s=8, n_m=8, n_mlp=16))
    fit(teacher, fn, (x, 1 - y), None, spec, quiet=True)
    student = ELMNet(ELMConfig(n_in=6, n_out=2, n_s=8, n_m=8, n_mlp=16))

    def kl_to_teacher(m: torch.nn.Module) -> float:
        with torch.no_grad():
            t = torch.log_softmax(fn(teacher, torch.from_numpy(x)), 1)
            s = torch.log_softmax(fn(m, torch.from_numpy(x)), 1)
            return float(torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean"))

    plain, kd = copy.deepcopy(student), copy.deepcopy(student)
    fit(plain, fn, (x, y), None, spec, quiet=True)
    fit(kd, fn, (x, y), None, spec, quiet=True, teacher=copy.deepcopy(teacher).eval())
    assert kl_to_teacher(kd) < kl_to_teacher(plain)


def test_pareto_front_of_every_evaluated_configuration(tmp_path):
    """quantize's pareto.png: the search path plus the single moves and uniform widths, evaluated on the validation
    set; the highlighted front is exactly the non-dominated configurations; the shipped quantize.json plots too."""
    import json

    from conftest import ROOT, check_png
    from edgemem.quant.mixed_run import evaluated_configurations, plot_pareto

    torch.manual_seed(0)
    model = ELMNet(ELMConfig(n_in=6, n_out=2, n_s=8, n_m=8, n_mlp=16)).eval()
    x, y = _data()
    fn = zoo_logits("sum")
    sens = mixed.sensitivity(model, fn, x, y)
    sizes = {n: mixed.weight_count(m) for n, m in mixed.weight_layers(model).items()}
    search = mixed.greedy(sens, sizes, mixed.config_bytes(sizes, dict.fromkeys(sizes, 8)) // 3)
    mixed.evaluate(model, fn, x, y, search)
    configs = evaluated_configurations(model, fn, x, y, sizes, sens, search)
    assert len(configs) > len(search.steps) and all(0 <= c["val_accuracy_fake_quant"] <= 1 for c in configs)
    assert [c["search_path"] for c in configs] == [True] * len(search.steps) + [False] * (len(configs) - len(search.steps))
    assert len({tuple(c["bits"].values()) for c in configs}) == len(configs)
    chosen = len(search.steps) - 1
    front = plot_pareto(tmp_path / "pareto.png", configs, chosen, 100, "tiny ELM", "note")
    assert [i for i, c in enumerate(configs) if c["pareto_front"]] == sorted(front)
    pts = [(c["weight_bytes"], c["val_accuracy_fake_quant"]) for c in configs]

    def dominates(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    assert not any(dominates(pts[j], pts[i]) for i in front for j in range(len(pts)))  # the front is non-dominated
    assert all(any(dominates(pts[f], pts[i]) or pts[f] == pts[i] for f in front) for i in range(len(pts)))
    assert [pts[i][0] for i in front] == sorted(pts[i][0] for i in front)  # by bytes: accuracy rises with bytes
    check_png(tmp_path / "pareto.png", (700, 450))
    shipped = json.loads((ROOT / "models" / "kws_lmuformer_mixed" / "quantize.json").read_text())["configurations"]
    plot_pareto(tmp_path / "shipped.png", shipped, len(shipped) - 1, 14336, "kws_lmuformer_mixed")
    check_png(tmp_path / "shipped.png", (700, 450))
