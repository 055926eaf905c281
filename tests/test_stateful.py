"""A hypothesis state machine of the store (issue 6, part 5), checked against a model.

Rules: ``create`` (seq ahead, equal or behind the stored one), an unencodable
state, a ``create`` that crashes at a random file-system step (``RecordingFS``
raising ``Crash``, before or after the op), ``reopen`` (a new ``SnapStore``
object on the directory), with ``keep`` from 1 to 4. The model is the current
(state, seq) and the seqs of the kept generations:

- a successful ``create`` makes the new pair current, archives the previous one
  (when its seq differs) and keeps ``keep`` generations; a lower seq raises
  ``SeqRegression`` and changes nothing; an unencodable state raises
  ``EncodeError`` and changes nothing;
- after a crash mid-``create`` ``restore`` must return either the model's old
  pair or the new one, whole (the model follows what it returns); ``history()``
  still holds every generation the model keeps and at most one extra per crash
  (a crash may come between the commit and the pruning); after the next successful ``create`` it is
  exact again and no temp file is left.

After every step: ``restore()`` equals the model, ``latest()`` agrees, and
``snapshot.seq`` (when the last step completed) holds the seq.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from snapmixin import SnapStore
from snapmixin.errors import (
    CorruptSnapshot,
    EncodeError,
    SeqRegression,
    SnapError,
    SnapshotConflict,
    SnapshotNotFound,
)
from snapmixin.fsio import is_temp_name
from tests.crashfs import Crash, RecordingFS

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
_leaf = st.one_of(st.integers(-(2**53), 2**53), _text, st.booleans(), st.none())
states = st.dictionaries(_text, st.one_of(_leaf, st.lists(_leaf, max_size=4),
                                          st.dictionaries(_text, _leaf, max_size=3)), max_size=4)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = tempfile.mkdtemp(prefix="snapmixin-stateful-")
        self.dir = os.path.join(self.root, "store")
        self.keep = 1
        self.store = SnapStore(self.dir)
        self.current: tuple[Any, int] | None = None
        self.kept: list[int] = []      # seqs of the kept generations, newest first
        self.crashes = 0               # crashes since the last successful create
        self.states: dict[int, Any] = {}  # state of each kept seq

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @initialize(keep=st.integers(1, 4))
    def setup(self, keep: int) -> None:
        self.keep = keep
        self.store = SnapStore(self.dir, keep=keep)

    # -- the model ------------------------------------------------------------------------
    def committed(self, state: Any, seq: int) -> None:
        if self.current is None or self.current[1] != seq:
            self.kept = [seq, *self.kept]
        self.kept = self.kept[: self.keep]
        self.current = (state, seq)
        self.states[seq] = state

    def next_seq(self, delta: int) -> int:
        base = self.current[1] if self.current is not None else 0
        return max(base + delta, 0)

    # -- rules --------------------------------------------------------------------------
    @rule(state=states, delta=st.integers(-2, 3))
    def create(self, state: Any, delta: int) -> None:
        seq = self.next_seq(delta)
        if self.current is not None and seq < self.current[1]:
            try:
                self.store.create(state, seq)
            except SeqRegression as e:
                assert e.stored == self.current[1] and e.offered == seq
            else:
                raise AssertionError(f"seq {seq} below {self.current[1]} was accepted")
            return
        if self.current is not None and seq == self.current[1]:
            # The stored seq again: a no-op for the identical state, else a conflict (issue 10).
            same = json.dumps(state) == json.dumps(self.current[0])
            try:
                info = self.store.create(state, seq)
            except SnapshotConflict:
                assert not same, "the identical state at the stored seq was refused"
            else:
                assert same and info.seq == seq, f"seq {seq} with another state was accepted"
            return
        info = self.store.create(state, seq)
        assert info.seq == seq
        self.committed(state, seq)
        self.crashes = 0
        assert not [n for n in os.listdir(self.dir) if is_temp_name(n)]

    @rule(delta=st.integers(0, 2))
    def create_unencodable(self, delta: int) -> None:
        try:
            self.store.create({"bad": object()}, self.next_seq(delta))
        except EncodeError:
            pass
        else:
            raise AssertionError("an object() was encoded")

    @rule(state=states, delta=st.integers(1, 3), step=st.integers(0, 45), after=st.booleans())
    def crash_during_create(self, state: Any, delta: int, step: int, after: bool) -> None:
        seq = self.next_seq(delta)
        fs = RecordingFS(crash_after=step) if after else RecordingFS(crash_before=step)
        store = SnapStore(self.dir, keep=self.keep, fs=fs)
        try:
            store.create(state, seq)
        except Crash:
            pass
        else:  # the create had fewer steps than that: it completed
            self.committed(state, seq)
            self.crashes = 0
            return
        try:
            got = self.store.restore()
        except SnapshotNotFound:
            assert self.current is None, "the previous snapshot vanished after a crash"
            return
        old = self.current
        if got == (state, seq) and (old is None or got != old):
            self.committed(state, seq)
        else:
            assert got == old, f"after a crash: {got!r}, expected {old!r} or {(state, seq)!r}"
        self.crashes += 1

    @rule(state=states, delta=st.integers(1, 3), step=st.integers(0, 40),
          err=st.sampled_from([errno.ENOSPC, errno.EIO, errno.EACCES, errno.EROFS]))
    def fault_during_create(self, state: Any, delta: int, step: int, err: int) -> None:
        """An OSError at one step: a typed error (or success, where there is a way round it);
        the old or the new pair afterwards, and never a temp file left."""
        seq = self.next_seq(delta)
        fs = RecordingFS(fail_errno=err, fail_at=step, record_data=False)
        temps_before = set(self.temps())
        try:
            SnapStore(self.dir, keep=self.keep, fs=fs).create(state, seq)
        except SnapError as e:
            assert isinstance(e.__cause__, OSError) and e.__cause__.errno == err, repr(e)
            got = self.store.restore() if self.current is not None or self.store.exists() else None
            if got is not None and got == (state, seq) and got != self.current:
                self.committed(state, seq)  # failed after the commit (the directory fsync)
            else:
                assert got == self.current, f"after {err} at #{step}: {got!r}, model {self.current!r}"
            self.crashes += 1  # history/ may keep one generation more until the next create
        else:
            self.committed(state, seq)
            # a fault in the housekeeping after the commit (pruning) is only logged
            self.crashes = self.crashes + 1 if fs.failures else 0
        assert set(self.temps()) <= temps_before  # its own temp files removed (a crash's may stay)

    def temps(self) -> list[str]:
        return [n for n in os.listdir(self.dir) if is_temp_name(n)] if os.path.isdir(self.dir) else []

    @rule(state=states, garbage=st.sampled_from([b"", b"{", b"\xff", b"{\"format\": \"snapmixin\"}"]))
    def damage_then_recover(self, state: Any, garbage: bytes) -> None:
        """snapshot.json damaged: CorruptSnapshot; fallback gives the newest kept older generation;
        the next create() works (its seq still checked) and the damaged generation is dropped."""
        if self.current is None or self.crashes:
            return
        with open(os.path.join(self.dir, "snapshot.json"), "wb") as f:
            f.write(garbage)
        try:
            self.store.restore()
        except CorruptSnapshot:
            pass
        else:
            raise AssertionError(f"restore() accepted a damaged snapshot.json: {garbage!r}")
        if len(self.kept) > 1:
            older = self.kept[1]
            assert self.store.restore(fallback=True) == (self.states[older], older)
        else:
            try:
                self.store.restore(fallback=True)
            except CorruptSnapshot:
                pass
            else:
                raise AssertionError("fallback found a generation the model does not keep")
        seq = self.current[1]
        if seq > 0:
            try:
                self.store.create(state, seq - 1)
            except SeqRegression:
                pass
            else:
                raise AssertionError(f"seq {seq - 1} accepted over a damaged snapshot of seq {seq}")
        self.store.create(state, seq + 1)
        self.kept = [seq + 1, *self.kept[1:]][: self.keep]  # the damaged one is not archived
        self.current = (state, seq + 1)
        self.states[seq + 1] = state

    @rule()
    def reopen(self) -> None:
        self.store = SnapStore(self.dir, keep=self.keep)

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def restore_matches_the_model(self) -> None:
        if self.current is None:
            try:
                got = self.store.restore()
            except SnapshotNotFound:
                return
            raise AssertionError(f"restore() found {got!r} where the model has nothing")
        assert self.store.restore() == self.current
        latest = self.store.latest()
        assert latest is not None and latest.seq == self.current[1]

    @invariant()
    def history_matches_the_model(self) -> None:
        if self.current is None:
            return
        seqs = [i.seq for i in self.store.history()]
        assert seqs == sorted(seqs, reverse=True) and len(seqs) == len(set(seqs)), seqs
        assert seqs[0] == self.current[1]
        if self.crashes:
            # each crash between the commit and the pruning may leave one generation too many
            assert set(self.kept) <= set(seqs) and len(seqs) <= self.keep + self.crashes, (seqs, self.kept)
        else:
            assert seqs == self.kept, (seqs, self.kept)
            seqfile = os.path.join(self.dir, "snapshot.seq")
            with open(seqfile, "rb") as f:
                assert f.read() == f"{self.current[1]}\n".encode()


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("SNAPMIXIN_STATEFUL_EXAMPLES", "300")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestStoreMachine = StoreMachine.TestCase


# -- regressions found by the machine, pinned as plain tests -------------------------------------

class _CrashAfterArchive(RecordingFS):
    """Dies right after hard-linking the current generation into history/ (before the commit)."""

    def link(self, src: str, dst: str) -> None:
        super().link(src, dst)
        self._die()
        raise Crash(f"after link {dst}")


def test_same_seq_create_after_a_crash_mid_archive(tmp_path: Any) -> None:
    """Found by the machine: the crashed writer's history/ link of the current generation
    outlived it when the next create() had the same seq (no archiving then): history() showed
    the seq twice, and pruning counted the stale link and deleted a real older generation."""
    d = tmp_path / "store"
    store = SnapStore(d, keep=2)
    store.create({"v": 1}, 1)
    store.create({"v": 2}, 2)
    try:
        SnapStore(d, keep=2, fs=_CrashAfterArchive()).create({"v": 3}, 3)
    except Crash:
        pass
    assert store.restore() == ({"v": 2}, 2)
    # Same seq, deliberately replaced (rehash's path: create() refuses it as a conflict now)
    store._commit(store.encode({"v": "2 again"}), 2, archive=False)
    assert [i.seq for i in store.history()] == [2, 1]
    assert store.restore() == ({"v": "2 again"}, 2)
    (d / "snapshot.json").write_bytes(b"damaged")
    assert store.restore(fallback=True) == ({"v": 1}, 1)
