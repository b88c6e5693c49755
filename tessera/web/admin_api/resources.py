"""The admin API's resources: each operation a function of a ``Call`` (the operator, the
``Admin`` acting as it, the path and query parameters, the parsed body) that returns an
``Answer``, and calls the admin layer only. The table ``OPERATIONS`` is the one list of
routes: the router and the OpenAPI document are both made from it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import QueryParams

from tessera import admin as ops
from tessera import mail
from tessera.admin import Admin, Invalid, NotFound, developers
from tessera.admin.apikeys import KeyInfo
from tessera.admin.certificates import CertificateInfo, find_certificate
from tessera.admin.certificates import certificate_p7b as p7b_of
from tessera.admin.clients import DEFAULT_AUTH_METHODS, ClientInfo
from tessera.admin.delivery import credentials_zip
from tessera.admin.developers import invite_merchant_user
from tessera.admin.merchants import (
    GrantedApp,
    MerchantUserInfo,
    list_merchants,
    points_of_sale,
    terminals_of,
    users_of,
)
from tessera.admin.records import events_page
from tessera.core.models import SecurityEvent, Terminal
from tessera.web.admin_api import bodies as b
from tessera.web.admin_api.auth import Operator
from tessera.web.admin_api.http import Page, check_if_match, encode_cursor, etag_of, paginate, query_int, query_str
from tessera.web.admin_api.problems import Problem, validation

PREFIX = "/admin/v1"

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
#: Each app profile's default methods and grants (``bodies.CreateApp.profile``).
PROFILE_DEFAULTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "native": (DEFAULT_AUTH_METHODS, ("client_credentials", "authorization_code")),
    "nexi-softpos": (SECRET_METHODS + ("tls_client_auth",), ("client_credentials", "authorization_code")),
    "mobilepay": (SECRET_METHODS, ("client_credentials",)),
    "b2binpay": (SECRET_METHODS, ("client_credentials",)),
}


@dataclass
class Call:
    admin: Admin
    operator: Operator
    params: dict[str, Any]
    query: QueryParams
    body: Any
    if_match: str | None
    path: str


@dataclass
class Answer:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    #: None: JSON; else ``body`` is bytes of this media type
    media_type: str | None = None


# --- representations ----------------------------------------------------------------------------------------


def app_json(c: ClientInfo, overlap_until: int | None = None) -> dict[str, Any]:
    return {
        "client_id": c.client_id,
        "name": c.name,
        "status": c.status,
        "redirect_uris": list(c.redirect_uris),
        "scope": c.scope,
        "auth_methods": list(c.auth_methods),
        "grant_types": list(c.grant_types),
        "require_par": c.require_par,
        "org_id": c.org_id,
        "created_at": c.created_at,
        "previous_secret_valid_until": overlap_until,
    }


def cert_json(c: CertificateInfo) -> dict[str, Any]:
    return {
        "serial": c.serial,
        "client_id": c.client_id,
        "subject": c.subject,
        "thumbprint": c.thumbprint,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "revoked_at": c.revoked_at,
    }


def merchant_json(m: ops.MerchantInfo) -> dict[str, Any]:
    return {"merchant_id": m.merchant_id, "name": m.name, "vat": m.vat, "created_at": m.created_at}


def terminal_json(t: Terminal) -> dict[str, Any]:
    return {"tid": t.tid, "merchant_id": t.merchant_id, "pos": t.pos, "kind": t.kind}


def user_json(u: MerchantUserInfo) -> dict[str, Any]:
    return {"merchant_id": u.merchant_id, "username": u.username, "password_set": u.password_set}


def grant_json(g: GrantedApp) -> dict[str, Any]:
    return {"merchant_id": g.merchant_id, "client_id": g.client_id, "granted_at": g.granted_at}


def key_json(k: KeyInfo) -> dict[str, Any]:
    return {
        "merchantId": k.merchant_id,
        "keyId": k.key_id,
        "enabled": k.enabled,
        "created_at": k.created_at,
        "disabled_at": k.disabled_at,
    }


def event_json(e: SecurityEvent) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "client_id": e.client_id, "detail": e.detail, "created_at": e.created_at}


def org_json(o: ops.OrganisationInfo) -> dict[str, Any]:
    return {"org_id": o.org_id, "name": o.name, "created_at": o.created_at}


def listing(call: Call, items: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> Answer:
    page = paginate(items, key, Page.of(call.query))
    return Answer(page, headers=_link(call, page["next"]))


def _link(call: Call, next_cursor: str | None) -> dict[str, str]:
    from tessera.web.admin_api.http import link_header

    return link_header(call.path, call.query, next_cursor)


# --- apps --------------------------------------------------------------------------------------------------


def _app(call: Call, client_id: str) -> ClientInfo:
    """The app, if this operator may see it; else 404 (another organisation's app does not exist for it)."""
    try:
        info = ops.get_client(call.admin, client_id)
    except NotFound:
        info = None
    if info is None or not call.operator.may_see(info.org_id):
        raise Problem(404, "not_found", f"no app {client_id[:64]}")
    return info


def _app_answer(call: Call, info: ClientInfo, status: int = 200, **extra: Any) -> Answer:
    rep = app_json(info, ops.secret_overlap_until(call.admin, info.client_id))
    headers = {"ETag": etag_of(rep)}
    if status == 201:
        headers["Location"] = f"{PREFIX}/apps/{info.client_id}"
    return Answer({**rep, **extra}, status, headers)


def create_app(call: Call) -> Answer:
    body: b.CreateApp = call.body
    org_id = body.org_id
    if not call.operator.platform:
        if org_id not in (None, call.operator.org_id):
            raise Problem(403, "forbidden", "an organisation's operator creates apps for its own organisation only")
        org_id = call.operator.org_id
    methods, grants = PROFILE_DEFAULTS[body.profile]
    registered = ops.register_client(
        call.admin,
        ops.RegisterClient(
            name=body.name,
            redirect_uris=tuple(body.redirect_uris),
            scope=body.scope,
            auth_methods=tuple(body.auth_methods) if body.auth_methods else methods,
            grant_types=tuple(body.grant_types) if body.grant_types else grants,
            require_par=body.require_par,
            jwks=body.jwks,
            org_id=org_id,
        ),
    )
    info = ops.get_client(call.admin, registered.client_id)
    if body.delivery == "zip" and registered.client_secret is not None:
        archive, password = credentials_zip(registered.client_id, registered.client_secret)
        return _app_answer(
            call, info, 201, credentials_zip=base64.b64encode(archive).decode("ascii"), zip_password=password
        )
    return _app_answer(call, info, 201, client_secret=registered.client_secret)


def list_apps(call: Call) -> Answer:
    org = query_str(call.query, "org_id", max_length=64)
    if not call.operator.platform:
        if org not in (None, call.operator.org_id):
            raise Problem(403, "forbidden", "an organisation's operator lists its own organisation's apps only")
        org = call.operator.org_id
    infos = {c.client_id: c for c in ops.list_clients(call.admin, org)}
    answer = listing(call, [{"client_id": cid} for cid in infos], lambda a: str(a["client_id"]))
    answer.body["items"] = [  # the page's apps in full, each with its secret's overlap
        app_json(infos[a["client_id"]], ops.secret_overlap_until(call.admin, a["client_id"]))
        for a in answer.body["items"]
    ]
    return answer


def get_app(call: Call) -> Answer:
    return _app_answer(call, _app(call, call.params["client_id"]))


def update_app(call: Call) -> Answer:
    body: b.UpdateApp = call.body
    current = _app(call, call.params["client_id"])
    if body.name is None and body.redirect_uris is None:
        raise validation([_err("name", "give name and/or redirect_uris")])

    def if_match(read: ClientInfo) -> None:  # the app as the store gives it, just before the write
        check_if_match(call.if_match, etag_of(app_json(read, ops.secret_overlap_until(call.admin, read.client_id))))

    uris = tuple(body.redirect_uris) if body.redirect_uris is not None else None
    info = ops.update_client(
        call.admin, current.client_id, ops.UpdateClient(name=body.name, redirect_uris=uris), check=if_match
    )
    return _app_answer(call, info)


def rotate_app_secret(call: Call) -> Answer:
    body: b.RotateSecret = call.body
    app = _app(call, call.params["client_id"])
    rotated = ops.rotate_secret(call.admin, app.client_id, body.overlap)
    return Answer(
        {
            "client_id": rotated.client_id,
            "client_secret": rotated.client_secret,
            "previous_valid_until": rotated.previous_valid_until,
        },
        201,
    )


def revoke_app(call: Call) -> Answer:
    app = _app(call, call.params["client_id"])
    return _app_answer(call, ops.revoke_client(call.admin, app.client_id))


# --- certificates ------------------------------------------------------------------------------------------


def sign_certificate(call: Call) -> Answer:
    app = _app(call, call.params["client_id"])
    try:
        signed = ops.sign_certificate(call.admin, ops.SignCertificate(app.client_id, call.body))
    except Invalid as e:  # the CA's refusal, with its reason
        raise Problem(400, "csr_refused", e.message) from None
    return Answer(
        {
            "serial": signed.serial,
            "client_id": signed.client_id,
            "subject": signed.subject,
            "thumbprint": signed.thumbprint,
            "not_after": int(signed.not_after.timestamp()),
            "certificate": signed.pem.decode(),
        },
        201,
        {"Location": f"{PREFIX}/certificates/{signed.serial}.pem"},
    )


def list_app_certificates(call: Call) -> Answer:
    app = _app(call, call.params["client_id"])
    certs = [cert_json(c) for c in ops.list_certificates(call.admin, app.client_id)]
    return listing(call, certs, lambda c: str(c["serial"]))


def _certificate(call: Call, serial: str) -> CertificateInfo:
    try:
        cert = find_certificate(call.admin, serial)
        _app(call, cert.client_id)
    except (NotFound, Problem):
        raise Problem(404, "not_found", f"no certificate with serial {serial[:66]}") from None
    return cert


def revoke_app_certificate(call: Call) -> Answer:
    app = _app(call, call.params["client_id"])
    cert = _certificate(call, call.params["serial"])
    if cert.client_id != app.client_id:
        raise Problem(404, "not_found", f"app {app.client_id} has no certificate {call.params['serial'][:66]}")
    return Answer(cert_json(ops.revoke_certificate(call.admin, cert.serial)))


def certificate_pem(call: Call) -> Answer:
    cert = _certificate(call, call.params["serial"])
    return Answer(cert.pem.encode(), media_type="application/x-pem-file")


def certificate_p7b(call: Call) -> Answer:
    cert = _certificate(call, call.params["serial"])
    encoding = query_str(call.query, "encoding", max_length=3) or "pem"
    if encoding not in ("pem", "der"):
        raise validation([_err("encoding", "must be pem or der")])
    der = encoding == "der"
    return Answer(
        p7b_of(cert, der=der),
        media_type="application/pkcs7-mime" if der else "application/x-pkcs7-certificates",
        headers={"Content-Disposition": f'attachment; filename="{cert.serial}.p7b"'},
    )


def _err(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


# --- organisations (platform) --------------------------------------------------------------------------------


def create_organisation(call: Call) -> Answer:
    call.operator.require_platform()
    body: b.CreateOrganisation = call.body
    org = ops.create_organisation(call.admin, ops.CreateOrganisation(body.name, body.org_id))
    return Answer(org_json(org), 201, {"Location": f"{PREFIX}/organisations/{org.org_id}"})


def list_organisations(call: Call) -> Answer:
    call.operator.require_platform()
    return listing(call, [org_json(o) for o in ops.list_organisations(call.admin)], lambda o: str(o["org_id"]))


def get_organisation(call: Call) -> Answer:
    call.operator.require_platform()
    return Answer(org_json(ops.get_organisation(call.admin, call.params["org_id"])))


def invite_developer(call: Call) -> Answer:
    """The invitation is mailed when an SMTP server is configured; otherwise its link (a secret
    that works once) is in this answer, for the operator to hand over by another channel."""
    call.operator.require_platform()
    body: b.InviteDeveloper = call.body
    org = ops.get_organisation(call.admin, call.params["org_id"])
    inv = developers.invite_developer(call.admin, body.email, org.org_id)
    message = mail.invitation(call.admin.settings, to=inv.email, link=inv.link, role=inv.role, org=org.name)
    try:
        mailed = mail.send(call.admin.settings, message, kind="invitation")
    except mail.MailError as e:
        raise Problem(502, "mail_failed", f"{e}; the invitation stands: invite again to send a new link") from None
    data: dict[str, object] = {"email": inv.email, "org_id": org.org_id, "expires_at": inv.expires_at, "mailed": mailed}
    if not mailed:
        data["link"] = inv.link
    return Answer(data, 201)


# --- merchants (platform) ---------------------------------------------------------------------------------------


def _merchant_id(call: Call) -> int:
    call.operator.require_platform()
    return int(call.params["merchant_id"])


def create_merchant(call: Call) -> Answer:
    call.operator.require_platform()
    body: b.CreateMerchant = call.body
    m = ops.create_merchant(call.admin, ops.CreateMerchant(body.merchant_id, body.name, body.vat))
    return Answer(merchant_json(m), 201, {"Location": f"{PREFIX}/merchants/{m.merchant_id}"})


def list_merchants_(call: Call) -> Answer:
    call.operator.require_platform()
    items = [merchant_json(m) for m in list_merchants(call.admin)]
    return listing(call, items, lambda m: str(m["merchant_id"]))


def get_merchant(call: Call) -> Answer:
    return Answer(merchant_json(ops.get_merchant(call.admin, _merchant_id(call))))


def add_terminal(call: Call) -> Answer:
    mid = _merchant_id(call)
    body: b.AddTerminal = call.body
    ops.get_merchant(call.admin, mid)
    t = ops.add_terminal(call.admin, ops.AddTerminal(mid, body.pos, body.tid, body.kind))
    return Answer(terminal_json(t), 201)


def list_terminals(call: Call) -> Answer:
    items = [terminal_json(t) for t in terminals_of(call.admin, _merchant_id(call))]
    return listing(call, items, lambda t: str(t["tid"]))


def list_points_of_sale(call: Call) -> Answer:
    items = [
        {"pos": p.pos, "merchant_id": p.merchant_id, "terminals": [terminal_json(t) for t in p.terminals]}
        for p in points_of_sale(call.admin, _merchant_id(call))
    ]
    return listing(call, items, lambda p: str(p["pos"]))


def add_user(call: Call) -> Answer:
    """The user without a password, and the portal invitation with which they set it (its link
    holds a secret: shown this once, for the operator to deliver)."""
    mid = _merchant_id(call)
    body: b.AddUser = call.body
    invitation = invite_merchant_user(call.admin, body.username, mid)
    user = next(u for u in users_of(call.admin, mid) if u.username == invitation.email)
    return Answer(
        {**user_json(user), "invitation": {"link": invitation.link, "expires_at": invitation.expires_at}}, 201
    )


def list_users(call: Call) -> Answer:
    items = [user_json(u) for u in users_of(call.admin, _merchant_id(call))]
    return listing(call, items, lambda u: str(u["username"]))


def create_grant(call: Call) -> Answer:
    mid = _merchant_id(call)
    body: b.CreateGrant = call.body
    ops.grant(call.admin, mid, body.client_id)
    granted = next(g for g in ops.list_grants(call.admin, mid) if g.client_id == body.client_id)
    return Answer(grant_json(granted), 201)


def list_grants(call: Call) -> Answer:
    items = [grant_json(g) for g in ops.list_grants(call.admin, _merchant_id(call))]
    return listing(call, items, lambda g: str(g["client_id"]))


def withdraw_grant(call: Call) -> Answer:
    mid = _merchant_id(call)
    info = ops.withdraw_grant(call.admin, mid, call.params["client_id"])
    return Answer({"merchant_id": info.merchant_id, "client_id": info.client_id, "granted": info.granted})


# --- axept keys (platform) -----------------------------------------------------------------------------------------


def create_key(call: Call) -> Answer:
    created = ops.create_key(call.admin, _merchant_id(call))
    return Answer({"merchantId": created.merchant_id, "keyId": created.key_id, "key": created.key}, 201)


def list_keys(call: Call) -> Answer:
    mid = _merchant_id(call)
    ops.get_merchant(call.admin, mid)
    items = [key_json(k) for k in ops.list_keys(call.admin, mid)]
    return listing(call, items, lambda k: str(k["keyId"]))


def disable_key(call: Call) -> Answer:
    body: b.DisableKey = call.body
    mid = _merchant_id(call)
    info = ops.disable_key(call.admin, mid, int(call.params["key_id"]), confirm_last=body.confirm_last)
    return Answer(key_json(info))


def enable_key(call: Call) -> Answer:
    info = ops.enable_key(call.admin, _merchant_id(call), int(call.params["key_id"]))
    return Answer(key_json(info))


# --- security events, server keys (platform) -------------------------------------------------------------


def list_events(call: Call) -> Answer:
    call.operator.require_platform()
    q = call.query
    page = Page.of(q)
    after = 0
    if page.after is not None:
        if not page.after.isdigit() or len(page.after) > 18:
            raise validation([_err("cursor", "is not a cursor this API gave")])
        after = int(page.after)
    events = events_page(
        call.admin,
        after_id=after,
        limit=page.limit + 1,
        kind=query_str(q, "kind", max_length=64),
        client_id=query_str(q, "client_id", max_length=64),
        since=query_int(q, "since", default=None, low=0, high=2**53 - 1),
    )
    more = len(events) > page.limit
    events = events[: page.limit]
    next_cursor = encode_cursor(str(events[-1].id)) if more and events else None
    return Answer({"items": [event_json(e) for e in events], "next": next_cursor}, headers=_link(call, next_cursor))


def list_server_keys(call: Call) -> Answer:
    call.operator.require_platform()
    items = [
        {"kid": k.kid, "use": k.use, "alg": k.alg, "status": k.status, "retire_at": k.retire_at}
        for k in ops.list_server_keys(call.admin)
    ]
    return listing(call, items, lambda k: str(k["kid"]))


def rotate_server_keys(call: Call) -> Answer:
    call.operator.require_platform()
    return Answer(ops.rotate_server_keys(call.admin, call.params["use"]).as_dict())
