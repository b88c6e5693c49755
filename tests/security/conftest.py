"""Fixtures of the security suite: each module runs against its own live server over TLS
(``live_server``, tests/conftest.py); these add the actors the rows need."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.security.helpers import AssertionSurface, NexiEnv, native_surface, nexi_env, nexi_surface


@pytest.fixture(scope="module", params=["nexi_par", "native_token"])
def surface(request, live_server) -> AssertionSurface:
    """Rows 1-13 run on both endpoints that take a client assertion."""
    s = nexi_surface(live_server) if request.param == "nexi_par" else native_surface(live_server)
    yield s
    s.http.close()


@pytest.fixture(scope="module")
def nexi(live_server) -> NexiEnv:
    env = nexi_env(live_server)
    yield env
    env.close()


HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    """The PostgreSQL runs of ``db_live_server`` also carry the ``postgres`` marker."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (
            HERE in Path(item.path).parents
            and callspec is not None
            and callspec.params.get("db_live_server") == "postgres"
        ):
            item.add_marker(pytest.mark.postgres)
