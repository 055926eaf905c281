"""snapmixin: durable, human-readable, crash-safe state for Python objects.

Public names: :class:`SnapStore` (the atomic snapshot store),
:class:`Snapshottable` (the mixin), :func:`snapshot_every` (the auto-snapshot
policy), :func:`migration` (schema upgrades), :func:`register_type` (a foreign
type, at any depth), :func:`transient` (a field that is not saved) and
:class:`SnapshotInfo`. The
exceptions live in :mod:`snapmixin.errors`.
"""

from .codec.registry import register_type
from .fields import transient
from .migrate import migration
from .mixin import Snapshottable
from .policy import snapshot_every
from .store import SnapshotInfo, SnapStore

__all__ = ["SnapStore", "SnapshotInfo", "Snapshottable", "migration", "register_type", "snapshot_every",
           "transient"]
__version__ = "0.3.0"
