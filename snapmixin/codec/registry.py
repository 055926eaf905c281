"""Foreign types taught by the user: :func:`register_type`, one hook of the type-hook table.

``register_type(Fraction, encode=str, decode=Fraction)`` makes a type savable
wherever it sits in a state (a field, a list item, a dict value, a nested
dataclass, an Optional), for the store and the mixin alike, because the
registrations are one :class:`~snapmixin.codec.hooks.TypeHook` consulted first
by the codec's hooks and by its type admission. A class is looked up along
its MRO: a subclass of a registered type uses the nearest registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import msgspec

from . import hooks

__all__ = ["HOOK", "register_type"]

_T = TypeVar("_T")


class _Registration(NamedTuple):
    tp: type
    encode: Callable[[Any], Any]
    decode: Callable[[Any], Any]


_TYPES: dict[type, _Registration] = {}


def register_type(tp: type[_T], *, encode: Callable[[_T], Any], decode: Callable[[Any], _T]) -> None:
    """Teach snapmixin to save objects of class ``tp`` at any depth of any state.

    ``encode(obj)`` returns a JSON value (str, int, float, bool, None, or lists
    and dicts of them, or any other value snapmixin can save); ``decode(value)``
    rebuilds the object from that value as read back from the file. Both are
    used for ``tp`` and its subclasses (the nearest registered class in the
    MRO wins). Types snapmixin writes natively (``int``, ``datetime``, dataclasses...)
    are refused with ``TypeError``. Registering a type again replaces its registration; a
    registration wins over snapmixin's own handling of the type (numpy arrays,
    ``__snapshot_state__``). Register before the first class that holds the
    type is set up (module level, next to the import).

    An exception raised by ``encode`` is reported as ``EncodeError`` and one
    raised by ``decode`` as ``DecodeError``, each naming the JSON path of the
    value and the registered type, with the original exception as its cause.
    """
    if not hooks.isclass(tp):
        raise TypeError(f"register_type() needs a class, not {tp!r}")
    if not callable(encode) or not callable(decode):
        raise TypeError("register_type() needs callables for encode= and decode=")
    try:
        info = msgspec.inspect.type_info(tp)
    except Exception:  # a class msgspec cannot even describe: certainly not one it writes itself
        info = None
    if info is not None and not isinstance(info, msgspec.inspect.CustomType):
        raise TypeError(
            f"snapmixin saves {tp.__qualname__} itself (the JSON library writes it natively), so a "
            "registration would never be used: register a subclass of your own, or, for a class "
            "of yours, define __snapshot_state__ and __from_snapshot_state__")
    _TYPES[tp] = _Registration(tp, encode, decode)
    hooks.forget()


def registration_for(cls: type) -> _Registration | None:
    """The registration that serves ``cls``: its own, else the nearest base class's."""
    if not _TYPES:
        return None
    for klass in getattr(cls, "__mro__", ()):
        found = _TYPES.get(klass)
        if found is not None:
            return found
    return None


class _Hook:
    """The registrations, as one entry of the type-hook table."""

    def handles(self, cls: type) -> bool:
        return registration_for(cls) is not None

    def encode(self, obj: Any) -> Any:
        reg = registration_for(type(obj))
        if reg is None:  # pragma: no cover - the table asked handles() first
            raise TypeError(f"no registration for {type(obj).__qualname__}")
        try:
            out = reg.encode(obj)
        except Exception as e:
            # A TypeError: the encoder reports it with the JSON path of the value.
            raise TypeError(f"the encode function registered for {reg.tp.__qualname__} raised "
                            f"{type(e).__name__}: {e}") from e
        if isinstance(out, reg.tp):  # handed back to this hook, it would loop for ever
            raise TypeError(f"the encode function registered for {reg.tp.__qualname__} returned a "
                            f"{type(out).__qualname__}: it must return a JSON value")
        return out

    def decode(self, cls: type, value: Any) -> Any:
        reg = registration_for(cls)
        if reg is None:  # pragma: no cover - the table asked handles() first
            raise TypeError(f"no registration for {cls.__qualname__}")
        try:
            return reg.decode(value)
        except Exception as e:
            # A TypeError: the decoder turns it into a mismatch carrying the JSON path.
            raise TypeError(f"the decode function registered for {reg.tp.__qualname__} raised "
                            f"{type(e).__name__}: {e} (reading {value!r:.60})") from e


HOOK = _Hook()
