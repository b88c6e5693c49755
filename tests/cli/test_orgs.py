"""``tessera orgs`` and ``tessera clients create/list --org`` on a real home, in process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.cli import app


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("orgs-home")
    result = CliRunner().invoke(app, ["--home", str(home), "init"])
    assert result.exit_code == 0, result.output
    return home


def run(home: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.output


def test_orgs_own_the_apps_registered_for_them(home: Path) -> None:
    code, out = run(home, "orgs", "create", "--name", "Acme POS", "--id", "acme", "--json")
    assert code == 0 and json.loads(out) == {"org_id": "acme", "name": "Acme POS"}
    code, out = run(home, "orgs", "list", "--json")
    assert [o["org_id"] for o in json.loads(out)["organisations"]] == ["acme"]
    code, out = run(home, "clients", "create", "--name", "acme app", "--org", "acme", "--json")
    assert code == 0
    acme_app = json.loads(out)["client_id"]
    code, out = run(home, "clients", "create", "--name", "platform app", "--json")
    platform_app = json.loads(out)["client_id"]
    code, out = run(home, "clients", "list", "--org", "acme", "--json")
    assert [(c["client_id"], c["org_id"]) for c in json.loads(out)["clients"]] == [(acme_app, "acme")]
    code, out = run(home, "clients", "list", "--json")
    assert {c["client_id"] for c in json.loads(out)["clients"]} == {acme_app, platform_app}


def test_refusals_are_one_line(home: Path) -> None:
    code, out = run(home, "orgs", "create", "--name", "Acme", "--id", "Bad_Id")
    assert code != 0 and "Traceback" not in out and "--org must be" in " ".join(out.split())
    code, out = run(home, "clients", "create", "--name", "x", "--org", "nope")
    assert code != 0 and "no organisation nope" in " ".join(out.split())
