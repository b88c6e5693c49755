"""axept Cloud Connect authentication: the use case, without the wire format.

``{merchantId, keyId, key}`` (parsed by ``tessera.web.profiles.axept``) → a token and its
expiry. The token follows the provider's sample (provider-docs/reference-facts.md):
``unique_name`` (the merchant id, as a string), ``nbf`` = ``iat``, ``exp`` = ``iat`` + the
lifetime (1800 s by default, ``axept_token_ttl``), ``iss`` and ``aud`` (the profile's audience,
``axeptConnectCloud-merchant-client`` unless configured), sealed like every tessera token
(``prf``, ``env``, ``jti``, ``sub``, ``client_id``). ``expiresAt`` is exactly the token's
``exp``. The signature is tessera's (ES256 by default), not the sample's HS256: a shared
HMAC secret would let every resource server forge tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tessera.core import key_usage, tokens
from tessera.core.clock import iso_z
from tessera.core.context import Core
from tessera.core.models import ApiKey
from tessera.core.profiles import AXEPT


@dataclass(frozen=True)
class AuthenticateRequest:
    merchant_id: int
    key_id: int
    key: str


@dataclass(frozen=True)
class AuthenticateResult:
    token: str
    expires_at: str  # UTC ISO-8601 with Z: the token's exp
    claims: dict[str, Any]


def client_id_of(merchant_id: int) -> str:
    """The ``client_id`` claim of a merchant's axept tokens (a merchant key is no client)."""
    return f"axept-merchant-{merchant_id}"


def issue(core: Core, record: ApiKey, *, ttl: int) -> AuthenticateResult:
    merchant = str(record.merchant_id)
    issued = tokens.issue_access_token(
        core,
        profile=AXEPT,
        client_id=client_id_of(record.merchant_id),
        subject=merchant,
        ttl=ttl,
        extra={"unique_name": merchant},
        not_before=True,
    )
    return AuthenticateResult(issued.token, iso_z(issued.claims["exp"]), issued.claims)


def authenticate(
    core: Core, request: AuthenticateRequest, *, ttl: int, check_key: Callable[[AuthenticateRequest], ApiKey]
) -> AuthenticateResult:
    """``check_key`` (the web layer's brute-force guarded ``tessera.core.apikeys.authenticate``),
    the key's last use recorded (``tessera.core.key_usage``: at most once a minute), then ``issue``."""
    record = check_key(request)
    key_usage.RECORDER.used(core.store, record, core.now())
    return issue(core, record, ttl=ttl)
