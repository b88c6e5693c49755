"""tessera.core.models: the few rules the records carry themselves."""

from __future__ import annotations

from tessera.core.models import CertificateRecord, Client

NOW = 1_800_000_000


def test_a_client_is_active_until_revoked():
    assert Client("c", "n", None).active
    assert not Client("c", "n", None, status="revoked").active


def test_a_certificate_is_usable_inside_its_validity_and_unrevoked():
    cert = CertificateRecord("1", "c", "t", "CN=x", not_before=NOW - 10, not_after=NOW + 10, pem="")
    assert cert.usable(NOW) and cert.usable(NOW - 10) and not cert.usable(NOW - 11)
    assert not cert.usable(NOW + 10)
    revoked = CertificateRecord("1", "c", "t", "CN=x", NOW - 10, NOW + 10, "", revoked_at=NOW - 1)
    assert not revoked.usable(NOW)
