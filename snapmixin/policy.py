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

How ``seconds=`` reads the clock (``time.monotonic``, looked up at each call,
so freezegun can drive it): no threads and no timers; the clock is read inside
mutations only, and not at every one of them (a clock read costs about a third
of a tracked assignment). It is read at each of the first
:data:`WARMUP` unsaved mutations. After those, at a read the policy takes the
pace of the mutations since the previous read, and skips as many reads as
that pace fits into :meth:`Schedule.budget` (``min(1 ms, 1% of seconds)``):
at most twice the previous stride, at most :data:`MAX_STRIDE` mutations. A
stride that took longer than the budget (a slower pace, a pause) sets the
stride back to 1. So:

- a mutator slower than one mutation per budget (under 1,000 a second for
  ``seconds`` >= 0.1) reads the clock at every mutation: its snapshot is taken
  at the first mutation once ``seconds`` passed, exactly;
- a busy mutator's snapshot is taken within the budget after the deadline
  (and at most ``MAX_STRIDE - 1`` mutations after the first one past it),
  while it keeps its pace;
- the one case beyond the budget: a mutator that stops, in the middle of a
  stride, for longer than the budget, across the deadline. The stride's
  remaining mutations (at most ``MAX_STRIDE - 1``, counted and held by the
  snapshot) come before the look at the clock that takes it; the stride after
  it is 1 again.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

import wrapt

from .tracking import NEVER

__all__ = ["MAX_OVERSHOOT", "MAX_STRIDE", "NO_SCHEDULE", "WARMUP", "Schedule", "snapshot_every"]

#: A ``seconds=`` policy reads the clock at each of the first this many unsaved mutations.
WARMUP = 64
#: ... and after those at least once every this many mutations.
MAX_STRIDE = 64
#: The longest time a stride between two clock reads may take at the observed pace (see
#: :meth:`Schedule.budget`: 1% of ``seconds`` when that is shorter).
MAX_OVERSHOOT = 0.001

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
      path, which a ``seconds=`` policy reaches every :meth:`stride` mutations.
    - :meth:`is_due`: whether the policy asks for a snapshot now.

    The clock is ``time.monotonic``, looked up at each call (freezegun drives it).
    """

    __slots__ = ("limit", "n", "seconds")

    def __init__(self, n: int | None, seconds: float | None) -> None:
        self.n = n
        self.seconds = seconds
        self.limit = min(MAX_OVERSHOOT, seconds / 100) if seconds is not None else 0.0  # budget()

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

    def budget(self) -> float:
        """The longest a stride between two clock reads may take: ``min(MAX_OVERSHOOT, seconds / 100)``."""
        return self.limit

    def stride(self, stride: int, unsaved: int, spent: float) -> int:
        """How many mutations until a ``seconds=`` policy reads the clock again (see the module doc).

        ``stride``: the mutations since the previous read, which took ``spent``
        seconds; ``unsaved``: the mutations since the last snapshot. 1 for the
        first :data:`WARMUP` unsaved mutations and after a stride that took
        longer than :meth:`budget`; otherwise as many as that pace fits into
        the budget, at most twice ``stride`` and at most :data:`MAX_STRIDE`.
        """
        budget = self.limit
        if unsaved < WARMUP or spent > budget:
            return 1
        grow = min(2 * stride, MAX_STRIDE)
        if spent <= 0:  # no time measurable (a clock standing still): grow
            return grow
        fits = int(budget * stride / spent)
        return max(1, min(grow, fits))

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
