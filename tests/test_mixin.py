"""Snapshottable: what counts, what reaches the file, restore and go on, asyncio, failures, versions."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime
import enum
import errno
import json
import pickle
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from snapmixin import Snapshottable, SnapStore, migration, snapshot_every
from snapmixin.errors import MigrationError, SnapError
from snapmixin.fsio import FileOps
from snapmixin.tracking import TrackedDict, TrackedList, TrackedSet
from tests.crashfs import DiskFull


@dataclass
class Unit(Snapshottable):
    name: str = "u"
    hp: int = 10
    tags: list[str] = field(default_factory=list)


@dataclass
class Game(Snapshottable):
    level: int = 1
    inventory: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    armies: dict[str, list[Unit]] = field(default_factory=dict)


@dataclass
class Busy(Snapshottable):
    """Assigns, appends and builds nested objects while it initialises."""

    level: int = 1
    log: list[str] = field(default_factory=list)
    units: dict[str, list[Unit]] = field(default_factory=dict)
    total: int = 0

    def __post_init__(self) -> None:
        self.total = self.level * 2
        self.log.append("init")
        self.units.setdefault("red", []).append(Unit("scout"))
        self.units["red"][0].hp += 1


@dataclass(slots=True)
class Slotted(Snapshottable):
    level: int = 1
    items: list[int] = field(default_factory=list)


@dataclass(kw_only=True)
class KwOnly(Snapshottable):
    level: int
    items: list[int] = field(default_factory=list)


class Plain(Snapshottable):
    """No dataclass: its own two methods say what its state is."""

    def __init__(self, name: str = "p") -> None:
        self.name = name
        self.notes: list[str] = []

    def __snapshot_state__(self) -> dict[str, Any]:
        return {"name": self.name, "notes": list(self.notes)}

    @classmethod
    def __from_snapshot_state__(cls, value: dict[str, Any]) -> Plain:
        obj = cls(value["name"])
        obj.notes = value["notes"]
        return obj


def on_disk(path: Path) -> dict[str, Any]:
    """The envelope of the current snapshot, read with nothing but json."""
    data: dict[str, Any] = json.loads((path / "snapshot.json").read_text("utf-8"))
    return data


# ------------------------------------------------------------------ counting


def test_assignments_during_init_and_post_init_do_not_count() -> None:
    busy = Busy(level=3)
    assert busy.snapshot_seq == 0
    assert (busy.total, busy.log, busy.units["red"][0].hp) == (6, ["init"], 11)
    assert type(busy.log) is TrackedList and type(busy.units) is TrackedDict
    busy.units["red"][0].tags.append("x")  # made during __post_init__, tracked since
    busy.log.append("more")
    busy.level = 4
    assert busy.snapshot_seq == 3


def test_assignments_during_restore_do_not_count(tmp_path: Path) -> None:
    busy = Busy().bind(tmp_path / "s")
    busy.level = 7
    assert busy.snapshot() == 1
    back = Busy.open(tmp_path / "s")  # decoding runs __post_init__ again: not counted either
    assert back.snapshot_seq == 1
    assert back.level == 7
    back.units["red"][0].tags.append("t")
    assert back.snapshot_seq == 2


def test_every_kind_of_change_counts_on_the_root() -> None:
    game = Game()
    game.level += 1
    game.inventory.append("sword")
    game.flags |= {"met_king"}
    game.armies["north"] = [Unit("a"), Unit("b")]
    unit = game.armies["north"][1]
    unit.hp -= 3  # a nested object reports to the root
    unit.tags.append("hurt")  # and so does its own container: depth 4
    del game.armies["north"][0]
    game.mark_mutated()  # something tracking cannot see
    assert game.snapshot_seq == 8
    assert unit.snapshot_seq == 8
    delattr(game, "level")
    assert game.snapshot_seq == 9


def test_a_second_init_call_counts() -> None:
    unit = Unit()
    Unit.__init__(unit, "again", 3)
    assert unit.name == "again"
    assert unit.snapshot_seq > 0


# ------------------------------------------------------- the private slot


def test_the_private_slot_never_shows(tmp_path: Path) -> None:
    game = Game(armies={"n": [Unit()]}).bind(tmp_path / "s")
    game.inventory.append("x")
    game.snapshot()
    text = (tmp_path / "s" / "snapshot.json").read_text("utf-8")
    assert "snapmixin" not in json.dumps(on_disk(tmp_path / "s")["state"])
    assert "_snapmixin" not in text and "_State" not in text
    assert "_snapmixin" not in repr(game) and "Tracked" not in repr(game)
    assert [f.name for f in dataclasses.fields(Game)] == ["level", "inventory", "flags", "armies"]
    assert dataclasses.asdict(game) == {"level": 1, "inventory": ["x"], "flags": set(),
                                        "armies": {"n": [{"name": "u", "hp": 10, "tags": []}]}}
    # The one private entry lives in the instance __dict__ (issue 9 item 8: no slots, so pydantic
    # models can be Snapshottables): vars() shows it, and only it, besides the fields.
    assert set(vars(game)) == {"_snapmixin", "level", "inventory", "flags", "armies"}
    other = Game(armies={"n": [Unit()]}, inventory=["x"])  # unbound, never counted
    assert game == other and other == game
    assert copy.deepcopy(game) == game


def test_pickle_and_copies_keep_fields_only(tmp_path: Path) -> None:
    game = Game(armies={"n": [Unit()]}).bind(tmp_path / "s")
    game.inventory.append("x")
    for dup in (pickle.loads(pickle.dumps(game)), copy.deepcopy(game), copy.copy(game)):
        assert dup == game
        assert dup.snapshot_seq == 0  # a new object: its own count, no store
        with pytest.raises(SnapError, match="not bound"):
            dup.snapshot()
        assert type(dup.inventory) is TrackedList
        dup.armies["n"][0].hp = 1  # tracked, on the copy's own root
        assert dup.snapshot_seq == 1
    assert game.snapshot_seq == 1
    # a copy never takes the original's containers or nested objects over
    game.inventory.append("y")
    game.armies["n"][0].tags.append("t")
    assert game.snapshot_seq == 3
    for dup in (pickle.loads(pickle.dumps(Slotted(2, [1]))), copy.deepcopy(Slotted(2, [1]))):
        assert dup == Slotted(2, [1])
        dup.items.append(1)
        assert dup.snapshot_seq == 1


# --------------------------------------------------------- kinds of classes


def test_slots_and_kw_only_dataclasses_work(tmp_path: Path) -> None:
    s = Slotted(items=[1])
    # The fields stay in slots; the instance __dict__ (from Snapshottable, which has no slots so
    # that pydantic models can be Snapshottables: issue 9 item 8) holds only the private entry.
    assert set(vars(s)) == {"_snapmixin"}
    s.items.append(2)
    s.level = 2
    assert s.snapshot_seq == 2
    s.bind(tmp_path / "a").snapshot()
    back = Slotted.open(tmp_path / "a")
    assert back == s and back.snapshot_seq == 2 and type(back.items) is TrackedList
    k = KwOnly(level=3)
    k.items += [1]
    assert k.snapshot_seq == 1
    k.bind(tmp_path / "b").snapshot()
    assert KwOnly.open(tmp_path / "b") == KwOnly(level=3, items=[1])
    with pytest.raises(TypeError):
        KwOnly(3)  # type: ignore[misc]


def test_a_frozen_dataclass_is_refused_at_its_first_instance() -> None:
    @dataclass(frozen=True)
    class Frozen(Snapshottable):
        level: int = 1

    with pytest.raises(TypeError, match=r"Frozen is a frozen dataclass.*frozen=True"):
        Frozen()
    with pytest.raises(TypeError, match="frozen"):
        Frozen.open("anywhere")


def test_a_plain_class_with_its_own_state_methods(tmp_path: Path) -> None:
    p = Plain("x")
    assert p.snapshot_seq == 0
    p.notes.append("a")
    p.name = "y"
    assert p.snapshot_seq == 2
    p.bind(tmp_path / "p").snapshot()
    assert on_disk(tmp_path / "p")["state"] == {"name": "y", "notes": ["a"]}
    back = Plain.open(tmp_path / "p")
    assert (back.name, back.notes, back.snapshot_seq) == ("y", ["a"], 2)
    back.notes.append("b")
    assert back.snapshot_seq == 3
    assert Plain.open(tmp_path / "none").name == "p"


def test_a_class_no_codec_can_save_is_refused_clearly() -> None:
    class Opaque(Snapshottable):
        pass

    with pytest.raises(TypeError, match="cannot save"):
        Opaque()


# ------------------------------------------------------- restore and go on


def test_open_mutate_snapshot_open_again_continues(tmp_path: Path) -> None:
    d = tmp_path / "save"
    game = Game.open(d)  # nothing there yet: Game(), bound
    assert game == Game() and game.snapshot_seq == 0
    game.level = 2
    game.armies["n"] = [Unit("a")]
    game.armies["n"][0].tags.append("brave")
    assert game.snapshot() == 3
    assert on_disk(d)["seq"] == 3 and (d / "snapshot.seq").read_text() == "3\n"

    again = Game.open(d)
    assert again == game and again is not game
    assert again.snapshot_seq == 3
    assert type(again.armies["n"]) is TrackedList and type(again.flags) is TrackedSet
    again.armies["n"][0].hp = 1
    again.inventory.append("shield")
    assert again.snapshot_seq == 5
    assert again.snapshot() == 5

    third = Game.open(SnapStore(d))
    assert third == again and third.snapshot_seq == 5
    assert third.armies["n"][0].hp == 1


def test_open_with_a_default(tmp_path: Path) -> None:
    game = Game.open(tmp_path / "x", default=lambda: Game(level=5))
    assert game.level == 5 and game.snapshot_seq == 0
    with pytest.raises(TypeError, match="default"):
        Game.open(tmp_path / "y", default=lambda: Unit())  # type: ignore[arg-type, return-value]


def test_snapshot_without_a_store_is_an_error() -> None:
    with pytest.raises(SnapError, match="not bound"):
        Game().snapshot()
    with pytest.raises(TypeError):
        Game().bind(42)  # type: ignore[arg-type]


def test_context_manager_snapshots_on_clean_exit_only(tmp_path: Path) -> None:
    d = tmp_path / "cm"
    with Game.open(d) as game:
        game.level = 2
    assert on_disk(d)["seq"] == 1 and on_disk(d)["state"]["level"] == 2

    with Game.open(d) as game:
        pass  # nothing unsaved: nothing written
    assert on_disk(d)["seq"] == 1

    with pytest.raises(RuntimeError), Game.open(d) as game:
        game.level = 3
        raise RuntimeError("boom")
    assert on_disk(d)["seq"] == 1 and on_disk(d)["state"]["level"] == 2

    with Game.open(d) as game:
        game.level = 4
        game.snapshot()
        game.inventory.append("x")  # unsaved again
    assert on_disk(d)["seq"] == 3 and on_disk(d)["state"]["inventory"] == ["x"]


# ----------------------------------------------------------------- asyncio


class GateFS(FileOps):
    """Holds the first write of the file system layer until the test lets it go."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.armed = True

    def write(self, fd: int, data: bytes | memoryview) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(10), "the test never released the write"
        super().write(fd, data)


def test_asnapshot_writes_the_state_as_it_was_when_called(tmp_path: Path) -> None:
    fs = GateFS()
    game = Game(level=1).bind(SnapStore(tmp_path / "a", fs=fs))
    game.inventory.append("sword")

    async def main() -> None:
        task = asyncio.create_task(game.asnapshot())
        # The task has not even started: these changes come after the call.
        game.level = 99
        game.inventory.append("late")
        await asyncio.to_thread(fs.entered.wait, 10)  # the worker is inside the write now
        game.inventory.append("during")  # changes while the write is in flight
        game.armies["n"] = [Unit()]
        fs.release.set()
        assert await task == 1

    asyncio.run(main())
    assert on_disk(tmp_path / "a")["seq"] == 1
    assert on_disk(tmp_path / "a")["state"]["level"] == 1
    assert on_disk(tmp_path / "a")["state"]["inventory"] == ["sword"]
    assert game.snapshot_seq == 5
    assert game.snapshot() == 5  # the rest is still unsaved, and goes in next
    assert Game.open(tmp_path / "a") == game


def test_asnapshot_awaited_directly_and_its_failures(tmp_path: Path) -> None:
    game = Game.open(tmp_path / "b")
    game.level = 3

    async def main() -> int:
        return await game.asnapshot()

    assert asyncio.run(main()) == 1
    assert Game.open(tmp_path / "b").level == 3
    with pytest.raises(SnapError, match="not bound"):
        Game().asnapshot()

    full = DiskFull()
    game.bind(SnapStore(tmp_path / "b", fs=full))
    game.level = 4
    full.full = True
    with pytest.raises(SnapError) as info:
        asyncio.run(main())
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    full.full = False
    game.level = 5  # no class policy, yet the failed snapshot is retried at the next mutation
    assert on_disk(tmp_path / "b")["seq"] == 3


# ----------------------------------------------------------------- failures


def test_nested_snapshot_saves_the_whole_tree(tmp_path: Path) -> None:
    game = Game(armies={"n": [Unit()]}).bind(tmp_path / "n")
    unit = game.armies["n"][0]
    unit.hp = 1
    assert unit.snapshot() == 1
    assert on_disk(tmp_path / "n")["state"]["armies"]["n"][0]["hp"] == 1


# --------------------------------------------------------- schema versions


@dataclass
class CharV1(Snapshottable):
    health: int = 10


@migration(from_version=1)
def _health_to_hp(d: dict[str, Any]) -> dict[str, Any]:
    d["hp"] = d.pop("health")
    return d


@dataclass
class Char(Snapshottable, snapshot_version=2):
    hp: int = 10
    bag: list[str] = field(default_factory=list)
    _v1 = _health_to_hp  # a migration is found in the class body, however it got there


@dataclass(slots=True)
class SlottedChar(Snapshottable, snapshot_version=2):
    hp: int = 10
    bag: list[str] = field(default_factory=list)
    _v1 = _health_to_hp


@pytest.mark.parametrize("cls", [Char, SlottedChar])
def test_a_version_2_class_opens_a_version_1_save_through_its_migration(
        tmp_path: Path, cls: type[Char] | type[SlottedChar]) -> None:
    old = CharV1.open(tmp_path / "c")
    old.health = 7
    old.snapshot()
    assert on_disk(tmp_path / "c")["schema_version"] == 1

    assert cls.__snapmixin_version__ == 2  # dataclass(slots=True) re-created the class: kept
    char = cls.open(tmp_path / "c")
    assert (char.hp, char.bag, char.snapshot_seq) == (7, [], 1)
    char.bag.append("potion")
    assert char.snapshot() == 2
    assert on_disk(tmp_path / "c")["schema_version"] == 2
    assert on_disk(tmp_path / "c")["state"] == {"hp": 7, "bag": ["potion"]}
    assert cls.open(tmp_path / "c") == char

    # the old code refuses the newer save rather than read it half-understood
    with pytest.raises(MigrationError, match="newer"):
        CharV1.open(tmp_path / "c")


def test_a_migration_chain_with_a_gap_is_refused_at_class_creation() -> None:
    with pytest.raises(MigrationError, match="gap"):
        @dataclass
        class Gappy(Snapshottable, snapshot_version=3):
            hp: int = 1

            @migration(from_version=1)
            def _v1(d: dict[str, Any]) -> dict[str, Any]:  # type: ignore[misc]
                return d


def test_subclasses_inherit_the_version_and_migrations(tmp_path: Path) -> None:
    @dataclass
    class MoreChar(Char):
        xp: int = 0

    assert MoreChar.__snapmixin_version__ == 2
    CharV1.open(tmp_path / "m").bind(tmp_path / "m").snapshot()
    assert MoreChar.open(tmp_path / "m") == MoreChar(hp=10)


@snapshot_every(3)
@dataclass
class Every3(Snapshottable):
    n: int = 0


def test_automatic_and_async_snapshots_do_not_fight_over_the_lock(tmp_path: Path) -> None:
    d = tmp_path / "fight"
    fs = GateFS()
    obj = Every3.open(SnapStore(d, fs=fs))
    obj.n = 1

    async def main() -> None:
        first = asyncio.create_task(obj.asnapshot())  # seq 1
        await asyncio.to_thread(fs.entered.wait, 10)  # its write is in flight, the lock held
        for i in range(5):
            obj.n = 10 + i  # the policy is due at seq 3: it waits rather than raise StoreLocked
        second = asyncio.create_task(obj.asnapshot())  # seq 6: queued behind the first
        fs.release.set()
        assert await first == 1
        assert await second == 6

    asyncio.run(main())
    assert on_disk(d)["seq"] == 6 and on_disk(d)["state"] == {"n": 14}
    obj.n = 15
    obj.n = 16
    assert on_disk(d)["seq"] == 6
    obj.n = 17
    assert on_disk(d)["seq"] == 9


def test_attrs_classes_track_or_are_refused_never_silently_untracked() -> None:
    attrs = pytest.importorskip("attrs")

    @attrs.define
    class Tracked(Snapshottable):
        x: int = 0
        items: list[int] = attrs.field(factory=list)

    t = Tracked()
    t.x = 1
    t.items.append(1)
    assert t.snapshot_seq == 2

    @attrs.define
    class Hooked(Snapshottable):  # a validator makes attrs write its own __setattr__
        x: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))

    with pytest.raises(TypeError, match="on_setattr"):
        Hooked()

    @attrs.define(on_setattr=attrs.setters.NO_OP)
    class NoHooks(Snapshottable):
        x: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))

    n = NoHooks()
    n.x = 2
    assert n.snapshot_seq == 1

    @attrs.frozen
    class Frozen(Snapshottable):
        x: int = 0

    with pytest.raises(TypeError, match="frozen"):
        Frozen()


class Family(Snapshottable):
    def __init__(self) -> None:
        self.kids: list[Kid] = []

    def __snapshot_state__(self) -> Any:
        return [k.name for k in self.kids]

    @classmethod
    def __from_snapshot_state__(cls, value: Any) -> Family:
        family = cls()
        for name in value:
            Kid(name, family)
        return family


class Kid(Snapshottable):
    def __init__(self, name: str, family: Family | None = None) -> None:
        if family is not None:
            family.kids.append(self)  # joins a tree while it initialises
        self.name = name.title()

    def __snapshot_state__(self) -> Any:
        return self.name

    @classmethod
    def __from_snapshot_state__(cls, value: Any) -> Kid:
        return cls(value)


def test_an_object_that_joins_a_tree_in_its_init_stays_in_it() -> None:
    family = Family()
    kid = Kid("ann", family)
    assert family.kids == [kid] and family.kids[0] is kid
    seq = family.snapshot_seq
    kid.name = "Bea"
    assert family.snapshot_seq == seq + 1
    assert kid.snapshot_seq == family.snapshot_seq


def test_a_snapshot_during_an_asnapshot_of_the_same_object_waits_for_it(tmp_path: Path) -> None:
    # Changed on purpose (issue 10: writers of one process wait their turn): this snapshot()
    # raised StoreLocked (and was retried at the next mutation); it now waits for the write in
    # flight, then writes after it.
    d = tmp_path / "late"
    fs = GateFS()
    game = Game.open(SnapStore(d, fs=fs))  # no policy
    game.level = 2
    got: list[object] = []

    async def main() -> None:
        task = asyncio.create_task(game.asnapshot())  # seq 1
        await asyncio.to_thread(fs.entered.wait, 10)
        game.level = 3
        t = threading.Thread(target=lambda: got.append(game.snapshot()))  # seq 2: waits
        t.start()
        fs.release.set()
        assert await task == 1
        await asyncio.to_thread(t.join, 10)

    asyncio.run(main())
    assert got == [2]
    assert on_disk(d)["seq"] == 2 and on_disk(d)["state"]["level"] == 3
    assert game.snapshot_unsaved == 0
    game.level = 4
    assert game.snapshot() == 3 and on_disk(d)["seq"] == 3


def test_a_plain_store_sees_plain_values_of_a_tracked_object(tmp_path: Path) -> None:
    game = Game(armies={"n": [Unit(tags=["a"])]}, flags={"f"})
    game.inventory.append("x")
    store = SnapStore(tmp_path / "plain")
    store.create(game, 7)
    store.create(game.armies, 8)  # a tracked container on its own
    state, seq = store.restore()
    assert (state, seq) == ({"n": [{"name": "u", "hp": 10, "tags": ["a"]}]}, 8)
    store.create(game, 9)
    back, seq = store.restore(Game)
    assert back == game and seq == 9
    assert "Tracked" not in (tmp_path / "plain" / "snapshot.json").read_text("utf-8")


def test_binding_a_nested_object_is_refused(tmp_path: Path) -> None:
    game = Game(armies={"n": [Unit()]})
    unit = game.armies["n"][0]
    with pytest.raises(TypeError, match="nested in a Game object"):
        unit.bind(tmp_path / "u")
    game.armies["n"].remove(unit)  # free again: it may have a store of its own
    unit.bind(tmp_path / "u")
    unit.hp = 3
    assert unit.snapshot() == 1
    assert Unit.open(tmp_path / "u").hp == 3


# -- the direct-__dict__ fast path of scalar assignments -------------------------------------


@dataclass
class _WithProperty(Snapshottable):
    raw: int = 0
    seen: list[int] = field(default_factory=list)

    @property
    def level(self) -> int:
        return self.raw

    @level.setter
    def level(self, value: int) -> None:
        if value < 0:
            raise ValueError("level must be >= 0")
        self.raw = value


def test_a_property_setter_still_runs_and_counts() -> None:
    obj = _WithProperty()
    for i in range(3):  # the first assignment of a name decides its path; later ones must agree
        obj.level = i + 1
    assert obj.raw == 3 and "level" not in vars(obj)
    # each `obj.level = v` is one assignment to `level` plus one to `raw` inside the setter
    assert obj.snapshot_seq == 6
    with pytest.raises(ValueError):
        obj.level = -1
    assert obj.raw == 3


def test_fast_path_values_reach_fields_copies_and_snapshots(tmp_path: Path) -> None:
    obj = _WithProperty.open(tmp_path / "s")
    for i in range(5):
        obj.raw = i  # scalar assignments to a plain field: the fast path after the first
    assert obj.raw == 4 and obj.snapshot_seq == 5
    assert dataclasses.asdict(obj) == {"raw": 4, "seen": []}
    assert copy.deepcopy(obj).raw == 4 and pickle.loads(pickle.dumps(obj)).raw == 4
    obj.snapshot()
    again = _WithProperty.open(tmp_path / "s")
    assert again.raw == 4 and again.snapshot_seq == 5
    again.raw = 9
    assert again.snapshot_seq == 6


def test_a_name_that_held_a_container_then_scalars_then_a_container_again() -> None:
    obj = _WithProperty()
    old = obj.seen
    obj.seen = 1  # type: ignore[assignment]  # replaces the list: it is detached
    obj.seen = 2  # type: ignore[assignment]  # the fast path from now on
    before = obj.snapshot_seq
    old.append(5)
    assert obj.snapshot_seq == before
    obj.seen = [1]
    obj.seen.append(2)  # tracked again
    assert obj.snapshot_seq == before + 2 and obj.seen == [1, 2]
    del obj.raw
    obj.raw = 7
    assert obj.raw == 7 and obj.snapshot_seq == before + 4


@snapshot_every(1)
@dataclass
class EveryMutation(Snapshottable):
    n: int = 0


class GateThenFullFS(GateFS):
    """Holds the first write until released; once `full` is set, no new file can be made (ENOSPC)."""

    full = False

    def open_tmp(self, directory: str, target: str) -> tuple[int, str]:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        return super().open_tmp(directory, target)


@pytest.mark.parametrize("disk_full_after", [False, True])
def test_the_snapshot_due_during_an_asnapshot_is_taken_when_it_ends(
        tmp_path: Path, disk_full_after: bool, caplog: pytest.LogCaptureFixture) -> None:
    fs = GateThenFullFS()
    d = tmp_path / "c"
    obj = EveryMutation().bind(SnapStore(d, fs=fs))

    async def main() -> None:
        task = asyncio.create_task(obj.asnapshot())
        await asyncio.to_thread(fs.entered.wait, 10)  # the asnapshot's write is in flight
        obj.n = 1  # due at once (every mutation), deferred: a write is under way
        fs.full = disk_full_after
        fs.release.set()
        assert await task == 0  # the caller's own snapshot succeeded either way

    with caplog.at_level("WARNING", logger="snapmixin"):
        asyncio.run(main())
    if not disk_full_after:
        assert on_disk(d)["seq"] == 1 and on_disk(d)["state"] == {"n": 1}  # caught up
        assert not caplog.records
    else:
        assert on_disk(d)["seq"] == 0  # the catch-up failed: logged, and retried next time
        assert any("tries again" in r.getMessage() for r in caplog.records)
        fs.full = False
        obj.n = 2  # the next mutation retries, and succeeds
        assert on_disk(d)["seq"] == 2 and on_disk(d)["state"] == {"n": 2}


# ------------------------------------- every field is written (issue 9, item 1)


class Klass(enum.Enum):
    WARRIOR = "warrior"
    MAGE = "mage"


@dataclass(frozen=True)
class Stats:
    strength: int = 3


@dataclass
class Hero(Snapshottable):
    name: str = "Ann"
    klass: Klass = Klass.WARRIOR
    home: Path = Path("/saves/home")
    pos: tuple[int, int] = (0, 0)
    perks: frozenset[str] = frozenset({"swim"})
    born: datetime.datetime = datetime.datetime(2020, 1, 2, 3, 4, 5)
    stats: Stats = Stats()
    pet: Unit = field(default_factory=Unit)
    level: int = 1


@dataclass
class PlainHero:
    name: str = "Ann"
    klass: Klass = Klass.WARRIOR
    home: Path = Path("/saves/home")
    pos: tuple[int, int] = (0, 0)
    perks: frozenset[str] = frozenset({"swim"})
    born: datetime.datetime = datetime.datetime(2020, 1, 2, 3, 4, 5)
    stats: Stats = Stats()
    pet: PlainUnit = field(default_factory=lambda: PlainUnit())
    level: int = 1


@dataclass
class PlainUnit:
    name: str = "u"
    hp: int = 10
    tags: list[str] = field(default_factory=list)


def test_fields_left_at_their_class_default_are_written(tmp_path: Path) -> None:
    hero = Hero.open(tmp_path / "h")
    assert set(vars(hero)) - {"_snapmixin"} == {f.name for f in dataclasses.fields(Hero)}
    hero.name = "Bob"
    hero.snapshot()
    SnapStore(tmp_path / "plain").create(PlainHero(name="Bob"), 1)
    assert on_disk(tmp_path / "h")["state"] == on_disk(tmp_path / "plain")["state"]
    assert set(on_disk(tmp_path / "h")["state"]) == {f.name for f in dataclasses.fields(Hero)}
    again = Hero.open(tmp_path / "h")
    assert again == hero and set(vars(again)) == set(vars(hero))
    # the same object assigned again is still not a mutation, the class default included
    seq = again.snapshot_seq
    again.klass = again.klass
    again.perks = again.perks
    assert again.snapshot_seq == seq
    again.klass = Klass.MAGE
    assert again.snapshot_seq == seq + 1


# ------------------------- a snapshot inside a batch or a method (issue 9, item 3)


@snapshot_every(1)
@dataclass
class Doc(Snapshottable):
    title: str = ""
    body: str = ""
    notes: list[str] = field(default_factory=list)

    @snapshot_every(100)
    def edit(self, title: str, body: str) -> None:
        self.title = title
        self.snapshot()
        self.body = body


@dataclass
class LazyDoc(Snapshottable):
    title: str = ""
    body: str = ""

    @snapshot_every(100)
    def edit(self, title: str, body: str) -> None:
        self.title = title
        self.snapshot()
        self.body = body


def test_what_follows_a_snapshot_inside_a_batch_is_saved(tmp_path: Path) -> None:
    doc = Doc.open(tmp_path / "d")
    with doc.snapshot_batch():
        doc.title = "draft"
        assert doc.snapshot() == 1
        assert on_disk(tmp_path / "d")["state"]["title"] == "draft"
        doc.body = "final"
        doc.notes.append("n")
        assert doc.snapshot_seq == 2
    assert doc.snapshot_seq == 2
    assert on_disk(tmp_path / "d")["seq"] == 2
    assert on_disk(tmp_path / "d")["state"] == {"title": "draft", "body": "final", "notes": ["n"]}
    # a snapshot with nothing after it inside the batch: the batch's end adds nothing
    with doc.snapshot_batch():
        doc.title = "t2"
        assert doc.snapshot() == 3
    assert doc.snapshot_seq == 3


def test_what_follows_a_snapshot_inside_a_batch_is_saved_by_the_with_exit(tmp_path: Path) -> None:
    with LazyDoc.open(tmp_path / "l") as doc, doc.snapshot_batch():
        doc.title = "draft"
        doc.snapshot()
        doc.body = "final"
    assert on_disk(tmp_path / "l")["state"] == {"title": "draft", "body": "final"}
    assert LazyDoc.open(tmp_path / "l").body == "final"


@pytest.mark.parametrize("cls", [Doc, LazyDoc])
def test_what_follows_a_snapshot_inside_a_method_form_call_is_saved(tmp_path: Path, cls: type[Any]) -> None:
    with cls.open(tmp_path / "m") as doc:
        doc.edit("draft", "final")
        assert doc.snapshot_seq == 2
    assert on_disk(tmp_path / "m")["state"]["body"] == "final"
    assert on_disk(tmp_path / "m")["seq"] == 2


def test_asnapshot_inside_a_batch_does_not_swallow_what_follows(tmp_path: Path) -> None:
    async def main() -> None:
        with LazyDoc.open(tmp_path / "a") as doc, doc.snapshot_batch():
            doc.title = "draft"
            pending = doc.asnapshot()  # captures seq 1 and the state now
            doc.body = "final"
            assert await pending == 1
            assert doc.snapshot_seq == 2
    asyncio.run(main())
    assert on_disk(tmp_path / "a")["seq"] == 2
    assert on_disk(tmp_path / "a")["state"] == {"title": "draft", "body": "final"}



# ---------------------------------------------------------------------------
# One place each (issue 11): the schema version, which fields an object has, untracked names
# ---------------------------------------------------------------------------


def test_one_reader_of_the_class_schema_version(tmp_path: Path) -> None:
    from snapmixin import migrate
    from snapmixin.store import _class_version

    @dataclass
    class V3(Snapshottable, snapshot_version=3):
        n: int = 0

        @migration(from_version=1)
        def _a(d: dict) -> dict:  # type: ignore[misc]
            return d

        @migration(from_version=2)
        def _b(d: dict) -> dict:  # type: ignore[misc]
            return d

    @dataclass
    class Plain(Snapshottable):
        n: int = 0

    assert _class_version is migrate.class_version  # the store asks the same function
    assert migrate.class_version(V3) == 3 and migrate.class_version(Plain) == migrate.DEFAULT_VERSION == 1
    assert migrate.class_version(dict) is None and migrate.class_version(list[int]) is None
    v = V3.open(tmp_path / "s")
    v.n = 1
    v.snapshot()
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["schema_version"] == 3


def test_a_string_slots_declaration_names_one_field() -> None:
    """`__slots__ = "items"` is one slot, not five one-letter names: the list set in __init__ joins
    the object's tree, and each append counts once on it."""

    class One(Snapshottable):
        __slots__ = "items"

        def __init__(self) -> None:
            self.items: list[int] = []

        def __snapshot_state__(self) -> Any:
            return {"items": list(self.items)}

        @classmethod
        def __from_snapshot_state__(cls, value: Any) -> One:
            return cls()

    o = One()
    o.items.append(1)
    o.items.append(2)
    assert o.snapshot_seq == 2 and o.__snapmixin_fields__() == ["items"]


def test_untracked_names_are_stored_but_never_counted_or_tracked() -> None:
    """The place transient fields will use: names a class lists as untracked are not state."""

    @dataclass
    class Cached(Snapshottable):
        __snapmixin_untracked__: ClassVar[tuple[str, ...]] = ("cache", "hits")
        n: int = 0
        cache: dict[str, int] = field(default_factory=dict)
        hits: int = 0

    c = Cached()
    c.hits = 1
    c.hits = 2
    c.cache = {"a": 1}
    c.cache["b"] = 2
    assert c.snapshot_seq == 0 and type(c.cache) is dict and c.hits == 2
    del c.hits
    assert c.snapshot_seq == 0
    c.n = 1
    c.n = 2
    assert c.snapshot_seq == 2 and "cache" not in c.__snapmixin_fields__()
    again = copy.deepcopy(c)
    assert again.n == 2 and again.cache == {"a": 1, "b": 2} and again.snapshot_seq == 0


def test_construction_keeps_cpython_inline_attribute_values() -> None:
    """Building an object never reads its __dict__ (which would materialize it: CPython 3.11 and
    3.12 then lose the inline-values fast path of every later attribute read, issue 13). A
    materialized dict shows up among the object's gc referents; inline values do not."""
    import gc
    import sys

    @dataclass
    class Scalars(Snapshottable):
        x: int = 0
        y: str = ""

    @dataclass
    class Holder(Snapshottable):
        x: int = 0
        items: list[int] = field(default_factory=list)

    def materialized(obj: object) -> bool:
        return any(type(r) is dict for r in gc.get_referents(obj))

    s, h = Scalars(), Holder(items=[1])
    assert s.snapshot_seq == 0 and type(h.items) is TrackedList  # adopted, tracked
    if (3, 11) <= sys.version_info[:2] <= (3, 12):
        assert not materialized(s)
        assert not any(type(r) is dict and "x" in r for r in gc.get_referents(h))
    h.items.append(2)
    assert h.snapshot_seq == 1 and s.x == 0


def test_transient_fields_are_neither_counted_nor_tracked(tmp_path: Path) -> None:
    """DESIGN: `transient(...)` fields are not saved and not tracked: assigning or mutating one is
    not a mutation of the object's state."""
    from snapmixin import transient

    @dataclass
    class WithLock(Snapshottable):
        n: int = 0
        lock: threading.Lock = transient(default_factory=threading.Lock)
        seen: list[int] = transient(default_factory=list)

    w = WithLock.open(tmp_path / "s")
    w.seen.append(1)
    w.lock = threading.Lock()
    w.seen = [2]
    assert w.snapshot_seq == 0 and type(w.seen) is list
    w.n = 1
    assert w.snapshot_seq == 1 and w.snapshot() == 1
    assert "seen" not in json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]
