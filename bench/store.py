#!/usr/bin/env python3
"""SnapStore.create()/restore() against the file-system floor, and the codec against its peers.

    python bench/store.py               # full run (about 45 s)
    python bench/store.py --quick       # fewer repetitions (CI, a quick look)
    python bench/store.py --breakdown   # also print where create() and restore() spend their time
    python bench/store.py --dir PATH    # put the temp directories on another file system

Prints Markdown tables. Method (what the floor is, which statistic, what is
excluded) in bench/README.md. This script measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import importlib
import json
import os
import pickle
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

# Measure this checkout, not whatever snapmixin happens to be installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bounds import read_checked
from _env import code_version, cpu_model

import snapmixin
import snapmixin.store as _store_mod
import snapmixin.store.format as _fmt_mod
from snapmixin import Snapshottable, SnapStore, snapshot_every
from snapmixin import codec as _codec
from snapmixin import fsio as _fsio
from snapmixin.codec import json as _codec_json
from snapmixin.codec import native as _codec_native

# ---------------------------------------------------------------------------
# The state: a nested dataclass with the field types a real application has.
# ---------------------------------------------------------------------------


@dataclass
class Inner:
    x: int
    label: str


@dataclass
class Item:
    name: str
    count: int
    score: float
    tags: list[str]
    when: dt.datetime
    inner: Inner
    note: str | None = None


@dataclass
class State:
    items: list[Item]


T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def make_item(i: int, *, nulls: bool = False) -> Item:
    return Item(
        name=f"item-{i:06d}",
        count=i,
        score=i * 0.25 + 0.1,
        tags=[f"tag{i % 7}", "red", "blue"],
        when=T0 + dt.timedelta(seconds=i),
        inner=Inner(x=i * 3, label=f"inner {i}"),
        note=None if nulls and i % 2 else f"note {i}",
    )


def make_state(n: int, *, nulls: bool = False) -> State:
    return State(items=[make_item(i, nulls=nulls) for i in range(n)])


def state_of_size(target_bytes: int, *, nulls: bool = False) -> State:
    """A state whose compact JSON just reaches ``target_bytes``."""
    n = 1
    while True:
        state = make_state(n, nulls=nulls)
        got = len(msgspec.json.encode(state))
        if got >= target_bytes:
            return state
        n = max(n + 1, int(n * target_bytes / got) + 1)


# ---------------------------------------------------------------------------
# The same shapes for dataclasses-json (it needs its mixin on every class).
# ---------------------------------------------------------------------------

try:
    from dataclasses_json import DataClassJsonMixin
except ImportError:  # pragma: no cover - optional peer
    DataClassJsonMixin = None

if DataClassJsonMixin is not None:

    @dataclass
    class DjInner(DataClassJsonMixin):
        x: int
        label: str

    @dataclass
    class DjItem(DataClassJsonMixin):
        name: str
        count: int
        score: float
        tags: list[str]
        when: dt.datetime
        inner: DjInner
        note: str | None = None

    @dataclass
    class DjState(DataClassJsonMixin):
        items: list[DjItem]

    def to_dj(state: State) -> Any:
        return DjState(items=[DjItem(it.name, it.count, it.score, list(it.tags), it.when,
                                     DjInner(it.inner.x, it.inner.label), it.note) for it in state.items])


# ---------------------------------------------------------------------------
# The floor: encode, then exactly the file steps a durable atomic write needs.
# ---------------------------------------------------------------------------

_FULLFSYNC = getattr(__import__("fcntl"), "F_FULLFSYNC", None) if os.name == "posix" else None


def _flush(fd: int) -> None:
    """fsync, or F_FULLFSYNC on macOS: the same flush snapmixin uses."""
    if _FULLFSYNC is not None and sys.platform == "darwin":
        import fcntl

        fcntl.fcntl(fd, _FULLFSYNC)
    else:
        os.fsync(fd)


def _flush_dir(directory: str) -> None:
    """The directory fsync after the rename (POSIX: a directory cannot be opened on Windows)."""
    if os.name == "posix":
        dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            _flush(dfd)
        finally:
            os.close(dfd)


def floor_write(directory: str, data: bytes) -> None:
    """Temp file in the same directory, full write, fsync, rename, directory fsync; nothing else."""
    floor_write_bufs(directory, [data])


def read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Collect, then keep the cyclic GC off while timing (as timeit does)."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def interleaved(fns: dict[str, Callable[[], object]], reps: int, *,
                block: int = 1) -> dict[str, list[float]]:
    """Time each function ``reps`` times (seconds per call), rotating their order every round so
    that load from other processes falls on all of them alike.

    With ``block > 1`` each function runs ``block + 1`` times in a row per round and the first
    call is dropped: an fsync commits the file system's whole journal, so a call's first fsync
    also pays for what the function before it left unsynced (``snapshot.seq``, atime updates).
    Dropping it charges each function with its own steady-state cost.
    """
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    rounds = -(-reps // block)
    with no_gc():  # collect once: a collection per round would leave its first call with cold caches
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                out[name].extend(timed_block(fns[name], block))
    return out


def timed_block(fn: Callable[[], object], block: int) -> list[float]:
    """Seconds per call of ``fn``: once (``block`` 1), or ``block + 1`` times in a row with the
    first call dropped (see :func:`interleaved`). Each result is freed outside the timed region."""
    xs = []
    for i in range(block + 1 if block > 1 else 1):
        t = time.perf_counter()
        result = fn()
        dt_ = time.perf_counter() - t
        del result
        if block == 1 or i > 0:
            xs.append(dt_)
    return xs


def ms(xs: list[float]) -> str:
    return f"{min(xs) * 1e3:.3g} ({statistics.median(xs) * 1e3:.3g})"


def ms_min(xs: list[float]) -> str:
    return f"{min(xs) * 1e3:.3g}"


def ratio(a: list[float], b: list[float]) -> str:
    return f"{min(a) / min(b):.2f}x ({statistics.median(a) / statistics.median(b):.2f}x)"


def size(n: int) -> str:
    if n < 10_000:
        return f"{n / 1000:.2f} KB" if n >= 1000 else f"{n} B"
    if n < 1_000_000:
        return f"{n / 1000:.0f} KB"
    return f"{n / 1e6:.1f} MB"


def verdict(value: float, limit: float) -> str:
    return f"<= {limit:g}x: **met**" if value <= limit else f"<= {limit:g}x: **missed**"




def fs_type(path: str) -> str:
    """The file system holding ``path`` (Linux: from /proc/mounts), for the record."""
    try:
        best, kind = "", "?"
        real = os.path.realpath(path)
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                mnt = parts[1]
                if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best):
                    best, kind = mnt, parts[2]
        return kind
    except OSError:
        return "?"




def header(args: argparse.Namespace, where: str) -> None:
    print(f"snapmixin {snapmixin.__version__} bench/store.py, {dt.date.today().isoformat()}, "
          f"CPython {platform.python_version()}, msgspec {msgspec.__version__}, {platform.system()} "
          f"{platform.release()}, CPU: {cpu_model()} ({os.cpu_count()} logical), "
          f"temp dirs on {fs_type(where)} ({where}){', --quick' if args.quick else ''}")
    print(f"Code measured: {code_version()}; load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()


# ---------------------------------------------------------------------------
# Table 1 (issue 13): every store row against its floor, paired and interleaved
# ---------------------------------------------------------------------------


def paired(a: Callable[[], object], b: Callable[[], object], rounds: int, *,
           block: int = 1) -> tuple[list[float], list[float], list[float]]:
    """Time ``a`` (the subject) and ``b`` (its floor) next to each other, ``rounds`` times, the
    order swapped every round (A B, B A, ...): seconds per call of each, and the per-round ratios.

    With ``block > 1`` each runs ``block + 1`` times in a row per round, the first call dropped
    (an fsync commits the file system's whole journal: a call's first fsync would also pay for
    what the other function left unsynced), and the round's figure is the median of the rest.
    """
    ta: list[float] = []
    tb: list[float] = []
    ratios: list[float] = []

    def run(fn: Callable[[], object]) -> float:
        return statistics.median(timed_block(fn, block))

    with no_gc():
        for r in range(rounds):
            if r % 2 == 0:
                x, y = run(a), run(b)
            else:
                y, x = run(b), run(a)
            ta.append(x)
            tb.append(y)
            ratios.append(x / y)
    return ta, tb, ratios


def fmt_time(xs: list[float]) -> str:
    """Median (min-max) of seconds, in a unit that fits."""
    med, lo, hi = statistics.median(xs), min(xs), max(xs)
    unit, k = ("ms", 1e3) if med >= 1e-3 else ("us", 1e6)
    return f"{med * k:.3g} {unit} ({lo * k:.3g}-{hi * k:.3g})"


def fmt_ratio(rs: list[float]) -> str:
    return f"{statistics.median(rs):.2f}x ({min(rs):.2f}x-{max(rs):.2f}x)"


def pretty_floor_bytes(state: State) -> bytes:
    """The floor's bytes: the state as pretty JSON (indent 2), as snapshot.json holds it."""
    return msgspec.json.format(msgspec.json.encode(state), indent=2)


def tmpfs_root(args: argparse.Namespace) -> str | None:
    """A directory on tmpfs (no fsync latency) for the CPU rows, or None when there is none."""
    for cand in ([args.tmpfs] if args.tmpfs else ["/dev/shm"]):
        if cand and os.path.isdir(cand) and fs_type(cand) in ("tmpfs", "ramfs"):
            return cand
    return None


class Rows:
    """The table being built: one line per row, and what was measured under it."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.notes: list[str] = []

    def add(self, row: str, subject: str, floor: str, ta: list[float], tb: list[float],
            ratios: list[float], limit: float | None) -> None:
        med = statistics.median(ratios)
        target = "" if limit is None else f"<= {limit:g}x: {'**met**' if med <= limit else '**missed**'}"
        self.lines.append(f"| {row} | {subject}: {fmt_time(ta)} | {floor}: {fmt_time(tb)} "
                          f"| {fmt_ratio(ratios)} | {target} |")
        print(f"  {row}: {fmt_ratio(ratios)}", file=sys.stderr)


def create_rows(rows: Rows, root: str, shm: str | None, quick: bool, big: bool) -> None:
    """create(): 1 KB on tmpfs and on the disk, keep=10 vs keep=1, 10 MB and 100 MB."""
    small = state_of_size(1_000)
    rounds_small = 15 if quick else 41
    for where, label in ((shm, "tmpfs"), (root, fs_type(root))):
        if where is None:
            rows.notes.append("no tmpfs here (`--tmpfs DIR` names one): the tmpfs rows are left out")
            continue
        d = tempfile.mkdtemp(prefix="create-", dir=where)
        try:
            store1 = SnapStore(os.path.join(d, "k1"))
            store10 = SnapStore(os.path.join(d, "k10"), keep=10)
            fdir = os.path.join(d, "floor")
            os.mkdir(fdir)
            seq1, seq10 = iter(range(1, 1 << 40)), iter(range(1, 1 << 40))

            def c1(s: SnapStore = store1, q: Iterator[int] = seq1) -> object:
                return s.create(small, next(q))

            def c10(s: SnapStore = store10, q: Iterator[int] = seq10) -> object:
                return s.create(small, next(q))

            def floor(fd: str = fdir) -> None:
                floor_write(fd, pretty_floor_bytes(small))

            least_dir = os.path.join(d, "least")
            os.mkdir(least_dir)
            seq_least = iter(range(1, 1 << 40))

            def least(ld: str = least_dir, q: Iterator[int] = seq_least) -> None:
                protocol_least(ld, small, next(q))

            least10_dir = os.path.join(d, "least10")
            os.makedirs(os.path.join(least10_dir, "history"))
            seq_least10 = iter(range(1, 1 << 40))

            def least10(ld: str = least10_dir, q: Iterator[int] = seq_least10) -> None:
                protocol_least(ld, small, next(q), keep=10)

            for _ in range(12):  # history/ full, caches warm
                c1(), c10(), floor(), least(), least10()
            if len(os.listdir(os.path.join(least10_dir, "history"))) != 9:
                print("WARNING: the by-hand keep=10 did not keep 9 generations", file=sys.stderr)
            if SnapStore(least_dir).restore(State)[1] != 12:  # the by-hand file is a valid snapshot
                print("WARNING: the by-hand commit did not restore", file=sys.stderr)
            ta, tb, r = paired(c1, floor, rounds_small, block=5)
            rows.add(f"`create()` ~1 KB, {label}", "`create()`", "floor", ta, tb, r,
                     2.0 if label == "tmpfs" else None)
            ta, tb, r = paired(least, floor, rounds_small, block=5)
            rows.add(f"lower bound, by hand, ~1 KB, {label} (reference, no target): a version 2 "
                     "envelope written as the floor writes, plus the lock, the read of the current "
                     "generation's trailer and the seq file rewrite, in one deferral of SIGINT's "
                     "handler", "by hand", "floor", ta, tb, r, None)
            ta, tb, r = paired(c10, c1, rounds_small, block=5)
            rows.add(f"`create()` ~1 KB, keep=10, {label}", "keep=10", "keep=1", ta, tb, r, 1.2)
            ta, tb, r = paired(least10, least, rounds_small, block=5)
            rows.add(f"lower bound, by hand, ~1 KB, keep=10, {label} (reference, no target): the by-hand "
                     "commit above plus the current generation linked into `history/`, `history/` "
                     "fsynced before the rename, then listed and its oldest unlinked",
                     "by hand, keep=10", "by hand, keep=1", ta, tb, r, None)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    for target, n_rounds in ((10_000_000, 5 if quick else 9), (100_000_000, 3 if quick else 5)):
        if target > 10_000_000 and not big:
            continue
        state = state_of_size(target)
        d = tempfile.mkdtemp(prefix="create-big-", dir=root)
        try:
            store = SnapStore(os.path.join(d, "s"), max_size=None)
            fdir = os.path.join(d, "floor")
            os.mkdir(fdir)
            seq = iter(range(1, 1 << 40))

            def cb(s: SnapStore = store, st: State = state, q: Iterator[int] = seq) -> object:
                return s.create(st, next(q))

            def fb(fd: str = fdir, st: State = state) -> None:
                floor_write(fd, pretty_floor_bytes(st))

            ldir = os.path.join(d, "least")
            os.mkdir(ldir)

            def lb(ld: str = ldir, st: State = state) -> None:
                format_floor_write_overlapped(ld, st, 1)

            cb(), fb(), lb()
            if SnapStore(ldir).restore(State)[1] != 1:  # the by-hand file is a valid snapshot
                print("WARNING: the by-hand envelope did not restore", file=sys.stderr)
            ta, tb, r = paired(cb, fb, n_rounds, block=1 if target > 10_000_000 else 2)
            rows.add(f"`create()` {size(len(msgspec.json.encode(state)))}", "`create()`", "floor",
                     ta, tb, r, 1.1)
            ta, tb, r = paired(lb, fb, n_rounds, block=1 if target > 10_000_000 else 2)
            rows.add(f"lower bound, by hand, {size(len(msgspec.json.encode(state)))} (reference, no "
                     "target): a version 2 envelope (one format pass, SHA-256 of every byte before the "
                     "trailer, in a thread while the body is written) written as the floor writes",
                     "by hand", "floor", ta, tb, r, None)
        finally:
            shutil.rmtree(d, ignore_errors=True)
            del state
            gc.collect()


def restore_rows(rows: Rows, root: str, quick: bool, big: bool) -> None:
    """restore(State) against reading the floor's file and a typed decode, by size."""
    sizes = [(1_000, 2.0, 41), (100_000, 1.3, 21), (10_000_000, 1.3, 7)]
    if big:
        sizes.append((100_000_000, 1.3, 3))
    for target, limit, n_rounds in sizes:
        if quick:
            n_rounds = max(3, n_rounds // 3)
        state = state_of_size(target)
        d = tempfile.mkdtemp(prefix="restore-", dir=root)
        try:
            store = SnapStore(os.path.join(d, "s"), max_size=None)
            store.create(state, 1)
            fdir = os.path.join(d, "floor")
            os.mkdir(fdir)
            floor_write(fdir, pretty_floor_bytes(state))
            fpath = os.path.join(fdir, "snapshot.json")
            got, _ = store.restore(State)
            if got != state:
                print(f"WARNING: restore() of {size(target)} did not return the state saved", file=sys.stderr)
            # The check's copy is not kept alive while timing: a second decoded state in the heap
            # (at 10 MB, objects never part of either side) slowed restore() by about 18% and the
            # floor by about 6% (restore also allocates the strict mirror, which then takes fresh
            # memory), so the row measured the leftover more than either side.
            del got

            def rs(s: SnapStore = store) -> object:
                return s.restore(State)

            def rf(p: str = fpath) -> object:
                return msgspec.json.decode(read_file(p), type=State)

            spath = os.path.join(d, "s", "snapshot.json")
            if restore_least(spath) != state:
                print(f"WARNING: the by-hand restore of {size(target)} did not return the state saved",
                      file=sys.stderr)

            def rl(p: str = spath) -> object:
                return restore_least(p)

            block = 5 if target <= 100_000 else 1
            ta, tb, r = paired(rs, rf, n_rounds, block=block)
            label = size(len(msgspec.json.encode(state)))
            rows.add(f"`restore(State)` {label}", "`restore()`", "floor", ta, tb, r, limit)
            ta, tb, r = paired(rl, rf, n_rounds, block=block)
            rows.add(f"lower bound, by hand, {label} (reference, no target): read, SHA-256 of every "
                     "byte before the trailer, a strict decode (Structs with `forbid_unknown_fields` "
                     "mirroring `State`), the checksum compared, `msgspec.convert` into `State`",
                     "by hand", "floor", ta, tb, r, None)
        finally:
            shutil.rmtree(d, ignore_errors=True)
            del state
            gc.collect()


def peak(fn: Callable[[], object]) -> int:
    """Bytes of the peak Python allocation while ``fn`` runs (tracemalloc), its result freed after."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        top = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return top - base


def memory_rows(root: str) -> list[str]:
    """Peak memory of create() / restore(State) of ~10 MB, as multiples of the compact JSON."""
    state = state_of_size(10_000_000)
    compact = len(msgspec.json.encode(state))
    d = tempfile.mkdtemp(prefix="memory-", dir=root)
    try:
        store = SnapStore(os.path.join(d, "s"))
        fdir = os.path.join(d, "floor")
        os.mkdir(fdir)
        store.create(state, 1)
        floor_write(fdir, pretty_floor_bytes(state))
        seq = iter(range(2, 1 << 40))
        fpath = os.path.join(fdir, "snapshot.json")
        pc = min(peak(lambda: store.create(state, next(seq))) for _ in range(2))
        fc = min(peak(lambda: floor_write(fdir, pretty_floor_bytes(state))) for _ in range(2))
        pr = min(peak(lambda: store.restore(State)) for _ in range(2))
        fr = min(peak(lambda: msgspec.json.decode(read_file(fpath), type=State)) for _ in range(2))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    out = []
    for op, mine, floor, what in (("`create()`", pc, fc, "encode + `json.format(indent=2)` + write"),
                                  ("`restore(State)`", pr, fr, "read the pretty file + typed decode")):
        rel = mine / floor
        out.append(f"| {op} ~10 MB | {mine / compact:.2f}x | {what}: {floor / compact:.2f}x | {rel:.2f}x "
                   f"| <= 1.2x: {'**met**' if rel <= 1.2 else '**missed**'} |")
    return out


@snapshot_every(1000)
@dataclass
class Counter(Snapshottable):
    """The mutation row's object: saved by its policy every 1,000 assignments."""

    n: int = 0
    items: list[int] = dataclasses.field(default_factory=list)


@dataclass
class PlainCounter:
    """The same fields, untracked (the floor pickles it every 1,000 assignments)."""

    n: int = 0
    items: list[int] = dataclasses.field(default_factory=list)


def mutation_row(rows: Rows, root: str, quick: bool) -> None:
    """1,000,000 mutations with a save every 1,000: a Snapshottable with @snapshot_every(1000)
    against a plain dataclass that pickles itself and writes the file atomically every 1,000."""
    total = 200_000 if quick else 1_000_000
    d = tempfile.mkdtemp(prefix="mutations-", dir=root)
    try:
        pdir = os.path.join(d, "plain")
        os.mkdir(pdir)
        k = iter(range(1 << 40))

        def snap() -> None:
            o = Counter.open(os.path.join(d, f"snap{next(k)}"))
            for i in range(total):
                o.n = i
            o.snapshot()

        def plain() -> None:
            o = PlainCounter()
            for i in range(total):
                o.n = i
                if i % 1000 == 999:
                    floor_write(pdir, pickle.dumps(o, protocol=pickle.HIGHEST_PROTOCOL))

        snap(), plain()
        ta, tb, r = paired(snap, plain, 3 if quick else 5)
        rows.add(f"{total:,} assignments, a save every 1,000", "`@snapshot_every(1000)`",
                 "dataclass + pickle + atomic write every 1,000", ta, tb, r, 1.8)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def bench_store(args: argparse.Namespace, root: str) -> list[str]:
    rows = Rows()
    shm = tmpfs_root(args)
    print("store rows...", file=sys.stderr)
    create_rows(rows, root, shm, args.quick, not args.no_big)
    restore_rows(rows, root, args.quick, not args.no_big)
    mutation_row(rows, root, args.quick)
    mem = memory_rows(root)
    return [
        "### Store rows of issue 13: each against its floor, paired and interleaved",
        "",
        "| row | snapmixin: median (min-max) | floor: median (min-max) | ratio: median (min-max) of the "
        "paired rounds | target |",
        "|---|--:|--:|--:|---|",
        *rows.lines,
        "",
        "Floor of `create()`: `msgspec.json.encode(state)`, `msgspec.json.format(indent=2)` (the same "
        "pretty JSON snapshot.json holds), write to a temp file in the same directory, fsync, rename "
        "over the target, fsync the directory. Floor of `restore()`: read that file, "
        "`msgspec.json.decode(data, type=State)`. keep=10 is compared with keep=1 (same state, same "
        "file system). The mutation row: a `Snapshottable` with `@snapshot_every(1000)` bound to a "
        "directory against a plain dataclass that pickles itself and writes the floor's file steps every "
        "1,000 assignments. Each round times the subject and its floor next to each other (A B, then "
        "B A); ratios are per round. Cyclic GC off while timing.",
        *(f"- {n}" for n in rows.notes),
        "",
        "#### Peak memory (tracemalloc), as a multiple of the state's compact JSON",
        "",
        "| operation | snapmixin | floor | snapmixin / floor | target |",
        "|---|--:|--:|--:|---|",
        *mem,
    ]


# ---------------------------------------------------------------------------
# Table 2: the codec against its peers, 10,000 items
# ---------------------------------------------------------------------------


def _asdict_encode(state: State) -> bytes:
    def default(o: object) -> str:
        if isinstance(o, dt.datetime):
            return o.isoformat()
        raise TypeError(type(o).__name__)

    return json.dumps(dataclasses.asdict(state), default=default, separators=(",", ":")).encode()


def _asdict_decode(data: bytes) -> State:
    raw = json.loads(data)
    return State(items=[
        Item(name=d["name"], count=d["count"], score=d["score"], tags=list(d["tags"]),
             when=dt.datetime.fromisoformat(d["when"]), inner=Inner(**d["inner"]), note=d["note"])
        for d in raw["items"]
    ])


def bench_codec(root: str, n_items: int, reps: int) -> list[str]:
    state = make_state(n_items)
    nulls = make_state(n_items, nulls=True)
    scratch = tempfile.mkdtemp(prefix="codec-", dir=root)
    store = SnapStore(os.path.join(scratch, "unused"))  # encode() touches no disk
    snap_codec = store.codec_for(State)

    # name -> (encode, decode-from-bytes, bytes-for-decode)
    peers: list[tuple[str, Callable[[], bytes], Callable[[bytes], object]]] = [
        ("snapmixin codec (`store.encode` / `codec.decode(data, State)`)",
         lambda: store.encode(state), lambda b: snap_codec.decode(b, State)),
        ("raw msgspec (`msgspec.json.encode` / `decode(type=State)`)",
         lambda: msgspec.json.encode(state), lambda b: msgspec.json.decode(b, type=State)),
        ("`dataclasses.asdict` + `json.dumps` / `json.loads` + constructors",
         lambda: _asdict_encode(state), _asdict_decode),
    ]
    if DataClassJsonMixin is not None:
        dj = to_dj(state)
        peers.append(("dataclasses-json (`to_json` / `from_json`)",
                      lambda: dj.to_json().encode(), DjState.from_json))
    try:
        import pydantic

        ta = pydantic.TypeAdapter(State)
        peers.append((f"pydantic {pydantic.VERSION} `TypeAdapter(State)` (`dump_json` / `validate_json`)",
                      lambda: ta.dump_json(state), ta.validate_json))
    except ImportError:  # pragma: no cover - optional peer
        pass
    peers.append(("pickle (binary, not JSON)",
                  lambda: pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), pickle.loads))
    peers.append(("snapmixin codec, half the `note`s None",
                  lambda: store.encode(nulls), lambda b: snap_codec.decode(b, State)))
    peers.append(("raw msgspec, half the `note`s None",
                  lambda: msgspec.json.encode(nulls), lambda b: msgspec.json.decode(b, type=State)))

    data = {name: enc() for name, enc, _ in peers}
    slow: set[str] = set()
    for name, enc, dec in peers:  # warm up, check every peer reads back what it wrote, spot slow ones
        t = time.perf_counter()
        enc()
        back = dec(data[name])
        if time.perf_counter() - t > 0.3:
            slow.add(name)
        if isinstance(back, State) and back != (nulls if "None" in name else state):
            print(f"WARNING: {name}: decode did not return the encoded state", file=sys.stderr)
    slow_reps = max(3, reps // 3)
    te: dict[str, list[float]] = {}
    td: dict[str, list[float]] = {}
    for group, n in ((lambda k: k not in slow, reps), (lambda k: k in slow, slow_reps)):
        names = [name for name, _, _ in peers if group(name)]
        te.update(interleaved({k: enc for k, enc, _ in peers if k in names}, n))
        decs = {k: (lambda dec=dec, b=data[k]: dec(b)) for k, _, dec in peers if k in names}
        td.update(interleaved(decs, n))
    base_e = min(te[peers[1][0]])
    base_d = min(td[peers[1][0]])
    base_e_null = min(te[peers[-1][0]])
    base_d_null = min(td[peers[-1][0]])
    rows = []
    for name, _, _ in peers:
        be, bd = (base_e_null, base_d_null) if "None" in name else (base_e, base_d)
        re_, rd = min(te[name]) / be, min(td[name]) / bd
        target = ""
        if name.startswith("snapmixin"):
            target = f"enc {verdict(re_, 2)}, dec {verdict(rd, 2)}"
        rows.append(f"| {name} | {ms(te[name])} | {ms(td[name])} | {re_:.2f}x | {rd:.2f}x "
                    f"| {size(len(data[name]))} | {target} |")
    shutil.rmtree(scratch)
    return [
        f"### Encode / decode of a {n_items:,}-item nested dataclass state (ms: min of {reps} runs, "
        f"{slow_reps} for peers slower than 0.3 s a round trip; median in parentheses)",
        "",
        "| codec | encode | decode | encode / msgspec | decode / msgspec | output | target |",
        "|---|--:|--:|--:|--:|--:|---|",
        *rows,
        "",
        "Item: `str`, `int`, `float`, `list[str]`, aware `datetime`, a nested dataclass, `str | None`. "
        "Ratios: min over min, against raw msgspec on the same state (the last two rows against "
        "raw msgspec on the state with `None`s). Decode starts from the bytes each codec wrote. "
        "Cyclic GC off while timing.",
    ]


# ---------------------------------------------------------------------------
# Optional (--breakdown): where the time goes
# ---------------------------------------------------------------------------

_HEAD_TEMPLATE = (b'{"format":"snapmixin","format_version":2,"seq":%d,"schema_version":1,'
                  b'"created_at":"2024-05-01T12:00:00.000000Z","state":')


def format_floor_bufs(state: State, seq: int) -> list[bytes | memoryview]:
    """The cheapest bytes of a format-version-2 ``snapshot.json`` this bench knows how to make:
    one encode, one ``msgspec.json.format`` pass over the whole envelope, SHA-256 of every byte
    but the closing brace (no copy), and the checksum trailer appended (two buffers)."""
    pretty = msgspec.json.format(_HEAD_TEMPLATE % seq + msgspec.json.encode(state) + b"}", indent=2)
    body = memoryview(pretty)[:-2]
    digest = hashlib.sha256(body).hexdigest().encode()
    return [body, b',\n  "checksum": "sha256:' + digest + b'"\n}\n']


def floor_write_bufs(directory: str, bufs: list[bytes | memoryview], name: str = "snapshot.json") -> None:
    """:func:`floor_write` for a list of buffers, written one after the other."""
    tmp = os.path.join(directory, f".{name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        for b in bufs:
            view = memoryview(b)
            while view:
                view = view[os.write(fd, view):]
        _flush(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(directory, name))
    _flush_dir(directory)


class _Envelope(msgspec.Struct):
    """A version 2 envelope's members before the trailer, in their order (see format_floor_bufs)."""

    format: str
    format_version: int
    seq: int
    schema_version: int
    created_at: str
    state: Any


def format_floor_write_overlapped(directory: str, state: State, seq: int) -> None:
    """The floor's file steps for a version 2 envelope of ``state``, its SHA-256 made in a thread
    while the body is written (hashlib lets go of the GIL), the trailer written once it is done:
    what a writer of format version 2 has to do at the least on two cores."""
    # The envelope in one encode (no concatenation of the state's JSON with the header: a copy)
    envelope = _Envelope("snapmixin", 2, seq, 1, "2024-05-01T12:00:00.000000Z", state)
    pretty = msgspec.json.format(msgspec.json.encode(envelope), indent=2)
    body = memoryview(pretty)[:-2]
    digest: list[bytes] = []
    worker = threading.Thread(target=lambda: digest.append(hashlib.sha256(body).hexdigest().encode()))
    worker.start()
    tmp = os.path.join(directory, ".snapshot.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = body
        while view:
            view = view[os.write(fd, view):]
        worker.join()
        os.write(fd, b',\n  "checksum": "sha256:' + digest[0] + b'"\n}\n')
        _flush(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(directory, "snapshot.json"))
    _flush_dir(directory)


class _InnerStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    x: int
    label: str


class _ItemStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    name: str
    count: int
    score: float
    tags: list[str]
    when: dt.datetime
    inner: _InnerStrict
    note: str | None = None


class _StateStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    items: list[_ItemStrict]


class _EnvelopeStrict(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A whole version 2 file, unknown keys refused at every level (the checksum included)."""

    format: str
    format_version: int
    seq: int
    schema_version: int
    created_at: str
    state: _StateStrict
    checksum: str


def restore_least(path: str) -> State:
    """The least a typed restore that keeps the guarantees does, written out by hand with
    msgspec's public API: read the file, SHA-256 of every byte before the trailer (in a thread
    while the state is decoded from 1 MiB, as ``restore()`` does), a strict decode (Structs
    mirroring ``State`` with ``forbid_unknown_fields``: msgspec refuses unknown keys only for
    Structs), the checksum compared, then ``msgspec.convert`` into ``State``. Left out, though
    ``restore()`` does them: the header's checks, the seq file, any Python logic."""
    env = read_checked(path, _EnvelopeStrict)
    return msgspec.convert(env.state, State, from_attributes=True)


def protocol_least(directory: str, state: State, seq: int, keep: int = 1) -> None:
    """The least a commit of a version 2 snapshot into a directory shared by writers does, written
    out by hand: the floor's file steps for the envelope (:func:`format_floor_bufs`), and besides
    them only what the guarantees need on every write: the lock (``.lock`` opened, flock, checked
    to be the file at that name, released), the current generation's trailer read (a stale
    writer's check), and ``snapshot.seq`` rewritten in place; all of it inside one deferral of
    SIGINT's handler (a Ctrl-C between the lock file's open and the statement that holds its
    descriptor would leak the descriptor and, with it, the lock: Python code can close that
    window only by keeping the handler from running there). Left out, though ``create()`` does
    them: other signals' handlers, the NaN scan, the temp-file sweep, the mode check, the seq
    rules, any Python logic.

    ``keep > 1``: also what keeping generations needs at the least: the current one linked
    into ``history/`` and ``history/`` fsynced before the rename, then ``history/`` listed (other
    writers and hands add and remove names) and the oldest beyond ``keep - 1`` unlinked."""
    import fcntl

    noted: list[int] = []
    sigint = _SIGNAL_C.SIGINT
    handler = _SIGNAL_C.signal(sigint, lambda signum, frame: noted.append(signum))
    try:
        _protocol_least_locked(directory, state, seq, fcntl, keep)
    finally:
        _SIGNAL_C.signal(sigint, handler)
    if noted and callable(handler):
        handler(sigint, None)


# The C module under `signal` (as fsio uses it): `signal.signal` wraps each call in enum
# conversions that cost about 3 us a call, ten times the system call.
try:
    _SIGNAL_C: Any = importlib.import_module("_signal")
except ImportError:  # pragma: no cover - not CPython
    import signal as _SIGNAL_C


def _protocol_least_locked(directory: str, state: State, seq: int, fcntl: Any, keep: int) -> None:
    lock_path = os.path.join(directory, ".lock")
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.lstat(lock_path).st_ino != os.fstat(lock).st_ino:
            raise RuntimeError("lock file replaced")
        target = os.path.join(directory, "snapshot.json")
        try:
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            pass
        else:
            try:
                n = os.fstat(fd).st_size
                os.pread(fd, 92, max(n - 92, 0))
            finally:
                os.close(fd)
            if keep > 1:
                hist = os.path.join(directory, "history")
                os.link(target, os.path.join(hist, f"snapshot-{seq - 1:020d}.json"))
                _flush_dir(hist)
        floor_write_bufs(directory, format_floor_bufs(state, seq))
        seq_path = os.path.join(directory, "snapshot.seq")
        fd = os.open(seq_path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            os.pwrite(fd, b"%d\n" % seq, 0)
        finally:
            os.close(fd)
        if keep > 1:
            hist = os.path.join(directory, "history")
            for name in sorted(os.listdir(hist), reverse=True)[keep - 1:]:
                os.unlink(os.path.join(hist, name))
        fcntl.flock(lock, fcntl.LOCK_UN)
    finally:
        os.close(lock)


def bench_ladder(root: str, cases: list[tuple[str, State, int]]) -> list[str]:
    """From the floor to create(), one ingredient at a time, interleaved."""
    now = dt.datetime.now(dt.timezone.utc)
    labels = [
        "L0 floor: `msgspec.json.encode` + file steps",
        "L1 format floor: envelope made in one `json.format` pass + SHA-256 + file steps",
        "L2 snapmixin's bytes (`store.encode` + `format.encode_v2_parts`) + the floor's file steps",
        "L3 same bytes through `fsio.atomic_write` (random temp name, lstat, fchmod)",
        "L4 L3 + `snapshot.seq` rewritten in place (`FileOps.rewrite`, as `create()` does)",
        "L5 `SnapStore.create()` (adds lock, temp cleanup, the current generation's trailer, prune)",
    ]
    cells: dict[str, list[str]] = {lab: [] for lab in labels}
    for _, state, reps in cases:
        d = tempfile.mkdtemp(prefix="ladder-", dir=root)
        dirs = [os.path.join(d, f"l{i}") for i in range(len(labels))]
        for x in dirs:
            os.mkdir(x)
        store = SnapStore(dirs[5])
        seq = iter(range(1, 1 << 30))

        def l2_bytes(state: State = state, store: SnapStore = store) -> _fmt_mod.Encoded:
            return _fmt_mod.encode_v2_parts(store.encode(state), 1, 1, now)

        def l4(d: str = dirs[4], state: State = state, store: SnapStore = store) -> None:
            _fsio.atomic_write(_fsio.REAL, d, "snapshot.json", l2_bytes(state, store))
            try:
                _fsio.REAL.rewrite(os.path.join(d, "snapshot.seq"), b"1\n")
            except FileNotFoundError:
                _fsio.atomic_write(_fsio.REAL, d, "snapshot.seq", b"1\n", durable=False)

        fns: dict[str, Callable[[], object]] = {
            labels[0]: lambda d=dirs[0], state=state: floor_write(d, msgspec.json.encode(state)),
            labels[1]: lambda d=dirs[1], state=state: floor_write_bufs(d, format_floor_bufs(state, 1)),
            labels[2]: lambda d=dirs[2], state=state, store=store: floor_write_bufs(
                d, list(l2_bytes(state, store))),
            labels[3]: lambda d=dirs[3], state=state, store=store: _fsio.atomic_write(
                _fsio.REAL, d, "snapshot.json", l2_bytes(state, store)),
            labels[4]: l4,
            labels[5]: lambda state=state, store=store, seq=seq: store.create(state, next(seq)),
        }
        for fn in fns.values():
            fn()
        # The format floor must write a file snapmixin accepts, or it is not a floor of this format.
        try:
            got, _ = SnapStore(dirs[1]).restore(State)
            if got != state:
                raise ValueError("different state")
        except Exception as e:
            print(f"WARNING: the format floor's file does not restore: {e}", file=sys.stderr)
        t = interleaved(fns, reps, block=5 if reps >= 10 else 3)
        prev: list[float] | None = None
        for lab in labels:
            delta = "" if prev is None else f", {(min(t[lab]) - min(prev)) * 1e3:+.3g}"
            cells[lab].append(f"{ms(t[lab])}{delta}")
            prev = t[lab]
        shutil.rmtree(d)
    reps_note = ", ".join(f"{r} runs for {lab}" for lab, _, r in cases)
    return [
        f"### From the floor to `create()`, one ingredient at a time (ms: min ({reps_note}), median in "
        "parentheses, then the change of the min from the row above)",
        "",
        "| step | " + " | ".join(c[0] for c in cases) + " |",
        "|---|" + "--:|" * len(cases),
        *(f"| {lab} | " + " | ".join(cells[lab]) + " |" for lab in labels),
        "",
        "L1 is the least any writer of format version 2 has to do (pretty JSON, indent 2, checksum of "
        "every byte before the trailer); it writes a file `SnapStore.restore()` accepts (checked).",
    ]


class TimingOps(_fsio.FileOps):
    """The real file system, with the time spent in each primitive added up."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.calls: dict[str, int] = {}


def _timed_method(name: str) -> Callable[..., Any]:
    real = getattr(_fsio.FileOps, name)

    def wrapper(self: TimingOps, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(self, *a, **k)
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - t
            self.calls[name] = self.calls.get(name, 0) + 1

    return wrapper


for _name in ("makedirs", "listdir", "lstat", "fsync_dir", "open_tmp", "write", "fsync", "close", "replace",
              "link", "unlink", "open_read", "fstat", "read", "read_at", "rewrite", "dir_id", "lock",
              "unlock"):
    if hasattr(_fsio.FileOps, _name):
        setattr(TimingOps, _name, _timed_method(_name))


@contextlib.contextmanager
def patched(obj: Any, name: str, spent: dict[str, float], key: str) -> Iterator[None]:
    if name == "!checksum":  # a property of format.Encoded: time the wait for the digest
        prop = _fmt_mod.Encoded.checksum
        fget = prop.fget
        assert fget is not None

        def timed(self: Any) -> Any:
            t = time.perf_counter()
            try:
                return fget(self)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t

        setattr(_fmt_mod.Encoded, "checksum", property(timed))  # noqa: B010
        try:
            yield
        finally:
            setattr(_fmt_mod.Encoded, "checksum", prop)  # noqa: B010
        return
    real = getattr(obj, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(*a, **k)
        finally:
            spent[key] = spent.get(key, 0.0) + time.perf_counter() - t

    setattr(obj, name, wrapper)
    try:
        yield
    finally:
        setattr(obj, name, real)


OTHER = "everything else (Python in the store, wrappers, scheduling)"
TOTAL = "**total**"


def bench_steps(root: str, cases: list[tuple[str, State, int]]) -> list[str]:
    """Median time per call of each step inside create() and restore(), via a timing FileOps."""
    tables: dict[str, dict[str, list[str]]] = {"create": {}, "restore": {}}
    order: dict[str, list[str]] = {"create": [], "restore": []}
    # op -> (row label, object to patch (None: the store), attribute), in display order
    wrapped: dict[str, list[tuple[str, Any, str]]] = {
        "create": [
            ("encode: `store._encode(state, deferred=True)` (the NaN scan deferred)", None, "_encode"),
            ("envelope: `format.encode_v2_parts()` (NaN scan, format; SHA-256 of a small body)",
             _fmt_mod, "encode_v2_parts"),
            ("... of which the NaN scan of the compact envelope (`json.refuse_nonfinite`)",
             _codec_native, "refuse_nonfinite"),
            ("... of which `codec.pretty` (`msgspec.json.format`)", _codec, "pretty"),
            ("waiting for the checksum (`Encoded.checksum`; large bodies hash in a thread)", None,
             "!checksum"),
        ],
        "restore": [
            ("... the short path of a file under 1 MiB (`_restore_small`: all of it, reads included)",
             None, "_restore_small"),
            ("`_parse_canonical` (files from 1 MiB): header, trailer, checksum", None, "_parse_canonical"),
            ("... of which SHA-256 of the file (`format.Digest`; from 1 MiB: started in a thread)",
             _fmt_mod.Digest, "__init__"),
            ("`_decode` (files from 1 MiB): the strict mirror, then State", None, "_decode"),
            ("... of which waiting for a large file's checksum (`ensure_intact`)",
             _store_mod._Generation, "ensure_intact"),
            # (one row: the short path calls it from its module, the general one by its own name)
            ("... of which building State from the strict mirror (`json.from_attributes`)",
             _codec_json, "from_attributes"),
            ("... of which building State from the strict mirror (`json.from_attributes`)",
             _codec_native, "from_attributes"),
        ],
    }
    for ci, (_, state, n) in enumerate(cases):
        d = tempfile.mkdtemp(prefix="steps-", dir=root)
        ops = TimingOps()
        store = SnapStore(os.path.join(d, "s"), fs=ops)
        store.create(state, 0)
        store.restore(State)
        for op in ("create", "restore"):
            spent: dict[str, float] = {}
            per_call: dict[str, list[float]] = {}
            calls: dict[str, set[int]] = {}
            with contextlib.ExitStack() as stack:
                for key, obj, name in wrapped[op]:
                    stack.enter_context(patched(obj if obj is not None else store, name, spent, key))
                stack.enter_context(no_gc())  # one collection before the loop: a full collection
                for i in range(n):  # per call would leave every call starting with cold caches
                    spent.clear()
                    ops.spent.clear()
                    ops.calls.clear()
                    t = time.perf_counter()
                    result = store.create(state, i + 1) if op == "create" else store.restore(State)
                    total = time.perf_counter() - t
                    del result
                    steps = dict(spent)
                    for name, v in ops.spent.items():
                        steps[f"fs.{name}"] = v
                        calls.setdefault(f"fs.{name}", set()).add(ops.calls[name])
                    outer = sum(v for k, v in spent.items() if not k.startswith("..."))
                    steps[OTHER] = max(total - outer - sum(ops.spent.values()), 0.0)
                    steps[TOTAL] = total
                    for k, v in steps.items():
                        per_call.setdefault(k, []).append(v)
            fixed = [k for k, _, _ in wrapped[op] if k in per_call]
            fs_keys = sorted((k for k in per_call if k.startswith("fs.")), key=lambda k: -min(per_call[k]))
            for k in [*fixed, *fs_keys, OTHER, TOTAL]:
                if k not in tables[op]:
                    tables[op][k] = ["-"] * len(cases)
                    order[op].append(k)
                n_calls = "/".join(str(c) for c in sorted(calls.get(k, ())))
                tables[op][k][ci] = f"{min(per_call[k]) * 1e3:.3g}" + (
                    f" (x{n_calls})" if n_calls else "")
        shutil.rmtree(d)
    for op in ("create", "restore"):  # the wrapped steps first, as listed (a step only one case
        # takes, e.g. restore's short path, would otherwise come after the first case's total)
        steps = list(dict.fromkeys(k for k, _, _ in wrapped[op] if k in tables[op]))
        rest = [k for k in order[op] if k not in steps and k not in (OTHER, TOTAL)]
        order[op] = [*steps, *rest, OTHER, TOTAL]
    reps_note = ", ".join(f"{r} calls for {lab}" for lab, _, r in cases)
    out = [f"### Inside `create()` and `restore()` (ms per call, min over {reps_note})", ""]
    for op in ("create", "restore"):
        out += [f"| `{op}()` step | " + " | ".join(c[0] for c in cases) + " |",
                "|---|" + "--:|" * len(cases)]
        out += [f"| {k} | " + " | ".join(tables[op][k]) + " |" for k in order[op]]
        out.append("")
    out.append("Timed by wrapping the store's `FileOps` layer (`SnapStore(fs=...)`) and a few internal "
               "functions (the wrappers add about a microsecond per call); `(xN)`: calls per operation. "
               "Each row is its own minimum over the calls, so the rows add up to a bit less than the "
               "total; \"everything else\" is the remainder of each call: Python in the store, the "
               "wrappers, and any wait for a CPU after an fsync.")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a few seconds)")
    p.add_argument("--breakdown", action="store_true", help="also time each step of create()/restore()")
    p.add_argument("--dir", default=None, help="where to make the temp directories (default: system temp)")
    p.add_argument("--items", type=int, default=10_000, help="items in the codec table's state")
    p.add_argument("--tmpfs", default=None, help="a tmpfs directory for the CPU rows (default: /dev/shm)")
    p.add_argument("--no-big", action="store_true", help="leave out the ~100 MB rows")
    p.add_argument("--only-store", action="store_true", help="the store rows only (no codec table)")
    args = p.parse_args()
    reps_small, reps_large, reps_codec = (10, 3, 3) if args.quick else (60, 12, 9)
    root = tempfile.mkdtemp(prefix="snapmixin-bench-", dir=args.dir)
    try:
        header(args, root)
        for line in bench_store(args, root):
            print(line)
        print()
        if not args.only_store:
            for line in bench_codec(root, args.items, reps_codec):
                print(line)
            print()
        print(f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if args.breakdown:
            small, large = state_of_size(1_000), state_of_size(10_000_000)
            cases = [("~1 KB", small, reps_small), ("~10 MB", large, reps_large)]
            for part in (bench_ladder, bench_steps):
                print()
                for line in part(root, cases):
                    print(line)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
