"""The storage contract moved to core (``tessera.core.ports``), which owns it; these names stay
importable from here for the code that has not moved yet."""

from tessera.core.ports import Conflict, PurgePolicy, Rotation, Store, StoreUnavailable

__all__ = ["Conflict", "PurgePolicy", "Rotation", "Store", "StoreUnavailable"]
