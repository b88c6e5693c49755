"""The kinds of single-use artefact, in one place.

Every artefact the core stores (``tessera.core.models.Artifact``) has one of these kinds.
The use cases name them through their own constants (``par.PAR_KIND``, ``refresh.FAMILY_KIND``,
...), and a storage adapter that treats some kinds apart (the Redis store keeps the short-lived
ones; the SQL store announces the writes of revoked marks) imports this enum, never a use case.
A ``StrEnum``: a member *is* its string, in SQL, in Redis keys and in JSON alike. The use cases'
constants are the members' plain ``.value`` strings: a driver binds an exact ``str`` faster than
a subclass of it (SQLite: about half a microsecond per parameter), and these are bound on every
token request.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    #: A pushed authorization request of the Nexi profile (RFC 9126): ``urn:softpos_...``.
    REQUEST_URI = "request_uri"
    #: A Nexi authorization code, and the marker left when one is replayed.
    CODE = "authorization_code"
    CODE_REPLAY = "authorization_code_replay"
    #: The native surface's pushed requests, codes and replay markers.
    NATIVE_REQUEST_URI = "native_request_uri"
    NATIVE_CODE = "native_code"
    NATIVE_CODE_REPLAY = "native_code_replay"
    #: A client assertion's ``jti`` (client id and jti), claimed once until the assertion expires.
    ASSERTION_JTI = "assertion_jti"
    #: The mark of a revoked access token (its ``jti``).
    REVOKED_TOKEN = "revoked_jti"
    #: A refresh token (its ``jti``), and its family (every token descended from one login).
    REFRESH_TOKEN = "refresh_token"
    REFRESH_FAMILY = "refresh_family"
    #: The turn of the scheduled purge (one record, claimed atomically by one process).
    PURGE_TURN = "purge_turn"
    #: An admin API create's ``Idempotency-Key`` and its sealed answer (tessera.admin.idempotency).
    ADMIN_IDEMPOTENCY = "admin_idempotency"
    #: A portal session (the SHA-256 of its cookie) and a portal invitation (of its token).
    PORTAL_SESSION = "portal_session"
    PORTAL_INVITATION = "portal_invitation"
