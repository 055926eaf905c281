#!/usr/bin/env python3
"""Cost of a durable mutation: the journal ("flush", "fsync") vs no journal vs @snapshot_every(1)
vs SQLite with one commit per change; and replay speed.

    python bench/journal.py            # default run (about 1-2 minutes)
    python bench/journal.py --quick    # fewer rounds and iterations

Table 1: ns per mutation, for two mutations (``o.counter = v``: a scalar assignment, and
``o.log.append(v)``) on states of about 1 KB, 1 MB and 10 MB (a list of strings as ballast).
Each cell times a loop of N mutations (N per cell, fewer for the slow ones: the 10 MB
``@snapshot_every(1)`` cell writes 10 MB per mutation); all cells run once per round, in one
order then the reverse, for --repeat rounds; each cell reports the median (min-max) of its
rounds. Every snapshotting/journaling object writes into its own directory under a temp
directory on the same file system.

The SQLite rows store the same change in a one-row table (``UPDATE t SET v=? WHERE k=1`` and
``COMMIT`` per change; the ballast sits in a second row, so state size does not matter to it),
in WAL mode: ``synchronous=OFF`` for the "flush" level (the WAL is written with ``write()`` at
each commit, not fsynced: survives a process crash, not power loss) and ``synchronous=FULL``
for the "fsync" level (the WAL is fsynced at each commit).

Table 2: replay. A store holding a snapshot and a journal of 100,000 records (scalar
assignments and appends on the 1 KB state): records per second of ``journal.load`` +
``journal.replay`` (read, check, apply), and the time of the whole ``open()``, against
``open()`` of the same state without a journal. This script measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _env import code_version, cpu_model

from snapmixin import Snapshottable, SnapStore, snapshot_every
from snapmixin import journal as J

SIZES = {"1 KB": 1_000, "1 MB": 1_000_000, "10 MB": 10_000_000}


@dataclass
class State(Snapshottable):
    counter: int = 0
    log: list[int] = field(default_factory=list)
    ballast: list[str] = field(default_factory=list)


@snapshot_every(1)
@dataclass
class EveryState(Snapshottable):
    counter: int = 0
    log: list[int] = field(default_factory=list)
    ballast: list[str] = field(default_factory=list)


def ballast(size: int) -> list[str]:
    n = max(1, size // 100)
    return [f"{i:08d}" + "x" * 88 for i in range(n)]


def make(kind: str, size: int, base: str) -> tuple[Any, Callable[[], None]]:
    """A fresh subject: (object, cleanup)."""
    d = tempfile.mkdtemp(dir=base)
    if kind == "sqlite-flush" or kind == "sqlite-fsync":
        con = sqlite3.connect(os.path.join(d, "db.sqlite"), isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA synchronous={'OFF' if kind == 'sqlite-flush' else 'FULL'}")
        con.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v)")
        con.execute("INSERT INTO t VALUES (1, 0), (2, ?)", ("x" * size,))
        con.execute("CREATE TABLE log (v)")
        return con, lambda: (con.close(), shutil.rmtree(d, ignore_errors=True))
    cls = EveryState if kind == "every(1)" else State
    obj = cls(ballast=ballast(size))
    mode = {"flush": "flush", "fsync": "fsync"}.get(kind)
    obj.bind(d, journal=mode)
    obj.snapshot()
    return obj, lambda: shutil.rmtree(d, ignore_errors=True)


def mutation(kind: str, op: str, obj: Any) -> Callable[[int], None]:
    if kind.startswith("sqlite"):
        if op == "set":
            def f(i: int) -> None:
                obj.execute("BEGIN")
                obj.execute("UPDATE t SET v=? WHERE k=1", (i,))
                obj.execute("COMMIT")
        else:
            def f(i: int) -> None:
                obj.execute("BEGIN")
                obj.execute("INSERT INTO log VALUES (?)", (i,))
                obj.execute("COMMIT")
        return f
    if op == "set":
        def g(i: int) -> None:
            obj.counter = i
        return g
    log = obj.log

    def h(i: int) -> None:
        log.append(i)
    return h


def iterations(kind: str, size: int, quick: bool) -> int:
    if kind in ("none", "flush", "sqlite-flush"):
        n = 20_000
    elif kind in ("fsync", "sqlite-fsync"):
        n = 200
    else:  # every(1): one snapshot per mutation
        n = {1_000: 200, 1_000_000: 10, 10_000_000: 2}[size]
    return max(2, n // 4) if quick else n


def time_cell(kind: str, op: str, size: int, base: str, quick: bool,
              cache: dict[tuple[str, int], Any]) -> float:
    obj, _ = cache[(kind, size)]
    f = mutation(kind, op, obj)
    n = iterations(kind, size, quick)
    t0 = time.perf_counter_ns()
    for i in range(n):
        f(i & 1023)
    return (time.perf_counter_ns() - t0) / n


def spread(xs: list[float]) -> str:
    def fmt(x: float) -> str:
        if x >= 1e6:
            return f"{x / 1e6:,.2f} ms"
        if x >= 1e4:
            return f"{x / 1e3:,.1f} us"
        return f"{x:,.0f} ns"
    return f"{fmt(statistics.median(xs))} ({fmt(min(xs))}-{fmt(max(xs))})"


def replay_bench(base: str, records: int) -> dict[str, float]:
    d = os.path.join(base, "replay")
    obj = State(ballast=ballast(1_000)).bind(d, journal="flush")
    obj.snapshot()
    for i in range(records):
        if i % 2:
            obj.counter = i
        else:
            obj.log.append(i)
    store = SnapStore(d)
    info = store.latest()
    assert info is not None
    t0 = time.perf_counter()
    found = J.load(store, info.generation, info.seq)
    doc, _ = store.restore()
    doc = J.replay(doc, found)
    t1 = time.perf_counter()
    again = State.open(d)
    t2 = time.perf_counter()
    assert again.counter == obj.counter and again.snapshot_seq == obj.snapshot_seq
    plain = os.path.join(base, "plain")
    obj.bind(plain)
    obj.snapshot()
    t3 = time.perf_counter()
    State.open(plain)
    t4 = time.perf_counter()
    return {"replay_rps": len(found.records) / (t1 - t0), "open_s": t2 - t1, "open_plain_s": t4 - t3}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=None, help="interleaved rounds (default 5; 3 quick)")
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--replay-only", action="store_true", help="only table 2")
    args = p.parse_args()
    rounds = args.repeat or (3 if args.quick else 5)
    print(f"bench/journal.py, {dt.date.today().isoformat()}, {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.system()} {platform.release()}, {cpu_model()}, "
          f"SQLite {sqlite3.sqlite_version}")
    print(f"Code measured: {code_version()}; load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = tempfile.mkdtemp(prefix="snapmixin-bench-journal-")
    kinds = ["none", "flush", "fsync", "every(1)", "sqlite-flush", "sqlite-fsync"]
    # SQLite: one row changes, whatever the state's size: measured once
    cells = [(k, op, s) for s in SIZES.values() for k in kinds for op in ("set", "append")
             if not (k.startswith("sqlite") and s != 1_000) and not args.replay_only]
    samples: dict[tuple[str, str, int], list[float]] = {c: [] for c in cells}
    cache: dict[tuple[str, int], Any] = {}
    try:
        for k, _, s in cells:
            if (k, s) not in cache:
                cache[(k, s)] = make(k, s, base)
        for r in range(rounds):
            for c in (cells if r % 2 == 0 else list(reversed(cells))):
                samples[c].append(time_cell(*c, base, args.quick, cache))
        rep = replay_bench(base, args.records)
    finally:
        for _, cleanup in cache.values():
            cleanup()
        shutil.rmtree(base, ignore_errors=True)
    if args.replay_only:
        kinds = []
    print()
    print(f"### ns per mutation, median (min-max) of {rounds} interleaved rounds")
    print()
    labels = {"none": "no journal (not durable)", "flush": 'journal="flush"', "fsync": 'journal="fsync"',
              "every(1)": "@snapshot_every(1)", "sqlite-flush": "SQLite WAL, synchronous=OFF, commit/change",
              "sqlite-fsync": "SQLite WAL, synchronous=FULL, commit/change"}
    print("| subject | state | `o.counter = v` | `o.log.append(v)` | survives |")
    print("|---|---|--:|--:|---|")
    survives = {"none": "nothing since the last snapshot", "flush": "process crash",
                "fsync": "process crash, power loss", "every(1)": "process crash, power loss",
                "sqlite-flush": "process crash", "sqlite-fsync": "process crash, power loss"}
    for name, s in SIZES.items():
        for k in kinds:
            if k.startswith("sqlite") and s != 1_000:
                continue
            size = "any" if k.startswith("sqlite") else name
            print(f"| {labels[k]} | {size} | {spread(samples[(k, 'set', s)])} | "
                  f"{spread(samples[(k, 'append', s)])} | {survives[k]} |")
    print()
    print(f"### Replay: {args.records:,} journal records on the 1 KB state")
    print()
    print(f"- load + check + apply: {rep['replay_rps']:,.0f} records/s")
    print(f"- `open()` with the journal: {rep['open_s'] * 1e3:,.1f} ms (the same state without a journal: "
          f"{rep['open_plain_s'] * 1e3:,.2f} ms)")
    print(f"\nLoad average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
