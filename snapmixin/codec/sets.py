"""Sets written in sorted order, so that a snapshot does not depend on ``PYTHONHASHSEED``.

A set has no order, and a file that changes with the hash seed would make
every save a diff. The type being saved says where sets can be; from it,
:func:`set_plan` decides once per type how to sort them at the least cost:

- a type with sets and no dict: msgspec's ``order="deterministic"`` (sets
  sorted in C; it sorts dict keys too, hence not with dicts);
- dicts at fixed places (not inside lists, sets or dicts): those are written
  as they are (``RawJSON``, their own sets sorted here) and the rest is left
  to msgspec's order;
- otherwise the sets, and only the objects and containers on the way to
  them, are replaced by sorted copies before encoding.

Untyped parts (``Any``, a plain-values state) are written as they are.
"""

from __future__ import annotations

import gc
import pathlib
from collections.abc import Callable
from typing import Any

import msgspec

from .hooks import AS_BASE
from .json import RawJSON, encode_as_is, encode_sorted

__all__ = ["SetPlan", "set_plan"]

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

    def encode(self, value: Any) -> bytes:
        """Compact JSON of ``value`` with its sets sorted (failures as the encoder raises them)."""
        if self.native or self.spots is not None:
            # msgspec sorts the sets in C (and dict keys: none, or kept in Raw spots)
            spotted = value if self.spots is None else self.apply(value, self.spots)
            if spotted is not _FAILED:
                try:
                    return encode_sorted(spotted)
                except TypeError:  # elements that cannot be compared (or a bad value: met below)
                    pass
        copied = self.apply(value)
        return encode_as_is(value if copied is _FAILED else copied)

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
            return sorted(items, key=encode_as_is)
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
        return RawJSON(encode_as_is(_apply(v, n.item) if n.item is not None else v))
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
    plain_custom = (pathlib.PurePath, *AS_BASE, str, int, float)  # hooks that return no dict

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
