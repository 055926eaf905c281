"""Issue 10 §1-2 and issue 9 items 5, 9: no writer overwrites another silently, generation
identity and ``expect=``, ``snapshot(force=True)``, rollback and history by commit order,
``open(fallback=True)``, paths, and what a deleted ``snapshot.json`` means."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from snapmixin import Snapshottable, SnapStore, snapshot_every
from snapmixin.cli import main as cli_main
from snapmixin.codec import Codec
from snapmixin.errors import (
    CorruptSnapshot,
    InvalidSeq,
    SeqRegression,
    SnapError,
    SnapshotConflict,
    SnapshotNotFound,
)
from snapmixin.fsio import FileOps
from snapmixin.store import SEQ_MAX
from tests.support import files_no_lock as files


@snapshot_every(1)
@dataclass
class Bag(Snapshottable):
    items: list[str] = field(default_factory=list)


@dataclass
class Doc(Snapshottable):
    title: str = ""
    lines: list[str] = field(default_factory=list)


def on_disk(d: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((d / "snapshot.json").read_text("utf-8"))
    return doc




# -- §1: a stale writer gets SnapshotConflict ------------------------------------------------------


def test_the_issue_repro_a_stale_writer_that_mutated_more_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "g"
    a = Bag.open(d)
    b = Bag.open(d)
    a.items.append("a1")
    a.items.append("a2")  # a writes seq 1, then seq 2
    assert on_disk(d)["seq"] == 2
    before = files(d)
    errors = []
    for i in range(3):  # b: seq 1, 2, 3 (each an automatic snapshot), then an explicit one
        with pytest.raises(SnapshotConflict) as e:
            b.items.append(f"b{i}")
        errors.append(e.value)
    with pytest.raises(SnapshotConflict):
        b.items.extend([])  # nothing to extend, but a mutation: seq 4
    with pytest.raises(SnapshotConflict) as e:
        b.snapshot()
    assert files(d) == before  # nothing written, a's items intact
    assert b.items == ["b0", "b1", "b2"] and b.snapshot_unsaved == b.snapshot_seq == 4
    assert "seq 4" in str(e.value)
    msg = str(e.value)
    assert str(d / "snapshot.json") in msg and "Reopen" in msg and "force=True" in msg
    assert e.value.current == SnapStore(d).latest().generation  # type: ignore[union-attr]
    assert Bag.open(d).items == ["a1", "a2"]


def test_two_objects_saving_the_same_seq_the_second_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a, b = Doc.open(d), Doc.open(d)
    a.title = "from a"
    b.title = "from b"
    assert a.snapshot() == 1
    with pytest.raises(SnapshotConflict):
        b.snapshot()
    assert on_disk(d)["state"]["title"] == "from a"


def test_a_reopened_writer_continues_and_force_overwrites_keeping_the_replaced_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "s"
    a, b = Doc.open(d), Doc.open(d)
    a.lines.append("a")
    a.snapshot()
    b.lines.append("b")
    with pytest.raises(SnapshotConflict):
        b.snapshot()
    assert b.snapshot_unsaved == 1
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        assert b.snapshot(force=True) == 1  # keep=1, yet what it replaced is kept in history/
    assert on_disk(d)["state"]["lines"] == ["b"] and b.snapshot_unsaved == 0
    kept = list((d / "history").iterdir())
    assert len(kept) == 1 and json.loads(kept[0].read_text())["state"]["lines"] == ["a"]
    assert any("force=True" in r.getMessage() for r in caplog.records)
    # b is now the base: its next snapshot commits; a is the stale one
    b.lines.append("b2")
    assert b.snapshot() == 2
    a.lines.append("a2")
    with pytest.raises(SnapshotConflict):
        a.snapshot()
    c = Doc.open(d)  # reopening is the way back
    c.lines.append("c")
    assert c.snapshot() == 3 and Doc.open(d).lines == ["b", "b2", "c"]


def test_bind_takes_the_current_generation_as_the_one_to_replace(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d).create(Doc(title="stored"), 0)
    doc = Doc(title="mine").bind(d)  # nothing read but the current generation's identity
    other = Doc.open(d)
    doc.title = "mine, changed"
    assert doc.snapshot() == 1  # replaces the generation that was there at bind()
    other.title = "other"
    with pytest.raises(SnapshotConflict):
        other.snapshot()
    fresh = Doc(title="late").bind(d)
    SnapStore(d).create(Doc(title="a third writer"), 5)  # commits after that bind()
    fresh.title = "late, changed"
    with pytest.raises(SnapshotConflict):
        fresh.snapshot()
    assert Doc.open(d).title == "a third writer"


def test_snapshot_with_nothing_unsaved_writes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "s"
    doc = Doc.open(d)
    assert doc.snapshot() == 0  # a fresh store: the object is written once, so the store holds it
    doc.title = "t"
    assert doc.snapshot() == 1
    before = files(d)
    st = os.stat(d / "snapshot.json")
    assert doc.snapshot() == 1 and doc.snapshot_unsaved == 0
    again = Doc.open(d)
    assert again.snapshot() == 1
    assert asyncio.run(again.asnapshot()) == 1
    assert files(d) == before and os.stat(d / "snapshot.json").st_ino == st.st_ino


def test_snapshot_unsaved_counts_mutations_not_yet_saved(tmp_path: Path) -> None:
    doc = Doc.open(tmp_path / "s")
    assert doc.snapshot_unsaved == 0
    doc.title = "a"
    doc.lines.append("x")
    assert doc.snapshot_unsaved == 2
    with doc.snapshot_batch():
        doc.lines.append("y")
        doc.lines.append("z")
        assert doc.snapshot_unsaved == 3
    assert doc.snapshot_unsaved == 3
    doc.snapshot()
    assert doc.snapshot_unsaved == 0 and doc.snapshot_seq == 3


def test_threads_with_their_own_objects_exactly_one_wins(tmp_path: Path) -> None:
    d = tmp_path / "s"
    Doc.open(d).snapshot()  # seq 0: every object below restores this generation
    objs = [Doc.open(SnapStore(d, lock_timeout=10)) for _ in range(8)]
    for i, o in enumerate(objs):
        o.title = f"writer {i}"
        o.lines.extend([str(i)] * (i + 1))
    outcome: list[object] = [None] * len(objs)
    start = threading.Barrier(len(objs))

    def run(i: int) -> None:
        start.wait()
        try:
            outcome[i] = objs[i].snapshot()
        except SnapError as e:
            outcome[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(objs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, r in enumerate(outcome) if isinstance(r, int)]
    assert len(winners) == 1, outcome
    assert all(isinstance(r, (SnapshotConflict, SeqRegression)) for r in outcome if not isinstance(r, int))
    w = winners[0]
    assert Doc.open(d) == objs[w]  # one writer's whole state


def _process_writer(d: str, i: int, barrier: Any, results: Any) -> None:
    doc = Doc.open(SnapStore(d, lock_timeout=60))
    doc.title = f"process {i}"
    doc.lines.extend([str(i)] * (i + 1))
    barrier.wait()
    try:
        results.put((i, doc.snapshot()))
    except SnapError as e:
        results.put((i, type(e).__name__))


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_processes_with_their_own_objects_exactly_one_wins(tmp_path: Path) -> None:
    d = tmp_path / "s"
    Doc.open(d).snapshot()
    ctx = multiprocessing.get_context("fork")
    n = 4
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_process_writer, args=(os.fspath(d), i, barrier, results))
             for i in range(n)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=60) for _ in range(n))
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    winners = [i for i, r in got.items() if isinstance(r, int)]
    assert len(winners) == 1 and set(got.values()) - {got[winners[0]]} <= {"SnapshotConflict"}, got
    w = winners[0]
    assert Doc.open(d) == Doc(title=f"process {w}", lines=[str(w)] * (w + 1))


# -- SnapStore: generation identity and expect= --------------------------------------------------


def test_create_with_expect(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    with pytest.raises(SnapshotConflict):
        store.create({"n": 0}, 0, expect="0" * 32)  # nothing there: a token cannot match
    assert not (d / "snapshot.json").exists()
    first = store.create({"n": 1}, 1, expect=None)
    assert first.generation and first.generation == store.latest().generation  # type: ignore[union-attr]
    with pytest.raises(SnapshotConflict) as e:
        store.create({"n": 9}, 9, expect=None)  # the store is not empty any more
    assert e.value.expected is None and e.value.current == first.generation
    second = store.create({"n": 2}, 2, expect=first.generation)
    before = files(d)
    with pytest.raises(SnapshotConflict):
        store.create({"n": 3}, 3, expect=first.generation)  # stale
    with pytest.raises(SnapshotConflict):
        asyncio.run(store.acreate({"n": 3}, 3, expect=first.generation))
    assert files(d) == before
    third = asyncio.run(store.acreate({"n": 3}, 3, expect=second.generation))
    assert store.restore() == ({"n": 3}, 3)
    assert [i.generation for i in store.history()] == [third.generation, second.generation,
                                                       first.generation]
    with pytest.raises(TypeError):
        store.create({"n": 4}, 4, expect=3)  # type: ignore[arg-type]


def test_equal_seq_conflicts_unless_identical(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    store.create({"n": 1}, 1)
    info = store.create({"n": 2}, 2)
    before = files(d)
    with pytest.raises(SnapshotConflict):
        store.create({"n": "other"}, 2)
    assert files(d) == before  # the first one's state is where it was, nothing added
    assert store.create({"n": 2}, 2) == info and files(d) == before  # identical: a no-op
    with pytest.raises(SeqRegression):
        store.create({"n": 1}, 1)


def test_two_commits_never_share_a_generation_or_a_history_name(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = datetime(2026, 1, 1, tzinfo=timezone.utc)

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return frozen  # a clock that does not move (or moved back)

    monkeypatch.setattr("snapmixin.store.datetime", Clock)
    d = tmp_path / "s"
    store = SnapStore(d, keep=10)
    infos = [store.create({"n": 1}, 1)]
    for _ in range(3):  # the same seq and state, forced anew: four distinct commits
        infos.append(store._commit(store.encode({"n": 1}), 1, force=True))
    gens = {i.generation for i in infos}
    assert len(gens) == 4
    assert len(os.listdir(d / "history")) == 3
    assert [i.generation for i in store.history()] == [i.generation for i in reversed(infos)]


def test_a_seq_beyond_the_range_is_refused_on_the_mixin_path(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d).create(Doc(title="max"), SEQ_MAX)
    before = files(d)
    doc = Doc.open(d)
    assert doc.snapshot_seq == SEQ_MAX
    doc.title = "one more"
    with pytest.raises(InvalidSeq):
        doc.snapshot()
    assert files(d) == before and Doc.open(d).title == "max"
    with pytest.raises(InvalidSeq):
        SnapStore(d)._commit(b"{}", SEQ_MAX + 1)


# -- a cancelled asnapshot() -----------------------------------------------------------------------


class GateFS(FileOps):
    """Holds the first snapshot write until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.landed = threading.Event()
        self.armed = True

    def replace(self, src: str, dst: str) -> None:
        super().replace(src, dst)
        if dst.endswith("snapshot.json"):
            self.landed.set()

    def write(self, fd: int, data: bytes | bytearray | memoryview) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(30), "the test never released the write"
        super().write(fd, data)


@snapshot_every(2)
@dataclass
class Pair(Snapshottable):
    items: list[str] = field(default_factory=list)


@pytest.mark.parametrize("release", ["before", "concurrently"])
def test_a_cancelled_asnapshot_neither_locks_out_nor_conflicts_the_next_mutation(
        tmp_path: Path, release: str) -> None:
    d = tmp_path / "s"
    fs = GateFS()
    obj = Pair.open(SnapStore(d, fs=fs))
    obj.items.append("x")  # seq 1, not due yet (every 2)

    async def main() -> None:
        # The write is held by the gate: wait_for times out and cancels the awaiting task,
        # while the write itself goes on in its worker thread.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(obj.asnapshot(), 0.05)
        assert await asyncio.to_thread(fs.entered.wait, 10)  # the write goes on, nobody awaits it
        if release == "before":
            fs.release.set()
            await asyncio.to_thread(fs.landed.wait, 10)  # it commits while no one awaits it
        else:
            threading.Thread(target=fs.release.set).start()
        obj.items.append("z")  # seq 2, due: waits for the write in flight, then commits over it
        assert on_disk(d)["state"]["items"] == ["x", "z"] and on_disk(d)["seq"] == 2
        assert obj.snapshot_unsaved == 0

    asyncio.run(main())
    obj.items.append("w")
    obj.items.append("v")  # seq 4: the next automatic snapshot commits too
    assert on_disk(d)["seq"] == 4


# -- §2: rollback and history ordered by commit --------------------------------------------------


def cli(*argv: str) -> int:
    return cli_main(list(argv))


def test_the_issue_repro_rollback_then_saves_lose_nothing(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=10)
    for s in range(10, 15):
        store.create({"v": f"first {s}"}, s)
    assert cli("rollback", str(d), "--seq", "12") == 0
    assert "undoes this" in capsys.readouterr().out
    assert store.restore() == ({"v": "first 12"}, 12)
    store.create({"v": "second 13"}, 13)
    store.create({"v": "second 14"}, 14)
    states = [SnapStore(d)._restore_gen(None, fallback=False) for _ in range(1)]
    assert states[0].state == {"v": "second 14"}
    # every generation is still there, in commit order
    kept = [(i.seq, json.loads(i.path.read_text())["state"]["v"]) for i in store.history()]
    assert kept == [(14, "second 14"), (13, "second 13"), (12, "first 12"), (14, "first 14"),
                    (13, "first 13"), (12, "first 12"), (11, "first 11"), (10, "first 10")]
    names = os.listdir(d / "history")
    assert len(names) == len(set(names)) == 7


def test_rollback_is_undoable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=10)
    for s in (1, 2, 3):
        store.create({"v": s}, s)
    assert cli("rollback", str(d), "--seq", "1") == 0
    assert store.restore() == ({"v": 1}, 1)
    # The program goes on from seq 1 and saves 2 and 3 again: the first 3 is still kept...
    store.create({"v": "2b"}, 2)
    store.create({"v": "3b"}, 3)
    firsts = [i for i in store.history()
              if i.seq == 3 and json.loads(i.path.read_text())["state"]["v"] == 3]
    assert len(firsts) == 1
    capsys.readouterr()
    assert cli("rollback", str(d), "--seq", "3") == 0  # the current one is seq 3: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    # ...and the rollback can still be undone, naming the file
    assert cli("rollback", str(d), "--seq", "3", "--file", firsts[0].path.name) == 0
    assert store.restore() == ({"v": 3}, 3)
    assert {json.loads(i.path.read_text())["state"]["v"] for i in store.history()} >= {1, 2, 3, "2b", "3b"}
    assert cli("rollback", str(d), "--seq", "3") == 0  # back to the generation rolled away from
    assert store.restore() == ({"v": 3}, 3)
    assert cli("rollback", str(d), "--seq", "1") == 0
    assert store.restore() == ({"v": 1}, 1)


def test_pruning_and_fallback_follow_commit_order_after_a_rollback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for s in (5, 6, 7):
        store.create({"v": s}, s)
    assert cli("rollback", str(d), "--seq", "5") == 0
    store.create({"v": "6b"}, 6)  # keep=3: prunes by age, not by seq
    assert [i.seq for i in store.history()] == [6, 5, 7]
    store.create({"v": "7b"}, 7)
    assert [(i.seq, json.loads(i.path.read_text())["state"]["v"]) for i in store.history()] == [
        (7, "7b"), (6, "6b"), (5, 5)]
    (d / "snapshot.json").write_text("{")  # damage: fallback takes the latest commit, 6b
    assert store.restore(fallback=True) == ({"v": "6b"}, 6)


def test_rollback_to_the_current_seq_repairs_a_damaged_current(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=4)
    for s in (1, 2):
        store.create({"v": s}, s)
    assert cli("rollback", str(d), "--seq", "1") == 0
    assert cli("rollback", str(d), "--seq", "2") == 0  # current: seq 2 again; history holds seq 2 too
    cur = d / "snapshot.json"
    cur.write_bytes(cur.read_bytes().replace(b'"v": 2', b'"v": 9'))  # damaged state, header intact
    with pytest.raises(CorruptSnapshot):
        store.restore()
    capsys.readouterr()
    assert cli("rollback", str(d), "--seq", "2") == 0
    out, err = capsys.readouterr()
    assert "nothing to do" not in out and "damaged" in err
    assert store.restore() == ({"v": 2}, 2)
    assert any(n.startswith("damaged-") for n in os.listdir(d / "history"))


def test_rollback_does_not_overwrite_a_writer_that_commits_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for s in (1, 2):
        store.create({"v": s}, s)
    real = SnapStore._commit

    def racing(self: SnapStore, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("allow_regression"):  # the rollback's own commit: a program saves first
            real(SnapStore(d, keep=3), b'{"v":"program"}', 3)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SnapStore, "_commit", racing)
    assert cli("rollback", str(d), "--seq", "1") == 1
    assert "another writer committed" in capsys.readouterr().err
    assert store.restore() == ({"v": "program"}, 3)


# -- a deleted snapshot.json -------------------------------------------------------------------------


def test_a_deleted_snapshot_json_means_no_snapshot(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for s in (3, 4, 5):
        store.create({"v": s}, s)
    (d / "snapshot.json").unlink()
    assert (d / "snapshot.seq").read_text() == "5\n"
    assert not store.exists() and store.latest() is None
    with pytest.raises(SnapshotNotFound, match="rollback"):
        store.restore()
    with pytest.raises(SnapshotNotFound):
        store.restore(fallback=True)
    assert Doc.open(d) == Doc()  # a fresh start
    store.create({"v": "new"}, 1)  # neither history/ nor snapshot.seq is a seq floor
    assert store.restore() == ({"v": "new"}, 1)
    assert [i.seq for i in store.history()] == [1, 4, 3]  # the old ones are older commits
    assert cli("rollback", str(d), "--seq", "4") == 0  # and can still be brought back
    assert store.restore() == ({"v": 4}, 4)


# -- EIO on an intact snapshot.json --------------------------------------------------------------------


class EIOOnSnapshot(FileOps):
    def read(self, fd: int, size: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/snapshot.json"):
            raise OSError(errno.EIO, "Input/output error (injected)")
        return super().read(fd, size)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_fallback_raises_an_io_error_rather_than_going_back(tmp_path: Path) -> None:
    d = tmp_path / "s"
    for s in (1, 2):
        SnapStore(d, keep=2).create({"v": s}, s)
    with pytest.raises(SnapError) as e:
        SnapStore(d, keep=2, fs=EIOOnSnapshot()).restore(fallback=True)
    assert not isinstance(e.value, CorruptSnapshot) and "I/O error" in str(e.value)
    assert SnapStore(d).restore() == ({"v": 2}, 2)


# -- open(): fallback, paths, required fields, the store's codec -----------------------------------------


def test_open_with_fallback_restores_the_newest_intact_and_the_next_snapshot_works(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    for t in ("one", "two", "three"):
        doc = Doc.open(store)
        doc.title = t
        doc.snapshot()
    damaged = b'{"format": "snapmixin", garbage'
    (d / "snapshot.json").write_bytes(damaged)
    with pytest.raises(CorruptSnapshot):
        Doc.open(d)
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        doc = Doc.open(store, fallback=True)
    assert doc.title == "two" and doc.snapshot_seq == 2
    assert any("older generation" in r.getMessage() for r in caplog.records)
    doc.lines.append("after")
    assert doc.snapshot() == 3  # not refused as stale nor as a regression
    again = Doc.open(d)
    assert (again.title, again.lines, again.snapshot_seq) == ("two", ["after"], 3)
    evidence = [p for p in (d / "history").iterdir() if p.name.startswith("damaged-")]
    assert len(evidence) == 1 and evidence[0].read_bytes() == damaged


def test_a_second_fallback_writer_conflicts_with_the_first(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    store.create(Doc(title="one"), 1)
    store.create(Doc(title="two"), 2)
    (d / "snapshot.json").write_text("{")
    a = Doc.open(d, fallback=True)
    b = Doc.open(d, fallback=True)
    a.title = "a"
    a.snapshot()
    b.title = "b"
    with pytest.raises(SnapshotConflict):
        b.snapshot()
    assert Doc.open(d).title == "a"


def test_tilde_is_expanded(tmp_path: Path) -> None:
    doc = Doc.open("~/saves/slot1")
    doc.title = "home"
    doc.snapshot()
    assert (tmp_path / "saves" / "slot1" / "snapshot.json").exists()
    assert not (tmp_path / "~").exists()
    assert SnapStore("~/saves/slot1").restore(Doc)[0].title == "home"
    assert Doc.open(SnapStore("~/saves/slot1")).title == "home"


@dataclass
class Needs(Snapshottable):
    name: str
    n: int = 0


def test_open_on_an_empty_directory_with_required_fields_says_pass_default(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="default="):
        Needs.open(tmp_path / "empty")
    obj = Needs.open(tmp_path / "empty", default=lambda: Needs("x"))
    assert obj.name == "x"


class Point:
    """A type only PointCodec understands (no adapter of the library handles it)."""

    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


@dataclass
class Sim(Snapshottable):
    at: Point = field(default_factory=lambda: Point(0, 0))


class PointCodec(Codec):
    def to_builtins(self, obj: Any) -> Any:
        return {"at": [obj.at.x, obj.at.y]}

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return Sim(at=Point(*value["at"]))


def test_open_with_a_store_codec_skips_the_default_adapters_check(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "sim", codec=PointCodec())
    sim = Sim.open(store)
    sim.at = Point(3, 4)
    assert sim.snapshot() == 1
    assert Sim.open(SnapStore(tmp_path / "sim", codec=PointCodec())).at == Point(3, 4)
