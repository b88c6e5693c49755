"""``tessera serve``: uvicorn with our TLS protocol hook, embedded mTLS or plain HTTP behind a proxy."""

from __future__ import annotations

import os
from typing import Any, Callable

import uvicorn

from tessera.config import Settings
from tessera.home import open_store
from tessera.web.tls import protocol_class, ssl_options


def uses_tls(settings: Settings) -> bool:
    return settings.mtls_mode == "embedded" and not settings.plain_http


def uvicorn_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        host=settings.host, port=settings.port, http=protocol_class("auto"), loop="auto",
        log_level=settings.log_level, proxy_headers=False, server_header=False, access_log=False,
        timeout_graceful_shutdown=10,
    )
    if uses_tls(settings):
        kwargs.update(ssl_options(settings.tls_cert_path, settings.tls_key_path, settings.ca_cert_path))
    return kwargs


def run(settings: Settings, *, announce: Callable[[str], None] = print) -> None:
    store = open_store(settings)  # migrate once, before any worker starts
    store.close()
    base = f"{'https' if uses_tls(settings) else 'http'}://{settings.host}:{settings.port}"
    for name in settings.secrets_from_files():
        announce(f"[yellow]WARNING: the {name} is read from {settings.home / 'secrets' / name} (development only); "
                 f"in production set TESSERA_{name.upper()} from your secret manager[/]")
    announce(f"tessera {settings.environment}: serving {base}  (issuer {settings.issuer}, mTLS {settings.mtls_mode}, "
             f"{settings.workers} worker(s), database {settings.database_url.split(':', 1)[0]})")
    if uses_tls(settings):
        announce(f"  CA certificate for clients: {settings.ca_cert_path}")
        announce(f"  try it:  curl --cacert {settings.ca_cert_path} {base}{settings.nexi_prefix}/par/jwks.json")
    announce(f"  run every flow against it:  .venv/bin/tessera --home {settings.home} demo --url {base}")
    os.environ["TESSERA_HOME"] = str(settings.home.resolve())  # read by the worker factory
    uvicorn.run("tessera.web.asgi:create", factory=True, workers=settings.workers, **uvicorn_kwargs(settings))
