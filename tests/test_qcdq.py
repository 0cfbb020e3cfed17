"""QCDQ ONNX (edgemem/exporters/qcdq.py, edgemem/verification/qcdq.py): the weight codes in the file are the integer graph's
exactly, for small random mixed-precision models of both kinds it supports (LMUFormer, the L2MU's graph lowering),
ties included; onnxruntime agrees with the integer reference on the shipped kws_lmuformer_mixed; a version-1 model is
refused with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from conftest import ROOT, random_l2mu
from edgemem.checkpoint import load_checkpoint
from edgemem.errors import EdgememError
from edgemem.exporters.onnx_export import export_onnx, state_names, state_shapes
from edgemem.exporters.qcdq import WEIGHTS_KEY, export_qcdq
from edgemem.graph.blob import build_graph_blob, parse_graph_blob
from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig
from edgemem.quant import mixed
from edgemem.quant.lower import lower
from edgemem.verification.qcdq import check_export, check_weight_codes, compare

STEPS = 30
LF = dict(n_in=8, n_out=5, channels=16, n_u=2, order=8, theta=20.0)
LF_BITS = {"conv0": 2, "conv1": 4, "lmu_hm": 4, "lmu_he": 2, "mix1": 4, "mix2": 2}  # others 8
L2MU_BITS = {"enc_x": 4, "enc_h": 2, "enc_m": 2, "hid_h": 4, "hid_m": 2, "out": 4}
TIE = (0.875, 0.3125, -0.3125)  # out row 0 at 4 bits: scale 0.875 / 7 = 0.125, so codes 7, +-2.5 -> 7, +-3 (+-2 in brevitas)


def _random_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine parts, so that folding them (into the graph's weights and into the
    QCDQ twin's) is exercised."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)):
            n = bn.num_features
            bn.running_mean.copy_(0.3 * torch.randn(n, generator=gen))
            bn.running_var.uniform_(0.5, 2.0, generator=gen)
            bn.weight.uniform_(0.6, 1.4, generator=gen)
            bn.bias.copy_(0.2 * torch.randn(n, generator=gen))
    return model.eval()


def _tie_l2mu() -> torch.nn.Module:
    model = random_l2mu(3)
    with torch.no_grad():
        model.out.weight[0] = 0.0
        model.out.weight[0, : len(TIE)] = torch.tensor(TIE)
    return model


MODELS = {  # name -> (model, weight widths by graph op)
    "lmuformer_relu": lambda: (_random_bn(LMUFormer(LMUFormerConfig(**LF, kernel=3)), 0), LF_BITS),
    "lmuformer_gelu_k1": lambda: (_random_bn(LMUFormer(LMUFormerConfig(**LF, kernel=1, activation="gelu")), 1), LF_BITS),
    "lmuformer_spiking": lambda: (_random_bn(LMUFormer(LMUFormerConfig(**LF, kernel=3, spiking=True)), 2), LF_BITS),
    "l2mu": lambda: (_tie_l2mu(), L2MU_BITS),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_qcdq_weight_codes_are_the_integer_graphs(name, tmp_path):
    torch.manual_seed(0)
    model, bits = MODELS[name]()
    n_in = model.cfg.n_in
    rng = np.random.default_rng(0)
    low = lower(model, rng.normal(size=(16, STEPS, n_in)).astype(np.float32), 1.25, bits)
    path = tmp_path / "model_qcdq.onnx"
    assert export_qcdq(model, low, path) == state_names(model)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    widths = check_weight_codes(proto, low.graph)
    assert set(bits) < set(widths) and widths == {op: bits.get(op, 8) for op in widths}
    assert check_weight_codes(proto, parse_graph_blob(build_graph_blob(low.graph))) == widths  # the blob's, unnamed

    # onnxruntime vs the integer reference on fresh windows: every class agrees on these models (measured)
    x = rng.normal(size=(32, STEPS, n_in))
    r = compare(path, low.graph, low.input_scale, low.output_scale, x, rng.integers(0, 5, 32), "sum",
                state_names(model), state_shapes(model))
    assert r["weight_codes_exact"] and r["class_agreement"] >= 0.9, r

    # one code changed in the file is found
    init = next(i for i in proto.graph.initializer if i.name == "mix2.weight_q" or i.name == "hid_m.weight_q")
    codes = numpy_helper.to_array(init).copy()
    codes.flat[5] = -codes.flat[5] if codes.flat[5] else 1
    init.CopyFrom(numpy_helper.from_array(codes, init.name))
    with pytest.raises(EdgememError, match="weight codes in the QCDQ ONNX differ from the integer graph's"):
        check_weight_codes(proto, low.graph)


def test_ties_round_as_the_integer_model_not_as_brevitas(tmp_path):
    """brevitas rounds half to even: fed the raw weights, its codes at an exact .5 differ from edgemem's (half away
    from zero); the exporter hands brevitas the graph's grid, so the file holds edgemem's."""
    model = _tie_l2mu()
    rng = np.random.default_rng(0)
    low = lower(model, rng.normal(size=(16, STEPS, 6)).astype(np.float32), 1.25, L2MU_BITS)
    graph_row = next(t for t in low.graph.tensors if t.name == "out.w").data.reshape(model.cfg.n_out, -1)[0, :3]
    assert graph_row.tolist() == [7, 3, -3]
    raw = mixed.quantization_aware(torch.nn.Sequential(model.out), {"0": 4})[0].eval()
    assert raw.quant_weight().int()[0, :3].tolist() == [7, 2, -2]
    export_qcdq(model, low, tmp_path / "q.onnx")
    proto = onnx.load(str(tmp_path / "q.onnx"))
    check_weight_codes(proto, low.graph)
    weights = {p.key: p.value for p in proto.metadata_props}[WEIGHTS_KEY]
    assert '"out": "out.weight_q"' in weights


def test_shipped_kws_lmuformer_mixed_qcdq_agrees_with_the_integer_model():
    """200 held-out windows spread over the test subjects: codes exact; measured there 100 % class agreement, max
    |logit difference| 669 output LSB (mean 63), accuracy 99.0 % both (all 800 windows: 100 %, 783 LSB of integer
    logits up to 26,718, 99.5 % both). Floors: 98 %, 2,000 LSB, accuracies within 2 points."""
    r = check_export(ROOT / "export" / "kws_lmuformer_mixed", windows=200)
    assert r["windows"] == 200 and r["weight_codes_exact"]
    assert set(r["weight_bits"].values()) == {4, 2}
    assert r["class_agreement"] >= 0.98, r
    assert r["max_abs_logit_diff_lsb"] <= 2000, r
    assert abs(r["accuracy_onnx_qcdq"] - r["accuracy_int_reference"]) <= 0.02, r


def test_lmuformer_float_onnx_is_unchanged_by_the_quantizer_hooks(tmp_path):
    """layer_weight, the activation taps and the folded-BN identity are no-ops on a float model: model.onnx is still
    the shipped file byte for byte."""
    ckpt = load_checkpoint(ROOT / "models" / "kws_lmuformer_mixed" / "model.pt")
    export_onnx(ckpt.model, tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == (ROOT / "export" / "kws_lmuformer_mixed" / "model.onnx").read_bytes()


def test_qcdq_export_of_another_kind_is_refused(tmp_path):
    from edgemem.exporters import run as export_run

    with pytest.raises(EdgememError, match="qcdq export supports lmuformer and l2mu models, not elm"):
        export_run.export(ROOT / "models" / "har_elm" / "model.pt", ["qcdq"], tmp_path / "out")
    assert not Path(tmp_path / "out").exists()
