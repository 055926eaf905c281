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

Inside a dataclass, a field may also hold a pydantic model or a class with the
two ``__snapshot_state__`` methods: msgspec's hooks hand them to their own code.

Anything else is refused up front: :func:`codec_for` raises ``TypeError``
naming the type (or the part of it, such as ``$.players[].pos``) and the ways
to make it work, when the type is first met: ``SnapStore.create()`` or
``restore(cls)`` (as ``EncodeError``/``TypeError``), or the mixin's class
set-up. A codec given to ``SnapStore(codec=...)`` bypasses the choice: any
object with the methods of :class:`Codec`.

Decoding is strict: a missing required field, a wrong type and (unless
``ignore_unknown_keys``) an unknown key raise ``DecodeFailure`` with the JSON
path of the value (``$.players[2].pos.x``); the store turns it into
``DecodeError`` naming the file. pydantic and attrs classes follow their
library's rules for what counts as a wrong type (pydantic's lax mode converts
``"5"`` to ``5`` unless the model is strict). Floats that JSON cannot hold
(NaN, +-infinity) are refused when saving, with the path of the value: JSON has
no spelling for them, and writing ``null`` instead would make the snapshot fail
to restore.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import decimal
import enum
import functools
import gc
import json
import math
import pathlib
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

__all__ = [
    "AttrsCodec",
    "Codec",
    "CustomCodec",
    "DataclassesJsonCodec",
    "DecodeFailure",
    "EncodeFailure",
    "Malformed",
    "Mismatch",
    "MsgspecCodec",
    "NotAnObject",
    "PydanticCodec",
    "RawJSON",
    "SetPlan",
    "TooDeep",
    "codec_for",
    "compact",
    "convert",
    "dumps",
    "loads",
    "pretty",
    "set_plan",
    "split_object",
]

def _isclass(tp: Any) -> typing.TypeGuard[type]:
    """A real class (on Python 3.10, ``isinstance(list[int], type)`` is True as well)."""
    return isinstance(tp, type) and not isinstance(tp, types.GenericAlias)


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
    """Bytes or values that could not be decoded (turned into ``DecodeError`` by the caller).

    The codec raises one of its two subclasses, decided where the failure
    happens (never by reading a dependency's exception chain or message):
    :class:`Malformed` and :class:`Mismatch`. A user's codec may raise this
    class itself: it counts as a mismatch.
    """


class Malformed(DecodeFailure):
    """The bytes are not JSON the codec can read: bad syntax, truncated text,
    invalid UTF-8, or nesting deeper than the codec reads. That is damage
    (the store raises ``CorruptSnapshot``, which ``fallback=True`` skips)."""


class TooDeep(Malformed):
    """JSON nested deeper than the codec reads (the message names the depth)."""


class Mismatch(DecodeFailure):
    """Well-formed JSON that does not fit the type asked for: a wrong type, a
    missing field, an unknown key (the store raises ``DecodeError``)."""


_UNKNOWN_HINT = ("a field renamed or removed? declare snapshot_version= (or SnapStore(schema_version=)) "
                 "and a @migration that moves the value, since ignore_unknown_keys=True would drop it "
                 "and reset the field to its default; a typo in a hand edit? fix the file, or pass "
                 "ignore_unknown_keys=True to drop unknown keys")


def _key_seg(key: Any) -> str:
    """The JSON path step to the value of ``key`` in an object: ``.name`` or ``['some key']``."""
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]" if isinstance(key, str) else f"[{str(key)!r}]"


def _unknown_key(path: str, key: Any) -> DecodeFailure:
    where = path + _key_seg(key)
    return Mismatch(f"unknown key {key!r} at {where} ({_UNKNOWN_HINT})", where)


def _missing_key(path: str, key: Any) -> DecodeFailure:
    where = path + _key_seg(key)
    return Mismatch(f"missing required field {key!r} at {where}", where)


# ---------------------------------------------------------------------------
# Plain JSON values <-> bytes
# ---------------------------------------------------------------------------

_BUILTIN_BASES: tuple[type, ...] = (
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID,
    bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset,
)


def _has_custom_protocol(cls: Any) -> bool:
    return callable(getattr(cls, "__snapshot_state__", None)) and callable(
        getattr(cls, "__from_snapshot_state__", None))


# The real classes, kept from import time: while freezegun's freeze_time runs,
# ``datetime.datetime`` is its FakeDatetime, and building one of those here would recurse.
# (In a tuple: freezegun swaps the module attributes that name the real classes.)
_REAL_DATES = (_dt.datetime, _dt.date)


def _enc_hook(obj: Any) -> Any:
    """Turn values msgspec does not know into ones it does."""
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    real_datetime, real_date = _REAL_DATES
    if isinstance(obj, real_datetime):  # e.g. freezegun's FakeDatetime
        return real_datetime(obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second,
                             obj.microsecond, obj.tzinfo, fold=obj.fold)
    if isinstance(obj, real_date):
        return real_date(obj.year, obj.month, obj.day)
    for base in _BUILTIN_BASES:  # any other subclass of a builtin encodes as its base
        if isinstance(obj, base):
            if type(obj) is base:
                # msgspec refused a builtin value where it stands (a tuple as a dict key):
                # handing it back unchanged would loop for ever.
                raise NotImplementedError(f"a {base.__name__} cannot be written as JSON here "
                                          f"({obj!r:.60}); dict keys must be strings or numbers")
            return base(obj)
    if _has_custom_protocol(type(obj)):
        return obj.__snapshot_state__()
    if _is_pydantic(type(obj)):
        return _pydantic_dump(obj)
    raise NotImplementedError(f"objects of type {type(obj).__qualname__} cannot be written as JSON")


# Subclasses of these in an annotation are read as the base class itself (the real one,
# kept from import time: freezegun replaces the module attributes while it runs).
_AS_BASE: tuple[type, ...] = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID)


def _dec_hook(tp: Any, obj: Any) -> Any:
    cls: Any = tp
    if _isclass(cls):
        if isinstance(obj, cls):
            return obj
        if issubclass(cls, pathlib.PurePath) and isinstance(obj, str):
            return cls(obj)
        if _has_custom_protocol(cls):
            return typing.cast(Any, cls).__from_snapshot_state__(obj)
        if _is_pydantic(cls):
            return _pydantic_load(cls, obj)
        for base in _AS_BASE:  # e.g. freezegun's FakeDatetime in an annotation: read as the base
            if issubclass(cls, base):
                try:
                    return msgspec.convert(obj, base)
                except msgspec.ValidationError as e:  # a TypeError: msgspec adds the JSON path
                    raise TypeError(f"{e} (reading a {cls.__qualname__} as a {base.__name__})") from None
        if issubclass(cls, (str, int, float)) and not issubclass(cls, enum.Enum):
            for base in (str, int, float):
                if issubclass(cls, base) and isinstance(obj, base) and not isinstance(obj, bool):
                    return cls(obj)
    # A TypeError becomes a ValidationError carrying the JSON path.
    raise TypeError(f"cannot build {getattr(tp, '__qualname__', tp)!r} from "
                    f"{type(obj).__name__} {obj!r:.60}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_untyped_decoder = msgspec.json.Decoder()
_sorted_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, order="deterministic")
_msgpack = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
# A msgpack float64 whose exponent bits are all ones: NaN or +-infinity (or, rarely, the
# same bytes inside other data: every match is confirmed on the values themselves).
_NONFINITE_MSGPACK = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")


def dumps(value: Any, *, sort_sets: SetPlan | None = None) -> bytes:
    """Compact JSON bytes of a value, refusing NaN and infinity with the value's path.

    With ``sort_sets`` (the :func:`set_plan` of the value's type) sets and
    frozensets are written in sorted order, so that the file does not depend
    on ``PYTHONHASHSEED``; without it, in iteration order.
    """
    original = value
    try:
        data = None
        if sort_sets is not None:
            if sort_sets.native or sort_sets.spots is not None:
                # msgspec sorts the sets in C (and dict keys: none, or kept in Raw spots)
                spotted = value if sort_sets.spots is None else sort_sets.apply(value, sort_sets.spots)
                if spotted is not _FAILED:
                    try:
                        data = _sorted_encoder.encode(spotted)
                    except TypeError:  # elements that cannot be compared (or a bad value: met below)
                        data = None
            if data is None:
                copied = sort_sets.apply(value)
                if copied is not _FAILED:
                    value = copied
        if data is None:
            data = _encoder.encode(value)
    except RecursionError as e:
        raise _too_deep_to_write(original) from e
    except (TypeError, NotImplementedError, OverflowError, ValueError) as e:
        json_path = _locate(original, "$", lambda v: _encoder.encode(v))
        raise EncodeFailure(_encode_message(e, original, json_path), json_path) from e
    # msgspec writes NaN and +-infinity as null: only then can the state hold one.
    if b"null" in data:
        _refuse_nonfinite(original)
    return data


def _refuse_nonfinite(value: Any) -> None:
    """``EncodeFailure`` with the path of the first NaN or infinity in ``value``, if any.

    msgpack spells every float as its 8 IEEE bytes, so one C pass finds the
    candidates; ints beyond 64 bits (which msgpack cannot hold) take the
    standard library's C encoder instead, which refuses non-finite floats too.
    """
    try:
        suspect = _NONFINITE_MSGPACK.search(_msgpack.encode(value)) is not None
        plain = None
    except (OverflowError, RecursionError):  # an int beyond 64 bits; or the stack is nearly full
        plain = msgspec.to_builtins(value, enc_hook=_enc_hook)
        try:
            json.dumps(plain, allow_nan=False, check_circular=False, skipkeys=True)
            suspect = False
        except ValueError:  # a non-finite float: locate it below
            suspect = True
        except RecursionError:
            suspect = True
    if not suspect:
        return
    if plain is None:
        plain = msgspec.to_builtins(value, enc_hook=_enc_hook)
    bad = _find_nonfinite(plain, "$")
    if bad is not None:
        raise EncodeFailure(
            f"{bad[1]!r} at {bad[0]} cannot be written as JSON (JSON has no NaN or infinity); "
            "store None or a string instead", bad[0])


def _encode_message(e: BaseException, value: Any, json_path: str | None) -> str:
    where = f" at {json_path}" if json_path else ""
    return f"cannot encode the state{where}: {e}"


def _children(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(_key_seg(k), v) for k, v in value.items()] + [(f"<key {k!r}>", k) for k in value]
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
    """Find the deepest path below ``value`` whose value ``check`` still refuses (no recursion)."""
    found = None
    while True:
        for suffix, child in _children(value):
            try:
                check(child)
            except Exception:
                value, path = child, path + suffix
                found = path
                break
        else:
            return found


def _find_nonfinite(value: Any, path: str) -> tuple[str, float] | None:
    stack = [(path, value)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return p, v
        elif isinstance(v, dict):
            stack.extend((p + _key_seg(k), x) for k, x in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{p}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


# ---------------------------------------------------------------------------
# Nesting depth: msgspec reads and writes as deep as the interpreter's recursion
# limit allows (about 1,000 levels, fewer from deep in a call stack). That is the
# codec's limit; beyond it the failure names the depth (measured without recursion).
# ---------------------------------------------------------------------------

#: Depths are measured up to this many levels (a value that contains itself has no depth).
DEPTH_CAP = 100_000
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)


def _value_depth(value: Any, cap: int = DEPTH_CAP) -> int:
    """How many containers (or objects with fields) deep ``value`` nests, up to ``cap``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        kids = _children(v)
        if kids or isinstance(v, (dict, list, tuple, set, frozenset)):
            if d > deepest:
                deepest = d
                if d >= cap:
                    return cap
            stack.extend((child, d + 1) for _, child in kids)
    return deepest


def _json_depth(data: bytes | memoryview, cap: int = DEPTH_CAP) -> int:
    """How many arrays and objects deep JSON text nests, up to ``cap`` (strings skipped)."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(data):
        c = m.group()[0]
        if c in b"[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest >= cap:
                    break
        elif c in b"]}":
            depth -= 1
    return deepest


def _levels(n: int) -> str:
    return f"more than {DEPTH_CAP} levels" if n >= DEPTH_CAP else f"{n} levels"


def _limit_note() -> str:
    return f"the JSON library goes about {sys.getrecursionlimit()} levels deep at most"


def _too_deep(data: bytes | memoryview) -> TooDeep:
    return TooDeep(f"JSON nested too deeply to read: {_levels(_json_depth(data))} ({_limit_note()})")


def _too_deep_to_write(value: Any) -> EncodeFailure:
    n = _value_depth(value)
    why = ", or a value contains itself" if n >= DEPTH_CAP else ""
    return EncodeFailure(f"cannot encode the state: nested too deeply: {_levels(n)}{why} ({_limit_note()})")


def loads(data: bytes | memoryview) -> Any:
    """Plain JSON values from bytes. Raises :class:`Malformed` for malformed or too deep JSON."""
    try:
        return _untyped_decoder.decode(data)
    except RecursionError:
        raise _too_deep(data) from None
    except Exception as e:  # untyped: whatever msgspec refuses is malformed input
        raise Malformed(f"not valid JSON: {e}") from e


def _malformed(e: BaseException, data: bytes | memoryview) -> Malformed:
    """The failure for an error other than ``ValidationError`` from decoding ``data``."""
    if isinstance(e, RecursionError):
        return _too_deep(data)
    return Malformed(f"not valid JSON: {e}")


class NotAnObject(Mismatch):
    """Valid JSON whose top level is not an object."""


#: A member's JSON text, as :func:`split_object` returns it (``bytes(raw)`` gives the bytes).
RawJSON = msgspec.Raw
_split_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])


def split_object(data: bytes | memoryview) -> dict[str, RawJSON]:
    """The members of a top-level JSON object, each as its raw JSON text (not decoded).

    The whole text is checked for syntax. Raises :class:`NotAnObject` for valid
    JSON that is not an object, :class:`Malformed` for malformed or too deep JSON.
    The members' text is not checked for UTF-8: decode it with :func:`loads`.
    """
    try:
        return _split_decoder.decode(data)
    except msgspec.ValidationError as e:
        raise NotAnObject(f"not a JSON object: {e}") from e
    except Exception as e:  # anything else msgspec raises while decoding: malformed input
        raise _malformed(e, data) from e


def compact(text: bytes | memoryview) -> bytes:
    """JSON text with all insignificant whitespace removed."""
    return msgspec.json.format(text, indent=-1)


def pretty(compact: bytes, level: int = 0) -> bytes:
    """Indent compact JSON by 2 spaces per level, as if it stood ``level`` levels deep.

    JSON strings cannot hold a raw newline, so every newline of the formatted
    text is structure and can be re-indented with a plain replace.
    """
    try:
        text = msgspec.json.format(compact, indent=2)
    except RecursionError as e:
        raise EncodeFailure(f"cannot write the snapshot: nested too deeply: "
                            f"{_levels(_json_depth(compact))} ({_limit_note()})") from e
    if level:
        text = text.replace(b"\n", b"\n" + b"  " * level)
    return text


# ---------------------------------------------------------------------------
# msgspec validation errors -> DecodeFailure with a precise JSON path
# ---------------------------------------------------------------------------

_PATH_RE = re.compile(r" - at `(\$[^`]*)`$")
_KEY_PATH_RE = re.compile(r" - at `key` in `(\$[^`]*)`$")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(.*)`$", re.S)
_MISSING_RE = re.compile(r"^Object missing required field `(.*)`$", re.S)
_SEG_RE = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _validation_failure(e: Exception, value: Any = None,
                        attempt: Callable[[Any], str | None] | None = None) -> DecodeFailure:
    """A ``DecodeFailure`` from a msgspec ``ValidationError``.

    msgspec writes the keys of dicts as ``[...]``; when the decoded ``value``
    and a way to retry the conversion (``attempt``: the error text, or None)
    are given, the real keys are found by bisection (error path only).
    """
    text = str(e)
    is_key = False
    m = _PATH_RE.search(text)
    if m is None:
        m = _KEY_PATH_RE.search(text)
        is_key = m is not None
    raw_path = (m.group(1) + ("[...]" if is_key else "")) if m else "$"
    msg = text[: m.start()] if m else text
    json_path = raw_path
    if "[...]" in raw_path and attempt is not None:
        try:
            json_path = _resolve_keys(value, raw_path, text, attempt) or raw_path
        except RecursionError:  # a path deeper than the retries can rebuild: msgspec's own path
            json_path = raw_path
    if is_key:
        return Mismatch(f"invalid key: {msg} at {json_path}", json_path)
    mu = _UNKNOWN_RE.match(msg)
    if mu:
        return _unknown_key(json_path, mu.group(1))
    mm = _MISSING_RE.match(msg)
    if mm:
        return _missing_key(json_path, mm.group(1))
    return Mismatch(f"{msg} at {json_path}", json_path)


def _replace_at(root: Any, access: list[Any], new: Any) -> Any:
    if not access:
        return new
    out = copy.copy(root)
    out[access[0]] = _replace_at(root[access[0]], access[1:], new)
    return out


def _resolve_keys(root: Any, raw_path: str, text: str,
                  attempt: Callable[[Any], str | None]) -> str | None:
    """Replace each ``[...]`` of ``raw_path`` by the key whose value fails the same way."""
    if attempt(root) != text:
        return None  # the retry does not reproduce the error: leave the path as msgspec gave it
    out = "$"
    access: list[Any] = []
    cur = root
    for m in _SEG_RE.finditer(raw_path[1:]):
        name, index = m.group(1), m.group(2)
        if name is not None:
            if not isinstance(cur, dict) or name not in cur:
                return None
            access.append(name)
            cur = cur[name]
            out += _key_seg(name)
        elif index != "...":
            i = int(index)
            if not isinstance(cur, list) or i >= len(cur):
                return None
            access.append(i)
            cur = cur[i]
            out += f"[{i}]"
        else:
            if not isinstance(cur, dict) or not cur:
                return None
            keys = list(cur)
            while len(keys) > 1:
                half = keys[: len(keys) // 2]
                trial = _replace_at(root, access, {k: cur[k] for k in half})
                keys = half if attempt(trial) == text else keys[len(half):]
            key = keys[0]
            root = _replace_at(root, access, {key: cur[key]})
            access.append(key)
            cur = cur[key]
            out += _key_seg(key)
    return out


# ---------------------------------------------------------------------------
# Codecs
# ---------------------------------------------------------------------------


class Codec:
    """How one kind of object becomes JSON and comes back.

    Subclasses implement :meth:`to_builtins` and :meth:`from_builtins` (plain
    JSON values: dict, list, str, int, float, bool, None); :meth:`encode`,
    :meth:`decode` and :meth:`convert` have working defaults built on them.
    Raise any exception for a bad value: the store wraps it in
    ``EncodeError``/``DecodeError`` naming the file.
    """

    #: Whether keys of the input that the type does not know are dropped rather than refused.
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


def convert(codec: Any, value: Any, cls: Any) -> Any:
    """``codec.convert(value, cls)``, for a user's codec without ``convert`` too (it gets the JSON bytes)."""
    if cls is None:
        return value
    method = getattr(codec, "convert", None)
    if method is not None:
        return method(value, cls)
    return codec.decode(dumps(value), cls)


def _check_no_unknown_keys(given: Any, kept: Any, path: str) -> None:
    """Refuse keys that decoding silently dropped: compare the input with a re-encoding.

    Depth first, in the input's order (the first unknown key met is the one
    reported), without recursion: a stack of iterators over the pairs to compare.
    """
    def pairs_of(g: Any, k: Any, p: str) -> typing.Iterator[tuple[Any, Any, str]]:
        if isinstance(g, dict) and isinstance(k, dict):
            for key, sub in g.items():
                if key not in k:
                    raise _unknown_key(p, key)
                yield sub, k[key], p + _key_seg(key)
        elif isinstance(g, list) and isinstance(k, (list, tuple)) and len(g) == len(k):
            for i, (a, b) in enumerate(zip(g, k, strict=True)):
                yield a, b, f"{p}[{i}]"

    stack = [pairs_of(given, kept, path)]
    while stack:
        step = next(stack[-1], None)
        if step is None:
            stack.pop()
        else:
            stack.append(pairs_of(*step))


@dataclasses.dataclass
class _Plan:
    decoder: msgspec.json.Decoder[Any]
    mirror: Any  # the type decoded into, when it is a strict mirror of the target type
    recheck: bool  # a part could not be mirrored: compare the input with a re-encoding


class MsgspecCodec(Codec):
    """The default: msgspec for dataclasses, Structs, TypedDicts, NamedTuples and plain values.

    Unknown keys are refused by decoding into a mirror of each dataclass as a
    msgspec Struct with ``forbid_unknown_fields``, then converting to the
    dataclass (both steps in C). Parts that cannot be mirrored (TypedDicts,
    generic dataclasses) are checked by comparing the input with a re-encoding
    of the result. msgspec Structs keep their own ``forbid_unknown_fields`` setting.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys
        self._plans: dict[Any, _Plan] = {}

    def to_builtins(self, obj: Any) -> Any:
        return msgspec.to_builtins(obj, enc_hook=_enc_hook)

    def encode(self, obj: Any) -> bytes:
        return dumps(obj, sort_sets=set_plan(type(obj)))

    def _plan(self, cls: Any) -> _Plan:
        plan = self._plans.get(cls)
        if plan is None:
            mirror, recheck = (None, False) if self.ignore_unknown_keys else _strict_mirror(cls)
            target = cls if mirror is None else mirror
            plan = _Plan(msgspec.json.Decoder(target, dec_hook=_dec_hook), mirror, recheck)
            self._plans[cls] = plan
        return plan

    def decode(self, data: bytes | memoryview, cls: Any) -> Any:
        if cls is None:
            return loads(data)
        plan = self._plan(cls)
        try:
            value = plan.decoder.decode(data)
        except msgspec.ValidationError as e:
            # Typed decoding stops at the first mismatch: the text after it may still be
            # damaged, so parse it all first (loads raises Malformed), and only then call
            # it a mismatch. The error path: find the keys msgspec writes as [...] by
            # retrying on parts.
            raise _validation_failure(e, loads(data), _json_attempt(plan.decoder)) from e
        except msgspec.DecodeError as e:  # any other decoding error: malformed input
            raise _malformed(e, data) from e
        except (UnicodeDecodeError, RecursionError) as e:  # what older msgspec releases raised
            raise _malformed(e, data) from e
        if plan.mirror is not None:
            value = self._from_mirror(value, cls)
        if plan.recheck:
            _check_no_unknown_keys(loads(data), self.to_builtins(value), "$")
        return value

    def _from_mirror(self, value: Any, cls: Any) -> Any:
        try:
            return msgspec.convert(value, cls, from_attributes=True, dec_hook=_dec_hook)
        except msgspec.ValidationError as e:  # e.g. a __post_init__ refusing a value
            raise _validation_failure(e) from e

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return self.convert(value, cls)

    def convert(self, value: Any, cls: Any) -> Any:
        """Plain values (a migrated state) to ``cls``, by way of JSON text.

        ``msgspec.convert`` reads plain values by Python rules, not JSON ones
        (it refuses the string keys JSON has for ``dict[int, ...]``), so the
        value is encoded and decoded like a file: exactly the same checks.
        """
        if cls is None:
            return value
        return self.decode(_json_of(value), cls)


def _json_of(value: Any) -> bytes:
    """JSON bytes of a plain value that should be JSON already (a migration's output)."""
    try:
        return dumps(value)
    except EncodeFailure as e:
        raise Mismatch(f"the state is not plain JSON values ({e.message}): did a migration "
                            "put an object in it?", e.json_path) from e


def _json_attempt(decoder: msgspec.json.Decoder[Any]) -> Callable[[Any], str | None]:
    """Retry a decode on a plain value: its error text, or None."""
    def attempt(value: Any) -> str | None:
        try:
            decoder.decode(_encoder.encode(value))
        except msgspec.ValidationError as e:
            return str(e)
        return None
    return attempt


def _strict_mirror(tp: Any, *, for_cattrs: bool = False, forbid: bool = True) -> tuple[Any, bool]:
    """``tp`` with every dataclass (and attrs class) replaced by a Struct refusing unknown fields.

    Returns ``(mirror, partial)``: ``mirror`` is None when there is nothing to
    mirror or the mirror cannot be built; ``partial`` says that some part
    (a TypedDict, a generic dataclass, or the whole type on failure) is not
    covered, so unknown keys there need another check.

    ``for_cattrs`` builds a validation-only mirror of the JSON that cattrs
    writes (``__init__`` fields only, bytes as strings, unknown classes as Any);
    ``forbid=False`` one that checks types only.
    """
    m = _Mirrorer(for_cattrs, forbid)
    try:
        out, changed = m.build(tp)
        if not changed:
            return None, m.partial
        msgspec.json.Decoder(out, dec_hook=_dec_hook)  # resolves every Struct now: fail here, not later
    except Exception:
        return None, True
    return out, m.partial


# Types that hold no keys to check (a Struct keeps its own forbid_unknown_fields setting).
_SCALARS: tuple[type, ...] = (
    int, float, str, bool, type(None), _dt.datetime, _dt.date, _dt.time, _dt.timedelta,
    uuid.UUID, decimal.Decimal, enum.Enum, msgspec.Struct, msgspec.Raw, pathlib.PurePath,
    bytes, bytearray, memoryview,
)
_BARE_CONTAINERS = (list, tuple, dict, set, frozenset)


class _Mirrorer:
    def __init__(self, for_cattrs: bool, forbid: bool) -> None:
        self.for_cattrs = for_cattrs
        self.forbid = forbid
        self.done: dict[Any, Any] = {}
        self.partial = False

    def _fields(self, tp: type) -> list[tuple[str, Any]] | None:
        """``(name, default spec)`` of the keys a class's JSON holds, or None if not a class of fields."""
        if dataclasses.is_dataclass(tp):
            out: list[tuple[str, Any]] = []
            for f in dataclasses.fields(tp):
                if self.for_cattrs and not f.init:
                    continue
                if f.default is not dataclasses.MISSING:
                    out.append((f.name, None if self.for_cattrs else f.default))
                elif f.default_factory is not dataclasses.MISSING:
                    out.append((f.name, None if self.for_cattrs else
                                msgspec.field(default_factory=f.default_factory)))
                else:
                    out.append((f.name, dataclasses.MISSING))
            return out
        attrs_fields = getattr(tp, "__attrs_attrs__", None)
        if attrs_fields is not None and self.for_cattrs:
            return [(a.name, dataclasses.MISSING if _attrs_required(a) else None)
                    for a in attrs_fields if a.init]
        return None

    def build(self, tp: Any) -> tuple[Any, bool]:
        if tp is Any or tp is object:
            return tp, False
        if _isclass(tp):
            if tp in self.done:
                return self.done[tp], True
            spec = self._fields(tp)
            if spec is not None:
                return self._build_class(tp, spec), True
            if self.for_cattrs and issubclass(tp, (bytes, bytearray)):
                return str, True  # cattrs writes bytes as base85 text
            if tp in _BARE_CONTAINERS or issubclass(tp, _SCALARS):
                return tp, False
            if _has_custom_protocol(tp) or _is_pydantic(tp):
                # Handed to the class's own code by the hooks, which decides what it accepts.
                return (Any, True) if self.for_cattrs else (tp, False)
            # A TypedDict, a NamedTuple...: not mirrored, so checked by re-encoding.
            self.partial = True
            return (Any, True) if self.for_cattrs else (tp, False)
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is None or not args:
            return tp, False
        if isinstance(origin, type) and (dataclasses.is_dataclass(origin)
                                         or hasattr(origin, "__attrs_attrs__")):
            self.partial = True  # a generic dataclass: not mirrored
            return (Any, True) if self.for_cattrs else (tp, False)
        if origin is typing.Annotated:
            inner, changed = self.build(args[0])
            if not changed:
                return tp, False
            return typing.Annotated[(inner,) + tuple(tp.__metadata__)], True  # noqa: RUF005 - 3.10
        if origin is typing.Literal:
            return tp, False
        new_args = []
        changed = False
        for a in args:
            if a is Ellipsis:
                new_args.append(a)
                continue
            sub, c = self.build(a)
            new_args.append(sub)
            changed = changed or c
        if not changed:
            return tp, False
        if origin is typing.Union or origin is types.UnionType:
            return typing.Union[tuple(new_args)], True  # noqa: UP007 - built at run time
        return origin[tuple(new_args)], True

    def _build_class(self, tp: type, spec: list[tuple[str, Any]]) -> Any:
        fields: list[Any] = [(name, Any) if default is dataclasses.MISSING else (name, Any, default)
                             for name, default in spec]
        # msgspec wants required fields first; keyword-only Structs accept any order.
        struct = msgspec.defstruct(tp.__name__, fields, kw_only=True, forbid_unknown_fields=self.forbid)
        self.done[tp] = struct  # registered before its fields: recursive classes refer to it
        hints = typing.get_type_hints(tp, include_extras=True)
        # The field types are set after the Struct exists, so that a recursive class can
        # name itself; msgspec reads them when the first decoder for the Struct is built.
        annotations = struct.__annotations__
        for name, _ in spec:
            annotations[name] = self.build(hints.get(name, Any))[0]
        return struct


def _attrs_required(a: Any) -> bool:
    try:
        import attrs
    except ImportError:  # pragma: no cover - an attrs class without attrs
        return True
    return a.default is attrs.NOTHING


class CustomCodec(Codec):
    """For classes defining ``__snapshot_state__(self)`` and ``__from_snapshot_state__(cls, value)``."""

    ignore_unknown_keys = True  # the class's own method decides what it accepts

    def to_builtins(self, obj: Any) -> Any:
        return obj.__snapshot_state__()

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls.__from_snapshot_state__(value)


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
            json_path = _locate(obj, "$", lambda v: _dj_encodable(v))
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
            raise Mismatch(f"nested too deeply to check: {_levels(_value_depth(value))} "
                           f"({_limit_note()})", "$") from None
        try:
            return cls.from_dict(value)
        except Exception as e:  # its own errors (UndefinedParameterError...) too
            raise Mismatch(f"dataclasses-json cannot build {cls.__qualname__}: "
                                f"{type(e).__name__}: {e} at $", "$") from e


def _dj_encodable(v: Any) -> None:
    import json

    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict) and dataclasses.is_dataclass(v):
        to_dict(encode_json=True)
    else:
        from dataclasses_json.core import _ExtendedEncoder

        json.dumps(v, cls=_ExtendedEncoder)


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
                    _dj_check(v, args[1], path + _key_seg(k), strict_keys, busy)
            return
        return
    if not _isclass(tp):
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
                raise _missing_key(path, key)
            continue
        if getattr(ov, "decoder", None) is not None:
            continue  # the user's decoder decides
        sub = value[key]
        if sub is None and f.default is None:
            continue  # `x: int = None`: what dataclasses-json wrote, it reads back
        _dj_check(sub, hints.get(f.name, Any), path + _key_seg(key), strict_keys, busy)
    if strict_keys and undefined not in ("include", "exclude"):  # the class's own choice
        for key in value:
            if key not in known:
                raise _unknown_key(path, key)


def _pydantic_dump(obj: Any) -> Any:
    return obj.model_dump(mode="json", by_alias=True)


def _pydantic_load(cls: Any, value: Any) -> Any:
    if _pydantic_validates_by_name():
        return cls.model_validate(value, by_alias=True, by_name=True)  # aliases or field names
    return cls.model_validate(value)


@functools.lru_cache(maxsize=1)
def _pydantic_validates_by_name() -> bool:
    """Whether ``model_validate`` takes ``by_name`` (pydantic >= 2.11)."""
    import inspect

    return "by_name" in inspect.signature(sys.modules["pydantic"].BaseModel.model_validate).parameters


def _is_catch_all(hint: Any) -> bool:
    try:
        from dataclasses_json import CatchAll
    except ImportError:  # pragma: no cover
        return False
    return bool(hint == CatchAll)


class PydanticCodec(Codec):
    """For pydantic v2 models: ``model_dump(mode="json", by_alias=True)`` and ``model_validate``.

    The file holds the keys the model reads (its aliases, e.g. from an
    ``alias_generator``): without ``by_alias`` a model with aliases could not
    read back its own snapshot. pydantic's own rules decide what a wrong type
    is (lax mode converts ``"5"`` to ``5`` unless the model is strict); unknown
    keys are refused unless the model allows extra fields (``extra="allow"``)
    or ``ignore_unknown_keys``.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys

    def to_builtins(self, obj: Any) -> Any:
        return _pydantic_dump(obj)

    def from_builtins(self, value: Any, cls: Any) -> Any:
        try:
            return _pydantic_load(cls, value)
        except Exception as e:
            errors = getattr(e, "errors", None)
            if callable(errors):
                first = errors()[0]
                loc = "$" + "".join(f"[{p}]" if isinstance(p, int) else _key_seg(p) for p in first["loc"])
                raise Mismatch(f"{first['msg']} at {loc}", loc) from e
            raise


class AttrsCodec(Codec):
    """For attrs classes: cattrs' JSON converter when installed, msgspec otherwise.

    cattrs converts loosely (``int(1.5)``); so the JSON is first checked, with
    JSON paths, against a mirror of the classes built from the keys cattrs
    writes (``__init__`` fields). Parts cattrs handles with hooks of its own
    are left to it.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys
        self._mirrors: dict[Any, tuple[msgspec.json.Decoder[Any] | None, bool]] = {}
        self._fallback = MsgspecCodec(ignore_unknown_keys=True)  # unknown keys: checked in convert()
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

    def _check(self, value: Any, cls: Any) -> bool:
        """Strict check of the JSON's types (and keys); returns whether keys were checked too."""
        plan = self._mirrors.get(cls)
        if plan is None:
            mirror, partial = _strict_mirror(cls, for_cattrs=True, forbid=not self.ignore_unknown_keys)
            decoder = None if mirror is None else msgspec.json.Decoder(mirror, dec_hook=_dec_hook)
            plan = self._mirrors[cls] = (decoder, partial)
        decoder, partial = plan
        if decoder is None:
            return False
        try:
            decoder.decode(_json_of(value))
        except msgspec.ValidationError as e:
            raise _validation_failure(e, value, _json_attempt(decoder)) from e
        return not partial

    def from_builtins(self, value: Any, cls: Any) -> Any:
        if self._converter is None:
            return self._fallback.convert(value, cls)
        try:
            return self._converter.structure(value, cls)
        except Exception as e:
            raise _cattrs_failure(e) from e

    def convert(self, value: Any, cls: Any) -> Any:
        keys_checked = self._converter is not None and self._check(value, cls)
        obj = self.from_builtins(value, cls)
        if not self.ignore_unknown_keys and not keys_checked:
            _check_no_unknown_keys(value, self.to_builtins(obj), "$")
        return obj


_CATTRS_PATH_RE = re.compile(r" @ (\$\S*)$")


def _cattrs_failure(e: BaseException) -> DecodeFailure:
    try:
        from cattrs import transform_error

        lines = transform_error(e)
    except Exception:
        lines = [str(e)]
    first = lines[0] if lines else str(e)
    m = _CATTRS_PATH_RE.search(first)
    json_path = re.sub(r"\['([A-Za-z_][A-Za-z0-9_]*)'\]", r".\1", m.group(1)) if m else "$"
    msg = first[: m.start()] if m else first
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return Mismatch(f"{msg} at {json_path}{more}", json_path)


def _is_pydantic(cls: Any) -> bool:
    mod = sys.modules.get("pydantic")
    return mod is not None and _isclass(cls) and issubclass(cls, mod.BaseModel)


def _is_dataclasses_json(cls: type) -> bool:
    if not dataclasses.is_dataclass(cls):
        return False
    if hasattr(cls, "dataclass_json_config"):
        return True
    mod = sys.modules.get("dataclasses_json")
    return mod is not None and issubclass(cls, mod.DataClassJsonMixin)


_WAYS = ("make it a dataclass, an attrs class, a pydantic model or a dataclasses-json class; "
         "or give it __snapshot_state__(self) and a classmethod __from_snapshot_state__(cls, value); "
         "or pass codec= to SnapStore")


def codec_for(cls: Any, *, ignore_unknown_keys: bool = False) -> Codec:
    """The codec for objects of type ``cls`` (None: plain JSON values).

    Raises ``TypeError`` naming the type (and the part of it no adapter can
    handle, for a dataclass holding one) and the ways to make it savable.
    """
    if cls is None:
        return MsgspecCodec(ignore_unknown_keys=ignore_unknown_keys)
    if _isclass(cls):
        if _has_custom_protocol(cls):
            return CustomCodec()
        if _is_dataclasses_json(cls):
            return DataclassesJsonCodec(ignore_unknown_keys=ignore_unknown_keys)
        if _is_pydantic(cls):
            return PydanticCodec(ignore_unknown_keys=ignore_unknown_keys)
        if hasattr(cls, "__attrs_attrs__"):
            return AttrsCodec(ignore_unknown_keys=ignore_unknown_keys)
    name = getattr(cls, "__qualname__", None) or repr(cls)
    try:
        refusal = _msgspec_refusal(cls)
    except NameError as e:
        raise TypeError(
            f"snapmixin cannot resolve the type annotations of {name}: {e}. With `from __future__ "
            "import annotations` they are strings, looked up in the module's globals: define the "
            "classes they name at module level") from e
    if refusal is not None:
        raise TypeError(f"snapmixin cannot save or restore objects of type {name}{refusal}: {_WAYS}")
    key_at = _bad_dict_key(cls)
    if key_at is not None:
        raise TypeError(
            f"snapmixin cannot save or restore objects of type {name}: the dict at {key_at} has keys "
            "JSON cannot hold (a JSON object's keys are strings: use keys of type str, int, float, "
            "an Enum, a date or time, UUID or Decimal; or store a list of [key, value] pairs)")
    bad = _unsupported_part(cls)
    if bad is not None:
        where, part = bad
        if where == "$":
            raise TypeError(f"snapmixin cannot save or restore objects of type {name}: {_WAYS}")
        raise TypeError(
            f"snapmixin cannot save or restore objects of type {name}: its part {where} is a "
            f"{getattr(part, '__qualname__', part)}, which no adapter handles: for that class, {_WAYS}")
    return MsgspecCodec(ignore_unknown_keys=ignore_unknown_keys)


def _msgspec_refusal(cls: Any) -> str | None:
    """None when msgspec (with the hooks) can save and rebuild ``cls``; else why not (or "")."""
    if _isclass(cls) and issubclass(cls, (enum.Enum, pathlib.PurePath)):
        return None
    try:
        msgspec.json.Decoder(cls, dec_hook=_dec_hook)
    except TypeError as e:
        return f" ({e})"
    if _isclass(cls) and cls.__module__ not in ("builtins",) and not (
            dataclasses.is_dataclass(cls) or issubclass(cls, (msgspec.Struct, tuple, dict))
            or cls.__module__ in ("datetime", "decimal", "uuid", "typing")):
        # msgspec accepts any class as a "custom" type routed to dec_hook; we have none for it.
        try:
            info = msgspec.inspect.type_info(cls)
        except Exception:
            return ""
        return "" if isinstance(info, msgspec.inspect.CustomType) else None
    return None


def _hooks_handle(cls: type) -> bool:
    """Whether :func:`_enc_hook` and :func:`_dec_hook` can save and rebuild ``cls``."""
    return (issubclass(cls, (pathlib.PurePath, *_AS_BASE)) or _has_custom_protocol(cls)
            or _is_pydantic(cls) or (issubclass(cls, (str, int, float)) and not issubclass(cls, enum.Enum)))


def _type_parts(cls: Any) -> typing.Iterator[tuple[str, Any]]:
    """Every part of the msgspec type info of ``cls``, with its JSON path (each once; none if unknown)."""
    try:
        info = msgspec.inspect.type_info(cls)
    except Exception:
        return
    ins = msgspec.inspect
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("$", info)]
    while stack:
        path, t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        yield path, t
        if isinstance(t, (ins.StructType, ins.DataclassType, ins.TypedDictType, ins.NamedTupleType)):
            stack.extend((path + _key_seg(f.encode_name), f.type) for f in reversed(t.fields))
        elif isinstance(t, (ins.ListType, ins.SetType, ins.FrozenSetType, ins.VarTupleType)):
            stack.append((path + "[]", t.item_type))
        elif isinstance(t, ins.TupleType):
            stack.extend((f"{path}[{i}]", x) for i, x in reversed(list(enumerate(t.item_types))))
        elif isinstance(t, ins.DictType):
            stack.extend([(path + "[]", t.value_type), (path + "<key>", t.key_type)])
        elif isinstance(t, ins.UnionType):
            stack.extend((path, x) for x in t.types)
        elif isinstance(t, ins.Metadata):
            stack.append((path, t.type))


def _unsupported_part(cls: Any) -> tuple[str, Any] | None:
    """The JSON path and type of the first part of ``cls`` that no hook handles, if any."""
    for path, t in _type_parts(cls):
        if isinstance(t, msgspec.inspect.CustomType) and not _hooks_handle(t.cls):
            return path, t.cls
    return None


def _key_types_ok(t: Any) -> bool:
    """Whether a dict key of msgspec type info ``t`` can be a JSON object key (a string or a number)."""
    ins = msgspec.inspect
    if isinstance(t, ins.Metadata):
        return _key_types_ok(t.type)
    if isinstance(t, ins.UnionType):
        return all(_key_types_ok(x) for x in t.types)
    return not isinstance(t, (
        ins.BoolType, ins.NoneType, ins.TupleType, ins.VarTupleType, ins.ListType, ins.SetType,
        ins.FrozenSetType, ins.DictType, ins.StructType, ins.DataclassType, ins.TypedDictType,
        ins.NamedTupleType))


def _bad_dict_key(cls: Any) -> str | None:
    """The JSON path of the first dict in ``cls`` whose keys JSON cannot hold, if any."""
    for path, t in _type_parts(cls):
        if isinstance(t, msgspec.inspect.DictType) and not _key_types_ok(t.key_type):
            return path
    return None


# ---------------------------------------------------------------------------
# Sets in sorted order. The type says where sets can be: a type with sets and no
# dict is encoded by msgspec with order="deterministic" (sets sorted in C; it would
# sort dict keys too, so not with dicts); otherwise the sets, and only the objects
# and containers on the way to them, are replaced by sorted copies before encoding.
# Untyped parts (Any, a plain-values state) are written as they are.
# ---------------------------------------------------------------------------

_MISSING = object()


class _Node:
    """Where sets are below one part of a type: ``kind`` says how to reach them."""

    __slots__ = ("cls", "item", "kind", "subs")

    def __init__(self, kind: str, cls: Any = None) -> None:
        self.kind = kind  # set, obj, keys (TypedDict), seq, tuple, dict, union
        self.cls = cls
        self.item: _Node | None = None
        self.subs: dict[Any, _Node] = {}


_FAILED = object()


class SetPlan:
    """How to write the sets of values of one type in sorted order (see :func:`set_plan`).

    ``native``: the type holds no dict, so msgspec's ``order="deterministic"``
    does it all. ``spots``: the dicts sit at fixed places (not inside lists,
    sets or dicts): those are encoded as they are (``msgspec.Raw``, their own
    sets sorted here) and the rest is left to msgspec's order. Otherwise
    ``root``: the sets, and what holds them, are replaced by sorted copies.
    """

    def __init__(self, root: _Node, native: bool, spots: _Node | None) -> None:
        self.root = root
        self.native = native
        self.spots = spots

    def apply(self, value: Any, tree: _Node | None = None) -> Any:
        """``value`` rewritten along ``tree`` (default: sets to sorted lists); ``_FAILED`` if it cannot be."""
        was_enabled = gc.isenabled()
        gc.disable()  # many short-lived copies: collecting while they are made only costs time
        try:
            return _apply(value, self.root if tree is None else tree)
        except Exception:  # e.g. a class object.__new__ cannot copy
            return _FAILED
        finally:
            if was_enabled:
                gc.enable()


def _sorted_items(items: list[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:  # not comparable (None and ints, Enums...): by their JSON text, still stable
        try:
            return sorted(items, key=_encoder.encode)
        except Exception:
            return items


_SLOTS: dict[type, tuple[str, ...]] = {}


def _slots_of(cls: type) -> tuple[str, ...]:
    """The slots to copy for a shallow copy of an instance of ``cls`` (not the mixin's own)."""
    got = _SLOTS.get(cls)
    if got is None:
        names: list[str] = []
        for klass in cls.__mro__:
            if klass.__module__.startswith("snapmixin"):
                continue  # the mixin's private state: not encoded, not copied
            slots = klass.__dict__.get("__slots__", ())
            names.extend(n for n in ((slots,) if isinstance(slots, str) else slots)
                         if n not in ("__dict__", "__weakref__"))
        got = _SLOTS[cls] = tuple(names)
    return got


def _copy_with(obj: Any, changes: dict[str, Any]) -> Any:
    """A shallow copy of ``obj`` (no ``__init__`` run) with some attributes replaced, to encode."""
    if isinstance(obj, msgspec.Struct):
        return msgspec.structs.replace(obj, **changes)
    cls = type(obj)
    new = object.__new__(cls)
    d = getattr(obj, "__dict__", None)
    if d is not None:
        new.__dict__.update(d)
    for slot in _slots_of(cls):
        try:
            object.__setattr__(new, slot, object.__getattribute__(obj, slot))
        except AttributeError:
            pass
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


def _apply(v: Any, n: _Node) -> Any:
    kind = n.kind
    if kind == "raw":  # a dict (or an untyped part) at a fixed place: written as it is
        return msgspec.Raw(_encoder.encode(_apply(v, n.item) if n.item is not None else v))
    if kind == "set":
        if not isinstance(v, (set, frozenset)):
            return v
        item = n.item
        return _sorted_items([_apply(x, item) for x in v] if item is not None else list(v))
    if kind == "obj":
        if not isinstance(v, n.cls):
            return v
        changes = {}
        for name, sub in n.subs.items():
            old = getattr(v, name, _MISSING)
            if old is not _MISSING:
                new = _apply(old, sub)
                if new is not old:
                    changes[name] = new
        return _copy_with(v, changes) if changes else v
    if kind in ("seq", "tuple"):
        if not isinstance(v, (list, tuple)):
            return v
        out = None
        pairs = (enumerate(v) if kind == "seq"
                 else ((i, v[i]) for i in n.subs if i < len(v)))
        for i, x in pairs:
            part = n.item if kind == "seq" else n.subs[i]
            if part is None:  # pragma: no cover - a seq node always has its item
                continue
            new = _apply(x, part)
            if new is not x:
                if out is None:
                    out = list(v)
                out[i] = new
        return out if out is not None else v
    if kind in ("dict", "keys"):
        if not isinstance(v, dict):
            return v
        outd = None
        for key, x in v.items():
            value_part = n.item if kind == "dict" else n.subs.get(key)
            if value_part is None:
                continue
            new = _apply(x, value_part)
            if new is not x:
                if outd is None:
                    outd = dict(v)
                outd[key] = new
        return outd if outd is not None else v
    for sub in n.subs.values():  # a union: the first member the value is an instance of
        if _fits(v, sub):
            return _apply(v, sub)
    return v


def _fits(v: Any, n: _Node) -> bool:
    if n.kind == "raw":
        return n.cls is None or isinstance(v, n.cls)
    if n.kind == "set":
        return isinstance(v, (set, frozenset))
    if n.kind == "obj":
        return isinstance(v, n.cls)
    if n.kind in ("seq", "tuple"):
        return isinstance(v, (list, tuple))
    if n.kind in ("dict", "keys"):
        return isinstance(v, dict)
    return any(_fits(v, s) for s in n.subs.values())


def _type_kids(t: Any) -> list[tuple[str, Any, Any]]:
    """``(how, key, child)`` for each part of a msgspec type info node."""
    ins = msgspec.inspect
    if isinstance(t, (ins.StructType, ins.DataclassType)):
        return [("obj", f.name, f.type) for f in t.fields]
    if isinstance(t, ins.TypedDictType):
        return [("keys", f.encode_name, f.type) for f in t.fields]
    if isinstance(t, ins.NamedTupleType):
        return [("tuple", i, f.type) for i, f in enumerate(t.fields)]
    if isinstance(t, (ins.ListType, ins.VarTupleType)):
        return [("seq", None, t.item_type)]
    if isinstance(t, (ins.SetType, ins.FrozenSetType)):
        return [("set", None, t.item_type)]
    if isinstance(t, ins.TupleType):
        return [("tuple", i, x) for i, x in enumerate(t.item_types)]
    if isinstance(t, ins.DictType):
        return [("dict", None, t.value_type)]
    if isinstance(t, ins.UnionType):
        return [("union", i, x) for i, x in enumerate(t.types)]
    if isinstance(t, ins.Metadata):
        return [("meta", None, t.type)]
    return []


def _node_kind(t: Any) -> str:
    ins = msgspec.inspect
    if isinstance(t, (ins.SetType, ins.FrozenSetType)):
        return "set"
    if isinstance(t, (ins.StructType, ins.DataclassType)):
        return "obj"
    if isinstance(t, ins.TypedDictType):
        return "keys"
    if isinstance(t, (ins.NamedTupleType, ins.TupleType)):
        return "tuple"
    if isinstance(t, (ins.ListType, ins.VarTupleType)):
        return "seq"
    if isinstance(t, ins.DictType):
        return "dict"
    return "union"


#: Set element types msgspec's own sorting handles alike (one comparable type, no fallback order).
_SIMPLE_ITEMS = (msgspec.inspect.StrType, msgspec.inspect.IntType, msgspec.inspect.FloatType,
                 msgspec.inspect.DateType, msgspec.inspect.TimeDeltaType, msgspec.inspect.UUIDType,
                 msgspec.inspect.DecimalType, msgspec.inspect.BytesType)


_PLANS: dict[Any, SetPlan | None] = {}


def set_plan(cls: Any) -> SetPlan | None:
    """How to write the sets of a value of type ``cls`` sorted; None when the type declares none."""
    try:
        return _PLANS[cls]
    except (KeyError, TypeError):
        pass
    plan = _build_set_plan(cls)
    try:
        _PLANS[cls] = plan
    except TypeError:  # pragma: no cover - an unhashable type
        pass
    return plan


def _build_set_plan(cls: Any) -> SetPlan | None:
    ins = msgspec.inspect
    try:
        info = msgspec.inspect.type_info(cls)
    except Exception:
        return None
    nodes: dict[int, Any] = {}
    stack = [info]
    while stack:  # every node of the type graph, once
        t = stack.pop()
        if id(t) not in nodes:
            nodes[id(t)] = t
            stack.extend(child for _, _, child in _type_kids(t))
    reach = {i for i, t in nodes.items() if isinstance(t, (ins.SetType, ins.FrozenSetType))}
    if not reach:
        return None
    changed = True
    while changed:  # which nodes lead to a set (types may be recursive)
        changed = False
        for i, t in nodes.items():
            if i not in reach and any(id(c) in reach for _, _, c in _type_kids(t)):
                reach.add(i)
                changed = True
    built: dict[int, _Node] = {}

    def node(t: Any) -> _Node:
        while isinstance(t, ins.Metadata):
            t = t.type
        got = built.get(id(t))
        if got is not None:
            return got
        n = built[id(t)] = _Node(_node_kind(t), getattr(t, "cls", None))
        for how, key, c in _type_kids(t):
            if id(c) not in reach:
                continue
            if how in ("seq", "set", "dict"):
                n.item = node(c)
            else:
                n.subs[key] = node(c)
        return n

    if id(info) not in reach:  # pragma: no cover - a set somewhere is reached from the root
        return None
    plain_custom = (pathlib.PurePath, *_AS_BASE, str, int, float)  # hooks that return no dict

    def dict_like(t: Any) -> bool:
        return (isinstance(t, (ins.DictType, ins.TypedDictType, ins.AnyType))
                or (isinstance(t, ins.CustomType) and not issubclass(t.cls, plain_custom)))

    simple_sets = all(isinstance(t.item_type, _SIMPLE_ITEMS) for t in nodes.values()
                      if isinstance(t, (ins.SetType, ins.FrozenSetType)))
    dreach = {i for i, t in nodes.items() if dict_like(t)}
    native = simple_sets and not dreach
    spots = None
    if simple_sets and dreach:
        changed = True
        while changed:  # which nodes lead to a dict
            changed = False
            for i, t in nodes.items():
                if i not in dreach and any(id(c) in dreach for _, _, c in _type_kids(t)):
                    dreach.add(i)
                    changed = True
        spots = _spot_tree(info, dict_like, dreach, node, reach)
    return SetPlan(node(info), native, spots)


def _spot_tree(info: Any, dict_like: Callable[[Any], bool], dreach: set[int],
               node: Callable[[Any], _Node], reach: set[int]) -> _Node | None:
    """The tree to the dicts of a type, when each sits at a fixed place; else None."""
    ins = msgspec.inspect
    visiting: set[int] = set()

    def build(t: Any) -> _Node | None:
        while isinstance(t, ins.Metadata):
            t = t.type
        if dict_like(t):
            n = _Node("raw", dict if isinstance(t, (ins.DictType, ins.TypedDictType)) else None)
            n.item = node(t) if id(t) in reach else None
            return n
        if id(t) in visiting:
            return None  # a recursive type: dicts at any depth
        visiting.add(id(t))
        n = _Node(_node_kind(t), getattr(t, "cls", None))
        for how, key, c in _type_kids(t):
            if id(c) not in dreach:
                continue
            if how in ("seq", "set", "dict"):
                return None  # dicts inside a list, set or dict: as many as there are items
            sub = build(c)
            if sub is None:
                return None
            n.subs[key] = sub
        return n

    return build(info)
