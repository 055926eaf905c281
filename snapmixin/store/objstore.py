"""Generations on object storage (S3, GCS, Azure, memory) through obstore: commit by conditional PUT.

``SnapStore("s3://bucket/prefix")`` (also ``gs://``, ``az://``, ``memory://``) keeps the
same objects a directory holds: ``prefix/snapshot.json`` (the version 2 envelope, the
commit record) and ``prefix/history/<name>`` (kept generations, the same envelopes).
There is no lock, no temp object, no ``snapshot.seq`` and no pointer object (the writers
of one store object take turns in the process; everything else is fenced by the PUT).

The protocol (``docs/architecture.md`` tells it for users):

- *Read the current generation*: one ``GET`` of ``snapshot.json``, which also returns its
  ETag. A store object remembers the ETag and bytes it last read or wrote; the next
  commit then asks ``GET If-None-Match: <etag>``, and ``304 Not Modified`` (no body)
  confirms what it remembers.
- *Commit*: one ``PUT`` of ``snapshot.json`` with ``If-Match: <that etag>``
  (``If-None-Match: *`` when there was none). The server applies it only if nobody
  committed since the read: a stale writer gets ``412`` and the store reports
  ``SnapshotConflict`` (the seq rules, checked on what was read, give ``SeqRegression``).
- *The ambiguous outcome*: a PUT that failed without an answer (a timeout, a reset, a
  5xx, S3's ``409 ConditionalRequestConflict``) or whose precondition failed after a
  retry of the client, may have been applied. The backend then reads back the current
  object's last bytes (one ranged ``GET``): a version 2 envelope ends with the checksum
  of everything before it, so the same size and the same trailer mean *ours landed*
  (success, never a second commit). The ETag it read before means *nothing landed*:
  the same conditional PUT is sent again (at most :data:`ATTEMPTS` times), so a slow
  earlier copy of it still in flight can never apply after the answer. Anything else is
  another writer's commit: ``SnapshotConflict``.
- *Retention*: before the commit, the generation being replaced is ``PUT`` under
  ``history/<seq>-<commit time>.json`` from the bytes already read (no copy request,
  no re-read); after it, ``history/`` is pruned with ``DELETE``. History objects are
  copies, so deleting one never deletes the current generation. The history names are
  listed once per store object and then followed through its own writes while its
  chain of conditional PUTs is unbroken (an unexpected ETag lists again).
- *Restore*: one ``GET`` of ``snapshot.json`` (for a snapshot up to 64 KiB; above it
  the head and the whole object are two). ``history/`` is listed only to fall back.

Why no ``snapshot.seq`` here: the seq is the envelope's third member (readable with one
ranged GET, or ``jq .seq``); a second object would double the PUTs of every commit
and could never be updated atomically with it, so it would lag or lead the truth.

Configuration comes from the environment exactly as obstore reads it
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_REGION``, ``AWS_ALLOW_HTTP``...),
from ``SnapStore(url, storage_options={...})`` (keyword arguments of
``obstore.store.from_url``), or from a ready obstore store given instead of a URL.

Every request goes through one :class:`Requests` object (``backend.requests``): tests
wrap it to inject faults per request, the benchmark to count requests.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SnapError, StoreLocked
from . import format as _fmt
from .backend import CURRENT, HISTORY, Backend, Buffer, Stale

if TYPE_CHECKING:
    from obstore.store import ObjectStore

__all__ = ["ATTEMPTS", "EXTRA", "SCHEMES", "Got", "ObjectBackend", "Requests", "from_store", "open_url"]

log = logging.getLogger("snapmixin")

#: The URL schemes this backend serves (one line each in ``snapmixin.store.BACKENDS``).
SCHEMES = ("s3", "gs", "az", "memory")
#: What a user without obstore installs.
EXTRA = "pip install 'snapmixin[cloud]'"
#: How many times one commit's conditional PUT is sent when the outcome is unknown.
ATTEMPTS = 5
#: The largest current generation a store object keeps in memory between commits (larger ones
#: are re-read when needed: only their ETag is remembered).
INLINE_MAX = 64 * 2**20
_TRAILER = _fmt.TRAILER_SIZE
#: A history copy this store object wrote is kept in memory up to this size, so pruning reads
#: its header without a request (the store reads a header from the first 64 KiB).
_KEPT_INLINE = 64 * 1024
_HIST = HISTORY + "/"


def _obstore() -> Any:
    """The obstore module, or ImportError naming the extra to install."""
    try:
        import obstore
    except ImportError as e:
        raise ImportError(f"snapshots on object storage need obstore: {EXTRA}") from e
    return obstore


@dataclass
class Got:
    """What one GET returned: the bytes (None: larger than asked for, or a HEAD), ETag, size."""

    data: bytes | None
    e_tag: str | None
    size: int
    #: the object's version where the store has one (GCS: its generation, which GCS's
    #: conditional PUT names instead of the ETag)
    version: str | None = None


class NotModified(Exception):
    """A conditional GET found the object unchanged (``304``)."""


class Requests:
    """The requests the backend makes, one method each, on one obstore store; ``root`` is
    a key prefix of this backend's own (a memory store shared by several locations).
    Errors are obstore's (``NotFoundError`` is a ``FileNotFoundError``)."""

    def __init__(self, store: ObjectStore, root: str = "") -> None:
        self.store = store
        self.root = root
        self.obs = _obstore()

    def get(self, name: str, *, if_none_match: str | None = None, limit: int | None = None) -> Got:
        """GET ``name`` (the first ``limit`` bytes of it); ``NotModified`` for a 304."""
        options: dict[str, Any] = {}
        if if_none_match is not None:
            options["if_none_match"] = if_none_match
        try:
            r = self.obs.get(self.store, self.root + name, options=options or None)
        except self.obs.exceptions.NotModifiedError as e:
            raise NotModified(name) from e
        meta = r.meta
        size = int(meta["size"])
        if limit is None or size <= limit:
            data = bytes(r.bytes())
        else:
            parts: list[bytes] = []
            have = 0
            for chunk in r.stream(min_chunk_size=min(limit, 8 * 2**20) or 1):
                parts.append(bytes(chunk))
                have += len(parts[-1])
                if have >= limit:
                    break
            data = b"".join(parts)[:limit]
        return Got(data, meta.get("e_tag"), size, meta.get("version"))

    def get_tail(self, name: str, n: int) -> Got:
        """The last ``n`` bytes of ``name`` (all of it when shorter), its ETag and size."""
        try:
            r = self.obs.get(self.store, self.root + name, options={"range": {"suffix": n}})
        except FileNotFoundError:
            raise
        except self.obs.exceptions.BaseError:
            return self.get(name)  # an empty object has no suffix range (416): read it whole
        meta = r.meta
        return Got(bytes(r.bytes())[-n:], meta.get("e_tag"), int(meta["size"]), meta.get("version"))

    def head(self, name: str) -> Got:
        meta = self.obs.head(self.store, self.root + name)
        return Got(None, meta.get("e_tag"), int(meta["size"]), meta.get("version"))

    def put(self, name: str, data: bytes, mode: Any = None) -> tuple[str | None, str | None]:
        """PUT ``data`` as ``name`` (``mode``: ``"create"``, ``{"e_tag": ..., "version": ...}`` or
        None); the new object's ETag and version."""
        r = self.obs.put(self.store, self.root + name, data, mode=mode, use_multipart=False)
        return r.get("e_tag"), r.get("version")

    def delete(self, name: str) -> None:
        self.obs.delete(self.store, self.root + name)

    def list_under(self, prefix: str) -> list[str]:
        """Names of the objects under ``prefix`` (a folder ending in ``/``), relative to it."""
        out: list[str] = []
        for batch in self.obs.list(self.store, self.root + prefix):
            for meta in batch:
                path = str(meta["path"])
                out.append(path[len(self.root) + len(prefix):])
        return out

    def list_top(self) -> tuple[list[str], list[str]]:
        """The objects and the folders at the top of the location (one delimited LIST)."""
        r = self.obs.list_with_delimiter(self.store, self.root.rstrip("/") or None)
        cut = len(self.root)
        objects = [str(m["path"])[cut:] for m in r["objects"]]
        folders = [str(p)[cut:].rstrip("/") for p in r["common_prefixes"]]
        return objects, folders


class _Queue:
    """The writers of one store object, one at a time, in the order they took a ticket (so
    ``acreate()`` calls gathered in one event loop commit in the order they were made, as on a
    directory). Different store objects, and processes, are not queued: the conditional PUT
    fences them."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._next = 0  # the next ticket handed out
        self._serving = 0  # the ticket whose turn it is
        self._gone: set[int] = set()  # tickets given back before their turn came
        self.holder: int | None = None  # the thread writing now

    def ticket(self) -> int:
        with self._cv:
            t = self._next
            self._next += 1
            return t

    def wait(self, t: int) -> None:
        with self._cv:
            while self._serving != t:
                self._cv.wait()
            self.holder = threading.get_ident()

    def release(self, t: int, *, unless_started: bool = False) -> None:
        """Give ticket ``t`` back (idempotent): the next one's turn, or skipped when its turn comes.
        ``unless_started``: leave it alone if its writer is already running (a cancelled await)."""
        with self._cv:
            if t == self._serving:
                if unless_started and self.holder is not None:
                    return
                self.holder = None
                self._serving += 1
                while self._serving in self._gone:
                    self._gone.discard(self._serving)
                    self._serving += 1
                self._cv.notify_all()
            elif t > self._serving:
                self._gone.add(t)


#: The ticket ``acreate()`` took in the event loop, for the write running in this context.
_RESERVED: contextvars.ContextVar[tuple[object, int] | None] = contextvars.ContextVar(
    "snapmixin_objstore_turn", default=None)


@dataclass
class _Op:
    """A commit in progress on one thread: the current generation as its precondition sees it."""

    fetched: bool = False
    exists: bool = False
    tag: str | None = None
    data: bytes | None = None  # its bytes (None: none, or too large to keep)
    size: int = 0


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class ObjectBackend(Backend):
    """Generations under a prefix of an object store, committed by conditional PUT (module doc)."""

    def __init__(self, location: str, requests: Requests) -> None:
        self.location = location
        self.requests = requests
        self._lock = threading.Lock()
        self._local = threading.local()
        #: ``snapshot.json`` as this store object last read or wrote it: (ETag, bytes or None)
        self._known: tuple[str, bytes | None] | None = None
        #: history names (-> bytes when this store object wrote them), exact while the current
        #: ETag is ``_kept_tag``: every commit since the listing was ours
        self._kept: dict[str, bytes | None] | None = None
        self._kept_tag: str | None = None
        self._queue = _Queue()
        #: ETag -> version (GCS generation) of ``snapshot.json`` as responses named them
        self._versions: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"ObjectBackend({self.location!r})"

    # -- errors -----------------------------------------------------------------------
    def _where(self, name: str) -> str:
        return f"{self.location.rstrip('/')}/{name}"

    def _oserror(self, e: Exception, name: str) -> OSError:
        """An obstore error as the ``OSError`` the store expects (FileNotFoundError kept)."""
        if isinstance(e, OSError):
            if isinstance(e, FileNotFoundError):
                return FileNotFoundError(errno.ENOENT, "no such object", self._where(name))
            return e
        obs = self.requests.obs
        if isinstance(e, (obs.exceptions.PermissionDeniedError, obs.exceptions.UnauthenticatedError)):
            return PermissionError(errno.EACCES, _first_line(e), self._where(name))
        return OSError(errno.EIO, _first_line(e), self._where(name))

    @contextlib.contextmanager
    def _request(self, name: str) -> Iterator[None]:
        try:
            yield
        except NotModified:
            raise
        except Exception as e:
            if isinstance(e, (Stale, SnapError)):
                raise
            raise self._oserror(e, name) from e

    def os_error(self, e: OSError, what: str) -> SnapError:
        where = e.filename or self.location
        tail = ("the outcome is unknown: restore() shows which generation is current"
                if getattr(e, "outcome_unknown", False) else "the previous snapshot is intact")
        return SnapError(f"{self.location}: {what}: {e.strerror or e} [{where}]; {tail}", path=where)

    # -- the commit in progress on this thread --------------------------------------------
    def _op(self) -> _Op | None:
        op: _Op | None = getattr(self._local, "op", None)
        return op

    def exclusive(self, doing: str) -> Any:
        """No lock (the conditional PUT is the exclusion between store objects and processes):
        this store object's writers in turn, and a scope in which the current generation read
        for the precondition serves the store's reads of it."""
        reserved = _RESERVED.get()
        if reserved is not None and reserved[0] is self:
            _RESERVED.set(None)  # one write per reservation
            return self._scope(reserved[1])
        if self._queue.holder == threading.get_ident():
            raise StoreLocked(f"{self.location}: this thread is already writing to it (a write started "
                              f"from inside another write?); cannot {doing} it now", path=self.location)
        return self._scope(self._queue.ticket())

    @contextlib.contextmanager
    def _scope(self, ticket: int) -> Iterator[None]:
        prev = self._op()
        try:
            self._queue.wait(ticket)
            self._local.op = _Op()
            yield
        finally:
            self._local.op = prev
            self._queue.release(ticket)

    def reserve_turn(self, doing: str) -> int:
        return self._queue.ticket()

    def run_in_turn(self, turn: Any, call: Any, *args: Any, **kwargs: Any) -> Any:
        token = _RESERVED.set((self, turn))
        try:
            return call(*args, **kwargs)
        finally:
            _RESERVED.reset(token)

    def abandon_turn(self, turn: Any) -> None:
        if turn is not None:
            self._queue.release(turn, unless_started=True)

    def current_tag(self) -> str | None:
        """The current ETag: ``GET If-None-Match`` what this store object knows (a 304 costs no
        body), or a plain GET; the bytes serve the store's reads during this commit."""
        op = self._op() or _Op()
        known = self._known
        try:
            with self._request(CURRENT):
                got = self.requests.get(CURRENT, limit=INLINE_MAX,
                                        if_none_match=known[0] if known and known[1] is not None else None)
        except NotModified:
            assert known is not None
            op.fetched, op.exists, op.tag, op.data = True, True, known[0], known[1]
            op.size = len(known[1] or b"")
            return op.tag
        except FileNotFoundError:
            op.fetched, op.exists, op.tag, op.data = True, False, None, None
            self._forget_known(None)
            return None
        data = got.data if got.data is not None and len(got.data) == got.size else None
        op.fetched, op.exists, op.tag, op.data, op.size = True, True, got.e_tag, data, got.size
        self._version_of(got.e_tag, got.version)
        self._learn(got.e_tag, data)
        return op.tag

    def _learn(self, tag: str | None, data: bytes | None) -> None:
        with self._lock:
            self._known = None if tag is None else (tag, data)
            if tag is None or tag != self._kept_tag:
                self._kept = None  # someone else committed: list history/ again

    def _version_of(self, tag: str | None, version: str | None) -> None:
        if tag is not None and version is not None:
            with self._lock:
                if len(self._versions) > 64:
                    self._versions.clear()
                self._versions[tag] = version

    def _forget_known(self, tag: str | None) -> None:
        with self._lock:
            self._known = None
            if tag != self._kept_tag:
                self._kept = None

    def _serving(self, name: str) -> _Op | None:
        """The op whose read of the current generation answers a read of ``name`` now."""
        op = self._op()
        if op is not None and op.fetched and name == CURRENT and (op.data is not None or not op.exists):
            return op
        return None

    def _kept_bytes(self, name: str) -> bytes | None:
        if self._op() is None or not name.startswith(_HIST):
            return None
        kept = self._kept
        return None if kept is None else kept.get(name[len(_HIST):])

    # -- reading ------------------------------------------------------------------------
    def read(self, name: str, limit: int | None = None) -> bytes:
        op = self._serving(name)
        data = op.data if op is not None else self._kept_bytes(name)
        if op is not None and not op.exists:
            raise FileNotFoundError(errno.ENOENT, "no such object", self._where(name))
        if data is not None:
            return data if limit is None else data[:limit]
        with self._request(name):
            got = self.requests.get(name, limit=limit)
        self._local.size = (name, got.size)
        if name == CURRENT:
            self._version_of(got.e_tag, got.version)
        if name == CURRENT and got.e_tag is not None and (limit is None or got.size <= limit):
            self._learn(got.e_tag, got.data if got.size <= INLINE_MAX else None)
        return got.data or b""

    def size(self, name: str) -> int:
        op = self._serving(name)
        if op is not None:
            if not op.exists:
                raise FileNotFoundError(errno.ENOENT, "no such object", self._where(name))
            return op.size
        data = self._kept_bytes(name)
        if data is not None:
            return len(data)
        seen = getattr(self._local, "size", None)
        if seen is not None and seen[0] == name:  # from the GET just made (one request, not two)
            self._local.size = None
            return int(seen[1])
        with self._request(name):
            return self.requests.head(name).size

    def read_tail(self, name: str, size: int) -> tuple[bytes, int]:
        op = self._serving(name)
        data = op.data if op is not None else self._kept_bytes(name)
        if data is not None:
            return data[-size:], len(data)
        with self._request(name):
            got = self.requests.get_tail(name, size)
        return got.data or b"", got.size

    def identify(self, name: str) -> str:
        """The object's ETag."""
        op = self._op()
        if op is not None and op.fetched and name == CURRENT:
            if not op.exists:
                raise FileNotFoundError(errno.ENOENT, "no such object", self._where(name))
            return f"etag-{op.tag}"
        with self._request(name):
            return f"etag-{self.requests.head(name).e_tag}"

    def names(self) -> list[str]:
        with self._request(""):
            objects, folders = self.requests.list_top()
        if not objects and not folders:
            raise FileNotFoundError(errno.ENOENT, "nothing under this prefix", self.location)
        return objects + folders

    def kind(self, name: str | None = None) -> str | None:
        if name is not None:
            try:
                with self._request(name):
                    self.requests.head(name)
                return "file"
            except FileNotFoundError:
                pass
            with self._request(name):
                return "dir" if self.requests.list_under(name.rstrip("/") + "/") else None
        try:
            self.names()
        except FileNotFoundError:
            return None
        return "dir"

    # -- committing -----------------------------------------------------------------------
    def commit(self, data: Buffer | Sequence[Buffer], *, expect_tag: str | None) -> None:
        """One conditional PUT of ``snapshot.json``; the ambiguous outcomes read back (module doc)."""
        body = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b"".join(data)
        op = self._op()
        if op is not None:
            op.fetched = False  # from here on the store's reads of the current go to the server
        mode: Any = "create"
        if expect_tag is not None:
            mode = {"e_tag": expect_tag}
            version = self._versions.get(expect_tag)
            if version is not None:  # GCS conditions its PUT on the generation, not the ETag
                mode["version"] = version
        obs = self.requests.obs
        last: Exception | None = None
        for _attempt in range(ATTEMPTS):
            try:
                tag, version = self.requests.put(CURRENT, body, mode)
            except (obs.exceptions.PreconditionError, obs.exceptions.AlreadyExistsError,
                    FileNotFoundError) as e:
                landed, now = self._read_back(body, e)
                if landed:
                    self._committed(now, body, expect_tag)
                    return
                if now == expect_tag:  # the condition still holds: a conflict of the moment (409)
                    last = e
                    continue
                self._forget_known(now)
                raise Stale(expect_tag, now) from e
            except (obs.exceptions.PermissionDeniedError, obs.exceptions.UnauthenticatedError,
                    obs.exceptions.InvalidPathError, obs.exceptions.UnknownConfigurationKeyError,
                    obs.exceptions.NotSupportedError) as e:
                raise self._oserror(e, CURRENT) from e  # refused before it could apply
            except Exception as e:  # a timeout, a reset, a 5xx, a 409: it may have been applied
                landed, now = self._read_back(body, e)
                if landed:
                    self._committed(now, body, expect_tag)
                    return
                if now != expect_tag:
                    self._forget_known(now)
                    raise Stale(expect_tag, now) from e
                last = e
                continue
            self._version_of(tag, version)
            self._committed(tag, body, expect_tag)
            return
        assert last is not None
        err = self._oserror(last, CURRENT)
        raise OSError(err.errno, f"the conditional PUT failed {ATTEMPTS} times, and reading back shows "
                      f"it did not apply: {err.strerror}", self._where(CURRENT)) from last

    def _read_back(self, body: bytes, cause: Exception) -> tuple[bool, str | None]:
        """Whether ``body`` is the current object now (same size, same checksum trailer), and the
        current ETag (None: no object). A read that fails: ``OSError`` saying the outcome is unknown."""
        try:
            got = self.requests.get_tail(CURRENT, _TRAILER)
        except FileNotFoundError:
            return False, None
        except Exception as e:
            err = OSError(errno.EIO, f"the commit's outcome is unknown: the PUT failed "
                          f"({_first_line(cause)}) and reading it back failed too ({_first_line(e)})",
                          self._where(CURRENT))
            err.outcome_unknown = True  # type: ignore[attr-defined]
            raise err from e
        self._version_of(got.e_tag, got.version)
        landed = got.size == len(body) and got.data == body[-_TRAILER:]
        if landed:
            log.info("%s: the commit landed although its PUT failed (%s)", self.location, _first_line(cause))
        return landed, got.e_tag

    def _committed(self, tag: str | None, body: bytes, expect_tag: str | None) -> None:
        op = self._op()
        if op is not None:
            op.tag = tag  # what the pruning after the commit lists history/ against
        with self._lock:
            self._known = None if tag is None else (tag, body if len(body) <= INLINE_MAX else None)
            if self._kept is not None and expect_tag is not None and expect_tag == self._kept_tag \
                    and tag is not None:
                self._kept_tag = tag  # our own commit: the history names we follow stay exact
            else:
                self._kept = None

    def _current_bytes(self) -> bytes:
        op = self._op()
        if op is not None and op.data is not None:
            return op.data
        with self._request(CURRENT):
            got = self.requests.get(CURRENT)
        return got.data or b""

    def _keep(self, name: str, data: bytes) -> None:
        with self._request(_HIST + name):
            self.requests.put(_HIST + name, data)
        with self._lock:
            if self._kept is not None:
                self._kept[name] = data if len(data) <= _KEPT_INLINE else None

    def keep_current(self, name: str) -> str:
        """PUT the current generation's bytes (already read for the precondition) as
        ``history/<name>``: a copy, so no later delete can remove the current one."""
        self._keep(name, self._current_bytes())
        return _HIST + name

    def keep_damaged(self, name: str) -> str | None:
        try:
            data = self._current_bytes()
        except FileNotFoundError:
            return None
        try:
            self._keep(name, data)
        except OSError as e:
            log.warning("%s: could not keep the damaged %s as %s%s (%s); it is replaced", self.location,
                        CURRENT, _HIST, name, e.strerror or e)
            return None
        log.warning("%s: the damaged %s is replaced; kept as %s%s", self.location, CURRENT, _HIST, name)
        return name

    # -- kept generations -----------------------------------------------------------------
    def list_kept(self) -> list[str]:
        op = self._op()
        kept = self._kept
        if op is not None and kept is not None and self._kept_tag is not None and op.tag == self._kept_tag:
            return list(kept)  # exact: every commit since the listing was ours
        with self._request(_HIST):
            names = self.requests.list_under(_HIST)
        if op is not None and op.tag is not None:
            with self._lock:
                self._kept = dict.fromkeys(names)
                self._kept_tag = op.tag
        return names

    def delete_kept(self, name: str) -> None:
        """DELETE ``history/<name>`` (a copy: never the current generation)."""
        with self._request(_HIST + name):
            self.requests.delete(_HIST + name)
        with self._lock:
            if self._kept is not None:
                self._kept.pop(name, None)


# -- opening ----------------------------------------------------------------------------------
_MEMORY: dict[str, Any] = {}
_MEMORY_LOCK = threading.Lock()
_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(?:/(.*))?$")


def open_url(location: str, fs: object = None, lock_timeout: float | None = None, *,
             storage_options: Mapping[str, Any] | None = None) -> ObjectBackend:
    """The backend of ``s3://bucket/prefix``, ``gs://...``, ``az://...`` or ``memory://name/prefix``
    (a :data:`snapmixin.store.BACKENDS` factory). Nothing is requested here."""
    m = _URL_RE.match(location)
    if m is None or not m.group(2):
        raise ValueError(f"{location!r}: expected scheme://bucket/prefix")
    scheme = m.group(1).lower()
    obs = _obstore()
    prefix = (m.group(3) or "").strip("/")
    shown = f"{scheme}://{m.group(2)}" + (f"/{prefix}" if prefix else "")
    if scheme == "memory":
        if storage_options:
            raise ValueError(f"{location!r}: a memory:// store takes no storage_options")
        with _MEMORY_LOCK:  # one in-process store per name: SnapStore objects share it
            store = _MEMORY.get(m.group(2))
            if store is None:
                store = _MEMORY[m.group(2)] = obs.store.MemoryStore()
        return ObjectBackend(shown, Requests(store, f"{prefix}/" if prefix else ""))
    try:
        store = obs.store.from_url(f"{scheme}://{m.group(2)}/{prefix}" if prefix else f"{scheme}://{m.group(2)}",
                                   **dict(storage_options or {}))
    except BaseException as e:
        # obstore (pyo3) turns some bad options into a Rust panic, a BaseException: a client
        # option such as allow_http or timeout given at the top level instead of in client_options.
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise  # KeyboardInterrupt, SystemExit
        hint = "" if isinstance(e, Exception) else (
            " (client options such as allow_http or timeout go in storage_options={'client_options': {...}})")
        raise ValueError(f"{location!r}: cannot configure the object store: {_first_line(e)}{hint}") from e
    return ObjectBackend(shown, Requests(store))


def from_store(store: Any) -> ObjectBackend:
    """The backend of a ready obstore store (its own prefix is the location)."""
    obs = _obstore()
    kinds = {"S3Store": "s3", "GCSStore": "gs", "AzureStore": "az", "MemoryStore": "memory"}
    scheme = kinds.get(type(store).__name__)
    if scheme is None or not isinstance(store, getattr(obs.store, type(store).__name__)):
        raise TypeError(f"expected a directory path, a URL or an obstore store (S3Store, GCSStore, "
                        f"AzureStore, MemoryStore), not {type(store).__name__}")
    config: Mapping[str, Any] = getattr(store, "config", None) or {}
    where = str(config.get("bucket") or config.get("container_name") or f"{id(store):x}")
    prefix = str(getattr(store, "prefix", None) or "").strip("/")
    return ObjectBackend(f"{scheme}://{where}" + (f"/{prefix}" if prefix else ""), Requests(store))
