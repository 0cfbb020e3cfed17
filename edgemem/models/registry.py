"""The model zoo by name: which config and module a recipe's `model.kind` builds, and how a sequence is classified.

Every model maps x [b][T][n_in] to per-step logits [b][T][n_out] and streams with init_state/step. The readout
says how a sequence's class follows from the per-step logits: `sum` (argmax of their sum: streaming HAR and
keywords; what the C runtime's caller accumulates) or `last` (argmax at the last step: psMNIST).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from edgemem.errors import EdgememError
from edgemem.models.readout import READOUTS


@dataclass(frozen=True)
class Kind:
    name: str
    module: str
    config: str
    model: str
    summary: str

    def config_cls(self) -> type:
        return getattr(importlib.import_module(self.module), self.config)  # type: ignore[no-any-return]

    def model_cls(self) -> type[nn.Module]:
        return getattr(importlib.import_module(self.module), self.model)  # type: ignore[no-any-return]


KINDS = {
    k.name: k
    for k in (
        Kind("l2mu", "edgemem.models.l2mu", "L2MUConfig", "L2MU", "a fully spiking LMU (L2MU)"),
        Kind("lmuformer", "edgemem.models.lmuformer", "LMUFormerConfig", "LMUFormer",
             "an LMUFormer (conv patch embedding, LMU, channel mixer)"),
        Kind("elm", "edgemem.models.elm", "ELMConfig", "ELMNet", "a network of Expressive Leaky Memory neurons"),
        Kind("lmu", "edgemem.models.lmu_rnn", "LMURNNConfig", "LMURNN", "a parallelizable LMU"),
    )
}
DERIVED = ("n_in", "n_out", "readout")  # from the data and the recipe's model.readout, never a config field


def kind(name: str) -> Kind:
    if name not in KINDS:
        raise EdgememError(f"unknown model kind '{name}' (choose from {', '.join(KINDS)})")
    return KINDS[name]


def recipe_fields(name: str) -> dict[str, Any]:
    """The recipe-settable fields of a kind's config with their defaults (n_in/n_out come from the data)."""
    cls = kind(name).config_cls()
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in DERIVED:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _config(name: str, params: dict[str, Any], n_in: int, n_out: int, readout: str) -> Any:
    cls = kind(name).config_cls()
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    args = {k: tuple(v) if isinstance(defaults.get(k), tuple) else v for k, v in params.items()}
    if "readout" in defaults:  # configs that know their readout get the recipe's
        args["readout"] = readout
    return cls(**{**args, "n_in": n_in, "n_out": n_out})


def check_params(name: str, params: dict[str, Any], readout: str = "sum") -> None:
    """The config's own checks (ranges, choices, graph limits) on a recipe's model fields, before any data is
    loaded: n_in and n_out stand in at 1 and 2 (the data sets them later, within the same limits)."""
    try:
        _config(name, params, 1, 2, readout)
    except (TypeError, ValueError) as e:
        raise EdgememError(f"recipe field 'model' does not make a valid {name} ({str(e).splitlines()[0]})") from None


def build(name: str, params: dict[str, Any], n_in: int, n_out: int, readout: str = "sum") -> nn.Module:
    try:
        cfg = _config(name, params, n_in, n_out, readout)
        return kind(name).model_cls()(cfg)
    except (TypeError, ValueError) as e:
        raise EdgememError(f"model '{name}' cannot be built from the recipe ({str(e).splitlines()[0]})") from None


def config_dict(model: nn.Module) -> dict[str, Any]:
    cfg = model.cfg  # type: ignore[attr-defined]
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dataclasses.asdict(cfg)


def from_config(name: str, cfg: dict[str, Any]) -> nn.Module:
    cls = kind(name).config_cls()
    c = cls.from_dict(cfg) if hasattr(cls, "from_dict") else cls(**cfg)
    return kind(name).model_cls()(c)


def per_step_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x [b][T][n_in] -> logits [b][T][n_out] (the L2MU also returns spike counts: dropped here)."""
    y = model(x)
    return y[0] if isinstance(y, tuple) else y


def sequence_logits(model: nn.Module, x: torch.Tensor, readout: str) -> torch.Tensor:
    """One logit vector per sequence: mean of the per-step logits (`sum`, same argmax) or the last step's."""
    if readout == "last":
        last = getattr(model, "forward_last", None)
        return last(x) if last is not None else per_step_logits(model, x)[:, -1]
    return per_step_logits(model, x).mean(dim=1)


def readout_of(model: nn.Module) -> str:
    r = getattr(model.cfg, "readout", "sum")  # type: ignore[attr-defined]
    if r not in READOUTS:
        raise EdgememError(f"unknown readout '{r}' (choose from {', '.join(READOUTS)})")
    return str(r)


def kind_of(model: nn.Module) -> str:
    for k in KINDS.values():
        if type(model).__name__ == k.model and type(model).__module__ == k.module:
            return k.name
    raise EdgememError(f"{type(model).__name__} is not a model of the zoo")
