"""Concurrent writers (issue 6, part 4): four processes and eight threads racing ``create()``.

Twelve writers (four forked processes, eight threads of this process, each with
its own ``SnapStore`` on one directory) take seqs from one shared, increasing
counter and call ``create()``; readers in a thread and a process restore the
directory in a loop meanwhile. Checks:

- the file always parses and its checksum holds: no reader ever gets an error,
  and every state read is whole (each state carries its own seq and writer, and a
  body derived from both, so a mix of two writes is visible);
- every committed seq is visible, in order: ``history/`` (keep large enough to
  hold them all) lists exactly the seqs whose ``create()`` returned, and each
  reader sees the seq only go up;
- the losers get ``StoreLocked`` (``lock_timeout=0``), or wait and then succeed
  or get ``SeqRegression`` (a writer that took a lower seq and lost the race);
  nothing else;
- a lock held by a process killed with SIGKILL does not block: the kernel drops
  the ``flock`` with the process.

Optimistic concurrency (issue 10): sixteen writers (twelve threads, four
processes), each with its own ``Snapshottable`` object or its own ``SnapStore``
using ``create(..., expect=<generation>)``, all start from one generation and
race: every kept generation is its predecessor plus one entry (exactly one
winner per generation), the losers get ``SnapshotConflict``, every commit that
returned is kept (nothing silently overwritten). Also: tasks of one event loop
wait for each other instead of getting ``StoreLocked``, and the two repros of a
stale object overwriting a fresher one, end to end.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from snapmixin import Snapshottable, SnapStore
from snapmixin.errors import SeqRegression, SnapError, SnapshotConflict, SnapshotNotFound, StoreLocked
from snapmixin.fsio import FileOps, is_temp_name
from snapmixin.store import SnapshotInfo

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork, flock and SIGKILL")

CTX = mp.get_context("fork")
PROCESSES = 4
THREADS = 8
ATTEMPTS = 30  # per writer


def state_for(seq: int, writer: str) -> dict[str, Any]:
    return {"seq": seq, "writer": writer, "body": [f"{writer}:{seq}:{i}" for i in range(150)]}


def whole(state: Any, seq: int) -> bool:
    return (isinstance(state, dict) and state.get("seq") == seq
            and state == state_for(seq, state.get("writer", "?")))


class Shared:
    """A seq counter shared by processes and threads."""

    def __init__(self) -> None:
        self.value = CTX.Value("q", 0)

    def next(self) -> int:
        with self.value.get_lock():
            self.value.value += 1
            return int(self.value.value)


def writer(directory: str, name: str, shared: Shared, lock_timeout: float | None,
           out: str | None, start: Any) -> dict[str, Any]:
    """Run ATTEMPTS creates; return (and write to ``out``) what happened to each."""
    store = SnapStore(directory, keep=10_000, lock_timeout=lock_timeout)
    result: dict[str, Any] = {"committed": [], "locked": 0, "regression": 0, "other": []}
    start.wait()
    for _ in range(ATTEMPTS):
        seq = shared.next()
        try:
            info = store.create(state_for(seq, name), seq)
            assert info.seq == seq
            result["committed"].append(seq)
        except StoreLocked:
            result["locked"] += 1
        except SeqRegression as e:
            assert e.offered == seq and e.stored > seq
            result["regression"] += 1
        except BaseException as e:  # anything else is a failure, reported to the parent
            result["other"].append(f"{type(e).__name__}: {e}")
    if out is not None:
        Path(out).write_text(json.dumps(result))
    return result


def _process_writer(directory: str, name: str, shared: Shared, lock_timeout: float | None, out: str,
                    start: Any) -> None:
    try:
        writer(directory, name, shared, lock_timeout, out, start)
    finally:
        os._exit(0)


def reader(directory: str, stop: Any, out: str | None) -> dict[str, Any]:
    """Restore in a loop until ``stop``: every read must be whole, and the seq must never go down."""
    store = SnapStore(directory)
    seen: list[int] = []
    errors: list[str] = []
    while not stop.is_set():
        try:
            state, seq = store.restore()
        except SnapshotNotFound as e:
            if seen:  # once there, the snapshot never goes away
                errors.append(f"{type(e).__name__}: {e}")
            continue
        except SnapError as e:
            errors.append(f"{type(e).__name__}: {e}")
            continue
        if not whole(state, seq):
            errors.append(f"seq {seq}: state is not whole: {str(state)[:120]}")
        if seen and seq < seen[-1]:
            errors.append(f"seq went down: {seq} after {seen[-1]}")
        if not seen or seq != seen[-1]:
            seen.append(seq)
    result = {"seen": seen, "errors": errors}
    if out is not None:
        Path(out).write_text(json.dumps(result))
    return result


def _process_reader(directory: str, stop: Any, out: str) -> None:
    try:
        reader(directory, stop, out)
    finally:
        os._exit(0)


def race(tmp_path: Path, lock_timeout: float | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    d = tmp_path / "store"
    d.mkdir()
    shared = Shared()
    start = CTX.Event()
    stop = CTX.Event()
    procs = []
    for p in range(PROCESSES):
        out = str(tmp_path / f"proc{p}.json")
        procs.append((CTX.Process(target=_process_writer,
                                  args=(str(d), f"proc{p}", shared, lock_timeout, out, start)), out))
    rout = str(tmp_path / "reader-proc.json")
    rproc = CTX.Process(target=_process_reader, args=(str(d), stop, rout))
    # Fork everything before starting any thread here (fork and threads do not mix).
    for proc, _ in procs:
        proc.start()
    rproc.start()
    results: list[dict[str, Any]] = []
    readers: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        writer(str(d), f"thread{i}", shared, lock_timeout, None, start))) for i in range(THREADS)]
    rthread = threading.Thread(target=lambda: readers.append(reader(str(d), stop, None)))
    for t in threads:
        t.start()
    rthread.start()
    start.set()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a writer thread hung"
    for proc, out in procs:
        proc.join(120)
        assert proc.exitcode == 0, f"writer process exit code {proc.exitcode}"
        results.append(json.loads(Path(out).read_text()))
    stop.set()
    rthread.join(60)
    rproc.join(60)
    assert not rthread.is_alive() and rproc.exitcode == 0
    readers.append(json.loads(Path(rout).read_text()))
    return results, readers


def check(tmp_path: Path, results: list[dict[str, Any]], readers: list[dict[str, Any]]) -> Counter[str]:
    d = tmp_path / "store"
    assert len(results) == PROCESSES + THREADS
    others = [o for r in results for o in r["other"]]
    assert not others, others
    committed = sorted(s for r in results for s in r["committed"])
    assert len(committed) == len(set(committed))
    store = SnapStore(d, keep=10_000)
    state, seq = store.restore()
    assert committed and seq == committed[-1] and whole(state, seq)
    # Every committed seq is kept, in order, and nothing that was refused got in.
    hist = [i.seq for i in store.history()]
    assert hist == sorted(committed, reverse=True)
    for info in store.history():  # each generation whole, checksum verified, its own seq inside
        gen = store._read(str(info.path), verify=True)
        assert gen.info.seq == info.seq and whole(json.loads(gen.state), info.seq)
    for r in readers:
        assert not r["errors"], r["errors"][:10]
        assert r["seen"] == sorted(r["seen"])
        assert set(r["seen"]) <= set(committed)
    assert not [n for n in os.listdir(d) if is_temp_name(n)]
    tally: Counter[str] = Counter()
    for r in results:
        tally["committed"] += len(r["committed"])
        tally["locked"] += r["locked"]
        tally["regression"] += r["regression"]
    assert sum(tally.values()) == (PROCESSES + THREADS) * ATTEMPTS
    return tally


def test_race_losers_get_store_locked(tmp_path: Path) -> None:
    results, readers = race(tmp_path, lock_timeout=0)
    tally = check(tmp_path, results, readers)
    print(f"\nrace (lock_timeout=0): {dict(tally)}")
    assert tally["committed"] >= 1
    assert tally["locked"] >= 1, tally  # twelve writers on one lock: some lose


def test_race_with_lock_timeout_waits(tmp_path: Path) -> None:
    results, readers = race(tmp_path, lock_timeout=30)
    tally = check(tmp_path, results, readers)
    print(f"\nrace (lock_timeout=30): {dict(tally)}")
    assert tally["locked"] == 0, tally  # everyone waited for its turn
    # A writer that waited with an older seq than the one committed meanwhile gets SeqRegression.
    assert tally["committed"] + tally["regression"] == (PROCESSES + THREADS) * ATTEMPTS


# -- a lock left by a killed process -------------------------------------------------------------

class _StallAfterLock(FileOps):
    """In the child: take the lock, tell the parent, then block for ever (until SIGKILL)."""

    def __init__(self, ready_w: int, block_r: int) -> None:
        self.ready_w, self.block_r = ready_w, block_r

    def lock(self, path: str, timeout: float | None) -> int:
        fd = super().lock(path, timeout)
        os.write(self.ready_w, b"L")
        os.read(self.block_r, 1)  # never answered: the parent kills us here
        return fd


def _hold_lock_and_stall(directory: str, ready_w: int, block_r: int) -> None:
    try:
        SnapStore(directory, fs=_StallAfterLock(ready_w, block_r)).create({"never": True}, 99)
    finally:
        os._exit(0)


@pytest.mark.parametrize("waiting", ["after-kill", "during-kill"])
def test_lock_of_a_killed_process_does_not_block(tmp_path: Path, waiting: str) -> None:
    d = tmp_path / "store"
    SnapStore(d).create({"v": 1}, 1)
    ready_r, ready_w = os.pipe()
    block_r, block_w = os.pipe()
    child = CTX.Process(target=_hold_lock_and_stall, args=(str(d), ready_w, block_r))
    child.start()
    try:
        assert os.read(ready_r, 1) == b"L"  # the child holds the lock, mid-create()
        with pytest.raises(StoreLocked):
            SnapStore(d).create({"v": 2}, 2)
        with pytest.raises(StoreLocked, match="after waiting"):
            SnapStore(d, lock_timeout=0.05).create({"v": 2}, 2)
        waiter: dict[str, Any] = {}
        t = None
        if waiting == "during-kill":  # a writer already waiting (for ever) gets the lock after the kill
            def wait_forever() -> None:
                t0 = time.monotonic()
                waiter["info"] = SnapStore(d, lock_timeout=None).create({"v": 3}, 3)
                waiter["waited"] = time.monotonic() - t0

            t = threading.Thread(target=wait_forever, daemon=True)
            t.start()
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
        if t is not None:
            t.join(30)
            assert not t.is_alive(), "a writer waiting for the lock of a killed process never got it"
            assert waiter["info"].seq == 3
        else:
            # no waiting at all: the kernel released the flock with the process
            assert SnapStore(d, lock_timeout=0).create({"v": 3}, 3).seq == 3
        assert SnapStore(d).restore() == ({"v": 3}, 3)
        assert (d / ".lock").exists()  # the lock file stays; only the flock mattered
    finally:
        for fd in (ready_r, ready_w, block_r, block_w):
            os.close(fd)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            child.join()


def test_a_waiting_writer_gets_the_lock_when_it_is_released(tmp_path: Path) -> None:
    d = tmp_path / "store"
    SnapStore(d).create({"v": 1}, 1)
    ops = FileOps()
    fd = ops.lock(str(d / ".lock"), 0)
    got = threading.Event()
    result: dict[str, Any] = {}

    def wait() -> None:
        try:
            result["info"] = SnapStore(d, lock_timeout=30).create({"v": 2}, 2)
        except BaseException as e:
            result["error"] = e
        got.set()

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    assert not got.wait(0.2)  # still waiting while the lock is held
    ops.unlock(fd)
    assert got.wait(30)
    assert "error" not in result, result
    assert result["info"].seq == 2


def _restore_loop(directory: str, stop: Any) -> None:
    try:
        store = SnapStore(directory)
        while not stop.is_set():
            store.restore()
    finally:
        os._exit(0)


def test_readers_never_make_a_lone_writer_fail(tmp_path: Path) -> None:
    """Guarantee 5: the lock is held only while a write runs. restore() repairs snapshot.seq;
    it used to hold the writer lock while doing so, and a lone writer with lock_timeout=0 got
    StoreLocked for 3 creates in 4 while two processes restored in a loop."""
    d = tmp_path / "store"
    writer_store = SnapStore(d, lock_timeout=0)
    writer_store.create({"n": 0}, 0)
    stop = CTX.Event()
    readers = [CTX.Process(target=_restore_loop, args=(str(d), stop)) for _ in range(2)]
    for p in readers:
        p.start()
    locked = 0
    try:
        for n in range(1, 301):
            try:
                writer_store.create({"n": n}, n)
            except StoreLocked:
                locked += 1
    finally:
        stop.set()
        for p in readers:
            p.join(30)
    # restore() still probes the lock (take, release at once) so as not to repair while a writer
    # is busy; a probe can collide with a create() in a window of microseconds: allow a few.
    assert locked <= 3, f"{locked} of 300 creates failed with StoreLocked because of readers"
    assert SnapStore(d).restore() == ({"n": 300}, 300)
    assert (d / "snapshot.seq").read_bytes() == b"300\n"


def test_mutations_during_asnapshot_are_saved_when_it_completes(tmp_path: Path) -> None:
    import asyncio
    from dataclasses import dataclass

    from snapmixin import Snapshottable, snapshot_every

    @snapshot_every(1)
    @dataclass
    class Counter(Snapshottable):
        n: int = 0

    d = tmp_path / "store"

    async def main() -> None:
        c = Counter.open(d)
        c.n = 1  # saved at once (every mutation)
        task = asyncio.create_task(c.asnapshot())
        await asyncio.sleep(0)  # the asnapshot's write is under way in its thread
        c.n = 2  # due for an automatic snapshot: deferred while the write runs
        assert await task == 1
        # @snapshot_every(1): every mutation is durable once the object is quiet again.
        assert SnapStore(d).restore() == ({"n": 2}, 2)

    asyncio.run(main())


# -- optimistic concurrency: many writers, one winner per generation (issue 10, part 1) --------------

LEDGER_THREADS = 12
LEDGER_PROCESSES = 4
LEDGER_ATTEMPTS = 12  # per writer


def ledger_state(writer: str, entries: list[str]) -> dict[str, Any]:
    """A state whose body is derived from the rest: a mix of two writers' states is visible."""
    digest = hashlib.sha256(json.dumps([writer, entries]).encode()).hexdigest()
    return {"writer": writer, "entries": entries, "body": digest}


def ledger_whole(state: Any) -> bool:
    return (isinstance(state, dict) and isinstance(state.get("entries"), list)
            and state == ledger_state(state.get("writer", "?"), state["entries"]))


@dataclass
class Tally(Snapshottable):
    writer: str = ""
    entries: list[str] = field(default_factory=list)
    body: str = ""


def _canon(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def ledger_writer(directory: str, name: str, kind: str, start: Any, out: str | None) -> dict[str, Any]:
    """LEDGER_ATTEMPTS commits of one new entry each, on a stale view or not; on SnapshotConflict
    reopen. ``kind``: "mixin" (its own Tally object) or "expect" (SnapStore.create(expect=))."""
    store = SnapStore(directory, keep=10_000, lock_timeout=60)
    result: dict[str, Any] = {"commits": [], "conflicts": 0, "other": []}
    start.wait()

    def reopen_raw() -> tuple[dict[str, Any], int, Any]:
        while True:
            info = store.latest()
            assert info is not None
            state, seq = store.restore()
            if seq == info.seq:
                return state, seq, info.generation

    try:
        if kind == "mixin":
            obj = Tally.open(store)
            for k in range(LEDGER_ATTEMPTS):
                new = f"{name}.{k}"
                with obj.snapshot_batch():
                    obj.writer = name
                    obj.entries.append(new)
                    obj.body = ledger_state(name, list(obj.entries))["body"]
                mine = {"writer": obj.writer, "entries": list(obj.entries), "body": obj.body}
                try:
                    seq = obj.snapshot()
                except SnapshotConflict:
                    result["conflicts"] += 1
                    # the object keeps its changes (nothing of it was written)
                    assert {"writer": obj.writer, "entries": list(obj.entries), "body": obj.body} == mine
                    obj = Tally.open(store)
                    continue
                result["commits"].append({"seq": seq, "h": _canon(mine), "new": new, "parent": None,
                                          "gen": None})
        else:
            state, seq, gen = reopen_raw()
            for k in range(LEDGER_ATTEMPTS):
                new = f"{name}.{k}"
                nxt = ledger_state(name, state["entries"] + [new])
                try:
                    info = store.create(nxt, seq + 1, expect=gen)
                except SnapshotConflict:
                    result["conflicts"] += 1
                    state, seq, gen = reopen_raw()
                    continue
                result["commits"].append({"seq": info.seq, "h": _canon(nxt), "new": new, "parent": gen,
                                          "gen": info.generation})
                state, seq, gen = nxt, info.seq, info.generation
    except BaseException as e:  # anything but SnapshotConflict is a failure, reported to the parent
        result["other"].append(f"{type(e).__name__}: {e}")
    if out is not None:
        Path(out).write_text(json.dumps(result))
    return result


def _process_ledger_writer(directory: str, name: str, kind: str, start: Any, out: str) -> None:
    try:
        ledger_writer(directory, name, kind, start, out)
    finally:
        os._exit(0)


@pytest.mark.parametrize("kind", ["mixin", "expect"])
def test_racing_commits_one_winner_per_generation(tmp_path: Path, kind: str) -> None:
    """12 threads and 4 processes, each with its own object (or SnapStore with expect=) on one
    directory, all starting from the same generation: every commit must have seen the one before it
    (exactly one winner per generation), the losers get SnapshotConflict, every committed generation
    is kept (keep large), and the final state is one writer's whole state."""
    d = tmp_path / "store"
    initial = SnapStore(d, keep=10_000).create(ledger_state("", []), 0)
    start = CTX.Event()
    procs = []
    for p in range(LEDGER_PROCESSES):
        out = str(tmp_path / f"proc{p}.json")
        procs.append((CTX.Process(target=_process_ledger_writer,
                                  args=(str(d), f"proc{p}", kind, start, out)), out))
    for proc, _ in procs:  # fork before any thread starts here
        proc.start()
    results: list[dict[str, Any]] = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        ledger_writer(str(d), f"thread{i}", kind, start, None))) for i in range(LEDGER_THREADS)]
    for t in threads:
        t.start()
    start.set()
    for t in threads:
        t.join(300)
        assert not t.is_alive(), "a writer thread hung"
    for proc, out in procs:
        proc.join(300)
        assert proc.exitcode == 0, f"writer process exit code {proc.exitcode}"
        results.append(json.loads(Path(out).read_text()))
    assert len(results) == LEDGER_THREADS + LEDGER_PROCESSES
    others = [o for r in results for o in r["other"]]
    assert not others, others[:10]
    commits = [c for r in results for c in r["commits"]]
    conflicts = sum(r["conflicts"] for r in results)
    assert len(commits) + conflicts == (LEDGER_THREADS + LEDGER_PROCESSES) * LEDGER_ATTEMPTS
    assert commits and conflicts >= 1, (len(commits), conflicts)  # 16 writers on one generation: some lose

    store = SnapStore(d, keep=10_000)
    gens = list(reversed(store.history()))  # oldest first, by commit
    states = [json.loads(store._read(str(g.path), verify=True).state) for g in gens]
    # Nothing silently overwritten: exactly the initial generation plus every commit that returned.
    assert len(gens) == len(commits) + 1, (len(gens), len(commits))
    assert states[0] == ledger_state("", [])
    kept = {(g.seq, _canon(s)) for g, s in zip(gens[1:], states[1:], strict=True)}
    assert kept == {(c["seq"], c["h"]) for c in commits}
    # One winner per generation: each generation is its predecessor plus exactly one new entry.
    for before, after in itertools.pairwise(states):
        assert ledger_whole(after), str(after)[:200]
        assert after["entries"][:-1] == before["entries"], "a commit did not see the generation before it"
        assert after["entries"][-1].startswith(after["writer"] + ".")
    final, seq = store.restore()
    assert final == states[-1] and seq == gens[-1].seq and ledger_whole(final)
    assert sorted(final["entries"]) == sorted(c["new"] for c in commits)
    if kind == "expect":  # each generation was expected (replaced) by exactly one winner
        parents = Counter(c["parent"] for c in commits)
        assert max(parents.values()) == 1, parents.most_common(3)
        assert initial.generation in parents
        assert {c["gen"] for c in commits} | {initial.generation} == set(parents) | {gens[-1].generation}


#: Writers of one process queue on an in-process lock (issue 10, helper WP-D's part). On a branch
#: without it these two tests are expected to fail (strictly: they must fail there, and pass with it).
_IN_PROCESS_QUEUE = hasattr(SnapStore._Lock, "reserve")
needs_in_process_queue = pytest.mark.xfail(not _IN_PROCESS_QUEUE, strict=True,
                                           reason="the in-process writer queue (WP-D) is not merged here")


@needs_in_process_queue
def test_ten_acreates_gathered_in_one_loop_wait_their_turn(tmp_path: Path) -> None:
    """Issue 10: ten acreate()s gathered in one event loop with the default lock_timeout=0 gave nine
    StoreLocked. Writers of one process wait for each other, in the order they were called."""
    import asyncio

    d = tmp_path / "store"
    store = SnapStore(d, keep=100)
    assert store.lock_timeout == 0

    async def main() -> list[Any]:
        return await asyncio.gather(*(store.acreate({"i": i}, i) for i in range(1, 11)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    locked = [r for r in results if isinstance(r, StoreLocked)]
    assert not locked, f"{len(locked)} of 10 got StoreLocked: {locked[0]}"
    # They wait their turn in the order they were called, so all ten commit, seq 1 to 10.
    assert all(isinstance(r, SnapshotInfo) for r in results), results
    assert [r.seq for r in results] == list(range(1, 11))
    assert [g.seq for g in reversed(store.history())] == list(range(1, 11))  # each one kept, in order
    assert store.restore() == ({"i": 10}, 10)


@needs_in_process_queue
def test_gathered_tasks_with_expect_each_commit_once(tmp_path: Path) -> None:
    """Gathered writers in one loop, each with its own store object on one directory, commit in
    turn when each names the generation it replaces: ten rounds, ten commits, no refusal."""
    import asyncio

    d = tmp_path / "store"
    SnapStore(d).create({"n": 0}, 0)

    async def one(i: int) -> int:
        store = SnapStore(d, keep=100)
        while True:
            info = store.latest()
            assert info is not None
            state, seq = await store.arestore()
            if seq != info.seq:
                continue
            try:
                await store.acreate({"n": state["n"] + 1, "by": i}, seq + 1, expect=info.generation)
                return seq + 1
            except SnapshotConflict:
                continue  # another task got this generation: read again

    async def main() -> list[int]:
        return await asyncio.gather(*(one(i) for i in range(10)))

    seqs = asyncio.run(main())
    assert sorted(seqs) == list(range(1, 11))  # each task committed once, on a distinct generation
    state, seq = SnapStore(d).restore()
    assert seq == 10 and state["n"] == 10  # no increment lost


# -- two objects on one directory (issue 10, part 1, the repros end to end) ------------------------

@dataclass
class Bag(Snapshottable):
    items: list[str] = field(default_factory=list)


@pytest.mark.parametrize("keep", [1, 5])
def test_two_objects_both_saving_seq_1(tmp_path: Path, keep: int) -> None:
    """Today: the second snapshot replaced the first (same seq) and the first one's state was nowhere,
    not even in history/."""
    d = tmp_path / "store"
    a = Bag.open(SnapStore(d, keep=keep))
    b = Bag.open(SnapStore(d, keep=keep))
    a.items.append("from a")
    assert a.snapshot() == 1
    b.items.append("from b")
    with pytest.raises(SnapshotConflict) as ei:
        b.snapshot()
    assert isinstance(ei.value, SnapError) and str(d) in str(ei.value)
    assert "reopen" in str(ei.value).lower()  # the message says how to recover
    assert b.items == ["from b"] and b.snapshot_seq == 1  # b keeps its changes
    assert SnapStore(d).restore() == ({"items": ["from a"]}, 1)  # a's state is not lost
    with pytest.raises(SnapshotConflict):
        b.snapshot()  # still stale: a second try does not slip through
    assert SnapStore(d).restore() == ({"items": ["from a"]}, 1)
    assert [g.seq for g in SnapStore(d).history()] == [1]
    # Reopening recovers: the reopened object sees a's state and can write on top of it.
    b = Bag.open(SnapStore(d, keep=keep))
    assert b.items == ["from a"]
    b.items.append("from b")
    assert b.snapshot() == 2
    assert SnapStore(d).restore() == ({"items": ["from a", "from b"]}, 2)


@pytest.mark.parametrize("keep", [1, 5])
def test_a_stale_object_with_a_higher_seq_does_not_overwrite(tmp_path: Path, keep: int) -> None:
    """Today: a saves seq 2; b (opened before) mutates three times and saves seq 3: accepted, and a's
    items were gone. The seq counts mutations, it is not a version."""
    d = tmp_path / "store"
    a = Bag.open(SnapStore(d, keep=keep))
    b = Bag.open(SnapStore(d, keep=keep))
    a.items.append("a1")
    a.items.append("a2")
    assert a.snapshot() == 2
    for x in ("b1", "b2", "b3"):
        b.items.append(x)
    assert b.snapshot_seq == 3
    with pytest.raises(SnapshotConflict):
        b.snapshot()
    assert b.items == ["b1", "b2", "b3"]
    assert SnapStore(d).restore() == ({"items": ["a1", "a2"]}, 2)
    # a is not disturbed by b's failed attempt: it goes on committing.
    a.items.append("a3")
    assert a.snapshot() == 3
    assert SnapStore(d).restore() == ({"items": ["a1", "a2", "a3"]}, 3)


@pytest.mark.parametrize("keep", [1, 5])
def test_force_overwrites_and_keeps_what_it_replaced(tmp_path: Path, keep: int) -> None:
    """snapshot(force=True) is the documented way to overwrite: the stale object's state becomes
    current, and the generation it replaced is kept in history/ (even with keep=1), not lost."""
    d = tmp_path / "store"
    a = Bag.open(SnapStore(d, keep=keep))
    b = Bag.open(SnapStore(d, keep=keep))
    a.items.append("a")
    a.snapshot()
    b.items.append("b")
    with pytest.raises(SnapshotConflict):
        b.snapshot()
    b.snapshot(force=True)
    assert SnapStore(d).restore()[0] == {"items": ["b"]}
    kept = [json.loads(SnapStore(d)._read(str(g.path), verify=True).state) for g in SnapStore(d).history()]
    assert {"items": ["a"]} in kept, kept
    # and a, now stale, is refused in its turn
    a.items.append("a2")
    with pytest.raises(SnapshotConflict):
        a.snapshot()


# -- rollback while writers run (issue 10, part 2) ------------------------------------------------

def test_rollback_with_commits_landing_meanwhile_loses_nothing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the multi-writer torture (keep=10000, rollbacks mid-run): generations went missing.
    The command counted the kept generations (keep = kept + 2) before taking the lock; three commits
    by a running program in between made it prune three old ones. Now a rollback either refuses
    (a writer committed while it looked: nothing written) or keeps every generation."""
    from snapmixin import cli

    d = tmp_path / "store"
    program = SnapStore(d, keep=100)
    for i in range(6):
        program.create({"i": i}, i)
    before = {(g.seq, g.checksum) for g in program.history()}

    class Racing(SnapStore):
        fired = False

        def _commit(self, *args: Any, **kwargs: Any) -> Any:
            if not Racing.fired:  # the program commits while the rollback is on its way
                Racing.fired = True
                for i in range(6, 9):
                    program.create({"i": i}, i)
            return super()._commit(*args, **kwargs)

    monkeypatch.setattr(cli, "SnapStore", Racing)
    code = cli.main(["rollback", str(d), "--seq", "2"])
    assert Racing.fired
    after = {(g.seq, g.checksum) for g in program.history()}
    assert before <= after, f"generations lost: {sorted(before - after)}"
    if code == 0:  # rolled back over the program's commits: all of them kept, plus the rollback's
        assert len(after) == 6 + 3 + 1 and program.restore() == ({"i": 2}, 2)
    else:  # refused: nothing written, the program's last commit is current
        assert code == 1 and len(after) == 6 + 3 and program.restore() == ({"i": 8}, 8)
