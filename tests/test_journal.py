"""The mutation journal (issue 14): records, replay, damage, compaction, refusals."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dataclasses_json as dcj
import pydantic
import pytest

from snapmixin import Snapshottable, SnapStore, snapshot_every, transient
from snapmixin import journal as J
from snapmixin.errors import CorruptSnapshot, EncodeError, SnapError, StoreLocked


@dataclass
class Unit(Snapshottable):
    hp: int = 10
    tags: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


@dataclass
class Game(Snapshottable):
    level: int = 1
    name: str = ""
    score: float = 0.0
    inventory: list[str] = field(default_factory=list)
    units: list[Unit] = field(default_factory=list)
    d: dict[str, int] = field(default_factory=dict)
    by_id: dict[int, Unit] = field(default_factory=dict)
    grid: list[list[int]] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    boss: Unit | None = None
    lock: threading.Lock = transient(default_factory=threading.Lock)


class Pm(Snapshottable, pydantic.BaseModel):
    x_y: int = pydantic.Field(default=0, alias="xY")
    items: list[int] = []
    model_config = pydantic.ConfigDict(populate_by_name=True)


@dataclass
class Holder(Snapshottable):
    pm: Pm = field(default_factory=Pm)
    other: list[int] = field(default_factory=list)


@dataclass
class Loose(Snapshottable):
    slot: Any = 0
    units: list[Unit] = field(default_factory=list)


def segments(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name.startswith("journal-"))


def records(d: Path) -> list[dict[str, Any]]:
    (seg,) = segments(d)
    lines = seg.read_bytes().splitlines()
    return [json.loads(x) for x in lines[1:]]


def ops(d: Path) -> list[list[dict[str, Any]]]:
    return [r["ops"] for r in records(d)]


def opened(d: Path, mode: str = "flush") -> Game:
    g = Game.open(d, journal=mode)
    g.snapshot()  # an empty store: the first snapshot starts the journal
    return g


def reopen_equal(d: Path, g: Game) -> Game:
    again = Game.open(d)
    assert again == g
    assert again.snapshot_seq == g.snapshot_seq
    return again


# -- one test per operation: the record written, and what replay makes of it ----------------------


def test_setattr_records_replace_and_replays(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.level = 2
    g.name = "a/b~c"
    g.score = 1.5
    assert ops(tmp_path) == [[{"op": "replace", "path": "/level", "value": 2}],
                             [{"op": "replace", "path": "/name", "value": "a/b~c"}],
                             [{"op": "replace", "path": "/score", "value": 1.5}]]
    assert [r["seq"] for r in records(tmp_path)] == [1, 2, 3]
    reopen_equal(tmp_path, g)


def test_list_ops(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.inventory.append("a")
    g.inventory.extend(["b", "c"])
    g.inventory.insert(-1, "x")
    g.inventory.insert(100, "end")
    g.inventory[0] = "A"
    g.inventory[-1] = "END"
    g.inventory.pop()
    g.inventory.pop(0)
    del g.inventory[-1]
    got = ops(tmp_path)
    assert got[0] == [{"op": "add", "path": "/inventory/-", "value": "a"}]
    assert got[1] == [{"op": "add", "path": "/inventory/-", "value": "b"},
                      {"op": "add", "path": "/inventory/-", "value": "c"}]
    assert got[2] == [{"op": "add", "path": "/inventory/2", "value": "x"}]
    assert got[3] == [{"op": "add", "path": "/inventory/4", "value": "end"}]
    assert got[4] == [{"op": "replace", "path": "/inventory/0", "value": "A"}]
    assert got[5] == [{"op": "replace", "path": "/inventory/4", "value": "END"}]
    assert got[6] == [{"op": "remove", "path": "/inventory/4"}]
    assert got[7] == [{"op": "remove", "path": "/inventory/0"}]
    assert got[8] == [{"op": "remove", "path": "/inventory/2"}]
    reopen_equal(tmp_path, g)
    g.inventory += ["q", "r", "a"]
    g.inventory.remove("q")
    g.inventory.sort()
    g.inventory.reverse()
    g.inventory[1:2] = ["s1", "s2"]
    del g.inventory[::2]
    g.inventory *= 2
    last = ops(tmp_path)[-1]
    assert last == [{"op": "replace", "path": "/inventory", "value": list(g.inventory)}]
    reopen_equal(tmp_path, g)
    g.inventory.clear()
    assert ops(tmp_path)[-1] == [{"op": "replace", "path": "/inventory", "value": []}]
    reopen_equal(tmp_path, g)


def test_dict_ops(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.d["a"] = 1
    g.d["x/y"] = 2
    g.d.setdefault("s", 3)
    g.d.setdefault("s", 4)  # a read: not a mutation, no record
    g.d.update({"u": 5}, v=6)
    g.d |= {"w": 7}
    del g.d["a"]
    g.d.pop("u")
    got = ops(tmp_path)
    assert got[:3] == [[{"op": "add", "path": "/d/a", "value": 1}],
                       [{"op": "add", "path": "/d/x~1y", "value": 2}],
                       [{"op": "add", "path": "/d/s", "value": 3}]]
    assert got[3] == [{"op": "add", "path": "/d/u", "value": 5}, {"op": "add", "path": "/d/v", "value": 6}]
    assert got[5:] == [[{"op": "remove", "path": "/d/a"}], [{"op": "remove", "path": "/d/u"}]]
    reopen_equal(tmp_path, g)
    g.d.popitem()
    assert ops(tmp_path)[-1] == [{"op": "replace", "path": "/d", "value": dict(g.d)}]
    g.d.clear()
    reopen_equal(tmp_path, g)


def test_int_keys_and_nested_objects(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.by_id[7] = Unit(hp=1)
    g.by_id[7].hp = 2
    g.by_id[7].notes.append("n")
    got = ops(tmp_path)
    assert got[0] == [{"op": "add", "path": "/by_id/7", "value": {"hp": 1, "tags": [], "notes": []}}]
    assert got[1] == [{"op": "replace", "path": "/by_id/7/hp", "value": 2}]
    assert got[2] == [{"op": "add", "path": "/by_id/7/notes/-", "value": "n"}]
    reopen_equal(tmp_path, g)


def test_set_ops_replace_the_set_sorted(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.seen.add(3)
    g.seen.add(1)
    g.seen |= {9, 2}
    g.seen.discard(3)
    g.seen -= {9}
    assert ops(tmp_path)[-1] == [{"op": "replace", "path": "/seen", "value": [1, 2]}]
    reopen_equal(tmp_path, g)


def test_mark_mutated_replaces_the_object(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.units.append(Unit())
    u = g.units[0]
    object.__setattr__(u, "hp", 99)  # a change tracking cannot see
    u.mark_mutated()
    assert ops(tmp_path)[-1] == [{"op": "replace", "path": "/units/0",
                                  "value": {"hp": 99, "tags": [], "notes": []}}]
    reopen_equal(tmp_path, g)


def test_list_insert_shifts_the_paths_of_nested_objects(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.units.append(Unit(hp=1))
    first = g.units[0]
    g.units.insert(0, Unit(hp=2))
    first.hp = 11  # now at /units/1
    g.units.pop(0)
    first.notes.append("x")  # back at /units/0
    got = ops(tmp_path)
    assert got[2] == [{"op": "replace", "path": "/units/1/hp", "value": 11}]
    assert got[4] == [{"op": "add", "path": "/units/0/notes/-", "value": "x"}]
    g.units.reverse()
    g.grid.append([1])
    g.grid.insert(0, [2])
    g.grid[1].append(3)
    reopen_equal(tmp_path, g)


def test_a_value_in_two_places_is_recorded_at_both(tmp_path: Path) -> None:
    g = opened(tmp_path)
    u = Unit(hp=5)
    g.units.append(u)
    g.boss = u  # the same object, a second place
    u.hp = 6
    assert ops(tmp_path)[-1] == sorted([{"op": "replace", "path": "/units/0/hp", "value": 6},
                                        {"op": "replace", "path": "/boss/hp", "value": 6}],
                                       key=lambda o: o["path"], reverse=True) or ops(tmp_path)[-1]
    assert {o["path"] for o in ops(tmp_path)[-1]} == {"/units/0/hp", "/boss/hp"}
    g.units.clear()  # one place left
    u.hp = 7
    assert ops(tmp_path)[-1] == [{"op": "replace", "path": "/boss/hp", "value": 7}]
    g.boss = None
    reopen_equal(tmp_path, g)


def test_transient_fields_are_not_journaled(tmp_path: Path) -> None:
    g = opened(tmp_path)
    n = len(records(tmp_path))
    g.lock = threading.Lock()
    assert len(records(tmp_path)) == n
    reopen_equal(tmp_path, g)


def test_batch_is_one_record_written_at_its_end(tmp_path: Path) -> None:
    g = opened(tmp_path)
    with g.snapshot_batch():
        g.level = 5
        g.inventory.append("a")
        assert records(tmp_path) == []  # group commit: nothing written inside the batch
    (rec,) = records(tmp_path)
    assert rec["seq"] == 1 and len(rec["ops"]) == 2
    reopen_equal(tmp_path, g)


def test_method_form_call_is_one_record(tmp_path: Path) -> None:
    @dataclass
    class M(Snapshottable):
        n: int = 0
        log: list[int] = field(default_factory=list)

        @snapshot_every(1000)
        def step(self, k: int) -> None:
            self.n += k
            self.log.append(k)

        @snapshot_every(1000)
        def nothing(self) -> None:
            pass

    m = M.open(tmp_path, journal="fsync")
    m.snapshot()
    m.step(3)
    m.nothing()  # one counted mutation that changed nothing: an empty record keeps seqs gap-free
    recs = records(tmp_path)
    assert [(r["seq"], len(r["ops"])) for r in recs] == [(1, 2), (2, 0)]
    again = M.open(tmp_path)
    assert again == m and again.snapshot_seq == m.snapshot_seq == 2


def test_snapshot_inside_a_batch(tmp_path: Path) -> None:
    g = opened(tmp_path)
    with g.snapshot_batch():
        g.level = 3
        g.snapshot()
        g.level = 4
    assert [r["seq"] for r in records(tmp_path)] == [2]
    reopen_equal(tmp_path, g)


# -- compaction -----------------------------------------------------------------------------------


def test_snapshot_compacts(tmp_path: Path) -> None:
    g = opened(tmp_path)
    for i in range(5):
        g.level = i
    (old,) = segments(tmp_path)
    assert g.snapshot() == 5
    (new,) = segments(tmp_path)
    assert new != old and new.name == J.segment_name(SnapStore(tmp_path).latest().generation, 5)
    assert records(tmp_path) == []
    g.level = 99
    reopen_equal(tmp_path, g)


def test_automatic_snapshots_compact(tmp_path: Path) -> None:
    @snapshot_every(3)
    @dataclass
    class A(Snapshottable):
        n: int = 0

    a = A.open(tmp_path, journal="flush")
    a.snapshot()
    for _ in range(7):
        a.n += 1
    assert SnapStore(tmp_path).latest().seq == 6
    assert [r["seq"] for r in records(tmp_path)] == [7]
    assert A.open(tmp_path).n == 7


def test_compaction_crash_window_is_harmless(tmp_path: Path) -> None:
    """A crash after the snapshot committed but before the old segment was deleted: the old
    segment (for the previous generation) is ignored; its records are in the snapshot."""
    g = opened(tmp_path)
    g.level = 2
    g.inventory.append("x")
    (old,) = segments(tmp_path)
    kept = old.read_bytes()
    g.snapshot()
    old.write_bytes(kept)  # as if the process died before deleting it
    g.level = 3
    again = reopen_equal(tmp_path, g)
    assert again.level == 3
    # and the next writer deletes it
    del g, again
    gc.collect()  # the first journal's descriptor (and its lock) goes with its object
    Game.open(tmp_path, journal="flush")
    assert not old.exists()


def test_asnapshot_keeps_records_written_while_in_flight(tmp_path: Path) -> None:
    g = opened(tmp_path)

    async def main() -> None:
        g.level = 2
        pending = g.asnapshot()  # captured at seq 2
        g.level = 3  # in flight: journaled in the old segment, then carried to the new one
        g.inventory.append("late")
        await pending

    asyncio.run(main())
    assert [r["seq"] for r in records(tmp_path)] == [2, 3]
    assert SnapStore(tmp_path).latest().seq == 1
    reopen_equal(tmp_path, g)


# -- damage ---------------------------------------------------------------------------------------


def _mutate(d: Path, n: int = 4) -> Game:
    g = opened(d)
    for i in range(n):
        g.inventory.append(f"i{i}")
    return g


def test_torn_tail_is_dropped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    g = _mutate(tmp_path)
    (seg,) = segments(tmp_path)
    data = seg.read_bytes()
    seg.write_bytes(data[:-10])  # the last append cut short
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        again = Game.open(tmp_path)
    assert "torn last record" in caplog.text
    assert again.inventory == g.inventory[:-1] and again.snapshot_seq == g.snapshot_seq - 1


def test_checksum_failure_before_the_tail_is_corrupt(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    g = _mutate(tmp_path)
    (seg,) = segments(tmp_path)
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"i1"', b'"i7"')
    seg.write_bytes(b"".join(lines))
    with pytest.raises(CorruptSnapshot, match=r"line 3: checksum mismatch") as e:
        Game.open(tmp_path)
    assert e.value.path == str(seg)
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        again = Game.open(tmp_path, fallback=True)
    assert again.inventory == g.inventory[:1] and "last good record" in caplog.text
    assert SnapStore(tmp_path).restore()[0]["inventory"] == []  # restore() alone: the snapshot


def test_gap_is_corrupt(tmp_path: Path) -> None:
    g = _mutate(tmp_path)
    (seg,) = segments(tmp_path)
    lines = seg.read_bytes().splitlines(keepends=True)
    del lines[2]
    seg.write_bytes(b"".join(lines))
    with pytest.raises(CorruptSnapshot, match="gap: record seq 3 where 2 was expected"):
        Game.open(tmp_path)
    assert Game.open(tmp_path, fallback=True).inventory == g.inventory[:1]


def test_record_that_does_not_fit_is_corrupt(tmp_path: Path) -> None:
    _mutate(tmp_path, 2)
    (seg,) = segments(tmp_path)
    body = b'{"seq":3,"ops":[{"op":"remove","path":"/nowhere/3"}]'
    seg.write_bytes(seg.read_bytes() + body + b',"crc":"%08x"}\n' % zlib.crc32(body))
    with pytest.raises(CorruptSnapshot, match="record seq 3"):
        Game.open(tmp_path)
    assert Game.open(tmp_path, fallback=True).inventory == ["i0", "i1"]


def test_batch_is_all_or_nothing_on_replay(tmp_path: Path) -> None:
    g = opened(tmp_path)
    with g.snapshot_batch():
        for i in range(20):
            g.inventory.append(f"b{i}")
    (seg,) = segments(tmp_path)
    data = seg.read_bytes()
    for cut in (len(data) - 2, len(data) - 200, len(data) - len(data.splitlines()[-1]) // 2):
        seg.write_bytes(data[:cut])
        assert Game.open(tmp_path).inventory == []  # torn: none of the batch
    seg.write_bytes(data)
    assert Game.open(tmp_path).inventory == g.inventory


def test_journal_of_another_generation_is_not_replayed(tmp_path: Path) -> None:
    """Another writer commits over our snapshot: our records follow a snapshot that is no longer
    current, so they are never applied to the other writer's state."""
    g = opened(tmp_path)
    g.level = 42
    other = Game.open(SnapStore(tmp_path))  # sees level 42 through the journal
    other.level = 7
    other.name = "other"
    other.snapshot()
    assert Game.open(tmp_path) == other


def test_restore_alone_returns_the_snapshot(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.level = 9
    state, seq = SnapStore(tmp_path).restore(Game)
    assert state.level == 1 and seq == 0


# -- failures while journaling ----------------------------------------------------------------------


def test_unencodable_value_falls_back_to_a_snapshot_that_raises(tmp_path: Path) -> None:
    g = opened(tmp_path)
    with pytest.raises(EncodeError):
        g.score = float("nan")
    g.score = 2.0  # fixed: this mutation snapshots (the journal restarts after it)
    assert SnapStore(tmp_path).latest().seq == g.snapshot_seq
    g.level = 5
    reopen_equal(tmp_path, g)


def test_write_failure_falls_back_to_a_snapshot(tmp_path: Path) -> None:
    from tests.crashfs import DiskFull

    fs = DiskFull()
    g = Game.open(SnapStore(tmp_path, fs=fs), journal="flush")
    g.snapshot()
    g.level = 2
    fs.full = True
    with pytest.raises(SnapError):
        g.level = 3  # neither the record nor the snapshot can be written: the mutation says so
    fs.full = False
    g.level = 4  # the snapshot due now succeeds
    assert SnapStore(tmp_path).latest().seq == g.snapshot_seq
    g.name = "x"
    reopen_equal(tmp_path, g)


def test_bind_and_empty_store_start_with_a_snapshot(tmp_path: Path) -> None:
    g = Game(level=3).bind(tmp_path / "b", journal="flush")
    g.level = 4  # the first mutation takes a snapshot, which starts the journal
    assert SnapStore(tmp_path / "b").latest().seq == 1
    g.name = "n"
    assert len(records(tmp_path / "b")) == 1
    reopen_equal(tmp_path / "b", g)
    h = Game.open(tmp_path / "e", journal="flush")
    h.level = 2
    assert SnapStore(tmp_path / "e").latest().seq == 1


def test_class_keyword(tmp_path: Path) -> None:
    @dataclass
    class K(Snapshottable, snapshot_journal="fsync"):
        n: int = 0

    k = K.open(tmp_path)
    k.snapshot()
    k.n = 1
    assert records(tmp_path)[0]["ops"] == [{"op": "replace", "path": "/n", "value": 1}]
    with pytest.raises(ValueError, match="journal must be"):
        class Bad(Snapshottable, snapshot_journal="sometimes"):
            pass
    with pytest.raises(ValueError, match="journal must be"):
        Game.open(tmp_path / "x", journal="always")


def test_replay_continues_and_rewrites_the_segment(tmp_path: Path) -> None:
    g = _mutate(tmp_path)
    (seg,) = segments(tmp_path)
    seg.write_bytes(seg.read_bytes()[:-5])  # a torn tail
    inventory = list(g.inventory)
    del g
    gc.collect()
    again = Game.open(tmp_path, journal="flush")
    assert again.snapshot_unsaved == 3
    again.inventory.append("more")
    assert [r["seq"] for r in records(tmp_path)] == [1, 2, 3, 4]
    assert Game.open(tmp_path) == again
    assert inventory[:3] == again.inventory[:3]


def test_schema_version_of_the_journal_must_match(tmp_path: Path) -> None:
    @dataclass
    class V(Snapshottable, snapshot_version=1):
        n: int = 0

    v = V.open(tmp_path, journal="flush")
    v.snapshot()
    v.n = 1
    store = SnapStore(tmp_path)
    (seg,) = segments(tmp_path)
    lines = seg.read_bytes().splitlines(keepends=True)
    body = lines[0][:-J._CRC_TAIL - 1].replace(b'"schema_version":1', b'"schema_version":2')
    seg.write_bytes(body + b',"crc":"%08x"}\n' % zlib.crc32(body) + b"".join(lines[1:]))
    with pytest.raises(SnapError, match="schema version 2"):
        V.open(store)


# -- refusals -----------------------------------------------------------------------------------------


def test_object_storage_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from snapmixin import store as store_mod
    from tests.test_backend import MemoryBackend  # the toy backend of the backend tests

    objects: dict[str, tuple[bytes, int]] = {}
    monkeypatch.setitem(store_mod.BACKENDS, "toy", lambda loc, fs, timeout: MemoryBackend(loc, objects))
    store = SnapStore("toy://bucket/game")
    with pytest.raises(ValueError, match="toy://bucket/game: journal='flush' needs a local directory"):
        Game.open(store, journal="flush")
    with pytest.raises(ValueError, match="needs a local directory store"):
        Game().bind(store, journal="fsync")
    g = Game.open(store)  # without a journal: as before
    g.level = 2
    g.snapshot()
    assert Game.open(store).level == 2


def test_adapters_with_their_own_keys_are_refused(tmp_path: Path) -> None:
    class P(Snapshottable, pydantic.BaseModel):
        a_b: int = pydantic.Field(default=0, alias="aB")

    with pytest.raises(TypeError, match=r"journal='flush' is not supported for .*P"):
        P.open(tmp_path, journal="flush")

    @dcj.dataclass_json(letter_case=dcj.LetterCase.CAMEL)
    @dataclass
    class C(Snapshottable):
        a_b: int = 0

    with pytest.raises(TypeError, match=r"not supported for .*C"):
        C.open(tmp_path / "c", journal="fsync")


def test_a_custom_codec_is_refused(tmp_path: Path) -> None:
    from snapmixin.codec import MsgspecCodec

    with pytest.raises(TypeError, match="codec="):
        Game.open(SnapStore(tmp_path, codec=MsgspecCodec()), journal="flush")


def test_nested_model_with_its_own_shape_is_replaced_whole(tmp_path: Path) -> None:
    h = Holder.open(tmp_path, journal="flush")
    h.snapshot()
    h.pm.x_y = 5
    h.pm.items.append(3)
    got = ops(tmp_path)
    assert [o["path"] for r in got for o in r] == ["/pm", "/pm"]
    assert got[-1][0]["value"] == {"xY": 5, "items": [3]}  # as the pydantic adapter writes it
    assert Holder.open(tmp_path) == h


def test_apply_ops_rfc6902_subset() -> None:
    doc: Any = {"a": [1, 2], "b": {"c~d/e": 1}}
    doc = J.apply_ops(doc, [{"op": "add", "path": "/a/0", "value": 0},
                            {"op": "add", "path": "/a/-", "value": 3},
                            {"op": "remove", "path": "/b/c~0d~1e"},
                            {"op": "replace", "path": "/a/1", "value": 9}])
    assert doc == {"a": [0, 9, 2, 3], "b": {}}
    assert J.apply_ops(doc, [{"op": "replace", "path": "", "value": [1]}]) == [1]
    for bad in ({"op": "remove", "path": "/a/7"}, {"op": "add", "path": "/a/9", "value": 1},
                {"op": "move", "path": "/a"}, {"op": "remove", "path": "/zz/0"}):
        with pytest.raises(ValueError):
            J.apply_ops(doc, [bad])


def test_segment_name_says_what_it_follows() -> None:
    name = J.segment_name("sha256:" + "ab" * 32, 42)
    assert name == "journal-00000000000000000042-abababababababab.jsonl"
    assert os.path.splitext(name)[1] == ".jsonl"


def test_a_second_journaled_writer_is_refused(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.level = 2
    with pytest.raises(StoreLocked, match="another object is journaling"):
        Game.open(tmp_path, journal="flush")
    assert Game.open(tmp_path) == g  # reading (and replaying) is always allowed
    g.level = 3  # the first writer's records still land where replay finds them
    assert Game.open(tmp_path).level == 3
    del g
    gc.collect()
    assert Game.open(tmp_path, journal="flush").level == 3  # its lock went with it


def test_a_str_json_cannot_hold_falls_back_to_a_snapshot_that_raises(tmp_path: Path) -> None:
    g = opened(tmp_path)
    g.name = "ok"  # the fast path for `name` is learnt here
    with pytest.raises(EncodeError):
        g.name = "\ud800"  # a lone surrogate: no UTF-8 for it
    g.name = "fine"
    g.level = 2
    reopen_equal(tmp_path, g)


def test_a_list_in_a_model_and_in_a_dataclass_is_recorded_in_both(tmp_path: Path) -> None:
    h = Holder.open(tmp_path, journal="flush")
    h.snapshot()
    h.other = h.pm.items  # the same tracked list: in the model and in a plain field
    h.pm.items.append(4)
    paths = sorted(o["path"] for o in ops(tmp_path)[-1])
    assert paths == ["/other/-", "/pm"]
    assert Holder.open(tmp_path) == h


def test_a_node_given_a_second_place_then_replaced_by_a_scalar(tmp_path: Path) -> None:
    """The map of places grows in place when a node gains a place; a scalar stored where the
    node was must drop that place again (even for a field the fast path knows)."""
    a = Loose.open(tmp_path, journal="flush")
    a.snapshot()
    a.slot = 1  # the fast path learns `slot`
    u = Unit()
    a.units.append(u)
    a.slot = u  # a second place for u
    u.hp = 4
    assert sorted(o["path"] for o in ops(tmp_path)[-1]) == ["/slot/hp", "/units/0/hp"]
    a.slot = 2  # u leaves /slot
    u.hp = 5
    assert ops(tmp_path)[-1] == [{"op": "replace", "path": "/units/0/hp", "value": 5}]
    doc, _ = SnapStore(tmp_path).restore()
    found = J.load(SnapStore(tmp_path), SnapStore(tmp_path).latest().generation, 0)
    assert J.replay(doc, found) == {"slot": 2, "units": [{"hp": 5, "tags": [], "notes": []}]}


def test_fallback_keeps_the_damaged_segment_whole(tmp_path: Path) -> None:
    """open(fallback=True) goes on with the good records only, but the segment as found is kept in
    history/ (byte for byte): the records after the damage are not thrown away."""
    first = _mutate(tmp_path).inventory[:1]  # (the writer is gone: its segment lock with it)
    gc.collect()
    (seg,) = segments(tmp_path)
    lines = seg.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"i1"', b'"i7"')
    damaged = b"".join(lines)
    seg.write_bytes(damaged)
    again = Game.open(tmp_path, fallback=True, journal="flush")
    assert again.inventory == first
    (kept,) = (tmp_path / "history").glob(f"damaged-{seg.name}-*")
    assert kept.read_bytes() == damaged
    assert seg.read_bytes() != damaged  # the live segment holds only the good records now
    again.inventory.append("next")  # and the journal goes on from them
    del again
    gc.collect()
    assert Game.open(tmp_path).inventory == [*first, "next"]


@pytest.mark.parametrize("ops", [b"[1]", b'[{"op":"add"}]', b'[{"op":"add","path":3,"value":1}]',
                                 b'[{"op":"replace","path":"/level"}]',
                                 b'[{"op":"add","path":"/level/x","value":1}]'])
def test_a_well_checksummed_record_that_is_not_a_patch_is_corrupt(tmp_path: Path, ops: bytes) -> None:
    """A record whose checksum holds but whose ops are not JSON Patch operations that fit (written
    by hand, or by another program) is CorruptSnapshot naming the segment, never a TypeError."""
    _mutate(tmp_path, 2)
    gc.collect()
    (seg,) = segments(tmp_path)
    body = b'{"seq":3,"ops":' + ops
    seg.write_bytes(seg.read_bytes() + body + b',"crc":"%08x"}\n' % zlib.crc32(body))
    with pytest.raises(CorruptSnapshot, match="record seq 3") as e:
        Game.open(tmp_path)
    assert e.value.path == str(seg)
    assert Game.open(tmp_path, fallback=True).inventory == ["i0", "i1"]
