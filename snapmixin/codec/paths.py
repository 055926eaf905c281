"""Where a value sits: JSON path steps, and walks over values that never recurse.

Every failure the codec reports names the JSON path of the value at fault
(``$.players[2].pos.x``). The adapters, the JSON layer and the type admission
all build those paths, so the spelling of a step lives here, once. The walks
(to find the value an encoder refuses, a NaN, or how deep a value nests) use
explicit stacks: they run exactly when a state is too deep for recursion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["DEPTH_CAP", "key_seg", "levels", "locate", "value_depth"]

#: Depths are measured up to this many levels (a value that contains itself has no depth).
DEPTH_CAP = 100_000


def key_seg(key: Any) -> str:
    """The JSON path step to the value of ``key`` in an object: ``.name`` or ``['some key']``."""
    if isinstance(key, str) and key.isidentifier():
        return f".{key}"
    return f"[{key!r}]" if isinstance(key, str) else f"[{str(key)!r}]"


def _children(value: Any) -> list[tuple[str, Any]]:
    """``(path step, child)`` for each part of a container or an object with fields (dict keys too)."""
    if isinstance(value, dict):
        return [(key_seg(k), v) for k, v in value.items()] + [(f"<key {k!r}>", k) for k in value]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [(f"[{i}]", v) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [(f".{f.name}", getattr(value, f.name, None)) for f in dataclasses.fields(value)]
    if isinstance(value, msgspec.Struct):
        return [(f".{name}", getattr(value, name)) for name in value.__struct_fields__]
    attrs_fields = getattr(type(value), "__attrs_attrs__", None)
    if attrs_fields is not None:
        return [(f".{a.name}", getattr(value, a.name, None)) for a in attrs_fields]
    return []


def locate(value: Any, path: str, check: Callable[[Any], object]) -> str | None:
    """Find the deepest path below ``value`` whose value ``check`` still refuses (no recursion)."""
    found = None
    while True:
        for suffix, child in _children(value):
            try:
                check(child)
            except Exception:
                value, path = child, path + suffix
                found = path
                break
        else:
            return found


def value_depth(value: Any, cap: int = DEPTH_CAP) -> int:
    """How many containers (or objects with fields) deep ``value`` nests, up to ``cap``."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        kids = _children(v)
        if kids or isinstance(v, (dict, list, tuple, set, frozenset)):
            if d > deepest:
                deepest = d
                if d >= cap:
                    return cap
            stack.extend((child, d + 1) for _, child in kids)
    return deepest


def levels(n: int) -> str:
    """A measured depth in words (``n`` at :data:`DEPTH_CAP` means "more than that")."""
    return f"more than {DEPTH_CAP} levels" if n >= DEPTH_CAP else f"{n} levels"
