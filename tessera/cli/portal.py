"""``tessera portal``: invitations to the portal (developers of an organisation, merchant users).

The link in an invitation is a secret that works once. With an SMTP server configured
(``TESSERA_SMTP_HOST``), it is mailed to the invitee and not printed; without one, the mail is
not sent (the log says so, without the link) and the link is printed here for the operator
to hand over by another channel."""

from __future__ import annotations

import sys
from typing import Annotated

import structlog
import typer

from tessera import admin as ops
from tessera import mail
from tessera.admin import developers
from tessera.cli.common import HomeOpt, JsonOpt, admin, emit, fail

app = typer.Typer(no_args_is_help=True, help="The portal: invite developers and merchant users.")


def _deliver(a: ops.Admin, inv: developers.Invitation, org: str | None) -> bool:
    msg = mail.invitation(a.settings, to=inv.email, link=inv.link, role=inv.role, org=org)
    try:
        return mail.send(a.settings, msg, kind="invitation")
    except mail.MailError as e:
        fail(f"{e}; the invitation stands: run the command again to send a new link")


def _emit(as_json: bool, inv: developers.Invitation, sent: bool) -> None:
    data: dict[str, object] = {"email": inv.email, "role": inv.role, "expires_at": inv.expires_at, "mailed": sent}
    if inv.org_id is not None:
        data["org_id"] = inv.org_id
    if inv.merchant_id is not None:
        data["merchant_id"] = inv.merchant_id
    if not sent:
        data["link"] = inv.link
    human = (
        f"invitation mailed to {inv.email}"
        if sent
        else f"no SMTP server configured: give {inv.email} this link (it works once):\n{inv.link}"
    )
    emit(as_json, data, human)


@app.callback()
def _logging() -> None:
    """The mail module's log lines go to stderr: stdout is the command's own output (``--json``)."""
    if not structlog.is_configured():
        structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))  # the stderr of now


@app.command("invite")
def invite(
    email: Annotated[str, typer.Option(help="the invitee's e-mail address")],
    org: Annotated[str | None, typer.Option(help="the developer's organisation (tessera orgs create)")] = None,
    merchant: Annotated[int | None, typer.Option(help="instead of --org: a merchant user of this merchant")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Invite a developer of an organisation (--org), or a merchant user to set a password (--merchant)."""
    if (org is None) == (merchant is None):
        fail("give exactly one of --org (a developer) or --merchant (a merchant user)", 2)
    with admin(home) as a:
        if org is not None:
            inv = developers.invite_developer(a, email, org)
            sent = _deliver(a, inv, ops.get_organisation(a, org).name)
        else:
            assert merchant is not None
            inv = developers.invite_merchant_user(a, email, merchant)
            sent = _deliver(a, inv, None)
    _emit(as_json, inv, sent)


@app.command("developers")
def list_developers(
    org: Annotated[str, typer.Option(help="the organisation")], home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """The organisation's developer accounts and their status."""
    with admin(home) as a:
        devs = developers.list_developers(a, org)
    rows = [{"email": d.email, "status": d.status, "created_at": d.created_at} for d in devs]
    emit(as_json, {"org_id": org, "developers": rows}, "\n".join(f"{d.email}  {d.status}" for d in devs) or "none")


@app.command("disable")
def disable(
    email: Annotated[str, typer.Option(help="the developer's e-mail address")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Disable a developer account: its sessions end at their next request, its sign-ins fail."""
    with admin(home) as a:
        dev = developers.disable_developer(a, email)
    emit(as_json, {"email": dev.email, "org_id": dev.org_id, "status": dev.status}, f"{dev.email} is disabled")
