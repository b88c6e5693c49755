"""Rotating the key-encryption key (KEK).

The KEK seals every server private key in the database (AES-256-GCM, ``seal_private_key``) and
encrypts the CA key files (``secrets/ca-key*.pem``, PKCS#8 under the KEK as password). A
rotation opens each under the current KEK and seals it again under the new one: the server keys
in one transaction (``save_server_keys``), the CA key files each written beside and renamed into
place after that commit, and, for a home that keeps its KEK in ``secrets/kek`` (development),
that file last. Nothing else changes: same kids, same public keys, so every token signed before
keeps verifying.

It can be run again after an interruption: what already opens under the new KEK is left as it
is; something that opens under neither stops it before anything is written.

Not re-sealed: the answers kept for a refresh retry (``refresh_grace_seconds`` > 0 only, each
for at most that many seconds, sealed under a key derived from the KEK). A retry across the
rotation inside that window is answered ``invalid_grant``, as a retry after the window is."""

from __future__ import annotations

import binascii
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tessera.admin.context import Admin
from tessera.admin.errors import Invalid
from tessera.config import SECRETS_DIR, _b64
from tessera.core.models import StoredKey
from tessera.jose.errors import JoseError
from tessera.jose.keys import open_private_key, seal_private_key


def parse_kek(value: str, source: str) -> bytes:
    try:
        raw = _b64(value)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise Invalid(f"{source} must hold base64url of exactly 32 bytes")
    return raw


@dataclass(frozen=True)
class KekRotation:
    resealed: list[str] = field(default_factory=list)  # kids sealed again under the new KEK
    already: list[str] = field(default_factory=list)  # kids that were under the new KEK already
    ca_keys: list[str] = field(default_factory=list)  # CA key files encrypted again
    kek_file: str | None = None  # the home's secrets/kek, rewritten (development homes)

    def as_dict(self) -> dict[str, object]:
        return {
            "server_keys_resealed": len(self.resealed),
            "server_keys_already_new": len(self.already),
            "ca_keys_resealed": self.ca_keys,
            "kek_file": self.kek_file,
        }


def _write_beside(path: Path, data: bytes) -> Path:
    staged = path.with_name(f".{path.name}.rekey")
    staged.unlink(missing_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    if path.exists() and os.geteuid() == 0:  # run as root: the file keeps its owner (the service's user)
        st = path.stat()
        os.chown(staged, st.st_uid, st.st_gid)
    return staged


def _reseal_server_keys(admin: Admin, old: bytes, new_kek: bytes, result: KekRotation) -> list[StoredKey]:
    resealed = []
    for k in admin.store.list_server_keys():
        try:
            key = open_private_key(k.sealed_private, old, k.kid)
        except JoseError:
            try:
                open_private_key(k.sealed_private, new_kek, k.kid)
            except JoseError:
                raise Invalid(f"the server key {k.kid} opens with neither the current KEK nor the new one") from None
            result.already.append(k.kid)
            continue
        resealed.append(replace(k, sealed_private=seal_private_key(key, new_kek)))
        result.resealed.append(k.kid)
    return resealed


def _stage_ca_keys(secrets_dir: Path, old: bytes, new_kek: bytes, staged: list[tuple[Path, Path]]) -> None:
    for path in sorted(secrets_dir.glob("ca-key*.pem")):
        data = path.read_bytes()
        try:
            ca_key = serialization.load_pem_private_key(data, password=old)
        except (ValueError, TypeError):
            try:
                serialization.load_pem_private_key(data, password=new_kek)
            except (ValueError, TypeError):
                raise Invalid(f"{path} opens with neither the current KEK nor the new one") from None
            continue
        pem = ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(new_kek),
        )
        staged.append((_write_beside(path, pem), path))


def rotate_kek(admin: Admin, new_kek: bytes) -> KekRotation:
    old = admin.settings.kek_bytes()
    if new_kek == old:
        raise Invalid("the new KEK is the current one")
    result = KekRotation()
    resealed = _reseal_server_keys(admin, old, new_kek, result)
    secrets_dir = admin.settings.home / SECRETS_DIR
    staged: list[tuple[Path, Path]] = []
    try:
        _stage_ca_keys(secrets_dir, old, new_kek, staged)
        if resealed:
            admin.store.save_server_keys(resealed)  # one transaction: all or nothing
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in staged:
        os.replace(tmp, path)
        result.ca_keys.append(str(path))
    if not admin.settings.kek:  # the KEK lives in the home (development): the file follows
        kek_path = secrets_dir / "kek"
        os.replace(_write_beside(kek_path, (serialization_b64(new_kek) + "\n").encode()), kek_path)
        result = replace(result, kek_file=str(kek_path))
    admin.record("kek.rotate", server_keys=len(result.resealed), ca_keys=len(result.ca_keys))
    return result


def serialization_b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
