"""The adapter for a class that says itself how it is saved: ``__snapshot_state__`` and
``__from_snapshot_state__``.

The escape hatch for a class no library describes (a wrapper around a C
object, a class with invariants of its own): it returns plain JSON values and
rebuilds itself from them, as the whole state or as a part of one (its
:data:`HOOK` serves it at any depth). Its own method decides what it accepts,
so unknown keys are not checked.
"""

from __future__ import annotations

import typing
from typing import Any

from .base import Codec
from .hooks import isclass

__all__ = ["HOOK", "CustomCodec", "claims"]


def claims(cls: Any) -> bool:
    """Whether ``cls`` is a class with both methods."""
    return isclass(cls) and _has_protocol(cls)


def _has_protocol(cls: Any) -> bool:
    return callable(getattr(cls, "__snapshot_state__", None)) and callable(
        getattr(cls, "__from_snapshot_state__", None))


class CustomCodec(Codec):
    """For classes defining ``__snapshot_state__(self)`` and ``__from_snapshot_state__(cls, value)``."""

    ignore_unknown_keys = True  # the class's own method decides what it accepts

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        """``ignore_unknown_keys`` is accepted like every adapter's, and has no effect here."""

    def to_builtins(self, obj: Any) -> Any:
        return obj.__snapshot_state__()

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return cls.__from_snapshot_state__(value)


class _Hook:
    """Such an object inside another state: its own two methods."""

    def handles(self, cls: type) -> bool:
        return _has_protocol(cls)

    def encode(self, obj: Any) -> Any:
        return obj.__snapshot_state__()

    def decode(self, cls: type, value: Any) -> Any:
        return typing.cast(Any, cls).__from_snapshot_state__(value)


HOOK = _Hook()
