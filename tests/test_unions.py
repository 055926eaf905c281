"""Unions of dataclasses told apart by a Literal tag field (the msgspec/pydantic convention)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from snapmixin import Snapshottable, SnapStore
from snapmixin.codec import codec_for
from snapmixin.errors import DecodeError


@dataclass
class Cat:
    kind: Literal["cat"] = "cat"
    name: str = ""
    lives: int = 9


@dataclass
class Dog:
    name: str = ""
    kind: Literal["dog"] = "dog"  # the tag need not come first
    good: bool = True


@dataclass
class Fish:
    kind: Literal["fish"] = "fish"
    fins: int = 2


@dataclass
class Zoo(Snapshottable):
    animals: list[Cat | Dog] = field(default_factory=list)
    star: Cat | Dog | Fish | None = None
    by_pen: dict[str, Cat | Dog | Fish] = field(default_factory=dict)


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    zoo = Zoo([Cat(name="Tom"), Dog(name="Rex", good=False), Cat(lives=3)], star=Fish(fins=4),
              by_pen={"a": Dog(), "b": Fish()})
    store = SnapStore(tmp_path / "z")
    store.create(zoo, 1)
    state = json.loads((tmp_path / "z" / "snapshot.json").read_text())["state"]
    assert state["animals"][0] == {"kind": "cat", "name": "Tom", "lives": 9}
    assert state["animals"][1]["kind"] == "dog" and state["star"] == {"kind": "fish", "fins": 4}
    back = store.restore(Zoo)[0]
    assert back == zoo
    assert [type(a) for a in back.animals] == [Cat, Dog, Cat] and type(back.by_pen["b"]) is Fish


def test_round_trip_through_the_mixin(tmp_path: Path) -> None:
    zoo = Zoo.open(tmp_path / "z")
    zoo.animals.append(Dog(name="Fido"))
    zoo.animals.append(Cat(name="Kit"))
    zoo.animals[0] = Dog(name="Fido II")  # a list item replaced: counted
    seq = zoo.snapshot()
    assert seq == 3
    again = Zoo.open(tmp_path / "z")
    assert again.animals == [Dog(name="Fido II"), Cat(name="Kit")] and again.snapshot_seq == 3


def test_unknown_keys_and_unknown_tags_are_refused_with_their_path(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "z")
    store.create({"animals": [{"kind": "cat"}, {"kind": "dog", "name": "x", "wings": 2}]}, 1)
    with pytest.raises(DecodeError) as e:
        store.restore(Zoo)
    assert e.value.json_path == "$.animals[1].wings" and "unknown key 'wings'" in str(e.value)
    store.create({"animals": [{"kind": "cow"}]}, 2)
    with pytest.raises(DecodeError) as e:
        store.restore(Zoo)
    assert e.value.json_path == "$.animals[0].kind"
    store.create({"animals": [{"name": "no tag"}]}, 3)
    with pytest.raises(DecodeError, match="kind"):
        store.restore(Zoo)


@dataclass
class Plain1:
    x: int = 0


@dataclass
class Plain2:
    y: int = 0


@dataclass
class SameTag:
    kind: Literal["cat"] = "cat"


def test_a_union_without_tags_is_refused_at_class_set_up_showing_how(tmp_path: Path) -> None:
    @dataclass
    class Untagged(Snapshottable):
        items: list[Plain1 | Plain2] = field(default_factory=list)

    with pytest.raises(TypeError) as e:
        Untagged.open(tmp_path / "u")
    msg = str(e.value)
    assert "Plain1 | Plain2" in msg and "Literal" in msg, msg
    assert "kind: Literal['plain1'] = 'plain1'` in Plain1" in msg, msg
    assert "make it a dataclass" not in msg, msg

    with pytest.raises(TypeError, match="distinct"):
        codec_for(list[Cat | SameTag])


@dataclass
class Circle:
    shape: Literal[1] = 1
    r: float = 1.0


@dataclass
class Square:
    shape: Literal[2] = 2
    side: float = 1.0


@dataclass
class Drawing:
    shapes: list[Circle | Square] = field(default_factory=list)
    single: Circle = field(default_factory=Circle)


def test_int_tags_and_a_member_used_on_its_own(tmp_path: Path) -> None:
    d = Drawing([Square(side=2.5), Circle(r=0.5)], Circle(r=3))
    store = SnapStore(tmp_path / "d")
    store.create(d, 1)
    assert store.restore(Drawing)[0] == d


@dataclass
class Checked:
    kind: Literal["checked"] = "checked"
    n: int = 0
    doubled: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must not be negative")
        self.doubled = 2 * self.n


@dataclass
class Box:
    items: list[Checked | Cat] = field(default_factory=list)


def test_post_init_runs_on_restore_and_its_refusal_is_a_decode_error(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "b")
    store.create(Box([Checked(n=4), Cat()]), 1)
    back = store.restore(Box)[0]
    assert back.items[0].doubled == 8 and back == Box([Checked(n=4), Cat()])
    store.create({"items": [{"kind": "checked", "n": -1}]}, 2)
    with pytest.raises(DecodeError, match="n must not be negative"):
        store.restore(Box)
