"""Helpers for the developer-CA tests: in-process CSRs and the openssl CLI."""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

#: The subject from the provider's onboarding document, in openssl -subj syntax.
PROVIDER_SUBJ = "/CN=NOMEAPP/O=NEXI/OU=API Security - STAGING/L=Milano/C=IT/"


SHA256 = hashes.SHA256()


def build_csr(
    key,
    *,
    cn: str = "client-app",
    extensions: list[tuple[x509.ExtensionType, bool]] = (),
    algorithm: hashes.HashAlgorithm = SHA256,
) -> bytes:
    """A PEM CSR built in-process (for the tests that don't need openssl)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, cn),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Merchant"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
            ]
        )
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def pem_to_der(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.strip().splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


def der_to_pem(der: bytes, label: str) -> bytes:
    b64 = base64.b64encode(der)
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"\n".join([f"-----BEGIN {label}-----".encode(), *lines, f"-----END {label}-----".encode(), b""])


@dataclass
class OpenSSL:
    """The openssl CLI, run in a scratch directory."""

    binary: str
    cwd: Path

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binary, *args],
            cwd=self.cwd,
            capture_output=True,
            timeout=60,
            env={**os.environ, "LC_ALL": "C"},
        )

    def ok(self, *args: str) -> str:
        """Run, fail the test on a non-zero exit, return stdout as text."""
        proc = self.run(*args)
        if proc.returncode != 0:
            pytest.fail(
                f"openssl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout: {proc.stdout.decode(errors='replace')}\n"
                f"stderr: {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout.decode()

    def write(self, name: str, data: bytes) -> Path:
        path = self.cwd / name
        path.write_bytes(data)
        return path

    def read(self, name: str) -> bytes:
        return (self.cwd / name).read_bytes()

    def req(self, name: str, *newkey: str, subj: str = PROVIDER_SUBJ, addext: tuple[str, ...] = ()) -> bytes:
        """``openssl req -nodes -newkey ... -keyout NAME.key -out NAME.csr``; returns the CSR PEM."""
        args = ["req", "-nodes", *newkey, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj]
        for ext in addext:
            args += ["-addext", ext]
        self.ok(*args)
        return self.read(f"{name}.csr")
