"""JSON text: the only module that calls a JSON library, and where its failures get their type.

Everything that turns values into JSON bytes or back goes through here:
msgspec's JSON encoders and decoders, its msgpack encoder and the standard
library's ``json`` (both only to find a NaN or an infinity before it is
written), and the reformatting of JSON text for the envelope. So a change of
JSON library, or of a library's error types, is a change to this file.

Failures are decided here, where they happen, and never by reading a
dependency's exception chain or message elsewhere: :class:`Malformed` (the
bytes are not JSON the codec reads: damage), :class:`TooDeep` (a Malformed
nested beyond the codec's depth), :class:`Mismatch` (well-formed JSON that
does not fit the type asked for), each with the JSON path of the value.
msgspec's typed errors are translated to those in one function
(:func:`_validation_failure`), which also finds the real dict keys msgspec
writes as ``[...]``.
"""

from __future__ import annotations

import copy
import functools
import json as _stdlib_json
import math
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .hooks import dec_hook, enc_hook
from .paths import DEPTH_CAP, key_seg, levels, locate, value_depth

if TYPE_CHECKING:
    from .sets import SetPlan

__all__ = [
    "DecodeFailure",
    "EncodeFailure",
    "Malformed",
    "Mismatch",
    "NotAnObject",
    "RawJSON",
    "TooDeep",
    "TypedDecoder",
    "check_stdlib",
    "check_typed",
    "compact",
    "decode_typed",
    "depth_limit",
    "dumps",
    "encode_as_is",
    "encode_sorted",
    "from_attributes",
    "into_view",
    "json_of",
    "limit_note",
    "loads",
    "missing_key",
    "pretty",
    "refuse_nonfinite",
    "split_object",
    "typed_decoder",
    "unknown_key",
]


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


class NotAnObject(Mismatch):
    """Valid JSON whose top level is not an object."""


_UNKNOWN_HINT = ("a field renamed or removed? declare snapshot_version= (or SnapStore(schema_version=)) "
                 "and a @migration that moves the value, since ignore_unknown_keys=True would drop it "
                 "and reset the field to its default; a typo in a hand edit? fix the file, or pass "
                 "ignore_unknown_keys=True to drop unknown keys")


def unknown_key(path: str, key: Any) -> DecodeFailure:
    """The failure for a key the type does not know, in the object at ``path``."""
    where = path + key_seg(key)
    return Mismatch(f"unknown key {key!r} at {where} ({_UNKNOWN_HINT})", where)


def missing_key(path: str, key: Any) -> DecodeFailure:
    """The failure for a required key absent from the object at ``path``."""
    where = path + key_seg(key)
    return Mismatch(f"missing required field {key!r} at {where}", where)


# ---------------------------------------------------------------------------
# Values -> JSON bytes
# ---------------------------------------------------------------------------

_encoder = msgspec.json.Encoder(enc_hook=enc_hook)
_sorted_encoder = msgspec.json.Encoder(enc_hook=enc_hook, order="deterministic")
_msgpack = msgspec.msgpack.Encoder(enc_hook=enc_hook)
# A msgpack float64 whose exponent bits are all ones: NaN or +-infinity (or, rarely, the
# same bytes inside other data: every match is confirmed on the values themselves).
_NONFINITE_MSGPACK = re.compile(rb"\xcb[\x7f\xff][\xf0-\xff]")
_NULL = re.compile(rb"null")

#: msgspec's compact JSON of a value as it is: no NaN check, no path on failure (building blocks).
encode_as_is = _encoder.encode
#: The same with sets (and dict keys) sorted, in C.
encode_sorted = _sorted_encoder.encode


R = TypeVar("R")
_fresh = threading.local()


def _deep(call: Callable[..., R], *args: Any) -> R:
    """``call(*args)``, run again on a new thread if it ran out of recursion room here.

    msgspec's depth limit counts the frames already on the caller's stack
    (on CPython 3.10 and 3.11), so a state written near the limit from a
    shallow stack could not be read back from a deeper one. A new thread
    starts with an empty stack: a reader then has at least the room the writer
    had. Costs nothing unless the first attempt fails; a second failure is
    raised as the ``RecursionError`` the callers turn into typed errors.
    """
    try:
        return call(*args)
    except RecursionError:
        if getattr(_fresh, "active", False):
            raise
    box: list[tuple[bool, Any]] = []

    def run() -> None:
        _fresh.active = True
        try:
            box.append((True, call(*args)))
        except BaseException as e:  # handed to the caller's thread below
            box.append((False, e))

    worker = threading.Thread(target=run, name="snapmixin-deep-json")
    worker.start()
    worker.join()
    ok, result = box[0]
    if ok:
        return result  # type: ignore[no-any-return]
    raise result


def dumps(value: Any, *, sort_sets: SetPlan | None = None, check_nonfinite: bool = True) -> bytes:
    """Compact JSON bytes of a value, refusing NaN and infinity with the value's path.

    With ``sort_sets`` (the :func:`~snapmixin.codec.set_plan` of the value's
    type) sets and frozensets are written in sorted order, so that the file
    does not depend on ``PYTHONHASHSEED``; without it, in iteration order.
    """
    try:
        data = _deep(_encoder.encode, value) if sort_sets is None else _deep(sort_sets.encode, value)
    except RecursionError as e:
        raise _too_deep_to_write(value) from e
    except (TypeError, NotImplementedError, OverflowError, ValueError) as e:
        json_path = locate(value, "$", lambda v: _encoder.encode(v))
        where = f" at {json_path}" if json_path else ""
        raise EncodeFailure(f"cannot encode the state{where}: {e}", json_path) from e
    if check_nonfinite:
        refuse_nonfinite(data, value)
    return data


def refuse_nonfinite(text: bytes | memoryview, value: Any) -> None:
    """``EncodeFailure`` with the path of a NaN or infinity in ``value``, whose JSON is in
    ``text`` (the compact output of :func:`dumps`, or any formatting of it). The check
    :func:`dumps` makes unless told (``check_nonfinite=False``: a caller that runs it later,
    e.g. while a worker thread hashes the formatted text)."""
    # msgspec writes NaN and +-infinity as null: only then can the state hold one.
    # (A compiled pattern's search finds it faster than ``in`` over megabytes.)
    if _NULL.search(text) is not None:
        _refuse_nonfinite(value)


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
        plain = msgspec.to_builtins(value, enc_hook=enc_hook)
        try:
            _stdlib_json.dumps(plain, allow_nan=False, check_circular=False, skipkeys=True)
            suspect = False
        except ValueError:  # a non-finite float: locate it below
            suspect = True
        except RecursionError:
            suspect = True
    if not suspect:
        return
    if plain is None:
        plain = msgspec.to_builtins(value, enc_hook=enc_hook)
    bad = _find_nonfinite(plain, "$")
    if bad is not None:
        raise EncodeFailure(
            f"{bad[1]!r} at {bad[0]} cannot be written as JSON (JSON has no NaN or infinity); "
            "store None or a string instead", bad[0])


def _find_nonfinite(value: Any, path: str) -> tuple[str, float] | None:
    stack = [(path, value)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return p, v
        elif isinstance(v, dict):
            stack.extend((p + key_seg(k), x) for k, x in reversed(list(v.items())))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{p}[{i}]", x) for i, x in reversed(list(enumerate(v))))
    return None


def json_of(value: Any) -> bytes:
    """JSON bytes of a plain value that should be JSON already (a migration's output)."""
    try:
        return dumps(value)
    except EncodeFailure as e:
        raise Mismatch(f"the state is not plain JSON values ({e.message}): did a migration "
                       "put an object in it?", e.json_path) from e


def check_stdlib(value: Any, encoder: type[_stdlib_json.JSONEncoder]) -> None:
    """Raise what the standard library's ``json`` with ``encoder`` raises for ``value``, if anything."""
    _stdlib_json.dumps(value, cls=encoder)


# ---------------------------------------------------------------------------
# Nesting depth: msgspec reads and writes as deep as the interpreter's recursion
# limit allows (about 1,000 levels, fewer from deep in a call stack). That is the
# codec's limit; beyond it the failure names the depth (measured without recursion).
# ---------------------------------------------------------------------------

_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)


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


@functools.cache
def depth_limit() -> int:
    """How many levels deep msgspec reads and writes JSON in this interpreter, measured once.

    msgspec follows the interpreter's own recursion guard, so the limit is not a
    constant: about 1,000 levels on CPython 3.10 and 3.11, 1,500 on 3.12, 10,000
    on 3.13 (a little less when called from deep in the stack).
    """
    lo, hi = 1, DEPTH_CAP
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            _untyped_decoder.decode(b"[" * mid + b"]" * mid)
            lo = mid
        except (RecursionError, msgspec.DecodeError):
            hi = mid - 1
    return lo


def limit_note() -> str:
    """Why a depth is too deep, in words, with this interpreter's measured limit."""
    return f"the JSON library goes about {depth_limit()} levels deep at most here"


def _too_deep(data: bytes | memoryview) -> TooDeep:
    return TooDeep(f"JSON nested too deeply to read: {levels(_json_depth(data))} ({limit_note()})")


def _too_deep_to_write(value: Any) -> EncodeFailure:
    n = value_depth(value)
    why = ", or a value contains itself" if n >= DEPTH_CAP else ""
    return EncodeFailure(f"cannot encode the state: nested too deeply: {levels(n)}{why} ({limit_note()})")


# ---------------------------------------------------------------------------
# JSON bytes -> plain values; the text itself
# ---------------------------------------------------------------------------

_untyped_decoder = msgspec.json.Decoder()


def loads(data: bytes | memoryview) -> Any:
    """Plain JSON values from bytes. Raises :class:`Malformed` for malformed or too deep JSON."""
    try:
        return _deep(_untyped_decoder.decode, data)
    except RecursionError:
        raise _too_deep(data) from None
    except Exception as e:  # untyped: whatever msgspec refuses is malformed input
        raise Malformed(f"not valid JSON: {e}") from e


def _malformed(e: BaseException, data: bytes | memoryview) -> Malformed:
    """The failure for an error other than ``ValidationError`` from decoding ``data``."""
    if isinstance(e, RecursionError):
        return _too_deep(data)
    return Malformed(f"not valid JSON: {e}")


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
        return _deep(_split_decoder.decode, data)
    except msgspec.ValidationError as e:
        raise NotAnObject(f"not a JSON object: {e}") from e
    except Exception as e:  # anything else msgspec raises while decoding: malformed input
        raise _malformed(e, data) from e


def compact(text: bytes | memoryview) -> bytes:
    """JSON text with all insignificant whitespace removed."""
    return msgspec.json.format(text, indent=-1)


def _indent2(compact: bytes) -> bytes:
    return msgspec.json.format(compact, indent=2)


def pretty(compact: bytes, level: int = 0) -> bytes:
    """Indent compact JSON by 2 spaces per level, as if it stood ``level`` levels deep.

    JSON strings cannot hold a raw newline, so every newline of the formatted
    text is structure and can be re-indented with a plain replace.
    """
    try:
        text: bytes = _deep(_indent2, compact)
    except RecursionError as e:
        raise EncodeFailure(f"cannot write the snapshot: nested too deeply: "
                            f"{levels(_json_depth(compact))} ({limit_note()})") from e
    if level:
        text = text.replace(b"\n", b"\n" + b"  " * level)
    return text


# ---------------------------------------------------------------------------
# Typed decoding, and msgspec's validation errors -> Mismatch with a precise JSON path
# ---------------------------------------------------------------------------

#: A decoder into one type, with the foreign-type hooks (see :func:`typed_decoder`).
TypedDecoder = msgspec.json.Decoder


def typed_decoder(tp: Any) -> TypedDecoder[Any]:
    """A decoder of JSON into ``tp``, with the hooks (``TypeError`` when msgspec cannot build ``tp``)."""
    return msgspec.json.Decoder(tp, dec_hook=dec_hook)


def decode_typed(decoder: TypedDecoder[Any], data: bytes | memoryview) -> Any:
    """``decoder.decode(data)``: malformed text is :class:`Malformed`, a value that does not fit
    the type :class:`Mismatch` (only once the whole text is known to parse), each with its path."""
    try:
        return _deep(decoder.decode, data)
    except msgspec.ValidationError as e:
        # Typed decoding stops at the first mismatch: the text after it may still be
        # damaged, so parse it all first (loads raises Malformed), and only then call
        # it a mismatch. The error path: find the keys msgspec writes as [...] by
        # retrying on parts.
        raise _validation_failure(e, loads(data), _json_attempt(decoder)) from e
    except msgspec.DecodeError as e:  # any other decoding error: malformed input
        raise _malformed(e, data) from e
    except (UnicodeDecodeError, RecursionError) as e:  # what older msgspec releases raised
        raise _malformed(e, data) from e


def check_typed(decoder: TypedDecoder[Any], value: Any) -> None:
    """Check plain values against the type of ``decoder`` as JSON: :class:`Mismatch` with the path."""
    data = json_of(value)
    try:
        decoder.decode(data)
    except msgspec.ValidationError as e:
        raise _validation_failure(e, value, _json_attempt(decoder)) from e


def from_attributes(value: Any, cls: Any) -> Any:
    """An object of ``cls`` from another object with the same fields (a strict mirror of ``cls``).

    Only ``cls``'s own checks can fail here (a ``__post_init__`` refusing a
    value): a :class:`Mismatch` with the path msgspec gives.
    """
    try:
        return msgspec.convert(value, cls, from_attributes=True, dec_hook=dec_hook)
    except msgspec.ValidationError as e:
        raise _validation_failure(e) from e


def into_view(value: Any, view: Any) -> Any:
    """``value`` (an object with fields) converted to ``view``, a type of Structs with the same
    fields, to be written: a value that does not fit is an :class:`EncodeFailure` with its path."""
    try:
        return msgspec.convert(value, view, from_attributes=True, dec_hook=dec_hook)
    except msgspec.ValidationError as e:
        failure = _validation_failure(e)
        raise EncodeFailure(f"cannot encode the state: {failure.message}", failure.json_path) from e


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
        return unknown_key(json_path, mu.group(1))
    mm = _MISSING_RE.match(msg)
    if mm:
        return missing_key(json_path, mm.group(1))
    return Mismatch(f"{msg} at {json_path}", json_path)


def _json_attempt(decoder: TypedDecoder[Any]) -> Callable[[Any], str | None]:
    """Retry a decode on a plain value: its error text, or None."""
    def attempt(value: Any) -> str | None:
        try:
            decoder.decode(_encoder.encode(value))
        except msgspec.ValidationError as e:
            return str(e)
        return None
    return attempt


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
            out += key_seg(name)
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
            out += key_seg(key)
    return out
