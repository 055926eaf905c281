"""numpy arrays and numpy scalars, exactly: dtype, shape and every bit. numpy is never imported here.

A class from numpy exists only once the user imported numpy, so the hook
looks numpy up in ``sys.modules`` when asked about a class: snapmixin works
without numpy installed, and never pays for importing it.

An array is written as an object whose header stays readable::

    {"dtype": "<f8", "shape": [2, 3], "data": [0.5, 1.0, "nan", "-inf", -0.0, 3.0]}

``dtype`` is numpy's ``dtype.str`` (byte order, kind, item size, and the unit
of a datetime64), ``shape`` the list of dimensions, and the items follow in C
order, one of two ways:

- ``"data"``: the items as JSON values, for arrays of at most
  :data:`READABLE_MAX` items of kind bool, int, uint, float (NaN and
  infinities as the strings ``"nan"``, ``"inf"``, ``"-inf"``), complex
  (``[real, imag]`` pairs), unicode text or datetime64 (ISO text);
  used only when reading it back gives the very same bytes (a NaN with a
  payload, a long double, trailing NULs in text fall back to ``data_b64``);
- ``"data_b64"``: base64 of the raw bytes of the items in little-endian
  order, for anything larger or not exactly readable.

A numpy scalar (``np.float64(0.5)``) is written as a 0-d array, so its dtype
survives; a plain JSON number or bool is read too (as older snapshots hold
it). Arrays of dtype ``object`` (items are arbitrary Python objects) and
structured dtypes are refused, as are subclasses of ``ndarray`` (a masked
array's mask would be lost): register them with ``register_type``.
"""

from __future__ import annotations

import base64
import binascii
import math
import sys
from typing import Any

__all__ = ["HOOK", "READABLE_MAX"]

#: Arrays of at most this many items are written item by item ("data"); larger ones as base64.
READABLE_MAX = 256
#: ...and of at most this many bytes: a file's "data" never makes numpy allocate more than this
#: (a hostile dtype such as "<U999999999" for one short string would otherwise take gigabytes).
_READABLE_BYTES = 1 << 20

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _numpy() -> Any:
    return sys.modules.get("numpy")


def _float_json(x: float) -> Any:
    if math.isfinite(x):
        return x
    return "nan" if x != x else ("inf" if x > 0 else "-inf")


def _float_of(x: Any) -> float:
    if isinstance(x, str):
        try:
            return _NONFINITE[x]
        except KeyError:
            raise TypeError(f"expected a number, 'nan', 'inf' or '-inf', got {x!r:.40}") from None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"expected a number, got {type(x).__name__} {x!r:.40}")
    return float(x)


def _readable(np: Any, arr: Any) -> list[Any] | None:
    """The items of ``arr`` as JSON values (C order), or None for a kind that has no such form."""
    flat = arr.ravel()
    kind = arr.dtype.kind
    if kind in "biuU":
        out: list[Any] = flat.tolist()
        return out
    if kind == "f" and arr.dtype.itemsize <= 8:
        return [_float_json(x) for x in flat.tolist()]
    if kind == "c" and arr.dtype.itemsize <= 16:
        return [[_float_json(z.real), _float_json(z.imag)] for z in flat.tolist()]
    if kind == "M":
        texts: list[Any] = np.datetime_as_string(flat).tolist()
        return texts
    return None


def _from_readable(np: Any, data: Any, dtype: Any, shape: tuple[int, ...]) -> Any:
    if not isinstance(data, list):
        raise TypeError(f"'data' must be a list of the items, not {type(data).__name__}")
    kind = dtype.kind
    if kind == "f":
        items: list[Any] = [_float_of(x) for x in data]
    elif kind == "c":
        if not all(isinstance(z, list) and len(z) == 2 for z in data):
            raise TypeError("the items of a complex array are [real, imag] pairs")
        items = [complex(_float_of(z[0]), _float_of(z[1])) for z in data]
    elif kind == "b":
        if not all(isinstance(x, bool) for x in data):
            raise TypeError("the items of a bool array are true or false")
        items = data
    elif kind in "iu":
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in data):
            raise TypeError(f"the items of an array of {dtype.name} are integers")
        items = data
    elif kind in "UM":
        if not all(isinstance(x, str) for x in data):
            raise TypeError(f"the items of an array of {dtype.name} are strings")
        items = data
    else:
        raise TypeError(f"an array of {dtype.name} is written as 'data_b64', not 'data'")
    if len(items) != math.prod(shape):
        raise TypeError(f"'data' holds {len(items)} items, the shape {list(shape)} needs {math.prod(shape)}")
    if len(items) * dtype.itemsize > _READABLE_BYTES:
        raise TypeError(f"'data' of {len(items)} items of {dtype.str} would take more than "
                        f"{_READABLE_BYTES} bytes: such arrays are written as 'data_b64'")
    try:
        arr = np.array(items, dtype=dtype).reshape(shape)
    except (ValueError, OverflowError) as e:
        if kind in "iu":
            raise TypeError(f"an item is out of the range of {dtype.name} ({e})") from None
        raise TypeError(f"the items do not fit dtype {dtype.str}: {e}") from None
    if kind in "iu" and arr.ravel().tolist() != items:  # older numpy wraps out-of-range ints
        raise TypeError(f"an item is out of the range of {dtype.name}")
    return arr


def encode_array(obj: Any) -> dict[str, Any]:
    """The JSON object for a numpy array or scalar (see the module's docstring)."""
    np = _numpy()
    if isinstance(obj, np.generic):
        arr = np.asarray(obj)
    elif type(obj) is np.ndarray:
        arr = obj
    else:
        raise TypeError(f"a {type(obj).__qualname__} (a subclass of numpy.ndarray) cannot be saved "
                        "as a plain array without losing what the subclass adds: convert it with "
                        "numpy.asarray, or teach snapmixin the class with register_type")
    dtype = arr.dtype
    if dtype.hasobject:
        raise TypeError("numpy arrays of dtype object cannot be saved: their items are arbitrary "
                        "Python objects; use an array of a numeric or text dtype, or a list")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(f"numpy arrays of structured dtype {dtype} cannot be saved: use one array "
                        "per field, or teach snapmixin with register_type")
    out: dict[str, Any] = {"dtype": dtype.str, "shape": list(arr.shape)}
    if arr.size <= READABLE_MAX and arr.nbytes <= _READABLE_BYTES:
        items = _readable(np, arr)
        if items is not None:
            try:
                back = _from_readable(np, items, dtype, arr.shape)
            except TypeError:
                back = None
            if back is not None and back.tobytes() == np.ascontiguousarray(arr).tobytes():
                out["data"] = items
                return out
    little = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    out["data_b64"] = base64.b64encode(little.tobytes()).decode("ascii")
    return out


def decode_array(cls: type, value: Any) -> Any:
    """An array (or a scalar, for a numpy scalar class) from the JSON ``value``."""
    import numpy as np  # a class of numpy's was asked for: numpy is imported already

    if issubclass(cls, np.generic) and (isinstance(value, (int, float, bool))):
        return cls(value)  # written as a plain number (before numpy scalars had their own form)
    if not isinstance(value, dict):
        raise TypeError(f"expected an object with 'dtype', 'shape' and 'data' (a numpy "
                        f"{'array' if issubclass(cls, np.ndarray) else 'scalar'}), got "
                        f"{type(value).__name__} {value!r:.60}")
    extra = set(value) - {"dtype", "shape", "data", "data_b64"}
    if extra:
        raise TypeError(f"unknown key {sorted(extra)[0]!r} in a numpy array (expected 'dtype', "
                        "'shape', and 'data' or 'data_b64')")
    code, shape = value.get("dtype"), value.get("shape")
    if not isinstance(code, str):
        raise TypeError("a numpy array needs 'dtype', a string such as '<f8'")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                            for n in shape)):
        raise TypeError("a numpy array needs 'shape', a list of sizes such as [2, 3]")
    try:
        dtype = np.dtype(code)
    except (TypeError, ValueError) as e:
        raise TypeError(f"not a numpy dtype: {code!r:.40} ({e})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise TypeError(f"numpy dtype {code!r:.40} is not one snapmixin reads (object and "
                        "structured dtypes are not saved)")
    dims = tuple(shape)
    if ("data" in value) == ("data_b64" in value):
        raise TypeError("a numpy array needs exactly one of 'data' and 'data_b64'")
    if "data" in value:
        arr = _from_readable(np, value["data"], dtype, dims)
    else:
        text = value["data_b64"]
        if not isinstance(text, str):
            raise TypeError("'data_b64' must be a base64 string")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise TypeError(f"'data_b64' is not valid base64: {e}") from None
        need = math.prod(dims) * dtype.itemsize
        if len(raw) != need:
            raise TypeError(f"'data_b64' holds {len(raw)} bytes, dtype {dtype.str} and shape "
                            f"{list(dims)} need {need}")
        try:
            little = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).reshape(dims)
        except ValueError as e:  # e.g. a shape numpy cannot have
            raise TypeError(f"cannot make an array of shape {list(dims)}: {e}") from None
        arr = little.astype(dtype)  # a copy: writable, in the byte order the array had
    if issubclass(cls, np.ndarray):
        return arr
    if arr.shape != ():
        raise TypeError(f"expected a numpy scalar ({cls.__qualname__}), got an array of shape "
                        f"{list(arr.shape)}")
    scalar = arr[()]
    if not isinstance(scalar, cls):
        raise TypeError(f"expected a {cls.__qualname__}, the file holds dtype {dtype.str}")
    return scalar


class _Hook:
    """numpy arrays (``ndarray`` itself) and numpy scalars, as one entry of the type-hook table."""

    def handles(self, cls: type) -> bool:
        np = _numpy()
        if np is None or not cls.__module__.startswith("numpy"):
            return False
        return cls is np.ndarray or issubclass(cls, np.generic)

    def encode(self, obj: Any) -> Any:
        return encode_array(obj)

    def decode(self, cls: type, value: Any) -> Any:
        return decode_array(cls, value)


HOOK = _Hook()
