"""The POSIX directory backend: one store = one directory.

The commit protocol (the module doc of :mod:`snapmixin.store` lists it step by
step): under :class:`DirectoryLock` (this process's queue of writers, then
``flock`` on ``.lock``) the store reads the current generation and checks its
precondition and seq rules; then this backend keeps the current generation in
``history/`` (a hard link, then an fsync of ``history/``), writes the new
envelope to a temp file, fsyncs it, renames it over ``snapshot.json`` and
fsyncs the directory: the rename is the commit point.

Every system call goes through :class:`snapmixin.fsio.FileOps` (``fs``), the
layer the crash, fault and torture tests substitute: what this module does is
exactly the sequence of those calls, in order.
"""

from __future__ import annotations

import contextvars
import errno
import itertools
import logging
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .. import fsio
from ..errors import SnapError, StoreLocked
from .backend import Backend, Buffer

__all__ = ["HISTORY", "LOCK", "RESERVED_TURN", "SEQFILE", "SNAPSHOT", "DirectoryLock", "LocalBackend"]

log = logging.getLogger("snapmixin")

SNAPSHOT = "snapshot.json"
SEQFILE = "snapshot.seq"
HISTORY = "history"
LOCK = ".lock"
_LOCK_TOKENS = itertools.count(1)
#: The lock place reserved by ``SnapStore.acreate`` for the write running in this context.
RESERVED_TURN: contextvars.ContextVar[DirectoryLock | None] = contextvars.ContextVar(
    "snapmixin_turn", default=None)


class DirectoryLock:
    """The writer lock of the store's directory, in two halves.

    First the in-process lock (:data:`fsio.PROCESS_LOCKS`, keyed by the
    directory's identity): this process's threads and tasks wait there for
    their turn, whatever ``lock_timeout`` says. Then ``flock`` on ``.lock``,
    which only other processes can hold: ``StoreLocked`` after ``lock_timeout``.

    Interrupt safety: every step that takes or gives back a resource and
    records it runs with signal handlers deferred (:class:`fsio.DeferSignals`),
    so a ``KeyboardInterrupt`` lands before or after it, never in between;
    :meth:`release` is idempotent and runs on every way out (``__exit__``, a
    failed ``__enter__``, and, while something is held, ``__del__`` for an
    interrupt that fires on entry to ``__exit__`` itself, before any of its code
    ran: see :class:`_HeldLock`).
    """

    def __init__(self, backend: LocalBackend, doing: str, *, probe: bool = False) -> None:
        self.backend, self.doing, self.probe = backend, doing, probe
        self.fd = -1
        self.key: object = None
        self.token = next(_LOCK_TOKENS)
        self.reserved = False

    def reserve(self) -> None:
        """Take this writer's place in the in-process queue now (its thread takes the lock
        later). Makes the directory: its identity is the queue's key."""
        s = self.backend
        try:
            fsio.make_dirs(s.fs, s.directory)
            key = s.fs.dir_id(s.directory)
        except OSError as e:
            raise s.os_error(e, f"cannot {self.doing} it") from e
        with fsio.DeferSignals():
            fsio.PROCESS_LOCKS.reserve(key, self.token)
            self.__class__ = _HeldDirectoryLock
            self.key, self.reserved = key, True

    def abandon(self) -> None:
        """Give the reserved place back if this writer's thread never started (idempotent)."""
        if self.reserved and self.key is not None:
            fsio.PROCESS_LOCKS.abandon(self.key, self.token)

    def __enter__(self) -> None:
        try:
            self._acquire()
        except BaseException:
            self.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _refuse(self, why: str, cause: BaseException | None = None) -> StoreLocked:
        s = self.backend
        err = StoreLocked(f"{s.directory}: {why}; cannot {self.doing} it now", path=s.lock_path)
        err.__cause__ = cause
        return err

    def _acquire(self) -> None:
        s = self.backend
        if self.key is None:
            try:
                if not self.probe and not s.dir_made:
                    fsio.make_dirs(s.fs, s.directory)
                    s.dir_made = True
                try:
                    self.key = s.fs.dir_id(s.directory)
                except FileNotFoundError:
                    if self.probe:
                        raise
                    # made by an earlier write of this object, removed since (by someone else)
                    fsio.make_dirs(s.fs, s.directory)
                    self.key = s.fs.dir_id(s.directory)
            except OSError as e:
                s.dir_made = False
                raise s.os_error(e, f"cannot {self.doing} it") from e
        # 1. the writers of this process, one at a time, in turn (they always wait)
        pause = 0.0005
        locked = False
        first: OSError | None = None  # what step 1's try of flock raised (step 2 handles it)
        while True:
            try:
                with fsio.DeferSignals():
                    self.__class__ = _HeldDirectoryLock
                    holder = fsio.PROCESS_LOCKS.try_take(self.key, self.token, reserved=self.reserved)
                    if holder is None:
                        # Our turn: try flock in the same deferral (one instead of two on the
                        # usual, uncontended write). Busy or failing: step 2 waits or reports it.
                        try:
                            self.fd = s.fs.lock(s.lock_path, 0)
                            locked = True
                        except OSError as busy:
                            first = busy
            except LookupError:
                raise SnapError(f"{s.directory}: the write was cancelled before it started; nothing "
                                "was written", path=s.directory) from None
            if holder is None:
                break
            if self.probe:
                raise self._refuse("a writer of this process is busy")
            if holder == threading.get_ident():
                raise self._refuse("this thread is already writing to it (a write started "
                                   "from inside another write, e.g. a signal handler?)")
            time.sleep(pause)  # interruptible, holding nothing but a place in the queue
            pause = min(pause * 2, 0.01)
        # 2. other processes: flock, for lock_timeout seconds
        timeout = 0.0 if self.probe else s.lock_timeout
        deadline = None if timeout is None or timeout == math.inf else time.monotonic() + timeout
        delay = 0.001
        while not locked:
            try:
                if first is not None:
                    failed, first = first, None
                    raise failed
                with fsio.DeferSignals():
                    self.fd = s.fs.lock(s.lock_path, 0)
                break
            except BlockingIOError as e:
                if deadline is None or time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
                    continue
                waited = "" if not timeout else f" after waiting {timeout} s"
                raise self._refuse(f"another process holds the lock {s.lock_path}{waited} "
                                   "(pass lock_timeout= to wait)", e) from e
            except OSError as e:
                raise s.os_error(e, f"cannot {self.doing} it") from e
        if not self.probe and not s.parent_synced:
            s.sync_parent()

    def probe_free(self) -> bool:
        """Whether no writer (of this process or another) holds the lock now: taken and
        given back at once, in one step (the shorter, the fewer writers with
        ``lock_timeout=0`` collide with the probe)."""
        s = self.backend
        try:
            self.key = s.fs.dir_id(s.directory)
            with fsio.DeferSignals():
                try:
                    if fsio.PROCESS_LOCKS.try_take(self.key, self.token) is not None:
                        return False  # (not waiting: the finally leaves the queue)
                    fd = s.fs.lock(s.lock_path, 0)
                    s.fs.unlock(fd)
                finally:
                    fsio.PROCESS_LOCKS.give_back(self.key, self.token)
        except OSError:
            return False
        return True

    def release(self) -> None:
        """Give back what is held (idempotent; safe to call from any way out)."""
        if self.fd < 0 and (self.key is None
                            or not fsio.PROCESS_LOCKS.queued(self.key, self.token)):
            return
        with fsio.DeferSignals():
            fd, self.fd = self.fd, -1
            try:
                if fd >= 0:
                    self.backend.fs.unlock(fd)  # closes fd whatever fails
            except OSError as e:
                log.warning("%s: releasing the lock: %s (the descriptor is closed, which "
                            "releases it)", self.backend.directory, e.strerror or e)
            finally:
                if self.key is not None:
                    fsio.PROCESS_LOCKS.give_back(self.key, self.token)
                self.__class__ = DirectoryLock

class _HeldDirectoryLock(DirectoryLock):
    """A :class:`DirectoryLock` while it holds or waits for something: only then has it a
    ``__del__`` (the last resort for an interrupt that fired on entry to ``__exit__``,
    before any of its code ran). A lock that holds nothing is its plain class again, so
    the usual write has no finalizer, where a signal would be reported as ignored."""

    def __del__(self) -> None:
        try:
            self.release()
        except BaseException:  # pragma: no cover - nowhere to report it
            pass


class LocalBackend(Backend):
    """Generations in a directory: ``snapshot.json``, ``history/``, ``snapshot.seq``, ``.lock``."""

    def __init__(self, directory: str, fs: fsio.FileOps, lock_timeout: float | None) -> None:
        self.directory = directory
        self.location = directory
        self.fs = fs
        self.lock_timeout = lock_timeout
        self.lock_path = os.path.join(directory, LOCK)
        self.parent_synced = False
        #: whether a write of this object made (or found) the directory: later writes skip
        #: ``make_dirs`` (a directory removed since is made again when ``dir_id`` misses it)
        self.dir_made = False
        self._fixed = {n: os.path.join(directory, n) for n in (SNAPSHOT, SEQFILE)}
        self._hist = os.path.join(directory, HISTORY)
        self._hist_prefix = os.path.join(self._hist, "")

    def path(self, *names: str) -> str:
        return os.path.join(self.directory, *names)

    def _at(self, name: str) -> str:
        """The path of ``name`` (those read on every restore are joined once)."""
        return self._fixed.get(name) or os.path.join(self.directory, name)

    # -- exclusion ------------------------------------------------------------------
    def exclusive(self, doing: str) -> DirectoryLock:
        """The writer lock; the place ``acreate`` reserved for this write, if there is one."""
        turn = RESERVED_TURN.get()
        if turn is not None and turn.backend is self:
            RESERVED_TURN.set(None)  # one write per reservation
            return turn
        return DirectoryLock(self, doing)

    def sync_parent(self) -> None:
        """Make the store directory's own entry durable in its parent, once per store
        object: an application that made the directory itself may never have fsynced it,
        and then a power loss could lose the whole directory with every snapshot in it."""
        parent = os.path.dirname(os.path.abspath(self.directory))
        try:
            self.fs.fsync_dir(parent)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM):
                raise self.os_error(e, f"cannot fsync the parent directory {parent}") from e
            # a parent we may not open for reading (e.g. mode 0711): nothing more we can do
            log.debug("%s: cannot fsync the parent directory: %s", self.directory, e.strerror or e)
        self.parent_synced = True

    def os_error(self, e: OSError, what: str) -> SnapError:
        """An ``OSError`` as the ``SnapError`` a caller sees (naming the file)."""
        d = self.directory
        where = e.filename or d
        reason = e.strerror or str(e)
        if isinstance(e, (NotADirectoryError, FileExistsError)):
            reason = f"{reason} (is {d} a file rather than a directory?)"
        return SnapError(f"{d}: {what}: {reason} [{where}]; the previous snapshot is intact",
                         path=where)

    # -- reading generations ---------------------------------------------------------
    def read(self, name: str, limit: int | None = None) -> bytes:
        return fsio.read_regular(self.fs, self._at(name), limit=limit)

    def size(self, name: str) -> int:
        return self.fs.lstat(self._at(name)).st_size

    def read_tail(self, name: str, size: int) -> tuple[bytes, int]:
        return fsio.read_tail(self.fs, self._at(name), size)

    def identify(self, name: str) -> str:
        """The file itself: inode, size and mtime (one ``lstat``)."""
        st = self.fs.lstat(self._at(name))
        return f"damaged-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def names(self) -> list[str]:
        return self.fs.listdir(self.directory)

    def kind(self, name: str | None = None) -> str | None:
        return fsio.kind(self.fs, self.directory if name is None else self.path(name))

    seqfile = True

    def read_seqfile(self) -> bytes:
        return fsio.read_regular(self.fs, self._fixed[SEQFILE], limit=64)

    def read_with_seqfile(self, name: str, limit: int, whole_below: int | None = None
                          ) -> tuple[bytes, bytes | None]:
        """Both small reads of a restore with the signal handlers deferred once (see
        :func:`fsio.read_small_pair`)."""
        return fsio.read_small_pair(self.fs, self._at(name), limit, self._fixed[SEQFILE], 64,
                                    whole_below=whole_below)

    def temp_names(self) -> list[str]:
        try:
            return sorted(n for n in self.fs.listdir(self.directory) if fsio.is_temp_name(n))
        except OSError:
            return []

    def writers_idle(self) -> bool:
        """A probe of the lock, taken and given back at once."""
        return DirectoryLock(self, "repair snapshot.seq in", probe=True).probe_free()

    # -- committing ------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Remove temp files left by crashed writers (only while holding the lock)."""
        fsio.cleanup_temps(self.fs, self.directory)

    def quick_steps(self) -> fsio.DeferSignals:
        """One deferral of the signal handlers around a group of quick steps (the sweep and the
        read of the current header; the seq file and the pruning): the deferrals of their own
        steps, nested in it, cost next to nothing."""
        return fsio.DeferSignals()

    def current_tag(self) -> str | None:
        """No I/O: the lock held around the commit is the precondition."""
        return "locked"

    def commit(self, data: Buffer | Sequence[Buffer], *, expect_tag: str | None = None) -> None:
        """Temp file, fsync, rename over ``snapshot.json``, fsync the directory (under the lock,
        which fences other writers: ``expect_tag`` is not needed)."""
        fsio.atomic_write(self.fs, self.directory, SNAPSHOT, data)

    def reserve_turn(self, doing: str) -> DirectoryLock:
        turn = DirectoryLock(self, doing)
        turn.reserve()
        return turn

    def run_in_turn(self, turn: Any, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        RESERVED_TURN.set(turn)
        try:
            return call(*args, **kwargs)
        finally:
            RESERVED_TURN.set(None)

    def abandon_turn(self, turn: Any) -> None:
        if turn is not None:
            turn.abandon()

    def forget(self, path: str) -> None:
        """Undo :meth:`keep_current` after a commit that did not happen (errors ignored)."""
        try:
            self.fs.unlink(path)
        except OSError:
            pass

    def _history_dir(self) -> str:
        hist = self._hist
        try:
            st = self.fs.lstat(hist)
        except FileNotFoundError:
            self.fs.makedirs(hist)
            st = self.fs.lstat(hist)
        if not stat.S_ISDIR(st.st_mode):  # never archive through a symlink
            raise NotADirectoryError(errno.ENOTDIR, "history/ is not a directory (a symlink?)", hist)
        return hist

    def keep_current(self, name: str) -> str:
        """Keep the current ``snapshot.json`` as ``history/<name>`` (a hard link: it is durable
        already, so a new name, not a copy; a copy where links fail), durably. Returns its path."""
        hist = self._history_dir()
        # (Temp files left in history/ by a writer that died copying, where there are no hard
        # links, are removed by the pruning after each commit: see :meth:`sweep_kept`.)
        dst = self._hist_prefix + name
        src = self._fixed[SNAPSHOT]
        try:
            try:
                self.fs.link(src, dst)
            except FileExistsError:
                # The only file that can stand there already is this very generation, archived
                # by a writer that died before committing: replaced by this link.
                self.fs.unlink(dst)
                self.fs.link(src, dst)
        except OSError:
            # No hard links here (some network and FAT file systems): copy instead.
            fsio.atomic_write(self.fs, hist, name, fsio.read_regular(self.fs, self.path(SNAPSHOT)))
        try:
            self.fs.fsync_dir(hist)
        except OSError:
            self.forget(dst)  # leave history/ as it was: the caller is told nothing was written
            raise
        return dst

    def keep_damaged(self, name: str) -> str | None:
        """Keep a damaged ``snapshot.json`` about to be replaced as ``history/<name>`` (a second
        name, not a copy). Returns ``name``, or None (gone, or it could not be linked)."""
        hist = self._history_dir()
        dst = os.path.join(hist, name)
        try:
            self.fs.link(self.path(SNAPSHOT), dst)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("%s: could not keep the damaged %s as %s (%s); it is replaced", self.directory,
                        SNAPSHOT, dst, e.strerror or e)
            return None
        self.fs.fsync_dir(hist)
        log.warning("%s: the damaged %s is replaced; kept as %s", self.directory, SNAPSHOT, dst)
        return name

    def write_seqfile(self, seq: int) -> None:
        """Update the derived ``snapshot.seq`` (not fsynced: ``restore()`` repairs it).

        In place when it is a regular file already (a rename costs a journal
        flush on some file systems); otherwise atomically replaced, which also
        replaces a symlink or FIFO standing there instead of writing through it.
        """
        data = b"%d\n" % seq
        try:
            self.fs.rewrite(self._fixed[SEQFILE], data)
        except OSError:
            fsio.atomic_write(self.fs, self.directory, SEQFILE, data, durable=False)

    # -- kept generations ----------------------------------------------------------------
    def list_kept(self) -> list[str]:
        """Names in ``history/``; [] when it is missing or not a plain directory (a symlink,
        perhaps out of the store: not ours to read or prune)."""
        hist = self._hist
        try:
            if not stat.S_ISDIR(self.fs.lstat(hist).st_mode):
                return []
            return self.fs.listdir(hist)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def sweep_kept(self, names: Sequence[str]) -> None:
        """Remove the temp files among ``names`` (of ``history/``): left by writers that died
        copying a generation there (no hard links). Only while holding the lock."""
        for name in names:
            if name[:1] == "." and fsio.is_temp_name(name):  # (every temp name starts with a dot)
                try:
                    self.fs.unlink(self._hist_prefix + name)
                except OSError:
                    pass

    def delete_kept(self, name: str) -> None:
        self.fs.unlink(self._hist_prefix + name)
