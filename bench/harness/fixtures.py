"""What the load scripts need from one tessera home: the app (client id, secret, developer
certificate), filler clients, a merchant with terminals and a user, a MobilePay merchant that
granted the app, an axept key; and the probes that check an endpoint answers before it is
loaded."""

from __future__ import annotations

import base64
import dataclasses
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx


@dataclasses.dataclass
class Fixture:
    """What the load scripts need from one tessera home."""

    client_id: str
    secret: str
    cert_pem: bytes
    cert_path: Path
    key_path: Path
    redirect_uri: str
    cert_header: str  # nginx's $ssl_client_escaped_cert
    merchant: Any
    vat: str
    axept: tuple[int, int, str]
    clients: int


def populate(srv: Any, clients: int) -> Fixture:
    """Fill a live server's home (``tests.support.live.LiveServer``, before it starts)."""
    from sqlalchemy import insert

    from tessera.core.apikeys import create_key
    from tessera.core.models import Merchant
    from tessera.core.secrets import generate_client_id, generate_secret, hash_secret
    from tessera.storage import schema

    app = srv.new_app(with_cert=True)  # RSA 2048 key and CSR by openssl, signed by the home's CA
    pepper = srv.settings.pepper_bytes()
    now = int(time.time())
    filler = []
    for i in range(clients - 1):  # the other registered clients, in one transaction
        filler.append(
            dict(
                client_id=generate_client_id(),
                name=f"bench filler {i}",
                secret_hash=hash_secret(generate_secret(), pepper),
                redirect_uris=[],
                scope="",
                auth_methods=["client_secret_basic", "client_secret_post"],
                grant_types=["client_credentials"],
                require_par=False,
                jwks=None,
                status="active",
                created_at=now,
            )
        )
    for i in range(0, len(filler), 2000):
        with srv.store.engine.begin() as conn:
            conn.execute(insert(schema.clients), filler[i : i + 2000])
    merchant = srv.new_merchant(app)  # POS, SoftPOS + mPOS TIDs, a user; granted to the app
    vat = f"DK{secrets.randbelow(10**8):08d}"
    mp_id = merchant.merchant_id + 1
    srv.store.create_merchant(Merchant(mp_id, "MobilePay shop", vat, now))
    srv.store.grant(mp_id, app.client_id, now)
    record, key = create_key(
        srv.store, pepper, merchant.merchant_id, now, max_enabled=srv.settings.axept_max_enabled_keys
    )
    pem = app.cert.read_bytes()
    return Fixture(
        app.client_id,
        app.client_secret,
        pem,
        app.cert,
        app.key,
        app.redirect_uri,
        quote(pem.decode(), safe=""),
        merchant,
        vat,
        (record.merchant_id, record.key_id, key),
        clients,
    )


def probe(method: str, url: str, **kw: Any) -> httpx.Response:
    with httpx.Client(timeout=30, verify=kw.pop("verify", True)) as c:
        return c.request(method, url, **kw)


def check_token(url: str, fx: Fixture, *, cert: bool, basic: bool = True) -> tuple[int, str]:
    """A client_credentials token request as the load sends it: (status, start of the body)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if basic:
        credentials = f"{quote(fx.client_id, safe='')}:{quote(fx.secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
    if cert:
        headers["X-SSL-Client-Cert"] = fx.cert_header
    r = probe("POST", url, content=b"grant_type=client_credentials", headers=headers)
    return r.status_code, r.text[:300]
