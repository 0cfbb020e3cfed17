"""TFLite export (edgemem/exporters/tflite_export.py): small random models of every kind, lowered to an integer graph,
written as one .tflite step and run in TFLite Micro and LiteRT over streamed input, against the integer reference.

TFLM computes edgemem's integers exactly (every step, every logit), and so does LiteRT on the 1x1 16x8 CONV_2Ds that
carry per-channel FCs. LiteRT's 16x8 FULLY_CONNECTED (written only where every channel has one multiplier) rounds
exact .5 ties away from zero where TFLM and edgemem round them up, so it may differ by one unit at such a tie.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from conftest import ROOT, SHIPPED, random_l2mu
from edgemem.errors import EdgememError
from edgemem.exporters.tflite_cmsis import cmsis_nn_problems, op_counts
from edgemem.exporters.tflite_export import to_tflite
from edgemem.exporters.tflite_float import to_tflite_float
from edgemem.exporters.tflite_run import run_sequence
from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.intops import quantize_multiplier15
from edgemem.graph.ir import OpType
from edgemem.graph.ref import run_graph
from edgemem.models.elm import ELMConfig, ELMNet
from edgemem.models.lmu_rnn import LMURNN, LMURNNConfig
from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig
from edgemem.quant.lower import lower
from edgemem.verification.tflite import check_export

STEPS = 200
FLOAT_AGREEMENT: dict[str, float] = {}  # per-step argmax, float32 file vs the int8 model (printed by -s)
LF = dict(n_in=8, n_out=5, channels=16, n_u=2, order=8, theta=20.0)
MODELS = {
    "lmuformer_relu_k3": lambda: LMUFormer(LMUFormerConfig(**LF, kernel=3)),
    "lmuformer_gelu_k1": lambda: LMUFormer(LMUFormerConfig(**LF, kernel=1, activation="gelu")),
    "lmuformer_spiking": lambda: LMUFormer(LMUFormerConfig(**LF, kernel=3, spiking=True)),
    "l2mu": lambda: random_l2mu(3),
    "elm": lambda: ELMNet(ELMConfig(n_in=6, n_out=5, n_s=8, n_m=8, n_mlp=16)),
    "lmu": lambda: LMURNN(LMURNNConfig(n_in=2, n_out=4, order=16, theta=30.0, n_h=24)),
    "lmu_euler": lambda: LMURNN(LMURNNConfig(n_in=2, n_out=4, order=16, theta=30.0, n_h=24, discretization="euler",
                                             substeps=3)),
}


def _stream(model: torch.nn.Module, seed: int) -> tuple[object, np.ndarray]:
    torch.manual_seed(seed)
    n_in = model.cfg.n_in
    rng = np.random.default_rng(seed)
    low = lower(model.eval(), rng.normal(size=(16, 40, n_in)).astype(np.float32))
    x = np.clip(np.round(rng.normal(size=(STEPS, n_in)) * 50), -128, 127).astype(np.int8)
    return low, x


@pytest.mark.parametrize("name", list(MODELS))
def test_tflm_runs_the_integer_graph_exactly(name):
    torch.manual_seed(0)
    low, x = _stream(MODELS[name](), 1)
    tm = to_tflite(low, name)
    assert cmsis_nn_problems(tm.data) == []  # every operator in a form TFLM's CMSIS-NN build takes (docs/tflite.md)
    ref = run_graph(low.graph, x[None].astype(np.int64))[0]
    states = [(s.dtype, s.count) for s in tm.states]
    tflm = run_sequence(tm.data, x, states, "tflm").astype(np.int64)
    assert tflm.shape == ref.shape and np.array_equal(tflm, ref), np.argwhere(tflm != ref)[:5]
    for backend in ("litert-ref", "litert"):  # LiteRT's 16x8 CONV_2D rounds as TFLM does: exact (docs/tflite.md)
        y = run_sequence(tm.data, x, states, backend).astype(np.int64)
        assert np.array_equal(y, ref), (backend, np.abs(y - ref).max())
    # the resource-variable file keeps the same state inside: one input, same logits
    tv = to_tflite(low, name, variables=True)
    assert cmsis_nn_problems(tv.data) == []
    assert np.array_equal(run_sequence(tv.data, x, [], "tflm").astype(np.int64), ref)
    # the float32 twin: the same in both interpreters, and close to the int8 model
    tf = to_tflite_float(low, name)
    assert cmsis_nn_problems(tf.data) == []
    xf = (x * low.input_scale).astype(np.float32)
    ys = [run_sequence(tf.data, xf, [("float32", s.count) for s in tf.states], b) for b in ("tflm", "litert-ref")]
    real = ref * low.output_scale
    np.testing.assert_allclose(ys[0], ys[1], rtol=1e-4, atol=1e-4 * np.abs(real).max())
    FLOAT_AGREEMENT[name] = float((ys[0].argmax(1) == ref.argmax(1)).mean())
    assert FLOAT_AGREEMENT[name] >= 0.5, FLOAT_AGREEMENT


def test_multipliers_have_15_bits_and_are_float32_exact():
    rng = np.random.default_rng(0)
    for real in np.exp(rng.uniform(-25, 10, 2000)):  # 2^-36 .. 2^14: shifts 17 .. 67
        if real < 2.0**-32 * (1 - 2**-16):  # shift > 62
            with pytest.raises(EdgememError, match="out of the representable range"):
                quantize_multiplier15(float(real))
            continue
        m, s = quantize_multiplier15(float(real))
        assert m & 0xFFFF == 0 and 1 << 30 <= m < 1 << 31
        assert abs(m * 2.0**-s / real - 1) <= 2**-15
        assert float(np.float32(math.ldexp(m, -s))) == math.ldexp(m, -s)  # the weight scale a .tflite stores
    assert quantize_multiplier15(1 - 2**-20) == (1 << 30, 30)  # rounds up to the next power of two
    with pytest.raises(EdgememError, match="must be positive"):
        quantize_multiplier15(0.0)


def test_a_graph_lowered_without_scales_is_refused():
    low, _ = _stream(MODELS["l2mu"](), 2)
    low.scales = {}
    with pytest.raises(EdgememError, match="no buffer scales"):
        to_tflite(low)


@pytest.mark.parametrize("name", ["har_elm", "har_l2mu_mixed"])
def test_shipped_tflite_gate(name):
    """The shipped files against model.bin on 1,000 held-out steps: TFLM bit-exact, in both the state-I/O and the
    resource-variable form; LiteRT, given TFLM's state at every step, within `ties` units of TFLM in every state and
    logit of that step: LiteRT rounds an exact .5 tie of a 16x8 FULLY_CONNECTED away from zero where TFLM rounds up
    (docs/tflite.md), one unit per FC, and the most FCs summed into one buffer is the most a step's value can move
    (3 for the L2MU's currents; measured 3 on har_l2mu_mixed's re-export, 2 before it). Run free, har_l2mu_mixed's
    LiteRT logits drift by thousands once a tie flips a spike, so that figure checks nothing. The float32 twin agrees
    with the int8 model on most steps' top class."""
    folder = SHIPPED.parent / name
    g = parse_graph_blob((folder / "model.bin").read_bytes())
    fcs_into = Counter(op.out for op in g.ops if op.type == OpType.FC)
    ties = max(fcs_into.values())
    r = check_export(folder, steps=1000)
    assert r["steps"] == 1000 and r["tflm"]["bit_exact"] and r["tflm_resource_variables"]["bit_exact"], r
    for backend in ("litert-ref", "litert"):
        assert r[backend]["step_max_abs_difference"] <= ties, (backend, ties, r[backend])
    assert r["float32"]["argmax_agreement"] >= 0.8, r["float32"]
    assert r["tflm_arena_bytes"] > 0


def test_a_folder_without_tflite_files_is_refused(tmp_path):
    with pytest.raises(EdgememError, match="has no model.tflite; export with --to tflite"):
        check_export(tmp_path)


SHIPPED_MODELS = sorted(p.name for p in (ROOT / "models").iterdir() if (p / "model.pt").is_file())


def _walk(data: bytes) -> tuple[list, list]:
    from ai_edge_litert import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(data, 0)
    return m, [(sg, op, max(m.operatorCodes[op.opcodeIndex].builtinCode,
                            m.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode))
               for sg in m.subgraphs for op in sg.operators]


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_every_shipped_model_exports_only_cmsis_nn_forms(name):
    """Each shipped checkpoint lowered afresh (its model.bin unchanged) and written as the three .tflite files: every
    operator is a form docs/tflite.md lists as accepted by TFLM's CMSIS-NN kernels, walked in the flatbuffer: no 16x8
    FULLY_CONNECTED with per-channel weight scales (CMSIS-NN's Prepare refuses it: the per-channel FCs are 1x1
    CONV_2Ds), 16x8 convolutions with int64 biases and zero points 0, BATCH_MATMUL with adj_y and without adj_x (no
    transposed copy in the arena), RESHAPE views that never chain, and CMSIS-NN's int32 accumulators safe."""
    from ai_edge_litert import schema_py_generated as fb

    from edgemem.checkpoint import load_checkpoint
    from edgemem.exporters.run import lower_checkpoint
    from edgemem.graph.arena import place_by_lifetime
    from edgemem.graph.blob import build_graph_blob

    path = ROOT / "models" / name / "model.pt"
    low = lower_checkpoint(load_checkpoint(path), path)
    place_by_lifetime(low.graph)
    assert build_graph_blob(low.graph) == (ROOT / "export" / name / "model.bin").read_bytes()  # the shipped graph
    Op, T = fb.BuiltinOperator, fb.TensorType
    for data in (to_tflite(low, name).data, to_tflite(low, name, variables=True).data, to_tflite_float(low, name).data):
        assert cmsis_nn_problems(data) == [], cmsis_nn_problems(data)[:5]
        m, ops = _walk(data)
        for sg, op, code in ops:
            ins = [sg.tensors[i] for i in op.inputs if i >= 0]
            if code == Op.FULLY_CONNECTED and ins[0].type == T.INT16:
                assert len(ins[1].quantization.scale) == 1
            if code == Op.CONV_2D and ins[0].type == T.INT16:
                assert ins[1].type == T.INT8 and ins[2].type == T.INT64 and len(ins[0].shape) == 4
                assert len(ins[1].quantization.scale) == ins[1].shape[0]
            if code == Op.BATCH_MATMUL:
                assert op.builtinOptions.adjY and not op.builtinOptions.adjX
            if code == Op.RESHAPE:  # a view of the tensor holding the integers, never of another view
                src = int(op.inputs[0])
                assert not any(c == Op.RESHAPE and int(o.outputs[0]) == src for s2, o, c in ops if s2 is sg)
    counts = op_counts(to_tflite(low, name).data)
    fcs = sum(1 for op in low.graph.ops if op.type in (OpType.FC, OpType.CONV1D))
    assert counts.get("CONV_2D", 0) + counts.get("FULLY_CONNECTED", 0) == fcs


def test_the_cmsis_nn_check_names_the_forms_it_refuses():
    """The forms the exporter wrote before (16x8 FULLY_CONNECTED with per-channel scales, BATCH_MATMUL without
    adj_y) and an int32 accumulator CMSIS-NN could overflow are each named."""
    from edgemem.exporters.tflite_writer import Model, Op, options

    model = Model("old forms")
    sg = model.subgraph("step")
    x = sg.tensor("x", (1, 4), "int16", 1.0)
    w = sg.const("w", np.full((3, 4), 127), "int8", [2.0**-20, 2.0**-21, 2.0**-22])
    b = sg.const("b", np.zeros(3), "int64", [2.0**-20, 2.0**-21, 2.0**-22])
    y = sg.tensor("y", (1, 3), "int16", 1.0)
    sg.op(Op.FULLY_CONNECTED, [x, w, b], [y], *options("FullyConnected"))
    big = sg.const("big", np.full((1, 1, 1, 600), 127), "int8", [1.0])
    x4 = sg.tensor("x4", (1, 1, 1, 600), "int16", 1.0)
    y4 = sg.tensor("y4", (1, 1, 1, 1), "int16", 1.0)
    sg.op(Op.CONV_2D, [x4, big, sg.const("b1", np.zeros(1), "int64", [1.0])], [y4], *options("Conv2D", padding=1))
    m = sg.tensor("m", (2, 4), "int16", 1.0)
    out = sg.tensor("mm", (2, 4), "int16", 1.0)
    sg.op(Op.BATCH_MATMUL, [m, sg.const("a", np.eye(4), "int16", 1.0)], [out], *options("BatchMatMul"))
    sg.inputs, sg.outputs = [x, x4, m], [y, y4, out]
    found = cmsis_nn_problems(model.to_bytes())
    assert any("FULLY_CONNECTED with per-channel weight scales" in p for p in found), found
    assert any("overflows CMSIS-NN's int32 accumulator" in p for p in found), found
    assert any("without adj_y" in p for p in found), found
