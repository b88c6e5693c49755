"""Fixtures shared by the web tests."""

from tests.support.redis_server import redis_server  # noqa: F401 - a fixture (a throwaway Redis per module)
from tests.web.test_tls import pki  # noqa: F401 - a fixture (the test CA, server and client certificates)
