"""PKCE S256 (RFC 7636), checked against the RFC's own example."""

import base64
import hashlib
import re

from tessera.sdk import make_pkce
from tessera.sdk.pkce import s256


def test_rfc7636_appendix_b():
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_make_pkce():
    verifier, challenge = make_pkce()
    assert len(verifier) == 64 and re.fullmatch(r"[A-Za-z0-9_-]{64}", verifier)
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == digest and len(challenge) == 43
    assert len({make_pkce()[0] for _ in range(50)}) == 50
