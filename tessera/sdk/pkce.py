"""PKCE (RFC 7636) with the S256 method only."""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = ["make_pkce", "s256"]


def s256(verifier: str) -> str:
    """``BASE64URL(SHA256(ASCII(verifier)))`` without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_pkce() -> tuple[str, str]:
    """A fresh ``(code_verifier, code_challenge)``: a 64-character verifier of 384 random
    bits (unreserved characters only) and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)
