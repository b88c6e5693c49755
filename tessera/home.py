"""The tessera home directory: ``tessera init`` writes it, everything else opens it.

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
from pathlib import Path

from tessera.ca.authority import CertificateAuthority
from tessera.config import Settings, new_secret_b64
from tessera.core.keys import create_initial_keys
from tessera.storage.migrate import upgrade
from tessera.storage.sql import SQLStore


class HomeExists(Exception):
    pass


def _write(path: Path, data: bytes | str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_home(home: Path, *, environment: str = "staging", issuer: str | None = None, hostname: str = "localhost",
              port: int = 8443, now: int) -> Settings:
    """Create a new home: config, secrets, CA, server TLS certificate, database, keys."""
    home = Path(home)
    if (home / "tessera.toml").exists() or (home / "secrets").exists():
        raise HomeExists(f"{home} already holds a tessera home; refusing to overwrite it")
    home.mkdir(parents=True, exist_ok=True)
    (home / "secrets").mkdir(mode=0o700)
    issuer = (issuer or f"https://{hostname}:{port}").rstrip("/")
    config = {"environment": environment, "issuer": issuer, "hostname": hostname, "port": port}
    _write(home / "tessera.toml", "".join(f"{k} = {_toml_value(v)}\n" for k, v in config.items()), 0o644)
    if not os.environ.get("TESSERA_KEK"):
        _write(home / "secrets" / "kek", new_secret_b64() + "\n", 0o600)
    if not os.environ.get("TESSERA_PEPPER"):
        _write(home / "secrets" / "pepper", new_secret_b64() + "\n", 0o600)
    settings = Settings.load(home)
    kek = settings.kek_bytes()

    ca = CertificateAuthority.generate(f"tessera {environment} developer CA")
    _write(settings.ca_cert_path, ca.certificate_pem(), 0o644)
    _write(settings.ca_key_path, ca.private_key_pem(kek), 0o600)
    cert_pem, key_pem = ca.issue_server_certificate(hostname)
    _write(settings.tls_cert_path, cert_pem, 0o644)
    _write(settings.tls_key_path, key_pem, 0o600)

    store = open_store(settings)
    try:
        create_initial_keys(store, kek, signing_alg=settings.signing_alg, enc_bits=settings.encryption_key_bits, now=now)
    finally:
        store.close()
    return settings


def open_store(settings: Settings, *, migrate: bool = True) -> SQLStore:
    """The SQL store; with ``redis_url`` set, a ``CompositeStore`` keeping the short-lived
    artefacts (request_uris, codes, jti, revoked tokens) on Redis in front of it."""
    if settings.database_url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
    store = SQLStore(settings.database_url)
    if migrate:
        upgrade(store.engine)
    if settings.redis_url:
        from tessera.storage.redis_store import CompositeStore

        return CompositeStore.from_settings(settings, store)  # type: ignore[return-value]
    return store


def load_ca(settings: Settings) -> CertificateAuthority:
    return CertificateAuthority.load(settings.ca_cert_path.read_bytes(), settings.ca_key_path.read_bytes(), settings.kek_bytes())
