"""The single error type of the JOSE layer.

Every failure in :mod:`tessera.jose` surfaces as :class:`JoseError`. Its
``reason`` is a short, fixed, safe text meant to be logged or mapped to an
OAuth error description by callers: it never contains key material, token
contents or the underlying library's message (joserfc and cryptography
messages can name internal steps, which for JWE decryption would be an
oracle, RFC 7516 §11.5).
"""

from __future__ import annotations

__all__ = ["JoseError"]


class JoseError(Exception):
    """A JOSE operation failed.

    :ivar reason: short, safe, human readable text (no key material, no
        echo of attacker-controlled input).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"JoseError({self.reason!r})"
