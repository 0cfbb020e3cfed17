"""Property tests (hypothesis, derandomized so CI is reproducible).

- Random L2MU architectures: the lowered graph's blob round-trips, and the C host runtime equals the graph's integer
  reference bit for bit on random and full-scale int8 input. (Random edits of graph blobs, Python parser against C:
  tests/test_graph.py.)
- Random recipes with one bad field: load_recipe raises EdgememError, one line naming the field.
"""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ROOT, random_l2mu
from edgemem.errors import EdgememError
from edgemem.graph.arena import place_by_lifetime
from edgemem.graph.blob import build_graph_blob, parse_graph_blob
from edgemem.graph.ir import Graph
from edgemem.graph.ref import lif_spikes, run_graph
from edgemem.quant.lower import lower
from edgemem.training import recipe as recipe_mod
from edgemem.training.recipe import load_recipe
from edgemem.verification import c_runtime

FEW = settings(max_examples=25, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])



# ------------------------------------------------------------------------------------------- random architectures

@st.composite
def architectures(draw: st.DrawFn) -> dict:
    return {
        "n_in": draw(st.integers(1, 8)),
        "n_u": draw(st.integers(1, 6)),
        "order": draw(st.integers(1, 12)),
        "n_h": draw(st.integers(1, 24)),
        "n_out": draw(st.integers(2, 8)),
        "neurons": tuple(draw(st.sampled_from(["lif", "cuba"])) for _ in range(3)),
        "state_clip": draw(st.sampled_from([2.0, 4.0, 8.0])),
        "memory_clip": draw(st.sampled_from([0.5, 1.0, 2.0])),
        "seed": draw(st.integers(0, 2**16)),
    }


def _lowered(arch: dict) -> tuple[Graph, np.random.Generator]:
    """A random L2MU of this architecture, lowered to its integer graph and placed as export places it."""
    arch = dict(arch)
    seed, neurons = arch.pop("seed"), arch.pop("neurons")
    model = random_l2mu(seed, neurons, **arch)
    rng = np.random.default_rng(seed)
    calib = rng.normal(size=(8, 30, arch["n_in"])).astype(np.float32)
    low = lower(model, calib)
    place_by_lifetime(low.graph)
    return low.graph, rng


def _inputs(rng: np.random.Generator, n_in: int, steps: int = 48) -> np.ndarray:
    """Random int8 over the whole range, full-scale values only (the saturation paths), and constant extremes."""
    uniform = rng.integers(-128, 128, size=(4, steps, n_in))
    extreme = rng.choice(np.array([-128, 127, 0]), size=(4, steps, n_in))
    const = np.stack([np.full((steps, n_in), v) for v in (127, -128)])
    return np.concatenate([uniform, extreme, const]).astype(np.int8)


@FEW
@given(arch=architectures())
def test_random_architectures_round_trip_and_run_bit_exact_in_c(em_run, arch):
    g, rng = _lowered(arch)
    blob = build_graph_blob(g)
    back = parse_graph_blob(blob)
    assert build_graph_blob(back) == blob
    x = _inputs(rng, g.n_in)
    spikes = [0]

    def count(_t: int, values: dict[str, np.ndarray]) -> None:
        spikes[0] += int(lif_spikes(back, values).sum())

    ref = run_graph(back, x, count)
    per_step = spikes[0] / (x.shape[0] * x.shape[1])
    assert per_step > 0.5, "the test model must spike"
    event(f"spikes per step: {'<1' if per_step < 1 else '<10' if per_step < 10 else '>=10'}")
    with tempfile.TemporaryDirectory(prefix="edgemem-prop-") as tmp:
        path = Path(tmp) / "model.bin"
        path.write_bytes(blob)
        host = c_runtime.run_host(path, x, g.n_out)
    mismatch = np.argwhere(ref != host)
    assert mismatch.size == 0, f"{arch}: first mismatch at window/step/logit {mismatch[0]}"


# ---------------------------------------------------------------------------------------------- bad recipes

SECTIONS: dict[str, type] = {"": recipe_mod.Recipe, "data": recipe_mod.DataSpec, "model": recipe_mod.ModelSpec,
                             "train": recipe_mod.TrainSpec, "train.augment": recipe_mod.AugmentSpec,
                             "cv": recipe_mod.CVSpec, "quant": recipe_mod.QuantSpec}
DEFAULTS = recipe_mod.Recipe(name="x").to_dict()


def _fields(cls: type) -> dict[str, object]:
    """Scalar and list fields of a spec with their defaults (None defaults accept anything: left out)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name == "path":
            continue
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else "")
        if default is not None and not dataclasses.is_dataclass(default):
            out[f.name] = default
    return out


_text = st.text(max_size=12)
_floats = st.floats(allow_nan=False, allow_infinity=False, width=32)
_lists = st.lists(st.integers(-3, 3) | _text, max_size=3)
_dicts = st.dictionaries(st.text("abc", min_size=1, max_size=3), st.integers(0, 3), min_size=1, max_size=2)
WRONG = {  # values that are not of the default's type (ints are fine where a float is expected)
    int: _text | _floats | _lists | _dicts | st.booleans(),
    float: _text | _lists | _dicts | st.booleans(),
    str: st.integers() | _floats | _lists | _dicts | st.booleans(),
    list: _text | st.integers() | _floats | _dicts | st.booleans(),
    dict: _text | st.integers() | _floats | _lists | st.booleans(),
}


def _expected_words(cls: type, name: str, default: object) -> str:
    """What the one-line error says of a value of the wrong type: a choice (Literal) lists its options."""
    ann = typing.get_type_hints(cls, include_extras=True)[name]
    if typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    if typing.get_origin(ann) is typing.Literal:
        return "must be one of"
    return "must be a mapping" if isinstance(default, dict) else f"must be {type(default).__name__}"


def _at(d: dict, section: str) -> dict:
    for part in filter(None, section.split(".")):
        d = d.setdefault(part, {})
    return d


@st.composite
def bad_recipes(draw: st.DrawFn) -> tuple[dict, str, str]:
    """(raw recipe, field path the error must name, words the message must hold)."""
    raw: dict = {"name": "x"}
    for sec in draw(st.lists(st.sampled_from(["data", "model", "train", "cv", "quant"]), unique=True, max_size=3)):
        raw[sec] = copy.deepcopy(DEFAULTS[sec])  # valid noise around the bad field
    section = draw(st.sampled_from(sorted(SECTIONS)))
    kind = draw(st.sampled_from(["unknown", "type", "mapping"] if section else ["unknown", "type"]))
    prefix = f"{section}." if section else ""
    if kind == "unknown":
        known = {f.name for f in dataclasses.fields(SECTIONS[section]) if f.name != "path"}
        key = draw(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(lambda k: k not in known)
                   | st.integers(0, 99))
        _at(raw, section)[key] = draw(st.integers(0, 3) | _text)
        return raw, f"{prefix}{key}", "unknown field"
    if kind == "mapping":
        parent, _, last = section.rpartition(".")
        _at(raw, parent)[last] = draw(st.integers() | _text | _lists | st.none() | st.booleans())
        return raw, section, "must be a mapping"
    fields = _fields(SECTIONS[section])
    name = draw(st.sampled_from(sorted(fields)))
    default = fields[name]
    _at(raw, section)[name] = draw(WRONG[type(default)])
    return raw, f"{prefix}{name}", _expected_words(SECTIONS[section], name, default)


@FEW
@given(case=bad_recipes())
def test_bad_recipe_fields_are_one_line_errors_naming_the_field(case):
    raw, field, words = case
    with tempfile.TemporaryDirectory(prefix="edgemem-prop-") as tmp:
        path = Path(tmp) / "r.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True))
        with pytest.raises(EdgememError) as e:
            load_recipe(path)
    msg = str(e.value)
    assert "\n" not in msg and f"'{field}'" in msg and words in msg, (raw, msg)


@pytest.mark.parametrize("text,field", [
    ("name: x\ntrain: {epochs: null}\n", "train.epochs"),
    ("name: x\ndata: {1: 2, foo: 3}\n", "data."),
    ("name: x\nmodel: {neurons: [1, 2]}\n", "model.neurons"),
])
def test_nulls_odd_keys_and_list_elements_are_checked(tmp_path, text, field):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(EdgememError, match=f"'{field}"):
        load_recipe(path)


def test_the_noise_around_bad_fields_is_valid(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "x", **{s: DEFAULTS[s] for s in ("data", "model", "train", "cv", "quant")}}))
    assert load_recipe(path).to_dict() == DEFAULTS


@pytest.mark.parametrize("text,words", [
    ("name: x\ntrain: {augment: {scale: 0.1, tilt: 3}}\n", "unknown field 'train.augment.tilt'"),
    ("name: x\nmodel: {neurons: lif}\n", "recipe field 'model.neurons' must be list"),
    ("name: x\ncv: [1, 2]\n", "recipe field 'cv' must be a mapping"),
])
def test_bad_recipe_through_the_cli(tmp_path, text, words):
    r = tmp_path / "r.yaml"
    r.write_text(text)
    res = subprocess.run([sys.executable, "-m", "edgemem.cli", "train", str(r)], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert not (tmp_path / "model.pt").exists()
