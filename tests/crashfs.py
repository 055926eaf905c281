"""A recording, fault-injecting file layer for tests: ``RecordingFS``.

``SnapStore(path, fs=RecordingFS(...))`` sends every primitive file operation
through it. It logs each call and can simulate a crash or an ``OSError`` at any
chosen step. API (everything else in this module is a helper for those)::

    from tests.crashfs import Crash, RecordingFS

    fs = RecordingFS()                         # just record
    store = SnapStore(d, fs=fs); store.create(state, 1)
    fs.ops                                     # list[Op]: index, name, path, dst, size, data, error
    fs.names()                                 # ["makedirs", "lock", "listdir", ..., "unlock"]
    fs.trace()                                 # one readable line per op (for assertion messages)

    RecordingFS(crash_before=5)   # op #5 (0-based, counting every op) is not performed: Crash
    RecordingFS(crash_after=5)    # op #5 is performed, then Crash
    RecordingFS(fail_errno=errno.ENOSPC, fail_at=5)         # op #5 raises OSError(ENOSPC) instead
    RecordingFS(fail_errno=errno.EIO, fail_op="fsync")      # the first fsync raises OSError(EIO)
    RecordingFS(fail_errno=errno.EROFS, fail_op=MUTATING, fail_times=None)
                                  # every mutating op, from the first on, fails (a read-only fs)

- ``Crash`` is a ``BaseException``, so no ``except Exception`` / ``except OSError``
  in the library catches it: it unwinds like a process that died. Once crashed,
  the layer is dead: it closes every descriptor it opened (the kernel does that
  for a dead process, which also drops its lock), every later op raises
  ``Crash`` again without touching the disk, and ``close``/``unlock`` return
  quietly, so tests leak no fds and a later writer is not locked out. The directory is
  left exactly as the crash left it (temp files included).
- ``fail_op`` is an op name or a collection of names; ``fail_path`` (a
  substring) further restricts which ops match; ``fail_nth`` picks the n-th
  matching op (1-based, default 1); ``fail_times`` is how many matching ops fail
  from there on (default 1; ``None``: all of them). ``fail_at`` is an op index
  (ignores ``fail_op``/``fail_nth``). The injected error carries the op's path
  as ``filename``. A failing op is logged with ``error`` set; so is an op
  whose real call raised an ``OSError``.
- Op indexes count every primitive call (reads, locks and lstat included).
  ``record_data=False`` keeps the log light for huge states (``Op.data`` None).

``MUTATING`` names the ops that change the disk. :func:`replay_states` (below)
turns a recorded log into every directory a power loss could leave; see its
docstring. The crash tests (``tests/test_crash.py``) use both.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from snapmixin.fsio import FileOps

__all__ = ["MUTATING", "Crash", "DiskFull", "Op", "RecordingFS", "replay_states", "snapshot_tree",
           "write_tree"]

R = TypeVar("R")

#: Ops that change what is on disk (the rest only read, or hold a lock).
MUTATING = frozenset({"makedirs", "open_tmp", "write", "fsync", "replace", "link", "unlink",
                      "rewrite", "fsync_dir", "lock"})


class Crash(BaseException):
    """The simulated process died here (a ``BaseException``: nothing in the library catches it)."""


@dataclass
class Op:
    """One primitive call."""

    index: int
    name: str
    path: str | None = None          # file or directory acted on (the source for replace/link)
    dst: str | None = None           # replace/link destination
    size: int | None = None          # bytes written, or asked for by read
    data: bytes | None = None        # the bytes written (write, with record_data)
    created: tuple[str, ...] = ()    # what the op created: dirs (makedirs), the file (open_tmp, lock)
    fd: int | None = None
    error: str | None = None         # errno name, when the op failed (injected or real)

    def __str__(self) -> str:
        parts = [f"#{self.index} {self.name}"]
        if self.path is not None:
            parts.append(self.path)
        if self.dst is not None:
            parts.append(f"-> {self.dst}")
        if self.size is not None:
            parts.append(f"({self.size} B)")
        if self.error:
            parts.append(f"!{self.error}")
        return " ".join(parts)


class RecordingFS(FileOps):
    """A :class:`FileOps` that logs every call and injects crashes or errors (see module doc)."""

    def __init__(self, *, crash_before: int | None = None, crash_after: int | None = None,
                 fail_errno: int = _errno.EIO, fail_at: int | None = None,
                 fail_op: str | Collection[str] | None = None, fail_path: str | None = None,
                 fail_nth: int = 1, fail_times: int | None = 1, record_data: bool = True) -> None:
        self.crash_before = crash_before
        self.crash_after = crash_after
        self.fail_errno = fail_errno
        self.fail_at = fail_at
        self.fail_op: frozenset[str] | None = (
            frozenset({fail_op}) if isinstance(fail_op, str) else
            frozenset(fail_op) if fail_op is not None else None)
        self.fail_path = fail_path
        self.fail_nth = fail_nth
        self.fail_times = fail_times
        self.record_data = record_data
        self.ops: list[Op] = []
        self.crashed = False
        self.failures = 0            # errors injected so far
        self._matches = 0            # ops that matched fail_op/fail_path so far
        self._count = 0
        self._fd_paths: dict[int, str] = {}

    # -- reading the log ----------------------------------------------------
    def names(self) -> list[str]:
        return [op.name for op in self.ops]

    def trace(self) -> str:
        return "\n".join(str(op) for op in self.ops)

    def path_of(self, fd: int) -> str | None:
        return self._fd_paths.get(fd)

    # -- the machinery --------------------------------------------------------
    def _should_fail(self, op: Op) -> bool:
        if self.fail_at is not None:
            return op.index == self.fail_at
        if self.fail_op is None and self.fail_path is None:
            return False
        if self.fail_op is not None and op.name not in self.fail_op:
            return False
        if self.fail_path is not None and self.fail_path not in ((op.path or "") + " " + (op.dst or "")):
            return False
        self._matches += 1
        if self._matches < self.fail_nth:
            return False
        return self.fail_times is None or self.failures < self.fail_times

    def _die(self) -> None:
        """The process is dead: the kernel closes its descriptors (and so drops its locks)."""
        self.crashed = True
        for fd in list(self._fd_paths):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fd_paths.clear()

    def _run(self, op: Op, call: Callable[[], R]) -> R:
        if self.crashed:
            raise Crash(f"already crashed; {op.name} not performed")
        op.index = self._count
        self._count += 1
        if self.crash_before is not None and op.index >= self.crash_before:
            self._die()
            raise Crash(f"crash before {op}")
        self.ops.append(op)
        if self._should_fail(op):
            self.failures += 1
            op.error = _errno.errorcode.get(self.fail_errno, str(self.fail_errno))
            raise OSError(self.fail_errno, f"{os.strerror(self.fail_errno)} (injected)", op.path)
        try:
            result = call()
        except OSError as e:
            op.error = _errno.errorcode.get(e.errno or 0, type(e).__name__)
            raise
        if self.crash_after is not None and op.index >= self.crash_after:
            self._die()
            raise Crash(f"crash after {op}")
        return result

    def _release(self, fd: int) -> bool:
        """After a crash, report True: the fd was closed already (by :meth:`_die`); op not logged."""
        return self.crashed

    # -- directories ------------------------------------------------------------
    def makedirs(self, path: str) -> None:
        created: list[str] = []
        p = os.path.abspath(path)
        while not os.path.lexists(p):
            created.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        op = Op(-1, "makedirs", path, created=tuple(reversed(created)))
        self._run(op, lambda: FileOps.makedirs(self, path))

    def listdir(self, path: str) -> list[str]:
        return self._run(Op(-1, "listdir", path), lambda: FileOps.listdir(self, path))

    def lstat(self, path: str) -> os.stat_result:
        return self._run(Op(-1, "lstat", path), lambda: FileOps.lstat(self, path))

    def fsync_dir(self, path: str) -> None:
        self._run(Op(-1, "fsync_dir", path), lambda: FileOps.fsync_dir(self, path))

    # -- files ------------------------------------------------------------------
    def open_tmp(self, directory: str, target: str) -> tuple[int, str]:
        op = Op(-1, "open_tmp", directory, dst=target)

        def call() -> tuple[int, str]:
            fd, path = FileOps.open_tmp(self, directory, target)
            self._fd_paths[fd] = path
            op.path, op.dst, op.fd, op.created = path, None, fd, (path,)
            return fd, path

        return self._run(op, call)

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        op = Op(-1, "write", self._fd_paths.get(fd), size=len(data), fd=fd,
                data=bytes(data) if self.record_data else None)
        self._run(op, lambda: FileOps.write(self, fd, data))

    def fsync(self, fd: int) -> None:
        self._run(Op(-1, "fsync", self._fd_paths.get(fd), fd=fd), lambda: FileOps.fsync(self, fd))

    def close(self, fd: int) -> None:
        self._run_release(Op(-1, "close", self._fd_paths.get(fd), fd=fd), fd,
                          lambda: FileOps.close(self, fd))

    def _run_release(self, op: Op, fd: int, call: Callable[[], None]) -> None:
        """close/unlock: the fd is freed whatever happens (as close(2) does, even on EIO)."""
        if self._release(fd):
            return

        def release() -> None:
            self._fd_paths.pop(fd, None)
            call()

        try:
            self._run(op, release)
        except OSError:
            if fd in self._fd_paths:  # an injected error: the call did not run; free the fd anyway
                release()
            raise

    def replace(self, src: str, dst: str) -> None:
        self._run(Op(-1, "replace", src, dst=dst), lambda: FileOps.replace(self, src, dst))

    def link(self, src: str, dst: str) -> None:
        self._run(Op(-1, "link", src, dst=dst), lambda: FileOps.link(self, src, dst))

    def unlink(self, path: str) -> None:
        self._run(Op(-1, "unlink", path), lambda: FileOps.unlink(self, path))

    def rewrite(self, path: str, data: bytes) -> None:
        op = Op(-1, "rewrite", path, size=len(data), data=bytes(data) if self.record_data else None)
        self._run(op, lambda: FileOps.rewrite(self, path, data))

    def open_read(self, path: str) -> int:
        op = Op(-1, "open_read", path)

        def call() -> int:
            fd = FileOps.open_read(self, path)
            self._fd_paths[fd] = path
            op.fd = fd
            return fd

        return self._run(op, call)

    def fstat(self, fd: int) -> os.stat_result:
        return self._run(Op(-1, "fstat", self._fd_paths.get(fd), fd=fd), lambda: FileOps.fstat(self, fd))

    def read(self, fd: int, size: int) -> bytes:
        return self._run(Op(-1, "read", self._fd_paths.get(fd), size=size, fd=fd),
                         lambda: FileOps.read(self, fd, size))

    def read_at(self, fd: int, size: int, offset: int) -> bytes:
        return self._run(Op(-1, "read", self._fd_paths.get(fd), size=size, fd=fd),
                         lambda: FileOps.read_at(self, fd, size, offset))

    # -- lock -------------------------------------------------------------------
    def lock(self, path: str, timeout: float | None) -> int:
        op = Op(-1, "lock", path, created=() if os.path.lexists(path) else (os.path.abspath(path),))

        def call() -> int:
            fd = FileOps.lock(self, path, timeout)
            self._fd_paths[fd] = path
            op.fd = fd
            return fd

        return self._run(op, call)

    def unlock(self, fd: int) -> None:
        self._run_release(Op(-1, "unlock", self._fd_paths.get(fd), fd=fd), fd,
                          lambda: FileOps.unlock(self, fd))


# ---------------------------------------------------------------------------
# Power-loss model: which directories can a crash at op k leave?
# ---------------------------------------------------------------------------

#: A directory tree in memory: relative path -> file bytes (a directory maps to None).
Tree = dict[str, "bytes | None"]


def snapshot_tree(root: str) -> Tree:
    """Read every file and directory under ``root`` (relative paths; dirs map to None)."""
    out: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            out[rel] = None
        for name in filenames:
            p = os.path.join(dirpath, name)
            with open(p, "rb") as f:
                out[os.path.normpath(os.path.join(rel, name))] = f.read()
        dirnames.sort()
    return out


def write_tree(tree: Tree, root: str) -> None:
    """Create ``tree`` under the (existing, empty) directory ``root``."""
    for rel in sorted(tree, key=lambda r: r.count(os.sep)):
        p = os.path.join(root, rel)
        content = tree[rel]
        if content is None:
            os.makedirs(p, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(content)


@dataclass
class _Inode:
    is_dir: bool
    durable: bytes = b""             # file data known to be on stable storage
    data: bytes = b""                # file data in the page cache
    # directory: name -> inode, as durable, and the entry changes made since the last fsync_dir
    entries: dict[str, _Inode] = field(default_factory=dict)
    pending: list[tuple[str, str, _Inode | None]] = field(default_factory=list)  # (kind, name, inode)
    live: dict[str, _Inode] = field(default_factory=dict)  # entries as the running process sees them
    poisoned: bool = False           # an fsync of this file failed: its un-synced data may be lost


def _apply(entries: dict[str, _Inode], change: tuple[str, str, _Inode | None]) -> None:
    kind, name, node = change
    if kind == "set":
        assert node is not None
        entries[name] = node
    else:
        entries.pop(name, None)


class _Model:
    """The file system as a power loss would find it, rebuilt from a recorded op log."""

    def __init__(self, root: str, tree: Tree) -> None:
        self.root = os.path.abspath(root)
        self.top = _Inode(is_dir=True)
        for rel in sorted(tree, key=lambda r: r.count(os.sep)):
            parent = self._dir_of(os.path.join(self.root, rel), create=False)
            content = tree[rel]
            node = _Inode(is_dir=content is None, durable=content or b"", data=content or b"")
            parent.entries[os.path.basename(rel)] = node
            parent.live[os.path.basename(rel)] = node
        self.fds: dict[int, _Inode] = {}

    def _rel_parts(self, path: str) -> list[str]:
        rel = os.path.relpath(os.path.abspath(path), self.root)
        if rel == ".":
            return []
        assert not rel.startswith(".."), f"{path} is outside the modelled root {self.root}"
        return rel.split(os.sep)

    def _node(self, path: str) -> _Inode:
        node = self.top
        for part in self._rel_parts(path):
            node = node.live[part]
        return node

    def _dir_of(self, path: str, create: bool) -> _Inode:
        return self._node(os.path.dirname(os.path.abspath(path)))

    def _change(self, path: str, kind: str, node: _Inode | None) -> None:
        parent = self._dir_of(path, create=False)
        name = os.path.basename(os.path.abspath(path))
        _apply(parent.live, (kind, name, node))
        parent.pending.append((kind, name, node))

    def apply(self, op: Op) -> None:
        if op.error is not None:
            if op.name == "fsync" and op.fd in self.fds:
                # Linux may drop the dirty pages of a file whose fsync failed and mark them clean:
                # what was not durable then never will be, whatever a later fsync says.
                self.fds[op.fd].poisoned = True
            return
        n = op.name
        if n == "makedirs":
            for d in op.created:
                self._change(d, "set", _Inode(is_dir=True))
        elif n in ("open_tmp", "lock"):
            for p in op.created:
                node = _Inode(is_dir=False)
                self._change(p, "set", node)
            if n == "open_tmp":
                assert op.fd is not None and op.path is not None
                self.fds[op.fd] = self._node(op.path)
        elif n == "write":
            assert op.fd is not None
            if op.data is None:
                raise ValueError("replay needs RecordingFS(record_data=True)")
            node = self.fds[op.fd]
            node.data += op.data
        elif n == "fsync":
            assert op.fd is not None
            node = self.fds[op.fd]
            if not node.poisoned:
                node.durable = node.data
        elif n == "close":
            if op.fd is not None:
                self.fds.pop(op.fd, None)
        elif n == "replace":
            assert op.path is not None and op.dst is not None
            node = self._node(op.path)
            self._change(op.path, "del", None)
            self._change(op.dst, "set", node)
        elif n == "link":
            assert op.path is not None and op.dst is not None
            self._change(op.dst, "set", self._node(op.path))
        elif n == "unlink":
            assert op.path is not None
            self._change(op.path, "del", None)
        elif n == "rewrite":
            # In place, never fsynced: the old bytes, the new ones or a torn mix may survive.
            assert op.path is not None
            if op.data is None:
                raise ValueError("replay needs RecordingFS(record_data=True)")
            self._node(op.path).data = op.data
        elif n == "fsync_dir":
            assert op.path is not None
            synced = self._node(op.path)
            for change in synced.pending:
                _apply(synced.entries, change)
            synced.pending.clear()

    def outcomes(self) -> Iterator[Tree]:
        """Every tree a power loss now could leave (may repeat; the caller dedupes)."""
        dirs: list[_Inode] = []

        def walk_dirs(d: _Inode, seen: set[int]) -> None:
            if id(d) in seen:
                return
            seen.add(id(d))
            dirs.append(d)
            for child in list(d.live.values()) + list(d.entries.values()) + [
                    c[2] for c in d.pending if c[2] is not None]:
                if child.is_dir:
                    walk_dirs(child, seen)

        walk_dirs(self.top, set())
        # For each directory: how many of its un-synced entry changes survive (a prefix).
        choices = [range(len(d.pending) + 1) for d in dirs]
        for combo in _product(choices):
            views: dict[int, dict[str, _Inode]] = {}
            for d, k in zip(dirs, combo, strict=True):
                entries = dict(d.entries)
                for change in d.pending[:k]:
                    _apply(entries, change)
                views[id(d)] = entries
            files: list[tuple[str, _Inode]] = []
            skeleton: dict[str, _Inode | None] = {}
            _build(views, self.top, "", skeleton, files)
            # Each reachable inode with un-synced data: kept, dropped or torn (same inode, same choice).
            unsynced: list[_Inode] = []
            for _, node in files:
                if node.data != node.durable and all(node is not u for u in unsynced):
                    unsynced.append(node)
            variants = [_data_variants(node) for node in unsynced]
            for pick in _product([range(len(v)) for v in variants]):
                content = {id(node): variants[i][j]
                           for i, (node, j) in enumerate(zip(unsynced, pick, strict=True))}
                tree: Tree = {}
                for rel, maybe in skeleton.items():
                    if maybe is None:
                        tree[rel] = None
                    else:
                        tree[rel] = content.get(id(maybe), maybe.data if maybe.data == maybe.durable
                                                else maybe.durable)
                yield tree


def _build(views: dict[int, dict[str, _Inode]], d: _Inode, prefix: str,
           skeleton: dict[str, _Inode | None], files: list[tuple[str, _Inode]]) -> None:
    """Lay out the tree reachable from ``d`` as the chosen directory views show it."""
    for name, node in sorted(views[id(d)].items()):
        rel = os.path.join(prefix, name) if prefix else name
        if node.is_dir:
            skeleton[rel] = None
            _build(views, node, rel, skeleton, files)
        else:
            skeleton[rel] = node
            files.append((rel, node))


def _data_variants(node: _Inode) -> list[bytes]:
    """Kept (all written bytes reached the disk), dropped (none of the un-synced ones), torn (half)."""
    new = node.data[len(node.durable):] if node.data.startswith(node.durable) else node.data
    base = node.durable if node.data.startswith(node.durable) else b""
    return [node.data, node.durable, base + new[: len(new) // 2]]


def _product(ranges: list[range]) -> Iterator[tuple[int, ...]]:
    if not ranges:
        yield ()
        return
    for head in ranges[0]:
        for rest in _product(ranges[1:]):
            yield (head, *rest)


def replay_states(root: str, before: Tree, ops: list[Op], upto: int) -> list[Tree]:
    """Every directory tree under ``root`` that a power loss after ``ops[:upto]`` could leave.

    ``before`` is the tree as it was (durably) when the log began
    (:func:`snapshot_tree`), ``ops`` the log of a :class:`RecordingFS` made with
    ``record_data=True`` on paths under ``root``. The model, SQLite-style:

    - file data is durable once ``fsync`` ran on it; bytes written since are
      each kept, dropped or torn (the first half of them reached the disk);
    - a directory's entry changes (file creation, ``replace``, ``link``,
      ``unlink``, ``makedirs`` of a child) are durable once ``fsync_dir`` ran on
      that directory; of those made since, any prefix (in order) survives;
    - an op that failed (``error`` set) changed nothing; after a failed ``fsync``
      the file's un-synced bytes stay un-synced whatever a later ``fsync`` of it
      says (Linux may drop the dirty pages and mark them clean).

    Returns distinct trees (relative paths; directories map to None).
    """
    model = _Model(root, before)
    for op in ops[:upto]:
        model.apply(op)
    seen: set[tuple[tuple[str, Any], ...]] = set()
    out: list[Tree] = []
    for tree in model.outcomes():
        key = tuple(sorted(tree.items()))
        if key not in seen:
            seen.add(key)
            out.append(tree)
    return out


class DiskFull(FileOps):
    """The simplest fault: the disk fills up when a test sets ``full``; every write then fails."""

    full = False

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        if self.full:
            raise OSError(_errno.ENOSPC, "No space left on device (injected)")
        super().write(fd, data)
