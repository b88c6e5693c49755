"""The tessera home directory: ``tessera init`` writes it, everything else opens it; and the
composition root: the store for the settings (``open_store``), the core over it
(``build_core``, with ``core_config``: core itself reads no settings).

Layout::

    $TESSERA_HOME/
      tessera.toml         settings (issuer, environment, ...)
      ca.pem               the developer CA certificate (give it to integrators)
      server.pem           the server's TLS certificate, signed by the CA
      tessera.db           SQLite database (unless TESSERA_DATABASE_URL points elsewhere)
      secrets/             0700: kek, pepper, ca-key.pem (encrypted under the KEK), server-key.pem
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from tessera.ca.authority import CertificateAuthority
from tessera.config import (
    ConfigError,
    Settings,
    _b64,
    database_url_parts,
    new_secret_b64,
    pepper_check_value,
    redact_url,
    same_database,
    url_without_password,
)
from tessera.core.context import Core, CoreConfig
from tessera.core.keys import KeyRing, create_initial_keys
from tessera.core.ports import Capabilities, KeyStore, Store
from tessera.core.profiles import default_audiences, default_issuers
from tessera.storage.migrate import upgrade
from tessera.storage.sql import SQLStore


class HomeExists(Exception):
    pass


def _write(path: Path, data: bytes | str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_home(
    home: Path,
    *,
    environment: str = "staging",
    issuer: str | None = None,
    hostname: str = "localhost",
    port: int = 8443,
    now: int,
    database_url: str | None = None,
) -> Settings:
    """Create a new home: config, secrets, CA, server TLS certificate, database, keys.

    The home records its database in tessera.toml (``database_url``: the one given, else
    ``TESSERA_DATABASE_URL``, else the home's own SQLite file, recorded relative to the home),
    without its password, which stays in the environment (``TESSERA_DATABASE_URL`` with the
    same URL and the password, or libpq's ``PGPASSWORD``/``.pgpass``). Every later command
    refuses to run against another database (``Settings.load``). A check value of the pepper
    is recorded too, so that a wrong pepper is refused at start-up."""
    home = Path(home)
    if (home / "tessera.toml").exists() or (home / "secrets").exists():
        raise HomeExists(f"{home} already holds a tessera home; refusing to overwrite it")
    database_url = database_url or os.environ.get("TESSERA_DATABASE_URL") or None
    if database_url is not None:
        try:
            database_url_parts(database_url)
        except ValueError as e:
            raise ConfigError(f"--database-url / TESSERA_DATABASE_URL {e}") from None
        if (
            database_url.startswith("sqlite:///")
            and not database_url.startswith("sqlite:////")
            and database_url[len("sqlite:///") :] not in ("", ":memory:")
        ):
            # tessera.toml reads a relative SQLite path against the home: record this one absolute.
            database_url = "sqlite:///" + str(Path(database_url[len("sqlite:///") :]).resolve())
        env_url = os.environ.get("TESSERA_DATABASE_URL")
        if env_url and not same_database(env_url, database_url):
            raise ConfigError(
                f"--database-url ({redact_url(database_url)}) and TESSERA_DATABASE_URL "
                f"({redact_url(env_url)}) name different databases"
            )
    Settings.load(home, database_url=database_url)  # a bad TESSERA_* value stops here, before anything is written
    existed = home.exists()
    home.mkdir(parents=True, exist_ok=True)
    (home / "secrets").mkdir(mode=0o700)
    try:
        return _init_home(
            home,
            environment=environment,
            issuer=issuer,
            hostname=hostname,
            port=port,
            now=now,
            database_url=database_url,
        )
    except BaseException:
        # Leave no half-made home behind (it would refuse the next, corrected, `tessera init`).
        if existed:
            (home / "tessera.toml").unlink(missing_ok=True)
            shutil.rmtree(home / "secrets", ignore_errors=True)
            for name in ("ca.pem", "server.pem"):
                (home / name).unlink(missing_ok=True)
        else:
            shutil.rmtree(home, ignore_errors=True)
        raise


def _init_home(
    home: Path, *, environment: str, issuer: str | None, hostname: str, port: int, now: int, database_url: str | None
) -> Settings:
    issuer = (issuer or f"https://{hostname}:{port}").rstrip("/")
    if not os.environ.get("TESSERA_KEK"):
        _write(home / "secrets" / "kek", new_secret_b64() + "\n", 0o600)
    pepper = os.environ.get("TESSERA_PEPPER")
    if not pepper:
        pepper = new_secret_b64()
        _write(home / "secrets" / "pepper", pepper + "\n", 0o600)
    try:
        pepper_check = pepper_check_value(_b64(pepper))
    except ValueError:  # a malformed TESSERA_PEPPER: Settings.load names it below
        pepper_check = None
    config = {
        "environment": environment,
        "issuer": issuer,
        "hostname": hostname,
        "port": port,
        "database_url": url_without_password(database_url) if database_url else "sqlite:///tessera.db",
        "pepper_check": pepper_check,
    }
    _write(
        home / "tessera.toml", "".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items() if v is not None), 0o644
    )
    settings = Settings.load(home, database_url=database_url)
    kek = settings.kek_bytes()

    ca = CertificateAuthority.generate(f"tessera {environment} developer CA")
    _write(settings.ca_cert_path, ca.certificate_pem(), 0o644)
    _write(settings.ca_key_path, ca.private_key_pem(kek), 0o600)
    cert_pem, key_pem = ca.issue_server_certificate(hostname)
    _write(settings.tls_cert_path, cert_pem, 0o644)
    _write(settings.tls_key_path, key_pem, 0o600)

    store = open_store(settings)
    try:
        create_initial_keys(
            store, kek, signing_alg=settings.signing_alg, enc_bits=settings.encryption_key_bits, now=now
        )
    finally:
        store.close()
    return settings


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The SQL store; with ``redis_url`` set, a ``CompositeStore`` keeping the short-lived
    artefacts (request_uris, codes, jti, revoked tokens) on Redis in front of it."""
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    store = SQLStore(settings.database_url)
    if migrate:
        try:
            upgrade(store.engine)
        except SQLAlchemyError as e:
            store.close()
            reason = str(getattr(e, "orig", None) or type(e).__name__).strip().splitlines()[0][:200]
            raise ConfigError(f"cannot open the database {redact_url(settings.database_url)}: {reason}") from None
    if settings.redis_url:
        from tessera.storage.redis_store import CompositeStore

        return CompositeStore.from_settings(settings, store)
    return store


def core_config(s: Settings) -> CoreConfig:
    """The core's configuration from the settings."""
    audiences = default_audiences(
        s.issuer,
        nexi_prefix=s.nexi_prefix,
        mobilepay_prefix=s.mobilepay_prefix,
        b2binpay_prefix=s.b2binpay_prefix,
        axept_prefix=s.axept_prefix,
    )
    for name, value in (
        ("native", s.native_audience),
        ("nexi-softpos", s.nexi_audience),
        ("mobilepay", s.mobilepay_audience),
        ("axept", s.axept_audience),
        ("b2binpay", s.b2binpay_audience),
    ):
        if value:
            audiences[name] = value
    return CoreConfig(
        issuer=s.issuer,
        environment=s.environment,
        nexi_token_ttl=s.nexi_token_ttl,
        access_token_ttl=s.access_token_ttl,
        id_token_ttl=s.id_token_ttl,
        par_ttl=s.par_ttl,
        code_ttl=s.code_ttl,
        assertion_max_lifetime=s.assertion_max_lifetime,
        clock_skew=s.clock_skew,
        cache_seconds=s.revocation_cache_seconds,
        nexi_assertion_max_lifetime=s.nexi_assertion_max_lifetime,
        nexi_iat_tolerance=s.nexi_iat_tolerance,
        refresh_family_max=s.refresh_family_max_seconds,
        issuers=default_issuers(s.issuer, mobilepay_prefix=s.mobilepay_prefix),
        audiences=audiences,
    )


def build_core(settings: Settings, store: Store) -> Core:
    """The core of one process over ``store``: its configuration, keys and pepper from the
    settings, and the store's optional capabilities, looked for once, here."""
    return Core(
        config=core_config(settings),
        store=store,
        keys=KeyRing(store, settings.kek_bytes()),
        pepper=settings.peppers(),
        capabilities=Capabilities.of(store),
    )


def check_kek(settings: Settings, store: KeyStore) -> None:
    """Refuse a wrong (well-formed) KEK: it must open the current signing key, sealed under
    the KEK since ``tessera init`` (AES-256-GCM: a wrong key fails the tag check). Homes of
    every age have that key, so no extra check value is needed. ``ConfigError`` if not."""
    from tessera.jose.errors import JoseError
    from tessera.jose.keys import open_private_key

    kek = settings.kek_bytes()
    keys = [k for k in store.list_server_keys() if k.status == "current"]
    for k in keys[:1]:
        try:
            open_private_key(k.sealed_private, kek, k.kid)
        except JoseError:
            source = "TESSERA_KEK" if settings.kek else str(settings.home / "secrets" / "kek")
            raise ConfigError(
                f"the key-encryption key ({source}) does not open this home's keys: "
                "it is not the KEK the home was created with"
            ) from None


def load_ca(settings: Settings) -> CertificateAuthority:
    try:
        return CertificateAuthority.load(
            settings.ca_cert_path.read_bytes(), settings.ca_key_path.read_bytes(), settings.kek_bytes()
        )
    except (ValueError, TypeError):  # cryptography: a wrong password (KEK) for the encrypted CA key
        raise ConfigError(
            f"the key-encryption key does not open the CA key {settings.ca_key_path}: "
            "it is not the KEK the home was created with"
        ) from None
