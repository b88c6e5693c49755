"""The two JWS rules the server shares with the resource-server SDK (a one-algorithm joserfc
registry, the ``typ`` comparison). They live in :mod:`tessera.sdk.jose_rules`, so that the SDK
installs and imports without the server (``tessera.jose`` loads orjson); re-exported here."""

from tessera.sdk.jose_rules import SingleAlgRegistry, norm_typ, single_alg_registry

__all__ = ["SingleAlgRegistry", "norm_typ", "single_alg_registry"]
