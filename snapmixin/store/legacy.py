"""The seed's layouts (minisnap), read only.

- minisnap 0.1.1: ``snapshot.json`` is the bare state (any JSON value, whatever
  its keys), and the seq is in ``snapshot.seq``; a ``history/`` file of such a
  directory is a bare state too, its seq in its name.
- minisnap 0.1.3: ``snapshot_<seq>.json`` files holding ``{"seq", "state"}``.

Neither carries a checksum or a commit time. Which layout a file has is told
apart in :func:`read`; one of our envelopes whose ``"format"`` was damaged is
refused here, so it is never mistaken for a bare state.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from .. import codec as _codec
from ..errors import CorruptSnapshot
from . import format as _fmt

__all__ = ["DAMAGED_ENVELOPE_KEYS", "ENVELOPE_KEYS", "HISTORY_V0_RE", "MINISNAP11", "MINISNAP13",
           "MINISNAP13_RE", "read"]

MINISNAP11 = "minisnap-0.1.1"
MINISNAP13 = "minisnap-0.1.3"
#: ``snapshot_<seq>.json``, minisnap 0.1.3's file names.
MINISNAP13_RE = re.compile(r"^snapshot_(\d{1,20})\.json$", re.ASCII)
#: History names of snapmixin 0.1.0 (by seq only), also used for archived minisnap 0.1.1 states.
HISTORY_V0_RE = re.compile(r"^snapshot-(\d{20})\.json$", re.ASCII)
#: The keys of our envelope; this many or more of them without ``"format": "snapmixin"`` is one
#: of ours damaged, not a minisnap 0.1.1 state.
ENVELOPE_KEYS = frozenset({"format", "format_version", "seq", "schema_version", "created_at",
                           "checksum", "state"})
DAMAGED_ENVELOPE_KEYS = 5


def read(top: dict[str, _codec.RawJSON] | None, data: bytes, path: str, seq_hint: int | None,
         seqfile: Callable[[], int | None], seqfile_name: str) -> tuple[int, str, bytes]:
    """``(seq, layout, raw state)`` of a file that is not a snapmixin envelope, or
    ``CorruptSnapshot``. ``top`` is the file split into top-level members (None when it is
    valid JSON but not an object); ``seqfile()`` reads ``snapshot.seq`` (None if unusable)."""
    name = os.path.basename(path)
    if top is not None and len(ENVELOPE_KEYS.intersection(top)) >= DAMAGED_ENVELOPE_KEYS:
        # One of our envelopes with its "format" damaged (a flipped bit in the key or the
        # value): not a minisnap 0.1.1 bare state, which would return the envelope as state.
        raise CorruptSnapshot(f"{path}: a damaged snapmixin envelope (no \"format\": \"{_fmt.FORMAT}\"; "
                              f"keys {sorted(top)[:10]})", path=path)
    if MINISNAP13_RE.match(name) and top is not None and "state" in top and "seq" in top:
        return _fmt.valid_seq(_fmt.load_field(top["seq"], "seq", path), path), MINISNAP13, bytes(top["state"])
    if name == _fmt.SNAPSHOT:
        # minisnap 0.1.1: the bare state, with the seq in snapshot.seq.
        seq = seqfile()
        if seq is not None:
            _fmt.check_json(data, path)
            return seq, MINISNAP11, data.strip()
        raise CorruptSnapshot(f"{path}: not a snapmixin snapshot (no \"format\": \"{_fmt.FORMAT}\") and "
                              f"{seqfile_name} holds no seq, so it is not a minisnap 0.1.1 one either",
                              path=path)
    if seq_hint is not None and (HISTORY_V0_RE.match(name) or (top is not None and "state" not in top)):
        # history entry archived from a minisnap 0.1.1 directory: bare state (any JSON value:
        # a list, a string, a dict with a "state" key...), seq in its name
        _fmt.check_json(data, path)
        return seq_hint, MINISNAP11, data.strip()
    raise CorruptSnapshot(f"{path}: not a snapmixin snapshot (no \"format\": \"{_fmt.FORMAT}\")", path=path)
