"""Property test of the journal (issue 14): random schemas, random mutation sequences; after every
step, the snapshot plus the journal replayed equals the live object.

A schema is a dataclass made at random from a pool of field kinds (scalars, lists, dicts and sets
of scalars, lists and dicts of nested objects, an optional nested object, lists of lists). Each
step picks a random container or object of the live tree and applies a random mutating operation
to it (an assignment, any list/dict/set method, a nested object moved or shared into a second
place, ``mark_mutated``), sometimes inside a ``snapshot_batch``, sometimes followed by a
snapshot (compaction). The check reads the files only: ``SnapStore.restore()`` plus
``journal.load``/``replay``, decoded as ``open()`` does, compared with ``==``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from snapmixin import Snapshottable, SnapStore
from snapmixin import codec as _codec
from snapmixin import journal as J
from snapmixin.tracking import TrackedDict, TrackedList, TrackedSet


@dataclass
class Item(Snapshottable):
    n: int = 0
    tags: list[str] = field(default_factory=list)
    meta: dict[str, int] = field(default_factory=dict)


# field kind -> (annotation, default factory, element kind of the container or None)
KINDS: dict[str, tuple[Any, Any, str | None]] = {
    "int": (int, lambda: 0, None),
    "str": (str, lambda: "", None),
    "li": (list[int], list, "int"),
    "ds": (dict[str, int], dict, "int"),
    "si": (set[int], set, "int"),
    "lit": (list[Item], list, "item"),
    "dit": (dict[str, Item], dict, "item"),
    "oit": (Optional[Item], lambda: None, None),  # noqa: UP045 - a runtime annotation object
    "lli": (list[list[int]], list, "li"),
    "dli": (dict[str, list[int]], dict, "li"),
}

_SCHEMAS: dict[tuple[tuple[str, str], ...], type] = {}


def schema(fields: tuple[tuple[str, str], ...]) -> type:
    cls = _SCHEMAS.get(fields)
    if cls is None:
        spec = [(name, KINDS[kind][0], field(default_factory=KINDS[kind][1])) for name, kind in fields]
        cls = dataclasses.make_dataclass(f"S{len(_SCHEMAS)}", spec, bases=(Snapshottable,))
        cls.__module__ = __name__
        globals()[cls.__name__] = cls
        _SCHEMAS[fields] = cls
    return cls


names = st.sampled_from(["a", "b", "c", "d_e", "f", "g"])
schemas = st.lists(st.tuples(names, st.sampled_from(sorted(KINDS))), min_size=1, max_size=6,
                   unique_by=lambda t: t[0]).map(tuple)
keys = st.sampled_from(["k", "x/y", "~0", "z", "", "é"])
ints = st.integers(-5, 5)


def places(obj: Any) -> list[tuple[Any, str]]:
    """Every node of the live tree with what it holds: (node, kind)."""
    out: list[tuple[Any, str]] = [(obj, "obj")]
    fields = {f.name: f for f in dataclasses.fields(obj)}
    kinds = dict(getattr(type(obj), "_kinds", {}))
    for name in fields:
        v = getattr(obj, name)
        kind = kinds.get(name) if type(obj) is not Item else {"n": "int", "tags": "ls", "meta": "ds"}[name]
        out.extend(_below(v, kind))
    return out


_ELEM = {"li": "int", "ds": "int", "si": "int", "lit": "item", "dit": "item", "lli": "li", "dli": "li",
         "ls": "str"}


def _below(v: Any, kind: str | None) -> list[tuple[Any, str]]:
    if isinstance(v, Item):
        return places(v)
    elem = _ELEM.get(kind or "")
    if elem is None or type(v) not in (TrackedList, TrackedDict, TrackedSet):
        return []
    out: list[tuple[Any, str]] = [(v, f"{type(v).__name__}:{elem}")]
    items = list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, list) else []
    for x in items:
        out.extend(_below(x, "li" if elem == "li" else None))
    return out


def value_of(data: st.DataObject, elem: str, tree: list[tuple[Any, str]]) -> Any:
    if elem == "int":
        return data.draw(ints)
    if elem == "str":
        return data.draw(keys)
    if elem == "li":
        existing = [n for n, k in tree if k == "TrackedList:int"]
        if existing and data.draw(st.booleans()):
            return data.draw(st.sampled_from(existing))  # a second place for the same list
        return data.draw(st.lists(ints, max_size=3))
    existing = [n for n, k in tree if k == "obj" and isinstance(n, Item)]
    if existing and data.draw(st.booleans()):
        return data.draw(st.sampled_from(existing))  # a move or a second place
    return Item(n=data.draw(ints), tags=data.draw(st.lists(keys, max_size=2)))


def mutate(data: st.DataObject, root: Any) -> None:
    tree = places(root)
    node, kind = data.draw(st.sampled_from(tree))
    if kind == "obj":
        if isinstance(node, Item):
            name = data.draw(st.sampled_from(["n", "tags", "meta", "mark"]))
            if name == "n":
                node.n = data.draw(ints)
            elif name == "tags":
                node.tags = data.draw(st.lists(keys, max_size=2))
            elif name == "meta":
                node.meta = {data.draw(keys): data.draw(ints)}
            else:
                node.mark_mutated()
            return
        kinds = type(node)._kinds
        name = data.draw(st.sampled_from(sorted(kinds)))
        kind = kinds[name]
        if kind == "int":
            setattr(node, name, data.draw(ints))
        elif kind == "str":
            setattr(node, name, data.draw(keys))
        elif kind == "oit":
            setattr(node, name, None if data.draw(st.booleans()) else value_of(data, "item", tree))
        elif KINDS[kind][1] is set:
            setattr(node, name, set(data.draw(st.lists(ints, max_size=3))))
        elif KINDS[kind][1] is dict:
            elem = KINDS[kind][2]
            setattr(node, name, {data.draw(keys): value_of(data, elem, tree)})  # type: ignore[arg-type]
        else:
            elem = KINDS[kind][2]
            setattr(node, name, [value_of(data, elem, tree) for _ in range(data.draw(st.integers(0, 2)))])  # type: ignore[arg-type]
        return
    t, elem = kind.split(":")
    if t == "TrackedSet":
        op = data.draw(st.sampled_from(["add", "discard", "update", "clear", "isub", "pop"]))
        if op == "add":
            node.add(data.draw(ints))
        elif op == "discard":
            node.discard(data.draw(ints))
        elif op == "update":
            node.update(data.draw(st.lists(ints, max_size=3)))
        elif op == "clear":
            node.clear()
        elif op == "isub":
            node -= set(data.draw(st.lists(ints, max_size=3)))
        elif node:
            node.pop()
        return
    if t == "TrackedDict":
        op = data.draw(st.sampled_from(["set", "del", "pop", "popitem", "clear", "update", "setdefault"]))
        k = data.draw(keys)
        if op == "set":
            node[k] = value_of(data, elem, tree)
        elif op in ("del", "pop") and k in node:
            if op == "del":
                del node[k]
            else:
                node.pop(k)
        elif op == "popitem" and node:
            node.popitem()
        elif op == "clear":
            node.clear()
        elif op == "update":
            node.update({k: value_of(data, elem, tree)})
        elif op == "setdefault":
            node.setdefault(k, value_of(data, elem, tree))
        return
    ops = ["append", "insert", "extend", "set", "pop", "del", "slice", "reverse", "clear", "iadd", "imul",
           "remove"]
    if elem in ("int", "str"):
        ops.append("sort")
    op = data.draw(st.sampled_from(ops))
    n = len(node)
    if op == "append":
        node.append(value_of(data, elem, tree))
    elif op == "insert":
        node.insert(data.draw(st.integers(-n - 2, n + 2)), value_of(data, elem, tree))
    elif op == "extend":
        node.extend([value_of(data, elem, tree) for _ in range(data.draw(st.integers(0, 2)))])
    elif op == "iadd":
        node += [value_of(data, elem, tree)]
    elif op == "set" and n:
        node[data.draw(st.integers(-n, n - 1))] = value_of(data, elem, tree)
    elif op == "pop" and n:
        node.pop(data.draw(st.integers(-n, n - 1)))
    elif op == "del" and n:
        del node[data.draw(st.integers(-n, n - 1))]
    elif op == "slice":
        i = data.draw(st.integers(0, n))
        node[i:i + data.draw(st.integers(0, 2))] = [value_of(data, elem, tree)]
    elif op == "reverse":
        node.reverse()
    elif op == "clear":
        node.clear()
    elif op == "imul":
        node *= data.draw(st.integers(0, 2))
    elif op == "remove" and n:
        node.remove(node[data.draw(st.integers(0, n - 1))])
    elif op == "sort":
        node.sort(reverse=data.draw(st.booleans()))


def replayed(store: SnapStore, cls: type) -> tuple[Any, int]:
    """What open() would rebuild, from the files alone."""
    info = store.latest()
    assert info is not None
    doc, seq = store.restore()
    found = J.load(store, info.generation, info.seq)
    doc = J.replay(doc, found)
    return _codec.convert(store.codec_for(cls), doc, cls), (found.seq or seq)


@settings(max_examples=int(os.environ.get("SNAPMIXIN_JOURNAL_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fields=schemas, data=st.data())
def test_replay_equals_the_live_object_after_every_step(fields: tuple[tuple[str, str], ...],
                                                        data: st.DataObject) -> None:
    cls = schema(fields)
    cls._kinds = dict(fields)
    with tempfile.TemporaryDirectory(prefix="snapmixin-journal-prop-") as d:
        store = SnapStore(d)
        obj = cls.open(store, journal="flush")
        obj.snapshot()
        for _ in range(data.draw(st.integers(1, 25))):
            step = data.draw(st.sampled_from(["one", "one", "one", "batch", "snapshot"]))
            if step == "batch":
                with obj.snapshot_batch():
                    for _ in range(data.draw(st.integers(0, 4))):
                        mutate(data, obj)
            else:
                mutate(data, obj)
                if step == "snapshot":
                    obj.snapshot()
            again, seq = replayed(store, cls)
            assert again == obj, (again, obj)
            assert seq == obj.snapshot_seq
        reopened = cls.open(d)
        assert reopened == obj and reopened.snapshot_seq == obj.snapshot_seq
