"""restore()'s quick ways (issue 13) keep every check of the general path.

A typed restore of a small ``snapshot.json`` in the writer's layout takes its own short path
(``SnapStore._restore_small``): one deferral of the signal handlers for both reads, the header
of the generation restored last not parsed again, the state decoded into the strict mirror,
then the caller's classes built. Each test here edits the file (a flipped byte, an unknown key
at some depth, a header changed under an unchanged trailer...) and checks that the answer is
the general path's: the same error naming the file and the problem, nothing of the caller's
built before the checksum holds, ``fallback=True`` still skipping damage.
"""

from __future__ import annotations

import gc
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest

from snapmixin import SnapStore
from snapmixin.codec.mirrors import strict_mirror
from snapmixin.errors import CorruptSnapshot, DecodeError
from snapmixin.store import format as fmt
from tests.support import count_deferrals, reseal, unseal


@dataclass
class Inner:
    x: int
    label: str
    built: ClassVar[list[int]] = []

    def __post_init__(self) -> None:
        Inner.built.append(self.x)


@dataclass
class Item:
    name: str
    inner: Inner
    tags: list[str] = field(default_factory=list)
    note: str | None = None


@dataclass
class State:
    items: list[Item]
    level: int = 1


def _state(n: int = 3) -> State:
    return State(items=[Item(f"item-{i}", Inner(i, f"inner {i}"), ["a", "b"], None if i % 2 else "n")
                        for i in range(n)], level=2)


def _general(d: Path, cls: Any, **kw: Any) -> tuple[Any, int]:
    """restore() by the general path only (the short one switched off on this object)."""
    store = SnapStore(d, **kw)
    store._mirror_decoder = lambda cls: None  # type: ignore[method-assign]
    return store.restore(cls)


def _short(store: SnapStore, cls: Any, version: int | None = None) -> Any:
    """The short path alone on ``store``'s snapshot.json: its Restored, or None (declined)."""
    decoder = store._mirror_decoder(cls)
    if decoder is None:
        return None
    data, seqfile = store.backend.read_with_seqfile("snapshot.json", 1 << 16)
    return store._restore_small(cls, version, decoder, store._snapshot_path(), data, seqfile)


def _edit_state(d: Path, old: bytes, new: bytes, count: int = 1) -> None:
    """Replace ``old`` by ``new`` in the state of ``d``'s snapshot.json, checksum made valid
    again (as `python -m snapmixin rehash` would after a hand edit)."""
    body = unseal((d / "snapshot.json").read_bytes())
    assert body.count(old) >= count
    (d / "snapshot.json").write_bytes(reseal(body.replace(old, new, count)))


def test_an_intact_small_file_takes_the_short_path(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create(_state(), 5)
    done = _short(store, State)
    assert done is not None and done.state == _state() and done.info.seq == 5 and not done.fell_back
    assert done.base == done.info.generation == store.latest().generation  # type: ignore[union-attr]
    assert store.restore(State) == (_state(), 5) == _general(d, State)


def test_a_small_restore_reads_both_files_in_one_deferral(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create(_state(), 5)
    deferrals = count_deferrals(monkeypatch)
    assert store.restore(State) == (_state(), 5)
    assert deferrals[0] == 1
    # a stale snapshot.seq read in that deferral is still repaired
    (d / "snapshot.seq").write_bytes(b"4\n")
    assert store.restore(State) == (_state(), 5)
    assert (d / "snapshot.seq").read_bytes() == b"5\n"


def test_the_header_of_the_generation_restored_last_is_not_parsed_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create(_state(), 5)
    parsed: list[str] = []
    real = SnapStore._info_from_header

    def counting(self: SnapStore, *args: Any, **kwargs: Any) -> Any:
        parsed.append(args[1])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SnapStore, "_info_from_header", counting)
    for _ in range(3):
        assert store.restore(State) == (_state(), 5)
    assert len(parsed) == 1
    store.create(_state(4), 6)  # a new generation: its header is read
    assert store.restore(State) == (_state(4), 6)
    assert len(parsed) == 2


@pytest.mark.parametrize("how", ["seq", "created_at", "schema_version"])
def test_a_header_edited_under_the_same_trailer_is_damage_after_a_restore(tmp_path: Path, how: str) -> None:
    """The remembered header is reused only for the same bytes: an edit of the header that keeps
    the size and the trailer fails the checksum, as it does for a fresh store object; restoring
    the original bytes afterwards gives the original answer (nothing wrong was remembered)."""
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create(_state(), 5)
    assert store.restore(State) == (_state(), 5)
    good = (d / "snapshot.json").read_bytes()
    edits = {"seq": (b'"seq": 5,', b'"seq": 7,'),
             "created_at": (b'"created_at": "2', b'"created_at": "1'),
             "schema_version": (b'"schema_version": 1,', b'"schema_version": 2,')}
    old, new = edits[how]
    bad = good.replace(old, new, 1)
    assert bad != good and len(bad) == len(good) and bad[-fmt.TRAILER_SIZE:] == good[-fmt.TRAILER_SIZE:]
    (d / "snapshot.json").write_bytes(bad)
    for s in (store, SnapStore(d)):
        with pytest.raises(CorruptSnapshot, match="checksum mismatch") as e:
            s.restore(State)
        assert e.value.path == str(d / "snapshot.json")
    (d / "snapshot.json").write_bytes(reseal(unseal(bad)))  # the edit accepted: a new trailer
    want_seq = 7 if how == "seq" else 5
    if how == "schema_version":
        assert store.restore(State) == (_state(), 5)  # unversioned store: any schema version reads
        assert store.latest().schema_version == 2  # type: ignore[union-attr]
    else:
        assert store.restore(State)[1] == want_seq
    (d / "snapshot.json").write_bytes(good)
    assert store.restore(State) == (_state(), 5)


def test_every_flipped_byte_is_damage_and_builds_nothing(tmp_path: Path) -> None:
    """A bit flipped anywhere in a small file: CorruptSnapshot naming the file, never a state,
    never one of the caller's objects built before the checksum was found wrong. Through one store
    object that restored the intact file before each edit (so its remembered header is in play)
    and through a fresh one."""
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create(_state(2), 5)
    good = (d / "snapshot.json").read_bytes()
    assert len(good) < 2000
    for i in range(len(good)):
        bit = 1 << (i % 8)
        bad = bytearray(good)
        bad[i] ^= bit
        assert store.restore(State) == (_state(2), 5)
        (d / "snapshot.json").write_bytes(bytes(bad))
        Inner.built.clear()
        for s in (store, SnapStore(d)):
            with pytest.raises(CorruptSnapshot) as e:
                s.restore(State)
            assert str(d / "snapshot.json") in str(e.value), (i, bit)
        assert Inner.built == [], (i, bit)
        (d / "snapshot.json").write_bytes(good)


@pytest.mark.parametrize("n", [3, 900, 7000], ids=["small file", "over 64 KiB", "over 1 MiB"])
@pytest.mark.parametrize(("old", "new", "path"), [
    (b'"level": 2', b'"level": 2,\n  "extra": 1', "$.extra"),
    (b'"name": "item-1",', b'"name": "item-1",\n      "nmae": "x",', "$.items[1].nmae"),
    (b'"label": "inner 2"', b'"label": "inner 2",\n        "zz": [1, {"a": 2}]', "$.items[2].inner.zz"),
])
def test_an_unknown_key_at_any_depth_is_refused_with_its_path(tmp_path: Path, n: int, old: bytes,
                                                             new: bytes, path: str) -> None:
    """Files under 1 MiB go the short way, larger ones the general way (the checksum made in a
    worker thread meanwhile): the same refusal, before anything of the caller's is built."""
    d = tmp_path / "s"
    store = SnapStore(d)
    state = _state(n)
    store.create(state, 5)
    assert ((d / "snapshot.json").stat().st_size > 1 << 20) == (n > 1000)
    assert store.restore(State) == (state, 5)
    _edit_state(d, old, new)
    Inner.built.clear()
    for s in (store, SnapStore(d)):
        with pytest.raises(DecodeError) as e:
            s.restore(State)
        assert e.value.json_path == path and f"unknown key {path.rsplit('.', 1)[1]!r}" in str(e.value)
        assert str(d / "snapshot.json") in str(e.value)
    assert Inner.built == []  # refused in the mirror: nothing of the caller's was built
    with pytest.raises(DecodeError) as general:
        _general(d, State)
    assert str(general.value) == str(e.value)
    # the same file, unknown keys dropped on request
    assert SnapStore(d, ignore_unknown_keys=True).restore(State) == (state, 5)


@pytest.mark.parametrize(("old", "new"), [
    (b'"x": 1,', b'"x": "one",'),  # a wrong type
    (b'"x": 1,\n', b''),  # a required field missing
    (b'"level": 2', b'"level": 2.5'),
])
def test_a_state_that_does_not_fit_gets_the_general_paths_error(tmp_path: Path, old: bytes,
                                                                new: bytes) -> None:
    d = tmp_path / "s"
    SnapStore(d).create(_state(), 5)
    _edit_state(d, old, new)
    with pytest.raises(DecodeError) as fast:
        SnapStore(d).restore(State)
    with pytest.raises(DecodeError) as general:
        _general(d, State)
    assert str(fast.value) == str(general.value) and fast.value.json_path == general.value.json_path


@dataclass
class Picky:
    n: int
    calls: ClassVar[list[int]] = []

    def __post_init__(self) -> None:
        Picky.calls.append(self.n)
        if self.n < 0:
            raise ValueError("n must not be negative")


@dataclass
class PickyState:
    xs: list[Picky]


def test_a_class_refusing_a_value_is_built_once_and_named(tmp_path: Path) -> None:
    """A failure while the caller's classes are built (after the checksum and the mirror) is
    raised by the short path itself, as the general path words it: built once, not twice."""
    d = tmp_path / "s"
    SnapStore(d).create({"xs": [{"n": 1}, {"n": 2}, {"n": -3}, {"n": 4}]}, 5)
    Picky.calls.clear()
    with pytest.raises(DecodeError) as fast:
        SnapStore(d).restore(PickyState)
    assert Picky.calls == [1, 2, -3]
    with pytest.raises(DecodeError) as general:
        _general(d, PickyState)
    assert str(fast.value) == str(general.value)
    assert "n must not be negative" in str(fast.value) and str(d / "snapshot.json") in str(fast.value)


def test_a_damaged_small_file_falls_back_as_before(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    store.create(_state(2), 4)
    store.create(_state(3), 5)
    assert store.restore(State) == (_state(3), 5)
    data = bytearray((d / "snapshot.json").read_bytes())
    data[40] ^= 1
    (d / "snapshot.json").write_bytes(bytes(data))
    with pytest.raises(CorruptSnapshot):
        store.restore(State)
    assert store.restore(State, fallback=True) == (_state(2), 4)
    assert "restored the older generation" in caplog.text


def test_a_migration_takes_the_general_path(tmp_path: Path) -> None:
    """A schema version other than the one asked for: the short path declines (the migration
    runs on plain values first)."""
    from snapmixin import migration

    @migration(from_version=1)
    def _v1(d: dict[str, Any]) -> dict[str, Any]:
        d["level"] = 10
        return d

    d = tmp_path / "s"
    SnapStore(d).create(_state(), 5)
    store = SnapStore(d, schema_version=2, migrations=[_v1])
    assert _short(store, State, 2) is None
    state, seq = store.restore(State)
    assert (state.level, seq) == (10, 5)


def test_other_types_and_layouts_take_the_general_path(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create({"a": 1}, 5)
    for cls in (dict, dict[str, int]):  # nothing to mirror: no short path
        assert _short(store, cls) is None
        assert store.restore(cls) == ({"a": 1}, 5)
    # the header laid out another valid way: the general path reads it
    body = unseal((d / "snapshot.json").read_bytes())
    (d / "snapshot.json").write_bytes(reseal(body.replace(b'"seq": 5', b'"seq":  5')))

    @dataclass
    class A:
        a: int

    assert _short(store, A) is None
    assert store.restore(A) == (A(1), 5)


def test_mirror_structs_are_left_out_of_the_cyclic_gc() -> None:
    """A strict mirror is decoded from JSON and dropped once converted (it can hold no cycle):
    its objects are not tracked by the cyclic GC, so they are cheaper to make and to free."""
    mirror, partial = strict_mirror(State)
    assert mirror is not None and not partial
    value = msgspec.json.Decoder(mirror).decode(msgspec.json.encode(_state()))
    assert not gc.is_tracked(value) and not gc.is_tracked(value.items[0])
    assert re.search(r"Item", type(value.items[0]).__name__)


@pytest.mark.parametrize("n", [3, 900, 7000], ids=["small file", "over 64 KiB", "over 1 MiB"])
def test_each_file_is_opened_once_per_read_of_it(tmp_path: Path, n: int) -> None:
    """A file under 1 MiB is read whole in one open; of a larger one, the short path's first
    read (its first 64 KiB) is the general path's, which opens it once more for the rest; and
    snapshot.seq once, in the first deferral."""
    from tests.crashfs import RecordingFS

    d = tmp_path / "s"
    SnapStore(d).create(_state(n), 5)
    fs = RecordingFS()
    store = SnapStore(d, fs=fs)
    assert store.restore(State) == (_state(n), 5)
    opened = [op.path for op in fs.ops if op.name == "open_read"]
    size = (d / "snapshot.json").stat().st_size
    assert (size < 1 << 16) if n == 3 else (1 << 16 < size < 1 << 20) if n == 900 else (size > 1 << 20)
    want = 1 if n < 1000 else 2
    assert opened.count(str(d / "snapshot.json")) == want and opened.count(str(d / "snapshot.seq")) == 1
    assert len(opened) == want + 1


def test_a_type_the_codec_cannot_take_fails_as_it_did(tmp_path: Path) -> None:
    """Finding the short path's plan never raises on its own: a missing snapshot is still
    SnapshotNotFound, whatever the type; and a codec given to the store is always used."""
    from snapmixin.errors import SnapshotNotFound

    class Weird:
        def __init__(self, x: object) -> None:
            self.x = x

    d = tmp_path / "s"
    with pytest.raises(SnapshotNotFound):
        SnapStore(d).restore(Weird)
    SnapStore(d).create({"x": 1}, 1)
    with pytest.raises(Exception) as general:
        _general(d, Weird)
    with pytest.raises(type(general.value)) as short:
        SnapStore(d).restore(Weird)
    assert str(short.value) == str(general.value)


def test_a_file_over_max_size_is_refused_from_its_head_only(tmp_path: Path) -> None:
    """The whole first read stops at max_size: a file over it is refused having been asked for
    its first 64 KiB only; a file under 64 KiB is read and restored whatever max_size says, as
    before."""
    from tests.crashfs import RecordingFS

    d = tmp_path / "s"
    SnapStore(d, max_size=None).create(_state(900), 5)
    size = (d / "snapshot.json").stat().st_size
    assert 1 << 16 < size < 1 << 20
    fs = RecordingFS(record_data=False)
    with pytest.raises(CorruptSnapshot, match="more than this store's max_size"):
        SnapStore(d, max_size=size - 1, fs=fs).restore(State)
    asked = [op.size for op in fs.ops if op.name == "read" and op.path == str(d / "snapshot.json")]
    assert asked and max(asked) <= 1 << 16, asked  # type: ignore[type-var]
    assert SnapStore(d, max_size=size).restore(State) == (_state(900), 5)
    SnapStore(d, max_size=None).create(_state(3), 6)
    assert SnapStore(d, max_size=100).restore(State) == (_state(3), 6)


def test_a_fallback_is_a_user_warning_at_the_callers_line(tmp_path: Path) -> None:
    """fallback=True restoring an older generation issues a UserWarning (besides its log record)
    naming the store, the generation restored and the damage, attributed to the caller's line:
    through the store, asyncio, and the mixin's open(). An intact newest generation warns not."""
    import asyncio
    import warnings

    from snapmixin import Snapshottable

    d = tmp_path / "s"
    store = SnapStore(d, keep=2)
    store.create(_state(2), 4)
    store.create(_state(3), 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.restore(State, fallback=True) == (_state(3), 5)  # intact: no warning
    data = bytearray((d / "snapshot.json").read_bytes())
    data[40] ^= 1
    (d / "snapshot.json").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="restored the older generation") as got:
        assert store.restore(State, fallback=True) == (_state(2), 4)
    assert len(got) == 1 and got[0].filename == __file__
    message = str(got[0].message)
    assert str(d) in message and "seq 4" in message and "snapshot.json" in message
    with pytest.warns(UserWarning, match="restored the older generation"):
        assert asyncio.run(store.arestore(State, fallback=True)) == (_state(2), 4)

    @dataclass
    class Game(Snapshottable):
        level: int = 1

    g = tmp_path / "g"
    game = Game.open(SnapStore(g, keep=2))
    game.level = 2
    game.snapshot()
    game.level = 3
    game.snapshot()
    raw = bytearray((g / "snapshot.json").read_bytes())
    raw[40] ^= 1
    (g / "snapshot.json").write_bytes(bytes(raw))
    with pytest.raises(CorruptSnapshot):
        Game.open(SnapStore(g, keep=2))
    with pytest.warns(UserWarning, match="restored the older generation") as got:
        back = Game.open(SnapStore(g, keep=2), fallback=True)
    assert back.level == 2 and got[0].filename == __file__
