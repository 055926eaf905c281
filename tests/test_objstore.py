"""Snapshots on object storage (issue 12): the store's behaviours on a local directory, on a real
S3 API server (moto, 127.0.0.1) and on memory://; the conditional-PUT commit under racing threads
and processes, injected faults per request, SIGKILLed writers and tampered objects."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import snapmixin.store as store_mod
from snapmixin import Snapshottable, SnapStore
from snapmixin import cli as _cli
from snapmixin.errors import CorruptSnapshot, SeqRegression, SnapError, SnapshotConflict, SnapshotNotFound
from snapmixin.store import objstore
from snapmixin.store.objstore import ObjectBackend, Requests

from .objstore_support import Fault, FaultyProxy, FaultyRequests, S3Server

ROOT = Path(__file__).resolve().parent.parent
_MEM = itertools.count(1)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with the environment obstore reads pointing at it."""
    for k, v in s3_server.env.items():
        monkeypatch.setenv(k, v)
    return s3_server


@dataclass
class Place:
    """Where a store lives, and raw access to its objects (what a person or a tool would do)."""

    kind: str
    url: str
    root: Path | None = None
    _raw: Requests | None = field(default=None, repr=False)

    def store(self, keep: int = 1, **kw: Any) -> SnapStore:
        return SnapStore(self.url, keep=keep, **kw)

    @property
    def raw(self) -> Requests:
        if self._raw is None:
            backend = SnapStore(self.url).backend
            assert isinstance(backend, ObjectBackend)
            self._raw = backend.requests
        return self._raw

    def read(self, name: str) -> bytes:
        if self.root is not None:
            return (self.root / name).read_bytes()
        return self.raw.get(name).data or b""

    def write(self, name: str, data: bytes) -> None:
        if self.root is not None:
            (self.root / name).write_bytes(data)
        else:
            self.raw.put(name, data)

    def delete(self, name: str) -> None:
        if self.root is not None:
            (self.root / name).unlink()
        else:
            self.raw.delete(name)

    def names(self) -> set[str]:
        if self.root is not None:
            return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}
        return set(self.raw.list_under(""))


def _s3_place(s3: S3Server) -> Place:
    return Place("s3", f"s3://{s3.new_bucket()}/runs/a")


@pytest.fixture(params=["local", "s3", "memory"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "local":
        return Place("local", os.fspath(tmp_path / "s"), root=tmp_path / "s")
    if request.param == "memory":
        return Place("memory", f"memory://t{next(_MEM)}/p")
    return _s3_place(request.getfixturevalue("s3"))


@pytest.fixture(params=["s3", "memory"])
def remote(request: pytest.FixtureRequest) -> Place:
    if request.param == "memory":
        return Place("memory", f"memory://t{next(_MEM)}/p")
    return _s3_place(request.getfixturevalue("s3"))


def _faulty(store: SnapStore) -> FaultyRequests:
    backend = store.backend
    assert isinstance(backend, ObjectBackend)
    wrapper = FaultyRequests(backend.requests)
    backend.requests = wrapper
    return wrapper


# -- the store's behaviours, on every kind of place ---------------------------------------------
def test_round_trip_typed_untyped_and_async(place: Place) -> None:
    from dataclasses import dataclass as dc

    @dc
    class State:
        level: int
        names: list[str]

    s = place.store()
    assert not s.exists() and s.latest() is None
    with pytest.raises(SnapshotNotFound):
        s.restore()
    info = s.create(State(3, ["a", "é"]), 7)
    assert s.exists()
    assert s.restore(State) == (State(3, ["a", "é"]), 7)
    assert place.store().restore() == ({"level": 3, "names": ["a", "é"]}, 7)
    latest = place.store().latest()
    assert latest is not None and latest.generation == info.generation and latest.seq == 7
    assert str(info.path) == f"{place.url}/snapshot.json" and os.fspath(latest.path) == str(info.path)
    raw = place.read("snapshot.json")
    assert raw.startswith(b'{\n  "format": "snapmixin",\n  "format_version": 2,\n  "seq": 7,')
    assert json.loads(raw)["state"] == {"level": 3, "names": ["a", "é"]}
    assert asyncio.run(s.acreate(State(4, []), 8)).seq == 8
    assert asyncio.run(place.store().arestore(State)) == (State(4, []), 8)
    assert repr(s) == f"SnapStore({place.url!r}, keep=1)"


def test_keep3_history_pruning_and_keep1_none(place: Place) -> None:
    s = place.store(keep=3)
    for seq in range(1, 7):
        s.create({"n": seq}, seq)
    assert [i.seq for i in s.history()] == [6, 5, 4]
    assert [seq for seq, _ in s.history_files()] == [5, 4]
    assert len([n for n in place.names() if n.startswith("history/")]) == 2
    assert all(c.ok for c in s.check_generations())
    assert [c.seq for c in place.store().check_generations()] == [6, 5, 4]
    one = Place(place.kind, place.url + "-k1", place.root.with_name("k1") if place.root else None)
    s1 = one.store()
    for seq in range(1, 4):
        s1.create({"n": seq}, seq)
    assert not any(n.startswith("history/") for n in one.names())


def test_seq_rules_and_expect(place: Place) -> None:
    s = place.store()
    first = s.create({"n": 1}, 10)
    with pytest.raises(SeqRegression):
        s.create({"n": 0}, 9)
    with pytest.raises(SnapshotConflict):
        s.create({"n": 99}, 10)  # the same seq, another state
    assert s.create({"n": 1}, 10).generation == first.generation  # the same state: nothing written
    with pytest.raises(SnapshotConflict):
        s.create({"n": 2}, 11, expect=None)
    second = s.create({"n": 2}, 11, expect=first.generation)
    with pytest.raises(SnapshotConflict):
        place.store().create({"n": 3}, 12, expect=first.generation)
    assert s.restore() == ({"n": 2}, 11)
    other = place.store()
    assert other.create({"n": 3}, 12).seq == 12  # two store objects, one after the other: no conflict
    assert s.create({"n": 4}, 13).seq == 13  # s knew generation 11: it reads again, no false conflict
    with pytest.raises(SeqRegression):
        other.create({"n": 5}, 12)
    assert second.generation != first.generation
    assert place.store().restore() == ({"n": 4}, 13)


def test_damage_is_detected_and_fallback_restores_the_newest_intact(place: Place,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    s = place.store(keep=3)
    for seq in (1, 2, 3):
        s.create({"n": seq}, seq)
    raw = place.read("snapshot.json")
    place.write("snapshot.json", raw.replace(b'"n": 3', b'"n": 4'))  # hand-edited
    with pytest.raises(CorruptSnapshot, match="checksum mismatch"):
        place.store().restore()
    assert place.store().restore(fallback=True) == ({"n": 2}, 2)
    assert "trying an older generation" in caplog.text
    hist = sorted(n for n in place.names() if n.startswith("history/"))
    place.write(hist[-1], place.read(hist[-1])[:-30])  # the newest kept one truncated too
    assert place.store().restore(fallback=True) == ({"n": 1}, 1)
    bad = [c for c in place.store().check_generations() if not c.ok]
    assert len(bad) == 2 and all(c.error and str(c.path) in c.error for c in bad)
    place.write("snapshot.json", b"")  # emptied
    with pytest.raises(CorruptSnapshot, match="empty"):
        place.store().restore()
    place.write("snapshot.json", b"\x00" * 70_000)  # garbage larger than the head read
    with pytest.raises(CorruptSnapshot, match=r"not (valid )?JSON"):  # (sniffed above 1 MiB)
        place.store().restore()


def test_replacing_a_damaged_current_keeps_it(place: Place) -> None:
    s = place.store(keep=2)
    s.create({"n": 1}, 1)
    s.create({"n": 2}, 2)
    place.write("snapshot.json", place.read("snapshot.json").replace(b'"n": 2', b'"n": 7'))
    r = place.store().restore_generation(fallback=True)
    assert (r.state, r.info.seq, r.fell_back) == ({"n": 1}, 1, True)
    w = place.store(keep=2)
    info = w.commit_encoded(b'{"n":3}', 1, expect=r.base, replace_damaged=True)
    assert place.store().restore() == ({"n": 3}, info.seq)
    assert any(n.startswith("history/damaged-") for n in place.names())


def test_a_missing_current_is_no_snapshot(place: Place) -> None:
    s = place.store(keep=3)
    s.create({"n": 1}, 1)
    s.create({"n": 2}, 2)
    place.delete("snapshot.json")
    with pytest.raises(SnapshotNotFound, match="older generation"):
        place.store().restore()
    assert place.store().create({"n": 0}, 0, expect=None).seq == 0
    assert place.store().restore() == ({"n": 0}, 0)


def test_the_mixin_on_a_place(place: Place) -> None:
    from dataclasses import dataclass as dc
    from dataclasses import field as f

    @dc
    class Game(Snapshottable):
        score: int = 0
        items: list[str] = f(default_factory=list)

    g = Game.open(place.url)
    g.score = 3
    g.items.append("sword")
    g.snapshot()
    again = Game.open(place.url)
    assert (again.score, again.items) == (3, ["sword"])
    stale = Game.open(place.url)
    again.score = 4
    again.snapshot()
    stale.score = 5
    with pytest.raises(SnapshotConflict):
        stale.snapshot()  # fenced, not a lost update
    assert Game.open(place.url).score == 4
    with Game.open(place.url) as h:
        h.items.append("shield")
    assert Game.open(place.url).items == ["sword", "shield"]


def test_the_cli_on_a_place(place: Place, capsys: pytest.CaptureFixture[str]) -> None:
    s = place.store(keep=3)
    for seq in (1, 2, 3):
        s.create({"n": seq}, seq)
    assert _cli.main(["verify", place.url]) == 0
    assert _cli.main(["show", place.url]) == 0
    assert _cli.main(["history", place.url]) == 0
    assert _cli.main(["diff", place.url]) == 1  # like diff(1): 1 when they differ
    out = capsys.readouterr().out
    assert "3 generations checked: 3 ok" in out and '"n": 3' in out and f"{place.url}/snapshot.json" in out
    assert _cli.main(["rollback", place.url, "--seq", "1"]) == 0
    assert place.store().restore() == ({"n": 1}, 1)
    place.write("snapshot.json", place.read("snapshot.json").replace(b'"n": 1', b'"n": 9'))
    assert _cli.main(["verify", place.url]) != 0
    assert "checksum mismatch" in capsys.readouterr().out


# -- object storage: requests, configuration ------------------------------------------------------
def test_requests_per_create_and_restore(remote: Place) -> None:
    """keep=1: a create is a conditional GET (304 when nothing changed) and one conditional PUT;
    a restore is one GET; the normal path lists nothing."""
    s = remote.store()
    log = _faulty(s)
    s.create({"n": 0}, 0)
    for seq in range(1, 4):
        log.log.clear()
        s.create({"n": seq}, seq)
        assert log.methods() == ["get", "put"]
    r = remote.store()
    rlog = _faulty(r)
    assert r.restore() == ({"n": 3}, 3)
    assert rlog.methods() == ["get"]
    k3 = Place(remote.kind, remote.url + "-k3").store(keep=3)
    klog = _faulty(k3)
    for seq in range(1, 6):
        k3.create({"n": seq}, seq)
    klog.log.clear()
    k3.create({"n": 6}, 6)
    assert klog.methods() == ["get", "put", "put", "delete"]  # history copy, commit, prune
    assert ("delete", "snapshot.json") not in klog.log


def test_storage_options_and_a_ready_store(s3_server: S3Server) -> None:
    """No environment: the configuration comes with the store (the s3 fixture is not used)."""
    bucket = s3_server.new_bucket()
    url = f"s3://{bucket}/opts"
    s = SnapStore(url, storage_options=s3_server.options)
    s.create({"n": 1}, 1)
    assert SnapStore(url, storage_options=s3_server.options).restore() == ({"n": 1}, 1)
    from obstore.store import MemoryStore, S3Store

    ready = S3Store(bucket, prefix="opts", **{k: v for k, v in s3_server.options.items()
                                             if k != "client_options"},
                    client_options={"allow_http": True})
    r = SnapStore(ready)
    assert r.restore() == ({"n": 1}, 1)
    assert str(r.path) == url
    m = SnapStore(MemoryStore())
    m.create([1], 1)
    assert m.restore() == ([1], 1) and str(m.path).startswith("memory://")
    with pytest.raises(ValueError, match="storage_options is for a URL"):
        SnapStore("local-dir", storage_options={"region": "x"})
    with pytest.raises(TypeError, match="obstore store"):
        SnapStore(object())


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "obstore", None)  # as if obstore were not installed
    for url in ("s3://b/p", "gs://b/p", "az://c/p", "memory://x"):
        with pytest.raises(ImportError, match=r"pip install 'snapmixin\[cloud\]'"):
            SnapStore(url)
    assert list(tmp_path.iterdir()) == []
    assert all(store_mod.BACKENDS[k] is objstore.open_url for k in objstore.SCHEMES)


# -- faults, one request at a time ------------------------------------------------------------
def test_a_put_that_fails_before_sending_is_sent_again(remote: Place) -> None:
    s = remote.store()
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", "snapshot.json", "before", times=2))
    info = s.create({"n": 2}, 2)
    assert remote.store().latest() == info
    assert log.methods().count("put") == 3
    assert remote.store().restore() == ({"n": 2}, 2)


def test_a_put_applied_but_answered_with_an_error_is_a_success_not_a_second_commit(remote: Place) -> None:
    s = remote.store(keep=2)
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", "snapshot.json", "after"))
    info = s.create({"n": 2}, 2)  # the server applied it; the client saw a timeout
    assert ("get_tail", "snapshot.json") in log.log  # it read the identity back
    assert [m for m, n in log.log if (m, n) == ("put", "snapshot.json")] == ["put"]  # not sent twice
    latest = remote.store().latest()
    assert latest is not None and latest.generation == info.generation
    assert [i.seq for i in remote.store().history()] == [2, 1]
    assert s.create({"n": 3}, 3).seq == 3  # and the store goes on from it


def test_a_precondition_failure_after_the_clients_own_retry_is_read_back(remote: Place) -> None:
    """The client (obstore's retries) sent the PUT twice: the first applied, the second got 412."""
    s = remote.store()
    s.create({"n": 1}, 1)
    log = _faulty(s)
    real_put = log.inner.put

    def twice(name: str, data: bytes, mode: Any = None) -> tuple[str | None, str | None]:
        real_put(name, data, mode)
        return real_put(name, data, mode)  # 412: the ETag it names is gone (ours replaced it)

    log.inner.put = twice  # type: ignore[method-assign]
    info = s.create({"n": 2}, 2)
    log.inner.put = real_put  # type: ignore[method-assign]
    current = remote.store().latest()
    assert current is not None and current.generation == info.generation


def test_a_conflict_of_the_moment_is_retried(remote: Place) -> None:
    """S3's 409 ConditionalRequestConflict (or a 412 while the ETag still matches): sent again."""
    import obstore

    s = remote.store()
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", "snapshot.json", "before", times=2,
                   error=lambda: obstore.exceptions.PreconditionError("409 ConditionalRequestConflict")))
    assert s.create({"n": 2}, 2).seq == 2
    assert remote.store().restore() == ({"n": 2}, 2)


def test_puts_that_keep_failing_report_failure_and_leave_the_previous(remote: Place) -> None:
    s = remote.store()
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", "snapshot.json", "before", times=objstore.ATTEMPTS))
    with pytest.raises(SnapError, match=r"did not apply.*previous snapshot is intact"):
        s.create({"n": 2}, 2)
    assert remote.store().restore() == ({"n": 1}, 1)
    assert s.create({"n": 2}, 2).seq == 2  # the fault is gone: the same store goes on


def test_an_outcome_that_cannot_be_read_back_is_reported_unknown(remote: Place) -> None:
    s = remote.store()
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", "snapshot.json", "after"), Fault("get_tail", "snapshot.json", "before"))
    with pytest.raises(SnapError, match="outcome is unknown") as e:
        s.create({"n": 2}, 2)
    assert "intact" not in str(e.value)
    assert remote.store().restore() == ({"n": 2}, 2)  # it had landed: restore shows it


def test_a_slow_answer_while_another_writer_commits(remote: Place) -> None:
    """Our PUT applied; before its answer arrived another writer read it and committed on top."""
    s = remote.store()
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", "snapshot.json", "slow",
                   meanwhile=lambda: remote.store().create({"n": 3, "other": True}, 3) and None))
    info = s.create({"n": 2}, 2)
    assert info.seq == 2  # it did land: a success
    assert remote.store().restore() == ({"n": 3, "other": True}, 3)
    with pytest.raises((SnapshotConflict, SeqRegression)):
        s.create({"n": 4}, 3, expect=info.generation)


def test_a_slow_read_while_another_writer_commits_is_fenced(remote: Place) -> None:
    s = remote.store(keep=2)
    base = s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("get", "snapshot.json", "slow",
                   meanwhile=lambda: remote.store().create({"other": True}, 2) and None))
    with pytest.raises(SnapshotConflict, match="another writer committed"):
        s.create({"n": 2}, 2, expect=base.generation)
    assert remote.store().restore() == ({"other": True}, 2)
    assert [i.seq for i in remote.store().history()] == [2]  # the loser's history copy is gone


def test_failed_reads_are_io_errors_not_damage(remote: Place) -> None:
    remote.store(keep=2).create({"n": 1}, 1)
    remote.store(keep=2).create({"n": 2}, 2)
    r = remote.store()
    log = _faulty(r)
    log.plan(Fault("get", "snapshot.json", "before", times=1))
    with pytest.raises(SnapError, match="I/O error") as e:
        r.restore(fallback=True)  # never falls back over an I/O error
    assert not isinstance(e.value, CorruptSnapshot)
    assert r.restore() == ({"n": 2}, 2)


def test_a_failed_history_copy_commits_nothing(remote: Place) -> None:
    s = remote.store(keep=3)
    s.create({"n": 1}, 1)
    log = _faulty(s)
    log.plan(Fault("put", None, "before", times=1))  # the first PUT is the history copy
    with pytest.raises(SnapError, match="previous snapshot is intact"):
        s.create({"n": 2}, 2)
    assert remote.store().restore() == ({"n": 1}, 1)
    log.plan(Fault("delete", None, "before", times=9))  # pruning fails: the commit still stands
    for seq in (2, 3, 4):
        assert s.create({"n": seq}, seq).seq == seq
    assert remote.store().restore() == ({"n": 4}, 4)


# -- racing writers ---------------------------------------------------------------------------
def _check_chain(results: list[tuple[str, str, int]], first: str, final: Any, final_seq: int) -> None:
    """Exactly one winner per generation: the winners' (base -> new) form one chain from
    ``first`` to the current generation; the final state is the last winner's, whole."""
    by_base: dict[str, tuple[str, int]] = {}
    for base, new, seq in results:
        assert base not in by_base, f"two winners replaced generation {base}"
        by_base[base] = (new, seq)
    cur, seq_now = first, 0
    while cur in by_base:
        cur, seq_now = by_base[cur]
    assert len(by_base) == len(results) and seq_now == final_seq
    assert final["writer"] * 3 == final["copies"] and final["seq"] == final_seq


def test_twelve_threads_race_on_one_prefix(remote: Place) -> None:
    first = remote.store().create({"writer": "", "copies": "", "seq": 0}, 0)
    wins: list[tuple[str, str, int]] = []
    losses: list[BaseException] = []
    start = threading.Barrier(12, timeout=60)  # a thread that died before it: an error, not a hang
    mutex = threading.Lock()
    shared = remote.store()

    def writer(i: int) -> None:
        s = shared if i % 2 else remote.store()  # half share one store object (and its caches)
        for _ in range(6):
            # Every round, all twelve read the current generation, then all commit over it: a
            # real race each time (no thread can finish its round before the others read).
            r = s.restore_generation()
            start.wait()
            seq = r.info.seq + 1
            name = f"w{i}-"
            try:
                info = s.create({"writer": name, "copies": name * 3, "seq": seq}, seq, expect=r.base)
            except (SnapshotConflict, SeqRegression) as e:
                with mutex:
                    losses.append(e)
            else:
                assert r.base is not None
                with mutex:
                    wins.append((r.base, str(info.generation), seq))
            start.wait()  # the round is over: the next one reads its winner

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final, seq = remote.store().restore()
    assert len(wins) == 6 and len(losses) == 66  # exactly one winner a round
    assert first.generation is not None
    _check_chain(wins, first.generation, final, seq)


def test_four_processes_race_on_one_prefix(s3: S3Server, tmp_path: Path) -> None:
    place = _s3_place(s3)
    first = place.store().create({"writer": "", "copies": "", "seq": 0}, 0)
    procs = [subprocess.Popen([sys.executable, "-m", "tests._objstore_child", "race", place.url, f"p{i}",
                               "8", os.fspath(tmp_path / f"p{i}.jsonl")], cwd=ROOT)
             for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    wins: list[tuple[str, str, int]] = []
    outcomes: dict[str, int] = {}
    for i in range(4):
        for line in (tmp_path / f"p{i}.jsonl").read_text().splitlines():
            rec = json.loads(line)
            outcomes[rec["outcome"]] = outcomes.get(rec["outcome"], 0) + 1
            if rec["outcome"] == "won":
                wins.append((rec["base"], rec["new"], rec["seq"]))
    assert set(outcomes) <= {"won", "SnapshotConflict", "SeqRegression"}
    assert sum(outcomes.values()) == 32 and outcomes.get("won", 0) >= 1
    final, seq = place.store().restore()
    assert first.generation is not None
    _check_chain(wins, first.generation, final, seq)


# -- SIGKILL of a writer mid-commit -----------------------------------------------------------
def _line_within(child: subprocess.Popen[str], seconds: float) -> str:
    """The child's next line; a child that says nothing for ``seconds`` fails the test (no hang)."""
    import selectors

    assert child.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(child.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=seconds):
            child.kill()
            pytest.fail(f"the writer printed nothing for {seconds} s")
    return child.stdout.readline()


def _kill_loop(place: Place, rounds: int) -> None:
    rng = random.Random(12)
    s = place.store(keep=2)
    s.create({"i": 0, "pad": []}, 0)
    for _ in range(rounds):
        child = subprocess.Popen([sys.executable, "-m", "tests._objstore_child", "loop", place.url],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        acknowledged = -1
        for _ in range(rng.randint(1, 6)):  # let it commit a few, then kill it somewhere in the next
            line = _line_within(child, 60.0)
            assert line.startswith("committed"), line
            acknowledged = int(line.split()[1])
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        state, seq = place.store().restore()  # never an error, never a mix
        assert state["i"] == seq and state["pad"] == [seq] * (seq % 50)
        assert seq >= acknowledged  # what create() returned for survived (durable: the PUT was answered)
        checks = place.store().check_generations()
        assert all(c.ok for c in checks), [c.error for c in checks if not c.ok]
        hist = place.store().history()
        assert [i.seq for i in hist] == sorted((i.seq for i in hist), reverse=True)


def test_sigkill_of_a_writer_mid_commit(s3: S3Server) -> None:
    _kill_loop(_s3_place(s3), rounds=3)


@pytest.mark.slow
def test_sigkill_of_a_writer_mid_commit_many_times(s3: S3Server) -> None:
    _kill_loop(_s3_place(s3), rounds=25)


# -- the same faults through obstore's real HTTP client (a proxy answers for the server) -----------
@pytest.fixture
def proxied(s3_server: S3Server) -> Iterator[tuple[FaultyProxy, str, dict[str, Any]]]:
    proxy = FaultyProxy(s3_server.endpoint)
    options = dict(s3_server.options, endpoint=proxy.endpoint)
    yield proxy, f"s3://{s3_server.new_bucket()}/via-proxy", options
    proxy.stop()


def test_s3s_409_conditional_request_conflict_is_retried(
        proxied: tuple[FaultyProxy, str, dict[str, Any]]) -> None:
    """On an update (If-Match) and on the first create (If-None-Match: *, which obstore reports
    as AlreadyExists although nothing exists): read back, unchanged, sent again."""
    proxy, url, options = proxied
    s = SnapStore(url, storage_options=options)
    proxy.plan.append("409")
    first = s.create({"n": 1}, 1)
    assert proxy.answered == ["409"]
    proxy.answered.clear()
    proxy.plan += ["409", "409"]
    second = s.create({"n": 2}, 2, expect=first.generation)
    assert proxy.answered == ["409", "409"] and proxy.plan == []
    again = SnapStore(url, storage_options=options)
    assert again.restore() == ({"n": 2}, 2)
    latest = again.latest()
    assert latest is not None and latest.generation == second.generation


def test_a_put_applied_then_answered_500_is_one_commit(
        proxied: tuple[FaultyProxy, str, dict[str, Any]]) -> None:
    proxy, url, options = proxied
    s = SnapStore(url, keep=3, storage_options=options)
    s.create({"n": 1}, 1)
    proxy.plan.append("500")
    info = s.create({"n": 2}, 2)  # applied by the server; obstore saw a 500 (and perhaps resent it)
    assert proxy.answered == ["500"]
    again = SnapStore(url, storage_options=options)
    latest = again.latest()
    assert latest is not None and latest.generation == info.generation
    assert [i.seq for i in again.history()] == [2, 1]  # committed once, kept once
    assert s.create({"n": 3}, 3, expect=info.generation).seq == 3


def test_a_large_snapshot_round_trips_in_few_requests(remote: Place) -> None:
    """Above the 64 KiB head read: restore is two GETs (head, whole), history and verify work."""
    big = {"blob": "x" * 300_000, "items": list(range(5000))}
    s = remote.store(keep=2)
    s.create(big, 1)
    s.create(dict(big, n=2), 2)
    r = remote.store()
    log = _faulty(r)
    assert r.restore() == (dict(big, n=2), 2)
    assert log.methods() == ["get", "get"]
    assert [i.seq for i in remote.store().history()] == [2, 1]
    assert all(c.ok for c in remote.store().check_generations())
    raw = remote.read("snapshot.json")
    remote.write("snapshot.json", raw[:200_000] + b"y" + raw[200_001:])  # one byte in the middle
    with pytest.raises(CorruptSnapshot, match="checksum mismatch"):
        remote.store().restore()
    assert remote.store().restore(fallback=True) == (big, 1)


def test_the_command_line_program_on_s3(s3: S3Server, tmp_path: Path) -> None:
    """`python -m snapmixin ... s3://...` as a user runs it: configured by the environment."""
    place = _s3_place(s3)
    s = place.store(keep=2)
    s.create({"n": 1}, 1)
    s.create({"n": 2}, 2)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "snapmixin", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)

    shown = run("show", place.url)
    assert shown.returncode == 0 and '"n": 2' in shown.stdout and f"{place.url}/snapshot.json" in shown.stdout
    assert run("rollback", place.url, "--seq", "1").returncode == 0
    assert place.store().restore() == ({"n": 1}, 1)
    place.write("snapshot.json", place.read("snapshot.json").replace(b'"n": 1', b'"n": 5'))
    bad = run("verify", place.url)
    assert bad.returncode != 0 and "checksum mismatch" in bad.stdout + bad.stderr
    assert run("rehash", place.url).returncode == 0  # accept the hand edit
    assert place.store().restore() == ({"n": 5}, 1)
    assert list(tmp_path.iterdir()) == [] and not (ROOT / "s3:").exists()  # nothing local


def test_gathered_acreates_of_one_store_object_commit_in_turn(remote: Place) -> None:
    """As on a directory: writers of one store object wait their turn, in the order called."""
    store = remote.store(keep=100)

    async def main() -> list[Any]:
        return await asyncio.gather(*(store.acreate({"i": i}, i) for i in range(1, 11)),
                                    return_exceptions=True)

    results = asyncio.run(main())
    assert [getattr(r, "seq", r) for r in results] == list(range(1, 11))
    assert [g.seq for g in reversed(remote.store().history())] == list(range(1, 11))


def test_a_write_from_inside_a_write_is_refused_not_a_deadlock(remote: Place) -> None:
    from snapmixin.errors import StoreLocked

    store = remote.store()
    inner: list[BaseException] = []

    def again(info: Any) -> None:
        try:
            store.create({"inner": True}, 99)
        except StoreLocked as e:
            inner.append(e)

    store.commit_encoded(b'{"n":1}', 1, on_commit=again)
    assert len(inner) == 1 and "already writing" in str(inner[0])
    assert store.restore() == ({"n": 1}, 1)


def test_a_versioned_bucket_names_the_version_in_the_precondition(s3: S3Server) -> None:
    """Where the store reports object versions (an S3 bucket with versioning; GCS generations),
    the conditional PUT names the version it read as well as the ETag, and still fences."""
    import boto3

    bucket = s3.new_bucket()
    boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id="t",
                 aws_secret_access_key="t").put_bucket_versioning(
        Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    url = f"s3://{bucket}/v"
    s = SnapStore(url, keep=2)
    log = _faulty(s)
    modes: list[Any] = []
    real_put = log.inner.put

    def recording(name: str, data: bytes, mode: Any = None) -> tuple[str | None, str | None]:
        modes.append(mode)
        return real_put(name, data, mode)

    log.inner.put = recording  # type: ignore[method-assign]
    first = s.create({"i": 1}, 1)
    s.create({"i": 2}, 2, expect=first.generation)
    assert any(isinstance(m, dict) and m.get("version") and m.get("e_tag") for m in modes)
    SnapStore(url).create({"i": 3}, 3)
    with pytest.raises(SnapshotConflict):
        s.create({"i": 4}, 4, expect=first.generation)
    assert s.create({"i": 5}, 5).seq == 5
    assert SnapStore(url).restore() == ({"i": 5}, 5)
