"""What every admin operation works with: the store, the settings that carry the operator's
policies (pepper, KEK, key limits, token lifetimes), the developer CA, and a clock.

The CLI builds one from a home (``tessera.admin.compose.open_admin``); the admin API and the
portal build one from the running server's store."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tessera.ca.authority import CertificateAuthority
from tessera.config import Settings
from tessera.core.ports import Store


def wall_clock() -> int:
    return int(time.time())


def _no_check() -> None:
    return None


@dataclass(frozen=True)
class Admin:
    """The admin layer's context. ``ca`` is loaded on first use (it needs the KEK);
    ``check_kek`` is asked before new server keys are sealed (it raises when the KEK would not
    open the home's keys; a running server has checked it at start-up)."""

    store: Store
    settings: Settings
    ca: Callable[[], CertificateAuthority]
    clock: Callable[[], int] = wall_clock
    check_kek: Callable[[], None] = field(default=_no_check)

    def now(self) -> int:
        return int(self.clock())
