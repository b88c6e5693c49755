"""Housekeeping: what may be deleted, and whose turn it is to delete it.

Single-use artefacts (pushed requests, codes, assertion ``jti``\\ s, revoked-token marks,
refresh tokens and their families) and security events would otherwise stay forever: a
flood of plain authorization requests, each a row, is bounded in time only if expired rows
go. ``purge`` deletes them by the rules below (``policy``), which keep everything a check
still needs:

- an artefact is never deleted before its ``expires_at``; what is kept until then is all
  that the single-use checks read (a ``jti`` record lives until the assertion's ``exp`` plus
  the clock skew; a refresh token's row until the token's own ``exp``, after which the token
  is refused by its signature check before any row is read, so reuse is detected for as
  long as the token could be presented);
- a consumed authorization code is kept ``replay_margin`` longer (at least an hour, and at
  least the longest access-token lifetime), so that a replay is recognised and what the code
  issued is revoked, as the Redis store does; a replay marker lives until its own expiry;
- a refresh family is kept while any unexpired refresh token names it, and for the longest
  access-token lifetime past its own expiry (the access tokens issued with its last refresh
  token name it; a family that is gone counts as revoked);
- security events are kept ``event_retention_days`` (0: forever).

Each server process runs ``purge`` on a jittered schedule (tessera.web.housekeeping); the
processes of every instance sharing the database take turns (``take_turn``: an atomic claim,
so one of them purges per interval). ``tessera purge`` runs it at once.
"""

from __future__ import annotations

from typing import Protocol

from tessera.core import authorize, refresh
from tessera.core.flows import native
from tessera.core.kinds import Kind
from tessera.core.ports import ArtifactStore, PurgePolicy

#: The shortest time a consumed authorization code outlives its expiry (the Redis store's
#: ``DEFAULT_REPLAY_MARGIN``).
REPLAY_MARGIN = 3600
#: The artefact kind of the purge turn (one row, claimed atomically).
TURN_KIND: str = Kind.PURGE_TURN.value
DAY = 86400


class PurgeSettings(Protocol):
    """What the purge reads of the settings (``tessera.config.Settings`` has it; core imports no
    configuration)."""

    @property
    def access_token_ttl(self) -> int: ...
    @property
    def id_token_ttl(self) -> int: ...
    @property
    def nexi_token_ttl(self) -> int: ...
    @property
    def mobilepay_token_ttl(self) -> int: ...
    @property
    def axept_token_ttl(self) -> int: ...
    @property
    def b2binpay_access_ttl(self) -> int: ...
    @property
    def clock_skew(self) -> int: ...
    @property
    def event_retention_days(self) -> int: ...


def longest_access_token(settings: PurgeSettings) -> int:
    """The longest lifetime of any access (or ID) token a profile issues."""
    return max(
        settings.access_token_ttl,
        settings.id_token_ttl,
        settings.nexi_token_ttl,
        settings.mobilepay_token_ttl,
        settings.axept_token_ttl,
        settings.b2binpay_access_ttl,
    )


def policy(settings: PurgeSettings, now: int) -> PurgePolicy:
    """What may be deleted at ``now`` (see the module docstring)."""
    longest = longest_access_token(settings) + settings.clock_skew
    days = settings.event_retention_days
    return PurgePolicy(
        replay_kinds=frozenset({authorize.CODE_KIND, native.CODE_KIND}),
        replay_margin=max(REPLAY_MARGIN, longest),
        family_kind=refresh.FAMILY_KIND,
        token_kind=refresh.REFRESH_KIND,
        family_margin=longest,
        events_before=now - days * DAY if days > 0 else None,
    )


def purge(store: ArtifactStore, settings: PurgeSettings, now: int) -> dict[str, int]:
    """Delete what ``policy`` allows now: the rows deleted per artefact kind (and
    ``security_events``)."""
    return store.purge(int(now), policy(settings, int(now)))


def take_turn(store: ArtifactStore, now: int, interval: float) -> bool:
    """True for exactly one caller (of every process on this database) per half ``interval``:
    the scheduled purges of several workers and instances do not all run at once."""
    return store.claim(TURN_KIND, "purge", "tessera", int(now) + max(1, int(interval / 2)), int(now))
