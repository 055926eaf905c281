"""The default adapter: the types msgspec knows natively, written and read by msgspec in C.

Dataclasses, msgspec Structs, TypedDicts, NamedTuples, generics of them and
plain JSON values (``None`` as the type: untyped). This is the hot path of
every save and restore, so it keeps one decoder per type and adds to
msgspec's own work only what snapmixin promises on top: sets in sorted order
(:mod:`.sets`), unknown keys refused (:mod:`.mirrors`), NaN refused and
failures typed with JSON paths (:mod:`.json`). The module is not named after
``dataclasses``: it handles far more than dataclasses, and should not read
like the standard library's module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import msgspec

from .base import Codec, check_no_unknown_keys
from .hooks import enc_hook
from .json import (
    TypedDecoder,
    decode_typed,
    dumps,
    from_attributes,
    json_of,
    loads,
    refuse_nonfinite,
    typed_decoder,
)
from .mirrors import strict_mirror
from .sets import set_plan
from .views import decode_view, encode_view, needs_view, rebuild, to_view

__all__ = ["MsgspecCodec"]


@dataclasses.dataclass
class _Plan:
    decoder: TypedDecoder[Any]
    mirror: Any  # the type decoded into, when it is a strict mirror of the target type
    recheck: bool  # a part could not be mirrored: compare the input with a re-encoding
    view: bool = False  # decoded into a view (transient fields, unions): rebuild the real objects


class MsgspecCodec(Codec):
    """The default: msgspec for dataclasses, Structs, TypedDicts, NamedTuples and plain values.

    Unknown keys are refused by decoding into a mirror of each dataclass as a
    msgspec Struct with ``forbid_unknown_fields``, then converting to the
    dataclass (both steps in C). Parts that cannot be mirrored (TypedDicts,
    generic dataclasses) are checked by comparing the input with a re-encoding
    of the result. msgspec Structs keep their own ``forbid_unknown_fields`` setting.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys
        self._plans: dict[Any, _Plan] = {}

    def to_builtins(self, obj: Any) -> Any:
        view = encode_view(type(obj))
        return msgspec.to_builtins(obj if view is None else to_view(obj, view), enc_hook=enc_hook)

    def encode(self, obj: Any) -> bytes:
        tp = type(obj)
        view = encode_view(tp)  # transient fields left out; unions of dataclasses tagged
        if view is None:
            return dumps(obj, sort_sets=set_plan(tp))
        return dumps(to_view(obj, view), sort_sets=set_plan(view))

    def encode_deferred(self, obj: Any) -> tuple[bytes, Callable[[bytes | memoryview], None]]:
        """:meth:`encode` without its last check (NaN and infinity), returned to be run later
        on the same JSON text, or text that holds it (the store runs it on the compact envelope,
        once the state is copied there and freed); it raises what :meth:`encode` would have."""
        tp = type(obj)
        view = encode_view(tp)
        value = obj if view is None else to_view(obj, view)
        data = dumps(value, sort_sets=set_plan(tp if view is None else view), check_nonfinite=False)

        def check(text: bytes | memoryview) -> None:
            refuse_nonfinite(text, value)

        return data, check

    def _plan(self, cls: Any) -> _Plan:
        plan = self._plans.get(cls)
        if plan is None and needs_view(cls):
            plan = _Plan(typed_decoder(decode_view(cls, strict=not self.ignore_unknown_keys)),
                         None, False, view=True)
            self._plans[cls] = plan
        if plan is None:
            mirror, recheck = (None, False) if self.ignore_unknown_keys else strict_mirror(cls)
            target = cls if mirror is None else mirror
            plan = _Plan(typed_decoder(target), mirror, recheck)
            self._plans[cls] = plan
        return plan

    def mirror_decoder(self, cls: Any) -> TypedDecoder[Any] | None:
        """The decoder into the strict mirror of ``cls`` when the mirror covers all of it (every
        unknown key refused there), else None. What :meth:`decode` does is then exactly: decode
        into the mirror (only the codec's own Structs, and registered types, are built), then
        :func:`~snapmixin.codec.json.from_attributes` into ``cls``. The store's small-file path
        splits the two steps (see ``SnapStore._restore_small``)."""
        plan = self._plan(cls)
        if plan.mirror is None or plan.view or plan.recheck:
            return None
        return plan.decoder

    def decode(self, data: bytes | memoryview, cls: Any, *,
               before_build: Callable[[bool], None] | None = None) -> Any:
        """Decode ``data`` into ``cls``. ``before_build`` (the store's checksum check of a large
        file, made meanwhile) is called before any object of ``cls``'s own classes is built:
        after decoding into the strict mirror (with True: ``data`` is no longer needed), or
        before decoding when there is none (with False)."""
        if cls is None:
            value = loads(data)  # plain values: nothing of the caller's runs
            if before_build is not None:
                before_build(False)
            return value
        plan = self._plan(cls)
        if before_build is not None and (plan.mirror is None or plan.view):
            before_build(False)
            before_build = None
        value = decode_typed(plan.decoder, data)
        if before_build is not None:
            before_build(not plan.recheck)
            if not plan.recheck:
                del data  # (the caller let go of it too: not kept while the objects are built)
        if plan.view:
            return rebuild(value)
        if plan.mirror is not None:
            value = from_attributes(value, cls)  # e.g. a __post_init__ refusing a value: Mismatch
        if plan.recheck:
            check_no_unknown_keys(loads(data), self.to_builtins(value), "$")
        return value

    def from_builtins(self, value: Any, cls: Any) -> Any:
        return self.convert(value, cls)

    def convert(self, value: Any, cls: Any) -> Any:
        """Plain values (a migrated state) to ``cls``, by way of JSON text.

        ``msgspec.convert`` reads plain values by Python rules, not JSON ones
        (it refuses the string keys JSON has for ``dict[int, ...]``), so the
        value is encoded and decoded like a file: exactly the same checks.
        """
        if cls is None:
            return value
        return self.decode(json_of(value), cls)
