"""The authorization server's signing keys: fetched from its ``jwks_uri`` and kept
(:class:`JWKSCache`), or given as a JWK Set (:class:`StaticKeys`). Only public RSA, EC and
OKP signing keys are used."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from joserfc.jwk import import_key

from tessera.sdk._http import Verify, ssl_context
from tessera.sdk.resource.errors import JWKSUnavailable

__all__ = ["JWKSCache", "KeySource", "StaticKeys", "VerificationKey", "import_keys"]

MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True)
class VerificationKey:
    kid: str | None
    kty: str
    alg: str | None  # the JWK's own "alg", when it names one
    key: Any


def import_keys(jwks: Any) -> dict[str | None, VerificationKey]:
    """The usable signing keys of a JWK Set: public RSA/EC/OKP keys not marked for another
    use. Symmetric keys are never used (a public JWKS holding one is a mistake or an
    attack: HS256 with a published secret). Keys that do not parse are skipped."""
    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        raise ValueError("a JWK Set is an object with a keys array")
    keys: dict[str | None, VerificationKey] = {}
    for jwk in jwks["keys"]:
        if not isinstance(jwk, Mapping):
            continue
        kty = jwk.get("kty")
        if kty not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
            continue
        if any(m in jwk for m in ("d", "p", "q", "k")):
            continue  # private material has no business in a JWKS
        ops = jwk.get("key_ops")
        if isinstance(ops, list) and "verify" not in ops:
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        try:
            key = import_key(dict(jwk))
        except Exception:  # joserfc raises a variety of errors for a malformed key
            continue
        alg = jwk.get("alg") if isinstance(jwk.get("alg"), str) else None
        keys.setdefault(kid, VerificationKey(kid, kty, alg, key))
    return keys


class KeySource(Protocol):
    """Where a :class:`~tessera.sdk.resource.TokenVerifier` finds the key named by a token."""

    def get_key(self, kid: str | None) -> VerificationKey | None: ...

    def needs_fetch(self, kid: str | None) -> bool: ...


class JWKSCache:
    """The signing keys at ``jwks_uri``, fetched on first use and kept.

    - A key set older than ``max_age`` seconds is refetched when next used (if that
      fails, the old keys stay in use).
    - A token naming an unknown ``kid`` triggers a refetch, at most once per
      ``min_refetch_interval`` seconds (counted from the last fetch attempt); within the
      interval the ``kid`` is simply unknown.
    - Thread-safe: one fetch at a time; callers that waited for it use its result.

    ``verify``: as for the SDK clients (True, False, a CA file/directory, an SSLContext).
    ``fetches`` counts the fetch attempts."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        min_refetch_interval: float = 60.0,
        max_age: float = 300.0,
        verify: Verify = True,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_refetch_interval < 0 or max_age <= 0:
            raise ValueError("min_refetch_interval must be >= 0 and max_age > 0")
        self.jwks_uri = jwks_uri
        self.min_refetch_interval = float(min_refetch_interval)
        self.max_age = float(max_age)
        self.clock = clock
        self.fetches = 0
        self._http = httpx.Client(verify=ssl_context(verify), timeout=timeout, transport=transport)
        self._lock = threading.Lock()  # the state below
        self._fetch_lock = threading.Lock()  # one fetch at a time
        self._keys: dict[str | None, VerificationKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempt_at: float | None = None  # last attempt, successful or not
        self._fetching = False  # a fetch is under way

    def __repr__(self) -> str:
        return f"JWKSCache({self.jwks_uri!r}, keys={len(self._keys)})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> JWKSCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ lookups
    def get_key(self, kid: str | None) -> VerificationKey | None:
        """The key named ``kid`` (fetching or refetching as the rules allow), or None."""
        key, fetch = self._lookup(kid)
        if not fetch:
            return key
        with self._fetch_lock:
            key, fetch = self._lookup(kid)  # another thread may have fetched meanwhile
            if fetch:
                self._refetch()
                key, _ = self._lookup(kid, fetch_allowed=False)
        return key

    def needs_fetch(self, kid: str | None) -> bool:
        """Whether :meth:`get_key` would go to the network (asyncio callers then run it in
        a worker thread)."""
        return self._lookup(kid)[1]

    def keys(self) -> dict[str | None, VerificationKey]:
        with self._lock:
            return dict(self._keys)

    def _lookup(self, kid: str | None, *, fetch_allowed: bool = True) -> tuple[VerificationKey | None, bool]:
        """(the key, whether to fetch first). While a fetch runs, a caller that could use its
        result is told to fetch: it then waits for that fetch and uses its result."""
        now = self.clock()
        with self._lock:
            key = _find(self._keys, kid)
            if not fetch_allowed:
                return key, False
            if self._fetched_at is None:  # never fetched successfully
                if self._fetching:
                    return None, True
                if self._attempt_at is not None and now - self._attempt_at < min(self.min_refetch_interval, 5.0):
                    raise JWKSUnavailable("the authorization server's keys are unavailable", reason="jwks_unavailable")
                return None, True
            spaced = self._attempt_at is None or now - self._attempt_at >= self.min_refetch_interval
            if key is not None:
                return key, now - self._fetched_at >= self.max_age and spaced
            return None, spaced or self._fetching

    def _refetch(self) -> None:
        with self._lock:
            self._attempt_at = self.clock()
            self._fetching = True
            self.fetches += 1
        try:
            response = self._http.get(self.jwks_uri, headers={"Accept": "application/json"})
            if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
                raise ValueError(f"HTTP {response.status_code}")
            keys = import_keys(response.json())
        except (httpx.HTTPError, ValueError) as e:
            with self._lock:
                self._fetching = False
                have_keys = self._fetched_at is not None
            if not have_keys:
                raise JWKSUnavailable(
                    "the authorization server's keys are unavailable", reason="jwks_unavailable"
                ) from e
            return  # keep the keys we have
        except BaseException:
            with self._lock:
                self._fetching = False
            raise
        with self._lock:
            self._keys = keys
            self._fetched_at = self.clock()
            self._fetching = False


class StaticKeys:
    """A JWK Set given as a dict: no fetching."""

    def __init__(self, jwks: Mapping[str, Any]) -> None:
        self._keys = import_keys(jwks)

    def get_key(self, kid: str | None) -> VerificationKey | None:
        return _find(self._keys, kid)

    def needs_fetch(self, kid: str | None) -> bool:
        return False


def _find(keys: dict[str | None, VerificationKey], kid: str | None) -> VerificationKey | None:
    if kid is not None:
        return keys.get(kid)
    # A token without a kid: only unambiguous with a single key.
    return next(iter(keys.values())) if len(keys) == 1 else None
