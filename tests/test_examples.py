"""The examples run as a newcomer runs them, and do what they say.

Each example is started as ``python examples/NAME.py --dir ...`` in a fresh
process, under a time limit. The tests check the exit code, the claims in the
output, and, independently of the output, what the example left on disk
(read back with ``SnapStore`` and the CLI), so an example that prints "OK"
without having done the work still fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from snapmixin import SnapStore

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 60.0
TESTED = {"quickstart.py", "game_save.py", "simulation_checkpoint.py", "app_settings.py",
          "training_checkpoint.py", "journal_crash.py"}


def run(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run an example; return (exit code, stdout + stderr). The whole process group dies on timeout."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / script), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the example and any child it started
        out, _ = proc.communicate()
        pytest.fail(f"{script} {' '.join(args)} did not finish within {TIMEOUT} s; output:\n{out}")
    return proc.returncode, out


def ok(script: str, *args: str, cwd: Path) -> str:
    code, out = run(script, *args, cwd=cwd)
    assert code == 0, f"{script} exited with {code}; output:\n{out}"
    assert "FAILED" not in out and "Traceback" not in out, out
    return out


def cli_verify(directory: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "snapmixin", "verify", str(directory)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_example_is_tested() -> None:
    assert {p.name for p in EXAMPLES.glob("*.py")} == TESTED


@pytest.mark.parametrize("script", sorted(TESTED))
def test_help(script: str, tmp_path: Path) -> None:
    out = ok(script, "--help", cwd=tmp_path)
    assert "--dir" in out
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ quickstart
def test_quickstart_survives_sigkill(tmp_path: Path) -> None:
    d = tmp_path / "state"
    out = ok("quickstart.py", "--dir", str(d), cwd=tmp_path)
    assert "killed the child with SIGKILL" in out
    m = re.search(r"restored: count=(\d+), (\d+) squares, seq=(\d+)", out)
    assert m, out
    count, squares, seq = map(int, m.groups())
    assert count == squares == seq >= 500 and seq % 50 == 0
    assert f"OK: the state is intact and consistent with seq {seq}" in out

    # On disk: the child's last snapshot plus the one step the parent added after restoring.
    state, stored = SnapStore(d).restore()
    assert stored == seq + 1
    assert state == {"count": seq + 1, "squares": [i * i for i in range(1, seq + 2)]}
    assert (d / "snapshot.seq").read_text() == f"{seq + 1}\n"
    cli_verify(d)


def test_quickstart_default_dir_is_a_fresh_temp_dir(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    code, out = run("quickstart.py", cwd=work, env={**os.environ, "TMPDIR": str(temp)})
    assert code == 0, out
    m = re.search(r"snapshots go to (\S+)", out)
    assert m, out
    d = Path(m.group(1))
    assert d.parent == temp and SnapStore(d).exists()
    assert list(work.iterdir()) == []  # nothing written where it was run


# ------------------------------------------------------------------ game_save
def test_game_save(tmp_path: Path) -> None:
    saves = tmp_path / "saves"
    out = ok("game_save.py", "--dir", str(saves), cwd=tmp_path)
    assert out.count("  ok: ") == 4
    assert "OK: all slots hold what they should" in out

    slot1, seq1 = SnapStore(saves / "slot1").restore()
    assert (seq1, slot1["moves"], slot1["player"]) == (20, 20, "Ada")  # the autosave after move 20
    slot2, seq2 = SnapStore(saves / "slot2").restore()
    assert (seq2, slot2["moves"], slot2["hp"]) == (7, 7, 80)  # saved by the with block
    store3 = SnapStore(saves / "slot3")
    slot3, seq3 = store3.restore()
    assert seq3 == 13
    assert slot3 == {"player": "Cy", "hp": 35, "x": 4, "y": -1, "inventory": ["sword", "lantern"], "moves": 1}
    assert [(i.seq, i.schema_version) for i in store3.history()] == [(13, 2), (12, 1)]
    for slot in ("slot1", "slot2", "slot3"):
        cli_verify(saves / slot)

    # A second run on the same directory refuses rather than mixing with the old slots.
    code, out = run("game_save.py", "--dir", str(saves), cwd=tmp_path)
    assert code == 2 and "already holds save slots" in out
    assert SnapStore(saves / "slot1").restore()[1] == 20


# ------------------------------------------------------- simulation_checkpoint
def test_simulation_is_interrupted_then_resumes(tmp_path: Path) -> None:
    d = tmp_path / "job"
    first = ok("simulation_checkpoint.py", "--dir", str(d), "--stop-after", "7000", cwd=tmp_path)
    assert "starting from step 0" in first
    assert "interrupted at step 7000, with no final save" in first
    assert "finished" not in first and "resuming" not in first
    info = SnapStore(d).latest()
    assert info is not None
    checkpoint = info.seq
    assert 5000 <= checkpoint < 7000  # the count-based checkpoint at 5000 at least; no save at 7000
    assert f"the last checkpoint on disk is step {checkpoint}" in first

    second = ok("simulation_checkpoint.py", "--dir", str(d), cwd=tmp_path)
    m = re.search(r"resuming from step (\d+)", second)
    assert m, second
    assert int(m.group(1)) == checkpoint > 0  # continues from the checkpoint, never from 0
    assert "starting from step 0" not in second
    assert f"finished: {20000 - checkpoint} steps" in second
    assert "OK: the saved result (seq 20000) is exactly what one uninterrupted run computes" in second
    state, seq = SnapStore(d).restore()
    assert seq == 20000 and state["step"] == 20000

    third = ok("simulation_checkpoint.py", "--dir", str(d), cwd=tmp_path)
    assert "already finished (step 20000)" in third
    assert SnapStore(d).latest() == SnapStore(d).history()[0]
    cli_verify(d)


def test_simulation_time_based_checkpoints(tmp_path: Path) -> None:
    """Checkpoints other than the multiples of 5000 are the time-based ones (seconds=0.1)."""
    d = tmp_path / "job"
    out = ok("simulation_checkpoint.py", "--dir", str(d), cwd=tmp_path)
    m = re.search(r"(\d+) checkpoints written, (\d+) of them time-based: \[([\d, ]*)\]", out)
    assert m, out
    written = [int(s) for s in m.group(3).split(", ")]
    assert {5000, 10000, 15000, 20000} <= set(written) and len(written) == int(m.group(1))
    # The whole run takes well over 0.1 s, so the clock must have asked for a checkpoint too.
    assert int(m.group(2)) >= 1, out


# ---------------------------------------------------------------- app_settings
def test_app_settings(tmp_path: Path) -> None:
    d = tmp_path / "app"
    out = ok("app_settings.py", "--dir", str(d), cwd=tmp_path)
    assert "first launch: default settings" in out
    assert out.count("  ok: ") == 7
    assert "DecodeError:" in out and "$.font_size" in out
    assert "volume=500 refused by pydantic; the object still says 80" in out
    prefs, _ = SnapStore(d / "prefs").restore()
    assert prefs == {"volume": 80, "muted": False, "shortcuts": {"save": "ctrl+s"}}
    counters, counters_seq = SnapStore(d / "counters").restore()
    assert counters == {"hits": {"a": 50, "b": 50}} and counters_seq == 100  # no "lock" key
    settings, seq = SnapStore(d / "settings").restore()
    assert seq == 1
    assert (settings["theme"], settings["font_size"], settings["launches"]) == ("dark", 14, 1)
    session, _ = SnapStore(d / "session").restore()
    assert session == {"open_tabs": ["notes.md", "todo.md"], "cursor": {"notes.md": 42}}
    stats, stats_seq = SnapStore(d / "stats").restore()
    assert stats == {"requests": 5, "by_path": {"/": 3, "/docs": 1, "/api": 1}} and stats_seq == 10

    # The next launch loads what the first one saved.
    out = ok("app_settings.py", "--dir", str(d), cwd=tmp_path)
    assert "loaded saved settings (seq 1): launch 2" in out
    settings, seq = SnapStore(d / "settings").restore()
    assert seq == 2 and settings["launches"] == 2
    assert settings["recent_files"] == ["chapter2.md", "chapter1.md"]
    assert len(SnapStore(d / "settings", keep=3).history()) == 2
    stats, _ = SnapStore(d / "stats").restore()
    assert stats["requests"] == 10
    for sub in ("settings", "session", "stats"):
        cli_verify(d / sub)


# --------------------------------------------------------- training_checkpoint
def test_training_with_numpy_state_is_interrupted_then_resumes_bit_exactly(tmp_path: Path) -> None:
    d = tmp_path / "job"
    first = ok("training_checkpoint.py", "--dir", str(d), "--stop-after", "1700", cwd=tmp_path)
    assert "starting from step 0" in first and "interrupted at step 1700, with no final save" in first
    info = SnapStore(d).latest()
    assert info is not None and info.seq == 1500  # the checkpoint every 500 steps

    second = ok("training_checkpoint.py", "--dir", str(d), cwd=tmp_path)
    assert "resuming from step 1500" in second and "starting from step 0" not in second
    assert "OK: the saved weights, loss curve and generator (seq 3000) are bit for bit" in second
    state, seq = SnapStore(d).restore()
    assert seq == 3000 and state["step"] == 3000
    assert set(state) == {"step", "weights", "rng", "losses"}  # the transient dataset is not written
    assert state["weights"]["dtype"] == "<f8" and state["weights"]["shape"] == [8]
    assert len(state["weights"]["data"]) == 8  # small: readable numbers
    assert state["losses"]["shape"] == [300] and "data_b64" in state["losses"]  # larger: compact
    assert state["rng"]["bit_generator"] == "PCG64"
    cli_verify(d)


# ------------------------------------------------------------------ journal_crash
def test_journal_crash_gets_back_every_returned_step(tmp_path: Path) -> None:
    out = ok("journal_crash.py", "--dir", str(tmp_path), cwd=tmp_path)
    assert "killed the child with SIGKILL" in out
    m = re.search(r"the last step it saw return was step (\d+)", out)
    assert m, out
    last = int(m.group(1))
    # On disk, independently of what the example printed: the snapshot alone is behind, the
    # snapshot plus the journal holds every step the child saw return (and at most one more).
    d = tmp_path / "walk"
    state, snap_seq = SnapStore(d).restore()
    assert snap_seq % 1000 == 1 and state["steps"] == snap_seq
    returned = [int(n) for n in (tmp_path / "returned.txt").read_text().split()]
    assert returned[-1] == last
    # The segment following the snapshot; or, when the kill came between a snapshot's commit and
    # the deletion of the segment before it (the compaction window), that older one as well.
    follows = sorted(int(p.name[8:28]) for p in d.glob("journal-*.jsonl"))
    assert follows in ([snap_seq], [snap_seq - 1000], [snap_seq - 1000, snap_seq]), follows
    sys.path.insert(0, str(EXAMPLES))
    try:
        from journal_crash import Walk
    finally:
        sys.path.remove(str(EXAMPLES))
    walk = Walk.open(d)
    assert last <= walk.steps <= last + 1 and walk.snapshot_seq == walk.steps
    assert len(walk.path) == walk.steps == sum(walk.visits.values())
