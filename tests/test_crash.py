"""Crash exploration of ``SnapStore.create()`` (guarantee 2), after SQLite's crash tests.

One ``create()`` runs through :class:`tests.crashfs.RecordingFS`, which logs
every primitive file operation with the bytes written. Then, for every prefix
of that log, :func:`tests.crashfs.replay_states` builds each directory a power
loss at that point could leave: un-fsynced file data kept, dropped or torn,
and for each directory any prefix of its entry changes (create, rename, link,
unlink) made since its last ``fsync_dir``. Every such directory must restore to
the old ``(state, seq)`` or the new one, whole, and to exactly the new one
once ``create()`` has returned; and a later ``create()`` must work on it.

The model is checked against itself too: protocols with a step deliberately
removed (the temp file's fsync, the directory fsync) must be caught.

A second, simpler family kills the writer for real after (and before) each
operation (``Crash`` propagates out of ``create()``) and checks the directory
exactly as the crash left it, temp files included.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snapmixin import SnapStore
from snapmixin.errors import SnapError, SnapshotNotFound
from snapmixin.fsio import FileOps, is_temp_name
from tests.crashfs import MUTATING, Crash, Op, RecordingFS, replay_states, snapshot_tree, write_tree

STORE = "store"  # the store directory, relative to the modelled root


def state_for(seq: int) -> dict[str, Any]:
    """A state derived from its seq, so any mix of two generations is visible."""
    return {"seq": seq, "name": f"generation {seq}", "items": [seq * 1000 + i for i in range(200)],
            "nested": {"pad": "x" * (50 + seq), "flag": seq % 2 == 0}}


def new_state(sc: Scenario) -> dict[str, Any]:
    """The state the explored create() writes: differs from the old one even at the same seq."""
    return {**state_for(sc.new_seq), "rev": "new"}


@dataclass
class Scenario:
    name: str
    keep: int
    old_seqs: tuple[int, ...]      # creates made before the explored one (the last is "old")
    new_seq: int
    store_rel: str = STORE         # where the store lives under the root
    legacy: str | None = None      # seed the directory with a minisnap layout instead

    @property
    def old(self) -> int | None:
        if self.legacy is not None:
            return 7
        return self.old_seqs[-1] if self.old_seqs else None


SCENARIOS = [
    Scenario("first-keep1", keep=1, old_seqs=(), new_seq=1),
    Scenario("replace-keep1", keep=1, old_seqs=(1,), new_seq=2),
    Scenario("first-keep3", keep=3, old_seqs=(), new_seq=1),
    Scenario("replace-keep3", keep=3, old_seqs=(1,), new_seq=2),
    Scenario("replace-keep3-prune", keep=3, old_seqs=(1, 2, 5), new_seq=9),
    Scenario("same-seq-keep3", keep=3, old_seqs=(1, 4), new_seq=4),
    Scenario("first-missing-dirs", keep=1, old_seqs=(), new_seq=3, store_rel="a/b/store"),
    Scenario("legacy-0.1.1-keep1", keep=1, old_seqs=(), new_seq=8, legacy="0.1.1"),
    Scenario("legacy-0.1.3-keep3", keep=3, old_seqs=(), new_seq=8, legacy="0.1.3"),
]


def seed(root: Path, sc: Scenario) -> None:
    """Build the directory as it stands before the explored create()."""
    d = root / sc.store_rel
    root.mkdir(parents=True)  # the modelled root: exists, and is durable
    if sc.store_rel == STORE:
        d.mkdir(parents=True)  # an existing (empty) directory
    if sc.legacy == "0.1.1":
        (d / "snapshot.json").write_text(json.dumps(state_for(7), indent=2))
        (d / "snapshot.seq").write_text("7")
    elif sc.legacy == "0.1.3":
        for s in (3, 7):
            (d / f"snapshot_{s:020d}.json").write_text(json.dumps({"seq": s, "state": state_for(s)}))
    store = SnapStore(d, keep=sc.keep)
    for s in sc.old_seqs:
        store.create(state_for(s), s)


def write_new(store: SnapStore, sc: Scenario) -> None:
    """The explored write. An equal seq with another state is a conflict for create() now; the
    same-seq scenario explores the deliberate replacement of the current generation (the CLI's
    rehash: same seq, new state, no history generation added)."""
    if sc.new_seq == sc.old and sc.legacy is None:
        store._commit(store.encode(new_state(sc)), sc.new_seq, archive=False)
    else:
        store.create(new_state(sc), sc.new_seq)


def record(root: Path, sc: Scenario,
           fs: RecordingFS | None = None) -> tuple[dict[str, bytes | None], list[Op]]:
    seed(root, sc)
    before = snapshot_tree(os.fspath(root))
    fs = fs if fs is not None else RecordingFS()
    write_new(SnapStore(root / sc.store_rel, keep=sc.keep, fs=fs), sc)
    return before, fs.ops


def check_outcome(store_dir: Path, sc: Scenario, committed: bool) -> str | None:
    """None when the directory restores as guarantee 2 says, else what is wrong."""
    store = SnapStore(store_dir, keep=sc.keep)
    try:
        state, seq = store.restore()
    except SnapshotNotFound:
        if sc.old is None and not committed:
            return None
        return "SnapshotNotFound"
    except Exception as e:  # any other error is a violation
        return f"{type(e).__name__}: {e}"
    seqs = [i.seq for i in store.history()]
    if not seqs or seqs[0] != seq or seqs != sorted(set(seqs), reverse=True):
        return f"history() after the crash is {seqs} (restored seq {seq})"
    if seq == sc.new_seq and state == new_state(sc):
        return None
    if committed:
        return f"create() had returned but restore gave seq {seq}"
    if seq == sc.old and state == state_for(seq):
        return None
    return f"restore gave seq {seq} with a state that is neither the old nor the new one"


def check_recovery(store_dir: Path, sc: Scenario) -> str | None:
    """A later create() works on the crashed directory, and cleans up after the dead writer."""
    store = SnapStore(store_dir, keep=sc.keep)
    nxt = sc.new_seq + 10
    try:
        store.create(state_for(nxt), nxt)
        got = store.restore()
    except Exception as e:
        return f"recovery create failed: {type(e).__name__}: {e}"
    if got != (state_for(nxt), nxt):
        return f"recovery restore gave seq {got[1]}"
    temps = [n for n in os.listdir(store_dir) if is_temp_name(n)]
    if (store_dir / "history").is_dir():
        temps += [n for n in os.listdir(store_dir / "history") if is_temp_name(n)]
    if temps:
        return f"temp files left after recovery: {temps}"
    seqs = [i.seq for i in store.history()]
    if seqs != sorted(set(seqs), reverse=True) or seqs[0] != nxt or len(seqs) > sc.keep + 2:
        return f"history after recovery is {seqs}"
    return None


def explore(tmp: Path, sc: Scenario, before: dict[str, bytes | None], ops: list[Op],
            *, recover: bool = True, committed_at_end: bool = True) -> tuple[int, int, list[str]]:
    """Check every crash state of every prefix.

    Returns (crash states over all prefixes, distinct directories checked, violations).
    """
    root = os.fspath(tmp / "root")
    case = tmp / "case"
    seen: dict[tuple[Any, ...], str | None] = {}
    violations: list[str] = []
    checked = total = 0
    for k in range(len(ops) + 1):
        committed = committed_at_end and k == len(ops)
        for tree in replay_states(root, before, ops, k):
            total += 1
            key = (committed, *sorted(tree.items()))
            if key in seen:
                continue
            checked += 1
            shutil.rmtree(case, ignore_errors=True)
            case.mkdir()
            write_tree(tree, os.fspath(case))
            problem = check_outcome(case / sc.store_rel, sc, committed)
            if problem is None and recover:
                problem = check_recovery(case / sc.store_rel, sc)
            seen[key] = problem
            if problem is not None:
                last = ops[k - 1] if k else None
                violations.append(f"crash after {k} ops (last: {last}): {problem}; "
                                  f"files: {sorted(tree)}")
    return total, checked, violations


@pytest.mark.parametrize("sc", SCENARIOS, ids=lambda s: s.name)
def test_every_crash_point_restores_old_or_new(tmp_path: Path, sc: Scenario) -> None:
    before, ops = record(tmp_path / "root", sc)
    mutating = [op for op in ops if op.name in MUTATING and op.error is None]
    assert any(op.name == "replace" and op.dst and op.dst.endswith("snapshot.json") for op in mutating)
    total, checked, violations = explore(tmp_path, sc, before, ops)
    assert not violations, "\n".join(violations[:10])
    # The model did explore: more crash states than prefixes (un-synced data and entries branch).
    assert total > len(ops) + 1 and checked > 2
    print(f"{sc.name}: {len(ops)} ops, {len(mutating)} mutating, {total} crash states, {checked} distinct")


@pytest.mark.parametrize("op", ["write", "fsync", "fsync_dir"])
@pytest.mark.parametrize("sc", [SCENARIOS[1], SCENARIOS[3]], ids=lambda s: s.name)
def test_crash_points_after_an_io_error(tmp_path: Path, sc: Scenario, op: str) -> None:
    """EIO at the first write/fsync (of the snapshot's temp file) or fsync_dir: whether create()
    then fails or recovers in a fresh temp file, no crash point may expose data never made durable."""
    root = tmp_path / "root"
    seed(root, sc)
    before = snapshot_tree(os.fspath(root))
    fs = RecordingFS(fail_errno=errno.EIO, fail_op=op,
                     fail_path=None if op == "fsync_dir" else "snapshot.json")
    try:
        write_new(SnapStore(root / sc.store_rel, keep=sc.keep, fs=fs), sc)
        returned = True
    except SnapError as e:
        assert isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.EIO
        returned = False
    assert fs.failures == 1
    _, _, violations = explore(tmp_path, sc, before, fs.ops, committed_at_end=returned)
    assert not violations, "\n".join(violations[:10])


def test_op_sequence_has_the_documented_protocol(tmp_path: Path) -> None:
    """The commit: temp written, fsynced, renamed over snapshot.json, directory fsynced, in that order."""
    sc = Scenario("replace-keep3", keep=3, old_seqs=(1,), new_seq=2)
    _, ops = record(tmp_path / "root", sc)
    seq_of = [f"{op.name}:{os.path.basename(op.dst or op.path or '')}" for op in ops
              if op.name in MUTATING and op.error is None]
    store = os.fspath(tmp_path / "root" / STORE)
    tmp_path_op = next(op for op in ops if op.name == "open_tmp" and ".snapshot.json." in (op.path or ""))
    i_write = next(i for i, op in enumerate(ops) if op.name == "write" and op.path == tmp_path_op.path)
    i_fsync = next(i for i, op in enumerate(ops) if op.name == "fsync" and op.path == tmp_path_op.path)
    i_replace = next(i for i, op in enumerate(ops)
                     if op.name == "replace" and op.dst == os.path.join(store, "snapshot.json"))
    i_dsync = next(i for i, op in enumerate(ops) if op.name == "fsync_dir" and op.path == store
                   and i > i_replace)
    i_link = next(i for i, op in enumerate(ops) if op.name == "link")
    i_hsync = next(i for i, op in enumerate(ops) if op.name == "fsync_dir" and op.path and
                   op.path.endswith("history"))
    assert i_link < i_hsync < i_write < i_fsync < i_replace < i_dsync, seq_of
    # snapshot.seq is derived: written after the commit.
    # (in place when the file exists already, as here; else by a non-durable replace).
    i_seq = next(i for i, op in enumerate(ops)
                 if (op.name == "rewrite" and (op.path or "").endswith("snapshot.seq"))
                 or (op.name == "replace" and (op.dst or "").endswith("snapshot.seq")))
    assert i_seq > i_dsync


# -- the model must be able to fail --------------------------------------------------------------


class NoFsyncFS(RecordingFS):
    """A protocol with the temp file's fsync removed (the call is skipped and not logged)."""

    def fsync(self, fd: int) -> None:
        pass


class NoDirFsyncFS(RecordingFS):
    """A protocol with every directory fsync removed."""

    def fsync_dir(self, path: str) -> None:
        pass


@pytest.mark.parametrize("broken", [NoFsyncFS, NoDirFsyncFS], ids=["no-file-fsync", "no-dir-fsync"])
@pytest.mark.parametrize("sc", [SCENARIOS[1], SCENARIOS[3]], ids=lambda s: s.name)
def test_model_catches_a_broken_protocol(tmp_path: Path, sc: Scenario, broken: type[RecordingFS]) -> None:
    before, ops = record(tmp_path / "root", sc, fs=broken())
    _, _, violations = explore(tmp_path, sc, before, ops, recover=False)
    assert violations, "the crash model did not notice a protocol without its fsync"


def test_model_catches_the_seeds_two_rename_protocol(tmp_path: Path) -> None:
    """minisnap's protocol (state renamed, then the seq file renamed) pairs a new state with an old seq."""
    root = tmp_path / "root"
    d = root / STORE
    d.mkdir(parents=True)
    (d / "snapshot.json").write_text('{"seq": 1}')
    (d / "snapshot.seq").write_text("1")
    before = snapshot_tree(os.fspath(root))
    fs = RecordingFS()
    from snapmixin import fsio

    fsio.atomic_write(fs, os.fspath(d), "snapshot.json", b'{"seq": 2}')
    fsio.atomic_write(fs, os.fspath(d), "snapshot.seq", b"2")
    mixed = []
    for k in range(len(fs.ops) + 1):
        for tree in replay_states(os.fspath(root), before, fs.ops, k):
            state = tree.get(f"{STORE}/snapshot.json")
            seq = tree.get(f"{STORE}/snapshot.seq")
            if state == b'{"seq": 2}' and seq == b"1":
                mixed.append(k)
    assert mixed, "the model should find the seed's crash window"


def test_model_knows_a_failed_fsync_loses_the_data(tmp_path: Path) -> None:
    """After a failed fsync the kernel may have dropped the dirty pages (and marked them clean):
    fsyncing the same file again proves nothing. A protocol that retries that way is caught."""
    root = tmp_path / "root"
    (root / STORE).mkdir(parents=True)
    before = snapshot_tree(os.fspath(root))
    fs = RecordingFS(fail_errno=errno.EIO, fail_op="fsync")
    d = os.fspath(root / STORE)
    fd, tmp = fs.open_tmp(d, "snapshot.json")
    fs.write(fd, b'{"seq": 2}')
    with pytest.raises(OSError):
        fs.fsync(fd)
    fs.fsync(fd)  # "succeeds"
    fs.close(fd)
    fs.replace(tmp, os.path.join(d, "snapshot.json"))
    fs.fsync_dir(d)
    finals = {t.get(f"{STORE}/snapshot.json") for t in replay_states(os.fspath(root), before, fs.ops,
                                                                      len(fs.ops))}
    assert finals == {b'{"seq": 2}', b"", b'{"seq'}


# -- real crashes: the directory exactly as a dying writer leaves it -------------------------------


def _count_ops(tmp: Path, sc: Scenario) -> int:
    _, ops = record(tmp / "count", sc)
    return len(ops)


@pytest.mark.parametrize("sc", [s for s in SCENARIOS if s.legacy is None], ids=lambda s: s.name)
def test_real_crash_after_each_op(tmp_path: Path, sc: Scenario) -> None:
    n = _count_ops(tmp_path, sc)
    failures = []
    for i in range(n):
        for how in ("before", "after"):
            root = tmp_path / f"{how}{i}"
            seed(root, sc)
            fs = RecordingFS(**{f"crash_{how}": i})  # type: ignore[arg-type]
            store = SnapStore(root / sc.store_rel, keep=sc.keep, fs=fs)
            with pytest.raises(Crash):
                write_new(store, sc)
            assert fs.crashed
            problem = check_outcome(root / sc.store_rel, sc, committed=False)
            if problem is None:
                problem = check_recovery(root / sc.store_rel, sc)
            if problem is not None:
                failures.append(f"crash {how} op {i} ({fs.ops[-1] if fs.ops else '-'}): {problem}")
            shutil.rmtree(root)
    assert not failures, "\n".join(failures)


def test_crash_after_commit_returns_the_new_snapshot(tmp_path: Path) -> None:
    """A crash in the housekeeping after the rename still leaves the new snapshot."""
    sc = SCENARIOS[3]
    _, ops = record(tmp_path / "count", sc)
    i_replace = next(i for i, op in enumerate(ops)
                     if op.name == "replace" and (op.dst or "").endswith("snapshot.json"))
    for i in range(i_replace, len(ops)):
        root = tmp_path / f"r{i}"
        seed(root, sc)
        with pytest.raises(Crash):
            write_new(SnapStore(root / STORE, keep=3, fs=RecordingFS(crash_after=i)), sc)
        assert SnapStore(root / STORE).restore() == (new_state(sc), sc.new_seq)


def test_recording_fs_is_transparent(tmp_path: Path) -> None:
    """Through RecordingFS without faults, the store writes what the real file layer writes."""
    a, b = tmp_path / "a", tmp_path / "b"
    SnapStore(a, keep=2).create(state_for(3), 3)
    fs = RecordingFS()
    SnapStore(b, keep=2, fs=fs).create(state_for(3), 3)
    ta, tb = snapshot_tree(os.fspath(a)), snapshot_tree(os.fspath(b))
    assert sorted(ta) == sorted(tb)
    assert ta["snapshot.seq"] == tb["snapshot.seq"] == b"3\n"
    assert isinstance(fs, FileOps) and len(fs.ops) > 10


class NoHardLinksFS(RecordingFS):
    """A file system without hard links (some network and FAT ones): the store copies into history/."""

    def link(self, src: str, dst: str) -> None:
        self._run(Op(-1, "link", src, dst=dst), lambda: _raise(errno.EPERM, dst))


def _raise(err: int, path: str) -> None:
    raise OSError(err, os.strerror(err), path)


def test_crash_while_copying_into_history_is_cleaned_up(tmp_path: Path) -> None:
    """Without hard links the archive is a copy (an atomic write in history/); a writer killed in
    the middle of it leaves a temp file there, which the next create() removes."""
    sc = SCENARIOS[3]  # replace-keep3
    probe = NoHardLinksFS()
    _, ops = record(tmp_path / "probe", sc, fs=probe)
    assert any(op.name == "link" and op.error == "EPERM" for op in ops)
    i_write = next(op.index for op in ops if op.name == "write" and "history" in (op.path or ""))
    root = tmp_path / "root"
    seed(root, sc)
    with pytest.raises(Crash):
        SnapStore(root / STORE, keep=sc.keep, fs=NoHardLinksFS(crash_after=i_write)).create(
            new_state(sc), sc.new_seq)
    hist = root / STORE / "history"
    assert [n for n in os.listdir(hist) if is_temp_name(n)]  # the dead writer's temp file
    assert check_outcome(root / STORE, sc, committed=False) is None
    SnapStore(root / STORE, keep=sc.keep, fs=NoHardLinksFS()).create(state_for(50), 50)
    assert SnapStore(root / STORE).restore() == (state_for(50), 50)
    assert not [n for n in os.listdir(hist) if is_temp_name(n)]
    assert [i.seq for i in SnapStore(root / STORE, keep=3).history()] == [50, 1]
