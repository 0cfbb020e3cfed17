"""Property tests (hypothesis, derandomized so CI is reproducible).

- Random L2MU architectures: the model blob round-trips every array, and the C host runtime equals the integer
  reference bit for bit on random and full-scale int8 input.
- Random edits of a valid blob: parse_blob and the C parser accept and reject the same blobs, and whatever both
  accept still runs bit-exact.
- Random recipes with one bad field: load_recipe raises EdgememError, one line naming the field.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import ROOT, random_l2mu
from edgemem.errors import EdgememError
from edgemem.export.blob import ENTRY_SIZE, HEADER_SIZE, build_blob, parse_blob
from edgemem.quant.calibrate import quantize_l2mu
from edgemem.quant.intref import run as run_int
from edgemem.quant.model import FC_NAMES, POP_NAMES, QuantL2MU
from edgemem.train import recipe as recipe_mod
from edgemem.train.recipe import load_recipe
from edgemem.verify import c_runtime

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


def _quantized(arch: dict) -> tuple[QuantL2MU, np.random.Generator]:
    arch = dict(arch)
    seed, neurons = arch.pop("seed"), arch.pop("neurons")
    model = random_l2mu(seed, neurons, **arch)
    rng = np.random.default_rng(seed)
    calib = rng.normal(size=(8, 30, arch["n_in"])).astype(np.float32)
    return quantize_l2mu(model, calib), rng


def _inputs(rng: np.random.Generator, n_in: int, steps: int = 48) -> np.ndarray:
    """Random int8 over the whole range, full-scale values only (the saturation paths), and constant extremes."""
    uniform = rng.integers(-128, 128, size=(4, steps, n_in))
    extreme = rng.choice(np.array([-128, 127, 0]), size=(4, steps, n_in))
    const = np.stack([np.full((steps, n_in), v) for v in (127, -128)])
    return np.concatenate([uniform, extreme, const]).astype(np.int8)


def _assert_same_model(a: QuantL2MU, b: QuantL2MU) -> None:
    assert (a.n_in, a.n_u, a.order, a.n_h, a.n_out, a.a_shift) == (b.n_in, b.n_u, b.order, b.n_h, b.n_out, b.a_shift)
    for name in FC_NAMES:
        for f in ("w", "bias", "mult", "shift"):
            x, y = getattr(a.fc[name], f), getattr(b.fc[name], f)
            assert x.shape == y.shape and np.array_equal(x, y), f"{name}.{f}"
    for name in POP_NAMES:
        assert a.pops[name].cuba == b.pops[name].cuba, name
        for f in ("beta", "alpha", "thr"):
            assert np.array_equal(getattr(a.pops[name], f), getattr(b.pops[name], f)), f"{name}.{f}"
    assert a.lmu_a.shape == b.lmu_a.shape and np.array_equal(a.lmu_a, b.lmu_a)
    assert np.array_equal(a.lmu_b, b.lmu_b)


@FEW
@given(arch=architectures())
def test_random_architectures_round_trip_and_run_bit_exact_in_c(em_run, arch):
    q, rng = _quantized(arch)
    blob = build_blob(q)
    back = parse_blob(blob)
    _assert_same_model(q, back)
    assert build_blob(back) == blob
    x = _inputs(rng, q.n_in)
    ref, spikes = run_int(back, x)
    assert spikes > 0.5, "the test model must spike"
    event(f"spikes per step: {'0' if spikes == 0 else '<1' if spikes < 1 else '<10' if spikes < 10 else '>=10'}")
    with tempfile.TemporaryDirectory(prefix="edgemem-prop-") as tmp:
        path = Path(tmp) / "model.bin"
        path.write_bytes(blob)
        host = c_runtime.run_host(path, x, q.n_out)
    mismatch = np.argwhere(ref != host)
    assert mismatch.size == 0, f"{arch}: first mismatch at window/step/logit {mismatch[0]}"


# ------------------------------------------------------------------------------- random edits: Python == C parser

_SHIPPED_LIKE = {"n_in": 3, "n_u": 2, "order": 3, "n_h": 5, "n_out": 3, "neurons": ("lif", "cuba", "cuba"),
                 "state_clip": 4.0, "memory_clip": 1.0, "seed": 7}


@st.composite
def blob_edits(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """(region, position, value) byte edits: header fields, tensor table entries, or parameter tensors."""
    return draw(st.lists(st.tuples(st.sampled_from(["header", "table", "data"]), st.integers(0, 2**16),
                                   st.integers(0, 255)), min_size=1, max_size=3))


def _em_run_verdict(exe: Path, blob: bytes, x: np.ndarray) -> tuple[int, str, np.ndarray | None]:
    with tempfile.TemporaryDirectory(prefix="edgemem-prop-") as tmp:
        b, i, o = Path(tmp) / "m.bin", Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        b.write_bytes(blob)
        x.tofile(i)
        res = subprocess.run([str(exe), str(b), str(i), str(o), str(x.shape[1])], capture_output=True, text=True,
                             timeout=60)
        out = np.fromfile(o, dtype="<i2") if res.returncode == 0 else None
        return res.returncode, res.stderr, out


@functools.cache
def _small_blob_and_input() -> tuple[bytes, np.ndarray]:
    q, rng = _quantized(_SHIPPED_LIKE)
    return build_blob(q), _inputs(rng, q.n_in, steps=16)


@settings(FEW, max_examples=200)  # ~10 ms an example: cheap enough for many
@given(edits=blob_edits())
def test_python_and_c_parsers_agree_on_edited_blobs(em_run, edits):
    good, x = _small_blob_and_input()
    n_t = struct.unpack_from("<H", good, 32)[0]
    table_end = HEADER_SIZE + ENTRY_SIZE * n_t
    b = bytearray(good)
    for region, pos, value in edits:
        lo, hi = {"header": (4, 36), "table": (HEADER_SIZE, table_end), "data": (table_end, len(good))}[region]
        b[lo + pos % (hi - lo)] = value
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[HEADER_SIZE:])))  # re-sealed: the edit reaches every check
    rc, stderr, host = _em_run_verdict(em_run, bytes(b), x)
    try:
        parsed = parse_blob(bytes(b))
    except EdgememError as e:
        event(f"rejected: {stderr.strip().removeprefix('em_run: bad model blob: ')}")
        assert "\n" not in str(e)
        assert rc == 2 and len(stderr.strip().splitlines()) == 1, (str(e), rc, stderr)
        return
    event("accepted")
    assert rc == 0, f"Python accepts, C rejects: {stderr.strip()}"
    ref, _ = run_int(parsed, x)
    assert np.array_equal(ref.reshape(-1), host), "accepted edited blob is not bit-exact"


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
}


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
    return raw, f"{prefix}{name}", f"must be {type(default).__name__}"


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
