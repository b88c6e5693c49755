"""tessera.core.flows.b2binpay in process: a real SQLite store and key ring, a fixed clock.

Every time of the answer comes from the core's clock, the clock the tokens' ``exp`` come
from; ``meta.sign`` is checked with an HMAC written here from the document's words."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from tessera.core import refresh as core_refresh
from tessera.core.context import Core, CoreConfig
from tessera.core.flows import b2binpay as flow
from tessera.core.keys import KeyRing
from tessera.core.models import Client
from tessera.core.profiles import NATIVE
from tessera.core.secrets import hash_secret
from tessera.errors import InvalidClient, InvalidGrant
from tessera.jose.jwt import verify_own_jwt
from tessera.storage.sql import SQLStore
from tests.support import migrated

ISSUER = "https://as.example"
KEK = b"k" * 32
PEPPER = b"p" * 32
LOGIN, PASSWORD = "b2b-login-1", "p4ssw0rd-p4ssw0rd-p4ssw0rd-p4ssw0rd"
T0 = 1_800_000_000.123456
NOW_DT = datetime.fromtimestamp(T0, tz=UTC)
LIFE = flow.Lifetimes(access_ttl=900, refresh_ttl=21600, family_max=30 * 86400)


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def env(tmp_path, _server_keys):
    store = SQLStore(migrated.sqlite_url(tmp_path / "b2b.db"))
    clock = Clock(T0)
    store.save_server_keys(list(_server_keys))  # made once per worker (tests/core/conftest.py)
    core = Core(config=CoreConfig(issuer=ISSUER), store=store, keys=KeyRing(store, KEK), pepper=PEPPER, clock=clock)
    store.create_client(Client(LOGIN, "B2B merchant", hash_secret(PASSWORD, PEPPER), created_at=int(T0) - 10))
    yield core, clock, store
    store.close()


def refresh_count(store) -> int:
    import sqlalchemy as sa

    from tessera.storage import schema

    a = schema.artifacts
    with store.engine.connect() as c:
        return c.execute(
            sa.select(sa.func.count()).select_from(a).where(a.c.kind == core_refresh.REFRESH_KIND)
        ).scalar()


def do_login(core) -> flow.B2BTokens:
    req = flow.LoginRequest(LOGIN, PASSWORD)
    auth = flow.authenticate(core, req)
    assert auth.method == "client_secret_post" and auth.client.client_id == LOGIN
    return flow.login(core, auth.client.client_id, req, LIFE)


def test_login_answer_times_and_sign_come_from_the_core_clock(env):
    core, _clock, _store = env
    out = do_login(core)
    assert out.time == "2027-01-15T08:00:00.123456Z"
    assert out.access_expired_at == "2027-01-15T08:15:00.123456Z"
    assert out.refresh_expired_at == "2027-01-15T14:00:00.123456Z"
    key = hashlib.sha256((LOGIN + PASSWORD).encode()).digest()
    assert out.sign == hmac.new(key, (out.time + out.refresh).encode(), hashlib.sha256).hexdigest()
    assert out.meta() == {"time": out.time, "sign": out.sign}
    attrs = out.data()["attributes"]
    assert out.data()["type"] == "auth-token" and out.data()["id"] == "0"
    assert attrs == {
        "refresh": out.refresh,
        "access": out.access,
        "access_expired_at": out.access_expired_at,
        "refresh_expired_at": out.refresh_expired_at,
        "is_2fa_confirmed": False,
    }
    claims = verify_own_jwt(out.access, core.keys.get(), typ="at+jwt", now=NOW_DT)
    assert claims["exp"] == int(T0) + 900 and claims["iat"] == int(T0)
    assert claims["prf"] == "b2binpay" and claims["client_id"] == LOGIN and claims["aud"] == ISSUER + "/b2binpay"


def test_refresh_rotates_with_times_of_its_own_moment_and_no_meta(env):
    core, clock, _store = env
    first = do_login(core)
    clock.t = T0 + 60.5
    out = flow.refresh_tokens(core, flow.RefreshRequest(first.refresh), LIFE)
    assert out.meta() is None and out.time is None and out.sign is None
    assert out.client_id == LOGIN and out.refresh != first.refresh
    assert out.access_expired_at == "2027-01-15T08:16:00.623456Z"
    assert out.refresh_expired_at == "2027-01-15T14:01:00.623456Z"
    # The used token is dead, and presenting it again revokes the family (the successor too).
    with pytest.raises(InvalidGrant):
        flow.refresh_tokens(core, flow.RefreshRequest(first.refresh), LIFE)
    with pytest.raises(InvalidGrant):
        flow.refresh_tokens(core, flow.RefreshRequest(out.refresh), LIFE)


def test_refresh_expired_at_says_when_a_shorter_family_ends(env):
    core, _clock, _store = env
    short = flow.Lifetimes(access_ttl=900, refresh_ttl=21600, family_max=3600)
    req = flow.LoginRequest(LOGIN, PASSWORD)
    out = flow.login(core, LOGIN, req, short)
    assert out.refresh_expired_at == "2027-01-15T09:00:00.000000Z"  # the family's end, a whole second
    claims = verify_own_jwt(out.refresh, core.keys.get(), typ="rt+jwt", now=NOW_DT)
    assert claims["exp"] == int(T0) + 3600


def test_wrong_password_unknown_login_and_a_client_without_post_are_refused(env):
    core, _clock, store = env
    with pytest.raises(InvalidClient) as e:
        flow.authenticate(core, flow.LoginRequest(LOGIN, PASSWORD + "x"))
    assert e.value.reason == "bad_client_credentials"
    with pytest.raises(InvalidClient) as e:
        flow.authenticate(core, flow.LoginRequest("nobody", PASSWORD))
    assert e.value.reason == "bad_client_credentials"
    store.create_client(Client("basic-only", "x", hash_secret(PASSWORD, PEPPER), auth_methods=("client_secret_basic",)))
    with pytest.raises(InvalidClient) as e:
        flow.authenticate(core, flow.LoginRequest("basic-only", PASSWORD))
    assert e.value.reason == "auth_method_not_allowed"


def test_a_native_refresh_token_is_refused_and_left_unused(env):
    core, _clock, store = env
    native = core_refresh.issue_refresh(core, profile=NATIVE, client_id=LOGIN, subject=LOGIN, scope="", ttl=3600)
    before = refresh_count(store)
    with pytest.raises(InvalidGrant):
        flow.refresh_tokens(core, flow.RefreshRequest(native.token), LIFE)
    assert refresh_count(store) == before
    assert store.get_artifact(core_refresh.REFRESH_KIND, native.jti).consumed_at is None
