"""A writer process of the multi-writer torture run (``tests/multi_torture.py``).

One process holds several writers of ONE store directory, each in its own
thread: ``Snapshottable`` objects (``Ledger.open(store)``, saved with
``snapshot()``) and raw ``SnapStore`` writers (``create(state, seq,
expect=<generation>)``). Other processes do the same on the same directory,
the parent rolls the directory back now and then and SIGKILLs processes at
random moments.

The state makes lineage checkable: ``entries`` lists unique ids, one or more
added by every commit (``<writer>.<incarnation>.<object>.<n>``); a state
descends from every commit whose ids it contains. Writers never remove an id,
so the only legitimate ways for a committed id to leave the current lineage
are a rollback (the parent logs those) and a forced snapshot (logged as such).

Each writer loops: add ids, commit. On ``SnapshotConflict`` (another writer
committed since this one restored or last wrote; or a rollback happened) it
reopens (or, rarely, overwrites with ``snapshot(force=True)``) and continues:
the ids it had added but not committed are dropped, they were never reported
committed. After each commit *returned*, the writer
appends one line to the process's side log and fsyncs it, before doing
anything else: that line is the only "success" anyone is told. Lines (JSON):

- ``{"k": "C", "w", "seq", "h", "new", "gen", "t"}``: a commit returned: the
  writer, its seq, the SHA-256 (32 hex digits) of the canonical JSON of the
  state written, the ids that commit added, the generation token when the
  writer knows it (raw writers), and ``time.monotonic()`` after it returned;
  with ``"force": [ids]`` when it was a ``snapshot(force=True)`` (a rare answer
  to a conflict: a deliberate overwrite, like a rollback; the ids are its state's);
- ``{"k": "K", "w"}``: a SnapshotConflict (not fsynced: counts only);
- ``{"k": "R", "w"}``: a SeqRegression (counted; the writer reopens too);
- ``{"k": "X", "msg"}``: anything else: a failure of the run (exit 3).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from snapmixin import Snapshottable, SnapStore
from snapmixin.errors import SeqRegression, SnapshotConflict

LOCK_TIMEOUT = 60.0  # other processes hold the lock only while one write runs
FORCE_RATE = 0.01    # share of a Snapshottable's conflicts answered with snapshot(force=True)


def canon_hash(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Ledger(Snapshottable):
    entries: list[str] = field(default_factory=list)
    last: str = ""
    commits: int = 0


def plain(o: Any) -> dict[str, Any]:
    if isinstance(o, dict):
        return {"entries": list(o["entries"]), "last": o["last"], "commits": o["commits"]}
    return {"entries": list(o.entries), "last": o.last, "commits": o.commits}


def empty() -> dict[str, Any]:
    return {"entries": [], "last": "", "commits": 0}


def generation_of(info: Any) -> str | None:
    gen = getattr(info, "generation", None)
    return None if gen is None else str(gen)


class Log:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, record: dict[str, Any], durable: bool = True) -> None:
        os.write(self.fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        if durable:
            os.fsync(self.fd)


class Writer:
    """One writer of the shared directory (a thread of this process)."""

    def __init__(self, proc: Process, name: str, raw: bool, seed: int, use_asyncio: bool = False) -> None:
        self.proc, self.name, self.raw, self.asyncio = proc, name, raw, use_asyncio
        self.rng = random.Random(seed)
        self.n = 0

    def store(self) -> SnapStore:
        return SnapStore(self.proc.directory, keep=self.proc.keep, lock_timeout=LOCK_TIMEOUT)

    def fresh_ids(self) -> list[str]:
        out = []
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            self.n += 1
            out.append(f"{self.name}.{self.n}")
        return out

    def run(self) -> None:
        try:
            if self.raw:
                self.run_raw()
            elif self.asyncio:
                asyncio.run(self.run_mixin_async())
            else:
                self.run_mixin()
        except BaseException as e:  # reported to the parent
            self.proc.fail(f"{self.name}: {type(e).__name__}: {e}")

    def pause(self) -> None:
        if self.rng.random() < 0.3:
            time.sleep(self.rng.uniform(0, 0.004))

    # -- a Snapshottable object ---------------------------------------------------------------
    def mutate(self, obj: Ledger) -> tuple[list[str], dict[str, Any]]:
        """Add fresh ids (one counted mutation or several); return them and the state to commit."""
        new = self.fresh_ids()
        if self.rng.random() < 0.5:
            with obj.snapshot_batch():
                obj.entries.extend(new)
                obj.last = self.name
                obj.commits += 1
        else:
            for e in new:
                obj.entries.append(e)
            obj.last = self.name
            obj.commits += 1
        return new, plain(obj)

    def conflicted(self, obj: Ledger, state: dict[str, Any]) -> bool:
        """After a SnapshotConflict: True to force the snapshot (rarely), False to reopen."""
        self.proc.log.write({"k": "K", "w": self.name}, durable=False)
        if plain(obj) != state:
            self.proc.fail(f"{self.name}: SnapshotConflict changed the object's state")
        # Now and then, overwrite on purpose: what it replaces must stay in history.
        # (Not in the negative control: a forced snapshot excuses what it replaces.)
        return not self.proc.sabotage and self.rng.random() < FORCE_RATE

    def committed(self, seq: int, new: list[str], state: dict[str, Any], force: bool) -> None:
        rec: dict[str, Any] = {"k": "C", "w": self.name, "seq": seq, "h": canon_hash(state), "new": new,
                               "gen": None, "t": time.monotonic()}
        if force:  # the parent treats it like a rollback: what it replaced is not in its lineage
            rec["force"] = state["entries"]
        self.proc.log.write(rec)

    def run_mixin(self) -> None:
        obj = Ledger.open(self.store())
        while not self.proc.orphaned():
            new, state = self.mutate(obj)
            self.pause()
            force = False
            try:
                seq = obj.snapshot()
            except SnapshotConflict:
                if not self.conflicted(obj, state):
                    obj = Ledger.open(self.store())
                    continue
                force = True
                seq = obj.snapshot(force=True)
            except SeqRegression:
                self.proc.log.write({"k": "R", "w": self.name}, durable=False)
                obj = Ledger.open(self.store())
                continue
            self.committed(seq, new, state, force)

    async def run_mixin_async(self) -> None:
        """The same with ``await obj.asnapshot()`` (the write runs in a worker thread)."""
        obj = Ledger.open(self.store())
        while not self.proc.orphaned():
            new, state = self.mutate(obj)
            if self.rng.random() < 0.3:
                await asyncio.sleep(self.rng.uniform(0, 0.004))
            force = False
            try:
                seq = await obj.asnapshot()
            except SnapshotConflict:
                if not self.conflicted(obj, state):
                    obj = Ledger.open(self.store())
                    continue
                force = True
                seq = await obj.asnapshot(force=True)
            except SeqRegression:
                self.proc.log.write({"k": "R", "w": self.name}, durable=False)
                obj = Ledger.open(self.store())
                continue
            self.committed(seq, new, state, force)

    # -- a raw SnapStore writer with expect= -------------------------------------------------
    def run_raw(self) -> None:
        log = self.proc.log
        store = self.store()
        state, seq, gen = self.reopen(store)
        while not self.proc.orphaned():
            new = self.fresh_ids()
            nxt = {"entries": state["entries"] + new, "last": self.name, "commits": state["commits"] + 1}
            self.pause()
            try:
                if self.proc.sabotage == "blind":  # no precondition, a seq that always passes: a
                    # library without optimistic concurrency (the run must then report lost updates)
                    latest = store.latest()
                    info = store.create(nxt, max(seq, latest.seq if latest else 0) + 1)
                else:
                    info = store.create(nxt, seq + 1, expect=gen)
            except SnapshotConflict:
                log.write({"k": "K", "w": self.name}, durable=False)
                state, seq, gen = self.reopen(store)
                continue
            except SeqRegression:
                log.write({"k": "R", "w": self.name}, durable=False)
                state, seq, gen = self.reopen(store)
                continue
            gen = generation_of(info)
            log.write({"k": "C", "w": self.name, "seq": info.seq, "h": canon_hash(nxt), "new": new,
                       "gen": gen, "t": time.monotonic()})
            state, seq = nxt, info.seq

    def reopen(self, store: SnapStore) -> tuple[dict[str, Any], int, Any]:
        """The current (state, seq, generation); the generation is read first, so it is never newer
        than the state (a mismatch only makes the next create() a conflict, never a blind write)."""
        while True:
            info = store.latest()
            if info is None:
                raise AssertionError("the parent creates the first generation before any writer starts")
            state, seq = store.restore()
            if seq == info.seq:
                return plain(state), seq, getattr(info, "generation", None)


class Process:
    def __init__(self, directory: str, log_path: str, keep: int, sabotage: str = "") -> None:
        self.directory, self.keep, self.sabotage = directory, keep, sabotage
        self.log = Log(log_path)
        self.parent = os.getppid()

    def orphaned(self) -> bool:
        return os.getppid() != self.parent

    def fail(self, message: str) -> None:
        self.log.write({"k": "X", "msg": message.replace("\n", " ")})
        os._exit(3)


def main(directory: str, log_path: str, keep: int, seed: int, name: str, n_mixin: int, n_raw: int,
         sabotage: str = "") -> None:
    """Run the writers of one process until SIGKILL (or until the parent is gone).

    ``sabotage="blind"``: the raw writers write without a precondition (negative control).
    """
    proc = Process(directory, log_path, keep, sabotage)
    rng = random.Random(seed)
    # Snapshottable objects: every second one saves with asnapshot() in an event loop of its own.
    writers = [Writer(proc, f"{name}.m{i}", False, rng.randrange(2**32), use_asyncio=i % 2 == 1)
               for i in range(n_mixin)]
    writers += [Writer(proc, f"{name}.r{i}", True, rng.randrange(2**32)) for i in range(n_raw)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os._exit(0)


if __name__ == "__main__":  # python -m tests._multi_writer_child DIR LOG KEEP SEED NAME N_MIXIN N_RAW [SAB]
    d, lp, kp, sd, nm, nmx, nrw = sys.argv[1:8]
    main(d, lp, int(kp), int(sd), nm, int(nmx), int(nrw), *sys.argv[8:9])
