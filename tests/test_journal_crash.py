"""Crash enumeration of the journal in ``"fsync"`` mode (issue 14), with ``tests/crashfs.py``.

One run of a journaled object (open, snapshot, single mutations, a batch, a method-form call,
an automatic snapshot that compacts the journal, more mutations) goes through a
:class:`~tests.crashfs.RecordingFS`. For every prefix of its log of file operations,
:func:`~tests.crashfs.replay_states` builds every directory a power loss there could leave
(un-fsynced bytes kept, dropped or torn; directory entries made since the last directory fsync
kept in any prefix). Each must reopen without error to a state of the run's history (the seq
and the state the object had at that seq: a prefix of the mutations, never a mix) that
includes every mutation that had returned before the crash point. A negative control runs the
same with ``"flush"`` (no fsync): the model must find a returned mutation lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from snapmixin import Snapshottable, SnapStore, snapshot_every
from tests.crashfs import RecordingFS, replay_states, snapshot_tree, write_tree


@snapshot_every(6)
@dataclass
class Acc(Snapshottable):
    n: int = 0
    items: list[str] = field(default_factory=list)
    kv: dict[str, int] = field(default_factory=dict)
    subs: list[Sub] = field(default_factory=list)

    @snapshot_every(100)
    def bump(self, k: int) -> None:
        self.n += k
        self.items.append(f"b{k}")


@dataclass
class Sub(Snapshottable):
    v: int = 0


def digest(store: SnapStore, obj: Acc) -> str:
    doc = json.loads(store.encode(obj))
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def run(root: Path, mode: str) -> tuple[dict[str, bytes | None], RecordingFS, list[tuple[int, int, str]]]:
    """Record the run; return the tree before it, the fs log, and (ops done, seq, digest) after
    each returned mutation."""
    d = root / "store"
    d.mkdir(parents=True)
    before = snapshot_tree(os.fspath(root))
    fs = RecordingFS()
    store = SnapStore(d, fs=fs)
    a = Acc.open(store, journal=mode)
    a.snapshot()
    marks = [(len(fs.ops), a.snapshot_seq, digest(store, a))]

    def mark() -> None:
        marks.append((len(fs.ops), a.snapshot_seq, digest(store, a)))

    a.n = 1
    mark()
    a.items.append("x")
    mark()
    a.subs.append(Sub(v=1))
    mark()
    a.subs[0].v = 2
    mark()
    with a.snapshot_batch():
        a.kv["a"] = 1
        a.kv["b"] = 2
        a.items.insert(0, "y")
    mark()
    a.bump(3)  # the 6th mutation: an automatic snapshot, then a new segment (compaction)
    mark()
    a.subs.insert(0, Sub(v=9))
    mark()
    a.subs[1].v = 5
    mark()
    del a.kv["a"]
    mark()
    return before, fs, marks


def explore(tmp_path: Path, mode: str) -> tuple[int, list[str]]:
    root = tmp_path / "root"
    before, fs, marks = run(root, mode)
    history = {seq: h for _, seq, h in marks}
    case = tmp_path / "case"
    problems: list[str] = []
    seen: set[tuple[object, ...]] = set()
    checked = 0
    for k in range(marks[0][0], len(fs.ops) + 1):
        floor = max(seq for done, seq, _ in marks if done <= k)  # returned before the crash
        for tree in replay_states(os.fspath(root), before, fs.ops, k):
            key = (floor, *sorted(tree.items()))
            if key in seen:
                continue
            seen.add(key)
            checked += 1
            shutil.rmtree(case, ignore_errors=True)
            case.mkdir()
            write_tree(tree, os.fspath(case))
            store = SnapStore(case / "store")
            try:
                got = Acc.open(store)
            except Exception as e:
                problems.append(f"crash after op {k} ({fs.ops[k - 1].name}): reopening failed: {e}")
                continue
            seq, h = got.snapshot_seq, digest(store, got)
            if history.get(seq) != h:
                problems.append(f"crash after op {k}: seq {seq} with a state the object never had")
            elif seq < floor:
                problems.append(f"crash after op {k} ({fs.ops[k - 1].name}): reopened at seq {seq}, but "
                                f"mutation {floor} had returned")
    return checked, problems


def test_every_crash_point_keeps_every_returned_mutation(tmp_path: Path) -> None:
    checked, problems = explore(tmp_path, "fsync")
    assert not problems, "\n".join(problems[:20])
    assert checked >= 50, checked  # the run's log was explored, not skipped


def test_negative_control_flush_loses_mutations_to_power_loss(tmp_path: Path) -> None:
    """Without fsync, a power loss can drop records of returned mutations: the model sees it."""
    _, problems = explore(tmp_path, "flush")
    assert any("had returned" in p for p in problems), problems[:5]
