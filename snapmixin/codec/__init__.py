"""Encoding: objects to JSON bytes and back; which adapter saves a type, and which types can be saved.

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

The package is cut where changes fall, one module per axis: this module holds
the registry of adapters (``_ADAPTERS``), :func:`codec_for` and the type
admission with its messages; ``base`` the :class:`Codec` contract and
``Adapter`` (a registry line); ``json`` every call into a JSON library and
the typed failures; ``hooks`` values msgspec does not know, at any depth (the
type-hook table); ``native`` the default adapter (msgspec); ``custom``,
``dataclasses_json``, ``pydantic`` and ``attrs`` one module per other adapter;
``sets`` sets in sorted order; ``mirrors`` the strict mirrors that refuse
unknown keys in C; ``paths`` JSON path steps and walks without recursion.

Adding an adapter is a new module and one line in ``_ADAPTERS`` (with a
``hook`` when its objects can also sit inside another state); teaching the
codec a foreign type at any depth is one ``hooks.TypeHook`` given to
``hooks.add``: the encode and decode hooks, the admission and the mirrors
all consult that one table.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib
import typing
from typing import Any

import msgspec

from . import arrays, attrs, custom, dataclasses_json, hooks, pydantic, registry, views
from .attrs import AttrsCodec
from .base import Adapter, Codec, convert
from .custom import CustomCodec
from .dataclasses_json import DataclassesJsonCodec
from .json import (
    DecodeFailure,
    EncodeFailure,
    Malformed,
    Mismatch,
    NotAnObject,
    RawJSON,
    TooDeep,
    compact,
    dumps,
    loads,
    pretty,
    split_object,
    typed_decoder,
)
from .native import MsgspecCodec
from .paths import key_seg
from .pydantic import PydanticCodec
from .registry import register_type
from .sets import SetPlan, set_plan
from .views import transient_names

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
    "register_type",
    "set_plan",
    "split_object",
    "transient_names",
]

#: The registry: the first adapter that claims a type saves it; a type none claims goes to
#: the default (:class:`MsgspecCodec`) once admitted. Order matters where claims overlap
#: (a dataclasses-json class is a dataclass; any class may define the two methods).
_ADAPTERS: tuple[Adapter, ...] = (
    Adapter(custom.claims, CustomCodec, custom.HOOK),
    Adapter(dataclasses_json.claims, DataclassesJsonCodec),
    Adapter(pydantic.claims, PydanticCodec, pydantic.HOOK),
    Adapter(attrs.claims, AttrsCodec),
)

hooks.add(registry.HOOK)  # the user's register_type() first: it wins over snapmixin's own handling
for _adapter in _ADAPTERS:  # their objects inside another state: the hooks ask them, in this order
    if _adapter.hook is not None:
        hooks.add(_adapter.hook)
hooks.add(arrays.HOOK)  # numpy arrays and scalars, when numpy is imported


_isclass = hooks.isclass  # also what snapmixin.store asks: "is this a real class?"

_REGISTER = ("teach snapmixin the type once with snapmixin.register_type({name}, encode=..., "
             "decode=...)")
_WAYS = ("make it a dataclass, an attrs class, a pydantic model or a dataclasses-json class; "
         "or give it __snapshot_state__(self) and a classmethod __from_snapshot_state__(cls, value); "
         "or pass codec= to SnapStore")


def codec_for(cls: Any, *, ignore_unknown_keys: bool = False) -> Codec:
    """The codec for objects of type ``cls`` (None: plain JSON values).

    Raises ``TypeError`` naming the type (and the part of it no adapter can
    handle, for a dataclass holding one) and the ways to make it savable.
    """
    if cls is not None:
        for adapter in _ADAPTERS:
            if adapter.claims(cls):
                return adapter.codec(ignore_unknown_keys=ignore_unknown_keys)
        _admit(cls)
    return MsgspecCodec(ignore_unknown_keys=ignore_unknown_keys)


# ---------------------------------------------------------------------------
# Type admission: what the default adapter can save, and the refusal messages
# ---------------------------------------------------------------------------


def _admit(cls: Any) -> None:
    """Raise ``TypeError`` unless the default adapter can save and rebuild ``cls``."""
    name = getattr(cls, "__qualname__", None) or repr(cls)
    try:
        if views.needs_view(cls):  # transient fields or unions of dataclasses: check what msgspec sees
            try:
                cls = views.decode_view(cls, strict=True)
            except TypeError as e:
                raise TypeError(f"snapmixin cannot save or restore objects of type {name}: {e}") from None
        refusal = _msgspec_refusal(cls)
    except NameError as e:
        raise TypeError(
            f"snapmixin cannot resolve the type annotations of {name}: {e}. With `from __future__ "
            "import annotations` they are strings, looked up in the module's globals: define the "
            "classes they name at module level") from e
    if refusal is not None:
        raise TypeError(f"snapmixin cannot save or restore objects of type {name}{refusal}: "
                        f"{_REGISTER.format(name=name)}; or {_WAYS}")
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
            raise TypeError(f"snapmixin cannot save or restore objects of type {name}: "
                            f"{_REGISTER.format(name=name)}; or {_WAYS}")
        part_name = getattr(part, "__qualname__", part)
        raise TypeError(
            f"snapmixin cannot save or restore objects of type {name}: its part {where} is a "
            f"{part_name}, which no adapter handles: {_REGISTER.format(name=part_name)}; "
            f"or, for that class, {_WAYS}")


def _msgspec_refusal(cls: Any) -> str | None:
    """None when msgspec (with the hooks) can save and rebuild ``cls``; else why not (or "")."""
    if _isclass(cls) and (issubclass(cls, (enum.Enum, pathlib.PurePath)) or hooks.hook_for(cls) is not None):
        return None
    try:
        typed_decoder(cls)
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
            stack.extend((path + key_seg(f.encode_name), f.type) for f in reversed(t.fields))
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
        if isinstance(t, msgspec.inspect.CustomType) and not hooks.handles(t.cls):
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
