"""Fixtures for the developer-CA tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tessera.ca import CertificateAuthority

from .helpers import OpenSSL


@pytest.fixture
def ca() -> CertificateAuthority:
    return CertificateAuthority.generate()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def openssl(tmp_path: Path) -> OpenSSL:
    """The openssl CLI (/usr/bin/openssl, else the one on PATH) working in tmp_path."""
    binary = "/usr/bin/openssl" if os.access("/usr/bin/openssl", os.X_OK) else shutil.which("openssl")
    if binary is None:
        pytest.fail("the openssl CLI is needed for this test (make test-deps installs it)")
    return OpenSSL(binary, tmp_path)
