"""The child process of the torture run (``tests/torture.py``): mutate, snapshot, get killed.

It opens a ``Snapshottable`` object from the store directory and mutates it for
ever (until the parent's SIGKILL), with automatic snapshots (class-level
``@snapshot_every`` and a method-level one, so some fire inside a mutation and
some after a batch ends) and explicit ones (``snapshot()``, or ``asnapshot()``
in an asyncio loop).

Next to the object it keeps a *shadow*: a plain dataclass that receives the
same operations. Before each operation the child computes the seq that
operation will reach (each op is exactly one counted mutation: an assignment,
an append, a call of a ``@snapshot_every`` method, or a ``snapshot_batch``) and
the hash of the shadow's state at that seq. So every state the library writes
can be checked against an independent model of "the state the child had at
that seq".

The side log (one line per event, appended with one ``write`` and fsynced):

- ``S <seq> <hash>``: the state opened (restored) at start;
- ``B <seq> <hash>``: a commit begins (written and fsynced *before* the store
  is touched);
- ``C <seq> <hash>``: that commit returned (the snapshot is durable);
- ``X <message>``: the child found an inconsistency itself (then exits 3).

The hash is SHA-256 of the canonical JSON (sorted keys, no spaces) of the state.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
from dataclasses import dataclass, field
from typing import Any

from snapmixin import Snapshottable, SnapStore, snapshot_every

AUTO_N = 7     # class level: a snapshot once 7 mutations are unsaved
METHOD_N = 3   # method level: after every 3rd call of step()


def canon_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@snapshot_every(AUTO_N)
@dataclass
class Thing(Snapshottable):
    counter: int = 0
    items: list[int] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)
    blob: str = ""

    @snapshot_every(METHOD_N)
    def step(self, k: int) -> None:
        _step(self, k)


@dataclass
class Shadow:
    counter: int = 0
    items: list[int] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)
    blob: str = ""

    def step(self, k: int) -> None:
        _step(self, k)


def _step(o: Any, k: int) -> None:
    o.counter += k
    o.items.append(k)
    if len(o.items) > 300:
        del o.items[:100]
    o.tags[f"t{k % 40}"] = k


def plain(o: Any) -> dict[str, Any]:
    return {"counter": o.counter, "items": list(o.items), "tags": dict(o.tags), "blob": o.blob}


class Log:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, line: str) -> None:
        os.write(self.fd, (line + "\n").encode())
        os.fsync(self.fd)


class Child:
    def __init__(self, directory: str, log_path: str, keep: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.log = Log(log_path)
        self.expected: dict[int, str] = {}
        child = self

        class LoggingStore(SnapStore):
            """Logs B before and C after each commit: the parent's view of what is durable."""

            def _commit(self, state_json: bytes, seq: int, **kw: Any) -> Any:
                h = canon_hash(json.loads(state_json))
                if child.expected.get(seq) != h:
                    child.fail(f"seq {seq}: the library is writing state {h}, the shadow had "
                               f"{child.expected.get(seq)} at that seq")
                child.log.write(f"B {seq} {h}")
                info = super()._commit(state_json, seq, **kw)
                child.log.write(f"C {seq} {h}")
                return info

        self.obj = Thing.open(LoggingStore(directory, keep=keep))
        self.shadow = Shadow(**json.loads(json.dumps(plain(self.obj))))
        seq = self.obj.snapshot_seq
        self.expected[seq] = canon_hash(plain(self.shadow))
        self.log.write(f"S {seq} {self.expected[seq]}")

    def fail(self, message: str) -> None:
        self.log.write("X " + message.replace("\n", " "))
        os._exit(3)

    # -- one counted mutation, applied to the shadow first ---------------------------------
    def mutate(self) -> None:
        rng = self.rng
        kind = rng.choice(["counter", "append", "tag", "blob", "step", "step", "batch", "delete"])
        k = rng.randrange(1000)
        size = rng.choice([10, 100, 1000, 20_000, 150_000])
        blob = f"{k}:" + "x" * size
        n = rng.randrange(1, 5)

        def apply(o: Any, batch: Any = None) -> None:
            if kind == "counter":
                o.counter += 1
            elif kind == "append":
                o.items.append(k)
            elif kind == "tag":
                o.tags[f"k{k % 60}"] = k
            elif kind == "blob":
                o.blob = blob
            elif kind == "step":
                o.step(k)
            elif kind == "delete":
                del o.items[: n]
            else:  # several mutations counted as one
                with batch() if batch is not None else _null():
                    for i in range(n):
                        o.counter += i
                        o.items.append(i)

        seq = self.obj.snapshot_seq + 1
        apply(self.shadow)
        self.expected[seq] = canon_hash(plain(self.shadow))
        apply(self.obj, self.obj.snapshot_batch)
        if self.obj.snapshot_seq != seq:
            self.fail(f"op {kind} took the seq to {self.obj.snapshot_seq}, expected {seq}")
        if plain(self.obj) != plain(self.shadow):
            self.fail(f"op {kind}: the object and its shadow differ")
        if len(self.expected) > 64:  # only recent seqs can still be written
            for s in sorted(self.expected)[:-32]:
                del self.expected[s]

    def run_sync(self, ops: int) -> None:
        for _ in range(ops):
            self.mutate()
            if self.rng.random() < 0.15:
                before = self.obj.snapshot_seq
                if self.obj.snapshot() != before:
                    self.fail("snapshot() returned another seq than snapshot_seq")
            if os.getppid() == 1:  # the parent died: do not linger
                return

    async def run_async(self, ops: int) -> None:
        for _ in range(ops):
            self.mutate()
            if self.rng.random() < 0.15:
                before = self.obj.snapshot_seq
                # Sometimes keep mutating while the write runs in its thread (the state was
                # captured when asnapshot() started; automatic snapshots due meanwhile wait for it).
                task = asyncio.ensure_future(self.obj.asnapshot())
                await asyncio.sleep(0)
                for _ in range(self.rng.choice([0, 0, 1, 3, 6])):
                    self.mutate()
                    await asyncio.sleep(0)
                if await task != before:
                    self.fail("asnapshot() returned another seq than snapshot_seq")
            if self.rng.random() < 0.3:
                await asyncio.sleep(0)
            if os.getppid() == 1:
                return


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def sabotage(kind: str) -> None:
    """Break the library on purpose, to show the parent's checks catch it (negative controls)."""
    from snapmixin import fsio

    if kind == "inplace":  # write snapshot.json in place, in small pieces: no temp file, no rename
        def inplace(ops: Any, directory: str, name: str, data: bytes, *, durable: bool = True) -> None:
            fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                for i in range(0, len(data), 512):
                    os.write(fd, data[i:i + 512])
            finally:
                os.close(fd)

        fsio.atomic_write = inplace  # type: ignore[assignment]
    elif kind == "lie":  # log a state other than the one written
        real = SnapStore._commit

        def lying(self: SnapStore, state_json: bytes, seq: int, **kw: Any) -> Any:
            value = json.loads(state_json)
            value["counter"] += 1
            return real(self, json.dumps(value).encode(), seq, **kw)

        SnapStore._commit = lying  # type: ignore[method-assign]
    elif kind:
        raise ValueError(f"unknown sabotage {kind!r}")


def main(directory: str, log_path: str, keep: int, seed: int, mode: str, ready_fd: int,
         sabotage_kind: str = "") -> None:
    """Run a child; write one byte to ``ready_fd`` once the object is open."""
    sabotage(sabotage_kind)
    try:
        child = Child(directory, log_path, keep, seed)
    except BaseException as e:  # the directory did not restore: the parent reports it
        Log(log_path).write(f"X open failed: {type(e).__name__}: {e}")
        os._exit(4)
    if ready_fd >= 0:
        try:
            os.write(ready_fd, b"r")
        except BrokenPipeError:
            pass  # the parent did not wait (it kills us at a random moment anyway)
        os.close(ready_fd)
    try:
        if mode == "async":
            asyncio.run(child.run_async(1_000_000))
        else:
            child.run_sync(1_000_000)
    except BaseException as e:
        child.fail(f"{type(e).__name__}: {e}")
    os._exit(0)


if __name__ == "__main__":  # python -m tests._torture_child DIR LOG KEEP SEED MODE READY_FD
    d, lp, kp, sd, md, rfd = sys.argv[1:7]
    main(d, lp, int(kp), int(sd), md, int(rfd), *sys.argv[7:8])

