"""The portal (``/portal``): server-rendered pages for integrators (developers) and merchants.

The pages parse forms and render templates; every rule is the admin layer's
(``tessera.admin.developers``, ``portal_sessions``, ``portal_apps``, ``merchants``,
``apikeys``), called off the event loop with the signed-in user as ``Admin.actor``, so that
every change lands in the security events. Errors go through the web layer's one mechanism:
an ``AdminError`` becomes a ``PortalError`` (an ``OAuthError`` with the matching status),
which ``tessera.web.errors`` hands to this profile's renderer (``render``), an HTML page.

Security (docs/portal.md):

- a server-side session (``tessera.admin.portal_sessions``) in a ``__Host-`` cookie that is
  ``Secure``, ``HttpOnly`` and ``SameSite=Strict``; signing out spends it;
- a synchroniser CSRF token bound to the session on every form (and, before sign-in, a
  token bound to a pre-session cookie), compared in constant time: a POST without it, or
  with another, is 403;
- a strict Content-Security-Policy (no script at all, styles from ``/portal/static`` only),
  ``X-Frame-Options: DENY``, ``no-store``, ``no-referrer`` (invitation links are secrets);
- sign-in under the brute-force limiter (per account and per address; a locked account is
  429 without checking anything) and the unauthenticated-writes rate budget;
- an integrator sees only its organisation's apps and certificates: another's is 404.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from tessera import mail
from tessera.admin import apikeys as keys_ops
from tessera.admin import delivery
from tessera.admin import developers as dev_ops
from tessera.admin import merchants as merchant_ops
from tessera.admin import portal_apps as apps
from tessera.admin import portal_sessions as sessions
from tessera.admin.context import Admin
from tessera.admin.errors import AdminError
from tessera.errors import OAuthError
from tessera.web.forms import parse_form, read_body
from tessera.web.routing import ProfileRoute
from tessera.web.runtime import PersonAccount, Runtime, user_key

PROFILE = "portal"
PREFIX = "/portal"
HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
SESSION_COOKIE = "__Host-tessera-portal"
PRE_COOKIE = "__Host-tessera-portal-pre"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
#: An ``AdminError``'s code as an HTTP status.
STATUS = {
    "not_found": 404,
    "conflict": 409,
    "invalid": 400,
    "confirmation_required": 409,
    "sign_in_failed": 401,
    "invitation_invalid": 404,
}
MAX_FORM = 64 * 1024
TITLES = {
    400: "Not valid",
    401: "Not signed in",
    403: "Refused",
    404: "Not found",
    409: "Conflict",
    429: "Too many attempts",
}


class PortalError(OAuthError):
    """A refusal on a portal page, with its status (rendered by ``render``)."""

    error = "portal_error"

    def __init__(self, status: int, description: str, *, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description, reason=reason, headers=headers)
        self.status = status


def render(err: OAuthError) -> Response:
    """The portal's error page (this profile's renderer in ``tessera.web.errors``)."""
    status = err.status
    title = TITLES.get(status, "Error" if status < 500 else "Something went wrong")
    html = TEMPLATES.get_template("error.html").render(title=title, message=err.description, status=status)
    return Response(html, status_code=status, media_type="text/html; charset=utf-8", headers={**HEADERS, **err.headers})


def _when(ts: int | None) -> str:
    return "—" if not ts else datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


TEMPLATES.env.filters["when"] = _when


class Portal:
    """The portal's endpoints over one ``Runtime``."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self._ca: Any = None

    # --- plumbing ----------------------------------------------------------------------------
    def _load_ca(self) -> Any:
        if self._ca is None:
            from tessera.home import load_ca  # the home's CA, loaded once, when first needed

            self._ca = load_ca(self.settings)
        return self._ca

    def admin(self, actor: str | None = None) -> Admin:
        return Admin(
            store=self.rt.core.store, settings=self.settings, ca=self._load_ca, clock=self.rt.core.now, actor=actor
        )

    async def call(self, fn: Callable[..., Any], *args: Any, actor: str | None = None, **kwargs: Any) -> Any:
        """An admin operation off the event loop; its ``AdminError`` as a ``PortalError``."""
        try:
            return await self.rt.run_flow(functools.partial(fn, self.admin(actor), *args, **kwargs), waits=True)
        except AdminError as e:
            raise PortalError(
                STATUS.get(e.code, 400),
                e.message if not e.field else f"{e.field}: {e.message}",
                reason=f"portal_{e.code}",
            ) from None

    def page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
        return TEMPLATES.TemplateResponse(
            request, template, {"prefix": PREFIX, **ctx}, status_code=status, headers=HEADERS
        )

    def _pre_token(self, pre: str) -> str:
        return hmac.new(self.settings.pepper_bytes(), f"portal-pre:{pre}".encode(), hashlib.sha256).hexdigest()

    def pre_page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> Response:
        """A page shown before sign-in: its forms carry a token bound to the pre-session cookie."""
        pre = request.cookies.get(PRE_COOKIE) or ""
        fresh = not (20 <= len(pre) <= 100)
        if fresh:
            pre = secrets.token_urlsafe(32)
        response = self.page(request, template, status, csrf=self._pre_token(pre), **ctx)
        if fresh:
            response.set_cookie(PRE_COOKIE, pre, path="/", secure=True, httponly=True, samesite="strict")
        return response

    async def form(self, request: Request) -> dict[str, Any]:
        """The posted form: URL-encoded (parsed strictly) or multipart (a CSR file)."""
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async with request.form(max_files=1, max_fields=20, max_part_size=MAX_FORM) as data:
                out: dict[str, Any] = {}
                for key, value in data.multi_items():
                    out[key] = (await value.read(MAX_FORM + 1)) if isinstance(value, UploadFile) else value
                return out
        return dict(parse_form(await read_body(request, MAX_FORM)))

    async def pre_form(self, request: Request) -> dict[str, Any]:
        form = await self.form(request)
        pre = request.cookies.get(PRE_COOKIE) or ""
        if not pre or not hmac.compare_digest(self._pre_token(pre), str(form.get("csrf", ""))):
            raise PortalError(
                403, "the form has expired or did not come from this site: reload it and retry", reason="portal_csrf"
            )
        return form

    async def session(self, request: Request) -> sessions.PortalSession | None:
        return await self.rt.run_flow(sessions.find_session, self.admin(), request.cookies.get(SESSION_COOKIE))

    async def posted(self, request: Request, role: str) -> tuple[sessions.PortalSession, dict[str, Any]]:
        """The session of a POST and its form, the CSRF token checked (403 without it, or with another)."""
        s = await self.session(request)
        if s is None or s.role != role:
            raise PortalError(
                401, "you are not signed in (or the session ended): sign in again", reason="portal_no_session"
            )
        form = await self.form(request)
        if not s.csrf_ok(str(form.get("csrf", ""))):
            raise PortalError(
                403, "the form has expired or did not come from this site: reload it and retry", reason="portal_csrf"
            )
        return s, form

    def signed_in(self, s: sessions.PortalSession, location: str) -> Response:
        response = RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})
        response.set_cookie(
            SESSION_COOKIE,
            s.sid,
            max_age=self.settings.portal_session_seconds,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    def require(
        self, role: str
    ) -> Callable[
        [Callable[[Request, sessions.PortalSession], Awaitable[Response]]], Callable[[Request], Awaitable[Response]]
    ]:
        """A GET page of ``role``: without a session, the way to sign in."""
        signin = f"{PREFIX}/signin" if role == "developer" else f"{PREFIX}/merchant/signin"

        def wrap(
            fn: Callable[[Request, sessions.PortalSession], Awaitable[Response]],
        ) -> Callable[[Request], Awaitable[Response]]:
            @functools.wraps(fn)
            async def endpoint(request: Request) -> Response:
                s = await self.session(request)
                if s is None or s.role != role:
                    return RedirectResponse(signin, status_code=303, headers={"Cache-Control": "no-store"})
                return await fn(request, s)

            return endpoint

        return wrap

    # --- the landing page, the style sheet ------------------------------------------------------------
    async def home(self, request: Request) -> Response:
        s = await self.session(request)
        if s is not None:
            return RedirectResponse(
                f"{PREFIX}/apps" if s.role == "developer" else f"{PREFIX}/merchant", status_code=303
            )
        return self.page(request, "home.html")

    async def css(self, request: Request) -> Response:
        return Response(
            (HERE / "static" / "portal.css").read_bytes(),
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # --- invitations ------------------------------------------------------------------------------------
    async def invitation(self, request: Request) -> Response:
        token = request.path_params["token"]
        enrol = await self.call(dev_ops.enrolment, token)
        return self.pre_page(request, "invitation.html", enrol=enrol, token=token, error=None)

    async def accept(self, request: Request) -> Response:
        self.rt.limit_writes(request)
        token = request.path_params["token"]
        form = await self.pre_form(request)
        password, confirm = str(form.get("password", "")), str(form.get("password2", ""))
        try:
            if not hmac.compare_digest(password.encode(), confirm.encode()):
                raise PortalError(400, "the two passwords differ", reason="portal_password_mismatch")
            accepted = await self.call(dev_ops.accept_invitation, token, password, str(form.get("code", "")))
        except PortalError as e:
            if e.status != 400:
                raise
            enrol = await self.call(dev_ops.enrolment, token)
            return self.pre_page(request, "invitation.html", 400, enrol=enrol, token=token, error=e.description)
        where = "signin" if accepted.role == "developer" else "merchant/signin"
        return RedirectResponse(f"{PREFIX}/{where}?welcome=1", status_code=303)

    # --- sign-in and out -------------------------------------------------------------------------------
    async def signin_page(self, request: Request) -> Response:
        return self.pre_page(
            request, "signin.html", role="developer", error=None, welcome="welcome" in request.query_params
        )

    async def merchant_signin_page(self, request: Request) -> Response:
        return self.pre_page(
            request, "signin.html", role="merchant", error=None, welcome="welcome" in request.query_params
        )

    async def _sign_in(self, request: Request, role: str) -> Response:
        self.rt.limit_writes(request)
        form = await self.pre_form(request)
        email = str(form.get("email", "")).strip().lower()[:320]
        admin = self.admin()

        def check() -> sessions.PortalSession:
            def verify() -> sessions.PortalSession:
                if role == "developer":
                    dev = dev_ops.authenticate_developer(
                        admin, email, str(form.get("password", "")), str(form.get("code", ""))
                    )
                    return sessions.open_session(admin, "developer", dev.email, org_id=dev.org_id)
                user = dev_ops.authenticate_merchant_user(admin, email, str(form.get("password", "")))
                return sessions.open_session(admin, "merchant", user.username, merchant_id=user.merchant_id)

            # A merchant user's counter is the one of tessera's login pages (one password, two doors).
            account = (
                (PersonAccount(f"portal:developer:{email}") if role == "developer" else user_key({"username": email}))
                if email
                else None
            )
            s: sessions.PortalSession = self.rt.guarded(request, account, verify, failures=(dev_ops.SignInFailed,))
            return s

        try:
            s = await self.rt.run_flow(check, waits=True)  # argon2id: off the loop
        except dev_ops.SignInFailed as e:
            return self.pre_page(request, "signin.html", 401, role=role, error=e.message, welcome=False, email=email)
        return self.signed_in(s, f"{PREFIX}/apps" if role == "developer" else f"{PREFIX}/merchant")

    async def signin(self, request: Request) -> Response:
        return await self._sign_in(request, "developer")

    async def merchant_signin(self, request: Request) -> Response:
        return await self._sign_in(request, "merchant")

    async def signout(self, request: Request) -> Response:
        s = await self.session(request)
        if s is not None:
            form = await self.form(request)
            if not s.csrf_ok(str(form.get("csrf", ""))):
                raise PortalError(403, "the form has expired or did not come from this site", reason="portal_csrf")
            await self.rt.run_flow(sessions.close_session, self.admin(), s)
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
        return response

    # --- integrators: apps, certificates --------------------------------------------------------------
    async def apps_page(self, request: Request, s: sessions.PortalSession) -> Response:
        assert s.org_id is not None
        listed = await self.call(apps.org_apps, s.org_id)
        return self.page(request, "apps.html", s=s, csrf=s.csrf, apps=listed)

    async def create_app(self, request: Request) -> Response:
        s, form = await self.posted(request, "developer")
        assert s.org_id is not None
        uris = tuple(u.strip() for u in str(form.get("redirect_uris", "")).splitlines() if u.strip())
        created = await self.call(apps.create_org_app, s.org_id, str(form.get("name", "")), uris, actor=s.actor)
        return self.page(
            request, "app_created.html", 201, s=s, csrf=s.csrf, created=created, zip_password=delivery.new_password()
        )

    async def credentials(self, request: Request) -> Response:
        """The credentials file of the page shown once: the secret posted back (never stored in
        clear, so nothing else could serve it) is checked against the app's hash first."""
        s, form = await self.posted(request, "developer")
        assert s.org_id is not None
        client_id = request.path_params["client_id"]
        secret = str(form.get("client_secret", ""))
        if not await self.call(apps.check_app_secret, s.org_id, client_id, secret):
            raise PortalError(400, "that is not the app's secret", reason="portal_bad_secret")
        if form.get("format") == "zip":  # MobilePay's delivery: the zip, and its password shown on the page
            password = str(form.get("zip_password", ""))
            if not delivery.is_generated_password(password):
                raise PortalError(400, "that is not a password this page gave", reason="portal_bad_zip_password")
            archive, _ = delivery.credentials_zip(client_id, secret, password=password)
            return Response(
                archive,
                media_type="application/zip",
                headers={**HEADERS, "Content-Disposition": f'attachment; filename="{client_id}-credentials.zip"'},
            )
        body = json.dumps({"client_id": client_id, "client_secret": secret, "issuer": self.settings.issuer}, indent=2)
        return Response(
            body + "\n",
            media_type="application/json",
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{client_id}-credentials.json"'},
        )

    async def app_page(self, request: Request, s: sessions.PortalSession) -> Response:
        assert s.org_id is not None
        client_id = request.path_params["client_id"]
        app = await self.call(apps.org_app, s.org_id, client_id)
        certs = await self.call(apps.org_certificates, s.org_id, client_id)
        where = await self.call(apps.assignments, s.org_id, client_id)
        return self.page(
            request,
            "app.html",
            s=s,
            csrf=s.csrf,
            app=app,
            certs=certs,
            where=where,
            convert=apps.P7B_TO_PEM,
            error=None,
        )

    async def upload_csr(self, request: Request) -> Response:
        s, form = await self.posted(request, "developer")
        assert s.org_id is not None
        client_id = request.path_params["client_id"]
        raw = form.get("csr_file")
        csr = raw if isinstance(raw, bytes) and raw.strip() else str(form.get("csr", "")).strip().encode()
        if not csr:
            raise PortalError(400, "choose a CSR file or paste the CSR", reason="portal_no_csr")
        if len(csr) > MAX_FORM:
            raise PortalError(400, "the CSR is too large", reason="portal_csr_size")
        signed = await self.call(apps.org_sign_csr, s.org_id, client_id, csr, actor=s.actor)
        msg = mail.certificate(self.settings, to=s.email, client_id=client_id, serial=signed.serial, p7b=signed.p7b)
        try:
            mailed = await self.rt.run_flow(
                functools.partial(mail.send, self.settings, msg, kind="certificate"), waits=True
            )
        except mail.MailError:
            mailed = False
        return self.page(
            request, "cert_signed.html", 201, s=s, csrf=s.csrf, signed=signed, mailed=mailed, convert=apps.P7B_TO_PEM
        )

    async def certificate(self, request: Request, s: sessions.PortalSession) -> Response:
        assert s.org_id is not None
        serial, fmt = request.path_params["serial"], request.path_params["fmt"]
        if fmt not in ("pem", "p7b"):
            raise PortalError(404, "no such format", reason="portal_format")
        cert = await self.call(apps.org_certificate, s.org_id, serial)
        body = cert.pem.encode() if fmt == "pem" else apps.p7b_of(cert.pem)
        media = "application/x-pem-file" if fmt == "pem" else "application/x-pkcs7-certificates"
        return Response(
            body,
            media_type=media,
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{cert.client_id}-{cert.serial}.{fmt}"'},
        )

    # --- merchants: axept keys, grants, enrollments -----------------------------------------------------
    async def merchant_page(self, request: Request, s: sessions.PortalSession) -> Response:
        assert s.merchant_id is not None
        return await self._merchant(request, s)

    async def _merchant(self, request: Request, s: sessions.PortalSession, status: int = 200, **extra: Any) -> Response:
        assert s.merchant_id is not None
        merchant = await self.call(merchant_ops.get_merchant, s.merchant_id)
        listed = await self.call(keys_ops.list_keys, s.merchant_id)
        grants = await self.call(merchant_ops.list_grants, s.merchant_id)
        enrollments = await self.call(apps.merchant_enrollments, s.merchant_id)
        ctx = {"error": None, "created": None, **extra}
        return self.page(
            request,
            "merchant.html",
            status,
            s=s,
            csrf=s.csrf,
            merchant=merchant,
            keys=listed,
            grants=grants,
            enrollments=enrollments,
            max_keys=self.settings.axept_max_enabled_keys,
            **ctx,
        )

    async def create_key(self, request: Request) -> Response:
        s, _ = await self.posted(request, "merchant")
        assert s.merchant_id is not None
        try:
            created = await self.call(keys_ops.create_key, s.merchant_id, actor=s.actor)
        except PortalError as e:
            return await self._merchant(request, s, e.status, error=e.description)
        return await self._merchant(request, s, 201, created=created)

    async def set_key(self, request: Request) -> Response:
        s, form = await self.posted(request, "merchant")
        assert s.merchant_id is not None
        try:
            key_id = int(request.path_params["key_id"])
        except ValueError:
            raise PortalError(404, "no such key", reason="portal_key") from None
        action = request.path_params["action"]
        if action not in ("enable", "disable"):
            raise PortalError(404, "no such action", reason="portal_action")
        confirm = form.get("confirm") == "yes"
        try:
            await self.call(
                keys_ops.set_key_enabled, s.merchant_id, key_id, action == "enable", confirm_last=confirm, actor=s.actor
            )
        except PortalError as e:
            if e.reason == "portal_confirmation_required":
                return self.page(
                    request, "confirm_disable.html", 409, s=s, csrf=s.csrf, key_id=key_id, message=e.description
                )
            return await self._merchant(request, s, e.status, error=e.description)
        return RedirectResponse(f"{PREFIX}/merchant", status_code=303)

    async def grant(self, request: Request) -> Response:
        s, form = await self.posted(request, "merchant")
        assert s.merchant_id is not None
        client_id = str(form.get("client_id", "")).strip()
        try:
            await self.call(apps.grantable_app, client_id)
            await self.call(merchant_ops.grant, s.merchant_id, client_id, actor=s.actor)
        except PortalError as e:
            return await self._merchant(request, s, e.status, error=e.description)
        return RedirectResponse(f"{PREFIX}/merchant", status_code=303)

    async def withdraw(self, request: Request) -> Response:
        s, _ = await self.posted(request, "merchant")
        assert s.merchant_id is not None
        await self.call(merchant_ops.withdraw_grant, s.merchant_id, request.path_params["client_id"], actor=s.actor)
        return RedirectResponse(f"{PREFIX}/merchant", status_code=303)


def routes(rt: Runtime) -> list[ProfileRoute]:
    p = Portal(rt)
    dev, merchant = p.require("developer"), p.require("merchant")

    def r(path: str, endpoint: Callable[..., Any], *methods: str) -> ProfileRoute:
        return ProfileRoute(PREFIX + path, endpoint, profile=PROFILE, methods=list(methods or ("GET",)))

    return [
        r("", p.home),
        r("/", p.home),
        r("/static/portal.css", p.css),
        r("/invitation/{token}", p.invitation),
        r("/invitation/{token}", p.accept, "POST"),
        r("/signin", p.signin_page),
        r("/signin", p.signin, "POST"),
        r("/merchant/signin", p.merchant_signin_page),
        r("/merchant/signin", p.merchant_signin, "POST"),
        r("/signout", p.signout, "POST"),
        r("/apps", dev(p.apps_page)),
        r("/apps", p.create_app, "POST"),
        r("/apps/{client_id}", dev(p.app_page)),
        r("/apps/{client_id}/credentials", p.credentials, "POST"),
        r("/apps/{client_id}/csr", p.upload_csr, "POST"),
        r("/certificates/{serial}.{fmt}", dev(p.certificate)),
        r("/merchant", merchant(p.merchant_page)),
        r("/merchant/keys", p.create_key, "POST"),
        r("/merchant/keys/{key_id}/{action}", p.set_key, "POST"),
        r("/merchant/grants", p.grant, "POST"),
        r("/merchant/grants/{client_id}/withdraw", p.withdraw, "POST"),
    ]
