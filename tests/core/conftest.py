"""The in-process world of the core's unit tests: a real store (``MemoryStore``, held to the same
contract tests as the SQL and Redis stores), the server's key ring, a fixed clock that a test
moves by hand, and helpers that register clients, merchants, certificates and make the
assertions clients send.

The server's keys are made once per worker (``_server_keys``) and saved into each test's fresh
store: a test starts from the same state in microseconds instead of generating RSA keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc import jwe, jws
from joserfc.jwk import ECKey, RSAKey

from tessera.core.context import Core, CoreConfig
from tessera.core.keys import KeyRing, create_initial_keys
from tessera.core.models import CertificateRecord, Client, Merchant, MerchantUser, StoredKey, Terminal
from tessera.core.secrets import hash_secret, verify_password
from tessera.storage.memory import MemoryStore

ISSUER = "https://as.example"
KEK = b"k" * 32
PEPPER = b"p" * 32
SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret"
PASSWORD = "correct horse battery"
NOW = 1_800_000_000
KEYS_MADE_AT = NOW - 10


_password_hash: list[str] = []


def password_hash() -> str:
    """An argon2id hash of ``PASSWORD``, made once and with argon2's lowest cost: ``verify_password``
    reads the cost from the hash, so each login the tests make costs a millisecond, not the
    tens of milliseconds of production's parameters (tessera.core.secrets)."""
    if not _password_hash:
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        _password_hash.append(cheap.hash(PASSWORD))
        assert _password_hash[0].startswith("$argon2id$") and verify_password(PASSWORD, _password_hash[0])
    return _password_hash[0]


class Clock:
    """The core's clock: fixed, moved only by the test."""

    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class Cert:
    """A client certificate made in process (EC P-256, self-signed), and its key."""

    pem: bytes
    key_pem: bytes
    thumbprint: str
    serial: str
    record: CertificateRecord


@dataclass
class Enrolled:
    """A merchant with a SoftPOS and an mPOS terminal at one point of sale, and its user."""

    merchant_id: int
    pos: str
    softpos: str
    mpos: str
    username: str
    password: str = PASSWORD


def make_cert(
    client_id: str, *, not_before: int = NOW - 3600, not_after: int = NOW + 86400 * 30, revoked_at: int | None = None
) -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NOMEAPP")])
    nb = datetime.fromtimestamp(not_before, tz=UTC)
    na = datetime.fromtimestamp(not_after, tz=UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(max(na, nb + timedelta(seconds=1)))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    serial = format(cert.serial_number, "x")
    record = CertificateRecord(
        serial=serial,
        client_id=client_id,
        thumbprint=thumbprint,
        subject="CN=NOMEAPP",
        not_before=not_before,
        not_after=not_after,
        pem=pem.decode(),
        revoked_at=revoked_at,
        created_at=NOW - 3600,
    )
    return Cert(pem, key_pem, thumbprint, serial, record)


@dataclass
class World:
    store: Any
    clock: Clock
    core: Core
    counter: list[int] = field(default_factory=lambda: [0])

    # --- registrations --------------------------------------------------------------------------
    def client(self, client_id: str | None = None, **kw: Any) -> Client:
        """A registered client whose secret is ``SECRET`` (unless ``secret_hash`` is given)."""
        kw.setdefault("secret_hash", hash_secret(SECRET, PEPPER))
        kw.setdefault("name", "Test App")
        kw.setdefault("created_at", NOW - 100)
        client = Client(client_id=client_id or f"app-{uuid.uuid4().hex[:10]}", **kw)
        self.store.create_client(client)
        return client

    def cert(self, client: Client, **kw: Any) -> Cert:
        cert = make_cert(client.client_id, **kw)
        self.store.add_certificate(cert.record)
        return cert

    def merchant(self, client: Client | None = None, *, grant: bool = True, pos: str | None = None) -> Enrolled:
        self.counter[0] += 1
        mid = 1000 + self.counter[0]
        pos = pos or f"POS{mid}"
        e = Enrolled(mid, pos, f"S{mid}", f"M{mid}", f"merchant{mid}@shop.example")
        self.store.create_merchant(Merchant(mid, f"Shop {mid}", None, NOW - 100))
        self.store.add_terminal(Terminal(e.softpos, mid, pos, "softpos"))
        self.store.add_terminal(Terminal(e.mpos, mid, pos, "mpos"))
        self.store.add_user(MerchantUser(e.username, mid, password_hash()))
        if client is not None and grant:
            self.store.grant(mid, client.client_id, NOW - 100)
        return e

    # --- what clients send ------------------------------------------------------------------------
    def enc_jwk(self) -> dict[str, Any]:
        """The server's current public encryption key, as its JWKS publishes it."""
        jwks = self.core.keys.get().jwks("enc", datetime.fromtimestamp(self.core.now(), tz=UTC))
        return jwks["keys"][0]

    def nested(self, cert: Cert, claims: dict[str, Any], *, minimal_headers: bool = False) -> str:
        """The Nexi PAR's client assertion: a JWS (ES256) signed with ``cert``'s key inside a JWE
        (RSA-OAEP-256, A256GCM) to the server's current encryption key. ``minimal_headers``: only
        ``alg`` (and ``enc``), as Nexi's reference backend sends them. Made here with joserfc,
        so that the core's tests depend on no SDK module."""
        header: dict[str, Any] = {"alg": "ES256"}
        if not minimal_headers:
            header.update(typ="JWT", **{"x5t#S256": cert.thumbprint})
        signed = jws.serialize_compact(
            header, json.dumps(claims).encode(), ECKey.import_key(cert.key_pem), algorithms=["ES256"]
        )
        enc = self.enc_jwk()
        protected = {"alg": "RSA-OAEP-256", "enc": "A256GCM"}
        if not minimal_headers:
            protected.update(kid=enc["kid"], cty="JWT")
        recipient = RSAKey.import_key({k: enc[k] for k in ("kty", "n", "e", "kid")})
        return jwe.encrypt_compact(protected, signed.encode(), recipient, algorithms=["RSA-OAEP-256", "A256GCM"])

    def nexi_claims(self, client: Client, e: Enrolled | None = None, **over: Any) -> dict[str, Any]:
        now = self.core.now()
        claims: dict[str, Any] = {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": ISSUER,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "appId": client.client_id,
        }
        if e is not None:
            claims.update(pointOfSale=e.pos, terminal_ids=[e.softpos, e.mpos], username_merchant=e.username)
        claims.update(over)
        return {k: v for k, v in claims.items() if v is not None}


def core_for(store: Any, clock: Clock, **config: Any) -> Core:
    return Core(
        config=CoreConfig(issuer=ISSUER, **config), store=store, keys=KeyRing(store, KEK), pepper=PEPPER, clock=clock
    )


@pytest.fixture(scope="session")
def _server_keys() -> list[StoredKey]:
    """The server's keys (sealed under ``KEK``), made once per worker: RSA keys take a while."""
    keys: list[StoredKey] = create_initial_keys(
        MemoryStore(), KEK, signing_alg="ES256", enc_bits=2048, now=KEYS_MADE_AT
    )
    return keys


@pytest.fixture(scope="session")
def _opened_keys(_server_keys: list[StoredKey]) -> dict[str, object]:
    """The same keys opened (unsealed and parsed) once per worker, by a ``KeyRing`` of their own:
    each test's ring starts with them in its cache of parsed keys, as a long-running worker's does."""
    store = MemoryStore()
    store.save_server_keys(list(_server_keys))
    ring = KeyRing(store, KEK)
    ring.get()
    return dict(ring._parsed)


@pytest.fixture
def world(_server_keys: list[StoredKey], _opened_keys: dict[str, object], request: pytest.FixtureRequest) -> Any:
    """A fresh world per test, on the in-memory store (tessera.storage.memory, which runs the
    same contract tests as SQLite, PostgreSQL and Redis). ``@pytest.mark.core_config(...)`` sets
    ``CoreConfig`` fields."""
    store = MemoryStore()
    store.save_server_keys(list(_server_keys))
    clock = Clock(NOW)
    marker = request.node.get_closest_marker("core_config")
    w = World(store, clock, core_for(store, clock, **(marker.kwargs if marker else {})))
    w.core.keys._parsed.update(_opened_keys)
    yield w
    store.close()


def b64json(segment: str) -> dict[str, Any]:
    """The JSON of one base64url segment of a compact JWT (no verification)."""
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def jwt_claims(token: str) -> dict[str, Any]:
    return b64json(token.split(".")[1])
