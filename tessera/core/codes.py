"""Authorization codes at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6), shared by the
Nexi profile and the native endpoints: the checks, the atomic redemption, and what a replay does.

A code is single use, short-lived, and bound to its client and ``redirect_uri``. The exchange
that wins it records on the code what it issued. A replay (RFC 6749 §4.1.2: the server SHOULD
revoke all tokens issued on that code) leaves a marker, then reads the code again and revokes
what it finds; the winner, after recording, looks for the marker. The tokens are revoked
whichever order the two run in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from tessera.core import refresh, tokens
from tessera.core.context import Core
from tessera.core.models import Artifact
from tessera.core.ports import Conflict
from tessera.core.secrets import sha256_key
from tessera.errors import InvalidGrant, InvalidRequest

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


@dataclass(frozen=True)
class CodeKinds:
    """The artefact kinds of one family of codes: the codes, and the replay markers."""

    code: str
    replay: str


def pkce_matches(verifier: str, challenge: str) -> bool:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return hmac.compare_digest(computed, challenge)


def redeem(
    core: Core,
    kinds: CodeKinds,
    client_id: str,
    *,
    code: str | None,
    redirect_uri: str | None,
    code_verifier: str | None,
    pkce_required: bool,
) -> tuple[str, Artifact]:
    """Check and use up ``code``: (its storage key, the artefact). ``pkce_required``: a
    verifier is needed even when no challenge was pushed (the native endpoints)."""
    if not code:
        raise InvalidRequest("code is required", reason="code_missing")
    key = sha256_key(code)
    art = core.store.get_artifact(kinds.code, key)
    now = core.now()
    if art is None:
        raise InvalidGrant("the authorization code is invalid", reason="code_unknown")
    if art.client_id != client_id:
        raise InvalidGrant("the authorization code was issued to another client", reason="code_foreign")
    if art.consumed_at is not None:
        revoke_issued(core, kinds, art)
        raise InvalidGrant("the authorization code has already been used", reason="code_replayed")
    if art.expires_at <= now:
        raise InvalidGrant("the authorization code has expired", reason="code_expired")
    params = art.data["params"]
    if redirect_uri != params["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request", reason="code_redirect_uri")
    _check_pkce(core, kinds, key, now, params.get("code_challenge"), code_verifier, pkce_required)
    won = core.store.consume(kinds.code, key, now)
    if won is None:
        fresh = core.store.get_artifact(kinds.code, key)
        if fresh is not None and fresh.consumed_at is not None:
            revoke_issued(core, kinds, fresh)
        raise InvalidGrant("the authorization code has already been used", reason="code_replayed")
    return key, won


def _check_pkce(
    core: Core,
    kinds: CodeKinds,
    key: str,
    now: int,
    challenge: str | None,
    code_verifier: str | None,
    pkce_required: bool,
) -> None:
    """RFC 7636 §4.6: the verifier matches the pushed challenge (a wrong one burns the code);
    none is given when no challenge was pushed, unless ``pkce_required``."""
    if challenge or pkce_required:
        if not code_verifier:
            raise InvalidRequest("code_verifier is required", reason="pkce_verifier_missing")
        if not challenge or not VERIFIER.match(code_verifier) or not pkce_matches(code_verifier, challenge):
            core.store.consume(kinds.code, key, now)  # a wrong verifier burns the code
            raise InvalidGrant("code_verifier does not match code_challenge", reason="pkce_mismatch")
    elif code_verifier:
        raise InvalidGrant("code_verifier given but no code_challenge was pushed", reason="pkce_unexpected")


def record_issued(
    core: Core,
    kinds: CodeKinds,
    key: str,
    won: Artifact,
    *,
    jti: str,
    exp: int,
    family: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Record on the code what its exchange issued. False when a replay raced the exchange:
    what was issued has then been revoked here, as the replay would have."""
    record = {**won.data, **(extra or {}), "issued_jti": jti, "issued_exp": exp}
    if family:
        record["issued_family"] = family
    core.store.update_artifact_data(kinds.code, key, record)
    if core.store.get_artifact(kinds.replay, key) is not None:
        _revoke(core, won.client_id, jti, exp, family)
        return False
    return True


def revoke_issued(core: Core, kinds: CodeKinds, art: Artifact) -> None:
    """A replay: leave the marker first, then revoke what the code issued (see the module doc)."""
    try:
        core.store.put_artifact(
            Artifact(
                kinds.replay,
                art.key,
                art.client_id,
                {},
                core.now() + max(core.config.access_token_ttl, core.config.code_ttl),
            )
        )
    except Conflict:
        pass
    fresh = core.store.get_artifact(kinds.code, art.key) or art
    jti = fresh.data.get("issued_jti")
    _revoke(
        core,
        fresh.client_id,
        jti,
        int(fresh.data.get("issued_exp") or core.now() + 3600),
        fresh.data.get("issued_family"),
    )
    core.event("authorization_code_replayed", art.client_id, revoked_jti=jti)


def _revoke(core: Core, client_id: str, jti: str | None, exp: int, family: str | None) -> None:
    if jti:
        tokens.revoke_token(core, jti, client_id, exp)
    if family:
        refresh.revoke_family(core, family, client_id, cause="authorization_code_replayed")
