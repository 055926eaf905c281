"""SnapStore: an atomic, durable snapshot of one (state, seq) pair, and the store's layers.

The package is cut where changes fall:

- this module: :class:`SnapStore` (the facade: seq rules, ``expect=``,
  retention, schema migrations, the public API the mixin and the CLI use);
- :mod:`.format`: the envelope (write version 2, read versions 1 and 2, the
  checksum, file names);
- :mod:`.legacy`: the seed's (minisnap 0.1.1 / 0.1.3) layouts, read only;
- :mod:`.backend`: the storage contract; :mod:`.local`: the POSIX directory
  backend (the writer lock and the file steps of a commit). The facade reaches
  storage only through the backend; :data:`BACKENDS` picks one by URL scheme
  (a plain path is a local directory).

On-disk layout::

    DIR/
      snapshot.json   the commit record (format version 2: pretty JSON, "checksum" last)
      snapshot.seq    "42\\n": a copy of the seq for people and shell scripts
      history/        older generations: snapshot-<seq, 20 digits>-<commit time>.json, same
                      envelope; names never reused, ordered by commit time (0.1.0's
                      snapshot-<seq>.json names are read as the oldest)
      .lock           advisory lock, held only while a write runs

Which layout a file has: a top-level object with ``"format": "snapmixin"`` is
our envelope (its ``format_version`` says which); without it, an object with 5
or more of the envelope's 7 key names is one of ours with a damaged ``format``
(``CorruptSnapshot``); anything else is a minisnap layout (:mod:`.legacy`). A
top-level key that appears twice in an envelope is damage. A file larger than
the store's ``max_size``, or one over 1 MiB whose first 64 KiB hold a byte JSON
text never contains, is refused as damage without being read whole (a smaller
one is read, and its parse refuses it). A read that fails
(EIO...) is a ``SnapError`` carrying the ``OSError``, never ``CorruptSnapshot``.

The checksum and the generation identity are described in :mod:`.format`.

Commit protocol of :meth:`SnapStore.create`:

1. encode the state (nothing touches the disk before this succeeds);
2. take the lock; remove temp files left by crashed writers; read the current
   generation (only its trailer and size when this object committed or read it
   last: see ``_current_head``); refuse a stale writer (``expect=``), a lower
   seq, or the stored seq with another state;
3. with history: hard-link the current ``snapshot.json`` into ``history/``
   (it is already durable, so this is a new name, not a copy) and fsync ``history/``;
4. write the envelope to a new temp file, fsync it, rename it over
   ``snapshot.json``, fsync the directory: **committed**;
5. update ``snapshot.seq`` (derived: rewritten in place, or replaced when it is
   not a plain regular file; not fsynced; never ahead of the committed
   snapshot; ``restore`` repairs it) and prune ``history/`` (removing, too, a temp
   file left there by a writer that died copying a generation into it).

A crash before the rename in step 4 leaves the old snapshot; after it, the new one.
"""

from __future__ import annotations

import asyncio
import hashlib as _hashlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar, overload

from .. import codec as _codec
from .. import fsio
from .. import migrate as _migrate
from ..codec import json as _codec_json
from ..codec.native import MsgspecCodec as _MsgspecCodec
from ..errors import (
    CorruptSnapshot,
    DecodeError,
    EncodeError,
    InvalidSeq,
    MigrationError,
    SeqRegression,
    SnapError,
    SnapshotConflict,
    SnapshotNotFound,
)
from . import format as _fmt
from . import legacy as _legacy
from . import local as _local
from . import objstore as _objstore
from .backend import Backend, NotAGeneration, Stale, UrlPath

__all__ = ["ANY", "BACKENDS", "FORMAT", "FORMAT_VERSION", "MAX_SIZE", "SEQ_MAX", "GenerationCheck",
           "Restored",
           "SnapStore", "SnapshotInfo"]

log = logging.getLogger("snapmixin")

T = TypeVar("T")

FORMAT = _fmt.FORMAT
#: The format version new writes use (version 1 files are still read).
FORMAT_VERSION = _fmt.WRITTEN
SEQ_MAX = _fmt.SEQ_MAX
#: The default ``max_size`` of a store: the largest snapshot file it reads or writes (1 GiB).
MAX_SIZE = 2**30
SNAPSHOT = _fmt.SNAPSHOT
SEQFILE = _local.SEQFILE
HISTORY = _local.HISTORY
LOCK = _local.LOCK
_HEAD_BYTES = 64 * 1024
#: Files larger than this have their first bytes checked for what JSON never holds before they
#: are read whole (smaller ones are cheaper to read and parse than to sniff).
_SNIFF_ABOVE = 1 << 20
_STATE_KEY = _fmt.STATE_KEY
# re.ASCII: \d must not match other scripts' digits (int() reads a FULLWIDTH DIGIT ONE as 1)
#: History names of snapmixin 0.1.0 (by seq only; reused when a seq came back): read, listed and
#: pruned as the oldest generations, never written any more.
_HISTORY_RE = _legacy.HISTORY_V0_RE
#: History names now: seq, then the generation's commit time (UTC, microseconds). Commit times of
#: one directory only go up (a commit is stamped later than the generation it replaces), so a name
#: is never reused and the stamp orders history by commit, whatever the seqs did (a rollback).
_HISTORY2_RE = re.compile(r"^snapshot-(\d{20})-(\d{8}T\d{12}Z)\.json$", re.ASCII)
#: A damaged ``snapshot.json`` replaced on purpose (after ``open(fallback=True)``) is kept here.
_DAMAGED_PREFIX = "damaged-"
_MINISNAP13_RE = _legacy.MINISNAP13_RE
_CHECKSUM_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
#: The header of a version 2 file as this writer lays it out (``msgspec.json.format``, indent 2),
#: up to the state's first byte: the fast path of reading (:meth:`SnapStore._parse_canonical`).
_CANONICAL_V2 = re.compile(
    rb'\{\n  "format": "snapmixin",\n  "format_version": 2,\n  "seq": (0|[1-9][0-9]{0,18}),\n'
    rb'  "schema_version": ([1-9][0-9]{0,18}),\n  "created_at": "([0-9A-Za-z:.+-]{1,64})",\n'
    rb'  "state": ', re.ASCII)

#: Builds the backend of a location: ``(location, fs, lock_timeout) -> Backend``.
BackendFactory = Callable[[str, "fsio.FileOps | None", "float | None"], Backend]
#: Storage backends by URL scheme (``"scheme://..."``); a location without a registered scheme
#: is a local directory. Adding a backend: one module, and one line here.
BACKENDS: dict[str, BackendFactory] = {}
BACKENDS["s3"] = _objstore.open_url  # S3 and S3-compatible servers (obstore: the [cloud] extra)
BACKENDS["gs"] = _objstore.open_url  # Google Cloud Storage
BACKENDS["az"] = _objstore.open_url  # Azure Blob Storage
BACKENDS["memory"] = _objstore.open_url  # in this process only (tests, demos)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _backend_for(location: str, directory: Path, fs: fsio.FileOps | None,
                 lock_timeout: float | None, storage_options: Mapping[str, Any] | None = None) -> Backend:
    """The backend its scheme names, else the local directory ``directory``."""
    m = _SCHEME_RE.match(location)
    if storage_options is not None:
        if m is None:
            raise ValueError(f"{location!r}: storage_options is for a URL location (s3://, gs://, az://)")
        factory = BACKENDS.get(m.group(1).lower())
        if factory is not None:
            return factory(location, fs, lock_timeout, storage_options=storage_options)  # type: ignore[call-arg]
    if m is not None:
        factory = BACKENDS.get(m.group(1).lower())
        if factory is None:
            # Never a local directory named "s3:": that would look like it worked.
            known = ", ".join(f"{k}://" for k in sorted(BACKENDS)) or "none yet"
            raise ValueError(f"{location!r}: no storage backend for {m.group(1)}:// in this snapmixin "
                             f"(backends for URLs: {known}); give a directory path for local storage")
        return factory(location, fs, lock_timeout)
    return _local.LocalBackend(os.fspath(directory), fs if fs is not None else fsio.REAL, lock_timeout)


@dataclass(frozen=True)
class SnapshotInfo:
    """What is known of one stored generation without decoding its state."""

    seq: int
    created_at: datetime | None
    schema_version: int
    path: Path
    size: int
    checksum: str | None = None
    #: ``"snapmixin-2"`` (format version 2, what this version writes), ``"snapmixin-1"`` (format
    #: version 1, snapmixin 0.1.0), or ``"minisnap-0.1.1"`` / ``"minisnap-0.1.3"`` for the seed's layouts.
    layout: str = "snapmixin-2"
    #: The generation's identity: an opaque token, equal for two infos exactly when they describe
    #: the same commit (the ``expect=`` of :meth:`SnapStore.create`). Format version 2: the
    #: file's checksum (it covers every byte). Version 1 files do not store one: it is derived
    #: from their header (seq, created_at, checksum).
    generation: str | None = None

    def __post_init__(self) -> None:
        if self.generation is None:
            object.__setattr__(self, "generation", _derive_generation(self))


class _Any:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ANY"


#: ``expect=`` default: commit whatever generation the store holds (no precondition).
ANY: Any = _Any()


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _path(p: str) -> Path:
    """A generation's path as infos hold it: a URL stays a URL (``s3://b/p/snapshot.json``)."""
    return UrlPath(p) if _SCHEME_RE.match(p) else Path(p)


def _derive_generation(info: SnapshotInfo) -> str:
    """The identity of a generation whose file does not name one (format version 1, minisnap):
    seq, commit time in microseconds and checksum. Cheap: every header read makes one.
    Format version 2: the checksum itself (it covers every byte of the file)."""
    if info.layout == "snapmixin-2" and info.checksum is not None:
        return info.checksum
    if info.checksum is not None and info.created_at is not None:
        when = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=timezone.utc)
        return f"{info.seq:x}-{(when - _EPOCH) // _MICROSECOND:x}-{info.checksum[7:39]}"
    # the seed's layouts hold only a seq and a state: the best identity is seq and size
    return f"{info.layout}-{info.seq:x}-{info.size:x}"


_stamp = _fmt.stamp


def _history_order(name: str) -> str:
    """A key that sorts the names in ``history/`` by commit, the latest last: current names
    ("1", commit time, seq) after snapmixin 0.1.0's ("0", seq), which are the oldest. "" for a
    name that is not a generation's (or names a seq beyond SEQ_MAX: 20 digits can say more
    than 2**63 - 1)."""
    m = _HISTORY2_RE.match(name)
    if m is not None:
        return "1" + m.group(2) + m.group(1) if int(m.group(1)) <= SEQ_MAX else ""
    m = _HISTORY_RE.match(name)
    if m is not None:
        return "0" + m.group(1) if int(m.group(1)) <= SEQ_MAX else ""
    return ""


def _own_order(name: str) -> str:
    """:func:`_history_order` of a name this writer made (``snapshot-<seq>-<commit time>.json``,
    a seq within SEQ_MAX), without the regular expression."""
    return "1" + name[30:52] + name[9:29]


def _history_name(info: SnapshotInfo) -> str:
    """The name under ``history/`` of the generation ``info`` (unique: seq and commit time)."""
    return _fmt.history_name(info.seq, info.created_at)


@dataclass
class Restored:
    """What :meth:`SnapStore.restore_generation` returns: the state and what a writer
    continuing from it needs."""

    state: Any
    #: the restored generation
    info: SnapshotInfo
    #: the current generation's identity when it was read: the restored one's, or with a
    #: fallback the damaged one's (which the continuing writer replaces; pass it as ``expect=``)
    base: str | None
    #: the current generation was damaged and an older one was restored
    fell_back: bool


_Restored = Restored


@dataclass(frozen=True)
class GenerationCheck:
    """One stored generation read whole and checked (:meth:`SnapStore.check_generations`)."""

    path: Path
    #: whether this is the current generation (``snapshot.json`` or the seed's newest file)
    current: bool
    #: its header; None when the file cannot be read as a generation at all
    info: SnapshotInfo | None
    #: the raw JSON text of the state (None when unreadable)
    state: bytes | None
    #: whether the checksum holds; None for a layout without one (the seed's)
    checksum_ok: bool | None
    #: what is wrong, naming the file; None when intact
    error: str | None
    #: the seq the file's name says (history and the seed's 0.1.3 files), else None
    name_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def seq(self) -> int | None:
        return None if self.info is None else self.info.seq


@dataclass
class _Generation:
    info: SnapshotInfo
    state: bytes | memoryview  # the raw JSON text of the state
    #: the bytes the checksum covers (version 2: all before the trailer; version 1: the state)
    hashed: bytes | memoryview | None = None
    #: the whole file, when it was read by the fast path (:func:`_canonical_v2`): its header and
    #: trailer were matched byte for byte, and the state's span is known to be one JSON value only
    #: once it is decoded (the decoders refuse trailing text); a decode that finds it malformed
    #: re-reads the file the long way, for the precise message (a duplicate key, say)
    whole: bytes | None = None
    #: the checksum of a large file read by the fast path, still being made in a worker thread
    #: while the state is decoded; :meth:`ensure_intact` waits for it
    digest: _fmt.Digest | None = None
    #: ``snapshot.seq`` as read together with the file (None: not read, or unreadable), for
    #: :meth:`SnapStore._repair_seqfile`
    seqfile: bytes | None = None

    def checksum_ok(self) -> bool | None:
        """Whether the checksum holds (None: a layout without one, or only the header was read)."""
        if self.info.checksum is None or self.hashed is None:
            return None
        if self.digest is not None:
            return "sha256:" + self.digest.hexdigest() == self.info.checksum
        return _checksum(self.hashed) == self.info.checksum

    def intact_and_done(self, decoded: bool) -> None:
        """:meth:`ensure_intact`; then, when ``decoded`` (the state was decoded into the codec's
        own structures), drop the file's bytes: a large file is not kept in memory while the
        caller's objects are built."""
        self.ensure_intact()
        if decoded:
            self.whole = self.hashed = None
            self.state = b""

    def ensure_intact(self) -> None:
        """``CorruptSnapshot`` unless the checksum being made (fast path) holds; else nothing."""
        if self.digest is None:
            return
        if not self.checksum_ok():
            raise _checksum_mismatch(str(self.info.path))
        self.digest = None


def _decode_error(e: Exception, where: str, cls: Any) -> SnapError | None:
    """What decoding the state of ``where`` into ``cls`` raised, as the error the caller sees
    (None: raise ``e`` itself)."""
    if isinstance(e, _codec.Malformed):  # damage (fallback skips it), not a type mismatch
        return CorruptSnapshot(f"{where}: the state is damaged: {e.message}", path=where)
    if isinstance(e, _codec.DecodeFailure):
        return DecodeError(f"{where}: {e.message}", path=where, json_path=e.json_path)
    if isinstance(e, (MigrationError, SnapError)):
        return None
    if isinstance(e, UnicodeDecodeError):  # bytes in the state that are not UTF-8 (checksum or not)
        return CorruptSnapshot(f"{where}: the state is not valid UTF-8 ({e})", path=where)
    if isinstance(e, (TypeError, ValueError, KeyError, AttributeError)):
        name = getattr(cls, "__qualname__", repr(cls))
        return DecodeError(f"{where}: cannot build {name} from the snapshot: {type(e).__name__}: {e}",
                           path=where)
    return None


def _checksum_mismatch(path: str) -> CorruptSnapshot:
    """The error of a version 2 file whose checksum does not hold (read by the fast path)."""
    return CorruptSnapshot(f"{path}: checksum mismatch: the file was changed after it was written "
                           f"(by hand?). To accept the edit, run: python -m snapmixin rehash "
                           f"{os.path.dirname(path)}", path=path)


def _check_seq(seq: object, store: SnapStore | None = None) -> int:
    """``seq`` as given to a write, or ``InvalidSeq`` naming the file ``store`` writes."""
    if isinstance(seq, bool) or not isinstance(seq, int):
        what = f"must be an integer, not {type(seq).__name__} ({seq!r})"
    elif not _fmt.in_range(seq):
        what = f"must be between 0 and 2**63 - 1, not {seq}"
    else:
        return seq
    where = store._snapshot_path() if store is not None else None
    raise InvalidSeq(f"{where or 'snapshot'}: seq {what}", path=where)


def _check_expect(expect: Any) -> Any:
    if expect is ANY or expect is None or isinstance(expect, str):
        return expect
    raise TypeError(f"expect must be a generation identity (str) or None, not {type(expect).__name__}")


def _token_or_none(expect: Any) -> str | None:
    return expect if isinstance(expect, str) else None


_checksum = _fmt.checksum_of
_iso = _fmt.iso_time



class SnapStore:
    """An atomic, durable snapshot store in one directory.

    >>> store = SnapStore("state", keep=3)      # nothing touches the disk here
    >>> store.create({"counter": 42}, 10)       # durable when it returns
    >>> store.restore()                         # ({'counter': 42}, 10)

    Args:
        path: the directory. ``create()`` makes it (and missing parents).
        keep: generations kept, the current one included (``>= 1``); older
            ones live in ``history/``.
        codec: how to turn states into JSON; by default chosen from the
            state's type (see :mod:`snapmixin.codec`).
        schema_version: the version of the state's shape that this code
            writes; ``None`` (the default) means unversioned: it writes 1 and
            never migrates or refuses.
        migrations: ``@migration`` functions upgrading older schema versions.
        lock_timeout: how long a writer waits for another *process* holding
            the lock: 0 fails at once with ``StoreLocked``, ``None`` (or
            ``math.inf``) waits for ever. Writers of this process (threads,
            asyncio tasks) always wait for each other, whatever this says.
        ignore_unknown_keys: drop, instead of refusing, keys of a snapshot's
            state that the type does not know.
        max_size: the largest ``snapshot.json`` (in bytes) this store reads or
            writes, ``None`` for no limit. A larger file is refused as
            ``CorruptSnapshot`` before it is read (reading a JSON file takes
            several times its size in memory), and ``create()`` refuses to write
            one (``EncodeError``). Default 1 GiB (:data:`MAX_SIZE`).
            Independently of it, a file over 1 MiB whose first 64 KiB hold a
            byte JSON text never contains (NUL, a control character) or
            cannot start JSON is refused without being read further.
        fs: the file-system layer (tests substitute a fault-injecting one).
        storage_options: for a URL location (``s3://``, ``gs://``, ``az://``), keyword
            arguments of ``obstore.store.from_url`` (``endpoint``, ``region``,
            ``access_key_id``..., ``client_options=``, ``retry_config=``); without it
            obstore reads the environment (``AWS_ENDPOINT_URL``...). ``path`` may also be
            a ready obstore store (``S3Store``...): its prefix is the location.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | Any,
        keep: int = 1,
        *,
        codec: _codec.Codec | None = None,
        schema_version: int | None = None,
        migrations: Iterable[_migrate.Migration] | Mapping[int, _migrate.Migration] | None = None,
        lock_timeout: float | None = 0.0,
        ignore_unknown_keys: bool = False,
        max_size: int | None = MAX_SIZE,
        fs: fsio.FileOps | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an integer >= 1 (generations kept), not {keep!r}")
        if lock_timeout is not None and (isinstance(lock_timeout, bool)
                                         or not isinstance(lock_timeout, (int, float))
                                         or not lock_timeout >= 0):  # NaN compares false
            raise ValueError("lock_timeout must be a number of seconds >= 0 (math.inf or None: wait "
                             f"for ever), not {lock_timeout!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int)
                                     or max_size < 1):
            raise ValueError(f"max_size must be a number of bytes >= 1 or None, not {max_size!r}")
        self.max_size = max_size
        if not isinstance(path, (str, os.PathLike)):  # a ready obstore store
            self.backend: Backend = _objstore.from_store(path)
            path = self.backend.location
        location = os.fspath(path)
        self.path = UrlPath(location) if _SCHEME_RE.match(location) else Path(path).expanduser()
        self.keep = keep
        self.codec = codec
        self.ignore_unknown_keys = ignore_unknown_keys
        if not hasattr(self, "backend"):
            #: where the generations live and how one commits (by default the POSIX directory)
            self.backend = _backend_for(location, self.path, fs, lock_timeout, storage_options)
        if isinstance(migrations, Mapping):
            migrations = migrations.values()
        self.migrations = _migrate.collect(list(migrations or ()))
        if schema_version is None and self.migrations:
            raise MigrationError("migrations given without schema_version: say which version is current")
        if schema_version is not None:
            _migrate.check_chain(self.migrations, schema_version, f"SnapStore({str(self.path)!r})")
        self.schema_version = schema_version
        self._codecs: dict[Any, _codec.Codec] = {}
        #: per type restored into: (the schema version it declares, its strict mirror's decoder)
        self._restore_plans: dict[Any, tuple[int | None, _codec_json.TypedDecoder[Any] | None]] = {}
        self._prefix: tuple[Path, str] | None = None  # self.path and its "dir/" (see _name)
        self._current_path: tuple[str, Path] | None = None  # see _path_of
        self._snapshot_at: tuple[Path, str] | None = None  # see _snapshot_path
        #: the header of the generation this object last committed or read (see _current_head)
        self._head_seen: SnapshotInfo | None = None
        #: (path, info, trailer) of the generation this object last restored, its checksum
        #: verified: a read of the same trailer and size reuses the header once the checksum
        #: holds again (see _parse_canonical and _restore_small)
        self._read_seen: tuple[str, SnapshotInfo, bytes] | None = None
        #: schema versions of kept generations by name (names are never reused; see _prune)
        self._kept_versions: dict[str, int] = {}
        #: how each name seen in ``history/`` sorts (see _history_order): names are never reused,
        #: so what a name says is parsed once; the directory itself is listed on every call
        self._kept_order: dict[str, str] = {}
        #: what the last pruning left in ``history/`` (the latest first, as a list and a set) and
        #: the one schema version they all have (None: several, or one unknown); the next
        #: pruning takes its order from there when the listing holds exactly those names and
        #: the one archived since (``_archived``), nothing else (see _prune)
        self._kept_left: tuple[list[str], frozenset[str], int | None] | None = None
        self._archived: str | None = None  # the name _archive added, until the next pruning
        self._hist_prefix: tuple[Path, str] | None = None  # self.path and its "dir/history/"

    def __repr__(self) -> str:
        return f"SnapStore({str(self.path)!r}, keep={self.keep})"

    # ------------------------------------------------------------------ paths
    @property
    def fs(self) -> fsio.FileOps:
        """The file-system layer of a local store (tests substitute a fault-injecting one)."""
        fs: fsio.FileOps | None = getattr(self.backend, "fs", None)
        if fs is None:
            raise AttributeError(f"{self.backend.location}: not a local directory: no file-system layer")
        return fs

    @property
    def lock_timeout(self) -> float | None:
        """Seconds a writer waits for another process's lock (see the class doc)."""
        return self.backend.lock_timeout

    @lock_timeout.setter
    def lock_timeout(self, value: float | None) -> None:
        self.backend.lock_timeout = value

    @property
    def _dir(self) -> str:
        return os.fspath(self.path)

    def _p(self, *names: str) -> str:
        return os.path.join(self._dir, *names)

    def _snapshot_path(self) -> str:
        """``DIR/snapshot.json`` (joined once; ``self.path`` may be reassigned)."""
        known = self._snapshot_at
        if known is None or known[0] is not self.path:
            known = self._snapshot_at = (self.path, self._p(SNAPSHOT))
        return known[1]

    def _path_of(self, path: str) -> Path:
        """``Path(path)``, made once for the current generation's path (every read makes one)."""
        known = self._current_path
        if known is None or known[0] != path:
            known = self._current_path = (path, _path(path))
            if path != self._p(SNAPSHOT):
                self._current_path = None
        return known[1]

    def _name(self, path: str) -> str:
        """The backend's name of a generation's path (``snapshot.json``, ``history/<name>``...)."""
        prefix = self._prefix
        if prefix is None or prefix[0] is not self.path:
            prefix = self._prefix = (self.path, os.path.join(self._dir, ""))
        # (a path elsewhere, given to check_file: absolute, which a directory backend joins as is)
        return path[len(prefix[1]):] if path.startswith(prefix[1]) else os.path.abspath(path)

    # ------------------------------------------------------------------ codec
    def codec_for(self, cls: Any) -> _codec.Codec:
        """The codec used for ``cls`` (the one given to the store, or the adapter for the type)."""
        if self.codec is not None:
            return self.codec
        c = self._codecs.get(cls)
        if c is None:
            c = _codec.codec_for(cls, ignore_unknown_keys=self.ignore_unknown_keys)
            self._codecs[cls] = c
        return c

    def encode(self, state: Any) -> bytes:
        """The compact JSON of ``state`` (``EncodeError`` with the path of a bad value)."""
        return self._encode(state, deferred=False)[0]

    def _encode(self, state: Any, *, deferred: bool
                ) -> tuple[bytes, Callable[[bytes | memoryview], None] | None]:
        """:meth:`encode`; with ``deferred``, the default codec's last check (NaN and infinity)
        is returned to be run on the formatted envelope (see :meth:`_commit`), else None."""
        try:
            codec = self.codec_for(type(state) if not _is_plain(state) else None)
            if deferred and isinstance(codec, _MsgspecCodec):
                return codec.encode_deferred(state)
            return codec.encode(state), None
        except Exception as e:
            err = self._encode_error(e)
            if err is e:
                raise
            raise err from e

    def _encode_error(self, e: Exception) -> Exception:
        """What encoding raised, as the ``EncodeError`` the caller sees (``e`` itself when it
        is not an encoding failure)."""
        p = self._p(SNAPSHOT)
        if isinstance(e, _codec.EncodeFailure):
            return EncodeError(f"{p}: {e.message}; the previous snapshot is untouched", path=p,
                               json_path=e.json_path)
        if isinstance(e, RecursionError):  # a user's codec (the codec's own adapters name the depth)
            return EncodeError(f"{p}: cannot encode the state: nested too deeply (or a value refers "
                               f"to itself): {e}; the previous snapshot is untouched", path=p)
        if isinstance(e, (TypeError, ValueError, NotImplementedError, OverflowError, AttributeError)):
            return EncodeError(f"{p}: cannot encode the state: {e}; the previous snapshot is untouched",
                               path=p)
        return e

    # ------------------------------------------------------------------ write
    def create(self, state: Any, seq: int, *, expect: str | None = ANY) -> SnapshotInfo:
        """Durably store ``(state, seq)``; return its :class:`SnapshotInfo`.

        When this returns the snapshot survives a crash or power loss.

        ``expect`` is an optional precondition, checked under the lock: a
        generation identity (``SnapshotInfo.generation``, as returned by
        ``create()`` or ``latest()``) commits only if that generation is still
        the current one; ``None`` commits only if the store holds no
        generation. Omitted, any current generation is replaced (subject to
        the seq rules). A mismatch raises ``SnapshotConflict``.

        Seq rules: a seq lower than the stored one is ``SeqRegression``; the
        stored seq again with a different state (or schema version) is
        ``SnapshotConflict``; the stored seq again with the identical state
        writes nothing and returns the current generation's info. Also raises
        ``InvalidSeq`` for a seq outside 0..2**63-1, ``EncodeError`` for a
        state JSON cannot hold, ``StoreLocked`` when another process holds the
        lock, ``SnapError`` (with the ``OSError`` as cause) when the file
        system fails; in every error case nothing was written and the previous
        snapshot is intact.
        """
        _check_seq(seq, self)
        state_json, check = self._encode(state, deferred=True)
        box = [state_json]
        del state_json  # handed over: freed once copied into the envelope (peak memory)
        return self._commit(box, seq, schema_version=self._version_for(type(state)),
                            expect=_check_expect(expect), check=check)

    async def acreate(self, state: Any, seq: int, *, expect: str | None = ANY) -> SnapshotInfo:
        """:meth:`create` for asyncio: the state is encoded now, the I/O runs in a worker thread."""
        _check_seq(seq, self)
        data = self.encode(state)
        expect = _check_expect(expect)
        # The place in this process's queue of writers is taken now, in the event loop, so
        # that writes gathered together commit in the order they were called.
        turn = self.backend.reserve_turn("write a snapshot to")
        try:
            return await asyncio.to_thread(self.backend.run_in_turn, turn, self._commit, data, seq,
                                           schema_version=self._version_for(type(state)),
                                           expect=expect)
        finally:
            self.backend.abandon_turn(turn)  # cancelled before its thread started: give it back

    def _version_for(self, cls: Any) -> int | None:
        """The store's schema version if it has one, else the Snapshottable class's."""
        return self.schema_version if self.schema_version is not None else _class_version(cls)

    def _commit(self, state_json: bytes | list[bytes], seq: int, *, created_at: datetime | None = None,
                schema_version: int | None = None, archive: bool = True,
                allow_regression: bool = False, expect: Any = ANY, force: bool = False,
                replace_damaged: bool = False,
                on_commit: Callable[[SnapshotInfo], None] | None = None,
                check: Callable[[bytes | memoryview], None] | None = None) -> SnapshotInfo:
        """Write an envelope for already-encoded state (the protocol in the module doc).

        ``archive=False`` replaces the current generation without keeping it in
        history (the CLI's ``rehash``); ``allow_regression`` lets a deliberate
        rollback write a lower seq. ``expect`` is :meth:`create`'s precondition.
        ``force`` overwrites whatever is current (no precondition, no seq rule)
        and keeps what it replaces in ``history/`` even with ``keep=1`` (pruned
        by age from the next commit on). ``replace_damaged`` (with ``expect``
        naming the damaged current generation, after a fallback restore) lets
        the seq go below the damaged one's and keeps the damaged file as
        ``history/damaged-<time>.json``. ``on_commit`` is called with the new
        generation's info under the lock as soon as it is committed (also
        when the commit was a no-op, and when only the directory fsync after the
        rename failed), so a writer nobody awaits any more still records it. ``check`` is the
        encoding's last check (:meth:`_encode`), run on the compact envelope (after the compact
        state is freed: peak memory), before anything touches storage.
        """
        _check_seq(seq)
        version = schema_version if schema_version is not None else (self.schema_version or 1)
        when = created_at if created_at is not None else datetime.now(timezone.utc)
        backend = self.backend
        target = self._snapshot_path()
        box = state_json if isinstance(state_json, list) else [state_json]
        del state_json  # handed over: freed once copied into the envelope (see encode_v2_parts)
        try:
            try:  # NaN or infinity in the state (check): nothing is written
                data = _fmt.encode_v2_parts(box, seq, version, when, check)
            except _codec.EncodeFailure:
                raise
            except Exception as e:
                err = self._encode_error(e)
                if err is e:
                    raise
                raise err from e
            size = data.size
        except _codec.EncodeFailure as e:  # a state within a level or two of the nesting limit
            raise EncodeError(f"{target}: {e.message}; the previous snapshot is untouched",
                              path=target, json_path=e.json_path) from e
        if self.max_size is not None and size > self.max_size:  # it could not be read back
            raise EncodeError(f"{target}: the snapshot would be {size} bytes, more than this "
                              f"store's max_size ({self.max_size}); the previous snapshot is untouched "
                              "(SnapStore(max_size=...) raises the limit)", path=target)
        with self._locked("write a snapshot to"):
            try:
                with backend.quick_steps():
                    backend.cleanup()
                    tag = backend.current_tag()
                    current, token = self._current_generation()
                if force:
                    expect = ANY
                if expect is not ANY and expect != token:
                    raise self._conflict(expect, token, current, seq)
                damaged = replace_damaged and expect is not ANY and token is not None
                deliberate = force or allow_regression or damaged
                if current is not None and not damaged:
                    stored: int | None = current.seq
                elif token is not None and not damaged:
                    # snapshot.json damaged, or the seed's 0.1.3 layout: the highest seq known.
                    # (No snapshot.json at all means no snapshot: history/ and snapshot.seq
                    # left behind are no seq floor.)
                    stored = self._stored_seq_fallback()
                else:
                    stored = None
                if (current is not None and seq == current.seq and archive and not deliberate):
                    if current.schema_version == version and self._same_state(current, data):
                        if on_commit is not None:  # the same state again: nothing to write
                            on_commit(current)
                        return current
                    raise SnapshotConflict(
                        f"{target}: refusing seq {seq} with a different state: the store already "
                        f"holds seq {seq} (generation {current.generation}, written "
                        f"{_iso(current.created_at) if current.created_at else 'by minisnap'}), "
                        "so another writer committed the same seq first; nothing was written. "
                        "Reopen to continue from the stored state, or snapshot(force=True) to "
                        "overwrite it", path=target, expected=_token_or_none(expect),
                        current=token)
                if stored is not None and seq < stored and not deliberate:
                    raise SeqRegression(
                        f"{target}: refusing seq {seq}, lower than the stored seq {stored} (another "
                        "writer got there first, or the state was restored from an older snapshot)",
                        path=target, stored=stored, offered=seq)
                if (created_at is None and current is not None and current.created_at is not None
                        and when <= current.created_at):
                    # Commit times only go up in a directory (a clock stepped back, or two commits
                    # within its resolution): history names and the commit order rely on it.
                    when = current.created_at + timedelta(microseconds=1)
                    data = _fmt.encode_v2_parts(_fmt.state_json_of(data), seq, version, when)
                    size = data.size
                # The first snapshot of another schema version keeps the previous generation
                # (even with keep=1), so an upgrade (or a downgrade) can be undone by hand.
                pin = (current is not None and current.layout.startswith("snapmixin-")
                       and current.schema_version != version)
                archived = None
                if damaged:
                    archived = self._keep_damaged(when)
                elif current is not None and archive and (self.keep > 1 or pin or force):
                    archived = self._archive(current)
                elif current is not None and current.seq == seq:
                    self._drop_stale_archive(current)
                try:
                    backend.commit(data, expect_tag=tag)
                except Stale as e:
                    self._forget(archived)
                    raise SnapshotConflict(
                        f"{target}: stale writer: another writer committed while this one was "
                        f"writing (seq {seq}); nothing was written. Reopen to continue from the "
                        "stored state", path=target, expected=_token_or_none(expect) or token,
                        current=None) from e
                except OSError as e:
                    if getattr(e, "outcome_unknown", False):
                        raise  # the backend could not read its commit back: say so, guess nothing
                    head = self._current_head()
                    mine = (seq, data.checksum, when)
                    info = SnapshotInfo(seq=seq, created_at=when, schema_version=version,
                                        path=self._path_of(target), size=size, checksum=data.checksum)
                    if head is not None and (head.seq, head.checksum, head.created_at) == mine:
                        # The rename happened; only the directory fsync after it failed.
                        if on_commit is not None:
                            on_commit(info)
                        raise SnapError(
                            f"{target}: the snapshot (seq {seq}) was written but fsyncing {self._dir} "
                            f"failed: {e.strerror or e}; restore() returns it, but it may not survive "
                            "a power loss", path=target) from e
                    self._forget(archived)  # not committed: leave history/ as it was
                    raise
                # Committed. What follows is housekeeping: a failure there must not
                # make the caller believe the snapshot was not written.
                info = SnapshotInfo(seq=seq, created_at=when, schema_version=version,
                                    path=self._path_of(target), size=size, checksum=data.checksum)
                self._head_seen = info
                if on_commit is not None:
                    on_commit(info)
                if force and current is not None and archived is not None:
                    log.warning("%s: snapshot(force=True) replaced seq %d (generation %s); it is kept "
                                "as %s", self._dir, current.seq, current.generation, archived)
                with backend.quick_steps():  # the seq file, history/'s listing: one deferral
                    self._housekeeping(seq, version, spare=archived if force else None)
            except SnapError:
                raise
            except OSError as e:
                raise self._os_error(e, f"cannot write the snapshot (seq {seq})") from e
        return info

    def _forget(self, archived: str | None) -> None:
        """Remove the kept generation a commit that did not happen added (errors ignored)."""
        if archived is not None:
            try:
                self.backend.delete_kept(os.path.basename(archived))
            except OSError:
                pass

    def _same_state(self, current: SnapshotInfo, parts: _fmt.Encoded) -> bool:
        """Whether the current generation holds exactly the state about to be written (the
        formatted state's bytes compared: both versions format it the same way)."""
        body = parts.body  # version 2: everything before the trailer, "state" last
        i = bytes(body[:_HEAD_BYTES]).find(_STATE_KEY)  # the header is short: the state starts there
        if i < 0:  # pragma: no cover - our own envelope always has it
            return False
        mine = body[i + len(_STATE_KEY):]
        try:
            gen = self._read(os.fspath(current.path), verify=True, fast=True)
            gen.ensure_intact()
        except SnapError as e:
            _raise_if_unreadable(e)
            return False
        return (gen.info.checksum == current.checksum and len(gen.state) == len(mine)
                and gen.state == mine)

    def _current_generation(self) -> tuple[SnapshotInfo | None, str | None]:
        """``snapshot.json``'s header (None when missing or damaged) and the current generation's
        identity: its own, a damaged file's, the newest minisnap 0.1.3 file's, or None (no
        snapshot). A read that fails with an I/O error raises it (see :meth:`_current_head`)."""
        head = self._current_head()
        if head is not None:
            return head, head.generation
        try:
            return None, self.backend.identify(SNAPSHOT)
        except FileNotFoundError:
            pass
        try:
            names = self.backend.names()
        except FileNotFoundError:
            return None, None
        legacy = max(((int(m.group(1)), n) for n in names if (m := _MINISNAP13_RE.match(n))),
                     default=None)
        if legacy is None:
            return None, None
        p = self._p(legacy[1])
        try:
            return None, self._read(p, verify=False, head_only=True, seq_hint=legacy[0]).info.generation
        except SnapError:
            return None, self.backend.identify(legacy[1])

    def _conflict(self, expect: Any, token: str | None, current: SnapshotInfo | None,
                  seq: int) -> SnapshotConflict:
        target = self._p(SNAPSHOT)
        if token is None:
            now = "holds no snapshot"
        elif current is None:
            now = f"holds a snapshot this writer did not read (damaged or replaced: {token})"
        else:
            when = _iso(current.created_at) if current.created_at else "by minisnap"
            now = f"holds seq {current.seq} (generation {token}, written {when})"
        wanted = "no snapshot" if expect is None else f"generation {expect}"
        return SnapshotConflict(
            f"{target}: stale writer: the store {now}, but this writer expected {wanted}: another "
            f"writer committed since this one restored or last wrote; nothing was written (seq {seq}). "
            "Reopen to continue from the stored state (your unsaved changes are not in it), or "
            "snapshot(force=True) to overwrite it (the replaced generation is kept in history/)",
            path=target, expected=expect, current=token)

    def _keep_damaged(self, when: datetime) -> str | None:
        """Keep the damaged ``snapshot.json`` about to be replaced as ``history/damaged-<time>.json``
        (a second name, not a copy; never pruned, never restored). Returns its path, or None."""
        name = self.backend.keep_damaged(f"{_DAMAGED_PREFIX}{_stamp(when)}.json")
        return None if name is None else self._p(HISTORY, name)

    def _write_seqfile(self, seq: int) -> None:
        """Update the derived ``snapshot.seq`` (not fsynced: ``restore()`` repairs it)."""
        self.backend.write_seqfile(seq)

    def _housekeeping(self, seq: int, version: int, *, spare: str | None = None) -> None:
        try:
            self._write_seqfile(seq)
        except OSError as e:
            log.warning("%s: could not update %s (restore will repair it): %s", self._dir, SEQFILE, e)
        try:
            self._prune(version, spare=spare)
        except OSError as e:
            log.warning("%s: could not prune %s/: %s", self._dir, HISTORY, e)

    def _archive(self, current: SnapshotInfo) -> str:
        """Keep the current generation in ``history/`` under its own name (seq and commit time);
        returns its path."""
        when = current.created_at
        name = _fmt.history_name(current.seq, when)
        self.backend.keep_current(name)
        if when is not None:  # (known: not parsed again when listed)
            self._kept_order[name] = _own_order(name)
            self._archived = name
        if current.layout.startswith("snapmixin-"):
            self._kept_versions[name] = current.schema_version  # a second name of what was read
        prefix = self._hist_prefix
        if prefix is None or prefix[0] is not self.path:
            prefix = self._hist_prefix = (self.path, self._p(HISTORY, ""))
        return prefix[1] + name

    def _drop_stale_archive(self, current: SnapshotInfo) -> None:
        """Remove ``history/``'s second name of ``current``, left by a writer that died between
        archiving it and committing. A create() of the same seq replaces ``current`` without
        archiving it, so that name would outlive it: a duplicate seq in history(), and a place
        that pruning counts, so a real older generation would be pruned in its stead."""
        p = self._p(HISTORY, _history_name(current))
        try:
            info = self._read(p, verify=False, head_only=True).info
        except SnapError as e:
            _raise_if_unreadable(e)  # a failing disk: refuse (typed) rather than leave it
            return  # none (the usual case), or not ours to judge
        if (info.checksum, info.created_at) == (current.checksum, current.created_at):
            self.backend.delete_kept(_history_name(current))

    def _history_entries(self) -> list[tuple[int, str]]:
        """``(seq, path)`` of the files in ``history/`` whose names parse, the latest commit first.

        Names carry the commit time, so the order is the order of commits, not of seqs (after a
        rollback a lower seq is the newer generation). snapmixin 0.1.0's names (seq only) come
        last, as the oldest, by seq.
        """
        prefix = self._p(HISTORY, "")
        return [(s, prefix + n) for s, n in self._history_names()]

    def _history_names(self, names: list[str] | None = None) -> list[tuple[int, str]]:
        """:meth:`_history_entries` with the names in ``history/`` instead of paths (of ``names``,
        when the caller listed them already)."""
        # (the seq is the 20 digits after "snapshot-" in both kinds of name)
        return [(int(n[9:29]), n) for n in self._kept_in_order(names)]

    def _kept_in_order(self, names: list[str] | None = None) -> list[str]:
        """The names of :meth:`_history_names`, without their seqs."""
        if names is None:
            names = self.backend.list_kept()
        order = self._kept_order
        if len(order) > 2 * len(names) + 64:  # forget names gone from history/ (pruned)
            order = self._kept_order = {n: order[n] for n in names if n in order}
        get = order.get
        for name in names:
            if get(name) is None:
                order[name] = _history_order(name)
        return sorted([n for n in names if order[n]], key=order.__getitem__, reverse=True)

    def _prune(self, version: int, *, spare: str | None = None) -> None:
        """Keep the ``keep - 1`` generations committed last in history, and the last one of each
        other schema version (so an upgrade can be undone by hand). ``spare`` (what a forced
        write just replaced) is kept this time whatever ``keep`` says.

        ``history/`` is listed every time (other writers and hands add and remove names). When
        the listing holds exactly what the last pruning left plus the name archived since, the
        order is taken from there (the new name sorting latest) instead of sorting the listing.
        """
        spared = None if spare is None else os.path.basename(spare)
        left, self._kept_left = self._kept_left, None  # (stays None if this pruning fails)
        added, self._archived = self._archived, None
        names = self.backend.list_kept()
        if not names:  # (keep=1 with no history/: every commit)
            return
        entries = None
        uniform = None  # the one schema version of all entries, if known
        if left is not None and spared is None:
            entries = self._kept_since(names, left, added)
            if entries is not None and (added is None or self._kept_versions.get(added) == left[2]):
                uniform = left[2]
        if entries is None:
            entries = self._kept_in_order(names)
            if len(entries) < len(names):  # names that are no generation's: a dead writer's temp file?
                self.backend.sweep_kept(names)  # (a copy, where there are no hard links)
            if spared is not None and spared in entries:
                entries.remove(spared)
        keep_n = max(self.keep - 1, 0)
        known = self._kept_versions
        if len(entries) <= keep_n or (uniform is not None and uniform == version):
            # nothing to prune, or one schema version throughout (the usual case): none pinned
            for name in entries[keep_n:]:
                self.backend.delete_kept(name)
                known.pop(name, None)
                self._kept_order.pop(name, None)
            del entries[keep_n:]
            if spared is None:
                self._kept_left = (entries, frozenset(entries), uniform)
            return
        if len(known) > len(entries) + 1:
            listed = set(entries)
            for name in [n for n in known if n not in listed]:
                del known[name]  # pruned, or removed by someone else
        seen_versions: set[int] = set()
        kept: list[str] = []
        one: int | None = -1  # the one version of what is kept so far (-1: nothing yet)
        for i, name in enumerate(entries):
            v = known.get(name, -1)
            if v < 0:
                try:
                    v = known[name] = self._read(self._p(HISTORY, name), verify=False,
                                                 head_only=True).info.schema_version
                except SnapError:
                    v = version
            if i < keep_n or (v != version and v not in seen_versions):
                seen_versions.add(v)  # one of the last, or the pre-migration generation: kept
                kept.append(name)
                if one is not None:
                    one = v if one in (-1, v) else None
                continue
            seen_versions.add(v)
            self.backend.delete_kept(name)
            known.pop(name, None)
        if spared is None:
            self._kept_left = (kept, frozenset(kept), None if one == -1 else one)

    def _kept_since(self, names: list[str], left: tuple[list[str], frozenset[str], int | None],
                    added: str | None) -> list[str] | None:
        """The names in ``history/``, the latest first, if the listing ``names`` holds exactly
        what the last pruning left (``left``) and ``added`` (archived since, sorting after all
        of them); else None (the listing is sorted)."""
        prev, members, _ = left
        if len(self._kept_order) > 2 * len(names) + 64:
            return None  # (the sorting forgets the names gone: archived by a commit that failed)
        if added is None:
            return list(prev) if len(names) == len(prev) and members.issuperset(names) else None
        if len(names) != len(prev) + 1 or added in members:
            return None
        listed = set(names)
        if added not in listed or not listed.issuperset(members):
            return None
        if prev:
            order = self._kept_order
            newest, mine = order.get(prev[0]), order.get(added)
            if newest is None or mine is None or mine <= newest:
                return None
        return [added, *prev]

    # ------------------------------------------------------------------ lock
    #: The writer lock of the directory (see :class:`snapmixin.store.local.DirectoryLock`).
    _Lock = _local.DirectoryLock

    def _locked(self, doing: str) -> Any:
        """The writer lock; the place :meth:`acreate` reserved for this write, if there is one."""
        return self.backend.exclusive(doing)

    def _os_error(self, e: OSError, what: str) -> SnapError:
        return self.backend.os_error(e, what)

    # ------------------------------------------------------------ public API
    # What the command line and the mixin use (they use nothing private of the store).

    def commit_encoded(self, state_json: bytes, seq: int, *, schema_version: int | None = None,
                       expect: str | None = ANY, force: bool = False, archive: bool = True,
                       allow_regression: bool = False, replace_damaged: bool = False,
                       on_commit: Callable[[SnapshotInfo], None] | None = None) -> SnapshotInfo:
        """Commit an already-encoded state (compact JSON text) as a new generation.

        :meth:`create` after its encoding step, with the knobs a caller that
        manages its own base generation needs: ``expect`` (the precondition),
        ``force`` (replace whatever is current; the replaced generation is kept
        in ``history/``), ``archive=False`` (replace the current generation
        without keeping it: ``rehash``), ``allow_regression`` (a deliberate
        lower seq: ``rollback``), ``replace_damaged`` (with ``expect`` naming a
        damaged current generation: replace it, keeping it as
        ``history/damaged-<time>.json``) and ``on_commit`` (called with the new
        generation's info under the lock as soon as it is committed). Same
        errors and durability as :meth:`create`.
        """
        seq = _check_seq(seq, self)
        return self._commit(state_json, seq, schema_version=schema_version,
                            expect=_check_expect(expect), force=force, archive=archive,
                            allow_regression=allow_regression, replace_damaged=replace_damaged,
                            on_commit=on_commit)

    def restore_generation(self, cls: Any = None, *, fallback: bool = False,
                           schema_version: int | None = None,
                           migrations: Mapping[int, _migrate.Migration] | None = None) -> Restored:
        """:meth:`restore`, returning a :class:`Restored`: the state, the restored generation's
        info, and the base identity a writer continuing from it passes as ``expect=``.
        ``schema_version``/``migrations`` override the store's (the mixin passes its class's)."""
        return self._restore_gen(cls, fallback=fallback, schema_version=schema_version,
                                 migrations=migrations)

    def current(self) -> tuple[SnapshotInfo | None, str | None]:
        """The current generation's header (None when there is none or it cannot be read) and
        its identity (None when the store holds no snapshot; for a damaged ``snapshot.json``,
        an identity of the damaged file, so a writer can replace exactly it). Raises
        ``SnapError`` when the directory cannot be read."""
        try:
            return self._current_generation()
        except OSError as e:
            raise self._os_error(e, "cannot read the current snapshot") from e

    def read_current_bytes(self) -> bytes:
        """The current generation's bytes as stored, unchecked (``rehash`` reads an edited file).
        Raises ``FileNotFoundError`` when there is none, :class:`~.backend.NotAGeneration` when
        something else stands there, another ``OSError`` when the read fails."""
        return self.backend.read(SNAPSHOT)

    def location_kind(self, name: str | None = None) -> str | None:
        """What the store's location (or ``name`` in it, e.g. ``"snapshot.json"``) is: ``"dir"``,
        ``"file"``, ``"other"``, or None when nothing is there."""
        return self.backend.kind(name)

    def check_generations(self, *, current_only: bool = False) -> list[GenerationCheck]:
        """Every stored generation (the current one, then ``history/``, then the seed's files),
        newest first, each read whole and checked; nothing is repaired or written.
        ``SnapshotNotFound`` (saying what the directory holds) when there is none."""
        candidates = self._candidates()
        if not candidates:
            raise self.not_found()
        if current_only:
            candidates = candidates[:1]
        return [self._check_one(p, hint, current=(i == 0)) for i, (p, hint) in enumerate(candidates)]

    def check_file(self, path: str | os.PathLike[str], *, current: bool = False) -> GenerationCheck:
        """One generation file of this store read whole and checked (never raises for damage)."""
        return self._check_one(os.fspath(path), None, current=current)

    def _check_one(self, path: str, hint: int | None, *, current: bool) -> GenerationCheck:
        try:
            gen = self._read(path, verify=False, seq_hint=hint)
        except SnapError as e:
            return GenerationCheck(_path(path), current, None, None, None, str(e), hint)
        ok = gen.checksum_ok()
        error = None
        if ok is False:
            what = "the file" if gen.info.layout == "snapmixin-2" else "the state"
            error = f"{path}: checksum mismatch: {what} was changed after it was written"
            if os.path.basename(path) == SNAPSHOT:
                error += f" (by hand?); to accept the edit, run: python -m snapmixin rehash {self.path}"
        elif hint is not None and gen.info.seq != hint:
            error = (f"{path}: the file name says seq {hint} but the file holds seq {gen.info.seq} "
                     "(renamed by hand?)")
        state = gen.state if isinstance(gen.state, bytes) else bytes(gen.state)
        return GenerationCheck(_path(path), current, gen.info, state, ok, error, hint)

    def history_files(self) -> list[tuple[int, Path]]:
        """``(seq, path)`` of the files in ``history/``, the latest commit first (unread)."""
        return [(s, _path(p)) for s, p in self._history_entries()]

    def history_path(self, info: SnapshotInfo) -> Path:
        """Where ``history/`` keeps (or would keep) the generation ``info``."""
        return _path(self._p(HISTORY, _history_name(info)))

    def seq_file_text(self) -> str | None:
        """The text of the derived ``snapshot.seq`` (stripped), or None when it cannot be read."""
        try:
            return self.backend.read_seqfile().decode("ascii", "replace").strip()
        except OSError:
            return None

    def temp_files(self) -> list[str]:
        """Names of temp files left in the directory by interrupted writers (sorted)."""
        return self.backend.temp_names()

    def not_found(self) -> SnapshotNotFound:
        """The ``SnapshotNotFound`` this store raises when it holds no snapshot, saying why."""
        return SnapshotNotFound(self._not_found_message(), path=self._dir)

    # ------------------------------------------------------------------ read
    def exists(self) -> bool:
        """Whether the directory holds a snapshot (in this format or one of the seed's)."""
        try:
            names = self.backend.names()
        except OSError:
            return False
        return SNAPSHOT in names or any(_MINISNAP13_RE.match(n) for n in names)

    def latest(self) -> SnapshotInfo | None:
        """The current generation's info (state not decoded, checksum not verified), or None.

        None when there is no ``snapshot.json`` (nor a minisnap 0.1.3 file), even if
        ``history/`` still holds older generations.
        """
        gens = self._live(self._candidates())
        for p, hint in gens[:1]:
            return self._read(p, verify=False, head_only=True, seq_hint=hint).info
        return None

    def _live(self, candidates: list[tuple[str, int | None]]) -> list[tuple[str, int | None]]:
        """``candidates`` if the directory holds a current generation, else [].

        ``snapshot.json`` is the commit record: deleted (by hand: no writer ever leaves a
        directory without it once it has one), the store holds no snapshot. What is left in
        ``history/`` is listed by :meth:`history` and can be made current again with the CLI's
        ``rollback``, but is neither restored nor a seq floor.
        """
        if candidates and (candidates[0][0] == self._p(SNAPSHOT)
                           or any(_MINISNAP13_RE.match(os.path.basename(p)) for p, _ in candidates)):
            return candidates
        return []

    def history(self) -> list[SnapshotInfo]:
        """The kept generations, the latest commit first: the current one, then ``history/``.

        A generation that cannot be read is skipped (``verify`` in the CLI lists it).
        """
        out: list[SnapshotInfo] = []
        for p, hint in self._candidates():
            try:
                info = self._read(p, verify=False, head_only=True, seq_hint=hint).info
            except SnapError:
                continue
            if (out and info.checksum is not None
                    and (info.seq, info.checksum, info.created_at) == (out[0].seq, out[0].checksum,
                                                                       out[0].created_at)):
                continue  # a writer died between archiving the current generation and committing
            out.append(info)
        return out

    @overload
    def restore(self, cls: None = None, *, fallback: bool = False) -> tuple[Any, int]: ...
    @overload
    def restore(self, cls: type[T], *, fallback: bool = False) -> tuple[T, int]: ...

    def restore(self, cls: Any = None, *, fallback: bool = False) -> tuple[Any, int]:
        """Return ``(state, seq)`` of the newest snapshot.

        With ``cls`` the state is decoded into that type (strictly: a wrong
        type, a missing field or an unknown key raise ``DecodeError`` with the
        JSON path); without it, plain JSON values are returned. Raises
        ``SnapshotNotFound`` when there is none and ``CorruptSnapshot`` when
        it is damaged; with ``fallback=True`` a damaged generation is skipped
        (logged as a warning in the ``snapmixin`` log) for the newest intact one,
        and restoring an older generation issues a ``UserWarning`` naming it.
        Nothing in the file is executed: only ``cls`` and the types it names are built.
        """
        r = self._restore_gen(cls, fallback=fallback)
        return r.state, r.info.seq

    @overload
    async def arestore(self, cls: None = None, *, fallback: bool = False) -> tuple[Any, int]: ...
    @overload
    async def arestore(self, cls: type[T], *, fallback: bool = False) -> tuple[T, int]: ...

    async def arestore(self, cls: Any = None, *, fallback: bool = False) -> tuple[Any, int]:
        """:meth:`restore` for asyncio, run in a worker thread."""
        return await asyncio.to_thread(self._restore, cls, fallback=fallback)

    def _restore(self, cls: Any, *, fallback: bool, schema_version: int | None = None,
                 migrations: Mapping[int, _migrate.Migration] | None = None) -> tuple[Any, int]:
        r = self._restore_gen(cls, fallback=fallback, schema_version=schema_version,
                              migrations=migrations)
        return r.state, r.info.seq

    def _restore_gen(self, cls: Any, *, fallback: bool, schema_version: int | None = None,
                     migrations: Mapping[int, _migrate.Migration] | None = None) -> _Restored:
        """:meth:`restore`, and what a writer continuing from it needs: the restored generation's
        info, and ``base``, the identity of the current generation when it was read (the restored
        one's, or with a fallback the damaged one's, which the writer replaces)."""
        declared, decoder = self._restore_plan(cls)
        if schema_version is None and self.schema_version is None and declared is not None:
            # A Snapshottable class carries its own schema version and migrations.
            schema_version = declared
            migrations = getattr(cls, "__snapmixin_migrations__", None)
        version = schema_version if schema_version is not None else self.schema_version
        steps = migrations if migrations is not None else self.migrations
        # The usual case first: snapshot.json, intact (no listing of the directory or history/).
        # Missing or damaged, the long way below decides (legacy layouts, fallback, messages).
        path = self._snapshot_path()
        head: tuple[bytes, bytes | None, int] | None = None
        if decoder is not None:
            # A file under 1 MiB (and within max_size, or under 64 KiB as always) is read whole at
            # once; of a larger one, its first 64 KiB, as the general path reads them.
            whole = _SNIFF_ABOVE if self.max_size is None else min(
                _SNIFF_ABOVE, max(self.max_size + 1, _HEAD_BYTES + 1))
            try:
                data, seqfile = self.backend.read_with_seqfile(SNAPSHOT, _HEAD_BYTES, whole)
            except Exception:  # missing, unreadable...: the general path reads again and says which
                head = None
            else:
                head = (data, seqfile, whole)
                if len(data) < whole and len(data) != _HEAD_BYTES:
                    done = self._restore_small(cls, version, decoder, path, data, seqfile)
                    if done is not None:
                        return done
        try:
            gen = self._read(path, verify=True, fast=True, with_seqfile=True, name=SNAPSHOT, head=head)
            state = self._decode_checked(gen, cls, version, steps, None)
        except (SnapshotNotFound, CorruptSnapshot) as e:
            if isinstance(e, CorruptSnapshot) and not fallback:
                raise
        except SnapError as e:
            if not isinstance(e.__cause__, NotADirectoryError):
                raise  # (a file where the directory should be: the long way says so)
        else:
            if gen.info.layout == "snapmixin-2" and gen.info.checksum is not None:
                # its checksum verified: see _parse_canonical
                self._read_seen = (path, gen.info, _fmt.trailer_of(gen.info.checksum))
            self._repair_seqfile(gen.info, gen.seqfile)
            return _Restored(state, gen.info, gen.info.generation, False)
        candidates = self._live(self._candidates())
        if not candidates:
            raise self.not_found()
        first_error: CorruptSnapshot | None = None
        base: str | None = None
        for i, (p, hint) in enumerate(candidates):
            try:
                gen = self._read(p, verify=True, seq_hint=hint, fast=True)
                # a state with a valid checksum can still be unreadable (bad UTF-8, too deep)
                state = self._decode_checked(gen, cls, version, steps, hint)
            except CorruptSnapshot as e:
                if not fallback:
                    raise
                cause = e.__cause__
                if isinstance(cause, OSError) and not isinstance(cause, NotAGeneration):
                    # An I/O error is not damage: the file may be intact, and restoring an older
                    # generation would let the next save destroy it.
                    raise SnapError(f"{p}: cannot read: {cause.strerror or cause} (an I/O error, not "
                                    "damage: not falling back to an older generation)",
                                    path=p) from cause
                log.warning("%s; trying an older generation", e)
                if first_error is None:
                    first_error = e
                    try:
                        base = self._current_generation()[1]
                    except OSError as err:
                        raise self._os_error(err, "cannot read the current snapshot") from err
                continue
            if i > 0:
                log.warning("%s: restored the older generation %s (seq %d)", self._dir, p, gen.info.seq)
                _warn_caller(f"{self._dir}: the newest generation is damaged; restored the older "
                             f"generation {p} (seq {gen.info.seq}) instead ({first_error})")
                return _Restored(state, gen.info, base, True)
            self._repair_seqfile(gen.info)
            return _Restored(state, gen.info, gen.info.generation, False)
        assert first_error is not None
        raise CorruptSnapshot(f"{first_error}; and no intact older generation was found",
                              path=first_error.path) from first_error

    def _restore_plan(self, cls: Any) -> tuple[int | None, _codec_json.TypedDecoder[Any] | None]:
        """The schema version ``cls`` declares, and :meth:`_mirror_decoder`: what every
        restore into ``cls`` asks first, found once per type."""
        if self.codec is not None:  # a codec given to the store (may be replaced): the general path
            return _class_version(cls), None
        try:
            plan = self._restore_plans.get(cls)
        except TypeError:  # a type form that cannot be a key
            return _class_version(cls), self._mirror_decoder(cls)
        if plan is None:
            plan = self._restore_plans[cls] = (_class_version(cls), self._mirror_decoder(cls))
        return plan

    def _mirror_decoder(self, cls: Any) -> _codec_json.TypedDecoder[Any] | None:
        """The decoder into the strict mirror of ``cls`` when the default codec decodes it
        through one that covers all of it (see :meth:`_restore_small`), else None (also when
        finding it fails: the general path then meets that failure where it always did)."""
        if cls is None:
            return None
        try:
            codec = self.codec_for(cls)
            return codec.mirror_decoder(cls) if isinstance(codec, _MsgspecCodec) else None
        except Exception:
            return None

    def _restore_small(self, cls: Any, version: int | None, decoder: _codec_json.TypedDecoder[Any], path: str,
                       data: bytes, seqfile: bytes | None) -> _Restored | None:
        """The most common restore in one place: a ``snapshot.json`` read whole in the first
        read (under 1 MiB, so its checksum is made at once, not in a worker thread) in
        this writer's layout, of the schema version asked for, typed by the default codec
        through a strict mirror that covers all of ``cls``. About half the Python calls of the
        general path, for the same checks in the same order: the header and the trailer matched
        byte for byte, the checksum of every byte before the trailer verified, the state decoded
        into the mirror (unknown keys refused; the decoder refuses anything after the one
        value, so the file is one object with exactly its seven members), and only then
        ``cls`` built.

        None: anything else, or anything wrong before ``cls`` is built (missing, larger,
        another layout, damage, a state that does not fit the mirror...): the general path
        then reads the file again and decides, with its messages (a registered type's decode
        function may so run twice on values before a failure: it converts a value, nothing
        more). A failure while ``cls`` is built is raised here, as the general path raises it.

        ``data`` and ``seqfile``: the whole ``snapshot.json`` and ``snapshot.seq`` as
        :meth:`Backend.read_with_seqfile` read them; the general path goes on from them when
        this one declines (the file is not read twice)."""
        size = len(data)
        end = size - _fmt.TRAILER_SIZE
        m = _CANONICAL_V2.match(data)
        if m is None or m.end() >= end:
            return None
        try:
            found = self._canonical_info(data, m, end, path)
        except CorruptSnapshot:
            return None
        if found is None:
            return None
        info, remembered = found
        if version is not None and info.schema_version != version:
            return None  # a migration runs first: the general path
        hashed = memoryview(data)[:end]
        if info.checksum is None or _hashlib.sha256(hashed).hexdigest() != info.checksum[7:]:
            return None
        try:
            mirror = decoder.decode(hashed[m.end():])
        except Exception:
            return None
        del hashed
        try:
            state = _codec_json.from_attributes(mirror, cls)
        except Exception as e:
            err = _decode_error(e, str(info.path), cls)
            if err is None:
                raise
            raise err from e
        if not remembered:
            self._read_seen = (path, info, data[end:])
        if seqfile is None or seqfile != b"%d\n" % info.seq:
            self._repair_seqfile(info, seqfile)
        return _Restored(state, info, info.generation, False)

    def _not_found_message(self) -> str:
        d = self._dir
        what = self.backend.kind()
        if what == "file":
            return f"{d} is a file, not a snapshot directory"
        if what is None:
            return f"no snapshot: the directory {d} does not exist"
        try:
            kept = [s for s, _ in self._history_entries()]
        except OSError:
            kept = []
        if kept:
            return (f"no snapshot in {d} (no {SNAPSHOT}; {HISTORY}/ still holds {len(kept)} older "
                    f"generation(s): `python -m snapmixin rollback {d} --seq {kept[0]}` makes the "
                    "latest one current)")
        return f"no snapshot in {d} (no {SNAPSHOT})"

    def _decode_checked(self, gen: _Generation, cls: Any, version: int | None,
                        steps: Mapping[int, _migrate.Migration], seq_hint: int | None) -> Any:
        """:meth:`_decode`; for a generation read by the fast path, a state that does not
        decode as one JSON value sends the whole file through the full parse, whose error
        (a duplicate key, a member after the state...) is the one raised."""
        try:
            state = self._decode(gen, cls, version, steps)
        except CorruptSnapshot:
            gen.ensure_intact()  # damage explains any failure: say so first
            if gen.whole is None:
                raise
            self._parse(gen.whole, str(gen.info.path), gen.info.size, True, seq_hint, fast=False)
            raise
        except Exception:
            gen.ensure_intact()
            raise
        gen.ensure_intact()
        return state

    def _decode(self, gen: _Generation, cls: Any, version: int | None,
                steps: Mapping[int, _migrate.Migration]) -> Any:
        where = str(gen.info.path)
        codec = self.codec_for(cls)
        state = gen.state
        own = isinstance(codec, _MsgspecCodec)
        if not own or (version is not None and gen.info.schema_version != version):
            gen.ensure_intact()  # code of the caller's (a migration, another library) runs next
        if gen.whole is not None and not own:
            # A codec of another library: bytes, and the span checked as one JSON value first.
            state = bytes(state)
            try:
                _codec.loads(state)
            except _codec.Malformed as e:
                raise CorruptSnapshot(f"{where}: the state is damaged: {e.message}", path=where) from e
        try:
            if version is not None and gen.info.schema_version != version:
                value = _codec.loads(state)
                value = _migrate.run(value, gen.info.schema_version, version, steps, where)
                return _codec.convert(codec, value, cls)
            if own:
                # the codec's own structures first, then (after the checksum is known to
                # hold, and the file's bytes are let go) the caller's classes
                del state
                return codec.decode(gen.state, cls, before_build=gen.intact_and_done)  # type: ignore[call-arg]
            return codec.decode(state, cls)
        except Exception as e:
            err = _decode_error(e, where, cls)
            if err is None:
                raise
            raise err from e

    def _repair_seqfile(self, info: SnapshotInfo, seen: bytes | None = None) -> None:
        """Make ``snapshot.seq`` agree with the envelope, if no writer is busy. Never raises.
        ``seen``: its bytes, read with the generation (None: read them here)."""
        if not self.backend.seqfile:
            return
        want = f"{info.seq}\n".encode()
        try:
            if (seen if seen is not None else self.backend.read_seqfile()) == want:
                return
        except OSError:
            pass
        if not info.layout.startswith("snapmixin-"):
            return  # the seed's layouts: leave their files as they are
        # A writer that committed this generation a moment ago updates the file right after (or
        # has moved on to a newer one, and updates it for that): look again before probing the
        # lock, since a probe that a writer runs into makes it fail with lock_timeout=0.
        try:
            head = self._current_head()
            if head is None or head.generation != info.generation:
                return
            if self.backend.read_seqfile() == want:
                return
        except (OSError, SnapError):
            pass
        # Only a probe: released at once. A reader holding the lock while it writes would make
        # writers with lock_timeout=0 fail with StoreLocked (measured: 1 create in 6 with two
        # readers restoring in a loop). Racing a writer that starts now is harmless: the file
        # is derived, the writer rewrites it after its commit, and the next restore repairs it.
        if not self.backend.writers_idle():
            return  # a writer is busy (it will write the file) or the directory is read-only
        try:
            head = self._current_head()
            if head is not None and head.seq == info.seq:
                self._write_seqfile(info.seq)
                log.info("%s: repaired %s (now %d)", self._dir, SEQFILE, info.seq)
        except (OSError, SnapError) as e:
            log.debug("%s: could not repair %s: %s", self._dir, SEQFILE, e)

    # ------------------------------------------------------------ generations
    def _candidates(self) -> list[tuple[str, int | None]]:
        """The files that may hold a generation, newest first, with a seq from the name if any."""
        out: list[tuple[str, int | None]] = []
        try:
            names = self.backend.names()
        except (FileNotFoundError, NotADirectoryError):
            return out
        except OSError as e:
            raise self._os_error(e, "cannot list the snapshot directory") from e
        if SNAPSHOT in names:
            out.append((self._p(SNAPSHOT), None))
        try:
            out.extend((p, s) for s, p in self._history_entries())
        except OSError as e:  # EIO, EACCES on history/: the current generation may still be fine
            log.warning("%s: cannot list %s/ (older generations unavailable): %s", self._dir, HISTORY,
                        e.strerror or e)
        legacy = sorted(((int(m.group(1)), n) for n in names if (m := _MINISNAP13_RE.match(n))),
                        reverse=True)
        out.extend((self._p(n), s) for s, n in legacy)
        return out

    def _current_head(self) -> SnapshotInfo | None:
        """The current generation's header, or None when missing or damaged.

        A read that fails (EIO, EACCES...) raises that ``OSError``: a writer must not
        go on blind (it would skip the seq check and drop the generation from history).
        """
        known = self._head_seen
        if known is not None:
            # The header this object last wrote or read, if the file is still that generation:
            # its trailer (the checksum of every other byte, unique per commit) and size tell,
            # whoever changed the directory since (another store, another process, a hand edit).
            try:
                tail, size = self.backend.read_tail(SNAPSHOT, _fmt.TRAILER_SIZE)
            except OSError:
                pass  # the full read below reports it (or finds no file)
            else:
                if size == known.size and _fmt.trailer_checksum(tail) == known.checksum:
                    return known
        self._head_seen = None
        try:
            info = self._read(self._p(SNAPSHOT), verify=False, head_only=True).info
        except SnapError as e:
            _raise_if_unreadable(e)
            return None
        except OSError:
            return None
        if info.layout == "snapmixin-2":
            self._head_seen = info
        return info

    def _stored_seq_fallback(self) -> int | None:
        """The highest seq any other file remembers, when ``snapshot.json`` is missing or damaged."""
        seqs = [s for s, _ in self._history_entries()]
        seqs += [s for p, s in self._candidates() if s is not None and s <= SEQ_MAX]
        stored = self._seqfile_seq()  # garbage there must not lock writers out
        if stored is not None:
            seqs.append(stored)
        return max(seqs) if seqs else None

    def _read(self, path: str, *, verify: bool, head_only: bool = False,
              seq_hint: int | None = None, fast: bool = False, with_seqfile: bool = False,
              name: str | None = None, head: tuple[bytes, bytes | None, int] | None = None
              ) -> _Generation:
        """Read one generation. ``head_only`` reads just the header when the file is ours;
        ``with_seqfile`` reads ``snapshot.seq`` too, in the same go (:attr:`_Generation.seqfile`);
        ``name``: the backend's name of ``path``, when the caller knows it; ``head``: what
        :meth:`Backend.read_with_seqfile` read of it already (with ``with_seqfile``), and the
        ``whole_below`` it was asked with.

        Damage (garbled, truncated, not a regular file, larger than ``max_size``) is
        ``CorruptSnapshot``; a read that fails (EIO, EACCES...) is a plain ``SnapError``
        with the ``OSError`` as its cause: the file may be intact, so ``fallback`` must
        not skip it; memory running out is a ``SnapError`` too, never a bare ``MemoryError``.
        """
        if name is None:
            name = self._name(path)
        backend = self.backend
        try:
            try:
                seqfile: bytes | None = None
                whole = _HEAD_BYTES + 1  # (a file under 64 KiB is read whole)
                if head is not None:
                    data, seqfile, whole = head
                elif with_seqfile:
                    data, seqfile = backend.read_with_seqfile(name, _HEAD_BYTES)
                else:
                    data = backend.read(name, limit=_HEAD_BYTES)
                size = len(data)
                if size == _HEAD_BYTES or size >= whole:
                    # a large file (or one that grew while read): refuse what cannot be JSON before
                    # reading it
                    data = data[:_HEAD_BYTES]
                    size = backend.size(name)
                    if size > _SNIFF_ABOVE:
                        _refuse_non_json(data, path)
                    self._check_size(size, path)
                    if head_only and len(data) < size:
                        info = self._parse_head(data, path, size)
                        if info is not None:
                            return _Generation(info, b"")
                    limit = None if self.max_size is None else self.max_size + 1
                    data = backend.read(name, limit=limit)
                    self._check_size(len(data), path)  # it grew since
                    size = len(data)
            except FileNotFoundError as e:
                raise SnapshotNotFound(f"{path}: no such file", path=path) from e
            except NotAGeneration as e:
                raise CorruptSnapshot(f"{path}: not a regular file (a symlink, directory or FIFO "
                                      "stands where the snapshot should be)", path=path) from e
            except OSError as e:
                raise SnapError(f"{path}: cannot read: {e.strerror or e} (an I/O error, not damage: "
                                "the file may be intact)", path=path) from e
            gen = self._parse(data, path, size, verify, seq_hint, fast=fast)
            gen.seqfile = seqfile
            return gen
        except MemoryError as e:
            raise SnapError(f"{path}: out of memory reading the snapshot (a smaller max_size refuses "
                            "such files before reading them)", path=path) from e

    def _check_size(self, size: int, path: str) -> None:
        if self.max_size is not None and size > self.max_size:
            raise CorruptSnapshot(
                f"{path}: {size} bytes, more than this store's max_size ({self.max_size} bytes): "
                "refused without reading it (if it is a real snapshot, open the store with a "
                "larger SnapStore(max_size=...))", path=path)

    def _parse_head(self, data: bytes, path: str, size: int) -> SnapshotInfo | None:
        """Header of a file we wrote ourselves (``"state"`` last), from its first bytes only."""
        i = data.find(_STATE_KEY)
        if i < 0:
            return None
        text = data[:i].rstrip(b",") + b"\n}"
        try:
            top = _codec.split_object(text)
        except _codec.DecodeFailure:  # NotAnObject included
            return None
        if not _is_ours(top):
            return None
        _refuse_duplicates(text, top, path)
        head = {k: _load_field(v, k, path) for k, v in top.items()}
        trailer: str | None = None
        if head.get("format_version") == _fmt.V2:
            # version 2: the checksum is the file's last bytes, read alone (not the whole file)
            try:
                tail, size = self.backend.read_tail(self._name(path), _fmt.TRAILER_SIZE)
            except OSError:
                return None  # let the whole read report it
            trailer = _fmt.trailer_checksum(tail)
            if trailer is None:
                raise CorruptSnapshot(f"{path}: no checksum at the end of the file (a format version 2 "
                                      "snapshot ends with it): the file is truncated or was edited",
                                      path=path)
        return self._info_from_header(head, path, size, trailer)

    def _parse(self, data: bytes, path: str, size: int, verify: bool, seq_hint: int | None,
               *, fast: bool = False) -> _Generation:
        if fast and verify:
            gen = self._parse_canonical(data, path)
            if gen is not None:
                return gen
        top: dict[str, _codec.RawJSON] | None
        try:
            top = _codec.split_object(data)
        except _codec.NotAnObject:
            top = None  # valid JSON but not an object: may be a bare state (minisnap 0.1.1)
        except _codec.DecodeFailure as e:
            if isinstance(e.__cause__, RecursionError):
                raise CorruptSnapshot(f"{path}: JSON nested too deeply to read", path=path) from e
            reason = e.message.removeprefix("not valid JSON: ")
            what = "empty" if not data.strip() else f"not valid JSON ({reason})"
            raise CorruptSnapshot(f"{path}: {what}: the file is truncated or garbled", path=path) from e
        if top is not None and _is_ours(top):
            _refuse_duplicates(data, top, path)
            head = {k: _load_field(v, k, path) for k, v in top.items() if k != "state"}
            hashed: bytes | memoryview | None = None
            trailer: str | None = None
            if head.get("format_version") == _fmt.V2:
                found = _fmt.split_trailer(data)
                if found is None:
                    raise CorruptSnapshot(f"{path}: the file does not end with its checksum (a format "
                                          "version 2 snapshot does): it was truncated or edited. To "
                                          f"accept an edit, run: python -m snapmixin rehash {self._dir}",
                                          path=path)
                hashed, trailer = found
            info = self._info_from_header(head, path, size, trailer)
            if "state" not in top:
                raise CorruptSnapshot(f"{path}: the envelope has no \"state\"", path=path)
            raw = bytes(top["state"])
            gen = _Generation(info, raw, hashed if hashed is not None else raw)
            if verify and not gen.checksum_ok():
                what = "the file" if hashed is not None else "the state"
                raise CorruptSnapshot(
                    f"{path}: checksum mismatch: {what} was changed after it was written "
                    f"(by hand?). To accept the edit, run: python -m snapmixin rehash {self._dir}",
                    path=path)
            return gen
        return self._parse_legacy(top, data, path, size, seq_hint)

    def _parse_canonical(self, data: bytes, path: str) -> _Generation | None:
        """A version 2 file exactly as this writer lays it out, read without parsing the whole
        envelope (None: not in that layout, take the long way).

        The header must match :data:`_CANONICAL_V2` byte for byte (each member once, in order)
        and the file end with the trailer; what is between is the state's span, not copied.
        The checksum is verified here. That the span is one JSON value (so that the file is one
        object with exactly these seven members, no key twice) is checked by decoding it, which
        every reader of the state does: a span that does not decode is handed back to
        :meth:`_parse` in full (see :meth:`_decode_checked`)."""
        m = _CANONICAL_V2.match(data)
        if m is None:
            return None
        end = len(data) - _fmt.TRAILER_SIZE
        if m.end() >= end:
            return None
        hashed = memoryview(data)[:end]
        found = self._canonical_info(data, m, end, path)
        if found is None:
            return None
        info = found[0]
        # A large file is hashed in a worker thread while its state is decoded (into the
        # codec's own structures: no code of the caller's classes runs before the checksum
        # is known to hold; see _decode); a small one at once.
        if end < _fmt.Digest.THREADED:
            if _hashlib.sha256(hashed).hexdigest() != info.checksum[7:]:  # type: ignore[index]
                raise _checksum_mismatch(path)
            return _Generation(info, hashed[m.end():], hashed, whole=data)
        return _Generation(info, hashed[m.end():], hashed, whole=data, digest=_fmt.Digest(hashed))

    def _canonical_info(self, data: bytes, m: re.Match[bytes], end: int,
                        path: str) -> tuple[SnapshotInfo, bool] | None:
        """The header of a version 2 file in the writer's layout (``m``: its header matched by
        ``_CANONICAL_V2``; ``end``: where its trailer starts), and whether it is the remembered
        one. The generation this object restored last, by the same trailer and size, is not
        parsed again: once the checksum is verified (by the caller, as always) the bytes before
        the trailer are the same, so the header is too. None: no valid trailer there (the
        general path decides); ``CorruptSnapshot``: a header that does not hold."""
        seen = self._read_seen
        if seen is not None and seen[0] == path and seen[1].size == len(data) and data.endswith(seen[2]):
            return seen[1], True
        trailer = _fmt.trailer_at(data, end)
        if trailer is None:
            return None
        head = {"format_version": _fmt.V2, "seq": int(m.group(1)), "schema_version": int(m.group(2)),
                "created_at": m.group(3).decode("ascii")}
        return self._info_from_header(head, path, len(data), trailer), False

    def _parse_legacy(self, top: dict[str, _codec.RawJSON] | None, data: bytes, path: str, size: int,
                      seq_hint: int | None) -> _Generation:
        seq, layout, raw = _legacy.read(top, data, path, seq_hint, self._seqfile_seq, self._p(SEQFILE))
        return _Generation(SnapshotInfo(seq=seq, created_at=None, schema_version=1, path=_path(path),
                                        size=size, layout=layout), raw)

    def _seqfile_seq(self) -> int | None:
        """The seq in ``snapshot.seq`` (the one parser of it), or None when unusable."""
        try:
            return _fmt.parse_seq_text(self.backend.read_seqfile())
        except OSError:
            return None

    def _info_from_header(self, head: dict[str, Any], path: str, size: int,
                          trailer: str | None = None) -> SnapshotInfo:
        """The info of an envelope's header; ``trailer``: a version 2 file's checksum, from its end."""
        fv = head.get("format_version")
        if isinstance(fv, bool) or not isinstance(fv, int) or fv not in _fmt.READABLE:
            if isinstance(fv, int) and not isinstance(fv, bool) and fv > FORMAT_VERSION:
                raise CorruptSnapshot(f"{path}: format_version {fv} is newer than this snapmixin reads "
                                      f"({FORMAT_VERSION}): upgrade snapmixin", path=path)
            raise CorruptSnapshot(f"{path}: unknown format_version {fv!r}", path=path)
        seq = _valid_seq(head.get("seq"), path)
        sv = head.get("schema_version")
        if not _fmt.in_range(sv, 1):
            raise CorruptSnapshot(f"{path}: schema_version must be an integer between 1 and 2**63 - 1, "
                                  f"not {_short(sv)}", path=path)
        created = head.get("created_at")
        try:
            created_at = datetime.fromisoformat(created.replace("Z", "+00:00")) if isinstance(
                created, str) else None
            if created_at is not None:
                # in UTC, as written (a time without an offset is taken as UTC); an offset that
                # puts it outside the years 1..9999 is damage, not a crash of whoever prints it
                created_at = (created_at.replace(tzinfo=timezone.utc) if created_at.tzinfo is None
                              else created_at.astimezone(timezone.utc))
        except OverflowError:
            raise CorruptSnapshot(f"{path}: created_at is out of range (before year 1 or after 9999 "
                                  f"in UTC): {created!r}", path=path) from None
        except ValueError:
            created_at = None
        if created_at is None:
            raise CorruptSnapshot(f"{path}: created_at is not an ISO 8601 time: {_short(created)}",
                                  path=path)
        if fv == _fmt.V2:
            if trailer is None:  # pragma: no cover - the callers found it or refused the file
                raise CorruptSnapshot(f"{path}: no checksum trailer", path=path)
            return SnapshotInfo(seq=seq, created_at=created_at, schema_version=sv,
                                path=self._path_of(path), size=size, checksum=trailer)
        checksum = head.get("checksum")
        if not isinstance(checksum, str) or not _CHECKSUM_RE.match(checksum):
            raise CorruptSnapshot(f"{path}: checksum must be \"sha256:<64 hex digits>\", not {checksum!r}",
                                  path=path)
        return SnapshotInfo(seq=seq, created_at=created_at, schema_version=sv, path=self._path_of(path),
                            size=size, checksum=checksum, layout="snapmixin-1")


_class_version = _migrate.class_version  # the schema version a class declares (None: none)


def _is_plain(state: Any) -> bool:
    return isinstance(state, (dict, list, tuple, str, int, float, bool)) or state is None



_JSON_START = frozenset(b'{["-0123456789tfn')


#: Bytes that JSON text never holds, not even inside a string (RFC 8259: control characters
#: must be escaped there): NUL (a sparse or zero-filled file) and the other C0 controls.
_NEVER_JSON = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NEVER_JSON_TABLE = bytes(0 if _NEVER_JSON.match(bytes([b])) else 1 for b in range(256))


def _refuse_non_json(head: bytes, path: str) -> None:
    """CorruptSnapshot if ``head`` (a large file's first bytes) cannot be the start of a JSON
    document: a first byte no JSON value starts with, or a byte JSON text never holds. So a
    garbled, zero-filled or sparse multi-gigabyte file is refused without being read whole."""
    s = head.lstrip(b" \t\r\n")
    if s and s[0] not in _JSON_START:
        raise CorruptSnapshot(f"{path}: not JSON (it starts with {s[:16]!r}): the file is garbled",
                              path=path)
    # One table pass marks those bytes as 0 (6 times faster than the pattern's search), then
    # a memchr finds the first; the pattern names it.
    if head.translate(_NEVER_JSON_TABLE).find(0) < 0:
        return
    m = _NEVER_JSON.search(head)
    if m is not None:
        raise CorruptSnapshot(f"{path}: not JSON (byte {head[m.start()]:#04x} at offset {m.start()}, "
                              "which JSON text never holds): the file is garbled or zero-filled",
                              path=path)


def _is_ours(top: Mapping[str, _codec.RawJSON]) -> bool:
    """Whether a top-level object says it is a snapmixin envelope (``"format": "snapmixin"``)."""
    raw = top.get("format")
    if raw is None:
        return False
    try:
        return bool(_codec.loads(raw) == FORMAT)
    except (_codec.DecodeFailure, UnicodeDecodeError):
        return False


_WS_RE = re.compile(rb"[ \t\r\n]*")
_KEY_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)


def _refuse_duplicates(data: bytes, top: Mapping[str, _codec.RawJSON], path: str) -> None:
    """CorruptSnapshot if a top-level key of the object ``data`` (already split into ``top``,
    which kept one value per key) appears twice: readers that take the first and readers
    that take the last would disagree about the seq, the checksum or the state.

    Walks the top-level members only, skipping each value by the length of the value kept
    for its key; an occurrence whose text is not the kept value is a duplicate too."""
    view = memoryview(data)
    if _canonical_members(data, view, top):
        return
    i = _WS_RE.match(data, 0).end() + 1  # type: ignore[union-attr]  # past "{"
    seen: set[str] = set()
    while True:
        i = _WS_RE.match(data, i).end()  # type: ignore[union-attr]
        m = _KEY_RE.match(data, i)
        if m is None:  # "}" (or what split_object already accepted)
            return
        key = _codec.loads(m.group())
        value = top.get(key) if isinstance(key, str) else None
        if key in seen or value is None:
            raise CorruptSnapshot(f"{path}: the key {key!r} appears more than once in the envelope "
                                  "(readers would disagree on its value): the file was edited or garbled",
                                  path=path)
        seen.add(key)
        i = _WS_RE.match(data, m.end()).end() + 1  # type: ignore[union-attr]  # past ":"
        i = _WS_RE.match(data, i).end()  # type: ignore[union-attr]
        raw = memoryview(value)
        if view[i:i + len(raw)] != raw:
            raise CorruptSnapshot(f"{path}: the key {key!r} appears more than once in the envelope "
                                  "(readers would disagree on its value): the file was edited or garbled",
                                  path=path)
        i = _WS_RE.match(data, i + len(raw)).end() + 1  # type: ignore[union-attr]  # past "," or "}"


def _canonical_members(data: bytes, view: memoryview, top: Mapping[str, _codec.RawJSON]) -> bool:
    """Fast path of :func:`_refuse_duplicates`: whether ``data`` is exactly the members of
    ``top``, once each, as our writer lays them out (``{``, then ``\n  "key": value`` joined
    by commas, then ``\n}``). Then no key can be there twice; False means "walk it"."""
    i = 1
    if not data.startswith(b"{"):
        return False
    for n, (key, raw) in enumerate(top.items()):
        prefix = (b'\n  "' if n == 0 else b',\n  "') + key.encode() + b'": '
        if not data.startswith(prefix, i) or '"' in key or "\\" in key or not key.isprintable():
            return False
        i += len(prefix)
        value = memoryview(raw)
        if view[i:i + len(value)] != value:
            return False
        i += len(value)
    return data[i:] in (b"\n}\n", b"\n}")


#: The directory of the snapmixin package: warnings are attributed to the first frame outside it.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _warn_caller(message: str) -> None:
    """A ``UserWarning`` attributed to the caller's own code (the first frame outside snapmixin):
    what ``fallback=True`` gives besides its log record, so that it is seen (and can be turned
    into an error, or caught by a test) with the ``warnings`` machinery as well."""
    level, frame = 1, sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1  # type: ignore[assignment]
    warnings.warn(message, UserWarning, stacklevel=level)


def _raise_if_unreadable(e: SnapError) -> None:
    """For a writer about to act on what it read: a read that failed (not damage, not a
    missing file) must stop it rather than let it go on blind. Raises the ``OSError`` (the
    caller's handler wraps it) or, when memory ran out, ``e`` itself."""
    if isinstance(e, (CorruptSnapshot, SnapshotNotFound)):
        return
    if isinstance(e.__cause__, OSError):
        raise e.__cause__ from None
    raise e


_short = _fmt.short
_valid_seq = _fmt.valid_seq
_load_field = _fmt.load_field
