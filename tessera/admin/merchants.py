"""Merchants, their points of sale and terminals, their users, and their grants to apps.

Rules: a merchant's VAT number, when given, is MobilePay's (``DK`` or ``FI`` and 8 digits: the
``merchant_vat`` a token may name); a point of sale belongs to one merchant; a terminal is a ``softpos`` or an ``mpos``;
a merchant user is named by an e-mail address (kept in lower case) and has a password of at
least ``MIN_PASSWORD`` characters, stored as argon2id; a grant joins an existing merchant and
an existing app."""

from __future__ import annotations

from dataclasses import dataclass

from tessera.admin.context import Admin
from tessera.admin.errors import Conflict, Invalid, NotFound
from tessera.core.enrollment import EMAIL
from tessera.core.flows.mobilepay import VAT
from tessera.core.models import Merchant, MerchantUser, Terminal
from tessera.core.ports import Conflict as StoreConflict
from tessera.core.secrets import hash_password

TERMINAL_KINDS = ("softpos", "mpos")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class CreateMerchant:
    merchant_id: int
    name: str = ""
    vat: str | None = None


@dataclass(frozen=True)
class AddTerminal:
    merchant_id: int
    pos: str  #: point-of-sale id
    tid: str  #: terminal id
    kind: str  #: softpos or mpos


@dataclass(frozen=True)
class AddUser:
    merchant_id: int
    username: str  #: an e-mail address
    password: str


@dataclass(frozen=True)
class MerchantInfo:
    merchant_id: int
    name: str
    vat: str | None
    created_at: int


@dataclass(frozen=True)
class UserInfo:
    merchant_id: int
    username: str


@dataclass(frozen=True)
class GrantInfo:
    merchant_id: int
    client_id: str
    granted: bool


def _merchant(admin: Admin, merchant_id: int) -> Merchant:
    merchant = admin.store.get_merchant(merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}")
    return merchant


def check_vat(vat: str | None) -> None:
    if vat is not None and not VAT.fullmatch(vat):
        raise Invalid("must be DK or FI followed by 8 digits", field="vat")


def create_merchant(admin: Admin, req: CreateMerchant) -> MerchantInfo:
    check_vat(req.vat)
    merchant = Merchant(req.merchant_id, req.name, req.vat, admin.now())
    try:
        admin.store.create_merchant(merchant)
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("merchant.create", merchant_id=merchant.merchant_id)
    return MerchantInfo(merchant.merchant_id, merchant.name, merchant.vat, merchant.created_at)


def get_merchant(admin: Admin, merchant_id: int) -> MerchantInfo:
    m = _merchant(admin, merchant_id)
    return MerchantInfo(m.merchant_id, m.name, m.vat, m.created_at)


def add_terminal(admin: Admin, req: AddTerminal) -> Terminal:
    if req.kind not in TERMINAL_KINDS:
        raise Invalid(f"must be {' or '.join(TERMINAL_KINDS)}", field="kind")
    others = admin.store.terminals_at(req.pos)
    if others and others[0].merchant_id != req.merchant_id:
        raise Conflict(f"point of sale {req.pos} belongs to merchant {others[0].merchant_id}")
    terminal = Terminal(req.tid, req.merchant_id, req.pos, req.kind)
    try:
        admin.store.add_terminal(terminal)
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("terminal.add", merchant_id=req.merchant_id, pos=req.pos, tid=req.tid, kind=req.kind)
    return terminal


def terminals_at(admin: Admin, pos: str) -> list[Terminal]:
    return admin.store.terminals_at(pos)


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"must have at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"must have at most {MAX_PASSWORD} characters", field="password")


def check_username(username: str) -> str:
    """The username as stored (lower case); ``Invalid`` unless it is an e-mail address."""
    if len(username) > 254 or not EMAIL.match(username):
        raise Invalid("must be an e-mail address", field="username")
    return username.lower()


def add_user(admin: Admin, req: AddUser) -> UserInfo:
    """A merchant user (the login of the enrollment page); the password is hashed with argon2id."""
    check_password(req.password)
    username = check_username(req.username)
    _merchant(admin, req.merchant_id)
    try:
        admin.store.add_user(MerchantUser(username, req.merchant_id, hash_password(req.password)))
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("user.add", merchant_id=req.merchant_id, username=username)
    return UserInfo(req.merchant_id, username)


def grant(admin: Admin, merchant_id: int, client_id: str) -> GrantInfo:
    """Record that the merchant granted an integrator app access (MobilePay's ``merchant_vat``)."""
    _merchant(admin, merchant_id)
    if admin.store.get_client(client_id) is None:
        raise NotFound(f"no client {client_id}")
    try:
        admin.store.grant(merchant_id, client_id, admin.now())
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("merchant.grant", merchant_id=merchant_id, client_id=client_id)
    return GrantInfo(merchant_id, client_id, True)


def is_granted(admin: Admin, merchant_id: int, client_id: str) -> bool:
    return admin.store.is_granted(merchant_id, client_id)


# --- the portal's merchant side: grants withdrawn and listed ----------------------------------------


def withdraw_grant(admin: Admin, merchant_id: int, client_id: str) -> GrantInfo:
    """Withdraw the merchant's grant to an app. Announced to the workers (they cache grants),
    so the app's next token request for the merchant is refused. ``NotFound`` when there was
    no such grant."""
    _merchant(admin, merchant_id)
    if not admin.store.withdraw_grant(merchant_id, client_id):
        raise NotFound(f"merchant {merchant_id} has not granted {client_id}")
    admin.record("merchant.withdraw_grant", merchant_id=merchant_id, client_id=client_id)
    return GrantInfo(merchant_id, client_id, False)


def list_grants(admin: Admin, merchant_id: int) -> list[GrantedApp]:
    """The apps the merchant granted access to, oldest first, with when (the portal, the admin API)."""
    _merchant(admin, merchant_id)
    return [GrantedApp(g.merchant_id, g.client_id, g.created_at) for g in admin.store.grants_of(merchant_id)]


# --- listings, and users who set their own password (the admin API) -----------------------------------------

#: The password hash of a user made without a password (the portal's convention, see
#: ``tessera.admin.developers.invite_merchant_user``): no password verifies against it until
#: the user sets one through the portal's invitation; the user cannot sign in before.
UNSET_PASSWORD = ""


@dataclass(frozen=True)
class GrantedApp:
    merchant_id: int
    client_id: str
    granted_at: int


@dataclass(frozen=True)
class PointOfSale:
    merchant_id: int
    pos: str
    terminals: tuple[Terminal, ...]


@dataclass(frozen=True)
class MerchantUserInfo:
    """A merchant user as an operator sees it: never the password's hash."""

    merchant_id: int
    username: str
    password_set: bool


def list_merchants(admin: Admin) -> list[MerchantInfo]:
    return [MerchantInfo(m.merchant_id, m.name, m.vat, m.created_at) for m in admin.store.list_merchants()]


def terminals_of(admin: Admin, merchant_id: int) -> list[Terminal]:
    _merchant(admin, merchant_id)
    return admin.store.terminals_of(merchant_id)


def points_of_sale(admin: Admin, merchant_id: int) -> list[PointOfSale]:
    """The merchant's points of sale, each with its terminals."""
    by_pos: dict[str, list[Terminal]] = {}
    for t in terminals_of(admin, merchant_id):
        by_pos.setdefault(t.pos, []).append(t)
    return [PointOfSale(merchant_id, pos, tuple(ts)) for pos, ts in by_pos.items()]


def users_of(admin: Admin, merchant_id: int) -> list[MerchantUserInfo]:
    _merchant(admin, merchant_id)
    return [
        MerchantUserInfo(u.merchant_id, u.username, bool(u.password_hash))  # UNSET_PASSWORD is empty
        for u in admin.store.users_of(merchant_id)
    ]


def add_user_unset(admin: Admin, merchant_id: int, username: str) -> MerchantUserInfo:
    """A merchant user without a password (``UNSET_PASSWORD``): the user sets it through the
    portal, and cannot sign in before. The admin API and the portal make users so
    (``invite_merchant_user``): no password travels."""
    username = check_username(username)
    _merchant(admin, merchant_id)
    try:
        admin.store.add_user(MerchantUser(username, merchant_id, UNSET_PASSWORD))
    except StoreConflict as e:
        raise Conflict(str(e)) from None
    admin.record("user.add", merchant_id=merchant_id, username=username, password_set=False)
    return MerchantUserInfo(merchant_id, username, False)
