"""The storage contract: what a place that holds generations must offer.

A *generation* is one committed envelope (the bytes of a ``snapshot.json``,
format version 2 or 1). A store holds at most one *current* generation (the
commit record, ``snapshot.json``) and any number of *kept* ones (``history/``).
:class:`~snapmixin.store.SnapStore` decides what to commit (seq rules,
``expect=``, retention, formats); a backend only stores bytes under names and
offers one atomic step: *replace the current generation if it is still the one
the writer saw*.

The contract is stated at the level of generations, not system calls, so that
two very different places fit it:

- *exclusion*: locally ``flock`` on ``.lock`` plus this process's queue of
  writers; on object storage none: the conditional write is the exclusion.
- *identity token*: the envelope's checksum (format version 2; derived from
  the header for version 1); on object storage the object's ETag or
  generation number.
- *read the current generation*: ``read()`` of ``snapshot.json``; one ``GET``
  (which also returns the ETag).
- *commit*: temp file, fsync, rename over ``snapshot.json``, fsync of the
  directory; a ``PUT`` with ``If-Match: <etag>`` (``If-None-Match: *`` when
  there is none): no rename, no lock, no directory fsync.
- *keep the replaced generation*: a hard link into ``history/`` before the
  commit; a ``PUT`` of a copy under ``history/`` (its name never names the
  current object, so retrying it is harmless).
- *list, read, delete kept generations*: ``listdir``/``read``/``unlink`` in
  ``history/``; ``LIST``/``GET``/``DELETE`` under ``history/``.

Rules every backend keeps (the store's guarantees rest on them):

1. :meth:`Backend.commit` is all or nothing: afterwards the current generation
   is either the new bytes, whole, or what it was. It is durable when it
   returns (fsyncs, or the PUT was acknowledged).
2. ``commit(..., expect_tag=tag)`` replaces the current generation only if the
   current object is still the one :meth:`Backend.current_tag` named (``None``:
   only if there is none); otherwise it raises :class:`Stale` and writes
   nothing. A locking backend is fenced by :meth:`Backend.exclusive` instead.
   A backend that cannot tell whether a commit landed (a timeout after the
   request was sent) reads the current generation back and compares
   identities before answering.
3. Kept generations are never the current one under another name that a
   delete could remove; :meth:`Backend.delete_kept` never touches the current
   generation.
4. Reads report damage and I/O failure apart: a missing name is
   ``FileNotFoundError``, something that is not plain bytes
   :data:`NotAGeneration` (damage), a read that fails is another ``OSError``; what the
   bytes mean is the store's business (:mod:`.format`).

``restore()`` reads ``snapshot.json`` before listing anything (on object storage a listing
is a request of its own). A URL location is
shown as the URL (:class:`UrlPath`) in ``SnapStore.path``, ``SnapshotInfo.path`` and messages.
:mod:`.objstore` is such a backend (S3, GCS, Azure, memory, through obstore).

Adding a backend is one module implementing :class:`Backend`, plus one line in
:data:`snapmixin.store.BACKENDS` mapping a URL scheme to it
(``SnapStore("scheme://...")`` then uses it).
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Callable, Sequence
from pathlib import PosixPath
from typing import Any

from ..errors import SnapError
from ..fsio import NotRegularFile

__all__ = ["Backend", "Buffer", "NotAGeneration", "Stale", "UrlPath"]

Buffer = bytes | bytearray | memoryview

#: Names, relative to the store's location: the current generation ...
CURRENT = "snapshot.json"
#: ... and the folder of the kept ones (``history/<name>``).
HISTORY = "history"


#: Something that is not plain bytes stands under a generation's name (locally: a symlink,
#: a directory, a FIFO): the store reports it as damage, not as an I/O error. A backend
#: raises this class (it is :class:`snapmixin.fsio.NotRegularFile`, so one type for both).
NotAGeneration = NotRegularFile


_SCHEME_SLASH = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(?:/|$)")


class UrlPath(PosixPath):
    """A location (or a generation in it) of a URL backend, as ``SnapStore.path`` and
    ``SnapshotInfo.path`` hold it: ``str()`` and ``os.fspath()`` give the URL back
    (``s3://bucket/prefix/snapshot.json``) where a plain ``Path`` would show ``s3:/bucket...``.
    It names an object; nothing opens it as a local file."""

    def __str__(self) -> str:
        return _SCHEME_SLASH.sub(r"\1://", super().__str__(), count=1)

    def __fspath__(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"UrlPath({str(self)!r})"


class Stale(Exception):
    """The current generation is no longer the one the writer expected (nothing was written)."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(f"expected generation {expected!r}, found {current!r}")
        self.expected = expected
        self.current = current


class Backend(abc.ABC):
    """Where the generations of one store live, and how one of them is committed.

    Generations are addressed by *name*, relative to the store's location:
    ``snapshot.json`` for the current generation, ``history/<name>`` for kept
    ones, and a bare file name for the seed's (minisnap 0.1.3) files. Reads
    raise ``FileNotFoundError`` for a missing name, :class:`NotAGeneration` for
    something that is not plain bytes, another ``OSError`` for a read that failed.

    What is abstract is what every backend must do; the methods with a body are
    what a backend without a lock, temp files or a derived seq file inherits.
    """

    #: the location, for messages (a directory path, or a URL)
    location: str
    #: how long a writer waits for another process's lock (a backend without one ignores it)
    lock_timeout: float | None = None

    # -- reading generations --------------------------------------------------------
    @abc.abstractmethod
    def read(self, name: str, limit: int | None = None) -> bytes:
        """The bytes stored under ``name`` (at most ``limit``)."""

    @abc.abstractmethod
    def size(self, name: str) -> int:
        """The size in bytes of what ``name`` holds (without reading it)."""

    @abc.abstractmethod
    def read_tail(self, name: str, size: int) -> tuple[bytes, int]:
        """The last ``size`` bytes under ``name`` and its total size (a bounded read:
        format version 2 keeps its identity there)."""

    @abc.abstractmethod
    def identify(self, name: str) -> str:
        """An identity of the object stored under ``name`` that does not depend on reading
        it (the identity of a damaged current generation, which a writer replaces exactly):
        locally inode, size and mtime; on object storage the ETag."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """The names at the top of the location (``snapshot.json``, the seed's files...);
        ``FileNotFoundError`` when the location does not exist."""

    @abc.abstractmethod
    def kind(self, name: str | None = None) -> str | None:
        """What the location (or ``name`` in it) is: ``"dir"`` (a place holding names;
        any existing prefix on object storage), ``"file"``, ``"other"``, or None (nothing)."""

    # -- committing ---------------------------------------------------------------------
    @abc.abstractmethod
    def exclusive(self, doing: str) -> Any:
        """A context manager held around a commit: the local backend's writer lock, a no-op
        for a backend whose commit is a conditional write."""

    @abc.abstractmethod
    def current_tag(self) -> str | None:
        """The version of the current object as the commit's precondition will see it (an
        ETag; None: there is none), taken inside :meth:`exclusive` *before* the store reads
        the current generation. A locking backend returns a constant without I/O."""

    @abc.abstractmethod
    def commit(self, data: Buffer | Sequence[Buffer], *, expect_tag: str | None) -> None:
        """Make ``data`` the current generation, all or nothing, durable on return, if the
        current object is still ``expect_tag`` (rule 2; a locking backend is fenced by its
        lock and ignores it). Otherwise raise :class:`Stale` and write nothing."""

    @abc.abstractmethod
    def keep_current(self, name: str) -> object:
        """Keep the current generation as ``history/<name>``, durably (before a commit)."""

    @abc.abstractmethod
    def keep_damaged(self, name: str) -> str | None:
        """Keep a damaged current generation about to be replaced as ``history/<name>``;
        returns ``name``, or None when it is gone or could not be kept (logged)."""

    def cleanup(self) -> None:  # noqa: B027 - optional: nothing to clean by default
        """Remove what writers that died left behind (inside :meth:`exclusive`)."""

    def quick_steps(self) -> contextlib.AbstractContextManager[object]:
        """Around a commit's quick steps under the lock (:meth:`cleanup` and the read of the
        current generation's header; after the commit, the seq file and the pruning of kept
        generations): a directory defers signal handlers once around each group (each step is a
        few quick system calls) instead of once per step; elsewhere nothing."""
        return contextlib.nullcontext()

    # -- kept generations ---------------------------------------------------------
    @abc.abstractmethod
    def list_kept(self) -> list[str]:
        """Names of the kept generations (unordered; the store orders them by name)."""

    def sweep_kept(self, names: Sequence[str]) -> None:  # noqa: B027 - optional
        """Remove leftovers of interrupted writers among ``names`` (from :meth:`list_kept`),
        under the lock, before pruning."""

    @abc.abstractmethod
    def delete_kept(self, name: str) -> None:
        """Remove one kept generation (never the current one)."""

    # -- the derived seq record, leftovers, writers ----------------------------------
    #: whether this backend keeps the derived ``snapshot.seq`` (a directory does; object
    #: storage does not: ``restore()`` then never looks for one to repair)
    seqfile: bool = False

    def read_seqfile(self) -> bytes:
        """The derived ``snapshot.seq`` (at most 64 bytes); ``OSError`` when there is none."""
        raise FileNotFoundError("no snapshot.seq")

    def read_with_seqfile(self, name: str, limit: int, whole_below: int | None = None
                          ) -> tuple[bytes, bytes | None]:
        """:meth:`read` of ``name`` (at most ``limit`` bytes), then, where :attr:`seqfile`, the
        derived ``snapshot.seq`` (None when there is none or it cannot be read): the two reads
        of a restore, made in one go where a backend can (a directory: one deferral of the
        signal handlers for both). Raises what :meth:`read` raises. ``whole_below``, a hint:
        a file smaller than that may be returned whole, beyond ``limit`` (a directory does)."""
        data = self.read(name, limit)
        if not self.seqfile:
            return data, None
        try:
            return data, self.read_seqfile()
        except OSError:
            return data, None

    def write_seqfile(self, seq: int) -> None:  # noqa: B027 - optional
        """Update the derived ``snapshot.seq`` (not durable: ``restore()`` repairs it)."""

    def temp_names(self) -> list[str]:
        """Names of temp files left by interrupted writers (sorted)."""
        return []

    def writers_idle(self) -> bool:
        """Whether no writer is busy now (a reader repairs derived records only then)."""
        return True

    def reserve_turn(self, doing: str) -> Any:
        """Take an asyncio writer's place in line now (its thread writes later); returns
        what :meth:`run_in_turn` and :meth:`abandon_turn` take."""
        return None

    def run_in_turn(self, turn: Any, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``call`` (in a worker thread) in the place ``turn`` reserved."""
        return call(*args, **kwargs)

    def abandon_turn(self, turn: Any) -> None:  # noqa: B027 - optional
        """Give a reserved place back if its write never started (idempotent)."""

    def os_error(self, e: OSError, what: str) -> SnapError:
        """An ``OSError`` as the ``SnapError`` a caller sees."""
        where = e.filename or self.location
        return SnapError(f"{self.location}: {what}: {e.strerror or e} [{where}]; the previous "
                         "snapshot is intact", path=where)
