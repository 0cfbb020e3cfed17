"""From a recipe to trained models: the L2MU and its baselines on one subject split, and cross-validation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgemem.data.sources import load_source
from edgemem.data.windows import Normalizer, Split, Windows, cut_windows, split_by_subject
from edgemem.errors import EdgememError
from edgemem.models import registry
from edgemem.models.baselines import CNNClassifier, GRUClassifier, features_rf_fit_predict
from edgemem.models.l2mu import L2MU, L2MUConfig, add_current_norm, bound_leaks, fold_current_norm, plain_leaks
from edgemem.models.transformer import KWSTransformer, TransformerConfig
from edgemem.training.loop import History, LogitsFn, accuracy, fit, predict, seed_everything
from edgemem.training.recipe import BASELINES, ModelSpec, Recipe, ZooModelSpec

# Energy per operation used in the estimates (Horowitz, ISSCC 2014, 45 nm, 32-bit float), as in the LMUFormer and
# Spikformer papers: a multiply-accumulate 4.6 pJ, an accumulate (a spike selecting a weight) 0.9 pJ.
E_MAC_PJ, E_AC_PJ = 4.6, 0.9


@dataclass
class Prepared:
    split: Split  # normalized
    normalizer: Normalizer
    class_names: list[str]
    n_in: int


def load_windows(recipe: Recipe) -> tuple[Windows, list[str]]:
    rec = load_source(recipe.data.source, recipe.data_file, recipe.data.params)
    return cut_windows(rec, recipe.data.window, recipe.data.hop, recipe.data.downsample), rec.class_names


def prepare(windows: Windows, class_names: list[str], train: list[int], val: list[int], test: list[int]) -> Prepared:
    raw = split_by_subject(windows, train, val, test)
    norm = Normalizer.fit(raw.train.x)

    def n(w: Windows) -> Windows:
        return Windows(norm(w.x), w.y, w.subject, w.recording, w.start)

    return Prepared(Split(n(raw.train), n(raw.val), n(raw.test)), norm, class_names, windows.x.shape[-1])


def build_l2mu(recipe: Recipe, n_in: int, n_out: int) -> L2MU:
    m = recipe.model
    if m.kind != "l2mu":
        raise EdgememError(f"recipe model.kind '{m.kind}' is not supported (l2mu)")
    for kind in m.neurons:
        if kind not in ("lif", "cuba"):
            raise EdgememError(f"recipe model.neurons has '{kind}' (choose lif or cuba)")
    if len(m.neurons) != 3:
        raise EdgememError("recipe model.neurons needs 3 entries: encoder, memory, hidden")
    cfg = L2MUConfig(
        n_in=n_in, n_u=m.n_u, order=m.order, theta=m.theta, n_h=m.n_h, n_out=n_out, neurons=tuple(m.neurons),
        beta_init=m.beta_init, alpha_init=m.alpha_init, threshold_init=m.threshold_init,
        memory_threshold_init=m.memory_threshold_init, surrogate=m.surrogate, surrogate_slope=m.surrogate_slope,
        dropout=m.dropout, state_clip=m.state_clip, memory_clip=m.memory_clip,
    )
    return L2MU(cfg)


def build_main(recipe: Recipe, n_in: int, n_out: int) -> tuple[nn.Module, LogitsFn]:
    """The recipe's own model (untrained) and how a window's logits come from it."""
    if isinstance(recipe.model, ZooModelSpec):
        model = registry.build(recipe.model.kind, recipe.model.params, n_in, n_out, recipe.readout)
        return model, zoo_logits(recipe.readout)
    return build_l2mu(recipe, n_in, n_out), l2mu_logits


def l2mu_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A window's logits: the per-step readout averaged over the window (what the C runtime sums)."""
    return model(x)[0].mean(dim=1)


def zoo_logits(readout: str) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    def fn(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return registry.sequence_logits(model, x, readout)

    return fn


def plain_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x)


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def spikes_per_step(model: L2MU, x: np.ndarray, batch: int = 256) -> float:
    total = 0.0
    for i in range(0, len(x), batch):
        _, counts = model(torch.from_numpy(x[i : i + batch]))
        total += float(sum(c.sum() for c in counts.values()))
    return total / (len(x) * x.shape[1]) if len(x) else 0.0


@dataclass
class Trained:
    name: str
    model: nn.Module | None
    test_accuracy: float | None
    val_accuracy: float | None
    params: int | None
    macs_per_step: float | None
    spikes_per_step: float | None
    history: History | None
    test_pred: np.ndarray
    flops_per_inference: float | None = None
    energy_uj_per_inference: float | None = None  # E_MAC_PJ * MACs + E_AC_PJ * ACs over one sequence
    train_seconds: float | None = None


@torch.no_grad()
def _zoo_cost(model: nn.Module, x: np.ndarray, steps: int) -> tuple[float | None, float, float]:
    """(spikes per step, MACs, ACs per step) of a zoo model on x; spiking layers count ACs at their measured rate."""
    rates_fn = getattr(model, "spike_rates", None)
    cfg = model.cfg  # type: ignore[attr-defined]
    if rates_fn is not None and getattr(cfg, "spiking", False):
        rates = rates_fn(torch.from_numpy(x[:512]))
        spikes = float(sum(rates[p] * n for p, n in cfg.populations().items()))
        ops = model.ops_per_step(rates)  # type: ignore[operator]
        return spikes, float(ops["mac"]), float(ops["ac"])
    return None, float(model.macs_per_step()), 0.0  # type: ignore[operator]


def train_model(name: str, recipe: Recipe, prep: Prepared, seed: int, quiet: bool = False,
                state_path: Path | None = None, resume: bool = False) -> Trained:
    """Train one model (the L2MU or a baseline) on the prepared split with the given seed.

    `state_path`/`resume`: per-epoch training state for Ctrl-C and `--resume` (see train.loop.fit)."""
    s = prep.split
    n_out, steps = len(prep.class_names), s.train.x.shape[1]
    val = (s.val.x, s.val.y) if len(s.val) else None
    spec = recipe.train.__class__(**{**recipe.train.__dict__, "seed": seed})
    if recipe.train.baseline_lr and name in BASELINES:
        spec = recipe.train.__class__(**{**spec.__dict__, "lr": recipe.train.baseline_lr})
    seed_everything(seed)
    if name == "features_rf":
        pred_test, pred_val = features_rf_fit_predict(s.train.x, s.train.y, [s.test.x, s.val.x], seed)
        val_acc = float((pred_val == s.val.y).mean()) if len(s.val) else None
        return Trained(name, None, float((pred_test == s.test.y).mean()), val_acc, None, None, None, None, pred_test)
    if name == recipe.model.kind:
        model, fn = build_main(recipe, prep.n_in, n_out)
    elif name == "gru":
        model, fn = GRUClassifier(prep.n_in, n_out), plain_logits
    elif name == "cnn":
        model, fn = CNNClassifier(prep.n_in, n_out), plain_logits
    elif name == "transformer":
        model, fn = KWSTransformer(TransformerConfig(n_in=prep.n_in, n_out=n_out, max_len=steps)), plain_logits
    else:
        raise EdgememError(f"unknown baseline '{name}' (choose from {list(BASELINES)})")
    spec_m = recipe.model if isinstance(model, L2MU) and isinstance(recipe.model, ModelSpec) else None
    bounded, normed = spec_m is not None and spec_m.bounded_leaks, spec_m is not None and spec_m.norm_currents
    if bounded:
        bound_leaks(model)  # type: ignore[arg-type]
    if normed:
        add_current_norm(model)  # type: ignore[arg-type]
    teacher = None
    if name == recipe.model.kind and recipe.train.distill != "none":  # the teacher sees the same split and seed
        teacher = train_model(recipe.train.distill, recipe, prep, seed, quiet=quiet).model
    started = time.perf_counter()
    hist = fit(model, fn, (s.train.x, s.train.y), val, spec, label=f"{name} seed {seed}", quiet=quiet,
               state_path=state_path, resume=resume, teacher=teacher, teacher_fn=plain_logits,
               channel_stats=prep.normalizer.stats)
    if bounded:
        plain_leaks(model)  # type: ignore[arg-type]  # the saved model has plain parameters, as exporters expect
    if normed:
        fold_current_norm(model)  # type: ignore[arg-type]
    train_seconds = time.perf_counter() - started  # wall clock, validation included (a resumed run: this part)
    pred = predict(model, fn, s.test.x)
    acs, mac_part = 0.0, None
    if isinstance(model, L2MU):
        macs: float | None = float(model.macs_per_step())
        spikes: float | None = spikes_per_step(model, s.test.x)
    elif isinstance(model, KWSTransformer):
        macs, spikes = model.macs(steps) / steps, None
    elif hasattr(model, "macs_per_step") and hasattr(model, "cfg"):
        spikes, mac_part, acs = _zoo_cost(model, s.test.x, steps)
        macs = float(model.macs_per_step())  # dense, as every other runtime computes it
    else:
        mac_part = None
    if isinstance(model, GRUClassifier):
        macs, spikes = float(model.macs_per_step()), None
    elif isinstance(model, CNNClassifier):
        macs, spikes = model.macs_per_window(steps) / steps, None
    flops_fn = getattr(model, "flops_per_inference", None)
    flops = float(flops_fn(steps)) if flops_fn is not None else 2 * float(macs or 0) * steps
    mac = float(macs or 0) if mac_part is None else mac_part
    energy = steps * (E_MAC_PJ * mac + E_AC_PJ * acs) * 1e-6 if name != "l2mu" else None
    return Trained(
        name, model, float((pred == s.test.y).mean()), accuracy(model, fn, *val) if val else None,
        params_of(model), macs, spikes, hist, pred, flops, energy, train_seconds,
    )
