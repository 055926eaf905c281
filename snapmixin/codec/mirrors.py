"""Strict mirrors: a type rebuilt with msgspec Structs that refuse keys the type does not know.

msgspec decodes dataclasses fast, in C, but silently drops unknown keys; a
snapshot key that nothing reads is a renamed field or a typo, and dropping it
would reset the field to its default. So a dataclass (or, for the attrs
adapter, an attrs class as cattrs writes it) is mirrored once per type as a
Struct with ``forbid_unknown_fields``: decoding into the mirror checks every
key in C, and the result converts to the real class in C too. Parts that
cannot be mirrored are reported, so the adapter checks them another way.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import pathlib
import types
import typing
import uuid
from typing import Any

import msgspec

from .hooks import hook_for, isclass
from .json import typed_decoder

__all__ = ["strict_mirror"]


def strict_mirror(tp: Any, *, for_cattrs: bool = False, forbid: bool = True) -> tuple[Any, bool]:
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
        typed_decoder(out)  # resolves every Struct now: fail here, not later
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
        if isclass(tp):
            if tp in self.done:
                return self.done[tp], True
            spec = self._fields(tp)
            if spec is not None:
                return self._build_class(tp, spec), True
            if self.for_cattrs and issubclass(tp, (bytes, bytearray)):
                return str, True  # cattrs writes bytes as base85 text
            if tp in _BARE_CONTAINERS or issubclass(tp, _SCALARS):
                return tp, False
            if hook_for(tp) is not None:
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
        # gc=False: a mirror is decoded from JSON text and dropped once converted, so it can hold
        # no reference cycle (its values exist before it does, and nothing refers back to it);
        # untracked by the cyclic GC, its many small objects are cheaper to make and to free.
        struct = msgspec.defstruct(tp.__name__, fields, kw_only=True, forbid_unknown_fields=self.forbid,
                                   gc=False)
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
