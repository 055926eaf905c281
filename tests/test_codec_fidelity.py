"""Issue 9, codec half: big ints next to null, malformed vs mismatch, deep nesting, sets in sorted
order across hash seeds, subclasses of supported types in annotations, errors that teach."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional, TypedDict

import msgspec
import pytest

from snapmixin import Snapshottable, SnapStore, codec, migration
from snapmixin.codec import Malformed, Mismatch, base, paths
from snapmixin.codec import json as codec_json
from snapmixin.errors import CorruptSnapshot, DecodeError, EncodeError
from snapmixin.migrate import _copy_json

BIG = 2**127


#: Deeper than msgspec goes on any supported Python (about 1,000 levels on 3.10/3.11, 1,500 on
#: 3.12, 10,000 on 3.13: it follows the interpreter's recursion guard).
DEEP = 30_000


def nest(n: int) -> Any:
    v: Any = []
    for _ in range(n):
        v = [v]
    return v


# -- item 4: any int round-trips; NaN and infinity are refused with their path -------------------

@dataclass
class Rng:
    state: int
    inc: int
    last: Optional[int] = None  # noqa: UP045
    note: str = "null"


@dataclass
class Sim(Snapshottable):
    rng: int = BIG
    last: Optional[float] = None  # noqa: UP045


@pytest.mark.parametrize("state", [
    {"rng": BIG, "last": None},
    {"rng": -(2**200), "s": "null", "nested": [{"a": None, "b": 2**64}]},
    {"big": 2**64, "neg": -(2**63) - 1, "x": [None]},
])
def test_big_ints_next_to_null_round_trip_untyped(tmp_path: Path, state: dict[str, Any]) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(state, 1)
    assert store.restore() == (state, 1)


def test_big_ints_round_trip_typed_and_mixin(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    r = Rng(BIG + 12345, -(2**100))
    store.create(r, 1)
    assert store.restore(Rng) == (r, 1)
    sim = Sim.open(tmp_path / "m")
    sim.rng = BIG * 3
    sim.snapshot()
    again = Sim.open(tmp_path / "m")
    assert again.rng == BIG * 3 and again.last is None
    assert SnapStore(tmp_path / "m").restore()[0] == {"rng": BIG * 3, "last": None}  # untyped too


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("state", "path"), [
    (lambda v: {"rng": BIG, "x": v}, "$.x"),
    (lambda v: {"s": "null", "big": -(2**90), "deep": [None, {"k": [v]}]}, "$.deep[1].k[0]"),
    (lambda v: [2**65, None, v], "$[2]"),
    (lambda v: Rng(BIG, 1, None, "null and nan"), None),  # no float at all: nothing to refuse
])
def test_nonfinite_floats_refused_whatever_else_the_state_holds(tmp_path: Path, bad: float,
                                                                 state: Any, path: str | None) -> None:
    store = SnapStore(tmp_path / "s")
    if path is None:
        store.create(state(bad), 1)
        return
    with pytest.raises(EncodeError) as e:
        store.create(state(bad), 1)
    assert e.value.json_path == path and path in str(e.value)
    assert not store.exists()


def test_nonfinite_in_a_mixin_with_big_ints_is_refused(tmp_path: Path) -> None:
    sim = Sim.open(tmp_path / "m")
    sim.last = math.nan
    with pytest.raises(EncodeError) as e:
        sim.snapshot()
    assert e.value.json_path == "$.last"


# -- item 6: malformed vs mismatch, decided in the codec ------------------------------------------

@dataclass
class Pair:
    a: int
    b: str = ""


@pytest.mark.parametrize("data", [b'"\xff\xfe"', b'{"a": 1, "b": "\xff"}', b'{"a": "x", "b": "\xff"}',
                                  b'{"a": 1', b'{"a": "wrong type" ', b"[" * DEEP + b"]" * DEEP])
def test_malformed_input_is_malformed_typed_or_not(data: bytes) -> None:
    with pytest.raises(Malformed):
        codec.loads(data)
    with pytest.raises(Malformed):  # typed decoding stops at the first mismatch: the rest is parsed too
        codec.codec_for(Pair).decode(data, Pair)


@pytest.mark.parametrize("data", [b'{"a": "x"}', b'{"b": "y"}', b'{"a": 1, "c": 2}', b"[1]"])
def test_type_mismatch_is_mismatch(data: bytes) -> None:
    with pytest.raises(Mismatch):
        codec.codec_for(Pair).decode(data, Pair)


def _adapter_classes() -> list[type]:
    import attrs
    import pydantic
    from dataclasses_json import dataclass_json

    class M(pydantic.BaseModel):
        a: int

    @attrs.define
    class A:
        a: int

    @dataclass_json
    @dataclass
    class DJ:
        a: int

    class Own:
        def __init__(self, a: int) -> None:
            self.a = a

        def __snapshot_state__(self) -> dict[str, int]:
            return {"a": self.a}

        @classmethod
        def __from_snapshot_state__(cls, value: dict[str, Any]) -> Own:
            if not isinstance(value.get("a"), int):
                raise Mismatch("a must be an int", "$.a")
            return cls(value["a"])

    return [M, A, DJ, Own]


@pytest.mark.parametrize("cls", _adapter_classes(), ids=lambda c: c.__qualname__)
def test_other_adapters_parse_first_then_validate(cls: type) -> None:
    c = codec.codec_for(cls)
    for damaged in (b'{"a": "\xff"}', b'{"a": "not a number", "b": "\xfe"}', b'{"a": 1'):
        with pytest.raises(Malformed):
            c.decode(damaged, cls)
    with pytest.raises(codec.DecodeFailure) as e:
        c.decode(b'{"a": "not a number"}', cls)
    assert not isinstance(e.value, Malformed)


def _envelope(state: bytes) -> bytes:
    checksum = "sha256:" + hashlib.sha256(state).hexdigest()
    return (b'{\n  "format": "snapmixin",\n  "format_version": 1,\n  "seq": 5,\n  "schema_version": 1,\n'
            b'  "created_at": "2024-01-01T00:00:00.000000Z",\n  "checksum": "' + checksum.encode()
            + b'",\n  "state": ' + state + b"\n}\n")


@pytest.mark.parametrize("state", [b'{"a": "\xff"}', b'{"a": "x", "b": "\xfe"}'])
def test_typed_restore_of_bad_utf8_with_valid_checksum_is_damage(tmp_path: Path, state: bytes) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    store.create(Pair(1, "one"), 1)
    store.create(Pair(2, "two"), 4)
    (d / "snapshot.json").write_bytes(_envelope(state))
    with pytest.raises(CorruptSnapshot):
        store.restore(Pair)
    assert store.restore(Pair, fallback=True) == (Pair(1, "one"), 1)  # the newest intact generation


def test_typed_restore_of_a_wrong_type_is_a_decode_error(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d).create({"a": "text"}, 1)
    with pytest.raises(DecodeError) as e:
        SnapStore(d).restore(Pair)
    assert not isinstance(e.value, CorruptSnapshot) and e.value.json_path == "$.a"


# -- item 7: deep nesting --------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [500, 900])
def test_deep_state_round_trips_through_store_and_migration(tmp_path: Path, depth: int) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({"x": nest(depth)}, 1)
    assert store.restore()[0] == {"x": nest(depth)}

    @migration(from_version=1)
    def _up(s: dict[str, Any]) -> dict[str, Any]:
        s["y"] = 1
        return s

    newer = SnapStore(tmp_path / "s", schema_version=2, migrations=[_up])
    assert newer.restore()[0] == {"x": nest(depth), "y": 1}


def test_too_deep_to_write_names_the_depth(tmp_path: Path) -> None:
    with pytest.raises(EncodeError, match=rf"nested too deeply: {DEEP + 2} levels"):
        SnapStore(tmp_path / "s").create({"x": nest(DEEP)}, 1)


def test_a_state_at_the_edge_of_the_limit_is_written_whole_or_refused_typed(tmp_path: Path) -> None:
    """The deepest states the JSON library can encode: each is either saved and restored equal,
    or refused with an EncodeError naming the file (the envelope adds levels), never written
    unreadable. Which one happens depends on the interpreter (3.10/3.11 refuse the last two
    levels; 3.13's formatter and reader have room to spare)."""
    top = next(n for n in range(codec_json.depth_limit() + 10, 0, -1) if _encodes(nest(n)))
    outcomes = []
    for depth in range(top - 3, top + 1):
        d = tmp_path / f"s{depth}"
        try:
            SnapStore(d).create(nest(depth), 1)
        except EncodeError as e:
            assert str(d / "snapshot.json") in str(e) and "nested too deeply" in str(e)
            assert not (d / "snapshot.json").exists()
            outcomes.append("refused")
            continue
        state, seq = SnapStore(d).restore()
        assert seq == 1 and _nest_depth(state) == depth  # (== itself would recurse too deep)
        outcomes.append("saved")
    assert outcomes[0] == "saved"  # well inside the limit
    assert outcomes == sorted(outcomes, key=("saved", "refused").index)  # refusals only at the top


def _nest_depth(value: Any) -> int:
    """n for a value equal to nest(n), else -1; without recursion."""
    n = 0
    while isinstance(value, list) and len(value) == 1:
        value, n = value[0], n + 1
    return n if value == [] else -1


def _encodes(value: Any) -> bool:
    try:
        codec.dumps(value)
    except codec.EncodeFailure:
        return False
    return True


def test_too_deep_to_read_names_the_depth(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d).create({"x": 1}, 1)
    (d / "snapshot.json").write_bytes(_envelope(b"[" * DEEP + b"]" * DEEP))
    with pytest.raises(CorruptSnapshot, match="nested too deeply"):
        SnapStore(d).restore()
    with pytest.raises(Malformed, match=rf"nested too deeply to read: {DEEP} levels"):
        codec.loads(b"[" * DEEP + b"]" * DEEP)


def test_helpers_do_not_recurse() -> None:
    deep = nest(50_000)
    copied = _copy_json({"k": deep, "s": "x"})
    assert copied is not None and copied["s"] == "x"
    assert paths.value_depth(deep) == 50_001
    loop: list[Any] = []
    loop.append(loop)
    assert paths.value_depth(loop) == paths.DEPTH_CAP
    # the path of a bad value far down is found without recursion
    bad: Any = [object()]
    for _ in range(2_000):
        bad = [bad]
    with pytest.raises(codec.EncodeFailure):
        codec.dumps(bad)
    assert paths.locate(bad, "$", codec_json.encode_as_is) == "$" + "[0]" * 2_001
    with pytest.raises(codec.EncodeFailure, match=rf"nested too deeply: {DEEP} levels"):
        codec.pretty(b"[" * DEEP + b"]" * DEEP)  # the envelope's formatter: typed, with the depth


# -- sets in sorted order, whatever PYTHONHASHSEED says ---------------------------------------------

_SET_SCRIPT = textwrap.dedent("""
    import sys
    from dataclasses import dataclass, field
    from snapmixin import SnapStore, Snapshottable

    @dataclass
    class Plain:
        tags: set[str]
        frozen: frozenset[str]
        pairs: set[tuple[int, str]]

    @dataclass
    class WithDict:
        tags: set[str]
        named: dict[str, int]

    @dataclass
    class DictsInList:
        rows: list[dict[str, int]]
        tags: set[str]

    @dataclass
    class Doc(Snapshottable):
        tags: set[str] = field(default_factory=set)
        order: dict[str, int] = field(default_factory=dict)

    words = ["pear", "apple", "fig", "kiwi", "banana", "cherry", "date", "elder", "grape", "lime"]
    root = sys.argv[1]
    SnapStore(root + "/plain").create(Plain(set(words), frozenset(words), {(2, "b"), (1, "z"), (1, "a")}), 1)
    SnapStore(root + "/dict").create(WithDict(set(words), {"z": 1, "a": 2, "m": 3}), 1)
    SnapStore(root + "/list").create(DictsInList([{"z": 1, "a": 2}], set(words)), 1)
    d = Doc.open(root + "/mixin")
    d.tags.update(words)
    d.order["z"] = 1
    d.order["a"] = 2
    d.snapshot()
""")


def test_sets_are_written_sorted_across_hash_seeds(tmp_path: Path) -> None:
    script = tmp_path / "sets.py"
    script.write_text(_SET_SCRIPT)
    files: dict[str, dict[str, bytes]] = {}
    for seed in ("1", "2", "3"):
        out = tmp_path / f"seed{seed}"
        subprocess.run([sys.executable, str(script), str(out)], check=True, timeout=120,
                       env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                       cwd=Path(__file__).resolve().parents[1])
        # the state's bytes (format version 2's checksum after them covers the commit time too)
        files[seed] = {k: (out / k / "snapshot.json").read_bytes().split(b'"state"')[1]
                       .rsplit(b'"checksum"', 1)[0]
                       for k in ("plain", "dict", "list", "mixin")}
    assert files["1"] == files["2"] == files["3"]
    words = sorted(["pear", "apple", "fig", "kiwi", "banana", "cherry", "date", "elder", "grape", "lime"])
    for kind in ("plain", "dict", "list", "mixin"):
        state, _ = SnapStore(tmp_path / "seed1" / kind).restore()
        assert state["tags"] == words, kind
    plain, _ = SnapStore(tmp_path / "seed1" / "plain").restore()
    assert plain["frozen"] == words and plain["pairs"] == [[1, "a"], [1, "z"], [2, "b"]]
    with_dict, _ = SnapStore(tmp_path / "seed1" / "dict").restore()
    assert list(with_dict["named"]) == ["z", "a", "m"]  # a dict keeps its own order
    in_list, _ = SnapStore(tmp_path / "seed1" / "list").restore()
    assert list(in_list["rows"][0]) == ["z", "a"]
    mixin, _ = SnapStore(tmp_path / "seed1" / "mixin").restore()
    assert list(mixin["order"]) == ["z", "a"]


@dataclass
class Mixed:
    s: set[int | str | None]


@dataclass
class MixedWithDict:
    s: set[int | str | None]
    d: dict[str, int]


def test_unorderable_set_elements_are_ordered_by_their_json() -> None:
    for cls in (Mixed, MixedWithDict):
        obj = cls({1, "a", None}) if cls is Mixed else cls({1, "a", None}, {"z": 1, "a": 0})
        plain = codec.loads(codec.codec_for(cls).encode(obj))
        assert plain["s"] == ["a", 1, None], cls  # '"a"' < '1' < 'null'
        assert obj.s == {1, "a", None}  # the object itself is not touched


class Pt(NamedTuple):
    x: int
    tags: frozenset[str]


class TD(TypedDict):
    tags: set[str]
    n: int


class St(msgspec.Struct, rename="camel"):
    my_tags: set[str]
    note: str = ""


@dataclass(frozen=True)
class Frozen:
    tags: frozenset[str]


@dataclass(slots=True)
class Slotted:
    tags: set[str]
    extra: dict[str, int]


@dataclass
class Everywhere:
    named: dict[str, set[str]]
    maybe: Optional[set[int]]  # noqa: UP045
    pair: tuple[int, set[str]]
    points: list[Pt]
    td: TD
    st: St
    frozen: Frozen
    slotted: Slotted
    nested: set[frozenset[int]]
    plain: dict[str, int] = field(default_factory=dict)


def test_sets_are_sorted_wherever_the_type_puts_them() -> None:
    w = ["pear", "apple", "fig"]
    obj = Everywhere({"k": set(w)}, {3, 1, 2}, (1, set(w)), [Pt(1, frozenset(w))], {"tags": set(w), "n": 1},
                     St(set(w), "n"), Frozen(frozenset(w)), Slotted(set(w), {"z": 1, "a": 2}),
                     {frozenset({3, 2}), frozenset({1})}, {"z": 1, "a": 2})
    c = codec.codec_for(Everywhere)
    plain = codec.loads(c.encode(obj))
    ws = sorted(w)
    assert plain["named"] == {"k": ws} and plain["maybe"] == [1, 2, 3] and plain["pair"] == [1, ws]
    assert plain["points"] == [[1, ws]] and plain["td"] == {"tags": ws, "n": 1}
    assert plain["st"] == {"myTags": ws, "note": "n"} and plain["frozen"] == {"tags": ws}
    assert plain["slotted"] == {"tags": ws, "extra": {"z": 1, "a": 2}}
    assert list(plain["slotted"]["extra"]) == ["z", "a"] and list(plain["plain"]) == ["z", "a"]
    assert plain["nested"] == [[1], [2, 3]]
    assert c.decode(c.encode(obj), Everywhere) == obj
    assert obj.pair[1] == set(w) and isinstance(obj.slotted.tags, set)  # the object is not touched


@dataclass
class Inner:
    extra: Optional[dict[str, float]] = None  # noqa: UP045
    tags: set[str] = field(default_factory=set)


@dataclass
class Spots:
    tags: set[str]
    inner: Inner
    meta: dict[str, set[str]]
    rows: list[frozenset[int]] = field(default_factory=list)


def test_dicts_at_fixed_places_keep_their_order_and_their_sets_are_sorted() -> None:
    plan = codec.set_plan(Spots)
    assert plan is not None and plan.spots is not None  # the fast way: msgspec's order plus Raw spots
    obj = Spots({"b", "a", "c"}, Inner({"z": 1.0, "a": 2.0}, {"y", "x"}), {"q": {"n", "m"}, "p": set()},
                [frozenset({3, 1, 2})])
    plain = codec.loads(codec.codec_for(Spots).encode(obj))
    assert plain == {"tags": ["a", "b", "c"], "inner": {"extra": {"z": 1.0, "a": 2.0}, "tags": ["x", "y"]},
                     "meta": {"q": ["m", "n"], "p": []}, "rows": [[1, 2, 3]]}
    assert list(plain["inner"]["extra"]) == ["z", "a"] and list(plain["meta"]) == ["q", "p"]
    obj.inner.extra = {"ok": 1.0, "bad": math.nan}  # a NaN inside a Raw spot is still found
    with pytest.raises(codec.EncodeFailure) as e:
        codec.codec_for(Spots).encode(obj)
    assert e.value.json_path == "$.inner.extra.bad"


# -- subclasses of supported types in annotations (freezegun) ---------------------------------------

def test_dataclass_defined_while_frozen_saves_and_restores_real_datetimes(tmp_path: Path) -> None:
    freezegun = pytest.importorskip("freezegun")
    with freezegun.freeze_time("2030-01-02 03:04:05"):
        @dataclass
        class Stamp:
            at: dt.datetime
            day: dt.date
            when: list[dt.datetime] = field(default_factory=list)

        s = Stamp(dt.datetime.now(dt.timezone.utc), dt.date.today())
        store = SnapStore(tmp_path / "s")
        store.create(s, 1)
        back, _ = store.restore(Stamp)
    assert type(back.at) is dt.datetime and type(back.day) is dt.date  # the base class, always
    assert back.at == dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert back.day == dt.date(2030, 1, 2)
    back2, _ = SnapStore(tmp_path / "s").restore(Stamp)  # outside the freeze too
    assert type(back2.at) is dt.datetime and back2 == back


# -- errors that teach ----------------------------------------------------------------------------

def test_unknown_key_names_snapshot_version_and_migration(tmp_path: Path) -> None:
    SnapStore(tmp_path / "s").create({"a": 1, "old_name": "x"}, 1)
    with pytest.raises(DecodeError) as e:
        SnapStore(tmp_path / "s").restore(Pair)
    msg = str(e.value)
    assert "snapshot_version=" in msg and "@migration" in msg and "ignore_unknown_keys" in msg


@dataclass
class Grid:
    cells: dict[tuple[int, int], str] = field(default_factory=dict)


@dataclass
class Outer:
    inner: list[Grid] = field(default_factory=list)


def test_dict_keys_json_cannot_hold_are_refused_at_set_up(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"\$\.cells has keys JSON cannot hold"):
        codec.codec_for(Grid)
    with pytest.raises(TypeError, match=r"\$\.inner\[\]\.cells"):
        codec.codec_for(Outer)
    @dataclass
    class Board(Snapshottable):
        cells: dict[tuple[int, int], str] = field(default_factory=dict)

    with pytest.raises(TypeError, match=r"\$\.cells"):  # the mixin's set-up: before the first object
        Board.open(tmp_path / "b")
    assert not (tmp_path / "b" / "snapshot.json").exists()
    with pytest.raises(EncodeError, match=r"\$\.cells"):  # the store: at first use, before any save
        SnapStore(tmp_path / "s").create(Grid(), 1)
    assert not (tmp_path / "s" / "snapshot.json").exists()


class Loose(TypedDict):
    x: list[Any]


@dataclass
class HoldsLoose:
    inner: Loose


def test_unknown_key_check_works_at_depth(tmp_path: Path) -> None:
    # A TypedDict is checked for unknown keys by comparing the input with a re-encoding.
    deep = {"inner": {"x": nest(900)}}
    store = SnapStore(tmp_path / "s")
    store.create(deep, 1)
    assert store.restore(HoldsLoose)[0] == HoldsLoose({"x": nest(900)})
    inner: Any = {"x": [{"k": 1}]}
    for _ in range(900):
        inner = {"x": [inner]}
    with pytest.raises(Mismatch):  # an unknown key at the bottom of a deep value is still found
        base.check_no_unknown_keys({"a": inner, "zz": 1}, {"a": inner}, "$")
    given: Any = {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}
    with pytest.raises(Mismatch, match=r"\$\.b\.d"):  # depth first, in the input's order
        base.check_no_unknown_keys(given, {"a": 1, "b": {"c": 2}}, "$")
