"""Encoding: objects to JSON bytes and back. The only module that calls a JSON library.

The default codec is msgspec (strict, fast, with JSON paths in its errors).
Other kinds of state objects are handled by adapters chosen automatically from
the type being saved (:func:`codec_for`):

==========================================  ===========================================
type                                        adapter
==========================================  ===========================================
defines ``__snapshot_state__`` and          :class:`CustomCodec`: the class's own two
``__from_snapshot_state__``                 methods
dataclasses-json class                      :class:`DataclassesJsonCodec`: ``to_dict`` /
(``DataClassJsonMixin``, ``@dataclass_json``) ``from_dict``, so its configuration holds
pydantic v2 model                           :class:`PydanticCodec`
attrs class                                 :class:`AttrsCodec` (cattrs when installed)
dataclass, msgspec Struct, JSON values,     :class:`MsgspecCodec`
TypedDict, NamedTuple, ``None`` (untyped)
==========================================  ===========================================

Anything else is refused up front (:func:`codec_for` raises ``TypeError``
naming the type and the ways to make it work), or handled by a codec the user
passes to ``SnapStore(codec=...)``: any object with the four methods of
:class:`Codec`.

Decoding is strict: a missing field, a wrong type and (unless
``ignore_unknown_keys``) an unknown key raise ``DecodeError`` with the JSON path
of the value. Floats that JSON cannot hold (NaN, +-infinity) are refused when
saving, with the path of the value: JSON has no spelling for them, and writing
``null`` instead would make the snapshot fail to restore.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import math
import pathlib
import re
import sys
import types
import typing
import uuid
from typing import Any, TypeVar

import msgspec

__all__ = [
    "AttrsCodec",
    "Codec",
    "CustomCodec",
    "DataclassesJsonCodec",
    "MsgspecCodec",
    "PydanticCodec",
    "codec_for",
    "decode_json",
    "dumps",
    "loads",
    "pretty",
]

T = TypeVar("T")


class _CodecFailure(Exception):
    """Internal: carries a message and a JSON path up to the store, which adds the file."""

    def __init__(self, message: str, json_path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.json_path = json_path


class EncodeFailure(_CodecFailure):
    """A value could not be encoded (turned into ``EncodeError`` by the caller)."""


class DecodeFailure(_CodecFailure):
    """A value did not fit its type (turned into ``DecodeError`` by the caller)."""


# ---------------------------------------------------------------------------
# Plain JSON values <-> bytes
# ---------------------------------------------------------------------------

_BUILTIN_BASES: tuple[type, ...] = (
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID,
    bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset,
)


# The real classes, kept in a tuple: freezegun swaps module attributes that are
# datetime classes for its fakes while time is frozen, but not tuple items.
_REAL_DT: tuple[type[_dt.datetime], type[_dt.date]] = (_dt.datetime, _dt.date)


def _enc_hook(obj: Any) -> Any:
    """Turn values msgspec does not know into ones it does."""
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    if isinstance(obj, _dt.datetime):  # e.g. freezegun's FakeDatetime
        return _REAL_DT[0](obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second,
                            obj.microsecond, obj.tzinfo, fold=obj.fold)
    if isinstance(obj, _dt.date):
        return _REAL_DT[1](obj.year, obj.month, obj.day)
    for base in _BUILTIN_BASES:  # any other subclass of a builtin encodes as its base
        if isinstance(obj, base):
            return base(obj)
    raise NotImplementedError(f"objects of type {type(obj).__qualname__} cannot be written as JSON")


def _dec_hook(tp: Any, obj: Any) -> Any:
    if isinstance(tp, type) and isinstance(obj, tp):
        return obj
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath) and isinstance(obj, str):
        return tp(obj)
    raise NotImplementedError(f"cannot build {getattr(tp, '__qualname__', tp)!r} from JSON")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_untyped_decoder = msgspec.json.Decoder()
_msgpack = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
# A msgpack float64 whose exponent bits are all ones: NaN or +-infinity.
_NONFINITE_MSGPACK = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of a value, refusing NaN and infinity with the value's path."""
    try:
        data = _encoder.encode(value)
    except (TypeError, NotImplementedError, OverflowError, ValueError) as e:
        json_path = _locate(value, "$", lambda v: _encoder.encode(v))
        raise EncodeFailure(_encode_message(e, value, json_path), json_path) from e
    if b"null" in data and _NONFINITE_MSGPACK.search(_msgpack.encode(value)):
        bad = _find_nonfinite(msgspec.to_builtins(value, enc_hook=_enc_hook), "$")
        if bad is not None:
            raise EncodeFailure(
                f"{bad[1]!r} at {bad[0]} cannot be written as JSON (JSON has no NaN or infinity); "
                "store None or a string instead", bad[0])
    return data


def _encode_message(e: BaseException, value: Any, json_path: str | None) -> str:
    where = f" at {json_path}" if json_path else ""
    return f"cannot encode the state{where}: {e}"


def _children(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(f"[{k!r}]" if not isinstance(k, str) or not k.isidentifier() else f".{k}", v)
                for k, v in value.items()] + [(f"<key {k!r}>", k) for k in value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", getattr(value, f.name, None)) for f in dataclasses.fields(value)]
    if isinstance(value, msgspec.Struct):
        return [(f".{name}", getattr(value, name)) for name in value.__struct_fields__]
    attrs_fields = getattr(type(value), "__attrs_attrs__", None)
    if attrs_fields is not None:
        return [(f".{a.name}", getattr(value, a.name, None)) for a in attrs_fields]
    return []


def _locate(value: Any, path: str, check: Any) -> str | None:
    """Find the deepest path below ``value`` whose value ``check`` still refuses."""
    for suffix, child in _children(value):
        try:
            check(child)
        except Exception:
            return _locate(child, path + suffix, check) or path + suffix
    return None


def _find_nonfinite(value: Any, path: str) -> tuple[str, float] | None:
    stack = [(path, value)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return p, v
        elif isinstance(v, dict):
            stack.extend((f"{p}.{k}" if isinstance(k, str) and k.isidentifier() else f"{p}[{k!r}]", x)
                         for k, x in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{p}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


def loads(data: bytes | memoryview) -> Any:
    """Plain JSON values from bytes. Raises ``DecodeFailure`` for malformed or too deep JSON."""
    try:
        return _untyped_decoder.decode(data)
    except msgspec.DecodeError as e:
        raise DecodeFailure(f"not valid JSON: {e}") from e
    except RecursionError as e:
        raise DecodeFailure("JSON nested too deeply to read") from e


def decode_json(data: bytes | memoryview, tp: Any) -> Any:
    """Decode JSON bytes straight into type ``tp`` with msgspec (no adapter)."""
    try:
        return msgspec.json.decode(data, type=tp, dec_hook=_dec_hook)
    except msgspec.ValidationError as e:
        raise _validation_failure(e) from e
    except msgspec.DecodeError as e:
        raise DecodeFailure(f"not valid JSON: {e}") from e
    except RecursionError as e:
        raise DecodeFailure("JSON nested too deeply to read") from e


_PATH_RE = re.compile(r" - at `(\$[^`]*)`$")


def _validation_failure(e: Exception) -> DecodeFailure:
    text = str(e)
    m = _PATH_RE.search(text)
    json_path = m.group(1) if m else "$"
    msg = text[: m.start()] if m else text
    return DecodeFailure(f"{msg} at {json_path}", json_path)


def pretty(compact: bytes, level: int = 0) -> bytes:
    """Indent compact JSON by 2 spaces per level, as if it stood ``level`` levels deep.

    JSON strings cannot hold a raw newline, so every newline of the formatted
    text is structure and can be re-indented with a plain replace.
    """
    text = msgspec.json.format(compact, indent=2)
    if level:
        text = text.replace(b"\n", b"\n" + b"  " * level)
    return text


# ---------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------


class Codec:
    """How one kind of object becomes JSON and comes back.

    Subclasses implement :meth:`to_builtins` and :meth:`from_builtins` (plain
    JSON values: dict, list, str, int, float, bool, None); :meth:`encode` and
    :meth:`decode` have working defaults built on them. Raise any exception for
    a bad value: the store wraps it in ``EncodeError``/``DecodeError`` naming
    the file.
    """

    #: Whether keys of the input that the type does not know are refused.
    ignore_unknown_keys: bool = False

    def to_builtins(self, obj: Any) -> Any:
        raise NotImplementedError

    def from_builtins(self, value: Any, cls: Any) -> Any:
        raise NotImplementedError

    def encode(self, obj: Any) -> bytes:
        """Compact JSON bytes of ``obj``."""
        return dumps(self.to_builtins(obj))

    def decode(self, data: bytes | memoryview, cls: Any) -> Any:
        """An object of type ``cls`` from JSON bytes (plain values when ``cls`` is None)."""
        value = loads(data)
        return value if cls is None else self.convert(value, cls)

    def convert(self, value: Any, cls: Any) -> Any:
        """An object of type ``cls`` from plain JSON values, checked for unknown keys."""
        obj = self.from_builtins(value, cls)
        if not self.ignore_unknown_keys:
            _check_no_unknown_keys(value, self.to_builtins(obj), "$")
        return obj


def _check_no_unknown_keys(given: Any, kept: Any, path: str) -> None:
    """Refuse keys that decoding silently dropped: compare the input with a re-encoding."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, sub in given.items():
            where = f"{path}.{key}" if isinstance(key, str) and key.isidentifier() else f"{path}[{key!r}]"
            if key not in kept:
                raise DecodeFailure(f"unknown key {key!r} at {path} (a typo in a hand edit? "
                                    "pass ignore_unknown_keys=True to drop it)", where)
            _check_no_unknown_keys(sub, kept[key], where)
    elif isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        for i, (a, b) in enumerate(zip(given, kept, strict=True)):
            _check_no_unknown_keys(a, b, f"{path}[{i}]")


class MsgspecCodec(Codec):
    """The default: msgspec for dataclasses, Structs, TypedDicts, NamedTuples and plain values.

    Unknown keys are refused by decoding into a mirror of each dataclass as a
    msgspec Struct with ``forbid_unknown_fields``, then converting to the
    dataclass (both steps in C).
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys
        self._decoders: dict[Any, tuple[msgspec.json.Decoder[Any], Any]] = {}

    def to_builtins(self, obj: Any) -> Any:
        return msgspec.to_builtins(obj, enc_hook=_enc_hook)

    def encode(self, obj: Any) -> bytes:
        return dumps(obj)

    def _plan(self, cls: Any) -> tuple[msgspec.json.Decoder[Any], Any]:
        plan = self._decoders.get(cls)
        if plan is None:
            mirror = None if self.ignore_unknown_keys else _strict_mirror(cls)
            target = cls if mirror is None else mirror
            plan = (msgspec.json.Decoder(target, dec_hook=_dec_hook), None if mirror is None else target)
            self._decoders[cls] = plan
        return plan

    def decode(self, data: bytes | memoryview, cls: Any) -> Any:
        if cls is None:
            return loads(data)
        decoder, mirror = self._plan(cls)
        try:
            value = decoder.decode(data)
            if mirror is not None:
                value = msgspec.convert(value, cls, from_attributes=True, dec_hook=_dec_hook)
            return value
        except msgspec.ValidationError as e:
            raise _validation_failure(e) from e
        except msgspec.DecodeError as e:
            raise DecodeFailure(f"not valid JSON: {e}") from e
        except RecursionError as e:
            raise DecodeFailure("JSON nested too deeply to read") from e
        except NotImplementedError as e:
            raise DecodeFailure(str(e)) from e

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return self.convert(value, cls)

    def convert(self, value: Any, cls: Any) -> Any:
        if cls is None:
            return value
        _, mirror = self._plan(cls)
        try:
            if mirror is not None:
                value = msgspec.convert(value, mirror, dec_hook=_dec_hook)
                return msgspec.convert(value, cls, from_attributes=True, dec_hook=_dec_hook)
            return msgspec.convert(value, cls, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:
            raise _validation_failure(e) from e


def _strict_mirror(tp: Any) -> Any:
    """``tp`` with every dataclass replaced by a Struct that forbids unknown fields.

    Returns None when ``tp`` holds no dataclass (nothing to mirror) or when a
    part of it cannot be mirrored (a recursive dataclass, for instance), in
    which case decoding stays strict about types but not about unknown keys.
    """
    try:
        out, changed = _mirror(tp, {}, set())
    except _CannotMirror:
        return None
    return out if changed else None


class _CannotMirror(Exception):
    pass


def _mirror(tp: Any, done: dict[Any, Any], busy: set[Any]) -> tuple[Any, bool]:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if tp in done:
            return done[tp], True
        if tp in busy:
            raise _CannotMirror(tp)
        busy.add(tp)
        hints = typing.get_type_hints(tp, include_extras=True)
        fields: list[Any] = []
        for f in dataclasses.fields(tp):
            if not f.init:
                continue
            sub, _ = _mirror(hints.get(f.name, Any), done, busy)
            if f.default is not dataclasses.MISSING:
                fields.append((f.name, sub, f.default))
            elif f.default_factory is not dataclasses.MISSING:
                fields.append((f.name, sub, msgspec.field(default_factory=f.default_factory)))
            else:
                fields.append((f.name, sub))
        # msgspec wants required fields first; keyword-only Structs accept any order.
        struct = msgspec.defstruct(tp.__name__, fields, kw_only=True, forbid_unknown_fields=True)
        busy.discard(tp)
        done[tp] = struct
        return struct, True
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is None or not args:
        return tp, False
    if origin is typing.Annotated:
        inner, changed = _mirror(args[0], done, busy)
        if not changed:
            return tp, False
        return typing.Annotated[(inner,) + tuple(tp.__metadata__)], True  # noqa: RUF005 - 3.10 syntax
    if origin is typing.Literal:
        return tp, False
    new_args = []
    changed = False
    for a in args:
        if a is Ellipsis:
            new_args.append(a)
            continue
        m, c = _mirror(a, done, busy)
        new_args.append(m)
        changed = changed or c
    if not changed:
        return tp, False
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[tuple(new_args)], True  # noqa: UP007 - built at run time
    try:
        return origin[tuple(new_args)], True
    except TypeError as e:  # pragma: no cover - exotic generic
        raise _CannotMirror(tp) from e


class CustomCodec(Codec):
    """For classes defining ``__snapshot_state__(self)`` and ``__from_snapshot_state__(cls, value)``."""

    ignore_unknown_keys = True  # the class's own method decides what it accepts

    def to_builtins(self, obj: Any) -> Any:
        return obj.__snapshot_state__()

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls.__from_snapshot_state__(value)


class DataclassesJsonCodec(Codec):
    """For dataclasses-json classes: their own ``to_dict``/``from_dict``, so the
    names, letter case and encoders configured there are what the file holds."""

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys

    def to_builtins(self, obj: Any) -> Any:
        return obj.to_dict(encode_json=True)

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls.from_dict(value)


class PydanticCodec(Codec):
    """For pydantic v2 models: ``model_dump(mode="json")`` and ``model_validate``."""

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys

    def to_builtins(self, obj: Any) -> Any:
        return obj.model_dump(mode="json")

    def from_builtins(self, value: Any, cls: Any) -> Any:
        try:
            return cls.model_validate(value)
        except Exception as e:
            errors = getattr(e, "errors", None)
            if callable(errors):
                first = errors()[0]
                loc = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
                raise DecodeFailure(f"{first['msg']} at {loc}", loc) from e
            raise


class AttrsCodec(Codec):
    """For attrs classes: cattrs' JSON converter when installed, msgspec otherwise."""

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys
        try:
            from cattrs.preconf.json import make_converter
        except ImportError:
            self._converter: Any = None
        else:
            self._converter = make_converter()

    def to_builtins(self, obj: Any) -> Any:
        if self._converter is None:
            return msgspec.to_builtins(obj, enc_hook=_enc_hook)
        return self._converter.unstructure(obj)

    def from_builtins(self, value: Any, cls: Any) -> Any:
        if self._converter is None:
            try:
                return msgspec.convert(value, cls, dec_hook=_dec_hook)
            except msgspec.ValidationError as e:
                raise _validation_failure(e) from e
        try:
            return self._converter.structure(value, cls)
        except Exception as e:
            raise DecodeFailure(_cattrs_message(e)) from e


def _cattrs_message(e: BaseException) -> str:
    try:
        from cattrs import transform_error

        return "; ".join(transform_error(e))
    except Exception:
        return str(e)


def _is_pydantic(cls: type) -> bool:
    mod = sys.modules.get("pydantic")
    return mod is not None and isinstance(cls, type) and issubclass(cls, mod.BaseModel)


def _is_dataclasses_json(cls: type) -> bool:
    if not dataclasses.is_dataclass(cls):
        return False
    if hasattr(cls, "dataclass_json_config"):
        return True
    mod = sys.modules.get("dataclasses_json")
    return mod is not None and issubclass(cls, mod.DataClassJsonMixin)


def codec_for(cls: Any, *, ignore_unknown_keys: bool = False) -> Codec:
    """The codec for objects of type ``cls`` (None: plain JSON values).

    Raises ``TypeError`` naming the type and the ways to make it savable when
    no adapter fits.
    """
    if cls is None:
        return MsgspecCodec(ignore_unknown_keys=ignore_unknown_keys)
    if isinstance(cls, type):
        if callable(getattr(cls, "__snapshot_state__", None)) and callable(
                getattr(cls, "__from_snapshot_state__", None)):
            return CustomCodec()
        if _is_dataclasses_json(cls):
            return DataclassesJsonCodec(ignore_unknown_keys=ignore_unknown_keys)
        if _is_pydantic(cls):
            return PydanticCodec(ignore_unknown_keys=ignore_unknown_keys)
        if hasattr(cls, "__attrs_attrs__"):
            return AttrsCodec(ignore_unknown_keys=ignore_unknown_keys)
    if _msgspec_knows(cls):
        return MsgspecCodec(ignore_unknown_keys=ignore_unknown_keys)
    name = getattr(cls, "__qualname__", repr(cls))
    raise TypeError(
        f"snapmixin cannot save objects of type {name}: make it a dataclass, an attrs class, a "
        "pydantic model or a dataclasses-json class, give it __snapshot_state__(self) and a "
        "classmethod __from_snapshot_state__(cls, value), or pass codec= to SnapStore")


def _msgspec_knows(cls: Any) -> bool:
    if isinstance(cls, type) and issubclass(cls, (enum.Enum, pathlib.PurePath)):
        return True
    try:
        msgspec.json.Decoder(cls, dec_hook=_dec_hook)
    except TypeError:
        return False
    if isinstance(cls, type) and cls.__module__ not in ("builtins",) and not (
            dataclasses.is_dataclass(cls) or issubclass(cls, (msgspec.Struct, tuple, dict))
            or cls.__module__ in ("datetime", "decimal", "uuid", "typing")):
        # msgspec accepts any class as a "custom" type routed to dec_hook; we have none for it.
        try:
            info = msgspec.inspect.type_info(cls)
        except Exception:
            return False
        return not isinstance(info, msgspec.inspect.CustomType)
    return True
