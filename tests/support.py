"""Helpers shared by the tests: directory listings, and snapshot files written by hand.

The format helpers here use only ``json`` and ``hashlib`` (never snapmixin's own
code), so a test built on them checks the library against the documented
format rather than against itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from snapmixin.fsio import is_temp_name

__all__ = ["TRAILER_SIZE", "files", "files_no_lock", "reseal", "temps", "temps_here", "unseal",
           "v1_envelope", "verify_v2", "write_v1"]

_TRAILER_HEAD = b',\n  "checksum": "sha256:'
_TRAILER_TAIL = b'"\n}\n'
#: The size of a format version 2 trailer (documented: punctuation, key, 64 hex digits).
TRAILER_SIZE = len(_TRAILER_HEAD) + 64 + len(_TRAILER_TAIL)


def files(d: Path, *, lock: bool = True) -> dict[str, bytes]:
    """Every regular file under ``d`` (relative name -> bytes); ``lock=False`` leaves out ``.lock``."""
    out: dict[str, bytes] = {}
    for root, _, names in os.walk(d):
        for n in sorted(names):
            p = Path(root) / n
            if (lock or n != ".lock") and p.is_file():
                out[os.path.relpath(p, d)] = p.read_bytes()
    return dict(sorted(out.items()))


def files_no_lock(d: Path) -> dict[str, bytes]:
    """:func:`files` without ``.lock`` (which a writer may create)."""
    return files(d, lock=False)


def temps_here(d: Path) -> list[str]:
    """Temp files left directly in ``d`` (not in ``history/``)."""
    return temps(d, recursive=False)


def temps(d: Path, *, recursive: bool = True) -> list[str]:
    """Temp files left by writers under ``d`` (relative names)."""
    if not recursive:
        return [n for n in os.listdir(d) if is_temp_name(n)]
    return [os.path.relpath(os.path.join(root, n), d)
            for root, _, names in os.walk(d) for n in names if is_temp_name(n)]


def v1_envelope(state: Any, seq: int, *, schema_version: int = 1,
                created_at: datetime | None = None) -> bytes:
    """A format version 1 ``snapshot.json`` (what snapmixin 0.1.0 wrote), made with ``json``:
    pretty JSON, ``"state"`` last, checksum = SHA-256 of the state value's bytes."""
    when = (created_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    doc = {"format": "snapmixin", "format_version": 1, "seq": seq, "schema_version": schema_version,
           "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "checksum": "sha256:" + "0" * 64,
           "state": state}
    text = json.dumps(doc, indent=2, ensure_ascii=False).encode() + b"\n"
    start = text.index(b'\n  "state": ') + len(b'\n  "state": ')
    digest = hashlib.sha256(text[start:len(text) - 3]).hexdigest()
    return text.replace(b"0" * 64, digest.encode(), 1)


def write_v1(d: Path, state: Any, seq: int, *, schema_version: int = 1,
             created_at: datetime | None = None) -> Path:
    """Write a version 1 snapshot into the store directory ``d`` (and ``snapshot.seq``)."""
    d.mkdir(parents=True, exist_ok=True)
    p = d / "snapshot.json"
    p.write_bytes(v1_envelope(state, seq, schema_version=schema_version, created_at=created_at))
    (d / "snapshot.seq").write_text(f"{seq}\n")
    return p


def verify_v2(data: bytes) -> dict[str, Any]:
    """The documented verification rule of format version 2, with ``hashlib``/``re``/``json``
    only. Returns the parsed document; raises ``ValueError`` when the file fails the rule."""
    import re
    m = re.fullmatch(rb'(.*),\n  "checksum": "sha256:([0-9a-f]{64})"\n\}\n', data, re.S)
    if m is None:
        raise ValueError("no checksum trailer")
    if hashlib.sha256(m.group(1)).hexdigest() != m.group(2).decode():
        raise ValueError("checksum mismatch")

    def no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    doc = json.loads(data.decode("utf-8"), object_pairs_hook=no_dups)
    if not isinstance(doc, dict) or doc.get("format") != "snapmixin" or doc.get("format_version") != 2:
        raise ValueError("not a snapmixin format_version 2 envelope")
    return doc


def unseal(data: bytes) -> bytes:
    """A version 2 file without its checksum trailer (the bytes the checksum covers)."""
    assert data.endswith(_TRAILER_TAIL) and data[-TRAILER_SIZE:].startswith(_TRAILER_HEAD)
    return data[:-TRAILER_SIZE]


def reseal(body: bytes) -> bytes:
    """Append a valid version 2 trailer to ``body`` (as a tool following the rule would)."""
    return body + _TRAILER_HEAD + hashlib.sha256(body).hexdigest().encode() + _TRAILER_TAIL


def count_deferrals(monkeypatch: Any) -> list[int]:
    """Count the signal deferrals that really swap handlers (``fsio.DeferSignals._swap`` calls)
    from now on: the returned one-item list holds the count."""
    from snapmixin import fsio

    deferrals = [0]
    swap = fsio.DeferSignals._swap

    def counting(self: fsio.DeferSignals) -> None:
        deferrals[0] += 1
        swap(self)

    monkeypatch.setattr(fsio.DeferSignals, "_swap", counting)
    return deferrals
