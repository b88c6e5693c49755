"""Who calls the admin API: an operator client holding a Bearer access token of the native
profile with the scope ``tessera:admin``.

The operator registers such a client (``tessera clients create --name ops --scope
tessera:admin``) and gets its token from ``/oauth2/token`` by ``client_credentials``. The
token is checked by the core's one access-token check (``verify_access_token``, profile
``native``): signature, seal, expiry, revocation of the token and of its client, and the
certificate binding (a client bound to a certificate presents it over mutual TLS). No or an
invalid token: 401 with ``WWW-Authenticate: Bearer``; a token without the scope: 403.

An operator client that belongs to an organisation (``Client.org_id``) acts only on its
organisation's apps and their certificates (another organisation's app is a 404, as if it
did not exist) and gets 403 on the platform-wide resources; a platform operator (no
organisation) may do everything."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.core.context import Core
from tessera.core.profiles import NATIVE
from tessera.core.tokens import verify_access_token
from tessera.errors import InvalidToken
from tessera.web.admin_api.problems import Problem

ADMIN_SCOPE = "tessera:admin"


@dataclass(frozen=True)
class Operator:
    client_id: str
    org_id: str | None

    @property
    def platform(self) -> bool:
        return self.org_id is None

    def require_platform(self) -> None:
        if not self.platform:
            raise Problem(403, "forbidden", "an organisation's operator client cannot use platform-wide resources")

    def may_see(self, org_id: str | None) -> bool:
        """True when this operator may act on an app owned by ``org_id``."""
        return self.platform or org_id == self.org_id


def authenticate(core: Core, token: str | None, thumbprint: str | None) -> Operator:
    """The operator behind ``token`` (run off the event loop: it may read the store)."""
    claims = verify_access_token(core, token, thumbprint=thumbprint, profile=NATIVE)
    if ADMIN_SCOPE not in str(claims.get("scope") or "").split():
        raise Problem(403, "forbidden", f"the access token lacks the scope {ADMIN_SCOPE}")
    client = core.client(str(claims.get("client_id")))
    if client is None:  # pragma: no cover - verify_access_token refuses a token of an unknown client
        raise InvalidToken("the access token's client is no longer active", reason="token_client_revoked")
    return Operator(client.client_id, client.org_id)
