"""Integrators' developer accounts and the portal's invitations, with their rules.

- A developer is an e-mail address (kept in lower case) in one organisation. An operator
  invites one (``invite_developer``): the account exists at once as ``invited`` and a
  single-use token is stored (only its SHA-256) as a ``portal_invitation`` artefact that
  expires after ``portal_invitation_seconds``. Inviting again replaces nothing: each link
  works until it is used or expires, and the first one used activates the account.
- Accepting (``accept_invitation``) sets the password (argon2id, at least ``MIN_PASSWORD``
  characters) and enrols the TOTP second factor: the secret is made when the invitation is
  first opened (``enrolment``), sealed under the KEK in the invitation, and the acceptance
  must carry a code from it, so that nobody leaves without a working authenticator.
- A sign-in (``authenticate_developer``) needs the password and a TOTP code of the current
  30-second step or the one before or after (RFC 6238 §5.2: one step of drift each way);
  a code is never accepted twice (``use_totp_step`` records the last step accepted,
  atomically). Every failure is the same ``SignInFailed``, whatever was wrong; the web layer
  counts them under the brute-force limiter (``tessera.core.ratelimit``: per account and per
  address), which is the account's lockout.
- A merchant user may be created without a password (``invite_merchant_user``) and set it
  through the same kind of link (no TOTP: the merchant's sign-in is the one tessera's login
  pages already use).
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from tessera.admin.context import ADMIN_CHANGE, Admin
from tessera.admin.errors import AdminError, Conflict, Invalid, NotFound
from tessera.admin.merchants import add_user_unset, check_password, check_username
from tessera.core.kinds import Kind
from tessera.core.models import Artifact, Developer, MerchantUser
from tessera.core.ports import Conflict as StoreConflict
from tessera.core.secrets import hash_password, sha256_key, verify_password

INVITATION_KIND = Kind.PORTAL_INVITATION.value
#: The ``client_id`` column of the portal's artefacts (they belong to no client).
PORTAL = "portal"
TOTP_STEP = 30
TOTP_DIGITS = 6
TOTP_BYTES = 20  # 160 bits, RFC 4226 §4's recommendation
#: Steps accepted either side of the current one (RFC 6238 §5.2).
TOTP_WINDOW = 1


class SignInFailed(AdminError):
    """A portal sign-in that failed: one message whatever was wrong (unknown account, wrong
    password or code, a reused code, a disabled account)."""

    code = "sign_in_failed"

    def __init__(self) -> None:
        super().__init__("the e-mail, password or code is not valid")


class InvitationInvalid(AdminError):
    """An invitation link that is unknown, used or expired."""

    code = "invitation_invalid"

    def __init__(self) -> None:
        super().__init__("this invitation link is not valid (used, expired or unknown); ask for a new one")


@dataclass(frozen=True)
class Invitation:
    """``token`` (and ``link``, which holds it) is a secret: shown or mailed once."""

    role: str  # "developer" | "merchant"
    email: str
    token: str
    link: str
    expires_at: int
    org_id: str | None = None
    merchant_id: int | None = None


@dataclass(frozen=True)
class Enrolment:
    """What the invitation page shows: who is invited and (developers) the TOTP secret to enrol."""

    role: str
    email: str
    org_id: str | None
    merchant_id: int | None
    totp_secret: str | None  # base32, as authenticator apps take it
    totp_uri: str | None  # otpauth://totp/...


@dataclass(frozen=True)
class DeveloperInfo:
    email: str
    org_id: str
    status: str
    created_at: int

    @classmethod
    def of(cls, d: Developer) -> DeveloperInfo:
        return cls(d.email, d.org_id, d.status, d.created_at)


# --- TOTP (RFC 6238, SHA-1, 6 digits, 30 s: what every authenticator app reads) -----------------


def new_totp_secret() -> bytes:
    return os.urandom(TOTP_BYTES)


def b32(secret: bytes) -> str:
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def _totp(secret: bytes) -> TOTP:
    return TOTP(secret, TOTP_DIGITS, hashes.SHA1(), TOTP_STEP, enforce_key_length=False)  # noqa: S303 - RFC 6238


def totp_code(secret: bytes, when: float) -> str:
    """The code of the step holding ``when`` (tests and the enrolment check use it)."""
    return _totp(secret).generate(when).decode("ascii")


def totp_uri(secret: bytes, account: str, issuer: str) -> str:
    """The ``otpauth://`` URI (Key Uri Format) an authenticator app enrols from."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode({"secret": b32(secret), "issuer": issuer, "algorithm": "SHA1", "digits": 6, "period": 30})
    return f"otpauth://totp/{label}?{query}"


def match_totp(secret: bytes, code: str, now: int) -> int | None:
    """The step (``now // 30`` ± ``TOTP_WINDOW``) whose code is ``code``, or None. Every
    candidate is compared, in constant time, whichever matches."""
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isdigit():
        return None
    totp = _totp(secret)
    found = None
    current = now // TOTP_STEP
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate(step * TOTP_STEP), code.encode("ascii")):
            found = step
    return found


# --- the TOTP secret sealed under the KEK -------------------------------------------------------


def _aead(kek: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tessera portal totp v1").derive(kek)
    return AESGCM(key)


def seal_totp(kek: bytes, email: str, secret: bytes) -> str:
    """AES-256-GCM under a key derived from the KEK (HKDF), bound to the account (AAD)."""
    nonce = os.urandom(12)
    ct = _aead(kek).encrypt(nonce, secret, f"totp:{email}".encode())
    return "v1." + base64.urlsafe_b64encode(nonce + ct).decode("ascii").rstrip("=")


def open_totp(kek: bytes, email: str, sealed: str) -> bytes:
    version, _, blob = sealed.partition(".")
    if version != "v1":
        raise ValueError("unknown sealed TOTP version")
    raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    return _aead(kek).decrypt(raw[:12], raw[12:], f"totp:{email}".encode())


# --- invitations ----------------------------------------------------------------------------------


def _link(admin: Admin, token: str) -> str:
    return f"{admin.settings.portal_url}/invitation/{token}"


def _store_invitation(admin: Admin, data: dict[str, Any]) -> tuple[str, int]:
    token = secrets.token_urlsafe(32)
    expires_at = admin.now() + admin.settings.portal_invitation_seconds
    admin.store.put_artifact(Artifact(INVITATION_KIND, sha256_key(token), PORTAL, data, expires_at))
    return token, expires_at


def invite_developer(admin: Admin, email: str, org_id: str) -> Invitation:
    """Invite a developer of ``org_id``: the account (``invited``) and a single-use link.
    ``Conflict`` if the address is an active (or disabled) developer's, or another
    organisation's; ``NotFound`` for an unknown organisation."""
    email = check_username(email.strip())
    if admin.store.get_organisation(org_id) is None:
        raise NotFound(f"no organisation {org_id}")
    dev = admin.store.get_developer(email)
    if dev is None:
        try:
            admin.store.create_developer(Developer(email, org_id, created_at=admin.now()))
        except StoreConflict as e:
            raise Conflict(str(e)) from None
    elif dev.org_id != org_id or dev.status != "invited":
        raise Conflict(f"{email} is already a developer account ({dev.status})")
    token, expires_at = _store_invitation(admin, {"role": "developer", "email": email, "org_id": org_id})
    admin.record("developer.invite", email=email, org_id=org_id)
    return Invitation("developer", email, token, _link(admin, token), expires_at, org_id=org_id)


def invite_merchant_user(admin: Admin, username: str, merchant_id: int) -> Invitation:
    """A link for a merchant user to set their password, creating the user without one first
    (such a user cannot sign in anywhere until the link is used)."""
    username = check_username(username.strip())
    if admin.store.get_merchant(merchant_id) is None:
        raise NotFound(f"no merchant {merchant_id}")
    user = admin.store.get_user(username)
    if user is None:
        add_user_unset(admin, merchant_id, username)
    elif user.merchant_id != merchant_id:
        raise Conflict(f"user {username} belongs to another merchant")
    token, expires_at = _store_invitation(admin, {"role": "merchant", "email": username, "merchant_id": merchant_id})
    admin.record("user.invite", merchant_id=merchant_id, username=username)
    return Invitation("merchant", username, token, _link(admin, token), expires_at, merchant_id=merchant_id)


def _live_invitation(admin: Admin, token: str) -> Artifact:
    if not token or len(token) > 200:
        raise InvitationInvalid()
    art = admin.store.get_artifact(INVITATION_KIND, sha256_key(token))
    if art is None or art.consumed_at is not None or art.expires_at <= admin.now():
        raise InvitationInvalid()
    return art


def enrolment(admin: Admin, token: str) -> Enrolment:
    """What the invitation page shows. A developer's TOTP secret is made on the first look and
    kept (sealed) in the invitation, so that reloading the page shows the same one."""
    art = _live_invitation(admin, token)
    data = art.data
    email = str(data["email"])
    if data["role"] != "developer":
        return Enrolment("merchant", email, None, int(data["merchant_id"]), None, None)
    kek = admin.settings.kek_bytes()
    if "totp" in data:
        secret = open_totp(kek, email, str(data["totp"]))
    else:
        secret = new_totp_secret()
        admin.store.update_artifact_data(INVITATION_KIND, art.key, {**data, "totp": seal_totp(kek, email, secret)})
    return Enrolment(
        "developer", email, str(data["org_id"]), None, b32(secret), totp_uri(secret, email, _issuer_label(admin))
    )


def _issuer_label(admin: Admin) -> str:
    return f"tessera {admin.settings.hostname}"


@dataclass(frozen=True)
class Accepted:
    role: str
    email: str
    org_id: str | None = None
    merchant_id: int | None = None


def accept_invitation(admin: Admin, token: str, password: str, code: str = "") -> Accepted:
    """Use the invitation: set the password (and, for a developer, check the TOTP code of the
    secret shown by ``enrolment``). The link is spent only when everything is valid;
    ``Invalid`` names the field at fault, ``InvitationInvalid`` a link that cannot be used."""
    art = _live_invitation(admin, token)
    check_password(password)
    data = art.data
    email = str(data["email"])
    now = admin.now()
    if data["role"] == "developer":
        if "totp" not in data:
            raise Invalid("open the invitation page first to see the authenticator secret", field="code")
        kek = admin.settings.kek_bytes()
        sealed = str(data["totp"])
        step = match_totp(open_totp(kek, email, sealed), code, now)
        if step is None:
            raise Invalid("is not the current code of the authenticator secret shown", field="code")
        if admin.store.consume(INVITATION_KIND, art.key, now) is None:
            raise InvitationInvalid()
        if not admin.store.activate_developer(email, hash_password(password), sealed, step):
            raise InvitationInvalid()
        admin.store.add_event(
            ADMIN_CHANGE, f"portal:{email}", {"op": "developer.accept", "org_id": data["org_id"]}, now
        )
        return Accepted("developer", email, org_id=str(data["org_id"]))
    if admin.store.consume(INVITATION_KIND, art.key, now) is None:
        raise InvitationInvalid()
    if not admin.store.set_user_password(email, hash_password(password)):
        raise InvitationInvalid()
    admin.store.add_event(
        ADMIN_CHANGE, f"portal:{email}", {"op": "user.accept", "merchant_id": data["merchant_id"]}, now
    )
    return Accepted("merchant", email, merchant_id=int(data["merchant_id"]))


# --- sign-in ----------------------------------------------------------------------------------------


def authenticate_developer(admin: Admin, email: str, password: str, code: str) -> Developer:
    """The account, if the password and a fresh TOTP code are right and it is active; else
    ``SignInFailed`` (after the same argon2id work whichever was wrong)."""
    dev = admin.store.get_developer(email.strip()) if email and len(email) <= 320 else None
    ok = verify_password(password, dev.password_hash if dev is not None else None)
    if dev is None or not ok or dev.status != "active" or dev.totp_sealed is None:
        raise SignInFailed()
    step = match_totp(open_totp(admin.settings.kek_bytes(), dev.email, dev.totp_sealed), code, admin.now())
    if step is None or not admin.store.use_totp_step(dev.email, step):
        raise SignInFailed()
    return dev


def authenticate_merchant_user(admin: Admin, username: str, password: str) -> MerchantUser:
    """The merchant user, if the password is right (a user without one cannot sign in)."""
    user = admin.store.get_user(username.strip().lower()) if username and len(username) <= 320 else None
    stored = user.password_hash if user is not None and user.password_hash else None
    if user is None or not verify_password(password, stored) or stored is None:
        raise SignInFailed()
    return user


def get_developer(admin: Admin, email: str) -> DeveloperInfo:
    dev = admin.store.get_developer(email)
    if dev is None:
        raise NotFound(f"no developer {email}")
    return DeveloperInfo.of(dev)


def list_developers(admin: Admin, org_id: str) -> list[DeveloperInfo]:
    return [DeveloperInfo.of(d) for d in admin.store.list_developers(org_id)]


def disable_developer(admin: Admin, email: str) -> DeveloperInfo:
    """Disable an account: its sessions end at their next request, its sign-ins fail."""
    if not admin.store.set_developer_status(email, "disabled"):
        raise NotFound(f"no developer {email}")
    admin.record("developer.disable", email=email.lower())
    return get_developer(admin, email)
