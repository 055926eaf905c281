"""Game saves: save slots, autosave every 10 moves, and upgrading an old save format.

    python examples/game_save.py            # saves go to a fresh temp directory
    python examples/game_save.py --dir DIR  # or to DIR/slot1, DIR/slot2, DIR/slot3

- slot 1: Ada plays 25 moves and the game crashes; the autosave after move 20 is what she gets back;
- slot 2: Bo plays 7 moves and quits cleanly: ``with`` saves on the way out;
- slot 3: Cy's save was written by version 1 of the game, with other field names;
  opening it with today's ``Game`` (schema version 2) runs the migration.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapmixin import Snapshottable, SnapStore, migration, snapshot_every

TREASURE = {(2, 1): "map", (3, 3): "key", (-1, 4): "lantern"}
MOVES = [(1, 0), (1, 1), (0, 1), (1, 0), (0, 1), (-1, 0), (0, 1), (-1, 0), (-1, 0), (-1, 0)] * 3


@dataclass
class Game(Snapshottable, snapshot_version=2):
    player: str
    hp: int = 100  # version 1 called it "health"
    x: int = 0  # version 1 kept "pos": [x, y]
    y: int = 0
    inventory: list[str] = field(default_factory=list)  # version 1: "items", comma-separated
    moves: int = 0  # new in version 2

    @snapshot_every(10)  # autosave after every 10th move (one call = one mutation, never mid-move)
    def move(self, dx: int, dy: int) -> None:
        self.x += dx
        self.y += dy
        self.moves += 1
        item = TREASURE.get((self.x, self.y))
        if item and item not in self.inventory:
            self.inventory.append(item)

    @migration(from_version=1)
    def _from_v1(state: dict[str, Any]) -> dict[str, Any]:
        x, y = state.pop("pos")
        items = state.pop("items")
        return {"player": state["player"], "hp": state["health"], "x": x, "y": y,
                "inventory": items.split(",") if items else [], "moves": 0}


def expected_after(n: int) -> tuple[int, int, list[str]]:
    """Where the first n moves lead, worked out without the Game class: (x, y, inventory)."""
    x = y = 0
    inventory: list[str] = []
    for dx, dy in MOVES[:n]:
        x, y = x + dx, y + dy
        if (x, y) in TREASURE and TREASURE[x, y] not in inventory:
            inventory.append(TREASURE[x, y])
    return x, y, inventory


def describe(game: Game) -> str:
    return (f"{game.player}: at ({game.x}, {game.y}), hp {game.hp}, {game.moves} moves, "
            f"inventory {game.inventory}, seq {game.snapshot_seq}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where the save slots go (default: a new temp directory)")
    args = parser.parse_args()
    saves = Path(args.dir or tempfile.mkdtemp(prefix="snapmixin-game-"))
    if any(SnapStore(saves / f"slot{i}").exists() for i in (1, 2, 3)):
        print(f"{saves} already holds save slots (from an earlier run?): give a new --dir")
        return 2
    print(f"save slots go to {saves}")
    failures = []

    def check(ok: bool, what: str) -> None:
        print(f"  {'ok' if ok else 'FAILED'}: {what}")
        if not ok:
            failures.append(what)

    # Slot 1: a new game; the game crashes after move 25, without saving.
    print("\nslot 1: Ada starts a new game and plays 25 moves, then the game crashes")
    game = Game.open(saves / "slot1", default=lambda: Game(player="Ada"))
    for dx, dy in MOVES[:25]:
        game.move(dx, dy)
    print(f"  in memory at the crash: {describe(game)}")
    del game  # no snapshot(): everything after the last autosave is lost

    game = Game.open(saves / "slot1")
    print(f"  reloaded: {describe(game)}")
    check((game.x, game.y, game.inventory, game.moves) == (*expected_after(20), 20),
          "the autosave after move 20 came back, exactly as it was at move 20")

    # Slot 2: a short game, saved on a clean exit by the with block.
    print("\nslot 2: Bo plays 7 moves and quits from the menu")
    with Game.open(saves / "slot2", default=lambda: Game(player="Bo", hp=80)) as game:
        for dx, dy in MOVES[:7]:
            game.move(dx, dy)
    game = Game.open(saves / "slot2")
    print(f"  reloaded: {describe(game)}")
    check(game.moves == 7 and game.hp == 80, "no autosave was due, but leaving the with block saved all 7")

    # Slot 3: a save from version 1 of the game, in the old format.
    print("\nslot 3: Cy's save from version 1 of the game (written here with a plain SnapStore)")
    old = {"player": "Cy", "health": 35, "pos": [4, -2], "items": "sword,lantern"}
    SnapStore(saves / "slot3").create(old, 12)
    print(f"  on disk, schema version 1: {old}")
    game = Game.open(saves / "slot3")  # the migration upgrades it on the way in
    print(f"  opened with schema version 2: {describe(game)}")
    check((game.hp, game.x, game.y, game.inventory) == (35, 4, -2, ["sword", "lantern"]),
          "health, pos and items were migrated to hp, x, y and inventory")
    game.move(0, 1)
    game.snapshot()  # saved in the new format; the version-1 generation is kept in history/
    versions = [(info.seq, info.schema_version) for info in SnapStore(saves / "slot3").history()]
    print(f"  after one move and a save, generations (seq, schema version): {versions}")
    check(versions == [(13, 2), (12, 1)],
          "now saved as schema version 2, the old version-1 save kept in history/ (undoable)")

    # The load menu: what each slot holds, read from the files' headers.
    print("\nload game:")
    for slot in sorted(saves.iterdir()):
        info = SnapStore(slot).latest()
        assert info is not None and info.created_at is not None
        print(f"  {slot.name}: {Game.open(slot).player:<4} seq {info.seq:<3} "
              f"schema v{info.schema_version}  saved {info.created_at:%H:%M:%S} UTC  {info.size} bytes")

    if failures:
        print(f"\nFAILED: {len(failures)} check(s) did not hold")
        return 1
    print(f"\nOK: all slots hold what they should. Look: {sys.executable} -m snapmixin show {saves}/slot3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
