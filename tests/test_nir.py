"""NIR export (edgemem/exporters/nir_export.py): the graph written with nir.write and read back with nir.read, simulated
step by step (edgemem/exporters/nir_sim.py), reproduces the float model's `step`. (The consumers: test_nir_consumers.py.)

Measured (float32 both sides): per-step logits within 5.8e-6 of the model's on all 1002 held-out har_l2mu windows
and within 3.9e-6 on the 800 kws_slmuformer windows, every spike and every class equal. The tolerance here is 1e-4 on
the logits, and the spikes must all agree: a flip would show as an error of the order of a weight, far above it.
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
from edgemem.exporters.nir_export import population_spikes, write_nir
from edgemem.exporters.nir_sim import back_edges, simulate
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


def _node(graph: nir.NIRGraph, name: str) -> str:
    """The node called `name` (the exporter prefixes each name with its place in the evaluation order)."""
    return next(n for n in graph.nodes if n.split("_", 1)[1] == name)


def _check(model: torch.nn.Module, graph: nir.NIRGraph, x: torch.Tensor) -> None:
    ref, ref_spikes = _reference(model, x)
    out, spikes = simulate(graph, x.numpy())
    assert np.abs(out - ref).max() < ATOL
    assert (out.sum(1).argmax(1) == ref.sum(1).argmax(1)).all()
    pops = population_spikes(graph, spikes)
    assert set(pops) == set(ref_spikes)
    for pop, s in pops.items():
        assert np.array_equal(s, ref_spikes[pop]), pop
    assert sum(s.sum() for s in spikes.values()) > 0  # the check is not vacuous: neurons do fire
    assert list(graph.nodes) == sorted(graph.nodes)  # the evaluation order is the name order nir.read returns
    declared = {tuple(e.split("->")) for e in str(graph.metadata["recurrent_edges"]).split("\n")}
    assert back_edges(graph) == declared


def test_har_l2mu_roundtrip(tmp_path: Path) -> None:
    from edgemem.verification.held_out import held_out_set

    _, ckpt, held = held_out_set(SHIPPED)
    model = ckpt.model.eval()
    graph, unsupported = _roundtrip(model, tmp_path)
    x = torch.tensor(np.asarray(held.x[:16]), dtype=torch.float32)
    _check(model, graph, x)
    named = {u.split(":")[0].split("_", 1)[1] for u in unsupported}
    # reset by subtraction, saturation; the memory cell with a negative threshold (its own node, threshold -1) has
    # spiked before the first step: the recurrent edge from it starts nonzero
    assert {"encoder", "memory", "memory_neg", "hidden", "lmu_m", "enc_m_neg"} <= named
    assert graph.metadata["unsupported"].split("\n") == unsupported
    thr = model.pops["memory"].threshold.detach().numpy()
    neg = graph.nodes[_node(graph, "memory_neg")]
    assert np.array_equal(neg.metadata["edgemem_neurons"], np.flatnonzero(thr < 0)) and (neg.v_threshold == -1).all()
    # the LMU memory is plain NIR: the identity summing B u and A m of the previous step (an edge back), in a cycle
    m, a = _node(graph, "lmu_m"), _node(graph, "lmu_A")
    assert isinstance(graph.nodes[a], nir.Linear) and (m, a) in graph.edges and (a, m) in back_edges(graph)
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
    _check(model, graph, x)
    assert {u.split(":")[0].split("_", 1)[1] for u in unsupported} == {*model.cfg.populations(), "lmu_m"}
    # the causal conv is a history of k frames (the identity, its older frames shifted back in) and one Affine on it;
    # the residuals are edges into the next neuron (mix2's through an identity, hid's folded into lmu_he)
    hist, shift = _node(graph, "conv0_hist"), _node(graph, "conv0_shift")
    assert (shift, hist) in back_edges(graph) and isinstance(graph.nodes[_node(graph, "conv0")], nir.Affine)
    assert (_node(graph, "hid"), _node(graph, "mix2_res")) in graph.edges
    assert not any(isinstance(n, nir.Delay | nir.Scale) for n in graph.nodes.values())


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


def test_thresholds_of_every_sign(tmp_path: Path) -> None:
    """A population with positive, negative and zero thresholds: three nodes (thresholds 1, -1 and 0), each neuron's
    membrane in units of its |threshold| (1 for a zero threshold), the same spikes as the model."""
    from conftest import random_l2mu

    model = random_l2mu(3, neurons=("lif", "lif", "cuba"))
    with torch.no_grad():
        thr = model.pops["memory"].threshold
        thr[:3] = torch.tensor([-0.04, 0.0, -0.02])
    graph, _ = _roundtrip(model, tmp_path)
    torch.manual_seed(2)
    _check(model, graph, torch.randn(3, 40, model.cfg.n_in))
    groups = {n.split("_", 1)[1]: node.v_threshold[0] for n, node in graph.nodes.items() if "edgemem_population"
              in (node.metadata or {}) and n.split("_", 1)[1].startswith("memory")}
    assert groups == {"memory": 1.0, "memory_neg": -1.0, "memory_zero": 0.0}
