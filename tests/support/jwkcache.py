"""Client keys for the independent JOSE code (jwcrypto), loaded once per key and worker.

jwcrypto checks an RSA private key's consistency (OpenSSL's ``RSA_check_key``, about 40 ms for
2,048 bits) when it loads a PEM, and again when it first signs with the JWK it made. The
assertion and PAR rows loaded their app's key anew for every request they built: about 80 ms a
row, most of those modules' own CPU. The same PEM bytes are the same key, so the JWK is made once
(both checks still run, once) and handed out again. Callers only sign with it; none changes it.
"""

from __future__ import annotations

import functools

from jwcrypto import jwk


@functools.lru_cache(maxsize=1024)
def jwk_from_pem(pem: bytes) -> jwk.JWK:
    return jwk.JWK.from_pem(pem)
