"""What the by-hand lower bounds share (bench/store.py, bench/tracking.py): no snapmixin code."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import msgspec

#: A version 2 file's trailer: ``,\n  "checksum": "sha256:`` + 64 hex digits + ``"\n}\n``.
TRAILER_SIZE = 92


def read_checked(path: str, envelope: type[Any]) -> Any:
    """Read a version 2 ``snapshot.json`` with the checks every restore makes, by hand: the
    SHA-256 of every byte before the trailer (in a thread from 1 MiB, while the file is decoded,
    as snapmixin does), a strict decode into ``envelope`` (Structs with
    ``forbid_unknown_fields``: msgspec refuses unknown keys for Structs only; its ``checksum``
    member holds the trailer's), then the checksum compared. Returns the decoded envelope."""
    with open(path, "rb") as f:
        data = f.read()
    hashed = memoryview(data)[:len(data) - TRAILER_SIZE]
    digest: list[str] = []
    worker = None
    if len(hashed) >= 1 << 20:
        worker = threading.Thread(target=lambda: digest.append(hashlib.sha256(hashed).hexdigest()))
        worker.start()
    else:
        digest.append(hashlib.sha256(hashed).hexdigest())
    env = msgspec.json.decode(data, type=envelope)
    if worker is not None:
        worker.join()
    if env.checksum != "sha256:" + digest[0]:
        raise ValueError(f"{path}: checksum mismatch")
    return env
