"""register_type: a foreign type taught once, used at any depth, by the store and the mixin."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest

import snapmixin
from snapmixin import Snapshottable, SnapStore, register_type
from snapmixin.codec import hooks, registry
from snapmixin.errors import DecodeError, EncodeError


class Money:
    """A foreign class: no dataclass, no snapshot methods."""

    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.cents == self.cents  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.cents)


class Euros(Money):
    """A subclass: uses the nearest registration (Money's, unless Euros has its own)."""


class Unknown:
    pass


@pytest.fixture(autouse=True)
def _registrations() -> Iterator[None]:
    """Each test starts with Fraction and Money registered, and leaves the table as it found it."""
    saved = dict(registry._TYPES)
    register_type(Fraction, encode=str, decode=Fraction)
    register_type(Money, encode=lambda m: m.cents, decode=Money)
    yield
    registry._TYPES.clear()
    registry._TYPES.update(saved)
    hooks.forget()


@dataclass
class Leg:
    price: Money
    share: Fraction | None = None


@dataclass
class Ledger:
    rate: Fraction = Fraction(1, 3)
    rates: list[Fraction] = field(default_factory=list)
    by_name: dict[str, Money] = field(default_factory=dict)
    legs: list[Leg] = field(default_factory=list)
    pair: tuple[Money, Fraction] = (Money(0), Fraction(0))
    maybe: Money | None = None


def test_public_and_typed() -> None:
    assert snapmixin.register_type is register_type
    assert "register_type" in snapmixin.__all__


def test_at_any_depth_through_the_store(tmp_path: Path) -> None:
    ledger = Ledger(rate=Fraction(2, 7), rates=[Fraction(1, 2), Fraction(-3, 4)],
                    by_name={"a": Money(150)}, legs=[Leg(Money(5), Fraction(1, 10)), Leg(Money(7))],
                    pair=(Money(1), Fraction(5, 3)), maybe=Money(9))
    store = SnapStore(tmp_path / "s")
    store.create(ledger, 1)
    state = json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]
    assert state["rate"] == "2/7" and state["rates"] == ["1/2", "-3/4"]
    assert state["by_name"] == {"a": 150} and state["legs"][0] == {"price": 5, "share": "1/10"}
    assert state["pair"] == [1, "5/3"] and state["maybe"] == 9
    back, seq = store.restore(Ledger)
    assert (back, seq) == (ledger, 1)
    assert type(back.rates[0]) is Fraction and type(back.legs[1].price) is Money


@dataclass
class Account(Snapshottable):
    balance: Money = field(default_factory=lambda: Money(0))
    history: list[Fraction] = field(default_factory=list)


def test_through_the_mixin(tmp_path: Path) -> None:
    acct = Account.open(tmp_path / "acct")  # class set-up admits the registered types
    acct.balance = Money(120)
    acct.history.append(Fraction(1, 3))
    seq = acct.snapshot()
    again = Account.open(tmp_path / "acct")
    assert (again.balance, again.history, again.snapshot_seq) == (Money(120), [Fraction(1, 3)], seq)


def test_a_subclass_uses_the_nearest_registration(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(Leg(Euros(3)), 1)
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]["price"] == 3
    register_type(Euros, encode=lambda m: f"EUR {m.cents}", decode=lambda s: Euros(int(s.split()[1])))
    store.create(Leg(Euros(4)), 2)
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]["price"] == "EUR 4"
    assert registry.registration_for(Euros).tp is Euros  # type: ignore[union-attr]
    assert registry.registration_for(Money).tp is Money  # type: ignore[union-attr]


def test_registering_again_replaces(tmp_path: Path) -> None:
    register_type(Fraction, encode=lambda f: [f.numerator, f.denominator],
                  decode=lambda v: Fraction(*v))
    store = SnapStore(tmp_path / "s")
    store.create(Ledger(rate=Fraction(3, 8)), 1)
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]["rate"] == [3, 8]
    assert store.restore(Ledger)[0].rate == Fraction(3, 8)


def test_a_registered_type_as_the_whole_state(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(Fraction(22, 7), 1)
    assert store.restore(Fraction) == (Fraction(22, 7), 1)


@dataclass
class HoldsUnknown:
    thing: Unknown


@dataclass
class HoldsUnknownDeep:
    things: list[dict[str, Unknown]]


def test_the_refusal_names_register_type_first(tmp_path: Path) -> None:
    for cls in (HoldsUnknown, HoldsUnknownDeep):
        with pytest.raises(TypeError) as e:
            snapmixin.codec.codec_for(cls)
        msg = str(e.value)
        assert "register_type(Unknown, encode=..., decode=...)" in msg, msg
        assert msg.index("register_type") < msg.index("make it a dataclass"), msg
    with pytest.raises(EncodeError, match=r"register_type\(Unknown"):
        SnapStore(tmp_path / "s").create(HoldsUnknown(Unknown()), 1)
    with pytest.raises(TypeError, match=r"register_type\(Unknown"):
        snapmixin.codec.codec_for(Unknown)


def test_a_failing_decode_is_a_decode_error_with_the_json_path(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({"rates": ["1", "two"]}, 1)  # as a hand edit would leave it: plain JSON values
    with pytest.raises(DecodeError) as e:
        store.restore(Ledger)
    err = e.value
    assert err.json_path == "$.rates[1]", err
    assert "decode function registered for Fraction raised ValueError" in str(err), err
    assert isinstance(err.__cause__, Exception)


def test_a_failing_encode_is_an_encode_error_and_writes_nothing(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create(Ledger(), 1)
    before = (tmp_path / "s" / "snapshot.json").read_bytes()

    def refuse(m: Money) -> int:
        if m.cents < 0:
            raise ValueError("negative amounts are not saved")
        return m.cents

    register_type(Money, encode=refuse, decode=Money)
    with pytest.raises(EncodeError) as e:
        store.create(Ledger(by_name={"ok": Money(1), "bad": Money(-1)}), 2)
    assert e.value.json_path == "$.by_name.bad", e.value
    assert "negative amounts are not saved" in str(e.value)
    assert (tmp_path / "s" / "snapshot.json").read_bytes() == before


def test_an_encode_returning_the_type_itself_is_refused_not_looped(tmp_path: Path) -> None:
    register_type(Money, encode=lambda m: m, decode=Money)
    with pytest.raises(EncodeError, match="must return a JSON value"):
        SnapStore(tmp_path / "s").create(Leg(Money(1)), 1)


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match="needs a class"):
        register_type(list[int], encode=str, decode=str)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callables"):
        register_type(Unknown, encode="str", decode=str)  # type: ignore[arg-type]
    for native in (int, Leg):  # written by msgspec itself: a registration would never be used
        with pytest.raises(TypeError, match="would never be used"):
            register_type(native, encode=str, decode=str)  # type: ignore[arg-type]


class Cents(int):
    """A subclass of a builtin: the registration wins over "written as its base"."""


@dataclass
class Price:
    amount: Cents


def test_a_registered_subclass_of_a_builtin(tmp_path: Path) -> None:
    register_type(Cents, encode=lambda c: f"{int(c) / 100:.2f}",
                  decode=lambda s: Cents(round(float(s) * 100)))
    store = SnapStore(tmp_path / "s")
    store.create(Price(Cents(1999)), 1)
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"] == {"amount": "19.99"}
    back = store.restore(Price)[0]
    assert type(back.amount) is Cents and back.amount == 1999
