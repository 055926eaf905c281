"""Schema versions and migrations for store users: SnapStore(..., schema_version=, migrations=).

A save written by version 1 of a program opens in version 3 through two steps;
every way this can go wrong gives its error and leaves the files as they were;
and the first snapshot written after an upgrade keeps the pre-migration
generation in history/, even with keep=1, so the upgrade can be undone by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from snapmixin import SnapStore, migration
from snapmixin.errors import DecodeError, MigrationError
from snapmixin.migrate import Migration, check_chain, collect, run
from tests.support import files

# Version 1: {"health": 7, "items": "sword,shield"}
# Version 2: {"hp": 7, "items": ["sword", "shield"]}
# Version 3: {"hp": 7, "items": [{"name": "sword", "n": 1}, ...], "level": 1}

CALLS: list[str] = []


@migration(from_version=1)
def v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    CALLS.append("v1_to_v2")
    state["hp"] = state.pop("health")
    state["items"] = [s for s in state["items"].split(",") if s]
    return state


@migration(from_version=2)
def v2_to_v3(state: dict[str, Any]) -> dict[str, Any]:
    CALLS.append("v2_to_v3")
    state["items"] = [{"name": name, "n": 1} for name in state["items"]]
    state.setdefault("level", 1)
    return state


@dataclass
class Item:
    name: str
    n: int


@dataclass
class GameV3:
    hp: int
    items: list[Item] = field(default_factory=list)
    level: int = 1


V1_STATE = {"health": 7, "items": "sword,shield"}
V3_GAME = GameV3(7, [Item("sword", 1), Item("shield", 1)], 1)




def save_v1(d: Path, seq: int = 1, state: Any = None, keep: int = 1) -> None:
    SnapStore(d, keep=keep).create(V1_STATE if state is None else state, seq)  # unversioned = version 1


def v3(d: Path, keep: int = 1, **kw: Any) -> SnapStore:
    return SnapStore(d, keep=keep, schema_version=3, migrations=[v1_to_v2, v2_to_v3], **kw)


def header(p: Path) -> dict[str, Any]:
    doc = json.loads(p.read_text())
    return {k: v for k, v in doc.items() if k != "state"}


# -------------------------------------------------------------------------------- upgrading


def test_a_version_1_save_restores_into_version_3_through_two_steps(tmp_path: Path) -> None:
    d = tmp_path / "save"
    save_v1(d, seq=12)
    before = files(d)
    CALLS.clear()
    assert v3(d).restore(GameV3) == (V3_GAME, 12)
    assert CALLS == ["v1_to_v2", "v2_to_v3"]
    assert files(d) == before  # restoring migrates in memory; the file is still version 1
    CALLS.clear()
    assert v3(d).restore() == ({"hp": 7, "items": [{"name": "sword", "n": 1}, {"name": "shield", "n": 1}],
                                "level": 1}, 12)  # untyped restore: the migrated plain values


def test_a_version_2_save_runs_only_the_last_step(tmp_path: Path) -> None:
    d = tmp_path / "save"
    SnapStore(d, schema_version=2, migrations=[v1_to_v2]).create({"hp": 3, "items": ["bow"]}, 1)
    assert header(d / "snapshot.json")["schema_version"] == 2
    CALLS.clear()
    assert v3(d).restore(GameV3)[0] == GameV3(3, [Item("bow", 1)])
    assert CALLS == ["v2_to_v3"]


def test_a_current_save_runs_no_migration(tmp_path: Path) -> None:
    d = tmp_path / "save"
    v3(d).create(V3_GAME, 1)
    assert header(d / "snapshot.json")["schema_version"] == 3
    CALLS.clear()
    assert v3(d).restore(GameV3) == (V3_GAME, 1)
    assert CALLS == []


def test_migrations_may_be_given_as_a_mapping(tmp_path: Path) -> None:
    save_v1(tmp_path / "s")
    store = SnapStore(tmp_path / "s", schema_version=3, migrations={2: v2_to_v3, 1: v1_to_v2})
    assert store.restore(GameV3)[0] == V3_GAME


def test_a_failed_restore_leaves_the_callers_state_alone(tmp_path: Path) -> None:
    """Migrations get a copy: a step that mutates and then fails does not leak a half-migrated state."""
    seen: list[Any] = []

    @migration(from_version=1)
    def mutate_then_fail(state: dict[str, Any]) -> dict[str, Any]:
        seen.append(state)
        state["health"] = -1
        raise ValueError("boom")

    save_v1(tmp_path / "s")
    store = SnapStore(tmp_path / "s", schema_version=2, migrations=[mutate_then_fail])
    with pytest.raises(MigrationError):
        store.restore()
    with pytest.raises(MigrationError):
        store.restore()
    assert [s["health"] for s in seen] == [-1, -1] and seen[0] is not seen[1]
    assert SnapStore(tmp_path / "s").restore()[0] == V1_STATE


# -------------------------------------------------------------------------- what goes wrong


def test_a_gap_in_the_chain_is_an_error_when_the_store_is_made(tmp_path: Path) -> None:
    save_v1(tmp_path / "s")
    before = files(tmp_path / "s")
    with pytest.raises(MigrationError) as info:
        SnapStore(tmp_path / "s", schema_version=3, migrations=[v1_to_v2])  # no step from 2
    assert "from version 2" in str(info.value) and "@migration(from_version=2)" in str(info.value)
    with pytest.raises(MigrationError, match="version 2"):
        SnapStore(tmp_path / "t", schema_version=4, migrations=[v1_to_v2, _step(3)])
    assert files(tmp_path / "s") == before and not (tmp_path / "t").exists()


def _step(k: int) -> Migration:
    return migration(from_version=k)(lambda s: s)


def test_a_chain_that_starts_late_refuses_older_saves_at_restore(tmp_path: Path) -> None:
    """[v2_to_v3] alone is not a gap: this program reads versions 2 and 3, and refuses a version-1 save."""
    save_v1(tmp_path / "s")
    before = files(tmp_path / "s")
    store = SnapStore(tmp_path / "s", schema_version=3, migrations=[v2_to_v3])
    with pytest.raises(MigrationError) as info:
        store.restore(GameV3)
    msg = str(info.value)
    assert "schema version 1" in msg and "no migration from version 1" in msg
    snap = str(tmp_path / "s" / "snapshot.json")
    assert snap in msg and info.value.path == snap
    assert files(tmp_path / "s") == before


def test_a_failing_migration_is_wrapped_naming_the_step(tmp_path: Path) -> None:
    @migration(from_version=2)
    def broken(state: dict[str, Any]) -> dict[str, Any]:
        return {"items": state["no such key"]}

    save_v1(tmp_path / "s", seq=5)
    before = files(tmp_path / "s")
    store = SnapStore(tmp_path / "s", schema_version=3, migrations=[v1_to_v2, broken])
    with pytest.raises(MigrationError) as info:
        store.restore(GameV3)
    err = info.value
    assert isinstance(err.__cause__, KeyError) and "no such key" in str(err)
    assert "broken" in str(err) and "version 2 -> 3" in str(err)
    assert err.path == str(tmp_path / "s" / "snapshot.json")
    assert files(tmp_path / "s") == before
    with pytest.raises(MigrationError):  # fallback=True is for damaged files, not for this
        store.restore(GameV3, fallback=True)


def test_a_migration_returning_none_is_an_error(tmp_path: Path) -> None:
    @migration(from_version=1)
    def forgot_return(state: dict[str, Any]) -> None:
        state["hp"] = state.pop("health")

    save_v1(tmp_path / "s")
    with pytest.raises(MigrationError, match="returned None"):
        SnapStore(tmp_path / "s", schema_version=2, migrations=[forgot_return]).restore()


def test_a_save_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "s"
    SnapStore(d, schema_version=4, migrations=[v1_to_v2, v2_to_v3, _step(3)]).create({"v": 4}, 9)
    before = files(d)
    with pytest.raises(MigrationError) as info:
        v3(d).restore(GameV3)
    msg = str(info.value)
    assert "schema version 4" in msg and "newer" in msg and "3" in msg and str(d / "snapshot.json") in msg
    with pytest.raises(MigrationError):
        v3(d).restore()  # untyped too: not half-read
    with pytest.raises(MigrationError):
        v3(d).restore(fallback=True)
    assert files(d) == before


def test_a_migrated_state_that_does_not_fit_is_a_decode_error(tmp_path: Path) -> None:
    @migration(from_version=2)
    def wrong(state: dict[str, Any]) -> dict[str, Any]:
        state["items"] = [{"name": n} for n in state["items"]]  # forgot "n"
        return state

    save_v1(tmp_path / "s")
    before = files(tmp_path / "s")
    with pytest.raises(DecodeError) as info:
        SnapStore(tmp_path / "s", schema_version=3, migrations=[v1_to_v2, wrong]).restore(GameV3)
    assert info.value.json_path == "$.items[0].n" and "snapshot.json" in str(info.value)
    assert files(tmp_path / "s") == before


def test_bad_declarations_are_refused() -> None:
    for bad in (0, -1, True, "1", 1.0):
        with pytest.raises(ValueError, match="from_version"):
            migration(from_version=bad)  # type: ignore[arg-type]
    with pytest.raises(MigrationError, match="two migrations from version 1"):
        SnapStore("x", schema_version=2, migrations=[v1_to_v2, _step(1)])
    with pytest.raises(MigrationError, match="without schema_version"):
        SnapStore("x", migrations=[v1_to_v2])
    with pytest.raises(MigrationError, match="from version 3 exists"):
        SnapStore("x", schema_version=3, migrations=[v1_to_v2, v2_to_v3, _step(3)])
    with pytest.raises(TypeError, match="@migration"):
        SnapStore("x", schema_version=2, migrations=[lambda s: s])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="schema version"):
        SnapStore("x", schema_version=0)
    assert not Path("x").exists()


def test_the_building_blocks_for_the_mixin() -> None:
    """collect() reads a class body; a migration there behaves as a static method."""

    class Body:
        @migration(from_version=1)
        def up(state: dict[str, Any]) -> dict[str, Any]:  # no self: made static
            return {**state, "b": 2}

        other = 5

    found = collect(vars(Body))
    assert list(found) == [1] and found[1].name.endswith("up")
    assert Body.up({"a": 1}) == {"a": 1, "b": 2} and Body().up({"a": 1}) == {"a": 1, "b": 2}
    check_chain(found, 2, "Body")
    with pytest.raises(MigrationError, match="gap"):
        check_chain(found, 3, "Body")
    assert run({"a": 1}, 1, 2, found, "file.json") == {"a": 1, "b": 2}
    with pytest.raises(MigrationError, match="newer"):
        run({"a": 1}, 3, 2, found, "file.json")


# --------------------------------------------------------- the pre-migration generation is kept


def test_the_first_snapshot_after_an_upgrade_keeps_the_old_generation_with_keep_1(tmp_path: Path) -> None:
    d = tmp_path / "save"
    save_v1(d, seq=1)
    save_v1(d, seq=2, state={"health": 9, "items": "axe"})
    assert not (d / "history").exists()  # keep=1, same version: no history
    old_bytes = (d / "snapshot.json").read_bytes()

    store = v3(d)
    game, seq = store.restore(GameV3)
    assert game == GameV3(9, [Item("axe", 1)])
    game.level = 2
    store.create(game, seq + 1)
    assert header(d / "snapshot.json")["schema_version"] == 3
    (pinned,) = (d / "history").glob(f"snapshot-{2:020d}-*.json")
    assert sorted(p.name for p in (d / "history").iterdir()) == [pinned.name]
    assert pinned.read_bytes() == old_bytes  # the very file, as it was before the upgrade

    for s in range(4, 9):  # later snapshots (same version, keep=1) keep it
        store.create(game, s)
    assert sorted(p.name for p in (d / "history").iterdir()) == [pinned.name]
    assert [(i.seq, i.schema_version) for i in store.history()] == [(8, 3), (2, 1)]

    # Undo the upgrade by hand: put the old generation back (seq 2 < 8, so as a new directory).
    undo = tmp_path / "undo"
    undo.mkdir()
    (undo / "snapshot.json").write_bytes(pinned.read_bytes())
    assert SnapStore(undo).restore() == ({"health": 9, "items": "axe"}, 2)


def test_each_older_version_keeps_its_last_generation(tmp_path: Path) -> None:
    d = tmp_path / "save"
    save_v1(d, seq=1)
    v2 = SnapStore(d, schema_version=2, migrations=[v1_to_v2])
    v2.create(v2.restore()[0], 2)
    v2.create(v2.restore()[0], 3)
    store = v3(d)
    for s in range(4, 8):
        store.create(store.restore(GameV3)[0], s)
    assert [(i.seq, i.schema_version) for i in store.history()] == [(7, 3), (3, 2), (1, 1)]


def test_with_keep_3_the_pre_migration_generation_outlives_the_window(tmp_path: Path) -> None:
    d = tmp_path / "save"
    save_v1(d, seq=1, keep=3)
    save_v1(d, seq=2, keep=3)
    store = v3(d, keep=3)
    for s in range(3, 10):
        store.create(store.restore(GameV3)[0], s)
    assert [(i.seq, i.schema_version) for i in store.history()] == [(9, 3), (8, 3), (7, 3), (2, 1)]


def test_an_older_program_writing_over_a_newer_save_keeps_the_newer_one(tmp_path: Path) -> None:
    """A downgrade (a version-2 program saving over a version-3 save) keeps the version-3 generation."""
    d = tmp_path / "save"
    v3(d).create(V3_GAME, 5)
    newer = (d / "snapshot.json").read_bytes()
    SnapStore(d, schema_version=2, migrations=[v1_to_v2]).create({"hp": 1, "items": []}, 6)
    SnapStore(d, schema_version=2, migrations=[v1_to_v2]).create({"hp": 1, "items": []}, 7)
    (kept,) = (d / "history").glob(f"snapshot-{5:020d}-*.json")
    assert kept.read_bytes() == newer
    assert [(i.seq, i.schema_version) for i in SnapStore(d).history()] == [(7, 2), (5, 3)]
