"""JOSE layer: a thin, allow-listed layer over joserfc.

Modules, one job each:

* :mod:`.errors`  - :class:`JoseError`, the only exception raised here.
* :mod:`.keys`    - key generation (RFC 7638 kids), sealing at rest, public JWKs.
* :mod:`.keyset`  - :class:`ServerKeys`, the runtime rotation view and JWKS.
* :mod:`.jwt`     - the server's own JWTs (RFC 7519 / RFC 9068).
* :mod:`.nested`  - the JWE-wrapped signed client assertion (RFC 7516 + RFC 7519).

Knows nothing of HTTP or SQL. Claim validation lives in core.
"""

from .errors import JoseError
from .jwt import sign_jwt, verify_own_jwt
from .keys import (
    SIGNING_ALGS,
    generate_encryption_key,
    generate_signing_key,
    open_private_key,
    public_jwk,
    seal_private_key,
)
from .keyset import ManagedKey, ServerKeys
from .nested import (
    JWE_ALGS,
    JWE_ENCS,
    JWS_ALGS,
    MAX_TOKEN_BYTES,
    decrypt_assertion,
    verify_signed_assertion,
)

__all__ = [
    "JoseError",
    "SIGNING_ALGS",
    "generate_signing_key",
    "generate_encryption_key",
    "seal_private_key",
    "open_private_key",
    "public_jwk",
    "ManagedKey",
    "ServerKeys",
    "sign_jwt",
    "verify_own_jwt",
    "JWE_ALGS",
    "JWE_ENCS",
    "JWS_ALGS",
    "MAX_TOKEN_BYTES",
    "decrypt_assertion",
    "verify_signed_assertion",
]
