"""The mutation journal: every counted mutation appended to a log next to ``snapshot.json``.

``Game.open(path, journal="flush")`` (or ``"fsync"``, or the class keyword
``snapshot_journal=``) attaches a :class:`Journal` to the object's tree: a
:class:`~snapmixin.tracking.Recorder` that tracking tells about each mutation.
The journal turns it into a JSON Patch (RFC 6902) operation on the state's
JSON document, addressed by JSON Pointers (RFC 6901), and appends one line per
counted mutation before the mutation returns. Snapshots become compaction: once
one commits at seq N, a new segment starts after N and the old one is deleted.

Files (in the store directory)::

    journal-<seq, 20 digits>-<generation tag>.jsonl

one *segment* per snapshot it continues: ``seq`` is the snapshot's seq, the tag
the first 16 hex digits of its generation identity. Line 1 is the header::

    {"journal":"snapmixin","version":1,"after":41,"generation":"sha256:...",
     "schema_version":1,"crc":"1c291ca3"}

then one record per counted mutation (a batch is one record)::

    {"seq":42,"ops":[{"op":"replace","path":"/level","value":3}],"crc":"5e0c3b9a"}

``crc`` is the CRC-32 (zlib, 8 lowercase hex digits) of the line's bytes up to
``,"crc":`` (all but the line's last 18 bytes and its newline). ``ops`` is applied in
order, all or nothing; it may be empty (a mutation of something that is not
saved, or a method-form call that changed nothing).

Replay (:func:`load`, what ``open()`` does): restore the snapshot (seq S,
generation G); read ``journal-S-tag(G).jsonl`` if it exists; check the header
names G and S; apply records S+1, S+2, ... to the snapshot's JSON document; then
decode it as a snapshot is. A last line that is incomplete (no newline, or a
bad checksum with nothing after it) is a torn append: dropped with a warning.
Anything else (a bad checksum or unparsable line before the end, a seq that is
not the previous one plus 1, an operation that does not fit the document) is
``CorruptSnapshot``; with ``fallback=True`` replay stops at the last good record
with a warning. Replay edits JSON only: no user code runs.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, is_dataclass
from typing import Any

import msgspec

from . import fsio
from .codec import hooks as _hooks
from .codec.json import EncodeFailure, dumps
from .codec.native import MsgspecCodec
from .codec.views import transient_names
from .errors import CorruptSnapshot, SnapError, StoreLocked
from .tracking import SCALARS, Owner, TrackedDict, TrackedList, TrackedSet

_fcntl: Any
try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - not POSIX
    _fcntl = None

__all__ = ["MODES", "PREFIX", "Journal", "Replayed", "apply_ops", "check_mode", "load", "refuse",
           "segment_name"]

log = logging.getLogger("snapmixin")

#: The journal modes: ``"flush"`` (a ``write`` before the mutation returns: survives a process
#: crash) and ``"fsync"`` (also ``fsync``: survives power loss).
MODES = ("flush", "fsync")
PREFIX = "journal-"
SUFFIX = ".jsonl"
VERSION = 1
_CRC_TAIL = 18  # len(b',"crc":"xxxxxxxx"}')
_encode = msgspec.json.encode
_decode = msgspec.json.decode
_crc32 = zlib.crc32
_os_write = os.write


def check_mode(mode: object) -> str | None:
    """``mode`` checked: None, ``"flush"`` or ``"fsync"`` (``ValueError`` otherwise)."""
    if mode is None or mode in MODES:
        return mode
    raise ValueError(f"journal must be None, 'flush' or 'fsync', not {mode!r}")


def segment_name(generation: str, seq: int) -> str:
    """The file name of the segment continuing the snapshot ``generation`` at ``seq``."""
    if generation.startswith("sha256:") and len(generation) >= 23:
        tag = generation[7:23]
    else:
        tag = hashlib.sha256(generation.encode()).hexdigest()[:16]
    return f"{PREFIX}{seq:020d}-{tag}{SUFFIX}"


def _is_segment(name: str) -> bool:
    return name.startswith(PREFIX) and name.endswith(SUFFIX)


def refuse(store: Any, cls: type, mode: str) -> None:
    """Raise when a journal cannot be kept for objects of ``cls`` in ``store``: a store that is
    not a local directory (``ValueError``), a codec of the store's own or an adapter whose JSON
    keys may differ from attribute names (``TypeError``)."""
    from .store.local import LocalBackend

    where = store.backend.location if hasattr(store.backend, "location") else str(store.path)
    if not isinstance(store.backend, LocalBackend):
        raise ValueError(
            f"{where}: journal={mode!r} needs a local directory store: a journal is appended to "
            "before each mutation returns, and object storage has no append (use @snapshot_every "
            "on object storage, or a local directory with a journal)")
    if store.codec is not None:
        raise TypeError(f"{store.path}: journal={mode!r} needs snapmixin's own codec: this store was "
                        "given codec=..., whose JSON the journal cannot address")
    name = getattr(cls, "__qualname__", repr(cls))
    codec = store.codec_for(cls)
    if not isinstance(codec, MsgspecCodec) or not is_dataclass(cls) or _hooks.hook_for(cls) is not None:
        raise TypeError(
            f"{store.path}: journal={mode!r} is not supported for {name}: it is saved by "
            f"{type(codec).__name__}, whose JSON keys can differ from the attribute names (aliases, "
            "letter_case, renames) or that has a JSON shape of its own, so a journal record could "
            "replay to a different state. A journal needs a dataclass saved by the default codec "
            "(msgspec); use @snapshot_every for this class")


# ---------------------------------------------------------------------------
# Values and keys, as the codec writes them
# ---------------------------------------------------------------------------

_native = MsgspecCodec()
_FAST = (int, str)  # value types the fast path of record() encodes itself
_JSON_SCALARS = (str, int, bool, type(None))


def _builtins(v: Any) -> Any:
    """``v`` as plain JSON values, each dataclass written by its own type (its view)."""
    t = type(v)
    if t in _JSON_SCALARS:
        return v
    if t is float:
        return v
    if isinstance(v, (list, tuple)) and not hasattr(v, "_fields") and _hooks.hook_for(t) is None:
        return [_builtins(x) for x in v]
    if isinstance(v, dict) and _hooks.hook_for(t) is None:
        return {_key_text(k): _builtins(x) for k, x in dict.items(v)}
    if isinstance(v, (set, frozenset)) and _hooks.hook_for(t) is None:
        items = [_builtins(x) for x in v]
        try:
            return sorted(items)
        except TypeError:
            return sorted(items, key=_encode)
    if is_dataclass(v) and not isinstance(v, type) and _hooks.hook_for(t) is None:
        return _native.to_builtins(v)
    return msgspec.to_builtins(v, enc_hook=_hooks.enc_hook)


def _value(v: Any) -> bytes:
    """The JSON text of a value as the snapshot writes it (``EncodeFailure`` for a bad one)."""
    t = type(v)
    if t is str or t is int or t is bool or v is None:
        try:
            return _encode(v)
        except (OverflowError, TypeError, ValueError):
            pass
    if t is float and math.isfinite(v):
        return _encode(v)
    return dumps(_builtins(v))


_KEYS: dict[Any, str] = {}


def _key_text(k: Any) -> str:
    """The JSON object key the codec writes for dict key ``k``."""
    if type(k) is str:
        return k
    try:
        return _KEYS[k]
    except (KeyError, TypeError):
        pass
    text: str = next(iter(_decode(_encode({k: 0}, enc_hook=_hooks.enc_hook))))
    try:
        if len(_KEYS) < 100_000:
            _KEYS[k] = text
    except TypeError:
        pass
    return text


def _seg(text: str) -> str:
    """One JSON Pointer reference token (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    if "~" in text or "/" in text:
        return text.replace("~", "~0").replace("/", "~1")
    return text


# ---------------------------------------------------------------------------
# Addressing: where each node of the tree sits in the JSON document
# ---------------------------------------------------------------------------

_FIELD_KEYS: dict[type, dict[str, str]] = {}


def _field_keys(cls: type) -> dict[str, str]:
    """Attribute name -> pointer token, for the saved fields of a dataclass the codec writes."""
    found = _FIELD_KEYS.get(cls)
    if found is None:
        import dataclasses

        skip = transient_names(cls)
        found = {f.name: _seg(f.name) for f in dataclasses.fields(cls) if f.name not in skip}
        _FIELD_KEYS[cls] = found
    return found


def _addressable(obj: Any) -> bool:
    """Whether the fields of owner ``obj`` are JSON members named as the attributes."""
    t = type(obj)
    return is_dataclass(t) and _hooks.hook_for(t) is None


@dataclass(eq=False)
class _Entry:
    node: Any
    ptrs: list[str] = field(default_factory=list)
    #: the objects with a JSON shape of their own (a pydantic model...) that hold this node (at
    #: any depth): a mutation of it replaces each of them whole
    opaques: list[Any] = field(default_factory=list)
    #: keys (dict keys, attribute names) holding a node; for a list: whether any item is a node
    nodekeys: set[Any] = field(default_factory=set)
    deep: bool = False
    #: an object whose saved fields are JSON members named as its attributes
    fields: dict[str, str] | None = None
    #: the JSON text of the pointers of a child key (a field, a dict key, a list index)
    sub: dict[Any, list[bytes]] = field(default_factory=dict)
    #: (op, key) -> the text of its one op up to its value, for the fast path of a scalar
    #: assignment of a field or append to a list held in one place
    fast: dict[tuple[str, Any], bytes] = field(default_factory=dict)


def _is_node(v: Any) -> bool:
    t = type(v)
    return t is TrackedList or t is TrackedDict or t is TrackedSet or isinstance(v, Owner)


#: Deeper than any JSON the codec reads or writes: a tree this deep holds a cycle.
_MAX_DEPTH = 100_000


def _walk(root: Any) -> dict[int, _Entry]:
    """Every node of the tree under ``root`` with all its places (JSON Pointers)."""
    entries: dict[int, _Entry] = {}
    _walk_into(entries, [(root, "", None, 0)])
    return entries


def _walk_into(entries: dict[int, _Entry], stack: list[tuple[Any, str | None, Any, int]]) -> None:
    """Add the places of the nodes on ``stack`` (node, pointer or None for a place the JSON does
    not hold, nearest opaque ancestor, depth) and of everything below them to ``entries``."""
    while stack:
        node, ptr, opaque, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise RecursionError("the tree holds itself (a cycle): JSON cannot hold it")
        e = entries.get(id(node))
        if e is None:
            e = entries[id(node)] = _Entry(node)
        elif e.sub or e.fast:
            e.sub.clear()  # a new place: the cached pointer texts miss it
            e.fast.clear()
        if opaque is not None:
            if not any(x is opaque for x in e.opaques):
                e.opaques.append(opaque)
        elif ptr is not None:
            e.ptrs.append(ptr)
        t = type(node)
        depth += 1
        if t is TrackedSet:
            continue
        if t is TrackedList:
            for i, v in enumerate(list.__iter__(node)):
                if type(v) not in SCALARS and _is_node(v):
                    e.deep = True
                    stack.append((v, None if ptr is None else f"{ptr}/{i}", opaque, depth))
        elif t is TrackedDict:
            for k, v in dict.items(node):
                if type(v) not in SCALARS and _is_node(v):
                    e.deep = True
                    e.nodekeys.add(k)
                    stack.append((v, None if ptr is None else f"{ptr}/{_seg(_key_text(k))}", opaque, depth))
        elif isinstance(node, Owner):
            inner = opaque
            addressable = _addressable(node)
            if not addressable:
                inner = node  # below it, mutations replace it whole
            keys = _field_keys(t) if addressable else {}
            if addressable:
                e.fields = keys
            for name in node.__snapmixin_fields__():
                v = getattr(node, name, None)
                if type(v) in SCALARS or not _is_node(v):
                    continue
                e.deep = True
                e.nodekeys.add(name)
                tok = keys.get(name)
                sub = None if (ptr is None or tok is None or not addressable) else f"{ptr}/{tok}"
                stack.append((v, sub, inner, depth))


# ---------------------------------------------------------------------------
# The recorder
# ---------------------------------------------------------------------------

_REPLACE = b'{"op":"replace","path":%s,"value":%s}'
_ADD = b'{"op":"add","path":%s,"value":%s}'
_REMOVE = b'{"op":"remove","path":%s}'
_PTRS: dict[str, bytes] = {}


def _ptr_json(ptr: str) -> bytes:
    b = _PTRS.get(ptr)
    if b is None:
        b = _encode(ptr)
        if len(_PTRS) < 200_000:
            _PTRS[ptr] = b
    return b


def _line(body: bytes) -> bytes:
    return b'%s,"crc":"%08x"}\n' % (body, _crc32(body))


def _index(i: Any, size: int) -> int:
    """A list index as ``list`` resolves it for an existing item of a list of ``size`` items."""
    n: int = i.__index__()
    return n + size if n < 0 else n


class Journal:
    """The journal of one tree: a :class:`~snapmixin.tracking.Recorder` appending to a segment.

    Built by the mixin (``open``/``bind`` with ``journal=``); attached to the tree's root
    counter. ``stalled`` (no segment: after ``bind``, on an empty store, or after a record could
    not be written) asks for a full snapshot at the next mutation instead: its commit starts the
    segment. Not thread-safe beyond what the mixin needs: the owning thread mutates, a worker
    thread (``asnapshot``) may commit; :attr:`lock` orders them.
    """

    def __init__(self, root: Any, store: Any, mode: str) -> None:
        self.root = root
        self.store = store
        self.mode = mode
        self.fsync = mode == "fsync"
        self.fs: fsio.FileOps = store.fs
        self.direct = type(self.fs) is fsio.FileOps  # the real layer: os.write without its wrapper
        self.dir = os.fspath(store.path)
        self.fd = -1
        self.name: str | None = None
        self.last = 0  # the seq of the last record written
        self.pending: list[bytes] = []  # the ops of the open batch
        self.entries: dict[int, _Entry] | None = None
        self.fresh = False  # the map was built during the mutation being recorded
        self.lock = threading.Lock()
        self.schema_version = getattr(type(root.obj), "__snapmixin_version__", 1)

    # -- what tracking tells ---------------------------------------------------
    def record(self, node: Any, op: str, key: Any, value: Any) -> None:
        """Tracking's call after each mutation (see :class:`~snapmixin.tracking.Recorder`)."""
        root = self.root
        entries = self.entries
        t = type(value)
        if entries is not None and (t is int or t is str) and not root.batch_depth and self.fd >= 0:
            # The fast path: a str or int assigned to a field, or appended to a list, of a node in
            # one place; everything it needs was computed by the general path before.
            e = entries.get(id(node))
            if e is not None and e.node is node:
                head = e.fast.get((op, key))
                if head is not None:
                    try:
                        data = _encode(value)
                    except (OverflowError, ValueError, TypeError):  # e.g. an int beyond 64 bits
                        pass  # the general path says why
                    else:
                        self._write_body(b'{"seq":%d,"ops":[%s%s}]' % (root.seq, head, data), root.seq)
                        return
        if self.fd < 0:
            self.entries = None
            root.save_requested = True  # stalled: the snapshot due now starts a segment
            return
        try:
            ops = self._ops(node, op, key, value)
        except (EncodeFailure, TypeError, ValueError, OverflowError, RecursionError) as e:
            self._stall(f"a value cannot be written ({e})")
            return
        if root.batch_depth:
            self.pending.extend(ops)
            return
        self._write(root.seq, ops)

    def commit(self, seq: int, *, always: bool) -> None:
        """Write the open batch's operations as record ``seq`` (a batch's end, a snapshot in it)."""
        ops, self.pending = self.pending, []
        if self.fd < 0:
            self.root.save_requested = True
            return
        if ops or always:
            self._write(seq, ops)

    def _write(self, seq: int, ops: list[bytes]) -> None:
        self._write_body(b'{"seq":%d,"ops":[%s]' % (seq, b",".join(ops)), seq)

    def _write_body(self, body: bytes, seq: int) -> None:
        line = b'%s,"crc":"%08x"}\n' % (body, _crc32(body))
        if self.root.inflight:  # an asnapshot() may compact in its worker thread meanwhile
            with self.lock:
                self._append(line, seq)
        else:
            self._append(line, seq)

    def _append(self, line: bytes, seq: int) -> None:
        try:
            if self.direct:
                n = _os_write(self.fd, line)  # one syscall: the record reaches the OS whole
                if n != len(line):
                    self.fs.write(self.fd, line[n:])
            else:
                self.fs.write(self.fd, line)
            if self.fsync:
                self.fs.fsync(self.fd)
        except OSError as e:
            self._stall(f"cannot append to {self.name}: {e.strerror or e}")
            return
        self.last = seq

    def _stall(self, why: str) -> None:
        """A record could not be written: stop appending (a gap would stop replay) and make the
        mutation take a full snapshot (which raises if it cannot be written either)."""
        log.warning("%s: journal stalled: %s; taking a full snapshot instead", self.dir, why)
        self._close()
        self.pending = []
        self.entries = None
        self.root.save_requested = True

    # -- addressing --------------------------------------------------------------
    def _entry(self, node: Any) -> _Entry | None:
        entries = self.entries
        fresh = self.fresh = entries is None
        if entries is None:
            entries = self.entries = _walk(self.root.obj)
        e = entries.get(id(node))
        if e is not None and e.node is node:
            return e
        if not fresh:  # a map from before a change it did not foresee: look again once
            entries = self.entries = _walk(self.root.obj)
            self.fresh = True
            e = entries.get(id(node))
            if e is not None and e.node is node:
                return e
        return None

    def _sub(self, e: _Entry, key: Any, tok: str) -> list[bytes]:
        got = e.sub.get(key)
        if got is None:
            got = e.sub[key] = [_ptr_json(f"{p}/{tok}") for p in e.ptrs]
        return got

    def _ops(self, node: Any, op: str, key: Any, value: Any) -> list[bytes]:
        e = self._entry(node)
        if e is None:  # not found in the tree (should not happen): the whole document, to be safe
            self.entries = None
            return [_REPLACE % (b'""', _value(self.root.obj))]
        if not e.opaques:
            return self._own(e, node, op, key, value)
        # held (also) inside objects with a JSON shape of their own: replace each of them whole
        entries = self.entries
        targets = [entries.get(id(x)) for x in e.opaques] if entries is not None else [None]
        ops = self._own(e, node, op, key, value) if e.ptrs else []
        if type(value) not in SCALARS or op == "mark":
            self.entries = None
        for target in targets:
            if target is None:
                return [_REPLACE % (b'""', _value(self.root.obj))]
            data = _value(target.node)
            ops.extend(_REPLACE % (_ptr_json(p), data) for p in target.ptrs)
        return ops

    def _grow(self, e: _Entry, key: Any, tok: str | None, value: Any) -> None:
        """``value`` just got a place below ``e`` (at ``key``, pointer token ``tok``; None: a
        place the JSON does not hold): add the places of its nodes instead of a rebuild."""
        entries = self.entries
        if entries is None or self.fresh or type(value) in SCALARS or not _is_node(value):
            return  # (a map built after this mutation holds its places already)
        if e.opaques:  # below an object replaced whole: the new nodes too (a rebuild says so)
            self.entries = None
            return
        e.deep = True
        if type(e.node) is not TrackedList:
            e.nodekeys.add(key)
            e.fast.pop(("setattr", key), None)  # its next scalar must drop these places: slow path
        if tok is None or not e.ptrs:
            _walk_into(entries, [(value, None, None, 0)])
        else:
            _walk_into(entries, [(value, f"{p}/{tok}", None, 0) for p in e.ptrs])

    def _own(self, e: _Entry, node: Any, op: str, key: Any, value: Any) -> list[bytes]:
        """The ops of a mutation at the node's own places."""
        t = type(node)
        scalar = type(value) in SCALARS
        if op == "setattr" and e.fields is not None:  # the common case, first
            tok = e.fields.get(key)
            paths = None if tok is None else self._sub(e, key, tok)
            if key in e.nodekeys:
                self.entries = None
            elif not scalar:
                self._grow(e, key, tok, value)
            if paths is None:
                return []  # not saved (not a field): nothing in the JSON changes
            if len(paths) == 1 and type(value) in _FAST and key not in e.nodekeys and not e.opaques:
                e.fast[("setattr", key)] = b'{"op":"replace","path":%s,"value":' % paths[0]
            data = _value(value)
            return [_REPLACE % (p, data) for p in paths]
        if isinstance(node, Owner) and (e.fields is None or op not in ("delattr", "setattr")):
            # mark_mutated(), an object with a JSON shape of its own, an unknown operation
            if not scalar or op != "setattr":
                self.entries = None
            data = _value(node)
            return [_REPLACE % (_ptr_json(p), data) for p in e.ptrs]
        if t is TrackedList:
            if op == "append":
                paths = self._sub(e, "-", "-")
                if not scalar:
                    self._grow(e, None, str(len(node) - 1), value)
                elif len(paths) == 1 and type(value) in _FAST and not e.opaques:
                    e.fast[("append", None)] = b'{"op":"add","path":%s,"value":' % paths[0]
                data = _value(value)
                return [_ADD % (p, data) for p in paths]
            if op == "extend" or op == "__iadd__":
                paths = self._sub(e, "-", "-")
                start = len(node) - len(value)
                for i, v in enumerate(value):
                    if type(v) not in SCALARS:
                        self._grow(e, None, str(start + i), v)
                items = [_value(v) for v in value]
                return [_ADD % (p, d) for d in items for p in paths]
            if e.deep or not scalar:
                self.entries = None
            if op == "insert":
                before = len(node) - 1
                i = key.__index__()
                i = max(0, i + before) if i < 0 else min(i, before)
                data = _value(value)
                return [_ADD % (_ptr_json(f"{p}/{i}"), data) for p in e.ptrs]
            if op == "pop" or (op == "__delitem__" and not isinstance(key, slice)):
                i = _index(key, len(node) + 1)
                return [_REMOVE % _ptr_json(f"{p}/{i}") for p in e.ptrs]
            if op == "__setitem__" and not isinstance(key, slice):
                i = _index(key, len(node))
                data = _value(value)
                return [_REPLACE % (p, data) for p in self._sub(e, i, str(i))]
            data = _value(node)  # remove, clear, sort, reverse, *=, slices: the whole list
            return [_REPLACE % (_ptr_json(p), data) for p in e.ptrs]
        if t is TrackedDict:
            if op == "__setitem__" or op == "setdefault":
                tok = _seg(_key_text(key))
                paths = self._sub(e, key, tok)
                if key in e.nodekeys:
                    self.entries = None
                elif not scalar:
                    self._grow(e, key, tok, value)
                data = _value(value)
                return [_ADD % (p, data) for p in paths]
            if op == "__delitem__" or op == "pop":
                if key in e.nodekeys:
                    self.entries = None
                return [_REMOVE % p for p in self._sub(e, key, _seg(_key_text(key)))]
            if op == "update" or op == "__ior__":
                if e.nodekeys or any(type(v) not in SCALARS for v in value.values()):
                    self.entries = None
                return [_ADD % (p, _value(v)) for k, v in value.items()
                        for p in self._sub(e, k, _seg(_key_text(k)))]
            if e.deep:
                self.entries = None
            data = _value(node)  # popitem, clear: the whole dict
            return [_REPLACE % (_ptr_json(p), data) for p in e.ptrs]
        if t is TrackedSet:
            data = _value(node)
            return [_REPLACE % (_ptr_json(p), data) for p in e.ptrs]
        # delattr of an object's field
        if key in e.nodekeys:
            self.entries = None
        tok = e.fields.get(key) if e.fields is not None else None
        if tok is None:
            return []
        return [_REMOVE % p for p in self._sub(e, key, tok)]

    # -- segments ----------------------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                self.fs.close(fd)
            except OSError:
                pass

    def start(self, generation: str, seq: int, records: Iterable[bytes] = ()) -> None:
        """Begin the segment continuing snapshot ``generation`` at ``seq`` with ``records`` (lines
        already written, kept), replacing any file of that name; delete other segments."""
        name = segment_name(generation, seq)
        if name != self.name:
            _refuse_if_held(self.fs, self._path(name))
        head = _line(b'{"journal":"snapmixin","version":%d,"after":%d,"generation":%s,"schema_version":%d'
                     % (VERSION, seq, _encode(generation), self.schema_version))
        data = [head, *records]
        fs = self.fs
        fd, tmp = fs.open_tmp(self.dir, name)
        try:
            fs.write(fd, b"".join(data))
            fs.fsync(fd)
            fs.replace(tmp, self._path(name))
        except BaseException:
            try:
                fs.close(fd)
            finally:
                try:
                    fs.unlink(tmp)
                except OSError:
                    pass
            raise
        self._close()
        self.fd, self.name = fd, name
        _lock(fd)  # one journaled writer per segment: a second one is refused (see _refuse_if_held)
        last = seq
        for r in data[1:]:
            last = int(r[7:r.index(b",", 7)])
        self.last = last
        self.entries = None
        fs.fsync_dir(self.dir)  # the new name is durable before the old segments go
        for other in fs.listdir(self.dir):
            if _is_segment(other) and other != name:
                try:
                    fs.unlink(self._path(other))
                except OSError:
                    pass

    def committed(self, info: Any) -> None:
        """A snapshot committed (in the writing thread, under the store's lock): compaction."""
        generation, seq = info.generation, info.seq
        if generation is None:
            return
        name = segment_name(generation, seq)
        with self.lock:
            if self.name == name and self.fd >= 0:
                return
            keep: list[bytes] = []
            if self.fd >= 0 and self.last > seq and self.name is not None:
                # asnapshot(): records written while the write was in flight follow the new snapshot
                data = fsio.read_regular(self.fs, self._path(self.name))
                for line in data.split(b"\n")[1:]:
                    if line.startswith(b'{"seq":') and int(line[7:line.index(b",", 7)]) > seq:
                        keep.append(line + b"\n")
            try:
                self.start(generation, seq, keep)
            except OSError as e:
                log.warning("%s: cannot start a journal segment after seq %d: %s; the next mutation "
                            "takes a full snapshot", self.dir, seq, e.strerror or e)
                self._close()
                self.root.save_requested = True

    def close(self) -> None:
        """Stop journaling (the segment stays: it is replayed at the next open)."""
        with self.lock:
            self._close()

    def __del__(self) -> None:
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            try:
                self.fs.close(fd)  # the object is gone: only its descriptor is left to give back
            except BaseException:  # never raise from a finalizer
                pass


def keep_damaged(store: Any, path: str) -> str:
    """Copy the damaged segment ``path`` to ``history/damaged-<its name>-<time>`` (returned) before
    ``open(fallback=True)`` rewrites it with its good records only: nothing found is thrown away.

    A copy, not a rename: until the rewrite lands the segment keeps its name, so a crash in
    between still finds the good records where replay looks for them."""
    fs = store.fs
    history = os.path.join(os.fspath(store.path), "history")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time_ns() % 1_000_000_000:09d}Z"
    name = f"damaged-{os.path.basename(path)}-{stamp}"
    data = fsio.read_regular(fs, path)
    fsio.make_dirs(fs, history)
    fsio.atomic_write(fs, history, name, data)
    log.warning("%s: the damaged journal is kept as %s", path, os.path.join("history", name))
    return os.path.join(history, name)


def _lock(fd: int) -> bool:
    """Take the advisory lock of a segment this journal appends to (False: someone holds it)."""
    if _fcntl is None:  # pragma: no cover - not POSIX
        return True
    try:
        _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock: no guard, as without fcntl
        return True
    return True


def _refuse_if_held(fs: fsio.FileOps, path: str) -> None:
    """``StoreLocked`` when another live journal (an object of this process or another) appends
    to the segment at ``path``: replacing it would silently drop that writer's records."""
    try:
        fd = fs.open_read(path)
    except OSError:
        return  # none there (or unreadable: creating it reports what is wrong)
    try:
        if not _lock(fd):
            raise StoreLocked(f"{path}: another object is journaling to this store (in this process or "
                              "another); one journaled writer per directory", path=path)
    finally:
        fs.close(fd)  # closing drops the probe's lock


# ---------------------------------------------------------------------------
# Replay
# ---------------------------------------------------------------------------


@dataclass
class Replayed:
    """What :func:`load` found for one snapshot: the segment and its good records."""

    path: str | None = None
    #: (seq, ops) of each good record after the snapshot, in order
    records: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    #: the good records' lines, as written (kept when the segment is rewritten)
    lines: list[bytes] = field(default_factory=list)
    schema_version: int | None = None
    damaged: bool = False
    #: the decoded object after replay (set by the mixin)
    state: Any = None

    @property
    def seq(self) -> int | None:
        return self.records[-1][0] if self.records else None


def _check(line: bytes) -> bool:
    if len(line) < _CRC_TAIL + 2 or line[-_CRC_TAIL:-10] != b',"crc":"' or line[-2:] != b'"}':
        return False
    try:
        return int(line[-10:-2], 16) == _crc32(line[:-_CRC_TAIL])
    except ValueError:
        return False


def load(store: Any, generation: str | None, seq: int, *, fallback: bool = False) -> Replayed:
    """The journal records following snapshot ``generation`` at ``seq`` in ``store`` (checked).

    Raises ``CorruptSnapshot`` (naming the segment, the line and the problem) for damage before
    the end of the segment; with ``fallback=True`` stops at the last good record with a warning.
    A torn last line is dropped with a warning. No segment: nothing to replay."""
    out = Replayed()
    if generation is None:
        return out
    fs = store.fs
    path = os.path.join(os.fspath(store.path), segment_name(generation, seq))
    try:
        data = fsio.read_regular(fs, path)
    except FileNotFoundError:
        return out
    except OSError as e:
        raise SnapError(f"{path}: cannot read the journal: {e.strerror or e}", path=path) from e
    out.path = path
    lines = data.split(b"\n")
    torn_tail = lines[-1] != b""  # the last line has no newline: an append cut short
    if not torn_tail:
        lines.pop()

    def damage(n: int, why: str) -> bool:
        """True: stop here (fallback); raises otherwise."""
        msg = f"{path}: line {n}: {why}"
        if not fallback:
            raise CorruptSnapshot(msg + " (open with fallback=True to stop replay at the last good "
                                  "record)", path=path)
        log.warning("%s; replay stops at the last good record (fallback=True)", msg)
        out.damaged = True
        return True

    if not lines or not _check(lines[0]):
        if len(lines) <= 1 and torn_tail:
            log.warning("%s: the journal's header is torn (a crash while it was created); nothing "
                        "to replay", path)
            return out
        damage(1, "the header is damaged (checksum)")
        return out
    try:
        head = _decode(lines[0])
        ok = (isinstance(head, dict) and head.get("journal") == "snapmixin" and head.get("after") == seq
              and head.get("generation") == generation)
    except msgspec.DecodeError:
        ok = False
    if not ok:
        damage(1, f"the header does not name the snapshot it follows (seq {seq}, {generation})")
        return out
    if head.get("version") != VERSION:
        raise CorruptSnapshot(f"{path}: journal version {head.get('version')!r} is not one this "
                              f"snapmixin reads ({VERSION})", path=path)
    out.schema_version = head.get("schema_version")
    expect = seq + 1
    last = len(lines) - 1
    for n in range(1, len(lines)):
        line = lines[n]
        tail = n == last
        if not _check(line):
            if tail:
                log.warning("%s: line %d: a torn last record (a crash while it was appended) is "
                            "dropped", path, n + 1)
                break
            if damage(n + 1, "checksum mismatch before the end of the journal"):
                break
        # (a last line whose checksum holds but whose newline did not make it is complete: kept)
        try:
            rec = _decode(line)
            rseq, ops = rec["seq"], rec["ops"]
            if type(rseq) is not int or type(ops) is not list:
                raise TypeError("bad record")
        except (msgspec.DecodeError, KeyError, TypeError):
            if damage(n + 1, "not a journal record"):
                break
            continue  # pragma: no cover - damage() raised or returned True
        if rseq <= seq:
            continue
        if rseq != expect and damage(n + 1, f"gap: record seq {rseq} where {expect} was expected"):
            break
        out.records.append((rseq, ops))
        out.lines.append(line + b"\n")
        expect = rseq + 1
    return out


_TOKENS: dict[str, list[str]] = {}


def _tokens(ptr: str) -> list[str]:
    toks = _TOKENS.get(ptr)
    if toks is None:
        if ptr and not ptr.startswith("/"):
            raise ValueError(f"not a JSON Pointer: {ptr!r}")
        toks = [t.replace("~1", "/").replace("~0", "~") for t in ptr.split("/")[1:]]
        if len(_TOKENS) < 200_000:
            _TOKENS[ptr] = toks
    return toks


def apply_ops(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """``doc`` (plain JSON values) with the JSON Patch ``ops`` applied in place; returns the
    document (a new one when an op replaces the whole of it). ``ValueError`` when an op does
    not fit the document."""
    for o in ops:
        if type(o) is not dict or type(o.get("op")) is not str or type(o.get("path")) is not str \
                or ("value" not in o and o["op"] != "remove"):
            raise ValueError(f"not a JSON Patch operation: {o!r:.80}")
        kind = o["op"]
        toks = _tokens(o["path"])
        if not toks:
            if kind == "remove":
                raise ValueError("cannot remove the whole document")
            doc = o["value"]
            continue
        parent = doc
        try:
            for t in toks[:-1]:
                parent = parent[int(t)] if type(parent) is list else parent[t]
            last = toks[-1]
            if type(parent) is list:
                if kind == "add":
                    if last == "-":
                        parent.append(o["value"])
                    else:
                        i = int(last)
                        if not 0 <= i <= len(parent):
                            raise IndexError(i)
                        parent.insert(i, o["value"])
                else:
                    i = int(last)
                    if not 0 <= i < len(parent):
                        raise IndexError(i)
                    if kind == "replace":
                        parent[i] = o["value"]
                    elif kind == "remove":
                        del parent[i]
                    else:
                        raise ValueError(f"unknown op {kind!r}")
            elif type(parent) is dict:
                if kind == "add" or kind == "replace":
                    parent[last] = o["value"]
                elif kind == "remove":
                    del parent[last]
                else:
                    raise ValueError(f"unknown op {kind!r}")
            else:
                raise TypeError(f"{type(parent).__name__} has no members")
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"{kind} {o['path']!r} does not fit the document ({type(e).__name__}: {e})"
                             ) from None
    return doc


def replay(doc: Any, found: Replayed, *, fallback: bool = False) -> Any:
    """The document after every record of ``found``: ``CorruptSnapshot`` for a record that does not
    fit it (with ``fallback``: replay stops before that record, with a warning, and ``found``
    keeps only the records applied)."""
    original = copy.deepcopy(doc) if fallback else None
    for n, (rseq, ops) in enumerate(found.records):
        try:
            doc = apply_ops(doc, ops)
        except (ValueError, KeyError) as e:
            msg = f"{found.path}: record seq {rseq}: {e}"
            if not fallback:
                raise CorruptSnapshot(msg, path=found.path) from e
            log.warning("%s; replay stops at the last good record (fallback=True)", msg)
            del found.records[n:], found.lines[n:]
            found.damaged = True
            doc = original  # the failed record may have applied in part: again, without it
            for _, good in found.records:
                doc = apply_ops(doc, good)
            break
    return doc


