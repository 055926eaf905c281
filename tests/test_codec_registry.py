"""The codec package's seams (issue 11): one registry line adds an adapter, one type hook teaches a
foreign type at any depth, and only ``codec/json.py`` talks to a JSON library."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from snapmixin import SnapStore, codec
from snapmixin.codec import Adapter, Codec, hooks

CODEC_DIR = Path(codec.__file__).parent


class _FractionHook:
    """What issue 15's ``register_type(Fraction, encode=str, decode=Fraction)`` will add."""

    def handles(self, cls: type) -> bool:
        return issubclass(cls, Fraction)

    def encode(self, obj: Any) -> Any:
        return str(obj)

    def decode(self, cls: type, value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError(f"expected a fraction as text, got {value!r}")
        return cls(value)


@dataclass
class Share:
    part: Fraction


@dataclass
class Ledger:
    total: Fraction
    parts: list[Fraction] = field(default_factory=list)
    named: dict[str, Fraction] = field(default_factory=dict)
    shares: list[Share] = field(default_factory=list)


@pytest.fixture
def fraction_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks, "_HOOKS", list(hooks._HOOKS))  # the table as it was, after the test
    hooks.add(_FractionHook())


def test_a_foreign_type_is_refused_without_a_hook() -> None:
    with pytest.raises(TypeError, match=r"its part \$\.total is a Fraction"):
        codec.codec_for(Ledger)


def test_one_type_hook_teaches_a_foreign_type_at_any_depth(tmp_path: Path, fraction_hook: None) -> None:
    ledger = Ledger(Fraction(1, 3), [Fraction(1, 2), Fraction(-7, 4)], {"a b": Fraction(5)},
                    [Share(Fraction(2, 3))])
    store = SnapStore(tmp_path / "s")
    store.create(ledger, 1)
    state = json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"]
    assert state == {"total": "1/3", "parts": ["1/2", "-7/4"], "named": {"a b": "5"},
                     "shares": [{"part": "2/3"}]}
    got, _ = store.restore(Ledger)
    assert got == ledger and type(got.shares[0].part) is Fraction
    state["shares"][0]["part"] = 3  # the hook's TypeError: a Mismatch with the JSON path
    with pytest.raises(codec.Mismatch) as e:
        codec.codec_for(Ledger).decode(json.dumps(state).encode(), Ledger)
    assert e.value.message == "expected a fraction as text, got 3 at $.shares[0].part"
    assert e.value.json_path == "$.shares[0].part"


class _Point:
    def __init__(self, x: int) -> None:
        self.x = x


class _PointCodec(Codec):
    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys

    def to_builtins(self, obj: Any) -> Any:
        return [obj.x]

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls(value[0])


def test_one_registry_line_adds_an_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="cannot save or restore objects of type _Point"):
        codec.codec_for(_Point)
    line = Adapter(lambda tp: tp is _Point, _PointCodec)
    monkeypatch.setattr(codec, "_ADAPTERS", (line, *codec._ADAPTERS))
    c = codec.codec_for(_Point, ignore_unknown_keys=True)
    assert isinstance(c, _PointCodec) and c.ignore_unknown_keys
    store = SnapStore(tmp_path / "s")
    store.create(_Point(4), 1)
    assert json.loads((tmp_path / "s" / "snapshot.json").read_text())["state"] == [4]
    assert store.restore(_Point)[0].x == 4


def _imports_and_attributes(path: Path) -> set[str]:
    """Modules a source file imports (absolute), and the dotted ``msgspec.x.y`` names it uses."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Attribute):
            parts = []
            cur: ast.expr = node
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name):
                names.add(".".join([cur.id, *reversed(parts)]))
    return names


def test_only_the_json_module_calls_a_json_library() -> None:
    users = {}
    for path in sorted(CODEC_DIR.glob("*.py")):
        used = _imports_and_attributes(path)
        json_calls = {n for n in used
                      if n == "json" or n.startswith(("json.", "msgspec.json", "msgspec.msgpack"))}
        if json_calls:
            users[path.name] = json_calls
    assert set(users) == {"json.py"}, users


def test_msgspec_errors_are_translated_in_one_module() -> None:
    # hooks.py turns a ValidationError into the TypeError msgspec expects from a hook (not a failure)
    catching = {path.name for path in CODEC_DIR.glob("*.py")
                if any(n in _imports_and_attributes(path)
                       for n in ("msgspec.ValidationError", "msgspec.DecodeError"))}
    assert catching == {"json.py", "hooks.py"}
