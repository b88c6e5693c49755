"""A test's set-up through the admin layer, in process, on a live server's home and database:
what ``tessera clients create`` and ``tessera certs sign`` do, without a fresh interpreter for
each (about a CPU second apiece: docs/testing.md). For set-up only; the tests of those commands
run the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tessera.admin.certificates import SignCertificate, sign_certificate
from tessera.admin.clients import RegisterClient, register_client
from tessera.admin.compose import open_admin
from tessera.admin.context import Admin
from tests.support.live import LiveServer


@contextmanager
def admin_of(server: LiveServer) -> Iterator[Admin]:
    """The admin layer over the server's home, with the settings its process runs with."""
    a = open_admin(server.settings)
    try:
        yield a
    finally:
        a.store.close()


def create_client(server: LiveServer, name: str, **fields: Any) -> dict[str, str]:
    """``tessera clients create --name NAME ... --json``: ``fields`` as ``RegisterClient``'s
    (tuples for the repeatable flags); the client id and, for the secret methods, the secret."""
    with admin_of(server) as a:
        made = register_client(a, RegisterClient(name=name, **fields))
    out = {"client_id": made.client_id}
    if made.client_secret is not None:
        out["client_secret"] = made.client_secret
    return out


def sign_csr(server: LiveServer, client_id: str, csr: Path, out: Path) -> str:
    """``tessera certs sign --client ID --csr CSR --out OUT``: the certificate's serial."""
    with admin_of(server) as a:
        signed = sign_certificate(a, SignCertificate(client_id, csr.read_bytes()))
    out.write_bytes(signed.pem)
    return signed.serial
