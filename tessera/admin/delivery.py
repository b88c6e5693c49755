"""Delivering client credentials as MobilePay does: a password-locked zip file, with the
password sent by another channel (MobilePay's DeveloperSupport mails the zip and texts the
password).

``credentials_zip`` writes an AES-256 encrypted zip (WinZip AE-2, the format 7-Zip, WinZip,
macOS Archive Utility and Windows 11 open; the legacy "ZipCrypto" is broken and is not used)
holding ``credentials.json`` and ``credentials.txt`` with the client id and secret, and returns
the password apart: it is never written into the zip. The CLI (``tessera clients create
--zip``), the admin API and the portal offer the same file."""

from __future__ import annotations

import io
import json
import secrets
import string

#: 24 characters from 57 unambiguous letters and digits: about 140 bits; typed from a text
#: message without confusing 0/O or 1/l/I.
PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
PASSWORD_LENGTH = 24
#: A fixed timestamp in the archive (1980-01-01, zip's epoch): the file reveals nothing of when it was made.
_EPOCH = (1980, 1, 1, 0, 0, 0)


def new_password() -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def is_generated_password(value: str) -> bool:
    """True when ``value`` has the shape of a ``new_password()``: its length, its alphabet."""
    size, alphabet = PASSWORD_LENGTH, set(PASSWORD_ALPHABET)  # a shape, not a secret: no constant-time need
    return len(value) == size and set(value) <= alphabet


def credentials_zip(client_id: str, client_secret: str, *, password: str | None = None) -> tuple[bytes, str]:
    """The encrypted zip holding the client's credentials, and its password (generated with
    ``secrets`` unless given)."""
    import pyzipper  # with its AES (pycryptodomex): loaded only when a zip is written
    from pyzipper.zipfile_aes import WZ_AES_V2, AESZipInfo

    password = password or new_password()
    body = {"client_id": client_id, "client_secret": client_secret}
    files = {
        "credentials.json": json.dumps(body, indent=2) + "\n",
        "credentials.txt": f"client_id: {client_id}\nclient_secret: {client_secret}\n",
    }
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", compression=pyzipper.ZIP_DEFLATED) as zf:
        zf.setpassword(password.encode())
        zf.setencryption(pyzipper.WZ_AES, nbits=256, force_wz_aes_version=WZ_AES_V2)
        for name, text in files.items():
            info = AESZipInfo(name, date_time=_EPOCH)
            info.compress_type = pyzipper.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            zf.writestr(info, text)
    return buf.getvalue(), password
