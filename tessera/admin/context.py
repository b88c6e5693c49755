"""What every admin operation works with: the store, the settings that carry the operator's
policies (pepper, KEK, key limits, token lifetimes), the developer CA, and a clock.

The CLI builds one from a home (``tessera.admin.compose.open_admin``); the admin API and the
portal build one from the running server's store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tessera.ca.authority import CertificateAuthority
from tessera.config import Settings
from tessera.core.ports import Store

#: The security-event kind of an operator's change (see ``Admin.actor``).
ADMIN_CHANGE = "admin_change"


def wall_clock() -> int:
    return int(time.time())


def _no_check() -> None:
    return None


@dataclass(frozen=True)
class Admin:
    """The admin layer's context. ``ca`` is loaded on first use (it needs the KEK);
    ``check_kek`` is asked before new server keys are sealed (it raises when the KEK would not
    open the home's keys; a running server has checked it at start-up). With ``actor`` (the
    operator client of the admin API or portal), every change is written to the security
    events as ``admin_change``, naming the actor and what changed, never a secret; the CLI,
    on the server's own disk, has no actor."""

    store: Store
    settings: Settings
    ca: Callable[[], CertificateAuthority]
    clock: Callable[[], int] = wall_clock
    check_kek: Callable[[], None] = field(default=_no_check)
    actor: str | None = None

    def now(self) -> int:
        return int(self.clock())

    def record(self, op: str, **detail: Any) -> None:
        """Write the change ``op`` to the security events when there is an actor."""
        if self.actor is not None:
            self.store.add_event(ADMIN_CHANGE, self.actor, {"op": op, **detail}, self.now())
