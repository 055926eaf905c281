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
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from . import migrate as _migrate
from . import tracking
from .errors import SnapError, SnapshotNotFound
from .store import ANY, SnapshotInfo, SnapStore
from .tracking import NEVER, SCALARS, Root, track, untrack

__all__ = ["Snapshottable"]

S = TypeVar("S", bound="Snapshottable")
log = logging.getLogger("snapmixin")
_MISSING = object()
_SLOT = "_snapmixin"
_setattr = object.__setattr__


class _Init(Root):
    """Slot value from ``__new__`` until ``__init__`` ends: a counter nothing reads.

    Its ``due`` is 0, so every assignment takes the slow path, :meth:`tick`:
    ignored while ``__init__`` runs; after that (an object built by ``__new__``
    and filled in without ``__init__``), the object is adopted and the
    mutation counted on its real state.
    """

    __slots__ = ("d", "depth", "fast", "held", "obj", "root")

    def __init__(self, obj: Snapshottable) -> None:
        super().__init__()
        self.due = 0
        self.depth = 0
        self.obj = obj
        self.root = self
        self.held: set[str] = set()
        self.fast: set[str] = set()  # never filled: every assignment takes the general path
        self.d = None

    def tick(self) -> None:
        if not self.depth:
            _adopt(self.obj, None).mutated()


class _State(Root):
    """Per-object state: its own counter, and the root its mutations report to."""

    __slots__ = (
        "alock",
        "base",
        "base_damaged",
        "calls",
        "count_due",
        "d",
        "deadline",
        "deferred",
        "failed",
        "fast",
        "held",
        "inflight",
        "landed",
        "last_time",
        "n",
        "obj",
        "refs",
        "root",
        "save_requested",
        "saved_seq",
        "seconds",
        "store",
        "wlock",
    )

    def __init__(self, obj: Snapshottable) -> None:
        super().__init__()
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
        # (no data descriptor on the class, not held): the fastest assignment path.
        self.d: dict[str, Any] | None = getattr(obj, "__dict__", None)
        self.fast: set[str] = set()
        self.store: SnapStore | None = None
        # The generation this object restored or last wrote: its next commit must replace that
        # one (store.create's expect=), or another writer's commit would be overwritten. ANY: no
        # precondition. `base_damaged`: `base` is a damaged file, replaced after open(fallback=True).
        self.base: Any = ANY
        self.base_damaged = False
        self.landed = 0  # the highest seq a write of this object committed (set in worker threads)
        # One write of this object at a time, in any thread: a sync snapshot waits for an
        # asnapshot() whose worker thread still runs (even one whose awaiting task was cancelled).
        self.wlock = threading.Lock()
        self.saved_seq = 0
        self.last_time = time.monotonic()
        self.calls: dict[object, int] = {}
        self.save_requested = False
        self.failed = False
        self.inflight = 0  # asnapshot() writes under way
        self.deferred = False  # an automatic snapshot fell due while one was under way
        self.alock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        # With a seconds= policy every mutation takes the slow path; these two let it return
        # at once while neither the count nor the time is due (see tick).
        self.count_due = NEVER
        self.deadline = -math.inf
        policy = getattr(type(obj), "__snapmixin_policy__", None)
        self.n: int | None = policy[0] if policy else None
        self.seconds: float | None = policy[1] if policy else None

    # -- the slow path of a mutation ----------------------------------------
    def tick(self) -> None:
        if self.batch_depth:
            Root.tick(self)
            return
        if self.seq < self.count_due and time.monotonic() < self.deadline:
            self.due = self.seq + 1  # a seconds= policy, not due yet: look again next time
            return
        self.autosave()

    def refresh_due(self) -> None:
        self.count_due = self.saved_seq + self.n if self.n is not None else NEVER
        self.deadline = (self.last_time + self.seconds
                         if self.seconds is not None and not (self.failed or self.save_requested)
                         else -math.inf)
        if self.batch_depth:
            self.due = self.seq + 1
        elif self.store is None:
            self.due = NEVER
        elif self.failed or self.save_requested or self.seconds is not None:
            # A failed (or a method form's pending) snapshot is retried at the next mutation,
            # with or without a class policy.
            self.due = self.seq + 1
        elif self.n is not None:
            self.due = self.saved_seq + self.n
        else:
            self.due = NEVER

    def policy_due(self) -> bool:
        if self.store is None or self.seq <= self.saved_seq:
            return False
        if self.n is not None and self.seq - self.saved_seq >= self.n:
            return True
        return self.seconds is not None and time.monotonic() - self.last_time >= self.seconds

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
        with self.wlock:
            return store.commit_encoded(data, seq, schema_version=_version(type(self.obj)),
                                        expect=self.base, force=force,
                                        replace_damaged=self.base_damaged, on_commit=self.landed_at)

    def landed_at(self, info: SnapshotInfo) -> None:
        # Called in the writing thread: plain attribute stores only (the GIL makes each atomic).
        self.base = info.generation
        self.base_damaged = False
        if info.seq > self.landed:
            self.landed = info.seq

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


def _version(cls: type) -> int:
    return getattr(cls, "__snapmixin_version__", 1)


def _field_names(obj: object) -> list[str]:
    cls = type(obj)
    names = _FIELDS.get(cls)
    if names is None:
        names = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
        for klass in cls.__mro__:
            for name in klass.__dict__.get("__slots__", ()):
                if name not in (_SLOT, "__dict__", "__weakref__") and name not in names:
                    names.append(name)
        _FIELDS[cls] = names
    d = getattr(obj, "__dict__", None)
    if d:
        return names + [k for k in d if k not in names]
    return names


_FIELDS: weakref.WeakKeyDictionary[type, list[str]] = weakref.WeakKeyDictionary()


def _slot(obj: object) -> _State | _Init | None:
    """What the object's private slot holds (None when it was never set: built without ``__new__``)."""
    try:
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
    object.__setattr__(obj, _SLOT, st)
    return st, (previous if type(previous) is _Init else None)


def _adopt(obj: Snapshottable, root: Root | None) -> _State:
    """Give ``obj`` a state and turn its containers into tracked ones (no mutation counted)."""
    st, previous = _new_state(obj, root)
    tracking.adopt_fields(obj, st, previous)
    return st


def _note(obj: Any, st: _State, name: str, value: Any) -> None:
    """Bookkeeping of the fast path, for a field just linked into the tree."""
    if type(value) in SCALARS:
        if st.d is not None and name in st.d and _direct(type(obj), name):
            st.fast.add(name)
    else:
        st.held.add(name)
        st.fast.discard(name)


def _state_or_none(obj: Any) -> _State | None:
    st = _slot(obj)
    return st if type(st) is _State else None


def _is_snapshottable(value: Any) -> bool:
    return isinstance(value, Snapshottable)


tracking.hooks.is_object = _is_snapshottable
tracking.hooks.state = _state_or_none
tracking.hooks.adopt = _new_state
tracking.hooks.fields = _field_names
tracking.hooks.note = _note
# An object that belongs to another tree is stored as a copy, as a list would be: taking it
# would silently remove it from the tree it is in (`dataclasses.replace(game)` would steal
# `game`'s units).
tracking.hooks.copy = copy.deepcopy


def _as_store(where: SnapStore | str | os.PathLike[str]) -> SnapStore:
    if isinstance(where, SnapStore):
        return where
    if isinstance(where, (str, os.PathLike)):
        return SnapStore(where)
    raise TypeError(f"expected a directory path or a SnapStore, not {type(where).__name__}")


_PREPARED: weakref.WeakSet[type] = weakref.WeakSet()


def _prepare(cls: type, *, check_codec: bool = True) -> None:
    """Checks and set-up done once per class, at its first instance.

    ``check_codec=False`` when the class is opened with a store that has a codec of its own:
    the default adapters' up-front refusal does not apply to that codec's types.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is not None and params.frozen:
        raise TypeError(f"{cls.__qualname__} is a frozen dataclass: a Snapshottable must be mutable "
                        "(drop frozen=True)")
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
        if type(st) is not _Init:
            init(self, *args, **kwargs)  # a second __init__ call on a live object: counted
            return
        st.depth += 1
        try:
            init(self, *args, **kwargs)
        finally:
            st.depth -= 1
        if st.depth == 0 and type(_slot(self)) is _Init:
            # A fresh count: nothing done in __init__ counts. (An object that __init__ put
            # into a tree, `parent.kids.append(self)`, has its state there already.)
            _adopt(self, None)

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    __init__.__snapmixin_init__ = True  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = init.__doc__
    if not getattr(init, "__snapmixin_init__", False) or "__init__" not in cls.__dict__:
        type.__setattr__(cls, "__init__", __init__)
    _PREPARED.add(cls)


class Snapshottable:
    """Mixin: durable, crash-safe snapshots of an object's state, with mutation tracking.

    Class keywords: ``snapshot_version`` (int, default 1) is the schema
    version written into snapshots; ``@migration(from_version=k)`` functions
    in the class body upgrade older snapshots on restore.
    """

    __slots__ = (_SLOT,)
    _snapmixin: _State | _Init
    __snapmixin_version__: ClassVar[int] = 1
    __snapmixin_migrations__: ClassVar[dict[int, _migrate.Migration]] = {}
    __snapmixin_policy__: ClassVar[tuple[int | None, float | None] | None] = None

    def __init_subclass__(cls, snapshot_version: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if snapshot_version is None:
            # dataclass(slots=True) re-creates the class without our keyword: keep what it had.
            snapshot_version = cls.__dict__.get("__snapmixin_version__", _version(cls))
        found = dict(getattr(cls, "__snapmixin_migrations__", {}))
        found.update(_migrate.collect(cls.__dict__))
        _migrate.check_chain(found, snapshot_version, cls.__qualname__)
        cls.__snapmixin_version__ = snapshot_version
        cls.__snapmixin_migrations__ = found

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls not in _PREPARED:
            _prepare(cls)
        obj = object.__new__(cls)
        _setattr(obj, _SLOT, _Init(obj))
        return obj

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
                untrack(old)
            else:
                _setattr(self, name, value)
                if st.d is not None and _direct(type(self), name):
                    st.fast.add(name)
        else:
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
        r = st.root
        r.seq += 1
        if r.seq >= r.due:
            r.tick()

    def __delattr__(self, name: str) -> None:
        old = getattr(self, name, _MISSING)
        object.__delattr__(self, name)
        st = _state(self)
        if name in st.held:
            st.held.discard(name)
            untrack(old)
        st.fast.discard(name)
        st.root.mutated()

    # -- pickle and copy: fields only, never the store binding ---------------
    def __getstate__(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        d = getattr(self, "__dict__", None)
        slots = {n: getattr(self, n) for n in _field_names(self)
                 if (d is None or n not in d) and hasattr(self, n)}
        return (dict(d) if d else None, slots)

    def __copy__(self: S) -> S:
        """A deep copy: a tracked container or nested object belongs to one tree only, so a
        shallow copy sharing them would take them over from the original."""
        return copy.deepcopy(self)

    def __setstate__(self, state: Any) -> None:
        d, slots = state if isinstance(state, tuple) else (state, {})
        for name, value in {**(d or {}), **(slots or {})}.items():
            object.__setattr__(self, name, value)
        _adopt(self, None)

    # -- public API --------------------------------------------------------
    @classmethod
    def open(cls: type[S], where: SnapStore | str | os.PathLike[str],
             default: Callable[[], S] | None = None, *, fallback: bool = False) -> S:
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
        """
        store = _as_store(where)
        if cls not in _PREPARED:
            _prepare(cls, check_codec=store.codec is None)
        base: Any = None
        damaged = False
        try:
            obj: S
            r = store.restore_generation(cls, fallback=fallback, schema_version=_version(cls),
                                         migrations=cls.__snapmixin_migrations__)
            obj, seq, base, damaged = r.state, r.info.seq, r.base, r.fell_back
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
        st.store = store
        st.base, st.base_damaged = base, damaged
        st.last_time = time.monotonic()
        st.refresh_due()
        return obj

    def bind(self: S, where: SnapStore | str | os.PathLike[str]) -> S:
        """Save this object's snapshots to ``where`` from now on (nothing is read). Returns self.

        An object nested in another one's tree is saved with that tree: binding
        it alone is refused (``TypeError``); bind the root object instead.
        """
        st = _state(self)
        if st.root is not st:
            owner = type(st.root.obj).__qualname__ if isinstance(st.root, _State) else "another object"
            raise TypeError(f"this {type(self).__qualname__} object is nested in a {owner} object and is "
                            "saved with it: bind that one instead (or remove this one from it first)")
        store = _as_store(where)
        try:  # the generation this object will replace: whatever the store holds now
            base: Any = store.current()[1]
        except (OSError, SnapError):
            base = ANY  # unreadable now: the first write reports what is wrong
        st.store = store
        st.base, st.base_damaged = base, False
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
        _state(self).root.mutated()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        root = _state(self).root
        if exc_type is None and root.store is not None and root.unsaved():
            self.snapshot()
