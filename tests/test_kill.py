"""Real kills: a child process writing snapshots in a loop is killed with SIGKILL at random moments.

After each kill the directory restores cleanly (no error, no fallback), the
state is the one derived from the seq, the seq is at least the last one the
child saw ``create()`` return for (and at most one more), and it never goes
back from one kill to the next.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snapmixin import SnapStore
from snapmixin.fsio import is_temp_name
from tests._kill_writer import state_for

WRITER = Path(__file__).with_name("_kill_writer.py")
ROUNDS = 30  # per test: 60 kills in all


def kill_rounds(d: Path, keep: int, rounds: int, rng: random.Random) -> list[tuple[int, int]]:
    """Run ``rounds`` kill cycles; return (last seq the child reported, restored seq) per round."""
    results = []
    previous = 0
    for r in range(rounds):
        child = subprocess.Popen([sys.executable, str(WRITER), str(d), str(keep)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            first = child.stdout.readline()  # ready: one create() has returned
            assert first.strip().isdigit(), f"round {r}: child failed: {first!r} {child.stderr.read()}"
            time.sleep(rng.uniform(0, 0.04))  # a random moment to kill at (not a wait to pass)
            os.kill(child.pid, signal.SIGKILL)
            # Read the rest through the same buffered reader: readline() may already hold later
            # lines, which communicate() (reading the descriptor itself) would never see.
            rest = child.stdout.read()
            _, err = child.communicate(timeout=30)
        finally:
            if child.poll() is None:  # pragma: no cover - the test failed before the kill
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL, f"round {r}: child exited by itself: {err}"
        reported = [int(x) for x in (first + rest).split()]
        last = reported[-1]
        state, seq = SnapStore(d, keep=keep).restore()
        assert state == state_for(seq), f"round {r}: state does not match seq {seq}"
        assert last <= seq <= last + 1, f"round {r}: child committed {last}, restore gave {seq}"
        assert seq >= previous, f"round {r}: seq went back from {previous} to {seq}"
        seqs = [i.seq for i in SnapStore(d, keep=keep).history()]
        assert seqs[0] == seq and seqs == sorted(set(seqs), reverse=True) and len(seqs) <= keep + 1, seqs
        previous = seq
        results.append((last, seq))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("keep", [1, 3])
def test_sigkill_at_random_moments(tmp_path: Path, keep: int) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    d = tmp_path / "store"
    results = kill_rounds(d, keep, ROUNDS, rng)
    assert len(results) == ROUNDS, f"seed {seed}"
    # The writer made progress across kills (each child resumes from the restored seq).
    assert results[-1][1] >= ROUNDS
    # A later create cleans up whatever the killed writers left.
    store = SnapStore(d, keep=keep)
    _, seq = store.restore()
    store.create(state_for(seq + 1), seq + 1)
    assert store.restore() == (state_for(seq + 1), seq + 1)
    assert not [n for n in os.listdir(d) if is_temp_name(n)]
    if keep > 1:
        assert len(os.listdir(d / "history")) == keep - 1
