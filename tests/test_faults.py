"""Injected faults at each file-system step of ``create()`` (issue 6, part 2).

A ``create()`` on a seeded directory is recorded once through
:class:`tests.crashfs.RecordingFS`; then, for every op of that log (reads,
locks and stats included, not only the mutating ones) and for each of
``ENOSPC``, ``EIO``, ``EACCES``, ``EROFS`` and ``EDQUOT``, a fresh copy of the
directory gets the same ``create()`` with that op failing. Each run must:

- raise nothing but a ``SnapError`` (with the ``OSError`` as ``__cause__``), or succeed;
- when it raised before the commit (the rename over ``snapshot.json``): leave
  ``snapshot.json``, ``snapshot.seq`` and every ``history/`` file byte for byte
  as they were, and restore the old state; after the commit: restore the new one;
- when it succeeded: restore the new state, with the history ``keep`` asks for;
- leave no temp file, and let the next ``create()`` (fault gone) succeed.

``EIO`` on a file's fsync (write and close too): the temp file is treated as
lost, removed, and the write done again once in a *new* temp file (see
:func:`snapmixin.fsio.atomic_write`); the failed file is never written or
fsynced again. A rename that fails (``EXDEV``, ``EBUSY``, ``EACCES``...) is
refused like any other step.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from snapmixin import SnapStore
from snapmixin.errors import SnapError, StoreLocked
from snapmixin.fsio import is_temp_name
from tests.crashfs import Op, RecordingFS
from tests.support import files, temps

OLD = {"name": "old", "items": list(range(50))}
NEW = {"name": "new", "items": list(range(60, 120)), "extra": {"k": "v"}}
NEXT = {"name": "next"}
ERRNOS = [errno.ENOSPC, errno.EIO, errno.EACCES, errno.EROFS, errno.EDQUOT]
SEEDED = (3, 5)  # creates made before the faulty one; 5 is the "old" generation


def seed(d: Path, keep: int) -> None:
    store = SnapStore(d, keep=keep)
    for s in SEEDED[:-1]:
        store.create({"name": f"gen {s}"}, s)
    store.create(OLD, SEEDED[-1])






def commit_index(ops: list[Op]) -> int | None:
    """Index of the successful rename over snapshot.json, if the log has one."""
    for op in ops:
        if op.name == "replace" and op.error is None and (op.dst or "").endswith(os.sep + "snapshot.json"):
            return op.index
    return None


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, list[Op]]]:
    """Per keep: a seeded directory to copy, and the op log of a clean create() on a copy of it."""
    out = {}
    for keep in (1, 3):
        base = tmp_path_factory.mktemp(f"faults-keep{keep}")
        tpl = base / "template"
        seed(tpl, keep)
        probe = base / "probe"
        shutil.copytree(tpl, probe)
        fs = RecordingFS(record_data=False)
        SnapStore(probe, keep=keep, fs=fs).create(NEW, 6)
        out[keep] = (tpl, fs.ops)
    return out


@pytest.mark.parametrize("keep", [1, 3])
@pytest.mark.parametrize("err", ERRNOS, ids=errno.errorcode.get)
def test_fault_at_each_step(tmp_path: Path, templates: dict[int, tuple[Path, list[Op]]],
                            keep: int, err: int) -> None:
    tpl, ops = templates[keep]
    clean_commit = commit_index(ops)
    assert clean_commit is not None and len(ops) >= 15
    before = files(tpl)
    old_history = {k: v for k, v in before.items() if k.startswith("history")}
    tally = {"refused": 0, "committed-then-failed": 0, "succeeded": 0}
    for op in ops:
        where = f"{errno.errorcode[err]} at #{op.index} {op}"
        case = tmp_path / f"case-{op.index}"
        shutil.copytree(tpl, case)
        fs = RecordingFS(fail_errno=err, fail_at=op.index, record_data=False)
        store = SnapStore(case, keep=keep, fs=fs)
        try:
            info = store.create(NEW, 6)
        except SnapError as e:
            assert not isinstance(e, StoreLocked), where
            assert isinstance(e.__cause__, OSError) and e.__cause__.errno == err, where
            assert str(case) in str(e), where
            assert fs.failures == 1, where
            committed = commit_index(fs.ops)
            if committed is None:
                tally["refused"] += 1
                after = files(case)
                # Everything as it was (a .lock may have been created; nothing else).
                assert {k: v for k, v in after.items() if k != ".lock"} == {
                    k: v for k, v in before.items() if k != ".lock"}, where
                assert SnapStore(case, keep=keep).restore() == (OLD, 5), where
                assert "intact" in str(e), where
            else:
                tally["committed-then-failed"] += 1
                assert op.name == "fsync_dir", where  # only the directory fsync after the rename
                assert SnapStore(case, keep=keep).restore() == (NEW, 6), where
        else:
            tally["succeeded"] += 1
            assert info.seq == 6, where
            assert SnapStore(case, keep=keep).restore() == (NEW, 6), where
            # Before the commit a fault is survived only where there is a way round it: the
            # probe of the directory (make_dirs lets makedirs decide), a hard link into history/
            # (it falls back to a copy), or EIO writing the temp file (redone in a new one).
            # After the commit only housekeeping remains (snapshot.seq, pruning, unlock).
            # The parent directory's fsync (once per store) is skipped where the parent
            # cannot be opened (EACCES/EPERM: e.g. a mode 0711 home directory).
            assert op.index > clean_commit or (op.name == "lstat" and op.index == 0) or (
                op.name == "link") or (err == errno.EIO and op.name in ("write", "fsync", "close")) or (
                op.name == "fsync_dir" and op.path == str(tpl.parent)
                and err in (errno.EACCES, errno.EPERM)), where
            hist = [i.seq for i in SnapStore(case, keep=keep).history()]
            if keep > 1:
                assert hist[:2] == [6, 5], f"{where}: history {hist}"  # the old generation kept
                for k, v in old_history.items():  # surviving generations unchanged
                    if (case / k).exists():
                        assert (case / k).read_bytes() == v, where
            else:
                assert hist == [6], where
        assert not temps(case), f"{where}: temp files left: {temps(case)}"
        # The fault is gone: the next create() works and cleans up.
        SnapStore(case, keep=keep).create(NEXT, 7)
        assert SnapStore(case, keep=keep).restore() == (NEXT, 7), where
        assert not temps(case), where
        assert len(SnapStore(case, keep=keep).history()) <= keep + 1, where  # (+1: a schema pin)
        shutil.rmtree(case)
    assert tally["refused"] >= 6, tally
    assert tally["committed-then-failed"] == 1, tally
    assert tally["succeeded"] >= 2, tally
    FIGURES[(keep, err)] = (len(ops), tally)


FIGURES: dict[tuple[int, int], tuple[int, dict[str, int]]] = {}


# -- EIO on fsync: a new temp file, never the same one ------------------------------------------

def _snapshot_temp_ops(fs: RecordingFS) -> list[Op]:
    return [op for op in fs.ops if op.path is not None and ".snapshot.json." in op.path]


@pytest.mark.parametrize("op_name", ["fsync", "write", "close"])
def test_transient_eio_redoes_the_write_in_a_new_temp_file(tmp_path: Path, op_name: str) -> None:
    d = tmp_path / "store"
    seed(d, keep=1)
    fs = RecordingFS(fail_errno=errno.EIO, fail_op=op_name, fail_path=".snapshot.json.")
    info = SnapStore(d, fs=fs).create(NEW, 6)
    assert info.seq == 6 and fs.failures == 1
    failed = next(op for op in fs.ops if op.error == "EIO")
    bad = failed.path
    assert bad is not None
    later = fs.ops[fs.ops.index(failed) + 1:]
    # The failed file is closed and removed, never written, fsynced or renamed afterwards.
    assert [op.name for op in later if op.path == bad] in (["close", "unlink"], ["unlink"])
    assert not os.path.lexists(bad)
    opened = [op.path for op in fs.ops if op.name == "open_tmp" and ".snapshot.json." in (op.path or "")]
    assert len(opened) == 2 and opened[0] == bad and opened[1] != bad
    new = opened[1]
    names = [op.name for op in later if op.path == new]
    # the envelope is written as a few buffers: one run of writes
    names = [n for i, n in enumerate(names) if not (n == "write" and i and names[i - 1] == "write")]
    assert names[:4] == ["open_tmp", "write", "fsync", "close"] and "replace" in names, names
    assert SnapStore(d).restore() == (NEW, 6)
    assert not temps(d)


def test_persistent_eio_on_fsync(tmp_path: Path) -> None:
    d = tmp_path / "store"
    seed(d, keep=3)
    before = files(d)
    fs = RecordingFS(fail_errno=errno.EIO, fail_op="fsync", fail_times=None)
    with pytest.raises(SnapError) as e:
        SnapStore(d, keep=3, fs=fs).create(NEW, 6)
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.EIO
    assert "intact" in str(e.value)
    # Two attempts, each in its own temp file; no file fsynced twice.
    fsynced = [op.path for op in fs.ops if op.name == "fsync"]
    assert len(fsynced) == 2 and len(set(fsynced)) == 2, fs.trace()
    assert {k: v for k, v in files(d).items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"}
    assert not temps(d)
    assert SnapStore(d, keep=3).restore() == (OLD, 5)
    SnapStore(d, keep=3).create(NEXT, 7)
    assert [i.seq for i in SnapStore(d, keep=3).history()] == [7, 5, 3]


def test_eio_on_fsync_is_not_retried_for_other_errors(tmp_path: Path) -> None:
    d = tmp_path / "store"
    seed(d, keep=1)
    fs = RecordingFS(fail_errno=errno.ENOSPC, fail_op="fsync")
    with pytest.raises(SnapError):
        SnapStore(d, fs=fs).create(NEW, 6)
    assert [op.name for op in fs.ops].count("open_tmp") == 1
    assert SnapStore(d).restore() == (OLD, 5)


# -- a rename that fails -----------------------------------------------------------------------

@pytest.mark.parametrize("err", [errno.EXDEV, errno.EBUSY, errno.EACCES, errno.EPERM, errno.EROFS,
                                 errno.ENOSPC, errno.EIO], ids=errno.errorcode.get)
@pytest.mark.parametrize("keep", [1, 3])
def test_failing_rename(tmp_path: Path, err: int, keep: int) -> None:
    d = tmp_path / "store"
    seed(d, keep=keep)
    before = files(d)
    fs = RecordingFS(fail_errno=err, fail_op="replace", fail_path="snapshot.json")
    with pytest.raises(SnapError) as e:
        SnapStore(d, keep=keep, fs=fs).create(NEW, 6)
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == err
    assert "intact" in str(e.value)
    assert {k: v for k, v in files(d).items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"}
    assert not temps(d)
    assert SnapStore(d, keep=keep).restore() == (OLD, 5)
    SnapStore(d, keep=keep).create(NEXT, 7)
    assert SnapStore(d, keep=keep).restore() == (NEXT, 7)


# -- a read-only file system, a full disk, from the first write on ---------------------------

@pytest.mark.parametrize("err", [errno.EROFS, errno.EACCES, errno.ENOSPC, errno.EDQUOT],
                         ids=errno.errorcode.get)
@pytest.mark.parametrize("keep", [1, 3])
def test_every_write_fails(tmp_path: Path, err: int, keep: int) -> None:
    d = tmp_path / "store"
    seed(d, keep=keep)
    before = files(d)
    fs = RecordingFS(fail_errno=err, fail_op={"open_tmp", "write", "fsync", "replace", "link", "makedirs",
                                              "unlink"}, fail_times=None)
    for _ in range(3):  # repeated attempts leave nothing behind either
        with pytest.raises(SnapError) as e:
            SnapStore(d, keep=keep, fs=fs).create(NEW, 6)
        assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == err
    assert files(d) == before
    assert not temps(d)
    assert SnapStore(d, keep=keep, fs=fs).restore() == (OLD, 5)  # reading needs no write
    SnapStore(d, keep=keep).create(NEXT, 7)
    assert SnapStore(d, keep=keep).restore() == (NEXT, 7)


def test_temp_left_by_a_failed_unlink_is_cleaned_by_the_next_create(tmp_path: Path) -> None:
    """EIO on write, and the unlink of the failed temp file fails too: the next create() removes it."""
    d = tmp_path / "store"
    seed(d, keep=1)

    class FS(RecordingFS):
        def unlink(self, path: str) -> None:
            if is_temp_name(os.path.basename(path)):
                raise OSError(errno.EIO, "injected", path)
            super().unlink(path)

    fs = FS(fail_errno=errno.ENOSPC, fail_op="write", fail_path=".snapshot.json.")
    with pytest.raises(SnapError):
        SnapStore(d, fs=fs).create(NEW, 6)
    assert len(temps(d)) == 1  # could not be removed: the disk is failing
    assert SnapStore(d).restore() == (OLD, 5)
    SnapStore(d).create(NEXT, 7)
    assert not temps(d)
    assert SnapStore(d).restore() == (NEXT, 7)


def test_figures(templates: dict[int, tuple[Path, list[Op]]]) -> None:
    """The size of the matrix above (for the README): ops per create() x errnos x keep."""
    steps = {keep: len(ops) for keep, (_, ops) in templates.items()}
    assert steps[1] >= 15 and steps[3] > steps[1]
    print(f"fault matrix: {steps} ops per create() x {len(ERRNOS)} errnos = "
          f"{sum(steps.values()) * len(ERRNOS)} injected faults")


# -- faults while reading ------------------------------------------------------------------------

@pytest.mark.parametrize("err", [errno.EIO, errno.EACCES, errno.ENOMEM, errno.EROFS], ids=errno.errorcode.get)
def test_read_fault_at_each_step_of_restore(tmp_path: Path, err: int) -> None:
    """restore() with a fault at each of its ops: the right state, or a SnapError; never wrong data."""
    d = tmp_path / "store"
    seed(d, keep=3)
    (d / "snapshot.seq").write_bytes(b"1\n")  # stale: restore also repairs it (more steps)
    probe = RecordingFS(record_data=False)
    assert SnapStore(d, keep=3, fs=probe).restore() == (OLD, 5)
    (d / "snapshot.seq").write_bytes(b"1\n")
    outcomes = {"ok": 0, "error": 0}
    for op in probe.ops:
        fs = RecordingFS(fail_errno=err, fail_at=op.index, record_data=False)
        try:
            got = SnapStore(d, keep=3, fs=fs).restore()
        except SnapError as e:
            assert isinstance(e.__cause__, OSError) and e.__cause__.errno == err, f"#{op.index} {op}: {e!r}"
            outcomes["error"] += 1
        else:
            assert got == (OLD, 5), f"#{op.index} {op}"
            outcomes["ok"] += 1
        assert not temps(d)
        (d / "snapshot.seq").write_bytes(b"1\n")
    assert outcomes["error"] >= 3 and outcomes["ok"] >= 1, outcomes  # the repair's steps are optional
    # latest() and history() under the same faults: typed errors or right answers only
    for method in ("latest", "history"):
        probe = RecordingFS(record_data=False)
        getattr(SnapStore(d, keep=3, fs=probe), method)()
        for op in probe.ops:
            fs = RecordingFS(fail_errno=err, fail_at=op.index, record_data=False)
            try:
                got = getattr(SnapStore(d, keep=3, fs=fs), method)()
            except SnapError:
                continue
            if method == "latest":
                assert got is not None and got.seq == 5, f"{method} #{op.index} {op}"
            else:
                assert [i.seq for i in got] in ([5, 3], [5], [3], []), f"{method} #{op.index} {op}"


# -- faults under the mixin: automatic and explicit snapshots, sync and async ---------------------

def test_failed_autosave_keeps_the_mutation_and_retries(tmp_path: Path) -> None:
    from dataclasses import dataclass

    from snapmixin import Snapshottable, snapshot_every

    @snapshot_every(2)
    @dataclass
    class Counter(Snapshottable):
        n: int = 0

    d = tmp_path / "store"
    fs = RecordingFS(fail_errno=errno.ENOSPC, fail_op="write", fail_path=".snapshot.json.", fail_times=2)
    c = Counter.open(SnapStore(d, fs=fs))
    c.n += 1
    with pytest.raises(SnapError) as e:
        c.n += 1  # the automatic snapshot fails
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.ENOSPC
    assert c.n == 2 and c.snapshot_seq == 2  # the mutation stays applied and counted
    assert not SnapStore(d).exists()
    with pytest.raises(SnapError):
        c.n += 1  # the next mutation tries again (and the disk is still full)
    c.n += 1  # the fault is gone: saved
    assert SnapStore(d).restore() == ({"n": 4}, 4)
    assert not temps(d)


def test_failed_asnapshot_and_acreate(tmp_path: Path) -> None:
    import asyncio
    from dataclasses import dataclass

    from snapmixin import Snapshottable

    @dataclass
    class Doc(Snapshottable):
        text: str = ""

    d = tmp_path / "store"
    SnapStore(d).create({"text": "v1"}, 1)
    before = (d / "snapshot.json").read_bytes()
    fs = RecordingFS(fail_errno=errno.EIO, fail_op="fsync", fail_times=None)
    doc = Doc.open(SnapStore(d, fs=fs))
    doc.text = "v2"

    async def main() -> None:
        with pytest.raises(SnapError) as e:
            await doc.asnapshot()
        assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.EIO
        with pytest.raises(SnapError):
            await SnapStore(d, fs=fs).acreate({"text": "v3"}, 3)

    asyncio.run(main())
    assert (d / "snapshot.json").read_bytes() == before
    assert not temps(d)
    fs.fail_times = 0  # the fault is gone
    assert asyncio.run(doc.asnapshot()) == 2
    assert SnapStore(d).restore() == ({"text": "v2"}, 2)
