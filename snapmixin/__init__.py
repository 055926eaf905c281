"""snapmixin: durable, human-readable, crash-safe state for Python objects.

Public names: :class:`SnapStore` (the atomic snapshot store),
:class:`Snapshottable` (the mixin), :func:`snapshot_every` (the auto-snapshot
policy), :func:`migration` (schema upgrades) and :class:`SnapshotInfo`. The
exceptions live in :mod:`snapmixin.errors`.
"""

from .migrate import migration
from .mixin import Snapshottable
from .policy import snapshot_every
from .store import SnapshotInfo, SnapStore

__all__ = ["SnapStore", "SnapshotInfo", "Snapshottable", "migration", "snapshot_every"]
__version__ = "0.1.0"
