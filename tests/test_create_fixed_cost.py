"""The fixed cost of a small ``create()`` (issue 13): what it does on every call stays exact.

Listing a directory (``FileOps.listdir``: the sweep of dead writers' temp files, on every call)
leaves the directory's access time alone where the platform allows it (``O_NOATIME``), so a
commit does not make the next fsync commit one more metadata change; and it lists, fails and
cleans up exactly as ``os.listdir`` does otherwise. A create() takes six signal deferrals. The
paths a commit joins are the ones ``os.path.join`` gives.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from snapmixin import SnapStore, fsio
from snapmixin.fsio import FileOps
from tests.support import count_deferrals

FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
NOATIME = pytest.mark.skipif(not getattr(os, "O_NOATIME", 0), reason="O_NOATIME is Linux's")


def _make_atime_stale(d: Path) -> int:
    """Set ``d``'s access time an hour before its last change (so that under ``relatime``, the
    usual mount option, reading the directory would update it); returns it."""
    st = os.stat(d)
    atime = st.st_mtime_ns - 3600 * 10**9
    os.utime(d, ns=(atime, st.st_mtime_ns))
    return atime


@NOATIME
def test_create_leaves_the_directorys_access_time_alone(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create({"n": 1}, 1)
    atime = _make_atime_stale(d)
    store.create({"n": 2}, 2)  # lists the directory (the temp-file sweep), renames into it
    assert os.stat(d).st_atime_ns == atime
    assert store.restore() == ({"n": 2}, 2)


@NOATIME
def test_a_listing_leaves_the_access_time_alone(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"")
    atime = _make_atime_stale(tmp_path)
    assert FileOps().listdir(str(tmp_path)) == ["a"]
    assert os.stat(tmp_path).st_atime_ns == atime


def test_a_listing_where_o_noatime_is_refused_lists_as_usual(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``O_NOATIME`` is refused (EPERM) on a directory another user owns: listed the usual way."""
    for name in ("b", "a", ".x"):
        (tmp_path / name).write_bytes(b"")
    real_open = os.open
    refused: list[str] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if flags & getattr(os, "O_NOATIME", 0):
            refused.append(path)
            raise PermissionError(errno.EPERM, "Operation not permitted", path)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    fds = len(os.listdir(FD_DIR))
    assert sorted(FileOps().listdir(str(tmp_path))) == [".x", "a", "b"]
    assert refused == ([str(tmp_path)] if getattr(os, "O_NOATIME", 0) else [])
    store = SnapStore(tmp_path / "s")
    store.create({"n": 1}, 1)
    assert store.create({"n": 2}, 2).seq == 2
    assert len(os.listdir(FD_DIR)) == fds


def test_a_listing_fails_as_os_listdir_does_and_leaks_no_descriptor(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    fds = len(os.listdir(FD_DIR))
    with pytest.raises(FileNotFoundError) as missing:
        FileOps().listdir(str(tmp_path / "missing"))
    assert missing.value.filename == str(tmp_path / "missing")
    with pytest.raises(NotADirectoryError) as file:
        FileOps().listdir(str(tmp_path / "file"))
    assert file.value.filename == str(tmp_path / "file")
    os.symlink(tmp_path / "dir", tmp_path / "link")  # a symlink to a directory is followed
    (tmp_path / "dir" / "inside").write_bytes(b"")
    assert FileOps().listdir(str(tmp_path / "link")) == ["inside"]
    assert len(os.listdir(FD_DIR)) == fds
    assert not fsio._deferring


def test_a_create_takes_six_signal_deferrals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep of temp files (its listing defers signal handlers on its own) and the read of
    the current generation's trailer run in one deferral; a create() takes six: the lock, those
    two steps, the temp file, the directory fsync, ``snapshot.seq``, the release (Windows has
    no directory fsync)."""
    store = SnapStore(tmp_path / "s")
    store.create({"n": 1}, 1)
    (tmp_path / "s" / f".snapshot.json.{'0' * 16}.tmp").write_bytes(b"{")  # a dead writer's
    deferrals = count_deferrals(monkeypatch)
    store.create({"n": 2}, 2)
    assert deferrals[0] == (5 if os.name == "nt" else 6)
    assert sorted(os.listdir(tmp_path / "s")) == [".lock", "snapshot.json", "snapshot.seq"]
    deferrals[0] = 0
    with store.backend.quick_steps():
        store.backend.cleanup()
        assert store.latest() is not None
    assert deferrals[0] == 1


def test_a_create_with_history_adds_one_deferral(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With keep=3 a create() also archives the current generation (its history/ fsync defers
    on its own) and prunes; the seq file and the pruning's listing and deletions share one
    deferral: seven in all (five on Windows), whether it prunes or not. What it keeps is the rule's."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    store.create({"n": 0}, 0)
    deferrals = count_deferrals(monkeypatch)
    for seq in range(1, 6):
        deferrals[0] = 0
        store.create({"n": seq}, seq)
        assert deferrals[0] == (5 if os.name == "nt" else 7), seq  # (no directory fsync there)
        assert [i.seq for i in store.history()] == list(range(seq, max(seq - 3, -1), -1))
    assert (d / "snapshot.seq").read_bytes() == b"5\n"


@pytest.mark.parametrize(("directory", "name"), [
    ("/tmp/s", "snapshot.json"), ("/tmp/s/", "snapshot.json"), ("/", "snapshot.json"),
    ("", "snapshot.json"), ("rel/dir", ".snapshot.json.0123456789abcdef.tmp"),
    ("/tmp/s", "/abs/name"), ("/tmp/s", ""), ("//", "x"), ("a//", "b")])
def test_the_paths_a_commit_joins_are_os_path_joins(directory: str, name: str) -> None:
    assert fsio._join(directory, name) == os.path.join(directory, name)

