"""The adapter for attrs classes: cattrs' JSON converter when installed, msgspec otherwise.

An attrs class may carry converters and validators that only attrs runs, and
cattrs is the library that knows how attrs classes map to JSON; so they
decide. cattrs reads loosely and reports errors in its own words, so the JSON
is first checked strictly, with JSON paths, against a mirror of the classes
as cattrs writes them (:mod:`.mirrors`).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .base import Codec, check_no_unknown_keys
from .hooks import enc_hook, isclass
from .json import DecodeFailure, Mismatch, TypedDecoder, check_typed, typed_decoder
from .mirrors import strict_mirror
from .native import MsgspecCodec

__all__ = ["AttrsCodec", "claims"]


def claims(cls: Any) -> bool:
    """Whether ``cls`` is an attrs class."""
    return isclass(cls) and hasattr(cls, "__attrs_attrs__")


class AttrsCodec(Codec):
    """For attrs classes: cattrs' JSON converter when installed, msgspec otherwise.

    cattrs converts loosely (``int(1.5)``); so the JSON is first checked, with
    JSON paths, against a mirror of the classes built from the keys cattrs
    writes (``__init__`` fields). Parts cattrs handles with hooks of its own
    are left to it.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys
        self._mirrors: dict[Any, tuple[TypedDecoder[Any] | None, bool]] = {}
        self._fallback = MsgspecCodec(ignore_unknown_keys=True)  # unknown keys: checked in convert()
        try:
            from cattrs.preconf.json import make_converter
        except ImportError:
            self._converter: Any = None
        else:
            self._converter = make_converter()

    def to_builtins(self, obj: Any) -> Any:
        if self._converter is None:
            return msgspec.to_builtins(obj, enc_hook=enc_hook)
        return self._converter.unstructure(obj)

    def _check(self, value: Any, cls: Any) -> bool:
        """Strict check of the JSON's types (and keys); returns whether keys were checked too."""
        plan = self._mirrors.get(cls)
        if plan is None:
            mirror, partial = strict_mirror(cls, for_cattrs=True, forbid=not self.ignore_unknown_keys)
            decoder = None if mirror is None else typed_decoder(mirror)
            plan = self._mirrors[cls] = (decoder, partial)
        decoder, partial = plan
        if decoder is None:
            return False
        check_typed(decoder, value)
        return not partial

    def from_builtins(self, value: Any, cls: Any) -> Any:
        if self._converter is None:
            return self._fallback.convert(value, cls)
        try:
            return self._converter.structure(value, cls)
        except Exception as e:
            raise _cattrs_failure(e) from e

    def convert(self, value: Any, cls: Any) -> Any:
        keys_checked = self._converter is not None and self._check(value, cls)
        obj = self.from_builtins(value, cls)
        if not self.ignore_unknown_keys and not keys_checked:
            check_no_unknown_keys(value, self.to_builtins(obj), "$")
        return obj


_CATTRS_PATH_RE = re.compile(r" @ (\$\S*)$")


def _cattrs_failure(e: BaseException) -> DecodeFailure:
    try:
        from cattrs import transform_error

        lines = transform_error(e)
    except Exception:
        lines = [str(e)]
    first = lines[0] if lines else str(e)
    m = _CATTRS_PATH_RE.search(first)
    json_path = re.sub(r"\['([A-Za-z_][A-Za-z0-9_]*)'\]", r".\1", m.group(1)) if m else "$"
    msg = first[: m.start()] if m else first
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return Mismatch(f"{msg} at {json_path}{more}", json_path)
