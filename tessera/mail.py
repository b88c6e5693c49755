"""E-mail: the portal's invitations and the signed certificates, through the configured SMTP
server (``TESSERA_SMTP_*``).

With no SMTP server configured (``smtp_host`` unset), a mail is not sent: one log line says
to whom, its subject and why, and nothing of its body (an invitation link is a secret: the
CLI and the portal show it to the operator instead, see docs/portal.md). A server that
cannot be reached, or refuses the mail, is ``MailError`` (one line, no secret).

The certificate mail follows the Nexi SoftPOS document: the signed certificate in
``.p7b`` form in the body of the mail (PKCS#7, PEM), also attached as ``<client_id>.p7b``,
with the provider's conversion command to PEM.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import structlog

from tessera.config import Settings

log = structlog.get_logger("tessera.mail")

P7B_TO_PEM = "openssl pkcs7 -print_certs -in {name}.p7b -out {name}.pem"


class MailError(Exception):
    """The SMTP server could not be reached or refused the mail (the message holds no secret)."""


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def send(settings: Settings, msg: EmailMessage, *, kind: str) -> bool:
    """Send ``msg``: True when handed to the SMTP server, False when none is configured (then
    logged without its body)."""
    if not settings.smtp_host:
        log.info("mail_not_sent", kind=kind, to=str(msg["To"]), subject=str(msg["Subject"]), reason="no_smtp_host")
        return False
    if msg["From"] is None:
        msg["From"] = settings.smtp_from
    if msg["Message-ID"] is None:
        msg["Message-ID"] = make_msgid(domain=settings.hostname)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        log.warning("mail_failed", kind=kind, to=str(msg["To"]), error_type=type(e).__name__)
        raise MailError(f"the mail to {msg['To']} could not be sent ({type(e).__name__})") from None
    log.info("mail_sent", kind=kind, to=str(msg["To"]), subject=str(msg["Subject"]))
    return True


def invitation(settings: Settings, *, to: str, link: str, role: str, org: str | None) -> EmailMessage:
    msg = EmailMessage()
    msg["To"] = to
    msg["From"] = settings.smtp_from
    who = f"a developer of {org}" if role == "developer" else "a merchant user"
    msg["Subject"] = f"Your invitation to the tessera portal ({settings.hostname})"
    steps = (
        "set your password and enrol an authenticator app (TOTP): you will need a code from it at every sign-in"
        if role == "developer"
        else "set your password"
    )
    msg.set_content(
        f"You are invited to the tessera portal of {settings.hostname} as {who}.\n\n"
        f"Open this link to {steps}:\n\n    {link}\n\n"
        "The link works once and expires in "
        f"{max(1, settings.portal_invitation_seconds // 3600)} hours. If you did not expect it, ignore this mail.\n"
    )
    return msg


def certificate(settings: Settings, *, to: str, client_id: str, serial: str, p7b: bytes) -> EmailMessage:
    """The signed developer certificate, as Nexi sends it: ``.p7b`` in the body, and attached."""
    msg = EmailMessage()
    msg["To"] = to
    msg["From"] = settings.smtp_from
    msg["Subject"] = f"Your signed certificate for app {client_id} (serial {serial})"
    name = client_id
    msg.set_content(
        f"The certificate for your app {client_id} is signed (serial {serial}).\n\n"
        "It is below and attached in .p7b form (PKCS#7). Convert it to PEM with:\n\n"
        f"    {P7B_TO_PEM.format(name=name)}\n\n" + p7b.decode("ascii")
    )
    msg.add_attachment(p7b, maintype="application", subtype="x-pkcs7-certificates", filename=f"{name}.p7b")
    return msg
