"""The CLI tells an admin error in its own words, on one line: the field named by its flag,
with the wording the command line always had."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera.admin import ConfirmationRequired, Invalid, NotFound
from tessera.cli import app
from tessera.cli.common import describe


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (Invalid("must be one of a, b (got 'c')", field="auth_methods"), "--auth-method must be one of a, b (got 'c')"),
        (
            Invalid("a redirect URI has no fragment", field="redirect_uris"),
            "--redirect-uri: a redirect URI has no fragment",
        ),
        (Invalid("must have at least 8 characters", field="password"), "the password must have at least 8 characters"),
        (Invalid("must be an e-mail address", field="username"), "--username must be an e-mail address"),
        (Invalid("must be softpos or mpos", field="kind"), "--kind must be softpos or mpos"),
        (NotFound("no merchant 7"), "no merchant 7"),
        (ConfirmationRequired("key 1 is merchant 7's last enabled key"), "key 1 is merchant 7's last enabled key"),
    ],
)
def test_admin_errors_in_the_cli_words(error: Invalid, line: str) -> None:
    assert describe(error) == line


def test_no_home_is_one_line_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path / "nowhere"), "clients", "list", "--json"])
    assert result.exit_code == 1
    out = " ".join(result.output.split())  # the console may wrap
    assert "error: no tessera home at" in out and "Traceback" not in out
    assert not (tmp_path / "nowhere").exists()


def test_flag_checks_before_the_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "jwks", "rotate", "--use", "wrap"])
    assert result.exit_code == 1 and "--use must be sig or enc" in result.output
