"""Quickstart: an object whose state survives a crash.

    python examples/quickstart.py            # snapshots go to a fresh temp directory
    python examples/quickstart.py --dir DIR  # or to DIR

A child process counts and saves; we kill it with SIGKILL in the middle of
its work (no cleanup, no atexit, maybe halfway through a write), then open the
directory again: we get back the last snapshot, whole, with a state that
matches its seq.
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


@dataclass
class Counter(Snapshottable):
    count: int = 0
    squares: list[int] = field(default_factory=list)

    @snapshot_every(50)  # one call = one mutation; a durable snapshot after every 50th call
    def step(self) -> None:
        self.count += 1
        self.squares.append(self.count**2)


def child(directory: str) -> None:
    """Run by the child process: count until the parent kills it (at most ~1 minute)."""
    counter = Counter.open(directory)  # the latest snapshot, or Counter() when there is none
    for _ in range(100_000):
        counter.step()
        time.sleep(0.0005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="where to write snapshots (default: a new temp directory)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.dir)
        return 0

    directory = args.dir or tempfile.mkdtemp(prefix="snapmixin-quickstart-")
    print(f"snapshots go to {directory}")

    # 1. A child process counts, with an automatic snapshot every 50 steps.
    proc = subprocess.Popen([sys.executable, __file__, "--child", "--dir", directory])
    print(f"started child process {proc.pid}: it counts and saves every 50 steps")
    store = SnapStore(directory)
    start = info.seq if (info := store.latest()) else 0  # 0, unless --dir holds an earlier run
    deadline = time.monotonic() + 30
    while (info := store.latest()) is None or info.seq < start + 500:  # wait for 10 snapshots
        if proc.poll() is not None or time.monotonic() > deadline:
            print(f"FAILED: the child stopped or stalled (exit code {proc.poll()})")
            proc.kill()
            proc.wait()
            return 1
        time.sleep(0.01)

    # 2. Kill it at a random moment (maybe mid-write): no cleanup, no final save.
    time.sleep(random.uniform(0, 0.1))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    print(f"killed the child with SIGKILL (it had saved seq {info.seq} or later)")

    # 3. Open the directory again: the last snapshot comes back, whole.
    counter = Counter.open(directory)
    seq = counter.snapshot_seq
    print(f"restored: count={counter.count}, {len(counter.squares)} squares, seq={seq}")
    print(f"  last squares: {counter.squares[-3:]}")

    intact = (seq >= info.seq and counter.count == seq
              and counter.squares == [i * i for i in range(1, seq + 1)])
    if not intact:
        print("FAILED: the restored state does not match its seq")
        return 1
    print(f"OK: the state is intact and consistent with seq {seq} (every step up to it, nothing after)")
    print("  (steps the child made after its last snapshot, at most 49, are lost: that is what "
          "@snapshot_every(50) promises)")

    counter.step()  # and it carries on from there
    counter.snapshot()
    print(f"carried on: count={counter.count}, saved seq {counter.snapshot_seq}")
    print(f"look at it yourself: {sys.executable} -m snapmixin show {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
