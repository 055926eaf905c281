"""Views: the JSON shape of dataclasses that msgspec cannot take as they are.

Two kinds of dataclass need a different type for msgspec than the class itself:

- one with transient fields (:func:`snapmixin.transient`): they are not written,
  and their annotation (``threading.Lock``) may be no type msgspec knows;
- one in a union with other dataclasses (``list[Cat | Dog]``): msgspec tells the
  members apart only by a tag, the value of a field annotated with a
  ``Literal`` (``kind: Literal["cat"]``), the convention of msgspec and pydantic.

For a type holding either, every dataclass in it is replaced by a *view*: a
msgspec Struct with the fields that are saved (the tag as the Struct's tag,
transient fields left out), refusing unknown keys like the strict mirrors
(:mod:`.mirrors`). Saving converts the object into its view in C
(``from_attributes``); restoring decodes into the view and rebuilds the real
objects, with the tag and the transient fields' defaults, as msgspec builds a
dataclass (no ``__init__``; ``__post_init__`` is called). In the decoding view
of a strict codec, a transient field's key is accepted and ignored: a
snapshot written before the field became transient restores.

Types without such classes never get a view: their path is unchanged.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, NamedTuple

import msgspec

from ..fields import TRANSIENT
from .hooks import hook_for, isclass
from .json import DecodeFailure, Mismatch, into_view

__all__ = ["decode_view", "encode_view", "needs_view", "rebuild", "to_view", "transient_names"]


def transient_names(cls: Any) -> frozenset[str]:
    """The names of the transient fields of dataclass ``cls`` (empty for any other type)."""
    if not isclass(cls) or not dataclasses.is_dataclass(cls):
        return frozenset()
    own = cls.__dict__.get("__dataclass_fields__")
    cached = _TRANSIENTS.get(cls)
    if cached is not None and cached[0] is own:
        return cached[1]
    names = frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get(TRANSIENT))
    if own is not None:  # not before the class's own @dataclass has run
        _TRANSIENTS[cls] = (own, names)
    return names


_TRANSIENTS: dict[type, tuple[Any, frozenset[str]]] = {}


def _plain_dataclass(t: Any) -> bool:
    """A dataclass that msgspec itself writes (not one a hook hands to its own code)."""
    return isclass(t) and dataclasses.is_dataclass(t) and hook_for(t) is None


def _strip(t: Any) -> Any:
    while typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    return t


def _is_union(t: Any) -> bool:
    origin = typing.get_origin(t)
    return origin is typing.Union or origin is types.UnionType


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def needs_view(tp: Any) -> bool:
    """Whether ``tp`` holds a dataclass with transient fields or a union of dataclasses.

    A class whose annotations cannot be resolved is not looked into (msgspec
    writes it as it is; the type admission reports the annotations).
    """
    try:
        return _NEEDS[tp]
    except (KeyError, TypeError):
        pass
    seen: set[int] = set()
    stack = [tp]
    found = False
    while stack and not found:
        t = _strip(stack.pop())
        if id(t) in seen:
            continue
        seen.add(id(t))
        if isclass(t):
            if _plain_dataclass(t):
                skip = transient_names(t)
                if skip:
                    found = True
                try:
                    hints = _hints(t)
                except Exception:  # unresolvable annotations: admission reports them (NameError)
                    continue
                saved = {f.name for f in dataclasses.fields(t)} - skip
                stack.extend(h for name, h in hints.items() if name in saved)
            continue
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin is Literal or origin is None:
            continue
        if _is_union(t) and sum(_plain_dataclass(_strip(a)) for a in args) > 1:
            found = True
        stack.extend(a for a in args if a is not Ellipsis)
    try:
        _NEEDS[tp] = found
    except TypeError:  # pragma: no cover - an unhashable type
        pass
    return found


_NEEDS: dict[Any, bool] = {}


class _Real(NamedTuple):
    """How to rebuild an object of ``cls`` from its view: one step per field, in field order."""

    cls: type
    # (name, how, what): "view" copies the view's attribute (rebuilt if ``what``: its type
    # holds views), "const" sets ``what``, "factory" calls ``what``
    steps: list[tuple[str, str, Any]]


_REAL: dict[type, _Real] = {}
_VIEWS: dict[tuple[Any, str], Any] = {}
_STRUCTS: dict[tuple[type, str, tuple[str, Any] | None], Any] = {}


def tag_of(cls: type) -> tuple[str, str | int] | None:
    """The tag of a dataclass: its first saved field annotated with a ``Literal`` of one str or int."""
    skip = transient_names(cls)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        t = _strip(hints.get(f.name))
        if typing.get_origin(t) is Literal:
            args = typing.get_args(t)
            if len(args) == 1 and isinstance(args[0], (str, int)) and not isinstance(args[0], bool):
                return f.name, args[0]
    return None


def _union_tags(members: list[type], union: Any) -> str:
    """The tag field shared by the dataclasses of a union (``TypeError`` with the way to add one)."""
    tags = [tag_of(m) for m in members]
    names = {t[0] for t in tags if t is not None}
    values = [t[1] for t in tags if t is not None]
    if None in tags or len(names) != 1 or len(set(values)) != len(values):
        a, b = members[0].__name__, members[1].__name__
        raise TypeError(
            f"the union {_show(union)} holds several dataclasses, which JSON cannot tell apart "
            f"without a tag: give each one a field of the same name annotated with a distinct "
            f"Literal, e.g. `kind: Literal[{a.lower()!r}] = {a.lower()!r}` in {a} and "
            f"`kind: Literal[{b.lower()!r}] = {b.lower()!r}` in {b}")
    return names.pop()


def _show(t: Any) -> str:
    return " | ".join(getattr(a, "__qualname__", repr(a)) for a in typing.get_args(t))


class _Viewer:
    """Builds the view of one type, in one mode: "encode", "strict" or "lax" (decoding)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def build(self, tp: Any, tag: tuple[str, Any] | None = None) -> Any:
        if typing.get_origin(tp) is typing.Annotated:
            args = typing.get_args(tp)
            return typing.Annotated[(self.build(args[0], tag),) + tuple(tp.__metadata__)]  # noqa: RUF005
        if isclass(tp):
            return self._struct(tp, tag) if _plain_dataclass(tp) else tp
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is None or not args or origin is Literal:
            return tp
        if isclass(origin) and dataclasses.is_dataclass(origin):
            return tp  # a generic dataclass: as msgspec reads it
        if _is_union(tp):
            members = [_strip(a) for a in args if _plain_dataclass(_strip(a))]
            tag_field = _union_tags(members, tp) if len(members) > 1 else None
            new = []
            for a in args:
                m = _strip(a)
                if tag_field is not None and _plain_dataclass(m):
                    found = tag_of(m)
                    new.append(self.build(a, found))
                else:
                    new.append(self.build(a))
            return typing.Union[tuple(new)]  # noqa: UP007 - built at run time
        return origin[tuple(a if a is Ellipsis else self.build(a) for a in args)]

    def _struct(self, cls: type, tag: tuple[str, Any] | None) -> Any:
        key = (cls, self.mode, tag)
        done = _STRUCTS.get(key)
        if done is not None:
            return done
        skip = transient_names(cls)
        hints = _hints(cls)
        fields: list[Any] = []
        steps: list[tuple[str, str, Any]] = []
        kept: list[tuple[str, Any]] = []
        for f in dataclasses.fields(cls):
            if f.name in skip:
                steps.append((f.name, "const", f.default) if f.default is not dataclasses.MISSING
                             else (f.name, "factory", f.default_factory))
                if self.mode == "strict":  # an older snapshot's key for it: accepted, ignored
                    fields.append((f.name, Any, None))
                continue
            if tag is not None and f.name == tag[0]:
                steps.append((f.name, "const", tag[1]))
                continue
            steps.append((f.name, "view", None))
            kept.append((f.name, hints.get(f.name, Any)))
            if f.default is not dataclasses.MISSING:
                fields.append((f.name, Any, f.default))
            elif f.default_factory is not dataclasses.MISSING:
                fields.append((f.name, Any, msgspec.field(default_factory=f.default_factory)))
            else:
                fields.append((f.name, Any))
        options: dict[str, Any] = {"kw_only": True, "forbid_unknown_fields": self.mode == "strict"}
        if tag is not None:
            options.update(tag_field=tag[0], tag=tag[1])
        struct = msgspec.defstruct(cls.__name__, fields, **options)
        _STRUCTS[key] = struct  # before its fields: a class may hold itself
        _REAL[struct] = _Real(cls, steps)
        annotations = struct.__annotations__
        where = {name: i for i, (name, _, _) in enumerate(steps)}
        for name, hint in kept:  # read by msgspec when its first decoder is built
            annotations[name] = view = self.build(hint)
            steps[where[name]] = (name, "view", _holds_views(view))  # else copied as it is
        return struct


def _holds_views(tp: Any) -> bool:
    """Whether values of the view type ``tp`` can hold view Structs (which rebuild must replace)."""
    stack = [tp]
    while stack:
        t = stack.pop()
        try:
            if t in _REAL:
                return True
        except TypeError:  # unhashable: Annotated metadata, not a type
            continue
        stack.extend(a for a in typing.get_args(t) if a is not Ellipsis)
    return False


def _view(tp: Any, mode: str) -> Any:
    key = (tp, mode)
    try:
        return _VIEWS[key]
    except KeyError:
        pass
    view = _Viewer(mode).build(tp)
    _VIEWS[key] = view
    return view


def encode_view(tp: Any) -> Any:
    """The view objects of type ``tp`` are written as, or None when ``tp`` needs none."""
    return _view(tp, "encode") if needs_view(tp) else None


def decode_view(tp: Any, *, strict: bool) -> Any:
    """The view ``tp`` is read into (``strict``: unknown keys refused). ``TypeError`` for a union
    of dataclasses without tags."""
    return _view(tp, "strict" if strict else "lax")


def to_view(obj: Any, view: Any) -> Any:
    """``obj`` as an instance of its view (``EncodeFailure`` with the path of a value that does not fit)."""
    return into_view(obj, view)


def rebuild(value: Any) -> Any:
    """The real objects for the views in ``value`` (a decoded view), at any depth."""
    try:
        return _build(value)
    except RecursionError:
        raise DecodeFailure("cannot rebuild the state: nested too deeply") from None


def _build(v: Any) -> Any:
    real = _REAL.get(type(v))
    if real is not None:
        cls = real.cls
        obj = typing.cast(Any, cls).__new__(cls)
        for name, how, what in real.steps:
            if how == "view":
                value = _build(getattr(v, name)) if what else getattr(v, name)
            else:
                value = what if how == "const" else what()
            object.__setattr__(obj, name, value)
        post = getattr(cls, "__post_init__", None)
        if post is not None:
            try:
                post(obj)
            except (TypeError, ValueError) as e:
                raise Mismatch(f"{cls.__qualname__}.__post_init__ refused the snapshot's values: {e}") from e
        return obj
    t = type(v)
    if t is list:
        for i, x in enumerate(v):
            new = _build(x)
            if new is not x:
                v[i] = new
        return v
    if t is dict:
        for k, x in v.items():
            new = _build(x)
            if new is not x:
                v[k] = new
        return v
    if isinstance(v, tuple):
        items = [_build(x) for x in v]
        if all(a is b for a, b in zip(items, v, strict=True)):
            return v
        return t(*items) if hasattr(t, "_fields") else t(items)
    return v
