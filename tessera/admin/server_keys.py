"""The server's signing and encryption keys: rotation and its retention policy.

Rules: a rotation promotes the published next key, retires the current one and publishes a
new next one; a retired key stays published until what it made has expired:
``retention_seconds`` is the longest token lifetime plus the clock skew (``sig``), or the
longest client-assertion lifetime plus the skew and the clients' JWKS cache lifetime
(``enc``). New keys are never sealed under a KEK that does not open the current ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessera.admin.context import Admin
from tessera.admin.errors import Invalid
from tessera.config import Settings
from tessera.core import keys
from tessera.core.purge import longest_access_token

USES = keys.USES
#: How long clients may cache our JWKS (an encryption key must stay until they have re-read it).
CLIENT_JWKS_CACHE = 300


def retention_seconds(settings: Settings, use: str) -> int:
    if use == "sig":
        return longest_access_token(settings) + settings.clock_skew
    if use == "enc":
        return (
            max(settings.assertion_max_lifetime, settings.nexi_assertion_max_lifetime)
            + settings.clock_skew
            + CLIENT_JWKS_CACHE
        )
    raise Invalid(f"must be {' or '.join(USES)}", field="use")


@dataclass(frozen=True)
class RingRotation:
    use: str
    retired: str | None
    retire_at: int | None
    current: str
    next: str

    @classmethod
    def of(cls, d: dict[str, Any]) -> RingRotation:
        return cls(d["use"], d["retired"], d["retire_at"], d["current"], d["next"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "use": self.use,
            "retired": self.retired,
            "retire_at": self.retire_at,
            "current": self.current,
            "next": self.next,
        }


@dataclass(frozen=True)
class KeyRotation:
    """The shared ring's kids; for ``sig``, each profile ring's too (MobilePay's RS256)."""

    shared: RingRotation
    rings: dict[str, RingRotation] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = self.shared.as_dict()
        if self.shared.use == "sig":
            d["rings"] = {name: r.as_dict() for name, r in self.rings.items()}
        return d


@dataclass(frozen=True)
class ServerKeyInfo:
    kid: str
    use: str
    alg: str
    status: str
    retire_at: int | None


def rotate_server_keys(admin: Admin, use: str) -> KeyRotation:
    retain = retention_seconds(admin.settings, use)
    admin.check_kek()
    s = admin.settings
    result = keys.rotate(
        admin.store,
        s.kek_bytes(),
        use,
        retain_seconds=retain,
        signing_alg=s.signing_alg,
        enc_bits=s.encryption_key_bits,
        now=admin.now(),
    )
    rings = {name: RingRotation.of(r) for name, r in result.get("rings", {}).items()}
    admin.record("server_keys.rotate", use=use, current=result["current"], retired=result["retired"])
    return KeyRotation(RingRotation.of(result), rings)


def list_server_keys(admin: Admin) -> list[ServerKeyInfo]:
    return [ServerKeyInfo(k.kid, k.use, k.alg, k.status, k.retire_at) for k in admin.store.list_server_keys()]
