"""``copy_home`` (tests/support/live.py): the live servers' SQLite homes are copies of one
``init_home`` per worker, each with its own port and issuer, and the template is made once per
``TESSERA_*`` environment."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tessera.config import Settings
from tests.support import live


def test_each_copy_has_its_port_and_issuer_and_the_template_is_made_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Path] = []
    real = live.init_home

    def counting(home: Path, **kw: object) -> Settings:
        made.append(home)
        return real(home, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(live, "init_home", counting)
    monkeypatch.setattr(live, "_HOME_TEMPLATES", {})
    monkeypatch.setenv("TESSERA_COPY_HOME_TEST", "1")  # an environment of its own: a template of its own

    live.copy_home(tmp_path / "a", 41001)
    live.copy_home(tmp_path / "b", 41002)
    assert len(made) == 1 and made[0] not in (tmp_path / "a", tmp_path / "b")

    a, b = Settings.load(tmp_path / "a"), Settings.load(tmp_path / "b")
    assert (a.port, a.issuer) == (41001, "https://localhost:41001")
    assert (b.port, b.issuer) == (41002, "https://localhost:41002")
    # the secrets keep init_home's modes
    assert stat.S_IMODE((tmp_path / "a" / "secrets").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "secrets" / "kek").stat().st_mode) == 0o600

    monkeypatch.setenv("TESSERA_COPY_HOME_TEST", "2")  # another environment: another template
    live.copy_home(tmp_path / "c", 41003)
    assert len(made) == 2


def test_a_template_whose_lines_changed_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If init_home stopped writing the port and issuer lines that copy_home rewrites, the copy
    would serve the template's port and issuer: it fails instead."""
    monkeypatch.setattr(live, "_HOME_TEMPLATES", {})
    monkeypatch.setattr(live, "TEMPLATE_PORT", 1)
    live.copy_home(tmp_path / "a", 41001)
    monkeypatch.setattr(live, "TEMPLATE_PORT", 2)  # the lines copy_home looks for are not there
    template = next(iter(live._HOME_TEMPLATES.values()))
    monkeypatch.setattr(live, "_HOME_TEMPLATES", {live.template_key(): template})
    with pytest.raises(AssertionError, match="no longer writes the issuer and port lines"):
        live.copy_home(tmp_path / "b", 41002)
