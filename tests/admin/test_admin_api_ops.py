"""The admin-layer operations of the admin API: an app's update, a client secret's rotation
with its overlap (and the core accepting both secrets while it lasts, only the new one after),
the merchant listings, users made without a password, a certificate by serial and its
``.p7b``, and the security events by cursor. In process, fixed clock, memory and SQLite."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tessera import admin as ops
from tessera.admin import Admin, Conflict, Invalid, NotFound, RegisterClient, Stale
from tessera.admin.certificates import certificate_p7b, find_certificate
from tessera.admin.merchants import (
    UNSET_PASSWORD,
    add_user_unset,
    list_grants,
    list_merchants,
    points_of_sale,
    users_of,
)
from tessera.admin.records import events_page
from tessera.core.clients import ClientCredentials, authenticate_secret
from tessera.core.context import Core, CoreConfig
from tessera.core.secrets import verify_password
from tessera.errors import InvalidClient

from .conftest import Clock


def _core(admin: Admin, clock: Clock) -> Core:
    config = CoreConfig(issuer="https://as.example")
    return Core(config=config, store=admin.store, keys=None, pepper=admin.settings.pepper_bytes(), clock=clock)


def _auth(core: Core, client_id: str, secret: str) -> bool:
    try:
        authenticate_secret(core, ClientCredentials(client_id, secret, "client_secret_basic"))
    except InvalidClient:
        return False
    return True


def test_update_client_checks_redirect_uris_and_records(admin: Admin) -> None:
    admin = replace(admin, actor="ops")
    reg = ops.register_client(admin, RegisterClient(name="app", redirect_uris=("https://a.example/cb",)))
    info = ops.update_client(admin, reg.client_id, ops.UpdateClient(redirect_uris=("https://b.example/cb",)))
    assert info.redirect_uris == ("https://b.example/cb",) and info.name == "app"
    info = ops.update_client(admin, reg.client_id, ops.UpdateClient(name="renamed"))
    assert info.name == "renamed" and info.redirect_uris == ("https://b.example/cb",)
    with pytest.raises(Invalid) as e:
        ops.update_client(admin, reg.client_id, ops.UpdateClient(redirect_uris=("http://evil.example/cb",)))
    assert e.value.field == "redirect_uris"
    with pytest.raises(Invalid):
        ops.update_client(admin, reg.client_id, ops.UpdateClient(name=""))
    with pytest.raises(NotFound):
        ops.update_client(admin, "nope", ops.UpdateClient(name="x"))
    ops_recorded = [e.detail["op"] for e in admin.store.list_events(kind="admin_change")]
    assert ops_recorded == ["client.register", "client.update", "client.update"]


def test_rotation_overlap_then_only_the_new_secret(admin: Admin, clock: Clock) -> None:
    reg = ops.register_client(admin, RegisterClient(name="app"))
    old = reg.client_secret
    assert old is not None
    core = _core(admin, clock)
    rotated = ops.rotate_secret(admin, reg.client_id, 3600)
    assert rotated.previous_valid_until == clock.now + 3600 and rotated.client_secret != old
    assert ops.secret_overlap_until(admin, reg.client_id) == clock.now + 3600
    assert _auth(core, reg.client_id, old) and _auth(core, reg.client_id, rotated.client_secret)
    assert not _auth(core, reg.client_id, "x" * 43)
    clock.now += 3599
    assert _auth(core, reg.client_id, old)
    clock.now += 1
    assert not _auth(core, reg.client_id, old) and _auth(core, reg.client_id, rotated.client_secret)
    assert ops.secret_overlap_until(admin, reg.client_id) is None
    # the overlap is over: a second rotation is allowed, with the default overlap (24 h)
    again = ops.rotate_secret(admin, reg.client_id)
    assert again.previous_valid_until == clock.now + 86400
    assert _auth(core, reg.client_id, rotated.client_secret) and _auth(core, reg.client_id, again.client_secret)


def test_second_rotation_during_an_overlap_needs_overlap_zero(admin: Admin, clock: Clock) -> None:
    reg = ops.register_client(admin, RegisterClient(name="app"))
    assert reg.client_secret is not None
    core = _core(admin, clock)
    first = ops.rotate_secret(admin, reg.client_id, 600)
    with pytest.raises(Conflict):
        ops.rotate_secret(admin, reg.client_id, 600)
    leaked = ops.rotate_secret(admin, reg.client_id, 0)  # a leaked secret: both older ones stop now
    assert leaked.previous_valid_until is None
    assert not _auth(core, reg.client_id, reg.client_secret)
    assert not _auth(core, reg.client_id, first.client_secret)
    assert _auth(core, reg.client_id, leaked.client_secret)


def test_rotation_refusals(admin: Admin) -> None:
    mtls = ops.register_client(admin, RegisterClient(name="softpos", auth_methods=("tls_client_auth",)))
    with pytest.raises(Invalid):
        ops.rotate_secret(admin, mtls.client_id)
    with pytest.raises(NotFound):
        ops.rotate_secret(admin, "nope")
    reg = ops.register_client(admin, RegisterClient(name="app"))
    with pytest.raises(Invalid):
        ops.rotate_secret(admin, reg.client_id, -1)
    ops.revoke_client(admin, reg.client_id)
    with pytest.raises(Conflict):
        ops.rotate_secret(admin, reg.client_id)


def test_merchant_listings_and_users_without_password(admin: Admin, clock: Clock) -> None:
    app = ops.register_client(admin, RegisterClient(name="app"))
    ops.create_merchant(admin, ops.CreateMerchant(7, "Seven", "DK00000007"))
    ops.create_merchant(admin, ops.CreateMerchant(3, "Three"))
    ops.add_terminal(admin, ops.AddTerminal(7, "POS-1", "T1", "softpos"))
    ops.add_terminal(admin, ops.AddTerminal(7, "POS-1", "T2", "mpos"))
    ops.add_terminal(admin, ops.AddTerminal(7, "POS-2", "T3", "softpos"))
    assert [m.merchant_id for m in list_merchants(admin)] == [3, 7]
    pos = points_of_sale(admin, 7)
    assert [(p.pos, [t.tid for t in p.terminals]) for p in pos] == [("POS-1", ["T1", "T2"]), ("POS-2", ["T3"])]
    user = add_user_unset(admin, 7, "Clerk@Shop.example")
    assert user.username == "clerk@shop.example" and not user.password_set
    stored = admin.store.get_user("clerk@shop.example")
    assert stored is not None and stored.password_hash == UNSET_PASSWORD
    assert not verify_password("", stored.password_hash) and not verify_password(UNSET_PASSWORD, stored.password_hash)
    ops.add_user(admin, ops.AddUser(7, "boss@shop.example", "a long password"))
    assert [(u.username, u.password_set) for u in users_of(admin, 7)] == [
        ("boss@shop.example", True),
        ("clerk@shop.example", False),
    ]
    with pytest.raises(Conflict):
        add_user_unset(admin, 7, "clerk@shop.example")
    with pytest.raises(Invalid):
        add_user_unset(admin, 7, "not-an-email")
    ops.grant(admin, 7, app.client_id)
    assert [(g.client_id, g.granted_at) for g in list_grants(admin, 7)] == [(app.client_id, clock.now)]
    for fn in (points_of_sale, users_of, list_grants):
        with pytest.raises(NotFound):
            fn(admin, 99)


def test_certificate_by_serial_and_its_p7b(admin: Admin, tmp_path) -> None:
    app = ops.register_client(admin, RegisterClient(name="softpos", auth_methods=("tls_client_auth",)))
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NOMEAPP")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    signed = ops.sign_certificate(admin, ops.SignCertificate(app.client_id, csr))
    info = find_certificate(admin, "0x" + signed.serial.upper())
    assert info.serial == signed.serial and info.pem == signed.pem.decode()
    for der in (False, True):
        path = tmp_path / f"c{der}.p7b"
        path.write_bytes(certificate_p7b(info, der=der))
        args = ["openssl", "pkcs7", "-print_certs", "-in", str(path)] + (["-inform", "DER"] if der else [])
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        assert "-----BEGIN CERTIFICATE-----" in out
        printed = x509.load_pem_x509_certificate(out[out.index("-----BEGIN CERTIFICATE-----") :].encode())
        assert printed.public_bytes(serialization.Encoding.PEM) == signed.pem
    for bad in ("ffff", "zz", ""):
        with pytest.raises(NotFound):
            find_certificate(admin, bad)


def test_events_page_by_cursor_and_filters(admin: Admin, clock: Clock) -> None:
    admin = replace(admin, actor="ops")
    for i in range(5):
        clock.now += 1
        ops.create_merchant(admin, ops.CreateMerchant(100 + i))
    admin.store.add_event("jti_replayed", "someone", {}, clock.now)
    page = events_page(admin, limit=2)
    assert [e.detail["merchant_id"] for e in page] == [100, 101]
    page2 = events_page(admin, after_id=page[-1].id, limit=10, kind="admin_change")
    assert [e.detail["merchant_id"] for e in page2] == [102, 103, 104]
    assert [e.kind for e in events_page(admin, client_id="someone")] == ["jti_replayed"]
    assert len(events_page(admin, since=clock.now - 1)) == 3
    with pytest.raises(Invalid):
        events_page(admin, limit=0)
    with pytest.raises(Invalid):
        events_page(admin, after_id=-1)


def test_update_with_a_check_writes_only_what_was_read(admin: Admin) -> None:
    reg = ops.register_client(admin, RegisterClient(name="app", redirect_uris=("https://a.example/cb",)))
    seen: list[str] = []

    def sneaky(read: ops.ClientInfo) -> None:  # another operator's change lands between read and write
        seen.append(read.name)
        admin.store.update_client_details(reg.client_id, "theirs", read.redirect_uris)

    with pytest.raises(Stale):
        ops.update_client(admin, reg.client_id, ops.UpdateClient(name="mine"), check=sneaky)
    assert seen == ["app"] and ops.get_client(admin, reg.client_id).name == "theirs"

    def refuse(read: ops.ClientInfo) -> None:
        raise Invalid("no", field="If-Match")

    with pytest.raises(Invalid):
        ops.update_client(admin, reg.client_id, ops.UpdateClient(name="mine"), check=refuse)
    info = ops.update_client(admin, reg.client_id, ops.UpdateClient(name="mine"), check=lambda read: None)
    assert info.name == "mine"
