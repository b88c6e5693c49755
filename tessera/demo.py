"""``tessera demo``: every profile's flow, end to end, against a running server.

The demo registers its own actors through the admin layer, as an operator would (an app, a
developer certificate signed by the home's CA, a merchant with terminals, a user, a grant, an
axept key), then drives each flow over the wire exactly as an integrator would, printing
each step:

    nexi-softpos  CSR → certificate → token → JWKS → PAR → authorize → code → token
    axept         key → authenticate
    mobilepay     grant → token with merchant_vat
    b2binpay      login (meta.sign checked) → refresh rotation

Each profile is called at its paths as the home's settings give them (``nexi_prefix``,
``axept_prefix``, ``mobilepay_prefix``, ``b2binpay_prefix``): a ``tessera serve`` with its
defaults, or a ``tessera sandbox`` home (the providers' own paths, recorded in its
tessera.toml). A step that fails stops the demo with ``DemoFailed``: one line naming the step
and what the server answered, never a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tessera import admin as ops
from tessera.admin.compose import open_admin
from tessera.config import Settings
from tessera.sdk.csr import make_csr
from tessera.sdk.nexi import NexiSoftPOSClient
from tessera.sdk.pkce import make_pkce

REDIRECT_URI = "https://demo.tessera.invalid/callback"


class DemoFailed(Exception):
    """A step of the demo failed: ``step`` and what happened, in one line."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


def _why(e: Exception) -> str:
    """What went wrong, in one line, from the HTTP, TLS or SDK error raised by a step."""
    if isinstance(e, httpx.HTTPStatusError):
        body = e.response.text.strip().replace("\n", " ")[:200]
        return f"{e.request.method} {e.request.url} answered {e.response.status_code}: {body}"
    if isinstance(e, httpx.TransportError):
        return f"cannot reach {e.request.url if e.request else 'the server'}: {type(e).__name__}: {e}"
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def _short(token: str) -> str:
    return token[:24] + "…" if len(token) > 24 else token


Say = Callable[[str], Any]


@dataclass(frozen=True)
class _Actors:
    """What the demo registered: the app and its merchant (with two terminals and a user)."""

    client_id: str
    secret: str
    merchant_id: int
    vat: str
    pos: str
    tids: list[str]
    username: str
    password: str


def run_demo(settings: Settings, url: str, *, say: Say = print) -> dict[str, Any]:
    url = url.rstrip("/")
    admin = open_admin(settings)
    verify = ssl.create_default_context(cafile=str(settings.ca_cert_path))
    result: dict[str, Any] = {"url": url}
    try:
        actors = _register(admin)
        say(
            f"[bold]setup[/]  app {actors.client_id}, merchant {actors.merchant_id} (VAT {actors.vat}), "
            f"POS {actors.pos}, TIDs {'/'.join(actors.tids)}"
        )
        with tempfile.TemporaryDirectory(prefix="tessera-demo-") as tmp:
            result["nexi-softpos"] = _step("nexi-softpos", _nexi, admin, url, verify, actors, Path(tmp), say)
        result["axept"] = _step("axept", _axept, admin, url, verify, actors.merchant_id, say)
        result["mobilepay"] = _step(
            "mobilepay",
            _mobilepay,
            url + settings.mobilepay_prefix,
            verify,
            actors.client_id,
            actors.secret,
            actors.vat,
            say,
        )
        result["b2binpay"] = _step(
            "b2binpay", _b2binpay, url + settings.b2binpay_prefix, verify, actors.client_id, actors.secret, say
        )
        say("[bold green]all flows completed[/]")
        result["ok"] = True
        return result
    finally:
        admin.store.close()


def _step(name: str, flow: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    try:
        return flow(*args)
    except DemoFailed:
        raise
    except Exception as e:  # noqa: BLE001 - whatever a step raised (HTTP, TLS, the SDK's errors): one line
        raise DemoFailed(name, _why(e)) from None


def _register(admin: ops.Admin) -> _Actors:
    """The demo's actors, registered through the admin layer as an operator would."""
    app = ops.register_client(
        admin,
        ops.RegisterClient(
            name="tessera demo app",
            redirect_uris=(REDIRECT_URI,),
            grant_types=("client_credentials", "authorization_code"),
        ),
    )
    assert app.client_secret is not None  # the default methods are the secret ones
    mid = secrets.randbelow(9 * 10**8) + 10**8
    pos, softpos_tid, mpos_tid = f"POS-{mid}", f"SP{mid}", f"MP{mid}"
    username, password = f"owner-{mid}@demo-shop.example", secrets.token_urlsafe(12)
    vat = f"DK{mid % 10**8:08d}"
    ops.create_merchant(admin, ops.CreateMerchant(mid, "Demo Shop", vat))
    ops.add_terminal(admin, ops.AddTerminal(mid, pos, softpos_tid, "softpos"))
    ops.add_terminal(admin, ops.AddTerminal(mid, pos, mpos_tid, "mpos"))
    ops.add_user(admin, ops.AddUser(mid, username, password))
    ops.grant(admin, mid, app.client_id)
    return _Actors(app.client_id, app.client_secret, mid, vat, pos, [softpos_tid, mpos_tid], username, password)


def _nexi(admin: ops.Admin, url: str, verify: ssl.SSLContext, actors: _Actors, tmp: Path, say: Say) -> dict[str, Any]:
    settings = admin.settings
    client_id, pos, tids, username = actors.client_id, actors.pos, actors.tids, actors.username
    say("[bold]nexi-softpos[/]")
    csr_pem, key_pem = make_csr("NOMEAPP")
    say("  1. CSR        RSA 2048, /CN=NOMEAPP/O=NEXI/OU=API Security - STAGING/L=Milano/C=IT, EKU clientAuth")
    issued = ops.sign_certificate(admin, ops.SignCertificate(client_id, csr_pem))
    cert, key = tmp / "NOMEAPP.pem", tmp / "NOMEAPP.key"
    cert.write_bytes(issued.pem)
    key.write_bytes(key_pem)
    key.chmod(0o600)
    say(f"  2. certificate serial {issued.serial[:16]}…, x5t#S256 {issued.thumbprint}")
    with NexiSoftPOSClient(
        url, client_id, actors.secret, cert, key, verify=verify, audience=settings.issuer, prefix=settings.nexi_prefix
    ) as nexi:
        token = nexi.token()
        say(f"  3. token       {_short(token)} (mTLS, expires_in 3600, bound to the certificate)")
        jwks = nexi.jwks()
        say(f"  4. JWKS        {len(jwks['keys'])} encryption key(s), first kid {jwks['keys'][0]['kid']}")
        assertion = nexi.client_assertion(point_of_sale=pos, terminal_ids=tids, username_merchant=username)
        verifier, challenge = make_pkce()
        state = secrets.token_urlsafe(8)
        pushed = nexi.par(
            scope="openid oidc email",
            redirect_uri=REDIRECT_URI,
            client_assertion=assertion,
            state=state,
            code_challenge=challenge,
        )
        say(f"  5. PAR         201 request_uri {pushed['request_uri']} expires_in {pushed['expires_in']}")
        authorize_url = nexi.authorize_url(pushed["request_uri"])
        with httpx.Client(verify=verify, timeout=10) as browser:
            page = browser.get(authorize_url)
            page.raise_for_status()
            say(f"  6. authorize   login page {page.status_code} for {username}")
            login = browser.post(
                authorize_url.split("?")[0],
                data={
                    "client_id": client_id,
                    "request_uri": pushed["request_uri"],
                    "username": username,
                    "password": actors.password,
                },
            )
        if login.status_code != 303:
            raise RuntimeError(f"the login answered {login.status_code}, expected 303")
        query = parse_qs(urlsplit(login.headers["location"]).query)
        code = query["code"][0]
        if query.get("state", [None])[0] != state:
            raise RuntimeError("state did not round-trip")
        say(f"  7. code        {_short(code)} (state round-tripped, iss {query.get('iss', ['?'])[0]})")
        tokens = nexi.exchange_code(code=code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
        say(
            f"  8. token       access {_short(tokens['access_token'])}, "
            f"id_token {'yes' if 'id_token' in tokens else 'no'}"
        )
    return {"request_uri": pushed["request_uri"], "id_token": "id_token" in tokens, "terminal_ids": tids}


def _axept(admin: ops.Admin, url: str, verify: ssl.SSLContext, mid: int, say: Say) -> dict[str, Any]:
    say("[bold]axept[/]")
    created = ops.create_key(admin, mid)
    say(f"  1. key         merchant {mid}, keyId {created.key_id} (value shown once, stored as HMAC)")
    r = httpx.post(
        f"{url}{admin.settings.axept_prefix}/v1/authenticate",
        json={"merchantId": mid, "keyId": created.key_id, "key": created.key},
        verify=verify,
        timeout=10,
    )
    r.raise_for_status()
    body = r.json()
    say(f"  2. authenticate 200 token {_short(body['token'])} expiresAt {body['expiresAt']}")
    return {"expiresAt": body["expiresAt"]}


def _mobilepay(url: str, verify: ssl.SSLContext, client_id: str, secret: str, vat: str, say: Say) -> dict[str, Any]:
    say("[bold]mobilepay[/]")
    r = httpx.post(
        f"{url}/connect/token",
        auth=(client_id, secret),
        data={"grant_type": "client_credentials", "merchant_vat": vat},
        verify=verify,
        timeout=10,
    )
    r.raise_for_status()
    body = r.json()
    say(
        f"  1. token       {_short(body['access_token'])} expires_in {body['expires_in']} scope {body['scope']} "
        f"(merchant_vat {vat})"
    )
    return {"expires_in": body["expires_in"], "scope": body["scope"]}


def _b2binpay(url: str, verify: ssl.SSLContext, login: str, password: str, say: Say) -> dict[str, Any]:
    say("[bold]b2binpay[/]")
    headers = {"Content-Type": "application/vnd.api+json"}
    body = {"data": {"type": "auth-token", "attributes": {"login": login, "password": password}}}
    r = httpx.post(f"{url}/token/", json=body, headers=headers, verify=verify, timeout=10)
    r.raise_for_status()
    doc = r.json()
    attrs, meta = doc["data"]["attributes"], doc["meta"]
    key = hashlib.sha256((login + password).encode()).digest()
    expected = hmac.new(key, (meta["time"] + attrs["refresh"]).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, meta["sign"]):
        raise RuntimeError("meta.sign did not verify")
    say(
        f"  1. login       access until {attrs['access_expired_at']}, refresh until {attrs['refresh_expired_at']}, "
        "meta.sign verified"
    )
    r = httpx.post(
        f"{url}/token/refresh/",
        json={"data": {"type": "auth-token", "attributes": {"refresh": attrs["refresh"]}}},
        headers=headers,
        verify=verify,
        timeout=10,
    )
    r.raise_for_status()
    say("  2. refresh     rotated: the previous refresh token is now dead")
    return {"rotated": True}
