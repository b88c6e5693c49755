"""The sandbox's fixtures file (TOML): apps with fixed credentials, merchants with their points
of sale, terminals, users, axept keys and grants, so that a test suite can hard-code them.

Parsed with pydantic (unknown fields refused), then checked as a whole (duplicate ids, grants
naming unknown apps, key ids in order); every mistake is one ``FixtureError`` line naming the
file and the place in it. The rules of each value (id format, secret length, VAT number,
e-mail usernames, password length) are the admin layer's, applied again when the fixtures are
loaded (``tessera.sandbox.setup``); the ones a test suite trips on most are checked here first,
so that the error names the place in the file.

Layout (``examples/sandbox.toml`` is the example; ``DEFAULT_FIXTURES`` the same text)::

    [[nexi.apps]]          client_id, client_secret, name, redirect_uris, scope,
                           csr | key (paths, relative to the file; neither: a key is generated)
    [[mobilepay.clients]]  client_id, client_secret, name
    [[b2binpay.users]]     login, password, name
    [[apps]]               native OAuth apps: client_id, client_secret, name, redirect_uris, scope
    [[merchants]]          id, name, vat, grants (client ids)
      [[merchants.points_of_sale]]  id, terminals = [{tid, kind = "softpos" | "mpos"}]
      [[merchants.users]]           username (an e-mail address), password
      [[merchants.axept_keys]]      key_id (1, 2, 3 in order), key
"""

from __future__ import annotations

import tomllib
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from tessera.admin.fixed import CLIENT_ID, MIN_FIXED_SECRET, SECRET
from tessera.admin.merchants import MIN_PASSWORD
from tessera.core.enrollment import EMAIL
from tessera.core.flows.mobilepay import VAT

ClientId = Annotated[str, StringConstraints(pattern=f"^{CLIENT_ID.pattern}$")]
Secret = Annotated[str, StringConstraints(pattern=f"^{SECRET.pattern}$")]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=1024)]


class FixtureError(Exception):
    """A mistake in the fixtures file, in one line (the CLI exits 2 with it)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NexiApp(_Strict):
    client_id: ClientId
    client_secret: Secret
    name: str = "Nexi SoftPOS app"
    redirect_uris: list[str] = []
    scope: str = ""
    #: a CSR (PEM) to sign, or a private key (PEM) to make the CSR from; relative to the file
    csr: str | None = None
    key: str | None = None


class App(_Strict):
    client_id: ClientId
    client_secret: Secret
    name: str = "OAuth app"
    redirect_uris: list[str] = []
    scope: str = ""


class MobilePayClient(_Strict):
    client_id: ClientId
    client_secret: Secret
    name: str = "MobilePay integrator"


class B2BinPayUser(_Strict):
    login: ClientId
    password: Secret
    name: str = "B2BINPAY API user"


class Terminal(_Strict):
    tid: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    kind: Literal["softpos", "mpos"]


class PointOfSale(_Strict):
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    terminals: list[Terminal] = []


class User(_Strict):
    username: str
    password: Password


class AxeptKey(_Strict):
    key_id: Annotated[int, Field(ge=1)]
    key: Secret


class Merchant(_Strict):
    id: Annotated[int, Field(ge=1, le=2**31 - 1)]
    name: str = ""
    vat: str | None = None
    grants: list[str] = []
    points_of_sale: list[PointOfSale] = []
    users: list[User] = []
    axept_keys: list[AxeptKey] = []


class NexiSection(_Strict):
    apps: list[NexiApp] = []


class MobilePaySection(_Strict):
    clients: list[MobilePayClient] = []


class B2BinPaySection(_Strict):
    users: list[B2BinPayUser] = []


class Fixtures(_Strict):
    nexi: NexiSection = NexiSection()
    mobilepay: MobilePaySection = MobilePaySection()
    b2binpay: B2BinPaySection = B2BinPaySection()
    apps: list[App] = []
    merchants: list[Merchant] = []

    def client_ids(self) -> list[str]:
        return [
            *(a.client_id for a in self.nexi.apps),
            *(c.client_id for c in self.mobilepay.clients),
            *(u.login for u in self.b2binpay.users),
            *(a.client_id for a in self.apps),
        ]


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err: ErrorDetails) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    field = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        if field in ("client_id", "login"):
            return "must have 1 to 128 characters among A-Z a-z 0-9 . _ ~ -"
        return f"must have {MIN_FIXED_SECRET} to 256 printable ASCII characters, no space"
    return err["msg"].removeprefix("Value error, ")


def parse_fixtures(text: str, *, source: str = "fixtures") -> Fixtures:
    """The fixtures in ``text`` (TOML), checked; ``FixtureError`` (one line) if not."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FixtureError(f"{source}: not valid TOML: {e}") from None
    try:
        fixtures = Fixtures.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False, include_input=False)[0]
        loc = tuple(first.get("loc", ()))
        raise FixtureError(f"{source}: {_where(loc)}: {_message(first)}") from None
    _check_whole(fixtures, source)
    return fixtures


def load_fixtures(path: Path) -> Fixtures:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FixtureError(f"{path}: cannot be read: {type(e).__name__}") from None
    return parse_fixtures(text, source=str(path))


def _duplicates(values: list[str]) -> list[str]:
    return [v for v, n in Counter(values).items() if n > 1]


def _check_whole(f: Fixtures, source: str) -> None:
    """The rules across entries: ids unique, grants naming apps of the file, key ids in order."""
    problem = _duplicate_ids(f) or next(
        filter(None, (_merchant_problem(i, m, f.client_ids()) for i, m in enumerate(f.merchants))), None
    )
    if problem:
        raise FixtureError(f"{source}: {problem}")


def _duplicate_ids(f: Fixtures) -> str | None:
    for i, app in enumerate(f.nexi.apps):
        if app.csr is not None and app.key is not None:
            return f"nexi.apps[{i}]: give csr or key, not both"
    groups = [
        ("client id", f.client_ids()),
        ("merchant id", [str(m.id) for m in f.merchants]),
        ("VAT number", [m.vat for m in f.merchants if m.vat is not None]),
        ("point of sale", [p.id for m in f.merchants for p in m.points_of_sale]),
        ("terminal id", [t.tid for m in f.merchants for p in m.points_of_sale for t in p.terminals]),
        ("merchant user", [u.username.lower() for m in f.merchants for u in m.users]),
    ]
    for what, values in groups:
        for dup in _duplicates(values):
            return f"duplicate {what} {dup!r}"
    return None


def _merchant_problem(i: int, m: Merchant, clients: list[str]) -> str | None:
    where = f"merchants[{i}] (id {m.id})"
    if m.vat is not None and not VAT.fullmatch(m.vat):
        return f"{where}.vat: must be DK or FI followed by 8 digits"
    for g in m.grants:
        if g not in clients:
            return f"{where}.grants: no app, client or login {g!r} in this file"
    for j, u in enumerate(m.users):
        if len(u.username) > 254 or not EMAIL.fullmatch(u.username):
            return f"{where}.users[{j}].username: must be an e-mail address"
    ids = [k.key_id for k in m.axept_keys]
    if ids != list(range(1, len(ids) + 1)):
        return f"{where}.axept_keys: key ids must be 1, 2, 3 ... in order (the provider numbers them)"
    return None
