"""SIGKILL torture run (issue 6, part 1): ``python -m tests.torture --rounds N``.

Each round starts a child process (``tests/_torture_child.py``) that opens a
``Snapshottable`` object from a store directory and mutates it for ever, with
automatic snapshots (class-level and method-level ``@snapshot_every``, some
inside a mutation, some at the end of a ``snapshot_batch``) and explicit ones
(``snapshot()``, or ``asnapshot()`` under asyncio). Once the child says it is
ready the parent waits a random moment (0 to ``--max-delay`` seconds: the
delay only chooses *where* the kill lands) and sends SIGKILL. Then it checks
the directory. A series of rounds shares one directory (each child continues
from what the previous one left); every ``--series`` rounds a new directory
starts with another ``keep`` (1 to 3).

What the parent checks, from the child's side log (see the child's module doc
for its lines ``S``, ``B``, ``C``, ``X``):

1. ``restore()`` succeeds (no ``CorruptSnapshot``, no fallback needed), typed
   and untyped, and every generation in ``history/`` verifies (checksum).
2. The seq never goes back: not below the previous round's restored seq, and
   not below the last ``C`` line (a commit that returned is durable).
3. The restored (seq, hash) is exactly:
   - the last ``C`` entry, or the ``S`` entry when the child committed nothing; or
   - the in-flight commit: the last ``B`` entry, when no ``C`` follows it.
   Nothing else. Why this is the complete set: the child commits one snapshot
   at a time (the store's lock serialises writers; the child is the only one;
   ``asnapshot`` is awaited before the next), it writes and fsyncs ``B`` *before*
   the store is touched and ``C`` after ``create`` returned. So at the moment of
   the kill, at most one commit is in flight (its ``B`` logged, its ``C`` not),
   and the commit protocol allows exactly two outcomes for it: the rename of
   ``snapshot.json`` happened (the new state) or not (the last committed one).
   A kill between ``create`` returning and ``C`` being written shows up as the
   ``B`` outcome, which is allowed. Each ``B``'s hash was checked by the child
   against its shadow model, so "the state the child had at that seq" is the
   hash on the line.
4. The child itself found no inconsistency (no ``X`` line; it checks after each
   operation that the object's seq and state agree with the shadow model) and
   died of our SIGKILL, not of an error.
5. The lock does not outlive its holder: each next child opens the store and
   writes with ``lock_timeout=0``; a lock left behind would fail it.

Kills are SIGKILL of a running process: page-cache contents survive, so this
exercises the ordering of the protocol's steps and the process-death paths
(temp files left behind, lock release). Power loss is modelled separately by
``tests/test_crash.py`` (replay of every un-fsynced prefix).

Children are forked from the parent by default (fast: the CI short form gets
more rounds); ``--exec`` starts each as a fresh ``python -m tests._torture_child``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from snapmixin import SnapStore
from snapmixin.errors import SnapshotNotFound
from snapmixin.fsio import is_temp_name
from tests import _torture_child as child_mod


@dataclass
class Stats:
    rounds: int = 0
    commits_logged: int = 0          # C lines seen
    restored_committed: int = 0      # restored state = last C (or S)
    restored_in_flight: int = 0      # restored state = the in-flight B
    in_flight_rolled_back: int = 0   # a B was in flight and the old state came back
    temps_left: int = 0              # temp files found after a kill (cleaned by the next writer)
    killed_opening: int = 0          # kills that landed before the child had opened the store
    max_seq: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.rounds} rounds, {self.commits_logged} commits logged, kills landing with a commit "
                f"in flight: {self.restored_in_flight + self.in_flight_rolled_back} "
                f"({self.restored_in_flight} new state, {self.in_flight_rolled_back} old state), "
                f"kills while opening: {self.killed_opening}, "
                f"temp files left by kills: {self.temps_left}, final seq {self.max_seq}, "
                f"failures: {len(self.failures)}")


def parse_log(path: Path) -> list[tuple[str, int, str]]:
    """(kind, seq, hash-or-message) per complete line."""
    out: list[tuple[str, int, str]] = []
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # a line cut by the kill (cannot happen with one write(), but be safe)
        parts = line.rstrip("\n").split(" ", 2)
        if parts[0] == "X":
            out.append(("X", -1, line[2:].rstrip("\n")))
        elif len(parts) == 3 and parts[0] in ("S", "B", "C"):
            out.append((parts[0], int(parts[1]), parts[2]))
    return out


def start_child(directory: Path, log: Path, keep: int, seed: int, mode: str, use_exec: bool,
                sabotage: str = "") -> tuple[int, int, subprocess.Popen[bytes] | None]:
    """Start a child; return (pid, read end of its ready pipe, Popen when exec'd)."""
    r, w = os.pipe()
    if use_exec:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests._torture_child", str(directory), str(log), str(keep),
             str(seed), mode, str(w), sabotage],
            pass_fds=(w,), cwd=Path(__file__).resolve().parent.parent)
        os.close(w)
        return proc.pid, r, proc
    pid = os.fork()
    if pid == 0:  # the child: never returns into the parent's code (pytest, the loop)
        try:
            os.close(r)
            child_mod.main(str(directory), str(log), keep, seed, mode, w, sabotage)
        finally:
            os._exit(5)
    os.close(w)
    return pid, r, None


def wait_ready(r: int, timeout: float) -> bool:
    import select

    ready, _, _ = select.select([r], [], [], timeout)
    ok = bool(ready) and os.read(r, 1) == b"r"
    os.close(r)
    return ok


def reap(pid: int, proc: subprocess.Popen[bytes] | None) -> int:
    if proc is not None:
        return proc.wait()
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def check_round(store: SnapStore, log: Path, prev: tuple[int, str] | None, stats: Stats,
                where: str) -> tuple[int, str] | None:
    """Check the directory after a kill; return the restored (seq, hash) (see the module doc).

    ``prev`` is what the previous round of this series restored (None: nothing
    was ever committed in this directory, so "no snapshot" is the committed state).
    """
    entries = parse_log(log)
    fail = stats.failures.append
    for kind, _, msg in entries:
        if kind == "X":
            fail(f"{where}: the child reported: {msg}")
    starts = [e for e in entries if e[0] == "S"]
    try:
        state, seq = store.restore()
    except SnapshotNotFound:
        if prev is not None:
            fail(f"{where}: the snapshot is gone")
            return prev
        state, seq = child_mod.plain(child_mod.Thing()), 0
    except Exception as e:
        fail(f"{where}: restore() failed: {type(e).__name__}: {e}")
        return prev
    else:
        try:
            typed, tseq = store.restore(child_mod.Thing)
            if tseq != seq or child_mod.plain(typed) != state:
                fail(f"{where}: typed restore differs from the plain one")
        except Exception as e:
            fail(f"{where}: typed restore failed: {type(e).__name__}: {e}")
        # snapshot.seq is derived: restore() repairs it (no writer is running now)
        seqfile = store.path / "snapshot.seq"
        if not seqfile.is_file() or seqfile.read_bytes() != f"{seq}\n".encode():
            fail(f"{where}: snapshot.seq not repaired by restore(): "
                 f"{seqfile.read_bytes() if seqfile.is_file() else None!r}, seq {seq}")
    h = child_mod.canon_hash(state)
    stats.max_seq = max(stats.max_seq, seq)
    # The last committed state, and the commit in flight (a B with no C after it).
    fresh_state = (0, child_mod.canon_hash(child_mod.plain(child_mod.Thing())))
    if starts:
        committed = starts[-1][1:]
        if committed != (prev or fresh_state):
            fail(f"{where}: the child opened {committed}, the parent had restored {prev}")
    else:  # killed before it had opened the store (a kill during open, restore and repair)
        stats.killed_opening += 1
        committed = prev or fresh_state
    prev_seq = prev[0] if prev is not None else 0
    in_flight: tuple[int, str] | None = None
    for kind, s, hh in entries:
        if kind == "B":
            in_flight = (s, hh)
        elif kind == "C":
            stats.commits_logged += 1
            if in_flight != (s, hh):
                fail(f"{where}: C {s} without its B")
            committed, in_flight = (s, hh), None
    if seq < prev_seq:
        fail(f"{where}: seq went back: {seq} after {prev_seq}")
    if seq < committed[0]:
        fail(f"{where}: seq {seq} is below the last durable commit {committed[0]}")
    if (seq, h) == committed:
        stats.restored_committed += 1
        if in_flight is not None:
            stats.in_flight_rolled_back += 1
    elif in_flight is not None and (seq, h) == in_flight:
        stats.restored_in_flight += 1
    else:
        fail(f"{where}: restored (seq {seq}, {h}) is neither the last commit {committed} "
             f"nor the one in flight {in_flight}")
    # Every kept generation verifies.
    for info in store.history():
        try:
            store._read(str(info.path), verify=True)
        except Exception as e:
            fail(f"{where}: history generation {info.path.name} does not verify: {e}")
    if os.path.isdir(store.path):
        stats.temps_left += sum(1 for n in os.listdir(store.path) if is_temp_name(n))
    return (seq, h) if store.exists() else prev


def run(rounds: int | None = None, *, seconds: float | None = None, seed: int | None = None,
        max_delay: float = 0.06, series: int = 25, root: Path | None = None, use_exec: bool = False,
        verbose: bool = False, sabotage: str = "", early_kills: float = 0.1) -> Stats:
    """Run the torture; stop after ``rounds`` rounds or ``seconds`` seconds, whichever first."""
    if rounds is None and seconds is None:
        raise ValueError("give rounds, seconds or both")
    seed = seed if seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    stats = Stats()
    own_root = root is None
    base = Path(tempfile.mkdtemp(prefix="snapmixin-torture-")) if root is None else root
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    directory = base
    store = SnapStore(base)
    prev: tuple[int, str] | None = None
    try:
        while (rounds is None or stats.rounds < rounds) and (
                seconds is None or time.monotonic() - t0 < seconds):
            i = stats.rounds
            if i % series == 0:
                keep = rng.randint(1, 3)
                directory = base / f"series-{i // series:04d}-keep{keep}"
                store = SnapStore(directory, keep=keep)
                prev = None
            log = base / f"round-{i:06d}.log"
            mode = rng.choice(["sync", "async"])
            child_seed = rng.randrange(2**32)
            where = f"round {i} (seed {seed}, child seed {child_seed}, {mode}, {directory.name})"
            pid, r, proc = start_child(directory, log, store.keep, child_seed, mode, use_exec, sabotage)
            early = rng.random() < early_kills
            if early:  # kill it while it opens the store (restore, seq repair), not waiting for it
                os.close(r)
                time.sleep(rng.uniform(0, 0.01))
            elif not wait_ready(r, 60.0):
                os.kill(pid, signal.SIGKILL)
                reap(pid, proc)
                stats.failures.append(f"{where}: the child did not open the store: "
                                      + "; ".join(m for k, _, m in parse_log(log) if k == "X"))
                stats.rounds += 1
                continue
            else:
                time.sleep(rng.uniform(0, max_delay))  # chooses where the kill lands
            os.kill(pid, signal.SIGKILL)
            status = reap(pid, proc)
            if status != -signal.SIGKILL:
                stats.failures.append(f"{where}: the child exited with {status} before the kill")
            prev = check_round(store, log, prev, stats, where)
            log.unlink(missing_ok=True)
            stats.rounds += 1
            if verbose and stats.rounds % 50 == 0:
                print(f"  {stats.summary()}", flush=True)
    finally:
        if own_root:
            shutil.rmtree(base, ignore_errors=True)
    return stats


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if any(a == "--writers" or a.startswith("--writers=") for a in args):
        # several writer processes sharing one directory: tests/multi_torture.py (issue 10)
        from tests import multi_torture

        return multi_torture.main(args)
    ap = argparse.ArgumentParser(prog="python -m tests.torture", description=__doc__.split("\n")[0],
                                 epilog="With --writers N (and the options of python -m tests.multi_torture "
                                        "--help): the multi-writer torture instead.")
    ap.add_argument("--rounds", type=int, default=None, help="rounds to run (default 200)")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long")
    ap.add_argument("--seed", type=int, default=None, help="replay a run")
    ap.add_argument("--max-delay", type=float, default=0.06, help="kill within this many seconds")
    ap.add_argument("--series", type=int, default=25, help="rounds sharing one directory")
    ap.add_argument("--exec", dest="use_exec", action="store_true", help="exec each child (slower)")
    ap.add_argument("--dir", type=Path, default=None, help="work here (kept) instead of a temp dir")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--sabotage", choices=["inplace", "lie"], default="",
                    help="break the library on purpose: the run must then report failures")
    a = ap.parse_args(args)
    rounds = a.rounds if a.rounds is not None or a.seconds is not None else 200
    seed = a.seed if a.seed is not None else random.randrange(2**32)
    print(f"torture: seed {seed}", flush=True)
    t0 = time.monotonic()
    stats = run(rounds, seconds=a.seconds, seed=seed, max_delay=a.max_delay, series=a.series,
                root=a.dir, use_exec=a.use_exec, verbose=True, sabotage=a.sabotage)
    elapsed = time.monotonic() - t0
    for f in stats.failures[:50]:
        print("FAIL", f)
    print(f"torture: {stats.summary()} in {elapsed:.1f} s")
    if a.json:
        print(json.dumps({"seed": seed, "seconds": round(elapsed, 1), **{
            k: v for k, v in stats.__dict__.items() if k != "failures"}, "failures": len(stats.failures)}))
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
