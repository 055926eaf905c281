"""The journal's SIGKILL torture (issue 14) in its default short form; see tests/journal_torture.py.

``SNAPMIXIN_JOURNAL_TORTURE_SECONDS`` sizes the long form (marked torture and slow); ``python -m
tests.journal_torture --seconds N`` runs it by hand.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import journal_torture

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fork and SIGKILL")


def test_journal_torture_short(tmp_path: Path) -> None:
    stats = journal_torture.run(seconds=6.0, root=tmp_path, series=20)
    summary = stats.summary()
    print(f"\njournal torture: {summary}")
    assert not stats.failures, "\n".join([summary, *stats.failures[:20]])
    assert stats.rounds >= 10, summary
    assert stats.mutations >= 10 * stats.rounds, summary  # the kills land after real work


@pytest.mark.torture
@pytest.mark.slow
def test_journal_torture_long(tmp_path: Path) -> None:
    seconds = float(os.environ.get("SNAPMIXIN_JOURNAL_TORTURE_SECONDS", "8"))
    kept = lost = 0
    for mode in ("flush", "fsync"):
        stats = journal_torture.run(seconds=seconds / 2, root=tmp_path / mode, mode=mode)
        summary = stats.summary()
        print(f"\njournal torture ({mode}): {summary}")
        assert not stats.failures, "\n".join([summary, *stats.failures[:20]])
        kept, lost = kept + stats.in_flight_kept, lost + stats.in_flight_lost
    assert kept >= 1, "no kill landed between a record's write and the side log's R line"


def test_journal_torture_negative_control(tmp_path: Path) -> None:
    """Appends held in memory (a buffered file) lose returned mutations to SIGKILL: detected."""
    stats = journal_torture.run(seconds=3.0, root=tmp_path, sabotage="buffer", series=1000)
    assert any("the last returned mutation was" in f for f in stats.failures), stats.summary()
