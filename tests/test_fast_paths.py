"""The fast paths of issue 13: attribute reads after tracked assignments (CPython 3.11's split
dicts), and a ``seconds=`` policy that does not read the clock at every mutation (policy.ALARM)."""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapmixin import Snapshottable, snapshot_every
from snapmixin.policy import ALARM, Alarm
from snapmixin.tracking import NEVER


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
# seconds=: the alarm marks the object due; mutations do not read the clock
# ---------------------------------------------------------------------------


@snapshot_every(seconds=0.2)
@dataclass
class Quick(Snapshottable):
    n: int = 0
    items: list[int] = field(default_factory=list)


def _wait_until(cond: Any, limit: float = 30.0) -> bool:
    """Wait for ``cond()`` (a real thread acting), at most ``limit`` seconds."""
    end = time.monotonic() + limit
    pause = threading.Event()
    while not cond():
        if time.monotonic() > end:
            return False
        pause.wait(0.005)
    return True


def test_a_seconds_policy_waits_for_the_alarm_then_snapshots_at_the_next_mutation(tmp_path: Path) -> None:
    d = tmp_path / "q"
    obj = Quick.open(d)
    st = obj.__snapmixin_node__()
    assert st is not None
    obj.n = 1
    obj.items.append(1)
    # No per-mutation look at the clock: the count is never due, the alarm is set for the deadline.
    assert st.due == NEVER and st.armed == st.deadline and st.deadline > -math.inf
    assert _wait_until(lambda: st.due == 0), "the alarm never rang"
    assert disk_seq(d) is None  # the alarm itself writes nothing
    obj.n = 2
    assert disk_seq(d) == 3 and obj.snapshot_unsaved == 0
    # Re-armed for the next period, with the count path back to "never".
    assert st.due == NEVER and st.armed == st.deadline


def test_a_busy_mutator_is_woken_by_the_alarm(tmp_path: Path) -> None:
    d = tmp_path / "busy"
    obj = Quick.open(d)
    end = time.monotonic() + 30
    while disk_seq(d) is None and time.monotonic() < end:
        for _ in range(100):
            obj.n += 1  # never lets go of the GIL by itself: the alarm thread must get it
    seq = disk_seq(d)
    assert seq is not None and seq >= 1
    assert json.loads((d / "snapshot.json").read_text())["state"]["n"] == seq


@snapshot_every(seconds=3600)
@dataclass
class Slow(Snapshottable):
    n: int = 0


def test_ring_marks_due_only_once_the_current_deadline_passed(tmp_path: Path) -> None:
    obj = Slow.open(tmp_path / "r")
    st = obj.__snapmixin_node__()
    assert st is not None
    deadline = st.deadline
    assert st.ring(deadline - 1.0) == deadline and st.due == NEVER  # a stale alarm: sleep on
    assert st.ring(deadline) is None and st.due == 0
    obj.n = 1  # tick: the clock says not yet: back to waiting for the alarm
    assert disk_seq(tmp_path / "r") is None and st.due == NEVER and st.armed == deadline


class _Sleeper:
    def __init__(self) -> None:
        self.armed: float | None = None
        self.rung: list[float] = []
        self.done = threading.Event()
        self.later: float | None = None

    def ring(self, now: float) -> float | None:
        self.rung.append(now)
        later, self.later = self.later, None
        if later is None:
            self.done.set()
        return later


def test_the_alarm_keeps_the_earliest_deadline_and_sleeps_on_when_told() -> None:
    clock = [0.0]
    alarm = Alarm(clock=lambda: clock[0])
    s = _Sleeper()
    alarm.set(s, 10.0)
    alarm.set(s, 5.0)  # earlier: replaces
    alarm.set(s, 7.0)  # later than the pending one: ignored
    assert s.armed == 5.0
    s.later = 8.0
    clock[0] = 6.0
    with alarm._cond:
        alarm._cond.notify()
    assert _wait_until(lambda: s.rung == [6.0] and s.armed == 8.0)
    clock[0] = 9.0
    with alarm._cond:
        alarm._cond.notify()
    assert s.done.wait(30) and s.rung == [6.0, 9.0] and s.armed is None
    clock[0] = 100.0  # the superseded entry (10.0) goes too: the thread then waits for work
    with alarm._cond:
        alarm._cond.notify()
    assert _wait_until(lambda: not alarm._heap)


def test_after_fork_the_child_re_arms_at_its_next_mutation(tmp_path: Path) -> None:
    d = tmp_path / "f"
    obj = Quick.open(d)
    obj.n = 1
    st = obj.__snapmixin_node__()
    assert st is not None and st.armed is not None and ALARM._thread is not None
    pid = os.fork()
    if pid == 0:  # the child: no alarm thread; the object is due, its next mutation re-arms
        ok = st.due == 0 and ALARM._thread is None and st.armed is None
        obj.n = 2  # not due yet by the clock: waits for the child's alarm
        ok = ok and ALARM._thread is not None and st.armed == st.deadline
        ok = ok and _wait_until(lambda: st.due == 0)
        obj.n = 3
        ok = ok and disk_seq(d) == 3
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


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
