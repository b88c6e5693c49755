"""Typed settings.

Read from ``TESSERA_*`` environment variables, then ``$TESSERA_HOME/tessera.toml``, then
the defaults below (environment wins over the file). Checked at start-up: a bad value
stops the server with a clear message. Insecure development defaults (a key-encryption
key kept as a file beside the database) are allowed but announced loudly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from tessera.core.secrets import Peppers

CONFIG_FILE = "tessera.toml"
SECRETS_DIR = "secrets"


class ConfigError(Exception):
    """A configuration mistake, told in one line that names the setting and never shows its
    value (a KEK or pepper must never be echoed, not even in part)."""


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
    #: Written by ``tessera init`` in tessera.toml: HMAC-SHA256 of a fixed label under the pepper,
    #: so that a wrong (well-formed) pepper is refused at start-up. It reveals nothing of the pepper.
    pepper_check: str | None = None
    #: Pepper rotation (docs/operations.md): the id of the current pepper (``pepper``) ...
    pepper_id: int = Field(1, ge=1, le=999_999_999)
    #: ... the earlier peppers still accepted for the hashes made under them, ``ID:VALUE[,ID:VALUE]``
    #: (each VALUE base64url of 32 bytes) ...
    old_peppers: str | None = None
    #: ... each pepper's check value by id (``tessera pepper add`` records it; ``pepper_check`` is pepper 1's) ...
    pepper_checks: dict[int, str] = Field(default_factory=dict)
    #: ... and the ids retired (``tessera pepper retire``): never accepted again.
    retired_peppers: list[int] = Field(default_factory=list)

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
    #: Each profile's token audience (``aud``). Unset: the profile's own default
    #: (tessera.core.profiles.default_audiences): native the issuer, Nexi ``{issuer}{nexi_prefix}``,
    #: MobilePay ``{issuer}{mobilepay_prefix}/resources``, axept ``axeptConnectCloud-merchant-client``,
    #: B2BINPAY ``{issuer}{b2binpay_prefix}``. Distinct audiences keep one profile's tokens from
    #: being taken by a resource server of another.
    native_audience: str | None = None
    nexi_audience: str | None = None
    mobilepay_audience: str | None = None
    axept_audience: str | None = None
    b2binpay_audience: str | None = None
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
    #: B2BINPAY: logins (``POST {b2binpay_prefix}/token/``) allowed per minute from one client
    #: address, as the provider limits requests made without prior authentication (15 a minute,
    #: its merchant guide). 0 disables this budget (the address rate above still applies).
    b2binpay_login_per_minute: int = Field(15, ge=0)
    #: Requests per minute from one client address to the endpoints that store something for a
    #: caller who proved nothing (a plain ``GET /oauth2/authorize``, the login forms): a burst of
    #: this many, then one every 60/n s; over it: 429 with Retry-After. Bounds what a flood can
    #: store. 0 disables this budget (the address rate above still applies).
    unauthenticated_writes_per_minute: int = Field(60, ge=0)

    # --- housekeeping (tessera purge) -------------------------------------------------------
    #: Each worker purges expired artefacts, refresh families and old events about this often
    #: (seconds, with jitter; one worker at a time through the database). 0 disables.
    purge_interval_seconds: float = Field(300.0, ge=0, le=86400)
    #: Security events older than this many days are purged. 0 keeps them forever.
    event_retention_days: int = Field(90, ge=0)
    #: How long the server may trust its cached view of a client, certificate or key
    #: before it reads the database again. 0: revocation takes effect on the next request.
    revocation_cache_seconds: float = Field(0.0, ge=0, le=300)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=10 * 1024 * 1024)
    #: After a client secret's rotation (``tessera clients rotate-secret``, the admin API), the
    #: previous secret stays valid this many seconds (0: the new one only, at once).
    client_secret_overlap: int = Field(24 * 3600, ge=0, le=30 * 24 * 3600)
    log_level: str = "info"
    #: The profile routes found by one dictionary look-up instead of Starlette's scan of every
    #: route's pattern (tessera.web.routing.ExactDispatch): the same answers, byte for byte,
    #: for about 15 µs less CPU per request. false: every request takes Starlette's own router.
    fast_routing: bool = True

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

    # --- the portal and e-mail (docs/portal.md) ----------------------------------------------
    #: The portal's public address (invitation links); default: the issuer + ``/portal``.
    portal_url: str = ""
    #: How long a portal session lasts from sign-in (seconds); signing out ends it at once.
    portal_session_seconds: int = Field(8 * 3600, ge=60, le=7 * 86400)
    #: How long an invitation link can be accepted (seconds).
    portal_invitation_seconds: int = Field(7 * 86400, ge=300, le=30 * 86400)
    #: The SMTP server that sends the invitations and the signed certificates; unset: the mail
    #: is written to the log without its secrets (the CLI and the portal show the link instead).
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "tessera@localhost"
    #: STARTTLS before authenticating (on by default; off only for a relay on the same host).
    smtp_starttls: bool = True
    smtp_timeout: float = Field(10.0, gt=0, le=120)

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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net[:50]!r} is not an IP address or CIDR network") from None
        return v

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, v: str) -> str:
        if v.lower() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return v.lower()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        if v:
            database_url_parts(v)  # raises a ValueError that never shows the URL (it may hold a password)
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v or None

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.home / 'tessera.db').resolve()}"
        if not self.issuer:
            self.issuer = f"https://{self.hostname}:{self.port}"
        self.issuer = self.issuer.rstrip("/")
        self.portal_url = (self.portal_url or f"{self.issuer}/portal").rstrip("/")
        for name in ("kek", "pepper"):
            value = getattr(self, name)
            if value is not None:
                try:
                    ok = len(_b64(value)) == 32
                except (ValueError, binascii.Error):
                    ok = False
                if not ok:  # never a character of the value in the message
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

    def old_pepper_bytes(self) -> dict[int, bytes]:
        """The earlier peppers still accepted, by id (``old_peppers``)."""
        found: dict[int, bytes] = {}
        for item in (self.old_peppers or "").split(","):
            if not item.strip():
                continue
            pid, sep, value = item.strip().partition(":")
            try:
                raw = _b64(value) if sep and pid.isdigit() else b""
            except (ValueError, binascii.Error):
                raw = b""
            if len(raw) != 32 or int(pid) < 1:
                raise ConfigError("TESSERA_OLD_PEPPERS must be ID:VALUE[,ID:VALUE], each VALUE base64url of 32 bytes")
            found[int(pid)] = raw
        return found

    def peppers(self) -> Peppers:
        """The current pepper and the earlier ones (see ``tessera.core.secrets.Peppers``)."""
        keys = self.old_pepper_bytes()
        if self.pepper_id in keys:
            raise ConfigError(f"TESSERA_OLD_PEPPERS names the current pepper's id ({self.pepper_id})")
        for pid in keys:
            if pid in self.retired_peppers:
                raise ConfigError(f"pepper {pid} is retired (retired_peppers in {self.config_path}): remove it")
        keys[self.pepper_id] = self.pepper_bytes()
        return Peppers(self.pepper_id, keys)

    def _secret(self, name: str) -> bytes:
        value = getattr(self, name)
        if value:
            return _b64(value)
        path = self.home / SECRETS_DIR / name
        try:
            raw = _b64(path.read_text().strip())
        except FileNotFoundError:
            raise ConfigError(f"no {name}: set TESSERA_{name.upper()} or run `tessera init`") from None
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raw = b""
        if len(raw) != 32:
            raise ConfigError(f"{path} must hold base64url of exactly 32 bytes")
        return raw

    def recorded_pepper_checks(self) -> dict[int, str]:
        """Each pepper's recorded check value by id (pepper 1's is ``pepper_check``)."""
        checks = dict(self.pepper_checks)
        if self.pepper_check and 1 not in checks:
            checks[1] = self.pepper_check
        return {pid: v for pid, v in checks.items() if pid not in self.retired_peppers}

    def check_pepper(self) -> None:
        """A wrong pepper is refused when the home records check values (``tessera init``,
        ``tessera pepper add``): the current pepper and every earlier one configured must match
        the value recorded for its id, and one must be recorded for each."""
        checks = self.recorded_pepper_checks()
        if not checks and not self.pepper_checks:
            return  # a home made without a check value (before they existed)
        current = self.pepper_bytes()
        source = "TESSERA_PEPPER" if self.pepper else str(self.home / SECRETS_DIR / "pepper")
        peppers = {**self.old_pepper_bytes(), self.pepper_id: current}
        for pid, value in peppers.items():
            name = source if pid == self.pepper_id else f"pepper {pid} of TESSERA_OLD_PEPPERS"
            if pid in self.retired_peppers:
                raise ConfigError(f"{name}: pepper {pid} is retired (retired_peppers in {self.config_path})")
            expected = checks.get(pid)
            if expected is None:
                raise ConfigError(
                    f"{name}: no check value is recorded for pepper {pid} in {self.config_path} "
                    "(record a new pepper with `tessera pepper add`)"
                )
            if not hmac.compare_digest(pepper_check_value(value), expected):
                raise ConfigError(
                    f"the pepper ({name}) is not pepper {pid} of this home "
                    f"(its check value in {self.config_path} does not match)"
                )

    def secrets_from_files(self) -> list[str]:
        """The secrets read from files in the home: each is a development-only convenience."""
        return [n for n in ("kek", "pepper") if not getattr(self, n)]

    @classmethod
    def load(cls, home: Path | str | None = None, **overrides: Any) -> Settings:
        """Settings for ``home``: its ``tessera.toml``, under the environment, under ``overrides``."""
        home_path = Path(home) if home is not None else default_home()
        data: dict[str, Any] = {}
        cfg = home_path / CONFIG_FILE
        try:
            if cfg.exists():
                with cfg.open("rb") as f:
                    data = tomllib.load(f)
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{cfg} cannot be read: {type(e).__name__}: {str(e)[:120]}") from None
        data["home"] = home_path
        flags = {k: v for k, v in overrides.items() if v is not None}
        recorded = data.get("database_url")
        if isinstance(recorded, str) and recorded:
            data["database_url"] = recorded = _home_relative(recorded, home_path)
            chosen = flags.get("database_url") or os.environ.get("TESSERA_DATABASE_URL")
            try:
                database_url_parts(chosen) if chosen else None
            except ValueError as e:
                raise ConfigError(f"TESSERA_DATABASE_URL {e}") from None
            if chosen and not same_database(chosen, recorded):
                raise ConfigError(
                    f"TESSERA_DATABASE_URL names another database ({redact_url(chosen)}) than the one this home "
                    f"records in {cfg} ({redact_url(recorded)}); unset it, or use the home made for that database"
                )
        token = _FLAGS.set(flags)
        try:
            settings = cls(**data)
        except ValidationError as e:
            raise ConfigError(describe_validation_error(e)) from None
        except SettingsError as e:  # a list or number that pydantic-settings could not even parse
            raise ConfigError(
                str(e).split(" from source", 1)[0].replace("error parsing value", "cannot parse the value")
                + " (TESSERA_* variable)"
            ) from None
        finally:
            _FLAGS.reset(token)
        settings.check_pepper()
        return settings


_FLAGS: ContextVar[Mapping[str, Any]] = ContextVar("tessera_flags", default=MappingProxyType({}))


class _FlagSource(PydanticBaseSettingsSource):
    """Values given on the command line (see ``Settings.load``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FLAGS.get())


def _b64(value: str) -> bytes:
    value = value.strip()
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def new_secret_b64(nbytes: int = 32) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).rstrip(b"=").decode()


LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def pepper_check_value(pepper: bytes) -> str:
    return hmac.new(pepper, b"tessera pepper check v1", hashlib.sha256).hexdigest()


def describe_validation_error(e: ValidationError) -> str:
    """One line naming each bad setting and what is wrong, without any input value."""
    parts = []
    for err in e.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(x) for x in err.get("loc", ()) if x != "__root__"]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if loc:
            name = loc[0]
            parts.append(f"TESSERA_{name.upper()} ({name} in {CONFIG_FILE}): {msg}")
        else:
            parts.append(msg)
    return "; ".join(parts) or "invalid configuration"


def database_url_parts(url: str) -> tuple[str, ...]:
    """What names a database in a SQLAlchemy URL: backend, user, host, port, database, query
    (not the driver, not the password). ``ValueError`` if it is not a URL at all."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
        backend = u.get_backend_name()
    except (ArgumentError, ValueError, TypeError):
        raise ValueError("is not a SQLAlchemy database URL (for example postgresql+psycopg://user@host/db)") from None
    if backend == "sqlite":
        path = u.database or ""
        return ("sqlite", str(Path(path).resolve()) if path and path != ":memory:" else path)
    return (
        backend,
        u.username or "",
        (u.host or "").lower(),
        str(u.port or ""),
        u.database or "",
        repr(sorted(u.query.items())),
    )


def same_database(a: str, b: str) -> bool:
    try:
        return database_url_parts(a) == database_url_parts(b)
    except ValueError:
        return False


def redact_url(url: str) -> str:
    """The URL with its password hidden (``***``), for messages and for tessera.toml."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL: show nothing of it
        return "<unparseable URL>"


def url_without_password(url: str) -> str:
    """What ``tessera init`` records: the URL with no password at all."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return (
        u._replace(password=None).render_as_string(hide_password=False) if u.password is not None else url
    )  # URL is a NamedTuple; .set() keeps a None


def _home_relative(url: str, home: Path) -> str:
    """A relative SQLite path recorded in tessera.toml is relative to the home."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url[len(prefix) :] not in ("", ":memory:"):
        return prefix + str((home / url[len(prefix) :]).resolve())
    return url
