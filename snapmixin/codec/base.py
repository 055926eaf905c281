"""The codec contract, and the registry entry that ties an adapter to the types it claims.

:class:`Codec` is what the store calls, for the adapters here and for a
user's ``SnapStore(codec=...)`` alike: an adapter writes two methods (plain
JSON values out and in) and inherits the rest. :class:`Adapter` is one line
of the registry in :mod:`snapmixin.codec`: which types the adapter claims,
how to make its codec, and (optionally) its hook for values of those types
met inside another state. It lives apart from the package's ``__init__`` so
that the adapter modules can import it without a cycle.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, NamedTuple

from .hooks import TypeHook
from .json import dumps, loads, unknown_key
from .paths import key_seg

__all__ = ["Adapter", "Codec", "check_no_unknown_keys", "convert"]


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
            check_no_unknown_keys(value, self.to_builtins(obj), "$")
        return obj


class Adapter(NamedTuple):
    """One entry of the codec registry (see :func:`snapmixin.codec.codec_for`)."""

    #: Whether the adapter saves objects of this type (any type: a class, ``list[X]``, a union...).
    claims: Callable[[Any], bool]
    #: Its codec for such a type, called as ``codec(ignore_unknown_keys=...)``.
    codec: Callable[..., Codec]
    #: How it saves such objects met inside another state (a field, a list item), if it does.
    hook: TypeHook | None = None


def convert(codec: Any, value: Any, cls: Any) -> Any:
    """``codec.convert(value, cls)``, for a user's codec without ``convert`` too (it gets the JSON bytes)."""
    if cls is None:
        return value
    method = getattr(codec, "convert", None)
    if method is not None:
        return method(value, cls)
    return codec.decode(dumps(value), cls)


def check_no_unknown_keys(given: Any, kept: Any, path: str) -> None:
    """Refuse keys that decoding silently dropped: compare the input with a re-encoding.

    Depth first, in the input's order (the first unknown key met is the one
    reported), without recursion: a stack of iterators over the pairs to compare.
    """
    def pairs_of(g: Any, k: Any, p: str) -> typing.Iterator[tuple[Any, Any, str]]:
        if isinstance(g, dict) and isinstance(k, dict):
            for key, sub in g.items():
                if key not in k:
                    raise unknown_key(p, key)
                yield sub, k[key], p + key_seg(key)
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
