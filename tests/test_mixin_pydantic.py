"""pydantic v2 models as Snapshottables: `class S(Snapshottable, BaseModel)` (issue 9 item 8).

Assignments go through pydantic (validation, fields set) and count; nested list/dict/set mutations
count; restore goes through pydantic's validation; the mixin's private entry never reaches
model_dump, JSON, ==, repr, copies or pickles.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from snapmixin import Snapshottable, snapshot_every
from snapmixin.tracking import TrackedDict, TrackedList, TrackedSet


class Unit(Snapshottable, BaseModel):
    name: str = "u"
    hp: int = 10
    tags: list[str] = Field(default_factory=list)


class Army(Snapshottable, BaseModel):
    level: int = 1
    items: list[int] = Field(default_factory=list)
    table: dict[str, int] = Field(default_factory=dict)
    flags: set[str] = Field(default_factory=set)
    units: list[Unit] = Field(default_factory=list)
    leader: Unit = Field(default_factory=Unit)


class Strict(Snapshottable, BaseModel):
    model_config = ConfigDict(validate_assignment=True)
    name: str = "a"
    items: list[int] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


class Reversed(BaseModel, Snapshottable):  # the other base order works the same
    n: int = 0
    items: list[int] = Field(default_factory=list)


def test_a_model_is_a_snapshottable_and_construction_counts_nothing() -> None:
    a = Army(items=[1], units=[Unit()])
    assert isinstance(a, BaseModel) and isinstance(a, Snapshottable)
    assert a.snapshot_seq == 0
    assert type(a.items) is TrackedList and type(a.table) is TrackedDict and type(a.flags) is TrackedSet
    assert type(a.units[0].tags) is TrackedList


def test_assignments_and_nested_mutations_count() -> None:
    a = Army(units=[Unit()])
    a.level = 2
    a.items.append(1)
    a.table["k"] = 1
    a.flags.add("x")
    a.units[0].hp = 3  # a nested model reports to the root
    a.units[0].tags.append("t")
    a.leader.name = "boss"
    assert a.snapshot_seq == 7
    a.items = [5, 6]  # a plain list assigned: stored as a tracked copy
    a.items.append(7)
    assert a.snapshot_seq == 9 and type(a.items) is TrackedList and a.items == [5, 6, 7]
    a.flags |= {"y"}  # the in-place operator counts once
    assert a.snapshot_seq == 10
    assert "level" in a.model_fields_set and "items" in a.model_fields_set  # pydantic saw them


def test_assignment_goes_through_pydantic_validation() -> None:
    s = Strict()
    s.name = "ABC"
    assert s.name == "abc" and s.snapshot_seq == 1
    with pytest.raises(pydantic.ValidationError):
        s.items = ["not a number"]  # type: ignore[list-item]
    assert s.snapshot_seq == 1 and s.items == []  # refused: nothing stored, nothing counted
    given = [1, "2"]
    s.items = given  # type: ignore[assignment]
    # What pydantic stored (a new, validated list) is what is tracked, not what was passed.
    assert s.items == [1, 2] and type(s.items) is TrackedList and s.snapshot_seq == 2
    s.items.append(3)
    given.append(99)
    assert s.snapshot_seq == 3 and s.items == [1, 2, 3]
    with pytest.raises(ValueError):
        s.nope = 1  # pydantic refuses unknown fields, as without the mixin
    assert s.snapshot_seq == 3


def test_snapshot_and_restore_through_pydantic(tmp_path: Path) -> None:
    a = Army.open(tmp_path / "s")
    a.items.append(1)
    a.units.append(Unit(name="x", tags=["a"]))
    a.leader.hp = 99
    a.snapshot()
    state = json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]
    assert "_snapmixin" not in json.dumps(state)
    assert state["units"] == [{"name": "x", "hp": 10, "tags": ["a"]}]
    back = Army.open(tmp_path / "s")
    assert back == a and back.snapshot_seq == 3 and back.snapshot_unsaved == 0
    assert type(back.units[0].tags) is TrackedList
    back.units[0].tags.append("b")
    back.leader.hp = 1
    assert back.snapshot_seq == 5
    back.snapshot()
    assert Army.open(tmp_path / "s").units[0].tags == ["a", "b"]
    s = Strict.open(tmp_path / "t")
    s.name = "X"
    s.snapshot()
    (tmp_path / "t" / "snapshot.json").read_text()
    again = Strict.open(tmp_path / "t")
    again.items.append(4)
    assert again.name == "x" and again.snapshot_seq == 2


def test_the_private_entry_never_shows() -> None:
    a = Army(items=[1], units=[Unit()])
    a.level = 3
    b = Army(items=[1], units=[Unit()], level=3)  # never counted: another state
    assert a == b and b == a
    assert "_snapmixin" not in repr(a) and "Tracked" not in repr(a)
    dumped = a.model_dump()
    assert "_snapmixin" not in dumped and dumped["items"] == [1]
    assert "_snapmixin" not in a.model_dump_json() and "_State" not in a.model_dump_json()
    raw = pickle.dumps(a)
    assert b"_State" not in raw and b"snapmixin.mixin" not in raw
    back = pickle.loads(raw)
    assert back == a and back.snapshot_seq == 0 and type(back.items) is TrackedList
    back.items.append(2)
    assert back.snapshot_seq == 1 and a.snapshot_seq == 1 and a.items == [1]


@pytest.mark.parametrize("how", ["copy", "deepcopy", "model_copy", "model_copy_deep", "model_copy_update"])
def test_copies_are_independent_objects(how: str) -> None:
    a = Army(items=[1], units=[Unit()])
    a.level = 2
    dup = {
        "copy": lambda: copy.copy(a),
        "deepcopy": lambda: copy.deepcopy(a),
        "model_copy": lambda: a.model_copy(),
        "model_copy_deep": lambda: a.model_copy(deep=True),
        "model_copy_update": lambda: a.model_copy(update={"items": [7]}),
    }[how]()
    assert dup is not a and dup.snapshot_seq == 0
    dup.items.append(8)
    dup.units[0].hp = 1
    dup.level = 5
    assert dup.snapshot_seq == 3 and type(dup.items) is TrackedList
    assert a.snapshot_seq == 1 and a.items == [1] and a.units[0].hp == 10 and a.level == 2
    a.items.append(2)
    assert a.snapshot_seq == 2 and dup.snapshot_seq == 3


def test_the_other_base_order_and_a_policy(tmp_path: Path) -> None:
    r = Reversed()
    r.n = 1
    r.items.append(1)
    assert r.snapshot_seq == 2 and copy.copy(r) == r

    @snapshot_every(2)
    class Auto(Snapshottable, BaseModel, snapshot_version=2):
        n: int = 0

    auto = Auto.open(tmp_path / "p")
    auto.n = 1
    auto.n = 2  # the policy saves
    assert auto.snapshot_unsaved == 0
    assert json.loads((tmp_path / "p" / "snapshot.json").read_text())["schema_version"] == 2


def test_model_validate_and_model_construct_get_a_state() -> None:
    v = Army.model_validate({"items": [1], "units": [{"name": "n"}]})
    v.items.append(2)
    v.units[0].tags.append("x")
    assert v.snapshot_seq == 2 and type(v.units[0].tags) is TrackedList
    c = Army.model_construct(items=[3])
    c.level = 2
    c.items.append(4)
    assert c.snapshot_seq == 2


def test_a_frozen_model_is_refused() -> None:
    class Frozen(Snapshottable, BaseModel):
        model_config = ConfigDict(frozen=True)
        n: int = 0

    with pytest.raises(TypeError, match="frozen pydantic model"):
        Frozen()


def test_a_user_model_post_init_still_runs_and_counts_nothing() -> None:
    class Post(Snapshottable, BaseModel):
        items: list[int] = Field(default_factory=list)
        seen: int = 0

        def model_post_init(self, context: object, /) -> None:
            self.seen = 1
            self.items.append(0)

    p = Post()
    assert p.seen == 1 and p.items == [0] and p.snapshot_seq == 0
    p.items.append(1)
    assert p.snapshot_seq == 1
    v = Post.model_validate({"items": [5]})
    assert v.items == [5, 0] and v.snapshot_seq == 0
    v.items.append(1)
    assert v.snapshot_seq == 1
