"""What a SnapStore object remembers between calls (issue 13), and that it never trusts it blindly.

A store object remembers the header of the generation it last committed or read (validated
by the current file's trailer and size before every write), that it made its directory
(made again when it is gone), and the schema versions of kept generations (by name: names are
never reused). Each test changes the directory between two calls of one store object, through
another store object, another process or by hand, and checks that the first object sees it.
Also here: the fast path of restore() (header matched byte for byte, state not copied) gives
the same answers and errors as the full parse, and large states hashed in a worker thread.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapmixin import SnapStore
from snapmixin.errors import CorruptSnapshot, EncodeError, SeqRegression, SnapError, SnapshotConflict
from snapmixin.store import format as fmt
from tests.crashfs import RecordingFS
from tests.support import reseal, temps, unseal, verify_v2

ROOT = Path(__file__).resolve().parent.parent


def _other_process(d: Path, state: object, seq: int, keep: int = 1) -> None:
    """Commit ``(state, seq)`` to ``d`` from another Python process."""
    code = ("import json, sys; from snapmixin import SnapStore; "
            "SnapStore(sys.argv[1], keep=int(sys.argv[4])).create(json.loads(sys.argv[2]), int(sys.argv[3]))")
    subprocess.run([sys.executable, "-c", code, str(d), json.dumps(state), str(seq), str(keep)],
                   check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)


# -- the remembered header ----------------------------------------------------------------------------


def test_a_commit_by_another_store_object_is_seen(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a, b = SnapStore(d), SnapStore(d)
    first = a.create({"v": "a"}, 1)
    b.create({"v": "b"}, 2)
    with pytest.raises(SnapshotConflict):  # a's remembered generation is not the current one
        a.create({"v": "a2"}, 3, expect=first.generation)
    with pytest.raises(SeqRegression):  # the stored seq is b's, not the 1 a wrote
        a.create({"v": "a1"}, 1)
    with pytest.raises(SnapshotConflict):  # seq 2 is there with another state
        a.create({"v": "a"}, 2)
    assert a.restore() == ({"v": "b"}, 2)


def test_a_commit_by_another_process_is_seen(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a = SnapStore(d)
    first = a.create({"v": "a"}, 1)
    _other_process(d, {"v": "b"}, 5)
    with pytest.raises(SeqRegression):
        a.create({"v": "a"}, 2)
    with pytest.raises(SnapshotConflict):
        a.create({"v": "a"}, 6, expect=first.generation)
    info = a.create({"v": "a"}, 6)
    assert a.restore() == ({"v": "a"}, 6) and info.seq == 6


def test_a_generation_of_the_same_size_is_told_apart(tmp_path: Path) -> None:
    """Another writer's file with exactly the size of the remembered one (same state length,
    same seq width): only the trailer tells them apart, and it does."""
    d = tmp_path / "s"
    a, b = SnapStore(d), SnapStore(d)
    mine = a.create({"v": "aaaa"}, 10)
    theirs = b.create({"v": "bbbb"}, 11)
    assert theirs.size == mine.size
    with pytest.raises(SnapshotConflict):
        a.create({"v": "cccc"}, 12, expect=mine.generation)
    assert a.latest() == theirs


def test_a_hand_rollback_to_an_older_file_is_seen(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a = SnapStore(d)
    a.create({"v": 1}, 1)
    old = (d / "snapshot.json").read_bytes()
    a.create({"v": 2}, 2)
    (d / "snapshot.json").write_bytes(old)  # by hand, in place: same inode
    with pytest.raises(SnapshotConflict):  # seq 1 is stored again, with another state
        a.create({"v": 3}, 1)
    assert a.create({"v": 3}, 3).seq == 3


def test_a_damaged_or_removed_current_file_is_seen(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a = SnapStore(d)
    first = a.create({"v": 1}, 1)
    data = (d / "snapshot.json").read_bytes()
    (d / "snapshot.json").write_bytes(data[:-10] + b"0" * 10)  # the trailer is damaged
    with pytest.raises(SnapshotConflict):  # no longer the generation a remembers
        a.create({"v": 2}, 2, expect=first.generation)
    os.unlink(d / "snapshot.json")
    with pytest.raises(SnapshotConflict):  # nothing there: expect=<a generation> fails
        a.create({"v": 2}, 2, expect=first.generation)
    assert a.create({"v": 2}, 2, expect=None).seq == 2


# -- the directory made once --------------------------------------------------------------------------


def test_a_directory_removed_between_two_creates_is_made_again(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b" / "s"
    a = SnapStore(d)
    a.create({"v": 1}, 1)
    shutil.rmtree(tmp_path / "a")
    assert a.create({"v": 2}, 2).seq == 2  # nothing stored: no seq floor left
    assert SnapStore(d).restore() == ({"v": 2}, 2)


def test_a_directory_replaced_by_a_file_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a = SnapStore(d)
    a.create({"v": 1}, 1)
    shutil.rmtree(d)
    d.write_text("not a directory")
    with pytest.raises(SnapError) as e:
        a.create({"v": 2}, 2)
    assert str(d) in str(e.value)
    assert d.read_text() == "not a directory"


# -- retention with remembered schema versions -------------------------------------------------------


def test_pruning_sees_generations_written_and_removed_by_others(tmp_path: Path) -> None:
    d = tmp_path / "s"
    a = SnapStore(d, keep=3)
    for s in range(1, 5):
        a.create({"v": s}, s)
    assert [i.seq for i in a.history()] == [4, 3, 2]
    # another process writes two generations, with a keep of its own
    _other_process(d, {"v": 5}, 5, keep=10)
    _other_process(d, {"v": 6}, 6, keep=10)
    # and the newest kept generation (seq 5) is removed by hand
    hist = sorted(os.listdir(d / "history"))
    os.unlink(d / "history" / hist[-1])
    a.create({"v": 7}, 7)
    assert [i.seq for i in a.history()] == [7, 6, 4]
    assert not (d / "history" / hist[-1]).exists()


def test_a_schema_upgrade_by_another_store_is_kept_by_the_first_ones_pruning(tmp_path: Path) -> None:
    d = tmp_path / "s"
    old = SnapStore(d, keep=2)
    for s in range(1, 4):
        old.create({"v": s}, s)
    new = SnapStore(d, keep=2, schema_version=2, migrations={})
    new.create({"v": 4}, 4)  # the first generation of version 2 keeps the last of version 1
    old.create({"v": 5}, 5)  # version 1 again (a downgrade), written by the first object
    seqs = [(i.seq, i.schema_version) for i in old.history()]
    # keep=2 (5 and 4), plus the last generation of the other schema version (4 is version 2,
    # and 3 is the last version 1 before it): the same answer a fresh store object gives
    fresh = SnapStore(d, keep=2)
    assert seqs == [(i.seq, i.schema_version) for i in fresh.history()]
    assert (4, 2) in seqs and seqs[0] == (5, 1)


# -- restore()'s fast path ----------------------------------------------------------------------------


def test_a_duplicate_key_after_the_state_is_still_named(tmp_path: Path) -> None:
    """A file whose header matches the writer's layout byte for byte but whose state span is
    followed by a second "seq" (checksum made valid): the fast path does not decode it as one
    value, and the full parse names the duplicate key, as before."""
    d = tmp_path / "s"
    SnapStore(d).create({"v": 1}, 1)
    body = unseal((d / "snapshot.json").read_bytes())
    (d / "snapshot.json").write_bytes(reseal(body + b',\n  "seq": 9'))
    for cls in (None, dict):
        with pytest.raises(CorruptSnapshot) as e:
            SnapStore(d).restore(cls)
        assert "'seq' appears more than once" in str(e.value)


def test_a_state_that_is_not_one_value_is_damage(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d).create({"v": 1}, 1)
    body = unseal((d / "snapshot.json").read_bytes())
    i = body.index(b'"state": ') + len(b'"state": ')
    (d / "snapshot.json").write_bytes(reseal(body[:i] + b"[1, 2" ))
    with pytest.raises(CorruptSnapshot):
        SnapStore(d).restore()


def test_restore_reads_the_same_through_both_paths(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    state = {"a": [1, 2.5, None, "x\ny"], "b": {"c": True}}
    store.create(state, 7)
    assert store.restore() == (state, 7)
    # the header laid out another (valid) way: the fast path declines, the full parse reads it
    body = unseal((d / "snapshot.json").read_bytes())
    (d / "snapshot.json").write_bytes(reseal(body.replace(b'"seq": 7', b'"seq":   7')))
    assert SnapStore(d).restore() == (state, 7)


# -- large states: the checksum made in a worker thread ----------------------------------------------


def test_a_large_state_is_written_with_a_valid_checksum(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    big = {"blob": "x" * (fmt.Encoded.THREADED + 1000), "n": list(range(1000))}
    info = store.create(big, 1)
    data = (d / "snapshot.json").read_bytes()
    doc = verify_v2(data)
    assert doc["state"] == big and info.size == len(data)
    assert info.generation == info.checksum == "sha256:" + data[-68:-4].decode()
    assert store.latest() == info
    info2 = store.create({**big, "n": []}, 2)
    assert info2.generation != info.generation
    assert store.restore() == ({**big, "n": []}, 2)


def test_a_large_write_that_fails_leaves_the_previous_snapshot(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d).create({"v": 1}, 1)
    before = (d / "snapshot.json").read_bytes()
    big = {"blob": "y" * (2 * fmt.Encoded.THREADED)}
    fs = RecordingFS(fail_errno=errno.ENOSPC, fail_op="write", fail_path="snapshot.json")
    with pytest.raises(SnapError):
        SnapStore(d, fs=fs).create(big, 2)
    assert (d / "snapshot.json").read_bytes() == before and not temps(d)
    assert SnapStore(d).create(big, 2).seq == 2
    assert SnapStore(d).restore() == (big, 2)


# -- large files: the checksum made while the state decodes ------------------------------------------

BUILT: list[int] = []


@dataclass
class Row:
    name: str
    n: int

    def __post_init__(self) -> None:
        BUILT.append(self.n)


@dataclass
class Table:
    rows: list[Row]


def _big_table() -> Table:
    return Table([Row(f"row {i:07d}", i) for i in range(fmt.Digest.THREADED // 20)])


@pytest.mark.parametrize("edit", ["text", "type"])
def test_a_damaged_large_file_is_damage_and_builds_nothing(tmp_path: Path, edit: str) -> None:
    """A byte changed in a large file: CorruptSnapshot (checksum), never a state, never a
    DecodeError, and no object of the caller's classes built from the damaged bytes."""
    d = tmp_path / "s"
    table = _big_table()
    SnapStore(d, keep=2).create(Table(table.rows[:3]), 1)
    SnapStore(d, keep=2).create(table, 2)
    p = d / "snapshot.json"
    data = p.read_bytes()
    assert len(data) > fmt.Digest.THREADED
    if edit == "text":  # still decodes into Table
        data = data.replace(b'"row 0001234"', b'"row 0001235"', 1)
    else:  # a str where an int belongs: a type mismatch, but the checksum says damage first
        data = data.replace(b'"n": 1234', b'"n": "x1"', 1)
    p.write_bytes(data)
    BUILT.clear()
    with pytest.raises(CorruptSnapshot, match="checksum mismatch"):
        SnapStore(d).restore(Table)
    assert BUILT == []
    state, seq = SnapStore(d, keep=2).restore(Table, fallback=True)  # the older generation
    assert seq == 1 and state == Table(table.rows[:3])


def test_an_intact_large_file_restores_typed(tmp_path: Path) -> None:
    d = tmp_path / "s"
    table = _big_table()
    SnapStore(d).create(table, 1)
    BUILT.clear()
    assert SnapStore(d).restore(Table) == (table, 1)
    assert len(BUILT) == len(table.rows)


@pytest.mark.parametrize("bad", [float("nan"), float("-inf")])
def test_a_non_finite_float_in_a_large_state_is_refused_before_anything_is_written(
        tmp_path: Path, bad: float) -> None:
    """The NaN check runs on the formatted envelope (while it is hashed): still an EncodeError
    with the value's path, and nothing written."""
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create({"v": 1}, 1)
    before = (d / "snapshot.json").read_bytes()
    big = {"rows": [{"x": 1.5, "s": "y" * 100} for _ in range(fmt.Digest.THREADED // 100)]}
    big["rows"][1234]["x"] = bad
    with pytest.raises(EncodeError) as e:
        store.create(big, 2)
    assert e.value.json_path == "$.rows[1234].x"
    assert (d / "snapshot.json").read_bytes() == before and not temps(d)
    assert store.restore() == ({"v": 1}, 1)


def test_create_does_not_keep_the_compact_state_while_formatting(tmp_path: Path) -> None:
    """Peak memory of a large create(): the compact state is freed once copied into the
    envelope, so the peak is the envelope and its formatted text (about 2x the state's JSON
    here), not those and the compact state besides (3x)."""
    import tracemalloc

    state = {"rows": ["x" * 100 for _ in range(20_000)]}
    compact = len(json.dumps(state, separators=(",", ":")))
    store = SnapStore(tmp_path / "s")
    store.create(state, 1)
    tracemalloc.start()
    try:
        store.create(state, 2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.6 * compact, f"peak {peak / compact:.2f}x the compact JSON"
    assert store.restore() == (state, 2)


def test_archiving_lists_history_once_and_a_dead_writers_leftovers_still_go(tmp_path: Path) -> None:
    """A create() with history lists ``history/`` once (the pruning, which also removes a dead
    writer's temp file there) and links without a failing unlink first; a second name of the
    current generation left by a writer that died before committing is replaced."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for seq in (1, 2, 3):
        store.create({"a": seq}, seq)
    fs = RecordingFS()
    SnapStore(d, keep=3, fs=fs).create({"a": 4}, 4)
    hist = os.fspath(d / "history")
    assert [op.name for op in fs.ops if op.name == "listdir" and op.path == hist] == ["listdir"]
    assert not [op for op in fs.ops if op.name == "unlink" and op.error is not None]
    assert [i.seq for i in store.history()] == [4, 3, 2]
    # a dead writer's leftovers: a temp file in history/, and the current generation's second name
    leftover = d / "history" / ".snapshot-x.json.0123456789abcdef.tmp"
    leftover.write_bytes(b"half a copy")
    current = store.latest()
    assert current is not None
    dead = store.history_path(current)
    os.link(d / "snapshot.json", dead)
    store.create({"a": 5}, 5)
    assert not leftover.exists()
    assert [i.seq for i in store.history()] == [5, 4, 3]
    assert dead.exists() and json.loads(dead.read_bytes())["seq"] == 4


# -- the order of history/, remembered by name ----------------------------------------------------


def test_the_remembered_order_of_history_names_follows_the_directory(tmp_path: Path) -> None:
    """The store parses each name in ``history/`` once (names are never reused) but lists the
    directory at every pruning: names added and removed by hand between two creates count,
    and the memory of names gone from the directory does not grow without bound."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for seq in range(1, 151):
        store.create({"v": seq}, seq)
    assert [i.seq for i in store.history()] == [150, 149, 148]
    assert len(store._kept_order) <= 2 * 3 + 64  # names pruned long ago are forgotten
    hist = d / "history"
    newest = max(os.listdir(hist))
    # by hand: the newest kept generation removed; a snapmixin 0.1.0 name (the oldest by rule)
    # and a name that is not a generation's added
    os.unlink(hist / newest)
    (hist / "snapshot-00000000000000000007.json").write_bytes((d / "snapshot.json").read_bytes())
    (hist / "notes.txt").write_text("mine")
    store.create({"v": 151}, 151)
    assert [i.seq for i in store.history()] == [151, 150, 148]  # 0.1.0's name was the oldest: pruned
    assert not (hist / "snapshot-00000000000000000007.json").exists()
    assert (hist / "notes.txt").read_text() == "mine"
    # the removed name back again (copied back by hand): ordered by what it says (seq 149's
    # commit time, older than 150's), so it is the one pruned now, with 148
    (hist / newest).write_bytes((d / "snapshot.json").read_bytes())
    store.create({"v": 152}, 152)
    assert [i.seq for i in store.history()] == [152, 151, 150]
    assert sorted(os.listdir(hist)) == sorted(
        ["notes.txt", *(store.history_path(i).name for i in store.history()[1:])])


def test_a_commit_time_in_a_history_name_is_utc_and_fixed_width() -> None:
    from datetime import datetime, timedelta, timezone

    plus2 = timezone(timedelta(hours=2))
    assert fmt.stamp(datetime(2026, 1, 1, 1, 2, 3, 45, tzinfo=plus2)) == "20251231T230203000045Z"
    assert fmt.stamp(datetime(5, 6, 7, 8, 9, 10, 123456, tzinfo=timezone.utc)) == "00050607T080910123456Z"
    assert fmt.history_name(42, datetime(2026, 11, 29, 17, 0, tzinfo=timezone.utc)) == (
        "snapshot-00000000000000000042-20261129T170000000000Z.json")


def test_the_order_of_a_name_this_writer_made_is_what_parsing_it_gives() -> None:
    from datetime import datetime, timedelta, timezone

    from snapmixin.store import _history_order, _own_order

    for seq in (0, 1, 42, 10**12 + 7, 2**63 - 1):
        for when in (datetime(1, 1, 1, tzinfo=timezone.utc),
                     datetime(2026, 11, 29, 17, 0, 1, 5, tzinfo=timezone.utc),
                     datetime(9999, 12, 31, 20, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-3)))):
            name = fmt.history_name(seq, when)
            assert _own_order(name) == _history_order(name) != "", name


# -- the pruning takes its order from the last one ------------------------------------------------


def _expected_history(listed: dict[str, int | None], keep: int, version: int) -> list[str]:
    """What a pruning must leave in ``history/`` from the names there after the archiving
    (``listed``: each with its schema version, None for a name that is no generation's), by
    the rule worked out here independently of the store: the ``keep - 1`` generations committed
    last, the last one of each other schema version, and every name that is not a generation's
    but a dead writer's temp file."""
    import re

    from snapmixin import fsio

    order: dict[str, tuple[str, ...]] = {}
    others: list[str] = []
    for n in listed:
        m = re.fullmatch(r"snapshot-(\d{20})-(\d{8}T\d{12}Z)\.json", n)
        m0 = re.fullmatch(r"snapshot-(\d{20})\.json", n)
        if m is not None:
            order[n] = ("1", m.group(2), m.group(1))
        elif m0 is not None:
            order[n] = ("0", m0.group(1))
        elif not fsio.is_temp_name(n):
            others.append(n)
    kept, seen = [], set()
    for i, n in enumerate(sorted(order, key=order.__getitem__, reverse=True)):
        v = listed[n]
        if i < keep - 1 or (v != version and v not in seen):
            kept.append(n)
        seen.add(v)
    return sorted(kept + others)


def test_pruning_in_a_steady_state_does_not_sort_history(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """When ``history/`` holds exactly what this object's last pruning left plus the generation
    it just archived, the pruning takes the order from there: the listing is not sorted (nor a
    name parsed). Anything else in the listing sorts it again (next test)."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=4)
    for seq in range(1, 6):
        store.create({"v": seq}, seq)

    def no_sorting(names: object = None) -> list[str]:
        raise AssertionError("history/ sorted in a steady state")

    monkeypatch.setattr(store, "_kept_in_order", no_sorting)
    for seq in range(6, 16):
        store.create({"v": seq}, seq)
    monkeypatch.undo()
    assert [i.seq for i in store.history()] == [15, 14, 13, 12]
    assert len(os.listdir(d / "history")) == 3


@pytest.mark.parametrize("keep", [1, 2, 4])
def test_pruning_follows_other_writers_hands_and_schema_versions(tmp_path: Path, keep: int) -> None:
    """One store object creates while the directory changes between its creates: another store
    object commits (with another keep), generations are removed and added by hand (a copy of a
    generation under an older or a newer name, a snapmixin 0.1.0 name, a dead writer's temp file,
    a file of the user's), the schema version changes (the last generation of each other version
    is kept). After each create, history/ holds exactly what the rule says of what was there."""
    import random
    from datetime import datetime, timedelta, timezone

    rng = random.Random(1313 + keep)
    d = tmp_path / "s"
    hist = d / "history"
    store = SnapStore(d, keep=keep)
    other = SnapStore(d, keep=2)
    version = 1
    seq = 0
    store.create({"v": 0}, seq)
    checked = 0
    for step in range(160):
        seq += 1
        what = rng.random()
        if what < 0.12:
            other.create({"v": seq, "by": "other"}, seq)
            continue
        if what < 0.2 and hist.is_dir():
            names = sorted(n for n in os.listdir(hist) if n.startswith("snapshot-"))
            if names:
                os.unlink(hist / rng.choice(names))
        elif what < 0.28:
            hist.mkdir(exist_ok=True)
            src = (d / "snapshot.json").read_bytes()
            when = datetime.now(timezone.utc) + timedelta(seconds=rng.choice((-3600, -1, 3600)))
            (hist / fmt.history_name(rng.randrange(1, seq + 1), when)).write_bytes(src)
        elif what < 0.31:
            hist.mkdir(exist_ok=True)
            old = f"snapshot-{rng.randrange(1, 99):020d}.json"  # snapmixin 0.1.0's name: the oldest
            (hist / old).write_bytes((d / "snapshot.json").read_bytes())
        elif what < 0.34:
            hist.mkdir(exist_ok=True)
            (hist / ".snapshot-x.json.0123456789abcdef.tmp").write_bytes(b"half a copy")
        elif what < 0.36:
            hist.mkdir(exist_ok=True)
            (hist / f"notes-{step}.txt").write_text("mine")
        elif what < 0.42:
            version = rng.choice((1, 2, 3))
        elif what < 0.5 and hist.is_dir():  # one name removed and another added: as many names
            names = sorted(n for n in os.listdir(hist) if n.startswith("snapshot-"))
            if names:
                gone = rng.choice(names)
                os.rename(hist / gone, hist / fmt.history_name(int(gone[9:29]), datetime.now(timezone.utc)
                                                               - timedelta(days=rng.choice((1, 9999)))))
        archive = rng.random() >= 0.2  # (archive=False: the CLI's rehash, nothing archived)
        current = store.latest()
        assert current is not None
        listed: dict[str, int | None] = {
            n: (json.loads((hist / n).read_bytes())["schema_version"] if n.startswith("snapshot-") else None)
            for n in (os.listdir(hist) if hist.is_dir() else [])}
        if archive:
            listed[store.history_path(current).name] = current.schema_version  # archived by this create
        store.commit_encoded(json.dumps({"v": seq}).encode(), seq, schema_version=version, archive=archive)
        if not listed:
            assert not hist.exists() or not os.listdir(hist)
            continue
        assert sorted(os.listdir(hist)) == _expected_history(listed, keep, version), (step, sorted(listed))
        checked += 1
    assert checked > 100


def test_a_generation_of_another_schema_version_between_two_stays_pinned(tmp_path: Path) -> None:
    """Versions 1, then 2 once, then 1 again: the one generation of version 2 stays in history
    (the last of its version) however many commits follow, while the steady pruning runs."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    versions = [1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1]
    for seq, v in enumerate(versions, 1):
        store.commit_encoded(json.dumps({"v": seq}).encode(), seq, schema_version=v)
    kept = [(i.seq, i.schema_version) for i in store.history()]
    assert kept == [(12, 1), (11, 1), (10, 1), (4, 2)]
