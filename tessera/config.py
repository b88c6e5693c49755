"""Typed settings.

Read from ``TESSERA_*`` environment variables, then ``$TESSERA_HOME/tessera.toml``, then
the defaults below (environment wins over the file). Checked at start-up: a bad value
stops the server with a clear message. Insecure development defaults (a key-encryption
key kept as a file beside the database) are allowed but announced loudly.
"""

from __future__ import annotations

import base64
import os
import secrets
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE = "tessera.toml"
SECRETS_DIR = "secrets"


def default_home() -> Path:
    return Path(os.environ.get("TESSERA_HOME") or ".tessera")


class Settings(BaseSettings):
    """Everything the server and the CLI need, with the defaults of the embedded mode."""

    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="forbid", validate_default=True)

    home: Path = Field(default_factory=default_home)
    environment: Literal["staging", "production"] = "staging"
    #: The issuer URL: the ``iss`` of our tokens and the ``aud`` that client assertions must name.
    issuer: str = ""
    hostname: str = "localhost"

    host: str = "127.0.0.1"
    port: int = Field(8443, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)

    #: SQLAlchemy URL. Default: SQLite (WAL) under the home directory.
    database_url: str = ""
    redis_url: str | None = None

    # --- mutual TLS -------------------------------------------------------------------
    mtls_mode: Literal["embedded", "proxy"] = "embedded"
    #: Header carrying the URL-encoded PEM (nginx ``$ssl_client_escaped_cert``), proxy mode only.
    mtls_header: str = "x-ssl-client-cert"
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    #: When true (embedded mode), the server serves plain HTTP: for running behind a proxy.
    plain_http: bool = False

    # --- lifetimes (seconds) ----------------------------------------------------------
    nexi_token_ttl: int = Field(3600, ge=1)
    par_ttl: int = Field(90, ge=1, le=600)
    code_ttl: int = Field(60, ge=1, le=600)
    access_token_ttl: int = Field(3600, ge=1)
    id_token_ttl: int = Field(3600, ge=1)
    assertion_max_lifetime: int = Field(300, ge=1, le=3600)
    #: Tolerated clock skew for ``iat``/``nbf`` in the future.
    clock_skew: int = Field(30, ge=0, le=300)
    #: Nexi PAR: the longest ``exp - iat`` of a client assertion. The provider allows 15 minutes.
    nexi_assertion_max_lifetime: int = Field(900, ge=1, le=900)
    #: Nexi PAR: how far ahead ``iat``/``nbf`` may be. The provider refuses an ``iat`` even a few
    #: seconds in the future; 2 s leaves room for sub-second rounding between two synced clocks.
    nexi_iat_tolerance: int = Field(2, ge=0, le=30)
    cert_validity_days: int = Field(365, ge=1, le=825)

    # --- keys ---------------------------------------------------------------------------
    signing_alg: Literal["ES256", "RS256", "EdDSA"] = "ES256"
    encryption_key_bits: int = Field(2048, ge=2048, le=8192)
    #: base64url of 32 bytes; if unset, ``home/secrets/kek`` (development only).
    kek: str | None = None
    #: base64url of 32 bytes, the HMAC pepper for machine credentials; if unset, ``home/secrets/pepper``.
    pepper: str | None = None

    # --- profiles -------------------------------------------------------------------------
    nexi_prefix: str = "/softpos"
    axept_prefix: str = "/axept"
    mobilepay_prefix: str = "/integrator-authentication"
    b2binpay_prefix: str = "/b2binpay"
    #: axept: the document's sample token lives 30 minutes (nbf → exp).
    axept_token_ttl: int = Field(1800, ge=1)
    axept_max_enabled_keys: int = Field(3, ge=1, le=100)
    #: MobilePay: the document's response says expires_in 3700.
    mobilepay_token_ttl: int = Field(3700, ge=1)
    #: B2BINPAY: the document's example answer: access 15 min, refresh 6 h after meta.time.
    b2binpay_access_ttl: int = Field(900, ge=1)
    b2binpay_refresh_ttl: int = Field(21600, ge=1)
    #: The longest a login's chain of rotated refresh tokens lives (B2BINPAY and native).
    refresh_family_max_seconds: int = Field(30 * 86400, ge=60)

    # --- brute-force protection -----------------------------------------------------------------
    #: Failed logins per credential (and per client address) tolerated inside the window ...
    login_max_failures: int = Field(5, ge=1)
    #: Failed checks tolerated from one client address (many POS may share one egress address).
    login_max_failures_per_address: int = Field(100, ge=1)
    login_failure_window: int = Field(60, ge=1)
    #: ... before further attempts get 429 with Retry-After for this many seconds.
    login_lockout: int = Field(60, ge=1)

    # --- request-rate limits (token, PAR, axept, B2BINPAY, MobilePay; issue 5) ------------------
    #: Requests per second allowed to one credential (a client, an axept merchant key), with a
    #: burst of ``rate_limit_credential_burst`` (token bucket). 0 disables the limit.
    rate_limit_per_credential: float = Field(50.0, ge=0)
    rate_limit_credential_burst: int = Field(100, ge=1)
    #: Requests per second allowed from one client address, with its burst. 0 disables the limit.
    rate_limit_per_address: float = Field(200.0, ge=0)
    rate_limit_address_burst: int = Field(400, ge=1)
    #: How long the server may trust its cached view of a client, certificate or key
    #: before it reads the database again. 0: revocation takes effect on the next request.
    revocation_cache_seconds: float = Field(0.0, ge=0, le=300)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)
    log_level: str = "info"

    # --- native OAuth 2.0 surface (/oauth2/*, issue 4) -------------------------------------
    #: Lifetime of the refresh tokens the native token endpoint issues (rotated on every use).
    refresh_token_ttl: int = Field(14 * 24 * 3600, ge=60)
    #: A retry of a refresh request inside this many seconds of the first use gets the same
    #: answer again instead of revoking the family. 0: strict rotation.
    refresh_grace_seconds: int = Field(0, ge=0, le=300)
    #: The scope values advertised in the metadata (``scopes_supported``); what a client may
    #: actually ask for is the scope it was registered with.
    native_scopes_supported: list[str] = Field(default_factory=lambda: ["openid", "email"])

    # --- several instances: Redis (issue 5; see docs/deployment.md) ---------------------------
    #: Prefix of every Redis key, so that deployments (staging, production) can share a Redis.
    redis_prefix: str = "tessera:"
    #: Connect/read timeout of Redis calls (seconds): an unreachable Redis is a fast 503.
    redis_timeout: float = Field(1.0, gt=0, le=30)
    #: With Redis, how often (ms) a worker checks the revocation epoch before trusting its
    #: cache (``revocation_cache_seconds`` > 0): the bound on honouring a revocation.
    revocation_poll_ms: int = Field(100, ge=0, le=60_000)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Command-line flags win over the environment, which wins over the file (init kwargs).
        return (_FlagSource(settings_cls), env_settings, init_settings)

    @field_validator("nexi_prefix", "axept_prefix", "mobilepay_prefix", "b2binpay_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = "/" + v.strip("/") if v.strip("/") else ""
        return v

    @model_validator(mode="after")
    def _derive(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'tessera.db').resolve()}"
        if not self.issuer:
            self.issuer = f"https://{self.hostname}:{self.port}"
        self.issuer = self.issuer.rstrip("/")
        for name in ("kek", "pepper"):
            value = getattr(self, name)
            if value is not None and len(_b64(value)) != 32:
                raise ValueError(f"TESSERA_{name.upper()} must be base64url of exactly 32 bytes")
        return self

    # --- derived paths --------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    @property
    def ca_cert_path(self) -> Path:
        return self.home / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.home / SECRETS_DIR / "ca-key.pem"

    @property
    def tls_cert_path(self) -> Path:
        return self.home / "server.pem"

    @property
    def tls_key_path(self) -> Path:
        return self.home / SECRETS_DIR / "server-key.pem"

    # --- secrets ----------------------------------------------------------------------------
    def kek_bytes(self) -> bytes:
        return self._secret("kek")

    def pepper_bytes(self) -> bytes:
        return self._secret("pepper")

    def _secret(self, name: str) -> bytes:
        value = getattr(self, name)
        if value:
            return _b64(value)
        path = self.home / SECRETS_DIR / name
        try:
            return _b64(path.read_text().strip())
        except FileNotFoundError:
            raise RuntimeError(f"no {name}: set TESSERA_{name.upper()} or run `tessera init`") from None

    def secrets_from_files(self) -> list[str]:
        """The secrets read from files in the home: each is a development-only convenience."""
        return [n for n in ("kek", "pepper") if not getattr(self, n)]

    @classmethod
    def load(cls, home: Path | str | None = None, **overrides: Any) -> "Settings":
        """Settings for ``home``: its ``tessera.toml``, under the environment, under ``overrides``."""
        home_path = Path(home) if home is not None else default_home()
        data: dict[str, Any] = {}
        cfg = home_path / CONFIG_FILE
        if cfg.exists():
            with cfg.open("rb") as f:
                data = tomllib.load(f)
        data["home"] = home_path
        token = _FLAGS.set({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**data)
        finally:
            _FLAGS.reset(token)


_FLAGS: ContextVar[dict[str, Any]] = ContextVar("tessera_flags", default={})


class _FlagSource(PydanticBaseSettingsSource):
    """Values given on the command line (see ``Settings.load``)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used instead
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FLAGS.get())


def _b64(value: str) -> bytes:
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def new_secret_b64(nbytes: int = 32) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()
