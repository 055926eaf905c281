"""The file holds exactly what the object holds (issue 9): a property-based fidelity suite.

Hypothesis generates dataclass schemas (every supported field kind, with and
without defaults, nested plain dataclasses and nested Snapshottable objects,
containers of them) and, for each, a sequence of steps on a live object:
assignments, container mutations, moves of nested objects and containers
inside the tree, batches, method-form calls and snapshots, some of them
inside batches. After every step ``snapshot_seq`` moved by exactly the
mutations the step made; after every snapshot the file's state equals what
``SnapStore`` writes for an equal plain (non-Snapshottable) object built from
the live one, and the object reopened from the file equals the live one.

The default run is sized to stay well under a minute; a long run:
``pytest tests/test_fidelity.py --hypothesis-profile=long`` (see conftest.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapmixin import Snapshottable, SnapStore, snapshot_every

# 400 examples by default (about 15 s); a profile that asks for more (--hypothesis-profile=long) gets them.
EXAMPLES = settings.default.max_examples if settings.default.max_examples > 400 else 400


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


@dataclass(frozen=True)
class Point:
    """A plain (untracked, immutable) nested dataclass: only whole assignments change it."""

    x: int = 0
    y: int = 0


# ------------------------------------------------------------------ the kinds

_ints = st.integers(-(2**53), 2**53)
_text = st.text(max_size=5)
_floats = st.floats(allow_nan=False, allow_infinity=False)
_when = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1))
_paths = st.lists(st.sampled_from(["a", "b", "saves", "x y"]), min_size=1, max_size=3).map(
    lambda parts: Path("/", *parts))


@dataclass(frozen=True)
class Kind:
    name: str
    live: Any  # the annotation in the Snapshottable class
    plain: Any  # the annotation in its plain twin
    values: Callable[[], st.SearchStrategy[Any]]  # fresh values (the live class's)
    default: Callable[[], Any]  # a default value (or factory result)
    mutable_default: bool = False  # a list/dict/set/object default: default_factory


def _kinds(leaf: type, plain_leaf: type) -> list[Kind]:
    leaves = st.builds(leaf, hp=st.integers(0, 99), tags=st.lists(_text, max_size=2))
    return [
        Kind("int", int, int, lambda: _ints, lambda: 7),
        Kind("str", str, str, lambda: _text, lambda: "dflt"),
        Kind("float", float, float, lambda: _floats, lambda: 1.5),
        Kind("bool", bool, bool, lambda: st.booleans(), lambda: True),
        Kind("none", type(None), type(None), lambda: st.none(), lambda: None),
        Kind("opt", int | None, int | None, lambda: st.none() | _ints, lambda: None),
        Kind("enum", Color, Color, lambda: st.sampled_from(Color), lambda: Color.GREEN),
        Kind("datetime", dt.datetime, dt.datetime, lambda: _when, lambda: dt.datetime(2001, 2, 3, 4, 5, 6)),
        Kind("path", Path, Path, lambda: _paths, lambda: Path("/saves/default")),
        Kind("tuple", tuple[int, ...], tuple[int, ...], lambda: st.lists(_ints, max_size=3).map(tuple),
             lambda: (1, 2)),
        Kind("frozenset", frozenset[int], frozenset[int], lambda: st.frozensets(_ints, max_size=3),
             lambda: frozenset({3})),
        Kind("point", Point, Point, lambda: st.builds(Point, _ints, _ints), lambda: Point(1, 2)),
        Kind("set", set[int], set[int], lambda: st.sets(_ints, max_size=3), lambda: {1, 2}, True),
        Kind("list", list[int], list[int], lambda: st.lists(_ints, max_size=3), lambda: [1], True),
        Kind("dict", dict[str, int], dict[str, int], lambda: st.dictionaries(_text, _ints, max_size=3),
             lambda: {"k": 1}, True),
        Kind("grid", list[list[int]], list[list[int]],
             lambda: st.lists(st.lists(_ints, max_size=2), max_size=3), lambda: [[1], []], True),
        Kind("leaf", leaf, plain_leaf, lambda: leaves, lambda: leaf(), True),
        Kind("optleaf", leaf | None, plain_leaf | None, lambda: st.none() | leaves, lambda: None),
        Kind("leaves", list[leaf], list[plain_leaf], lambda: st.lists(leaves, max_size=3),
             lambda: [leaf(1), leaf(2)], True),
        Kind("leafmap", dict[str, leaf], dict[str, plain_leaf],
             lambda: st.dictionaries(st.sampled_from("abcd"), leaves, max_size=3),
             lambda: {"a": leaf(3)}, True),
    ]


@dataclass
class Leaf(Snapshottable):
    """The nested Snapshottable: its own defaults, a container of its own."""

    hp: int = 0
    tags: list[str] = field(default_factory=list)
    color: Color = Color.RED
    home: Path = Path("/leaf")


@dataclass
class PlainLeaf:
    hp: int = 0
    tags: list[str] = field(default_factory=list)
    color: Color = Color.RED
    home: Path = Path("/leaf")


KINDS = _kinds(Leaf, PlainLeaf)
BY_NAME = {k.name: k for k in KINDS}
TWINS: dict[type, type] = {Leaf: PlainLeaf}
_CLASSES: dict[tuple[tuple[str, bool], ...], tuple[type, type]] = {}

# Every schema has these (the moves of issue 9 item 2 need somewhere to move to), plus drawn ones.
CORE = [("units", "leaves"), ("named", "leafmap"), ("lead", "optleaf"), ("rows", "grid"),
        ("spare", "grid")]


def _classes(extra: tuple[tuple[str, bool], ...]) -> tuple[type, type]:
    """The Snapshottable class of a schema and its plain twin (made once per schema)."""
    found = _CLASSES.get(extra)
    if found is not None:
        return found
    live_fields: list[Any] = []
    plain_fields: list[Any] = []
    specs = [(n, BY_NAME[k], True) for n, k in CORE] + [
        (f"f{i}_{k}", BY_NAME[k], d) for i, (k, d) in enumerate(extra)]
    # fields without a default first (dataclass order rule), then the rest
    specs.sort(key=lambda s: s[2])
    for name, kind, has_default in specs:
        if not has_default:
            live_fields.append((name, kind.live))
            plain_fields.append((name, kind.plain))
        elif kind.mutable_default:
            live_fields.append((name, kind.live, field(default_factory=kind.default)))
            plain_fields.append((name, kind.plain,
                                 field(default_factory=lambda k=kind: to_plain(k.default()))))
        else:
            live_fields.append((name, kind.live, field(default=kind.default())))
            plain_fields.append((name, kind.plain, field(default=kind.default())))
    n = len(_CLASSES)
    live = dataclasses.make_dataclass(f"Schema{n}", live_fields, bases=(Snapshottable,))
    plain = dataclasses.make_dataclass(f"PlainSchema{n}", plain_fields)

    @snapshot_every(1000)
    def apply(self: Any, steps: list[Callable[[], None]]) -> None:
        for step in steps:
            step()

    type.__setattr__(live, "apply", apply)  # a method-form call: one mutation, whatever it does
    TWINS[live] = plain
    _CLASSES[extra] = (live, plain)
    return live, plain


def to_plain(value: Any) -> Any:
    """An equal value made of plain classes and builtin containers only."""
    twin = TWINS.get(type(value))
    if twin is not None:
        return twin(**{f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)})
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return set(value)
    return value


def _canonical(value: Any) -> Any:
    """JSON with every list sorted by its JSON text where its order is a set's (not meaningful)."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


# ------------------------------------------------------------------ the steps


class Run:
    """One live object, its directory, and the seq it must be at."""

    def __init__(self, obj: Any, where: Path, plain_cls: type, set_fields: set[str]) -> None:
        self.obj = obj
        self.where = where
        self.plain_cls = plain_cls
        self.set_fields = set_fields
        self.seq = obj.snapshot_seq

    def check_seq(self, what: str) -> None:
        seq = self.obj.snapshot_seq
        assert seq == self.seq, f"after {what}: seq {seq}, {self.seq} expected"

    def check_file(self) -> None:
        on_file = json.loads((self.where / "snapshot.json").read_text("utf-8"))
        assert on_file["seq"] == self.seq
        expected = json.loads(SnapStore(self.where.parent / "plain").encode(to_plain(self.obj)))
        got = on_file["state"]
        for name in self.set_fields:  # a set's order in the file means nothing (yet)
            expected[name] = sorted(expected[name])
            got[name] = sorted(got[name])
        assert got == expected
        again = type(self.obj).open(self.where)
        assert again == self.obj
        assert again.snapshot_seq == self.seq


def _fields_of(obj: Any, kind: str) -> list[str]:
    return [f.name for f in dataclasses.fields(obj) if f.name.endswith("_" + kind) or
            (kind == "leaves" and f.name == "units") or (kind == "leafmap" and f.name == "named")
            or (kind == "grid" and f.name in ("rows", "spare"))]


def _leaves(obj: Any) -> list[Any]:
    """Every nested Snapshottable reachable from obj, once each."""
    found: dict[int, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        for x in (v if isinstance(v, list) else v.values() if isinstance(v, dict) else [v]):
            if isinstance(x, Leaf):
                found[id(x)] = x
    return list(found.values())


def _lists(obj: Any) -> list[tuple[list[Any], type]]:
    """Every list of scalars reachable (grids' rows and leaves' tags included), with its item type."""
    out: list[tuple[list[Any], type]] = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, list) and f.name.endswith("_list"):
            out.append((v, int))
        if isinstance(v, list) and (f.name in ("rows", "spare") or f.name.endswith("_grid")):
            out.extend((row, int) for row in v)
    for leaf in _leaves(obj):
        out.append((leaf.tags, str))
    return out


def draw_step(data: st.DataObject, obj: Any) -> tuple[str, Callable[[], int]]:
    """A step on obj: (its description, a function doing it that returns the mutations it made)."""
    choices = ["assign", "assign", "list", "dict", "set", "leaf", "move", "move", "move", "grid"]
    what = data.draw(st.sampled_from(choices))
    names = [f.name for f in dataclasses.fields(obj)]
    if what == "assign":
        name = data.draw(st.sampled_from(names))
        kind = BY_NAME[name.split("_", 1)[1]] if "_" in name else BY_NAME[dict(CORE)[name]]
        value = data.draw(kind.values())

        def assign() -> int:
            same = type(value) not in _SCALAR_TYPES and getattr(obj, name) is value
            setattr(obj, name, value)
            return 0 if same else 1
        return f"{name} = {value!r}", assign
    if what == "leaf":
        leaves = _leaves(obj)
        if not leaves:
            return "nothing", lambda: 0
        leaf = data.draw(st.sampled_from(leaves))
        op = data.draw(st.sampled_from(["hp", "tag", "color", "home"]))
        x = data.draw(st.integers(0, 9))

        def poke() -> int:
            if op == "hp":
                leaf.hp = x
            elif op == "tag":
                leaf.tags.append(str(x))
            elif op == "color":
                leaf.color = Color.BLUE if leaf.color is not Color.BLUE else Color.RED
            else:
                leaf.home = Path(f"/h{x}")
            return 1
        return f"leaf {leaf!r}.{op} {x}", poke
    if what in ("list", "grid"):
        lists = _lists(obj)
        if not lists:
            return "nothing", lambda: 0
        lst, item = data.draw(st.sampled_from(lists))
        op = data.draw(st.sampled_from(["append", "pop", "insert", "setitem", "sort", "reverse", "extend"]))
        x = data.draw(st.integers(0, 9))

        def mutate_list() -> int:
            if op in ("pop", "setitem") and not lst:
                return 0
            if op == "append":
                lst.append(item(x))
            elif op == "pop":
                lst.pop(x % len(lst))
            elif op == "insert":
                lst.insert(x, item(x))
            elif op == "setitem":
                lst[x % len(lst)] = lst[(x + 1) % len(lst)]
            elif op == "sort":
                lst.sort()
            elif op == "reverse":
                lst.reverse()
            else:
                lst.extend([item(x), item(x + 1)])
            return 1
        return f"list {op} {x}", mutate_list
    if what == "dict":
        dicts = [getattr(obj, n) for n in _fields_of(obj, "dict")]
        if not dicts:
            return "nothing", lambda: 0
        d = data.draw(st.sampled_from(dicts))
        op = data.draw(st.sampled_from(["set", "pop", "setdefault", "update", "del"]))
        k = data.draw(st.sampled_from("abc"))
        x = data.draw(st.integers(0, 9))

        def mutate_dict() -> int:
            if op == "set":
                d[k] = x
            elif op == "pop":
                if k not in d:
                    return 0
                d.pop(k)
            elif op == "setdefault":
                present = k in d
                d.setdefault(k, x)
                return 0 if present else 1
            elif op == "update":
                d.update({k: x})
            else:
                if k not in d:
                    return 0
                del d[k]
            return 1
        return f"dict {op} {k} {x}", mutate_dict
    if what == "set":
        sets = [getattr(obj, n) for n in _fields_of(obj, "set")]
        if not sets:
            return "nothing", lambda: 0
        s = data.draw(st.sampled_from(sets))
        op = data.draw(st.sampled_from(["add", "discard", "update"]))
        x = data.draw(st.integers(0, 5))

        def mutate_set() -> int:
            if op == "add":
                s.add(x)
            elif op == "discard":
                s.discard(x)
            else:
                s.update({x, x + 1})
            return 1
        return f"set {op} {x}", mutate_set
    return draw_move(data, obj)


_SCALAR_TYPES = (int, float, str, bool, type(None), dt.datetime)


def probe(obj: Any) -> int:
    """Touch every nested object and tracked container the tree holds, changing nothing.

    Each touch is one mutation (``leaf.hp = leaf.hp``, ``lst.extend([])``,
    ``d.update({})``): a value the tree holds but no longer tracks (lost in a
    move) shows up as a seq that moved too little. Returns the touches made.
    """
    touched: dict[int, Any] = {}
    for leaf in _leaves(obj):
        touched[id(leaf)] = leaf
        touched[id(leaf.tags)] = leaf.tags
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, (list, dict, set)):
            touched[id(v)] = v
            if isinstance(v, list):
                touched.update((id(x), x) for x in v if isinstance(x, list))
    for v in touched.values():
        if isinstance(v, Leaf):
            v.hp = v.hp
        elif isinstance(v, (list, set)):
            v.extend([]) if isinstance(v, list) else v.update(())
        else:
            v.update({})
    return len(touched)


def draw_move(data: st.DataObject, obj: Any) -> tuple[str, Callable[[], int]]:
    """A move of a nested object or a container inside the tree (issue 9, item 2)."""
    move = data.draw(st.sampled_from([
        "swap_list", "swap_dict", "insert_del", "pop_to_lead", "lead_to_list", "overwrite_replace",
        "slice", "dict_pop_setdefault", "dict_update", "list_to_dict", "dict_to_list", "sort_reverse",
        "rows_swap", "row_to_spare", "spare_to_row", "swap_fields", "clear_put_back"]))
    units, named, rows = obj.units, obj.named, obj.rows
    fresh = data.draw(st.integers(0, 99))

    def do() -> int:
        if move == "swap_list":
            if len(units) < 2:
                return 0
            units[0], units[-1] = units[-1], units[0]
            return 2
        if move == "swap_dict":
            if len(named) < 2:
                return 0
            a, b = list(named)[:2]
            named[a], named[b] = named[b], named[a]
            return 2
        if move == "insert_del":
            if not units:
                return 0
            units.insert(0, units[-1])
            del units[-1]
            return 2
        if move == "pop_to_lead":
            if not units:
                return 0
            leader = units[0]
            units.pop(0)
            obj.lead = leader
            return 2
        if move == "lead_to_list":
            if obj.lead is None:
                return 0
            units.append(obj.lead)
            obj.lead = None
            return 2
        if move == "overwrite_replace":
            if len(units) < 3:
                return 0
            units[0] = units[2]
            units[2] = Leaf(fresh)
            return 2
        if move == "slice":
            units[:] = units[::-1]
            return 1
        if move == "dict_pop_setdefault":
            if not named:
                return 0
            k = next(iter(named))
            v = named.pop(k)
            named.setdefault(next(c for c in "zyxwv" if c not in named), v)
            return 2
        if move == "dict_update":
            if not named:
                return 0
            k = next(iter(named))
            named.update({k: named[k], "w": named[k]})
            return 1
        if move == "list_to_dict":
            if not units:
                return 0
            named["m"] = units.pop()
            return 2
        if move == "dict_to_list":
            if not named:
                return 0
            units.append(named.pop(next(iter(named))))
            return 2
        if move == "sort_reverse":
            units.sort(key=lambda u: u.hp)
            units.reverse()
            return 2
        if move == "rows_swap":
            if len(rows) < 2:
                return 0
            rows[0], rows[1] = rows[1], rows[0]
            return 2
        if move == "row_to_spare":
            if not rows:
                return 0
            obj.spare = [rows.pop()]
            return 2
        if move == "spare_to_row":
            if not obj.spare:
                return 0
            rows.insert(0, obj.spare[0])
            obj.spare.pop(0)
            return 2
        if move == "swap_fields":
            obj.rows, obj.spare = obj.spare, obj.rows
            return 2
        kept = list(units)
        units.clear()
        units.extend(kept)
        return 2
    return f"move {move}", do


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_file_holds_exactly_what_the_object_holds(tmp_path_factory: Any, data: st.DataObject) -> None:
    extra = tuple(data.draw(st.lists(st.tuples(st.sampled_from([k.name for k in KINDS]), st.booleans()),
                                     max_size=6), label="schema"))
    live_cls, plain_cls = _classes(extra)
    where = tmp_path_factory.mktemp("fid") / "obj"
    kwargs = {}
    for f in dataclasses.fields(live_cls):
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kind = BY_NAME[f.name.split("_", 1)[1]]
            kwargs[f.name] = data.draw(kind.values(), label=f.name)
    obj = live_cls.open(where, default=lambda: live_cls(**kwargs))
    run = Run(obj, where, plain_cls, {f.name for f in dataclasses.fields(live_cls)
                                      if f.name.endswith(("_set", "_frozenset"))})
    run.check_seq("open")
    obj.snapshot()
    run.check_file()  # the fresh object: every field written, its defaults included

    for _ in range(data.draw(st.integers(1, 25), label="steps")):
        form = data.draw(st.sampled_from(["step", "step", "step", "step", "snapshot", "batch", "method"]))
        if form == "step":
            text, step = draw_step(data, obj)
            run.seq += step()
            run.check_seq(text)
            if text.startswith("move") or data.draw(st.integers(0, 3)) == 0:
                run.seq += probe(obj)  # everything the tree holds is still tracked
                run.check_seq(f"a probe after {text}")
        elif form == "snapshot":
            assert obj.snapshot() == run.seq
            run.check_file()
        else:
            # a batch (or a method-form call) of steps, perhaps with snapshots inside:
            # each stretch between snapshots that changed something counts once
            done: list[str] = []
            stretches = [0]
            inner = data.draw(st.integers(0, 5))

            def body(inner: int = inner, done: list[str] = done, stretches: list[int] = stretches) -> None:
                for _ in range(inner):  # each drawn when it runs: it sees the steps before it
                    if data.draw(st.integers(0, 4)):
                        text, step = draw_step(data, obj)
                        stretches[-1] += step()
                    else:
                        text = "snapshot"
                        obj.snapshot()
                        stretches.append(0)
                    done.append(text)

            if form == "batch":
                with obj.snapshot_batch():
                    body()
                run.seq += sum(1 for n in stretches if n)
            else:
                obj.apply([body])
                # one call, one mutation; a snapshot inside made what came before it final
                captured = len(stretches) > 1
                run.seq += sum(1 for n in stretches[:-1] if n) + (1 if stretches[-1] or not captured else 0)
            run.check_seq(f"{form} of {done}")
    obj.snapshot()
    run.check_file()
