"""numpy arrays and scalars: exact dtype, shape and bits; a readable header; numpy never required."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from snapmixin import Snapshottable, SnapStore
from snapmixin.codec.arrays import READABLE_MAX
from snapmixin.errors import DecodeError, EncodeError


@dataclass
class Holder:
    a: np.ndarray
    typed: npt.NDArray[np.float64] | None = None
    many: list[np.ndarray] = field(default_factory=list)
    named: dict[str, np.ndarray] = field(default_factory=dict)


def same(x: Any, y: Any) -> bool:
    """Same class, dtype, shape and bytes."""
    return (type(x) is type(y) and x.dtype == y.dtype and x.shape == y.shape
            and np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes())


def roundtrip(tmp_path: Path, obj: Any) -> tuple[Any, dict[str, Any]]:
    store = SnapStore(tmp_path / "s")
    seq = (store.latest().seq + 1) if store.exists() else 1  # type: ignore[union-attr]
    store.create(obj, seq)
    state = json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]
    return store.restore(type(obj))[0], state


ARRAYS = {
    "float64 specials": np.array([0.1, -0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324]),
    "float32": np.array([1.1, -0.0, math.nan, 3.4e38], dtype=np.float32),
    "float16": np.array([0.5, 65504, -math.inf], dtype=np.float16),
    "int64 extremes": np.array([-(2**63), 2**63 - 1, 0]),
    "uint64 max": np.array([2**64 - 1, 0], dtype=np.uint64),
    "int8": np.array([-128, 127], dtype=np.int8),
    "bool": np.array([[True, False], [False, True]]),
    "complex": np.array([1 + 2j, complex(math.nan, -0.0), complex(math.inf, 1)]),
    "complex64": np.array([1.5 - 2j], dtype=np.complex64),
    "datetime64": np.array(["2024-02-29T12:00:00", "NaT"], dtype="datetime64[s]"),
    "datetime64 ns": np.array(["2024-02-29T12:00:00.123456789"], dtype="datetime64[ns]"),
    "timedelta64": np.array([5, -3], dtype="timedelta64[ms]"),
    "unicode": np.array(["héllo", "", "ok"]),
    "bytes": np.array([b"a\x00b", b"zz"]),
    "big-endian": np.array([1.5, -2.25, math.nan], dtype=">f8"),
    "big-endian int": np.arange(6, dtype=">i4").reshape(2, 3),
    "2-d": np.arange(6.0).reshape(2, 3),
    "3-d fortran": np.asfortranarray(np.arange(24, dtype=np.int16).reshape(2, 3, 4)),
    "0-d": np.array(3.25),
    "empty": np.zeros((0, 3)),
    "large": np.linspace(-1, 1, 1000),
    "large with nan": np.where(np.arange(2000) % 7 == 0, math.nan, np.arange(2000.0)),
    "longdouble": np.array([1.0, 1 / 3], dtype=np.longdouble),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_exact_round_trip(tmp_path: Path, name: str) -> None:
    arr = ARRAYS[name]
    back, state = roundtrip(tmp_path, Holder(arr))
    assert same(back.a, arr), (back.a, arr)
    assert back.a.flags.writeable
    assert state["a"]["dtype"] == arr.dtype.str and state["a"]["shape"] == list(arr.shape)


def test_nan_payloads_and_negative_nan_keep_their_bits(tmp_path: Path) -> None:
    bits = np.array([0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001], dtype=np.uint64)
    arr = bits.view(np.float64)
    back, state = roundtrip(tmp_path, Holder(arr))
    assert back.a.view(np.uint64).tolist() == bits.tolist()
    assert "data_b64" in state["a"]  # "nan" would lose the payload: not the readable form


def test_small_arrays_are_readable_large_ones_compact_with_a_readable_header(tmp_path: Path) -> None:
    small = np.array([[1.0, math.nan], [-0.0, -math.inf]])
    back, state = roundtrip(tmp_path, Holder(small))
    assert state["a"] == {"dtype": "<f8", "shape": [2, 2], "data": [1.0, "nan", -0.0, "-inf"]}
    assert same(back.a, small)

    at_limit = np.arange(READABLE_MAX, dtype=np.int32)
    _, state = roundtrip(tmp_path, Holder(at_limit))
    assert state["a"]["data"] == list(range(READABLE_MAX))

    over = np.arange(READABLE_MAX + 1, dtype=np.int32)
    back, state = roundtrip(tmp_path, Holder(over))
    assert set(state["a"]) == {"dtype", "shape", "data_b64"}
    assert state["a"]["dtype"] == "<i4" and state["a"]["shape"] == [READABLE_MAX + 1]
    assert same(back.a, over)


def test_b64_holds_little_endian_bytes(tmp_path: Path) -> None:
    import base64
    arr = np.arange(READABLE_MAX + 1, dtype=">u2")
    back, state = roundtrip(tmp_path, Holder(arr))
    raw = base64.b64decode(state["a"]["data_b64"])
    assert raw[:4] == b"\x00\x00\x01\x00" and state["a"]["dtype"] == ">u2"
    assert same(back.a, arr)


def test_arrays_at_any_depth_and_typed_annotations(tmp_path: Path) -> None:
    h = Holder(np.zeros(2), typed=np.array([1.5]), many=[np.arange(3), np.ones((2, 2), dtype=bool)],
               named={"w": np.full(3, -0.0)})
    back, _ = roundtrip(tmp_path, h)
    assert back.typed is not None and same(back.typed, h.typed)
    assert all(same(x, y) for x, y in zip(back.many, h.many, strict=True))
    assert same(back.named["w"], h.named["w"])


@dataclass
class Scalars:
    f: np.float64 = np.float64(0)  # noqa: RUF009 - immutable scalars
    f32: np.float32 = np.float32(0)  # noqa: RUF009
    i: np.int64 = np.int64(0)  # noqa: RUF009
    u: np.uint64 = np.uint64(0)  # noqa: RUF009
    b: np.bool_ = np.bool_(False)  # noqa: RUF009
    anyf: np.floating = np.float64(0)  # type: ignore[type-arg]  # noqa: RUF009


def test_numpy_scalars_keep_their_type_and_bits(tmp_path: Path) -> None:
    s = Scalars(np.float64(math.nan), np.float32(-0.0), np.int64(-(2**63)), np.uint64(2**64 - 1),
                np.bool_(True), np.float16(1.5))
    back, state = roundtrip(tmp_path, s)
    for name in ("f", "f32", "i", "u", "b", "anyf"):
        x, y = getattr(back, name), getattr(s, name)
        assert type(x) is type(y) and np.asarray(x).tobytes() == np.asarray(y).tobytes(), name
    assert state["f32"] == {"dtype": "<f4", "shape": [], "data": [-0.0]}


def test_a_scalar_written_as_a_plain_number_is_read(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({"f": 2.5, "i": 7, "b": True}, 1)  # what snapshots held before scalars had a form
    back = store.restore(Scalars)[0]
    assert (type(back.f), back.f, type(back.i), back.i, type(back.b)) == (
        np.float64, 2.5, np.int64, 7, np.bool_)


def test_object_and_structured_arrays_are_refused_clearly(tmp_path: Path) -> None:
    store = SnapStore(tmp_path / "s")
    with pytest.raises(EncodeError, match=r"dtype object cannot be saved") as e:
        store.create(Holder(np.array([1, "a", None], dtype=object)), 1)
    assert e.value.json_path == "$.a"
    with pytest.raises(EncodeError, match=r"structured dtype"):
        store.create(Holder(np.zeros(2, dtype=[("x", "<f8"), ("y", "<i4")])), 1)
    assert not store.exists()


@pytest.mark.parametrize(("bad", "why"), [
    ({"dtype": "<f8", "shape": [3], "data": [1.0, 2.0]}, "holds 2 items"),
    ({"dtype": "<f8", "shape": [2], "data_b64": "AAAA"}, "holds 3 bytes"),
    ({"dtype": "<f8", "shape": [1], "data_b64": "not base64!"}, "not valid base64"),
    ({"dtype": "|O", "shape": [1], "data": [1]}, "object and structured dtypes"),
    ({"dtype": "nonsense", "shape": [1], "data": [1]}, "not a numpy dtype"),
    ({"dtype": "<f8", "shape": [1], "data": ["1.0"]}, "expected a number"),
    ({"dtype": "|u1", "shape": [1], "data": [300]}, "out of the range of uint8"),
    ({"dtype": "<f8", "shape": [1], "data": [1.0], "extra": 1}, "unknown key 'extra'"),
    ({"dtype": "<f8", "shape": [1]}, "exactly one of 'data' and 'data_b64'"),
    ([1.0, 2.0], "expected an object with 'dtype'"),
    ({"dtype": "<U99999999", "shape": [1], "data": ["a"]}, "would take more than"),
    ({"dtype": "<f8", "shape": [0, 2**62, 2**62], "data_b64": ""}, "cannot make an array of shape"),
])
def test_a_damaged_array_is_a_decode_error_with_its_path(tmp_path: Path, bad: Any, why: str) -> None:
    store = SnapStore(tmp_path / "s")
    store.create({"a": {"dtype": "<f8", "shape": [0], "data": []}, "many": [bad]}, 1)
    with pytest.raises(DecodeError) as e:
        store.restore(Holder)
    assert e.value.json_path == "$.many[0]", e.value
    assert why in str(e.value), e.value


@dataclass
class Job(Snapshottable):
    weights: np.ndarray = field(default_factory=lambda: np.zeros(3))
    step: int = 0


def test_in_place_changes_are_not_tracked_mark_mutated_counts_them(tmp_path: Path) -> None:
    job = Job.open(tmp_path / "job")
    job.weights[0] = 1.5  # in place: tracking cannot see it
    assert job.snapshot_seq == 0
    job.mark_mutated()
    assert job.snapshot_seq == 1
    job.snapshot()
    job.weights = job.weights * 2  # an assignment: counted
    assert job.snapshot_seq == 2
    job.snapshot()
    again = Job.open(tmp_path / "job")
    assert same(again.weights, np.array([3.0, 0.0, 0.0])) and again.snapshot_seq == 2


def test_snapmixin_never_imports_numpy_and_works_without_it(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from dataclasses import dataclass\n"
        "import snapmixin\n"
        "from snapmixin import SnapStore\n"
        "@dataclass\n"
        "class S:\n"
        "    n: int = 1\n"
        "st = SnapStore(sys.argv[1]); st.create(S(), 1); assert st.restore(S)[0] == S()\n"
        "assert 'numpy' not in sys.modules, 'snapmixin imported numpy'\n"
        "sys.modules['numpy'] = None  # from here on, `import numpy` fails as if not installed\n"
        "st.create(S(2), 2); assert st.restore(S)[0] == S(2)\n"
        "print('fine')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "fine", proc.stderr
