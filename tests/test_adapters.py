"""Codec adapters: each kind of state object round-trips through SnapStore, nested objects and
dates included, and the file holds what the object's own library would write."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs
import pydantic
import pytest
from dataclasses_json import DataClassJsonMixin, LetterCase, config, dataclass_json
from pydantic.alias_generators import to_camel

from snapmixin import SnapStore, migration
from snapmixin.codec import (
    AttrsCodec,
    Codec,
    CustomCodec,
    DataclassesJsonCodec,
    MsgspecCodec,
    PydanticCodec,
    codec_for,
)
from snapmixin.errors import EncodeError

UTC = dt.timezone.utc
PLUS5 = dt.timezone(dt.timedelta(hours=5))
T1 = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
T2 = dt.datetime(1999, 12, 31, 23, 59, 58, 999999, tzinfo=PLUS5)
DAY = dt.date(2020, 2, 29)


def state_file(d: Path) -> Any:
    return json.loads((d / "snapshot.json").read_text())["state"]


def round_trip(tmp_path: Path, obj: Any, **kw: Any) -> tuple[Any, Any]:
    """Save, restore with the object's type; return (restored, the state as the file holds it)."""
    store = SnapStore(tmp_path / "s", **kw)
    store.create(obj, 1)
    got, seq = SnapStore(tmp_path / "s", **kw).restore(type(obj))
    assert seq == 1 and type(got) is type(obj)
    return got, state_file(tmp_path / "s")


@pytest.fixture
def paris_time() -> Iterator[None]:
    """Run in a local time zone that is not UTC (dataclasses-json reads datetimes back in local time)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


# ------------------------------------------------------------------------- plain dataclasses


@dataclass
class Pos:
    x: float
    y: float


@dataclass
class Unit:
    name: str
    pos: Pos
    born: dt.datetime
    id: uuid.UUID = field(default_factory=lambda: uuid.UUID(int=7))


@dataclass
class Army:
    units: list[Unit]
    by_day: dict[str, Unit]
    founded: dt.date
    leader: Unit | None = None


def army() -> Army:
    a, b = Unit("a", Pos(1.5, -2), T1), Unit("b", Pos(0, 0), T2)
    return Army([a, b], {"d1": b}, DAY, a)


def test_plain_dataclass_round_trip(tmp_path: Path) -> None:
    assert isinstance(codec_for(Army), MsgspecCodec)
    got, state = round_trip(tmp_path, army())
    assert got == army()
    assert got.units[1].born.utcoffset() == dt.timedelta(hours=5)  # the offset, not only the instant
    assert state["units"][0]["born"] == "2024-05-06T07:08:09.123456Z"
    assert state["units"][1]["born"] == "1999-12-31T23:59:58.999999+05:00"
    assert state["founded"] == "2020-02-29" and state["leader"]["pos"] == {"x": 1.5, "y": -2.0}


# ---------------------------------------------------------------------------- dataclasses-json


@dataclass_json(letter_case=LetterCase.CAMEL)
@dataclass
class Item:
    item_name: str
    made_at: dt.datetime
    # dataclasses-json has no date support of its own: the field says how
    best_before: dt.date = field(metadata=config(encoder=dt.date.isoformat, decoder=dt.date.fromisoformat),
                                 default=DAY)


@dataclass
class Bag(DataClassJsonMixin):
    dataclass_json_config = config(letter_case=LetterCase.CAMEL)["dataclasses_json"]

    owner_name: str
    items: list[Item]
    last_seen: dt.datetime | None = None
    # ISO text, time zone kept: the recipe for exact datetimes with dataclasses-json
    opened_at: dt.datetime = field(default=T2, metadata=config(encoder=dt.datetime.isoformat,
                                                              decoder=dt.datetime.fromisoformat))


def bag() -> Bag:
    return Bag("bob", [Item("sword", T1), Item("bread", T2, dt.date(2025, 1, 1))], T1)


def test_dataclasses_json_round_trip_with_camel_case_keys_in_the_file(tmp_path: Path) -> None:
    assert isinstance(codec_for(Bag), DataclassesJsonCodec)
    assert isinstance(codec_for(Item), DataclassesJsonCodec)
    got, state = round_trip(tmp_path, bag())
    assert got == bag()
    assert list(state) == ["ownerName", "items", "lastSeen", "openedAt"]
    assert list(state["items"][0]) == ["itemName", "madeAt", "bestBefore"]
    assert state["items"][1]["bestBefore"] == "2025-01-01"  # the field's own encoder
    assert state["openedAt"] == "1999-12-31T23:59:58.999999+05:00"
    raw = (tmp_path / "s" / "snapshot.json").read_text()
    assert '"ownerName": "bob"' in raw and "owner_name" not in raw and "item_name" not in raw


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="time.tzset needed (not on Windows)")
def test_dataclasses_json_datetimes_are_its_timestamps_read_back_as_the_same_instant(
        tmp_path: Path, paris_time: None) -> None:
    """dataclasses-json writes a datetime as a POSIX timestamp and reads it back in the local zone:
    the same instant (equal), to the microsecond, but not the same offset. The ISO recipe keeps it."""
    got, state = round_trip(tmp_path, bag())
    assert state["lastSeen"] == T1.timestamp() and state["items"][1]["madeAt"] == T2.timestamp()
    assert got.last_seen == T1 and got.items[1].made_at == T2  # the same instants
    assert got.items[1].made_at.utcoffset() != T2.utcoffset()  # in Paris time, not +05:00
    assert got.opened_at.utcoffset() == dt.timedelta(hours=5)  # the isoformat recipe: exact


def test_dataclasses_json_date_without_an_encoder_is_refused_with_the_path(tmp_path: Path) -> None:
    @dataclass_json
    @dataclass
    class Dated:
        when: dt.date

    store = SnapStore(tmp_path / "s")
    store.create({"before": 1}, 1)
    before = (tmp_path / "s" / "snapshot.json").read_bytes()
    with pytest.raises(EncodeError) as info:
        store.create(Dated(DAY), 2)
    assert info.value.json_path == "$.when" and "encoder" in str(info.value)
    assert (tmp_path / "s" / "snapshot.json").read_bytes() == before


# ------------------------------------------------------------------------------------ pydantic


class PStop(pydantic.BaseModel):
    name: str
    at: dt.datetime
    day: dt.date


class PRoute(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_camel)  # reads only camelCase keys

    stops: list[PStop]
    by_name: dict[str, PStop] = {}
    next_stop: PStop | None = None


def route() -> PRoute:
    a, b = PStop(name="a", at=T1, day=DAY), PStop(name="b", at=T2, day=dt.date(1970, 1, 1))
    return PRoute(stops=[a, b], byName={"b": b}, nextStop=a)


def test_pydantic_round_trip(tmp_path: Path) -> None:
    assert isinstance(codec_for(PRoute), PydanticCodec)
    got, state = round_trip(tmp_path, route())
    assert got == route()
    assert got.stops[1].at.utcoffset() == dt.timedelta(hours=5)
    assert state["stops"][1] == {"name": "b", "at": "1999-12-31T23:59:58.999999+05:00", "day": "1970-01-01"}
    assert list(state) == ["stops", "byName", "nextStop"]  # the keys the model reads: its aliases


# --------------------------------------------------------------------------------------- attrs


@attrs.define
class AStop:
    name: str
    at: dt.datetime
    day: dt.date
    _secret: int = 0  # a private attribute: cattrs writes "_secret", __init__ takes secret=


@attrs.define
class ARoute:
    stops: list[AStop]
    by_name: dict[str, AStop] = attrs.Factory(dict)
    tags: frozenset[str] = frozenset()
    next_stop: AStop | None = None


def aroute() -> ARoute:
    a, b = AStop("a", T1, DAY, 3), AStop("b", T2, dt.date(1970, 1, 1))
    return ARoute([a, b], {"b": b}, frozenset({"x", "y"}), a)


def test_attrs_round_trip_through_cattrs(tmp_path: Path) -> None:
    codec = codec_for(ARoute)
    assert isinstance(codec, AttrsCodec) and codec._converter is not None
    got, state = round_trip(tmp_path, aroute())
    assert got == aroute()
    assert got.stops[1].at.utcoffset() == dt.timedelta(hours=5)
    assert state["stops"][0] == {"name": "a", "at": "2024-05-06T07:08:09.123456+00:00", "day": "2020-02-29",
                                 "_secret": 3}
    assert sorted(state["tags"]) == ["x", "y"]


def test_attrs_without_cattrs_uses_msgspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @attrs.define
    class Plain:
        stops: list[Pos]
        at: dt.datetime
        by: dict[str, dt.date] = attrs.Factory(dict)

    monkeypatch.setitem(sys.modules, "cattrs.preconf.json", None)  # import fails
    codec = codec_for(Plain)
    assert isinstance(codec, AttrsCodec) and codec._converter is None
    obj = Plain([Pos(1, 2)], T2, {"d": DAY})
    got, state = round_trip(tmp_path, obj)
    assert got == obj and state["at"] == "1999-12-31T23:59:58.999999+05:00"


# ------------------------------------------------------------- __snapshot_state__ and codec=


class Money:
    """A plain class that says how it is saved."""

    def __init__(self, cents: int, currency: str, when: dt.date) -> None:
        self.cents, self.currency, self.when = cents, currency, when

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and vars(self) == vars(other)

    def __snapshot_state__(self) -> Any:
        return {"amount": f"{self.cents / 100:.2f} {self.currency}", "when": self.when.isoformat()}

    @classmethod
    def __from_snapshot_state__(cls, value: Any) -> Money:
        amount, currency = value["amount"].split()
        return cls(round(float(amount) * 100), currency, dt.date.fromisoformat(value["when"]))


@dataclass
class Wallet:
    owner: str
    cash: list[Money]
    main: Money | None = None


def test_snapshot_state_protocol_round_trip(tmp_path: Path) -> None:
    assert isinstance(codec_for(Money), CustomCodec)
    got, state = round_trip(tmp_path, Money(1234, "EUR", DAY))
    assert got == Money(1234, "EUR", DAY) and state == {"amount": "12.34 EUR", "when": "2020-02-29"}


def test_snapshot_state_protocol_nested_in_a_dataclass(tmp_path: Path) -> None:
    w = Wallet("bob", [Money(1, "EUR", DAY), Money(250, "USD", DAY)], Money(5, "GBP", DAY))
    assert isinstance(codec_for(Wallet), MsgspecCodec)
    got, state = round_trip(tmp_path, w)
    assert got == w and state["cash"][1] == {"amount": "2.50 USD", "when": "2020-02-29"}


def test_pydantic_model_nested_in_a_dataclass(tmp_path: Path) -> None:
    @dataclass
    class Holder:
        stop: PStop
        stops: list[PStop]

    h = Holder(route().stops[0], route().stops)
    got, state = round_trip(tmp_path, h)
    assert got == h and state["stop"]["at"] == "2024-05-06T07:08:09.123456Z"


class Opaque:
    """No adapter handles this class."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.v == self.v


class OpaqueCodec(Codec):
    """A user's codec: only the two methods of the protocol."""

    def to_builtins(self, obj: Any) -> Any:
        return {"v": obj.v}

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls(value["v"])


class BytesOnlyCodec:
    """A duck-typed codec with encode/decode only (no Codec base, no convert())."""

    def encode(self, obj: Any) -> bytes:
        return json.dumps([obj.v]).encode()

    def decode(self, data: bytes, cls: Any) -> Any:
        value = json.loads(bytes(data))
        return value if cls is None else cls(value[0])


def test_an_explicit_codec_handles_anything(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s", codec=OpaqueCodec())
    store.create(Opaque(3), 1)
    assert store.restore(Opaque) == (Opaque(3), 1)
    assert state_file(tmp_path / "s") == {"v": 3}


def test_an_explicit_codec_without_convert_works_after_a_migration(tmp_path: Path) -> None:
    SnapStore(tmp_path / "s").create([1], 1)  # version 1 held a list of the value alone

    @migration(from_version=1)
    def plus_one(state: Any) -> Any:
        return [state[0] + 1]

    store = SnapStore(tmp_path / "s", codec=BytesOnlyCodec(), schema_version=2,  # type: ignore[arg-type]
                      migrations=[plus_one])
    assert store.restore(Opaque) == (Opaque(2), 1)


def test_an_unsupported_type_is_refused_with_the_ways_to_make_it_work(tmp_path: Path) -> None:
    with pytest.raises(TypeError) as info:
        codec_for(Opaque)  # what the mixin calls when a class is set up
    msg = str(info.value)
    assert "Opaque" in msg and "__snapshot_state__" in msg and "codec=" in msg and "dataclass" in msg
    store = SnapStore(tmp_path / "s")
    with pytest.raises(EncodeError) as e1:
        store.create(Opaque(1), 1)
    assert "Opaque" in str(e1.value) and "codec=" in str(e1.value)
    assert not (tmp_path / "s").exists()  # refused before anything touched the disk
    store.create({"v": 1}, 1)
    with pytest.raises(TypeError, match="Opaque"):
        store.restore(Opaque)


@dataclass
class Inner:
    things: dict[str, list[Opaque]]


@dataclass
class Outer:
    name: str
    inner: Inner | None = None


def test_an_unsupported_part_of_a_dataclass_is_named_at_setup() -> None:
    with pytest.raises(TypeError) as info:
        codec_for(Outer)
    msg = str(info.value)
    assert "Outer" in msg and "$.inner.things[][]" in msg and "Opaque" in msg and "__snapshot_state__" in msg


def test_a_string_annotation_that_cannot_be_resolved_is_explained() -> None:
    @dataclass
    class Local:
        x: int

    @dataclass
    class UsesLocal:
        local: Local  # a string under `from __future__ import annotations`: not resolvable

    with pytest.raises(TypeError, match="module level"):
        codec_for(UsesLocal)


@pytest.mark.parametrize(("cls", "codec"), [
    (Army, MsgspecCodec), (Bag, DataclassesJsonCodec), (Item, DataclassesJsonCodec), (PRoute, PydanticCodec),
    (ARoute, AttrsCodec), (Money, CustomCodec), (dict, MsgspecCodec), (list[Army], MsgspecCodec),
    (None, MsgspecCodec),
])
def test_the_adapter_is_chosen_by_type(cls: Any, codec: type) -> None:
    assert type(codec_for(cls)) is codec


def test_snapshot_state_wins_over_dataclass(tmp_path: Path) -> None:
    @dataclass
    class Both:
        a: int

        def __snapshot_state__(self) -> Any:
            return [self.a]

        @classmethod
        def __from_snapshot_state__(cls, value: Any) -> Both:
            return cls(value[0])

    got, state = round_trip(tmp_path, Both(4))
    assert got == Both(4) and state == [4]


# ----------------------------------------------------------------------------- NaN and infinity


@dataclass_json(letter_case=LetterCase.CAMEL)
@dataclass
class Reading:
    sensor_value: float


class PReading(pydantic.BaseModel):
    values: list[float]


@attrs.define
class AReading:
    values: dict[str, float]


@pytest.mark.parametrize(("state", "json_path"), [
    ({"a": [1.0, math.nan]}, "$.a[1]"),
    ({"a": {"b c": -math.inf}}, "$.a['b c']"),
    (Pos(1.0, math.inf), "$.y"),
    (Army([Unit("u", Pos(math.nan, 0), T1)], {}, DAY), "$.units[0].pos.x"),
    (Reading(math.nan), "$.sensorValue"),  # the JSON name, as the file would hold it
    (PReading(values=[0.5, math.inf]), "$.values[1]"),
    (AReading({"k": math.nan}), "$.values.k"),
])
def test_nan_and_infinity_are_refused_with_the_path(tmp_path: Path, state: Any, json_path: str) -> None:
    """JSON has no NaN or infinity; writing null instead would make the snapshot fail to restore."""
    store = SnapStore(tmp_path / "s")
    store.create({"previous": True}, 1)
    before = (tmp_path / "s" / "snapshot.json").read_bytes()
    with pytest.raises(EncodeError) as info:
        store.create(state, 2)
    assert info.value.json_path == json_path
    assert json_path in str(info.value) and "NaN" in str(info.value)
    assert (tmp_path / "s" / "snapshot.json").read_bytes() == before
    assert store.restore() == ({"previous": True}, 1)


def test_large_finite_floats_and_the_text_nan_are_fine(tmp_path: Path) -> None:
    state = {"big": 1.7976931348623157e308, "tiny": 5e-324, "neg": -0.0, "text": "NaN", "null": None}
    store = SnapStore(tmp_path / "s")
    store.create(state, 1)
    assert store.restore() == (state, 1)


def test_a_dict_key_json_cannot_hold_is_an_encode_error(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    with pytest.raises(EncodeError) as info:
        store.create({"ok": {"inner": {(1, 2): "a tuple key"}}}, 1)
    assert info.value.json_path == "$.ok.inner" and "(1, 2)" in str(info.value)
    assert not (tmp_path / "s").exists()
