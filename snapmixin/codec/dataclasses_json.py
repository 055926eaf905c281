"""The adapter for dataclasses-json classes: their own ``to_dict`` / ``from_dict``.

A dataclasses-json class configures its JSON (field names, letter case,
encoders, what to do with unknown keys): only its own methods honour that,
so the file holds what they write. dataclasses-json reads loosely and
reports errors without a path, so the JSON is checked against the class
first, the way ``from_dict`` will read it, with JSON paths.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import sys
import types
import typing
import uuid
from typing import Any, TypeVar

from .base import Codec
from .hooks import isclass
from .json import (
    DecodeFailure,
    EncodeFailure,
    Mismatch,
    check_stdlib,
    limit_note,
    missing_key,
    unknown_key,
)
from .paths import key_seg, levels, locate, value_depth

__all__ = ["DataclassesJsonCodec", "claims"]


def claims(cls: Any) -> bool:
    """Whether ``cls`` is a dataclasses-json class (``DataClassJsonMixin`` or ``@dataclass_json``)."""
    if not isclass(cls) or not dataclasses.is_dataclass(cls):
        return False
    if hasattr(cls, "dataclass_json_config"):
        return True
    mod = sys.modules.get("dataclasses_json")
    return mod is not None and issubclass(cls, mod.DataClassJsonMixin)


class DataclassesJsonCodec(Codec):
    """For dataclasses-json classes: their own ``to_dict``/``from_dict``, so the
    names, letter case and encoders configured there are what the file holds.

    dataclasses-json converts values loosely (``5`` into ``"5"`` for a ``str``
    field) and reports a missing field as a bare ``KeyError``; so before
    ``from_dict`` the JSON is checked against the class, under the names
    dataclasses-json writes: the JSON type of each value, required fields and
    unknown keys, each error with its JSON path. Fields with a dataclasses-json
    ``decoder`` are left to it; a class configured with ``undefined=INCLUDE``
    or ``EXCLUDE`` keeps its own handling of unknown keys. Datetimes are dataclasses-json's: a POSIX
    timestamp, read back as an aware datetime in the local time zone (the same
    instant); use ``config(encoder=datetime.isoformat, decoder=datetime.fromisoformat)``
    to keep the ISO text and the time zone.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys

    def to_builtins(self, obj: Any) -> Any:
        try:
            return obj.to_dict(encode_json=True)
        except (TypeError, ValueError) as e:
            json_path = locate(obj, "$", lambda v: _dj_encodable(v))
            where = f" at {json_path}" if json_path else ""
            raise EncodeFailure(
                f"dataclasses-json cannot encode the state{where}: {e} (give the field a "
                "dataclasses-json encoder and decoder: field(metadata=config(encoder=..., decoder=...)))",
                json_path) from e

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls.from_dict(value)

    def convert(self, value: Any, cls: Any) -> Any:
        try:
            _dj_check(value, cls, "$", not self.ignore_unknown_keys, set())
        except _DjUnsure:
            pass  # dataclasses-json internals changed: its own checks only
        except RecursionError:
            raise Mismatch(f"nested too deeply to check: {levels(value_depth(value))} "
                           f"({limit_note()})", "$") from None
        try:
            return cls.from_dict(value)
        except Exception as e:  # its own errors (UndefinedParameterError...) too
            raise Mismatch(f"dataclasses-json cannot build {cls.__qualname__}: "
                                f"{type(e).__name__}: {e} at $", "$") from e


def _dj_encodable(v: Any) -> None:
    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict) and dataclasses.is_dataclass(v):
        to_dict(encode_json=True)
    else:
        from dataclasses_json.core import _ExtendedEncoder

        check_stdlib(v, _ExtendedEncoder)


class _DjUnsure(Exception):
    pass


_JSON_NAMES = {dict: "object", list: "array", str: "str", bool: "bool",
               int: "int", float: "float", type(None): "null"}  # msgspec's words


def _json_name(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _wrong(expected: str, value: Any, path: str) -> DecodeFailure:
    return Mismatch(f"Expected `{expected}`, got `{_json_name(value)}` at {path}", path)


def _dj_check(value: Any, tp: Any, path: str, strict_keys: bool, busy: set[tuple[int, type]]) -> None:
    """Check ``value`` against ``tp`` as dataclasses-json's ``from_dict`` reads it (lenient where unsure)."""
    if tp is Any or isinstance(tp, (TypeVar, str, typing.ForwardRef)):
        return
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _dj_check(value, args[0], path, strict_keys, busy)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in args if a is not type(None)]
        if value is None:
            if len(options) < len(args):
                return
            raise _wrong(" | ".join(getattr(a, "__name__", str(a)) for a in args), value, path)
        first: DecodeFailure | None = None
        for a in options:
            try:
                return _dj_check(value, a, path, strict_keys, busy)
            except DecodeFailure as e:
                first = first or e
        assert first is not None
        raise first
    if origin is typing.Literal:
        if value not in args:
            raise Mismatch(f"Expected one of {list(args)!r}, got {value!r:.60} at {path}", path)
        return
    if origin is not None:
        if not isinstance(origin, type):
            return
        if issubclass(origin, (list, tuple, set, frozenset)) or origin.__name__ in (
                "Sequence", "MutableSequence", "Set", "MutableSet", "Collection", "Iterable"):
            if not isinstance(value, list):
                raise _wrong("array", value, path)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if len(args) != len(value):
                    raise Mismatch(f"Expected an array of length {len(args)}, got {len(value)} "
                                        f"at {path}", path)
                for i, (a, v) in enumerate(zip(args, value, strict=True)):
                    _dj_check(v, a, f"{path}[{i}]", strict_keys, busy)
            elif args:
                for i, v in enumerate(value):
                    _dj_check(v, args[0], f"{path}[{i}]", strict_keys, busy)
            return
        if issubclass(origin, dict) or origin.__name__ in ("Mapping", "MutableMapping"):
            if not isinstance(value, dict):
                raise _wrong("object", value, path)
            if len(args) == 2:
                for k, v in value.items():
                    _dj_check(v, args[1], path + key_seg(k), strict_keys, busy)
            return
        return
    if not isclass(tp):
        return
    if dataclasses.is_dataclass(tp):
        return _dj_check_class(value, tp, path, strict_keys, busy)
    if issubclass(tp, enum.Enum):
        if value not in {m.value for m in tp}:
            raise Mismatch(f"Invalid enum value {value!r:.60} for {tp.__qualname__} at {path}", path)
        return
    if value is None:
        raise _wrong(tp.__name__, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise _wrong("bool", value, path)
    elif tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong("int", value, path)
    elif tp is float or issubclass(tp, _dt.datetime):  # dataclasses-json: datetime = timestamp
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _wrong("float" if tp is float else "number (a POSIX timestamp)", value, path)
    elif tp is str:
        if not isinstance(value, str):
            raise _wrong("str", value, path)
    elif tp is uuid.UUID:
        try:
            uuid.UUID(value)
        except (TypeError, ValueError, AttributeError):
            raise Mismatch(f"Invalid UUID {value!r:.60} at {path}", path) from None
    elif tp is decimal.Decimal:
        try:
            decimal.Decimal(value)
        except (TypeError, ValueError, decimal.InvalidOperation):
            raise Mismatch(f"Invalid decimal {value!r:.60} at {path}", path) from None
    elif tp in (list, tuple, set, frozenset) and not isinstance(value, list):
        raise _wrong("array", value, path)
    elif tp is dict and not isinstance(value, dict):
        raise _wrong("object", value, path)


def _dj_check_class(value: Any, tp: type, path: str, strict_keys: bool,
                    busy: set[tuple[int, type]]) -> None:
    if not isinstance(value, dict):
        raise _wrong("object", value, path)
    if (id(value), tp) in busy:  # pragma: no cover - JSON values hold no cycles
        return
    busy.add((id(value), tp))
    try:
        from dataclasses_json import core

        overrides_of: Any = core._user_overrides_or_exts
        overrides = overrides_of(tp)
        hints = typing.get_type_hints(tp, include_extras=True)
        config = getattr(tp, "dataclass_json_config", None) or {}
    except Exception as e:
        raise _DjUnsure from e
    undefined = config.get("undefined")
    undefined = str(getattr(undefined, "name", undefined or "")).lower()  # Undefined.X or "x"
    known: set[str] = set()
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        if undefined == "include" and _is_catch_all(hints.get(f.name)):
            continue  # holds the unknown keys; not a key of its own in the file
        ov = overrides.get(f.name)
        letter_case = getattr(ov, "letter_case", None)
        key = letter_case(f.name) if letter_case is not None else f.name
        known.add(key)
        has_default = (f.default is not dataclasses.MISSING
                       or f.default_factory is not dataclasses.MISSING)
        if key not in value:
            if not has_default:
                raise missing_key(path, key)
            continue
        if getattr(ov, "decoder", None) is not None:
            continue  # the user's decoder decides
        sub = value[key]
        if sub is None and f.default is None:
            continue  # `x: int = None`: what dataclasses-json wrote, it reads back
        _dj_check(sub, hints.get(f.name, Any), path + key_seg(key), strict_keys, busy)
    if strict_keys and undefined not in ("include", "exclude"):  # the class's own choice
        for key in value:
            if key not in known:
                raise unknown_key(path, key)


def _is_catch_all(hint: Any) -> bool:
    try:
        from dataclasses_json import CatchAll
    except ImportError:  # pragma: no cover
        return False
    return bool(hint == CatchAll)
