"""The command line (``python -m snapmixin``): each command on a good, a damaged and a missing
directory, ``--json`` for scripts, ``rehash`` and ``rollback`` end to end, bad usage.

Commands run in-process through ``main([...])``; two tests run a real ``python -m snapmixin``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from snapmixin import SnapStore, fsio
from snapmixin.cli import SHOW_LINES, main

Result = tuple[int, str, str]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert isinstance(code, int)
    assert "Traceback" not in err
    return code, out, err


def make(root: Path, n: int = 3, keep: int = 3, schema_version: int | None = None,
         items: int = 3) -> Path:
    """A directory with generations seq 1..n of {"n": i, "items": [...]}."""
    d = root / "state"
    store = SnapStore(d, keep=keep, schema_version=schema_version)
    for i in range(1, n + 1):
        store.create({"n": i, "items": list(range(items)), "name": "café"}, i)
    return d


def hist(d: Path) -> list[str]:
    """The history/ names without their commit time: ``hist_name(seq)`` each."""
    names = sorted(os.listdir(d / "history")) if (d / "history").exists() else []
    return [n[:29] if n.startswith("snapshot-") else n for n in names]


def hist_name(seq: int) -> str:
    """The start of the history/ name of a generation of seq ``seq`` (its commit time follows)."""
    return f"snapshot-{seq:020d}"


def hist_path(d: Path, seq: int) -> Path:
    """The one file of ``history/`` holding ``seq``."""
    found = sorted((d / "history").glob(hist_name(seq) + "-*.json"))
    assert len(found) == 1, found
    return found[0]


def hand_edit(path: Path, old: str = '"n": 3', new: str = '"n": 99') -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def garble(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


# ----------------------------------------------------------------------- show
def test_show_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, schema_version=4)
    code, out, err = run(capsys, "show", str(d))
    assert code == 0, err
    assert err == ""
    assert f"snapshot    {d / 'snapshot.json'}" in out
    assert "seq         3\n" in out
    assert "schema      4\n" in out
    assert "layout      snapmixin-2\n" in out
    latest = SnapStore(d).latest()
    assert latest is not None
    assert f"size        {latest.size} bytes" in out
    assert "created at  20" in out
    assert f"checksum    ok ({latest.checksum})" in out
    assert '"n": 3' in out and '"café"' in out


def test_show_prints_only_the_first_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, n=1, items=100)
    code, out, _ = run(capsys, "show", str(d))
    assert code == 0
    state_lines = out.split("lines):\n", 1)[1].splitlines()
    assert f"first {SHOW_LINES} of" in out
    assert len(state_lines) == SHOW_LINES + 1
    assert state_lines[-1].strip().endswith("more lines")


def test_show_checksum_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    hand_edit(d / "snapshot.json")
    code, out, err = run(capsys, "show", str(d))
    assert code == 1
    assert "checksum    MISMATCH" in out
    assert '"n": 99' in out  # the edited state is still shown
    assert len(err.splitlines()) == 1
    assert str(d / "snapshot.json") in err and "checksum mismatch" in err and f"rehash {d}" in err


def test_show_garbled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    garble(d / "snapshot.json")
    code, out, err = run(capsys, "show", str(d))
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1
    assert str(d / "snapshot.json") in err and "truncated or garbled" in err
    assert f"rollback {d} --seq 2" in err  # points to the newest intact generation


@pytest.mark.parametrize("kind", ["missing", "empty", "file"])
def test_show_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    d = tmp_path / "nothing"
    if kind == "empty":
        d.mkdir()
    elif kind == "file":
        d.write_text("x")
    code, out, err = run(capsys, "show", str(d))
    assert code == 1
    assert out == ""
    assert len(err.splitlines()) == 1 and str(d) in err
    assert {"missing": "does not exist", "empty": "no snapshot in", "file": "is a file"}[kind] in err


def test_show_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, schema_version=2)
    code, out, _ = run(capsys, "show", "--json", str(d))
    assert code == 0
    obj = json.loads(out)
    latest = SnapStore(d).latest()
    assert latest is not None and latest.created_at is not None
    assert obj["seq"] == 3 and obj["schema_version"] == 2
    assert obj["size"] == latest.size
    assert obj["checksum_ok"] is True and obj["checksum"] == latest.checksum
    assert obj["path"] == str(d / "snapshot.json") and obj["layout"] == "snapmixin-2"
    created = datetime.fromisoformat(obj["created_at"].replace("Z", "+00:00"))
    assert abs((latest.created_at - created).total_seconds()) < 1e-3


def test_show_json_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    hand_edit(d / "snapshot.json")
    code, out, err = run(capsys, "show", "--json", str(d))
    assert code == 1 and "checksum mismatch" in err
    obj = json.loads(out)
    assert obj["checksum_ok"] is False and obj["ok"] is False and "checksum mismatch" in obj["error"]
    assert obj["seq"] == 3
    garble(d / "snapshot.json")
    code, out, _ = run(capsys, "show", "--json", str(d))
    assert code == 1
    obj = json.loads(out)
    assert obj["ok"] is False and obj["seq"] is None and obj["checksum_ok"] is None
    assert "truncated or garbled" in obj["error"]


def test_show_minisnap_0_1_1_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "seed"
    d.mkdir()
    (d / "snapshot.json").write_text('{\n  "counter": 42\n}')
    (d / "snapshot.seq").write_text("10")
    code, out, err = run(capsys, "show", str(d))
    assert code == 0, err
    assert "seq         10\n" in out and "layout      minisnap-0.1.1" in out
    assert "checksum    none" in out and '"counter": 42' in out


# --------------------------------------------------------------------- verify
def test_verify_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    code, out, err = run(capsys, "verify", str(d))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == f"ok   seq 3  schema 1  {d / 'snapshot.json'} (current)"
    assert lines[1] == f"ok   seq 2  schema 1  {hist_path(d, 2)}"
    assert lines[2] == f"ok   seq 1  schema 1  {hist_path(d, 1)}"
    assert lines[3] == "3 generations checked: 3 ok, 0 damaged"


def test_verify_damaged_history_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    bad = hist_path(d, 2)
    hand_edit(bad, '"n": 2', '"n": 5')
    code, out, _ = run(capsys, "verify", str(d))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("ok   seq 3")
    assert lines[1].startswith(f"BAD  {bad}: checksum mismatch")
    assert lines[2].startswith("ok   seq 1")
    assert lines[3] == "3 generations checked: 2 ok, 1 damaged"


def test_verify_garbled_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    garble(d / "snapshot.json")
    code, out, _ = run(capsys, "verify", str(d))
    assert code == 1
    assert out.splitlines()[0].startswith(f"BAD  {d / 'snapshot.json'}: ")
    assert "truncated or garbled" in out and "1 damaged" in out


def test_verify_history_file_renamed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    one = hist_path(d, 1)
    os.rename(one, one.with_name(one.name.replace(hist_name(1), hist_name(7))))
    code, out, _ = run(capsys, "verify", str(d))
    assert code == 1
    assert "the file name says seq 7 but the file holds seq 1" in out


def test_verify_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "verify", str(tmp_path / "nope"))
    assert code == 1 and out == ""
    assert "does not exist" in err and str(tmp_path / "nope") in err


def test_verify_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    code, out, _ = run(capsys, "verify", "--json", str(d))
    assert code == 0
    items = json.loads(out)
    assert [i["seq"] for i in items] == [3, 2, 1]
    for i in items:
        assert i["ok"] is True and i["error"] is None and i["checksum_ok"] is True
        assert {"schema_version", "created_at", "size", "path", "layout"} <= i.keys()
    garble(hist_path(d, 1))
    code, out, err = run(capsys, "verify", "--json", str(d))
    assert code == 1
    items = json.loads(out)
    assert [i["ok"] for i in items] == [True, True, False]
    assert items[2]["seq"] == 1  # from the file name
    assert str(hist_path(d, 1)) in items[2]["error"]
    assert str(hist_path(d, 1)) in err


def test_verify_minisnap_0_1_3_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "seed"
    d.mkdir()
    for seq in (4, 5):
        (d / f"snapshot_{seq}.json").write_text(json.dumps({"seq": seq, "state": {"c": seq}}, indent=2))
    code, out, err = run(capsys, "verify", str(d))
    assert code == 0, out + err
    assert f"ok   seq 5  schema 1  {d / 'snapshot_5.json'} (current)" in out
    assert f"ok   seq 4  schema 1  {d / 'snapshot_4.json'}" in out
    garble(d / "snapshot_4.json")
    code, out, _ = run(capsys, "verify", str(d))
    assert code == 1 and f"BAD  {d / 'snapshot_4.json'}" in out


def test_verify_notes_stale_seq_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    (d / "snapshot.seq").write_text("2\n")
    code, out, _ = run(capsys, "verify", str(d))
    assert code == 0  # a derived file: a remark, not damage
    assert f"note: {d / 'snapshot.seq'} says '2' but" in out


# -------------------------------------------------------------------- history
def test_history_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, n=4, keep=3)
    code, out, err = run(capsys, "history", str(d))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "SCHEMA", "CREATED", "AT", "(UTC)", "SIZE", "CHECKSUM", "FILE"]
    assert [int(line.split()[0]) for line in lines[1:]] == [4, 3, 2]  # keep=3: seq 1 pruned
    assert lines[1].endswith(f"{d / 'snapshot.json'} (current)")
    assert all(" ok " in line for line in lines[1:])


def test_history_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    garble(hist_path(d, 2))
    code, out, err = run(capsys, "history", str(d))
    assert code == 1
    row = out.splitlines()[2]
    assert row.split()[:2] == ["2", "?"] and "damaged" in row
    assert str(hist_path(d, 2)) in err and "truncated or garbled" in err


def test_history_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "history", str(tmp_path / "nope"))
    assert code == 1 and out == "" and "does not exist" in err


def test_history_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, schema_version=3)
    code, out, _ = run(capsys, "history", "--json", str(d))
    assert code == 0
    items = json.loads(out)
    infos = SnapStore(d).history()
    assert [i["seq"] for i in items] == [x.seq for x in infos] == [3, 2, 1]
    assert [i["size"] for i in items] == [x.size for x in infos]
    assert all(i["schema_version"] == 3 and i["checksum_ok"] is True for i in items)
    assert [i["current"] for i in items] == [True, False, False]
    assert all(isinstance(i["created_at"], str) for i in items)


# --------------------------------------------------------------------- rehash
def test_rehash_accepts_a_hand_edit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, schema_version=2)
    before = hist(d)
    hand_edit(d / "snapshot.json")
    assert run(capsys, "verify", str(d))[0] == 1
    code, out, err = run(capsys, "rehash", str(d))
    assert code == 0, err
    assert "rehashed: seq 3, schema 2" in out and "no history generation added" in out
    assert run(capsys, "verify", str(d))[0] == 0
    state, seq = SnapStore(d).restore()
    assert (state["n"], seq) == (99, 3)
    assert hist(d) == before  # nothing added, nothing pruned
    info = SnapStore(d).latest()
    assert info is not None and info.schema_version == 2
    assert (d / "snapshot.seq").read_text() == "3\n"


def test_rehash_refuses_invalid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    hand_edit(d / "snapshot.json", '"n": 3', '"n": 3,,')
    before = (d / "snapshot.json").read_bytes()
    code, out, err = run(capsys, "rehash", str(d))
    assert code == 1 and out == ""
    assert str(d / "snapshot.json") in err and "not valid JSON" in err and "nothing was written" in err
    assert (d / "snapshot.json").read_bytes() == before


@pytest.mark.parametrize("text", ['[1, 2]', '{"format": "other", "state": 1}',
                                  '{"format": "snapmixin", "format_version": 1, "seq": 1, '
                                  '"schema_version": 1}'])
def test_rehash_refuses_what_is_not_an_envelope(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                text: str) -> None:
    d = make(tmp_path)
    (d / "snapshot.json").write_text(text)
    code, _, err = run(capsys, "rehash", str(d))
    assert code == 1 and str(d / "snapshot.json") in err
    assert (d / "snapshot.json").read_text() == text


def test_rehash_nothing_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    before = (d / "snapshot.json").read_bytes()
    code, out, _ = run(capsys, "rehash", str(d))
    assert code == 0 and "nothing to do" in out
    assert (d / "snapshot.json").read_bytes() == before


def test_rehash_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rehash", str(tmp_path / "nope"))
    assert code == 1 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "rehash", str(tmp_path / "empty"))
    assert code == 1 and f"{tmp_path / 'empty' / 'snapshot.json'}: no such file" in err


def test_rehash_refuses_when_a_writer_committed_meanwhile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    d = make(tmp_path)
    hand_edit(d / "snapshot.json")
    real_commit = SnapStore._commit
    calls: list[int] = []

    def racing_commit(self: SnapStore, *args: Any, **kwargs: Any) -> Any:
        if not calls:  # another program saves seq 4 between rehash's read and its commit
            calls.append(1)
            real_commit(SnapStore(d, keep=3), b'{"n":4}', 4)
        return real_commit(self, *args, **kwargs)

    monkeypatch.setattr(SnapStore, "_commit", racing_commit)
    code, _, err = run(capsys, "rehash", str(d))
    assert code == 1 and "changed while rehashing" in err and "nothing was written" in err
    assert SnapStore(d).restore() == ({"n": 4}, 4)  # the writer's snapshot is not lost


def test_rehash_after_rollback_with_edited_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # After a rollback history/ holds a higher seq than the current one; an edit that also
    # breaks the header makes the store fall back to that seq. The edit is still accepted.
    d = make(tmp_path)
    assert run(capsys, "rollback", str(d), "--seq", "1")[0] == 0
    text = (d / "snapshot.json").read_text().replace('"n": 1', '"n": 11')
    text = text.replace('"checksum": "sha256:', '"checksum": "edited:')
    (d / "snapshot.json").write_text(text)
    code, _, err = run(capsys, "rehash", str(d))
    assert code == 0, err
    assert SnapStore(d).restore()[0]["n"] == 11 and SnapStore(d).restore()[1] == 1


# ------------------------------------------------------------------- rollback
def test_rollback_then_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, schema_version=2)
    code, out, err = run(capsys, "rollback", str(d), "--seq", "2")
    assert code == 0, err
    assert "rolled back to seq 2" in out and hist_name(3) in out
    state, seq = SnapStore(d).restore()
    assert (state["n"], seq) == (2, 2)
    assert hist_name(3) in hist(d)  # the previous current one is kept
    assert (d / "snapshot.seq").read_text() == "2\n"
    assert run(capsys, "verify", str(d))[0] == 0
    # and undone by another rollback
    assert run(capsys, "rollback", str(d), "--seq", "3")[0] == 0
    state, seq = SnapStore(d).restore()
    assert (state["n"], seq) == (3, 3)


def test_rollback_keeps_every_generation_by_default(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, n=5, keep=5)
    assert hist(d) == [hist_name(s) for s in (1, 2, 3, 4)]
    assert run(capsys, "rollback", str(d), "--seq", "1")[0] == 0
    assert hist(d) == [hist_name(s) for s in (1, 2, 3, 4, 5)]
    assert SnapStore(d).restore()[1] == 1


def test_rollback_keep_option_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path, n=4, keep=4)
    assert run(capsys, "rollback", str(d), "--seq", "2", "--keep", "2")[0] == 0
    assert hist(d) == [hist_name(4)]  # keep 2: the current one plus the one rolled away from
    assert SnapStore(d).restore()[1] == 2


def test_rollback_unknown_seq(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    before = (d / "snapshot.json").read_bytes()
    code, out, err = run(capsys, "rollback", str(d), "--seq", "9")
    assert code == 1 and out == ""
    assert "no kept generation has seq 9; kept: 3 (current), 2, 1" in err
    assert (d / "snapshot.json").read_bytes() == before


def test_rollback_to_a_damaged_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    garble(hist_path(d, 2))
    before = (d / "snapshot.json").read_bytes()
    code, _, err = run(capsys, "rollback", str(d), "--seq", "2")
    assert code == 1
    assert "cannot roll back to seq 2" in err and str(hist_path(d, 2)) in err
    assert (d / "snapshot.json").read_bytes() == before


def test_rollback_from_a_garbled_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    garble(d / "snapshot.json")
    code, _, err = run(capsys, "rollback", str(d), "--seq", "2")
    assert code == 0
    assert "cannot be read and is replaced" in err
    assert SnapStore(d).restore()[1] == 2


def test_rollback_already_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    before = (d / "snapshot.json").read_bytes()
    code, out, _ = run(capsys, "rollback", str(d), "--seq", "3")
    assert code == 0 and "already the current generation" in out
    assert (d / "snapshot.json").read_bytes() == before


def test_rollback_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rollback", str(tmp_path / "nope"), "--seq", "1")
    assert code == 1 and "does not exist" in err
    assert not (tmp_path / "nope").exists()


def test_rollback_minisnap_0_1_3_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "seed"
    d.mkdir()
    for seq in (4, 5):
        (d / f"snapshot_{seq}.json").write_text(json.dumps({"seq": seq, "state": {"c": seq}}))
    assert run(capsys, "rollback", str(d), "--seq", "4")[0] == 0
    assert SnapStore(d).restore() == ({"c": 4}, 4)


def test_writers_report_a_busy_lock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    hand_edit(d / "snapshot.json")
    fd = fsio.REAL.lock(str(d / ".lock"), 0)
    try:
        for argv in (["rollback", str(d), "--seq", "2"], ["rehash", str(d)]):
            code, _, err = run(capsys, *argv, "--wait", "0")
            assert code == 1 and "lock" in err and "--wait" in err
    finally:
        fsio.REAL.unlock(fd)
    latest = SnapStore(d).latest()
    assert latest is not None and latest.seq == 3
    assert "checksum mismatch" in run(capsys, "verify", str(d))[1]  # nothing was written


# ------------------------------------------------------------------ bad usage
@pytest.mark.parametrize("argv", [
    [], ["frobnicate", "d"], ["show"], ["show", "d", "--bogus"], ["rehash", "--json", "d"],
    ["rollback", "d"], ["rollback", "d", "--seq", "x"], ["rollback", "d", "--seq", "-1"],
    ["rollback", "d", "--seq", "1", "--keep", "1"], ["rehash", "d", "--wait", "-3"],
])
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage:" in err and "error:" in err


@pytest.mark.parametrize("command", [None, "show", "verify", "history", "rehash", "rollback"])
def test_help(capsys: pytest.CaptureFixture[str], command: str | None) -> None:
    code, out, _ = run(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert out.startswith("usage:")
    if command is None:
        for name in ("show", "verify", "history", "rehash", "rollback"):
            assert name in out
    else:
        assert f" {command} " in out.splitlines()[0] and "DIR" in out


# -------------------------------------------------------------- real process
def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "snapmixin", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def test_python_m_snapmixin_help(tmp_path: Path) -> None:
    r = _python("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python -m snapmixin")
    assert all(name in r.stdout for name in ("show", "verify", "history", "rehash", "rollback"))


def test_python_m_snapmixin_show(tmp_path: Path) -> None:
    d = make(tmp_path)
    r = _python("show", "state", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "seq         3\n" in r.stdout and '"café"' in r.stdout
    r = _python("show", "nope", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == "python -m snapmixin: no snapshot: the directory nope does not exist\n"
    assert d.exists()


# ------------------------------------------------------- issue 10: never a traceback
def _set_header(d: Path, key: str, value: str) -> None:
    p = d / "snapshot.json"
    text = p.read_text()
    start = text.index(f'"{key}": ') + len(key) + 4
    end = text.index(",\n", start)
    p.write_text(text[:start] + value + text[end:])


@pytest.mark.parametrize(("key", "value", "says"), [
    ("created_at", '"0001-01-01T00:00:00+01:00"', "out of range"),
    ("created_at", '"9999-12-31T23:59:59-01:00"', "out of range"),
    ("schema_version", str(10**30), "schema_version"),
])
def test_an_out_of_range_header_value_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  key: str, value: str, says: str) -> None:
    d = make(tmp_path)
    _set_header(d, key, value)
    for argv in (["show", str(d)], ["show", "--json", str(d)], ["verify", str(d)],
                 ["history", "--json", str(d)]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and says in out + err, (argv, out, err)


def test_a_directory_name_that_is_not_utf8(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/st\xffate"
    os.mkdir(raw)
    SnapStore(os.fsdecode(raw)).create({"n": 1}, 1)
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}  # strict: what a UTF-8 terminal has
    for argv in ([b"show", raw], [b"verify", raw], [b"history", raw], [b"show", b"--json", raw],
                 [b"verify", b"--json", raw], [b"history", b"--json", raw]):
        r = subprocess.run([os.fsencode(sys.executable), b"-m", b"snapmixin", *argv],
                           capture_output=True, env=env, timeout=60)
        assert r.returncode == 0, (argv, r.stderr)
        assert b"Traceback" not in r.stderr, r.stderr
        assert b"\\xff" in r.stdout or b"\\udcff" in r.stdout, r.stdout  # escaped, not lost
        if b"--json" in argv:
            json.loads(r.stdout)


def test_memory_running_out_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    d = make(tmp_path)

    def no_memory(self: fsio.FileOps, fd: int, size: int) -> bytes:
        raise MemoryError

    monkeypatch.setattr(fsio.FileOps, "read", no_memory)
    for argv in (["show", str(d)], ["verify", str(d)], ["history", "--json", str(d)]):
        code, out, err = run(capsys, *argv)
        assert code == 1 and "out of memory" in out + err, (argv, out, err)


def test_an_unexpected_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    d = make(tmp_path)

    def broken(self: fsio.FileOps, path: str) -> list[str]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fsio.FileOps, "listdir", broken)
    code, _, err = run(capsys, "show", str(d))
    assert code == 1 and "RuntimeError: a bug" in err and len(err.strip().splitlines()) == 1


def test_rehash_repairs_a_header_damaged_with_the_checksum_intact(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make(tmp_path)
    _set_header(d, "created_at", '"not a time"')
    code, out, err = run(capsys, "verify", str(d))
    assert code == 1 and "created_at" in out + err
    code, out, _ = run(capsys, "rehash", str(d))
    assert code == 0 and "rehashed: seq 3" in out, out
    code, out, _ = run(capsys, "verify", str(d))
    assert code == 0, out
    assert SnapStore(d).restore()[1] == 3


def test_history_of_an_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "empty"
    d.mkdir()
    code, out, _ = run(capsys, "history", "--json", str(d))
    assert code == 0 and json.loads(out) == []
    code, out, _ = run(capsys, "history", str(d))
    assert code == 0 and "no generations" in out
    code, _, err = run(capsys, "history", "--json", str(tmp_path / "missing"))
    assert code == 1 and "does not exist" in err


def test_the_cli_uses_only_the_public_store_api() -> None:
    """Issue 11: cli.py goes through SnapStore's public API (no private member of a store)."""
    import re

    import snapmixin.cli
    source = Path(snapmixin.cli.__file__).read_text()
    assert re.findall(r"store\._[a-z]\w*", source) == []
    import ast
    private = [a.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
               and (node.module or "").startswith("store") for a in node.names if a.name.startswith("_")]
    assert private == []
