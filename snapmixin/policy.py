"""``@snapshot_every``: when automatic snapshots happen. Snapshots are taken by mutations only.

Class form: an automatic snapshot once ``n`` mutations are unsaved, or at a
mutation once ``seconds`` have passed since the last snapshot::

    @snapshot_every(100, seconds=30.0)
    @dataclass
    class Game(Snapshottable): ...

Method form: one call is one mutation however many assignments it makes, and
the automatic snapshot happens after the call returns, never in the middle::

    @snapshot_every(10)
    def move(self, dx: int) -> None: ...

The two forms combine. If an automatic snapshot fails, the mutation that
triggered it stays applied, the error (a ``SnapError``) reaches the caller,
and the next mutation or ``snapshot()`` tries again.

How ``seconds=`` knows the time without reading the clock at every mutation
(a clock read costs about a third of a tracked assignment): one daemon thread
per process, :data:`ALARM`, started at the first bound object with a
``seconds=`` policy, sleeps until the earliest deadline and then only marks
that object *due* (one attribute store); the object's next mutation, in its
own thread, reads the clock and takes the snapshot. So the snapshot is taken
at the first mutation that follows the alarm: at most the alarm's wake-up
latency after the deadline (the thread needs the GIL, which a busy mutating
thread hands over within ``sys.getswitchinterval()``, 5 ms by default; more
only if the machine does not run the thread for longer). Mutations between
the deadline and the alarm are counted, and held by that snapshot. No
snapshot is ever written from the alarm thread. When ``time.monotonic`` is
not the builtin one (freezegun, a test's fake clock), the alarm cannot know
that clock, and every mutation reads it instead, as before: the clock is
looked up at call time, so freezegun can drive it.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
import os
import threading
import time
import types
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

import wrapt

from .tracking import NEVER

__all__ = ["ALARM", "NO_SCHEDULE", "Alarm", "Schedule", "snapshot_every"]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


class Schedule:
    """When a class's automatic snapshots fall due: the *when*, for the mixin's *how*.

    One per class policy (``@snapshot_every`` on the class), stored as the
    class's ``__snapmixin_policy__``; :data:`NO_SCHEDULE` for a class without
    one. The object's state asks it two things and saves when told to:

    - :meth:`plan`: after a snapshot, a restore, a bind or a failure, the seq
      at which the next mutation must look (``due``), and the two bounds that
      let a look return at once while nothing is due (``count_due``: the seq
      that reaches ``n``; ``deadline``: the monotonic time that reaches
      ``seconds``). The state keeps the bounds and compares them on the slow
      path; with the builtin clock it waits for :data:`ALARM` to mark it due at
      ``deadline`` instead of reading the clock at every mutation.
    - :meth:`is_due`: whether the policy asks for a snapshot now.

    The clock is ``time.monotonic``, looked up at each call (freezegun drives it).
    """

    __slots__ = ("n", "seconds")

    def __init__(self, n: int | None, seconds: float | None) -> None:
        self.n = n
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"Schedule(n={self.n!r}, seconds={self.seconds!r})"

    def plan(self, seq: int, saved_seq: int, last_time: float, *, retry: bool) -> tuple[int, int, float]:
        """``(due, count_due, deadline)`` for an object bound to a store, outside a batch.

        ``retry``: a failed automatic snapshot (or a method form's request) is
        pending; it is tried again at the next mutation, with or without a policy.
        """
        n, seconds = self.n, self.seconds
        count_due = saved_seq + n if n is not None else NEVER
        deadline = last_time + seconds if seconds is not None and not retry else -math.inf
        if retry or seconds is not None:
            due = seq + 1  # look at every mutation (the bounds make most looks return at once)
        elif n is not None:
            due = count_due
        else:
            due = NEVER
        return due, count_due, deadline

    def is_due(self, seq: int, saved_seq: int, last_time: float) -> bool:
        """Whether ``seq - saved_seq`` unsaved mutations, the last snapshot at ``last_time``, call for one."""
        if seq <= saved_seq:
            return False
        if self.n is not None and seq - saved_seq >= self.n:
            return True
        return self.seconds is not None and time.monotonic() - last_time >= self.seconds

    def call_due(self, calls: int, last_time: float) -> bool:
        """Method form: whether the ``calls``-th call of the method asks for a snapshot."""
        return (self.n is not None and calls % self.n == 0) or (
            self.seconds is not None and time.monotonic() - last_time >= self.seconds)


#: The schedule of a class with no ``@snapshot_every``: only retries of a failed snapshot.
NO_SCHEDULE = Schedule(None, None)


class Sleeper(Protocol):
    """What :class:`Alarm` wakes: an object state with a ``seconds=`` deadline.

    ``armed`` is the deadline of its pending alarm (None: none), read and set
    by the alarm under its lock only. ``ring(now)`` runs in the alarm thread,
    under that lock, once ``now`` reached the deadline it was armed for: it
    marks the object due (plain attribute stores, nothing else) and returns
    None, or returns a later deadline to sleep until (the object snapshotted
    since, which moved its deadline).
    """

    armed: float | None

    def ring(self, now: float) -> float | None: ...


class Alarm:
    """Wakes :class:`Sleeper` objects at their deadlines: one daemon thread, started at first use.

    ``set(sleeper, deadline)`` asks for ``sleeper.ring`` once ``deadline`` (on
    the builtin ``time.monotonic``) is reached; a sleeper has at most one
    pending alarm, the earliest asked for, and is held by a weak reference
    (an object nobody holds is never woken and costs nothing). After
    ``os.fork()`` the child has no thread: its pending sleepers are marked due,
    so their next mutation looks at the clock and sets their alarm again
    (which starts the child's thread).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        # The real clock, held here: freezegun replaces module attributes (time.monotonic and
        # any global bound to it), not an instance's.
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, weakref.ref[Any]]] = []
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @staticmethod
    def usable() -> bool:
        """Whether the alarm knows the clock the policy reads (``time.monotonic`` is the builtin)."""
        return type(time.monotonic) is types.BuiltinFunctionType

    def set(self, sleeper: Sleeper, deadline: float) -> None:
        with self._cond:
            armed = sleeper.armed
            if armed is not None and armed <= deadline:
                return  # rings first; then `ring` returns the later deadline
            sleeper.armed = deadline
            heapq.heappush(self._heap, (deadline, next(self._ids), weakref.ref(sleeper)))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="snapmixin-alarm", daemon=True)
                self._thread.start()
            elif self._heap[0][0] == deadline:
                self._cond.notify()  # an earlier deadline than the one the thread sleeps until

    def _run(self) -> None:
        clock, heap = self._clock, self._heap
        with self._cond:
            while True:
                if not heap:
                    self._cond.wait()
                    continue
                now = clock()
                if heap[0][0] > now:
                    self._cond.wait(heap[0][0] - now)
                    continue
                deadline, _, ref = heapq.heappop(heap)
                sleeper = ref()
                if sleeper is None or sleeper.armed != deadline:
                    continue  # gone, or a later entry superseded by an earlier one
                sleeper.armed = None
                again = sleeper.ring(now)
                if again is not None:
                    sleeper.armed = again
                    heapq.heappush(heap, (again, next(self._ids), ref))

    def _after_fork(self) -> None:
        heap, self._heap = self._heap, []
        self._cond = threading.Condition(threading.Lock())
        self._thread = None
        for _, _, ref in heap:
            sleeper = ref()
            if sleeper is not None and sleeper.armed is not None:
                sleeper.armed = None
                sleeper.ring(math.inf)  # as if every deadline passed: marked due, its next mutation re-arms


#: The process's alarm (see the module doc).
ALARM = Alarm()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=ALARM._after_fork)


class _Every:
    """The decorator ``snapshot_every(...)`` returns: applies to a class or a method."""

    def __init__(self, n: int | None, seconds: float | None) -> None:
        self.n = n
        self.seconds = seconds

    @overload
    def __call__(self, target: C) -> C: ...
    @overload
    def __call__(self, target: F) -> F: ...

    def __call__(self, target: Any) -> Any:
        if isinstance(target, type):
            return self._class(target)
        if callable(target) or isinstance(target, (staticmethod, classmethod)):
            if isinstance(target, (staticmethod, classmethod)):
                raise TypeError("@snapshot_every applies to instance methods, not static or class methods")
            return self._method(target)
        raise TypeError(f"@snapshot_every applies to a Snapshottable class or a method, not {target!r}")

    def _class(self, cls: type) -> type:
        from .mixin import Snapshottable, _prepare  # the mixin imports this module: not at the top

        if not issubclass(cls, Snapshottable):
            raise TypeError(f"@snapshot_every: {cls.__qualname__} must inherit from Snapshottable")
        params = getattr(cls, "__dataclass_params__", None)
        if params is not None and params.frozen:
            _prepare(cls)  # raises the clear frozen-dataclass error, at class creation
        type.__setattr__(cls, "__snapmixin_policy__", Schedule(self.n, self.seconds))
        return cls

    def _method(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func) or \
                inspect.isasyncgenfunction(func):
            # Its body runs after the call returns: "one call, one mutation, snapshot after
            # the call" cannot hold. Refused rather than half-working.
            raise TypeError(f"@snapshot_every cannot decorate {func.__qualname__}: an async or generator "
                            "function runs after the call returns; use `with self.snapshot_batch():` "
                            "in its body instead")
        from .mixin import Snapshottable, _state  # the mixin imports this module: not at the top

        schedule = Schedule(self.n, self.seconds)
        key = object()  # this method's call counter, per object

        @wrapt.decorator
        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
            if not isinstance(instance, Snapshottable):
                raise TypeError(f"@snapshot_every method {wrapped.__qualname__} must be called on a "
                                "Snapshottable object")
            root = _state(instance).root
            root.begin_batch()
            try:
                result = wrapped(*args, **kwargs)
            except BaseException:
                root.end_batch(count=True)  # what the call changed is kept and counted...
                root.refresh_due()  # ...but never saved half-done by this call
                raise
            root.end_batch(count=True)
            calls = root.calls[key] = root.calls.get(key, 0) + 1
            if schedule.call_due(calls, root.last_time):
                root.save_requested = True
            if root.batch_depth:
                root.refresh_due()
            else:
                root.autosave()
            return result

        return wrapper(func)


def snapshot_every(n: int | None = None, *, seconds: float | None = None) -> _Every:
    """Automatic snapshots every ``n`` mutations and/or ``seconds`` (see the module doc).

    On a class (a ``Snapshottable``): ``n`` unsaved mutations, or a mutation
    once ``seconds`` passed since the last snapshot. On a method: after every
    ``n``-th call (and after a call once ``seconds`` passed), each call
    counting as one mutation.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"snapshot_every: n must be an integer >= 1, not {n!r}")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or seconds <= 0):
        raise ValueError(f"snapshot_every: seconds must be a number > 0, not {seconds!r}")
    if n is None and seconds is None:
        raise ValueError("snapshot_every needs n (mutations), seconds, or both")
    return _Every(n, None if seconds is None else float(seconds))
