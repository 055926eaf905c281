"""The SIGKILL torture run in its CI form (about 30 s); ``python -m tests.torture --rounds N`` for more.

See ``tests/torture.py`` for what each round does and checks. Two negative
controls show the checks can fail: a library that writes ``snapshot.json`` in
place (no temp file, no rename), and one that writes a state other than the
object's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import torture

pytestmark = [pytest.mark.torture, pytest.mark.skipif(sys.platform == "win32", reason="fork and SIGKILL")]

CI_SECONDS = float(os.environ.get("SNAPMIXIN_TORTURE_SECONDS", "30"))


def test_torture_short(tmp_path: Path) -> None:
    stats = torture.run(5000, seconds=CI_SECONDS, root=tmp_path, series=25)
    summary = stats.summary()
    print(f"\ntorture: {summary}")
    assert not stats.failures, "\n".join([summary, *stats.failures[:20]])
    assert stats.rounds >= 20, summary
    assert stats.commits_logged >= stats.rounds, summary  # the kills land after real work
    # Kills landed mid-commit, and both outcomes of an interrupted commit were seen.
    if stats.rounds >= 100:
        assert stats.restored_in_flight >= 1 and stats.in_flight_rolled_back >= 1, summary


def test_torture_exec_children(tmp_path: Path) -> None:
    """A few rounds with fresh interpreters (no fork), as a user's process would be."""
    stats = torture.run(4, root=tmp_path, use_exec=True, series=4, max_delay=0.2)
    assert not stats.failures, "\n".join(stats.failures)
    assert stats.rounds == 4


def test_negative_control_lying_store(tmp_path: Path) -> None:
    stats = torture.run(8, root=tmp_path, sabotage="lie", max_delay=0.1)
    assert any("is neither the last commit" in f for f in stats.failures), stats.failures


def test_negative_control_in_place_writes(tmp_path: Path) -> None:
    """Writing snapshot.json in place: some kill lands mid-write, and the round fails."""
    found: list[str] = []
    for attempt in range(10):
        stats = torture.run(20, root=tmp_path / f"try{attempt}", sabotage="inplace", series=20)
        found = stats.failures
        if found:
            break
    assert any("truncated or garbled" in f or "does not verify" in f or "neither" in f
               for f in found), found


# -- several writer processes and objects on one directory, rollbacks mid-run (issue 10) ------------

MULTI_SECONDS = float(os.environ.get("SNAPMIXIN_MULTI_TORTURE_SECONDS", "30"))


def test_multi_writer_torture_short(tmp_path: Path) -> None:
    """3 processes x (2 Snapshottable objects + 1 raw expect= writer) on one directory, keep 1, 3 and
    10000, SIGKILLs and CLI rollbacks mid-run: zero lost updates (see tests/multi_torture.py)."""
    from tests import multi_torture

    stats = multi_torture.run(MULTI_SECONDS, writers=3, root=tmp_path, series_seconds=MULTI_SECONDS / 3)
    summary = stats.summary()
    print(f"\nmulti-writer torture: {summary}")
    assert not stats.failures, "\n".join([summary, *stats.failures[:20]])
    assert stats.lost_updates == 0, summary
    assert stats.rounds >= 3, summary  # keep 1, 3 and 10000 each had a directory
    # Real races, real kills, real rollbacks: the figures show each happened.
    assert stats.commits >= 100 and stats.conflicts >= 1, summary
    assert stats.kills >= 1 and stats.rollbacks >= 1, summary
    assert stats.kept_present + stats.superseded + stats.rolled_away == stats.commits, summary


def test_multi_writer_negative_control_blind_writes(tmp_path: Path) -> None:
    """Raw writers that write without a precondition (a store without optimistic concurrency, like
    main before issue 10): the run must report lost updates."""
    from tests import multi_torture

    stats = multi_torture.run(6, writers=3, root=tmp_path, series_seconds=6, keeps=(1,), n_mixin=1,
                              n_raw=2, sabotage="blind", rollback_rate=0.0)
    assert stats.lost_updates >= 1, stats.summary()
    assert any("lost update" in f for f in stats.failures), stats.failures[:5]
