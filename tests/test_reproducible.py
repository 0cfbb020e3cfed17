"""An export is a function of the checkpoint, its recipe and the packaged data only: the same bytes with one torch
thread or two, with oneDNN on or off, on another vector width (ATEN_CPU_CAPABILITY), and with calibration windows
that are off by one float32 ulp -- the last-bit noise a float forward pass has on another machine
(docs/architecture.md "Quantization": float64 lowering, peaks snapped by lowering.snap_peak).

Small untrained checkpoints on the watch data (every graph kind: ELM, LMU, LMUFormer ANN and spiking, the L2MU's graph
form), and once the shipped har_elm.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT
from edgemem.checkpoint import Checkpoint, save_checkpoint
from edgemem.errors import EdgememError
from edgemem.exporters import run as export_run
from edgemem.models import registry
from edgemem.quant import lowering
from edgemem.quant.lowering import PEAK_BITS, snap_peak
from edgemem.training.pipeline import build_l2mu, load_windows, prepare
from edgemem.training.recipe import validate
from edgemem.training.sets import DataSets

DATA = {"source": "watch", "window": 100, "hop": 50, "downsample": 2, "train_subjects": [1, 2, 3, 4, 5, 6, 7],
        "val_subjects": [8], "test_subjects": [9, 10]}
LF = {"kind": "lmuformer", "channels": 16, "n_u": 2, "order": 8, "theta": 20.0, "kernel": 3}
# name -> (recipe model section, recipe quant extras, export formats)
CASES: dict[str, tuple[dict, dict, list[str]]] = {
    "elm": ({"kind": "elm", "n_s": 16, "n_m": 8, "n_mlp": 16, "n_branch": 4}, {}, ["onnx", "c", "tflite"]),
    "lmu": ({"kind": "lmu", "n_u": 2, "order": 8, "theta": 20.0, "n_h": 16, "act": "relu", "memory_clip": 8.0}, {},
            ["onnx", "c", "tflite"]),
    "lmuformer_mixed": (LF, {"weight_bits": {"conv0": 4, "mix2": 2}}, ["onnx", "c", "qcdq", "tflite"]),
    "lmuformer_gelu": ({**LF, "activation": "gelu"}, {}, ["onnx", "c", "tflite"]),
    "lmuformer_spiking": ({**LF, "spiking": True}, {}, ["onnx", "c", "tflite"]),
    "l2mu_graph": ({"kind": "l2mu", "n_u": 2, "order": 4, "theta": 20.0, "n_h": 16}, {"weight_bits": {"hid_h": 4}},
                   ["onnx", "c", "qcdq", "tflite"]),
}


@pytest.fixture(autouse=True)
def _restore_threads() -> Iterator[None]:
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@functools.cache
def _windows() -> tuple:
    recipe = validate({"name": "w", "data": DATA})
    return load_windows(recipe)


def _warm_bn(model: torch.nn.Module, x: np.ndarray) -> None:
    """Real BatchNorm statistics and a random affine part (default statistics would make BN the identity)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    if not bns:
        return
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for bn in bns:
            bn.momentum = None
            bn.weight.copy_(torch.empty(bn.num_features).uniform_(0.6, 1.4, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=gen))
        model.train()
        model(torch.from_numpy(x))


def _checkpoint(name: str, folder: Path) -> Path:
    """models/NAME/model.pt of an untrained model of the case, with its recipe (64 calibration windows)."""
    spec, quant, _ = CASES[name]
    recipe = validate({"name": name, "data": DATA, "model": spec, "baselines": [],
                       "quant": {"calib_windows": 64, **quant}})
    windows, class_names = _windows()
    d = recipe.data
    prep = prepare(windows, class_names, d.train_subjects, d.val_subjects, d.test_subjects)
    torch.manual_seed(list(CASES).index(name))
    n_out = len(class_names)
    if spec["kind"] == "l2mu":
        model = build_l2mu(recipe, prep.n_in, n_out)
    else:
        model = registry.build(spec["kind"], recipe.model.params, prep.n_in, n_out, recipe.readout)
    _warm_bn(model, prep.split.train.x[:32])
    path = folder / "models" / name / "model.pt"
    path.parent.mkdir(parents=True)
    save_checkpoint(path, Checkpoint(model.eval(), prep.normalizer, class_names, d.window, recipe.to_dict(), name))
    return path


def _export(ckpt: Path, formats: list[str], out: Path) -> dict[str, bytes]:
    export_run.export(ckpt, formats, out)
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def _perturbed(change: Callable[[np.ndarray], np.ndarray]) -> property:
    """DataSets.calibration (the windows export calibrates on, edgemem.training.sets) with `change` applied."""
    calibration = DataSets.calibration.fget
    assert calibration is not None

    def wrapped(self: DataSets) -> np.ndarray:
        x = calibration(self)
        y = change(np.asarray(x, dtype=np.float32))
        assert y.dtype == np.float32 and not np.array_equal(y, x)
        return y

    return property(wrapped)


def _scaled(x: np.ndarray) -> np.ndarray:
    """Every value times (1 + 1e-7), rounded back to float32: mostly one ulp away."""
    return (x.astype(np.float64) * (1 + 1e-7)).astype(np.float32)


def _one_ulp(x: np.ndarray) -> np.ndarray:
    """Every value one float32 ulp up or down, at random."""
    up = np.random.default_rng(0).random(x.shape) < 0.5
    return np.where(up, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))).astype(np.float32)


@contextlib.contextmanager
def _condition(name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    torch.set_num_threads(2 if name == "threads2" else 1)
    if name == "scaled":
        monkeypatch.setattr(DataSets, "calibration", _perturbed(_scaled))
    elif name == "one_ulp":
        monkeypatch.setattr(DataSets, "calibration", _perturbed(_one_ulp))
    onednn = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = name != "no_onednn"
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = onednn
        monkeypatch.undo()


def _assert_same(a: dict[str, bytes], b: dict[str, bytes], what: str) -> None:
    assert sorted(a) == sorted(b), what
    differ = [f for f in a if a[f] != b[f]]
    assert not differ, f"{what}: {differ} differ"


# ------------------------------------------------------------------------------------------------------- the rule

def test_snap_peak_rounds_up_to_nine_significant_bits():
    rng = np.random.default_rng(0)
    peaks = np.concatenate([10.0 ** rng.uniform(-6, 4, 2000), [1.0, 0.5, 3.0, 255.0, 2.0**-20, 1 - 2**-53, 7.999]])
    for p in peaks:
        s = snap_peak(p)
        m, e = math.frexp(s)
        assert p <= s < p * (1 + 2.0**-8), p  # up, by less than 0.39 %
        assert math.ldexp(m, PEAK_BITS) == int(math.ldexp(m, PEAK_BITS)), p  # 9 significant bits
        assert snap_peak(s) == s  # on the grid: a fixed point
    assert snap_peak(0.0) == 0.0 and snap_peak(1.0) == 1.0 and snap_peak(1.0 + 2**-52) == 1.0 + 2**-8
    # a perturbation of 1e-7 relative moves a snapped peak only when it straddles a grid point: ~1e-7 x 2^9
    moved = np.mean([snap_peak(p) != snap_peak(p * (1 + 1e-7)) for p in peaks[:2000]])
    assert moved < 5e-3
    with pytest.raises(EdgememError, match="finite and >= 0"):
        snap_peak(float("nan"))


# ------------------------------------------------------------------------------------------------------ the exports

@pytest.mark.parametrize("name", list(CASES))
def test_export_bytes_do_not_depend_on_threads_onednn_or_last_bits(name, tmp_path, monkeypatch):
    ckpt = _checkpoint(name, tmp_path)
    formats = CASES[name][2]
    base = _export(ckpt, formats, tmp_path / "base" / name)
    assert {"model.bin", "model.h", "model.c", "meta.json", "model.onnx", "model.tflite"} <= set(base)
    for cond in ("threads2", "no_onednn", "scaled", "one_ulp"):
        with _condition(cond, monkeypatch):
            _assert_same(base, _export(ckpt, formats, tmp_path / cond / name), f"{name}, {cond}")


def test_without_the_rule_last_bits_reach_the_artifacts(tmp_path, monkeypatch):
    """The check above is not vacuous: with snap_peak the identity, calibration windows one ulp off change model.h
    (its scales) and meta.json."""
    ckpt = _checkpoint("elm", tmp_path)
    monkeypatch.setattr(lowering, "snap_peak", lambda p: float(p))
    base = _export(ckpt, ["c"], tmp_path / "base" / "elm")
    monkeypatch.setattr(DataSets, "calibration", _perturbed(_scaled))
    other = _export(ckpt, ["c"], tmp_path / "scaled" / "elm")
    assert base["model.h"] != other["model.h"] and base["meta.json"] != other["meta.json"]


def test_export_bytes_do_not_depend_on_the_cpus_vector_width(tmp_path):
    """torch without its AVX2 / AVX-512 kernels (ATEN_CPU_CAPABILITY=default: other reduction orders, another split
    between vector and scalar exp) and numpy without AVX-512, in a subprocess, against this process's own kernels.
    Before the float64 lowering and snap_peak, both LMUFormers exported other scales (model.h, meta.json) this way."""
    names = ("elm", "lmuformer_mixed", "lmuformer_gelu", "lmuformer_spiking")
    jobs = [(str(_checkpoint(n, tmp_path)), ",".join(CASES[n][2]), str(tmp_path / "there" / n)) for n in names]
    here = {n: _export(Path(ckpt), fmt.split(","), tmp_path / "here" / n) for n, (ckpt, fmt, _) in zip(names, jobs)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "2",
           "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"}
    code = ("import sys; from pathlib import Path; from edgemem.exporters.run import export\n"
            "for ckpt, fmt, out in zip(*[iter(sys.argv[1:])] * 3): export(Path(ckpt), fmt.split(','), Path(out))")
    res = subprocess.run([sys.executable, "-c", code, *[a for job in jobs for a in job]], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for n in names:
        there = {p.name: p.read_bytes() for p in sorted((tmp_path / "there" / n).iterdir())}
        _assert_same(here[n], there, f"{n}, ATEN_CPU_CAPABILITY=default")


def test_shipped_har_elm_export_does_not_depend_on_threads_onednn_or_last_bits(tmp_path, monkeypatch):
    ckpt = ROOT / "models" / "har_elm" / "model.pt"
    formats = ["onnx", "c", "tflite"]
    torch.set_num_threads(1)
    base = _export(ckpt, formats, tmp_path / "a" / "har_elm")
    torch.set_num_threads(2)
    monkeypatch.setattr(DataSets, "calibration", _perturbed(_one_ulp))
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    _assert_same(base, _export(ckpt, formats, tmp_path / "b" / "har_elm"), "har_elm")
