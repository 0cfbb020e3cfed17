"""The training levers of issue 18: time shift / warp, mixup, label smoothing, weight averaging (EMA) and bounded
leaks. Each is off by default and leaves old recipes' CV hashes alone; each changes training when on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgemem.errors import EdgememError
from edgemem.models.l2mu import L2MU, L2MUConfig, add_current_norm, bound_leaks, fold_current_norm, plain_leaks
from edgemem.training.loop import Interrupted, _shift_and_warp, augment, fit
from edgemem.training.pipeline import l2mu_logits
from edgemem.training.recipe import AugmentSpec, TrainSpec, validate

BASE = {"name": "x", "data": {"source": "watch"}}


def test_levers_at_their_defaults_leave_the_recipe_dict_and_so_the_cv_hash_unchanged():
    d = validate(BASE).to_dict()
    assert "mixup" not in d["train"] and "ema" not in d["train"] and "label_smoothing" not in d["train"]
    assert not {"time_shift", "time_warp", "physical"} & set(d["train"]["augment"])
    assert "bounded_leaks" not in d["model"]
    on = validate({**BASE, "train": {"mixup": 0.2, "ema": 0.99, "augment": {"time_shift": 3, "physical": True}},
                   "model": {"bounded_leaks": True}}).to_dict()
    assert on["train"]["mixup"] == 0.2 and on["train"]["augment"]["time_shift"] == 3 and on["model"]["bounded_leaks"]
    assert on["train"]["augment"]["physical"] is True


@pytest.mark.parametrize(("section", "message"), [
    ({"train": {"ema": 1.0}}, "'train.ema' must be < 1"),
    ({"train": {"mixup": -1}}, "'train.mixup' must be >= 0"),
    ({"train": {"label_smoothing": 1.5}}, "'train.label_smoothing' must be < 1"),
    ({"train": {"augment": {"time_shift": 1.5}}}, "'train.augment.time_shift'"),
    ({"train": {"augment": {"time_warp": 1.0}}}, "'train.augment.time_warp' must be < 1"),
    ({"model": {"bounded_leaks": "yes"}}, "'model.bounded_leaks'"),
])
def test_bad_lever_values_are_one_line_errors(section, message):
    with pytest.raises(EdgememError, match=message) as e:
        validate({**BASE, **section})
    assert "\n" not in str(e.value)


def test_shift_and_warp_at_zero_is_the_identity_and_shifts_repeat_the_edge():
    x = torch.randn(4, 20, 6)
    assert torch.equal(_shift_and_warp(x, 0, 0.0, torch.Generator().manual_seed(0)), x)
    ramp = torch.arange(20, dtype=torch.float32).view(1, 20, 1).repeat(64, 1, 1)
    y = _shift_and_warp(ramp, 5, 0.0, torch.Generator().manual_seed(1))
    assert y.shape == ramp.shape
    assert float(y.min()) == 0.0 and float(y.max()) == 19.0  # reads past the ends stay at the edge values
    d = y[:, 10, 0] - 10.0
    assert float(d.abs().max()) <= 5.0 + 1e-5 and float(d.std()) > 1.0  # the middle moved, by at most 5 steps
    steps = y[:, 8:12, 0].diff(dim=1)
    assert torch.allclose(steps, torch.ones_like(steps))  # a pure shift keeps the tempo
    w = _shift_and_warp(ramp, 0, 0.3, torch.Generator().manual_seed(2))[:, 8:12, 0].diff(dim=1)
    assert float(w.min()) >= 0.7 - 1e-5 and float(w.max()) <= 1.3 + 1e-5 and float(w.std()) > 0.05


def test_augment_with_only_time_levers_keeps_values_inside_the_window_range():
    x = torch.rand(8, 30, 6)
    y = augment(x, AugmentSpec(time_shift=4, time_warp=0.2), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


def _watch_like(seed: int = 0) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray]]:
    """Raw accel (gravity on z, m/s^2) and gyro (rad/s) windows, and a normalizer's statistics for them."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.cat([torch.randn(16, 20, 3, generator=g) * torch.tensor([0.5, 1.0, 2.0]) + torch.tensor([0, 0, 9.8]),
                     torch.randn(16, 20, 3, generator=g) * torch.tensor([0.2, 0.4, 0.1])], dim=-1)
    flat = raw.reshape(-1, 6)
    return raw, (flat.mean(0).numpy(), flat.std(0).numpy())


def test_physical_rotation_turns_the_sensor_vectors_and_tilts_gravity():
    raw, (mean, std) = _watch_like()
    x = (raw - torch.from_numpy(mean)) / torch.from_numpy(std)
    spec = AugmentSpec(rotate_deg=30.0, physical=True)
    back = augment(x, spec, torch.Generator().manual_seed(1), (mean, std)) * torch.from_numpy(std) + torch.from_numpy(mean)
    for k in (0, 3):  # a rotation keeps every accel and gyro vector's length
        assert torch.allclose(back[..., k:k + 3].norm(dim=-1), raw[..., k:k + 3].norm(dim=-1), atol=1e-3)
    tilt = back[..., :2].mean(dim=1).norm(dim=-1)  # gravity's mean component off the z axis, per window
    assert float(tilt.max()) > 1.0  # some windows tilted by several degrees (9.8 * sin(6 deg) ~ 1)
    about_mean = augment(x, AugmentSpec(rotate_deg=30.0), torch.Generator().manual_seed(1)) * torch.from_numpy(std)
    assert float((about_mean + torch.from_numpy(mean))[..., :2].mean(dim=1).norm(dim=-1).max()) < 0.5  # no tilt


def test_augment_without_physical_ignores_the_statistics_and_fit_refuses_physical_without_them():
    raw, stats = _watch_like()
    spec = AugmentSpec(rotate_deg=15.0, scale=0.1, noise=0.05, time_shift=2)
    x = (raw - torch.from_numpy(stats[0])) / torch.from_numpy(stats[1])
    a = augment(x, spec, torch.Generator().manual_seed(3))
    b = augment(x, spec, torch.Generator().manual_seed(3), stats)
    assert torch.equal(a, b)
    xs, ys = _data()
    with pytest.raises(EdgememError, match="train.augment.physical needs"):
        fit(_tiny(), l2mu_logits, (xs, ys), None, TrainSpec(epochs=1, augment=AugmentSpec(physical=True)), quiet=True)


def _data(n: int = 64, steps: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 0.3, (n, steps, 6)).astype(np.float32)
    x[np.arange(n), :, y] += 1.0  # class k: channel k raised
    return x, y.astype(np.int64)


def _tiny() -> L2MU:
    torch.manual_seed(0)
    return L2MU(L2MUConfig(n_u=2, order=4, theta=12.0, n_h=8, n_out=3, neurons=("lif", "lif", "cuba"),
                           surrogate="fast_sigmoid", surrogate_slope=10.0))


def _weights(m: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in m.parameters()])


@pytest.mark.parametrize("lever", [{"mixup": 0.4}, {"label_smoothing": 0.2}, {"ema": 0.9}])
def test_each_loss_or_averaging_lever_changes_the_trained_weights(lever):
    plain = TrainSpec(epochs=2, batch_size=16, lr=0.01, threads=1)
    with_lever = TrainSpec(epochs=2, batch_size=16, lr=0.01, threads=1, **lever)
    a, b = _tiny(), _tiny()
    fit(a, l2mu_logits, _data(), None, plain, quiet=True)
    fit(b, l2mu_logits, _data(), None, with_lever, quiet=True)
    assert not torch.allclose(_weights(a), _weights(b))


def test_ema_keeps_the_average_and_resume_gives_the_uninterrupted_average(tmp_path):
    spec = TrainSpec(epochs=3, batch_size=16, lr=0.01, threads=1, ema=0.8)
    whole = _tiny()
    fit(whole, l2mu_logits, _data(), _data(seed=1), spec, quiet=True)
    stop = {"now": False}

    def stopping(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        if stop["now"] and model.training:
            raise KeyboardInterrupt  # Ctrl-C during the third epoch
        return l2mu_logits(model, x)

    def after(epoch: int, _hist: object) -> None:
        stop["now"] = epoch == 1

    with pytest.raises(Interrupted):
        fit(_tiny(), stopping, _data(), _data(seed=1), spec, quiet=True, state_path=tmp_path / "state.pt",
            on_epoch=after)
    assert "ema" in torch.load(tmp_path / "state.pt", weights_only=True)
    resumed = _tiny()
    fit(resumed, l2mu_logits, _data(), _data(seed=1), spec, quiet=True, state_path=tmp_path / "state.pt", resume=True)
    assert torch.equal(_weights(whole), _weights(resumed))
    raw = _tiny()
    fit(raw, l2mu_logits, _data(), _data(seed=1), TrainSpec(**{**spec.__dict__, "ema": 0.0}), quiet=True)
    assert not torch.allclose(_weights(whole), _weights(raw))


def test_bounded_leaks_stay_inside_the_unit_interval_and_the_model_comes_back_plain():
    m = _tiny()
    with torch.no_grad():
        m.pops["hidden"].beta.fill_(0.999)
    bound_leaks(m)
    assert any("parametrizations" in k for k in m.state_dict())
    fit(m, l2mu_logits, _data(), None, TrainSpec(epochs=3, batch_size=8, lr=0.2, threads=1), quiet=True)
    plain_leaks(m)
    keys = set(m.state_dict())
    assert not any("parametrizations" in k for k in keys) and "pops.hidden.beta" in keys
    for neuron in m.pops.values():
        for name in ("beta", "alpha"):
            v = getattr(neuron, name, None)
            if isinstance(v, torch.nn.Parameter):
                assert float(v.detach().min()) > 0 and float(v.detach().max()) < 1, name
    assert set(_tiny().state_dict()) == keys  # loads into a freshly built model, as the exporters do


def test_current_norm_trains_and_folds_into_the_weights_exactly():
    m = _tiny()
    add_current_norm(m)
    fit(m, l2mu_logits, _data(), None, TrainSpec(epochs=2, batch_size=16, lr=0.01, threads=1), quiet=True)
    assert float(m.norm_hid.running_var.sub(1).abs().max()) > 1e-3  # statistics were gathered
    x = torch.from_numpy(_data(seed=3)[0])
    m.eval()
    with torch.no_grad():
        before = m.double()(x.double())[0]
        fold_current_norm(m)
        after = m(x.double())[0]
    assert set(m.state_dict()) == set(_tiny().state_dict())  # a plain L2MU again
    assert torch.allclose(before, after, atol=1e-9)


def test_distillation_teaches_through_the_teachers_own_logits_and_changes_the_student():
    from edgemem.models.baselines import GRUClassifier

    torch.manual_seed(1)
    teacher, seen = GRUClassifier(6, 3, hidden=8).eval(), []

    def teacher_fn(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return m(x)  # [b][n_out]: a GRU's window logits, not the L2MU's per-step output

    spec = TrainSpec(epochs=1, batch_size=16, lr=0.01, threads=1)
    a, b = _tiny(), _tiny()
    fit(a, l2mu_logits, _data(), None, spec, quiet=True)
    fit(b, l2mu_logits, _data(), None, spec, quiet=True, teacher=teacher, teacher_fn=teacher_fn)
    assert seen == [(16, 12, 6)] * 4  # every batch of the one epoch
    assert not torch.allclose(_weights(a), _weights(b))


def test_recipe_distill_trains_the_named_baseline_first_on_the_same_split(monkeypatch):
    import edgemem.training.pipeline as pipeline
    from edgemem.data.windows import Windows
    from edgemem.models.baselines import GRUClassifier

    x, y = _data(n=48)
    subject = np.repeat([1, 2, 3], 16)
    w = Windows(x=x, y=y, subject=subject, recording=subject, start=np.zeros(48, dtype=np.int64))
    prep = pipeline.prepare(w, ["a", "b", "c"], [1, 2], [], [3])
    trained: list[tuple[str, object]] = []
    real_fit = pipeline.fit

    def recording_fit(model, *args, **kwargs):  # noqa: ANN001, ANN202
        trained.append((type(model).__name__, kwargs.get("teacher")))
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit", recording_fit)
    recipe = validate({**BASE, "model": {"n_u": 2, "order": 2, "n_h": 8, "theta": 12.0},
                       "train": {"epochs": 1, "threads": 1, "distill": "gru"}})
    assert recipe.to_dict()["train"]["distill"] == "gru" and "distill" not in validate(BASE).to_dict()["train"]
    pipeline.train_model("l2mu", recipe, prep, 0, quiet=True)
    assert [t[0] for t in trained] == ["GRUClassifier", "L2MU"]
    assert trained[0][1] is None and isinstance(trained[1][1], GRUClassifier)
    with pytest.raises(EdgememError, match="'train.distill'"):
        validate({**BASE, "train": {"distill": "forest"}})
