"""The contract of /work/shared/DESIGN.md (mirrored in README.md), checked line by line.

Each test is named after the line of the design it checks ("Public API (names fixed)", "On-disk
format", the errors); most promises also have deeper tests elsewhere, and these are the short,
literal form: the API exactly as the design writes it, and README's examples run as written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import attrs
import pytest
from pydantic import BaseModel, ConfigDict, PrivateAttr

from snapmixin import Snapshottable, SnapStore, migration, snapshot_every, transient
from snapmixin.errors import (
    InvalidSeq,
)

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
    def _v1(d: dict[str, Any]) -> dict[str, Any]:  # type: ignore[misc]
        d["level"] = d.pop("lvl")
        return d


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
