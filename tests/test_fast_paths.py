"""The fast paths of issue 13: attribute reads after tracked assignments (CPython 3.11's split
dicts), a ``seconds=`` policy that does not read the clock at every mutation (a stride bounded in
time), and cheaper construction."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapmixin import Snapshottable, snapshot_every


def disk_seq(path: Path) -> int | None:
    try:
        seq: int = json.loads((path / "snapshot.json").read_text("utf-8"))["seq"]
    except FileNotFoundError:
        return None
    return seq


@dataclass
class Box(Snapshottable):
    x: int = 0
    items: list[int] = field(default_factory=list)


# ---------------------------------------------------------------------------
# reads: the instance dict the assignment fast path stores into
# ---------------------------------------------------------------------------


def test_the_fast_path_stores_into_the_objects_own_dict_which_stays_the_same_dict() -> None:
    box = Box()
    held = vars(box)  # held before the first tracked assignment
    box.x = 5
    box.x = 6
    assert vars(box) is held and held["x"] == 6 and box.x == 6
    assert list(held) == ["_snapmixin", "x", "items"] and box.snapshot_seq == 2
    assert box == Box(6, [])  # the dict holds nothing else (no key of the 3.11 conversion left)


def test_on_3_11_the_dict_is_no_longer_split_and_elsewhere_it_stays_shared() -> None:
    # A split dict (sharing its class's keys, as CPython makes for instances) does not count the
    # shared keys in its size; a combined one does. 3.11 reads split dicts through a slow generic
    # path (about 4x a plain read): there the fast path makes the dict combined; 3.12+ read split
    # dicts at full speed, and keep the memory saving.
    fresh, box = Box(), Box()
    split = sys.getsizeof(vars(fresh))  # reading __dict__ makes the (split) dict
    box.x = 1  # the fast path learns `x` and takes the dict
    if sys.version_info[:2] == (3, 11):
        assert sys.getsizeof(vars(box)) > split
    else:
        assert sys.getsizeof(vars(box)) == split


# ---------------------------------------------------------------------------
# seconds=: the clock read every `stride` mutations, bounded in time (policy.Schedule.stride)
# ---------------------------------------------------------------------------


class FakeClock:
    """time.monotonic for the policy: each mutation advances it by ``step`` (nothing real waits)."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


@snapshot_every(seconds=1.0)
@dataclass
class EverySecond(Snapshottable):
    n: int = 0


@snapshot_every(seconds=0.01)
@dataclass
class Fast(Snapshottable):
    n: int = 0


def _run_until_saved(obj: Any, d: Path, clock: FakeClock, limit: int) -> tuple[int, float]:
    """Mutate (the clock advancing by its step each time) until a snapshot lands: its seq, and the
    clock at the mutation that took it."""
    for _ in range(limit):
        clock.now += clock.step
        obj.n += 1
        if obj.snapshot_unsaved == 0:
            seq = disk_seq(d)
            assert seq is not None
            return seq, clock.now
    raise AssertionError("no snapshot")


def test_a_slow_mutator_snapshots_at_its_first_mutation_past_the_deadline(
        tmp_path: Path, monkeypatch: Any) -> None:
    clock = FakeClock(step=0.002)  # 2 ms a mutation: slower than the 1 ms budget
    monkeypatch.setattr(time, "monotonic", clock)
    d = tmp_path / "slow"
    obj = EverySecond.open(d)
    start = clock.now
    seq, at = _run_until_saved(obj, d, clock, 10_000)
    # The first mutation at or past start + 1 s took it: exactly, however many came before.
    assert at >= start + 1.0 > at - clock.step
    assert seq == 500 or seq == 501  # (float steps: 1.0 / 0.002)
    assert clock.reads >= seq  # every mutation looked


def test_a_busy_mutator_snapshots_within_the_budget_and_reads_the_clock_rarely(
        tmp_path: Path, monkeypatch: Any) -> None:
    from snapmixin.policy import MAX_STRIDE, WARMUP

    clock = FakeClock(step=1e-6)  # 1 us a mutation; budget: min(1 ms, 1% of 10 ms) = 0.1 ms
    monkeypatch.setattr(time, "monotonic", clock)
    d = tmp_path / "busy"
    obj = Fast.open(d)
    st = obj.__snapmixin_node__()
    assert st is not None
    deadline = clock.now + 0.01
    seq, at = _run_until_saved(obj, d, clock, 100_000)
    assert deadline <= at <= deadline + 0.0001 + 1e-9  # within the budget (fake time: no waiting)
    assert seq >= 9_999
    assert clock.reads < WARMUP + 2 * seq / MAX_STRIDE + 10  # about one read per MAX_STRIDE mutations
    # The next period: the stride starts again at 1 (refresh_due), grows again.
    assert st.stride == 1 and st.due == st.seq + 1


def test_a_pause_inside_a_stride_costs_at_most_the_rest_of_that_stride(
        tmp_path: Path, monkeypatch: Any) -> None:
    from snapmixin.policy import MAX_STRIDE

    clock = FakeClock(step=1e-6)
    monkeypatch.setattr(time, "monotonic", clock)
    d = tmp_path / "pause"
    obj = Fast.open(d)
    st = obj.__snapmixin_node__()
    assert st is not None
    for _ in range(2000):  # busy, far from the deadline: the stride grows to its largest
        clock.now += clock.step
        obj.n += 1
    assert st.stride == MAX_STRIDE and disk_seq(d) is None
    clock.now += 60.0  # a pause across the deadline, inside a stride
    clock.step = 1.0  # then slow mutations
    before = obj.snapshot_seq
    seq, _ = _run_until_saved(obj, d, clock, MAX_STRIDE + 1)
    assert seq - before <= MAX_STRIDE  # the rest of the stride, then the look that takes it
    # The long stride set it back to 1: the next period is exact for this slow mutator.
    for _ in range(3):
        clock.now += 1.0
        obj.n += 1
        assert obj.snapshot_unsaved == 0  # 1 s > 10 ms: each mutation is past its deadline


def test_stride_rules() -> None:
    from snapmixin.policy import MAX_STRIDE, WARMUP, Schedule

    s = Schedule(None, 30.0)
    assert s.budget() == 0.001 and Schedule(None, 0.05).budget() == 0.0005
    assert s.stride(1, WARMUP - 1, 0.0) == 1  # the first unsaved mutations: every one looks
    assert s.stride(1, WARMUP, 0.0) == 2  # then it doubles...
    assert s.stride(MAX_STRIDE, 10**6, 0.0) == MAX_STRIDE  # ...up to MAX_STRIDE
    assert s.stride(8, 10**6, 0.0005) == 16  # 8 took 0.5 ms: 16 fit into 1 ms
    assert s.stride(8, 10**6, 0.0008) == 10  # 8 took 0.8 ms: 10 fit
    assert s.stride(8, 10**6, 0.002) == 1  # took longer than the budget: back to 1


# ---------------------------------------------------------------------------
# construction: what an object is given, and when
# ---------------------------------------------------------------------------


def test_an_object_built_by_new_alone_has_no_state_until_first_used() -> None:
    from snapmixin.mixin import _slot

    o = Box.__new__(Box)  # as a decoder or copy builds one
    assert _slot(o) is None  # no placeholder made for it
    o.x = 3
    o.items = [1]
    st = o.__snapmixin_node__()
    assert st is not None and o.snapshot_seq == 2
    o.items.append(2)
    assert o.snapshot_seq == 3 and o.items == [1, 2]


def test_fields_stored_in_init_are_linked_once_at_its_end() -> None:
    seen: list[Any] = []

    @dataclass
    class Post(Snapshottable):
        items: list[int] = field(default_factory=list)
        kids: list[Box] = field(default_factory=list)

        def __post_init__(self) -> None:
            self.items.append(1)  # inside __init__: not counted
            self.kids.append(Box(1))
            seen.append((type(self.items), self.snapshot_seq))

    p = Post()
    assert seen == [(list, 0)]  # stored as is while __init__ ran
    assert type(p.items).__name__ == "TrackedList" and p.snapshot_seq == 0
    kid = p.kids[0]
    kid.x = 5  # the nested object reports to p's counter
    p.items.append(2)
    assert p.snapshot_seq == 2 and kid.snapshot_seq == 2


def test_containers_given_to_init_become_tracked_copies_at_every_depth() -> None:
    """The end of ``__init__`` copies a list of scalars, an empty or a filled dict and nested
    containers into tracked ones of the object's tree: the caller's containers stay its own
    (changing them changes nothing here, counts nothing), and every level counts."""

    @dataclass
    class Many(Snapshottable):
        flat: list[int] = field(default_factory=list)
        nested: list[list[int]] = field(default_factory=list)
        empty: dict[str, int] = field(default_factory=dict)
        filled: dict[str, list[int]] = field(default_factory=dict)
        tags: set[str] = field(default_factory=set)

    flat, inner, filled_inner = [1, 2], [3], [4]
    m = Many(flat, [inner], {}, {"k": filled_inner}, {"a"})
    names = {k: type(getattr(m, k)).__name__ for k in ("flat", "nested", "empty", "filled", "tags")}
    assert names == {"flat": "TrackedList", "nested": "TrackedList", "empty": "TrackedDict",
                     "filled": "TrackedDict", "tags": "TrackedSet"}
    assert m.flat == [1, 2] and m.flat is not flat and m.nested[0] is not inner
    flat.append(9)
    inner.append(9)
    filled_inner.append(9)
    assert (m.flat, m.nested, m.filled) == ([1, 2], [[3]], {"k": [4]})
    assert m.snapshot_seq == 0
    m.flat.append(3)
    m.nested[0].append(4)
    m.empty["x"] = 1
    m.filled["k"].append(5)
    m.tags.add("b")
    assert m.snapshot_seq == 5


def test_a_name_first_held_by_a_later_object_is_linked_for_every_object_after_it() -> None:
    """A plain class whose ``__init__`` stores a container in a name only some of its objects
    use: the names the end of ``__init__`` looks at grow with the first object using it."""

    class Odd(Snapshottable):
        def __init__(self, n: int) -> None:
            self.n = n
            if n % 2:
                setattr(self, f"odd{n}", [n])

        def __snapshot_state__(self) -> Any:
            return {"n": self.n}

        @classmethod
        def __from_snapshot_state__(cls, value: Any) -> Any:
            return cls(value["n"])

    objs = [Odd(i) for i in range(6)]
    for o in objs:
        for name, value in vars(o).items():
            if name.startswith("odd"):
                assert type(value).__name__ == "TrackedList", (o.n, name)
                value.append(0)
                assert o.snapshot_seq == 1
    assert [o.snapshot_seq for o in objs] == [0, 1, 0, 1, 0, 1]


def test_objects_of_a_class_share_one_placeholder_while_their_init_runs() -> None:
    from snapmixin.mixin import _Init, _slot

    during: list[Any] = []

    @dataclass
    class Held(Snapshottable):
        items: list[int] = field(default_factory=list)

        def __post_init__(self) -> None:
            during.append(_slot(self))

    a, b = Held(), Held()
    assert type(during[0]) is _Init and during[0] is during[1]  # one per class, not one per object
    sa, sb = a.__snapmixin_node__(), b.__snapmixin_node__()
    assert sa is not None and sb is not None and sa is not sb  # each its own state once built
    a.items.append(1)
    assert (a.snapshot_seq, b.snapshot_seq) == (1, 0)


class Loose(Snapshottable):
    """A plain class: its attributes are known only from what __init__ assigns."""

    def __init__(self, inner: bool) -> None:
        if inner:
            self.extra = 0  # a scalar, in the name the outer object holds a list in
            return
        self.extra = [1]
        self.other = Loose(True)  # another object of the class, built while this one is

    def __snapshot_state__(self) -> Any:
        return {"extra": self.extra}

    @classmethod
    def __from_snapshot_state__(cls, value: Any) -> Loose:
        obj = cls.__new__(cls)
        obj.extra = value["extra"]
        return obj


def test_a_scalar_stored_by_one_object_in_its_init_does_not_hide_anothers_container() -> None:
    outer = Loose(False)
    assert type(outer.extra).__name__ == "TrackedList" and outer.snapshot_seq == 0
    outer.extra.append(2)
    assert outer.snapshot_seq == 1
    outer.other.extra = 5  # the nested one reports to the outer's counter
    assert outer.snapshot_seq == 2 and outer.extra == [1, 2]


def test_a_scalar_replacing_another_trees_container_inside_init_leaves_that_tree_alone() -> None:
    """Inside ``__init__`` nothing is linked yet: replacing a value stored there must not take a
    place away from the tree that value really belongs to."""
    owner = Box()
    owner.items.append(1)
    lent: list[Any] = [owner]

    @dataclass
    class Borrower(Snapshottable):
        x: Any = None

        def __post_init__(self) -> None:
            self.x = lent[0].items  # another tree's tracked list, stored while building...
            self.x = 5  # ...then replaced by a scalar before __init__ ends

    before = owner.snapshot_seq
    b = Borrower()
    owner.items.append(2)  # still in owner's tree: counted there
    assert owner.snapshot_seq == before + 1
    assert b.x == 5 and b.snapshot_seq == 0


def test_an_object_whose_init_raised_is_tracked_from_its_first_mutation() -> None:
    kept: list[Any] = []

    @dataclass
    class Fails(Snapshottable):
        x: int = 0
        items: list[int] = field(default_factory=list)

        def __post_init__(self) -> None:
            kept.append(self)
            raise ValueError("no")

    try:
        Fails()
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("__post_init__ did not raise")
    obj = kept[0]
    obj.x = 1  # counted (not taken for an assignment inside __init__), and it adopts the object
    assert obj.snapshot_seq == 1 and type(obj.items).__name__ == "TrackedList"
    obj.items.append(3)
    assert obj.snapshot_seq == 2


def test_a_state_makes_its_write_lock_and_call_counters_at_first_use(tmp_path: Path) -> None:
    box = Box()
    st = box.__snapmixin_node__()
    assert st is not None
    assert st.wlock is None and "_calls" not in st.__dict__ and st.store is None
    box.bind(tmp_path / "b")
    box.x = 1
    box.snapshot()
    assert isinstance(st.wlock, type(threading.Lock())) and st.saved_seq == 1
    assert st.calls == {} and st.calls is st.calls
