"""A writer process for tests/test_objstore.py (the environment points obstore at the test server).

``race URL NAME N OUT``: N times, restore and commit the next seq with ``expect=`` the restored
generation; one JSON line per attempt in OUT (won, with base and new generation, or the error type).
``loop URL``: restore, then commit seq+1, seq+2, ... for ever (keep=2), printing "committed N"
after each: the parent SIGKILLs it at some point.
"""

from __future__ import annotations

import json
import sys

from snapmixin import SnapStore
from snapmixin.errors import SeqRegression, SnapshotConflict


def race(url: str, name: str, n: int, out: str) -> None:
    s = SnapStore(url)
    with open(out, "w") as f:
        for _ in range(n):
            r = s.restore_generation()
            seq = r.info.seq + 1
            try:
                info = s.create({"writer": name, "copies": name * 3, "seq": seq}, seq, expect=r.base)
            except (SnapshotConflict, SeqRegression) as e:
                f.write(json.dumps({"outcome": type(e).__name__}) + "\n")
                continue
            f.write(json.dumps({"outcome": "won", "base": r.base, "new": info.generation, "seq": seq}) + "\n")


def loop(url: str) -> None:
    s = SnapStore(url, keep=2)
    _, seq = s.restore()
    while True:
        seq += 1
        s.create({"i": seq, "pad": [seq] * (seq % 50)}, seq)
        print(f"committed {seq}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "race":
        race(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        loop(sys.argv[2])
