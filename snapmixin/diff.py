"""What changed between two JSON states: one entry per changed JSON path.

Used by ``snapmixin diff``; usable alone on any two plain JSON values (what
``SnapStore.restore()`` returns without a type)::

    >>> [str(c) for c in diff({"hp": 8, "bag": ["a"]}, {"hp": 3, "bag": ["a", "b"]})]
    ['$.hp: 8 -> 3', '$.bag[1]: added "b"']

Objects are compared key by key. Arrays are compared position by position
(no attempt to align moved items: an insertion at the front shows as a
change at every later index, plus an addition at the end), which keeps every
reported path a real place in both documents. Values of different JSON types
(``1`` and ``1.0``, ``1`` and ``true``) differ. The walk uses an explicit
stack, so any depth the codec reads is fine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .codec import dumps
from .codec.paths import key_seg

__all__ = ["Change", "diff"]

Op = Literal["added", "removed", "changed"]
_SHOW = 120  # characters of a value shown in a text line


@dataclass(frozen=True)
class Change:
    """One difference: at JSON path ``path``, ``op`` is ``"added"`` (``new`` only),
    ``"removed"`` (``old`` only) or ``"changed"`` (both)."""

    path: str
    op: Op
    old: Any = None
    new: Any = None

    def as_json(self) -> dict[str, Any]:
        """``{"path", "op", "old", "new"}``, the ``--json`` form (``old``/``new`` absent when
        the value is not there)."""
        out: dict[str, Any] = {"path": self.path, "op": self.op}
        if self.op != "added":
            out["old"] = self.old
        if self.op != "removed":
            out["new"] = self.new
        return out

    def __str__(self) -> str:
        if self.op == "added":
            return f"{self.path}: added {_show(self.new)}"
        if self.op == "removed":
            return f"{self.path}: removed {_show(self.old)}"
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def diff(old: Any, new: Any) -> list[Change]:
    """The changes that turn JSON value ``old`` into ``new``, in document order."""
    out: list[Change] = []
    # (path, old value, new value, what): "both" compares, "added"/"removed" reports one side.
    stack: list[tuple[str, Any, Any, str]] = [("$", old, new, "both")]
    while stack:
        path, a, b, what = stack.pop()
        if what == "added":
            out.append(Change(path, "added", new=b))
        elif what == "removed":
            out.append(Change(path, "removed", old=a))
        elif type(a) is dict and type(b) is dict:
            items = [(path + key_seg(k), v, b.get(k), "both" if k in b else "removed")
                     for k, v in a.items()]
            items += [(path + key_seg(k), None, v, "added") for k, v in b.items() if k not in a]
            stack.extend(reversed(items))
        elif type(a) is list and type(b) is list:
            n = min(len(a), len(b))
            items = [(f"{path}[{i}]", a[i], b[i], "both") for i in range(n)]
            items += [(f"{path}[{i}]", a[i], None, "removed") for i in range(n, len(a))]
            items += [(f"{path}[{i}]", None, b[i], "added") for i in range(n, len(b))]
            stack.extend(reversed(items))
        elif type(a) is not type(b) or a != b:
            out.append(Change(path, "changed", old=a, new=b))
    return out


def _show(value: Any) -> str:
    text = dumps(value).decode()
    return text if len(text) <= _SHOW else text[: _SHOW - 1] + "…"
