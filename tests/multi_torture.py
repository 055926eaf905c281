"""Multi-writer torture (issue 10): ``python -m tests.multi_torture --seconds S`` (or
``python -m tests.torture --writers N ...``).

Several processes (``--writers``, default 3), each with several writers in
threads (``Snapshottable`` objects saving with ``snapshot()`` or, every second
one, ``await asnapshot()``, and raw ``SnapStore`` writers using
``create(..., expect=<generation>)``, see ``tests/_multi_writer_child.py``),
share ONE store directory and commit in a loop; a writer that loses a race
gets ``SnapshotConflict``, reopens and continues. Meanwhile the parent, at
random moments:

- SIGKILLs a writer process and starts a new one in its place (a new
  incarnation, new ids);
- in a directory with history (``keep > 1``), rolls the directory back to a
  kept generation with the command line, ``snapmixin rollback DIR --seq N``
  (run in a forked process through ``snapmixin.cli.main``).

The run goes through series of ``--series-seconds`` each, one directory per
series, ``keep`` cycling through 1, 3 and 10000 (large enough that nothing is
ever pruned). At the end of a series every writer is killed and the directory
is checked:

1. ``restore()`` succeeds and ``snapmixin verify`` passes (every kept
   generation intact); no writer reported an error other than
   ``SnapshotConflict``/``SeqRegression``, none exited by itself;
2. **zero lost updates**: every commit a writer was told succeeded (its fsynced
   ``C`` line) is either
   a. still there: current or in ``history/`` (same seq, same state hash), or
   b. superseded by a later commit that saw it: its ids are in the current
      state or in a kept generation (every state carries the ids of every commit
      it descends from), or
   c. rolled away on purpose: a rollback (or a ``snapshot(force=True)``, which
      writers use now and then to answer a conflict) ended after it was
      committed, and the state it made current does not hold its ids;
3. with ``keep=10000`` (nothing pruned) the stronger form: every logged commit
   is still there (a.), rolled away or not: no generation is ever silently
   overwritten, not by a rollback or a forced snapshot either;
4. no kept generation lists an id twice (a commit is never applied twice).

A commit that returned but whose log line a kill prevented is simply not
checked (nobody was told). Kills are SIGKILL of running processes (page cache
survives): the crash-image side is ``tests/test_crash.py``'s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snapmixin import SnapStore
from tests import _multi_writer_child as child_mod

KEEPS = (1, 3, 10_000)


@dataclass
class Stats:
    rounds: int = 0            # series (one directory each)
    incarnations: int = 0      # writer processes started
    commits: int = 0           # C lines: commits writers were told succeeded
    conflicts: int = 0         # SnapshotConflict seen by writers
    regressions: int = 0       # SeqRegression seen by writers
    kills: int = 0             # SIGKILLs of writer processes mid-run (not counting the end of a series)
    rollbacks: int = 0         # rollbacks that committed
    forced: int = 0            # snapshot(force=True) commits (a rare answer to a conflict)
    rollbacks_refused: int = 0  # rollback command exited non-zero (e.g. the target was pruned meanwhile)
    kept_present: int = 0      # commits found as such (current or history)
    superseded: int = 0        # commits not kept but seen by a later kept commit
    rolled_away: int = 0       # commits deliberately rolled away (and pruned)
    lost_updates: int = 0
    failures: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # what the refused rollbacks said

    def summary(self) -> str:
        return (f"{self.rounds} rounds (directories), {self.incarnations} writer processes, "
                f"{self.commits} commits, {self.conflicts} conflicts, {self.regressions} seq regressions, "
                f"{self.kills} kills, {self.rollbacks} rollbacks ({self.rollbacks_refused} refused), "
                f"{self.forced} forced snapshots, "
                f"commits kept {self.kept_present} / superseded {self.superseded} / rolled away "
                f"{self.rolled_away}, lost updates: {self.lost_updates}, failures: {len(self.failures)}")

    def figures(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k not in ("failures", "refusals")}


@dataclass
class Rollback:
    t_end: float
    target_ids: frozenset[str]


@dataclass
class Slot:
    index: int
    incarnation: int = 0
    pid: int = 0
    log: Path | None = None


def start_writer(directory: Path, log: Path, keep: int, seed: int, name: str, n_mixin: int,
                 n_raw: int, sabotage: str = "") -> int:
    pid = os.fork()
    if pid == 0:
        try:
            child_mod.main(str(directory), str(log), keep, seed, name, n_mixin, n_raw, sabotage)
        finally:
            os._exit(5)
    return pid


def status_of(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def kill_and_reap(pid: int) -> int:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _, raw = os.waitpid(pid, 0)
    return status_of(raw)


def gen_state(path: Path) -> dict[str, Any] | None:
    """The state of a generation file, or None when it is gone (pruned meanwhile)."""
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    state = value.get("state") if isinstance(value, dict) else None
    return state if isinstance(state, dict) else None


def rollback(directory: Path, rng: random.Random, stats: Stats, attempts: int = 40) -> Rollback | None:
    """Roll back to a random kept generation with the CLI (in a forked process), as a user would:
    no ``--keep`` (the command keeps every generation). A writer committing while the command
    looks makes it refuse, and so does a target pruned meanwhile (keep=3): counted, not failures;
    like a user, try again (up to ``attempts`` times, choosing again)."""
    for _ in range(attempts):
        store = SnapStore(directory)
        hist = store.history()
        if len(hist) < 2:
            return None
        counts: dict[int, int] = {}
        for info in hist:
            counts[info.seq] = counts.get(info.seq, 0) + 1
        choices = [i for i in hist[1:] if counts[i.seq] == 1]  # --seq names one generation
        if not choices:
            return None
        target = rng.choice(choices)
        state = gen_state(target.path)
        if state is None:
            continue  # pruned meanwhile
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 9
            try:
                os.close(r)
                from snapmixin import cli

                out = io.StringIO()
                with redirect_stdout(out), redirect_stderr(out):
                    code = cli.main(["rollback", str(directory), "--seq", str(target.seq), "--wait", "60"])
                os.write(w, out.getvalue().encode()[-4000:])
            finally:
                os._exit(code)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            said = f.read().decode(errors="replace").strip()
        _, raw = os.waitpid(pid, 0)
        t_end = time.monotonic()
        code = status_of(raw)
        if code == 0:
            stats.rollbacks += 1
            return Rollback(t_end, frozenset(state.get("entries", [])))
        stats.rollbacks_refused += 1
        stats.refusals.append(f"rollback --seq {target.seq} exited {code}: {said}")
    return None


def read_logs(logs: list[Path], stats: Stats, where: str) -> list[dict[str, Any]]:
    commits: list[dict[str, Any]] = []
    for log in logs:
        text = log.read_text() if log.exists() else ""
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # cut by the kill
            rec = json.loads(line)
            kind = rec["k"]
            if kind == "C":
                commits.append(rec)
            elif kind == "K":
                stats.conflicts += 1
            elif kind == "R":
                stats.regressions += 1
            elif kind == "X":
                stats.failures.append(f"{where}: a writer reported: {rec['msg']}")
    return commits


def check_series(directory: Path, keep: int, commits: list[dict[str, Any]], rollbacks: list[Rollback],
                 stats: Stats, where: str) -> None:
    from snapmixin import cli

    fail = stats.failures.append
    store = SnapStore(directory, keep=keep)
    try:
        state, seq = store.restore()
    except Exception as e:
        fail(f"{where}: restore() failed: {type(e).__name__}: {e}")
        return
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        code = cli.main(["verify", str(directory)])
    if code != 0:
        fail(f"{where}: snapmixin verify exited {code}: {out.getvalue()[-2000:]}")
    kept: set[tuple[int, str]] = {(seq, child_mod.canon_hash(child_mod.plain(state)))}
    seen_ids: set[str] = set(state["entries"])
    if len(state["entries"]) != len(seen_ids):
        fail(f"{where}: the current state lists an id twice")
    for info in store.history():
        gs = gen_state(info.path)
        if gs is None:
            fail(f"{where}: {info.path} listed by history() but unreadable")
            continue
        kept.add((info.seq, child_mod.canon_hash(child_mod.plain(gs))))
        ids = gs["entries"]
        if len(ids) != len(set(ids)):
            fail(f"{where}: {info.path.name} lists an id twice")
        seen_ids.update(ids)
    stats.commits += len(commits)
    deliberate = list(rollbacks)  # what rolled commits away on purpose: rollbacks, forced snapshots
    for c in commits:
        if "force" in c:
            stats.forced += 1
            deliberate.append(Rollback(c["t"], frozenset(c["force"])))
    for c in commits:
        new = set(c["new"])
        if (c["seq"], c["h"]) in kept:
            stats.kept_present += 1
            continue
        if keep >= 10_000:
            stats.lost_updates += 1
            fail(f"{where}: keep={keep}: commit {c['w']} seq {c['seq']} ({c['h']}) is neither current "
                 "nor in history")
            continue
        if new <= seen_ids:
            stats.superseded += 1
        elif any(r.t_end > c["t"] and not new <= r.target_ids for r in deliberate):
            stats.rolled_away += 1
        else:
            stats.lost_updates += 1
            fail(f"{where}: lost update: commit {c['w']} seq {c['seq']} ids {sorted(new)} is not "
                 "kept, no kept generation holds its ids, and no rollback rolled it away")


def run_series(base: Path, index: int, keep: int, seconds: float, writers: int, rng: random.Random,
               stats: Stats, seed: int, *, n_mixin: int, n_raw: int, kill_rate: float,
               rollback_rate: float, sabotage: str = "") -> None:
    directory = base / f"series-{index:04d}-keep{keep}"
    where = f"series {index} (seed {seed}, keep={keep})"
    SnapStore(directory, keep=keep).create(child_mod.empty(), 0)  # every writer has a generation to expect
    slots = [Slot(i) for i in range(writers)]
    logs: list[Path] = []
    rollbacks: list[Rollback] = []

    def start(slot: Slot) -> None:
        slot.incarnation += 1
        name = f"p{slot.index}i{slot.incarnation}"
        slot.log = base / f"series-{index:04d}-{name}.log"
        logs.append(slot.log)
        slot.pid = start_writer(directory, slot.log, keep, rng.randrange(2**32), name, n_mixin, n_raw,
                                sabotage)
        stats.incarnations += 1

    for s in slots:
        start(s)
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        time.sleep(rng.uniform(0.02, 0.3))
        exited = False
        for s in slots:  # a writer that exits on its own failed (its X line says why): stop the series
            pid, raw = os.waitpid(s.pid, os.WNOHANG)
            if pid:
                stats.failures.append(f"{where}: writer {s.index} exited with {status_of(raw)}")
                s.pid = start_writer(directory, base / "unused.log", keep, 0, "dead", 0, 0)  # reaped below
                exited = True
        if exited:
            break
        r = rng.random()
        if r < kill_rate:
            s = rng.choice(slots)
            kill_and_reap(s.pid)
            stats.kills += 1
            start(s)
        elif r < kill_rate + rollback_rate and keep > 1:
            rb = rollback(directory, rng, stats)
            if rb is not None:
                rollbacks.append(rb)
    for s in slots:
        status = kill_and_reap(s.pid)
        if status != -signal.SIGKILL:
            stats.failures.append(f"{where}: writer {s.index} exited with {status} before the end")
    commits = read_logs(logs, stats, where)
    check_series(directory, keep, commits, rollbacks, stats, where)
    stats.rounds += 1


def run(seconds: float, *, writers: int = 3, seed: int | None = None, series_seconds: float = 10.0,
        root: Path | None = None, n_mixin: int = 2, n_raw: int = 1, kill_rate: float = 0.25,
        rollback_rate: float = 0.15, keeps: tuple[int, ...] = KEEPS, sabotage: str = "",
        verbose: bool = False) -> Stats:
    """Run series until ``seconds`` have passed (at least one series), ``keep`` cycling through ``keeps``.

    ``sabotage="blind"`` makes the raw writers write without a precondition (a
    negative control: the run must then report lost updates).
    """
    seed = seed if seed is not None else random.randrange(2**32)
    rng = random.Random(seed)
    stats = Stats()
    own_root = root is None
    base = Path(tempfile.mkdtemp(prefix="snapmixin-multi-")) if root is None else root
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    try:
        i = 0
        while i == 0 or time.monotonic() - t0 < seconds:
            keep = keeps[i % len(keeps)]
            left = seconds - (time.monotonic() - t0)
            run_series(base, i, keep, max(1.0, min(series_seconds, left)), writers, rng, stats, seed,
                       n_mixin=n_mixin, n_raw=n_raw, kill_rate=kill_rate, rollback_rate=rollback_rate,
                       sabotage=sabotage)
            i += 1
            if verbose:
                print(f"  {stats.summary()}", flush=True)
    finally:
        if own_root:
            shutil.rmtree(base, ignore_errors=True)
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.multi_torture", description=__doc__.split("\n")[0])
    ap.add_argument("--writers", type=int, default=3, help="writer processes sharing the directory")
    ap.add_argument("--objects", type=int, default=2, help="Snapshottable objects per process")
    ap.add_argument("--raw", type=int, default=1, help="raw SnapStore writers (expect=) per process")
    ap.add_argument("--seconds", type=float, default=60.0, help="total run time")
    ap.add_argument("--series-seconds", type=float, default=10.0, help="time per directory")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None, help="work here (kept) instead of a temp dir")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--sabotage", choices=["blind"], default="",
                    help="raw writers write without a precondition: the run must then report lost updates")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(2**32)
    print(f"multi-writer torture: seed {seed}, {a.writers} processes x ({a.objects} objects + {a.raw} raw "
          "writers)", flush=True)
    t0 = time.monotonic()
    stats = run(a.seconds, writers=a.writers, seed=seed, series_seconds=a.series_seconds, root=a.dir,
                n_mixin=a.objects, n_raw=a.raw, sabotage=a.sabotage, verbose=True)
    elapsed = time.monotonic() - t0
    for f in stats.failures[:50]:
        print("FAIL", f)
    for f in stats.refusals[:5]:
        print("refused:", f)
    print(f"multi-writer torture: {stats.summary()} in {elapsed:.1f} s")
    if a.json:
        print(json.dumps({"seed": seed, "seconds": round(elapsed, 1), **stats.figures(),
                          "failures": len(stats.failures)}))
    return 1 if stats.failures or stats.lost_updates else 0


if __name__ == "__main__":
    sys.exit(main())
