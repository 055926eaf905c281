"""Child process for tests/test_kill.py: writes snapshots in a loop until it is killed.

    python tests/_kill_writer.py DIR KEEP

Resumes from the stored seq (if any), then creates seq + 1, seq + 2, ... for
ever, each with :func:`state_for` of its seq, and prints each seq to stdout
once ``create()`` has returned (the parent's proof of what was committed).
"""

from __future__ import annotations

import sys
from typing import Any


def state_for(seq: int) -> dict[str, Any]:
    """A state derived from its seq, of varying size (up to ~600 KB), so kills land mid-write too."""
    size = (seq * 7919) % 600_000
    return {"seq": seq, "blob": f"{seq}:" + "x" * size, "items": list(range(seq % 97)),
            "tag": f"generation-{seq}"}


def main() -> None:
    from snapmixin import SnapStore
    from snapmixin.errors import SnapshotNotFound

    store = SnapStore(sys.argv[1], keep=int(sys.argv[2]))
    try:
        _, seq = store.restore()
    except SnapshotNotFound:
        seq = 0
    out = sys.stdout
    while True:
        seq += 1
        store.create(state_for(seq), seq)
        out.write(f"{seq}\n")
        out.flush()


if __name__ == "__main__":
    main()
