"""Plain records the core works with. Storage returns these; nothing here knows SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Client authentication methods a client may be registered with (RFC 7591 names).
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "tls_client_auth", "private_key_jwt")


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    secret_hash: str | None  # HMAC-SHA256 under the server pepper, hex; None for secret-less clients
    redirect_uris: tuple[str, ...] = ()
    scope: str = ""
    auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    grant_types: tuple[str, ...] = ("client_credentials",)
    require_par: bool = False
    jwks: dict[str, Any] | None = None
    status: str = "active"  # "active" | "revoked"
    created_at: int = 0
    #: The organisation (an integrator company) that owns the app; None: the platform's own.
    org_id: str | None = None
    #: The secret replaced by the last rotation (its HMAC), still accepted until
    #: ``previous_valid_until`` (``tessera.admin.clients.rotate_secret``); None: no overlap.
    previous_secret_hash: str | None = None
    previous_valid_until: int | None = None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def previous_secret(self, now: int) -> str | None:
        """The previous secret's HMAC while its overlap lasts (``now`` before its end), else None."""
        if self.previous_secret_hash is None or self.previous_valid_until is None:
            return None
        return self.previous_secret_hash if now < self.previous_valid_until else None


@dataclass(frozen=True)
class Organisation:
    """An integrator company: it owns apps; its developers see only its own (portal, admin API)."""

    org_id: str
    name: str
    created_at: int = 0


@dataclass(frozen=True)
class CertificateRecord:
    """A developer certificate signed by our CA and bound to one client."""

    serial: str
    client_id: str
    thumbprint: str  # x5t#S256
    subject: str
    not_before: int
    not_after: int
    pem: str
    revoked_at: int | None = None
    created_at: int = 0

    def usable(self, now: int) -> bool:
        return self.revoked_at is None and self.not_before <= now < self.not_after


@dataclass(frozen=True)
class StoredKey:
    """A server key as stored: the public JWK in clear, the private part sealed under the KEK."""

    kid: str
    use: str  # "sig" | "enc"
    alg: str
    status: str  # "next" | "current" | "retired"
    public_jwk: dict[str, Any]
    sealed_private: str
    created_at: int
    retire_at: int | None = None


@dataclass(frozen=True)
class Merchant:
    merchant_id: int
    name: str = ""
    vat: str | None = None
    created_at: int = 0


@dataclass(frozen=True)
class Terminal:
    tid: str
    merchant_id: int
    pos: str  # point of sale id
    kind: str  # "softpos" | "mpos"


@dataclass(frozen=True)
class MerchantUser:
    username: str
    merchant_id: int
    password_hash: str  # argon2id


@dataclass(frozen=True)
class Artifact:
    """A single-use artefact: a PAR request_uri, an authorization code, an assertion jti, ..."""

    kind: str
    key: str
    client_id: str
    data: dict[str, Any]
    expires_at: int
    consumed_at: int | None = None


@dataclass(frozen=True)
class Enrollment:
    id: int
    client_id: str
    merchant_id: int
    pos: str
    tids: tuple[str, ...]
    username: str
    created_at: int
    #: ``app_deviceid`` of the client assertion (Nexi's reference backend sends it), if any.
    device_id: str | None = None


@dataclass(frozen=True)
class SecurityEvent:
    id: int
    kind: str
    client_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0


@dataclass(frozen=True)
class ApiKey:
    """An axept authentication key: its value is shown once and stored only as an HMAC."""

    merchant_id: int
    key_id: int
    key_hash: str
    enabled: bool
    created_at: int
    disabled_at: int | None = None
    #: When the key last got a token (recorded at most once a minute per key and worker).
    last_used_at: int | None = None


@dataclass(frozen=True)
class Developer:
    """An integrator's developer account (the portal): one e-mail, one organisation. Invited
    first (no password, no TOTP), ``active`` once the invitation is accepted; ``disabled`` by
    an operator. The TOTP secret is sealed under the KEK; ``totp_last_step`` is the last time
    step whose code was accepted (a code is never accepted twice)."""

    email: str
    org_id: str
    status: str = "invited"  # "invited" | "active" | "disabled"
    password_hash: str | None = None  # argon2id
    totp_sealed: str | None = None
    totp_last_step: int = 0
    created_at: int = 0


@dataclass(frozen=True)
class Grant:
    """A merchant's grant of access to an app (MobilePay: the merchant grants an integrator)."""

    merchant_id: int
    client_id: str
    created_at: int = 0
