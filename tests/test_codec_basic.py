"""The codec on its own (no store): plain JSON values and dataclasses, errors with JSON paths,
subclasses of builtins, and the pretty printer the envelope relies on."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import pathlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import pytest

from snapmixin import codec
from snapmixin.codec import DecodeFailure, EncodeFailure


class Suit(enum.Enum):
    HEARTS = "h"
    SPADES = "s"


@dataclass
class Card:
    suit: Suit
    rank: int


@dataclass
class Hand:
    owner: str
    cards: list[Card] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)
    pair: tuple[str, int] = ("x", 0)
    note: Optional[str] = None  # noqa: UP045
    score: Union[int, float] = 0  # noqa: UP007
    dealt: dt.datetime = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    day: dt.date = dt.date(2024, 1, 1)
    clock: dt.time = dt.time(12, 0)
    limit: dt.timedelta = dt.timedelta(minutes=5)
    table: uuid.UUID = uuid.UUID(int=1)  # noqa: RUF009 - immutable
    stake: decimal.Decimal = decimal.Decimal("0.10")
    log: pathlib.Path = pathlib.Path("logs/hand.txt")
    extra: dict[str, list[int]] = field(default_factory=dict)


def full_hand() -> Hand:
    return Hand("ann", [Card(Suit.HEARTS, 12), Card(Suit.SPADES, 1)], {3, 1, 2}, ("p", 2), "n", 2.5,
                dt.datetime(2023, 6, 7, 8, 9, 10, 11, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
                dt.date(1999, 12, 31), dt.time(0, 0, 1), dt.timedelta(days=-1, seconds=1),
                uuid.UUID("0f0e0d0c-0b0a-0908-0706-050403020100"), decimal.Decimal("-1E+3"),
                pathlib.Path("/tmp/x"), {"a": [1], "": []})


@pytest.mark.parametrize("value", [
    None, True, False, 0, -1, 2**63 - 1, -(2**63), 1.5, -0.0, 1e308, "", "ü\u2603\x00\n\"\\",
    [], {}, [[[]]], {"a": {"b": {"c": [1, "2", None]}}},
])
def test_plain_values_round_trip(value: Any) -> None:
    data = codec.dumps(value)
    assert isinstance(data, bytes)
    assert codec.loads(data) == value
    assert json.loads(data) == value  # it is standard JSON


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(("wrap", "path"), [
    (lambda v: v, "$"),
    (lambda v: [0, v], "$[1]"),
    (lambda v: {"a": {"b": [v]}}, "$.a.b[0]"),
])
def test_nonfinite_floats_are_refused_with_path(bad: float, wrap: Any, path: str) -> None:
    with pytest.raises(EncodeFailure) as e:
        codec.dumps(wrap(bad))
    assert e.value.json_path == path
    assert path in e.value.message


def test_unencodable_value_path() -> None:
    with pytest.raises(EncodeFailure) as e:
        codec.dumps({"ok": 1, "bad": [1, 2, {"deeper": object()}]})
    assert e.value.json_path == "$.bad[2].deeper"


def test_dataclass_round_trip_typed_and_untyped() -> None:
    c = codec.codec_for(Hand)
    h = full_hand()
    data = c.encode(h)
    assert c.decode(data, Hand) == h
    plain = c.decode(data, None)
    assert plain["cards"] == [{"suit": "h", "rank": 12}, {"suit": "s", "rank": 1}]
    assert sorted(plain["seen"]) == [1, 2, 3] and plain["pair"] == ["p", 2]
    assert plain["dealt"] == "2023-06-07T08:09:10.000011-05:00"
    assert plain["table"] == "0f0e0d0c-0b0a-0908-0706-050403020100"
    assert decimal.Decimal(plain["stake"]) == decimal.Decimal("-1E+3")
    assert plain["log"] == "/tmp/x" and plain["extra"] == {"a": [1], "": []}
    # defaults fill missing keys on decode
    assert c.decode(b'{"owner": "bob"}', Hand) == Hand("bob")


@pytest.mark.parametrize(("doc", "path"), [
    (b'{"owner": 1}', "$.owner"),
    (b'{"owner": "a", "cards": [{"suit": "h", "rank": "x"}]}', "$.cards[0].rank"),
    (b'{"owner": "a", "cards": [{"suit": "clubs", "rank": 1}]}', "$.cards[0].suit"),
    (b'{"owner": "a", "table": "not-a-uuid"}', "$.table"),
    (b'{"owner": "a", "day": "2024-13-01"}', "$.day"),
    (b'{"owner": "a", "extra": {"k": [1, "2"]}}', "$.extra.k[1]"),
])
def test_decode_errors_carry_the_json_path(doc: bytes, path: str) -> None:
    with pytest.raises(DecodeFailure) as e:
        codec.codec_for(Hand).decode(doc, Hand)
    assert e.value.json_path == path, e.value.message


def test_missing_and_unknown_fields() -> None:
    c = codec.codec_for(Card)
    with pytest.raises(DecodeFailure, match="rank"):
        c.decode(b'{"suit": "h"}', Card)
    with pytest.raises(DecodeFailure, match="joker"):
        c.decode(b'{"suit": "h", "rank": 1, "joker": true}', Card)
    lenient = codec.codec_for(Card, ignore_unknown_keys=True)
    assert lenient.decode(b'{"suit": "h", "rank": 1, "joker": true}', Card) == Card(Suit.HEARTS, 1)


def test_malformed_json() -> None:
    for bad in (b"", b"{", b'{"a": }', b"\xff\xfe", b"[1, 2"):
        with pytest.raises(DecodeFailure):
            codec.loads(bad)


def test_subclasses_of_builtins_encode_as_their_base() -> None:
    class S(str):
        pass

    class I(int):  # noqa: E742
        pass

    class L(list):  # type: ignore[type-arg]
        pass

    class D(dict):  # type: ignore[type-arg]
        pass

    class F(float):
        pass

    class DT(dt.datetime):
        pass

    value = D(s=S("x"), i=I(3), l=L([F(1.5)]), t=DT(2024, 1, 2, 3, 4, 5))
    assert codec.loads(codec.dumps(value)) == {"s": "x", "i": 3, "l": [1.5], "t": "2024-01-02T03:04:05"}


def test_freezegun_datetimes() -> None:
    freezegun = pytest.importorskip("freezegun")
    with freezegun.freeze_time("2030-01-02 03:04:05"):
        now = dt.datetime.now()
        data = codec.dumps({"now": now, "today": dt.date.today(),
                            "utc": dt.datetime.now(dt.timezone.utc)})
    assert type(now) is not dt.datetime  # FakeDatetime
    assert codec.loads(data) == {"now": "2030-01-02T03:04:05", "today": "2030-01-02",
                                 "utc": "2030-01-02T03:04:05Z"}
    assert codec.codec_for(Hand).decode(b'{"owner": "x", "dealt": "2030-01-02T03:04:05Z"}', Hand).dealt == \
        dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def test_codec_for_refuses_unknown_classes_with_advice() -> None:
    class Opaque:
        def __init__(self) -> None:
            self.x = 1

    with pytest.raises(TypeError, match=r"Opaque.*__snapshot_state__"):
        codec.codec_for(Opaque)


def test_custom_protocol() -> None:
    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

        def __snapshot_state__(self) -> dict[str, int]:
            return {"cents": self.cents}

        @classmethod
        def __from_snapshot_state__(cls, value: dict[str, int]) -> Money:
            return cls(value["cents"])

    c = codec.codec_for(Money)
    data = c.encode(Money(250))
    assert json.loads(data) == {"cents": 250}
    assert c.decode(data, Money).cents == 250


@pytest.mark.parametrize("level", [0, 1, 3])
def test_pretty_reindents_without_changing_the_value(level: int) -> None:
    value = {"a": [1, {"b": "line1\nline2"}], "c": {}, "d": [], "e": "  spaces  "}
    text = codec.pretty(codec.dumps(value), level=level)
    assert json.loads(text) == value
    lines = text.split(b"\n")
    assert lines[0] == b"{" and lines[-1] == b"  " * level + b"}"
    assert lines[1].startswith(b"  " * (level + 1) + b'"a"')


def test_unencodable_dict_key_is_an_encode_failure() -> None:
    with pytest.raises(EncodeFailure) as e:
        codec.dumps({"ok": {(1, 2): "tuple key"}})
    assert e.value.json_path is not None and e.value.json_path.startswith("$.ok")
