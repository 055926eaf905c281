"""The exception hierarchy of snapmixin.

Every error raised by the library on purpose is a :class:`SnapError`. Each
message names the file (or directory) concerned and what is wrong with it, and
the most useful facts are also attributes, so code can react without parsing
messages:

- ``SnapError.path``: the file or directory concerned, when there is one;
- ``SnapError.__cause__``: the underlying exception (an ``OSError`` for a full
  disk or a read-only directory, a ``msgspec`` error for a bad value...).

Some errors also derive from the builtin exception a Python programmer would
expect (``SnapshotNotFound`` is a ``FileNotFoundError``, ``DecodeError`` a
``ValueError``...), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import os

__all__ = [
    "CorruptSnapshot",
    "DecodeError",
    "EncodeError",
    "InvalidSeq",
    "MigrationError",
    "SeqRegression",
    "SnapError",
    "SnapshotConflict",
    "SnapshotNotFound",
    "StoreLocked",
]


class SnapError(Exception):
    """Base class of every error snapmixin raises.

    Raised as is (with the ``OSError`` as ``__cause__``) when the file system
    refuses an operation: a full disk, a read-only directory, a failed fsync.
    In that case the previous snapshot is intact and no temporary file is left.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = os.fspath(path) if path is not None else None

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the error picklable (multiprocessing, concurrent.futures).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[SnapError], message: str, state: dict[str, object]) -> SnapError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SnapshotNotFound(SnapError, FileNotFoundError):
    """There is no snapshot where one was asked for (missing directory or files)."""


class CorruptSnapshot(SnapError):
    """A snapshot file is damaged: truncated, garbled, hand-edited or not a file.

    ``path`` names the damaged file. ``SnapStore.restore(fallback=True)`` skips
    damaged generations and returns the newest intact one instead.
    """


class SeqRegression(SnapError):
    """A snapshot was offered with a seq lower than the one already stored.

    ``stored`` and ``offered`` hold the two sequence numbers.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 stored: int = 0, offered: int = 0) -> None:
        super().__init__(message, path=path)
        self.stored = stored
        self.offered = offered


class SnapshotConflict(SnapError):
    """A writer whose view of the store is stale: nothing was written.

    Raised when the store's current generation is not the one the writer
    expected to replace (another object, store or process committed since it
    restored or last wrote), or when a seq equal to the stored one comes with
    a different state. ``expected`` and ``current`` hold the two generation
    identities (``None``: no generation). To recover, reopen (restore the
    current state and redo the change), or overwrite on purpose with
    ``snapshot(force=True)``.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 expected: str | None = None, current: str | None = None) -> None:
        super().__init__(message, path=path)
        self.expected = expected
        self.current = current


class InvalidSeq(SnapError, ValueError):
    """A seq that is not an integer between 0 and 2**63 - 1."""


class StoreLocked(SnapError):
    """Another writer (in this process or another) holds the store's lock."""


class EncodeError(SnapError, TypeError):
    """A state that cannot be written as JSON. ``json_path`` locates the bad value.

    Nothing was written: the previous snapshot is untouched.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 json_path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.json_path = json_path


class DecodeError(SnapError, ValueError):
    """A snapshot's JSON does not fit the type asked for. ``json_path`` locates the value."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 json_path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.json_path = json_path


class MigrationError(SnapError):
    """Schema versions do not line up: a gap in the migration chain, a failing
    migration (its exception is the ``__cause__``), or a snapshot written by a
    newer schema version than the code knows."""
