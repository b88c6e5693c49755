"""Helpers of the token path made cheaper must answer exactly as before: the secrets' HMAC
(a keyed object copied per secret) and the key a successful attempt clears."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tessera.core import secrets
from tessera.core.ratelimit import Attempt


@pytest.mark.parametrize("secret", ["", "s" * 43, "é ✓ \u00ff", "x" * 5000])
def test_the_keyed_hmac_is_hmac_sha256(secret):
    for key in (b"k" * 32, b"other pepper", b"k" * 32):  # a key used again after another one
        expected = hmac.new(key, secret.encode("utf-8"), hashlib.sha256).hexdigest()
        assert secrets._hmac(secret, key) == expected
        assert secrets._hmac(secret, key) == expected  # the keyed object is not consumed by a use


def test_the_keyed_objects_stay_few():
    for i in range(40):
        secrets._hmac("s", bytes([i]) * 32)
    assert 0 < secrets._keyed.cache_info().currsize <= 16


@pytest.mark.parametrize(
    "attempt",
    [
        Attempt("10.0.0.1"),
        Attempt("10.0.0.1", "client:c1"),
        Attempt("2001:db8::1", "client:" + "c" * 300),
        Attempt("2001:db8::1", "user:ann", account=True),
        Attempt("::ffff:10.0.0.2", "axept:1:2"),
    ],
)
def test_the_cleared_key_is_the_first_key_of_a_credential(attempt):
    assert attempt.cleared == (attempt.keys[0] if attempt.credential is not None else None)
