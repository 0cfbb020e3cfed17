"""Recipes: YAML files that say what to train on what data, as pydantic models.

Every field has a type, and where it has one a range or a set of choices; unknown fields are errors, not silently
ignored. A recipe file (`load_recipe`) and the recipe stored inside a checkpoint (`recipe_from_dict`) go through the
same validation, and every failure is one line naming the field (`recipe field 'train.epochs' must be >= 1, got -3`).
`recipe_schema()` is the JSON Schema editors read (`edgemem schema`, docs/recipe.schema.json).

The models are pydantic dataclasses: frozen, validated on construction (also by `dataclasses.replace`), and plain
dataclasses for `dataclasses.asdict` / `fields`. Values are strict: an int where an int is asked for (a float only
where a float is, and an int is fine there), no strings for numbers, no booleans for numbers, no NaN or infinity.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import ConfigDict, Discriminator, Field, Strict, Tag, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic.json_schema import SkipJsonSchema

from edgemem.data.sources import SENSOR_SOURCES, SOURCE_NAMES
from edgemem.errors import EdgememError, check_name
from edgemem.models.limits import MAX_DIM
from edgemem.models.readout import READOUTS

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]  # an int is accepted (and becomes a float); NaN and infinity are not
Str = Annotated[str, Strict()]
Count = Annotated[int, Strict(), Field(ge=1)]
BASELINES = ("gru", "cnn", "features_rf", "transformer")  # the float baselines a recipe may train beside its model
SURROGATES = ("atan", "fast_sigmoid")
NEURONS = ("lif", "cuba")


@dataclass(frozen=True, config=_CONFIG)
class DataSpec:
    source: Annotated[Literal[SOURCE_NAMES], Field(description="where the recordings come from")] = "watch"
    path: Annotated[Str | None, Field(description="the .npz file (source npz), relative to the recipe's folder")] = None
    window: Annotated[Count, Field(description="samples per window")] = 100
    hop: Annotated[Count, Field(description="samples between window starts")] = 50
    downsample: Annotated[Count, Field(description="average every k samples: one model step per k samples")] = 1
    train_subjects: Annotated[list[Int], Field(min_length=1)] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    val_subjects: list[Int] = field(default_factory=lambda: [8])
    test_subjects: Annotated[list[Int], Field(min_length=1)] = field(default_factory=lambda: [9, 10])
    params: Annotated[dict[Str, Any], Field(description="parameters of a generated source (kws, psmnist, digits)")] = \
        field(default_factory=dict)
    sensor_full_scale: Annotated[list[Annotated[Float, Field(gt=0)]] | None, Field(
        description="the sensor's int16 full scale per channel, in the data's units (an accelerometer at +-8 g: 8): "
                    "the SENSOR input stage maps a count to full_scale / 32768 of them. None: the source's default "
                    "(watch: 8 g and 2000 deg/s in rad/s; hapt: 4 g and 1000 deg/s) or, for other sensor sources, the "
                    "power of two at or above 1.25 x the training data's largest |value| per channel")] = None

    @model_validator(mode="after")
    def _consistent(self) -> DataSpec:
        if self.window % self.downsample:
            raise _FieldError("data.window", f"({self.window}) must be a multiple of data.downsample "
                                             f"({self.downsample})")
        if self.source == "npz" and not self.path:
            raise _FieldError("data.path", "is needed for source 'npz' (the .npz file, relative to the recipe)")
        if self.source != "npz" and self.path is not None:
            raise _FieldError("data.path", f"applies to source 'npz' only, not '{self.source}'")
        if self.sensor_full_scale is not None and self.source not in SENSOR_SOURCES:
            raise _FieldError("data.sensor_full_scale", f"applies to sensor sources ({', '.join(SENSOR_SOURCES)}), "
                                                        f"not '{self.source}'")
        parts = {"train_subjects": self.train_subjects, "val_subjects": self.val_subjects,
                 "test_subjects": self.test_subjects}
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = sorted(set(parts[a]) & set(parts[b]))
                if both:
                    raise _FieldError(f"data.{b}", f"shares subjects {both} with data.{a} (a subject is in one split)")
        return self


@dataclass(frozen=True, config=_CONFIG)
class ModelSpec:
    """The L2MU's model section (model.kind l2mu, the default)."""

    kind: Literal["l2mu"] = "l2mu"
    n_u: Annotated[Count, Field(le=MAX_DIM, description="encoder neurons (LMU input channels)")] = 4
    order: Annotated[Count, Field(description="Legendre memory order d")] = 8
    theta: Annotated[Float, Field(gt=0, description="memory window, in steps")] = 100.0
    n_h: Annotated[Count, Field(le=MAX_DIM, description="hidden neurons")] = 32
    neurons: Annotated[list[Literal[NEURONS]], Field(min_length=3, max_length=3,
                                                     description="encoder, memory, hidden: lif or cuba")] = \
        field(default_factory=lambda: ["lif", "lif", "lif"])
    beta_init: Annotated[Float, Field(ge=0, le=1)] = 0.9
    alpha_init: Annotated[Float, Field(ge=0, le=1)] = 0.8
    threshold_init: Annotated[Float, Field(gt=0)] = 1.0
    memory_threshold_init: Annotated[Float, Field(gt=0)] = 0.1
    surrogate: Literal[SURROGATES] = "atan"
    surrogate_slope: Annotated[Float, Field(gt=0)] = 2.0
    dropout: Annotated[Float, Field(ge=0, lt=1)] = 0.0
    state_clip: Annotated[Float, Field(gt=0)] = 8.0
    memory_clip: Annotated[Float, Field(gt=0)] = 2.0
    bounded_leaks: Annotated[bool, Strict(), Field(
        description="train the leaks (beta, alpha) through a sigmoid, so they stay inside (0, 1) with a gradient "
                    "instead of snntorch's clamp at 1 (which has none); the saved model is plain")] = False
    norm_currents: Annotated[bool, Strict(), Field(
        description="train with BatchNorm of the encoder's and hidden population's input currents, folded into "
                    "the weights before the model is saved")] = False

    @model_validator(mode="after")
    def _fits_the_graph(self) -> ModelSpec:
        n_m = 2 * self.n_u * self.order
        if n_m > MAX_DIM:
            raise _FieldError("model.order", f"gives 2 n_u order = {n_m} memory neurons, above {MAX_DIM} (graph op "
                                             "limit)")
        return self


@dataclass(frozen=True, config=_CONFIG)
class ZooModelSpec:
    """A model of the zoo other than the L2MU: its kind, readout, and the fields of the kind's config dataclass
    (edgemem.models.registry), checked against that dataclass's names, default types and its own checks."""

    kind: Str
    readout: Literal[READOUTS] = "sum"
    params: dict[Str, Any] = field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_recipe(cls, raw: Any) -> Any:
        return _zoo_model(raw) if isinstance(raw, dict) else raw

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "readout": self.readout, **self.params}


def _model_tag(value: Any) -> str:
    if isinstance(value, ZooModelSpec) or (isinstance(value, dict) and value.get("kind", "l2mu") != "l2mu"):
        return "zoo"
    return "l2mu"


AnyModel = Annotated[Union[Annotated[ModelSpec, Tag("l2mu")], Annotated[ZooModelSpec, Tag("zoo")]],  # noqa: UP007
                     Discriminator(_model_tag)]


@dataclass(frozen=True, config=_CONFIG)
class AugmentSpec:
    scale: Annotated[Float, Field(ge=0, le=1, description="random per-window gain, +- this fraction")] = 0.0
    noise: Annotated[Float, Field(ge=0, description="Gaussian noise, in units of the normalized signal")] = 0.0
    rotate_deg: Annotated[Float, Field(ge=0, le=180, description="random rotation of accel and gyro triads")] = 0.0
    time_shift: Annotated[Int, Field(ge=0, description="random shift of the window in time, +- this many steps "
                                                        "(edge values repeat)")] = 0
    time_warp: Annotated[Float, Field(ge=0, lt=1, description="random tempo change, +- this fraction (linear "
                                                               "resampling about the window's centre)")] = 0.0
    physical: Annotated[bool, Field(description="rotation and gain in sensor units (the normalization undone "
                                                "first), so a rotation tilts gravity as a watch worn differently "
                                                "does; false: about each channel's mean")] = False


@dataclass(frozen=True, config=_CONFIG)
class TrainSpec:
    epochs: Count = 30
    batch_size: Count = 32
    lr: Annotated[Float, Field(gt=0)] = 3e-3
    weight_decay: Annotated[Float, Field(ge=0)] = 1e-4
    seed: Annotated[Int, Field(ge=0, lt=2**32)] = 0
    threads: Annotated[Count, Field(le=1024)] = 2
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    baseline_lr: Annotated[Float, Field(ge=0, description="peak lr of the float baselines; 0: the model's")] = 0.0
    mixup: Annotated[Float, Field(ge=0, description="mixup (Zhang et al. 2018): Beta(a, a) mixing weight of two "
                                                    "windows and their labels; 0: off")] = 0.0
    label_smoothing: Annotated[Float, Field(ge=0, lt=1, description="cross-entropy label smoothing")] = 0.0
    ema: Annotated[Float, Field(ge=0, lt=1, description="decay per optimizer step of an exponential moving average "
                                                        "of the weights, which is what is validated and kept; 0: off")] = 0.0
    distill: Annotated[Literal["none", "gru", "cnn", "transformer"], Field(
        description="knowledge distillation from this float baseline, trained first on the same split and seed: "
                    "half the loss is the KL divergence to its logits (Hinton et al. 2015)")] = "none"


@dataclass(frozen=True, config=_CONFIG)
class CVSpec:
    folds: Annotated[Int, Field(ge=2)] = 5
    seeds: Annotated[list[Annotated[Int, Field(ge=0, lt=2**32)]], Field(min_length=1)] = \
        field(default_factory=lambda: [0, 1])
    subjects: Annotated[list[Int], Field(min_length=2)] = field(default_factory=lambda: list(range(1, 11)))


@dataclass(frozen=True, config=_CONFIG)
class QuantSpec:
    calib_windows: Annotated[Count, Field(description="training windows post-training quantization calibrates on")] = 256
    margin: Annotated[Float, Field(gt=0, description="headroom over the largest calibrated state value")] = 1.25
    weight_bits: Annotated[dict[Str, Literal[8, 4, 2]], Field(
        description="graph op (FC or CONV1D) -> 4 or 2 bits per weight (8 where absent): `edgemem quantize`")] = \
        field(default_factory=dict)
    act_bits: Annotated[dict[Str, Literal[8, 16]], Field(
        description="activation -> 16 bits (8 where absent): the ANN LMUFormer's lower_lmuformer.ACT16")] = \
        field(default_factory=dict)


@dataclass(frozen=True, config=_CONFIG)
class Recipe:
    name: Annotated[Str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                               description="the model's name: a C identifier (the export's symbols)")]
    data: DataSpec = field(default_factory=DataSpec)
    model: AnyModel = field(default_factory=ModelSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    baselines: list[Literal[BASELINES]] = field(default_factory=lambda: ["gru", "cnn", "features_rf"])
    cv: CVSpec = field(default_factory=CVSpec)
    quant: QuantSpec = field(default_factory=QuantSpec)
    path: SkipJsonSchema[str | None] = None  # where the recipe was read from (not a YAML field)

    @property
    def folder(self) -> Path:
        return Path(self.path).parent if self.path else Path(".")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("path")
        # fields added later are left out at their defaults, so older recipes keep their CV hashes
        if not d["data"]["params"]:
            d["data"].pop("params")
        if d["data"]["sensor_full_scale"] is None:
            d["data"].pop("sensor_full_scale")
        for key in ("baseline_lr", "mixup", "label_smoothing", "ema"):
            if not d["train"][key]:
                d["train"].pop(key)
        if d["train"]["distill"] == "none":
            d["train"].pop("distill")
        for key in ("time_shift", "time_warp", "physical"):
            if not d["train"]["augment"][key]:
                d["train"]["augment"].pop(key)
        if isinstance(self.model, ModelSpec):
            for key in ("bounded_leaks", "norm_currents"):
                if not d["model"][key]:
                    d["model"].pop(key)
        for key in ("weight_bits", "act_bits"):
            if not d["quant"][key]:
                d["quant"].pop(key)
        if isinstance(self.model, ZooModelSpec):
            d["model"] = self.model.to_dict()
        return d

    @property
    def readout(self) -> str:
        return self.model.readout if isinstance(self.model, ZooModelSpec) else "sum"

    @property
    def data_file(self) -> Path | None:
        """The .npz file of source npz: data.path resolved against the recipe's folder."""
        return self.folder / self.data.path if self.data.path else None

    def moved_to(self, folder: Path) -> Recipe:
        """This recipe as a recipe file in `folder` would say it: a relative data.path rewritten so that it still
        names the same file from there (unchanged when the folder is the same or the path absolute)."""
        p = self.data.path
        if p is None or Path(p).is_absolute() or folder.resolve() == self.folder.resolve():
            return dataclasses.replace(self, path=str(folder / "recipe.yaml"))
        target = (self.folder / p).resolve()
        rel = os.path.relpath(target, folder.resolve())
        return dataclasses.replace(self, data=dataclasses.replace(self.data, path=rel),
                                   path=str(folder / "recipe.yaml"))


# ------------------------------------------------------------------------------------------------ zoo models

def _zoo_model(raw: dict[str, Any]) -> dict[str, Any]:
    """A zoo model's recipe section (kind, readout and the config's fields side by side) -> ZooModelSpec's fields.
    Checked here against the kind's config (names, default types, and the config's own range checks)."""
    from edgemem.models.registry import check_params, recipe_fields

    kind = raw["kind"]
    if not isinstance(kind, str):
        raise EdgememError(f"recipe field 'model.kind' must be str, got {_show(kind)}")
    allowed = recipe_fields(kind)
    readout = raw.get("readout", "sum")
    if readout not in READOUTS:
        raise EdgememError(f"recipe field 'model.readout' must be one of {', '.join(READOUTS)}, got {_show(readout)}")
    params = {k: v for k, v in raw.items() if k not in ("kind", "readout")}
    for k, v in params.items():
        if k not in allowed:
            raise EdgememError(f"recipe has unknown field 'model.{k}' for model kind '{kind}'")
        default = allowed[k]
        ok = isinstance(v, list) if isinstance(default, tuple | list) else _same_type(v, default) or default is None
        if not ok:
            what = "list" if isinstance(default, tuple | list) else type(default).__name__
            raise EdgememError(f"recipe field 'model.{k}' must be {what}, got {_show(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise EdgememError(f"recipe field 'model.{k}' must be a finite number, got {_show(v)}")
    check_params(kind, params, readout)
    return {"kind": kind, "readout": readout, "params": params}


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) != isinstance(value, bool):
        return False
    return isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))


# ------------------------------------------------------------------------------------------------ validation

class _FieldError(ValueError):
    """A check across fields, raised inside validation: names the field it is about."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(what)
        self.where, self.what = where, what


_ADAPTER: TypeAdapter[Recipe] | None = None


def _adapter() -> TypeAdapter[Recipe]:
    global _ADAPTER
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(Recipe)
    return _ADAPTER


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_TYPES = {"int_type": "int", "int_parsing": "int", "int_from_float": "int", "float_type": "float",
          "float_parsing": "float", "string_type": "str", "list_type": "list", "bool_type": "bool",
          "bool_parsing": "bool", "dict_type": "a mapping", "dataclass_type": "a mapping"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


def _message(err: dict[str, Any]) -> str:
    """One pydantic error -> one line in the style of edgemem's recipe errors."""
    loc = [p for i, p in enumerate(err["loc"]) if not (i == 1 and err["loc"][0] == "model" and p in ("l2mu", "zoo"))]
    typ, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if typ == "value_error" and isinstance(ctx.get("error"), _FieldError):
        e = ctx["error"]
        return f"recipe field '{e.where}' {e.what}"
    if typ in ("unexpected_keyword_argument", "extra_forbidden", "invalid_key"):
        return f"recipe has unknown field '{'.'.join(str(p) for p in loc)}'"
    if loc and loc[-1] == "[key]":  # a mapping's key of the wrong type
        return f"recipe field '{'.'.join(str(p) for p in loc[:-2])}' keys must be str, got {_show(loc[-2])}"
    element = len(loc) > 1 and isinstance(loc[-1], int)  # an entry of a list
    where = ".".join(str(p) for p in (loc[:-1] if element else loc)) or "top level"
    if typ == "missing":
        return f"recipe field '{where}' is missing"
    if typ in _TYPES:
        what = _TYPES[typ]
        if element:
            return f"recipe field '{where}' must hold {what} values, got {_show(value)}"
        return f"recipe field '{where}' must be {what}, got {_show(value)}"
    if typ == "literal_error":
        choices = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        if element:
            return f"recipe field '{where}' must hold values among {choices}, got {_show(value)}"
        return f"recipe field '{where}' must be one of {choices}, got {_show(value)}"
    if typ in _BOUNDS:
        sign, key = _BOUNDS[typ]
        what = "entries" if element else ""
        return f"recipe field '{where}' {what + ' ' if what else ''}must be {sign} {ctx.get(key)}, got {_show(value)}"
    if typ == "finite_number":
        return f"recipe field '{where}' must be a finite number, got {_show(value)}"
    if typ == "too_short":
        return f"recipe field '{where}' must have at least {ctx.get('min_length')} entries, got {_show(value)}"
    if typ == "too_long":
        return f"recipe field '{where}' must have at most {ctx.get('max_length')} entries, got {_show(value)}"
    if typ == "string_pattern_mismatch" and where == "name":
        return f"recipe field 'name' must be a C identifier (letters, digits, _), got {_show(value)}"
    return f"recipe field '{where}': {err['msg'].splitlines()[0]}"


def _one_line(e: ValidationError, where: str = "") -> str:
    errors = [{**x, "loc": (*where.split("."), *x["loc"])} if where else x for x in e.errors()]
    unknown = [x for x in errors if x["type"] in ("unexpected_keyword_argument", "extra_forbidden", "invalid_key")]
    if unknown:  # unknown names first (a typo explains the rest), in a stable order
        unknown.sort(key=lambda x: ".".join(str(p) for p in x["loc"]))
        return _message(unknown[0])
    return _message(errors[0])


def validate(raw: Any) -> Recipe:
    """A recipe mapping (from YAML or a checkpoint) -> Recipe, or one EdgememError naming the field."""
    if not isinstance(raw, dict):
        raise EdgememError(f"a recipe must be a mapping, got {type(raw).__name__}")
    if "path" in raw:  # Recipe.path says where it was read from; not a field a file can set
        raise EdgememError("recipe has unknown field 'path'")
    if "name" not in raw:
        raise EdgememError("recipe field 'name' is missing")
    try:
        return _adapter().validate_python(raw)
    except ValidationError as e:
        raise EdgememError(_one_line(e)) from None


def replace(obj: Any, where: str = "", /, **changes: Any) -> Any:
    """dataclasses.replace of a recipe part, validated; a bad value is one EdgememError naming the field (`where`:
    the part's place in the recipe, e.g. 'train')."""
    try:
        return dataclasses.replace(obj, **changes)
    except ValidationError as e:
        raise EdgememError(_one_line(e, where)) from None


def load_recipe(path: Path) -> Recipe:
    if not path.is_file():
        raise EdgememError(f"recipe {path} does not exist")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EdgememError(f"recipe {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EdgememError(f"recipe {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict) or "name" not in raw:
        raise EdgememError(f"recipe {path} must be a mapping with a 'name'")
    recipe = validate(raw)
    check_name(recipe.name, f"recipe {path}: name")  # it names the checkpoint, the export's C symbols, NAME_mixed
    return dataclasses.replace(recipe, path=str(path))


def recipe_from_dict(raw: dict[str, Any], path: Path | None = None, where: str = "the checkpoint") -> Recipe:
    """A recipe stored inside a checkpoint, validated like a file; `path` (the recipe file it stands for, e.g.
    the checkpoint's folder / recipe.yaml) is what a relative `data.path` is resolved against. Errors say `where`
    the recipe came from."""
    if not isinstance(raw, dict):
        raise EdgememError(f"the recipe stored in {where} is not a mapping")
    try:
        recipe = validate(raw)
    except EdgememError as e:
        raise EdgememError(f"the recipe stored in {where} is invalid: {e}") from None
    check_name(recipe.name, f"the recipe stored in {where}: name")
    return dataclasses.replace(recipe, path=str(path) if path else None)


# ------------------------------------------------------------------------------------------------ JSON Schema

def recipe_schema() -> dict[str, Any]:
    """The JSON Schema of a recipe file (docs/recipe.schema.json; `edgemem schema`). The model section is one of
    the L2MU's fields or a zoo kind's (its config dataclass's fields, with kind and readout)."""
    from edgemem.models.registry import KINDS, recipe_fields

    schema = _adapter().json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    options: list[dict[str, Any]] = [{"$ref": "#/$defs/ModelSpec"}]
    for name in KINDS:
        if name == "l2mu":
            continue
        props: dict[str, Any] = {"kind": {"const": name}, "readout": {"enum": list(READOUTS), "default": "sum"}}
        for k, default in recipe_fields(name).items():
            props[k] = {**_json_type(default), "default": list(default) if isinstance(default, tuple) else default}
        defs[f"model_{name}"] = {"type": "object", "title": f"model kind {name}", "properties": props,
                                 "required": ["kind"], "additionalProperties": False}
        options.append({"$ref": f"#/$defs/model_{name}"})
    defs.pop("ZooModelSpec", None)
    schema["properties"]["model"] = {"oneOf": options, "description": "the model: the L2MU (kind l2mu, the default) "
                                     "or a kind of the zoo with its config's fields"}
    schema.pop("title", None)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "edgemem recipe",
            "description": "A recipe file of `edgemem train` (edgemem/training/recipe.py; regenerate with `edgemem schema "
                           "--out docs/recipe.schema.json`)", **schema}


def _json_type(default: Any) -> dict[str, Any]:
    if isinstance(default, bool):
        return {"type": "boolean"}
    if isinstance(default, int):
        return {"type": "integer"}
    if isinstance(default, float):
        return {"type": "number"}
    if isinstance(default, str):
        return {"type": "string"}
    if isinstance(default, tuple | list):
        return {"type": "array"}
    return {}
