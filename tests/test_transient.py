"""transient(): fields that are not saved, rebuilt from their default on restore."""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import snapmixin
from snapmixin import Snapshottable, SnapStore, transient
from snapmixin.codec import transient_names
from snapmixin.errors import DecodeError, EncodeError
from snapmixin.fields import TRANSIENT


@dataclass
class Cached:
    n: int = 0
    cache: dict[str, int] = transient(default_factory=dict)
    label: str = transient(default="fresh")


@dataclass
class Settings:
    theme: str = "light"
    lock: threading.Lock = transient(default_factory=threading.Lock)
    items: list[Cached] = field(default_factory=list)


def state_of(d: Path) -> Any:
    return json.loads((d / "snapshot.json").read_text())["state"]


def test_public() -> None:
    assert snapmixin.transient is transient and "transient" in snapmixin.__all__


def test_not_written_and_rebuilt_from_the_default(tmp_path: Path) -> None:
    s = Settings("dark", items=[Cached(1, {"x": 1}, "used"), Cached(2)])
    store = SnapStore(tmp_path / "s")
    store.create(s, 1)
    assert state_of(tmp_path / "s") == {"theme": "dark", "items": [{"n": 1}, {"n": 2}]}
    back = store.restore(Settings)[0]
    assert back.theme == "dark" and [c.n for c in back.items] == [1, 2]
    assert isinstance(back.lock, type(threading.Lock())) and back.lock is not s.lock
    assert back.items[0].cache == {} and back.items[0].label == "fresh"
    assert back.items[0].cache is not back.items[1].cache  # one new object per instance


def test_a_key_written_before_the_field_became_transient_is_ignored(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({"theme": "dark", "lock": "whatever", "items": [{"n": 3, "cache": {"a": 1}}]}, 1)
    back = store.restore(Settings)[0]
    assert back.theme == "dark" and back.items[0].n == 3 and back.items[0].cache == {}
    # ...while any other unknown key is still refused, with its path
    store.create({"theme": "dark", "items": [{"n": 3, "typo": 1}]}, 2)
    with pytest.raises(DecodeError) as e:
        store.restore(Settings)
    assert e.value.json_path == "$.items[0].typo"
    lax = SnapStore(tmp_path / "s", ignore_unknown_keys=True).restore(Settings)[0]
    assert lax.items[0].n == 3


def test_equality_and_repr_leave_it_out() -> None:
    assert Cached(1, {"a": 1}, "x") == Cached(1)
    assert "cache" not in repr(Cached(1)) and "n=1" in repr(Cached(1))
    f = {f.name: f for f in dataclasses.fields(Cached)}["cache"]
    assert f.metadata[TRANSIENT] is True and f.compare is False


def test_needs_exactly_one_default() -> None:
    with pytest.raises(TypeError, match="exactly one of default= and default_factory="):
        transient()
    with pytest.raises(TypeError, match="exactly one"):
        transient(default=1, default_factory=int)  # type: ignore[call-overload]


def test_transient_names() -> None:
    assert transient_names(Cached) == frozenset({"cache", "label"})
    assert transient_names(Settings) == frozenset({"lock"})

    @dataclass
    class Sub(Cached):
        more: list[int] = transient(default_factory=list)

    assert transient_names(Sub) == frozenset({"cache", "label", "more"})
    assert transient_names(int) == frozenset() and transient_names(list[Cached]) == frozenset()


@dataclass
class Service(Snapshottable):
    hits: int = 0
    lock: threading.Lock = transient(default_factory=threading.Lock)
    memo: dict[int, int] = transient(default_factory=dict)

    def hit(self) -> None:
        with self.lock:
            self.hits += 1


def test_a_lock_field_does_not_make_class_set_up_refuse_the_class(tmp_path: Path) -> None:
    svc = Service.open(tmp_path / "svc")
    threads = [threading.Thread(target=svc.hit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    svc.snapshot()
    assert set(state_of(tmp_path / "svc")) == {"hits"}
    again = Service.open(tmp_path / "svc")
    assert again.hits == 4 and again.memo == {} and again.lock is not svc.lock
    assert not again.lock.locked()


def test_unresolvable_annotations_keep_their_clear_refusal(tmp_path: Path) -> None:
    """Looking for transient fields and unions must not turn this refusal into a bare NameError."""
    @dataclass
    class Local:
        n: int = 1

    @dataclass
    class Outer:
        inner: Local = field(default_factory=Local)  # a local class: a string annotation here
        lock: threading.Lock = transient(default_factory=threading.Lock)

    with pytest.raises(EncodeError, match="cannot resolve the type annotations"):
        SnapStore(tmp_path / "s").create(Outer(), 1)


@dataclass
class Node:
    name: str
    children: list[Node] = field(default_factory=list)
    parent: Node | None = transient(default=None)  # a back link: not saved (it would loop)


def test_a_recursive_class_with_a_transient_back_link(tmp_path: Path) -> None:
    root = Node("root")
    for i in range(3):
        kid = Node(f"kid{i}", parent=root)
        kid.children.append(Node(f"grandkid{i}", parent=kid))
        root.children.append(kid)
    store = SnapStore(tmp_path / "s")
    store.create(root, 1)
    assert state_of(tmp_path / "s")["children"][0] == {
        "name": "kid0", "children": [{"name": "grandkid0", "children": []}]}
    back = store.restore(Node)[0]
    assert [k.name for k in back.children] == ["kid0", "kid1", "kid2"]
    assert back.children[2].children[0].name == "grandkid2" and back.children[0].parent is None
    assert type(back.children[1].children[0]) is Node
