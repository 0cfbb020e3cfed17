"""Read the numeric columns of pandas DataFrames from an old pickle without running any of the pickle's code.

A pickle names functions and classes that unpickling calls; `pickle.load` would import and call whatever it names
(`os.system` included). `read_frames` uses an Unpickler whose `find_class` answers only an explicit allow-list:
stand-ins (stubs) for pandas' DataFrame, BlockManager, Index and RangeIndex that merely keep their state, numpy's
array and dtype reconstruction replaced by stubs that build arrays from raw bytes themselves (numbers only; object
arrays only of strings and numbers), `_codecs.encode` for latin-1 only, and `slice`. Any other name raises
`UnsafePickle`. Pandas itself is never imported, which is also why a 2020 pickle that current pandas cannot load
still reads: the stubs only need the state layout pandas 0.x/1.x wrote (`BlockManager.__getstate__`'s "0.14.1" dict).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

from edgemem.errors import EdgememError


class UnsafePickle(EdgememError):
    """The pickle names something outside the allow-list (or has a layout the stubs do not know)."""


# dtypes a numeric block may have: raw bytes are copied into these and nothing else
_NUMERIC = frozenset({"f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "b1"})
_OBJECT = "O8"  # column names: an object array whose items the pickle machine itself built (str, numbers, None)


class _Frozen(type):
    """The allow-listed classes cannot be changed by the pickle (a BUILD on a class would set class attributes)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise UnsafePickle(f"pickle tries to set {cls.__name__}.{name}")

    def __delattr__(cls, name: str) -> None:
        raise UnsafePickle(f"pickle tries to delete {cls.__name__}.{name}")


class _Stub(metaclass=_Frozen):
    """Stands in for a pickled pandas object: keeps the state the pickle gives it and runs nothing."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class DataFrameStub(_Stub):
    pass


class BlockManagerStub(_Stub):
    pass


class IndexStub(_Stub):
    pass


class RangeIndexStub(_Stub):
    pass


_STUBS: dict[str, type[_Stub]] = {"DataFrame": DataFrameStub, "BlockManager": BlockManagerStub, "Index": IndexStub,
                                  "RangeIndex": RangeIndexStub}


class _ObjectMarker(metaclass=_Frozen):
    """`object`, as the pickle names it for copyreg._reconstructor: a marker, not the real class."""


class _NdarrayMarker(metaclass=_Frozen):
    """`numpy.ndarray`, as an argument of _reconstruct: a marker."""


class DTypeStub(metaclass=_Frozen):
    """numpy.dtype(name, align, copy) and its BUILD state (byte order), checked against the allowed dtypes."""

    def __init__(self, name: Any, align: Any = 0, copy: Any = 1) -> None:
        if not isinstance(name, str) or (name not in _NUMERIC and name != _OBJECT):
            raise UnsafePickle(f"pickle asks for dtype {name!r}, which is not an allowed numeric dtype")
        self.name, self.order = name, "|"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
            raise UnsafePickle(f"pickle gives dtype {self.name} an unknown state {state!r:.60}")
        self.order = state[1]

    def dtype(self) -> np.dtype:
        d = np.dtype(self.name)
        return d if self.order in ("|", "=") else d.newbyteorder(self.order)


class ArrayStub(metaclass=_Frozen):
    """numpy's _reconstruct(ndarray, (0,), b'b') followed by BUILD (version, shape, dtype, fortran, data): the array
    is built here from the raw bytes (a copy), never by numpy's own unpickling."""

    def __init__(self) -> None:
        self.array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise UnsafePickle(f"pickle gives an array an unknown state {type(state).__name__}")
        _, shape, dt, fortran, data = state
        if not isinstance(dt, DTypeStub) or not isinstance(shape, tuple) or \
                not all(isinstance(s, int) and s >= 0 for s in shape):
            raise UnsafePickle("pickle gives an array a shape or dtype that is not plain")
        count = int(np.prod(shape, dtype=np.int64))
        order = "F" if fortran else "C"
        if dt.name == _OBJECT:
            if not isinstance(data, list) or len(data) != count or \
                    not all(v is None or isinstance(v, str | int | float) for v in data):
                raise UnsafePickle("pickle gives an object array items other than strings and numbers")
            out = np.empty(count, dtype=object)
            out[:] = data
            self.array = out.reshape(shape, order=order)
            return
        if not isinstance(data, bytes):
            raise UnsafePickle(f"pickle gives a {dt.name} array {type(data).__name__} data, not bytes")
        d = dt.dtype()
        if len(data) != count * d.itemsize:
            raise UnsafePickle(f"pickle gives a {shape} {dt.name} array {len(data)} bytes")
        self.array = np.frombuffer(data, dtype=d).reshape(shape, order=order).astype(d.newbyteorder("="))


def _reconstruct(cls: Any, shape: Any, tag: Any) -> ArrayStub:
    if cls is not _NdarrayMarker:
        raise UnsafePickle("pickle reconstructs an array of a class other than numpy.ndarray")
    return ArrayStub()


def _reconstructor(cls: Any, base: Any, state: Any) -> _Stub:
    """copyreg._reconstructor(cls, object, None) for the stub classes only."""
    if not (isinstance(cls, type) and issubclass(cls, _Stub)) or base is not _ObjectMarker or state is not None:
        raise UnsafePickle("pickle calls copyreg._reconstructor on something other than a pandas stub")
    return cls()


def _new_index(cls: Any, d: Any) -> _Stub:
    """pandas' _new_Index(cls, dict): the stub keeps the dict."""
    if cls not in (IndexStub, RangeIndexStub) or not isinstance(d, dict):
        raise UnsafePickle("pickle calls pandas' _new_Index on something other than an index")
    index = cls()
    index.state = d
    return index


def _latin1(text: Any, encoding: Any) -> bytes:
    """_codecs.encode as protocol 2 uses it for bytes: latin-1 only."""
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePickle(f"pickle calls _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    **{(m, "_reconstructor"): _reconstructor for m in ("copy_reg", "copyreg")},
    **{(m, "object"): _ObjectMarker for m in ("__builtin__", "builtins")},
    **{(m, "slice"): slice for m in ("__builtin__", "builtins")},
    ("_codecs", "encode"): _latin1,
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): DTypeStub,
    ("pandas.core.frame", "DataFrame"): DataFrameStub,
    ("pandas.core.internals.managers", "BlockManager"): BlockManagerStub,
    ("pandas.core.indexes.base", "Index"): IndexStub,
    ("pandas.core.indexes.range", "RangeIndex"): RangeIndexStub,
    ("pandas.core.indexes.base", "_new_Index"): _new_index,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose globals are the allow-list above; everything else raises UnsafePickle."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickle(f"pickle refers to {module}.{name}, which is not on the allow-list") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickle("pickle uses persistent ids, which are not allowed")


def restricted_load(f: BinaryIO | bytes) -> Any:
    """Unpickle with the allow-list (stubs in place of pandas and numpy objects)."""
    stream = io.BytesIO(f) if isinstance(f, bytes) else f
    try:
        return RestrictedUnpickler(stream).load()
    except UnsafePickle:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise UnsafePickle(f"pickle cannot be read with the allow-list ({type(e).__name__}: {str(e)[:80]})") from None


def _array(x: Any, what: str) -> np.ndarray:
    if not isinstance(x, ArrayStub) or x.array is None:
        raise UnsafePickle(f"DataFrame {what} is not an array")
    return x.array


def frame_columns(frame: Any) -> dict[str, np.ndarray]:
    """A DataFrame stub -> {column name: 1-D array}, from its BlockManager's "0.14.1" state (pandas 0.14 to 1.x)."""
    if not isinstance(frame, DataFrameStub) or not isinstance(frame.state, dict):
        raise UnsafePickle("expected a pandas DataFrame")
    mgr = frame.state.get("_data") or frame.state.get("_mgr")
    if not isinstance(mgr, BlockManagerStub) or not isinstance(mgr.state, tuple) or len(mgr.state) < 4:
        raise UnsafePickle("DataFrame has no BlockManager state")
    extra = mgr.state[3].get("0.14.1") if isinstance(mgr.state[3], dict) else None
    if not isinstance(extra, dict) or not isinstance(extra.get("axes"), list) or len(extra["axes"]) != 2:
        raise UnsafePickle("DataFrame's BlockManager state is not the 0.14.1 layout")
    columns_index = extra["axes"][0]
    if not isinstance(columns_index, IndexStub) or not isinstance(columns_index.state, dict):
        raise UnsafePickle("DataFrame's columns are not a plain Index")
    names = [str(v) for v in _array(columns_index.state.get("data"), "column names")]
    out: dict[str, np.ndarray] = {}
    for block in extra.get("blocks", []):
        values = _array(block.get("values"), "block")
        locs = block.get("mgr_locs")
        cols = list(range(len(names)))[locs] if isinstance(locs, slice) else _array(locs, "block columns").tolist()
        if values.ndim != 2 or values.shape[0] != len(cols):
            raise UnsafePickle(f"a DataFrame block of shape {values.shape} does not match its {len(cols)} columns")
        for k, c in enumerate(cols):
            out[names[int(c)]] = values[k]
    return out
