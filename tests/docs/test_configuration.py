"""docs/configuration.md lists every setting, under its environment variable name."""

from tessera.config import Settings
from tests.support.live import REPO


def test_every_setting_is_documented():
    text = (REPO / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"TESSERA_{name.upper()}" not in text]
    assert not missing, f"undocumented settings: {missing}"


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    (tmp_path / "tessera.toml").write_text('port = 9001\nissuer = "https://auth.example"\n')
    monkeypatch.setenv("TESSERA_PORT", "9002")
    s = Settings.load(tmp_path)
    assert s.port == 9002 and s.issuer == "https://auth.example"
    assert Settings.load(tmp_path, port=9003).port == 9003


def test_bad_values_are_refused(tmp_path, monkeypatch):
    import pytest

    from tessera.config import ConfigError

    monkeypatch.setenv("TESSERA_KEK", "dG9vLXNob3J0")
    with pytest.raises(ConfigError, match="32 bytes") as e:
        Settings.load(tmp_path)
    assert "dG9v" not in str(e.value)  # never a character of the secret
    monkeypatch.delenv("TESSERA_KEK")
    (tmp_path / "tessera.toml").write_text('environment = "prod"\n')
    with pytest.raises(ConfigError, match="TESSERA_ENVIRONMENT"):
        Settings.load(tmp_path)
