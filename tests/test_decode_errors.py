"""Strict, self-explaining decoding: every error names the file and the JSON path of the value.

The same state shape is declared with each kind of class (plain dataclass,
dataclasses-json, pydantic, attrs); a valid snapshot is written as plain JSON,
then one value is broken and restored into the typed class.

This module uses ``from __future__ import annotations`` on purpose: every
annotation below is a string that the codecs must resolve.
"""

from __future__ import annotations

import json
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import attrs
import msgspec
import pydantic
import pytest
from dataclasses_json import CatchAll, LetterCase, Undefined, dataclass_json
from hypothesis import given, settings
from hypothesis import strategies as st

from snapmixin import SnapStore
from snapmixin.codec import codec_for
from snapmixin.errors import DecodeError

# --------------------------------------------------------------- the same shape, four ways


@dataclass
class DPos:
    x: int
    y: int = 0


@dataclass
class DPlayer:
    name: str
    pos: DPos


@dataclass
class DGame:
    players: list[DPlayer] = field(default_factory=list)
    index: dict[str, DPlayer] = field(default_factory=dict)
    best: Optional[DPlayer] = None  # noqa: UP045 - typing.Optional on purpose


@dataclass_json
@dataclass
class JPos:
    x: int
    y: int = 0


@dataclass_json
@dataclass
class JPlayer:
    name: str
    pos: JPos


@dataclass_json
@dataclass
class JGame:
    players: list[JPlayer] = field(default_factory=list)
    index: dict[str, JPlayer] = field(default_factory=dict)
    best: JPlayer | None = None


class PPos(pydantic.BaseModel):
    x: int
    y: int = 0


class PPlayer(pydantic.BaseModel):
    name: str
    pos: PPos


class PGame(pydantic.BaseModel):
    players: list[PPlayer] = []
    index: dict[str, PPlayer] = {}
    best: PPlayer | None = None


@attrs.define
class APos:
    x: int
    y: int = 0


@attrs.define
class APlayer:
    name: str
    pos: APos


@attrs.define
class AGame:
    players: list[APlayer] = attrs.Factory(list)
    index: dict[str, APlayer] = attrs.Factory(dict)
    best: APlayer | None = None


KINDS = {
    "dataclass": (DGame, DPlayer, DPos),
    "dataclasses-json": (JGame, JPlayer, JPos),
    "pydantic": (PGame, PPlayer, PPos),
    "attrs": (AGame, APlayer, APos),
}


def valid(kind: str) -> Any:
    game, player, pos = KINDS[kind]
    players = [player(name=f"p{i}", pos=pos(x=i, y=-i)) for i in range(4)]
    return game(players=players, index={"bob": players[0], "big bob": players[1]}, best=players[3])


def write_plain(d: Path, state: Any) -> None:
    SnapStore(d).create(state, 1)


def restore_error(d: Path, cls: Any, **kw: Any) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        SnapStore(d, **kw).restore(cls)
    return info.value


def plain(kind: str) -> Any:
    """The JSON of a valid state, as the kind's own adapter writes it."""
    return json.loads(json.dumps(codec_for(KINDS[kind][0]).to_builtins(valid(kind))))


# ------------------------------------------------------------------------ the matrix

Edit = Callable[[Any], None]


def _set(path: list[Any], value: Any) -> Edit:
    def edit(state: Any) -> None:
        for k in path[:-1]:
            state = state[k]
        state[path[-1]] = value
    return edit


def _del(path: list[Any]) -> Edit:
    def edit(state: Any) -> None:
        for k in path[:-1]:
            state = state[k]
        del state[path[-1]]
    return edit


CASES: dict[str, tuple[Edit, str, str]] = {
    # name: (edit, expected json_path, a word the message must hold)
    "missing field": (_del(["players", 2, "pos", "x"]), "$.players[2].pos.x", "x"),
    "wrong type": (_set(["players", 2, "pos", "x"], "ten"), "$.players[2].pos.x", "int"),
    "null for int": (_set(["players", 2, "pos", "x"], None), "$.players[2].pos.x", "int"),
    "unknown key": (_set(["players", 2, "pos", "z"], 1), "$.players[2].pos.z", "z"),
    "unknown top-level key": (_set(["playerz"], []), "$.playerz", "playerz"),
    "wrong type in a dict value": (_set(["index", "bob", "pos", "x"], "ten"), "$.index.bob.pos.x", "int"),
    "key that is not an identifier": (_set(["index", "big bob", "pos", "x"], []),
                                      "$.index['big bob'].pos.x", "int"),
    "unknown key in a dict value": (_set(["index", "big bob", "pos", "q"], 0),
                                    "$.index['big bob'].pos.q", "q"),
    "wrong type in an Optional": (_set(["best", "name"], 7), "$.best.name", "str"),
    "list where an object goes": (_set(["players", 1], [1, 2]), "$.players[1]", "object|dict"),
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("case", list(CASES))
def test_each_decode_error_has_the_json_path_and_the_file(tmp_path: Path, kind: str, case: str) -> None:
    edit, json_path, word = CASES[case]
    state = plain(kind)
    edit(state)
    d = tmp_path / "s"
    write_plain(d, state)
    err = restore_error(d, KINDS[kind][0])
    assert err.json_path == json_path, str(err)
    assert json_path in str(err)
    assert any(w in str(err).lower() for w in word.split("|")), str(err)
    assert str(d / "snapshot.json") in str(err) and err.path == str(d / "snapshot.json")


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_valid_state_restores(tmp_path: Path, kind: str) -> None:
    """The control for the matrix above: unedited, the same JSON restores and equals the original."""
    write_plain(tmp_path / "s", plain(kind))
    got, _ = SnapStore(tmp_path / "s").restore(KINDS[kind][0])
    assert got == valid(kind)


@pytest.mark.parametrize("kind", list(KINDS))
def test_ignore_unknown_keys_drops_them(tmp_path: Path, kind: str) -> None:
    state = plain(kind)
    state["players"][2]["pos"]["z"] = 1
    state["index"]["big bob"]["extra"] = {"deep": [1]}
    state["playerz"] = []
    write_plain(tmp_path / "s", state)
    restore_error(tmp_path / "s", KINDS[kind][0])  # refused by default
    got, _ = SnapStore(tmp_path / "s", ignore_unknown_keys=True).restore(KINDS[kind][0])
    assert got == valid(kind)


@pytest.mark.parametrize("kind", list(KINDS))
def test_ignore_unknown_keys_still_refuses_wrong_types(tmp_path: Path, kind: str) -> None:
    state = plain(kind)
    state["players"][2]["pos"]["x"] = "ten"
    write_plain(tmp_path / "s", state)
    err = restore_error(tmp_path / "s", KINDS[kind][0], ignore_unknown_keys=True)
    assert err.json_path == "$.players[2].pos.x"


def test_the_key_of_a_big_dict_is_found(tmp_path: Path) -> None:
    """msgspec reports dict keys as ``[...]``; the real key is found (by bisection, on the error path)."""
    state = plain("dataclass")
    pos = state["index"]["bob"]["pos"]
    state["index"] = {f"k{i}": {"name": "n", "pos": dict(pos)} for i in range(200)}
    state["index"]["k137"]["pos"]["y"] = 1.5
    write_plain(tmp_path / "s", state)
    err = restore_error(tmp_path / "s", DGame)
    assert err.json_path == "$.index.k137.pos.y"


def test_a_bad_dict_key_is_named(tmp_path: Path) -> None:
    @dataclass
    class ByInt:
        m: dict[int, str]

    write_plain(tmp_path / "s", {"m": {"1": "a", "two": "b", "3": "c"}})
    err = restore_error(tmp_path / "s", ByInt)
    assert err.json_path == "$.m.two" and "key" in str(err)


def test_camel_case_paths_use_the_json_names(tmp_path: Path) -> None:
    state = {"homePos": {"x": 1}, "displayName": "a"}
    write_plain(tmp_path / "s", state)
    assert SnapStore(tmp_path / "s").restore(Camel)[0] == Camel(JPos(1), "a")
    state["homePos"]["x"] = "one"
    write_plain(tmp_path / "t", state)
    assert restore_error(tmp_path / "t", Camel).json_path == "$.homePos.x"
    write_plain(tmp_path / "u", {"homePos": {"x": 1}, "display_name": "a"})
    err = restore_error(tmp_path / "u", Camel)
    assert err.json_path in ("$.displayName", "$.display_name")  # missing, or unknown: both named


@dataclass_json(letter_case=LetterCase.CAMEL)
@dataclass
class Camel:
    home_pos: JPos
    display_name: str


def test_errors_after_a_migration_have_the_path_and_file_too(tmp_path: Path) -> None:
    from snapmixin import migration

    @migration(from_version=1)
    def up(d: dict[str, Any]) -> dict[str, Any]:
        d["players"] = d.pop("people")
        return d

    state = plain("dataclass")
    state["people"] = state.pop("players")
    state["people"][2]["pos"]["x"] = "ten"
    write_plain(tmp_path / "s", state)
    err = restore_error(tmp_path / "s", DGame, schema_version=2, migrations=[up])
    assert err.json_path == "$.players[2].pos.x" and str(tmp_path / "s" / "snapshot.json") in str(err)


# ------------------------------------------------- the msgspec mirror on every kind of dataclass


@dataclass(slots=True, kw_only=True)
class Slotted:
    b: int = 2
    a: int


@dataclass(frozen=True)
class Frozen:
    a: int


@dataclass
class Derived:
    """``total`` is not an __init__ field; __post_init__ computes it."""

    a: int
    b: int = 1
    total: int = field(init=False, default=0)
    tags: list[str] = field(default_factory=lambda: ["new"])

    def __post_init__(self) -> None:
        self.total = self.a + self.b
        POST_INIT_CALLS.append(self.a)


POST_INIT_CALLS: list[int] = []


@dataclass
class Node:
    value: int
    children: list[Node] = field(default_factory=list)
    parent_hint: Node | None = None


class TD(typing.TypedDict):
    a: int


@dataclass
class Mixed:
    s: Slotted
    f: Frozen
    d: Derived
    tree: Node
    td: TD
    maybe: Frozen | None = None
    many: dict[str, list[Frozen]] = field(default_factory=dict)


def mixed() -> Mixed:
    tree = Node(1, [Node(2, [Node(3)]), Node(4)], Node(9))
    return Mixed(Slotted(a=1), Frozen(2), Derived(3), tree, {"a": 5}, Frozen(6), {"k": [Frozen(7)]})


def test_the_mirror_round_trips_every_kind_of_dataclass(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    want = mixed()
    store.create(want, 1)
    POST_INIT_CALLS.clear()
    got, _ = store.restore(Mixed)
    assert POST_INIT_CALLS == [3]  # __post_init__ ran once on restore
    assert got == want
    assert got.d.total == 4


@pytest.mark.parametrize(("where", "json_path"), [
    (["s"], "$.s.zz"),
    (["d"], "$.d.zz"),
    (["tree", "children", 0, "children", 0], "$.tree.children[0].children[0].zz"),
    (["tree", "parent_hint"], "$.tree.parent_hint.zz"),
    (["maybe"], "$.maybe.zz"),
    (["many", "k", 0], "$.many.k[0].zz"),
    (["td"], "$.td.zz"),
])
def test_unknown_keys_are_refused_at_any_depth(tmp_path: Path, where: list[Any], json_path: str) -> None:
    """Including inside a recursive dataclass and a TypedDict (checked by re-encoding)."""
    state = msgspec.to_builtins(mixed())
    target = state
    for k in where:
        target = target[k]
    target["zz"] = 0
    write_plain(tmp_path / "s", state)
    err = restore_error(tmp_path / "s", Mixed)
    assert err.json_path == json_path
    got, _ = SnapStore(tmp_path / "s", ignore_unknown_keys=True).restore(Mixed)
    assert got == mixed()


def test_defaults_and_factories_fill_missing_keys(tmp_path: Path) -> None:
    write_plain(tmp_path / "s", {"a": 5})
    got, _ = SnapStore(tmp_path / "s").restore(Derived)
    assert (got.a, got.b, got.total, got.tags) == (5, 1, 6, ["new"])
    other, _ = SnapStore(tmp_path / "s").restore(Derived)
    assert other.tags is not got.tags  # a fresh list per object, not a shared default
    write_plain(tmp_path / "t", {"a": 1})
    assert SnapStore(tmp_path / "t").restore(Slotted)[0] == Slotted(a=1, b=2)
    write_plain(tmp_path / "u", {"b": 1})
    assert restore_error(tmp_path / "u", Slotted).json_path == "$.a"


def test_a_wrong_type_in_a_recursive_dataclass(tmp_path: Path) -> None:
    state = msgspec.to_builtins(Node(1, [Node(2, [Node(3)])]))
    state["children"][0]["children"][0]["value"] = "three"
    write_plain(tmp_path / "s", state)
    assert restore_error(tmp_path / "s", Node).json_path == "$.children[0].children[0].value"


def test_a_msgspec_struct_keeps_its_own_unknown_field_setting(tmp_path: Path) -> None:
    class Loose(msgspec.Struct):
        a: int

    class Strict(msgspec.Struct, forbid_unknown_fields=True):
        a: int

    write_plain(tmp_path / "s", {"a": 1, "b": 2})
    assert SnapStore(tmp_path / "s").restore(Loose)[0] == Loose(1)
    assert restore_error(tmp_path / "s", Strict).json_path == "$.b"


def test_the_codec_alone_raises_decode_failures_with_paths() -> None:
    """Without a store (no file to name), the codec's own error carries the path."""
    from snapmixin.codec import DecodeFailure

    codec = codec_for(DGame)
    data = codec.encode(valid("dataclass")).replace(b'"x":2', b'"x":"2"')
    with pytest.raises(DecodeFailure) as info:
        codec.decode(data, DGame)
    assert info.value.json_path == "$.players[2].pos.x"
    assert codec.decode(codec.encode(valid("dataclass")), DGame) == valid("dataclass")


def test_a_dataclass_with_an_init_false_field_restores_its_own_snapshot(tmp_path: Path) -> None:
    """The field is written (msgspec writes every field), so the strict mirror must accept it back."""
    store = SnapStore(tmp_path / "s")
    store.create(Derived(3, 4), 1)
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]["total"] == 7
    got, _ = store.restore(Derived)
    assert (got.a, got.b, got.total) == (3, 4, 7)


@dataclass
class Scores:
    by_level: dict[int, list[int]]
    by_id: dict[uuid.UUID, str] = field(default_factory=dict)


def test_non_string_dict_keys_restore_after_a_migration(tmp_path: Path) -> None:
    """A migrated state is checked like a file: JSON's string keys still read as int and UUID keys."""
    from snapmixin import migration

    @migration(from_version=1)
    def up(d: dict[str, Any]) -> dict[str, Any]:
        return {"by_level": d["levels"]}

    SnapStore(tmp_path / "s").create({"levels": {"1": [10], "2": [20, 30]}}, 1)
    store = SnapStore(tmp_path / "s", schema_version=2, migrations=[up])
    assert store.restore(Scores)[0] == Scores({1: [10], 2: [20, 30]})
    u = uuid.UUID(int=1)
    store.create(Scores({3: []}, {u: "x"}), 2)
    assert store.restore(Scores)[0] == Scores({3: []}, {u: "x"})


KEYS = st.text(min_size=0, max_size=8)
POS = st.builds(DPos, x=st.integers(-2**63, 2**63 - 1), y=st.integers(-5, 5))
PLAYER = st.builds(DPlayer, name=st.text(max_size=10), pos=POS)
GAME = st.builds(DGame, players=st.lists(PLAYER, max_size=4), index=st.dictionaries(KEYS, PLAYER, max_size=4),
                 best=st.none() | PLAYER)


@settings(max_examples=60, deadline=None)
@given(game=GAME)
def test_any_state_of_the_shape_round_trips(game: DGame) -> None:
    """Through the mirror and back, by both ways in: the bytes of a file and a migrated value."""
    codec = codec_for(DGame)
    data = codec.encode(game)
    assert codec.decode(data, DGame) == game
    assert codec.convert(json.loads(data), DGame) == game


@dataclass_json(undefined=Undefined.INCLUDE)
@dataclass
class KeepsUnknown:
    a: int
    rest: CatchAll = field(default_factory=dict)


@dataclass_json(undefined=Undefined.EXCLUDE)
@dataclass
class DropsUnknown:
    a: int


@dataclass_json(undefined=Undefined.RAISE)
@dataclass
class RaisesOnUnknown:
    a: int


def test_dataclasses_json_undefined_setting_is_the_classs_own_choice(tmp_path: Path) -> None:
    write_plain(tmp_path / "s", {"a": 1, "extra": [2]})
    assert SnapStore(tmp_path / "s").restore(KeepsUnknown)[0] == KeepsUnknown(1, rest={"extra": [2]})
    assert SnapStore(tmp_path / "s").restore(DropsUnknown)[0] == DropsUnknown(1)
    err = restore_error(tmp_path / "s", RaisesOnUnknown)
    assert err.json_path == "$.extra"
    store = SnapStore(tmp_path / "t")
    store.create(KeepsUnknown(1, rest={"extra": [2]}), 1)  # the catch-all's keys are written at the top level
    assert json.loads((tmp_path / "t" / "snapshot.json").read_text())["state"] == {"a": 1, "extra": [2]}
    assert store.restore(KeepsUnknown)[0] == KeepsUnknown(1, rest={"extra": [2]})


T = typing.TypeVar("T")


@dataclass
class Box(typing.Generic[T]):
    item: T


class Pair(typing.NamedTuple):
    first: Frozen
    n: int


@dataclass
class Containers:
    box: Box[Frozen]
    pair: Pair
    fixed: tuple[Frozen, int]


@pytest.mark.parametrize(("edit", "json_path"), [
    (_set(["box", "item", "zz"], 0), "$.box.item.zz"),  # a generic dataclass: checked by re-encoding
    (_set(["pair", 0, "zz"], 0), "$.pair[0].zz"),  # a NamedTuple (written as an array)
    (_set(["fixed", 0, "zz"], 0), "$.fixed[0].zz"),
    (_set(["pair", 1], "one"), "$.pair[1]"),
])
def test_generic_dataclasses_and_named_tuples_are_strict(tmp_path: Path, edit: Edit, json_path: str) -> None:
    want = Containers(Box(Frozen(1)), Pair(Frozen(2), 3), (Frozen(4), 5))
    state = msgspec.to_builtins(want)
    state = json.loads(json.dumps(state))
    write_plain(tmp_path / "ok", state)
    assert SnapStore(tmp_path / "ok").restore(Containers)[0] == want
    edit(state)
    write_plain(tmp_path / "s", state)
    assert restore_error(tmp_path / "s", Containers).json_path == json_path
