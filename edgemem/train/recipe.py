"""Recipes: YAML files that say what to train on what data. Unknown fields are errors, not silently ignored."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgemem.errors import EdgememError, check_name


@dataclass(frozen=True)
class DataSpec:
    source: str = "watch"  # watch | basic_motions | npz
    path: str | None = None  # for npz, relative to the recipe's folder
    window: int = 100
    hop: int = 50
    downsample: int = 1  # average every k samples (anti-aliased decimation): 50 Hz -> 50/k Hz steps
    train_subjects: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    val_subjects: list[int] = field(default_factory=lambda: [8])
    test_subjects: list[int] = field(default_factory=lambda: [9, 10])
    params: dict[str, Any] = field(default_factory=dict)  # for generated sources (kws, psmnist, digits): see sources


@dataclass(frozen=True)
class ModelSpec:
    kind: str = "l2mu"
    n_u: int = 4
    order: int = 8
    theta: float = 100.0
    n_h: int = 32
    neurons: list[str] = field(default_factory=lambda: ["lif", "lif", "lif"])
    beta_init: float = 0.9
    alpha_init: float = 0.8
    threshold_init: float = 1.0
    memory_threshold_init: float = 0.1
    surrogate: str = "atan"
    surrogate_slope: float = 2.0
    dropout: float = 0.0
    state_clip: float = 8.0
    memory_clip: float = 2.0


@dataclass(frozen=True)
class ZooModelSpec:
    """A model of the zoo other than the L2MU: its kind, readout, and the fields of the kind's config dataclass
    (edgemem.models.registry), checked against that dataclass's names and default types."""

    kind: str
    readout: str = "sum"
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "readout": self.readout, **self.params}


@dataclass(frozen=True)
class AugmentSpec:
    scale: float = 0.0  # random per-window gain, +- this fraction
    noise: float = 0.0  # Gaussian noise, in units of the normalized signal
    rotate_deg: float = 0.0  # random rotation of accel and gyro triads (watch worn differently)


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    baseline_lr: float = 0.0  # peak lr of the float baselines; 0: the model's lr (transformers need a lower one)


@dataclass(frozen=True)
class CVSpec:
    folds: int = 5
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    subjects: list[int] = field(default_factory=lambda: list(range(1, 11)))


@dataclass(frozen=True)
class QuantSpec:
    calib_windows: int = 256
    margin: float = 1.25  # headroom over the largest calibrated state value
    weight_bits: dict[str, int] = field(default_factory=dict)  # graph op -> 4 or 2 (8 where absent): `edgemem quantize`
    act_bits: dict[str, int] = field(default_factory=dict)  # activation -> 16 (8 where absent): lower_lmuformer.ACT16


@dataclass(frozen=True)
class Recipe:
    name: str
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec | ZooModelSpec = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    baselines: list[str] = field(default_factory=lambda: ["gru", "cnn", "features_rf"])
    cv: CVSpec = field(default_factory=CVSpec)
    quant: QuantSpec = field(default_factory=QuantSpec)
    path: str | None = None  # where the recipe was read from (not a YAML field)

    @property
    def folder(self) -> Path:
        return Path(self.path).parent if self.path else Path(".")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        # fields added later are left out at their defaults, so older recipes keep their CV hashes
        if not d["data"]["params"]:
            d["data"].pop("params")
        if not d["train"]["baseline_lr"]:
            d["train"].pop("baseline_lr")
        for key in ("weight_bits", "act_bits"):
            if not d["quant"][key]:
                d["quant"].pop(key)
        if isinstance(self.model, ZooModelSpec):
            d["model"] = self.model.to_dict()
        return d

    @property
    def readout(self) -> str:
        return self.model.readout if isinstance(self.model, ZooModelSpec) else "sum"


def _build(cls: type, raw: Any, where: str) -> Any:
    if not dataclasses.is_dataclass(cls):
        return raw
    if not isinstance(raw, dict):
        raise EdgememError(f"recipe field '{where}' must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if not (cls is Recipe and f.name == "path")}
    unknown = sorted((k for k in raw if k not in fields), key=str)
    if unknown:
        raise EdgememError(f"recipe has unknown field '{where + '.' if where else ''}{unknown[0]}'")
    kwargs = {}
    for name, value in raw.items():
        f = fields[name]
        if cls is Recipe and name == "model" and isinstance(value, dict) and value.get("kind", "l2mu") != "l2mu":
            kwargs[name] = _zoo_model(value)
            continue
        sub = f.type if isinstance(f.type, type) else _SPECS.get(str(f.type))
        kwargs[name] = _build(sub, value, f"{where}.{name}" if where else name) if sub else value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise EdgememError(f"recipe field '{where or 'top level'}': {e}") from None


def _zoo_model(raw: dict[str, Any]) -> ZooModelSpec:
    from edgemem.models.registry import READOUTS, recipe_fields

    kind = raw["kind"]
    if not isinstance(kind, str):
        raise EdgememError(f"recipe field 'model.kind' must be str, got {kind!r}")
    allowed = recipe_fields(kind)
    readout = raw.get("readout", "sum")
    if readout not in READOUTS:
        raise EdgememError(f"recipe field 'model.readout' must be one of {', '.join(READOUTS)}, got {readout!r}")
    params = {k: v for k, v in raw.items() if k not in ("kind", "readout")}
    for k, v in params.items():
        if k not in allowed:
            raise EdgememError(f"recipe has unknown field 'model.{k}' for model kind '{kind}'")
        default = allowed[k]
        ok = isinstance(v, list) if isinstance(default, tuple | list) else _same_type(v, default) or default is None
        if not ok:
            raise EdgememError(f"recipe field 'model.{k}' must be {type(default).__name__}, got {v!r}")
    return ZooModelSpec(kind, readout, params)


_SPECS = {c.__name__: c for c in (DataSpec, ModelSpec, AugmentSpec, TrainSpec, CVSpec, QuantSpec)}
_SPECS["ModelSpec | ZooModelSpec"] = ModelSpec  # the L2MU's model section; other kinds are built by _zoo_model


def _check_types(obj: Any, where: str) -> None:
    if isinstance(obj, ZooModelSpec):  # checked against its kind's config when built
        return
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}.{f.name}" if where else f.name
        if dataclasses.is_dataclass(value):
            _check_types(value, name)
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = ""  # required fields (name) are strings
        if default is None:  # optional fields (data.path) take a string or nothing
            if value is not None and not isinstance(value, str):
                raise EdgememError(f"recipe field '{name}' must be str, got {value!r}")
            continue
        if not _same_type(value, default):
            raise EdgememError(f"recipe field '{name}' must be {type(default).__name__}, got {value!r}")
        if isinstance(default, list) and default:
            bad = [v for v in value if not _same_type(v, default[0])]
            if bad:
                raise EdgememError(f"recipe field '{name}' must hold {type(default[0]).__name__} values, "
                                   f"got {bad[0]!r}")


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) != isinstance(value, bool):
        return False
    return isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))


def load_recipe(path: Path) -> Recipe:
    if not path.is_file():
        raise EdgememError(f"recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise EdgememError(f"recipe {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or "name" not in raw:
        raise EdgememError(f"recipe {path} must be a mapping with a 'name'")
    recipe = _build(Recipe, raw, "")
    _check_types(recipe, "")
    check_name(recipe.name, f"recipe {path}: name")  # it names the checkpoint, the export's C symbols, NAME_mixed
    return dataclasses.replace(recipe, path=str(path))


def recipe_from_dict(raw: dict[str, Any], path: Path | None = None) -> Recipe:
    """A recipe stored inside a checkpoint, type-checked like a file; `path` (the recipe file it stands for, e.g.
    the checkpoint's folder / recipe.yaml) is what a relative `data.path` is resolved against."""
    if not isinstance(raw, dict):
        raise EdgememError("the recipe stored in the checkpoint is not a mapping")
    recipe = _build(Recipe, raw, "")
    _check_types(recipe, "")
    check_name(recipe.name, "the recipe stored in the checkpoint: name")
    return dataclasses.replace(recipe, path=str(path) if path else None)
