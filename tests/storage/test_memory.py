"""What the memory store adds to the shared contract (tests/storage/test_store.py): its change
notices are exact and per reader, so two cores over one store each see every change on
their next request, as two workers over one database do."""

from __future__ import annotations

from tessera.core.context import Core, CoreConfig
from tessera.core.models import CertificateRecord, Client
from tessera.storage.memory import MemoryStore

NOW = 1_700_000_000


def test_each_reader_has_its_own_listener():
    store = MemoryStore()
    a, b = store.revocation_notices, store.revocation_notices
    assert a is not b and a.exact and b.exact
    assert a.changed() and b.changed()  # the first look counts
    assert not a.changed() and not b.changed()
    store.create_client(Client("c1", "n", None, created_at=NOW))
    assert a.changed() and b.changed()  # both hear it, each once
    assert not a.changed() and not b.changed()
    store.add_event("e", None, {}, NOW)  # not something workers cache: not announced
    assert not a.changed()


def test_two_cores_see_a_revocation_on_their_next_request():
    store = MemoryStore()
    store.create_client(Client("c1", "n", None, created_at=NOW))
    store.add_certificate(CertificateRecord("ab", "c1", "tp", "CN=x", NOW - 10, NOW + 3600, "pem", None, NOW))
    cores = [
        Core(config=CoreConfig(issuer="https://as.example"), store=store, keys=None, pepper=b"p")  # type: ignore[arg-type]
        for _ in range(2)
    ]
    assert all(core.exact_notices for core in cores)
    assert all(core.certificate("tp").usable(NOW) and core.client("c1").active for core in cores)
    store.revoke_certificate("0xAB", NOW)
    assert not any(core.certificate("tp").usable(NOW) for core in cores)
    store.set_client_status("c1", "revoked")
    assert not any(core.client("c1").active for core in cores)
