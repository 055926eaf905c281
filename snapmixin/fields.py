"""Transient fields: parts of an object that live only in memory.

A lock, a cache, an open file, a callback: state an object needs while it
runs, which has no meaning in a file. ``transient()`` is a
``dataclasses.field`` whose metadata marks it: the codec does not write it,
restore rebuilds it from its default (or ``default_factory``), and the mixin
does not count assignments to it as mutations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["TRANSIENT", "transient"]

#: The metadata key that marks a dataclass field as transient (its value is True).
TRANSIENT = "snapmixin.transient"

_T = TypeVar("_T")


@overload
def transient(*, default: _T, repr: bool = ..., compare: bool = ...) -> _T: ...
@overload
def transient(*, default_factory: Callable[[], _T], repr: bool = ..., compare: bool = ...) -> _T: ...


def transient(*, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING,
              repr: bool = False, compare: bool = False) -> Any:
    """A dataclass field that is not saved: ``lock: Lock = transient(default_factory=Lock)``.

    Exactly one of ``default`` and ``default_factory`` is required: restore
    rebuilds the field from it (a snapshot never holds it). A snapshot written
    while the field was still saved may hold its key: restore ignores it, so
    making a field transient needs no migration. The field takes no part in
    ``==`` (``compare=False``) and is left out of ``repr`` by default: neither
    is part of the object's saved state. Assigning it is not a mutation.
    """
    if (default is dataclasses.MISSING) == (default_factory is dataclasses.MISSING):
        raise TypeError("transient() needs exactly one of default= and default_factory=: "
                        "restore rebuilds the field from it")
    metadata = {TRANSIENT: True}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, repr=repr, compare=compare,
                                 metadata=metadata)
    return dataclasses.field(default=default, repr=repr, compare=compare, metadata=metadata)
