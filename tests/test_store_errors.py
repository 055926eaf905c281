"""Bad input and failing file systems: each gets its typed error, and the previous snapshot is intact.

Read-only directories and full disks are injected through ``tests.crashfs.RecordingFS``
(CI runs as root, which ignores permission bits).
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snapmixin import SnapStore
from snapmixin.errors import (
    CorruptSnapshot,
    DecodeError,
    EncodeError,
    InvalidSeq,
    SeqRegression,
    SnapError,
    SnapshotNotFound,
    StoreLocked,
)
from snapmixin.fsio import FileOps, is_temp_name
from tests.crashfs import MUTATING, RecordingFS
from tests.support import files_no_lock as files
from tests.support import write_v1

OLD = {"name": "old", "items": [1, 2, 3]}
NEW = {"name": "new", "items": [4, 5, 6, 7]}


@pytest.fixture
def d(tmp_path: Path) -> Path:
    return tmp_path / "store"


def seeded(d: Path, keep: int = 1, seqs: tuple[int, ...] = (5,)) -> SnapStore:
    store = SnapStore(d, keep=keep)
    for s in seqs:
        store.create(OLD if s == seqs[-1] else {"s": s}, s)
    return store




def assert_intact(d: Path, before: dict[str, bytes], seq: int = 5, keep: int = 1) -> None:
    """Same files, byte for byte; no temp file; restores the old state."""
    after = files(d)
    temps = [n for n in after if is_temp_name(os.path.basename(n))]
    assert not temps, f"temp files left: {temps}"
    assert after == before
    assert SnapStore(d, keep=keep).restore() == (OLD, seq)


# -- unencodable states ----------------------------------------------------------------------


@dataclass
class Holder:
    name: str
    values: list[Any]


class NoAdapter:
    pass


@pytest.mark.parametrize(("state", "json_path"), [
    ({"a": [1, object()]}, "$.a[1]"),
    ({"x": {"y": math.nan}}, "$.x.y"),
    ([1.0, math.inf], "$[1]"),
    ({"deep": {"er": [-math.inf]}}, "$.deep.er[0]"),
    (Holder("h", [1, {"k": object()}]), "$.values[1].k"),
    ({"with space": {"k": 1j}}, "$['with space'].k"),
])
def test_unencodable_state_names_the_json_path(d: Path, state: Any, json_path: str) -> None:
    store = seeded(d)
    before = files(d)
    with pytest.raises(EncodeError) as e:
        store.create(state, 6)
    assert e.value.json_path == json_path
    assert json_path in str(e.value) and str(d / "snapshot.json") in str(e.value)
    assert "untouched" in str(e.value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, SnapError)
    assert_intact(d, before)


def test_a_nan_in_a_large_state_is_refused_while_its_body_is_being_hashed(d: Path) -> None:
    """Above Encoded.THREADED the formatted body is hashed in a worker thread while the NaN scan
    runs: a NaN near the end still raises before anything is written, and a good large state
    written after it commits with the right checksum."""
    from snapmixin.store.format import Encoded

    store = seeded(d)
    before = files(d)
    filler = ["x" * 100] * (Encoded.THREADED // 100 + 10)
    with pytest.raises(EncodeError) as e:
        store.create({"filler": filler, "last": [1.0, math.nan]}, 6)
    assert e.value.json_path == "$.last[1]"
    assert_intact(d, before)
    info = store.create({"filler": filler, "last": [1.0, 2.0]}, 6)
    assert info.size > Encoded.THREADED
    latest = SnapStore(d).latest()
    assert latest is not None and latest.checksum == info.checksum
    assert SnapStore(d).restore() == ({"filler": filler, "last": [1.0, 2.0]}, 6)  # verified


def test_unencodable_type_says_how_to_make_it_work(d: Path) -> None:
    store = seeded(d)
    before = files(d)
    with pytest.raises(EncodeError, match=r"NoAdapter.*dataclass.*__snapshot_state__"):
        store.create(NoAdapter(), 6)
    assert_intact(d, before)


def test_too_deep_or_self_referencing_state_is_an_encode_error(d: Path) -> None:
    store = seeded(d)
    before = files(d)
    deep: list[Any] = []
    for _ in range(50_000):
        deep = [deep]
    loop: list[Any] = []
    loop.append(loop)
    for bad in (deep, loop):
        with pytest.raises(EncodeError, match="nested too deeply"):
            store.create(bad, 6)
    assert_intact(d, before)


def test_encode_error_touches_no_disk(d: Path) -> None:
    fs = RecordingFS()
    with pytest.raises(EncodeError):
        SnapStore(d, fs=fs).create({"x": object()}, 1)
    assert fs.ops == [] and not d.exists()


# -- seq -------------------------------------------------------------------------------------


def test_seq_below_stored_is_refused(d: Path) -> None:
    store = seeded(d)
    before = files(d)
    with pytest.raises(SeqRegression) as e:
        store.create(NEW, 4)
    assert e.value.stored == 5 and e.value.offered == 4
    assert "4" in str(e.value) and "5" in str(e.value) and str(d / "snapshot.json") in str(e.value)
    assert_intact(d, before)


def test_seq_regression_uses_snapshot_seq_when_the_envelope_is_damaged(d: Path) -> None:
    store = seeded(d, keep=1, seqs=(5,))
    (d / "snapshot.json").write_bytes(b"\x00garbage")
    with pytest.raises(SeqRegression):
        store.create(NEW, 3)
    store.create(NEW, 6)
    assert store.restore() == (NEW, 6)


@pytest.mark.parametrize("seq", [-1, -(2**63), 2**63, 1.0, 1.5, "3", None, True, False, [1]],
                         ids=repr)
def test_invalid_seq(d: Path, seq: Any) -> None:
    store = seeded(d)
    before = files(d)
    with pytest.raises(InvalidSeq) as e:
        store.create(NEW, seq)
    assert isinstance(e.value, ValueError)
    assert "seq" in str(e.value)
    assert_intact(d, before)


# -- damaged files ----------------------------------------------------------------------------


@pytest.mark.parametrize("damage", [
    pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated-half"),
    pytest.param(lambda raw: raw[:-3], id="truncated-end"),
    pytest.param(lambda raw: b"", id="empty"),
    pytest.param(lambda raw: b"\x00" * len(raw), id="zeroed"),
    pytest.param(lambda raw: raw.replace(b":", b";", 1), id="garbled"),
    pytest.param(lambda raw: raw[:40] + bytes(range(256)) + raw[40:], id="binary"),
    pytest.param(lambda raw: raw.replace(b'"state"', b'"stat"'), id="no-state"),
    pytest.param(lambda raw: raw.replace(b'"seq": 5', b'"seq": -5'), id="negative-seq"),
    pytest.param(lambda raw: raw.replace(b'"seq": 5', b'"seq": "5"'), id="string-seq"),
    pytest.param(lambda raw: raw.replace(b'"created_at": "', b'"created_at": "x'), id="bad-date"),
    pytest.param(lambda raw: raw.replace(b'"checksum": "sha256:', b'"checksum": "md5:'), id="bad-algo"),
])
def test_damaged_snapshot_is_corrupt_and_names_the_file(d: Path, damage: Any) -> None:
    store = seeded(d)
    p = d / "snapshot.json"
    p.write_bytes(damage(p.read_bytes()))
    with pytest.raises(CorruptSnapshot) as e:
        store.restore()
    assert e.value.path == str(p)
    assert str(p) in str(e.value)
    assert len(str(e.value)) > len(str(p)) + 10  # says what is wrong, too


def test_truncated_message_says_truncated(d: Path) -> None:
    store = seeded(d)
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(CorruptSnapshot, match="truncated or garbled"):
        store.restore()


def test_checksum_mismatch_says_how_to_accept_the_edit(d: Path) -> None:
    store = seeded(d)
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes().replace(b'"old"', b'"hand-edited"'))
    with pytest.raises(CorruptSnapshot) as e:
        store.restore()
    msg = str(e.value)
    assert "checksum mismatch" in msg and str(p) in msg
    assert f"python -m snapmixin rehash {d}" in msg
    # latest()/history() read only headers and do not verify: they still work
    latest = store.latest()
    assert latest is not None and latest.seq == 5


def test_whitespace_change_outside_state_keeps_checksum_valid(d: Path) -> None:
    """Format version 1: the checksum covers the state's bytes only: reformatting the header is no damage."""
    store = SnapStore(d)
    p = write_v1(d, OLD, 5)
    p.write_bytes(p.read_bytes().replace(b'  "format": "snapmixin",\n', b'"format":"snapmixin",'))
    assert store.restore() == (OLD, 5)


def test_whitespace_change_outside_state_is_damage_in_version_2(d: Path) -> None:
    """Format version 2 covers every byte: the same reformatting is detected."""
    store = seeded(d)
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes().replace(b'  "format": "snapmixin",\n', b'"format":"snapmixin",'))
    with pytest.raises(CorruptSnapshot, match="checksum mismatch"):
        store.restore()


@pytest.mark.parametrize(("fv", "match"), [(3, "newer.*upgrade snapmixin"), (0, "unknown format_version"),
                                           ('"1"', "unknown format_version"), ("null", "unknown")])
def test_unknown_format_version(d: Path, fv: Any, match: str) -> None:
    store = seeded(d)
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes().replace(b'"format_version": 2', f'"format_version": {fv}'.encode()))
    with pytest.raises(CorruptSnapshot, match=match) as e:
        store.restore()
    assert e.value.path == str(p)


def test_newer_format_refuses_to_be_overwritten_below_its_seq(d: Path) -> None:
    store = seeded(d)
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes().replace(b'"format_version": 2', b'"format_version": 3'))
    with pytest.raises(SeqRegression):
        store.create(NEW, 4)  # the seq is still known from snapshot.seq


@pytest.mark.parametrize("seqfile", [b"9\n", b"1\n", b"", b"garbage", b"5", b"-3\n", None],
                         ids=["higher", "lower", "empty", "garbage", "no-newline", "negative", "missing"])
def test_snapshot_seq_disagreeing_is_repaired(d: Path, seqfile: bytes | None) -> None:
    store = seeded(d)
    sp = d / "snapshot.seq"
    if seqfile is None:
        sp.unlink()
    else:
        sp.write_bytes(seqfile)
    assert store.restore() == (OLD, 5)
    assert sp.read_bytes() == b"5\n"


def test_snapshot_seq_is_not_repaired_while_a_writer_holds_the_lock(d: Path) -> None:
    store = seeded(d)
    (d / "snapshot.seq").write_bytes(b"1\n")
    fd = FileOps().lock(str(d / ".lock"), 0)
    try:
        assert store.restore() == (OLD, 5)  # readers never wait for the lock
        assert (d / "snapshot.seq").read_bytes() == b"1\n"
    finally:
        FileOps().unlock(fd)
    assert store.restore() == (OLD, 5)
    assert (d / "snapshot.seq").read_bytes() == b"5\n"


def test_type_mismatch_on_restore_is_a_decode_error_with_path(d: Path) -> None:
    seeded(d)

    @dataclass
    class Wrong:
        name: str
        items: list[str]

    with pytest.raises(DecodeError) as e:
        SnapStore(d).restore(Wrong)
    assert e.value.json_path == "$.items[0]" and str(d / "snapshot.json") in str(e.value)

    @dataclass
    class Missing:
        name: str
        items: list[int]
        extra: int

    with pytest.raises(DecodeError, match="extra"):
        SnapStore(d).restore(Missing)

    @dataclass
    class Fewer:
        name: str

    with pytest.raises(DecodeError, match=r"unknown (key|field).*items"):
        SnapStore(d).restore(Fewer)
    assert SnapStore(d, ignore_unknown_keys=True).restore(Fewer) == (Fewer("old"), 5)


# -- where the snapshot should be --------------------------------------------------------------


def test_missing_directory_on_restore(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "nope" / "deeper")
    with pytest.raises(SnapshotNotFound) as e:
        store.restore()
    assert isinstance(e.value, FileNotFoundError)
    assert "does not exist" in str(e.value) and str(tmp_path / "nope" / "deeper") in str(e.value)
    assert not (tmp_path / "nope").exists()


def test_empty_directory_on_restore(d: Path) -> None:
    d.mkdir()
    with pytest.raises(SnapshotNotFound, match="no snapshot in"):
        SnapStore(d).restore()


def test_path_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "afile"
    f.write_text("precious")
    store = SnapStore(f)
    with pytest.raises(SnapshotNotFound, match="is a file"):
        store.restore()
    with pytest.raises(SnapError) as e:
        store.create(NEW, 1)
    assert str(f) in str(e.value) and "a file rather than a directory" in str(e.value)
    assert isinstance(e.value.__cause__, OSError)
    assert f.read_text() == "precious"
    # A parent that is a file, too.
    with pytest.raises(SnapError) as e2:
        SnapStore(f / "sub").create(NEW, 1)
    assert isinstance(e2.value.__cause__, OSError)
    assert f.read_text() == "precious"


def test_snapshot_json_that_is_a_directory_or_symlink(d: Path, tmp_path: Path) -> None:
    d.mkdir()
    (d / "snapshot.json").mkdir()
    with pytest.raises(CorruptSnapshot, match="not a regular file"):
        SnapStore(d).restore()
    os.rmdir(d / "snapshot.json")
    target = tmp_path / "elsewhere.json"
    target.write_text("{}")
    os.symlink(target, d / "snapshot.json")
    with pytest.raises(CorruptSnapshot, match="not a regular file"):
        SnapStore(d).restore()


# -- failing file systems: injected at each step ----------------------------------------------


def _mutating_steps(d: Path, keep: int) -> tuple[list[tuple[int, str]], int]:
    """(op index, op name) of every mutating step of a create() on a seeded copy, and the
    index of the commit (the rename over snapshot.json)."""
    probe = d.parent / "probe"
    seeded(probe, keep=keep, seqs=(3, 5))
    fs = RecordingFS()
    SnapStore(probe, keep=keep, fs=fs).create(NEW, 6)
    commit = next(op.index for op in fs.ops
                  if op.name == "replace" and (op.dst or "").endswith(os.sep + "snapshot.json"))
    return [(op.index, op.name) for op in fs.ops if op.name in MUTATING and op.error is None], commit


@pytest.mark.parametrize("keep", [1, 3])
@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO, errno.EDQUOT], ids=errno.errorcode.get)
def test_write_error_at_each_step(d: Path, keep: int, err: int, caplog: pytest.LogCaptureFixture) -> None:
    steps, commit = _mutating_steps(d, keep)
    assert len(steps) >= 8
    outcomes: dict[str, int] = {"refused": 0, "written-not-durable": 0, "housekeeping": 0, "retried": 0}
    for index, name in steps:
        case = d.parent / f"case-{index}"
        store = seeded(case, keep=keep, seqs=(3, 5))
        before = files(case)
        fs = RecordingFS(fail_errno=err, fail_at=index)
        try:
            info = SnapStore(case, keep=keep, fs=fs).create(NEW, 6)
        except SnapError as e:
            where = f"{err} at #{index} {name}"
            assert isinstance(e.__cause__, OSError) and e.__cause__.errno == err, where
            assert os.strerror(err) in str(e), where
            assert fs.failures == 1, where
            state, seq = store.restore()
            if seq == 5:
                assert "intact" in str(e), where
                assert state == OLD, where
                assert_intact(case, before, keep=keep)
                outcomes["refused"] += 1
            else:
                outcomes["written-not-durable"] += 1
                # Only a failure to fsync the directory after the rename leaves the new snapshot.
                assert name == "fsync_dir" and (state, seq) == (NEW, 6), where
                assert "intact" not in str(e) and "power loss" in str(e), where
                assert not [n for n in os.listdir(case) if is_temp_name(n)], where
        else:
            # Success: the step was housekeeping after the commit, a failed hard link into history/
            # (the store copies instead), or an EIO while writing the temp file, which atomic_write
            # may retry once in a new temp file.
            where = f"{err} at #{index} {name}"
            assert info.seq == 6 and fs.failures == 1, where
            assert store.restore() == (NEW, 6), where
            if index < commit:
                assert name == "link" or (err == errno.EIO and name in ("write", "fsync", "close")), where
                outcomes["retried"] += 1
            else:
                outcomes["housekeeping"] += 1
            assert not [n for n in os.listdir(case) if is_temp_name(n)]
        # whatever happened, the next create works and cleans up
        SnapStore(case, keep=keep).create({"next": 1}, 7)
        assert store.restore() == ({"next": 1}, 7)
        assert not [n for n in os.listdir(case) if is_temp_name(n)]
        assert len(store.history()) <= keep + 1
    assert outcomes["refused"] >= 4 and outcomes["written-not-durable"] == 1, outcomes
    # after the commit: snapshot.seq, rewritten in place (one step)
    assert outcomes["refused"] + outcomes["retried"] >= 6 and outcomes["housekeeping"] >= 1, outcomes


@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES, errno.EPERM], ids=errno.errorcode.get)
@pytest.mark.parametrize("keep", [1, 3])
def test_read_only_directory(d: Path, keep: int, err: int) -> None:
    store = seeded(d, keep=keep)
    before = files(d)
    fs = RecordingFS(fail_errno=err, fail_op=MUTATING - {"fsync", "fsync_dir"}, fail_times=None)
    with pytest.raises(SnapError) as e:
        SnapStore(d, keep=keep, fs=fs).create(NEW, 6)
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == err
    assert str(d) in str(e.value) and "intact" in str(e.value)
    assert_intact(d, before, keep=keep)
    # restore needs no write access (the seq repair is skipped quietly)
    (d / "snapshot.seq").write_bytes(b"0\n")
    before = files(d)
    assert SnapStore(d, keep=keep, fs=fs).restore() == (OLD, 5)
    assert files(d) == before
    assert store.restore() == (OLD, 5)


@pytest.mark.parametrize("op", ["open_tmp", "write", "fsync", "close", "replace"])
def test_read_only_after_the_lock(d: Path, op: str) -> None:
    """The lock file can be opened but the snapshot cannot be written (EROFS/EACCES at one step)."""
    store = seeded(d, keep=3, seqs=(3, 5))
    before = files(d)
    # only the snapshot's temp file (open_tmp matches on its target's name: the temp does not exist yet)
    fs = RecordingFS(fail_errno=errno.EACCES, fail_op=op,
                     fail_path="snapshot.json" if op == "open_tmp" else "/.snapshot.json.")
    with pytest.raises(SnapError) as e:
        SnapStore(d, keep=3, fs=fs).create(NEW, 6)
    assert e.value.__cause__ is not None and getattr(e.value.__cause__, "errno", None) == errno.EACCES
    # history/ may hold a new hard link to the (unchanged) current generation: same bytes
    after = files(d)
    assert {k: v for k, v in after.items() if not k.startswith("history")} == {
        k: v for k, v in before.items() if not k.startswith("history")}
    assert not [n for n in after if is_temp_name(os.path.basename(n))]
    assert store.restore() == (OLD, 5)


def test_housekeeping_failure_is_a_warning(d: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = seeded(d)
    # in place first, then (that failing) by a new temp file: both fail
    fs = RecordingFS(fail_errno=errno.ENOSPC, fail_op={"rewrite", "write"}, fail_path="snapshot.seq",
                     fail_times=None)
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        info = SnapStore(d, fs=fs).create(NEW, 6)
    assert info.seq == 6 and fs.failures == 2
    assert any("snapshot.seq" in r.getMessage() for r in caplog.records)
    assert (d / "snapshot.seq").read_bytes() == b"5\n"  # stale ...
    assert store.restore() == (NEW, 6)
    assert (d / "snapshot.seq").read_bytes() == b"6\n"  # ... and repaired by restore


# -- two writers -------------------------------------------------------------------------------


def test_second_writer_in_this_process_gets_store_locked(d: Path) -> None:
    store = seeded(d)
    before = files(d)
    fd = FileOps().lock(str(d / ".lock"), 0)
    try:
        with pytest.raises(StoreLocked) as e:
            store.create(NEW, 6)
        assert str(d / ".lock") in str(e.value) and "lock_timeout" in str(e.value)
        with pytest.raises(StoreLocked, match=r"after waiting 0\.05 s"):
            SnapStore(d, lock_timeout=0.05).create(NEW, 6)
        assert_intact(d, before)
    finally:
        FileOps().unlock(fd)
    store.create(NEW, 6)
    assert store.restore() == (NEW, 6)


def test_waiting_writer_gets_the_lock_when_it_is_released(d: Path) -> None:
    store = seeded(d)
    fd = FileOps().lock(str(d / ".lock"), 0)
    waiting = threading.Event()

    class Signalling(RecordingFS):
        def lock(self, path: str, timeout: float | None) -> int:
            waiting.set()
            return super().lock(path, timeout)

    result: list[Any] = []

    def writer() -> None:
        try:
            result.append(SnapStore(d, lock_timeout=30, fs=Signalling()).create(NEW, 6))
        except BaseException as e:  # pragma: no cover - reported below
            result.append(e)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert waiting.wait(10)
        assert store.restore() == (OLD, 5)  # the writer cannot be past the lock yet
    finally:
        FileOps().unlock(fd)
    t.join(30)
    assert not t.is_alive()
    assert len(result) == 1 and not isinstance(result[0], BaseException), result
    assert store.restore() == (NEW, 6)


_HOLDER = """
import sys
from snapmixin.fsio import FileOps
fd = FileOps().lock(sys.argv[1], 0)
sys.stdout.write("locked\\n"); sys.stdout.flush()
sys.stdin.readline()
"""


def test_second_writer_in_another_process_gets_store_locked(d: Path) -> None:
    store = seeded(d)
    before = files(d)
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(d / ".lock")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline() == "locked\n"
        with pytest.raises(StoreLocked):
            store.create(NEW, 6)
        assert_intact(d, before)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:  # pragma: no cover
            child.kill()
            child.wait()
    store.create(NEW, 6)
    assert store.restore() == (NEW, 6)


def test_lock_timeout_validation(d: Path) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        SnapStore(d, lock_timeout=-1)


def test_errors_are_picklable(d: Path) -> None:
    import pickle

    store = seeded(d)
    with pytest.raises(SeqRegression) as e:
        store.create(NEW, 1)
    err = pickle.loads(pickle.dumps(e.value))
    assert type(err) is SeqRegression and err.stored == 5 and err.offered == 1 and str(err) == str(e.value)
    assert json.loads((d / "snapshot.json").read_text())["seq"] == 5


# -- snapshot.seq is rewritten in place, but never through a symlink or into a FIFO -------------


def test_seq_file_symlink_is_replaced_not_written_through(d: Path, tmp_path: Path) -> None:
    seeded(d)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious\n")
    (d / "snapshot.seq").unlink()
    (d / "snapshot.seq").symlink_to(outside)
    SnapStore(d).create(NEW, 6)
    assert outside.read_bytes() == b"precious\n"
    assert not (d / "snapshot.seq").is_symlink() and (d / "snapshot.seq").read_bytes() == b"6\n"


def test_seq_file_fifo_does_not_hang_and_is_replaced(d: Path) -> None:
    seeded(d)
    (d / "snapshot.seq").unlink()
    os.mkfifo(d / "snapshot.seq")
    SnapStore(d).create(NEW, 6)  # O_NONBLOCK: a FIFO without a reader fails at once
    assert (d / "snapshot.seq").read_bytes() == b"6\n"


def test_seq_file_shrinks_on_rollback_to_a_shorter_seq(d: Path) -> None:
    store = SnapStore(d)
    store.create({"n": 1}, 100)
    assert (d / "snapshot.seq").read_bytes() == b"100\n"
    store._commit(b'{"n":0}', 7, allow_regression=True)
    assert (d / "snapshot.seq").read_bytes() == b"7\n"  # truncated, not "7\n0\n"


# -- issue 10: an I/O error reading an intact snapshot is not damage ----------------------------
def test_an_io_error_reading_the_current_snapshot_is_raised_not_skipped(d: Path) -> None:
    """One transient EIO must not make fallback return an older generation (the next save,
    old seq + 1, would then replace the intact newest one)."""
    seeded(d, keep=3, seqs=(4, 5))
    before = files(d)
    fs = RecordingFS(fail_op="read", fail_path=str(d / "snapshot.json"), fail_errno=errno.EIO,
                     fail_times=None)
    flaky = SnapStore(d, keep=3, fs=fs)
    for call in (flaky.restore, lambda: flaky.restore(fallback=True), flaky.latest):
        with pytest.raises(SnapError) as e:
            call()
        assert not isinstance(e.value, CorruptSnapshot), e.value
        assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.EIO
        assert str(d / "snapshot.json") in str(e.value)
    with pytest.raises(SnapError) as e:  # a writer that cannot read the current one writes nothing
        flaky.create(NEW, 6)
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.EIO
    assert files(d) == before
    assert SnapStore(d).restore() == (OLD, 5)
