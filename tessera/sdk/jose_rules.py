"""Two small JWS rules shared by the server (``tessera.jose.jwt``) and the resource-server
SDK (``tessera.sdk.resource``): a joserfc registry that allows exactly one algorithm, and
the comparison of ``typ`` values. Imports joserfc only (``tessera.jose.registry`` re-exports
them for the server)."""

from __future__ import annotations

import functools
from typing import Any

from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jwa import JWSAlgModel
from joserfc.jws import JWSRegistry

__all__ = ["SingleAlgRegistry", "norm_typ", "single_alg_registry"]


class SingleAlgRegistry(JWSRegistry):
    """A joserfc JWS registry that allows exactly the algorithms given.

    ``get_alg`` is overridden only to skip joserfc's per-call deprecation warning for
    ``EdDSA`` (RFC 9864 deprecates the polymorphic name in favour of ``Ed25519``; verifiers
    must still accept ``EdDSA``), which would otherwise run the warnings machinery on every
    signature."""

    def get_alg(self, name: str) -> JWSAlgModel:
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError("Algorithm is not allowed")
        algorithm: JWSAlgModel = self.algorithms[name]
        return algorithm


@functools.cache
def single_alg_registry(alg: str) -> JWSRegistry:
    """The registry allowing ``alg`` alone (built once per algorithm)."""
    return SingleAlgRegistry(algorithms=[alg])


def norm_typ(value: Any) -> str | None:
    """RFC 7515 §4.1.9: ``typ`` is a media type, compared case-insensitively, and the
    ``application/`` prefix may be omitted."""
    if not isinstance(value, str):
        return None
    lowered = value.lower()
    return lowered[len("application/") :] if lowered.startswith("application/") else lowered
