"""The contract of /work/shared/DESIGN.md (mirrored in README.md), checked line by line.

Each test is named after the line of the design it checks ("Public API (names fixed)", "On-disk
format", the errors); most promises also have deeper tests elsewhere, and these are the short,
literal form: the API exactly as the design writes it, and README's examples run as written.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import datetime
import json
import logging
import os
import pickle
import re
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import pytest
from freezegun import freeze_time
from pydantic import BaseModel, ConfigDict, PrivateAttr

from snapmixin import Snapshottable, SnapStore, migration, register_type, snapshot_every, transient
from snapmixin.cli import main as cli_main
from snapmixin.codec import hooks, registry
from snapmixin.errors import (
    CorruptSnapshot,
    DecodeError,
    EncodeError,
    InvalidSeq,
    MigrationError,
    SeqRegression,
    SnapError,
    SnapshotConflict,
    SnapshotNotFound,
    StoreLocked,
)
from tests.support import verify_v2, write_v1

README = Path(__file__).resolve().parent.parent / "README.md"


@dataclass
class AppState:
    counter: int


@snapshot_every(100, seconds=30.0)
@dataclass
class Game(Snapshottable, snapshot_version=2, snapshot_journal=None):
    level: int = 1
    inventory: list[str] = field(default_factory=list)
    lock: threading.Lock = transient(default_factory=threading.Lock)

    @snapshot_every(10)
    def move(self, dx: int) -> None:
        self.level += dx  # two assignments: still one mutation
        self.inventory.append(f"step {dx}")

    @migration(from_version=1)
    def _v1(d: dict[str, Any]) -> dict[str, Any]:
        d["level"] = d.pop("lvl")
        return d


@dataclass
class Inner:
    when: datetime.date
    tags: set[str]


@dataclass
class Outer:
    inner: Inner
    pairs: tuple[int, int]


@dataclass
class Leaf:
    f: Fraction
    many: dict[str, list[Fraction | None]] = field(default_factory=dict)


@dataclass
class Ledger(Snapshottable):  # set up at its first instance, once Fraction is registered
    total: Fraction = Fraction(0)
    leaves: list[Leaf] = field(default_factory=list)


def on_disk(d: Path) -> dict[str, Any]:
    return json.loads((d / "snapshot.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# ------------------------------------------------------------------ the mixin's private state


def _reserved_name_classes() -> dict[str, Any]:
    def dc() -> type:
        @dataclass
        class A(Snapshottable):
            _snapmixin: int = 0
            x: int = 0
        return A

    def dc_no_default() -> type:
        @dataclass
        class A(Snapshottable):
            x: int = 0
            _snapmixin: int = dataclasses.field(default=0, repr=False)
        return A

    def attrs_slotted() -> type:
        @attrs.define
        class A(Snapshottable):
            _snapmixin: int = 0
            x: int = 0
        return A

    def attrs_dict() -> type:
        @attrs.define(slots=False)
        class A(Snapshottable):
            _snapmixin: int = 0
            x: int = 0
        return A

    def pydantic_private() -> type:
        class A(Snapshottable, BaseModel):
            x: int = 0
            _snapmixin: int = PrivateAttr(default=5)
        return A

    def plain_class_attribute() -> type:
        class A(Snapshottable):
            _snapmixin = 0
        return A

    return {f.__name__: f for f in (dc, dc_no_default, attrs_slotted, attrs_dict, pydantic_private,
                                    plain_class_attribute)}


@pytest.mark.parametrize("kind", sorted(_reserved_name_classes()))
def test_private_state_never_collides_a_field_named_like_it_is_refused_up_front(kind: str) -> None:
    # DESIGN: "its private state never collides with the user's fields (dataclass, attrs,
    # pydantic v2)". Its one entry is `_snapmixin`: a field of that name used to overwrite it (an
    # AttributeError deep inside the mixin at the first instance, or, for a pydantic private
    # attribute, the user reading the mixin's state instead of their value). Now the class is
    # refused when it is defined, with the reason.
    with pytest.raises(TypeError, match=r"_snapmixin.*reserved"):
        _reserved_name_classes()[kind]()


@pytest.mark.parametrize("flavour", ["dataclass", "dataclass-slots", "attrs", "attrs-dict", "pydantic"])
def test_private_state_never_collides_with_user_fields_nor_reaches_the_json(tmp_path: Path,
                                                                          flavour: str) -> None:
    # Fields whose names a mixin might plausibly use for itself.
    names = ["store", "seq", "version", "snapmixin", "_state", "_root", "_journal", "_policy", "_lock",
             "_owner", "_node", "_parent", "_batch"]
    if flavour == "pydantic":
        names = [n for n in names if not n.startswith("_")]  # pydantic: `_x` is a private attribute
    ns: dict[str, Any] = {"Snapshottable": Snapshottable, "BaseModel": BaseModel, "attrs": attrs,
                          "dataclass": dataclass, "ConfigDict": ConfigDict}
    body = "".join(f"    {n}: int = {i}\n" for i, n in enumerate(names))
    head = {"dataclass": "@dataclass\nclass C(Snapshottable):\n",
            "dataclass-slots": "@dataclass(slots=True)\nclass C(Snapshottable):\n",
            "attrs": "@attrs.define\nclass C(Snapshottable):\n",
            "attrs-dict": "@attrs.define(slots=False)\nclass C(Snapshottable):\n",
            "pydantic": "class C(Snapshottable, BaseModel):\n"
                        "    model_config = ConfigDict(validate_assignment=True)\n"}[flavour]
    exec(head + body, ns)
    cls = ns["C"]
    obj = cls.open(tmp_path / "c")
    for i, n in enumerate(names):
        setattr(obj, n, i + 100)
    assert obj.snapshot_seq == len(names)
    assert obj.snapshot() == len(names)
    state = on_disk(tmp_path / "c")["state"]
    assert state == {n: i + 100 for i, n in enumerate(names)}  # every field, nothing else
    back = cls.open(tmp_path / "c")
    assert [getattr(back, n) for n in names] == [i + 100 for i in range(len(names))]
    assert back.snapshot_seq == len(names) and back.snapshot_unsaved == 0
    # The only public names the mixin adds to a user's class:
    added = {n for n in dir(cls) if not n.startswith("_")} - set(names)
    if flavour == "pydantic":
        added -= {n for n in dir(BaseModel) if not n.startswith("_")}
    assert added == {"open", "bind", "snapshot", "asnapshot", "snapshot_seq", "snapshot_unsaved",
                     "snapshot_batch", "mark_mutated"}


# ------------------------------------------------------------------------------ InvalidSeq


def test_invalid_seq_names_the_store_on_every_path(tmp_path: Path) -> None:
    # DESIGN "Errors": typed, naming the file and the problem; guarantee 3: "a seq outside
    # 0..2**63-1 is InvalidSeq, on every path". The message used to name no file.
    d = tmp_path / "s"
    store = SnapStore(d)
    for bad in (-1, 2**63, 1.5, True, "3"):
        with pytest.raises(InvalidSeq, match=re.escape(os.fspath(d / "snapshot.json"))) as err:
            store.create(AppState(1), bad)  # type: ignore[arg-type]
        assert err.value.path == os.fspath(d / "snapshot.json")
        with pytest.raises(InvalidSeq, match=re.escape(os.fspath(d))):
            asyncio.run(store.acreate(AppState(1), bad))  # type: ignore[arg-type]
    assert not d.exists()  # refused before anything touched the disk

    store.create(AppState(1), 2**63 - 1)

    @dataclass
    class Counter(Snapshottable):
        counter: int = 0

    c = Counter.open(d)
    c.counter += 1  # seq 2**63: beyond the range
    with pytest.raises(InvalidSeq, match=re.escape(os.fspath(d))) as err2:
        c.snapshot()
    assert err2.value.path == os.fspath(d / "snapshot.json")
    assert store.restore() == ({"counter": 1}, 2**63 - 1)  # nothing written


# ------------------------------------------------------------------------- Public API: imports


def test_public_api_imports_exactly_as_written() -> None:
    ns: dict[str, Any] = {}
    exec("from snapmixin import SnapStore, Snapshottable, snapshot_every, migration, register_type, "
         "transient\n"
         "from snapmixin.errors import (SnapError, SnapshotNotFound, CorruptSnapshot, SeqRegression, "
         "InvalidSeq,\n    SnapshotConflict, StoreLocked, EncodeError, DecodeError, MigrationError)\n", ns)
    errors = [ns[n] for n in ("SnapshotNotFound", "CorruptSnapshot", "SeqRegression", "InvalidSeq",
                              "SnapshotConflict", "StoreLocked", "EncodeError", "DecodeError",
                              "MigrationError")]
    assert all(issubclass(e, SnapError) and e is not SnapError for e in errors)
    assert issubclass(SnapshotNotFound, FileNotFoundError) and issubclass(InvalidSeq, ValueError)
    assert issubclass(EncodeError, TypeError) and issubclass(DecodeError, ValueError)
    for e in errors:  # typed and picklable, with the file they name
        err = pickle.loads(pickle.dumps(e("x/snapshot.json: bad", path="x/snapshot.json")))
        assert type(err) is e and str(err) == "x/snapshot.json: bad" and err.path == "x/snapshot.json"


# ------------------------------------------------------------------------- Public API: SnapStore


def test_snapstore_constructor_touches_nothing_until_used(tmp_path: Path) -> None:
    # store = SnapStore("state", keep=1)  # ...; nothing touches storage here
    store = SnapStore("state", keep=1)
    assert os.listdir(tmp_path) == []
    assert store.exists() is False and store.latest() is None and store.history() == []
    with pytest.raises(SnapshotNotFound, match="state"):
        store.restore()
    assert os.listdir(tmp_path) == []  # reading an empty place creates nothing either
    # An object store: no request at construction, so an unreachable endpoint is not an error yet.
    SnapStore("s3://b/p", storage_options={"endpoint": "http://127.0.0.1:9", "access_key_id": "k",
                                           "secret_access_key": "s", "region": "us-east-1"})
    mem = SnapStore("memory://contract-untouched/p")
    assert mem.exists() is False and mem.latest() is None and mem.history() == []
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("options", [{"allow_http": "true"}, {"timeout": "5s"}, {"no_such_option": "1"}])
def test_snapstore_storage_options_a_bad_option_is_a_value_error(options: dict[str, str]) -> None:
    # SnapStore("s3://b/p", storage_options={...}): a client option at the top level (rather
    # than in client_options) made obstore panic, and a pyo3 PanicException is a BaseException
    # that `except Exception` does not catch.
    try:
        SnapStore("s3://b/p", storage_options=options)
    except ValueError as e:
        assert "s3://b/p" in str(e)
    except BaseException as e:  # pragma: no cover - the failure this test exists for
        pytest.fail(f"not a ValueError: {type(e).__module__}.{type(e).__name__}: {e}")


@pytest.mark.parametrize("where", ["dir", "memory"])
def test_create_restore_typed_and_untyped_acreate_arestore_exists_latest_history(tmp_path: Path,
                                                                                where: str) -> None:
    loc = "state" if where == "dir" else f"memory://contract-{tmp_path.name}/state"
    store = SnapStore(loc, keep=3)
    info = store.create(AppState(42), 10)  # durable when it returns; returns SnapshotInfo
    assert info.seq == 10 and info.generation
    assert store.restore(AppState) == (AppState(42), 10)  # typed
    raw, seq = store.restore()  # no type: plain JSON values
    assert (raw, seq) == ({"counter": 42}, 10) and type(raw) is dict

    async def go() -> tuple[Any, Any]:
        await store.acreate(AppState(43), 11)
        return await store.arestore(AppState), await store.arestore()

    assert asyncio.run(go()) == ((AppState(43), 11), ({"counter": 43}, 11))
    assert store.exists() is True
    latest = store.latest()
    assert latest is not None and latest.seq == 11
    assert [i.seq for i in store.history()] == [11, 10]  # the latest commit first


def test_restore_with_no_type_returns_plain_json_values(tmp_path: Path) -> None:
    store = SnapStore("s")
    store.create(Outer(Inner(datetime.date(2026, 1, 2), {"b", "a"}), (1, 2)), 1)
    raw, _ = store.restore()
    assert raw == {"inner": {"when": "2026-01-02", "tags": ["a", "b"]}, "pairs": [1, 2]}
    assert store.restore(Outer)[0] == Outer(Inner(datetime.date(2026, 1, 2), {"a", "b"}), (1, 2))


def test_restore_fallback_true_returns_the_newest_intact_generation_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SnapStore("s", keep=4)
    for i in range(1, 5):
        store.create(AppState(i), i)
    newest = store.history()
    for info in newest[:2]:  # damage the two newest generations (the current one and the next)
        p = Path(info.path)
        p.write_bytes(p.read_bytes().replace(b'"counter": ', b'"counter": 9'))
    with pytest.raises(CorruptSnapshot, match=re.escape(os.fspath(newest[0].path))):
        store.restore(AppState)
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        assert store.restore(AppState, fallback=True) == (AppState(2), 2)
    assert any(r.levelno == logging.WARNING and r.name.startswith("snapmixin") for r in caplog.records)


# ---------------------------------------------------------------------------- Public API: mixin


def test_game_of_the_design_class_form_after_100_unsaved_mutations(tmp_path: Path) -> None:
    game = Game.open(tmp_path / "g")
    for _ in range(99):
        game.inventory.append("x")
    assert not (tmp_path / "g" / "snapshot.json").exists() and game.snapshot_unsaved == 99
    game.level += 1  # the 100th
    assert on_disk(tmp_path / "g")["seq"] == 100 and game.snapshot_unsaved == 0
    assert on_disk(tmp_path / "g")["schema_version"] == 2  # snapshot_version=2
    assert sorted(on_disk(tmp_path / "g")["state"]) == ["inventory", "level"]  # transient `lock`: not saved
    assert not list((tmp_path / "g").glob("journal*"))  # snapshot_journal=None


def test_game_of_the_design_class_form_at_a_mutation_once_30_s_passed(tmp_path: Path) -> None:
    with freeze_time("2030-01-01 12:00:00") as clock:
        game = Game.open(tmp_path / "g")
        game.level = 2
        game.snapshot()
        clock.tick(29.5)
        game.level = 3
        assert on_disk(tmp_path / "g")["seq"] == 1
        clock.tick(1.0)
        assert on_disk(tmp_path / "g")["seq"] == 1  # no timer: only at a mutation
        game.level = 4
        assert on_disk(tmp_path / "g")["seq"] == 3 and on_disk(tmp_path / "g")["state"]["level"] == 4


def test_game_of_the_design_method_form_one_call_is_one_mutation_never_split(tmp_path: Path) -> None:
    d = tmp_path / "g"
    game = Game.open(d)
    for i in range(9):
        game.move(1)
        assert game.snapshot_seq == i + 1  # two assignments per call: one mutation
    assert not (d / "snapshot.json").exists()
    game.move(1)  # the 10th call: a snapshot after it returns, holding all of it
    state = on_disk(d)
    assert state["seq"] == 10 and state["state"]["level"] == 11 and len(state["state"]["inventory"]) == 10

    @snapshot_every(1)
    @dataclass
    class Every(Snapshottable):
        a: int = 0
        b: int = 0

        @snapshot_every(1)
        def both(self) -> None:
            self.a += 1
            files.append(on_disk(tmp_path / "e")["state"] if (tmp_path / "e" / "snapshot.json").exists()
                         else None)
            self.b += 1

    files: list[Any] = []
    e = Every.open(tmp_path / "e")
    e.both()
    e.both()
    assert files == [None, {"a": 1, "b": 1}]  # never a file with `a` done and `b` not
    assert on_disk(tmp_path / "e")["state"] == {"a": 2, "b": 2} and e.snapshot_seq == 2


def test_game_of_the_design_migration_from_version_1(tmp_path: Path) -> None:
    d = tmp_path / "old"
    SnapStore(d, schema_version=1).create({"lvl": 7, "inventory": ["key"]}, 5)
    game = Game.open(d)
    assert (game.level, game.inventory, game.snapshot_seq) == (7, ["key"], 5)
    write_v1(tmp_path / "v1", {"lvl": 3, "inventory": []}, 8)  # a format version 1 file, too
    assert Game.open(tmp_path / "v1").level == 3


def test_open_default_fallback_and_journal_modes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    game = Game.open(tmp_path / "a", default=lambda: Game(level=5))
    assert game.level == 5 and game.snapshot_seq == 0
    store = SnapStore(tmp_path / "b", keep=2)
    store.create(Game(level=1), 1)
    store.create(Game(level=2), 2)
    p = tmp_path / "b" / "snapshot.json"
    p.write_bytes(p.read_bytes().replace(b'"level": 2', b'"level": 3'))
    with pytest.raises(CorruptSnapshot):
        Game.open(tmp_path / "b")
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        back = Game.open(tmp_path / "b", fallback=True)
    assert (back.level, back.snapshot_seq) == (1, 1) and caplog.records
    for mode in ("flush", "fsync"):
        d = tmp_path / mode
        g = Game.open(d, journal=mode)
        g.level = 9  # a journal: recorded before the mutation returns
        g.inventory.append("j")
        assert list(d.glob("journal-*.jsonl"))
        assert Game.open(d).level == 9 and Game.open(d).inventory == ["j"]  # replayed
        del g


def test_bind_returns_self_snapshot_returns_the_seq_and_writes_nothing_when_nothing_is_unsaved(
        tmp_path: Path) -> None:
    game = Game()
    assert game.bind(tmp_path / "a") is game
    assert game.snapshot() == 0  # an empty store: written, so that it holds the object
    other = Game()
    assert other.bind(SnapStore(tmp_path / "b", keep=3)) is other
    game.level = 2
    game.inventory.append("x")
    assert game.snapshot() == 2 and on_disk(tmp_path / "a")["seq"] == 2
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in (tmp_path / "a").iterdir() if p.is_file()}
    assert game.snapshot() == 2 and asyncio.run(game.asnapshot()) == 2  # nothing unsaved
    after = {p.name: (p.read_bytes(), p.stat().st_ino) for p in (tmp_path / "a").iterdir() if p.is_file()}
    assert after == before and not (tmp_path / "a" / "history").exists()


def test_asnapshot_captures_the_state_at_the_call(tmp_path: Path) -> None:
    async def go() -> int:
        game = Game.open(tmp_path / "a")
        game.level = 2
        pending = game.asnapshot()
        game.level = 3  # after the call: not in this snapshot
        seq = await pending
        assert game.snapshot_unsaved == 1
        return seq

    assert asyncio.run(go()) == 1
    assert on_disk(tmp_path / "a")["state"]["level"] == 2


def test_seq_unsaved_batch_mark_mutated(tmp_path: Path) -> None:
    SnapStore(tmp_path / "a").create(Game(level=4), 40)
    game = Game.open(tmp_path / "a")
    assert (game.snapshot_seq, game.snapshot_unsaved) == (40, 0)  # continuing from the restored seq
    with game.snapshot_batch():
        game.level = 10
        game.inventory.extend(["a", "b"])
        game.inventory.clear()
    assert (game.snapshot_seq, game.snapshot_unsaved) == (41, 1)
    game.mark_mutated()
    assert (game.snapshot_seq, game.snapshot_unsaved) == (42, 2)
    game.lock = threading.Lock()  # transient: not tracked
    assert game.snapshot_seq == 42
    assert game.snapshot() == 42 and game.snapshot_unsaved == 0


def test_with_open_snapshots_on_clean_exit_and_writes_nothing_on_an_exception(tmp_path: Path) -> None:
    d = tmp_path / "w"
    with Game.open(d) as game:
        game.level = 2
    assert on_disk(d)["seq"] == 1
    before = (d / "snapshot.json").read_bytes()
    with pytest.raises(KeyError), Game.open(d) as game:
        game.level = 3
        raise KeyError("boom")  # propagates; nothing written
    assert (d / "snapshot.json").read_bytes() == before
    assert game.level == 3 and game.snapshot_unsaved == 1  # still in the object, unsaved
    assert game.snapshot() == 2 and on_disk(d)["state"]["level"] == 3


def test_register_type_at_any_depth_store_and_mixin(tmp_path: Path) -> None:
    saved = dict(registry._TYPES)
    try:
        register_type(Fraction, encode=str, decode=Fraction)
        store = SnapStore(tmp_path / "s")
        value = Leaf(Fraction(1, 3), {"k": [None, Fraction(5, 2)]})
        store.create(value, 1)
        assert on_disk(tmp_path / "s")["state"] == {"f": "1/3", "many": {"k": [None, "5/2"]}}
        assert store.restore(Leaf)[0] == value
        SnapStore(tmp_path / "t").create(Fraction(2, 7), 1)  # the whole state
        assert SnapStore(tmp_path / "t").restore(Fraction)[0] == Fraction(2, 7)
        ledger = Ledger.open(tmp_path / "m")
        ledger.leaves.append(Leaf(Fraction(1, 8)))
        ledger.leaves[0].many["x"] = [Fraction(3, 4)]
        ledger.total = Fraction(7, 8)
        ledger.snapshot()
        back = Ledger.open(tmp_path / "m")
        assert back == ledger and type(back.leaves[0].many["x"][0]) is Fraction
    finally:
        registry._TYPES.clear()
        registry._TYPES.update(saved)
        hooks.forget()


# ---------------------------------------------------------------------------- On-disk format


def test_on_disk_format_pretty_json_utf8_member_order_seq_file_lock_history(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    state = {"name": "Zoë 🎮", "nested": {"a": [1, {"b": []}], "e": {}}, "n": None, "t": True}
    store.create(state, 42)
    data = (d / "snapshot.json").read_bytes()
    doc = verify_v2(data)  # the documented verification rule, by hand
    assert data == json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    assert list(doc) == ["format", "format_version", "seq", "schema_version", "created_at", "state",
                         "checksum"]
    assert (doc["format"], doc["format_version"], doc["seq"], doc["state"]) == ("snapmixin", 2, 42, state)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["created_at"])
    assert (d / "snapshot.seq").read_bytes() == b"42\n"
    assert (d / ".lock").exists()
    # history/ names are never reused: a rollback, then the same seqs again, keeps every commit.
    big = SnapStore(d, keep=100)
    big.create({"v": 43}, 43)
    big.create({"v": 43}, 43)  # the identical state at the stored seq again: nothing written
    big.create({"v": 44}, 44)
    assert cli_main(["rollback", os.fspath(d), "--seq", "43"]) == 0
    big.create({"v": "44 again"}, 44)
    kept = sorted((p.name for p in (d / "history").iterdir()), key=lambda n: n.split("-")[2])  # commit time
    assert all(re.fullmatch(r"snapshot-\d{20}-\d{8}T\d{12}Z\.json", n) for n in kept)
    assert [json.loads((d / "history" / n).read_text())["state"] for n in kept] == [
        state, {"v": 43}, {"v": 44}, {"v": 43}]  # 42, 43, 44, the rollback's 43: all kept, in order
    assert big.restore() == ({"v": "44 again"}, 44)


# ------------------------------------------------------------------ README's examples, as written


def _readme_blocks() -> dict[str, tuple[int, str]]:
    """README's ```python blocks, by a name for each (its first line is what identifies it)."""
    text = README.read_text(encoding="utf-8")
    found: dict[str, tuple[int, str]] = {}
    names = {"from dataclasses import dataclass, field": "ten-lines", "from dataclasses import dataclass":
             "snapstore", "@dataclass\nclass Game(Snapshottable, snapshot_version=1)": "mixin",
             "class Settings(Snapshottable, BaseModel)": "pydantic", "@snapshot_every(100, seconds=30.0)":
             "snapshot_every", "from fractions import Fraction": "register_type", "import threading":
             "transient", "@dataclass\nclass Cat": "unions", "# Version 1 of the game saved": "migrations"}
    for m in re.finditer(r"```python\n(.*?)```", text, re.S):
        src = m.group(1)
        for start, name in names.items():
            if src.startswith(start) and name not in found:
                found[name] = (text[:m.start()].count("\n") + 2, src)
                break
    return found


_PRELUDE = """
import asyncio, threading
from dataclasses import dataclass, field
from typing import Literal
from pydantic import BaseModel, ConfigDict, Field
from snapmixin import SnapStore, Snapshottable, snapshot_every, migration, register_type, transient
"""


def _run_readme(name: str) -> dict[str, Any]:
    line, src = _readme_blocks()[name]
    ns: dict[str, Any] = {"__name__": f"readme_{name.replace('-', '_')}"}
    exec(_PRELUDE, ns)
    code = compile(src, f"README.md:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(code, ns)  # a coroutine when the block awaits at top level
    if asyncio.iscoroutine(result):
        asyncio.run(result)
    return ns


def test_readme_has_the_blocks_these_tests_run() -> None:
    assert sorted(_readme_blocks()) == sorted(["ten-lines", "snapstore", "mixin", "pydantic",
                                               "snapshot_every", "register_type", "transient", "unions",
                                               "migrations"])


def test_readme_ten_lines_run_as_written_and_the_file_is_as_shown(tmp_path: Path) -> None:
    ns = _run_readme("ten-lines")
    doc = on_disk(tmp_path / "saves" / "slot1")
    assert (doc["seq"], doc["state"]) == (2, {"level": 2, "inventory": ["sword"]})
    assert list(doc) == ["format", "format_version", "seq", "schema_version", "created_at", "state",
                         "checksum"]
    assert (tmp_path / "saves" / "slot1" / "snapshot.seq").read_text() == "2\n"
    assert ns["game"].snapshot_unsaved == 0


def test_readme_snapstore_example_runs_as_written(tmp_path: Path) -> None:
    # It used to stop with SnapshotConflict (`expect=None` on a store that was not empty) and,
    # past that, SeqRegression (acreate(..., 11) after seq 12).
    ns = _run_readme("snapstore")
    assert ns["store"].restore() == ({"counter": 45}, 13)
    assert ns["state"] == ns["AppState"](45) and ns["seq"] == 13
    assert ns["raw"] == {"counter": 42}
    assert SnapStore(tmp_path / "fresh").restore() == ({"counter": 0}, 0)


def test_readme_mixin_example_runs_as_written(tmp_path: Path) -> None:
    ns = _run_readme("mixin")
    doc = on_disk(tmp_path / "saves" / "slot1")  # the forced seq 0 (level 1), then the `with` block's +1
    assert (doc["seq"], doc["state"]) == (1, {"level": 2, "inventory": []})
    assert ns["game"].snapshot_unsaved == 0 and (tmp_path / "saves" / "slot1" / "history").is_dir()


def test_readme_pydantic_example_runs_as_written(tmp_path: Path) -> None:
    _run_readme("pydantic")
    assert on_disk(tmp_path / "settings")["state"] == {"theme": "light", "recent": ["a.txt"]}


def test_readme_snapshot_every_example_runs_as_written(tmp_path: Path) -> None:
    ns = _run_readme("snapshot_every")
    game = ns["Game"].open(tmp_path / "g")
    for _ in range(10):
        game.move(2)
    assert on_disk(tmp_path / "g")["state"] == {"x": 20} and on_disk(tmp_path / "g")["seq"] == 10


def test_readme_register_type_transient_and_unions_examples_run_as_written(tmp_path: Path) -> None:
    saved = dict(registry._TYPES)
    try:
        _run_readme("register_type")
        assert SnapStore("f").create([Fraction(1, 3)], 1) and on_disk(tmp_path / "f")["state"] == ["1/3"]
    finally:
        registry._TYPES.clear()
        registry._TYPES.update(saved)
        hooks.forget()
    service = _run_readme("transient")["Service"].open(tmp_path / "svc")
    service.cache["k"] = b"v"
    service.hits += 1
    service.snapshot()
    assert on_disk(tmp_path / "svc")["state"] == {"hits": 1}
    ns = _run_readme("unions")
    zoo = ns["Zoo"].open(tmp_path / "zoo")
    zoo.animals.extend([ns["Cat"](name="Tom"), ns["Dog"]()])
    zoo.snapshot()
    assert on_disk(tmp_path / "zoo")["state"]["animals"] == [{"kind": "cat", "name": "Tom"},
                                                             {"kind": "dog", "good": True}]
    assert ns["Zoo"].open(tmp_path / "zoo").animals == zoo.animals


def test_readme_migrations_example_runs_as_written(tmp_path: Path) -> None:
    # "Version 1 of the game saved: {"name": "Ann", "health": 10}"
    SnapStore(tmp_path / "saves" / "ann", schema_version=1).create({"name": "Ann", "health": 10}, 4)
    ns = _run_readme("migrations")
    player = ns["player"]
    assert (player.name, player.hp, player.pos, player.snapshot_seq) == ("Ann", 10, ns["Pos"](0, 0), 4)


# ---------------------------------------------------------------------- Guarantee 8: safe to load


@dataclass
class Holder(Snapshottable):
    name: str = ""
    anything: Any = None
    items: list[str] = field(default_factory=list)


def test_guarantee_8_restoring_runs_no_code_from_the_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    import builtins
    import marshal

    hostile = {
        "pickle": base64.b64encode(pickle.dumps(Holder)).decode(),
        "py/object": "os.system",
        "__class__": "subprocess.Popen",
        "__reduce__": ["os.system", ["touch pwned"]],
        "code": "__import__('os').system('touch pwned')",
        "!!python/object/apply:os.system": ["touch pwned"],
    }
    d = tmp_path / "h"
    Holder(name="__import__('os')", anything=hostile, items=["eval('1')"]).bind(d).snapshot()
    game = Holder.open(d, journal="flush")  # and a journal whose records carry the same payloads
    game.anything = {"again": hostile}
    game.items.append("exec('x')")
    del game

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"restore ran code: {args!r:.80}")

    with monkeypatch.context() as m:
        for mod, name in [(builtins, "eval"), (builtins, "exec"), (builtins, "compile"), (pickle, "loads"),
                          (pickle, "load"), (marshal, "loads")]:
            m.setattr(mod, name, refuse)
        raw, _ = SnapStore(d).restore()
        back = Holder.open(d)  # snapshot + journal replay
    assert raw["anything"] == hostile and raw["name"] == "__import__('os')"
    assert back.anything == {"again": hostile} and back.items == ["eval('1')", "exec('x')"]
    assert isinstance(back.anything["again"], dict)  # an `Any` field: plain JSON values, no object built
    with pytest.raises(DecodeError, match="unknown key"):  # only the types the caller names
        SnapStore(d).restore(AppState)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


# ---------------------------------------------------------------------------------- the errors


def test_every_error_is_typed_and_names_the_file_and_the_problem(tmp_path: Path) -> None:
    import subprocess
    import sys

    d = tmp_path / "s"
    snap = os.fspath(d / "snapshot.json")
    store = SnapStore(d)
    cases: list[tuple[type[SnapError], Any, str, str]] = []

    def expect(kind: type[SnapError], fn: Any, where: str, problem: str) -> None:
        with pytest.raises(kind) as err:
            fn()
        assert type(err.value) is kind
        assert where in str(err.value) and err.value.path is not None and err.value.path in str(err.value)
        assert re.search(problem, str(err.value)), str(err.value)
        cases.append((kind, fn, where, problem))

    expect(SnapshotNotFound, store.restore, os.fspath(d), "no snapshot")
    store.create(AppState(1), 5)
    expect(SeqRegression, lambda: store.create(AppState(1), 4), snap, "lower than the stored seq 5")
    expect(SnapshotConflict, lambda: store.create(AppState(2), 5), snap, "different state")
    expect(SnapshotConflict, lambda: store.create(AppState(2), 6, expect=None), snap, "stale writer")
    expect(InvalidSeq, lambda: store.create(AppState(2), -1), snap, "between 0 and 2\\*\\*63 - 1")
    expect(EncodeError, lambda: store.create({"x": float("nan")}, 6), snap, r"\$\.x")
    expect(DecodeError, lambda: store.restore(dict[str, str]), snap, r"\$\.counter")
    expect(MigrationError, lambda: SnapStore(d, schema_version=2).restore(), snap,
           "no migration from version 1")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "snapshot.json").write_bytes(b"")
    expect(CorruptSnapshot, SnapStore(tmp_path / "e").restore, os.fspath(tmp_path / "e" / "snapshot.json"),
           "empty")
    child = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         os.fspath(d / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        expect(StoreLocked, lambda: store.create(AppState(3), 7), os.fspath(d),
               "another process holds the lock")
    finally:
        child.communicate("")
    assert store.restore(AppState) == (AppState(1), 5)  # every refusal wrote nothing
    assert sorted(c[0].__name__ for c in cases) == sorted(
        ["SnapshotNotFound", "SeqRegression", "SnapshotConflict", "SnapshotConflict", "InvalidSeq",
         "EncodeError", "DecodeError", "MigrationError", "CorruptSnapshot", "StoreLocked"])


# ------------------------------------------------------ version 1 and the seed's layouts, by the mixin


@dataclass
class Plain(Snapshottable):
    level: int = 1
    inventory: list[str] = field(default_factory=list)


def _minisnap_011(d: Path) -> None:
    d.mkdir()
    (d / "snapshot.json").write_text(json.dumps({"level": 3, "inventory": ["x"]}, indent=2))
    (d / "snapshot.seq").write_text("7")


def _minisnap_013(d: Path) -> None:
    d.mkdir()
    for seq, level in ((2, 1), (7, 3)):  # the highest seq is the current one
        state = {"level": level, "inventory": ["x"]}
        (d / f"snapshot_{seq}.json").write_text(json.dumps({"seq": seq, "state": state}, indent=2))


def _v1(d: Path) -> None:
    write_v1(d, {"level": 3, "inventory": ["x"]}, 7)


@pytest.mark.parametrize("layout", [_minisnap_011, _minisnap_013, _v1],
                         ids=["minisnap-0.1.1", "minisnap-0.1.3", "snapmixin-1"])
def test_old_layouts_open_with_the_mixin_and_continue_in_format_2(tmp_path: Path, layout: Any) -> None:
    d = tmp_path / "old"
    layout(d)
    assert SnapStore(d).restore() == ({"level": 3, "inventory": ["x"]}, 7)
    game = Plain.open(d)
    assert (game.level, game.inventory, game.snapshot_seq) == (3, ["x"], 7)
    game.level += 1
    assert game.snapshot() == 8
    doc = verify_v2((d / "snapshot.json").read_bytes())
    assert (doc["seq"], doc["state"]) == (8, {"level": 4, "inventory": ["x"]})
    assert (d / "snapshot.seq").read_text() == "8\n"
    again = Plain.open(d)
    assert (again.level, again.snapshot_seq) == (4, 8)


def test_after_a_failed_explicit_snapshot_each_mutation_retries_until_force_or_reopen(tmp_path: Path) -> None:
    # README ("Automatic snapshots"): a failed snapshot() is retried at the next mutation, with or
    # without a policy, and raises while the cause lasts; force=True (or reopening) ends it.
    d = tmp_path / "d"
    a, b = Plain.open(d), Plain.open(d)
    a.level = 2
    a.snapshot()
    b.level = 5
    with pytest.raises(SnapshotConflict):
        b.snapshot()
    with pytest.raises(SnapshotConflict):
        b.level += 1  # applied, counted, and the retry says why it cannot save
    assert (b.level, b.snapshot_unsaved) == (6, 2) and on_disk(d)["state"]["level"] == 2
    assert b.snapshot(force=True) == 2
    b.level += 1  # no retry pending any more
    assert (on_disk(d)["state"]["level"], b.snapshot_unsaved) == (6, 1)
