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
2. ``commit(..., expect=token)`` replaces the current generation only if its
   identity is still ``token`` (``None``: only if there is none); otherwise it
   raises :class:`Stale` and writes nothing. A backend that cannot tell whether
   a commit landed (a timeout after the request was sent) reads the current
   generation back and compares identities before answering.
3. Kept generations are never the current one under another name that a
   delete could remove; :meth:`Backend.delete_kept` never touches the current
   generation.
4. Reads report damage and I/O failure apart: a missing name is
   ``FileNotFoundError``, a read that fails is another ``OSError``; what the
   bytes mean is the store's business (:mod:`.format`).

Adding a backend is one module implementing :class:`Backend`, plus the line
in :func:`snapmixin.store.SnapStore` that picks it from the location.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

__all__ = ["Backend", "Buffer", "Stale"]

Buffer = bytes | bytearray | memoryview


class Stale(Exception):
    """The current generation is no longer the one the writer expected (nothing was written)."""

    def __init__(self, expected: str | None, current: str | None) -> None:
        super().__init__(f"expected generation {expected!r}, found {current!r}")
        self.expected = expected
        self.current = current


class Backend(abc.ABC):
    """Where the generations of one store live, and how one of them is committed.

    Names are relative to the store's location: ``snapshot.json`` for the
    current generation, ``history/<name>`` for kept ones.
    """

    #: the location, for messages (a directory path, or a URL)
    location: str

    # -- the current generation -------------------------------------------------
    @abc.abstractmethod
    def read_current(self, limit: int | None = None) -> bytes:
        """The current generation's bytes (at most ``limit``); ``FileNotFoundError`` if none."""

    @abc.abstractmethod
    def read_current_tail(self, size: int) -> tuple[bytes, int]:
        """The last ``size`` bytes of the current generation and its total size (a bounded
        read: format version 2 keeps its identity there)."""

    @abc.abstractmethod
    def exclusive(self, doing: str) -> object:
        """A context manager held around a commit: the local backend's writer lock, a no-op
        for a backend whose commit is a conditional write."""

    @abc.abstractmethod
    def commit(self, data: Buffer | Sequence[Buffer], *, keep_current_as: str | None = None) -> None:
        """Make ``data`` the current generation, atomically and durably.

        ``keep_current_as``: first keep the current generation as ``history/<name>``
        (undone if the commit does not happen). The precondition (rule 2) is checked
        by the caller inside :meth:`exclusive` for a locking backend; a conditional-
        write backend checks it in the write itself and raises :class:`Stale`.
        """

    # -- kept generations ---------------------------------------------------------
    @abc.abstractmethod
    def list_kept(self) -> list[str]:
        """Names of the kept generations (unordered; the store orders them by name)."""

    @abc.abstractmethod
    def read_kept(self, name: str, limit: int | None = None) -> bytes:
        """One kept generation's bytes (``FileNotFoundError`` when gone)."""

    @abc.abstractmethod
    def delete_kept(self, name: str) -> None:
        """Remove one kept generation (never the current one)."""
