"""pytest plugin (entry point ``pytest11``: ``tessera``): a tessera sandbox for the test session.

Fixtures:

- ``tessera_sandbox`` (session): a running ``tessera sandbox`` on a free port, with the fixtures
  of ``--tessera-fixtures FILE``, else the ini option ``tessera_fixtures``, else the built-in
  example (``examples/sandbox.toml``). It gives ``base_url``, ``ca_file``, the fixture
  credentials (``nexi_apps``, ``mobilepay_clients``, ``b2binpay_users``, ``oauth_apps``,
  ``merchants``) and the helpers ``sign_csr``, ``issue_token``, ``advance_clock``,
  ``reset_clock`` and ``server_time`` (``tessera.testing.TesseraSandbox``).
- ``tessera_clock`` (function): the same sandbox, its clock put back on the system time after
  the test (use it in the tests that call ``advance_clock``).

The sandbox runs in a subprocess (``tessera sandbox --json``), started once per session (per
xdist worker), stopped at the end. This module imports nothing of tessera's server, nor the
sandbox helpers, until a test asks for the fixture: an SDK-only install loads it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tessera.testing.sandbox import TesseraSandbox


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tessera", "tessera sandbox")
    group.addoption(
        "--tessera-fixtures",
        dest="tessera_fixtures",
        default=None,
        help="fixtures file (TOML) of the tessera_sandbox fixture",
    )
    parser.addini("tessera_fixtures", "fixtures file (TOML) of the tessera_sandbox fixture (relative to rootdir)")
    parser.addini(
        "tessera_profiles", "profiles the tessera_sandbox serves: nexi axept mobilepay b2binpay all", type="args"
    )


@pytest.fixture(scope="session")
def tessera_sandbox(pytestconfig: pytest.Config) -> Iterator[TesseraSandbox]:
    from tessera.testing.sandbox import start_sandbox  # lazily: only when a test asks for it

    fixtures = pytestconfig.getoption("tessera_fixtures") or None
    if fixtures is None:
        ini = pytestconfig.getini("tessera_fixtures")
        fixtures = str(pytestconfig.rootpath / ini) if ini else None
    profiles = pytestconfig.getini("tessera_profiles") or ["all"]
    sandbox = start_sandbox(fixtures=fixtures, profiles=profiles)
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def tessera_clock(tessera_sandbox: TesseraSandbox) -> Iterator[TesseraSandbox]:
    try:
        yield tessera_sandbox
    finally:
        tessera_sandbox.reset_clock()
