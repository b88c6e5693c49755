"""The fixtures file: parsed, checked as a whole, every mistake one line naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from tessera.sandbox.defaults import DEFAULT_FIXTURES
from tessera.sandbox.fixtures import FixtureError, load_fixtures, parse_fixtures

REPO = Path(__file__).resolve().parents[2]

GOOD_APP = """
[[nexi.apps]]
client_id = "app-1"
client_secret = "secret-0123456789abcdef"
"""


def test_the_example_is_the_default_and_parses() -> None:
    assert (REPO / "examples" / "sandbox.toml").read_text() == DEFAULT_FIXTURES
    f = load_fixtures(REPO / "examples" / "sandbox.toml")
    assert f.client_ids() == ["softpos-demo-app", "mobilepay-integrator", "b2binpay-api-user"]
    assert [m.id for m in f.merchants] == [1001, 1002]
    assert f.merchants[0].axept_keys[0].key_id == 1


def refused(text: str) -> str:
    with pytest.raises(FixtureError) as e:
        parse_fixtures(text, source="f.toml")
    message = str(e.value)
    assert "\n" not in message and message.startswith("f.toml: ")
    return message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[[nexi.apps]]\nclient_id = 'a'\nclient_secret = 'secret-0123456789abc'\nclient_idd = 'x'\n",
            "client_idd: unknown field",
        ),
        ("[nexi]\nappz = []\n", "nexi.appz: unknown field"),
        (
            "[[merchants]]\nid = 1\nvat = 'SE12345678'\n",
            "merchants[0] (id 1).vat: must be DK or FI followed by 8 digits",
        ),
        ("[[merchants]]\nid = 1\nvat = 'DK1234567'\n", "must be DK or FI followed by 8 digits"),
        (GOOD_APP + GOOD_APP, "duplicate client id 'app-1'"),
        (
            GOOD_APP + "[[b2binpay.users]]\nlogin = 'app-1'\npassword = 'secret-0123456789abc'\n",
            "duplicate client id 'app-1'",
        ),
        ("[[merchants]]\nid = 1\n[[merchants]]\nid = 1\n", "duplicate merchant id '1'"),
        ("[[merchants]]\nid = 1\ngrants = ['ghost']\n", "grants: no app, client or login 'ghost'"),
        (
            "[[merchants]]\nid = 1\n[[merchants.axept_keys]]\nkey_id = 2\nkey = 'secret-0123456789abc'\n",
            "key ids must be 1, 2, 3",
        ),
        (
            "[[merchants]]\nid = 1\n[[merchants.users]]\nusername = 'bob'\npassword = 'long enough pw'\n",
            "must be an e-mail address",
        ),
        (
            "[[merchants]]\nid = 1\n[[merchants.users]]\nusername = 'bob@x.example'\npassword = 'short'\n",
            "merchants[0].users[0].password",
        ),
        (
            "[[nexi.apps]]\nclient_id = 'a'\nclient_secret = 'short'\n",
            "nexi.apps[0].client_secret: must have 16 to 256",
        ),
        (
            "[[nexi.apps]]\nclient_id = 'a:b'\nclient_secret = 'secret-0123456789abc'\n",
            "nexi.apps[0].client_id: must have 1 to 128",
        ),
        (GOOD_APP + "csr = 'a.csr'\nkey = 'a.key'\n", "give csr or key, not both"),
        ("[[merchants]]\nid = '1001'\n", "merchants[0].id"),
        ("[[merchants.points_of_sale]]\n", "merchants: Input should be a valid list"),
        (
            "[[merchants]]\nid = 1\n[[merchants.points_of_sale]]\nid = 'P'\nterminals = [{tid = 'T', kind = 'pos'}]\n",
            "kind",
        ),
        ("nexi = [", "not valid TOML"),
    ],
)
def test_mistakes_are_one_line(text: str, expected: str) -> None:
    assert expected in refused(text)


def test_secrets_are_not_echoed() -> None:
    message = refused("[[nexi.apps]]\nclient_id = 'a'\nclient_secret = 'has space 0123456789'\n")
    assert "has space" not in message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="cannot be read"):
        load_fixtures(tmp_path / "missing.toml")
