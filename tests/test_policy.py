"""@snapshot_every: thresholds, the method form, batches, time, both forms, failures."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from snapmixin import Snapshottable, SnapStore, snapshot_every
from snapmixin.errors import SnapError, StoreLocked
from snapmixin.tracking import TrackedList
from tests.crashfs import DiskFull


def disk_seq(path: Path) -> int | None:
    """The seq of the committed snapshot (None when there is none), read with nothing but json."""
    try:
        text = (path / "snapshot.json").read_text("utf-8")
    except FileNotFoundError:
        return None
    seq: int = json.loads(text)["seq"]
    return seq


def disk_state(path: Path) -> Any:
    return json.loads((path / "snapshot.json").read_text("utf-8"))["state"]


@snapshot_every(3)
@dataclass
class Every3(Snapshottable):
    n: int = 0
    items: list[int] = field(default_factory=list)


@dataclass
class Mover(Snapshottable):
    x: int = 0
    y: int = 0
    trail: list[tuple[int, int]] = field(default_factory=list)

    @snapshot_every(10)
    def move(self, dx: int) -> None:
        # several assignments per call: the file must never hold a call half done
        self.x += dx
        self.trail.append((self.x, self.y))
        self.y = self.x

    @snapshot_every(2)
    def jump(self) -> None:
        self.move(5)  # a decorated call inside another: one mutation in all
        self.move(5)

    @snapshot_every(1)
    def fail(self) -> None:
        self.x += 1
        raise ValueError("half done")


@snapshot_every(4)
@dataclass
class BothForms(Mover):
    pass


@snapshot_every(seconds=30)
@dataclass
class Timed(Snapshottable):
    n: int = 0


@snapshot_every(5, seconds=60.0)
@dataclass
class CountOrTime(Snapshottable):
    n: int = 0


def test_class_form_writes_at_3_6_9_and_not_between(tmp_path: Path) -> None:
    d = tmp_path / "e3"
    obj = Every3.open(d)
    seen = []
    for i in range(1, 11):
        if i % 2:
            obj.n += 1
        else:
            obj.items.append(i)
        seen.append(disk_seq(d))
    assert seen == [None, None, 3, 3, 3, 6, 6, 6, 9, 9]
    assert disk_state(d) == {"n": 5, "items": [2, 4, 6, 8]}
    # an explicit snapshot restarts the count from what it wrote
    obj.snapshot()
    assert disk_seq(d) == 10
    obj.n = 0
    obj.n = 1
    assert disk_seq(d) == 10
    obj.n = 2
    assert disk_seq(d) == 13


def test_class_form_continues_after_open(tmp_path: Path) -> None:
    d = tmp_path / "e3"
    obj = Every3.open(d)
    for _ in range(4):
        obj.n += 1
    assert disk_seq(d) == 3
    again = Every3.open(d)
    assert again.snapshot_seq == 3 and again.n == 3
    again.n += 1
    again.n += 1
    assert disk_seq(d) == 3
    again.n += 1
    assert disk_seq(d) == 6


def test_an_unbound_object_never_snapshots_by_itself() -> None:
    obj = Every3()
    mover = Mover()
    for _ in range(10):
        obj.n += 1
        mover.move(1)  # the 10th call asks for a snapshot; with no store there is none to make
    assert obj.snapshot_seq == 10 and mover.snapshot_seq == 10


class RecordingStore(SnapStore):
    """A store that records the state of every snapshot it commits."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written: list[tuple[int, Any]] = []

    def _commit(self, state_json: bytes, seq: int, **kw: Any) -> Any:
        self.written.append((seq, json.loads(state_json)))
        return super()._commit(state_json, seq, **kw)


def test_method_form_writes_after_the_10th_call_never_half_done(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "m")
    mover = Mover.open(store)
    for i in range(1, 21):
        mover.move(1)
        assert mover.snapshot_seq == i  # one call, one mutation, however many assignments
        assert disk_seq(tmp_path / "m") == (None if i < 10 else 10 if i < 20 else 20)
        if i >= 10:  # the file holds whole calls only: x == y, one trail entry per call
            on_file = disk_state(tmp_path / "m")
            assert on_file["x"] == on_file["y"] == len(on_file["trail"]) == disk_seq(tmp_path / "m")
    assert [seq for seq, _ in store.written] == [10, 20]
    for _, state in store.written:
        assert state["x"] == state["y"] == len(state["trail"])
        assert state["trail"][-1][0] == state["x"]
    assert disk_state(tmp_path / "m")["x"] == 20


def test_method_form_nested_calls_count_once(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "j")
    mover = Mover.open(store)
    mover.jump()  # two inner move() calls: still one mutation
    assert mover.snapshot_seq == 1
    assert disk_seq(tmp_path / "j") is None
    mover.jump()
    assert mover.snapshot_seq == 2
    assert disk_seq(tmp_path / "j") == 2  # jump's 2nd call
    assert disk_state(tmp_path / "j")["x"] == 20


def test_a_method_that_raises_counts_its_changes_but_does_not_save_them(tmp_path: Path) -> None:
    d = tmp_path / "f"
    mover = Mover.open(d)
    with pytest.raises(ValueError, match="half done"):
        mover.fail()
    assert mover.x == 1 and mover.snapshot_seq == 1
    assert disk_seq(d) is None
    mover.snapshot()
    assert disk_seq(d) == 1


def test_both_forms_at_once(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "b")
    obj = BothForms.open(store)
    for _ in range(3):
        obj.x = 0  # three plain mutations
    obj.move(1)  # the 4th: the class policy fires, after the call
    assert [s for s, _ in store.written] == [4]
    for _ in range(3):
        obj.move(1)
    obj.trail.append((0, 0))
    assert [s for s, _ in store.written] == [4, 8]
    for _ in range(6):
        obj.move(1)  # the 10th call of move: the method form fires at seq 14
    assert [s for s, _ in store.written] == [4, 8, 12, 14]
    for _, state in store.written:
        if state["trail"] and state["trail"][-1] != [0, 0]:
            assert state["x"] == state["y"]


def test_snapshot_batch_counts_as_one_and_nests(tmp_path: Path) -> None:
    d = tmp_path / "batch"
    obj = Every3.open(d)
    with obj.snapshot_batch():
        for i in range(10):
            obj.items.append(i)
            assert disk_seq(d) is None  # auto-snapshots wait for the end of the batch
        with obj.snapshot_batch():
            obj.n = 1
            obj.n = 2
        assert obj.snapshot_seq == 1
    assert obj.snapshot_seq == 1
    obj.n = 3
    assert disk_seq(d) is None
    with obj.snapshot_batch():
        obj.n = 4
        obj.n = 5
        obj.n = 6
        obj.n = 7
        assert disk_seq(d) is None
    assert obj.snapshot_seq == 3
    assert disk_seq(d) == 3 and disk_state(d)["n"] == 7
    with obj.snapshot_batch():
        pass  # nothing changed: nothing counted
    assert obj.snapshot_seq == 3
    with pytest.raises(KeyError), obj.snapshot_batch():
        obj.n = 8
        raise KeyError("x")
    assert obj.snapshot_seq == 4  # what the block changed stays counted
    obj.n = 9
    obj.n = 10
    assert disk_seq(d) == 6


def test_snapshot_inside_a_batch_writes_the_batch_seq(tmp_path: Path) -> None:
    d = tmp_path / "sb"
    obj = Every3.open(d)
    with obj.snapshot_batch():
        obj.n = 1
        obj.n = 2
        assert obj.snapshot() == 1
    assert obj.snapshot_seq == 1
    obj.n = 3
    assert obj.snapshot_seq == 2


@pytest.fixture
def frozen() -> Iterator[Any]:
    with freeze_time("2030-01-01 12:00:00") as f:
        yield f


def test_seconds_fires_at_the_first_mutation_once_the_time_passed(tmp_path: Path, frozen: Any) -> None:
    d = tmp_path / "t"
    obj = Timed.open(d)
    obj.n = 1
    frozen.tick(29)
    obj.n = 2
    assert disk_seq(d) is None
    frozen.tick(1)
    assert disk_seq(d) is None  # no threads, no timers: nothing happens until a mutation
    obj.n = 3
    assert disk_seq(d) == 3
    obj.n = 4
    frozen.tick(10)
    obj.n = 5
    assert disk_seq(d) == 3
    frozen.tick(25)
    obj.n = 6
    assert disk_seq(d) == 6
    assert disk_state(d) == {"n": 6}


def test_count_or_time_whichever_first(tmp_path: Path, frozen: Any) -> None:
    d = tmp_path / "ct"
    obj = CountOrTime.open(d)
    for _ in range(5):
        obj.n += 1
    assert disk_seq(d) == 5
    frozen.tick(61)
    obj.n += 1
    assert disk_seq(d) == 6
    obj.snapshot()  # an explicit snapshot restarts the clock
    frozen.tick(59)
    obj.n += 1
    assert disk_seq(d) == 6


def test_method_form_with_seconds(tmp_path: Path, frozen: Any) -> None:
    @dataclass
    class Clock(Snapshottable):
        n: int = 0

        @snapshot_every(seconds=5)
        def step(self) -> None:
            self.n += 1
            self.n += 1

    d = tmp_path / "mc"
    obj = Clock.open(d)
    obj.step()
    frozen.tick(5)
    assert disk_seq(d) is None
    obj.step()
    assert disk_seq(d) == 2 and disk_state(d) == {"n": 4}
    obj.n = 0  # a plain mutation does not fire the method's policy
    frozen.tick(6)
    obj.n = 1
    assert disk_seq(d) == 2


def test_a_failing_automatic_snapshot_raises_keeps_the_change_and_retries(tmp_path: Path) -> None:
    d = tmp_path / "full"
    fs = DiskFull()
    obj = Every3.open(SnapStore(d, fs=fs))
    obj.n = 1
    obj.n = 2
    fs.full = True
    with pytest.raises(SnapError) as info:
        obj.items.append(3)  # the 3rd mutation: its snapshot fails
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert obj.items == [3] and obj.snapshot_seq == 3  # the change stays, counted
    assert disk_seq(d) is None
    assert sorted(p.name for p in d.iterdir()) == [".lock"]  # no temp file left behind
    with pytest.raises(SnapError):
        obj.n = 4  # still full: every mutation tries again, and says so
    assert obj.n == 4 and obj.snapshot_seq == 4
    fs.full = False
    obj.n = 5  # the next one succeeds, with everything counted so far
    assert disk_seq(d) == 5 and disk_state(d) == {"n": 5, "items": [3]}
    obj.n = 6
    obj.n = 7
    assert disk_seq(d) == 5
    obj.n = 8
    assert disk_seq(d) == 8  # and the policy goes on as before


def test_a_failing_method_form_snapshot_is_retried_at_the_next_mutation(tmp_path: Path) -> None:
    d = tmp_path / "mf"
    fs = DiskFull()
    mover = Mover.open(SnapStore(d, fs=fs))
    for _ in range(9):
        mover.move(1)
    fs.full = True
    with pytest.raises(SnapError):
        mover.move(1)  # the 10th call: whole, counted, not saved
    assert (mover.x, mover.y, mover.snapshot_seq) == (10, 10, 10)
    fs.full = False
    mover.trail.clear()  # any next mutation retries, even with no class policy
    assert disk_seq(d) == 11
    assert Mover.open(d) == mover


def test_a_failing_snapshot_in_a_with_block(tmp_path: Path) -> None:
    d = tmp_path / "w"
    fs = DiskFull()
    with pytest.raises(SnapError), Every3.open(SnapStore(d, fs=fs)) as obj:
        obj.n = 1
        fs.full = True
    assert obj.snapshot_seq == 1
    fs.full = False
    assert obj.snapshot() == 1


def test_a_held_lock_is_a_failure_like_any_other(tmp_path: Path) -> None:
    d = tmp_path / "lk"
    obj = Every3.open(d)
    obj.n = 1
    obj.n = 2
    store = SnapStore(d)
    with store._locked("hold"), pytest.raises(StoreLocked):
        obj.n = 3
    obj.n = 4
    assert disk_seq(d) == 4


def test_decorator_arguments_and_targets_are_checked() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n must be"):
            snapshot_every(bad)  # type: ignore[arg-type]
    for secs in (0, -1.0, "5"):
        with pytest.raises(ValueError, match="seconds must be"):
            snapshot_every(seconds=secs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs"):
        snapshot_every()
    with pytest.raises(TypeError, match="must inherit from Snapshottable"):
        @snapshot_every(3)
        class NotOne:
            pass
    with pytest.raises(TypeError, match="static or class"):
        snapshot_every(3)(staticmethod(lambda: None))
    with pytest.raises(TypeError, match="frozen"):
        @snapshot_every(3)
        @dataclass(frozen=True)
        class Frozen(Snapshottable):
            n: int = 0


def test_a_decorated_method_on_a_foreign_object_is_refused() -> None:
    class Other:
        @snapshot_every(2)
        def go(self) -> None:
            pass

    with pytest.raises(TypeError, match="Snapshottable"):
        Other().go()


def test_decorated_methods_keep_their_metadata_and_class_calls_work(tmp_path: Path) -> None:
    assert Mover.move.__name__ == "move"
    mover = Mover()
    Mover.move(mover, 3)
    assert mover.x == 3 and mover.snapshot_seq == 1
    assert type(mover.trail) is TrackedList


def test_async_and_generator_methods_are_refused() -> None:
    async def coro(self: Any) -> None:
        pass

    def gen(self: Any) -> Iterator[int]:
        yield 1

    for func in (coro, gen):
        with pytest.raises(TypeError, match="snapshot_batch"):
            snapshot_every(2)(func)


def test_a_failed_timed_snapshot_is_retried_at_once_not_after_the_period(
        tmp_path: Path, frozen: Any) -> None:
    d = tmp_path / "tf"
    fs = DiskFull()
    obj = Timed.open(SnapStore(d, fs=fs))
    obj.n = 1
    frozen.tick(30)
    fs.full = True
    with pytest.raises(SnapError):
        obj.n = 2
    fs.full = False
    obj.n = 3  # no time passed since the failure: retried anyway
    assert disk_seq(d) == 3
    obj.n = 4  # and then the period starts again from this snapshot
    frozen.tick(29)
    obj.n = 5
    assert disk_seq(d) == 3
    frozen.tick(1)
    obj.n = 6
    assert disk_seq(d) == 6


@snapshot_every(1)
@dataclass
class Eager(Mover):
    """Snapshots at every mutation: only the method form keeps a call whole."""


def test_a_call_is_never_split_even_by_a_snapshot_at_every_mutation(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "eager")
    obj = Eager.open(store)
    obj.move(2)
    obj.move(3)
    assert [seq for seq, _ in store.written] == [1, 2]
    assert [s["x"] for _, s in store.written] == [2, 5]
    for _, state in store.written:
        assert state["x"] == state["y"] and state["trail"][-1][0] == state["x"]
    obj.x = 9  # outside a method: every assignment is written
    assert [seq for seq, _ in store.written] == [1, 2, 3]


# ---------------------------------------------------------------------------
# policy.Schedule: the *when* of a class policy lives in policy.py (issue 11)
# ---------------------------------------------------------------------------


def test_the_class_policy_is_a_schedule_the_state_consults(tmp_path: Path) -> None:
    from snapmixin.policy import NO_SCHEDULE, Schedule

    @snapshot_every(3, seconds=60.0)
    @dataclass
    class Timed(Snapshottable):
        n: int = 0

    @dataclass
    class Untimed(Snapshottable):
        n: int = 0

    sched = Timed.__snapmixin_policy__
    assert isinstance(sched, Schedule) and (sched.n, sched.seconds) == (3, 60.0)
    assert Untimed.__snapmixin_policy__ is None
    assert Untimed().__snapmixin_node__().schedule is NO_SCHEDULE  # type: ignore[union-attr]

    calls: list[tuple[int, int]] = []

    class Spy(Schedule):
        def plan(self, seq: int, saved_seq: int, last_time: float, *, retry: bool) -> tuple[int, int, float]:
            return seq + 1, 0, float("-inf")  # look at every mutation

        def is_due(self, seq: int, saved_seq: int, last_time: float) -> bool:
            calls.append((seq, saved_seq))
            return seq - saved_seq >= 2  # this schedule, not the mixin, decides

    Untimed.__snapmixin_policy__ = Spy(None, None)  # type: ignore[misc]
    try:
        obj = Untimed.open(tmp_path / "s")
        obj.n = 1
        obj.n = 2
    finally:
        Untimed.__snapmixin_policy__ = None  # type: ignore[misc]
    assert (2, 0) in calls and obj.snapshot_unsaved == 0
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["seq"] == 2


def test_schedule_plan_and_is_due() -> None:
    from snapmixin.policy import NO_SCHEDULE, Schedule
    from snapmixin.tracking import NEVER

    assert NO_SCHEDULE.plan(5, 5, 0.0, retry=False)[0] == NEVER
    assert NO_SCHEDULE.plan(5, 5, 0.0, retry=True)[0] == 6  # a failed snapshot: retried next time
    assert Schedule(10, None).plan(5, 3, 0.0, retry=False) == (13, 13, float("-inf"))
    due, count_due, deadline = Schedule(None, 30.0).plan(5, 3, 100.0, retry=False)
    assert (due, count_due, deadline) == (6, NEVER, 130.0)
    assert Schedule(None, 30.0).plan(5, 3, 100.0, retry=True)[2] == float("-inf")
    with freeze_time("2026-01-01 00:00:00") as clock:
        import time

        s = Schedule(4, 30.0)
        start = time.monotonic()
        assert not s.is_due(3, 0, start) and s.is_due(4, 0, start) and not s.is_due(4, 4, start)
        clock.tick(31)
        assert s.is_due(1, 0, start) and s.call_due(1, start)
        assert Schedule(2, None).call_due(2, start) and not Schedule(2, None).call_due(3, start)
