"""The adapter for pydantic v2 models, through pydantic itself (only when pydantic is installed).

A pydantic model carries its own configuration (aliases, validators, strict
or lax mode): only pydantic reads it right, so the model is dumped and
validated by pydantic, as the whole state or as a part of one (its
:data:`HOOK` serves it at any depth). pydantic is never imported here: a
class is a model only if pydantic is already loaded.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from .base import Codec
from .hooks import isclass
from .json import Mismatch
from .paths import key_seg

__all__ = ["HOOK", "PydanticCodec", "claims"]


def claims(cls: Any) -> bool:
    """Whether ``cls`` is a pydantic model class."""
    mod = sys.modules.get("pydantic")
    return mod is not None and isclass(cls) and issubclass(cls, mod.BaseModel)


def _dump(obj: Any) -> Any:
    return obj.model_dump(mode="json", by_alias=True)


def _load(cls: Any, value: Any) -> Any:
    if _validates_by_name():
        return cls.model_validate(value, by_alias=True, by_name=True)  # aliases or field names
    return cls.model_validate(value)


@functools.lru_cache(maxsize=1)
def _validates_by_name() -> bool:
    """Whether ``model_validate`` takes ``by_name`` (pydantic >= 2.11)."""
    import inspect

    return "by_name" in inspect.signature(sys.modules["pydantic"].BaseModel.model_validate).parameters


class PydanticCodec(Codec):
    """For pydantic v2 models: ``model_dump(mode="json", by_alias=True)`` and ``model_validate``.

    The file holds the keys the model reads (its aliases, e.g. from an
    ``alias_generator``): without ``by_alias`` a model with aliases could not
    read back its own snapshot. pydantic's own rules decide what a wrong type
    is (lax mode converts ``"5"`` to ``5`` unless the model is strict); unknown
    keys are refused unless the model allows extra fields (``extra="allow"``)
    or ``ignore_unknown_keys``.
    """

    def __init__(self, *, ignore_unknown_keys: bool = False) -> None:
        self.ignore_unknown_keys = ignore_unknown_keys

    def to_builtins(self, obj: Any) -> Any:
        return _dump(obj)

    def from_builtins(self, value: Any, cls: Any) -> Any:
        try:
            return _load(cls, value)
        except Exception as e:
            errors = getattr(e, "errors", None)
            if callable(errors):
                first = errors()[0]
                loc = "$" + "".join(f"[{p}]" if isinstance(p, int) else key_seg(p) for p in first["loc"])
                raise Mismatch(f"{first['msg']} at {loc}", loc) from e
            raise


class _Hook:
    """A model inside another state: dumped and validated by pydantic (its errors become msgspec's)."""

    def handles(self, cls: type) -> bool:
        return claims(cls)

    def encode(self, obj: Any) -> Any:
        return _dump(obj)

    def decode(self, cls: type, value: Any) -> Any:
        return _load(cls, value)


HOOK = _Hook()
