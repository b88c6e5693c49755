"""``tessera keys`` (axept authentication keys) through the real CLI, checked on the wire.

A key's value is printed once by ``keys create`` and stored only as an HMAC; at most three
keys per merchant are enabled; disabling the last enabled key needs ``--yes``; a disabled key
is refused from the next request on. Two refusals that are rules of the admin layer the command
calls (an unknown merchant, an unknown key) are checked in process, in the words it prints.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tessera.core import apikeys
from tessera.core.models import Merchant
from tessera.core.ports import Conflict
from tessera.home import open_store
from tessera.storage import schema
from tests.support.live import LiveServer

pytestmark = pytest.mark.slow

PATH = "/axept/v1/authenticate"
_addresses = itertools.count(1)


def fresh_address() -> str:
    n = next(_addresses)
    return f"127.22.{n // 250}.{n % 250 + 1}"


def authenticate(server: LiveServer, merchant_id: int, key_id: int, key: str) -> httpx.Response:
    transport = httpx.HTTPTransport(verify=server.ssl_context(), local_address=fresh_address())
    with httpx.Client(base_url=f"https://localhost:{server.port}", transport=transport, timeout=15) as c:
        return c.post(PATH, json={"merchantId": merchant_id, "keyId": key_id, "key": key})


def assert_works(server: LiveServer, merchant_id: int, key_id: int, key: str) -> None:
    r = authenticate(server, merchant_id, key_id, key)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"token", "expiresAt"}
    assert r.headers["cache-control"] == "no-store"


def assert_refused(server: LiveServer, merchant_id: int, key_id: int, key: str) -> None:
    r = authenticate(server, merchant_id, key_id, key)
    assert r.status_code == 401, r.text
    assert r.json() == {"status": 401, "error": "Unauthorized", "message": r.json()["message"]}
    assert r.headers["cache-control"] == "no-store"


def cli_fail(server: LiveServer, *args: str) -> tuple[str, str]:
    """Run a CLI command that must fail: non-zero exit, nothing on stdout; returns (stdout, stderr)."""
    p = server.cli(*args, "--json", check=False)
    assert p.returncode != 0, (p.stdout, p.stderr)
    assert p.stdout.strip() == "", p.stdout
    return p.stdout, " ".join(p.stderr.split())


def store_merchant(server: LiveServer) -> int:
    mid = secrets.randbelow(10**9) + 1
    server.store.create_merchant(Merchant(mid, f"Shop {mid}", None, int(time.time())))
    return mid


def store_key(server: LiveServer, mid: int) -> tuple[int, str]:
    record, value = apikeys.create_key(
        server.store, server.settings.pepper_bytes(), mid, int(time.time()), max_enabled=3
    )
    return record.key_id, value


def enabled(server: LiveServer, mid: int) -> dict[int, bool]:
    return {k.key_id: k.enabled for k in server.store.list_api_keys(mid)}


# --- create, list, storage ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def three(live_server) -> dict:
    """A merchant with three keys made with ``keys create``."""
    mid = store_merchant(live_server)
    created = [live_server.cli_json("keys", "create", "--merchant-id", str(mid)) for _ in range(3)]
    return {"merchant_id": mid, "keys": created}


def test_create_prints_merchant_key_id_and_key(live_server, three):
    mid = three["merchant_id"]
    for i, out in enumerate(three["keys"], start=1):
        assert set(out) == {"merchantId", "keyId", "key"}
        assert out["merchantId"] == mid and out["keyId"] == i
        # At least 256 bits from the server's generator, in a JSON- and header-safe alphabet.
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", out["key"]), out["key"]
    assert len({out["key"] for out in three["keys"]}) == 3
    for out in three["keys"]:
        assert_works(live_server, mid, out["keyId"], out["key"])


def test_fourth_enabled_key_is_refused(live_server, three):
    mid = three["merchant_id"]
    _, err = cli_fail(live_server, "keys", "create", "--merchant-id", str(mid))
    assert "3 enabled keys" in err and "disable one first" in err, err
    assert enabled(live_server, mid) == {1: True, 2: True, 3: True}


def test_list_never_shows_the_value(live_server, three):
    mid = three["merchant_id"]
    human = live_server.cli("keys", "list", "--merchant-id", str(mid)).stdout
    as_json = live_server.cli_json("keys", "list", "--merchant-id", str(mid))
    assert as_json["merchantId"] == mid
    assert [k["keyId"] for k in as_json["keys"]] == [1, 2, 3]
    assert all(k["enabled"] is True and k["disabled_at"] is None for k in as_json["keys"])
    assert all(set(k) == {"keyId", "enabled", "created_at", "disabled_at"} for k in as_json["keys"])
    assert "key 1: enabled" in human
    stored = {k.key_hash for k in live_server.store.list_api_keys(mid)}
    for out in three["keys"]:
        assert out["key"] not in human and out["key"] not in json.dumps(as_json)
        for h in stored:  # nor the stored hash
            assert h not in human and h not in json.dumps(as_json)


def _key_forms(value: str) -> list[bytes]:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    return [value.encode(), raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]


def test_database_holds_no_clear_key(live_server, three):
    mid = three["merchant_id"]
    with live_server.store.engine.connect() as c:
        rows = c.execute(sa.select(schema.api_keys).where(schema.api_keys.c.merchant_id == mid)).mappings().all()
    assert len(rows) == 3
    for out, row in zip(three["keys"], rows, strict=True):
        text = json.dumps({k: str(v) for k, v in row.items()})
        assert out["key"] not in text
        assert re.fullmatch(r"[0-9a-f]{64}", row["key_hash"]), row["key_hash"]  # HMAC-SHA256, hex
    url = live_server.settings.database_url
    assert url.startswith("sqlite:///")
    db = Path(url.removeprefix("sqlite:///"))
    files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
    assert db in files
    blob = b"".join(p.read_bytes() for p in files)
    hashes = [row["key_hash"].encode() for row in rows]
    assert all(h in blob for h in hashes)  # the scan does see where the rows live (db or WAL)
    for out in three["keys"]:
        for form in _key_forms(out["key"]):
            assert form not in blob, form


def refused_in_process(server: LiveServer, call) -> str:
    """A refusal of the admin layer ``keys`` calls, in the words the CLI prints (``cli_fail``
    above runs the command's refusals as a process; these rules need no process of their own)."""
    from tessera.admin.errors import AdminError
    from tessera.cli.common import describe
    from tests.support.admin import admin_of

    with admin_of(server) as a, pytest.raises(AdminError) as refused:
        call(a)
    return describe(refused.value)


def test_create_for_an_unknown_merchant_fails(live_server):
    from tessera.admin.apikeys import create_key

    mid = secrets.randbelow(10**9) + 10**9
    assert "no merchant" in refused_in_process(live_server, lambda a: create_key(a, mid))
    assert live_server.store.list_api_keys(mid) == []


def test_concurrent_creates_never_exceed_three(live_server):
    """Eight creators at once (as eight ``keys create`` would be) on the server's database."""
    mid = store_merchant(live_server)
    pepper = live_server.settings.pepper_bytes()
    barrier = threading.Barrier(8)

    def create(_):
        store = open_store(live_server.settings)  # its own engine and connections, like a CLI process
        try:
            barrier.wait()
            return apikeys.create_key(store, pepper, mid, int(time.time()), max_enabled=3)[0].key_id
        except Conflict as e:
            return str(e)
        finally:
            store.close()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(create, range(8)))
    assert sorted(r for r in results if isinstance(r, int)) == [1, 2, 3], results
    assert all("3 enabled keys" in r for r in results if isinstance(r, str))
    assert enabled(live_server, mid) == {1: True, 2: True, 3: True}


# --- disable / enable ------------------------------------------------------------------------------------------
def test_disabling_the_last_key_needs_yes_and_takes_effect_on_the_next_request(live_server):
    mid = store_merchant(live_server)
    kid, key = store_key(live_server, mid)

    _, err = cli_fail(live_server, "keys", "disable", "--merchant-id", str(mid), "--key-id", str(kid))
    assert "last enabled key" in err and "--yes" in err, err
    assert enabled(live_server, mid) == {kid: True}
    assert_works(live_server, mid, kid, key)  # it keeps working

    assert live_server.cli_json("keys", "disable", "--merchant-id", str(mid), "--key-id", str(kid), "--yes") == {
        "merchantId": mid,
        "keyId": kid,
        "enabled": False,
    }
    assert_refused(live_server, mid, kid, key)  # the very next request
    (row,) = live_server.store.list_api_keys(mid)
    assert row.enabled is False and row.disabled_at is not None

    assert live_server.cli_json("keys", "enable", "--merchant-id", str(mid), "--key-id", str(kid)) == {
        "merchantId": mid,
        "keyId": kid,
        "enabled": True,
    }
    assert_works(live_server, mid, kid, key)
    (row,) = live_server.store.list_api_keys(mid)
    assert row.enabled is True and row.disabled_at is None


def test_disabling_a_key_that_is_not_the_last_needs_no_confirmation(live_server):
    mid = store_merchant(live_server)
    k1, v1 = store_key(live_server, mid)
    k2, v2 = store_key(live_server, mid)
    assert_works(live_server, mid, k1, v1)
    assert live_server.cli_json("keys", "disable", "--merchant-id", str(mid), "--key-id", str(k1))["enabled"] is False
    assert_refused(live_server, mid, k1, v1)
    assert_works(live_server, mid, k2, v2)


def test_disabled_keys_do_not_count_and_enabling_a_fourth_is_refused(live_server):
    mid = store_merchant(live_server)
    keys = [store_key(live_server, mid) for _ in range(3)]
    live_server.store.set_api_key_enabled(mid, keys[0][0], False, int(time.time()), max_enabled=3)
    out = live_server.cli_json("keys", "create", "--merchant-id", str(mid))  # two enabled + this one: allowed
    assert out["keyId"] == 4
    assert enabled(live_server, mid) == {1: False, 2: True, 3: True, 4: True}

    _, err = cli_fail(live_server, "keys", "enable", "--merchant-id", str(mid), "--key-id", "1")
    assert "3 enabled keys" in err, err
    assert enabled(live_server, mid) == {1: False, 2: True, 3: True, 4: True}
    assert_refused(live_server, mid, *keys[0])
    assert_works(live_server, mid, 4, out["key"])


def test_disable_an_unknown_key_fails(live_server):
    mid = store_merchant(live_server)
    store_key(live_server, mid)
    from tessera.admin.apikeys import disable_key

    assert "no key 9" in refused_in_process(live_server, lambda a: disable_key(a, mid, 9, confirm_last=True))
    assert enabled(live_server, mid) == {1: True}
