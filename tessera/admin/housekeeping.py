"""Purging what no rule needs any more: expired artefacts, and security events past
``event_retention_days`` (the policy is core's: ``tessera.core.purge``)."""

from __future__ import annotations

from tessera.admin.context import Admin
from tessera.core import purge as core_purge


def purge(admin: Admin) -> dict[str, int]:
    """Delete now what the policy allows: the rows deleted per kind (kinds with none left out)."""
    counts = core_purge.purge(admin.store, admin.settings, admin.now())
    admin.record("purge", deleted=counts)
    return counts
