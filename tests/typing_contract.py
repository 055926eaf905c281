"""The types the public API promises (DESIGN.md, "Public API (names fixed)"), checked by mypy.

Not a pytest module: CI's ``mypy`` step checks it (``setup.cfg``, ``[mypy] files``); a signature
that loses its type (returns ``Any``) fails there. Nothing here runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from typing_extensions import assert_type

from snapmixin import (
    SnapshotInfo,
    Snapshottable,
    SnapStore,
    migration,
    register_type,
    snapshot_every,
    transient,
)


@dataclass
class AppState:
    counter: int


register_type(Fraction, encode=str, decode=Fraction)


@snapshot_every(100, seconds=30.0)
@dataclass
class Game(Snapshottable, snapshot_version=2, snapshot_journal=None):
    level: int = 1
    inventory: list[str] = field(default_factory=list)
    lock: threading.Lock = transient(default_factory=threading.Lock)
    share: Fraction = transient(default=Fraction(0))

    @snapshot_every(10)
    def move(self, dx: int) -> None:
        self.level += dx

    @migration(from_version=1)
    def _v1(d: dict[str, Any]) -> dict[str, Any]:  # no self: made static
        d["level"] = d.pop("lvl")
        return d


async def store_api(store: SnapStore) -> None:
    assert_type(store.create(AppState(1), 1), SnapshotInfo)
    assert_type(store.restore(AppState), tuple[AppState, int])
    assert_type(store.restore(), tuple[Any, int])
    assert_type(store.restore(AppState, fallback=True), tuple[AppState, int])
    assert_type(await store.acreate(AppState(1), 2), SnapshotInfo)
    assert_type(await store.arestore(AppState), tuple[AppState, int])
    assert_type(await store.arestore(), tuple[Any, int])
    assert_type(store.exists(), bool)
    assert_type(store.latest(), SnapshotInfo | None)
    assert_type(store.history(), list[SnapshotInfo])


async def mixin_api() -> None:
    game = Game.open("saves/slot1")
    assert_type(game, Game)
    assert_type(Game.open("saves/slot1", default=lambda: Game(level=5), fallback=True, journal="flush"), Game)
    assert_type(game.bind("saves/slot2"), Game)
    assert_type(game.bind(SnapStore("saves/slot3")), Game)
    assert_type(game.snapshot(), int)
    assert_type(await game.asnapshot(), int)
    assert_type(game.snapshot_seq, int)
    assert_type(game.snapshot_unsaved, int)
    assert_type(game.move(1), None)
    with game.snapshot_batch():
        game.mark_mutated()
    with Game.open("saves/slot1") as opened:
        assert_type(opened, Game)
