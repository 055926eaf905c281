"""Values msgspec does not know, met at any depth of a state: the one seam for foreign types.

msgspec calls :func:`enc_hook` for a value it cannot write and :func:`dec_hook`
for a type it cannot build, wherever the value sits (a field, a list item, a
dict value, a nested dataclass). Both handle, in this order:

1. what msgspec almost knows: paths (as text), datetimes and dates of a
   subclass (freezegun's, written as the real class), and subclasses of
   builtin types (written as their base, read back as the subclass);
2. the type hooks in the table, first match wins: a class with its own
   ``__snapshot_state__`` methods, a pydantic model (added by their adapters,
   see ``Adapter.hook``), and later any type taught with :func:`add`.

A new kind of foreign value (a numpy array, a user's registered type) is one
:class:`TypeHook` passed to :func:`add`: the hooks, the type admission
(:func:`handles`) and the strict mirrors all consult the same table.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import pathlib
import types
import typing
import uuid
from typing import Any, Protocol

import msgspec

__all__ = ["AS_BASE", "TypeHook", "add", "dec_hook", "enc_hook", "forget", "handles", "hook_for", "isclass"]


def isclass(tp: Any) -> typing.TypeGuard[type]:
    """A real class (on Python 3.10, ``isinstance(list[int], type)`` is True as well)."""
    return isinstance(tp, type) and not isinstance(tp, types.GenericAlias)


class TypeHook(Protocol):
    """How values of some classes become values msgspec knows (JSON values, dataclasses...) and back."""

    def handles(self, cls: type) -> bool:
        """Whether this hook writes and reads values of ``cls``."""

    def encode(self, obj: Any) -> Any:
        """A value msgspec can write, for ``obj``."""

    def decode(self, cls: type, value: Any) -> Any:
        """An object of ``cls`` from the decoded JSON ``value`` (raise ``TypeError`` if it does not fit:
        msgspec then reports it with the JSON path)."""


_HOOKS: list[TypeHook] = []
# The answer of hook_for per class: enc_hook asks for every value msgspec does not know
# (a numpy scalar in a long list), so the table is walked once per class, not per value.
_FOUND: dict[type, TypeHook | None] = {}


def add(hook: TypeHook) -> None:
    """Consult ``hook`` (after the hooks added before it) for values of the classes it handles."""
    _HOOKS.append(hook)
    forget()


def forget() -> None:
    """Forget which hook serves which class (a hook's answer changed: a type was registered)."""
    _FOUND.clear()


def hook_for(cls: type) -> TypeHook | None:
    """The first hook of the table that handles ``cls``, if any."""
    try:
        return _FOUND[cls]
    except KeyError:
        pass
    except TypeError:  # pragma: no cover - an unhashable class
        return next((h for h in _HOOKS if h.handles(cls)), None)
    found = next((h for h in _HOOKS if h.handles(cls)), None)
    _FOUND[cls] = found
    return found


_BUILTIN_BASES: tuple[type, ...] = (
    _dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID,
    bool, int, float, str, bytes, bytearray, list, tuple, dict, set, frozenset,
)

# The real classes, kept from import time: while freezegun's freeze_time runs,
# ``datetime.datetime`` is its FakeDatetime, and building one of those here would recurse.
# (In a tuple: freezegun swaps the module attributes that name the real classes.)
_REAL_DATES = (_dt.datetime, _dt.date)

#: Subclasses of these in an annotation are read as the base class itself (the real one,
#: kept from import time: freezegun replaces the module attributes while it runs).
AS_BASE: tuple[type, ...] = (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, decimal.Decimal, uuid.UUID)


def enc_hook(obj: Any) -> Any:
    """Turn values msgspec does not know into ones it does."""
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    real_datetime, real_date = _REAL_DATES
    if isinstance(obj, real_datetime):  # e.g. freezegun's FakeDatetime
        return real_datetime(obj.year, obj.month, obj.day, obj.hour, obj.minute, obj.second,
                             obj.microsecond, obj.tzinfo, fold=obj.fold)
    if isinstance(obj, real_date):
        return real_date(obj.year, obj.month, obj.day)
    hook = hook_for(type(obj))  # before the builtin bases: a numpy float64 is a float
    if hook is not None:
        return hook.encode(obj)
    for base in _BUILTIN_BASES:  # any other subclass of a builtin encodes as its base
        if isinstance(obj, base):
            if type(obj) is base:
                # msgspec refused a builtin value where it stands (a tuple as a dict key):
                # handing it back unchanged would loop for ever.
                raise NotImplementedError(f"a {base.__name__} cannot be written as JSON here "
                                          f"({obj!r:.60}); dict keys must be strings or numbers")
            return base(obj)
    raise NotImplementedError(f"objects of type {type(obj).__qualname__} cannot be written as JSON")


def dec_hook(tp: Any, obj: Any) -> Any:
    """Build an object of type ``tp`` (one msgspec does not know) from the decoded value ``obj``."""
    cls: Any = tp
    if not isclass(cls) and isclass(typing.get_origin(cls)):  # numpy's NDArray[np.float64]
        origin = typing.get_origin(cls)
        if isinstance(obj, origin):  # built already (converting a strict mirror to the class)
            return obj
        hook = hook_for(origin)
        if hook is not None:
            return hook.decode(origin, obj)
    if isclass(cls):
        if isinstance(obj, cls):
            return obj
        if issubclass(cls, pathlib.PurePath) and isinstance(obj, str):
            return cls(obj)
        hook = hook_for(cls)
        if hook is not None:
            return hook.decode(cls, obj)
        for base in AS_BASE:  # e.g. freezegun's FakeDatetime in an annotation: read as the base
            if issubclass(cls, base):
                try:
                    return msgspec.convert(obj, base)
                except msgspec.ValidationError as e:  # a TypeError: msgspec adds the JSON path
                    raise TypeError(f"{e} (reading a {cls.__qualname__} as a {base.__name__})") from None
        if issubclass(cls, (str, int, float)) and not issubclass(cls, enum.Enum):
            for base in (str, int, float):
                if issubclass(cls, base) and isinstance(obj, base) and not isinstance(obj, bool):
                    return cls(obj)
    # A TypeError becomes a ValidationError carrying the JSON path.
    raise TypeError(f"cannot build {getattr(tp, '__qualname__', tp)!r} from "
                    f"{type(obj).__name__} {obj!r:.60}")


def handles(cls: type) -> bool:
    """Whether :func:`enc_hook` and :func:`dec_hook` can save and rebuild ``cls``."""
    return (issubclass(cls, (pathlib.PurePath, *AS_BASE)) or hook_for(cls) is not None
            or (issubclass(cls, (str, int, float)) and not issubclass(cls, enum.Enum)))
