"""The journal: no step that returned is lost, even between snapshots.

    python examples/journal_crash.py            # files go to a fresh temp directory
    python examples/journal_crash.py --dir DIR  # or to DIR

A child process takes steps on an object opened with ``journal="flush"`` and
snapshots only every 1,000 steps. After each step returns, it appends the
step's number to a side file. We kill it with SIGKILL at a random moment, then
open the directory again: the snapshot plus the journal give back every step
the child saw return (and at most the one it was taking when it died), not
just the ones up to its last snapshot.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from snapmixin import Snapshottable, SnapStore, snapshot_every


@snapshot_every(1000)  # a snapshot every 1,000 mutations; the journal holds the ones between
@dataclass
class Walk(Snapshottable):
    steps: int = 0
    path: list[int] = field(default_factory=list)
    visits: dict[str, int] = field(default_factory=dict)

    def step(self, rng: random.Random) -> None:
        with self.snapshot_batch():  # the three changes are one mutation: all or nothing
            move = rng.choice((-1, 1))
            self.steps += 1
            self.path.append(move)
            key = str(sum(self.path[-50:]))
            self.visits[key] = self.visits.get(key, 0) + 1


def child(directory: str, side: str) -> None:
    """Run by the child: step until killed, noting each step after it returned."""
    walk = Walk.open(directory, journal="flush")
    rng = random.Random(7)
    fd = os.open(side, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for _ in range(10_000_000):
        walk.step(rng)
        os.write(fd, b"%d\n" % walk.steps)  # the OS has it: SIGKILL cannot take it back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to write (default: a new temp directory)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.dir, args.side)
        return 0

    base = args.dir or tempfile.mkdtemp(prefix="snapmixin-journal-")
    directory = os.path.join(base, "walk")
    side = os.path.join(base, "returned.txt")
    os.makedirs(base, exist_ok=True)
    print(f"the store is {directory}")

    proc = subprocess.Popen([sys.executable, __file__, "--child", "--dir", directory, "--side", side])
    print(f"started child process {proc.pid}: it steps, journaling each step, snapshotting every 1,000")
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:  # until it has taken a few thousand steps
        try:
            if os.path.getsize(side) > 30_000:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    time.sleep(random.uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(side, "rb") as f:
        returned = [int(n) for n in f.read().split()]
    last = returned[-1]
    print(f"killed the child with SIGKILL; the last step it saw return was step {last}")

    _, snapshot_seq = SnapStore(directory).restore()
    walk = Walk.open(directory)  # the snapshot, then the journal's records after it
    print(f"the last snapshot holds seq {snapshot_seq}; with the journal replayed: "
          f"steps={walk.steps}, seq={walk.snapshot_seq}")
    consistent = len(walk.path) == walk.steps == sum(walk.visits.values())
    if last <= walk.steps <= last + 1 and consistent and walk.snapshot_seq == walk.steps:
        print(f"OK: every step that returned is back ({walk.steps - snapshot_seq} of them only in the "
              "journal), and the state is whole")
        return 0
    print(f"FAILED: steps={walk.steps}, the child last saw step {last} return; "
          f"path {len(walk.path)}, visits {sum(walk.visits.values())}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
