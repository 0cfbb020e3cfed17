"""Pictures of the deployed integer model (edgemem/verification/plots.py): the confusion matrix `edgemem verify
--plot-confusion` draws, and the spike raster and firing rates of `edgemem plot-spikes`, on the shipped L2MU."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SHIPPED, check_png
from edgemem.errors import EdgememError
from edgemem.graph.blob import parse_graph_blob
from edgemem.graph.ref import lif_spikes, run_graph
from edgemem.verification.plots import confusion, int_confusion, plot_confusion, plot_spikes, spikes


def test_confusion_of_the_integer_model_is_normalized_per_true_class(tmp_path):
    norm = int_confusion(SHIPPED, tmp_path / "confusion.png")
    check_png(tmp_path / "confusion.png", (700, 600))
    assert norm.shape == (7, 7) and np.allclose(norm.sum(1), 1.0)
    # the diagonal weighted by the class sizes is the integer reference's accuracy that `make verify` recorded
    from edgemem.verification.held_out import held_out_set

    _, _, ts = held_out_set(SHIPPED)
    sizes = np.bincount(ts.y, minlength=7)
    recorded = json.loads((ROOT / "models" / "har_l2mu" / "verify.json").read_text())["accuracy"]["int_reference"]
    assert abs((np.diag(norm) * sizes).sum() / sizes.sum() - recorded) < 1e-12


def test_a_class_without_windows_is_a_row_of_zeros(tmp_path):
    counts = confusion(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 4)
    norm = plot_confusion(tmp_path / "c.png", counts, ["walk", "run", "sit", "lie"], "tiny")
    assert np.allclose(norm.sum(1), [1, 1, 1, 0]) and norm[0, 1] == 0.5
    with pytest.raises(EdgememError, match="class names"):
        plot_confusion(tmp_path / "c.png", counts, ["a", "b"], "tiny")


def test_spike_raster_and_rates_of_every_population(tmp_path):
    s = spikes(SHIPPED, window=3, rate_windows=64)
    assert s.names == ["encoder", "memory", "hidden"] and s.rate_windows == 64
    assert {p: r.shape for p, r in s.raster.items()} == {"encoder": (50, 8), "memory": (50, 64), "hidden": (50, 44)}
    assert all(set(np.unique(r)) <= {0, 1} for r in s.raster.values())
    # the raster is what run_graph's LIF ops emit for that window, the rates the mean over the 64 windows
    from edgemem.graph.intops import quantize
    from edgemem.verification.held_out import held_out_set

    meta, _, ts = held_out_set(SHIPPED)
    g = parse_graph_blob((SHIPPED / "model.bin").read_bytes())
    xq = quantize(ts.x[:64], float(meta["input_scale"])).astype(np.int8)
    per_step = []
    run_graph(g, xq[3:4], lambda _t, v: per_step.append(int(lif_spikes(g, v)[0])))
    assert sum(int(r.sum()) for r in s.raster.values()) == sum(per_step) > 0
    totals = []
    run_graph(g, xq, lambda _t, v: totals.append(int(lif_spikes(g, v).sum())))
    assert np.isclose(sum(r.sum() * 64 * 50 for r in s.rates.values()), sum(totals))
    assert all(0 <= r.min() and r.max() <= 1 for r in s.rates.values())
    raster, rates = plot_spikes(s, tmp_path / "spikes")
    check_png(raster, (900, 900))
    check_png(rates, (900, 500))


def test_plot_spikes_cli(tmp_path):
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "plot-spikes", str(SHIPPED), "--out", str(tmp_path),
                          "--rate-windows", "16"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "spike_raster.png").is_file() and (tmp_path / "firing_rates.png").is_file()
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "plot-spikes", str(ROOT / "export" / "psmnist_lmu"),
                          "--out", str(tmp_path / "ann")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 2 and "no spiking population" in res.stderr + res.stdout
    assert not (tmp_path / "ann").exists()
