"""The snapshot envelope: format version 2 (written and read) and version 1 (read).

Both versions are pretty JSON (indent 2, UTF-8, a trailing newline), one
object whose first members are ``"format": "snapmixin"`` and
``"format_version"``, then ``seq``, ``schema_version``, ``created_at``.

Version 2 (what this version writes) ends with the checksum, which covers
every byte before it::

    {
      "format": "snapmixin",
      "format_version": 2,
      "seq": 42,
      "schema_version": 1,
      "created_at": "2026-11-25T09:41:07.125000Z",
      "state": {
        "level": 2
      },
      "checksum": "sha256:9c1f..."
    }

Verification rule of version 2 (all another implementation needs):

1. The file ends with the *trailer*: the bytes ``,\\n  "checksum": "sha256:``,
   64 lowercase hexadecimal digits, then ``"\\n}\\n``.
2. The SHA-256 of every byte before the trailer, as 64 lowercase hex digits,
   equals the digits in the trailer.
3. The whole file is one JSON object with no duplicate keys, whose
   ``"format"`` is ``"snapmixin"`` and ``"format_version"`` is ``2``.

Every byte is either hashed or part of the fixed-shape trailer, so any change
(one flipped bit included) breaks rule 1 or 2. The checksum is also the
generation's identity (``SnapshotInfo.generation``): two commits never write
the same bytes, since each carries its commit time, and commit times of one
store only go up. It is written in one pass: the envelope is formatted once,
hashed once, and the trailer appended; the state is never searched for.

Version 1 (snapmixin 0.1.0) has ``"checksum"`` in the header and ``"state"``
last; its checksum is the SHA-256 of the exact bytes of the ``state`` value
as they stand in the file (first character to last, no surrounding
whitespace). Header bytes are not covered: that is why version 2 exists.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, TypeGuard, overload

from .. import codec as _codec
from ..errors import CorruptSnapshot

__all__ = [
    "FORMAT",
    "READABLE",
    "SEQ_MAX",
    "SNAPSHOT",
    "STATE_KEY",
    "TRAILER_SIZE",
    "V1",
    "V2",
    "WRITTEN",
    "Digest",
    "Encoded",
    "check_json",
    "checksum_of",
    "encode_v1",
    "encode_v2",
    "encode_v2_parts",
    "history_name",
    "in_range",
    "iso_time",
    "load_field",
    "parse_seq_text",
    "short",
    "split_trailer",
    "stamp",
    "state_json_of",
    "trailer_at",
    "trailer_checksum",
    "trailer_of",
    "valid_seq",
    "verify_v2",
]

FORMAT = "snapmixin"
V1 = 1
V2 = 2
#: The format version new writes use.
WRITTEN = V2
#: The format versions this snapmixin reads.
READABLE = frozenset({V1, V2})
SNAPSHOT = "snapshot.json"
#: The bytes that open the ``"state"`` member in both versions (the header holds no newline
#: before it, so the first occurrence is the state's).
STATE_KEY = b'\n  "state": '

_TRAILER_HEAD = b',\n  "checksum": "sha256:'
_TRAILER_TAIL = b'"\n}\n'
#: The fixed size of a version 2 trailer: its punctuation, the key and 64 hex digits.
TRAILER_SIZE = len(_TRAILER_HEAD) + 64 + len(_TRAILER_TAIL)
_TRAILER_RE = re.compile(re.escape(_TRAILER_HEAD) + rb"([0-9a-f]{64})" + re.escape(_TRAILER_TAIL) + rb"\Z")


def iso_time(dt: datetime) -> str:
    """``created_at`` as written: UTC, microseconds, a ``Z`` suffix (what
    ``strftime("%Y-%m-%dT%H:%M:%S.%fZ")`` gives, in a quarter of its time: once per commit)."""
    u = dt if dt.tzinfo is timezone.utc else dt.astimezone(timezone.utc)
    if u.year < 1000:  # (strftime's %Y does not pad such years on every platform: its own answer)
        return u.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
        u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond)


def stamp(dt: datetime) -> str:
    """A commit time in a file name: fixed width, so names sort by commit time."""
    u = dt if dt.tzinfo is timezone.utc else dt.astimezone(timezone.utc)
    # (one %-format: half the time of an f-string with seven format specs; once per archiving)
    return "%04d%02d%02dT%02d%02d%02d%06dZ" % (  # noqa: UP031
        u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond)


def history_name(seq: int, created_at: datetime | None) -> str:
    """The name under ``history/`` of the generation (seq, commit time): never reused."""
    if created_at is None:  # a minisnap 0.1.1 bare state: no commit time to name it by
        return f"snapshot-{seq:020d}.json"
    return f"snapshot-{seq:020d}-{stamp(created_at)}.json"


def checksum_of(data: bytes | memoryview) -> str:
    """``"sha256:<64 lowercase hex>"`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _head(version: int, seq: int, schema_version: int, created_at: datetime) -> bytes:
    return (f'{{"format":"{FORMAT}","format_version":{version},"seq":{seq},'
            f'"schema_version":{schema_version},"created_at":"{iso_time(created_at)}",').encode()


def encode_v2(state_json: bytes, seq: int, schema_version: int,
              created_at: datetime) -> tuple[list[bytes | memoryview], str, int]:
    """A version 2 ``snapshot.json`` for compact ``state_json``.

    Returns the buffers to write one after the other, the checksum
    (``"sha256:<hex>"``, also the generation identity) and the total size.
    May raise :class:`snapmixin.codec.EncodeFailure` (nesting too deep to format).
    """
    out = _codec.pretty(b"".join((_head(V2, seq, schema_version, created_at), b'"state":',
                                  state_json, b"}")))
    body = memoryview(out)[:-2]  # the formatted object without its closing b"\n}"
    digest = hashlib.sha256(body).hexdigest()
    trailer = trailer_of("sha256:" + digest)
    return [body, trailer], "sha256:" + digest, len(body) + len(trailer)


class Digest:
    """The SHA-256 of a buffer, made in a worker thread when the buffer is large (``hashlib``
    releases the GIL while it hashes, so the caller goes on meanwhile), else at once."""

    __slots__ = ("_hex", "_worker", "data")

    #: buffers at least this large are hashed in a worker thread
    THREADED = 1 << 20

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        self._hex: str | None = None
        self._worker: threading.Thread | None = None
        if len(data) < self.THREADED:
            self._hex = hashlib.sha256(data).hexdigest()
            self.data = b""
        else:
            hashing = threading.Lock()
            hashing.acquire()
            self._worker = threading.Thread(target=self._run, args=(hashing,), name="snapmixin-sha256",
                                            daemon=True)
            self._worker.start()
            # Wait until the worker is about to hash: from then on it runs without the GIL, so
            # what the caller does next (formatting is done; the NaN scan, the lock, the write)
            # overlaps it. Without the wait the worker may not get the GIL before the caller's
            # next long call in C ends, and would hash only after it.
            hashing.acquire()

    def _run(self, hashing: threading.Lock) -> None:
        hashing.release()
        self._hex = hashlib.sha256(self.data).hexdigest()
        self.data = b""  # hashed: the buffer is not kept alive for it

    def hexdigest(self) -> str:
        """The 64 hex digits (waits for the worker thread, if there is one)."""
        if self._hex is None and self._worker is not None:
            self._worker.join()
        if self._hex is None:  # pragma: no cover - the worker cannot fail on a buffer
            self._hex = hashlib.sha256(self.data).hexdigest()
        return self._hex


class Encoded(Sequence[bytes | memoryview]):
    """A version 2 ``snapshot.json`` about to be written: the formatted body, and its trailer.

    Iterating gives the buffers to write one after the other (the body, then the trailer),
    as :meth:`Backend.commit <snapmixin.store.backend.Backend.commit>` takes them. A large
    body is hashed in a worker thread (:class:`Digest`), started at once: the writer takes
    its lock, reads the current generation and writes the body meanwhile, and waits for the
    digest only when it needs the trailer or the checksum.
    """

    __slots__ = ("_digest", "body", "size")

    THREADED = Digest.THREADED

    def __init__(self, body: memoryview) -> None:
        self.body = body
        self.size = len(body) + TRAILER_SIZE
        self._digest = Digest(body)

    @property
    def checksum(self) -> str:
        """``"sha256:<hex>"`` of the body (waits for the worker thread, if there is one)."""
        return "sha256:" + self._digest.hexdigest()

    @property
    def trailer(self) -> bytes:
        return trailer_of(self.checksum)

    def __len__(self) -> int:
        return 2

    @overload
    def __getitem__(self, i: int) -> bytes | memoryview: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[bytes | memoryview]: ...

    def __getitem__(self, i: int | slice) -> bytes | memoryview | Sequence[bytes | memoryview]:
        return (self.body, self.trailer)[i]

    def __iter__(self) -> Iterator[bytes | memoryview]:
        yield self.body
        yield self.trailer


def encode_v2_parts(state_json: bytes | list[bytes], seq: int, schema_version: int,
                    created_at: datetime,
                    check: Callable[[bytes | memoryview], None] | None = None) -> Encoded:
    """:func:`encode_v2` as an :class:`Encoded` (the checksum of a large body still being made).

    ``state_json`` may be handed over in a one-item list, which is emptied: the compact state
    is then freed as soon as it is copied into the envelope, before the envelope is formatted
    (the peak memory of a save: the envelope and its formatted text, not the state besides).
    ``check`` (the encoder's NaN scan) is run on the compact envelope once it is formatted, while
    a large body is being hashed (a NaN raises before anything is written all the same)."""
    if isinstance(state_json, list):
        compact = b"".join((_head(V2, seq, schema_version, created_at), b'"state":', state_json.pop(),
                            b"}"))
    else:
        compact = b"".join((_head(V2, seq, schema_version, created_at), b'"state":', state_json, b"}"))
    out = _codec.pretty(compact)
    # The formatted object without its closing b"\n}". A large body is hashed in a worker thread
    # from here on (Encoded), so the NaN scan below runs meanwhile on the other core.
    encoded = Encoded(memoryview(out)[:-2])
    if check is not None:
        check(compact)  # the header holds no "null": only the state can match
    return encoded


def state_json_of(encoded: Encoded) -> bytes:
    """The compact state an :class:`Encoded` was made from (its formatted state made compact
    again: the same bytes, since formatting only adds whitespace between tokens)."""
    body = encoded.body
    i = bytes(body[:65536]).find(STATE_KEY)
    return _codec.compact(body[i + len(STATE_KEY):])


_PLACEHOLDER = b"sha256:" + b"0" * 64


def encode_v1(state_json: bytes, seq: int, schema_version: int,
              created_at: datetime) -> tuple[list[bytes | memoryview], str, int]:
    """A version 1 ``snapshot.json`` (what snapmixin 0.1.0 wrote). Kept for tools and tests
    that need a version 1 file; the store never writes one."""
    head = (_head(V1, seq, schema_version, created_at)
            + f'"checksum":"{_PLACEHOLDER.decode()}","state":'.encode())
    out = _codec.pretty(b"".join((head, state_json, b"}")))
    view = memoryview(out)
    start = out.index(STATE_KEY) + len(STATE_KEY)
    checksum = checksum_of(view[start:len(out) - 2])
    p = out.index(_PLACEHOLDER, 0, start)
    return [view[:p], checksum.encode(), view[p + len(_PLACEHOLDER):], b"\n"], checksum, len(out) + 1


def split_trailer(data: bytes | memoryview) -> tuple[memoryview, str] | None:
    """``(hashed bytes, checksum)`` when ``data`` ends with a version 2 trailer, else None."""
    view = memoryview(data)
    if len(view) < TRAILER_SIZE:
        return None
    m = _TRAILER_RE.match(bytes(view[len(view) - TRAILER_SIZE:]))
    if m is None:
        return None
    return view[:len(view) - TRAILER_SIZE], "sha256:" + m.group(1).decode()


def trailer_of(checksum: str) -> bytes:
    """The version 2 trailer that holds ``checksum`` (``"sha256:<64 hex>"``)."""
    return b"".join((_TRAILER_HEAD, checksum[7:].encode(), _TRAILER_TAIL))


def trailer_at(data: bytes, end: int) -> str | None:
    """The checksum in the version 2 trailer that starts at ``end`` and ends ``data``, or None
    (:func:`split_trailer` without copying the trailer or making a view of the file)."""
    m = _TRAILER_RE.match(data, end)
    return None if m is None else "sha256:" + m.group(1).decode()


def trailer_checksum(tail: bytes) -> str | None:
    """The checksum of a version 2 file from its last :data:`TRAILER_SIZE` bytes, or None."""
    m = _TRAILER_RE.match(tail)
    return None if m is None else "sha256:" + m.group(1).decode()


def verify_v2(data: bytes | memoryview) -> bool:
    """Rules 1 and 2 of the verification rule: the trailer is there and the checksum holds."""
    found = split_trailer(data)
    return found is not None and checksum_of(found[0]) == found[1]


# -- values of a header, checked once for every reader ---------------------------------------------
#: The largest seq (and schema version): a signed 64-bit integer.
SEQ_MAX = 2**63 - 1


def in_range(value: object, low: int = 0) -> TypeGuard[int]:
    """Whether ``value`` is an int (not a bool) between ``low`` and :data:`SEQ_MAX`: the range
    check of a seq (``low=0``) and of a schema version (``low=1``), on every path."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= SEQ_MAX


def parse_seq_text(data: bytes) -> int | None:
    """The seq in a ``snapshot.seq`` file's bytes (ASCII digits, whitespace around), or None."""
    text = data.strip()
    if not text.isdigit():  # bytes.isdigit: ASCII digits only
        return None
    seq = int(text)
    return seq if seq <= SEQ_MAX else None


def short(value: Any) -> str:
    """``repr(value)``, cut short (a 10**100000 int must not make a message of 100,000 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def valid_seq(seq: Any, path: str) -> int:
    """``seq`` read from a file, or ``CorruptSnapshot`` naming the file."""
    if not in_range(seq):
        raise CorruptSnapshot(f"{path}: seq must be an integer between 0 and 2**63 - 1, not {short(seq)}",
                              path=path)
    return int(seq)


def load_field(raw: _codec.RawJSON, key: str, path: str) -> Any:
    """One top-level member's value (``CorruptSnapshot`` when it cannot be read)."""
    try:
        return _codec.loads(raw)
    except _codec.DecodeFailure as e:  # pragma: no cover - the whole file parsed already
        raise CorruptSnapshot(f"{path}: bad {key!r}: {e.message}", path=path) from e
    except UnicodeDecodeError as e:  # split_object does not check the members' UTF-8
        raise CorruptSnapshot(f"{path}: bad {key!r}: not valid UTF-8 ({e})", path=path) from e


def check_json(data: bytes, path: str) -> None:
    """``CorruptSnapshot`` unless ``data`` is one JSON text."""
    try:
        _codec.loads(data)
    except _codec.DecodeFailure as e:
        raise CorruptSnapshot(f"{path}: {e.message}", path=path) from e
    except UnicodeDecodeError as e:
        raise CorruptSnapshot(f"{path}: not valid UTF-8 ({e})", path=path) from e
