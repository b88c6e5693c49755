"""The ``tessera`` command. The contract (names, flags, ``--json`` output) is kept stable:
tests and documentation rely on it. Every command takes ``--home DIR`` (default
``$TESSERA_HOME``, else ``./.tessera``); with ``--json`` a command prints one JSON object."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from tessera.config import ConfigError, Settings, redact_url

app = typer.Typer(no_args_is_help=True, add_completion=False, help="tessera: authorization server for B2B payment channels")
clients_app = typer.Typer(no_args_is_help=True, help="Register integrator apps (OAuth clients).")
certs_app = typer.Typer(no_args_is_help=True, help="The developer CA: sign CSRs, revoke certificates.")
merchants_app = typer.Typer(no_args_is_help=True, help="Merchants, their terminals, users and grants.")
jwks_app = typer.Typer(no_args_is_help=True, help="The server's signing and encryption keys.")
enrollments_app = typer.Typer(no_args_is_help=True, help="SoftPOS enrollments.")
keys_app = typer.Typer(no_args_is_help=True, help="axept authentication keys (per merchant).")
app.add_typer(clients_app, name="clients")
app.add_typer(certs_app, name="certs")
app.add_typer(merchants_app, name="merchants")
app.add_typer(jwks_app, name="jwks")
app.add_typer(enrollments_app, name="enrollments")
app.add_typer(keys_app, name="keys")

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

HomeOpt = Annotated[Optional[Path], typer.Option("--home", help="tessera home (default $TESSERA_HOME, else ./.tessera)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]

_global_home: dict[str, Path | None] = {"home": None}


@app.callback()
def _main(home: HomeOpt = None) -> None:
    _global_home["home"] = home


def _settings(home: Path | None, **overrides: Any) -> Settings:
    return Settings.load(home or _global_home["home"], **overrides)


def _require_home(settings: Settings) -> None:
    if not settings.config_path.exists():
        _fail(f"no tessera home at {settings.home} (run `tessera init` first, or pass --home)")


def _store(settings: Settings):
    from tessera.home import open_store

    _require_home(settings)
    return open_store(settings)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _emit(as_json: bool, data: dict[str, Any], human: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    else:
        out.print(human if human is not None else "\n".join(f"{k}: {v}" for k, v in data.items()))


def _now() -> int:
    return int(time.time())


# --- init / serve ----------------------------------------------------------------------------
@app.command()
def init(
    home: HomeOpt = None,
    environment: Annotated[str, typer.Option(help="staging or production")] = "staging",
    issuer: Annotated[Optional[str], typer.Option(help="issuer URL (default https://HOSTNAME:PORT)")] = None,
    hostname: Annotated[str, typer.Option(help="name in the server's TLS certificate")] = "localhost",
    port: Annotated[int, typer.Option(help="port the issuer URL names")] = 8443,
    database_url: Annotated[Optional[str], typer.Option(
        "--database-url", help="SQLAlchemy URL of the database (default $TESSERA_DATABASE_URL, else SQLite in the home); "
                               "recorded in tessera.toml without its password")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new home: CA, server TLS certificate, keys, database, tessera.toml."""
    from tessera.home import HomeExists, init_home

    if environment not in ("staging", "production"):
        _fail("--environment must be staging or production")
    target = home or _global_home["home"] or Settings.load().home
    try:
        s = init_home(target, environment=environment, issuer=issuer, hostname=hostname, port=port, now=_now(),
                      database_url=database_url)
    except HomeExists as e:
        _fail(str(e))
    data = {"home": str(s.home.resolve()), "issuer": s.issuer, "environment": s.environment,
            "ca": str(s.ca_cert_path.resolve()), "database_url": redact_url(s.database_url)}
    _emit(as_json, data, f"initialised {data['home']}\n  issuer: {s.issuer}\n  CA certificate: {data['ca']}\n"
          f"  database: {data['database_url']}\nnext: tessera --home {s.home} serve")


@app.command()
def serve(
    home: HomeOpt = None,
    host: Annotated[Optional[str], typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (default 8443)")] = None,
    workers: Annotated[Optional[int], typer.Option(help="worker processes")] = None,
) -> None:
    """Serve HTTPS with optional client certificates (embedded mTLS), or plain HTTP behind a proxy."""
    from tessera.server import run

    settings = _settings(home, host=host, port=port, workers=workers)
    _require_home(settings)
    run(settings, announce=err.print)


# --- clients --------------------------------------------------------------------------------
@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="the app's name")],
    redirect_uri: Annotated[Optional[list[str]], typer.Option("--redirect-uri", help="registered redirect URI (repeatable)")] = None,
    scope: Annotated[str, typer.Option(help="space-separated scopes the client may ask for")] = "",
    auth_method: Annotated[Optional[list[str]], typer.Option(
        "--auth-method", help="tls_client_auth, private_key_jwt, client_secret_basic or client_secret_post (repeatable; "
                              "default: client_secret_basic and client_secret_post)")] = None,
    jwks: Annotated[Optional[Path], typer.Option("--jwks", help="JWKS file with the client's public keys (private_key_jwt)",
                                                 exists=True, dir_okay=False)] = None,
    require_par: Annotated[bool, typer.Option("--require-par", help="the client must push its authorization requests (PAR)")] = False,
    grant_type: Annotated[Optional[list[str]], typer.Option(
        "--grant-type", help="client_credentials, authorization_code or refresh_token (repeatable; "
                             "default: client_credentials and authorization_code)")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a client; prints its client_id and, for the secret methods, its client_secret
    (the secret is shown only now)."""
    from tessera.core.client_auth import SECRET_METHODS, validate_jwks
    from tessera.core.models import AUTH_METHODS, Client
    from tessera.core.flows.native import GRANT_TYPES
    from tessera.core.secrets import generate_client_id, generate_secret, hash_secret

    methods = tuple(dict.fromkeys(auth_method or ("client_secret_basic", "client_secret_post")))
    for m in methods:
        if m not in AUTH_METHODS:
            _fail(f"--auth-method must be one of {', '.join(AUTH_METHODS)} (got {m!r})")
    grants = tuple(dict.fromkeys(grant_type or ("client_credentials", "authorization_code")))
    for g in grants:
        if g not in GRANT_TYPES:
            _fail(f"--grant-type must be one of {', '.join(GRANT_TYPES)} (got {g!r})")
    from tessera.core.par import validate_redirect_uri

    for uri in redirect_uri or ():
        try:
            validate_redirect_uri(uri)
        except ValueError as e:
            _fail(f"--redirect-uri: {e}")
    keys = None
    if jwks is not None:
        try:
            keys = validate_jwks(json.loads(jwks.read_text()))
        except (ValueError, TypeError) as e:
            _fail(f"--jwks: {e}")
    settings = _settings(home)
    store = _store(settings)
    secret = generate_secret() if any(m in SECRET_METHODS for m in methods) else None
    client = Client(
        client_id=generate_client_id(), name=name,
        secret_hash=hash_secret(secret, settings.pepper_bytes()) if secret else None,
        redirect_uris=tuple(redirect_uri or ()), scope=scope, auth_methods=methods,
        grant_types=grants, require_par=require_par, jwks=keys, created_at=_now(),
    )
    store.create_client(client)
    data = {"client_id": client.client_id}
    if secret is not None:
        data["client_secret"] = secret
    _emit(as_json, data)


@clients_app.command("list")
def clients_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    store = _store(_settings(home))
    rows = [{"client_id": c.client_id, "name": c.name, "status": c.status, "redirect_uris": list(c.redirect_uris),
             "auth_methods": list(c.auth_methods)} for c in store.list_clients()]
    if as_json:
        _emit(True, {"clients": rows})
        return
    table = Table("client_id", "name", "status", "redirect_uris")
    for r in rows:
        table.add_row(r["client_id"], r["name"], r["status"], " ".join(r["redirect_uris"]))
    out.print(table)


@clients_app.command("revoke")
def clients_revoke(client: Annotated[str, typer.Option("--client", help="client_id")], home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a client: its credentials stop working on the next request."""
    store = _store(_settings(home))
    if not store.set_client_status(client, "revoked"):
        _fail(f"no client {client}")
    _emit(as_json, {"client_id": client, "status": "revoked"})


# --- certificates ------------------------------------------------------------------------------
@certs_app.command("sign")
def certs_sign(
    client: Annotated[str, typer.Option("--client", help="client_id the certificate is bound to")],
    csr: Annotated[Path, typer.Option("--csr", help="the CSR file (PEM or DER)", exists=True, dir_okay=False)],
    out_path: Annotated[Path, typer.Option("--out", help="where to write the certificate (PEM)")],
    p7b: Annotated[Optional[Path], typer.Option("--p7b", help="also write it as PKCS#7 (.p7b)")] = None,
    validity_days: Annotated[Optional[int], typer.Option(help="validity in days (default: cert_validity_days)")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign a developer CSR with the home's CA and bind the certificate to a client."""
    from tessera.ca.csr import CSRRejected
    from tessera.core.models import CertificateRecord
    from tessera.home import load_ca

    settings = _settings(home)
    store = _store(settings)
    if store.get_client(client) is None:
        _fail(f"no client {client}")
    ca = load_ca(settings)
    try:
        issued = ca.sign_csr(csr.read_bytes(), validity_days=validity_days or settings.cert_validity_days)
    except CSRRejected as e:
        _fail(f"CSR refused: {e.reason}")
    except ValueError as e:
        _fail(str(e))
    store.add_certificate(CertificateRecord(
        serial=issued.serial, client_id=client, thumbprint=issued.thumbprint, subject=issued.subject,
        not_before=int(issued.not_before.timestamp()), not_after=int(issued.not_after.timestamp()),
        pem=issued.pem.decode(), created_at=_now(),
    ))
    out_path.write_bytes(issued.pem)
    if p7b:
        p7b.write_bytes(issued.p7b)
    _emit(as_json, {"serial": issued.serial, "client_id": client, "x5t#S256": issued.thumbprint, "subject": issued.subject,
                    "not_after": issued.not_after.isoformat(), "pem": str(out_path), "p7b": str(p7b) if p7b else None})


@certs_app.command("revoke")
def certs_revoke(serial: Annotated[str, typer.Option("--serial", help="certificate serial (hex)")], home: HomeOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Revoke a developer certificate; it is refused from the next request on."""
    store = _store(_settings(home))
    rec = store.revoke_certificate(serial, _now())
    if rec is None:
        _fail(f"no certificate with serial {serial}")
    _emit(as_json, {"serial": rec.serial, "client_id": rec.client_id, "revoked_at": rec.revoked_at})


@certs_app.command("list")
def certs_list(client: Annotated[Optional[str], typer.Option("--client")] = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    store = _store(_settings(home))
    ids = [client] if client else [c.client_id for c in store.list_clients()]
    rows = [{"serial": r.serial, "client_id": r.client_id, "subject": r.subject, "not_after": r.not_after,
             "revoked": r.revoked_at is not None, "x5t#S256": r.thumbprint}
            for cid in ids for r in store.certificates_for_client(cid)]
    _emit(as_json, {"certificates": rows}, None if as_json else "\n".join(
        f"{r['serial']}  {r['client_id']}  {'REVOKED ' if r['revoked'] else ''}{r['subject']}" for r in rows) or "no certificates")


# --- merchants ----------------------------------------------------------------------------------
@merchants_app.command("create")
def merchants_create(
    merchant_id: Annotated[int, typer.Option("--merchant-id")],
    vat: Annotated[Optional[str], typer.Option("--vat", help="VAT number, e.g. DK12345678")] = None,
    name: Annotated[str, typer.Option("--name")] = "",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from tessera.core.models import Merchant
    from tessera.storage.base import Conflict

    store = _store(_settings(home))
    try:
        store.create_merchant(Merchant(merchant_id, name, vat, _now()))
    except Conflict as e:
        _fail(str(e))
    _emit(as_json, {"merchantId": merchant_id, "vat": vat, "name": name})


@merchants_app.command("add-terminal")
def merchants_add_terminal(
    merchant_id: Annotated[int, typer.Option("--merchant-id")],
    pos: Annotated[str, typer.Option("--pos", help="point-of-sale id")],
    tid: Annotated[str, typer.Option("--tid", help="terminal id")],
    kind: Annotated[str, typer.Option("--kind", help="softpos or mpos")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    from tessera.core.models import Terminal
    from tessera.storage.base import Conflict

    if kind not in ("softpos", "mpos"):
        _fail("--kind must be softpos or mpos")
    store = _store(_settings(home))
    others = store.terminals_at(pos)
    if others and others[0].merchant_id != merchant_id:
        _fail(f"point of sale {pos} belongs to merchant {others[0].merchant_id}")
    try:
        store.add_terminal(Terminal(tid, merchant_id, pos, kind))
    except Conflict as e:
        _fail(str(e))
    _emit(as_json, {"merchantId": merchant_id, "pos": pos, "tid": tid, "kind": kind})


@merchants_app.command("add-user")
def merchants_add_user(
    merchant_id: Annotated[int, typer.Option("--merchant-id")],
    username: Annotated[str, typer.Option("--username", help="the user's e-mail address")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read the password from standard input")] = False,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a merchant user (the login of the enrollment page); the password is hashed with argon2id."""
    from tessera.core.enrollment import EMAIL
    from tessera.core.models import MerchantUser
    from tessera.core.secrets import hash_password
    from tessera.storage.base import Conflict

    if not password_stdin:
        _fail("pass --password-stdin and give the password on standard input")
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        _fail("the password must have at least 8 characters")
    if not EMAIL.match(username):
        _fail("--username must be an e-mail address")
    store = _store(_settings(home))
    if store.get_merchant(merchant_id) is None:
        _fail(f"no merchant {merchant_id}")
    try:
        store.add_user(MerchantUser(username.lower(), merchant_id, hash_password(password)))
    except Conflict as e:
        _fail(str(e))
    _emit(as_json, {"merchantId": merchant_id, "username": username.lower()})


@merchants_app.command("grant")
def merchants_grant(
    merchant_id: Annotated[int, typer.Option("--merchant-id")],
    client: Annotated[str, typer.Option("--client", help="client_id of the integrator app")],
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Record that the merchant granted an integrator app access."""
    from tessera.storage.base import Conflict

    store = _store(_settings(home))
    if store.get_merchant(merchant_id) is None:
        _fail(f"no merchant {merchant_id}")
    if store.get_client(client) is None:
        _fail(f"no client {client}")
    try:
        store.grant(merchant_id, client, _now())
    except Conflict as e:
        _fail(str(e))
    _emit(as_json, {"merchantId": merchant_id, "client_id": client, "granted": True})


# --- axept API keys -------------------------------------------------------------------------------
MerchantOpt = Annotated[int, typer.Option("--merchant-id")]
KeyIdOpt = Annotated[int, typer.Option("--key-id")]


@keys_app.command("create")
def keys_create(merchant_id: MerchantOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Create an authentication key; its value is printed now and never again."""
    from tessera.core.apikeys import create_key
    from tessera.storage.base import Conflict

    settings = _settings(home)
    store = _store(settings)
    if store.get_merchant(merchant_id) is None:
        _fail(f"no merchant {merchant_id}")
    try:
        record, value = create_key(store, settings.pepper_bytes(), merchant_id, _now(), max_enabled=settings.axept_max_enabled_keys)
    except Conflict as e:
        _fail(str(e))
    _emit(as_json, {"merchantId": record.merchant_id, "keyId": record.key_id, "key": value})


@keys_app.command("list")
def keys_list(merchant_id: MerchantOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    store = _store(_settings(home))
    rows = [{"keyId": k.key_id, "enabled": k.enabled, "created_at": k.created_at, "disabled_at": k.disabled_at}
            for k in store.list_api_keys(merchant_id)]
    _emit(as_json, {"merchantId": merchant_id, "keys": rows}, None if as_json else "\n".join(
        f"key {r['keyId']}: {'enabled' if r['enabled'] else 'disabled'}" for r in rows) or "no keys")


def _set_key(merchant_id: int, key_id: int, enabled: bool, home: Path | None, as_json: bool, yes: bool = False) -> None:
    from tessera.storage.base import Conflict

    settings = _settings(home)
    store = _store(settings)
    keys = store.list_api_keys(merchant_id)
    if not any(k.key_id == key_id for k in keys):
        _fail(f"merchant {merchant_id} has no key {key_id}")
    others_enabled = [k for k in keys if k.enabled and k.key_id != key_id]
    if not enabled and not others_enabled and not yes:
        _fail(f"key {key_id} is merchant {merchant_id}'s last enabled key: disabling it locks the merchant out. "
              "Pass --yes to confirm.")
    try:
        record = store.set_api_key_enabled(merchant_id, key_id, enabled, _now(), max_enabled=settings.axept_max_enabled_keys)
    except Conflict as e:
        _fail(str(e))
    _emit(as_json, {"merchantId": merchant_id, "keyId": key_id, "enabled": record.enabled})


@keys_app.command("disable")
def keys_disable(merchant_id: MerchantOpt, key_id: KeyIdOpt,
                 yes: Annotated[bool, typer.Option("--yes", help="confirm disabling the last enabled key")] = False,
                 home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Disable a (compromised) key: refused from the next request on."""
    _set_key(merchant_id, key_id, False, home, as_json, yes)


@keys_app.command("enable")
def keys_enable(merchant_id: MerchantOpt, key_id: KeyIdOpt, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Enable a key again (at most three enabled per merchant)."""
    _set_key(merchant_id, key_id, True, home, as_json)


# --- server keys ----------------------------------------------------------------------------------
@jwks_app.command("rotate")
def jwks_rotate(
    use: Annotated[str, typer.Option("--use", help="sig or enc")] = "sig",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote the published next key, retire the current one (kept published until what it
    made has expired), and publish a new next key. ``sig`` rotates every signing ring: the
    shared one and MobilePay's RS256 ring (``rings`` in the JSON answer)."""
    from tessera.core.keys import rotate

    if use not in ("sig", "enc"):
        _fail("--use must be sig or enc")
    settings = _settings(home)
    store = _store(settings)
    from tessera.home import check_kek

    check_kek(settings, store)  # never seal new keys under a wrong KEK
    if use == "sig":
        retain = max(settings.nexi_token_ttl, settings.access_token_ttl, settings.id_token_ttl, settings.mobilepay_token_ttl,
                     settings.axept_token_ttl, settings.b2binpay_access_ttl) + settings.clock_skew
    else:
        # the longest assertion (native or Nexi) + JWKS cache lifetime of clients
        retain = max(settings.assertion_max_lifetime, settings.nexi_assertion_max_lifetime) + settings.clock_skew + 300
    result = rotate(store, settings.kek_bytes(), use, retain_seconds=retain, signing_alg=settings.signing_alg,
                    enc_bits=settings.encryption_key_bits, now=_now())
    _emit(as_json, result)


@jwks_app.command("list")
def jwks_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    store = _store(_settings(home))
    rows = [{"kid": k.kid, "use": k.use, "alg": k.alg, "status": k.status, "retire_at": k.retire_at} for k in store.list_server_keys()]
    _emit(as_json, {"keys": rows}, None if as_json else "\n".join(f"{r['use']}  {r['status']:8} {r['alg']:13} {r['kid']}" for r in rows))


# --- enrollments ---------------------------------------------------------------------------------
@enrollments_app.command("list")
def enrollments_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    store = _store(_settings(home))
    rows = [{"id": e.id, "client_id": e.client_id, "merchantId": e.merchant_id, "pointOfSale": e.pos,
             "terminal_ids": list(e.tids), "username_merchant": e.username, "app_deviceid": e.device_id,
             "created_at": e.created_at}
            for e in store.list_enrollments()]
    if as_json:
        _emit(True, {"enrollments": rows})
        return
    table = Table("id", "client_id", "merchant", "pos", "TIDs", "username", "device")
    for r in rows:
        table.add_row(str(r["id"]), r["client_id"], str(r["merchantId"]), r["pointOfSale"], " ".join(r["terminal_ids"]),
                      r["username_merchant"], r["app_deviceid"] or "-")
    out.print(table)


# --- security events (issue 5) ----------------------------------------------------------------------------
events_app = typer.Typer(no_args_is_help=True, help="Security events recorded by the server.")
app.add_typer(events_app, name="events")
#: The kinds the server records today (``Core.event``); others may be added.
EVENT_KINDS = ("refresh_family_revoked", "jti_replayed", "revoked_certificate_used", "brute_force_lockout",
               "credential_failures_spread", "authorization_code_replayed")


@events_app.command("list")
def events_list(
    kind: Annotated[Optional[str], typer.Option("--kind", help=f"only this kind ({', '.join(EVENT_KINDS)})")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100_000, help="at most this many, the latest")] = 100,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The latest security events (oldest first): replayed refresh tokens, assertions and codes,
    revoked certificates used, brute-force lockouts."""
    from datetime import datetime, timezone

    from rich.markup import escape

    store = _store(_settings(home))
    rows = [{"id": e.id, "kind": e.kind, "client_id": e.client_id, "detail": e.detail, "created_at": e.created_at}
            for e in store.list_events(limit, kind=kind)]
    if as_json:
        _emit(True, {"events": rows})
        return
    if not rows:
        out.print("no events")
        return
    for r in rows:  # one line per event: easy to grep
        when = datetime.fromtimestamp(r["created_at"], tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.print(escape(f"{r['id']}  {when}  {r['kind']}  {r['client_id'] or '-'}  {json.dumps(r['detail'], sort_keys=True)}"),
                  highlight=False)


# --- housekeeping ---------------------------------------------------------------------------------
@app.command("purge")
def purge_cmd(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Delete expired artefacts (pushed requests, codes, jtis, refresh tokens and families no
    token needs any more) and security events past TESSERA_EVENT_RETENTION_DAYS, now; prints
    the rows deleted per kind. The server also does this every TESSERA_PURGE_INTERVAL_SECONDS."""
    from tessera.core import purge

    settings = _settings(home)
    store = _store(settings)
    try:
        counts = purge.purge(store, settings, _now())
    finally:
        store.close()
    _emit(as_json, {"deleted": counts, "total": sum(counts.values())},
          None if as_json else ("\n".join(f"{k}: {v}" for k, v in sorted(counts.items())) + "\n" if counts else "")
          + f"total: {sum(counts.values())}")


@app.command()
def demo(
    url: Annotated[str, typer.Option("--url", help="base URL of a running tessera")] = "https://127.0.0.1:8443",
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run every profile's flow end to end against a running server, printing each step."""
    from tessera.demo import run_demo

    settings = _settings(home)
    _require_home(settings)
    result = run_demo(settings, url, say=(lambda *_: None) if as_json else out.print)
    if as_json:
        _emit(True, result)


def main() -> None:  # console-script entry point
    from rich.markup import escape

    try:
        app()
    except ConfigError as e:  # one line, exit 2, no traceback, no secret (its message never holds a value)
        err.print(f"[bold red]configuration error:[/] {escape(str(e))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
