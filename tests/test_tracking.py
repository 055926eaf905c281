"""Mutation tracking: every mutating method of list, dict and set counts exactly once.

The method lists are gathered from ``collections.abc`` (the methods each
``Mutable*`` ABC adds over its read-only parent are exactly the mutators) plus
the builtin-only mutators, so a method missing from the tracked containers
fails a test here instead of silently losing mutations.
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import dataclasses
import inspect
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snapmixin import Snapshottable
from snapmixin.tracking import TrackedDict, TrackedList, TrackedSet


@dataclass
class Member(Snapshottable):
    name: str = "m"
    items: list[Any] = field(default_factory=lambda: [3, 1, 2])
    table: dict[str, Any] = field(default_factory=lambda: {"a": 1, "b": 2})
    tags: set[str] = field(default_factory=lambda: {"x", "y"})


@dataclass
class Box(Snapshottable):
    n: int = 0
    items: list[Any] = field(default_factory=lambda: [3, 1, 2])
    table: dict[str, Any] = field(default_factory=lambda: {"a": 1, "b": 2})
    tags: set[str] = field(default_factory=lambda: {"x", "y"})
    # depth 3: a dict of lists of nested Snapshottable objects (with containers of their own)
    teams: dict[str, list[Member]] = field(default_factory=dict)


def _mutators(abc: type) -> set[str]:
    """The methods an ABC adds over its read-only parent: its mutators."""
    return {name for name, v in vars(abc).items() if inspect.isfunction(v)}


#: Mutators of the builtins that the ABCs do not declare.
BUILTIN_ONLY = {
    "list": {"sort", "__imul__"},
    "dict": {"__ior__"},
    "set": {"update", "difference_update", "intersection_update", "symmetric_difference_update"},
}

GATHERED = {
    "list": _mutators(cabc.MutableSequence) | BUILTIN_ONLY["list"],
    "dict": _mutators(cabc.MutableMapping) | BUILTIN_ONLY["dict"],
    "set": _mutators(cabc.MutableSet) | BUILTIN_ONLY["set"],
}

ATTR = {"list": "items", "dict": "table", "set": "tags"}
TRACKED = {"list": TrackedList, "dict": TrackedDict, "set": TrackedSet}

#: (kind, method) -> argument lists that make the call change the container
#: (the first on [3, 1, 2] / {"a": 1, "b": 2} / {"x", "y"}).
SAMPLES: dict[tuple[str, str], list[tuple[Any, ...]]] = {
    ("list", "__setitem__"): [(0, 9), (slice(0, 2), [7, 8, 9]), (0, [1, [2]])],
    ("list", "__delitem__"): [(0,), (slice(None, None, 2),)],
    ("list", "insert"): [(1, 9)],
    ("list", "append"): [(9,), ([4, {"k": 5}],)],
    ("list", "clear"): [()],
    ("list", "reverse"): [()],
    ("list", "extend"): [([7, 8],), (iter((5, 6)),)],
    ("list", "pop"): [(), (0,)],
    ("list", "remove"): [(1,)],
    ("list", "__iadd__"): [([7],)],
    ("list", "sort"): [(), ()],
    ("list", "__imul__"): [(2,), (0,)],
    ("dict", "__setitem__"): [("c", 3), ("a", [1, 2])],
    ("dict", "__delitem__"): [("a",)],
    ("dict", "pop"): [("a",), ("b", None)],
    ("dict", "popitem"): [()],
    ("dict", "clear"): [()],
    ("dict", "update"): [({"c": 3},), ([("c", 3)],)],
    ("dict", "setdefault"): [("c", 3), ("c", [])],
    ("dict", "__ior__"): [({"c": 3},)],
    ("set", "add"): [("z",)],
    ("set", "discard"): [("x",)],
    ("set", "remove"): [("x",)],
    ("set", "pop"): [()],
    ("set", "clear"): [()],
    ("set", "__ior__"): [({"z"},)],
    ("set", "__iand__"): [({"x"},)],
    ("set", "__ixor__"): [({"x", "z"},)],
    ("set", "__isub__"): [({"x"},)],
    ("set", "update"): [({"z"},), ({"z"}, ["w"])],
    ("set", "difference_update"): [({"x"},)],
    ("set", "intersection_update"): [({"x"},)],
    ("set", "symmetric_difference_update"): [({"z"},)],
}

CASES = [(kind, name, args) for (kind, name), arglists in sorted(SAMPLES.items()) for args in arglists]
WHERE: dict[str, Callable[[Box], Any]] = {
    "top": lambda box: box,
    "depth3": lambda box: box.teams["red"][1],  # box -> dict -> list -> Member -> container
}


def test_the_gathered_method_lists_are_complete() -> None:
    # The ABCs were read (a broken gathering would silently test nothing).
    assert {"append", "insert", "__iadd__", "__setitem__"} <= GATHERED["list"]
    assert {"setdefault", "popitem", "update"} <= GATHERED["dict"]
    assert {"add", "discard", "__ixor__"} <= GATHERED["set"]
    for kind, names in GATHERED.items():
        sampled = {name for k, name in SAMPLES if k == kind}
        assert sampled == names, f"{kind}: no sample for {names - sampled}, unknown {sampled - names}"
        # every name is a real mutator of the builtin, and the tracked type overrides it
        base = {"list": list, "dict": dict, "set": set}[kind]
        for name in names:
            assert hasattr(base, name), name
            assert name in vars(TRACKED[kind]), f"{TRACKED[kind].__name__} does not override {name}"


def test_the_tracked_types_override_nothing_untested() -> None:
    for kind, cls in TRACKED.items():
        overridden = {n for n, v in vars(cls).items() if inspect.isfunction(v)}
        helpers = {"__init__", "__reduce_ex__", "__repr__", "_merge"}
        assert overridden - helpers <= GATHERED[kind], overridden - helpers - GATHERED[kind]


@pytest.mark.parametrize("where", sorted(WHERE))
@pytest.mark.parametrize(("kind", "name", "args"), CASES,
                         ids=[f"{k}.{n}{i}" for i, (k, n, _) in enumerate(CASES)])
def test_each_mutating_method_counts_exactly_once(where: str, kind: str, name: str,
                                                  args: tuple[Any, ...]) -> None:
    box = Box()
    box.teams = {"red": [Member("a"), Member("b")], "blue": []}
    owner = WHERE[where](box)
    container = getattr(owner, ATTR[kind])
    assert type(container) is TRACKED[kind]
    plain = copy.deepcopy(container)
    assert type(plain) is {"list": list, "dict": dict, "set": set}[kind]
    args2 = copy.deepcopy(args)
    before = box.snapshot_seq

    result = getattr(container, name)(*args)

    assert box.snapshot_seq == before + 1, f"{kind}.{name}{args!r} moved the count by " \
                                           f"{box.snapshot_seq - before}"
    assert owner.snapshot_seq == box.snapshot_seq  # a nested object reports its root's count
    # ... and behaves exactly like the builtin
    if (kind, name) == ("set", "pop"):  # which element set.pop takes is arbitrary
        expected = result
        plain.discard(result)
    else:
        expected = getattr(plain, name)(*args2)
    assert container == plain
    if name.startswith("__i"):
        assert result is container
    else:
        assert result == expected
    # what it stored is tracked in turn: a further change deep inside counts too
    if kind == "list" and container and isinstance(container[0], list):
        container[0].append(1)
        assert box.snapshot_seq == before + 2
    if kind == "dict" and isinstance(container.get("a"), list):
        container["a"].append(1)
        assert box.snapshot_seq == before + 2


@pytest.mark.parametrize("stmt", [
    "box.items += [4]", "box.items *= 2", "box.table |= {'c': 3}", "box.tags |= {'z'}",
    "box.tags &= {'x'}", "box.tags -= {'x'}", "box.tags ^= {'x', 'z'}", "box.n += 1",
])
def test_in_place_operators_on_attributes_count_once(stmt: str) -> None:
    box = Box()
    before_type = {a: type(getattr(box, a)) for a in ("items", "table", "tags")}
    exec(stmt, {"box": box})
    assert box.snapshot_seq == 1
    assert {a: type(getattr(box, a)) for a in ("items", "table", "tags")} == before_type


def test_deep_mutations_count_on_the_root() -> None:
    box = Box()
    box.teams = {"red": [Member("a", items=[[1, {"deep": [2]}]])]}
    assert box.snapshot_seq == 1
    member = box.teams["red"][0]
    member.name = "b"
    member.items[0][1]["deep"].append(3)
    member.tags.add("t")
    box.teams["red"].append(Member("c"))
    box.teams["red"][1].table["z"] = 0
    box.teams.setdefault("blue", []).append(Member("d"))
    box.teams["blue"][0].items.sort()
    assert box.snapshot_seq == 9  # setdefault inserted: 1, append: 1
    assert member.snapshot_seq == 9  # any object of the tree reports the root's count


def test_setdefault_on_an_existing_key_is_a_read() -> None:
    box = Box()
    box.table.setdefault("a", 5)
    assert box.snapshot_seq == 0
    box.table.setdefault("l", []).append(1)
    box.table.setdefault("l", []).append(2)
    assert box.snapshot_seq == 3
    assert box.table["l"] == [1, 2]


def test_pop_of_a_missing_key_with_a_default_changes_nothing() -> None:
    box = Box()
    other = Box()
    kept = other.items
    assert box.table.pop("missing", kept) is kept
    assert box.snapshot_seq == 0
    kept.append(1)  # the default was not detached from its own tree
    assert other.snapshot_seq == 1


# ---------------------------------------------------------------- plain values


@pytest.mark.parametrize("expr", [
    "box.items[:]", "box.items[::2]", "box.items.copy()", "copy.copy(box.items)", "list(box.items)",
    "box.items + []", "box.items * 2", "copy.deepcopy(box.items)",
    "box.table.copy()", "copy.copy(box.table)", "dict(box.table)", "box.table | {}",
    "copy.deepcopy(box.table)",
    "box.tags.copy()", "copy.copy(box.tags)", "set(box.tags)", "box.tags | set()", "box.tags - set()",
    "box.tags & {'x'}", "box.tags ^ set()", "box.tags.union()", "copy.deepcopy(box.tags)",
])
def test_slices_and_copies_are_plain_values(expr: str) -> None:
    box = Box()
    value = eval(expr, {"box": box, "copy": copy})
    assert type(value) in (list, dict, set), type(value)
    if isinstance(value, list):
        value.append(1)
    elif isinstance(value, dict):
        value["q"] = 1
    else:
        value.add("q")
    assert box.snapshot_seq == 0


def test_nested_copies_are_plain_all_the_way_down() -> None:
    box = Box()
    box.items = [[1], {"a": [2]}, {3}]
    for dup in (copy.deepcopy(box.items), pickle.loads(pickle.dumps(box.items))):
        assert type(dup[0]) is list and type(dup[1]) is dict and type(dup[1]["a"]) is list
        assert type(dup[2]) is set
        dup[1]["a"].append(5)
    assert box.snapshot_seq == 1


@pytest.mark.parametrize("replacement", [[5], None, 7, "text", ()])
def test_a_container_replaced_by_assignment_is_detached(replacement: Any) -> None:
    box = Box()
    old_items, old_table, old_tags = box.items, box.table, box.tags
    box.items = replacement
    box.table = replacement
    box.tags = replacement
    assert box.snapshot_seq == 3
    old_items.append(1)
    old_table["z"] = 1
    old_tags.add("z")
    assert box.snapshot_seq == 3


def test_replaced_and_removed_nested_objects_are_detached() -> None:
    box = Box()
    a, b, c, d = Member("a"), Member("b"), Member("c"), Member("d")
    box.teams = {"red": [a, b, c], "blue": [d]}
    a, b, c, d = box.teams["red"] + box.teams["blue"]  # the stored objects themselves
    box.teams["red"].remove(a)
    box.teams["red"][0] = Member("e")  # replaces b
    box.teams["red"].pop()  # c
    del box.teams["blue"]  # d
    assert box.snapshot_seq == 5
    for gone in (a, b, c, d):
        gone.name = "zzz"
        gone.items.append(1)
    assert box.snapshot_seq == 5
    old = box.teams
    box.teams = {}
    old["x"] = []
    assert box.snapshot_seq == 6


def test_reordering_keeps_nested_objects_tracked() -> None:
    box = Box()
    box.teams = {"red": [Member("b"), Member("a")]}
    red = box.teams["red"]
    red[:] = sorted(red, key=lambda m: m.name)  # the same objects, put back in order
    red.sort(key=lambda m: m.name)
    box.teams.update({"red": box.teams["red"]})
    box.teams["red"] = box.teams["red"]
    assert [m.name for m in box.teams["red"]] == ["a", "b"]
    seq = box.snapshot_seq
    box.teams["red"][0].name = "z"
    box.teams["red"][1].items.append(1)
    assert box.snapshot_seq == seq + 2


def test_aliasing_the_assigned_value_is_not_tracked() -> None:
    box = Box()
    x: list[int] = []
    box.items = x
    assert box.items is not x and box.items == x
    x.append(1)
    assert box.snapshot_seq == 1
    assert box.items == []
    y = {"k": [1]}
    box.table = y
    y["k"].append(2)
    assert box.snapshot_seq == 2
    assert box.table == {"k": [1]}


def test_assigning_the_held_object_is_not_a_mutation() -> None:
    box = Box()
    box.items = box.items
    box.tags = box.tags
    assert box.snapshot_seq == 0


# ------------------------------------------------------ they still are builtins


def test_tracked_containers_behave_as_builtins() -> None:
    box = Box()
    box.items = [1, [2, {"a": {3}}]]
    box.table = {"k": [1, 2], "s": {"t": None}}
    assert isinstance(box.items, list) and isinstance(box.table, dict) and isinstance(box.tags, set)
    assert isinstance(box.items, cabc.MutableSequence) and isinstance(box.tags, cabc.MutableSet)
    assert box.items == [1, [2, {"a": {3}}]] and [1, [2, {"a": {3}}]] == box.items
    assert box.table == {"k": [1, 2], "s": {"t": None}}
    assert box.tags == {"x", "y"} and frozenset({"x", "y"}) == box.tags
    assert json.loads(json.dumps(box.table)) == {"k": [1, 2], "s": {"t": None}}
    assert json.dumps(box.items[1][1]["a"] and [1]) == "[1]"
    assert json.dumps([box.items[:1]]) == "[[1]]"
    assert repr(box.items) == "[1, [2, {'a': {3}}]]" and repr(box.table["s"]) == "{'t': None}"
    for dup in (copy.deepcopy(box.table), pickle.loads(pickle.dumps(box.table, protocol=0)),
                pickle.loads(pickle.dumps(box.table, protocol=pickle.HIGHEST_PROTOCOL))):
        assert dup == box.table and type(dup) is dict and type(dup["k"]) is list
    assert pickle.loads(pickle.dumps(box.tags)) == {"x", "y"}
    assert copy.deepcopy(box.items) == box.items
    assert box.snapshot_seq == 2
    assert hash(frozenset(box.tags)) == hash(frozenset({"x", "y"}))


def test_tracked_containers_work_on_their_own() -> None:
    lst: TrackedList[int] = TrackedList([1, 2])
    lst.append(3)
    lst += [4]
    d: TrackedDict[str, int] = TrackedDict(a=1)
    d["b"] = 2
    s: TrackedSet[int] = TrackedSet([1])
    s |= {2}
    assert (lst, d, s) == ([1, 2, 3, 4], {"a": 1, "b": 2}, {1, 2})


# ------------------------------------------------------------ a random workout

_LIST_OPS = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 9)),
    st.tuples(st.just("append"), st.lists(st.integers(0, 9), max_size=2)),
    st.tuples(st.just("extend"), st.lists(st.integers(0, 9), max_size=3)),
    st.tuples(st.just("insert"), st.integers(-3, 3), st.integers(0, 9)),
    st.tuples(st.just("pop")), st.tuples(st.just("reverse")), st.tuples(st.just("clear")),
    st.tuples(st.just("sort")),
    st.tuples(st.just("__setitem__"), st.integers(-2, 2), st.integers(0, 9)),
    st.tuples(st.just("__delitem__"), st.integers(-2, 2)),
    st.tuples(st.just("__imul__"), st.integers(0, 2)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_LIST_OPS, max_size=12))
def test_random_list_operations_match_a_plain_list_and_each_counts_once(
        ops: list[tuple[Any, ...]]) -> None:
    box = Box()
    box.items = []
    plain: list[Any] = []
    counted = 1
    for name, *args in ops:
        if name == "sort" and any(isinstance(v, list) for v in plain) and any(
                isinstance(v, int) for v in plain):
            continue
        try:
            getattr(plain, name)(*copy.deepcopy(args))
        except IndexError:
            with pytest.raises(IndexError):
                getattr(box.items, name)(*args)
            assert box.snapshot_seq == counted
            continue
        getattr(box.items, name)(*args)
        counted += 1
        assert box.items == plain
        assert box.snapshot_seq == counted
    for v in box.items:
        if isinstance(v, list):
            v.append(0)
            counted += 1
    assert box.snapshot_seq == counted


def test_an_object_of_another_tree_is_stored_as_a_copy_a_free_one_as_is() -> None:
    a = Box()
    a.teams = {"red": [Member("m")]}
    m = a.teams["red"][0]
    b = Box()
    b.teams = {"x": [m]}  # m belongs to a: like a list would be, b stores a copy
    assert b.teams["x"][0] == m and b.teams["x"][0] is not m
    a_seq, b_seq = a.snapshot_seq, b.snapshot_seq
    m.name = "still a's"
    assert (a.snapshot_seq, b.snapshot_seq) == (a_seq + 1, b_seq)
    b.teams["x"][0].items.append(1)
    assert (a.snapshot_seq, b.snapshot_seq) == (a_seq + 1, b_seq + 1)

    # dataclasses.replace builds a new tree from the same values: both stay tracked
    r = dataclasses.replace(a)
    assert r == a and r.teams["red"][0] is not m
    m.tags.add("z")
    r.teams["red"][0].tags.add("w")
    assert (a.snapshot_seq, r.snapshot_seq) == (a_seq + 2, 1)

    # moved (removed first), an object keeps its identity
    moved = a.teams["red"].pop()
    b.teams["x"].append(moved)
    assert b.teams["x"][1] is moved
    a_seq, b_seq = a.snapshot_seq, b.snapshot_seq
    moved.name = "b's now"
    assert (a.snapshot_seq, b.snapshot_seq) == (a_seq, b_seq + 1)


@pytest.mark.parametrize("put", [
    lambda t: t.__setitem__("k", [1]), lambda t: t.update(k=[1]), lambda t: t.update({"k": [1]}),
    lambda t: t.setdefault("k", [1]), lambda t: t.__ior__({"k": [1]}),
], ids=["setitem", "update-kw", "update", "setdefault", "ior"])
def test_a_container_replaced_by_a_scalar_inside_a_dict_is_detached(put: Callable[[Any], Any]) -> None:
    box = Box()
    box.table = {"a": 1}  # scalars only, so far
    put(box.table)
    inner = box.table["k"]
    box.table["k"] = 0
    seq = box.snapshot_seq
    inner.append(2)
    assert box.snapshot_seq == seq


def test_containers_replaced_by_scalars_inside_containers_are_detached() -> None:
    box = Box()
    box.table = {"k": [1], "m": {"n": {1}}}
    inner, deeper = box.table["k"], box.table["m"]["n"]
    box.table["k"] = None
    box.table["m"]["n"] = "x"
    box.items = [[1], 2]
    first = box.items[0]
    box.items[0] = 5
    seq = box.snapshot_seq
    inner.append(1)
    deeper.add(2)
    first.append(1)
    assert box.snapshot_seq == seq == 5


_KEYS = st.sampled_from("abcd")
_VALUES = st.one_of(st.integers(0, 9), st.lists(st.integers(0, 9), max_size=2),
                    st.dictionaries(_KEYS, st.integers(0, 9), max_size=2))
_DICT_OPS = st.one_of(
    st.tuples(st.just("__setitem__"), _KEYS, _VALUES),
    st.tuples(st.just("__delitem__"), _KEYS),
    st.tuples(st.just("pop"), _KEYS), st.tuples(st.just("popitem")), st.tuples(st.just("clear")),
    st.tuples(st.just("update"), st.dictionaries(_KEYS, _VALUES, max_size=2)),
    st.tuples(st.just("__ior__"), st.dictionaries(_KEYS, _VALUES, max_size=2)),
    st.tuples(st.just("setdefault"), _KEYS, _VALUES),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_DICT_OPS, max_size=12))
def test_random_dict_operations_match_a_plain_dict_and_count_what_changed(
        ops: list[tuple[Any, ...]]) -> None:
    box = Box()
    box.table = {}
    plain: dict[str, Any] = {}
    counted = 1
    for name, *args in ops:
        present = name == "setdefault" and args[0] in plain
        try:
            getattr(plain, name)(*copy.deepcopy(args))
        except KeyError:
            with pytest.raises(KeyError):
                getattr(box.table, name)(*args)
            assert box.snapshot_seq == counted
            continue
        getattr(box.table, name)(*args)
        if not present:  # setdefault of a present key only reads
            counted += 1
        assert box.table == plain
        assert box.snapshot_seq == counted
    # whatever the dict holds now is tracked; whatever it dropped is not
    for v in box.table.values():
        if isinstance(v, list):
            v.append(0)
            counted += 1
        elif isinstance(v, dict):
            v["z"] = 0
            counted += 1
    assert box.snapshot_seq == counted


_SET_OPS = st.one_of(
    st.tuples(st.sampled_from(["add", "discard"]), st.integers(0, 5)),
    st.tuples(st.just("remove"), st.integers(0, 5)), st.tuples(st.just("pop")),
    st.tuples(st.just("clear")),
    st.tuples(st.sampled_from(["update", "difference_update", "intersection_update",
                               "symmetric_difference_update", "__ior__", "__iand__", "__isub__",
                               "__ixor__"]), st.sets(st.integers(0, 5), max_size=3)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_SET_OPS, max_size=12))
def test_random_set_operations_match_a_plain_set_and_each_counts_once(ops: list[tuple[Any, ...]]) -> None:
    box = Box()
    box.tags = set()
    plain: set[Any] = set()
    counted = 1
    for name, *args in ops:
        if name == "pop":
            if not plain:
                with pytest.raises(KeyError):
                    box.tags.pop()
                continue
            plain.discard(box.tags.pop())
        else:
            try:
                getattr(plain, name)(*args)
            except KeyError:
                with pytest.raises(KeyError):
                    getattr(box.tags, name)(*args)
                assert box.snapshot_seq == counted
                continue
            getattr(box.tags, name)(*args)
        counted += 1
        assert box.tags == plain and type(box.tags) is TrackedSet
        assert box.snapshot_seq == counted


# ------------------------------------------- moves inside a tree (issue 9, item 2)


@dataclass
class Unit(Snapshottable):
    hp: int = 10
    tags: list[str] = field(default_factory=list)


@dataclass
class Army(Snapshottable):
    units: list[Unit] = field(default_factory=list)
    named: dict[str, Unit] = field(default_factory=dict)
    reserve: list[Unit] = field(default_factory=list)
    leader: Unit | None = None
    rows: list[list[int]] = field(default_factory=list)
    spare: list[int] | None = None


def _army() -> Army:
    return Army(units=[Unit(1), Unit(2), Unit(3)], named={"a": Unit(4), "b": Unit(5)},
                rows=[[1], [2], [3]])


def _in_tree(a: Army) -> list[Any]:
    """Every nested object and container the army holds now (by identity, once each)."""
    found: dict[int, Any] = {}
    for u in [*a.units, *a.named.values(), *a.reserve, *([a.leader] if a.leader else [])]:
        found[id(u)] = u
        found[id(u.tags)] = u.tags
    for c in (a.units, a.named, a.reserve, *a.rows, *([a.spare] if a.spare is not None else [])):
        found[id(c)] = c
    return list(found.values())


def _poke(v: Any) -> None:
    if isinstance(v, Unit):
        v.hp += 1
    elif isinstance(v, list):
        v.append(0)
    else:
        v["zz"] = Unit(0)


def _swap_list(a: Army) -> None:
    a.units[0], a.units[1] = a.units[1], a.units[0]


def _swap_dict(a: Army) -> None:
    a.named["a"], a.named["b"] = a.named["b"], a.named["a"]


def _insert_then_delete(a: Army) -> None:
    a.units.insert(0, a.units[-1])
    del a.units[-1]


def _pop_then_store(a: Army) -> None:
    leader = a.units[0]
    a.units.pop(0)
    a.leader = leader


def _pop_then_store_in_dict(a: Army) -> None:
    a.named["c"] = a.units.pop()


def _overwrite_then_replace(a: Army) -> None:
    a.units[0] = a.units[2]
    a.units[2] = Unit(9)


def _slice_assign(a: Army) -> None:
    a.units[0:2] = [a.units[1], a.units[0]]


def _slice_reverse(a: Army) -> None:
    a.units[:] = a.units[::-1]


def _dict_pop_setdefault(a: Army) -> None:
    u = a.named.pop("a")
    a.named.setdefault("c", u)


def _dict_update(a: Army) -> None:
    a.named.update(a=a.named["b"], b=a.named["a"])


def _dict_ior(a: Army) -> None:
    a.named |= {"b": a.named["a"], "a": a.named["b"]}


def _between_containers(a: Army) -> None:
    a.reserve.append(a.units[1])
    a.units.remove(a.units[1])
    a.units.append(a.named.pop("b"))


def _attribute_to_container_and_back(a: Army) -> None:
    a.leader = a.units.pop(0)
    a.units.append(a.leader)
    a.leader = None
    a.leader = a.units[-1]
    del a.units[-1]


def _sort_and_reverse(a: Army) -> None:
    a.units.sort(key=lambda u: -u.hp)
    a.units.reverse()
    a.rows.sort(key=lambda r: -r[0])


def _containers_move(a: Army) -> None:
    a.rows[0], a.rows[2] = a.rows[2], a.rows[0]
    a.rows.insert(0, a.rows.pop())
    a.spare = a.rows.pop(1)
    a.rows.append(a.spare)
    a.spare = None


def _move_whole_containers(a: Army) -> None:
    a.reserve, a.units = a.units, a.reserve
    a.units = a.reserve


def _clear_and_put_back(a: Army) -> None:
    kept = list(a.units)
    a.units.clear()
    a.units.extend(kept)


MOVES = [_swap_list, _swap_dict, _insert_then_delete, _pop_then_store, _pop_then_store_in_dict,
         _overwrite_then_replace, _slice_assign, _slice_reverse, _dict_pop_setdefault, _dict_update,
         _dict_ior, _between_containers, _attribute_to_container_and_back, _sort_and_reverse,
         _containers_move, _move_whole_containers, _clear_and_put_back]


@pytest.mark.parametrize("move", MOVES, ids=[m.__name__.strip("_") for m in MOVES])
def test_a_value_moved_inside_its_tree_stays_tracked_and_a_dropped_one_does_not(move: Callable[[Army], None]
                                                                                 ) -> None:
    a = _army()
    before = _in_tree(a)
    move(a)
    now = _in_tree(a)
    dropped = [v for v in before if all(v is not w for w in now)]
    seq = a.snapshot_seq
    for i, v in enumerate(now):
        _poke(v)
        assert a.snapshot_seq == seq + i + 1, f"{v!r} is in the tree but its change was not counted"
    seq = a.snapshot_seq
    for v in dropped:
        _poke(v)
    assert a.snapshot_seq == seq, "a value no longer in the tree still counts"


def test_a_popped_object_keeps_its_identity_and_is_free_until_stored_again() -> None:
    a = _army()
    leader = a.units.pop(0)
    seq = a.snapshot_seq
    leader.hp = 50  # in no tree now: its own root
    assert a.snapshot_seq == seq and leader.snapshot_seq == 1
    a.leader = leader
    assert a.leader is leader
    leader.tags.append("x")
    assert a.snapshot_seq == seq + 2


def test_a_tracked_container_moved_inside_its_tree_keeps_its_identity() -> None:
    a = _army()
    row = a.rows[2]
    a.rows.insert(0, row)
    del a.rows[-1]
    assert a.rows[0] is row
    seq = a.snapshot_seq
    row.append(7)
    assert a.snapshot_seq == seq + 1
    popped = a.rows.pop(0)
    popped.append(8)  # in no tree
    assert a.snapshot_seq == seq + 2
    a.spare = popped
    assert a.spare is popped
    popped.append(9)
    assert a.snapshot_seq == seq + 4


def test_a_value_held_in_two_places_counts_until_both_are_gone() -> None:
    a = _army()
    u = a.units[0]
    a.leader = u
    a.units[0] = Unit(7)
    seq = a.snapshot_seq
    u.hp = 1
    assert a.snapshot_seq == seq + 1
    a.leader = None
    u.hp = 2
    assert a.snapshot_seq == seq + 2


def test_a_container_of_another_tree_is_copied_a_free_one_joins_as_is() -> None:
    a, b = _army(), _army()
    b.spare = a.rows[0]
    assert b.spare == a.rows[0] and b.spare is not a.rows[0]
    a_seq, b_seq = a.snapshot_seq, b.snapshot_seq
    a.rows[0].append(1)
    b.spare.append(2)
    assert (a.snapshot_seq, b.snapshot_seq) == (a_seq + 1, b_seq + 1)
    free = a.rows.pop()
    b.rows.append(free)
    assert b.rows[-1] is free
    free.append(3)
    assert (a.snapshot_seq, b.snapshot_seq) == (a_seq + 2, b_seq + 3)


# ----------------------------------------------- deep nesting (issue 9, item 7)


@dataclass
class Nest(Snapshottable):
    data: list[Any] = field(default_factory=list)
    kids: list[Nest] = field(default_factory=list)


@pytest.mark.parametrize("depth", [500, 3000])
def test_deeply_nested_values_are_tracked_without_recursion(depth: int) -> None:
    deep: list[Any] = []
    for _ in range(depth):
        deep = [deep]
    n = Nest()
    n.data = deep  # converted all the way down
    inner = n.data
    for _ in range(depth):
        inner = inner[0]
    assert type(inner) is TrackedList
    inner.append(1)
    assert n.snapshot_seq == 2
    n.data = []  # every level leaves the tree
    inner.append(2)
    assert n.snapshot_seq == 3

    # a chain of nested objects as deep: stored, counted at the bottom, removed
    top = Nest()
    node = top
    for _ in range(depth):
        node.kids.append(Nest())
        node = node.kids[0]
    holder = Nest()
    holder.kids.append(top)
    node.data.append(1)
    assert holder.snapshot_seq == 2
    holder.kids.pop()
    node.data.append(2)
    assert holder.snapshot_seq == 3 and top.snapshot_seq == depth + 1


# ---------------------------------------------------------------------------
# The owner contract (issue 11): tracking stands alone; owners implement tracking.Owner
# ---------------------------------------------------------------------------


def _standalone_tracking() -> Any:
    """tracking.py loaded on its own, as a fresh module nobody else has touched."""
    import importlib.util
    import pathlib

    import snapmixin.tracking as installed

    spec = importlib.util.spec_from_file_location("_tracking_alone", pathlib.Path(installed.__file__))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tracking_needs_nothing_installed_from_outside() -> None:
    """A nested object that implements the written contract (no mixin at all) is adopted, counted
    and moved by a freshly loaded tracking module: nothing has to be set in it by another module."""
    t = _standalone_tracking()
    assert not hasattr(t, "hooks")

    class NodeState(t.Root):  # type: ignore[name-defined,misc]
        def __init__(self, root: Any) -> None:
            super().__init__()
            self.root = root
            self.refs = 0

    class Leaf(t.Owner):
        __slots__ = ("items", "node")

        def __init__(self) -> None:
            self.node = None
            self.items = [1]

        def __snapmixin_node__(self) -> Any:
            return self.node

        def __snapmixin_adopt__(self, root: Any) -> tuple[Any, Any]:
            self.node = NodeState(root)
            return self.node, None

        def __snapmixin_fields__(self) -> list[str]:
            return ["items"]

        def __snapmixin_linked__(self, state: Any, name: str, value: Any) -> None:
            pass

        def __snapmixin_copy__(self) -> Any:
            return Leaf()

    root = t.Root()
    outer = t.track([Leaf()], root)
    leaf = outer[0]
    assert leaf.node.root is root and leaf.node.refs == 1
    assert type(leaf.items) is t.TrackedList  # its field was linked into the tree
    leaf.items.append(2)
    assert root.seq == 1
    outer.pop()
    assert root.seq == 2 and leaf.node.refs == 0 and leaf.node.root is leaf.node  # free again
    leaf.items.append(3)
    assert root.seq == 2 and leaf.node.seq == 1  # counted on its own tree now


class _Log:
    def __init__(self) -> None:
        self.seen: list[tuple[Any, str, tuple[Any, ...]]] = []

    def record(self, node: Any, op: str, key: Any, value: Any) -> None:
        self.seen.append((node, op, (key, value)))


def test_a_recorder_receives_what_changed() -> None:
    """The contract carries what changed (container, operation, arguments as stored) to a recorder
    attached to the root; with none attached, `due` stays out of reach (the hot path never leaves)."""
    b = Box()
    from snapmixin.tracking import NEVER

    root = b.__snapmixin_node__().root  # type: ignore[union-attr]
    assert root.due == NEVER and root.recorder is None
    log = _Log()
    root.attach(log)
    b.n = 5
    b.items.append([1])
    b.table["k"] = 2
    b.tags.add("z")
    b.items.pop()
    assert [(node, op) for node, op, _ in log.seen] == [
        (b, "setattr"), (b.items, "append"), (b.table, "__setitem__"), (b.tags, "add"), (b.items, "pop")]
    assert log.seen[0][2] == ("n", 5)
    stored = log.seen[1][2][1]
    assert type(stored) is TrackedList and stored == [1]  # what the list holds, not the caller's list
    assert log.seen[2][2] == ("k", 2)
    assert b.snapshot_seq == 5


def test_a_recorder_stays_attached_through_a_policy(tmp_path: Any) -> None:
    from snapmixin import snapshot_every

    @snapshot_every(2)
    @dataclass
    class P(Snapshottable):
        n: int = 0

    p = P.open(tmp_path / "s")
    root = p.__snapmixin_node__()
    assert root is not None
    log = _Log()
    root.attach(log)
    for i in range(5):
        p.n = i + 1  # a snapshot at 2 and 4 resets the policy's due: the recorder still sees all
    assert len(log.seen) == 5 and p.snapshot_unsaved == 1


def test_a_recorder_sees_every_mutation_under_a_seconds_policy_and_in_batches(tmp_path: Any) -> None:
    from snapmixin import snapshot_every

    @snapshot_every(seconds=3600.0)
    @dataclass
    class T(Snapshottable):
        n: int = 0
        items: list[int] = field(default_factory=list)

    t = T.open(tmp_path / "s")
    t.n = 1  # the policy's quick "not yet" return, no recorder
    root = t.__snapmixin_node__()
    assert root is not None
    log = _Log()
    root.attach(log)
    t.n = 2
    with t.snapshot_batch():
        t.items.append(1)
        t.items.append(2)
    t.items.append(3)
    assert [op for _, op, _ in log.seen] == ["setattr", "append", "append", "append"]
    assert t.snapshot_seq == 4  # the batch counted once
    root.attach(None)
    t.n = 3
    assert len(log.seen) == 4 and t.snapshot_seq == 5
