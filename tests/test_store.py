"""SnapStore: round trips, the on-disk envelope, history with keep > 1, info and async variants."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import enum
import hashlib
import json
import logging
import pathlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pytest

from snapmixin import SnapStore
from snapmixin.errors import CorruptSnapshot, SeqRegression, SnapshotConflict, SnapshotNotFound
from snapmixin.store import SnapshotInfo


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Inner:
    name: str
    tags: set[str] = field(default_factory=set)


@dataclass
class Everything:
    inner: Inner
    items: list[Inner]
    by_name: dict[str, Inner]
    pair: tuple[int, str]
    rest: tuple[int, ...]
    frozen: frozenset[int]
    maybe: Optional[int]  # noqa: UP045 - the typing spelling is what is under test
    maybe_set: int | None
    either: Union[int, str]  # noqa: UP007
    either_dc: Inner | list[int]
    when: dt.datetime
    naive: dt.datetime
    day: dt.date
    at: dt.time
    span: dt.timedelta
    uid: uuid.UUID
    money: decimal.Decimal
    color: Color
    level: Level
    where: pathlib.Path
    floats: list[float]
    nested: dict[str, list[dict[str, int]]]


def everything() -> Everything:
    return Everything(
        inner=Inner("a", {"x", "y"}),
        items=[Inner("b"), Inner("ünïcødé ☃", {"q"})],
        by_name={"c": Inner("c", {"z"}), "with space": Inner("d")},
        pair=(1, "one"),
        rest=(1, 2, 3),
        frozen=frozenset({5, 6}),
        maybe=None,
        maybe_set=7,
        either="s",
        either_dc=Inner("e"),
        when=dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        naive=dt.datetime(2020, 1, 1, 12, 30),
        day=dt.date(2024, 2, 29),
        at=dt.time(23, 59, 59, 1),
        span=dt.timedelta(days=1, seconds=3, microseconds=7),
        uid=uuid.UUID("12345678-1234-5678-1234-567812345678"),
        money=decimal.Decimal("3.14159265358979323846264338327950288"),
        color=Color.BLUE,
        level=Level.HIGH,
        where=pathlib.Path("/a/b c.txt"),
        floats=[0.1, -2.5e300, 1e-300, 0.0],
        nested={"k": [{"a": 1}, {}], "empty": []},
    )


# -- round trips -----------------------------------------------------------------------------


def test_typed_round_trip_of_every_type(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    original = everything()
    info = store.create(original, 5)
    assert info.seq == 5
    state, seq = store.restore(Everything)
    assert seq == 5
    assert state == original
    assert type(state.inner) is Inner and type(state.items[1]) is Inner
    assert type(state.inner.tags) is set and type(state.pair) is tuple and type(state.frozen) is frozenset
    assert state.when.utcoffset() == dt.timedelta(hours=2) and state.naive.tzinfo is None
    assert type(state.money) is decimal.Decimal
    assert str(state.money) == "3.14159265358979323846264338327950288"
    assert state.color is Color.BLUE and state.level is Level.HIGH
    assert isinstance(state.where, pathlib.Path) and type(state.uid) is uuid.UUID
    assert isinstance(state.either_dc, Inner)


def test_untyped_round_trip_gives_plain_json_values(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(everything(), 1)
    state, seq = store.restore()
    assert seq == 1
    assert state["inner"] == {"name": "a", "tags": ["x", "y"]} or state["inner"] == {
        "name": "a", "tags": ["y", "x"]}
    assert state["pair"] == [1, "one"] and state["rest"] == [1, 2, 3]
    assert sorted(state["frozen"]) == [5, 6]
    assert state["maybe"] is None and state["maybe_set"] == 7 and state["either"] == "s"
    assert state["when"] == "2024-01-02T03:04:05.678901+02:00"
    assert state["naive"] == "2020-01-01T12:30:00"
    assert state["day"] == "2024-02-29" and state["at"] == "23:59:59.000001"
    assert dt.timedelta(days=1, seconds=3, microseconds=7) == _parse_duration(state["span"])
    assert state["uid"] == "12345678-1234-5678-1234-567812345678"
    assert decimal.Decimal(state["money"]) == everything().money
    assert state["color"] == "blue" and state["level"] == 2
    assert state["where"] == "/a/b c.txt"
    assert state["floats"] == [0.1, -2.5e300, 1e-300, 0.0]
    assert state["items"][1]["name"] == "ünïcødé ☃"
    # and the file is the documented envelope
    doc = json.loads((tmp_path / "s" / "snapshot.json").read_text(encoding="utf-8"))
    assert doc["state"] == state


def _parse_duration(text: str) -> dt.timedelta:
    # msgspec writes ISO 8601 durations like "P1DT3.000007S"
    assert text.startswith("P")
    days, _, time_part = text[1:].partition("T")
    d = int(days[:-1]) if days else 0
    secs = float(time_part[:-1]) if time_part else 0.0
    return dt.timedelta(days=d, seconds=secs)


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1, 2.5, "x", None, True, False], "c": {"d": {}}},
    [1, 2, 3],
    "just a string with \"quotes\" and \\ and \n newline and ☃",
    12345678901234567890,
    -1.5,
    True,
    None,
    {},
    [],
    "",
    0,
], ids=lambda v: type(v).__name__ + str(len(repr(v))))
def test_plain_values_round_trip(tmp_path: Path, value: Any) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(value, 3)
    assert store.restore() == (value, 3)
    raw = (tmp_path / "s" / "snapshot.json").read_bytes()
    assert raw.endswith(b"}\n") and b"\r" not in raw
    assert json.loads(raw)["state"] == value


@dataclass
class Empty:
    pass


def test_empty_states(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(Empty(), 0)
    assert store.restore(Empty) == (Empty(), 0)
    assert store.restore() == ({}, 0)
    store.create({}, 0)  # the same seq again is allowed
    assert store.restore() == ({}, 0)
    store.create([], 1)
    assert store.restore(list[int]) == ([], 1)


def test_tuple_keys_and_int_keys(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({1: "a", 2: "b"}, 1)
    assert store.restore(dict[int, str]) == ({1: "a", 2: "b"}, 1)
    assert store.restore() == ({"1": "a", "2": "b"}, 1)


def test_subclasses_of_builtins_encode_as_their_base(tmp_path: Path) -> None:
    class MyList(list):  # type: ignore[type-arg]
        pass

    class MyDict(dict):  # type: ignore[type-arg]
        pass

    class MyStr(str):
        pass

    store = SnapStore(tmp_path / "s")
    store.create(MyDict(a=MyList([1, 2]), b=MyStr("s")), 1)
    assert store.restore() == ({"a": [1, 2], "b": "s"}, 1)


def test_freezegun_fake_datetime_encodes_as_datetime(tmp_path: Path) -> None:
    freezegun = pytest.importorskip("freezegun")

    @dataclass
    class Stamp:
        at: dt.datetime
        day: dt.date

    with freezegun.freeze_time("2024-05-06 07:08:09"):
        stamp = Stamp(dt.datetime.now(), dt.date.today())
    assert type(stamp.at).__name__ == "FakeDatetime"
    store = SnapStore(tmp_path / "s")
    store.create(stamp, 1)  # after the freeze
    assert store.restore() == ({"at": "2024-05-06T07:08:09", "day": "2024-05-06"}, 1)
    got, _ = store.restore(Stamp)
    assert got == Stamp(dt.datetime(2024, 5, 6, 7, 8, 9), dt.date(2024, 5, 6))


def test_freezegun_fake_datetime_encodes_while_frozen(tmp_path: Path) -> None:
    freezegun = pytest.importorskip("freezegun")

    @dataclass
    class Stamp:
        at: dt.datetime
        day: dt.date

    store = SnapStore(tmp_path / "s")
    with freezegun.freeze_time("2024-05-06 07:08:09"):
        store.create({"at": dt.datetime.now(), "day": dt.date.today()}, 1)
        assert store.restore() == ({"at": "2024-05-06T07:08:09", "day": "2024-05-06"}, 1)
        store.create(Stamp(dt.datetime.now(), dt.date.today()), 2)  # a dataclass too
    assert store.restore(Stamp) == (Stamp(dt.datetime(2024, 5, 6, 7, 8, 9), dt.date(2024, 5, 6)), 2)


@pytest.mark.slow
def test_large_state_round_trip(tmp_path: Path) -> None:
    rows = [{"id": i, "name": f"row {i}", "vals": [i, i + 1, i + 2], "pad": "p" * 60}
            for i in range(230_000)]
    state = {"rows": rows, "tail": "end"}
    store = SnapStore(tmp_path / "s")
    info = store.create(state, 99)
    assert info.size > 50_000_000
    assert (tmp_path / "s" / "snapshot.json").stat().st_size == info.size
    got, seq = store.restore()
    assert seq == 99
    assert len(got["rows"]) == 230_000 and got["rows"][-1] == rows[-1] and got["tail"] == "end"
    assert got == state
    assert store.latest() == SnapshotInfo(seq=99, created_at=info.created_at, schema_version=1,
                                          path=info.path, size=info.size, checksum=info.checksum)


# -- the envelope ----------------------------------------------------------------------------


def test_envelope_format_and_checksum(tmp_path: Path) -> None:
    d = tmp_path / "s"
    info = SnapStore(d).create({"counter": 42, "names": ["a", "b"]}, 10)
    raw = (d / "snapshot.json").read_bytes()
    doc = json.loads(raw)
    # format version 2 (issue 11): the checksum is the last member and covers every byte before it
    assert list(doc) == ["format", "format_version", "seq", "schema_version", "created_at",
                         "state", "checksum"]
    assert doc["format"] == "snapmixin" and doc["format_version"] == 2
    assert doc["checksum"] == info.checksum == info.generation
    assert doc["seq"] == 10 and doc["schema_version"] == 1
    assert doc["state"] == {"counter": 42, "names": ["a", "b"]}
    assert raw.startswith(b'{\n  "format": "snapmixin",\n') and raw.endswith(b"\n}\n")
    created = dt.datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00"))
    assert created.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 60
    # Format version 2: the checksum is sha256 of every byte before the fixed-shape trailer.
    trailer = b',\n  "checksum": "' + doc["checksum"].encode() + b'"\n}\n'
    assert raw.endswith(trailer)
    span = raw[:-len(trailer)]
    assert doc["checksum"] == "sha256:" + hashlib.sha256(span).hexdigest() == info.checksum
    assert (d / "snapshot.seq").read_bytes() == b"10\n"
    assert info.path == d / "snapshot.json" and info.size == len(raw)


def test_nothing_touches_disk_until_create(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b" / "s"
    store = SnapStore(d, keep=3)
    assert not d.parent.exists()
    assert not store.exists() and store.latest() is None and store.history() == []
    with pytest.raises(SnapshotNotFound):
        store.restore()
    assert not (tmp_path / "a").exists()
    store.create({"x": 1}, 1)
    assert store.exists() and store.restore() == ({"x": 1}, 1)


def test_keep_must_be_positive_int(tmp_path: Path) -> None:
    for bad in (0, -1, True, 1.5, "3"):
        with pytest.raises(ValueError, match="keep"):
            SnapStore(tmp_path, keep=bad)  # type: ignore[arg-type]


def test_latest_and_info(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    info = store.create({"a": 1}, 7)
    latest = store.latest()
    assert latest is not None
    assert latest.seq == 7 and latest.size == info.size and latest.checksum == info.checksum
    assert latest.created_at == info.created_at and latest.layout == "snapmixin-2"
    assert latest.path == tmp_path / "s" / "snapshot.json"


def test_seq_increases_and_equal_seq_is_allowed(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    for seq in (0, 0, 1, 5, 5, 2**63 - 1):
        store.create({"seq": seq}, seq)
        assert store.restore() == ({"seq": seq}, seq)
    with pytest.raises(SeqRegression):
        store.create({}, 5)


def test_several_stores_on_one_directory_see_each_other(tmp_path: Path) -> None:
    a, b = SnapStore(tmp_path / "s"), SnapStore(tmp_path / "s")
    a.create({"by": "a"}, 1)
    assert b.restore() == ({"by": "a"}, 1)
    b.create({"by": "b"}, 2)
    assert a.restore() == ({"by": "b"}, 2)
    with pytest.raises(SeqRegression) as e:
        a.create({"by": "a"}, 1)
    assert e.value.stored == 2 and e.value.offered == 1


def test_no_temp_files_left_after_creates(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s", keep=2)
    for seq in range(5):
        store.create({"n": seq}, seq)
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == [".lock", "history", "snapshot.json", "snapshot.seq"]


def test_file_mode_follows_umask(tmp_path: Path) -> None:
    import os

    cur = os.umask(0o022)
    os.umask(cur)
    SnapStore(tmp_path / "s").create({}, 1)
    assert (tmp_path / "s" / "snapshot.json").stat().st_mode & 0o777 == 0o666 & ~cur
    os.chmod(tmp_path / "s" / "snapshot.json", 0o640)
    SnapStore(tmp_path / "s").create({}, 2)
    assert (tmp_path / "s" / "snapshot.json").stat().st_mode & 0o777 == 0o640  # an existing mode is kept


# -- keep > 1: history -----------------------------------------------------------------------


def hist_file(d: Path, seq: int) -> Path:
    """The one file of ``history/`` holding ``seq`` (named by seq and commit time)."""
    found = sorted((d / "history").glob(f"snapshot-{seq:020d}-*.json"))
    assert len(found) == 1, found
    return found[0]


def test_keep3_history_holds_exactly_two_previous_generations(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for seq in (1, 2, 4, 8, 16):
        store.create({"seq": seq}, seq)
        hist = sorted(p.name for p in (d / "history").iterdir()) if (d / "history").exists() else []
        prev = [s for s in (1, 2, 4, 8, 16) if s < seq][-2:]
        assert [n[:29] for n in hist] == [f"snapshot-{s:020d}" for s in prev]
    assert [i.seq for i in store.history()] == [16, 8, 4]
    assert store.history()[0].path == d / "snapshot.json"
    assert store.history()[1].path == hist_file(d, 8)
    for seq in (8, 4):
        doc = json.loads(hist_file(d, seq).read_text())
        assert doc["seq"] == seq and doc["state"] == {"seq": seq}


def test_keep1_has_no_history(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    for seq in range(3):
        store.create({"seq": seq}, seq)
    assert not (tmp_path / "s" / "history").exists()
    assert [i.seq for i in store.history()] == [2]


def test_keep3_same_seq_is_not_archived_twice(tmp_path: Path) -> None:
    # Changed on purpose (issue 10 §1): an equal seq with another state used to replace the
    # current generation silently; it is now a conflict, and nothing is written.
    store = SnapStore(tmp_path / "s", keep=3)
    store.create({"v": 1}, 1)
    info = store.create({"v": 2}, 2)
    with pytest.raises(SnapshotConflict):
        store.create({"v": 3}, 2)
    assert store.create({"v": 2}, 2) == info  # the identical state again: a no-op
    assert [i.seq for i in store.history()] == [2, 1]
    assert store.restore() == ({"v": 2}, 2)


def test_fallback_skips_a_damaged_newest_generation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for seq in (1, 2, 3):
        store.create({"seq": seq}, seq)
    (d / "snapshot.json").write_bytes((d / "snapshot.json").read_bytes()[:-30])  # truncated
    with pytest.raises(CorruptSnapshot) as e:
        store.restore()
    assert e.value.path == str(d / "snapshot.json")
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        assert store.restore(fallback=True) == ({"seq": 2}, 2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and any("snapshot.json" in r.getMessage() for r in warnings)
    assert any("older generation" in r.getMessage() for r in warnings)


def test_fallback_skips_several_and_tampered_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for seq in (1, 2, 3):
        store.create({"seq": seq}, seq)
    cur = d / "snapshot.json"
    cur.write_bytes(cur.read_bytes().replace(b'"seq": 3\n  }', b'"seq": 33\n  }'))  # tampered state
    h2 = hist_file(d, 2)
    h2.write_bytes(b"\x00" * 10)
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        assert store.restore(fallback=True) == ({"seq": 1}, 1)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) >= 3
    # Still, a new create() works, and refuses to go below the (damaged) stored seq.
    with pytest.raises(SeqRegression):
        store.create({"seq": 2}, 2)
    store.create({"seq": 4}, 4)
    assert store.restore() == ({"seq": 4}, 4)


def test_fallback_with_nothing_intact_raises_corrupt(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    store.create({"a": 1}, 1)
    store.create({"a": 2}, 2)
    (d / "snapshot.json").write_text("{")
    hist_file(d, 1).write_text("garbage")
    with pytest.raises(CorruptSnapshot, match="no intact older generation"):
        store.restore(fallback=True)


def test_fallback_false_is_the_default(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    store.create({"a": 1}, 1)
    store.create({"a": 2}, 2)
    (d / "snapshot.json").write_text("")
    with pytest.raises(CorruptSnapshot, match="empty"):
        store.restore()


# -- asyncio ---------------------------------------------------------------------------------


def test_acreate_and_arestore(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s", keep=2)

    async def main() -> tuple[Any, Any, SnapshotInfo]:
        info = await store.acreate(everything(), 1)
        typed = await store.arestore(Everything)
        await store.acreate({"x": 2}, 2)
        plain = await store.arestore()
        return typed, plain, info

    typed, plain, info = asyncio.run(main())
    assert typed == (everything(), 1)
    assert plain == ({"x": 2}, 2)
    assert info.seq == 1
    assert [i.seq for i in store.history()] == [2, 1]


def test_acreate_encodes_before_the_io_starts(tmp_path: Path) -> None:
    """The state is encoded in the loop's thread; a mutation once the I/O is under way changes nothing."""
    store = SnapStore(tmp_path / "s")
    state = {"items": [1, 2, 3]}

    async def main() -> None:
        task = asyncio.create_task(store.acreate(state, 1))
        await asyncio.sleep(0)  # the task runs up to its first await: the worker thread
        state["items"].append(4)
        await task

    asyncio.run(main())
    assert store.restore() == ({"items": [1, 2, 3]}, 1)


def test_async_errors_are_the_sync_ones(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({"x": 1}, 1)
    with pytest.raises(SeqRegression):
        asyncio.run(store.acreate({"x": 0}, 0))
    with pytest.raises(SnapshotNotFound):
        asyncio.run(SnapStore(tmp_path / "missing").arestore())
    assert store.restore() == ({"x": 1}, 1)


def test_public_generation_api(tmp_path: Path) -> None:
    """What the CLI and the mixin use: check_generations, check_file, current, commit_encoded,
    restore_generation, history_files, history_path."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    with pytest.raises(SnapshotNotFound):
        store.check_generations()
    assert store.current() == (None, None)
    first = store.create({"a": 1}, 1)
    second = store.commit_encoded(b'{"a":2}', 2, expect=first.generation)
    with pytest.raises(SnapshotConflict):
        store.commit_encoded(b'{"a":3}', 3, expect=first.generation)
    info, token = store.current()
    assert info == second and token == second.generation
    checks = store.check_generations()
    assert [(c.seq, c.current, c.ok, c.checksum_ok) for c in checks] == [(2, True, True, True),
                                                                          (1, False, True, True)]
    assert checks[0].state == b'{\n    "a": 2\n  }'
    assert [s for s, _ in store.history_files()] == [1]
    assert store.history_path(first) == store.history_files()[0][1]
    r = store.restore_generation()
    assert (r.state, r.info, r.base, r.fell_back) == ({"a": 2}, second, second.generation, False)
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes().replace(b'"a": 2', b'"a": 9'))
    bad = store.check_file(p, current=True)
    assert not bad.ok and bad.checksum_ok is False and str(p) in (bad.error or "")
    r = store.restore_generation(fallback=True)
    assert r.state == {"a": 1} and r.fell_back and r.base == store.current()[1]
