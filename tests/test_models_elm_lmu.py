"""The ELM network (edgemem/models/elm.py) and the LMU classifier (edgemem/models/lmu_rnn.py): whole-sequence forms
equal streaming, the folded (integer-graph) form equals the model, clamps hold, cost counts, and both learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgemem.exporters.onnx_export import StepModule
from edgemem.models.elm import ELMConfig, ELMNet
from edgemem.models.lmu_rnn import LMURNN, LMURNNConfig


def _stepped(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    state = model.init_state(x.shape[0])
    out = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        out.append(y)
    return torch.stack(out, dim=1)


def _elm(seed: int = 0, **kw: object) -> ELMNet:
    torch.manual_seed(seed)
    cfg = ELMConfig(**{"n_in": 5, "n_out": 4, "n_s": 12, "n_m": 6, "n_mlp": 10, **kw})  # type: ignore[arg-type]
    model = ELMNet(cfg).double()
    with torch.no_grad():  # the default init leaves b_2 small; a visible memory needs a visible update
        for n in model.neurons:
            n.mlp_out.weight.mul_(3.0)
    return model


# ---- ELM -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"n_branch": 4}, {"n_neurons": 3, "mlp_act": "relu"}])
def test_elm_forward_equals_stepping(kw):
    model = _elm(**kw)
    x = torch.randn(3, 40, 5, dtype=torch.float64)
    y = model(x)
    assert y.shape == (3, 40, 4)
    torch.testing.assert_close(y, _stepped(model, x), rtol=0, atol=1e-12)
    wrapped = StepModule(model)
    state = model.init_state(3)
    logits, *new = wrapped(x[:, 0], *[state[k] for k in model.state_names()])
    torch.testing.assert_close(logits, y[:, 0])
    assert [t.shape[1] for t in new] == [12, 6] * model.cfg.n_neurons


@pytest.mark.parametrize("kw", [{}, {"n_branch": 3}, {"n_neurons": 2}])
def test_elm_folded_form_is_the_model(kw):
    """The integer graph runs FC -> LEAKY, FC + FC -> ACT, FC -> LEAKY, FC ACC with folded weights: same numbers."""
    model = _elm(seed=1, **kw)
    x = torch.randn(2, 30, 5, dtype=torch.float64)
    c = model.cfg
    folded = [n.folded() for n in model.neurons]
    if c.n_branch:
        assert model.neurons[0].mlp_a.in_features == c.n_branch  # the model's MLP reads branch sums
    s = [torch.zeros(2, c.n_s, dtype=torch.float64) for _ in folded]
    m = [torch.zeros(2, c.n_m, dtype=torch.float64) for _ in folded]
    out = []
    for t in range(x.shape[1]):
        logits = model.out_bias.detach().expand(2, -1).clone()
        for k, f in enumerate(folded):
            s[k] = (f["lambda_s"] * s[k] + x[:, t] @ f["W_s"].T).clamp(-c.trace_clip, c.trace_clip)
            h = torch.tanh(s[k] @ f["W_1s"].T + m[k] @ f["W_1m"].T + f["b_1"])
            m[k] = (f["lambda_m"] * m[k] + h @ f["W_2"].T + f["b_2"]).clamp(-c.memory_clip, c.memory_clip)
            logits = logits + m[k] @ f["W_y"].T
        out.append(logits)
    with torch.no_grad():
        torch.testing.assert_close(torch.stack(out, 1), model(x), rtol=0, atol=1e-12)


def test_elm_clamps_hold_and_act():
    model = _elm(seed=2, trace_clip=1.5, memory_clip=0.25)
    x = 50 * torch.randn(4, 60, 5, dtype=torch.float64)
    state = model.init_state(4)
    peak_s = peak_m = 0.0
    for t in range(60):
        _, state = model.step(x[:, t], state)
        peak_s = max(peak_s, state["trace_0"].abs().max().item())
        peak_m = max(peak_m, state["memory_0"].abs().max().item())
    assert peak_s == 1.5 and peak_m == 0.25  # reached (the input is far beyond both bounds) and never exceeded


def test_elm_time_constants_stay_in_bounds_and_start_log_spaced():
    model = _elm(tau_m_min=2.0, tau_m_max=200.0, n_m=4)
    tau = model.neurons[0].tau_m
    ratios = tau.tau()[1:] / tau.tau()[:-1]
    torch.testing.assert_close(ratios, torch.full_like(ratios, 100 ** 0.25))  # centres of 4 log bins of [2, 200]
    with torch.no_grad():
        tau.raw.copy_(torch.tensor([-1e4, -3.0, 3.0, 1e4]))
    t = tau.tau()
    assert t.min() >= 2.0 - 1e-9 and t.max() <= 200.0 + 1e-9
    assert tau.raw.requires_grad
    assert not ELMNet(ELMConfig(learn_tau=False)).neurons[0].tau_s.raw.requires_grad


def test_elm_params_and_macs_are_the_hand_count():
    cfg = ELMConfig(n_in=6, n_out=7, n_neurons=2, n_s=8, n_branch=4, n_m=5, n_mlp=9)
    model = ELMNet(cfg)
    # per neuron: W_s 6*8, tau_s 8, tau_m 5, W_1a 9*4 + b_1 9, W_1m 9*5, W_2 5*9 + b_2 5, W_y 7*5; shared bias 7
    per = 48 + 8 + 5 + 36 + 9 + 45 + 45 + 5 + 35
    assert model.param_count() == 2 * per + 7
    macs = 2 * (6 * 8 + 9 * (4 + 5) + 5 * 9 + 7 * 5)
    assert model.macs_per_step() == macs
    # traces 2*8, branch sums 8-4, lambda_m*m 5, biases 9+5, tanh 9, memory update 3*5, readout sum/bias 7
    elementwise = 2 * (16 + 4 + 5 + 14 + 9 + 15 + 7)
    assert model.elementwise_per_step() == elementwise
    assert model.flops_per_inference(50) == 50 * (2 * macs + elementwise)


def test_elm_config_round_trip_and_checks():
    cfg = ELMConfig(n_neurons=2, n_branch=4, mlp_act="relu")
    assert ELMConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"n_branch": 5}, {"mlp_act": "gelu"}, {"tau_m_min": 10.0, "tau_m_max": 5.0}, {"n_m": 0}):
        with pytest.raises(ValueError):
            ELMConfig(**bad)  # type: ignore[arg-type]


def test_elm_learns_a_synthetic_temporal_task():
    """Class = the channel with the largest mean over the first half of the sequence (the second half is noise):
    the memory must hold it until the end, where the summed logits decide."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n, steps, ch = 256, 24, 3
    y = torch.randint(0, ch, (n,), generator=g)
    x = 0.5 * torch.randn(n, steps, ch, generator=g)
    x[torch.arange(n), : steps // 2, y] += 1.0
    torch.manual_seed(0)
    model = ELMNet(ELMConfig(n_in=ch, n_out=ch, n_s=8, n_m=8, n_mlp=16))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x).mean(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with torch.no_grad():
        assert (model(x).sum(1).argmax(1) == y).float().mean() > 0.8


# ---- LMU ---------------------------------------------------------------------------------------------------------
def _lmu(seed: int = 0, **kw: object) -> LMURNN:
    torch.manual_seed(seed)
    cfg = LMURNNConfig(**{"n_in": 2, "n_out": 3, "n_u": 2, "order": 12, "theta": 50.0, "n_h": 9, **kw})  # type: ignore[arg-type]
    return LMURNN(cfg).double()


@pytest.mark.parametrize("act,memory", [("tanh", {}), ("relu", {}), ("tanh", {"discretization": "euler",
                                                                             "substeps": 3})])
def test_lmu_closed_form_parallel_and_stepping_agree(act, memory):
    model = _lmu(act=act, **memory)
    x = torch.randn(3, 80, 2, dtype=torch.float64)
    with torch.no_grad():
        stepped = _stepped(model, x)
        par = model(x)
        last = model.forward_last(x)
    assert par.shape == (3, 80, 3) and last.shape == (3, 3)
    torch.testing.assert_close(par, stepped, rtol=0, atol=1e-6)  # FFT in float32 (LMUMemory.parallel)
    torch.testing.assert_close(last, stepped[:, -1], rtol=0, atol=1e-12)
    torch.testing.assert_close(last, par[:, -1], rtol=0, atol=1e-6)
    wrapped = StepModule(model)
    logits, m = wrapped(x[:, 0], torch.zeros(3, 24, dtype=torch.float64))
    torch.testing.assert_close(logits, stepped[:, 0])
    assert m.shape == (3, 24)


def test_lmu_closed_form_memory_is_the_stepped_memory_over_784_steps():
    model = _lmu(n_in=1, n_u=1, order=64, theta=784.0)
    x = torch.rand(2, 784, 1, dtype=torch.float64)
    state = model.init_state(2)
    with torch.no_grad():
        for t in range(784):
            _, state = model.step(x[:, t], state)
        closed = model.last_memory(x)
    assert state["lmu_m"].abs().max() > 0.1  # a memory that holds something
    torch.testing.assert_close(closed, state["lmu_m"], rtol=0, atol=1e-11)


def test_lmu_memory_bound_is_reached_and_keeps_the_clamp_idle():
    """An input at lo or hi by the sign of the impulse response drives one memory dimension exactly to the bound:
    with memory_clip at the bound stepping equals the unclamped closed form; below it the clamp acts."""
    steps = 150
    model = _lmu(n_in=1, n_u=1, order=10, theta=60.0)
    bound = model.memory_bound(-0.5, 2.0, steps=steps)
    with torch.no_grad():
        h = model.last_memory(torch.eye(steps, dtype=torch.float64).unsqueeze(-1).flip(1))  # row k: H[k]
        sign = float(model.enc_x.weight.item())  # +-1: unit-norm row
    i = int(torch.maximum(h.clamp(min=0).sum(0) * 2.0 + h.clamp(max=0).sum(0) * -0.5,
                          -(h.clamp(min=0).sum(0) * -0.5 + h.clamp(max=0).sum(0) * 2.0)).argmax())
    u_hi, u_lo = (2.0, -0.5) if sign > 0 else (-0.5, 2.0)  # x values that give u = +2 and u = -0.5 (or the reverse)
    top = torch.where(h[:, i] > 0, u_hi, u_lo).flip(0)  # u at step t multiplies H[T-1-t]
    bottom = torch.where(h[:, i] > 0, u_lo, u_hi).flip(0)
    x = torch.stack([top, bottom]).view(2, steps, 1).double()
    with torch.no_grad():
        reached = model.last_memory(x)[:, i].abs().max().item()
    assert reached == pytest.approx(bound, rel=1e-9)
    for clip, idle in ((bound * (1 + 1e-9), True), (0.8 * bound, False)):
        model.cfg = LMURNNConfig(**{**model.cfg.to_dict(), "memory_clip": clip})
        state = model.init_state(2)
        with torch.no_grad():
            for t in range(steps):
                _, state = model.step(x[:, t], state)
            assert state["lmu_m"].abs().max() <= clip
            same = torch.allclose(state["lmu_m"], model.last_memory(x), rtol=0, atol=1e-9)
        assert same == idle


def test_lmu_recurrent_variant_steps():
    model = _lmu(recurrent=True, memory_clip=0.3)
    x = 3 * torch.randn(2, 40, 2, dtype=torch.float64)
    with torch.no_grad():
        y = model(x)
        stepped = _stepped(model, x)
        torch.testing.assert_close(y, stepped, rtol=0, atol=1e-12)
        torch.testing.assert_close(model.forward_last(x), y[:, -1], rtol=0, atol=1e-12)
        state = model.init_state(2)
        peak = 0.0
        for t in range(40):
            _, state = model.step(x[:, t], state)
            peak = max(peak, state["lmu_m"].abs().max().item())
    assert peak == 0.3  # the clamp acts in the recurrent model (trained through the clamped step)
    assert model.state_names() == ["lmu_m", "h"]
    with pytest.raises(ValueError):
        model.last_memory(x)


def test_lmu_params_and_macs_are_the_hand_count():
    model = LMURNN(LMURNNConfig(n_in=1, n_out=10, n_u=1, order=256, theta=784.0, n_h=128))
    # E_x 1, W_m 256*128, W_x 128 + b 128, W_o 128*10 + 10
    assert model.param_count() == 1 + 256 * 128 + 128 + 128 + 1280 + 10
    # E_x 1, A 256*256, B 256, W_m 256*128, W_x 128, W_o 1280
    assert model.macs_per_step() == 1 + 65536 + 256 + 32768 + 128 + 1280
    assert model.flops_per_inference(784) == 784 * (2 * model.macs_per_step() + 2 * 128 + 10)
    rec = LMURNN(LMURNNConfig(n_in=1, n_out=10, n_u=2, order=8, n_h=16, recurrent=True))
    # + E_h 16*2, E_m 16*2, W_h 16*16
    assert rec.macs_per_step() == 2 + 16 * 8 + 16 + 16 * 16 + 16 + 160 + 32 + 32 + 256
    assert rec.param_count() == 2 + 16 * 16 + 16 + 16 + 160 + 10 + 32 + 32 + 256


def test_lmu_encoder_rows_stay_unit_norm_while_training():
    model = LMURNN(LMURNNConfig(n_in=3, n_u=2, order=6, theta=20.0, n_h=5, n_out=2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.forward_last(torch.randn(4, 20, 3)).square().sum().backward()
    opt.step()
    torch.testing.assert_close(model.enc_x.weight.norm(dim=1), torch.ones(2))
    assert LMURNNConfig.from_dict(model.cfg.to_dict()) == model.cfg
    with pytest.raises(ValueError):
        LMURNNConfig(act="gelu")


def test_lmu_learns_permuted_digits():
    """sklearn's 8x8 digits as 64-step pixel sequences under a fixed permutation (a small psMNIST)."""
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    d = load_digits()
    perm = np.random.default_rng(0).permutation(64)
    x = torch.tensor(d.data[:, perm] / 16.0, dtype=torch.float32).unsqueeze(-1)
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    model = LMURNN(LMURNNConfig(order=32, theta=64.0, n_h=64))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    train, test = torch.arange(1400), torch.arange(1400, len(y))
    first = last = math.nan
    for _ in range(6):
        order = train[torch.randperm(len(train), generator=g)]
        for i in range(0, len(order), 50):
            b = order[i : i + 50]
            loss = torch.nn.functional.cross_entropy(model.forward_last(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = loss.item() if math.isnan(first) else first
            last = loss.item()
    assert last < 0.3 * first
    with torch.no_grad():
        assert (model.forward_last(x[test]).argmax(1) == y[test]).float().mean() > 0.8
