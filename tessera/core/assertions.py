"""Client assertions: the nested JWE of the Nexi PAR call, checked per RFC 7523 §3.

Every failure is ``invalid_client`` (RFC 7523 §3.1 via RFC 6749 §5.2). ``reason`` says
which rule failed, for metrics and logs; the description stays generic where detail
would help an attacker (decryption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeGuard

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from joserfc.errors import JoseError as LibJoseError
from joserfc.jwk import ECKey, RSAKey

from tessera.core.context import REPEATED_EVENT_SECONDS, Core
from tessera.core.kinds import Kind
from tessera.core.models import Artifact, Client
from tessera.errors import InvalidClient
from tessera.jose.errors import JoseError
from tessera.jose.nested import decrypt_assertion, verify_signed_assertion

JTI_KIND: str = Kind.ASSERTION_JTI.value


#: The largest NumericDate we compare: beyond 2^53 a JSON number is no longer exact.
MAX_NUMERIC_DATE = 2**53


@dataclass(frozen=True)
class AssertionRules:
    """The time rules one surface applies to its client assertions.

    ``max_lifetime``: the longest ``exp - iat``. ``iat_tolerance``: how far ahead of the
    server's clock ``iat``/``nbf`` may be. ``clock_ahead_hint``: say in the refusal that the
    client's clock is ahead (the Nexi PAR, where the provider refuses a future ``iat``)."""

    max_lifetime: int
    iat_tolerance: int
    clock_ahead_hint: bool = False

    @classmethod
    def native(cls, cfg: Any) -> AssertionRules:
        """``private_key_jwt``: ``assertion_max_lifetime`` (300 s) and ``clock_skew``."""
        return cls(cfg.assertion_max_lifetime, cfg.clock_skew)

    @classmethod
    def nexi(cls, cfg: Any) -> AssertionRules:
        """The Nexi PAR: up to 900 s of life, as the provider allows, and an ``iat`` at most
        ``nexi_iat_tolerance`` (2 s) ahead, as the provider refuses a future ``iat``."""
        return cls(cfg.nexi_assertion_max_lifetime, cfg.nexi_iat_tolerance, clock_ahead_hint=True)


@dataclass(frozen=True)
class VerifiedAssertion:
    header: dict[str, Any]
    claims: dict[str, Any]


def decrypt(core: Core, assertion: str) -> str:
    """The signed JWT inside a JWE client assertion, decrypted with the server's published
    encryption keys (the one its ``kid`` names, or each in turn when it names none): the one
    decryption path of every surface (the Nexi PAR and a JWE-wrapped ``private_key_jwt``).
    Every failure is one ``InvalidClient`` (``assertion_jwe``, uniform, tessera.jose.nested)."""
    now = core.now()
    try:
        inner = decrypt_assertion(assertion, core.keys.get(), datetime.fromtimestamp(now, tz=UTC))
        return inner.decode("ascii")
    except JoseError as e:
        raise InvalidClient(f"client_assertion: {e.reason}", reason="assertion_jwe") from None
    except UnicodeDecodeError:
        raise InvalidClient("client_assertion: the JWE does not hold a signed JWT", reason="assertion_jws") from None


def open_nested_assertion(
    core: Core, client: Client, assertion: str | None, *, preferred_thumbprint: str | None = None
) -> VerifiedAssertion:
    """Decrypt the JWE (``decrypt``) and verify the inner JWS with a key of a certificate bound
    to ``client``."""
    if not assertion:
        raise InvalidClient("client_assertion is required", reason="assertion_missing")
    inner = decrypt(core, assertion)
    candidates = certificate_verification_keys(core, client, preferred=preferred_thumbprint)
    if not candidates:
        raise InvalidClient("no usable certificate is bound to this client", reason="assertion_no_key")
    try:
        header, claims = verify_signed_assertion(inner, candidates)
    except JoseError as e:
        raise InvalidClient(f"client_assertion: {e.reason}", reason="assertion_jws") from None
    return VerifiedAssertion(header, claims)


def _usable_certificates(core: Core, client: Client, preferred: str | None) -> list[str]:
    """The PEMs of the client's usable bound certificates, the one presented over mTLS
    (``preferred`` thumbprint) first. The records come from the worker's cache (exact change
    notices: a revoked certificate is gone on the next request)."""
    now = core.now()
    records = [r for r in core.certificates_for(client.client_id) if r.usable(now)]
    records.sort(key=lambda r: r.thumbprint != preferred)
    return [r.pem for r in records]


def certificate_keys(core: Core, client: Client, *, preferred: str | None = None) -> list[Any]:
    """The public keys (``cryptography``) of the client's usable bound certificates, the one
    presented over mTLS (``preferred`` thumbprint) first; parsed once per certificate."""
    return [_certificate_key(pem) for pem in _usable_certificates(core, client, preferred)]


def certificate_verification_keys(core: Core, client: Client, *, preferred: str | None = None) -> list[Any]:
    """The same keys as :func:`certificate_keys`, as joserfc keys imported once per certificate:
    what ``verify_signed_assertion`` takes without importing them again on every request."""
    return [_certificate_jwk(pem) for pem in _usable_certificates(core, client, preferred)]


@lru_cache(maxsize=1024)
def _certificate_key(pem: str) -> Any:
    return x509.load_pem_x509_certificate(pem.encode()).public_key()


@lru_cache(maxsize=1024)
def _certificate_jwk(pem: str) -> Any:
    """The certificate's key in joserfc (RSA or EC), or the ``cryptography`` key when joserfc
    has no such key type (``verify_signed_assertion`` skips what cannot verify)."""
    key = _certificate_key(pem)
    try:
        if isinstance(key, RSAPublicKey):
            return RSAKey.import_key(key)
        if isinstance(key, EllipticCurvePublicKey):
            return ECKey.import_key(key)
    except (LibJoseError, ValueError, TypeError):  # a curve joserfc does not know
        pass
    return key


def check_assertion_claims(
    core: Core, client: Client, claims: dict[str, Any], *, audience: str, rules: AssertionRules | None = None
) -> None:
    """RFC 7523 §3 rules, with our limits: iss = sub = client_id, aud = the issuer (a single
    string), exp present and in the future, exp - iat <= ``rules.max_lifetime``, iat/nbf at
    most ``rules.iat_tolerance`` seconds ahead, and a jti never seen before. NumericDates
    must be finite numbers (never NaN, Infinity, a bool, or beyond 2^53). ``rules``
    defaults to the native ones (:meth:`AssertionRules.native`)."""
    rules = rules or AssertionRules.native(core.config)
    cid = client.client_id
    if claims.get("iss") != cid:
        raise _bad("iss must be the client_id", "assertion_iss")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _bad("sub is required", "assertion_sub")
    if sub != cid:
        raise _bad("sub must be the client_id", "assertion_sub")
    aud = claims.get("aud")
    if not isinstance(aud, str) or aud.rstrip("/") != audience.rstrip("/"):
        raise _bad(f"aud must be {audience}", "assertion_aud")
    _check_times(claims, core.now(), rules)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 128:
        raise _bad("jti is required", "assertion_jti")


def _bad(msg: str, reason: str) -> InvalidClient:
    return InvalidClient(f"client_assertion: {msg}", reason=reason)


def _check_times(claims: dict[str, Any], now: int, rules: AssertionRules) -> None:
    """exp, iat and nbf: NumericDates, unexpired, not ahead of ``now`` beyond the tolerance,
    and a lifetime within ``rules.max_lifetime``."""
    exp = claims.get("exp")
    if not _is_num(exp):
        raise _bad("exp is required and must be a NumericDate", "assertion_exp")
    if exp <= now:
        raise _bad("the assertion has expired", "assertion_expired")
    iat = claims.get("iat")
    if not _is_num(iat):
        raise _bad("iat is required and must be a NumericDate", "assertion_iat")
    if iat > now + rules.iat_tolerance:
        if rules.clock_ahead_hint:
            raise _bad(
                f"iat is {math.ceil(iat - now)} s in the future: the client's clock is ahead of the "
                f"server's (at most {rules.iat_tolerance} s tolerated); use iat = now",
                "assertion_iat_future",
            )
        raise _bad("iat is in the future", "assertion_iat_future")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not _is_num(nbf):
            raise _bad("nbf must be a NumericDate", "assertion_nbf")
        if nbf > now + rules.iat_tolerance:
            if rules.clock_ahead_hint:
                raise _bad("nbf is in the future: the client's clock is ahead of the server's", "assertion_nbf_future")
            raise _bad("nbf is in the future", "assertion_nbf_future")
    if exp - iat > rules.max_lifetime:
        raise _bad(f"exp may be at most {rules.max_lifetime} s after iat", "assertion_lifetime")


def claim_jti(core: Core, client: Client, claims: dict[str, Any], *, then_put: Artifact | None = None) -> None:
    """Record the jti until the assertion expires; a second use is refused (and recorded).

    With ``then_put``, that artefact (a pushed request) is stored in the same unit of work
    as the claim (``Store.claim_and_put``): both or neither."""
    key = f"{client.client_id}:{claims['jti']}"
    expires_at = int(claims["exp"]) + core.config.clock_skew
    now = core.now()
    if then_put is None:
        won = core.store.claim(JTI_KIND, key, client.client_id, expires_at, now)
    else:
        won = core.store.claim_and_put(JTI_KIND, key, client.client_id, expires_at, now, then_put)
    if not won:
        core.event("jti_replayed", client.client_id, jti=str(claims["jti"])[:128], once_per=REPEATED_EVENT_SECONDS)
        raise InvalidClient("client_assertion: jti has already been used", reason="assertion_replay")


def _is_num(v: object) -> TypeGuard[int | float]:
    """A NumericDate we can compare: an int or a finite float (never a bool, NaN or Infinity,
    which Python's JSON parser lets through), no larger than 2^53 in magnitude."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, float) and not math.isfinite(v):
        return False
    return abs(v) <= MAX_NUMERIC_DATE
