"""The backend contract: SnapStore reaches storage only through ``store/backend.py``'s ``Backend``.

A toy backend written here (a dict of names to bytes, commit as a compare-and-swap of
the current object's version, no lock, no files) is registered with one line in
``snapmixin.store.BACKENDS`` and then passes a representative set of SnapStore
behaviours. That is the claim "adding a storage backend is one new module and one
selection line", checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import snapmixin.store as store_mod
from snapmixin import SnapStore
from snapmixin import cli as _cli
from snapmixin.errors import CorruptSnapshot, SeqRegression, SnapshotConflict, SnapshotNotFound
from snapmixin.store.backend import Backend, Buffer, Stale

_VERSIONS = itertools.count(1)


class MemoryBackend(Backend):
    """Generations in a dict: ``name -> (bytes, version)``. No lock: commit is conditional."""

    def __init__(self, location: str, objects: dict[str, tuple[bytes, int]]) -> None:
        self.location = location
        self.objects = objects
        #: called inside commit before the precondition is checked (tests race writers there)
        self.before_commit: Callable[[], None] | None = None
        self.commits = 0

    def _get(self, name: str) -> bytes:
        try:
            return self.objects[name][0]
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "no such object", f"{self.location}/{name}") from None

    def _put(self, name: str, data: bytes) -> None:
        self.objects[name] = (data, next(_VERSIONS))

    def read(self, name: str, limit: int | None = None) -> bytes:
        data = self._get(name)
        return data if limit is None else data[:limit]

    def size(self, name: str) -> int:
        return len(self._get(name))

    def read_tail(self, name: str, size: int) -> tuple[bytes, int]:
        data = self._get(name)
        return data[-size:], len(data)

    def identify(self, name: str) -> str:
        self._get(name)
        return f"version-{self.objects[name][1]}"

    def names(self) -> list[str]:
        if not self.objects:
            raise FileNotFoundError(errno.ENOENT, "no such prefix", self.location)
        return sorted({n.split("/", 1)[0] for n in self.objects})

    def kind(self, name: str | None = None) -> str | None:
        if name is None:
            return "dir" if self.objects else None
        if name in self.objects:
            return "file"
        return "dir" if any(n.startswith(name + "/") for n in self.objects) else None

    def exclusive(self, doing: str) -> Any:
        return contextlib.nullcontext()

    def current_tag(self) -> str | None:
        obj = self.objects.get("snapshot.json")
        return None if obj is None else str(obj[1])

    def commit(self, data: Buffer | Sequence[Buffer], *, expect_tag: str | None) -> None:
        if self.before_commit is not None:
            hook, self.before_commit = self.before_commit, None
            hook()
        body = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b"".join(data)
        now = self.current_tag()
        if now != expect_tag:  # the conditional write: If-Match / If-None-Match: *
            raise Stale(expect_tag, now)
        self._put("snapshot.json", body)
        self.commits += 1

    def keep_current(self, name: str) -> None:
        self._put(f"history/{name}", self._get("snapshot.json"))

    def keep_damaged(self, name: str) -> str | None:
        if "snapshot.json" not in self.objects:
            return None
        self.keep_current(name)
        return name

    def list_kept(self) -> list[str]:
        return [n.removeprefix("history/") for n in self.objects if n.startswith("history/")]

    def delete_kept(self, name: str) -> None:
        self._get(f"history/{name}")
        del self.objects[f"history/{name}"]


_BUCKETS: dict[str, dict[str, tuple[bytes, int]]] = {}
_OPENED: list[MemoryBackend] = []


def _open(location: str, fs: Any, lock_timeout: float | None) -> Backend:
    b = MemoryBackend(location, _BUCKETS.setdefault(location, {}))
    _OPENED.append(b)
    return b


@pytest.fixture(autouse=True)
def toy_scheme(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(store_mod.BACKENDS, "toy", _open)  # the one selection line
    _BUCKETS.clear()
    _OPENED.clear()
    yield
    _BUCKETS.clear()


def _bucket(location: str = "toy://b") -> dict[str, tuple[bytes, int]]:
    return _BUCKETS[location]


def _nothing_local(tmp_path: Path) -> None:
    """The toy stores nothing on disk (the tests run with tmp_path as the cwd)."""
    assert list(tmp_path.iterdir()) == []


def test_selected_by_scheme_and_round_trips(tmp_path: Path) -> None:
    s = SnapStore("toy://b")
    assert isinstance(s.backend, MemoryBackend)
    assert not s.exists()
    with pytest.raises(SnapshotNotFound, match="does not exist"):
        s.restore()
    info = s.create({"n": 1}, 5)
    assert s.exists()
    assert s.restore() == ({"n": 1}, 5)
    latest = s.latest()
    assert latest is not None and latest.generation == info.generation and latest.seq == 5
    assert set(_bucket()) == {"snapshot.json"}
    assert _bucket()["snapshot.json"][0].startswith(b'{\n  "format": "snapmixin",\n  "format_version": 2')
    assert asyncio.run(s.arestore()) == ({"n": 1}, 5)
    assert asyncio.run(s.acreate({"n": 2}, 6)).seq == 6
    assert SnapStore("toy://b").restore() == ({"n": 2}, 6)  # another store object, same place
    _nothing_local(tmp_path)


def test_history_and_keep_pruning() -> None:
    s = SnapStore("toy://b", keep=3)
    for seq in range(1, 6):
        s.create({"n": seq}, seq)
    assert [i.seq for i in s.history()] == [5, 4, 3]
    assert [seq for seq, _ in s.history_files()] == [4, 3]
    assert len([n for n in _bucket() if n.startswith("history/")]) == 2
    assert [c.seq for c in s.check_generations()] == [5, 4, 3]
    assert all(c.ok for c in s.check_generations())


def test_seq_rules_and_expect_conflicts() -> None:
    s = SnapStore("toy://b")
    first = s.create({"n": 1}, 10)
    with pytest.raises(SeqRegression):
        s.create({"n": 0}, 9)
    with pytest.raises(SnapshotConflict):
        s.create({"n": 99}, 10)  # the same seq with another state
    assert s.create({"n": 1}, 10).generation == first.generation  # the same state: nothing written
    with pytest.raises(SnapshotConflict):
        s.create({"n": 2}, 11, expect=None)  # "only if empty"
    second = s.create({"n": 2}, 11, expect=first.generation)
    with pytest.raises(SnapshotConflict):
        s.create({"n": 3}, 12, expect=first.generation)  # stale
    assert s.restore() == ({"n": 2}, 11)
    assert s.create({"n": 3}, 12, expect=second.generation).seq == 12


def test_a_writer_that_loses_the_compare_and_swap_gets_a_conflict() -> None:
    """No lock: a commit that lands between this writer's read and its write fences it."""
    s = SnapStore("toy://b", keep=2)
    base = s.create({"n": 1}, 1)
    other = SnapStore("toy://b")
    backend = s.backend
    assert isinstance(backend, MemoryBackend)
    backend.before_commit = lambda: other.create({"other": True}, 2) and None
    with pytest.raises(SnapshotConflict, match="another writer committed"):
        s.create({"n": 2}, 2, expect=base.generation)
    assert s.restore() == ({"other": True}, 2)  # the winner's state, whole
    # the loser's kept copy of the generation it read is gone again (history/ as it was)
    assert [i.seq for i in s.history()] == [2]


def test_fallback_on_a_damaged_current_and_replacing_it() -> None:
    s = SnapStore("toy://b", keep=2)
    s.create({"n": 1}, 1)
    s.create({"n": 2}, 2)
    data, version = _bucket()["snapshot.json"]
    _bucket()["snapshot.json"] = (data.replace(b'"n": 2', b'"n": 7'), version + 1000)
    with pytest.raises(CorruptSnapshot, match="checksum mismatch"):
        s.restore()
    assert s.latest() is not None  # the header still reads
    r = s.restore_generation(fallback=True)
    assert (r.state, r.info.seq, r.fell_back) == ({"n": 1}, 1, True)
    assert r.base == s.current()[1]
    info = s.commit_encoded(b'{"n":3}', 1, expect=r.base, replace_damaged=True)
    assert s.restore() == ({"n": 3}, info.seq)
    assert any(n.startswith("history/damaged-") for n in _bucket())


def test_a_missing_current_is_no_snapshot_and_history_is_no_seq_floor() -> None:
    s = SnapStore("toy://b", keep=3)
    s.create({"n": 1}, 1)
    s.create({"n": 2}, 2)
    del _bucket()["snapshot.json"]
    assert not s.exists()
    with pytest.raises(SnapshotNotFound, match="older generation"):
        s.restore()
    assert s.latest() is None
    s.create({"n": 0}, 0, expect=None)
    assert s.restore() == ({"n": 0}, 0)


def test_the_cli_works_on_the_toy_backend(capsys: pytest.CaptureFixture[str]) -> None:
    s = SnapStore("toy://b", keep=2)
    s.create({"n": 1}, 1)
    s.create({"n": 2}, 2)
    assert _cli.main(["verify", "toy://b"]) == 0
    assert _cli.main(["show", "toy://b"]) == 0
    out = capsys.readouterr().out
    assert "2 generations checked: 2 ok" in out and '"n": 2' in out


def test_the_facade_and_the_cli_reach_storage_only_through_the_backend() -> None:
    """No file-system call is left in store/__init__.py or cli.py (they would bypass a backend)."""
    root = Path(store_mod.__file__).parent.parent
    for rel in ("store/__init__.py", "cli.py"):
        text = (root / rel).read_text()
        used = set(re.findall(r"\bfsio\.(\w+)", text)) | set(re.findall(r"\bself\.fs\.(\w+)", text))
        assert used <= {"FileOps", "REAL"}, (rel, used)
        calls = re.findall(r"\bos\.(?:listdir|lstat|stat|scandir|unlink|rename)\(|(?<![.\w`])open\(", text)
        assert calls == [], (rel, calls)


def test_the_mixin_works_on_the_toy_backend(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    from snapmixin import Snapshottable

    @dataclass
    class Game(Snapshottable):
        score: int = 0
        items: list[str] = field(default_factory=list)

    g = Game.open("toy://b")
    g.score = 3
    g.items.append("sword")
    g.snapshot()
    again = Game.open("toy://b")
    assert (again.score, again.items) == (3, ["sword"])
    stale = Game.open("toy://b")
    again.score = 4
    again.snapshot()
    stale.score = 5
    with pytest.raises(SnapshotConflict):
        stale.snapshot()  # the generation it read is gone: fenced, not a lost update
    assert Game.open("toy://b").score == 4
    _nothing_local(tmp_path)


# (s3://, gs://, az:// and memory:// have a backend since issue 12: tests/test_objstore.py)
@pytest.mark.parametrize("url", ["ftp://bucket/prefix", "hdfs://b/p", "webdav://c/p", "file://x", "FTP://b/p"])
def test_a_url_without_a_backend_is_refused_not_written_as_a_directory(tmp_path: Path, url: str) -> None:
    from dataclasses import dataclass

    from snapmixin import Snapshottable

    @dataclass
    class G(Snapshottable):
        level: int = 1

    with pytest.raises(ValueError, match="no storage backend for") as e:
        SnapStore(url)
    assert url in str(e.value) and "directory path" in str(e.value)
    with pytest.raises(ValueError, match="no storage backend for"):
        G.open(url)
    assert list(tmp_path.iterdir()) == []  # nothing made in the cwd (no "s3:" directory)
