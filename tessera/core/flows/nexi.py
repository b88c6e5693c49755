"""The Nexi SoftPOS use cases. Today: the pushed authorization request (``POST /as/par``).

:func:`push_authorization` takes what the web layer parsed (:class:`PushRequest`: the form,
the Bearer token, the verified client certificate) and returns the stored request
(:class:`tessera.core.par.PushedRequest`), or raises a typed error.

Statuses, as the provider answers them (provider-docs/reference-facts.md, support page "I
get the 400 error code during the PAR"): a missing or wrong client certificate or Bearer
token is 401 (``invalid_client`` / ``invalid_token``); every problem with the client
assertion or its claims is **400** - ``invalid_client`` as :class:`InvalidClientAssertion`
(RFC 6749 §5.2 allows 400 when the client did not authenticate with the ``Authorization``
header, which it did not: the assertion is in the body), or ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from tessera.core import client_auth, enrollment, par
from tessera.core.clients import ClientCredentials, PeerCert, bound_certificate
from tessera.core.context import Core
from tessera.core.models import Client
from tessera.core.profiles import NEXI
from tessera.core.tokens import verify_access_token
from tessera.errors import InvalidClient, InvalidClientAssertion, InvalidRequest, InvalidToken, PayloadTooLarge
from tessera.jose.nested import MAX_TOKEN_BYTES

PROFILE = NEXI
REQUEST_URI_PREFIX = "urn:softpos_"
#: The form parameters the PAR call must carry (the reference backend sends exactly these).
PAR_FIELDS = ("client_assertion", "client_id", "scope", "redirect_uri")


@dataclass(frozen=True)
class PushRequest:
    """A PAR call as the web layer parsed it."""

    form: Mapping[str, str] = field(default_factory=dict)
    #: The ``Authorization: Bearer`` token, or None when absent.
    bearer_token: str | None = None
    #: The verified TLS client certificate (its ``x5t#S256``), or None without mTLS.
    peer: PeerCert | None = None


@contextmanager
def _assertion_problems_are_400() -> Iterator[None]:
    try:
        yield
    except InvalidClientAssertion:
        raise
    except InvalidClient as e:
        raise InvalidClientAssertion.of(e) from None


def check_request(req: PushRequest) -> None:
    """What can be refused before any look-up: mTLS, Bearer, the form's shape and size."""
    if req.peer is None:
        raise InvalidClient("a client certificate is required (mutual TLS)", reason="mtls_missing")
    if req.bearer_token is None:
        raise InvalidToken("a Bearer access token is required", reason="token_missing")
    form = req.form
    if "request_uri" in form:
        raise InvalidRequest("request_uri must not be sent to the PAR endpoint", reason="par_request_uri")
    for name in PAR_FIELDS:
        if not form.get(name):
            raise InvalidRequest(f"{name} is required", reason=f"{name}_missing")
    if len(form["client_assertion"]) > MAX_TOKEN_BYTES:  # security checklist #13: 413, before parsing
        raise PayloadTooLarge(f"client_assertion over {MAX_TOKEN_BYTES} bytes", reason="assertion_too_large")


def authenticate(core: Core, req: PushRequest) -> client_auth.AuthenticatedClient:
    """The client the Bearer token was issued to, over the certificate bound to it (401s).
    Only a Nexi token bound to the presented certificate opens the PAR. The client and its
    certificate, looked up once here, serve the assertion's check too (``ClientAuthRequest.holder``)."""
    check_request(req)
    assert req.peer is not None and req.bearer_token is not None
    form = req.form
    claims = verify_access_token(core, req.bearer_token, thumbprint=req.peer.thumbprint, profile=PROFILE, bound=True)
    if claims.get("client_id") != form["client_id"]:
        raise InvalidToken("the access token was issued to another client", reason="token_client_mismatch")
    client = core.client(form["client_id"])
    if client is None or not client.active:
        raise InvalidClient("client authentication failed", reason="client_unknown")
    cert = bound_certificate(core, client, req.peer)
    return client_auth.AuthenticatedClient(client, "bearer", cert)


def push_authorization(
    core: Core, req: PushRequest, *, after_auth: Callable[[Client], None] | None = None
) -> par.PushedRequest:
    """The whole PAR use case. ``after_auth(client)``: called once the caller is known and
    before the costly decryption (the web layer's per-credential rate limit)."""
    holder = authenticate(core, req)
    client = holder.client
    if after_auth is not None:
        after_auth(client)
    form = req.form
    with _assertion_problems_are_400():
        # The client's assertion, through the one client-authentication registry (the nested JWE
        # decrypted by the same path as a JWE-wrapped private_key_jwt, checked with the Nexi rules).
        auth = client_auth.authenticate_with(
            core,
            client_auth.NEXI_PAR_METHODS,
            client_auth.ClientAuthRequest(
                ClientCredentials(client.client_id, None, "none"),
                assertion=form["client_assertion"],
                peer=req.peer,
                holder=holder,
            ),
        )
        claims = auth.claims
        assert claims is not None
        wanted = enrollment.check_enrollment_claims(core, client, claims)
    scope = par.check_nexi_scope(form["scope"])
    redirect_uri = par.check_redirect_uri(client, form["redirect_uri"])
    challenge, method = par.check_pkce(form.get("code_challenge"), form.get("code_challenge_method"))
    params = par.AuthorizationParams(client.client_id, redirect_uri, scope, form.get("state"), challenge, method)
    # One write: the assertion's jti and the pushed request together (a replay stores nothing).
    # The enrollment (app_deviceid included) travels with the request_uri, then the code.
    with _assertion_problems_are_400():
        return par.push(
            core, client, params, {"enrollment": wanted.as_dict()}, prefix=REQUEST_URI_PREFIX, claims=claims
        )
