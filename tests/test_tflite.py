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
    """Each shipped checkpoint lowered afresh (its model.bin unchanged) and written as the four .tflite files: every
    operator is a form docs/tflite.md lists as accepted by TFLM's CMSIS-NN kernels, walked in the flatbuffer: no 16x8
    FULLY_CONNECTED with per-channel weight scales (CMSIS-NN's Prepare refuses it: the per-channel FCs are 1x1
    CONV_2Ds), 16x8 convolutions with int64 biases and zero points 0, BATCH_MATMUL with adj_y and without adj_x (no
    transposed copy in the arena), RESHAPE views that never chain, and CMSIS-NN's int32 accumulators safe."""
    from ai_edge_litert import schema_py_generated as fb

    from edgemem.checkpoint import load_checkpoint
    from edgemem.exporters.run import lower_checkpoint
    from edgemem.exporters.tflite_int8 import to_tflite_int8
    from edgemem.graph.arena import place_by_lifetime
    from edgemem.graph.blob import build_graph_blob
    from edgemem.training.sets import data_sets

    path = ROOT / "models" / name / "model.pt"
    ckpt = load_checkpoint(path)
    sets = data_sets(ckpt, path)
    low = lower_checkpoint(ckpt, path, sets)
    place_by_lifetime(low.graph)
    assert build_graph_blob(low.graph) == (ROOT / "export" / name / "model.bin").read_bytes()  # the shipped graph
    Op, T = fb.BuiltinOperator, fb.TensorType
    tf = to_tflite_float(low, name)
    # model_int8.tflite as export writes it (calibrated on 4 windows here, for time: the same forms) and, where the
    # shipped folder has one, that file
    int8 = [to_tflite_int8(tf.data, sets.calibration[:4], low.input_scale, [s.name for s in tf.states], name).data]
    shipped_int8 = ROOT / "export" / name / "model_int8.tflite"
    if shipped_int8.is_file():
        int8.append(shipped_int8.read_bytes())
    for data in (to_tflite(low, name).data, to_tflite(low, name, variables=True).data, tf.data, *int8):
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


INT8_MODELS = ["l2mu", "elm", "lmuformer_relu_k3", "lmuformer_gelu_k1", "lmu"]


def _int8_file(low, x: np.ndarray, name: str):
    """model_int8.tflite of a small model, calibrated on the test stream itself cut into 40-step windows."""
    from edgemem.exporters.tflite_int8 import to_tflite_int8

    tf = to_tflite_float(low, name)
    calib = x.astype(np.float64).reshape(-1, 40, x.shape[1]) * low.input_scale
    return to_tflite_int8(tf.data, calib, low.input_scale, [s.name for s in tf.states], name)


@pytest.mark.parametrize("name", INT8_MODELS)
def test_the_converter_style_int8_file_runs_near_the_integer_model(name):
    """model_int8.tflite: int8 activations with zero points, per-channel int8 weights, every state input sharing its
    next-state output's parameters (the state feeds back without requantization), TANH at 1/128; CMSIS-NN forms only;
    TFLM runs it streaming from states at their zero points, and its top class agrees with the integer model's on
    most steps, its logits are near the integer model's, and LiteRT's (other int8 rounding) mostly agree with TFLM's
    (not bit-exact: measured per step top-class agreement 0.82-0.99, mean logit error 4-34 % of the mean logit,
    LiteRT vs TFLM 0.90-1.0)."""
    from ai_edge_litert import schema_py_generated as fb

    torch.manual_seed(0)
    low, x = _stream(MODELS[name](), 1)
    m = _int8_file(low, x, name)
    assert cmsis_nn_problems(m.data) == [], cmsis_nn_problems(m.data)[:5]
    model, ops = _walk(m.data)
    sg = model.subgraphs[0]
    Op, T = fb.BuiltinOperator, fb.TensorType
    assert all(t.type != T.FLOAT32 for t in sg.tensors)
    n_states = len(m.states)
    for k in range(n_states):  # state k in and its next value out: one set of parameters
        a, b = sg.tensors[sg.inputs[1 + k]], sg.tensors[sg.outputs[1 + k]]
        assert a.type == b.type == T.INT8
        assert (list(a.quantization.scale), list(a.quantization.zeroPoint)) == (
            list(b.quantization.scale), list(b.quantization.zeroPoint))
    assert list(sg.tensors[sg.inputs[0]].quantization.zeroPoint) == [0]
    for _, op, code in ops:
        ins = [sg.tensors[i] for i in op.inputs if i >= 0]
        if code in (Op.FULLY_CONNECTED, Op.DEPTHWISE_CONV_2D):
            assert ins[0].type == ins[1].type == T.INT8 and ins[2].type == T.INT32
            axis = 0 if code == Op.FULLY_CONNECTED else 3
            assert len(ins[1].quantization.scale) == ins[1].shape[axis] and set(ins[1].quantization.zeroPoint) == {0}
        if code == Op.TANH:
            q = sg.tensors[op.outputs[0]].quantization
            assert (list(q.scale), list(q.zeroPoint)) == ([1 / 128], [0])
        if code == Op.GREATER:  # membrane and threshold at one scale and zero point: a comparison of codes
            assert [(list(t.quantization.scale), list(t.quantization.zeroPoint)) for t in ins].count(
                (list(ins[0].quantization.scale), list(ins[0].quantization.zeroPoint))) == 2
        if code == Op.SELECT_V2:  # spikes: the two values are 1 and 0 in real units (to float32's precision)
            for t, real in ((ins[1], 1.0), (ins[2], 0.0)):
                codes = np.frombuffer(bytes(model.buffers[t.buffer].data), dtype=np.int8).astype(np.float64)
                np.testing.assert_allclose((codes - t.quantization.zeroPoint[0]) * t.quantization.scale[0], real,
                                           rtol=1e-6, atol=0)
    ref = run_graph(low.graph, x[None].astype(np.int64))[0]
    states = [("int8", c) for _, c, _ in m.states]
    zps = [p.zero_point for _, _, p in m.states]
    y = run_sequence(m.data, x, states, "tflm", zps).astype(np.float64)
    agree = float((y.argmax(1) == ref.argmax(1)).mean())
    assert agree >= 0.75, agree
    real = (y - m.output.zero_point) * m.output.scale
    lit = (run_sequence(m.data, x, states, "litert", zps).astype(np.float64) - m.output.zero_point) * m.output.scale
    r = ref * low.output_scale
    assert np.abs(real - r).mean() < 0.5 * np.abs(r).mean(), np.abs(real - r).mean() / np.abs(r).mean()
    assert float((lit.argmax(1) == real.argmax(1)).mean()) >= 0.85  # the two interpreters' int8 rounding differ


def test_the_cmsis_nn_check_names_int8_parameter_faults():
    """The int8 rules of converter-style files: a CONCATENATION of operands with other parameters than its output,
    a TANH output not at 1/128, and weights with a zero point are each named."""
    from edgemem.exporters.tflite_writer import Model, Op, options

    model = Model("int8 faults")
    sg = model.subgraph("step")
    a = sg.tensor("a", (1, 4), "int8", 0.1, 3)
    b = sg.tensor("b", (1, 4), "int8", 0.2, 3)
    cat = sg.tensor("cat", (1, 8), "int8", 0.1, 3)
    sg.op(Op.CONCATENATION, [a, b], [cat], *options("Concatenation", axis=1))
    th = sg.tensor("th", (1, 4), "int8", 1 / 64, 0)
    sg.op(Op.TANH, [a], [th])
    w = sg.const("w", np.ones((2, 4)), "int8", [0.1, 0.1], 5)
    y = sg.tensor("y", (1, 2), "int8", 0.5, 0)
    sg.op(Op.FULLY_CONNECTED, [a, w, sg.const("bias", np.zeros(2), "int32", [0.01, 0.01])], [y],
          *options("FullyConnected"))
    sg.inputs, sg.outputs = [a, b], [cat, th, y]
    found = cmsis_nn_problems(model.to_bytes())
    assert any("CONCATENATION: int8 input 1 has other scale" in p for p in found), found
    assert not any("CONCATENATION: int8 input 0" in p for p in found), found
    assert any("TANH: int8 output must have scale 0.0078125" in p for p in found), found
    assert any("weights need zero point 0" in p for p in found), found


def test_meta_of_an_int8_export_is_checked(tmp_path):
    """A folder listing model_int8.tflite must say its parameters: a missing or malformed tflite_int8 is named."""
    import json

    from edgemem.exporters.folder import load_meta

    meta = json.loads((SHIPPED / "meta.json").read_text())
    meta.pop("tflite_int8", None)
    meta["files"] = {**meta["files"], "model_int8.tflite": "0" * 64}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(EdgememError, match="has no 'tflite_int8' field"):
        load_meta(tmp_path)
    good = {"form": "state as inputs and outputs", "input": [0.5, 0], "output": [0.25, -3],
            "states": [["lmu.m", 32, 0.01, 0]]}
    for bad in ({**good, "output": [0.25, 300]}, {**good, "states": [["lmu.m", 32, -1.0, 0]]}, {**good, "form": 1}):
        (tmp_path / "meta.json").write_text(json.dumps({**meta, "tflite_int8": bad}))
        with pytest.raises(EdgememError, match="field 'tflite_int8' must be"):
            load_meta(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "tflite_int8": good}))
    assert load_meta(tmp_path)["tflite_int8"] == good
