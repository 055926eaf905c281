#!/usr/bin/env python3
"""Cost of mutation tracking, reads, construction and open(): each against its floor, interleaved.

    python bench/tracking.py           # full run (about 25 s)
    python bench/tracking.py --quick   # fewer, shorter rounds

Two tables from one run. The issue-13 rows pair a snapmixin operation with
its floor (a plain dataclass read, a bare counting ``__setattr__``, the count
policy, a plain dataclass built, a read + typed msgspec decode). The tracking
table builds the same three-field object (``x: int``, ``items: list``,
``d: dict``) with each library and times ``o.x = v``, ``o.items.append(v)``
and ``o.d["k"] = v``. Every cell is a timeit run (10 statements unrolled per
loop, values alternating so that no "same value, nothing to do" shortcut
applies, loops calibrated to --run-seconds); all cells run once per round,
in one order then the reverse (A B ... B A), for --repeat rounds; each cell
reports the median (min-max) of its rounds, each pair the median (min-max)
of its per-round ratios. Method in bench/README.md. This script measures; it
asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import shutil
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Measure this checkout, not whatever snapmixin happens to be installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bounds import read_checked
from _env import code_version, cpu_model

UNROLL = 10
TARGET_NS = 120.0
COUNTER = [0]


def count(*args: Any) -> None:
    """The listener / hook every tracking library calls: count, nothing else."""
    COUNTER[0] += 1


# ---------------------------------------------------------------------------
# The subjects. Each factory returns a fresh object with x, items and d.
# ---------------------------------------------------------------------------


@dataclass
class Plain:
    x: int = 0
    items: list = field(default_factory=list)
    d: dict = field(default_factory=dict)

    def m(self) -> int:
        return 0


@dataclass(slots=True)
class PlainSlots:
    x: int = 0
    items: list = field(default_factory=list)
    d: dict = field(default_factory=dict)


# (label, factory or None, why not available, {op: tracked?}, probe: did it notice a mutation?)
Subject = tuple[str, Callable[[], Any] | None, str, dict[str, bool], Callable[[Any], int] | None]
SUBJECTS: list[Subject] = []
ALL = {"assign": True, "append": True, "dict": True}
ASSIGN_ONLY = {"assign": True, "append": False, "dict": False}

SUBJECTS.append(("plain `@dataclass` (nothing tracked)", Plain, "", ALL, None))
SUBJECTS.append(("plain `@dataclass(slots=True)` (nothing tracked)", PlainSlots, "", ALL, None))

# -- snapmixin ----------------------------------------------------------------
_TMP = tempfile.mkdtemp(prefix="snapmixin-bench-tracking-")
try:
    from snapmixin import Snapshottable
except ImportError as e:
    _why = f"snapmixin: not available yet ({e})"
    for label in ("`Snapshottable` `@dataclass`", "`Snapshottable` `@dataclass(slots=True)`"):
        SUBJECTS.append((label, None, _why, ALL, None))
else:

    @dataclass
    class Snap(Snapshottable):
        x: int = 0
        items: list = field(default_factory=list)
        d: dict = field(default_factory=dict)

        def m(self) -> int:
            return 0

    @dataclass(slots=True)
    class SnapSlots(Snapshottable):
        x: int = 0
        items: list = field(default_factory=list)
        d: dict = field(default_factory=dict)

    def _seq(o: Any) -> int:
        return o.snapshot_seq

    SUBJECTS.append(("`Snapshottable` `@dataclass`, no store", Snap, "", ALL, _seq))
    SUBJECTS.append(("`Snapshottable` `@dataclass(slots=True)`, no store", SnapSlots, "", ALL, _seq))
    try:
        from snapmixin import snapshot_every
    except ImportError as e:
        SUBJECTS.append(("`Snapshottable` + `@snapshot_every`, bound", None,
                         f"snapmixin: `snapshot_every` not available yet ({e})", ALL, None))
    else:

        @snapshot_every(10**15)
        @dataclass
        class SnapEvery(Snapshottable):
            x: int = 0
            items: list = field(default_factory=list)
            d: dict = field(default_factory=dict)

        @snapshot_every(seconds=3600.0)
        @dataclass
        class SnapSeconds(Snapshottable):
            x: int = 0
            items: list = field(default_factory=list)
            d: dict = field(default_factory=dict)

        def _bound(cls: type) -> Callable[[], Any]:
            def make() -> Any:
                return cls().bind(os.path.join(_TMP, "never-written"))
            return make

        SUBJECTS.append(("`Snapshottable` + `@snapshot_every(10**15)`, bound (never fires)",
                         _bound(SnapEvery), "", ALL, _seq))
        SUBJECTS.append(("`Snapshottable` + `@snapshot_every(seconds=3600)`, bound (never fires)",
                         _bound(SnapSeconds), "", ALL, _seq))

# -- attrs --------------------------------------------------------------------
try:
    import attrs
except ImportError as e:
    SUBJECTS.append(("attrs `on_setattr` hook", None, f"attrs: not installed ({e})", ASSIGN_ONLY, None))
else:

    def _hook(inst: Any, attrib: Any, value: Any) -> Any:
        COUNTER[0] += 1
        return value

    @attrs.define(on_setattr=_hook)
    class AttrsHooked:
        x: int = 0
        items: list = attrs.Factory(list)
        d: dict = attrs.Factory(dict)

    SUBJECTS.append(("attrs `@define(on_setattr=hook)` (slots), hook counts", AttrsHooked, "",
                     ASSIGN_ONLY, lambda o: COUNTER[0]))

# -- pydantic -----------------------------------------------------------------
try:
    import pydantic
except ImportError as e:
    SUBJECTS.append(("pydantic `validate_assignment`", None, f"pydantic: not installed ({e})",
                     ASSIGN_ONLY, None))
else:

    class PydModel(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(validate_assignment=True)
        x: int = 0
        items: list = pydantic.Field(default_factory=list)
        d: dict = pydantic.Field(default_factory=dict)

    SUBJECTS.append(("pydantic `BaseModel`, `validate_assignment=True`", PydModel, "", ASSIGN_ONLY, None))

# -- psygnal ------------------------------------------------------------------
try:
    from psygnal import evented
    from psygnal.containers import EventedDict, EventedList
except ImportError as e:
    SUBJECTS.append(("psygnal evented dataclass", None, f"psygnal: not installed ({e})", ALL, None))
else:

    @evented
    @dataclass
    class Evented:
        x: int = 0
        items: EventedList = field(default_factory=EventedList)
        d: EventedDict = field(default_factory=EventedDict)

    def _evented_fields() -> Any:
        o = Evented()
        o.events.x.connect(count)  # the signals these three statements emit, one listener each
        o.items.events.inserted.connect(count)
        o.d.events.added.connect(count)
        o.d.events.changed.connect(count)
        return o

    def _evented_group() -> Any:
        o = Evented()
        o.events.connect(count)  # every event of the object and its children, with its path
        return o

    SUBJECTS.append(("psygnal `@evented` dataclass, `EventedList`/`EventedDict` fields, "
                     "a listener on each signal used", _evented_fields, "", ALL, lambda o: COUNTER[0]))
    SUBJECTS.append(("psygnal, the same, one listener on the whole group (`o.events.connect`)",
                     _evented_group, "", ALL, lambda o: COUNTER[0]))

# -- persistent (ZODB) --------------------------------------------------------
try:
    from persistent import Persistent
    from persistent.list import PersistentList
    from persistent.mapping import PersistentMapping
except ImportError as e:
    SUBJECTS.append(("persistent", None, f"persistent: not installed ({e})", ALL, None))
else:

    class _Jar:
        """The least a data manager needs: persistent calls register() on the first change."""

        def register(self, obj: Any) -> None:
            COUNTER[0] += 1

    class Pers(Persistent):
        def __init__(self) -> None:
            self.x = 0
            self.items = PersistentList()
            self.d = PersistentMapping()

    def _persistent() -> Any:
        o = Pers()
        jar = _Jar()
        for i, p in enumerate((o, o.items, o.d)):
            p._p_jar = jar  # as if loaded from a database: changes are tracked
            p._p_oid = (i + 1).to_bytes(8, "big")
        return o

    SUBJECTS.append(("persistent `Persistent` + `PersistentList`/`PersistentMapping`, in a jar",
                     _persistent, "", ALL, lambda o: sum(bool(p._p_changed) for p in (o, o.items, o.d))))

# -- SQLAlchemy ext.mutable ---------------------------------------------------
try:
    from sqlalchemy import JSON, Integer, create_engine
    from sqlalchemy import inspect as sa_inspect
    from sqlalchemy.ext.mutable import MutableDict, MutableList
    from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
except ImportError as e:
    SUBJECTS.append(("SQLAlchemy", None, f"sqlalchemy: not installed ({e})", ALL, None))
else:

    class _Base(DeclarativeBase):
        pass

    class Row(_Base):
        __tablename__ = "bench_row"
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        x: Mapped[int] = mapped_column(Integer, default=0)
        items: Mapped[list] = mapped_column(MutableList.as_mutable(JSON))
        d: Mapped[dict] = mapped_column(MutableDict.as_mutable(JSON))

    _engine = create_engine("sqlite://")  # in memory
    _Base.metadata.create_all(_engine)
    _session = Session(_engine, expire_on_commit=False)

    def _row() -> Any:
        # A clean, persistent row (as if just loaded): every change goes through
        # the attribute instrumentation or MutableList/MutableDict.changed().
        r = Row(x=0, items=[], d={})
        _session.add(r)
        _session.commit()
        return r

    SUBJECTS.append(("SQLAlchemy ORM row in a session, `MutableList`/`MutableDict` JSON columns",
                     _row, "", ALL, lambda o: int(sa_inspect(o).modified)))


# ---------------------------------------------------------------------------
# The issue-13 rows: each a pair (subject, floor), timed in the same rounds
# ---------------------------------------------------------------------------


@dataclass
class BareCounted:
    """The floor of a tracked assignment: a Python ``__setattr__`` that stores and counts, nothing else."""

    x: int = 0
    items: list = field(default_factory=list)
    d: dict = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        _store(self, name, value)
        c = _BARE
        c.seq += 1


@dataclass
class BareDictCounted:
    """The other plain way to store from a ``__setattr__``: straight into the instance ``__dict__``
    (no call; on CPython 3.11 it costs every later read of the object about 4x, see mixin.py)."""

    x: int = 0
    items: list = field(default_factory=list)
    d: dict = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value
        c = _BARE
        c.seq += 1


class _Counter:
    __slots__ = ("seq",)

    def __init__(self) -> None:
        self.seq = 0


_BARE = _Counter()
_store = object.__setattr__
try:
    from snapmixin.tracking import TrackedDict as _TD
    from snapmixin.tracking import TrackedList as _TL
except ImportError:  # pragma: no cover - reported by the snapmixin rows
    pass
OPEN_ITEMS = 20_000

try:
    import msgspec
except ImportError:  # pragma: no cover - a dependency of snapmixin
    msgspec = None

if "Snapshottable" in globals():

    @dataclass
    class Item(Snapshottable):
        name: str = ""
        n: int = 0
        tags: list[str] = field(default_factory=list)

    @dataclass
    class Tree(Snapshottable):
        items: list[Item] = field(default_factory=list)

    @dataclass
    class PlainItem:
        name: str = ""
        n: int = 0
        tags: list[str] = field(default_factory=list)

    @dataclass
    class PlainTree:
        items: list[PlainItem] = field(default_factory=list)

    class Envelope(msgspec.Struct):
        state: PlainTree

    # A strict decode (open_least_checked): msgspec refuses unknown keys only for Structs, so the
    # file is decoded into Structs mirroring the state (forbid_unknown_fields), then converted.
    class ItemStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        name: str = ""
        n: int = 0
        tags: list[str] = []

    class TreeStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        items: list[ItemStrict] = []

    class EnvelopeStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
        format: str
        format_version: int
        seq: int
        schema_version: int
        created_at: str
        state: TreeStrict
        checksum: str


# (label, floor's label, statement and setup for the subject, the same for the floor, statements per
# loop, target ratio or None for a reference row)
Pair = tuple[str, str, str, str, str, str, int, float | None]


def _pairs() -> list[Pair]:
    if "Snap" not in globals():
        return []
    rows: list[Pair] = []
    assigned = "o = {}(); o.x = 1; o.items = [1]; o.d = {{'k': 1}}; o.x = 2"
    rows.append(("read `o.x`: `Snapshottable` `@dataclass`", "plain `@dataclass`",
                 "o.x\n" * UNROLL, assigned.format("Snap"), "o.x\n" * UNROLL, assigned.format("Plain"),
                 UNROLL, 1.3))
    rows.append(("call `o.m()`: `Snapshottable` `@dataclass` (reference, no target)", "plain `@dataclass`",
                 "o.m()\n" * UNROLL, assigned.format("Snap"), "o.m()\n" * UNROLL, assigned.format("Plain"),
                 UNROLL, None))
    rows.append(("`o.x = v`: `Snapshottable` `@dataclass`, no store",
                 "bare `__setattr__`: `object.__setattr__` + a counter",
                 stmt_for("assign"), "o = Snap()", stmt_for("assign"), "o = BareCounted()", UNROLL, 1.1))
    rows.append(("`o.x = v`: `Snapshottable` `@dataclass`, no store",
                 "bare `__setattr__`: `self.__dict__[name] = v` + a counter",
                 stmt_for("assign"), "o = Snap()", stmt_for("assign"), "o = BareDictCounted()", UNROLL, 1.1))
    if "SnapSeconds" in globals():
        rows.append(("`o.x = v`: `@snapshot_every(seconds=3600)`, bound (a clock read per stride)",
                     "`@snapshot_every(10**15)`, bound",
                     stmt_for("assign"), "o = SEC()", stmt_for("assign"), "o = EVERY()", UNROLL, 1.15))
    rows.append(("`Snapshottable` `@dataclass` construction, `Snap()`", "plain `@dataclass`, `Plain()`",
                 "Snap()\n" * UNROLL, "", "Plain()\n" * UNROLL, "", UNROLL, 3.0))
    rows.append(("`Snapshottable` `@dataclass` construction, `Snap()`",
                 "reference, no target: the dataclass with the bare counting `__setattr__` "
                 "(`object.__setattr__`), `BareCounted()`",
                 "Snap()\n" * UNROLL, "", "BareCounted()\n" * UNROLL, "", UNROLL, None))
    rows.append((f"`Tree.open(dir)`: {OPEN_ITEMS:,} nested `Snapshottable`s",
                 "read the file + `msgspec.json.decode(data, type=Envelope)` into plain dataclasses",
                 "open_tree()", "", "floor_open()", "", 1, 2.0))
    # The least any design that keeps the guarantees must do, written out by hand (no function
    # of snapmixin's own): what bounds the two rows above from below (see build_least, open_least).
    rows.append(("lower bound, by hand: `Plain()` + a counter object + tracked copies of its list and "
                 "dict (reference, no target)", "plain `@dataclass`, `Plain()`",
                 "build_least()\n" * UNROLL, "", "Plain()\n" * UNROLL, "", UNROLL, None))
    rows.append(("lower bound, by hand, for a class whose own `__init__` assigns through a Python "
                 "`__setattr__` (as it must, for assignments to be counted): `BareCounted()` + a counter "
                 "object + tracked copies of its list and dict (reference, no target)",
                 "plain `@dataclass`, `Plain()`",
                 "build_least(BareCounted)\n" * UNROLL, "", "Plain()\n" * UNROLL, "", UNROLL, None))
    rows.append(("lower bound, by hand: the floor's read + decode, then a tracked list per item and a "
                 "pointer to the counter (reference, no target)",
                 "read the file + `msgspec.json.decode(data, type=Envelope)` into plain dataclasses",
                 "open_least()", "", "floor_open()", "", 1, None))
    rows.append(("lower bound, by hand, with the checks every restore makes: the file's SHA-256 (in a "
                 "thread from 1 MiB, during the decode), a strict decode (Structs with "
                 "`forbid_unknown_fields`, converted), then a tracked list per item, a pointer to the "
                 "counter and a count of places per item (reference, no target)",
                 "read the file + `msgspec.json.decode(data, type=Envelope)` into plain dataclasses",
                 "open_least_checked()", "", "floor_open()", "", 1, None))
    return rows


class _Least:
    """The counter of build_least / open_least: what a tree's root must hold at the least."""

    __slots__ = ("due", "obj", "seq")


def build_least(make: Any = Plain) -> Any:
    """A plain dataclass given what any sound design must give a new object: a counter that its
    containers report to (and that can find the object to save it), tracked copies of its list and
    dict. No ``__init__`` wrapper, no assignment through a Python ``__setattr__``, no bookkeeping.

    ``make=BareCounted``: the same for a class whose ``__init__`` assigns each field through a
    Python ``__setattr__`` that stores and counts, as the ``__init__`` of any class whose
    assignments are counted does (the dataclass's own ``__init__``, not a generated one)."""
    o = make()
    c = _Least()
    c.seq, c.due, c.obj = 0, 1 << 62, o
    _store(o, "_c", c)
    lst = _TL.__new__(_TL)
    lst._root, lst._refs = c, 1
    list.extend(lst, o.items)
    _store(o, "items", lst)
    d = _TD.__new__(_TD)
    d._root, d._refs, d._deep = c, 1, False
    dict.update(d, o.d)
    _store(o, "d", d)
    return o


def _open_fixtures() -> dict[str, Any]:
    """A bound store holding a tree of OPEN_ITEMS nested objects, and the floor's types."""
    where = os.path.join(_TMP, "open-tree")
    tree = Tree([Item(f"item {i}", i, ["a", "b"]) for i in range(OPEN_ITEMS)]).bind(where)
    tree.snapshot()
    path = os.path.join(where, "snapshot.json")

    def read_decode() -> Any:
        with open(path, "rb") as f:
            return msgspec.json.decode(f.read(), type=Envelope)

    def checked_decode() -> Any:
        # What restoring that file must do at the least with msgspec's public API: the checksum
        # of every byte before the trailer (in a thread from 1 MiB, while the state is decoded, as
        # snapmixin does), a strict decode, the checksum compared, then the state's classes built.
        env = read_checked(path, EnvelopeStrict)
        return msgspec.convert(env.state, PlainTree, from_attributes=True)

    def open_least(decode: Callable[[], Any] = lambda: read_decode().state, places: bool = False) -> Any:
        # The floor's work, then per nested object the least a sound adoption does: its list made a
        # tracked one (it can be appended to) and a pointer to the root's counter (no state object).
        # `places`: also its count of places in the tree (what keeps a moved object counting).
        tree = decode()
        c = _Least()
        c.seq, c.due, c.obj = 0, 1 << 62, tree
        items = _TL.__new__(_TL)
        items._root, items._refs = c, 1
        for it in tree.items:
            lst = _TL.__new__(_TL)
            lst._root, lst._refs = c, 1
            list.extend(lst, it.tags)
            _store(it, "tags", lst)
            _store(it, "_c", c)
            if places:
                _store(it, "_p", 1)
            list.append(items, it)
        _store(tree, "items", items)
        return tree

    got = read_decode().state
    back = Tree.open(where)
    checked = open_least(checked_decode)
    if (len(got.items) != OPEN_ITEMS or len(back.items) != OPEN_ITEMS or back.items[7].name != "item 7"
            or len(checked.items) != OPEN_ITEMS or checked.items[7].tags != ["a", "b"]):
        print("\nWARNING: the open() fixture did not round-trip")
    return {"open_tree": lambda: Tree.open(where), "floor_open": read_decode, "open_least": open_least,
            "open_least_checked": lambda: open_least(checked_decode, True)}


# ---------------------------------------------------------------------------
# Timing: every cell timed once per round, rounds interleaved (A B A B ...)
# ---------------------------------------------------------------------------

OPS = {
    "assign": "o.x = 1\no.x = 2\n",
    "append": "o.items.append(1)\n",
    "dict": "o.d['k'] = 1\no.d['k'] = 2\n",
}


def stmt_for(op: str) -> str:
    body = OPS[op]
    per = body.count("\n")
    return body * (UNROLL // per)


class Cell:
    """One thing timed: a timeit.Timer, calibrated once, then run once per round."""

    def __init__(self, stmt: str, setup: str, env: dict[str, Any], per_loop: int, run_seconds: float) -> None:
        self.timer = timeit.Timer(stmt, setup=setup, globals=env)
        self.per_loop = per_loop
        number = 1
        while True:  # calibrate: loops for one run of about run_seconds
            t = self.timer.timeit(number)
            if t >= run_seconds / 4:
                number = max(1, int(number * run_seconds / t))
                break
            number *= 4
        self.number = number
        self.samples: list[float] = []

    def run(self) -> float:
        ns = self.timer.timeit(self.number) / (self.number * self.per_loop) * 1e9
        self.samples.append(ns)
        return ns


def run_rounds(cells: list[Cell], rounds: int) -> None:
    """Time every cell once per round; the order is reversed every other round."""
    for r in range(rounds):
        for cell in (cells if r % 2 == 0 else cells[::-1]):
            cell.run()


def noticed(factory: Callable[[], Any], probe: Callable[[Any], int] | None, op: str) -> bool | None:
    """Whether the library saw one mutation (None: nothing to ask it)."""
    if probe is None:
        return None
    o = factory()
    before = probe(o)
    exec(OPS[op].splitlines()[0], {"o": o})
    return probe(o) != before


def fmt(ns: float) -> str:
    if ns >= 10_000:
        return f"{ns / 1000:,.0f} us"
    return f"{ns:.0f}" if ns >= 10 else f"{ns:.1f}"


def spread(xs: list[float], f: Callable[[float], str] = fmt) -> str:
    """Median, with min-max."""
    return f"{f(statistics.median(xs))} ({f(min(xs))}-{f(max(xs))})"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="5 rounds of 10 ms runs instead of 15 of 20 ms")
    p.add_argument("--repeat", type=int, default=None, help="rounds (each cell timed once per round)")
    p.add_argument("--run-seconds", type=float, default=None, help="length of one run")
    args = p.parse_args()
    rounds = args.repeat or (5 if args.quick else 15)
    run_seconds = args.run_seconds or (0.01 if args.quick else 0.02)

    libs = ", ".join(f"{d} {version(d)}" for d in ("snapmixin", "msgspec", "attrs", "pydantic", "psygnal",
                                                    "persistent", "SQLAlchemy"))
    print(f"bench/tracking.py, {dt.date.today().isoformat()}, {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.system()} {platform.release()}, CPU: {cpu_model()} "
          f"({os.cpu_count()} logical); {libs}{', --quick' if args.quick else ''}")
    print(f"Code measured: {code_version()}; load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    warnings = []
    try:
        env: dict[str, Any] = dict(globals())
        pairs = _pairs()
        if pairs:
            env.update(_open_fixtures())
            env["SEC"] = _bound(SnapSeconds) if "SnapSeconds" in globals() else None
            env["EVERY"] = _bound(SnapEvery) if "SnapEvery" in globals() else None
        lib: list[tuple[Subject, dict[str, Cell]]] = []
        all_cells: list[Cell] = []
        pair_cells: list[tuple[Pair, Cell, Cell]] = []
        for pair in pairs:
            a = Cell(pair[2], pair[3], env, pair[6], run_seconds)
            b = Cell(pair[4], pair[5], env, pair[6], run_seconds)
            pair_cells.append((pair, a, b))
            all_cells += [a, b]
        for subject in SUBJECTS:
            label, factory, why, tracked, probe = subject
            cells: dict[str, Cell] = {}
            if factory is not None:
                for op in ("assign", "append", "dict"):
                    cells[op] = Cell(stmt_for(op), "o = factory()", {"factory": factory}, UNROLL, run_seconds)
                    seen = noticed(factory, probe, op)
                    if tracked[op] and seen is False:
                        warnings.append(f"{label}: `{OPS[op].splitlines()[0]}` was not noticed "
                                        "by the library")
                all_cells += cells.values()
            lib.append((subject, cells))
        run_rounds(all_cells, rounds)
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)

    print()
    print(f"### Issue 13 rows: each against its floor, {rounds} interleaved rounds "
          f"(runs of ~{run_seconds * 1e3:.0f} ms, GC off)")
    print()
    print("| row | snapmixin, ns | floor | floor, ns "
          "| ratio: median (min-max) of the paired rounds | target |")
    print("|---|--:|---|--:|--:|---|")
    for (label, floor_label, *_, target), a, b in pair_cells:
        ratios = [x / y for x, y in zip(a.samples, b.samples, strict=True)]
        met = "" if target is None else \
            f"<= {target}x **{'met' if statistics.median(ratios) <= target else 'missed'}**"
        print(f"| {label} | {spread(a.samples)} | {floor_label} | {spread(b.samples)} "
              f"| {spread(ratios, ratio)} | {met} |")
    print()
    print(f"`open()` rows: ns per call of the whole operation ({OPEN_ITEMS:,} items); the others: ns per "
          f"statement ({UNROLL} unrolled per loop). Ratios are per round (subject / floor, timed next to "
          "each other), then the median and extremes of those.")
    print()
    print(f"### Mutation tracking: ns per operation, median (min-max) of {rounds} interleaved rounds")
    print()
    print("| object | `o.x = v` | `o.items.append(v)` | `o.d['k'] = v` "
          "| target: <= 120 ns assign and append |")
    print("|---|--:|--:|--:|---|")
    for (label, factory, why, tracked, _probe), cells in lib:
        if factory is None:
            print(f"| {label} | {why} | | | |")
            continue
        out = [spread(cells[op].samples) + ("" if tracked[op] else " (untracked)")
               for op in ("assign", "append", "dict")]
        target = ""
        med = {op: statistics.median(c.samples) for op, c in cells.items()}
        if label.startswith("`Snapshottable`") and "slots=True" in label:
            target = "not set (issue 3: slots classes reported on their own row)"
        elif label.startswith("`Snapshottable`"):
            target = ", ".join(f"{what} **{'met' if med[op] <= TARGET_NS else 'missed'}**"
                               for what, op in (("assign", "assign"), ("append", "append")))
        print(f"| {label} | " + " | ".join(out) + f" | {target} |")
    print()
    print("\"(untracked)\": the library does not see this change (a plain list or dict inside it); the "
          "number is the cost of the plain operation there. Listeners and hooks do one thing: add 1 to a "
          "counter. Loop overhead (under 1 ns per statement after unrolling) is not subtracted.")
    print(f"\nLoad average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for w in warnings:
        print(f"\nWARNING: {w}")


if __name__ == "__main__":
    main()
