"""Durable file primitives: the only module of snapmixin that touches the file system.

Everything the store does to disk goes through one :class:`FileOps` object,
one small method per system call (create a temp file, write, fsync, close,
rename, link, fsync a directory, unlink, lock...). The composite operations
(:func:`atomic_write`, :func:`read_regular`) are written in terms of those
primitives, so a test can pass a subclass that records every step and
simulates a crash or an ``OSError`` after any of them.

Platform notes
--------------
- Atomic replacement relies on POSIX ``rename(2)`` semantics (ext4, XFS, btrfs,
  APFS, ZFS...). ``os.replace`` gives the same on NTFS, but Windows cannot
  fsync a directory, so there the durability of the rename itself is left to
  the file system's journal.
- On macOS, ``fsync`` does not flush the drive's cache; ``F_FULLFSYNC`` does,
  and is used wherever the platform offers it.
- The writer lock is ``flock(2)`` on POSIX (released by the kernel when the
  process dies, so a killed writer never blocks the next one) and
  ``msvcrt.locking`` on Windows.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import signal
import stat
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "TMP_SUFFIX",
    "FileOps",
    "NotRegularFile",
    "atomic_write",
    "is_temp_name",
    "make_dirs",
    "read_regular",
    "read_small_pair",
    "read_tail",
]

TMP_SUFFIX = ".tmp"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NOATIME = getattr(os, "O_NOATIME", 0)

# The C half of the signal module: the same calls without the enum conversions (32 us -> 2 us
# to scan every signal's handler); the public module where there is no such half.
_sig: Any = signal
try:
    import importlib

    _sig = importlib.import_module("_signal")
except ImportError:  # pragma: no cover - another implementation
    pass

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: The ``fcntl`` command that flushes a drive's cache (macOS), or None where ``fsync`` is enough.
_F_FULLFSYNC: int | None = (getattr(fcntl, "F_FULLFSYNC", None)
                            if fcntl is not None and sys.platform == "darwin" else None)
#: The errors of ``F_FULLFSYNC`` that mean "this file system cannot do it" (fall back to
#: ``fsync``); any other (EIO above all) is a failed flush and is raised.
_FULLFSYNC_UNSUPPORTED = frozenset(
    e for e in (getattr(errno, "ENOTSUP", None), getattr(errno, "EOPNOTSUPP", None), errno.EINVAL,
                getattr(errno, "ENOTTY", None)) if e is not None)

_umask_lock = threading.Lock()
_umask: int | None = None


_geteuid = getattr(os, "geteuid", None)


def _euid() -> int:
    """The effective uid (-1 where the platform has none: then no file's mode is copied)."""
    return _geteuid() if _geteuid is not None else -1


_PLAIN_JOIN = os.sep == "/" and os.altsep is None


def _join(directory: str, name: str) -> str:
    """``os.path.join(directory, name)``, for the usual case (a plain name in a directory whose
    path does not end with a separator, on POSIX) without the generality of posixpath.join
    (a fifth of its cost; a commit joins three paths)."""
    if _PLAIN_JOIN and directory and directory[-1] != "/" and name[:1] != "/":
        return f"{directory}/{name}"
    return os.path.join(directory, name)


def _current_umask() -> int:
    """The process umask, read once (reading it means setting it, so do it rarely)."""
    global _umask
    if _umask is None:
        with _umask_lock:
            if _umask is None:
                old = os.umask(0o022)
                os.umask(old)
                _umask = old
    return _umask


class NotRegularFile(OSError):
    """The path exists but is a symlink, a directory, a FIFO or a device."""


_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$", re.ASCII)


def is_temp_name(name: str) -> bool:
    """True for the names :meth:`FileOps.open_tmp` gives (``.<target>.<16 hex digits>.tmp``).

    Exactly those: the cleanup of crashed writers' temp files must never take a
    user's own ``.notes.tmp`` (or ``.a.b.tmp``) in the directory for one of ours.
    """
    return _TEMP_RE.match(name) is not None


class FileOps:
    """The real file system, one method per primitive operation.

    Subclass it to record or fail individual steps (see ``tests/crashfs.py``);
    the store never calls ``os`` directly.
    """

    # -- directories -------------------------------------------------------
    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def listdir(self, path: str) -> list[str]:
        """The names in a directory, its access time left alone where the platform allows it.

        Every ``create()`` lists the store's directory (the sweep of dead writers'
        temp files) just after the previous commit renamed into it, so under
        ``relatime`` each listing would update the directory's access time: one
        more metadata change for the next fsync to commit (about 25 us of every
        ``create()`` on ext4). ``O_NOATIME`` (Linux) avoids it for directories this
        user owns; anywhere else the directory is listed as usual.
        """
        if not _O_NOATIME:
            return os.listdir(path)
        with DeferSignals():  # no handler between the open and the close: no descriptor lost
            try:
                fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC | _O_NOATIME)
            except PermissionError:  # EPERM: not the owner (or EACCES: raised again below)
                return os.listdir(path)
            try:
                return os.listdir(fd)
            finally:
                os.close(fd)

    def lstat(self, path: str) -> os.stat_result:
        return os.lstat(path)

    def fsync_dir(self, path: str) -> None:
        """Make the directory's entries (renames, creations) durable."""
        if os.name == "nt":  # pragma: no cover - Windows cannot open a directory
            return
        # One deferral around the open, the flush and the close: no handler runs between them,
        # so the descriptor is closed exactly once (a handler could not run during the flush
        # anyway: the interpreter runs handlers only once a system call has returned).
        with DeferSignals():
            fd = os.open(path, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
            try:
                self._flush(fd)
            finally:
                os.close(fd)

    # -- files -------------------------------------------------------------
    def open_tmp(self, directory: str, target: str) -> tuple[int, str]:
        """Create a new temp file beside ``target`` and return ``(fd, path)``.

        The name is unpredictable (64 random bits), the file is created
        exclusively (``O_EXCL``: an existing file or symlink of that name makes
        it fail rather than be followed), and it starts as mode 0600 so that no
        one can read a half-written secret; :meth:`open_tmp` then gives it the
        final file's mode: the existing file's, or what the umask gives.
        """
        final = _join(directory, target)
        try:
            st = os.lstat(final)
        except OSError:
            st = None
        if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == _euid():
            mode = stat.S_IMODE(st.st_mode) & 0o777  # permission bits only: never setuid/setgid
        else:
            # missing, a symlink (lstat says 0777), directory or FIFO, or a file someone else
            # owns (in a shared directory anyone may have put a 0666 file there): the umask decides
            mode = 0o666 & ~_current_umask()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY
        for _ in range(16):
            path = _join(directory, f".{target}.{secrets.token_hex(8)}{TMP_SUFFIX}")
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:  # pragma: no cover - 2**-64 per try
                continue
            break
        else:  # pragma: no cover
            raise FileExistsError(errno.EEXIST, "could not create a unique temp file", directory)
        if mode != 0o600 and hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, mode)
            except OSError:
                os.close(fd)
                os.unlink(path)
                raise
        return fd, path

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        """Write all of ``data`` (``os.write`` may write less than asked)."""
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def fsync(self, fd: int) -> None:
        """Flush a file's data to stable storage (``F_FULLFSYNC`` on macOS)."""
        self._flush(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def replace(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` over ``dst`` (the commit point of a write)."""
        os.replace(src, dst)

    def link(self, src: str, dst: str) -> None:
        """Hard-link ``src`` as ``dst`` (a second name for the same, already durable, file)."""
        os.link(src, dst, follow_symlinks=False)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def rewrite(self, path: str, data: bytes) -> None:
        """Overwrite an existing small regular file in place (no fsync, no rename).

        For derived files only (``snapshot.seq``): a crash may leave the old
        bytes, the new ones or a torn mix, which readers must repair. Refuses
        (``NotRegularFile``) a symlink, FIFO, anything but a regular file, or a file
        with other hard links (which may lie outside the directory), and
        raises ``FileNotFoundError`` when the file does not exist yet.
        """
        # Small and quick: one deferral around all of it (no handler runs between the open
        # and the close, so no descriptor can be lost or closed twice).
        with DeferSignals():
            fd = os.open(path, os.O_WRONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise NotRegularFile(errno.EINVAL, "not a regular file", path)
                if st.st_nlink != 1:  # a hard link: writing in place would change the other name's file
                    raise NotRegularFile(errno.EMLINK, "a file with other hard links", path)
                view = memoryview(data)
                offset = 0
                while offset < len(view):
                    offset += os.pwrite(fd, view[offset:], offset)
                if st.st_size != len(view):
                    os.ftruncate(fd, len(view))
            finally:
                os.close(fd)

    def open_read(self, path: str) -> int:
        """Open for reading without following a symlink and without blocking on a FIFO."""
        return os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC | _O_BINARY)

    def fstat(self, fd: int) -> os.stat_result:
        return os.fstat(fd)

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, size)

    def read_at(self, fd: int, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (the file position is left alone)."""
        return os.pread(fd, size, offset)

    # -- lock --------------------------------------------------------------
    def dir_id(self, path: str) -> tuple[int, int]:
        """The identity of a directory (device, inode), following symlinks: one key for
        every path that names it, for the in-process writer lock."""
        st = os.stat(path)
        return st.st_dev, st.st_ino

    def lock(self, path: str, timeout: float | None) -> int:
        """Take the exclusive advisory lock on ``path``; return the fd that holds it.

        ``timeout`` 0 fails at once, ``None`` (or infinity) waits for ever, otherwise
        waits up to that many seconds. Raises ``BlockingIOError`` when the lock stays
        busy. Two opens of the same file conflict even within one process.

        After the lock is taken, the locked file must still be the one at ``path``:
        if ``.lock`` was deleted or replaced meanwhile (by hand, or by a cleanup
        script), another writer may lock the new file while we hold the old one,
        so the lock is dropped and taken again on the file that is there now.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_BINARY, 0o666)
            try:
                while not self._try_lock(fd):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise BlockingIOError(errno.EWOULDBLOCK, "lock is held by another writer", path)
                    time.sleep(delay)
                    delay = min(delay * 2, 0.05)
                if _same_file(fd, path):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # locked a file that is no longer at the path: lock the one that is

    def unlock(self, fd: int) -> None:
        """Release the lock and close ``fd``; the fd is closed whatever fails (closing it
        releases the lock too, unless a forked child shares the descriptor)."""
        try:
            if sys.platform == "win32":  # pragma: no cover
                import msvcrt

                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # -- helpers -----------------------------------------------------------
    @staticmethod
    def _try_lock(fd: int) -> bool:
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except OSError:
                return False
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    @staticmethod
    def _flush(fd: int) -> None:
        if _F_FULLFSYNC is not None:  # macOS: flush the drive's cache too
            try:
                fcntl.fcntl(fd, _F_FULLFSYNC)
                return
            except OSError as e:
                if e.errno not in _FULLFSYNC_UNSUPPORTED:
                    raise  # EIO: the data did not reach the disk; fsync cannot make that right
                # this file system (SMB, some FUSE) has no F_FULLFSYNC: fsync is the best there is
        os.fsync(fd)


def _same_file(fd: int, path: str) -> bool:
    """Whether the open ``fd`` is still the file at ``path`` (not deleted, not replaced)."""
    if sys.platform == "win32":  # pragma: no cover - an open file cannot be deleted there
        return True
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    here = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (here.st_dev, here.st_ino)


# -- interrupts --------------------------------------------------------------------------------
class DeferSignals:
    """While active, Python-level signal handlers are deferred, then run at exit.

    Python runs signal handlers between bytecodes of the main thread, so a
    ``KeyboardInterrupt`` (or whatever a handler raises) can land between a
    system call that took a resource and the statement that records it: a lock
    file descriptor opened but not yet stored, a lock taken but not yet marked.
    Inside this block the handlers only note the signal; on exit the real
    handlers are put back and called, at a point where the bookkeeping is
    consistent. Outside the main thread no handler runs, so nothing is done.
    Keep the block short and never wait inside it in Python (a sleep, a poll:
    Ctrl-C waits for it). System calls on files inside it (a write, an
    fsync) are fine: the interpreter runs no handler while one runs anyway, so
    a handler waits at most for the calls that follow in the block. Entering
    costs one read of every handler (in C) and one swap per Python handler
    (usually only SIGINT's).
    """

    __slots__ = ("_active", "_pending", "_saved")

    def __init__(self) -> None:
        self._saved: list[tuple[int, Any]] = []
        self._pending: list[tuple[int, Any]] = []
        self._active = False

    def __enter__(self) -> DeferSignals:
        global _deferring
        if _deferring or threading.current_thread() is not threading.main_thread():
            return self  # another thread (no handler runs there), or inside a deferral already
        self._active = True
        try:
            self._swap()
            _deferring = True  # set and cleared only while the handlers are deferred
        except ValueError as e:
            if "main interpreter" not in str(e):  # a handler raised it: as below
                self._restore()
                raise
            # Not the main interpreter: handlers cannot be changed from here. The first change
            # failed, so nothing was swapped (and putting anything back would fail the same way).
            self._saved.clear()
            self._active = False
        except BaseException:
            self._restore()
            raise
        return self

    # The loops live in helpers with no ``try`` of their own, called from inside one: a handler
    # that raises anywhere in them (a call, or a loop's backward jump, where handlers run) surfaces
    # at that call, which the caller's ``try`` covers. A loop inside the ``try`` itself is not
    # safe: CPython 3.13.0 leaves a ``while`` loop's backward jump outside the exception table,
    # so an exception raised there skips the ``finally`` (see cpython#108214 for the kin in 3.11/3.12).
    def _swap(self) -> None:
        global _scanned
        # Every handler is read (in C: no Python frame per signal); which of them are Python
        # callables is worked out again only when one differs from the last scan's.
        handlers = list(map(_sig.getsignal, _SIGNALS))
        last, found = _scanned
        # The same handlers as last time? ``==`` of the lists runs in C (a tenth of the cost of an
        # ``is`` per element through map), but also holds for equal objects that are not the same:
        # so each Python handler of the last scan must still be itself in its place (a bound
        # method made again is equal, not the same). Every other place held SIG_DFL, SIG_IGN or
        # None: an object equal to SIG_DFL or SIG_IGN is installed as that by signal.signal() (it
        # compares with ``==``), so it never runs as a Python handler, and nothing but a contrived
        # ``__eq__`` equals None.
        if handlers != last or not self._same(handlers, found):
            found = [(sig, h) for sig, h in zip(_SIGNALS, handlers, strict=True) if callable(h)]
            _scanned = (handlers, found)
        install, note, saved = _sig.signal, self._note, self._saved
        for sig, handler in found:
            saved.append((sig, handler))  # before the swap: restoring it again is harmless
            install(sig, note)

    def _same(self, handlers: list[Any], found: list[tuple[int, Any]]) -> bool:
        """Whether each Python handler of the last scan is still, itself, in its place."""
        for sig, handler in found:  # noqa: SIM110 - a generator for all() costs twice this
            if handlers[_PLACE[sig]] is not handler:
                return False
        return True

    def _put_back(self) -> None:
        install, saved = _sig.signal, self._saved
        while saved:
            sig, handler = saved[-1]
            install(sig, handler)  # may run that handler at once, which may raise
            saved.pop()

    def _note(self, signum: int, frame: Any) -> None:
        if self._active:
            self._pending.append((signum, frame))
            return
        for sig, handler in self._saved:  # restoring was interrupted: behave like the real one
            if sig == signum:
                handler(signum, frame)

    def _restore(self) -> None:
        # Still active meanwhile: a signal whose handler is not back yet is noted, not lost.
        # A handler put back may fire (and raise) before the others are: the finally goes on
        # with them. No loop and no call outside the try on the way without an exception.
        global _deferring
        _deferring = False
        try:
            self._put_back()
        finally:
            if self._saved:
                self._restore()
            self._active = False

    def __exit__(self, *exc: object) -> None:
        if not self._active:
            return
        saved = dict(self._saved)
        self._restore()
        pending, self._pending = self._pending, []
        for signum, frame in pending:  # may raise (KeyboardInterrupt): the bookkeeping is done
            saved[signum](signum, frame)


#: Whether a :class:`DeferSignals` block is active (in the main thread, the only one it acts in).
_deferring = False


# The signals whose Python handlers are deferred: the standard ones (SIGKILL and SIGSTOP
# cannot have handlers). Real-time signals (SIGRTMIN..SIGRTMAX) are left out: Python
# handlers on them are rare, and scanning them would double the cost of every deferral.
_SIGNALS = sorted(n for n in getattr(signal, "valid_signals", lambda: {signal.SIGINT})()
                  if n < getattr(signal, "SIGRTMIN", 1 << 30)
                  and n not in (getattr(signal, "SIGKILL", -1), getattr(signal, "SIGSTOP", -1)))


#: Where each signal of :data:`_SIGNALS` stands in it.
_PLACE = {sig: i for i, sig in enumerate(_SIGNALS)}

#: The handlers the last deferral found (one per signal of :data:`_SIGNALS`) and, of them, the
#: Python callables it swapped: ``(handlers, [(signal, handler), ...])``.
#: (Starts as one placeholder per signal, which no handler is: the first scan finds them all.)
_scanned: tuple[list[Any], list[tuple[int, Any]]] = ([object() for _ in _SIGNALS], [])


class ProcessLocks:
    """The in-process half of the writer lock: one queue per key (a directory's identity).

    Threads and asyncio tasks (whose writes run in worker threads) of one process
    wait here for their turn, first come first served, for as long as it takes: the
    holder is a write of this very process that is running. ``flock`` then only
    arbitrates between processes. A place can be reserved before the writer's thread
    runs (``acreate()`` reserves it when called, so writes gathered in one event loop
    commit in the order they were called). A thread asking for a key whose holder is
    itself (a nested write, e.g. from a signal handler) is refused at once: waiting
    would wait for itself.

    Every change is one short step under one plain ``threading.Lock`` (taken by
    ``with`` on the C lock itself: no Python frame between taking it and the block
    that releases it), done with signals deferred by the caller, so an interrupt
    leaves the queues exact. Waiting is polling with a short backoff (no Condition:
    an interrupt inside ``Condition.wait`` can leave its lock in the wrong state).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [[token, thread id (0: reserved, its thread not started yet)], ...]; the head holds it
        self._queues: dict[object, list[list[int]]] = {}

    def reserve(self, key: object, token: int) -> None:
        """Take a place in the queue of ``key`` now, for a thread that will :meth:`try_take` later."""
        with self._lock:
            self._queues.setdefault(key, []).append([token, 0])

    def try_take(self, key: object, token: int, *, reserved: bool = False) -> int | None:
        """Queue ``token`` for ``key`` (if not queued yet) and return None if it is its turn,
        or the thread id of the holder (0: a reservation whose thread has not started).

        With ``reserved``, a token no longer queued was abandoned (:meth:`abandon`):
        ``LookupError``."""
        me = threading.get_ident()
        with self._lock:
            q = self._queues.setdefault(key, [])
            mine = next((e for e in q if e[0] == token), None)
            if mine is None:
                if reserved:
                    if not q:
                        del self._queues[key]
                    raise LookupError("the reservation was abandoned")
                mine = [token, me]
                q.append(mine)
            mine[1] = me
            return None if q[0] is mine else q[0][1]

    def give_back(self, key: object, token: int) -> None:
        """Leave the queue of ``key`` (holding it or waiting; idempotent)."""
        with self._lock:
            q = self._queues.get(key)
            if q is None:
                return
            q[:] = [e for e in q if e[0] != token]
            if not q:
                del self._queues[key]

    def abandon(self, key: object, token: int) -> None:
        """Drop a reservation whose thread never started (it will not write); else nothing."""
        with self._lock:
            q = self._queues.get(key, [])
            if any(e[0] == token and e[1] == 0 for e in q):
                q[:] = [e for e in q if e[0] != token]
                if not q:
                    del self._queues[key]

    def queued(self, key: object, token: int) -> bool:
        """Whether ``token`` holds or waits for ``key``."""
        with self._lock:
            return any(e[0] == token for e in self._queues.get(key, ()))

    def busy(self) -> int:
        """How many keys are held or waited for now (for tests: 0 when no write runs)."""
        with self._lock:
            return len(self._queues)


#: Every writer of this process registers here (see :class:`ProcessLocks`).
PROCESS_LOCKS = ProcessLocks()


#: The one real file system; ``SnapStore(..., fs=...)`` substitutes another.
REAL = FileOps()


Buffer = bytes | bytearray | memoryview


def atomic_write(ops: FileOps, directory: str, name: str, data: Buffer | Sequence[Buffer], *,
                 durable: bool = True) -> None:
    """Replace ``directory/name`` by ``data`` so that a crash leaves the old or the new file.

    ``data`` is bytes, or a sequence of buffers written one after the other
    (so a caller can assemble a large file without copying it into one).

    Temp file in the same directory, full write, fsync, rename over the target,
    fsync of the directory. With ``durable=False`` both fsyncs are skipped (for
    derived files that a reader can rebuild). On any failure before the rename
    the temp file is removed and the target is untouched; a failed fsync is
    never retried on the same file (the page cache may already have dropped
    the data): the write is treated as lost, and done again once, from scratch,
    in a new temp file (``EIO`` from write, fsync or close only; a second
    failure, or any other error, is raised).
    """
    chunks: Sequence[Buffer] = (data,) if isinstance(data, (bytes, bytearray, memoryview)) else data
    for attempt in range(_EIO_ATTEMPTS):
        fd, tmp = -1, ""
        written = False
        try:
            # One deferral from the temp file's creation to its close (see DeferSignals): an
            # interrupt surfaces before the temp file exists, or once `tmp` names it and its
            # descriptor is closed, so the handler below removes it and no descriptor leaks.
            with DeferSignals():
                fd, tmp = ops.open_tmp(directory, name)
                try:
                    for chunk in chunks:
                        ops.write(fd, chunk)
                    if durable:
                        ops.fsync(fd)
                finally:
                    ops.close(fd)
            written = True
            ops.replace(tmp, _join(directory, name))
        except OSError as e:
            if tmp:
                _discard(ops, tmp)
            if tmp and not written and e.errno == errno.EIO and attempt + 1 < _EIO_ATTEMPTS:
                continue  # never fsync the same file again: a new temp file, the data written anew
            raise
        except BaseException:
            if tmp:
                _discard(ops, tmp)
            raise
        break
    if durable:
        ops.fsync_dir(directory)


#: How many temp files :func:`atomic_write` tries when writing or fsyncing one fails with EIO.
_EIO_ATTEMPTS = 2


def make_dirs(ops: FileOps, path: str) -> None:
    """Create ``path`` and its missing parents durably: each new directory's entry
    is fsynced into its parent, so a snapshot written into it survives a power loss."""
    missing: list[str] = []
    p = os.path.abspath(path)
    while True:
        try:
            ops.lstat(p)
            break
        except FileNotFoundError:
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        except OSError:
            break  # e.g. a file where a directory should be: makedirs reports it
    ops.makedirs(path)
    for d in reversed(missing):
        ops.fsync_dir(os.path.dirname(d))


def kind(ops: FileOps, path: str) -> str | None:
    """``"dir"``, ``"file"`` (a regular file), ``"other"``, or None when nothing is there.

    Symlinks are not followed (a symlink is ``"other"``), except for the last
    component being a directory symlink, which counts as ``"dir"``.
    """
    try:
        st = ops.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        try:
            return "dir" if os.path.isdir(path) else "other"
        except OSError:  # pragma: no cover
            return "other"
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    return "file" if stat.S_ISREG(st.st_mode) else "other"


def _discard(ops: FileOps, path: str) -> None:
    try:
        ops.unlink(path)
    except OSError:
        pass


def read_regular(ops: FileOps, path: str, limit: int | None = None) -> bytes:
    """Read a regular file (at most ``limit`` bytes), refusing symlinks, FIFOs and directories.

    Raises ``FileNotFoundError`` when missing and :class:`NotRegularFile` when
    the path is not a regular file. Never blocks on a FIFO.
    """
    if limit is not None and limit <= _SMALL_READ:
        # A small read (a header, snapshot.seq) is quick: one deferral around all of it
        # instead of one around the open and one around the close.
        with DeferSignals():
            return _read_small(ops, path, limit)
    return _read_regular(ops, path, limit)


def read_small_pair(ops: FileOps, path: str, limit: int, other: str, other_limit: int, *,
                    whole_below: int | None = None) -> tuple[bytes, bytes | None]:
    """:func:`read_regular` of ``path`` and then of ``other`` (two bounded reads, each at most
    1 MiB), in one deferral of the signal handlers instead of two. ``path`` raises what
    :func:`read_regular` raises; ``other`` is optional: None when it cannot be read.
    ``whole_below`` (at most 1 MiB): ``path`` is read whole when smaller than that, even
    beyond ``limit`` (a caller that wants a small file whole and only the head of a large one,
    in one open)."""
    with DeferSignals():
        data = _read_small(ops, path, limit, whole_below)
        try:
            return data, _read_small(ops, other, other_limit)
        except OSError:
            return data, None


def _open_regular(ops: FileOps, path: str) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading: its descriptor and its ``fstat``. A symlink, directory, FIFO or
    anything but a regular file is :class:`NotRegularFile` (the descriptor closed again). Call it
    with signals deferred: no handler may run between the open and the caller's hold of ``fd``."""
    try:
        fd = ops.open_read(path)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.EISDIR):
            raise NotRegularFile(e.errno, "not a regular file (symlink or directory)", path) from e
        raise
    try:
        st = ops.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", path)
    except BaseException:
        ops.close(fd)
        raise
    return fd, st


def _read_small(ops: FileOps, path: str, limit: int, whole_below: int | None = None) -> bytes:
    """:func:`_read_regular` for a bounded read, run with signals deferred by the caller (so
    no handler runs between the open and the close: no deferral of its own)."""
    fd, st = _open_regular(ops, path)
    try:
        if whole_below is not None and limit < st.st_size < whole_below:
            limit = whole_below
        ask = st.st_size + 1 if st.st_size < limit else limit
        data = ops.read(fd, ask)
        if not data or len(data) == limit or (len(data) < ask and len(data) >= st.st_size):
            return data  # the whole file (a short read at its size is its end), or the limit
        chunks = [data]  # it grew since the fstat, or a short read: read on to the limit
        got = len(data)
        while got < limit:
            chunk = ops.read(fd, limit - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)
    finally:
        ops.close(fd)


#: Reads up to this many bytes run whole with signals deferred (see :func:`read_regular`).
_SMALL_READ = 1 << 20


def _read_regular(ops: FileOps, path: str, limit: int | None) -> bytes:
    fd = -1
    try:
        with DeferSignals():  # an interrupt lands before the open or after fd holds it
            fd, st = _open_regular(ops, path)
        chunks: list[bytes] = []
        got = 0
        while limit is None or got < limit:
            # Ask for one byte more than the size seen, so a file that grew is read whole.
            want = max(st.st_size - got, 0) + 1
            if limit is not None and limit - got < want:
                want = limit - got
            ask = min(want, 1 << 30)
            chunk = ops.read(fd, ask)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if len(chunk) < ask and got >= st.st_size:
                break  # a short read of a regular file at or past the size seen: its end
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        try:
            with DeferSignals():
                fd, closing = -1, fd
                if closing >= 0:
                    ops.close(closing)
        finally:  # only when an interrupt hit before the block above ran
            if fd >= 0:
                ops.close(fd)


def read_tail(ops: FileOps, path: str, size: int) -> tuple[bytes, int]:
    """The last ``size`` bytes of a regular file (fewer if it is smaller), and its size.

    Refuses what :func:`read_regular` refuses; reads nothing else of the file.
    """
    with DeferSignals():  # a short read: one deferral around the open and the close
        fd, st = _open_regular(ops, path)
        try:
            start = max(st.st_size - size, 0)
            chunks: list[bytes] = []
            got = 0
            while got < st.st_size - start:
                chunk = ops.read_at(fd, st.st_size - start - got, start + got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), st.st_size
        finally:
            ops.close(fd)


def cleanup_temps(ops: FileOps, directory: str) -> int:
    """Remove temp files left by crashed writers. Call only while holding the lock."""
    removed = 0
    try:
        names = ops.listdir(directory)
    except FileNotFoundError:
        return 0
    for name in names:
        if is_temp_name(name):
            try:
                ops.unlink(os.path.join(directory, name))
                removed += 1
            except OSError:
                pass
    return removed
