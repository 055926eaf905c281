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
        root.tick(node, op, key, value)   # batches, policies, a recorder: the slow path

``due`` is set so that the slow path runs only when something has to happen
(a threshold reached, a batch open, a time-based policy to check, a
:class:`Recorder` attached). What changed (``node``, ``op``, ``args``) is
only built inside that call: with no recorder it costs nothing.

The owner contract: tracking knows the objects that hold fields (the mixin's
``Snapshottable``) only through :class:`Owner`, a base class whose methods
they implement (their node state, adopting them into a tree, their field
names, copying them). No other module sets anything in this one; the mixin
imports this module, never the reverse. An owner's attribute assignment
counts on ``state.root`` with the same hot path, calling
``root.tick(obj, "setattr", name, value)`` when due.

Rules:

- a plain list, dict or set stored by assignment or insertion is converted (a
  copy): the caller's original is not tracked (``x = []; obj.items = x;
  x.append(1)`` is not counted); slices and copies of tracked containers are
  plain values;
- a tracked container or nested object moved inside its own tree keeps its
  identity and stays tracked: each counts its places (see "Places" below) and
  leaves the tree, no longer counting, only when its last place is gone; one
  that belongs to another tree is stored as a copy;
- assigning an attribute the very object it already holds is not a mutation,
  so ``obj.tags |= {"x"}`` counts once.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import uuid
from collections.abc import Iterable
from typing import Any, Protocol, SupportsIndex, TypeVar

__all__ = [
    "NEVER", "SCALARS", "Owner", "Recorder", "Root", "TrackedDict", "TrackedList", "TrackedSet",
    "adopt_fields", "track", "untrack",
]

NEVER = 1 << 62  # a `due` no seq reaches
K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


class Recorder(Protocol):
    """What a :class:`Root` tells about each mutation when one is attached (a future journal).

    ``record(node, op, key, value)``: ``node`` is the container or object
    changed, ``op`` the operation (a method name such as ``"append"``,
    ``"__setitem__"``, or ``"setattr"``/``"delattr"`` for an object's
    attribute), ``key`` where (an index, a dict key, an attribute name; None
    when the operation has none) and ``value`` what was stored (as stored:
    tracked copies of plain containers; a list of them for ``extend``, the
    other operand for the set operators, ``(key, reverse)`` for ``sort``).
    Two fixed arguments rather than a tuple: nothing is allocated to say it.
    """

    def record(self, node: Any, op: str, key: Any, value: Any) -> None: ...


class Root:
    """The mutation counter of one tree of objects.

    ``seq`` counts mutations; ``due`` is the seq at which :meth:`tick` must run.
    ``recorder`` (None by default) is told what each mutation changed; while one
    is attached, ``due`` is kept at ``seq + 1`` so that every mutation takes the
    slow path (with none, the hot path is unchanged: the arguments that say what
    changed are only built inside the slow path's call).
    """

    __slots__ = ("__weakref__", "batch_captured", "batch_depth", "batch_dirty", "due", "recorder", "seq")

    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.due = NEVER
        self.batch_depth = 0
        self.batch_dirty = False
        self.batch_captured = False  # a snapshot was taken inside the open batch
        self.recorder: Recorder | None = None

    def mutated(self, node: Any = None, op: str = "mark", key: Any = None, value: Any = None) -> None:
        """Count one mutation (what every tracked operation does, inlined)."""
        self.seq += 1
        if self.seq >= self.due:
            self.tick(node, op, key, value)

    def tick(self, node: Any = None, op: str = "mark", key: Any = None, value: Any = None) -> None:
        """The slow path of a mutation of ``node`` by ``op`` at ``key`` (already counted in ``seq``).

        Tells the recorder, if any, then :meth:`due_now`.
        """
        if self.recorder is not None:
            self.recorder.record(node, op, key, value)
            if not self.batch_depth:
                self.due = self.seq + 1
        self.due_now()
        if self.recorder is not None and self.due > self.seq + 1:
            self.due = self.seq + 1  # a policy's bookkeeping must not hide the next mutation

    def attach(self, recorder: Recorder | None) -> None:
        """Attach ``recorder`` (None: detach): from the next mutation on, it is told each one."""
        self.recorder = recorder
        self.due = min(self.due, self.seq + 1)

    def due_now(self) -> None:
        """What happens when ``due`` is reached: batches count once; subclasses add policies."""
        if self.batch_depth:
            # Inside a batch every mutation is folded into one, counted at the end.
            self.seq -= 1
            self.batch_dirty = True
            self.due = self.seq + 1

    def begin_batch(self) -> None:
        self.batch_depth += 1
        self.due = self.seq + 1

    def end_batch(self, *, count: bool = False) -> bool:
        """Close a batch; return True when the outermost one closed and counted a mutation.

        ``count``: the batch counts as a mutation even if nothing in it did
        (one call of a method-form ``@snapshot_every``), unless a snapshot
        taken inside it already holds everything it did.
        """
        if count and not self.batch_captured:
            self.batch_dirty = True
        self.batch_depth -= 1
        if self.batch_depth:
            return False
        self.batch_captured = False
        counted = self.batch_dirty
        self.batch_dirty = False
        if counted:
            self.seq += 1
        return counted

    @property
    def pending(self) -> int:
        """The seq a snapshot taken now carries (a batch's mutations count as one)."""
        return self.seq + (1 if self.batch_dirty else 0)

    def capture(self) -> int:
        """The seq of a snapshot being taken now (:attr:`pending`), made final.

        Inside a batch, the mutations made so far become one counted mutation,
        held by this snapshot; what the batch does after it counts as a new
        one (so the batch's end, a policy or ``__exit__`` saves it).
        """
        if self.batch_dirty:
            self.seq += 1
            self.batch_dirty = False
        if self.batch_depth:
            self.batch_captured = True
            self.due = self.seq + 1
        return self.seq


# ---------------------------------------------------------------------------
# Places: storing, moving and removing containers and nested objects
# ---------------------------------------------------------------------------
#
# A tracked container or nested Snapshottable object (a *node*) counts its
# *places*: the list slots, dict values and attributes that hold it inside a
# live parent (a Snapshottable object, or a container that is itself in a
# tree). A container is in a tree exactly while it has a place (its ``_root``
# is None otherwise); an object with no place is the root of its own tree.
# Storing a node adds a place, removing one drops a place, and a node leaves
# its tree only when its last place goes: a value moved inside its tree (a
# swap, an insert then a delete, a pop then a store elsewhere) stays tracked,
# whatever the order of the two steps. Every walk below is iterative (an
# explicit stack), so nesting depth is limited by the codec, not by Python's
# recursion limit.

#: Values that need no look at all when stored (immutable leaves).
SCALARS: frozenset[type] = frozenset({
    int, float, str, bool, type(None), bytes, complex, decimal.Decimal, uuid.UUID,
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta,
})


class Owner:
    """The owner contract: what a nested tracked object's class implements.

    Tracking knows nested objects only through this base class (the mixin's
    ``Snapshottable`` derives from it); nothing is installed into this module
    from outside. A tracked container reports to its :class:`Root` directly; an
    :class:`Owner` is a node with fields, and tells tracking about them through
    these methods (all called rarely: when the object is stored, moved,
    removed or first given a state, never on an assignment's hot path):

    ``__snapmixin_node__()``
        its node state, or None when it has none yet (built by a decoder, a
        copy, or still in its ``__init__``). A node state is a :class:`Root`
        (the counter of the object's own tree while it is in no other) with
        two more attributes tracking reads and writes: ``root`` (the
        :class:`Root` its mutations report to; the state itself while the
        object is the root of its own tree) and ``refs`` (its places in a
        tree, 0 while it is a root).
    ``__snapmixin_adopt__(root)``
        give it a fresh node state reporting to ``root`` and return ``(state,
        previous)``: ``previous`` is the counter its fields reported to until
        now (a placeholder used while ``__init__`` runs) or None. Its fields
        are not looked at: tracking links them next.
    ``__snapmixin_fields__()``
        the names of its fields (the attributes that hold its state).
    ``__snapmixin_linked__(state, name, value)``
        told after field ``name``, holding a container or an object ``value``
        (not a scalar), was linked into the tree (the owner's own bookkeeping
        of its fast paths; a scalar field needs none at adoption).
    ``__snapmixin_copy__()``
        an independent copy, with no node state of its own yet: what is stored
        when the object already belongs to another tree.

    What changed reaches the :class:`Root` through the slow path of a
    mutation: ``root.tick(node, op, key, value)`` (see :meth:`Root.tick`), which
    an owner calls with ``(obj, "setattr", name, value)``.
    """

    __slots__ = ()

    def __snapmixin_node__(self) -> Any:  # pragma: no cover - the contract
        raise NotImplementedError

    def __snapmixin_adopt__(self, root: Root | None) -> tuple[Any, Any]:  # pragma: no cover
        raise NotImplementedError

    def __snapmixin_fields__(self) -> list[str]:  # pragma: no cover
        raise NotImplementedError

    def __snapmixin_linked__(self, state: Any, name: str, value: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def __snapmixin_copy__(self) -> Any:  # pragma: no cover
        raise NotImplementedError


_MISSING = object()


def track(value: Any, root: Root | None) -> Any:
    """The value to store at a new place in the tree whose counter is ``root``.

    Plain lists, dicts and sets become new tracked containers (a copy, all the
    way down); a tracked container or nested object already in this tree is
    stored as is and gains a place; a free one (in no tree) joins this tree as
    is; one that belongs to another tree is copied (a value reports to one
    root only). Anything else is returned as is. ``root`` None (a place inside
    a container that is itself in no tree) stores the value as is: it is
    looked at when that container joins a tree.
    """
    t = type(value)
    if root is None or t in SCALARS:
        return value
    # The commonest values, placed without _place's frame or a job list: an empty dict, and a
    # list of scalars (what a dataclass's fields hold when its __init__ ends, and what most
    # container assignments store): a new tracked copy, filled at once (as _place makes them).
    if t is dict and not value:
        new_dict: TrackedDict[Any, Any] = TrackedDict.__new__(TrackedDict)
        new_dict._root, new_dict._refs, new_dict._deep = root, 1, False
        return new_dict
    if t is list:
        for v in value:
            if type(v) not in SCALARS:
                break
        else:
            new_list: TrackedList[Any] = TrackedList.__new__(TrackedList)
            new_list._root, new_list._refs = root, 1
            list.extend(new_list, value)
            return new_list
    todo: list[tuple[Any, ...]] = []
    new = _place(value, root, todo)
    while todo:
        _fill(todo.pop(), root, todo)
    return new


def _place(value: Any, root: Root, todo: list[tuple[Any, ...]]) -> Any:
    """Add one place for ``value`` in ``root``'s tree; its children are left on ``todo``."""
    t = type(value)
    if t in SCALARS:
        return value
    if t is TrackedList or t is TrackedDict or t is TrackedSet:
        if value._refs:
            if value._root is root:
                value._refs += 1
                return value
            t = list if t is TrackedList else dict if t is TrackedDict else set  # another tree's: copy
        else:
            value._root = root  # free: joins this tree as is
            value._refs = 1
            if t is not TrackedSet:
                todo.append((_REFILL, value))
            return value
    if t is list:
        new_list = TrackedList.__new__(TrackedList)
        new_list._root = root
        new_list._refs = 1
        for v in value:
            if type(v) not in SCALARS:  # its items are placed by a job on `todo` (no recursion)
                todo.append((_FILL, new_list, list.copy(value)))
                break
        else:
            list.extend(new_list, value)  # scalars only: filled at once, no job of its own
        return new_list
    if t is dict:
        new_dict = TrackedDict.__new__(TrackedDict)
        new_dict._root = root
        new_dict._refs = 1
        new_dict._deep = False
        if value:
            todo.append((_FILL, new_dict, dict.copy(value)))
        return new_dict
    if t is set:
        new_set = TrackedSet.__new__(TrackedSet)
        new_set._root = root
        new_set._refs = 1
        set.update(new_set, value)
        return new_set
    if isinstance(value, Owner):
        st = value.__snapmixin_node__()
        if st is None:  # never adopted (decoded, copied, or still in its __init__)
            st, previous = value.__snapmixin_adopt__(root)
            st.refs = 1
            todo.append((_OBJECT, value, st, previous))
            return value
        if st.refs:
            if st.root is root:
                st.refs += 1
                return value
            value = value.__snapmixin_copy__()  # another tree's: copy (a free copy, placed below)
            return _place(value, root, todo)
        st.refs = 1  # free: joins this tree as is, with everything below it
        own = st.root
        st.root = root
        _reroot(value, own, root, False)
        return value
    return value


_FILL, _REFILL, _OBJECT = 0, 1, 2


def _fill(job: tuple[Any, ...], root: Root, todo: list[tuple[Any, ...]]) -> None:
    kind, node = job[0], job[1]
    if kind == _FILL:  # a new container: place each item of the source
        if type(node) is TrackedList:
            list.extend(node, [v if type(v) in SCALARS else _place(v, root, todo) for v in job[2]])
        else:
            deep = False
            for k, v in job[2].items():
                if type(v) not in SCALARS:
                    v = _place(v, root, todo)
                    deep = True
                dict.__setitem__(node, k, v)
            node._deep = deep
    elif kind == _REFILL:  # a free container joining the tree as is: place what it holds
        if type(node) is TrackedList:
            for i, v in enumerate(list(node)):
                if type(v) not in SCALARS:
                    new = _place(v, root, todo)
                    if new is not v:
                        list.__setitem__(node, i, new)
        else:
            deep = False
            for k, v in list(dict.items(node)):
                if type(v) not in SCALARS:
                    deep = True
                    new = _place(v, root, todo)
                    if new is not v:
                        dict.__setitem__(node, k, new)
            node._deep = deep
    else:  # an object just given a state: its fields report to root
        obj, st, previous = node, job[2], job[3]
        note = obj.__snapmixin_linked__
        for name in obj.__snapmixin_fields__():
            v = getattr(obj, name, _MISSING)
            if v is _MISSING:
                continue
            t = type(v)
            if t not in SCALARS:
                if (previous is not None and (t is TrackedList or t is TrackedDict or t is TrackedSet)
                        and v._root is previous):
                    v._root = root  # stored while __init__ ran: move it, never copy
                    if v and t is not TrackedSet:
                        _reroot(v, previous, root, False)
                    note(st, name, v)
                    continue
                if previous is not None and _root_of(v) is previous:
                    _set_root(v, root)  # stored while __init__ ran: move it, never copy
                    _reroot(v, previous, root, False)
                else:
                    new = _place(v, root, todo)
                    if new is not v:
                        object.__setattr__(obj, name, new)
                        v = new
                note(st, name, v)


def adopt_fields(obj: Any, st: Any, previous: Any) -> None:
    """Link the fields of ``obj``, just given the state ``st``, into the tree of ``st.root``.

    Plain containers become tracked ones, nested objects are placed (adopted
    first when they have no state yet); what reported to ``previous`` (the
    placeholder counter used while ``__init__`` ran) moves as is.
    """
    root = st.root
    todo: list[tuple[Any, ...]] = [(_OBJECT, obj, st, previous)]
    while todo:
        _fill(todo.pop(), root, todo)


def _root_of(value: Any) -> Any:
    if isinstance(value, _TRACKED):
        return value._root
    if isinstance(value, Owner):
        st = value.__snapmixin_node__()
        return None if st is None else st.root
    return None


def _set_root(value: Any, root: Any) -> None:
    if isinstance(value, _TRACKED):
        value._root = root
    else:
        value.__snapmixin_node__().root = root


def _children(node: Any) -> Iterable[Any]:
    t = type(node)
    if t is TrackedList:
        return list(node)
    if t is TrackedDict:
        return list(dict.values(node)) if node._deep else ()
    if t is TrackedSet:
        return ()
    return [getattr(node, name, None) for name in node.__snapmixin_fields__()]


def _reroot(node: Any, old: Any, new: Any, exclusive: bool) -> None:
    """Below ``node``: whatever reports to ``old`` reports to ``new`` from now on.

    ``exclusive``: only nodes with one place (a node with more places is also
    held elsewhere in the tree ``old`` names, and stays there).
    """
    stack = [node]
    while stack:
        for v in _children(stack.pop()):
            if type(v) in SCALARS:
                continue
            if isinstance(v, _TRACKED):
                if v._root is old and not (exclusive and v._refs > 1):
                    v._root = new
                    stack.append(v)
            elif isinstance(v, Owner):
                st = v.__snapmixin_node__()
                if st is not None and st.root is old and not (exclusive and st.refs > 1):
                    st.root = new
                    stack.append(v)


def untrack(value: Any) -> None:
    """Drop one place of ``value`` (removed from a live parent); a node with no place left
    leaves the tree: a container stops counting (and drops the places of what it holds), an
    object becomes the root of its own tree again."""
    t = type(value)
    if t in SCALARS:
        return
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is TrackedList or t is TrackedDict or t is TrackedSet:
            if v._refs:
                v._refs -= 1
                if not v._refs:
                    v._root = None
                    stack.extend(w for w in _children(v) if type(w) not in SCALARS)
        elif isinstance(v, Owner):
            st = v.__snapmixin_node__()
            if st is not None and st.refs:
                st.refs -= 1
                if not st.refs:
                    old = st.root
                    st.root = st
                    _reroot(v, old, st, True)


def _count(root: Root | None, node: Any, op: str, key: Any = None, value: Any = None) -> None:
    if root is not None:
        root.seq += 1
        if root.seq >= root.due:
            root.tick(node, op, key, value)


# ---------------------------------------------------------------------------
# Tracked containers
# ---------------------------------------------------------------------------


class TrackedList(list[T]):
    """A list that counts each mutating call on its root. Pickles and copies as a plain list."""

    __slots__ = ("_refs", "_root")
    _root: Root | None
    _refs: int

    def __init__(self, iterable: Iterable[T] = (), /) -> None:
        list.__init__(self, iterable)
        self._root = None
        self._refs = 0

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (list, (list(self),))

    def __setitem__(self, index: Any, value: Any) -> None:
        root = self._root
        if isinstance(index, slice):
            old = list.__getitem__(self, index)
            if not isinstance(value, (list, tuple)):
                value = list(value)
            if index.step not in (None, 1) and len(value) != len(old):
                raise ValueError(f"attempt to assign sequence of size {len(value)} "
                                 f"to extended slice of size {len(old)}")
            # The new places first, then the old ones go: `lst[:] = sorted(lst)` keeps everything.
            value = [track(v, root) for v in value]
            list.__setitem__(self, index, value)
            if root is not None:
                for v in old:
                    untrack(v)
        else:
            old = list.__getitem__(self, index)
            if type(value) not in SCALARS:
                value = track(value, root)
            list.__setitem__(self, index, value)
            if root is not None and type(old) not in SCALARS:
                untrack(old)
        _count(root, self, "__setitem__", index, value)

    def __delitem__(self, index: Any) -> None:
        old = list.__getitem__(self, index)
        list.__delitem__(self, index)
        if self._root is not None:
            for v in (old if isinstance(index, slice) else (old,)):
                untrack(v)
        _count(self._root, self, "__delitem__", index)

    def __iadd__(self, values: Iterable[T]) -> TrackedList[T]:  # type: ignore[override,misc]
        root = self._root
        new = [track(v, root) for v in values]
        list.extend(self, new)
        _count(root, self, "__iadd__", None, new)
        return self

    def __imul__(self, n: SupportsIndex) -> TrackedList[T]:
        root = self._root
        items = list(self)
        list.__imul__(self, n)
        if root is not None:
            if len(self) > len(items):
                for v in self[len(items):]:
                    track(v, root)  # each repeat is one more place of the same value
            elif len(self) < len(items):
                for v in items:
                    untrack(v)
        _count(root, self, "__imul__", None, n)
        return self

    def append(self, value: T, /) -> None:
        root = self._root
        if type(value) not in SCALARS:
            value = track(value, root)
        _list_append(self, value)
        if root is not None:
            root.seq += 1
            if root.seq >= root.due:
                root.tick(self, "append", None, value)

    def extend(self, values: Iterable[T], /) -> None:
        root = self._root
        new = [track(v, root) for v in values]
        list.extend(self, new)
        _count(root, self, "extend", None, new)

    def insert(self, index: SupportsIndex, value: T, /) -> None:
        root = self._root
        value = track(value, root)
        list.insert(self, index, value)
        _count(root, self, "insert", index, value)

    def pop(self, index: SupportsIndex = -1, /) -> T:
        value = list.pop(self, index)
        if self._root is not None:
            untrack(value)
        _count(self._root, self, "pop", index)
        return value

    def remove(self, value: T, /) -> None:
        i = list.index(self, value)
        old = list.__getitem__(self, i)
        list.__delitem__(self, i)
        if self._root is not None:
            untrack(old)
        _count(self._root, self, "remove", None, value)

    def clear(self) -> None:
        old = list(self)
        list.clear(self)
        if self._root is not None:
            for v in old:
                untrack(v)
        _count(self._root, self, "clear")

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        list.sort(self, key=key, reverse=reverse)
        _count(self._root, self, "sort", None, (key, reverse))

    def reverse(self) -> None:
        list.reverse(self)
        _count(self._root, self, "reverse")


class TrackedDict(dict[K, V]):
    """A dict that counts each mutating call on its root. Pickles and copies as a plain dict.

    ``_deep`` is False while the dict has only ever held scalars: then storing a
    scalar need not look up the value it replaces (to drop its place).
    """

    __slots__ = ("_deep", "_refs", "_root")
    _root: Root | None
    _refs: int
    _deep: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        dict.__init__(self, *args, **kwargs)
        self._root = None
        self._refs = 0
        self._deep = True

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (dict, (dict(self),))

    def __setitem__(self, key: K, value: V) -> None:
        root = self._root
        if type(value) not in SCALARS:
            # The new place first, then the old one goes: `d[k] = d[k]` keeps it.
            self._deep = True
            value = track(value, root)
            old = _dict_get(self, key, None)
            _dict_set(self, key, value)
            if root is not None and type(old) not in SCALARS:
                untrack(old)
        elif self._deep:
            old = _dict_get(self, key, None)
            _dict_set(self, key, value)
            if root is not None and type(old) not in SCALARS:
                untrack(old)
        else:
            _dict_set(self, key, value)
        if root is not None:
            root.seq += 1
            if root.seq >= root.due:
                root.tick(self, "__setitem__", key, value)

    def __delitem__(self, key: K) -> None:
        old = dict.__getitem__(self, key)
        dict.__delitem__(self, key)
        if self._root is not None:
            untrack(old)
        _count(self._root, self, "__delitem__", key)

    def __ior__(self, other: Any) -> TrackedDict[K, V]:  # type: ignore[override,misc]
        _count(self._root, self, "__ior__", None, self._merge(other))
        return self

    def _merge(self, other: Any, **kwargs: Any) -> dict[Any, Any]:
        """Store every item of ``dict(other, **kwargs)``; return them as stored."""
        root = self._root
        items = dict(other, **kwargs)
        for k, v in items.items():
            if type(v) not in SCALARS:
                self._deep = True
            new = track(v, root)
            old = dict.get(self, k, None)
            dict.__setitem__(self, k, new)
            items[k] = new
            if root is not None:
                untrack(old)
        return items

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        _count(self._root, self, "update", None, self._merge(other, **kwargs))

    def pop(self, key: K, *default: Any) -> Any:
        if default and key not in self:
            return default[0]  # nothing removed: not a mutation, and the default stays where it is
        value = dict.pop(self, key)
        if self._root is not None:
            untrack(value)
        _count(self._root, self, "pop", key)
        return value

    def popitem(self) -> tuple[K, V]:
        item = dict.popitem(self)
        if self._root is not None:
            untrack(item[1])
        _count(self._root, self, "popitem")
        return item

    def clear(self) -> None:
        old = list(dict.values(self))
        dict.clear(self)
        if self._root is not None:
            for v in old:
                untrack(v)
        _count(self._root, self, "clear")

    def setdefault(self, key: K, default: Any = None, /) -> Any:
        if key in self:
            # A read: `d.setdefault(k, []).append(x)` counts once (the append), not twice.
            return dict.__getitem__(self, key)
        value = track(default, self._root)
        if type(value) not in SCALARS:
            self._deep = True
        dict.__setitem__(self, key, value)
        _count(self._root, self, "setdefault", key, value)
        return value


class TrackedSet(set[T]):
    """A set that counts each mutating call on its root. Pickles and copies as a plain set.

    Set elements are hashable, hence immutable: nothing below them is tracked.
    """

    __slots__ = ("_refs", "_root")
    _root: Root | None
    _refs: int

    def __init__(self, iterable: Iterable[T] = (), /) -> None:
        set.__init__(self, iterable)
        self._root = None
        self._refs = 0

    def __reduce_ex__(self, protocol: SupportsIndex) -> tuple[Any, ...]:
        return (set, (list(self),))

    def __repr__(self) -> str:  # set's own repr would name the subclass: TrackedSet({...})
        return set.__repr__(set(self))

    def add(self, value: T, /) -> None:
        set.add(self, value)
        _count(self._root, self, "add", None, value)

    def discard(self, value: Any, /) -> None:
        set.discard(self, value)
        _count(self._root, self, "discard", None, value)

    def remove(self, value: T, /) -> None:
        set.remove(self, value)
        _count(self._root, self, "remove", None, value)

    def pop(self) -> T:
        value = set.pop(self)
        _count(self._root, self, "pop")
        return value

    def clear(self) -> None:
        set.clear(self)
        _count(self._root, self, "clear")

    def update(self, *others: Iterable[T]) -> None:
        set.update(self, *others)
        _count(self._root, self, "update", None, others)

    def difference_update(self, *others: Iterable[Any]) -> None:
        set.difference_update(self, *others)
        _count(self._root, self, "difference_update", None, others)

    def intersection_update(self, *others: Iterable[Any]) -> None:
        set.intersection_update(self, *others)
        _count(self._root, self, "intersection_update", None, others)

    def symmetric_difference_update(self, other: Iterable[T], /) -> None:
        set.symmetric_difference_update(self, other)
        _count(self._root, self, "symmetric_difference_update", None, other)

    def __ior__(self, other: Any) -> TrackedSet[T]:  # type: ignore[override,misc]
        set.__ior__(self, other)
        _count(self._root, self, "__ior__", None, other)
        return self

    def __iand__(self, other: Any) -> TrackedSet[T]:  # type: ignore[misc]
        set.__iand__(self, other)
        _count(self._root, self, "__iand__", None, other)
        return self

    def __isub__(self, other: Any) -> TrackedSet[T]:  # type: ignore[misc]
        set.__isub__(self, other)
        _count(self._root, self, "__isub__", None, other)
        return self

    def __ixor__(self, other: Any) -> TrackedSet[T]:  # type: ignore[override,misc]
        set.__ixor__(self, other)
        _count(self._root, self, "__ixor__", None, other)
        return self


_TRACKED = (TrackedList, TrackedDict, TrackedSet)
_list_append = list.append
_dict_get = dict.get
_dict_set = dict.__setitem__
