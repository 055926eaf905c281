"""Format version 2 (issue 11): every byte covered, a rule others can follow, version 1 still read."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from snapmixin import SnapStore
from snapmixin.errors import CorruptSnapshot, SnapError
from tests.support import TRAILER_SIZE, reseal, unseal, verify_v2, write_v1

STATE = {"level": 3, "name": "café", "items": [1, 2.5, None, True], "nested": {"k": "v"}}


def test_every_single_bit_flip_is_detected_or_harmless(tmp_path: Path) -> None:
    """Exhaustive: each bit of a real version 2 file flipped in turn; restore() either raises
    CorruptSnapshot or returns the very (state, seq, schema_version) that was written."""
    d = tmp_path / "s"
    store = SnapStore(d, schema_version=3)
    store.create(STATE, 42)
    p = d / "snapshot.json"
    original = p.read_bytes()
    assert json.loads(original)["format_version"] == 2
    detected = harmless = 0
    for i in range(len(original)):
        for bit in range(8):
            flipped = bytearray(original)
            flipped[i] ^= 1 << bit
            p.write_bytes(bytes(flipped))
            try:
                state, seq = store.restore()
                latest = store.latest()
            except CorruptSnapshot:
                detected += 1
                continue
            assert (state, seq) == (STATE, 42), (i, bit)
            assert latest is not None and (latest.seq, latest.schema_version) == (42, 3), (i, bit)
            harmless += 1
    assert detected + harmless == len(original) * 8
    assert harmless == 0  # every byte is hashed or in the fixed trailer: nothing is harmless
    p.write_bytes(original)
    assert store.restore() == (STATE, 42)


def test_files_verify_with_the_documented_rule_alone(tmp_path: Path) -> None:
    """tests.support.verify_v2 uses hashlib/re/json only: the library's files pass it, and a
    file the rule rejects is one the library rejects."""
    d = tmp_path / "s"
    store = SnapStore(d, keep=3)
    for seq, state in enumerate(({"a": 1}, [1, "two"], "x" * 70000, {"deep": [[{"e": "é"}]]}), 1):
        info = store.create(state, seq)
        raw = (d / "snapshot.json").read_bytes()
        doc = verify_v2(raw)
        assert (doc["seq"], doc["state"], doc["checksum"]) == (seq, state, info.checksum)
        assert info.generation == doc["checksum"]
        assert list(doc) == ["format", "format_version", "seq", "schema_version", "created_at",
                             "state", "checksum"]
    edited = raw.replace(b'"seq": 4', b'"seq": 5')
    with pytest.raises(ValueError, match="checksum"):
        verify_v2(edited)
    (d / "snapshot.json").write_bytes(edited)
    with pytest.raises(CorruptSnapshot, match="checksum mismatch"):
        store.restore()
    # a file made by another tool following the rule is accepted
    (d / "snapshot.json").write_bytes(reseal(unseal(edited)))
    assert store.restore() == ({"deep": [[{"e": "é"}]]}, 5)


def test_head_reads_take_the_checksum_from_the_tail(tmp_path: Path) -> None:
    """Over 64 KiB, latest()/history() read the header and the trailer, not the whole file."""
    from snapmixin.fsio import FileOps

    class Counting(FileOps):
        def __init__(self) -> None:
            self.read_bytes = 0

        def read(self, fd: int, size: int) -> bytes:
            b = super().read(fd, size)
            self.read_bytes += len(b)
            return b

        def read_at(self, fd: int, size: int, offset: int) -> bytes:
            b = super().read_at(fd, size, offset)
            self.read_bytes += len(b)
            return b

    d = tmp_path / "s"
    fs = Counting()
    store = SnapStore(d, keep=2, fs=fs)
    store.create({"blob": "x" * 2_000_000}, 1)
    info = store.create({"blob": "y" * 2_000_000}, 2)
    fs.read_bytes = 0
    latest = store.latest()
    assert latest == info and latest.generation == info.checksum
    assert [h.seq for h in store.history()] == [2, 1]
    assert fs.read_bytes < 4 * (64 * 1024 + TRAILER_SIZE)
    # a truncated tail is damage for the head reader too
    p = d / "snapshot.json"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(CorruptSnapshot, match="checksum"):
        store.latest()


def test_version_1_files_restore_verify_and_take_new_writes(tmp_path: Path) -> None:
    d = tmp_path / "s"
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
    write_v1(d, {"old": True}, 7, created_at=when)
    store = SnapStore(d, keep=3)
    assert store.restore() == ({"old": True}, 7)
    latest = store.latest()
    assert latest is not None and latest.layout == "snapmixin-1" and latest.created_at == when
    info = store.create({"old": False}, 8, expect=latest.generation)
    assert info.layout == "snapmixin-2"
    assert json.loads((d / "snapshot.json").read_bytes())["format_version"] == 2
    assert [(h.seq, h.layout) for h in store.history()] == [(8, "snapmixin-2"), (7, "snapmixin-1")]
    # a version 1 file whose state was edited is still detected
    p = write_v1(tmp_path / "t", {"n": 1}, 1)
    p.write_bytes(p.read_bytes().replace(b'"n": 1', b'"n": 2'))
    with pytest.raises(CorruptSnapshot, match="checksum"):
        SnapStore(tmp_path / "t").restore()


def test_a_version_2_file_cut_short_is_damage(tmp_path: Path) -> None:
    d = tmp_path / "s"
    store = SnapStore(d)
    store.create(STATE, 1)
    p = d / "snapshot.json"
    raw = p.read_bytes()
    for cut in (1, 2, 5, TRAILER_SIZE, TRAILER_SIZE + 3):
        p.write_bytes(raw[:-cut])
        with pytest.raises(CorruptSnapshot) as e:
            store.restore()
        assert isinstance(e.value, SnapError) and e.value.path == str(p)


def test_iso_time_writes_what_strftime_writes() -> None:
    """created_at as written (format.iso_time, formatted by hand for speed) is strftime's
    "%Y-%m-%dT%H:%M:%S.%fZ" of the time in UTC, for any aware or naive time, any zone."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from snapmixin.store.format import iso_time

    zones = st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                             dt.timezone(dt.timedelta(hours=-11)), None])

    @settings(max_examples=300, deadline=None)
    @given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)), zones)
    def check(when: dt.datetime, zone: dt.tzinfo | None) -> None:
        t = when.replace(tzinfo=zone)
        assert iso_time(t) == t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    check()
    fixed = dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    assert iso_time(fixed) == "2026-01-02T03:04:05.000006Z"
