"""NIR export (edgemem/export/nir_export.py): the graph written with nir.write and read back with nir.read, simulated
step by step (edgemem/export/nir_sim.py), reproduces the float model's `step`.

Measured (float32 both sides): per-step logits within 5.8e-6 of the model's on all 1002 held-out har_l2mu windows
and within 3.9e-6 on 512 kws_slmuformer windows, every spike and every class equal. The tolerance here is 1e-4 on the
logits, and the spikes must all agree: a flip would show as an error of the order of a weight, far above it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import torch

from conftest import CHECKPOINT, ROOT, SHIPPED
from edgemem.checkpoint import load_checkpoint
from edgemem.export.nir_export import write_nir
from edgemem.export.nir_sim import simulate
from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig

EDGEMEM = [sys.executable, "-m", "edgemem.cli"]
ATOL = 1e-4


def _reference(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The float model's `step` over x [b][T][n_in]: logits [b][T][n_out] and the spikes of every population."""
    spikes: dict[str, list[torch.Tensor]] = {}
    hooks = []
    lifs = getattr(model, "lifs", None) or model.pops
    for name, cell in lifs.items():  # the neurons' own outputs: (spk, mem) or (spk, syn, mem)
        hooks.append(cell.register_forward_hook(lambda _m, _i, out, n=name: spikes.setdefault(n, []).append(out[0])))
    try:
        with torch.no_grad():
            state, ys = model.init_state(x.shape[0]), []
            for t in range(x.shape[1]):
                out = model.step(x[:, t], state)
                ys.append(out[0])
                state = out[1]
    finally:
        for h in hooks:
            h.remove()
    return torch.stack(ys, 1).numpy(), {k: torch.stack(v, 1).numpy() for k, v in spikes.items()}


def _roundtrip(model: torch.nn.Module, tmp: Path) -> tuple[nir.NIRGraph, list[str]]:
    unsupported = write_nir(model, tmp / "model.nir")
    return nir.read(tmp / "model.nir"), unsupported


def _check(model: torch.nn.Module, graph: nir.NIRGraph, x: torch.Tensor, names: dict[str, str]) -> None:
    ref, ref_spikes = _reference(model, x)
    out, spikes = simulate(graph, x.numpy())
    assert np.abs(out - ref).max() < ATOL
    assert (out.sum(1).argmax(1) == ref.sum(1).argmax(1)).all()
    for pop, node in names.items():
        assert np.array_equal(spikes[node], ref_spikes[pop]), pop
    assert sum(s.sum() for s in spikes.values()) > 0  # the check is not vacuous: neurons do fire


def test_har_l2mu_roundtrip(tmp_path: Path) -> None:
    from edgemem.verify.held_out import held_out_set

    _, ckpt, held = held_out_set(SHIPPED)
    model = ckpt.model.eval()
    graph, unsupported = _roundtrip(model, tmp_path)
    x = torch.tensor(np.asarray(held.x[:16]), dtype=torch.float32)
    _check(model, graph, x, {p: p for p in ("encoder", "memory", "hidden")})
    named = {u.split(":")[0] for u in unsupported}
    assert {"encoder", "memory", "hidden", "lmu_m"} <= named  # reset by subtraction, saturation
    assert graph.metadata["unsupported"].split("\n") == unsupported
    # the LMU memory is plain NIR: a Linear of A on the memory delayed by one step, in a cycle
    assert isinstance(graph.nodes["lmu_A"], nir.Linear) and isinstance(graph.nodes["lmu_m_prev"], nir.Delay)
    assert ("lmu_m_prev", "lmu_A") in graph.edges and ("lmu_A", "lmu_m") in graph.edges
    # run as plain NIR (reset to v_reset, no saturation), the graph is a different model: the extensions matter
    plain, _ = simulate(graph, x.numpy(), extensions=False)
    assert np.abs(plain - _reference(model, x)[0]).max() > ATOL


def _tiny_lmuformer() -> LMUFormer:
    torch.manual_seed(0)
    cfg = LMUFormerConfig(n_in=5, n_out=3, channels=8, kernel=3, n_conv=2, n_u=2, order=4, theta=8.0, mixer_ratio=2,
                          spiking=True, memory_clip=4.0, dropout=0.0)
    model = LMUFormer(cfg).eval()
    with torch.no_grad():  # trained-looking BatchNorm statistics and neurons, so that folding is exercised
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
        for cell in model.lifs.values():
            cell.beta.uniform_(0.0, 1.2)  # some above 1: snntorch clamps to 1 (tau = inf), some at 0 after clamping
            cell.threshold.uniform_(0.5, 1.2)
    return model


def test_tiny_spiking_lmuformer_roundtrip(tmp_path: Path) -> None:
    model = _tiny_lmuformer()
    graph, unsupported = _roundtrip(model, tmp_path)
    torch.manual_seed(1)
    x = 2.0 * torch.randn(4, 30, model.cfg.n_in)
    pops = {p: (f"{p}_lif" if p in ("mix1", "mix2") else p) for p in model.cfg.populations()}
    _check(model, graph, x, pops)
    assert {u.split(":")[0] for u in unsupported} == {*pops.values(), "lmu_m"}
    # the causal conv is Delays plus one Linear per tap; the residuals are edges into the next neuron
    assert isinstance(graph.nodes["conv0_lag2"], nir.Delay) and ("emb1", "hid") in graph.edges
    assert ("hid", "mix2_lif") in graph.edges


def test_cli_nir(tmp_path: Path) -> None:
    res = subprocess.run([*EDGEMEM, "export", str(CHECKPOINT), "--to", "nir", "--out", str(tmp_path / "l2mu")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert nir.read(tmp_path / "l2mu" / "model.nir").metadata["model"] == "l2mu"
    assert not (tmp_path / "l2mu" / "meta.json").exists()
    ann = ROOT / "models" / "kws_lmuformer" / "model.pt"  # shipped: a non-spiking model NIR export must refuse
    assert not load_checkpoint(ann).model.cfg.spiking
    res = subprocess.run([*EDGEMEM, "export", str(ann), "--to", "nir", "--out", str(tmp_path / "ann")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 2
    assert "spiking" in res.stderr + res.stdout and len((res.stderr + res.stdout).strip().splitlines()) == 1
    assert not (tmp_path / "ann").exists()
