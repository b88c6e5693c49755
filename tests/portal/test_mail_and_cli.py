"""``tessera portal invite`` and the mails: through a local SMTP sink (aiosmtpd on a free
loopback port) when an SMTP server is configured, and, without one, the link printed for
the operator while the log names the mail without its link."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tessera import mail
from tessera.admin import portal_apps
from tessera.cli import app
from tessera.config import Settings
from tests.portal.conftest import Sink


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("portal-cli")
    assert CliRunner().invoke(app, ["--home", str(home), "init"]).exit_code == 0
    assert (
        CliRunner().invoke(app, ["--home", str(home), "orgs", "create", "--name", "Acme", "--id", "acme"]).exit_code
        == 0
    )
    return home


def run(home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--home", str(home), *args], env=env)
    return result.exit_code, result.output


def test_invite_without_smtp_prints_the_link_and_logs_no_secret(home: Path, capsys: pytest.CaptureFixture[str]):
    code, out = run(home, "portal", "invite", "--email", "dev@acme.example", "--org", "acme", "--json")
    assert code == 0, out
    data = json.loads(out.splitlines()[-1])
    assert data["mailed"] is False and data["org_id"] == "acme"
    assert data["link"].startswith("https://localhost:8443/portal/invitation/")
    token = data["link"].rsplit("/", 1)[1]
    logged = capsys.readouterr()
    assert "mail_not_sent" in logged.out + logged.err + out
    assert token not in logged.out + logged.err  # the log never holds the link
    code, out = run(home, "portal", "developers", "--org", "acme", "--json")
    assert json.loads(out)["developers"][0]["status"] == "invited"


def test_invite_refusals(home: Path):
    assert run(home, "portal", "invite", "--email", "x@acme.example")[0] == 2
    code, out = run(home, "portal", "invite", "--email", "x@acme.example", "--org", "nope")
    assert code == 1 and "no organisation nope" in out
    code, out = run(home, "portal", "invite", "--email", "not-an-email", "--org", "acme")
    assert code == 1 and "e-mail" in out


def test_invite_with_smtp_mails_the_link(home: Path, smtp: tuple[Sink, int]):
    sink, port = smtp
    env = {
        "TESSERA_SMTP_HOST": "127.0.0.1",
        "TESSERA_SMTP_PORT": str(port),
        "TESSERA_SMTP_STARTTLS": "false",
        "TESSERA_SMTP_FROM": "portal@tessera.test",
    }
    before = len(sink.messages)
    code, out = run(home, "portal", "invite", "--email", "mailed@acme.example", "--org", "acme", "--json", env=env)
    assert code == 0, out
    data = json.loads(out.splitlines()[-1])
    assert data["mailed"] is True and "link" not in data
    msg = sink.messages[before]
    assert msg["To"] == "mailed@acme.example" and msg["From"] == "portal@tessera.test"
    body = msg.get_content()
    assert "https://localhost:8443/portal/invitation/" in body and "authenticator" in body
    code, out = run(home, "portal", "invite", "--email", "m@shop.example", "--merchant", "1", env=env)
    assert code == 1 and "no merchant 1" in out


def test_the_certificate_mail_carries_the_p7b(home: Path, smtp: tuple[Sink, int], tmp_path: Path):
    sink, port = smtp
    settings = Settings.load(home, smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=False)
    from tessera.ca import CertificateAuthority

    ca = CertificateAuthority.generate()
    subprocess.run(
        ["openssl", "req", "-nodes", "-newkey", "rsa:2048", "-keyout", str(tmp_path / "k"), "-out", str(tmp_path / "c"),
         "-subj", "/CN=NOMEAPP/O=NEXI/C=IT", "-addext", "extendedKeyUsage=clientAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    issued = ca.sign_csr((tmp_path / "c").read_bytes(), validity_days=30)
    before = len(sink.messages)
    msg = mail.certificate(settings, to="dev@acme.example", client_id="app1", serial=issued.serial, p7b=issued.p7b)
    assert mail.send(settings, msg, kind="certificate") is True
    got = sink.messages[before]
    attachments = list(got.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["app1.p7b"]
    p7b = attachments[0].get_content()
    p7b = p7b if isinstance(p7b, bytes) else p7b.encode()
    (tmp_path / "cert.p7b").write_bytes(p7b)
    out = subprocess.run(
        ["openssl", "pkcs7", "-print_certs", "-in", str(tmp_path / "cert.p7b")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "subject=" in out and "NOMEAPP" in out
    assert "-----BEGIN PKCS7-----" in got.get_body(("plain",)).get_content()
    assert portal_apps.P7B_TO_PEM in got.get_body(("plain",)).get_content().replace("app1", "cert")


def test_an_unreachable_smtp_server_is_one_error(home: Path):
    from tests.portal.conftest import free_port

    settings = Settings.load(home, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_starttls=False, smtp_timeout=2)
    msg = mail.invitation(
        settings, to="x@acme.example", link="https://x/portal/invitation/SECRET", role="developer", org="Acme"
    )
    with pytest.raises(mail.MailError) as e:
        mail.send(settings, msg, kind="invitation")
    assert "SECRET" not in str(e.value)


def test_a_disabled_developer(home: Path):
    assert run(home, "portal", "invite", "--email", "gone@acme.example", "--org", "acme")[0] == 0
    code, out = run(home, "portal", "disable", "--email", "gone@acme.example", "--json")
    assert code == 0 and json.loads(out)["status"] == "disabled"
    code, out = run(home, "portal", "invite", "--email", "gone@acme.example", "--org", "acme")
    assert code == 1 and "disabled" in out  # not invited again behind the operator's back
    assert run(home, "portal", "disable", "--email", "nobody@acme.example")[0] == 1
