"""Schema versions: upgrading old snapshots to the shape the code expects now.

A state class declares its version (``class Game(Snapshottable,
snapshot_version=3)``, or ``SnapStore(..., schema_version=3, migrations=[...])``
for store-only users) and one migration per step::

    @migration(from_version=1)
    def _v1_to_v2(state: dict) -> dict:
        state["hp"] = state.pop("health")
        return state

A migration takes the raw JSON state of version ``k`` and returns version
``k + 1``. On restore the steps run in order, from the version the snapshot
was written with up to the current one. The chain is checked up front: a
missing step is an error when the class (or store) is set up, not when a user
opens an old save file. A snapshot written by a *newer* schema than the code
knows is refused rather than half-read.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import MigrationError

__all__ = ["DEFAULT_VERSION", "Migration", "check_chain", "class_version", "collect", "migration", "run"]

#: The schema version of a Snapshottable class that declares no ``snapshot_version=``.
DEFAULT_VERSION = 1


def class_version(cls: Any) -> int | None:
    """The schema version a class declares (``snapshot_version=`` of a Snapshottable), or None.

    The one reader of ``__snapmixin_version__``, for the mixin and the store alike.
    """
    real = isinstance(cls, type) and not isinstance(cls, types.GenericAlias)  # 3.10: list[int] is a type
    v = getattr(cls, "__snapmixin_version__", None) if real else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None

MigrationFunc = Callable[[Any], Any]


class Migration:
    """A migration step from ``from_version`` to ``from_version + 1`` (made static in a class body)."""

    __slots__ = ("from_version", "func", "name")

    def __init__(self, from_version: int, func: MigrationFunc) -> None:
        if isinstance(func, (staticmethod, classmethod)):
            func = func.__func__
        self.from_version = from_version
        self.func = func
        self.name = getattr(func, "__qualname__", repr(func))

    def __call__(self, state: Any) -> Any:
        return self.func(state)

    # Accessed through a class or an instance, behave as the plain function (a static method).
    def __get__(self, obj: object, owner: type | None = None) -> Migration:
        return self

    def __repr__(self) -> str:
        return f"<migration {self.name} from version {self.from_version}>"


def migration(from_version: int) -> Callable[[MigrationFunc], Migration]:
    """Mark a function as the upgrade of a raw state dict from ``from_version`` to the next version.

    In a class body the function is made static: it takes the state, not ``self``.
    """
    if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
        raise ValueError(f"from_version must be an integer >= 1, not {from_version!r}")

    def decorate(func: MigrationFunc) -> Migration:
        return Migration(from_version, func)

    return decorate


def collect(namespace: Mapping[str, Any] | Iterable[Any]) -> dict[int, Migration]:
    """The migrations in a class namespace (or an iterable), by ``from_version``; duplicates refused."""
    items = namespace.values() if isinstance(namespace, Mapping) else namespace
    found: dict[int, Migration] = {}
    for item in items:
        if isinstance(item, Migration):
            if item.from_version in found:
                raise MigrationError(
                    f"two migrations from version {item.from_version}: "
                    f"{found[item.from_version].name} and {item.name}")
            found[item.from_version] = item
        elif not isinstance(namespace, Mapping):
            raise TypeError(f"not a migration (decorate it with @migration(from_version=k)): {item!r}")
    return found


def check_chain(migrations: Mapping[int, Migration], version: int, owner: str) -> None:
    """Refuse a chain with gaps or with steps beyond the current ``version``."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{owner}: schema version must be an integer >= 1, not {version!r}")
    if not migrations:
        return
    too_new = [k for k in migrations if k >= version]
    if too_new:
        raise MigrationError(f"{owner}: a migration from version {max(too_new)} exists but the "
                             f"current schema version is {version}")
    lowest = min(migrations)
    missing = [k for k in range(lowest, version) if k not in migrations]
    if missing:
        raise MigrationError(
            f"{owner}: the migration chain to version {version} has a gap: no migration from "
            f"version {', '.join(map(str, missing))} (add @migration(from_version={missing[0]}))")


def _copy_json(value: Any) -> Any:
    """A deep copy of plain JSON values (dicts, lists, scalars) without recursion, so that
    it copies as deep as the JSON library reads; anything else goes to ``copy.deepcopy``."""
    if not isinstance(value, (dict, list)):
        return copy.deepcopy(value)
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, root, 0)]  # (source, destination container, key)
    while stack:
        src, dst, key = stack.pop()
        if isinstance(src, dict):
            new: Any = {}
            for k, v in src.items():
                new[k] = None
                stack.append((v, new, k))
        elif isinstance(src, list):
            new = [None] * len(src)
            stack.extend((v, new, i) for i, v in enumerate(src))
        elif isinstance(src, (str, int, float, bool, type(None))):
            new = src
        else:
            new = copy.deepcopy(src)
        dst[key] = new
    return root[0]


def run(state: Any, found: int, current: int, migrations: Mapping[int, Migration], where: str) -> Any:
    """Upgrade ``state`` from version ``found`` to ``current``, step by step.

    ``where`` names the snapshot file (it becomes the error's ``path``). Works
    on a deep copy, so a failing step leaves the caller's value as it was.
    """
    if found == current:
        return state
    if found > current:
        raise MigrationError(
            f"{where} was written by schema version {found}, newer than this code's version {current}: "
            "upgrade the program (or restore an older generation) rather than read it half-understood",
            path=where)
    state = _copy_json(state)
    for k in range(found, current):
        step = migrations.get(k)
        if step is None:
            raise MigrationError(
                f"{where} has schema version {found} but there is no migration from version {k} "
                f"(add @migration(from_version={k}))", path=where)
        try:
            state = step(state)
        except Exception as e:
            raise MigrationError(f"{where}: migration {step.name} (version {k} -> {k + 1}) failed: "
                                 f"{type(e).__name__}: {e}", path=where) from e
        if state is None:
            raise MigrationError(f"{where}: migration {step.name} (version {k} -> {k + 1}) returned "
                                 "None; a migration must return the upgraded state", path=where)
    return state
