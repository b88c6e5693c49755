"""``rotate_kek`` in process: every server key and the CA key re-sealed, the keys themselves
unchanged, an interrupted rotation completed by running it again, a stranger refused."""

from __future__ import annotations

import base64
import os
import time
from dataclasses import replace

import pytest

from tessera.admin.compose import open_admin
from tessera.admin.errors import Invalid
from tessera.admin.rotation import rotate_kek
from tessera.ca.authority import CertificateAuthority
from tessera.config import Settings
from tessera.home import init_home
from tessera.jose.errors import JoseError
from tessera.jose.keys import open_private_key, seal_private_key

OLD, NEW, OTHER = os.urandom(32), os.urandom(32), os.urandom(32)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for k in list(os.environ):
        if k.startswith("TESSERA_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TESSERA_KEK", b64(OLD))
    home = tmp_path / "home"
    init_home(home, now=int(time.time()))
    return home


def opens(blob: str, kek: bytes, kid: str) -> bool:
    try:
        open_private_key(blob, kek, kid)
    except JoseError:
        return False
    return True


def test_everything_is_resealed_and_an_interrupted_rotation_completes(home):
    admin = open_admin(Settings.load(home))
    try:
        keys = admin.store.list_server_keys()
        publics = {k.kid: k.public_jwk for k in keys}
        # an earlier run that stopped after the first key
        first = keys[0]
        admin.store.save_server_keys(
            [
                replace(
                    first, sealed_private=seal_private_key(open_private_key(first.sealed_private, OLD, first.kid), NEW)
                )
            ]
        )
        result = rotate_kek(admin, NEW)
        assert result.already == [first.kid] and len(result.resealed) == len(keys) - 1
        assert result.kek_file is None  # the KEK comes from the environment: the operator sets it
        after = admin.store.list_server_keys()
        assert {k.kid: k.public_jwk for k in after} == publics
        assert all(opens(k.sealed_private, NEW, k.kid) and not opens(k.sealed_private, OLD, k.kid) for k in after)
        s = admin.settings
        CertificateAuthority.load(s.ca_cert_path.read_bytes(), s.ca_key_path.read_bytes(), NEW)
        with pytest.raises(ValueError):
            CertificateAuthority.load(s.ca_cert_path.read_bytes(), s.ca_key_path.read_bytes(), OLD)
        with pytest.raises(Invalid, match="current one"):
            rotate_kek(replace(admin, settings=Settings.load(home, kek=b64(NEW))), NEW)
    finally:
        admin.store.close()


def test_a_key_under_neither_kek_stops_the_rotation_before_anything_is_written(home):
    admin = open_admin(Settings.load(home))
    try:
        keys = admin.store.list_server_keys()
        stranger = keys[-1]
        admin.store.save_server_keys(
            [
                replace(
                    stranger,
                    sealed_private=seal_private_key(
                        open_private_key(stranger.sealed_private, OLD, stranger.kid), OTHER
                    ),
                )
            ]
        )
        ca_key = admin.settings.ca_key_path.read_bytes()
        with pytest.raises(Invalid, match="neither"):
            rotate_kek(admin, NEW)
        assert all(opens(k.sealed_private, OLD, k.kid) for k in admin.store.list_server_keys()[:-1])
        assert admin.settings.ca_key_path.read_bytes() == ca_key
    finally:
        admin.store.close()
