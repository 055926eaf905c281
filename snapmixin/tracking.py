"""Mutation tracking: the only module that counts mutations.

A :class:`Root` holds the counter of one tree of objects (a root
``Snapshottable`` object, its tracked containers and the nested
``Snapshottable`` objects below it). Lists, dicts and sets stored in the tree
are converted into :class:`TrackedList`, :class:`TrackedDict` and
:class:`TrackedSet`: subclasses of the builtin types (so ``isinstance``,
``json``, ``==``, ``copy`` and ``pickle`` behave as for plain values) whose
mutating methods each count one mutation on their root.

The hot path of every mutation is two attribute operations and a compare::

    root.seq += 1
    if root.seq >= root.due:
        root.tick()   # batches, automatic snapshots: the slow path

``due`` is set so that the slow path runs only when something has to happen
(a threshold reached, a batch open, a time-based policy to check).

Rules:

- a container stored by assignment or insertion is converted (a copy): the
  caller's original is not tracked (``x = []; obj.items = x; x.append(1)`` is
  not counted); slices and copies of tracked containers are plain values;
- a container replaced by assignment, or removed by ``del``/``pop``, is detached
  and no longer counts (nested containers and objects below it too);
- assigning an attribute the very object it already holds is not a mutation,
  so ``obj.tags |= {"x"}`` counts once.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex, TypeVar

__all__ = ["NEVER", "Root", "TrackedDict", "TrackedList", "TrackedSet", "detach", "link", "track"]

NEVER = 1 << 62  # a `due` no seq reaches
K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class Root:
    """The mutation counter of one tree of objects.

    ``seq`` counts mutations; ``due`` is the seq at which :meth:`tick` must run.
    ``on_due`` is called by :meth:`tick` outside batches (the mixin sets it to
    its automatic-snapshot check).
    """

    __slots__ = ("__weakref__", "batch_depth", "batch_dirty", "due", "on_due", "seq")

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.due = NEVER
        self.batch_depth = 0
        self.batch_dirty = False
        self.on_due: Callable[[], None] | None = None

    def mutated(self) -> None:
        """Count one mutation (what every tracked operation does, inlined)."""
        self.seq += 1
        if self.seq >= self.due:
            self.tick()

    def tick(self) -> None:
        """The slow path of a mutation: batches count once, policies may fire."""
        if self.batch_depth:
            # Inside a batch every mutation is folded into one, counted at the end.
            self.seq -= 1
            self.batch_dirty = True
            self.due = self.seq + 1
            return
        if self.on_due is not None:
            self.on_due()

    def begin_batch(self) -> None:
        self.batch_depth += 1
        self.due = self.seq + 1

    def end_batch(self, *, count: bool = False) -> bool:
        """Close a batch; return True when the outermost one closed and counted a mutation."""
        if count:
            self.batch_dirty = True
        self.batch_depth -= 1
        if self.batch_depth:
            return False
        counted = self.batch_dirty
        self.batch_dirty = False
        if counted:
            self.seq += 1
        return counted

    @property
    def pending(self) -> int:
        """The seq a snapshot taken now carries (a batch's mutations count as one)."""
        return self.seq + (1 if self.batch_dirty else 0)


# ---------------------------------------------------------------------------
# Conversion and linking
# ---------------------------------------------------------------------------

#: Values that need no look at all when stored (immutable leaves).
SCALARS: frozenset[type] = frozenset({
    int, float, str, bool, type(None), bytes, complex, decimal.Decimal, uuid.UUID,
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta,
})

# Set by the mixin: how to attach / detach a nested Snapshottable object (``link``), and
# what to store for one (``track``: the object itself, or a copy when it belongs to another tree).
attach_object: Callable[[Any, Root | None], None] | None = None
store_object: Callable[[Any, Root | None], Any] | None = None


def _never(value: Any) -> bool:
    return False


is_tracked_object: Callable[[Any], bool] = _never


def track(value: Any, root: Root | None) -> Any:
    """The value to store in a tree whose counter is ``root``.

    Plain (and tracked) lists, dicts and sets become new tracked containers,
    recursively; nested Snapshottable objects are attached to ``root`` (an
    object that belongs to another tree is copied, as containers are: an
    object reports to one root only); anything else is returned as is.
    """
    t = type(value)
    if t in SCALARS:
        return value
    if t is list or t is TrackedList:
        new_list = TrackedList.__new__(TrackedList)
        new_list._root = root
        list.extend(new_list, [track(v, root) for v in value])
        return new_list
    if t is dict or t is TrackedDict:
        new_dict = TrackedDict.__new__(TrackedDict)
        new_dict._root = root
        new_dict._deep = False
        for k, v in value.items():
            if type(v) not in SCALARS:
                v = track(v, root)
                new_dict._deep = True
            dict.__setitem__(new_dict, k, v)
        return new_dict
    if t is set or t is TrackedSet:
        new_set = TrackedSet.__new__(TrackedSet)
        new_set._root = root
        set.update(new_set, value)
        return new_set
    if is_tracked_object(value):
        assert store_object is not None
        return store_object(value, root)
    return value


def link(value: Any, root: Root | None) -> None:
    """Point ``value`` and everything tracked below it at ``root``, in place."""
    if isinstance(value, _TRACKED):
        value._root = root
        for v in (value.values() if isinstance(value, dict) else value):
            if type(v) not in SCALARS:
                link(v, root)
    elif is_tracked_object(value):
        assert attach_object is not None
        attach_object(value, root)


def detach(value: Any) -> None:
    """``value`` no longer belongs to the tree: its mutations stop counting there."""
    if type(value) in SCALARS:
        return
    if isinstance(value, _TRACKED):
        link(value, None)
    elif is_tracked_object(value):
        assert attach_object is not None
        attach_object(value, None)


def _count(root: Root | None) -> None:
    if root is not None:
        root.seq += 1
        if root.seq >= root.due:
            root.tick()


# ---------------------------------------------------------------------------
# Tracked containers
# ---------------------------------------------------------------------------


class TrackedList(list[T]):
    """A list that counts each mutating call on its root. Pickles and copies as a plain list."""

    __slots__ = ("_root",)
    _root: Root | None

    def __init__(self, iterable: Iterable[T] = (), /) -> None:
        list.__init__(self, iterable)
        self._root = None

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __setitem__(self, index: Any, value: Any) -> None:
        root = self._root
        if isinstance(index, slice):
            # Detach what goes before tracking what comes: `lst[:] = sorted(lst)` puts
            # back nested objects that a detach after the fact would cut off.
            old = list.__getitem__(self, index)
            if not isinstance(value, (list, tuple)):
                value = list(value)
            if index.step not in (None, 1) and len(value) != len(old):
                raise ValueError(f"attempt to assign sequence of size {len(value)} "
                                 f"to extended slice of size {len(old)}")
            for v in old:
                detach(v)
            list.__setitem__(self, index, [track(v, root) for v in value])
        else:
            old = list.__getitem__(self, index)
            if old is not value:
                detach(old)
            if type(value) not in SCALARS:
                value = track(value, root)
            list.__setitem__(self, index, value)
        _count(root)

    def __delitem__(self, index: Any) -> None:
        old = list.__getitem__(self, index)
        list.__delitem__(self, index)
        for v in (old if isinstance(index, slice) else (old,)):
            detach(v)
        _count(self._root)

    def __iadd__(self, values: Iterable[T]) -> TrackedList[T]:  # type: ignore[override,misc]
        root = self._root
        list.extend(self, [track(v, root) for v in values])
        _count(root)
        return self

    def __imul__(self, n: SupportsIndex) -> TrackedList[T]:
        root = self._root
        items = list(self)
        list.__imul__(self, n)
        if len(self) > len(items) and any(type(v) not in SCALARS for v in items):
            # Repeated containers would alias each other: give each copy its own.
            list.__setitem__(self, slice(len(items), None), [track(v, root) for v in self[len(items):]])
        elif len(self) < len(items):
            for v in items:
                detach(v)
        _count(root)
        return self

    def append(self, value: T, /) -> None:
        root = self._root
        if type(value) not in SCALARS:
            value = track(value, root)
        _list_append(self, value)
        if root is not None:
            root.seq += 1
            if root.seq >= root.due:
                root.tick()

    def extend(self, values: Iterable[T], /) -> None:
        root = self._root
        list.extend(self, [track(v, root) for v in values])
        _count(root)

    def insert(self, index: SupportsIndex, value: T, /) -> None:
        root = self._root
        list.insert(self, index, track(value, root))
        _count(root)

    def pop(self, index: SupportsIndex = -1, /) -> T:
        value = list.pop(self, index)
        detach(value)
        _count(self._root)
        return value

    def remove(self, value: T, /) -> None:
        i = list.index(self, value)
        old = list.__getitem__(self, i)
        list.__delitem__(self, i)
        detach(old)
        _count(self._root)

    def clear(self) -> None:
        old = list(self)
        list.clear(self)
        for v in old:
            detach(v)
        _count(self._root)

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        list.sort(self, key=key, reverse=reverse)
        _count(self._root)

    def reverse(self) -> None:
        list.reverse(self)
        _count(self._root)


class TrackedDict(dict[K, V]):
    """A dict that counts each mutating call on its root. Pickles and copies as a plain dict.

    ``_deep`` is False while the dict has only ever held scalars: then storing a
    scalar need not look up the value it replaces (to detach it).
    """

    __slots__ = ("_deep", "_root")
    _root: Root | None
    _deep: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self, *args, **kwargs)
        self._root = None
        self._deep = True

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __setitem__(self, key: K, value: V) -> None:
        root = self._root
        if type(value) not in SCALARS:
            old = _dict_get(self, key, None)
            if old is not None and old is not value:
                detach(old)  # first: `d[k] = d[k]` re-attaches the objects it holds
            self._deep = True
            _dict_set(self, key, track(value, root))
        elif self._deep:
            old = _dict_get(self, key, None)
            _dict_set(self, key, value)
            if old is not None and type(old) not in SCALARS:
                detach(old)
        else:
            _dict_set(self, key, value)
        if root is not None:
            root.seq += 1
            if root.seq >= root.due:
                root.tick()

    def __delitem__(self, key: K) -> None:
        old = dict.__getitem__(self, key)
        dict.__delitem__(self, key)
        detach(old)
        _count(self._root)

    def __ior__(self, other: Any) -> TrackedDict[K, V]:  # type: ignore[override,misc]
        self._merge(other)
        _count(self._root)
        return self

    def _merge(self, other: Any, **kwargs: Any) -> None:
        root = self._root
        items = dict(other, **kwargs)
        for k, v in items.items():
            old = dict.get(self, k, None)
            if old is not None and old is not v:
                detach(old)
            if type(v) not in SCALARS:
                self._deep = True
            dict.__setitem__(self, k, track(v, root))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        self._merge(other, **kwargs)
        _count(self._root)

    def pop(self, key: K, *default: Any) -> Any:
        if default and key not in self:
            return default[0]  # nothing removed: not a mutation, and the default stays attached
        value = dict.pop(self, key)
        detach(value)
        _count(self._root)
        return value

    def popitem(self) -> tuple[K, V]:
        item = dict.popitem(self)
        detach(item[1])
        _count(self._root)
        return item

    def clear(self) -> None:
        old = list(dict.values(self))
        dict.clear(self)
        for v in old:
            detach(v)
        _count(self._root)

    def setdefault(self, key: K, default: Any = None, /) -> Any:
        if key in self:
            # A read: `d.setdefault(k, []).append(x)` counts once (the append), not twice.
            return dict.__getitem__(self, key)
        value = track(default, self._root)
        if type(value) not in SCALARS:
            self._deep = True
        dict.__setitem__(self, key, value)
        _count(self._root)
        return value


class TrackedSet(set[T]):
    """A set that counts each mutating call on its root. Pickles and copies as a plain set.

    Set elements are hashable, hence immutable: nothing below them is tracked.
    """

    __slots__ = ("_root",)
    _root: Root | None

    def __init__(self, iterable: Iterable[T] = (), /) -> None:
        set.__init__(self, iterable)
        self._root = None

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (set, (list(self),))

    def __repr__(self) -> str:  # set's own repr would name the subclass: TrackedSet({...})
        return set.__repr__(set(self))

    def add(self, value: T, /) -> None:
        set.add(self, value)
        _count(self._root)

    def discard(self, value: Any, /) -> None:
        set.discard(self, value)
        _count(self._root)

    def remove(self, value: T, /) -> None:
        set.remove(self, value)
        _count(self._root)

    def pop(self) -> T:
        value = set.pop(self)
        _count(self._root)
        return value

    def clear(self) -> None:
        set.clear(self)
        _count(self._root)

    def update(self, *others: Iterable[T]) -> None:
        set.update(self, *others)
        _count(self._root)

    def difference_update(self, *others: Iterable[Any]) -> None:
        set.difference_update(self, *others)
        _count(self._root)

    def intersection_update(self, *others: Iterable[Any]) -> None:
        set.intersection_update(self, *others)
        _count(self._root)

    def symmetric_difference_update(self, other: Iterable[T], /) -> None:
        set.symmetric_difference_update(self, other)
        _count(self._root)

    def __ior__(self, other: Any) -> TrackedSet[T]:  # type: ignore[override,misc]
        set.__ior__(self, other)
        _count(self._root)
        return self

    def __iand__(self, other: Any) -> TrackedSet[T]:  # type: ignore[misc]
        set.__iand__(self, other)
        _count(self._root)
        return self

    def __isub__(self, other: Any) -> TrackedSet[T]:  # type: ignore[misc]
        set.__isub__(self, other)
        _count(self._root)
        return self

    def __ixor__(self, other: Any) -> TrackedSet[T]:  # type: ignore[override,misc]
        set.__ixor__(self, other)
        _count(self._root)
        return self


_TRACKED = (TrackedList, TrackedDict, TrackedSet)
_list_append = list.append
_dict_get = dict.get
_dict_set = dict.__setitem__
