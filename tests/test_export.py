"""Export: ONNX step vs torch, atomic writes, reproducibility (model.c against the blob: tests/test_graph.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from conftest import CHECKPOINT, SHIPPED, random_l2mu
from edgemem.checkpoint import load_checkpoint
from edgemem.errors import EdgememError
from edgemem.exporters import run as export_run
from edgemem.exporters.folder import load_meta
from edgemem.exporters.onnx_export import export_onnx, run_onnx, state_shapes
from edgemem.verification.held_out import held_out_set


def _onnx_vs_torch(model, x: np.ndarray, path) -> None:
    names = export_onnx(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    y_onnx = run_onnx(path, x, names, model.state_shapes())
    with torch.no_grad():
        y_torch, _ = model(torch.from_numpy(x))
    assert np.abs(y_onnx - y_torch.numpy()).max() < 1e-5
    # spikes: stream both and compare the hidden spikes (mem > thr) at every step
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts)
    state_np = {k: np.zeros((x.shape[0], *s), np.float32) for k, s in model.state_shapes().items()}
    state_t = model.init_state(x.shape[0])
    thr = model.threshold("hidden").detach().numpy()
    for t in range(x.shape[1]):
        res = sess.run(None, {"x": x[:, t], **{f"{k}_in": state_np[k] for k in names}})
        state_np = dict(zip(names, res[1:]))
        with torch.no_grad():
            _, state_t, spikes = model.step(torch.from_numpy(x[:, t]), state_t)
        np.testing.assert_array_equal(state_np["mem_hidden"] > thr, spikes["hidden"].numpy() > 0)
        for k in names:
            assert np.abs(state_np[k] - state_t[k].numpy()).max() < 1e-5


def test_onnx_step_matches_torch_on_random_models(tmp_path, rng):
    for seed, neurons in ((0, ("lif", "lif", "lif")), (1, ("cuba", "lif", "cuba"))):
        model = random_l2mu(seed, neurons)
        _onnx_vs_torch(model, rng.normal(size=(4, 40, 6)).astype(np.float32), tmp_path / f"m{seed}.onnx")


def test_onnx_step_matches_torch_on_an_euler_lmu(tmp_path, rng):
    from edgemem.models.lmu_rnn import LMURNN, LMURNNConfig

    torch.manual_seed(0)
    model = LMURNN(LMURNNConfig(n_in=2, n_out=4, order=16, theta=30.0, n_h=12, discretization="euler",
                                substeps=3)).eval()
    x = rng.normal(size=(3, 40, 2)).astype(np.float32)
    path = tmp_path / "euler.onnx"
    names = export_onnx(model, path)
    y_onnx = run_onnx(path, x, names, state_shapes(model))
    with torch.no_grad():
        y_torch = model(torch.from_numpy(x))
    assert np.abs(y_onnx - y_torch.numpy()).max() < 1e-4


def test_onnx_step_matches_torch_on_the_shipped_model_and_real_windows(tmp_path):
    ckpt = load_checkpoint(CHECKPOINT)
    _, _, ts = held_out_set(SHIPPED)
    _onnx_vs_torch(ckpt.model, ts.x[::50][:16], tmp_path / "har.onnx")


def test_shipped_export_is_reproduced_byte_for_byte(tmp_path):
    export_run.export(CHECKPOINT, ["onnx", "c", "tflite"], tmp_path, name="har_l2mu")
    for f in ("model.onnx", "model.bin", "model.c", "model.h", "model.tflite", "model_vars.tflite",
              "model_float.tflite", "model_int8.tflite"):
        assert (tmp_path / f).read_bytes() == (SHIPPED / f).read_bytes(), f
    meta_new = load_meta(tmp_path)
    meta_old = load_meta(SHIPPED)
    assert meta_new["files"] == meta_old["files"]


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("simulated failure while generating C")

    monkeypatch.setattr(export_run.graph_c_arrays, "model_c", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        export_run.export(CHECKPOINT, ["onnx", "c"], out)
    assert not out.exists() or not any(out.iterdir())


def test_export_rejects_unknown_format_and_bad_name(tmp_path):
    with pytest.raises(EdgememError, match="unknown export format 'tfjs'"):
        export_run.export(CHECKPOINT, ["tfjs"], tmp_path)
    with pytest.raises(EdgememError, match="not a valid model name"):
        export_run.export(CHECKPOINT, ["c"], tmp_path, name="har-l2mu")
