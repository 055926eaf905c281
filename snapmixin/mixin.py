"""Snapshottable: the mixin that gives an object durable, crash-safe state.

::

    @dataclass
    class Game(Snapshottable, snapshot_version=1):
        level: int = 1
        inventory: list[str] = field(default_factory=list)

    game = Game.open("saves/slot1")   # the latest snapshot, or Game()
    game.level += 1                   # counted: game.snapshot_seq advances
    game.inventory.append("sword")    # nested mutations count too
    game.snapshot()                   # durable when it returns

The names the mixin adds to a class are ``open``, ``bind``, ``snapshot``,
``asnapshot``, ``snapshot_seq``, ``snapshot_unsaved``, ``snapshot_batch`` and ``mark_mutated`` (and
the context-manager methods). Its private state lives in one slot,
``_snapmixin``, which is not a dataclass field, so it never reaches the JSON,
``repr`` or ``==``.

What counts: every attribute assignment (assigning the very object an
attribute holds does not, so ``obj.tags |= {"x"}`` counts once), every call
of a mutating method of a list, dict or set stored in the tree, at any depth,
and ``mark_mutated()``. What does not: assignments while ``__init__`` (and
``__post_init__``) or a restore runs; changes to the value you assigned
(``x = []; obj.items = x; x.append(1)``: the object stores a tracked copy);
slices and copies (plain values); anything inside other types (tuples,
``collections.deque``, subclasses of list/dict/set such as ``defaultdict``,
numpy arrays...): call ``mark_mutated()``. A nested Snapshottable object (or
a tracked container) moved inside its tree keeps its identity and stays
tracked until no place in the tree holds it any more; it belongs to one tree:
stored into a second tree while still in the first, it is copied (as a plain
list would be); removed from its tree, it is free again.

Not thread-safe: mutate an object from one thread at a time (or under your
own lock). ``asnapshot`` captures the state in the calling thread, at the
call, and only moves the file I/O to a worker thread; automatic snapshots
wait for it rather than fight it for the lock.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import inspect
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from . import journal as _journal
from . import migrate as _migrate
from . import tracking
from .codec import transient_names
from .errors import SnapError, SnapshotNotFound
from .policy import NO_SCHEDULE, Schedule
from .store import ANY, SnapshotInfo, SnapStore
from .tracking import NEVER, SCALARS, Root, TrackedDict, TrackedList, TrackedSet, track, untrack

__all__ = ["Snapshottable"]

S = TypeVar("S", bound="Snapshottable")
log = logging.getLogger("snapmixin")
_MISSING = object()
_SLOT = "_snapmixin"
_setattr = object.__setattr__
_LAZY = threading.Lock()  # makes a state's write lock at its first write
# CPython 3.11 keeps an instance's attributes in inline values until something reads its
# `__dict__`; reading it then makes a *split* dict (sharing its class's keys), and 3.11's
# specialized read of such a dict (LOAD_ATTR_WITH_HINT) always falls back to the generic path: every
# later read of any attribute costs about 4x a plain dataclass's. A combined (unshared) dict reads
# at about 1.2x. So on 3.11 the fast path turns the dict it stores into a combined one, in place
# (see _own_dict). 3.10 has no inline values; 3.12+ read split dicts at full speed.
_UNSPLIT = sys.version_info[:2] == (3, 11)
# A state's `fast` and `seen` start as this one shared empty set (two allocations less per object
# built or adopted): the two places that add to them (_learn, _note) give the state its own set
# first; discarding from it leaves it empty.
_NONE_YET: set[str] = set()


class _Init(Root):
    """Slot value while ``__init__`` runs (its class's one shared placeholder, see
    :meth:`building`; an object's own one from ``__setstate__``, or after an ``__init__`` that
    raised): a counter nothing reads.

    Assignments while ``__init__`` runs are stored as they are and not counted
    (see ``__setattr__`` and :func:`_learn`); at its end the object is adopted,
    which links every field into its tree at once. Its ``due`` is 0: an
    assignment after that without adoption takes :meth:`tick`, which adopts
    the object and counts it on its real state. An object that never ran
    ``__init__`` (built by ``__new__`` alone, as decoders do) has no slot
    value at all: it is adopted where it is first stored or assigned to.
    """

    __slots__ = ("d", "depth", "fast", "held", "merged", "obj", "quiet", "root", "seen")
    obj: Snapshottable | None  # None: a class's building placeholder (see building)
    # (the building placeholder's: _names_built's list, with the size of `held` it was made at)
    merged: tuple[int, list[str]] | None

    def __init__(self, obj: Snapshottable) -> None:
        # Root's attributes, set here rather than through Root.__init__ (one call less per object).
        self.seq = 0
        self.batch_depth = 0
        self.batch_dirty = False
        self.batch_captured = False
        self.recorder = None
        self.due = 0
        self.depth = 0
        self.obj = obj
        self.root = self
        self.held: set[str] = set()
        self.fast: set[str] = _NONE_YET  # never filled: every assignment takes the general path
        self.seen: set[str] = _NONE_YET
        self.quiet = _untracked(type(obj))
        self.d = None
        self.merged = None

    @classmethod
    def building(cls, klass: type) -> _Init:
        """The one placeholder every object of ``klass`` holds while its ``__init__`` runs.

        Shared (one object less per object built): it holds nothing of any one
        object. Its ``held`` is the names any object of ``klass`` stored a
        container or an object in while its ``__init__`` ran (a superset, never
        shrinking: see :class:`_Grown`), which the adoption at the end of each
        ``__init__`` looks at besides the declared fields; its ``depth`` stays 1
        (building) and its ``due`` NEVER (its count is never looked at).
        """
        init = cls.__new__(cls)
        init.seq = 0
        init.batch_depth = 0
        init.batch_dirty = False
        init.batch_captured = False
        init.recorder = None
        init.due = NEVER
        init.depth = 1
        init.obj = None
        init.root = init
        init.held = _Grown()
        init.fast = _NONE_YET
        init.seen = _Grown()  # scalar names: the next object's skip _learn (see _learn)
        init.quiet = _untracked(klass)
        init.d = None
        init.merged = None
        return init

    def tick(self, node: Any = None, op: str = "mark", key: Any = None, value: Any = None) -> None:
        if not self.depth and self.obj is not None:
            _adopt(self.obj, None).mutated(node, op, key, value)


class _Grown(set[str]):
    """``held`` of a class's building placeholder (:meth:`_Init.building`): names are added, never
    removed (an object of the class assigning a scalar must not hide a name another one, built at
    the same time, holds a container in)."""

    def discard(self, element: object) -> None:
        pass


def _building(cls: type) -> _Init:
    """The building placeholder of ``cls`` (:meth:`_Init.building`), made at its first use."""
    cached = cls.__dict__.get("__snapmixin_building__")
    if cached is not None and cached[0] is cls:
        return cached[1]  # type: ignore[no-any-return]
    init = _Init.building(cls)
    _cache(cls, "__snapmixin_building__", init)
    return init


class _State(Root):
    """Per-object state: its own counter, and the root its mutations report to.

    Built for every object (at the end of its ``__init__``, or where a decoded
    one is first placed), so building one is kept short: what every object
    needs is in slots set here; what only a bound object (a store, a policy, a
    write) changes has a class-level default until first set (then it lives in
    the state's own ``__dict__``), and the write lock and the method form's
    call counters are made at first use.
    """

    __slots__ = ("__dict__", "d", "fast", "held", "obj", "quiet", "refs", "root", "schedule", "seen")

    # Defaults of what a bound object sets (see the class doc).
    store: SnapStore | None = None
    # The generation this object restored or last wrote: its next commit must replace that
    # one (store.create's expect=), or another writer's commit would be overwritten. ANY: no
    # precondition. `base_damaged`: `base` is a damaged file, replaced after open(fallback=True).
    base: Any = ANY
    base_damaged = False
    landed = 0  # the highest seq a write of this object committed (set in worker threads)
    # One write of this object at a time, in any thread: a sync snapshot waits for an
    # asnapshot() whose worker thread still runs (even one whose awaiting task was cancelled).
    wlock: threading.Lock | None = None  # made at the first write (see write)
    saved_seq = 0
    last_time = 0.0  # set when bound (open, bind): nothing reads it before
    save_requested = False
    failed = False
    inflight = 0  # asnapshot() writes under way
    deferred = False  # an automatic snapshot fell due while one was under way
    alock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
    # When automatic snapshots fall due: the class's policy decides (`schedule`, a
    # policy.Schedule). These two bounds from the schedule let the slow path return at once
    # while neither the count nor the time is due (see tick). A seconds= policy reaches the
    # slow path every `stride` mutations (policy.Schedule.stride); `looked`: when it last read
    # the clock.
    count_due = NEVER
    deadline = -math.inf
    stride = 1
    looked = 0.0
    journal: _journal.Journal | None = None  # the mutation journal (journal=), if any

    def __init__(self, obj: Snapshottable) -> None:
        # Root's attributes, set here rather than through Root.__init__ (one call less per object).
        self.seq = 0
        self.due = NEVER
        self.batch_depth = 0
        self.batch_dirty = False
        self.batch_captured = False
        self.recorder: tracking.Recorder | None = None
        self.obj = obj  # a cycle (object <-> state) that the garbage collector handles
        self.root: _State = self
        # Places that hold the object in a tree (list slots, dict values, attributes of objects
        # in it): 0 while it is the root of its own tree (see tracking's "Places").
        self.refs = 0
        # Attributes holding a non-scalar value (a tracked container, a nested object...): an
        # assignment of a scalar to one of these must detach what it replaces. Scalar
        # assignments to other names skip that look-up.
        self.held: set[str] = set()
        # Names whose scalar values can be stored straight into the instance __dict__ `d`
        # (no data descriptor on the class, not held): the fastest assignment path. `d` is
        # fetched at the first such assignment (_learn), never here: reading `obj.__dict__`
        # materializes it, and CPython then loses its inline-values fast path for reads.
        self.d: dict[str, Any] | None = None
        self.fast: set[str] = _NONE_YET  # (shared until written: see _NONE_YET)
        # Names assigned a scalar since they were last learnt (see _learn): the rest take the
        # learning path once. `quiet`: the class's untracked names (stored, never counted).
        self.seen: set[str] = _NONE_YET
        cls = type(obj)
        self.quiet = _untracked(cls)
        self.schedule: Schedule = cls.__snapmixin_policy__ or NO_SCHEDULE

    @property
    def calls(self) -> dict[object, int]:
        """The method form's call counters (policy.py), made at first use."""
        calls: dict[object, int] | None = self.__dict__.get("_calls")
        if calls is None:
            calls = self.__dict__["_calls"] = {}
        return calls

    # -- the slow path of a mutation ----------------------------------------
    def tick(self, node: Any = None, op: str = "mark", key: Any = None, value: Any = None) -> None:
        # `deadline` is -inf while a batch is open or a recorder is attached: then this never
        # returns early.
        if self.seq < self.count_due:
            now = time.monotonic()
            if now < self.deadline:
                # A seconds= policy, not due yet: look again in `stride` mutations (the schedule
                # decides how many, from the pace since the previous look), never past the count.
                stride = self.schedule.stride(self.stride, self.seq - self.saved_seq, now - self.looked)
                self.stride, self.looked = stride, now
                due = self.seq + stride
                self.due = due if due < self.count_due else self.count_due
                return
        Root.tick(self, node, op, key, value)

    def due_now(self) -> None:
        if self.batch_depth:
            Root.due_now(self)
        else:
            self.autosave()

    def begin_batch(self) -> None:
        Root.begin_batch(self)
        self.deadline = -math.inf  # every mutation in the batch reaches Root.due_now

    def end_batch(self, *, count: bool = False) -> bool:
        counted = Root.end_batch(self, count=count)
        if counted and self.journal is not None:
            self.journal.commit(self.seq, always=True)  # group commit: the batch is one record
        return counted

    def capture(self) -> int:
        dirty = self.batch_dirty
        seq = Root.capture(self)
        if dirty and self.journal is not None:
            self.journal.commit(seq, always=True)  # a snapshot inside a batch: what it holds so far
        return seq

    def attach(self, recorder: tracking.Recorder | None) -> None:
        Root.attach(self, recorder)
        self.refresh_due()

    def refresh_due(self) -> None:
        """Ask the schedule when to look next (after a save, a restore, a bind, a failure)."""
        due, self.count_due, self.deadline = self.schedule.plan(
            self.seq, self.saved_seq, self.last_time, retry=self.failed or self.save_requested)
        if self.batch_depth or self.recorder is not None:
            self.deadline = -math.inf  # see tick
        if self.batch_depth:
            self.due = self.seq + 1  # the batch's end decides
        elif self.store is None:
            self.due = NEVER  # nothing to save to
        else:
            self.due = due
        self.stride, self.looked = 1, self.last_time  # the next mutation reads the clock
        if self.recorder is not None:
            self.due = min(self.due, self.seq + 1)  # the recorder is told every mutation

    def policy_due(self) -> bool:
        return self.store is not None and self.schedule.is_due(self.seq, self.saved_seq, self.last_time)

    def autosave(self) -> None:
        if self.store is None:
            self.save_requested = False  # not bound (yet): nothing to save to, nothing to raise
            self.refresh_due()
        elif self.inflight:
            # An asnapshot() is writing: an automatic snapshot now would fight it for the
            # lock (StoreLocked) or race it (SeqRegression). It is taken when that write ends
            # (or at the next mutation, whichever comes first).
            self.deferred = True
            self.due = self.seq + 1
        else:
            self.sync()
            if self.failed or self.save_requested or self.policy_due():
                self.save(self.seq)
            elif self.journal is not None:
                self.due = self.seq + 1  # what refresh_due() says here, with a journal told every mutation
            else:
                self.refresh_due()

    def save(self, seq: int, *, force: bool = False) -> int:
        obj: Snapshottable = self.obj
        store = self.store
        if store is None:
            raise SnapError(f"{type(obj).__qualname__} object is not bound to a store: "
                            "use open(path) or bind(path) first")
        try:
            self.write(store, store.encode(obj), seq, force=force)
        except BaseException:
            self.failed = True  # the next mutation (or snapshot()) tries again
            self.refresh_due()
            raise
        self.mark_saved(seq)
        return seq

    def write(self, store: SnapStore, data: bytes, seq: int, *, force: bool = False) -> SnapshotInfo:
        """Commit encoded ``data`` if the store still holds :attr:`base` (any thread).

        The outcome is recorded under the store's lock, the moment it commits, so
        a write whose awaiting task was cancelled still tells the object."""
        lock = self.wlock
        if lock is None:
            with _LAZY:  # once, whichever thread writes first
                lock = self.wlock
                if lock is None:
                    lock = self.wlock = threading.Lock()
        with lock:
            return store.commit_encoded(data, seq, schema_version=type(self.obj).__snapmixin_version__,
                                        expect=self.base, force=force,
                                        replace_damaged=self.base_damaged, on_commit=self.landed_at)

    def landed_at(self, info: SnapshotInfo) -> None:
        # Called in the writing thread: plain attribute stores only (the GIL makes each atomic).
        self.base = info.generation
        self.base_damaged = False
        if info.seq > self.landed:
            self.landed = info.seq
        if self.journal is not None:
            self.journal.committed(info)  # compaction: a new segment follows this snapshot

    def sync(self) -> None:
        """Take in what writes finished in worker threads since (a cancelled asnapshot())."""
        if self.landed > self.saved_seq and not self.inflight:
            self.mark_saved(self.landed)

    def unsaved(self) -> bool:
        """Whether a mutation (or a failed write) is not in a snapshot yet."""
        self.sync()
        return self.failed or self.pending > self.saved_seq

    def written(self) -> bool:
        """Whether :meth:`Snapshottable.snapshot` has nothing to write: nothing unsaved, and the
        store holds a generation (an object opened on an empty store is not in it yet)."""
        return self.base is not None and not self.unsaved()

    async def asave(self, store: SnapStore, data: bytes, seq: int, *, force: bool = False) -> int:
        """The I/O half of ``asnapshot``: commit already-encoded ``data`` in a worker thread.

        Writes of one tree run one after the other, in the order they were asked for.
        """
        self.inflight += 1
        try:
            loop = asyncio.get_running_loop()
            if self.alock is None or self.alock[0] is not loop:
                self.alock = (loop, asyncio.Lock())
            async with self.alock[1]:
                await asyncio.to_thread(self.write, store, data, seq, force=force)
        except BaseException:
            self.inflight -= 1
            self.failed = True  # the next mutation (or snapshot()) tries again
            self.refresh_due()
            raise
        self.inflight -= 1
        self.mark_saved(seq)
        if self.deferred and not self.inflight:
            await self._catch_up()
        return seq

    async def _catch_up(self) -> None:
        """Take the automatic snapshot that fell due while an ``asnapshot()`` was writing."""
        self.deferred = False
        store = self.store
        if store is None or not (self.failed or self.save_requested or self.policy_due()):
            return
        try:
            await self.asave(store, store.encode(self.obj), self.seq)
        except Exception as e:  # the caller's own snapshot succeeded: do not fail it for this one
            log.warning("%s: the automatic snapshot due during an asnapshot() failed (%s); the next "
                        "mutation or snapshot() tries again", store.path, e)

    def mark_saved(self, seq: int) -> None:
        # An asnapshot() that captured an older seq does not clear a later failure.
        self.failed = self.failed and seq < self.seq
        self.save_requested = False
        self.saved_seq = max(self.saved_seq, seq)
        self.last_time = time.monotonic()
        self.refresh_due()


async def _value(seq: int) -> int:
    return seq


def _declared(cls: type) -> list[str]:
    """The fields a class declares (tracked ones): the one answer the mixin gives to "which fields
    does this object have" for tracking, pickling and copying, computed once per class.

    A pydantic model's ``model_fields``, a dataclass's fields, an attrs class's attributes, and
    every slot of the class and its bases (not ``__dict__``, ``__weakref__`` or dunder names such as
    pydantic's own ``__pydantic_fields_set__``), minus :func:`_untracked` names. Attributes an
    instance holds beyond these (a plain class's, or set in ``__post_init__``) are added per object
    (see :func:`_field_names`).
    """
    cached = cls.__dict__.get("__snapmixin_fields_cache__")
    if cached is not None and cached[0] is cls:
        return cached[1]  # type: ignore[no-any-return]
    model_fields = getattr(cls, "model_fields", None) if _is_pydantic(cls) else None
    if isinstance(model_fields, dict):
        names = list(model_fields)
    elif dataclasses.is_dataclass(cls):
        names = [f.name for f in dataclasses.fields(cls)]
    else:
        names = [a.name for a in getattr(cls, "__attrs_attrs__", ())]
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            dunder = name.startswith("__") and name.endswith("__")
            if not dunder and name != _SLOT and name not in names:
                names.append(name)
    quiet = _untracked(cls)
    names = [n for n in names if n not in quiet]
    _cache(cls, "__snapmixin_fields_cache__", names)
    return names


def _field_names(obj: object) -> list[str]:
    """The fields of ``obj`` tracking must look at: its class's declared ones, then the other
    attributes that hold a container or an object (its state's ``held``, which ``__init__``'s
    assignments filled in). Its ``__dict__`` is never read here."""
    names = _declared(type(obj))
    st = _slot(obj)
    if st is not None and st.held:
        return names + [k for k in st.held if k not in names]
    return names


def _cache(cls: type, name: str, value: Any) -> None:
    """Keep a per-class answer in the class's own namespace (one dict look-up per object built,
    where a WeakKeyDictionary costs a weak reference per look-up), with the class it is for: a
    namespace copied into a new class (``dataclass(slots=True)`` does that) is not taken for it."""
    type.__setattr__(cls, name, (cls, value))


def _untracked(cls: type) -> frozenset[str]:
    """Names whose assignments the mixin neither counts nor tracks (their values are not state).

    The one place that decides it, per class: its ``transient()`` fields, and any names it
    lists in ``__snapmixin_untracked__``.
    """
    cached = cls.__dict__.get("__snapmixin_quiet_cache__")
    if cached is not None and cached[0] is cls:
        return cached[1]  # type: ignore[no-any-return]
    found = frozenset(getattr(cls, "__snapmixin_untracked__", ())) | transient_names(cls)
    _cache(cls, "__snapmixin_quiet_cache__", found)
    return found




def _is_pydantic(cls: type) -> bool:
    """Whether ``cls`` is a pydantic model class (pydantic is never imported for this)."""
    mod = sys.modules.get("pydantic")
    return mod is not None and issubclass(cls, mod.BaseModel)


def _slot(obj: object) -> _State | _Init | None:
    """What the object's private slot holds (None when it was never set: built without ``__new__``)."""
    # getattr with a default raises nothing for a class without __getattr__ (an exception costs
    # several times the look-up, and every decoded object is asked two or three times).
    st = getattr(obj, _SLOT, None)
    if st is None or type(st) is _State or type(st) is _Init:
        return st
    try:  # a __getattr__ answered for a name the instance does not hold: ask the instance itself
        return object.__getattribute__(obj, _SLOT)  # type: ignore[no-any-return]
    except AttributeError:
        return None


def _state(obj: Snapshottable) -> _State:
    """The object's state, adopting it first if it was built without ``__init__``."""
    st = _slot(obj)
    if type(st) is _State:
        return st
    return _adopt(obj, None)


_DIRECT: dict[tuple[type, str], bool] = {}


def _direct(cls: type, name: str) -> bool:
    """Whether ``obj.name = v`` on instances of ``cls`` only stores into the instance __dict__.

    False when the class (or a base) has a data descriptor of that name (a
    property, a slot, ``__dict__`` itself), whose ``__set__`` must run.
    """
    key = (cls, name)
    found = _DIRECT.get(key)
    if found is None and _is_pydantic(cls):
        found = _DIRECT[key] = False  # pydantic's __setattr__ must run (validation, fields set)
    if found is None:
        attr = None
        for klass in cls.__mro__:
            if name in klass.__dict__:
                attr = klass.__dict__[name]
                break
        kind = type(attr)
        found = not (hasattr(kind, "__set__") or hasattr(kind, "__delete__"))
        _DIRECT[key] = found
    return found


def _new_state(obj: Any, root: Root | None) -> tuple[_State, Any]:
    """Give ``obj`` a fresh state reporting to ``root`` (None: to itself), fields not looked at.

    Returns the state and the placeholder counter its fields reported to while
    its ``__init__`` ran (None when it had none).
    """
    previous = _slot(obj)
    st = _State(obj)
    if root is not None:
        st.root = root  # type: ignore[assignment]
    if type(previous) is _Init:
        st.held = set(previous.held)  # what __init__ stored beyond the declared fields, known already
    else:
        previous = None
        if not _declared(type(obj)):
            # Built without __init__ (a decoder, copy...) and nothing declared: its __dict__ is all
            # there is to go by (the one place construction reads it, for such classes only).
            d = getattr(obj, "__dict__", None) or {}
            st.held = {k for k, v in d.items() if k != _SLOT and type(v) not in SCALARS}
    _setattr(obj, _SLOT, st)
    return st, previous


def _adopt(obj: Snapshottable, root: Root | None) -> _State:
    """Give ``obj`` a state and turn its containers into tracked ones (no mutation counted)."""
    st, previous = _new_state(obj, root)
    tracking.adopt_fields(obj, st, previous)
    return st


# Values whose placing in a tree may move or share an existing node (a nested object, a tracked
# container): the end of an __init__ leaves these to the general adoption (tracking.adopt_fields).
_NODES = (tracking.Owner, TrackedList, TrackedDict, TrackedSet)


def _adopt_built(obj: Snapshottable, init: _Init) -> _State:
    """:func:`_adopt` at the end of ``obj``'s ``__init__``, for its common case: every field holds a
    scalar, a plain list, dict or set, or a value tracking stores as it is.

    Then no value reports to the placeholder ``init`` and none is a node already in a tree, so
    linking the fields is one :func:`tracking.track` per container field (a tracked copy of what
    ``__init__`` stored, as :func:`tracking.adopt_fields` makes) and the same bookkeeping of
    ``held``. Any nested object or tracked container among the fields: the general path.
    """
    names = _names_built(type(obj), init)
    found: list[tuple[str, Any]] = []
    for name in names:
        v = getattr(obj, name, _MISSING)
        if type(v) not in SCALARS and v is not _MISSING:
            if isinstance(v, _NODES):
                return _adopt(obj, None)
            found.append((name, v))
    st = _State(obj)
    _setattr(obj, _SLOT, st)
    held = st.held
    for name, v in found:
        new = track(v, st)
        if new is not v:
            _setattr(obj, name, new)
        held.add(name)
    return st


def _names_built(cls: type, init: _Init) -> list[str]:
    """The names :func:`_adopt_built` looks at: the declared fields, then the other names the
    class's objects stored a container or an object in while their ``__init__`` ran (``held`` of
    the placeholder ``init``, which only grows: the merged list is kept until it grows)."""
    names = _declared(cls)
    held = init.held
    if not held:
        return names
    cached = init.merged
    if cached is not None and cached[0] == len(held):
        return cached[1]
    merged = names + [n for n in held if n not in names]
    if init.obj is None:  # the class's placeholder (its `held` never loses a name): kept
        init.merged = (len(held), merged)
    return merged


def _learn(obj: Any, st: _State | _Init, name: str) -> bool:
    """First scalar assignment of ``name`` (since it last held a container): decide how the next
    ones are stored. True for an untracked name (never counted, never learnt)."""
    if name in st.quiet:
        return True
    if type(st) is _Init:
        if st.obj is None:  # the building placeholder: the name's next assignment, for any object
            st.seen.add(name)  # of the class, skips this call (counted on the placeholder: unread)
        return st.depth > 0  # (an object whose __init__ ended without adoption: counted, adopting it)
    if st.seen is _NONE_YET:
        st.seen = set()
    st.seen.add(name)
    if type(st) is _State and _direct(type(obj), name):
        if st.d is None:
            st.d = _own_dict(obj)
        if st.fast is _NONE_YET:
            st.fast = set()
        st.fast.add(name)
    return False


def _own_dict(obj: Any) -> dict[str, Any]:
    """The instance ``__dict__`` the assignment fast path stores into (see :data:`_UNSPLIT`).

    On 3.11 a key that is not a string, stored and removed at once, turns the dict into a combined
    one in place: the same dict object (``vars(obj)`` held elsewhere stays live), with its own keys,
    which 3.11's specialized attribute reads handle. No other version needs it.
    """
    d: dict[Any, Any] = object.__getattribute__(obj, "__dict__")
    if _UNSPLIT:
        d[0] = None
        del d[0]
    return d


def _note(obj: Any, st: _State, name: str, value: Any) -> None:
    """Bookkeeping of the fast path, for a field just linked into the tree."""
    if type(value) in SCALARS:
        st.held.discard(name)  # (__init__ may have stored a container there first)
        if st.d is not None and _direct(type(obj), name):
            if st.fast is _NONE_YET:
                st.fast = set()
            st.fast.add(name)
    else:
        st.held.add(name)
        st.fast.discard(name)
        st.seen.discard(name)




def _replay(store: SnapStore, cls: type, obj: Any, info: SnapshotInfo, fallback: bool,
            mode: str | None) -> _journal.Replayed | None:
    """The journal records following the restored snapshot ``info``, applied: ``found.state`` is the
    object after them (None: no journal can exist for this class or store)."""
    if mode is None:
        try:
            _journal.refuse(store, cls, "flush")
        except (TypeError, ValueError):
            return None  # no journal is ever written for it
    found = _journal.load(store, info.generation, info.seq, fallback=fallback)
    if not found.records:
        return found
    if found.schema_version != cls.__snapmixin_version__:  # type: ignore[attr-defined]
        raise SnapError(f"{found.path}: the journal was written with schema version "
                        f"{found.schema_version}, {cls.__qualname__} is version "
                        f"{cls.__snapmixin_version__}: open it with that version first",  # type: ignore[attr-defined]
                        path=found.path)
    from . import codec as _codec
    from .errors import DecodeError

    doc = _journal.replay(_codec.loads(store.encode(obj)), found, fallback=fallback)
    try:
        found.state = _codec.convert(store.codec_for(cls), doc, cls)
    except _codec.DecodeFailure as e:
        raise DecodeError(f"{found.path}: the state after journal replay (seq {found.seq}) does not fit "
                          f"{cls.__qualname__}: {e.message}", path=found.path, json_path=e.json_path) from e
    return found


def _as_store(where: SnapStore | str | os.PathLike[str]) -> SnapStore:
    if isinstance(where, SnapStore):
        return where
    if isinstance(where, (str, os.PathLike)):
        return SnapStore(where)
    raise TypeError(f"expected a directory path or a SnapStore, not {type(where).__name__}")


def _prepared(cls: type) -> bool:
    """Whether :func:`_prepare` ran for ``cls`` (the class's own flag, never a base's)."""
    return cls.__dict__.get("__snapmixin_prepared__") is cls


def _prepare(cls: type, *, check_codec: bool = True) -> None:
    """Checks and set-up done once per class, at its first instance.

    ``check_codec=False`` when the class is opened with a store that has a codec of its own:
    the default adapters' up-front refusal does not apply to that codec's types.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and params.frozen:
        raise TypeError(f"{cls.__qualname__} is a frozen dataclass: a Snapshottable must be mutable "
                        "(drop frozen=True)")
    if _is_pydantic(cls) and getattr(cls, "model_config", {}).get("frozen"):
        raise TypeError(f"{cls.__qualname__} is a frozen pydantic model: a Snapshottable must be mutable "
                        "(drop frozen=True from its model_config)")
    props = getattr(cls, "__attrs_props__", None)
    if getattr(props, "is_frozen", False) or getattr(cls.__setattr__, "__name__", "") == "_frozen_setattrs":
        raise TypeError(f"{cls.__qualname__} is a frozen attrs class: a Snapshottable must be mutable")
    own_setattr: object = cls.__setattr__
    if getattr(cls, "__attrs_own_setattr__", False) and own_setattr is not Snapshottable.__setattr__:
        # attrs' own __setattr__ (for validators or converters on assignment) writes with
        # object.__setattr__: no assignment would ever be counted.
        raise TypeError(
            f"{cls.__qualname__}: attrs generated a __setattr__ (on_setattr hooks: validators or "
            "converters run on assignment) that would bypass Snapshottable's mutation tracking; "
            "use @attrs.define(on_setattr=attrs.setters.NO_OP)")
    from . import codec as _codec

    if check_codec:
        _codec.codec_for(cls)  # refuse, with a helpful message, a type no codec can save
    init = cls.__init__  # type: ignore[misc]

    def __init__(self: Snapshottable, *args: Any, **kwargs: Any) -> None:
        st = _slot(self)
        if isinstance(st, _State) or (st is not None and st.depth):
            # A second __init__ call on a live object (counted), or one inside this object's
            # running __init__ (`super().__init__()`: the outermost one adopts at its end).
            init(self, *args, **kwargs)
            return
        building = _building(type(self))
        if st is not None:
            building.held.update(st.held)  # a placeholder (see _Init): what it knew
        _setattr(self, _SLOT, building)
        try:
            init(self, *args, **kwargs)
        except BaseException:
            if _slot(self) is building:  # never left building: adopted at its first mutation
                left = _Init(self)
                left.held = set(building.held)
                _setattr(self, _SLOT, left)
            raise
        now = _slot(self)
        if now is None or type(now) is _Init:
            # A fresh count: nothing done in __init__ counts. (None: __init__ replaced the
            # instance __dict__. An object that __init__ put into a tree, `parent.kids.append(self)`,
            # has its state there already.)
            _adopt_built(self, building if now is None else now)
        elif now.root is now:  # adopted while __init__ ran (it had lost its placeholder)
            now.seq = 0

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    __init__.__snapmixin_init__ = True  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = init.__doc__
    if not getattr(init, "__snapmixin_init__", False) or "__init__" not in cls.__dict__:
        type.__setattr__(cls, "__init__", __init__)
    type.__setattr__(cls, "__snapmixin_prepared__", cls)


# ---------------------------------------------------------------------------
# pydantic v2 models: `class S(Snapshottable, BaseModel)`
# ---------------------------------------------------------------------------
#
# pydantic owns a model's instance __dict__ (it replaces it when it validates, copies it when it
# copies, compares it, pickles it): these methods, set on each Snapshottable model class, let
# pydantic do its part and keep the mixin's one private entry out of it (see README).


def _pydantic_setup(cls: type) -> None:
    base: Any = sys.modules["pydantic"].BaseModel
    model_setattr = base.__setattr__
    model_getstate = base.__getstate__
    model_setstate = base.__setstate__
    model_copy = base.model_copy
    getattribute = object.__getattribute__

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if name[:1] == "_":  # pydantic's private attributes: not state, not counted
            model_setattr(self, name, value)
            return
        try:
            st = getattribute(self, _SLOT)
        except AttributeError:  # built by model_validate / model_construct: adopt now
            st = _state(self)
        if name in st.quiet:
            model_setattr(self, name, value)
            return
        d = getattribute(self, "__dict__")
        old = d.get(name, _MISSING)
        held = name in st.held
        if old is value and held:
            return  # `m.tags |= {...}`: the in-place operator counted already
        model_setattr(self, name, value)  # validation, fields set; raises before anything counts
        d = getattribute(self, "__dict__")  # validate_assignment installs a new one
        new = d.get(name, _MISSING)  # what pydantic stored (validation may have made a new list)
        if new is not _MISSING and type(new) not in SCALARS:
            tracked = track(new, st.root)
            if tracked is not new:
                d[name] = tracked  # equal to what pydantic validated: a tracked copy of it
            st.held.add(name)
        else:
            st.held.discard(name)
        if held:
            untrack(old)
        st.root.mutated(self, "setattr", name, d.get(name, value))

    def __getstate__(self: Any) -> Any:
        state = dict(model_getstate(self))
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k != _SLOT}
        return state

    def __setstate__(self: Any, state: Any) -> None:
        model_setstate(self, state)
        _adopt(self, None)

    def __deepcopy__(self: Any, memo: dict[int, Any] | None = None) -> Any:
        memo = {} if memo is None else memo
        new = object.__new__(type(self))
        memo[id(self)] = new
        new.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return new

    def __eq__(self: Any, other: Any) -> bool:
        if not isinstance(other, base):
            return NotImplemented
        mine = self.__pydantic_generic_metadata__["origin"] or type(self)
        theirs = other.__pydantic_generic_metadata__["origin"] or type(other)
        return bool(mine == theirs
                    and _model_fields(self) == _model_fields(other)
                    and self.__pydantic_private__ == other.__pydantic_private__
                    and self.__pydantic_extra__ == other.__pydantic_extra__)

    def __copy__(self: Any) -> Any:
        return copy.deepcopy(self)  # as Snapshottable.__copy__: containers belong to one tree

    def copy_model(self: Any, *, update: Any = None, deep: bool = False) -> Any:
        copied = model_copy(self, update=update, deep=deep)
        if update:  # pydantic wrote the new values straight into the copy's __dict__
            _adopt(copied, None)
        return copied

    copy_model.__doc__ = model_copy.__doc__
    _pydantic_post_init(cls)
    for name, func in (("__setattr__", __setattr__), ("__getstate__", __getstate__),
                       ("__setstate__", __setstate__), ("__deepcopy__", __deepcopy__), ("__copy__", __copy__),
                       ("__eq__", __eq__), ("model_copy", copy_model)):
        func.__qualname__ = f"{cls.__qualname__}.{name}"
        type.__setattr__(cls, name, func)
    type.__setattr__(cls, "__snapmixin_model__", True)


def _pydantic_post_init(cls: type) -> None:
    """Give every validated instance its state: pydantic calls ``model_post_init`` after it built
    one, through ``__init__``, ``model_validate`` or ``model_construct`` (none of which keeps the
    instance ``__dict__`` the mixin's ``__new__`` wrote into)."""
    user: Any = cls.model_post_init  # type: ignore[attr-defined]

    def model_post_init(self: Any, context: Any, /) -> None:
        if type(_slot(self)) is _State:
            user(self, context)
            return
        st = _adopt(self, None)
        user(self, context)
        if st.root is st:
            st.seq = 0  # nothing done while the instance is built counts

    model_post_init.__qualname__ = f"{cls.__qualname__}.model_post_init"
    model_post_init.__doc__ = user.__doc__
    type.__setattr__(cls, "model_post_init", model_post_init)


def _model_fields(obj: Any) -> dict[str, Any]:
    """A model's field values, for ``==`` (pydantic 2.0 compares the whole ``__dict__``)."""
    d = object.__getattribute__(obj, "__dict__")
    return {k: v for k, v in d.items() if k != _SLOT}


class Snapshottable(tracking.Owner):
    """Mixin: durable, crash-safe snapshots of an object's state, with mutation tracking.

    Class keywords: ``snapshot_version`` (int, default 1) is the schema
    version written into snapshots; ``@migration(from_version=k)`` functions
    in the class body upgrade older snapshots on restore.
    """

    # No slots of its own: its one private attribute lives in the instance __dict__ (set with
    # object.__setattr__), so it combines with any base (pydantic's BaseModel has slots of its
    # own) and a dataclass(slots=True) subclass keeps working (it has a __dict__ from here).
    _snapmixin: _State | _Init
    __snapmixin_version__: ClassVar[int] = _migrate.DEFAULT_VERSION
    __snapmixin_migrations__: ClassVar[dict[int, _migrate.Migration]] = {}
    __snapmixin_policy__: ClassVar[Schedule | None] = None
    __snapmixin_journal__: ClassVar[str | None] = None

    def __init_subclass__(cls, snapshot_version: int | None = None, snapshot_journal: Any = _MISSING,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if _SLOT in cls.__dict__ or _SLOT in inspect.get_annotations(cls):
            # A field of that name would overwrite the mixin's state in the instance __dict__
            # (or, for a pydantic private attribute, hide the user's value behind it).
            raise TypeError(f"{cls.__qualname__}: the attribute name {_SLOT!r} is reserved for "
                            "Snapshottable's private state; rename that field")
        if snapshot_journal is not _MISSING:
            cls.__snapmixin_journal__ = _journal.check_mode(snapshot_journal)
        if snapshot_version is None:
            # dataclass(slots=True) re-creates the class without our keyword: keep what it had.
            snapshot_version = cls.__snapmixin_version__
        found = dict(getattr(cls, "__snapmixin_migrations__", {}))
        found.update(_migrate.collect(cls.__dict__))
        _migrate.check_chain(found, snapshot_version, cls.__qualname__)
        cls.__snapmixin_version__ = snapshot_version
        cls.__snapmixin_migrations__ = found
        if _is_pydantic(cls):
            if not getattr(cls, "__snapmixin_model__", False):
                _pydantic_setup(cls)
            elif "model_post_init" in cls.__dict__:
                _pydantic_post_init(cls)

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.__dict__.get("__snapmixin_prepared__") is not cls:  # _prepared(cls), inlined
            _prepare(cls)
        # No state yet: __init__ gives it its placeholder (_Init); an object that never runs
        # __init__ (a decoder's, a copy's) is adopted where it is first stored or assigned to.
        return object.__new__(cls)

    def __setattr__(self, name: str, value: Any) -> None:
        # The hot path of every assignment: keep it short.
        try:
            st = self._snapmixin
        except AttributeError:  # built without __new__ (a decoder, copy): adopt now
            st = _adopt(self, None)
        if type(value) in SCALARS:
            if name in st.fast:
                st.d[name] = value  # type: ignore[index]  # `fast` is empty when `d` is None
            elif name in st.held:  # replaces a container or an object: it loses this place
                old = getattr(self, name, _MISSING)
                _setattr(self, name, value)
                st.held.discard(name)
                if type(st) is not _Init:  # (a placeholder linked nothing: `old` has no place here)
                    untrack(old)
            else:
                _setattr(self, name, value)
                if name not in st.seen and _learn(self, st, name):
                    return  # an untracked name: stored, not counted
        else:
            if name in st.quiet:
                _setattr(self, name, value)  # an untracked name: stored as is, not counted
                return
            if type(st) is _Init and st.depth:
                # While __init__ runs: stored as is, not counted; when it ends, adopt_fields links
                # every field into the tree at once (plain containers become tracked ones).
                _setattr(self, name, value)
                st.held.add(name)
                return
            # `held`: the instance itself holds `old` (getattr may find a class-level default,
            # which must still be written: every field is in the instance, always).
            old = getattr(self, name, _MISSING)
            if old is value and name in st.held:
                return  # `obj.tags |= {...}`: the in-place operator counted already
            value = track(value, st.root)  # the new place first: `obj.kids = list(obj.kids)`
            _setattr(self, name, value)
            if name in st.held:
                untrack(old)
            else:
                st.held.add(name)
            st.fast.discard(name)
            st.seen.discard(name)
        r = st.root
        r.seq += 1
        if r.seq >= r.due:
            r.tick(self, "setattr", name, value)

    def __delattr__(self, name: str) -> None:
        old = getattr(self, name, _MISSING)
        object.__delattr__(self, name)
        st = _state(self)
        if name in st.held:
            st.held.discard(name)
            untrack(old)
        st.fast.discard(name)
        st.seen.discard(name)
        if name not in st.quiet:
            st.root.mutated(self, "delattr", name)

    # -- the owner contract (tracking.Owner): how tracking sees this object ---
    def __snapmixin_node__(self) -> _State | None:
        st = _slot(self)
        return st if type(st) is _State else None

    def __snapmixin_adopt__(self, root: Root | None) -> tuple[_State, Any]:
        return _new_state(self, root)

    def __snapmixin_fields__(self) -> list[str]:
        return _field_names(self)

    def __snapmixin_linked__(self, state: Any, name: str, value: Any) -> None:
        _note(self, state, name, value)

    def __snapmixin_copy__(self) -> Any:
        # An object that belongs to another tree is stored as a copy, as a list would be:
        # taking it would silently remove it from the tree it is in (`dataclasses.replace(game)`
        # would steal `game`'s units).
        return copy.deepcopy(self)

    # -- pickle and copy: fields only, never the store binding ---------------
    def __getstate__(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        d = getattr(self, "__dict__", None)
        names = _field_names(self) + sorted(_untracked(type(self)))
        slots = {n: getattr(self, n) for n in names if (d is None or n not in d) and hasattr(self, n)}
        fields = {k: v for k, v in d.items() if k != _SLOT} if d else None
        return (fields or None, slots)

    def __copy__(self: S) -> S:
        """A deep copy: a tracked container or nested object belongs to one tree only, so a
        shallow copy sharing them would take them over from the original."""
        return copy.deepcopy(self)

    def __setstate__(self, state: Any) -> None:
        d, slots = state if isinstance(state, tuple) else (state, {})
        st = _slot(self)
        if st is None:  # a fresh copy: a placeholder notes what it holds beyond declared fields
            st = _Init(self)
            _setattr(self, _SLOT, st)
        for name, value in {**(d or {}), **(slots or {})}.items():
            if name == _SLOT:
                continue
            _setattr(self, name, value)
            if type(st) is _Init and type(value) not in SCALARS:
                st.held.add(name)
        _adopt(self, None)

    # -- public API --------------------------------------------------------
    @classmethod
    def open(cls: type[S], where: SnapStore | str | os.PathLike[str],
             default: Callable[[], S] | None = None, *, fallback: bool = False,
             journal: str | None = None) -> S:
        """Restore the latest snapshot from ``where`` (a directory or a SnapStore), bound to it.

        ``~`` in a path is expanded. When there is no snapshot yet, ``default()``
        (or ``cls()``) is returned, bound. Damage raises ``CorruptSnapshot``; with
        ``fallback=True`` the newest intact generation is restored instead (a
        warning in the ``snapmixin`` log), and the next snapshot replaces the
        damaged one, which is kept as ``history/damaged-<time>.json``. A state
        that does not fit the class raises ``DecodeError``.

        The object's snapshots commit only while the store still holds the
        generation it restored (or, later, the one it last wrote): if another
        writer committed in between, ``snapshot()`` raises ``SnapshotConflict``.

        ``journal="flush"`` or ``"fsync"`` (default: the class keyword
        ``snapshot_journal=``) keeps a journal of every mutation next to the
        snapshot (see :mod:`snapmixin.journal`). Whatever ``journal`` says, a
        journal left in the store for the restored snapshot is replayed.
        """
        store = _as_store(where)
        mode = _journal.check_mode(journal if journal is not None else cls.__snapmixin_journal__)
        if not _prepared(cls):
            _prepare(cls, check_codec=store.codec is None)
        if mode is not None:
            _journal.refuse(store, cls, mode)
        base: Any = None
        damaged = False
        found: _journal.Replayed | None = None
        generation: str | None = None
        try:
            obj: S
            r = store.restore_generation(cls, fallback=fallback, schema_version=cls.__snapmixin_version__,
                                         migrations=cls.__snapmixin_migrations__)
            obj, seq, base, damaged = r.state, r.info.seq, r.base, r.fell_back
            generation = r.info.generation
            found = _replay(store, cls, obj, r.info, fallback, mode)
            if found is not None and found.records:
                obj = found.state
        except SnapshotNotFound as e:
            if default is not None:
                obj = default()
            else:
                try:
                    obj = cls()
                except TypeError as err:
                    raise TypeError(f"{e} and {cls.__qualname__}() cannot be built without arguments "
                                    f"({err}): pass default= to open(), e.g. "
                                    f"{cls.__qualname__}.open(path, default=lambda: {cls.__qualname__}(...))"
                                    ) from err
            if not isinstance(obj, cls):
                raise TypeError(f"default() returned {type(obj).__qualname__}, not {cls.__qualname__}"
                                ) from None
            seq = 0
        st = _state(obj)
        st.seq = st.saved_seq = seq
        if found is not None and found.records:
            st.seq = found.records[-1][0]  # the journal's mutations are not in a snapshot yet
        st.store = store
        st.base, st.base_damaged = base, damaged
        st.last_time = time.monotonic()
        if mode is not None:
            j = _journal.Journal(st, store, mode)
            if generation is not None:  # the segment of the restored snapshot, its good records kept
                if found is not None and found.damaged and found.path is not None:
                    _journal.keep_damaged(store, found.path)  # (fallback=True) the whole segment too
                j.start(generation, seq, found.lines if found is not None else ())
            st.journal = j  # without a snapshot (an empty store): stalled until the first one
            st.attach(j)
        st.refresh_due()
        return obj

    def bind(self: S, where: SnapStore | str | os.PathLike[str], *, journal: str | None = None) -> S:
        """Save this object's snapshots to ``where`` from now on (nothing is read). Returns self.

        An object nested in another one's tree is saved with that tree: binding
        it alone is refused (``TypeError``); bind the root object instead.
        ``journal=`` as for :meth:`open`: the journal starts with the first
        snapshot, which the next mutation takes.
        """
        st = _state(self)
        if st.root is not st:
            owner = type(st.root.obj).__qualname__ if isinstance(st.root, _State) else "another object"
            raise TypeError(f"this {type(self).__qualname__} object is nested in a {owner} object and is "
                            "saved with it: bind that one instead (or remove this one from it first)")
        store = _as_store(where)
        mode = _journal.check_mode(journal if journal is not None else type(self).__snapmixin_journal__)
        if mode is not None:
            _journal.refuse(store, type(self), mode)
        try:  # the generation this object will replace: whatever the store holds now
            base: Any = store.current()[1]
        except (OSError, SnapError):
            base = ANY  # unreadable now: the first write reports what is wrong
        st.store = store
        st.base, st.base_damaged = base, False
        if st.journal is not None:
            st.journal.close()
            st.journal = None
            st.attach(None)
        if mode is not None:
            st.journal = _journal.Journal(st, store, mode)  # stalled: the next mutation snapshots
            st.attach(st.journal)
        st.last_time = time.monotonic()
        st.refresh_due()
        return self

    def snapshot(self, *, force: bool = False) -> int:
        """Write a durable snapshot now; return its seq.

        Nothing is written when nothing is unsaved (no mutation since the object
        was restored or last saved); an object opened on an empty store is
        written, so that the store holds it.

        Raises ``SnapshotConflict`` (nothing written; the object keeps its changes
        and its unsaved count) when another writer committed to the store since
        this object restored or last wrote. ``force=True`` overwrites whatever the
        store holds, with no staleness or seq check; the generation it replaces is
        kept in ``history/`` (even with ``keep=1``, until a later commit prunes it).
        """
        root = _state(self).root
        seq = root.capture()  # inside a batch: what follows counts as a new mutation
        if root.store is not None and not force and root.written():
            return seq
        return root.save(seq, force=force)

    def asnapshot(self, *, force: bool = False) -> Coroutine[Any, Any, int]:
        """:meth:`snapshot` for asyncio: ``await obj.asnapshot()``; returns the seq written.

        The state is captured (encoded) by this call itself, before it returns the
        awaitable, so mutations made afterwards, while the write is in flight or
        before the task even starts, are not in the file, not even half. Only the
        file I/O runs in a worker thread. An unbound object or a state that
        cannot be encoded raises here, at the call. A write whose awaiting task is
        cancelled goes on in its thread; the object learns its outcome when it lands.
        """
        root = _state(self).root
        store = root.store
        if store is None:
            root.save(root.pending)  # raises the not-bound error
            raise AssertionError("unreachable")  # pragma: no cover
        seq = root.capture()
        if not force and root.written():
            return _value(seq)
        data = store.encode(root.obj)
        return root.asave(store, data, seq, force=force)

    @property
    def snapshot_seq(self) -> int:
        """Mutations counted so far, continuing from the restored snapshot's seq."""
        return _state(self).root.pending

    @property
    def snapshot_unsaved(self) -> int:
        """Mutations counted but not yet in a snapshot (0 right after a snapshot or an open)."""
        root = _state(self).root
        root.sync()
        return max(0, root.pending - root.saved_seq)

    @contextmanager
    def snapshot_batch(self) -> Iterator[None]:
        """Count every mutation inside the block as one; automatic snapshots wait for its end."""
        root = _state(self).root
        root.begin_batch()
        ok = False
        try:
            yield
            ok = True
        finally:
            root.end_batch()
            if ok and not root.batch_depth:
                root.autosave()
            else:
                root.refresh_due()

    def mark_mutated(self) -> None:
        """Count a mutation that tracking cannot see (a numpy array changed in place...)."""
        _state(self).root.mutated(self, "mark")

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        root = _state(self).root
        if exc_type is None and root.store is not None and root.unsaved():
            self.snapshot()
