"""The profiles a token can belong to, and the seal that keeps them apart.

Every access token and refresh token that tessera issues names the profile that issued it
(claim ``prf``) and the environment (claim ``env``), and carries that profile's own audience
(``aud``). Every place that reads a token (``tessera.core.tokens.verify_access_token``,
``tessera.core.refresh``, the native introspection and revocation) asks for one profile and
honours only that profile's tokens: a native refresh token is never redeemed at the B2BINPAY
endpoint, a MobilePay token never opens the Nexi PAR, and a resource server that checks one
profile's audience refuses another's (``tessera.sdk.resource``).

Single-use artefacts are sealed by their kind (``ARTIFACT_KINDS``): each profile stores its
pushed requests and codes under kinds of its own, and a look-up names the kind, so a Nexi
``request_uri`` or code is unknown to the native endpoints and the other way round. Assertion
``jti`` records are one namespace for every surface: a ``jti`` used at one endpoint is used
everywhere, which is stricter than a seal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NEXI = "nexi-softpos"
NATIVE = "native"
MOBILEPAY = "mobilepay"
AXEPT = "axept"
B2BINPAY = "b2binpay"
PROFILES = (NEXI, NATIVE, MOBILEPAY, AXEPT, B2BINPAY)

#: The claims that carry the seal.
PROFILE_CLAIM = "prf"
ENVIRONMENT_CLAIM = "env"

#: axept's own sample token names this audience (provider-docs/reference-facts.md).
AXEPT_AUDIENCE = "axeptConnectCloud-merchant-client"


@dataclass(frozen=True)
class ProfileSeal:
    """What a profile's tokens say of themselves: issuer, audience, profile, environment."""

    name: str
    issuer: str
    audience: str
    environment: str

    def claims(self) -> dict[str, Any]:
        return {"iss": self.issuer, PROFILE_CLAIM: self.name, ENVIRONMENT_CLAIM: self.environment}

    def names(self, claims: dict[str, Any]) -> bool:
        """True when ``claims`` were issued by this profile's issuer, naming this profile and
        this environment (refresh tokens: they have no audience but the server itself)."""
        return (
            claims.get("iss") == self.issuer
            and claims.get(PROFILE_CLAIM) == self.name
            and claims.get(ENVIRONMENT_CLAIM) == self.environment
        )

    def holds(self, claims: dict[str, Any]) -> bool:
        """True when ``claims`` (an access token's) were issued by this profile, in this
        environment, for its audience."""
        if not self.names(claims):
            return False
        aud = claims.get("aud")
        return aud == self.audience or (isinstance(aud, list) and self.audience in aud)


def default_audiences(
    issuer: str, *, nexi_prefix: str, mobilepay_prefix: str, b2binpay_prefix: str, axept_prefix: str
) -> dict[str, str]:
    """Each profile's own audience unless configured: the profile's base URL on this server
    (MobilePay: its issuer plus ``/resources``, as the provider's sample token names it;
    axept: the audience of the provider's sample token); the native surface keeps the issuer
    (RFC 9068 §3 lets the authorization server choose it when no resource is asked for)."""
    del axept_prefix  # axept's audience is a name, not a URL
    return {
        NATIVE: issuer,
        NEXI: issuer + nexi_prefix,
        MOBILEPAY: issuer + mobilepay_prefix + "/resources",
        AXEPT: AXEPT_AUDIENCE,
        B2BINPAY: issuer + b2binpay_prefix,
    }


def default_issuers(issuer: str, *, mobilepay_prefix: str) -> dict[str, str]:
    """The ``iss`` of each profile's tokens: the server's issuer, except MobilePay, whose
    discovery document lives under its prefix (OIDC Discovery §4.3)."""
    out = {name: issuer for name in PROFILES}
    out[MOBILEPAY] = issuer + mobilepay_prefix
    return out
