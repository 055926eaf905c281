"""Guarantee 8: directories written by the seed, minisnap 0.1.1 and 0.1.3, restore; a create()
on top of them works and never takes the seq backwards."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapmixin import SnapStore
from snapmixin.errors import CorruptSnapshot, SeqRegression, SnapshotConflict


@dataclass
class AppState:
    counter: int
    names: list[str]


def minisnap_011(d: Path, state: object, seq: int, seq_text: str | None = None) -> None:
    """What minisnap 0.1.1 leaves: pretty JSON of the bare state, and the seq as text."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "snapshot.json").write_text(json.dumps(state, indent=2))
    (d / "snapshot.seq").write_text(seq_text if seq_text is not None else str(seq))


def minisnap_013(d: Path, gens: dict[int, object]) -> None:
    """What minisnap 0.1.3 leaves: snapshot_<20-digit seq>.json files holding {"seq", "state"}."""
    d.mkdir(parents=True, exist_ok=True)
    for seq, state in gens.items():
        (d / f"snapshot_{seq:020d}.json").write_text(json.dumps({"seq": seq, "state": state}, indent=2))


# -- minisnap 0.1.1 ------------------------------------------------------------------------------


@pytest.mark.parametrize("seq_text", ["10", "10\n", " 10 \n"])
def test_011_restores(tmp_path: Path, seq_text: str) -> None:
    d = tmp_path / "state"
    minisnap_011(d, {"counter": 42, "names": ["a"]}, 10, seq_text)
    store = SnapStore(d)
    assert store.exists()
    assert store.restore() == ({"counter": 42, "names": ["a"]}, 10)
    assert store.restore(AppState) == (AppState(42, ["a"]), 10)
    info = store.latest()
    assert info is not None and info.seq == 10 and info.layout == "minisnap-0.1.1"
    assert info.created_at is None
    # The seed's own files are left exactly as they were.
    assert (d / "snapshot.seq").read_text() == seq_text


@pytest.mark.parametrize("state", [[1, 2, 3], "text", 7, None, {}])
def test_011_any_json_value_as_state(tmp_path: Path, state: object) -> None:
    d = tmp_path / "state"
    minisnap_011(d, state, 3)
    assert SnapStore(d).restore() == (state, 3)


def test_011_without_seq_file_is_corrupt_and_says_why(tmp_path: Path) -> None:
    d = tmp_path / "state"
    minisnap_011(d, {"counter": 1, "names": []}, 1)
    (d / "snapshot.seq").unlink()
    with pytest.raises(CorruptSnapshot) as e:
        SnapStore(d).restore()
    assert "snapshot.seq" in str(e.value) and "minisnap" in str(e.value)
    assert e.value.path == str(d / "snapshot.json")


def test_011_garbled_state_is_corrupt(tmp_path: Path) -> None:
    d = tmp_path / "state"
    minisnap_011(d, {"counter": 1, "names": []}, 1)
    (d / "snapshot.json").write_text('{"counter": 1, "na')
    with pytest.raises(CorruptSnapshot, match="truncated or garbled"):
        SnapStore(d).restore()


@pytest.mark.parametrize("keep", [1, 3])
def test_create_on_top_of_011(tmp_path: Path, keep: int) -> None:
    d = tmp_path / "state"
    minisnap_011(d, {"counter": 42, "names": ["a"]}, 10)
    store = SnapStore(d, keep=keep)
    with pytest.raises(SeqRegression) as e:
        store.create(AppState(1, []), 9)
    assert e.value.stored == 10
    assert store.restore() == ({"counter": 42, "names": ["a"]}, 10)
    store.create(AppState(43, ["a", "b"]), 11)
    assert store.restore(AppState) == (AppState(43, ["a", "b"]), 11)
    assert json.loads((d / "snapshot.json").read_text())["format"] == "snapmixin"
    assert (d / "snapshot.seq").read_text() == "11\n"
    with pytest.raises(SeqRegression):
        store.create(AppState(0, []), 10)
    if keep > 1:
        hist = store.history()
        assert [i.seq for i in hist] == [11, 10]
        assert hist[1].layout == "minisnap-0.1.1"
        # the old generation stays restorable by fallback
        (d / "snapshot.json").write_text("{")
        assert store.restore(fallback=True) == ({"counter": 42, "names": ["a"]}, 10)


def test_create_on_top_of_011_with_equal_seq(tmp_path: Path) -> None:
    d = tmp_path / "state"
    minisnap_011(d, {"counter": 42, "names": ["a"]}, 10)
    before = (d / "snapshot.json").read_bytes()
    store = SnapStore(d)
    # Changed on purpose (issue 10 §1): the stored seq again with another state used to replace
    # it silently; it is a conflict now, nothing written. The next seq takes over as before.
    with pytest.raises(SnapshotConflict):
        store.create(AppState(5, []), 10)
    assert (d / "snapshot.json").read_bytes() == before
    store.create(AppState(5, []), 11)
    assert store.restore(AppState) == (AppState(5, []), 11)


# -- minisnap 0.1.3 ------------------------------------------------------------------------------


def test_013_highest_seq_wins(tmp_path: Path) -> None:
    d = tmp_path / "state"
    minisnap_013(d, {3: {"counter": 3, "names": []}, 12: {"counter": 12, "names": ["x"]},
                     9: {"counter": 9, "names": []}})
    store = SnapStore(d)
    assert store.exists()
    assert store.restore() == ({"counter": 12, "names": ["x"]}, 12)
    assert store.restore(AppState) == (AppState(12, ["x"]), 12)
    info = store.latest()
    assert info is not None and info.seq == 12 and info.layout == "minisnap-0.1.3"
    assert [i.seq for i in store.history()] == [12, 9, 3]


def test_013_order_is_numeric_not_textual(tmp_path: Path) -> None:
    d = tmp_path / "state"
    d.mkdir()
    # unpadded names, in case a writer did not pad: 9 < 10 although "9" > "10"
    (d / "snapshot_9.json").write_text(json.dumps({"seq": 9, "state": "nine"}))
    (d / "snapshot_10.json").write_text(json.dumps({"seq": 10, "state": "ten"}))
    assert SnapStore(d).restore() == ("ten", 10)


def test_013_damaged_newest_needs_fallback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = tmp_path / "state"
    minisnap_013(d, {3: "three", 12: "twelve"})
    (d / f"snapshot_{12:020d}.json").write_text('{"seq": 12, "sta')
    with pytest.raises(CorruptSnapshot) as e:
        SnapStore(d).restore()
    assert e.value.path == str(d / f"snapshot_{12:020d}.json")
    with caplog.at_level(logging.WARNING, logger="snapmixin"):
        assert SnapStore(d).restore(fallback=True) == ("three", 3)
    assert any("snapshot_" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("keep", [1, 3])
def test_create_on_top_of_013(tmp_path: Path, keep: int) -> None:
    d = tmp_path / "state"
    minisnap_013(d, {3: {"counter": 3, "names": []}, 12: {"counter": 12, "names": ["x"]}})
    store = SnapStore(d, keep=keep)
    with pytest.raises(SeqRegression) as e:
        store.create(AppState(0, []), 11)
    assert e.value.stored == 12
    assert store.restore() == ({"counter": 12, "names": ["x"]}, 12)
    store.create(AppState(13, []), 13)
    assert store.restore(AppState) == (AppState(13, []), 13)
    store.create(AppState(14, []), 14)
    assert store.restore(AppState) == (AppState(14, []), 14)
    with pytest.raises(SeqRegression):
        store.create(AppState(0, []), 12)
    seqs = [i.seq for i in store.history()]
    assert seqs[0] == 14 and seqs == sorted(seqs, reverse=True)
    # the seed's files are not deleted (they are the user's data); they are older generations
    assert (d / f"snapshot_{12:020d}.json").exists()


def test_013_after_snapmixin_snapshot_is_damaged_seq_still_never_regresses(tmp_path: Path) -> None:
    d = tmp_path / "state"
    minisnap_013(d, {12: "twelve"})
    store = SnapStore(d)
    store.create("thirteen", 13)
    (d / "snapshot.json").write_text("garbage")
    (d / "snapshot.seq").unlink()
    with pytest.raises(SeqRegression):
        store.create("eleven", 11)
    store.create("fourteen", 14)
    assert store.restore() == ("fourteen", 14)


@pytest.mark.parametrize("bare", [[1, 2, 3], "text", 0, None, {"state": 1, "seq": 2}, {"a": 1}],
                         ids=repr)
def test_archived_011_generation_of_any_shape_stays_in_history(tmp_path: Path, bare: object) -> None:
    """A 0.1.1 bare state archived into history/ is readable whatever JSON value it is."""
    d = tmp_path / "state"
    minisnap_011(d, bare, 10)
    store = SnapStore(d, keep=3)
    store.create({"new": 1}, 11)
    hist = store.history()
    assert [i.seq for i in hist] == [11, 10]
    assert hist[1].layout == "minisnap-0.1.1"
    (d / "snapshot.json").write_text("{")
    assert store.restore(fallback=True) == (bare, 10)
    # and a damaged archived bare state is still reported as damaged
    (d / "history" / f"snapshot-{10:020d}.json").write_text("[1, 2")
    with pytest.raises(CorruptSnapshot):
        store.restore(fallback=True)
