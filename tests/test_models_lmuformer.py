import pytest
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from edgemem.exporters.onnx_export import StepModule
from edgemem.models.lmu import LMUMemory
from edgemem.models.lmuformer import LMUFormer, LMUFormerConfig
from edgemem.models.transformer import KWSTransformer, TransformerConfig

# Small enough to count by hand: n_in 4, C 6, k 3, 2 convs, n_u 2, order 3, mixer 12, 5 classes.
SMALL = dict(n_in=4, n_out=5, channels=6, kernel=3, n_conv=2, n_u=2, order=3, theta=8.0, mixer_ratio=2)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _trained_stats(model: LMUFormer, n_in: int, steps: int = 40) -> LMUFormer:
    """Give every BatchNorm real running statistics (cumulative average over a few batches), then eval mode:
    with default statistics BN would be nearly the identity and half of `step` would go untested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, steps, n_in))
    return model.eval()


def _stream(model: LMUFormer, x: torch.Tensor) -> torch.Tensor:
    state = model.init_state(x.shape[0])
    out = []
    for t in range(x.shape[1]):
        y, state = model.step(x[:, t], state)
        out.append(y)
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("spiking,activation,kernel", [(False, "relu", 3), (False, "gelu", 5), (True, "relu", 3),
                                                       (False, "relu", 1), (True, "relu", 1)])
def test_forward_equals_stepping(spiking, activation, kernel):
    torch.manual_seed(0)
    cfg = LMUFormerConfig(n_in=16, n_out=7, channels=32, kernel=kernel, n_u=4, order=8, theta=20.0,
                          activation=activation, spiking=spiking)
    model = _trained_stats(LMUFormer(cfg), 16)
    x = torch.randn(3, 40, 16)
    with torch.no_grad():
        par, seq = model(x), _stream(model, x)
    assert par.shape == seq.shape == (3, 40, 7)
    assert (par - seq).abs().max() < 1e-5 * max(1.0, par.abs().max().item())
    if spiking:  # every population must be firing, or the spiking path would compare zeros with zeros
        rates = model.spike_rates(x)
        assert set(rates) == set(cfg.populations()) and min(rates.values()) > 0.02, rates


def test_step_state_shapes_and_export_wrapper():
    model = _trained_stats(LMUFormer(LMUFormerConfig(**SMALL, spiking=True)), 4)
    state = model.init_state(2)
    assert {k: tuple(v.shape) for k, v in state.items()} == {
        "conv0": (2, 2, 4), "conv1": (2, 2, 6), "lmu_m": (2, 6),
        "mem_emb0": (2, 6), "mem_emb1": (2, 6), "mem_u": (2, 2), "mem_hid": (2, 6), "mem_mix1": (2, 12),
        "mem_mix2": (2, 6),
    }
    x = torch.randn(2, 4)
    wrapped = StepModule(model)(x, *state.values())
    logits, new = model.step(x, state)
    assert len(wrapped) == 1 + len(state) and torch.equal(wrapped[0], logits)
    assert all(torch.equal(a, new[k]) for a, k in zip(wrapped[1:], model.state_names()))
    # the ring keeps the last k-1 frames, oldest first: after one step it is [0, x]
    assert torch.equal(new["conv0"][:, 1], x) and not new["conv0"][:, 0].any()


@pytest.mark.parametrize("spiking", [False, True])
def test_causal(spiking):
    torch.manual_seed(1)
    model = _trained_stats(LMUFormer(LMUFormerConfig(**SMALL, spiking=spiking)), 4)
    x = torch.randn(2, 30, 4)
    x2 = x.clone()
    x2[:, 17:] = 3 * torch.randn(2, 13, 4)
    with torch.no_grad():
        a, b = model(x), model(x2)
    # the FFT memory mixes all T in round-off only (the recurrent step is causal by construction)
    assert (a[:, :17] - b[:, :17]).abs().max() < 1e-5
    assert (a[:, 17:] - b[:, 17:]).abs().max() > 1e-3


def test_costs_of_a_small_config_by_hand():
    ann = LMUFormer(LMUFormerConfig(**SMALL))
    snn_ = LMUFormer(LMUFormerConfig(**SMALL, spiking=True))
    # MACs per step: conv0 4*6*3=72, conv1 6*6*3=108, lmu_u 6*2=12, A m 2*3*3=18, B u 2*3=6, lmu_hm 6*6=36,
    # lmu_he 6*6=36, mix1 6*12=72, mix2 12*6=72, head 6*5=30
    assert ann.macs_per_step() == snn_.macs_per_step() == 462
    assert ann.flops_per_inference(10) == 2 * 462 * 10
    # weights 438 + head bias 5 + BN affine 2*(6+6+2+6+12+6)=76; spiking adds beta and threshold per neuron (76)
    assert ann.param_count() == 519 and snn_.param_count() == 595
    # deployed (BN folded): weights 438 + one bias per output 6+6+2+6+12+6+5=43; spiking + 76
    assert ann.param_count(deployed=True) == 481 and snn_.param_count(deployed=True) == 557
    assert ann.ops_per_step() == {"mac": 462, "ac": 0}
    # spiking: real inputs (conv0 72, A m 18, lmu_hm 36) are MACs; the rest take spikes: ACs scaled by the rate of
    # the population that feeds them (emb1 feeds lmu_u and lmu_he; rate 1 where not given)
    assert snn_.ops_per_step() == {"mac": 126, "ac": 336}
    rates = {"emb0": 0.5, "emb1": 0.25, "u": 0.5, "hid": 0.1, "mix1": 0.2, "mix2": 0.0}
    ops = snn_.ops_per_step(rates)
    assert ops["mac"] == 126 and ops["ac"] == pytest.approx(108 * 0.5 + 48 * 0.25 + 6 * 0.5 + 72 * 0.1 + 72 * 0.2)


@pytest.mark.parametrize("spiking", [False, True])
def test_mac_count_matches_torch_flop_counter(spiking):
    """torch counts 2 FLOPs per multiply of every matmul/conv the step actually runs; B u is elementwise there."""
    model = LMUFormer(LMUFormerConfig(spiking=spiking)).eval()
    with FlopCounterMode(display=False) as fc:
        model.step(torch.randn(1, 32), model.init_state(1))
    assert fc.get_total_flops() == 2 * (model.macs_per_step() - model.cfg.n_u * model.cfg.order)


def test_memory_peak_is_reached_by_the_worst_spike_train():
    mem = LMUMemory(1, 8, 12.0)
    peak = mem.peak_magnitude(0.0, 1.0, steps=300)
    h = mem.impulse_response(300).double()
    i = int(peak.argmax())
    for sign in (1, -1):  # the spike train that pushes m[i] furthest up (down), run through the recurrence
        u = (sign * h[:, i] > 0).float().flip(0).view(1, 300, 1)
        m_end = mem.recurrent(u)[0, -1, 0, i].item()
        assert abs(m_end) <= peak[i].item() + 1e-5
        if abs(m_end) > peak[i].item() - 1e-4:
            break
    else:
        pytest.fail("no spike train reached the peak")


def test_memory_clip_must_cover_the_spiking_peak():
    with pytest.raises(ValueError, match="memory_clip"):
        LMUFormer(LMUFormerConfig(spiking=True, order=32, theta=100.0, memory_clip=2.0))
    LMUFormer(LMUFormerConfig(spiking=False, order=32, theta=100.0, memory_clip=2.0))  # the ANN is not clamped
    # the default config is valid, and its clamp cannot act: all-ones spikes stay inside it
    model = LMUFormer(LMUFormerConfig(spiking=True))
    assert model.memory.parallel(torch.ones(1, 500, 1)).abs().max() < model.cfg.memory_clip


@pytest.mark.parametrize("bad", [dict(activation="tanh"), dict(kernel=17), dict(n_conv=0), dict(n_u=64, order=128),
                                 dict(spiking=True, threshold_init=9.0), dict(surrogate="sigmoid")])
def test_bad_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        LMUFormerConfig(**bad)


def test_config_round_trip():
    cfg = LMUFormerConfig(**SMALL, spiking=True, activation="gelu")
    assert LMUFormerConfig.from_dict(cfg.to_dict()) == cfg
    tcfg = TransformerConfig(d_model=32, n_heads=2)
    assert TransformerConfig.from_dict(tcfg.to_dict()) == tcfg


@pytest.mark.parametrize("spiking", [False, True])
def test_training_reduces_loss(spiking):
    torch.manual_seed(0)
    model = LMUFormer(LMUFormerConfig(n_in=8, n_out=3, channels=16, n_u=2, order=4, theta=10.0, dropout=0.0,
                                      spiking=spiking))
    x = torch.randn(24, 20, 8)
    y = torch.randint(0, 3, (24,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = nn.functional.cross_entropy(model(x).mean(dim=1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_transformer_shapes_params_and_flops():
    cfg = TransformerConfig(n_in=5, n_out=4, max_len=9, d_model=12, n_heads=3, n_layers=2, d_ff=20, dropout=0.0)
    model = KWSTransformer(cfg)
    x = torch.randn(2, 9, 5)
    # the math attention backend runs Q K^T and (.)V as matmuls torch can count (its fused CPU kernel is not counted)
    with FlopCounterMode(display=False) as fc, sdpa_kernel(SDPBackend.MATH):
        assert model(x).shape == (2, 4)
    assert fc.get_total_flops() == 2 * 2 * model.macs(9)  # batch 2
    # embed 5*12+12, positions 9*12; per layer: in_proj 3*12*12+36, out_proj 12*12+12, MLP 12*20+20+20*12+12,
    # two LayerNorms 4*12; head 12*4+4
    per_layer = 3 * 144 + 36 + 144 + 12 + 240 + 20 + 240 + 12 + 48
    assert model.param_count() == 72 + 108 + 2 * per_layer + 52
    # hand count of the MACs for 9 frames: 9*5*12 + 2 * (4*9*144 + 2*81*12 + 2*9*12*20) + 12*4
    assert model.macs(9) == 540 + 2 * (5184 + 1944 + 4320) + 48
    with pytest.raises(ValueError, match="max_len"):
        model(torch.randn(1, 10, 5))
    pre = KWSTransformer(TransformerConfig(n_in=5, n_out=4, max_len=9, d_model=12, n_heads=3, n_layers=1, d_ff=20,
                                           norm_first=True, positions="sinusoidal"))
    assert pre(x).shape == (2, 4)
