"""SIGKILL torture of the journal (issue 14): ``python -m tests.journal_torture --seconds N``.

Each round forks a child that opens a rich ``Snapshottable`` object (nested objects, lists,
dicts, sets, a class-level ``@snapshot_every``, a method-form one) with ``journal="flush"``
(or ``"fsync"``) from one directory and mutates it for ever: single operations, batches,
method-form calls, explicit snapshots, automatic ones. The parent SIGKILLs it at a random
moment, reopens the directory and checks the state against the child's side log.

The side log (appended with one ``write`` per line: a SIGKILL loses nothing the process wrote,
so no fsync is needed for what this run tests):

- ``S <seq> <hash>``: the state the child opened;
- ``P <seq> <hash>``: a mutation is about to run; ``<hash>`` is the state it will produce,
  computed first on a deep copy of the object (the same operation, same arguments);
- ``R <seq> <hash>``: that mutation returned (the state checked against the ``P`` hash).

After the kill the reopened object's (seq, hash) must be exactly the last ``R`` line's (or the
``S`` line's when none): every mutation that returned survives. The one exception: a ``P``
with no ``R`` after it (killed inside the mutation, or after it returned but before ``R`` was
written) may have reached the journal, so its (seq, hash) is also accepted. Nothing else: not
an older state (a lost mutation), not a state that never existed (a bad record).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapmixin import Snapshottable, SnapStore, snapshot_every


@dataclass
class Pet(Snapshottable):
    name: str = ""
    age: int = 0
    toys: list[str] = field(default_factory=list)
    marks: set[int] = field(default_factory=set)


@snapshot_every(25)
@dataclass
class Farm(Snapshottable):
    day: int = 0
    log: list[int] = field(default_factory=list)
    stock: dict[str, int] = field(default_factory=dict)
    pets: list[Pet] = field(default_factory=list)
    by_name: dict[str, Pet] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    best: Pet | None = None
    rows: list[list[int]] = field(default_factory=list)

    @snapshot_every(9)
    def tick(self, k: int) -> None:
        self.day += 1
        self.log.append(k)
        if self.pets:
            self.pets[k % len(self.pets)].age += 1


def state_hash(store: SnapStore, obj: Any) -> str:
    doc = json.loads(store.encode(obj))
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:24]


def pick_op(rng: random.Random, farm: Farm) -> Callable[[Farm], None] | None:
    """A random mutation (its arguments drawn now, so it applies identically to a copy)."""
    k = rng.randrange(1000)
    n = len(farm.pets)
    choice = rng.randrange(22)
    if choice == 0:
        return lambda f: setattr(f, "day", k)
    if choice == 1:
        return lambda f: f.log.append(k)
    if choice == 2 and farm.log:
        i = rng.randrange(-len(farm.log), len(farm.log))
        return lambda f: f.log.pop(i)
    if choice == 3:
        return lambda f: f.stock.__setitem__(f"s{k % 7}", k)
    if choice == 4 and farm.stock:
        key = rng.choice(sorted(farm.stock))
        return lambda f: f.stock.__delitem__(key)
    if choice == 5 and n < 12:
        i = rng.randrange(n + 1)
        return lambda f: f.pets.insert(i, Pet(name=f"p{k}", age=k % 9))
    if choice == 6 and n:
        i = rng.randrange(n)
        return lambda f: setattr(f.pets[i], "age", k)
    if choice == 7 and n:
        i = rng.randrange(n)
        return lambda f: f.pets[i].toys.append(f"t{k}")
    if choice == 8 and n:
        i = rng.randrange(n)
        return lambda f: f.pets[i].marks.add(k % 10)
    if choice == 9 and n:
        i = rng.randrange(n)
        return lambda f: f.pets.pop(i)
    if choice == 10 and n:
        i = rng.randrange(n)
        return lambda f: setattr(f, "best", f.pets[i])  # a second place for the same object
    if choice == 11 and farm.best is not None:
        return lambda f: setattr(f.best, "name", f"b{k}")  # type: ignore[union-attr]
    if choice == 12 and n:
        i = rng.randrange(n)
        return lambda f: f.by_name.__setitem__(f"n{k % 5}", f.pets[i])
    if choice == 13 and farm.by_name:
        key = rng.choice(sorted(farm.by_name))
        return lambda f: setattr(f.by_name[key], "age", k)
    if choice == 14:
        return lambda f: f.seen.add(f"x{k % 13}")
    if choice == 15:
        return lambda f: f.seen.discard(f"x{k % 13}")
    if choice == 16:
        return lambda f: f.tick(k)  # method form: one mutation, maybe a snapshot after it
    if choice == 17:
        return _safe_batch(rng, k)  # one mutation, one record, all or nothing
    if choice == 18:
        return lambda f: f.rows.append([k, k + 1])
    if choice == 19 and farm.rows:
        i = rng.randrange(len(farm.rows))
        return lambda f: f.rows[i].append(k)
    if choice == 20 and n > 1:
        return lambda f: f.pets.reverse()
    if choice == 21 and farm.log:
        return lambda f: f.log.sort()
    return None


def _safe_batch(rng: random.Random, k: int) -> Callable[[Farm], None]:
    m = rng.randrange(1, 6)

    def batch(f: Farm) -> None:
        with f.snapshot_batch():
            for j in range(m):
                f.log.append(k + j)
                f.stock[f"b{j}"] = k
                if f.pets:
                    f.pets[j % len(f.pets)].toys.append(f"bt{k}")
            f.day += 1
    return batch


class _Buffered:
    """Sabotage for the negative control: journal appends kept in memory, written 8 at a time
    (what a buffered file object would do)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self.held: list[bytes] = []

    def write(self, fd: int, data: bytes) -> None:
        if not data.startswith(b'{"seq"'):  # a new segment: written at once
            self.fs.write(fd, data)
            return
        self.held.append(data)
        if len(self.held) >= 8:
            self.fs.write(fd, b"".join(self.held))
            self.held.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fs, name)


def child(directory: str, log_path: str, seed: int, mode: str, sabotage: str = "") -> None:
    rng = random.Random(seed)
    logfd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(kind: str, seq: int, h: str) -> None:
        os.write(logfd, f"{kind} {seq} {h}\n".encode())

    store = SnapStore(directory)
    farm = Farm.open(store, journal=mode)
    if sabotage == "buffer":
        journal = object.__getattribute__(farm, "_snapmixin").journal
        journal.fs = _Buffered(journal.fs)
        journal.direct = False
    note("S", farm.snapshot_seq, state_hash(store, farm))
    while True:
        if rng.random() < 0.02:
            farm.snapshot()
            continue
        op = pick_op(rng, farm)
        if op is None:
            continue
        shadow = copy.deepcopy(farm)
        before = shadow.snapshot_seq
        op(shadow)
        want = state_hash(store, shadow)
        # (1, or 0 for an assignment of the object an attribute already holds: not a mutation)
        seq = farm.snapshot_seq + shadow.snapshot_seq - before
        note("P", seq, want)
        op(farm)
        got = state_hash(store, farm)
        if got != want or farm.snapshot_seq != seq:
            os.write(logfd, f"X the object ({farm.snapshot_seq}, {got}) differs from its shadow "
                            f"({seq}, {want})\n".encode())
            os._exit(3)
        note("R", seq, got)


@dataclass
class Stats:
    rounds: int = 0
    mutations: int = 0  # R lines, over all rounds
    in_flight_kept: int = 0  # the P in flight was found in the journal
    in_flight_lost: int = 0  # ... or not (both are allowed)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.rounds} rounds, {self.mutations} returned mutations, in-flight kept "
                f"{self.in_flight_kept} / not {self.in_flight_lost}, {len(self.failures)} failures")


def check(directory: Path, lines: list[str], stats: Stats, where: str) -> None:
    last_r: tuple[int, str] | None = None
    pending: tuple[int, str] | None = None
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "X":
            stats.failures.append(f"{where}: child: {line}")
            return
        if len(parts) != 3:
            continue  # the kill cut the log line (it is only a test's side log)
        kind, seq, h = parts[0], int(parts[1]), parts[2]
        if kind in ("S", "R"):
            last_r, pending = (seq, h), None
            stats.mutations += kind == "R"
        elif kind == "P":
            pending = (seq, h)
    if last_r is None:
        return  # killed before it opened: nothing to check
    store = SnapStore(directory)
    try:
        farm = Farm.open(store)
        got = (farm.snapshot_seq, state_hash(store, farm))
    except Exception as e:
        stats.failures.append(f"{where}: reopening failed: {type(e).__name__}: {e}")
        return
    if got == last_r:
        if pending is not None:
            stats.in_flight_lost += 1
        return
    if pending is not None and got == pending:
        stats.in_flight_kept += 1
        return
    stats.failures.append(f"{where}: reopened {got}, but the last returned mutation was {last_r}"
                          + (f" (in flight: {pending})" if pending else ""))


def run(*, seconds: float = 10.0, rounds: int | None = None, mode: str = "flush", seed: int | None = None,
        root: Path | None = None, max_delay: float = 0.15, series: int = 30, sabotage: str = "") -> Stats:
    rng = random.Random(seed)
    stats = Stats()
    own = root is None
    base = Path(tempfile.mkdtemp(prefix="snapmixin-jtorture-")) if root is None else root
    base.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + seconds
    directory = base / "d0"
    try:
        while (rounds is None or stats.rounds < rounds) and time.monotonic() < deadline:
            if stats.rounds % series == 0:
                directory = base / f"d{stats.rounds}"
            log = base / f"log{stats.rounds}"
            pid = os.fork()
            if pid == 0:
                try:
                    child(str(directory), str(log), rng.randrange(2**32), mode, sabotage)
                except BaseException as e:  # said in the log, for the parent's report
                    with open(log, "a") as f:
                        f.write(f"X the child raised {type(e).__name__}: {e}\n")
                finally:
                    os._exit(5)
            time.sleep(rng.uniform(0.0, max_delay))  # chooses where the kill lands
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            where = f"round {stats.rounds} ({directory.name})"
            lines = log.read_text().splitlines() if log.exists() else []
            if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
                stats.failures.append(f"{where}: the child died by itself ({status}): {lines[-3:]}")
            check(directory, lines, stats, where)
            stats.rounds += 1
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--mode", choices=("flush", "fsync"), default="flush")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-delay", type=float, default=0.15)
    args = ap.parse_args(argv)
    stats = run(seconds=args.seconds, rounds=args.rounds, mode=args.mode, seed=args.seed,
                max_delay=args.max_delay)
    print(stats.summary())
    for f in stats.failures[:20]:
        print("FAIL", f)
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
