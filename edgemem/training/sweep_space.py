"""The search space of `edgemem sweep`: a SPACE.yaml file, validated, and a sampled point applied to a recipe.

A space file has two sections:

    space:                                   # dotted recipe path -> distribution
      model.n_h: {int: [8, 64]}
      train.lr: {float: [0.0003, 0.01], log: true}
      model.neurons: {choice: [[lif, lif, lif], [lif, lif, cuba]]}
    search:                                  # all optional
      trials: 8                              # configurations tried
      max_epochs: 20                         # epochs of every (fold, seed) run (default: the recipe's train.epochs)
      grace_period: 2                        # ASHA: epochs every trial gets before it may be stopped
      reduction_factor: 3                    # ASHA: keep the best 1/3 at each rung
      seed: 0                                # the Optuna sampler's seed
      concurrent: 2                          # trials at once (default: as many as the CPUs can feed)

Every key is checked against the recipe before anything runs: its lowest, highest and every choice value are put
into the recipe and validated by the recipe loader, so a key the recipe does not have or a range outside a field's
limits is one line naming the key. The CV protocol (`cv.*`), the seeds, the epochs, the data's source and subject
splits are the yardstick of the search, not part of it: such keys are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import ConfigDict, Field, Strict, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from edgemem.errors import EdgememError
from edgemem.training.recipe import Recipe, validate

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
Int = Annotated[int, Strict()]
Count = Annotated[int, Strict(), Field(ge=1)]
Number = Annotated[float, Strict()]

# recipe paths the search may not change (what it is measured by), as prefixes of dotted keys
FIXED = ("name", "cv", "train.seed", "train.epochs", "train.threads", "data.source", "data.path",
         "data.train_subjects", "data.val_subjects", "data.test_subjects")


@dataclass(frozen=True, config=_CONFIG)
class Dist:
    """One distribution: exactly one of int, float (a [low, high] range, both ends included) or choice."""

    int: list[Int] | None = None
    float: list[Number] | None = None
    choice: Annotated[list[Any], Field(min_length=1)] | None = None
    log: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Dist:
        kinds = [k for k in ("int", "float", "choice") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(f"needs exactly one of int, float, choice; got {', '.join(kinds) or 'none'}")
        rng = self.int if self.int is not None else self.float
        if rng is not None:
            if len(rng) != 2 or rng[0] > rng[1]:
                raise ValueError(f"range must be [low, high] with low <= high, got {rng}")
            if self.log and rng[0] <= 0:
                raise ValueError(f"log range needs low > 0, got {rng}")
        elif self.log:
            raise ValueError("log applies to int and float ranges, not choice")
        return self

    def extremes(self) -> list[Any]:
        """The values that bound what the distribution can give (checked against the recipe up front)."""
        if self.choice is not None:
            return list(self.choice)
        return list(self.int if self.int is not None else self.float or [])


@dataclass(frozen=True, config=_CONFIG)
class SearchSpec:
    trials: Count = 8
    max_epochs: Count | None = None
    grace_period: Count = 1
    reduction_factor: Annotated[Int, Field(ge=2)] = 3
    seed: Annotated[Int, Field(ge=0, lt=2**32)] = 0
    concurrent: Count | None = None


@dataclass(frozen=True, config=_CONFIG)
class SpaceFile:
    space: Annotated[dict[str, Dist], Field(min_length=1)]
    search: SearchSpec = dataclasses.field(default_factory=SearchSpec)

    def digest(self) -> str:
        """What a run folder is tied to: a resumed sweep must search the same space the same way."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "space":  # the key itself has dots: quote it whole
        return f"space.'{parts[1]}'" + "".join(f".{p}" for p in parts[2:])
    return ".".join(parts) or "top level"


def load_space(path: Path, recipe: Recipe) -> SpaceFile:
    """SPACE.yaml -> SpaceFile, every key checked against `recipe`; one EdgememError line on any problem."""
    if not path.is_file():
        raise EdgememError(f"space file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise EdgememError(f"space file {path} is not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise EdgememError(f"space file {path} must be a mapping with 'space' (and optionally 'search')")
    unknown = sorted(str(k) for k in raw if k not in ("space", "search"))
    if unknown:
        raise EdgememError(f"space file {path}: unknown section '{unknown[0]}' (sections: space, search)")
    try:
        space = SpaceFile(**raw)
    except ValidationError as e:
        first = e.errors()[0]
        msg = first["msg"].removeprefix("Value error, ").splitlines()[0]
        if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            msg = "is not a known setting"
        elif first["type"] == "missing":
            msg = "is missing"
        raise EdgememError(f"space file {path}: '{_where(first['loc'])}' {msg}") from None
    for key, dist in space.space.items():
        if any(key == f or key.startswith(f + ".") for f in FIXED):
            raise EdgememError(f"space file {path}: key '{key}' is fixed in a sweep (the CV protocol, seeds, epochs "
                               "and data split are what trials are measured by; search.max_epochs sets the epochs)")
        for value in dist.extremes():
            try:
                apply(recipe, {key: value})
            except EdgememError as e:
                raise EdgememError(f"space file {path}: key '{key}' value {value!r}: {e}") from None
    return space


def apply(recipe: Recipe, values: dict[str, Any]) -> Recipe:
    """The recipe with each dotted key set to its value, validated as a recipe file is (same `path`, so a relative
    data.path still resolves)."""
    d = recipe.to_dict()
    for key, value in values.items():
        node = d
        *parents, leaf = key.split(".")
        for p in parents:
            child = node.get(p)
            if not isinstance(child, dict):
                raise EdgememError(f"recipe has no section '{p}' for key '{key}'")
            node = child
        node[leaf] = value
    return dataclasses.replace(validate(d), path=recipe.path)
