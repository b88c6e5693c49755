"""``tessera serve``: uvicorn with our TLS protocol hook, embedded mTLS or plain HTTP behind a proxy."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from tessera import startup
from tessera.config import Settings
from tessera.home import check_kek, open_store
from tessera.web.tls import protocol_class, ssl_options


def uses_tls(settings: Settings) -> bool:
    return settings.mtls_mode == "embedded" and not settings.plain_http


def uvicorn_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        host=settings.host,
        port=settings.port,
        http=protocol_class("auto"),
        loop="auto",
        log_level=settings.log_level,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    if uses_tls(settings):
        kwargs.update(ssl_options(settings.tls_cert_path, settings.tls_key_path, settings.ca_cert_path))
    return kwargs


def run(settings: Settings, *, announce: Callable[[str], None] = print) -> None:
    store = open_store(settings)  # migrate once, before any worker starts
    try:
        check_kek(settings, store)  # a wrong KEK stops the start, instead of 500s on every token request
    finally:
        store.close()
    base = f"{'https' if uses_tls(settings) else 'http'}://{settings.host}:{settings.port}"
    for name in settings.secrets_from_files():
        announce(
            f"[yellow]WARNING: the {name} is read from {settings.home / 'secrets' / name} (development only); "
            f"in production set TESSERA_{name.upper()} from your secret manager[/]"
        )
    announce(
        f"tessera {settings.environment}: serving {base}  (issuer {settings.issuer}, mTLS {settings.mtls_mode}, "
        f"{settings.workers} worker(s), database {settings.database_url.split(':', 1)[0]})"
    )
    if uses_tls(settings):
        announce(f"  CA certificate for clients: {settings.ca_cert_path}")
        announce(f"  try it:  curl --cacert {settings.ca_cert_path} {base}{settings.nexi_prefix}/par/jwks.json")
    announce(f"  run every flow against it:  .venv/bin/tessera --home {settings.home} demo --url {base}")
    os.environ["TESSERA_HOME"] = str(settings.home.resolve())  # read by the worker factory
    # The workers load the settings again: they must see what the command line chose, not a
    # TESSERA_PORT/HOST/WORKERS of the environment that the flags overrode.
    os.environ.update(
        TESSERA_HOST=settings.host, TESSERA_PORT=str(settings.port), TESSERA_WORKERS=str(settings.workers)
    )
    _exit_zero_on_sigterm()
    from tessera.web.logging import configure_logging

    configure_logging(settings.log_level)  # JSON lines from here on, the supervisor of several workers included
    if settings.workers > 1:
        startup.settle()  # this process only supervises; each worker settles once its app is built
    uvicorn.run(
        "tessera.web.asgi:create", factory=True, workers=settings.workers, log_config=None, **uvicorn_kwargs(settings)
    )


def _exit_zero_on_sigterm() -> None:
    """SIGTERM is the normal way to stop the server: exit 0 once it has been handled.

    uvicorn drains in-flight requests on SIGTERM (up to ``timeout_graceful_shutdown``), then
    restores the previous handler and raises the signal again; with the default handler the
    process would die "killed by SIGTERM" (exit status 143) after a clean shutdown.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
