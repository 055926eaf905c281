"""The command line: ``python -m snapmixin`` (also installed as ``snapmixin``).

Commands::

    show DIR             the current snapshot: seq, schema version, time, size, checksum, first lines
    verify DIR           check every generation (current, history/, the seed's files); exit 1 if any is bad
    history DIR          the kept generations, newest first
    rehash DIR           accept a hand-edited snapshot.json (new checksum, same seq, no history added)
    rollback DIR --seq N make kept generation N the current one (the current one stays in history/;
                         --file NAME picks one of several kept generations of seq N)
    diff DIR             what changed between two kept generations (default: the previous and the
                         current), one line per JSON path; --from SEQ, --to SEQ

``show``, ``verify``, ``history`` and ``diff`` take ``--json``. Exit codes: 0 success,
1 a check failed or the directory is missing or damaged, 2 bad usage; ``diff``
follows diff(1): 0 no difference, 1 differences, 2 any error. Errors
go to stderr as one line naming the file concerned.

Only ``rehash`` and ``rollback`` write, through the store's commit protocol
(under the writer lock, durable, atomic); the other commands only read, and
never repair anything on the way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from . import __version__
from . import codec as _codec
from .diff import diff as _diff
from .errors import SeqRegression, SnapError, SnapshotConflict, SnapshotNotFound, StoreLocked
from .store import (
    FORMAT,
    FORMAT_VERSION,
    HISTORY,
    SEQFILE,
    SNAPSHOT,
    GenerationCheck,
    SnapStore,
)
from .store import format as _fmt
from .store.backend import NotAGeneration

__all__ = ["main"]

#: Lines of the state that ``show`` prints.
SHOW_LINES = 20
#: Default seconds ``rehash`` and ``rollback`` wait for a busy writer's lock.
DEFAULT_WAIT = 5.0


class _Failure(Exception):
    """A refusal of the command line itself (not a store error): printed, exit 1."""


# --------------------------------------------------------------------- checks
@dataclass
class _Check:
    """What one generation file holds and whether it is intact."""

    path: str
    current: bool
    seq: int | None = None
    schema_version: int | None = None
    created_at: datetime | None = None
    size: int | None = None
    checksum: str | None = None
    checksum_ok: bool | None = None
    layout: str | None = None
    error: str | None = None
    state: bytes | None = None  # raw JSON text of the state (never in --json output)

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_json(self) -> dict[str, Any]:
        return {
            "path": _text(self.path),
            "current": self.current,
            "layout": self.layout,
            "seq": self.seq,
            "schema_version": self.schema_version,
            "created_at": _iso(self.created_at),
            "size": self.size,
            "checksum": self.checksum,
            "checksum_ok": self.checksum_ok,
            "ok": self.ok,
            "error": None if self.error is None else _text(self.error),
        }


def _text(s: str) -> str:
    """``s`` printable as UTF-8: bytes of a file name that were not UTF-8 (held as lone
    surrogates) become ``\\xNN`` escapes."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else _fmt.iso_time(dt)


def _check_of(g: GenerationCheck) -> _Check:
    """The command line's view of one checked generation."""
    info = g.info
    if info is None:
        return _Check(path=str(g.path), current=g.current, seq=g.name_seq, error=g.error)
    error = g.error
    if g.checksum_ok is False:
        error = f"{g.path}: checksum mismatch: the snapshot was changed after it was written"
        if g.path.name == SNAPSHOT:
            error += f" (by hand?); to accept the edit, run: {_prog()} rehash {g.path.parent}"
    return _Check(path=str(g.path), current=g.current, seq=info.seq, schema_version=info.schema_version,
                  created_at=info.created_at, size=info.size, checksum=info.checksum,
                  checksum_ok=g.checksum_ok, layout=info.layout, error=error, state=g.state)


def _generations(store: SnapStore, *, current_only: bool = False) -> list[_Check]:
    """Check every generation of the directory, newest first; ``SnapshotNotFound`` when none."""
    return [_check_of(g) for g in store.check_generations(current_only=current_only)]


def _intact_hint(store: SnapStore, checks: Sequence[_Check]) -> str:
    """How to recover when the current generation is damaged, or ''."""
    for c in checks:
        if c.ok and not c.current:
            return (f"; the newest intact generation is {c.path} (seq {c.seq}): "
                    f"`{_prog()} rollback {store.path} --seq {c.seq}` makes it current")
    return ""


def _notes(store: SnapStore, checks: Sequence[_Check], out: TextIO) -> None:
    """Remarks that are not damage: a stale snapshot.seq, temp files of a crashed writer."""
    cur = checks[0] if checks else None
    ours = cur is not None and cur.layout is not None and cur.layout.startswith("snapmixin-")
    if cur is not None and cur.ok and ours and os.path.basename(cur.path) == SNAPSHOT:
        text = store.seq_file_text()
        if text != str(cur.seq):
            said = "is missing" if text is None else f"says {text!r}"
            print(f"note: {store.path / SEQFILE} {said} but {cur.path} holds seq {cur.seq} "
                  "(a derived copy; the next restore or write repairs it)", file=out)
    temps = store.temp_files()
    if temps:
        print(f"note: {len(temps)} temp file(s) left in {store.path} by an interrupted writer "
              "(removed by the next write): " + ", ".join(sorted(temps)), file=out)


# ------------------------------------------------------------------- commands
def _cmd_show(args: argparse.Namespace) -> int:
    store = SnapStore(args.dir)
    c = _generations(store, current_only=True)[0]
    if args.json:
        _print_json(c.as_json())
    elif c.layout is not None:  # readable, even if its checksum is wrong
        rows = [
            ("snapshot", c.path),
            ("layout", c.layout),
            ("seq", str(c.seq)),
            ("schema", str(c.schema_version)),
            ("created at", _iso(c.created_at) or "unknown (this layout does not record it)"),
            ("size", f"{c.size} bytes"),
            ("checksum", _checksum_status(c, long=True)),
        ]
        for k, v in rows:
            print(f"{k:<11} {v}")
        lines = _pretty_lines(c.state or b"null")
        n = min(len(lines), SHOW_LINES)
        print(f"state ({'all ' if n == len(lines) else 'first '}{n} of {len(lines)} lines):")
        for line in lines[:n]:
            print("  " + line)
        if len(lines) > n:
            print(f"  ... {len(lines) - n} more lines")
    if c.ok:
        return 0
    hint_text = _intact_hint(store, _generations(store)) if c.layout is None else ""
    _err(c.error + hint_text if c.error else "damaged")
    return 1


def _cmd_verify(args: argparse.Namespace) -> int:
    store = SnapStore(args.dir)
    checks = _generations(store)
    bad = [c for c in checks if not c.ok]
    if args.json:
        _print_json([c.as_json() for c in checks])
    else:
        for c in checks:
            if c.ok:
                what = "" if c.checksum_ok else f"  (no checksum: {c.layout} layout)"
                print(f"ok   seq {c.seq}  schema {c.schema_version}  {c.path}"
                      f"{' (current)' if c.current else ''}{what}")
            else:
                print(f"BAD  {c.error}")
        n = len(checks)
        print(f"{n} generation{'s' if n != 1 else ''} checked: {n - len(bad)} ok, {len(bad)} damaged")
    _notes(store, checks, sys.stderr if args.json else sys.stdout)
    if bad:
        if args.json:
            for c in bad:
                _err(c.error or "damaged")
        return 1
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    store = SnapStore(args.dir)
    try:
        checks = _generations(store)
    except SnapshotNotFound:
        if store.location_kind() != "dir":
            raise
        # An existing directory with no generation yet: an empty list, not an error.
        if args.json:
            _print_json([])
        else:
            print(f"no generations in {store.path} yet")
        return 0
    if args.json:
        _print_json([c.as_json() for c in checks])
    else:
        header = ("SEQ", "SCHEMA", "CREATED AT (UTC)", "SIZE", "CHECKSUM", "FILE")
        rows = [(
            "?" if c.seq is None else str(c.seq),
            "?" if c.schema_version is None else str(c.schema_version),
            _iso(c.created_at) or "-",
            "?" if c.size is None else str(c.size),
            _checksum_status(c, long=False),
            c.path + (" (current)" if c.current else ""),
        ) for c in checks]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        for r in [header, *rows]:
            cells = [r[i].rjust(widths[i]) if i in (0, 1, 3) else r[i].ljust(widths[i])
                     for i in range(len(widths))]
            print("  ".join([*cells, r[-1]]))
    bad = [c for c in checks if not c.ok]
    for c in bad:
        _err(c.error or "damaged")
    return 1 if bad else 0


def _cmd_rehash(args: argparse.Namespace) -> int:
    store = SnapStore(args.dir, lock_timeout=args.wait)
    path = os.fspath(store.path / SNAPSHOT)
    data = _read_snapshot(store, path)
    seq, schema_version, raw, _ = _parse_edited(data, path)
    if _intact(store, path):
        print(f"{path}: the checksum already matches the state (seq {seq}); nothing to do")
        return 0
    # Otherwise rewritten: a new checksum, and a header made whole (a damaged created_at,
    # a duplicate key...: the state and seq are kept, created_at becomes now).
    # Whitespace is normalized: the file is rewritten in the canonical layout.
    compact = _codec.compact(raw)
    # archive=False never adds a history generation, but the commit still prunes history/
    # down to the store's keep: a keep above the number kept means nothing is pruned.
    writer = SnapStore(args.dir, keep=len(store.history_files()) + 2, lock_timeout=args.wait)
    try:
        # No regression allowed: the seq is unchanged, so only a writer that committed
        # after we read the file (a higher seq) trips this, and its snapshot must not be lost.
        info = writer.commit_encoded(compact, seq, schema_version=schema_version, archive=False)
    except SeqRegression as e:
        # A regression can also come from the store's fallback seq (snapshot.seq, history/)
        # when the edit damaged the header. Accept it only if the file is still what we read.
        if _read_snapshot(store, path) != data:
            raise _Failure(f"{path}: the file changed while rehashing (another writer committed "
                           f"seq {e.stored}?); nothing was written: check it and run rehash again") from e
        info = writer.commit_encoded(compact, seq, schema_version=schema_version, archive=False,
                                     allow_regression=True)
    print(f"{path}: rehashed: seq {info.seq}, schema {info.schema_version}, checksum {info.checksum}; "
          "no history generation added")
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    store = SnapStore(args.dir, lock_timeout=args.wait)
    checks = store.check_generations()  # SnapshotNotFound when there is none
    candidates = [(os.fspath(g.path), g.name_seq) for g in checks]
    n = args.seq
    current, token = store.current()
    current_path = os.fspath(store.path / SNAPSHOT)
    present = store.location_kind(SNAPSHOT) is not None
    # The current generation, checked whole: a damaged one of seq n is repaired, not "nothing to do".
    cur = _check_of(store.check_file(current_path, current=True)) if present else None
    if cur is not None and cur.ok and cur.seq == n and args.file is None:
        print(f"{current_path}: seq {n} is already the current generation; nothing to do")
        return 0
    # The latest commit of that seq other than the current file (history is in commit order),
    # or the file named.
    name = os.path.basename(args.file) if args.file else None
    target = next((p for p, hint in candidates if hint == n and p != current_path
                   and (name is None or os.path.basename(p) == name)), None)
    if target is None:
        kept = [f"{current.seq} (current)"] if current is not None else []
        kept += [str(h) for h in dict.fromkeys(h for _, h in candidates if h is not None)
                 if current is None or h != current.seq]
        raise _Failure(f"{store.path}: no kept generation has seq {n}"
                       + (f" in a file named {name}" if name else "")
                       + (" other than the damaged current one" if cur is not None and cur.seq == n else "")
                       + "; kept: " + (", ".join(kept) if kept else "none"))
    c = _check_of(next(g for g in checks if os.fspath(g.path) == target))
    if not c.ok or c.state is None or c.schema_version is None:
        raise _Failure(f"cannot roll back to seq {n}: {c.error}; nothing was changed")
    damaged = present and (cur is None or not cur.ok)
    if damaged:
        print(f"warning: {current_path} cannot be read and is replaced; it is kept as "
              f"{store.path / HISTORY}/damaged-<time>.json, not as a generation", file=sys.stderr)
    keep = args.keep if args.keep is not None else len(store.history_files()) + 2
    writer = SnapStore(args.dir, keep=keep, lock_timeout=args.wait)
    try:
        # expect: a writer that commits while we look is not overwritten (run rollback again).
        # A new commit of the old state (a new commit time): the generation rolled away from
        # stays in history/ under its own name, so rolling back to it again undoes this.
        info = writer.commit_encoded(_codec.compact(c.state), n, schema_version=c.schema_version,
                                     archive=not damaged, allow_regression=True, expect=token,
                                     replace_damaged=damaged)
    except SnapshotConflict as e:
        raise _Failure(f"{current_path}: another writer committed while rolling back; nothing was "
                       f"changed: check the directory and run rollback again ({e})") from e
    kept_as = ""
    if current is not None and not damaged:
        kept_as = (f"; the previous current generation (seq {current.seq}) is kept as "
                   f"{store.history_path(current)} "
                   f"(`{_prog()} rollback {store.path} --seq {current.seq}` undoes this)")
    print(f"{info.path}: rolled back to seq {info.seq} (schema {info.schema_version}) from {target}{kept_as}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    store = SnapStore(args.dir)
    checks = store.check_generations()  # newest commit first; SnapshotNotFound when none
    old = _pick(store, checks, args.from_seq, 1, "--from")
    new = _pick(store, checks, args.to_seq, 0, "--to")
    assert old.state is not None and new.state is not None  # _pick refuses unreadable ones
    changes = _diff(_codec.loads(old.state), _codec.loads(new.state))
    if args.json:
        _print_json([c.as_json() for c in changes])
    else:
        for change in changes:
            print(change)
    return 1 if changes else 0


def _pick(store: SnapStore, checks: Sequence[GenerationCheck], seq: int | None, default: int,
          flag: str) -> GenerationCheck:
    """The generation ``--from``/``--to`` names: the latest commit of ``seq``, or the
    ``default``-th newest one; refused (naming what is kept) when absent or damaged."""
    kept = ", ".join(dict.fromkeys(str(g.seq) for g in checks if g.seq is not None)) or "none"
    if seq is None:
        if len(checks) <= default:
            raise _Failure(f"{store.path}: only one generation is kept (seq {kept}): nothing to compare "
                           f"it with (keep=1 keeps no history; name one with {flag} SEQ)")
        g = checks[default]
    else:
        found = next((g for g in checks if g.seq == seq), None)
        if found is None:
            raise _Failure(f"{store.path}: no kept generation has seq {seq} ({flag}); kept: {kept}")
        g = found
    if not g.ok or g.state is None:
        raise _Failure(f"cannot compare {g.path}: {g.error or 'unreadable'}")
    return g


# -------------------------------------------------------------------- helpers
def _read_snapshot(store: SnapStore, path: str) -> bytes:
    try:
        return store.read_current_bytes()  # path: the current generation's, for messages
    except FileNotFoundError as e:
        if store.location_kind() != "dir":
            raise store.not_found() from e
        raise SnapshotNotFound(f"{path}: no such file (rehash accepts an edited {SNAPSHOT} only)",
                               path=path) from e
    except NotAGeneration as e:
        raise _Failure(f"{path}: not a regular file") from e
    except OSError as e:
        raise _Failure(f"{path}: cannot read: {e.strerror or e}") from e


def _intact(store: SnapStore, path: str) -> bool:
    """Whether ``path`` reads as an intact generation (header and checksum)."""
    return store.check_file(path).ok


def _parse_edited(data: bytes, path: str) -> tuple[int, int, bytes, Any]:
    """(seq, schema_version, raw state, checksum field) of a hand-edited snapshot.json, or refuse."""
    try:
        top = _codec.split_object(data)
    except _codec.NotAnObject as e:
        raise _Failure(f"{path}: not a {FORMAT} snapshot (the file is not a JSON object); "
                       "nothing was written") from e
    except _codec.DecodeFailure as e:
        raise _Failure(f"{path}: {e.message}: fix the edit and run rehash again; "
                       "nothing was written") from e
    head: dict[str, Any] = {}
    for k, v in top.items():
        if k != "state":
            try:
                head[k] = _codec.loads(v)
            except _codec.DecodeFailure as e:  # pragma: no cover - the whole file parsed already
                raise _Failure(f"{path}: bad {k!r}: {e.message}") from e
    if head.get("format") != FORMAT or head.get("format_version") not in (1, FORMAT_VERSION):
        raise _Failure(f"{path}: not a {FORMAT} format_version 1 or {FORMAT_VERSION} envelope (\"format\" "
                       f"is {head.get('format')!r}, \"format_version\" {head.get('format_version')!r}); "
                       "nothing was written")
    seq, sv = head.get("seq"), head.get("schema_version")
    if not _fmt.in_range(seq):
        raise _Failure(f"{path}: \"seq\" must be an integer between 0 and 2**63 - 1, not {seq!r}")
    if not _fmt.in_range(sv, 1):
        raise _Failure(f"{path}: \"schema_version\" must be an integer between 1 and 2**63 - 1, "
                       f"not {sv if isinstance(sv, int) and sv.bit_length() <= 256 else '(too large)'}")
    if "state" not in top:
        raise _Failure(f"{path}: the envelope has no \"state\"; nothing was written")
    raw = bytes(top["state"])
    try:
        _codec.loads(raw)
    except _codec.DecodeFailure as e:
        raise _Failure(f"{path}: the state is {e.message}; nothing was written") from e
    return seq, sv, raw, head.get("checksum")


def _checksum_status(c: _Check, *, long: bool) -> str:
    if c.layout is None:
        return "damaged"
    if c.checksum_ok is None:
        return f"none ({c.layout} layout has no checksum)" if long else "none"
    if c.checksum_ok:
        return f"ok ({c.checksum})" if long else "ok"
    return "MISMATCH (the state was edited after it was written)" if long else "MISMATCH"


def _pretty_lines(raw: bytes) -> list[str]:
    try:
        text = _codec.pretty(raw)
    except Exception:  # pragma: no cover - the state parsed when it was read
        text = raw
    return text.decode("utf-8", "replace").splitlines()


def _print_json(value: Any) -> None:
    print(_codec.pretty(_codec.dumps(value)).decode())


def _prog() -> str:
    return "python -m snapmixin" if os.path.basename(sys.argv[0]) == "__main__.py" else "snapmixin"


def _err(message: str) -> None:
    print(f"{_prog()}: {message}", file=sys.stderr)


# --------------------------------------------------------------------- parser
def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _seq(text: str) -> int:
    n = _int(text)
    if not _fmt.in_range(n):
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**63 - 1, not {n}")
    return n


def _keep(text: str) -> int:
    n = _int(text)
    if n < 2:
        raise argparse.ArgumentTypeError(
            f"must be >= 2 (the current generation and the one rolled away from), not {n}")
    return n


def _seconds(text: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not s >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return s


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Inspect, check and repair snapmixin snapshot directories.",
        epilog="Exit status: 0 success, 1 a check failed or the directory is missing or damaged, "
               "2 bad usage. Run '%(prog)s COMMAND --help' for each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, description: str, *,
                json_flag: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description)
        p.add_argument("dir", metavar="DIR", help="the snapshot directory")
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
        return p

    p = command("show", "the current snapshot: seq, schema, time, size, checksum, first lines",
                "Show the current snapshot of DIR: seq, schema version, creation time, size, "
                f"checksum status, layout, and the first {SHOW_LINES} lines of the state. "
                "Reads only. Exit 1 if the snapshot is missing or damaged.", json_flag=True)
    p.set_defaults(func=_cmd_show)
    p = command("verify", "check every generation; exit 1 if any is bad",
                "Check every generation in DIR (snapshot.json, history/, and the files of "
                "minisnap's layouts): each must parse and match its checksum. One line each; "
                "exit 1 if any is damaged. Reads only.", json_flag=True)
    p.set_defaults(func=_cmd_verify)
    p = command("history", "the kept generations, newest first",
                "List the kept generations of DIR, newest first, with their seq, schema version, "
                "creation time, size and checksum status. Exit 1 if any is damaged. Reads only.",
                json_flag=True)
    p.set_defaults(func=_cmd_history)
    p = command("rehash", "accept a hand-edited snapshot.json (new checksum, same seq)",
                "Accept a hand-edited DIR/snapshot.json: the file must still be valid JSON with the "
                "snapmixin envelope. Its state is rewritten with a new checksum, the same seq and "
                "schema version, atomically and durably; no history generation is added. Checks "
                "JSON syntax only, not that the state fits your class: restore to check that. "
                "Stop the programs that write to DIR first: their next snapshot replaces the edit.")
    p.add_argument("--wait", type=_seconds, default=DEFAULT_WAIT, metavar="SECONDS",
                   help=f"how long to wait for a busy writer's lock (default {DEFAULT_WAIT:g})")
    p.set_defaults(func=_cmd_rehash)
    p = command("rollback", "make kept generation N the current one",
                "Make the kept generation with seq N the current one, durably: a new commit of its "
                "state. The current one is kept in history/ under a name of its own (so a rollback "
                "can be undone with another rollback, even after later saves); when several kept "
                "generations have seq N, the latest commit is taken, or the one --file names. With "
                "N the current seq and the current file damaged, it is repaired from a kept copy. "
                "Stop the programs that write to DIR first: a program still holding the state "
                "rolled away from gets SnapshotConflict at its next snapshot.")
    p.add_argument("--seq", type=_seq, required=True, metavar="N", help="the seq of the generation")
    p.add_argument("--file", default=None, metavar="NAME",
                   help="the history/ file to roll back to, when several kept generations have seq N "
                        "(as `history` lists them)")
    p.add_argument("--keep", type=_keep, default=None, metavar="K",
                   help="generations to keep afterwards, the current one included (default: all "
                        "that are present, plus the one rolled away from; nothing is pruned)")
    p.add_argument("--wait", type=_seconds, default=DEFAULT_WAIT, metavar="SECONDS",
                   help=f"how long to wait for a busy writer's lock (default {DEFAULT_WAIT:g})")
    p.set_defaults(func=_cmd_rollback)
    p = command("diff", "what changed between two kept generations",
                "Print what changed between two kept generations of DIR, one line per changed JSON "
                "path ('$.players[1].hp: 8 -> 3', added, removed); by default from the previous "
                "generation to the current one. Arrays are compared position by position. Exit 0 "
                "when there is no difference, 1 when there is, 2 on any error. Reads only.",
                json_flag=True)
    p.add_argument("--from", dest="from_seq", type=_seq, default=None, metavar="SEQ",
                   help="the older generation (default: the previous one; the latest commit of SEQ)")
    p.add_argument("--to", dest="to_seq", type=_seq, default=None, metavar="SEQ",
                   help="the newer generation (default: the current one)")
    p.set_defaults(func=_cmd_diff)
    return parser


def _printable_streams() -> None:
    """Let stdout and stderr print any path: a directory name that is not valid UTF-8 (or
    not valid in the terminal's encoding) is escaped instead of raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # pragma: no cover - a stream that cannot change
                pass


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 check failed or damaged, 2 bad usage)."""
    parser = _parser()
    _printable_streams()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error (argparse printed it)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except StoreLocked as e:
        _err(f"{e}; from the command line: --wait SECONDS")
    except (SnapError, _Failure) as e:
        _err(str(e))
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, without a second error at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
    except OSError as e:
        _err(f"{e.filename or getattr(args, 'dir', '')}: {e.strerror or e}")
    except MemoryError:
        _err(f"{getattr(args, 'dir', '')}: out of memory (a snapshot too large to read?)")
    except Exception as e:  # never a traceback: one line, as for every other error
        _err(f"{getattr(args, 'dir', '')}: unexpected error: {type(e).__name__}: {e} "
             "(please report it)")
    return 2 if args.func is _cmd_diff else 1  # diff says "different" with 1, as diff(1) does
