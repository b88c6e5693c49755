"""tessera.core.kinds: one enum names every artefact kind, and the use cases use those names."""

from __future__ import annotations

from tessera.core import assertions, authorize, purge, refresh, tokens
from tessera.core.flows import native
from tessera.core.kinds import Kind


def test_every_kind_is_a_plain_string_and_unique():
    values = [k.value for k in Kind]
    assert len(values) == len(set(values)) and all(isinstance(k, str) for k in Kind)
    assert Kind.REVOKED_TOKEN == "revoked_jti"


def test_the_use_cases_store_under_these_kinds():
    used = {
        authorize.CODE_KIND,
        native.PAR_KIND,
        native.CODE_KIND,
        native.NATIVE_CODES.replay,
        assertions.JTI_KIND,
        tokens.REVOKED_TOKEN,
        refresh.REFRESH_KIND,
        refresh.FAMILY_KIND,
        purge.TURN_KIND,
    }
    assert used <= {k.value for k in Kind}
