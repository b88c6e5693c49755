"""A small payments API behind tessera, protected by ``tessera.sdk.resource``.

Two route groups, each with its own verifier and its own keys: each profile has its own
audience (and ``prf`` claim), so neither group takes the other's tokens.

MobilePay PoS style — tokens from ``POST /integrator-authentication/connect/token``
(RS256 keys from ``/integrator-authentication/.well-known/openid-configuration/jwks``, issuer
``<tessera>/integrator-authentication``, audience ``<issuer>/resources``, scope
``integrator_scope``), with MobilePay's merchant rule, refusing as the PoS V10 API does
(``{"code", "message", "CorrelationId"}``): a token with ``merchant_vat`` acts for that
merchant only; a token without it names the merchant in ``x-mobilepay-merchant-vat-number``
on every call (1151 missing, 1155 duplicated, 1159 invalid, 1182 bad claim); another
merchant's payment is 403/1411; an ``x-ibm-client-id`` that is not the token's client is 401.

    POST /pos/v10/payments                {"amount": 1250, "currencyCode": "DKK", "orderId": "A-1"} → 201
    GET  /pos/v10/payments/{paymentId}    the merchant's own payments (another merchant's: 403/1411; none: 404)

axept style — tokens from ``POST /axept/v1/authenticate`` (keys from ``/oauth2/jwks``, issuer
``<tessera>``, audience ``axeptConnectCloud-merchant-client``), the merchant being the
token's ``unique_name``:

    POST /axept/v1/transactions           {"amount": 995, "currency": "GBP"} → 201
    GET  /axept/v1/transactions/{id}

    GET  /health                          no token needed

Configuration (environment): ``TESSERA_URL`` (the issuer, default
``https://localhost:8443``), ``TESSERA_CA`` (the CA that signed its TLS certificate,
default ``.tessera/ca.pem``), ``PAYMENTS_HOST``/``PAYMENTS_PORT`` (default
``127.0.0.1:8080``). ``python examples/payments_api.py`` serves it with uvicorn;
``--fastapi`` serves the same API written with FastAPI, if FastAPI is installed.
See examples/README.md.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tessera.sdk.resource import (
    AuthContext,
    JWKSCache,
    MobilePayMerchantRule,
    ResourceError,
    TokenVerifier,
    require_token,
    resource_error_handler,
)

MOBILEPAY_PREFIX = "/integrator-authentication"
#: axept's audience, as its sample token names it (TESSERA_AXEPT_AUDIENCE on the server).
AXEPT_AUDIENCE = "axeptConnectCloud-merchant-client"
MOBILEPAY_JWKS = MOBILEPAY_PREFIX + "/.well-known/openid-configuration/jwks"
NATIVE_JWKS = "/oauth2/jwks"  # the shared ring's keys, which sign axept's tokens


@dataclass
class Ledger:
    """The payments, in memory, each owned by one merchant."""

    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self, owner: str, fields: dict[str, Any]) -> dict[str, Any]:
        payment = {"paymentId": str(uuid.uuid4()), "status": "Initiated", **fields}
        with self.lock:
            self.payments[payment["paymentId"]] = {"owner": owner, "payment": payment}
        return payment

    def get(self, owner: str, payment_id: str) -> dict[str, Any] | None:
        with self.lock:
            entry = self.payments.get(payment_id)
        return entry["payment"] if entry and entry["owner"] == owner else None

    def owner(self, payment_id: str) -> str | None:
        with self.lock:
            entry = self.payments.get(payment_id)
        return entry["owner"] if entry else None


@dataclass
class Protection:
    """The dependencies of both route groups, built from one tessera's URL and CA."""

    mobilepay: Any  # TokenDependency
    axept: Any
    jwks: JWKSCache  # MobilePay's keys
    axept_jwks: JWKSCache
    rule: MobilePayMerchantRule

    @classmethod
    def for_tessera(
        cls, tessera_url: str, *, verify: Any = True, jwks: JWKSCache | None = None, axept_jwks: JWKSCache | None = None
    ) -> Protection:
        url = tessera_url.rstrip("/")
        jwks = jwks or JWKSCache(url + MOBILEPAY_JWKS, verify=verify, min_refetch_interval=60)
        axept_jwks = axept_jwks or JWKSCache(url + NATIVE_JWKS, verify=verify, min_refetch_interval=60)
        # Each profile has its own audience (tessera.core.profiles) and names itself (prf): a
        # token of another profile (a native /oauth2 token, say) is refused by both verifiers.
        mobilepay = TokenVerifier(
            jwks,
            issuer=url + MOBILEPAY_PREFIX,
            audience=url + MOBILEPAY_PREFIX + "/resources",
            required_scopes=["integrator_scope"],
            algorithms=["RS256"],
            profile="mobilepay",
        )
        axept = TokenVerifier(axept_jwks, issuer=url, audience=AXEPT_AUDIENCE, profile="axept")
        rule = MobilePayMerchantRule()
        return cls(
            mobilepay=require_token(mobilepay, merchant_rule=rule),
            axept=require_token(axept),
            jwks=jwks,
            axept_jwks=axept_jwks,
            rule=rule,
        )


def _problem(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _amount(body: Any) -> int | None:
    amount = body.get("amount") if isinstance(body, dict) else None
    return amount if isinstance(amount, int) and not isinstance(amount, bool) and amount > 0 else None


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _axept_merchant(auth: AuthContext) -> str | None:
    # The verifier took axept tokens only (audience and prf); the merchant is unique_name.
    merchant = auth.claims.get("unique_name")
    return merchant if isinstance(merchant, str) and merchant.isdigit() else None


def create_app(tessera_url: str | None = None, *, verify: Any = None, jwks: JWKSCache | None = None) -> Starlette:
    """The Starlette payments API, verifying tokens of the tessera at ``tessera_url``."""
    url = tessera_url or os.environ.get("TESSERA_URL", "https://localhost:8443")
    if verify is None:
        ca = Path(os.environ.get("TESSERA_CA", ".tessera/ca.pem"))
        verify = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
    guard = Protection.for_tessera(url, verify=verify, jwks=jwks)
    ledger = Ledger()

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # -------------------------------------------------------------- MobilePay PoS style
    @guard.mobilepay.protect
    async def create_pos_payment(request: Request) -> Response:
        auth: AuthContext = request.state.auth
        body = await _json(request)
        amount = _amount(body)
        if amount is None:
            return _problem(400, "invalid_request", "amount must be a positive integer (minor units)")
        payment = ledger.create(
            auth.merchant_vat,
            {
                "amount": amount,
                "currencyCode": body.get("currencyCode", "DKK"),
                "orderId": body.get("orderId"),
                "merchantVatNumber": auth.merchant_vat,
                "integratorClientId": auth.client_id,
            },
        )
        return JSONResponse(payment, status_code=201)

    @guard.mobilepay.protect
    async def get_pos_payment(request: Request) -> Response:
        payment_id = request.path_params["payment_id"]
        owner = ledger.owner(payment_id)
        if owner is None:
            return _problem(404, "not_found", "no such payment")
        guard.rule.owner_check(request.state.auth.merchant_vat, owner)  # another merchant's: 403/1411
        return JSONResponse(ledger.get(owner, payment_id))

    # -------------------------------------------------------------- axept style
    @guard.axept.protect
    async def create_transaction(request: Request) -> Response:
        merchant = _axept_merchant(request.state.auth)
        if merchant is None:
            return _problem(403, "insufficient_scope", "an axept merchant token is required")
        body = await _json(request)
        amount = _amount(body)
        if amount is None:
            return _problem(400, "invalid_request", "amount must be a positive integer (minor units)")
        payment = ledger.create(
            f"axept:{merchant}",
            {"amount": amount, "currency": body.get("currency", "GBP"), "merchantId": int(merchant)},
        )
        return JSONResponse(payment, status_code=201)

    @guard.axept.protect
    async def get_transaction(request: Request) -> Response:
        merchant = _axept_merchant(request.state.auth)
        payment = ledger.get(f"axept:{merchant}", request.path_params["payment_id"]) if merchant else None
        if payment is None:
            return _problem(404, "not_found", "no such transaction for this merchant")
        return JSONResponse(payment)

    app = Starlette(
        routes=[
            Route("/health", health),
            Route("/pos/v10/payments", create_pos_payment, methods=["POST"]),
            Route("/pos/v10/payments/{payment_id}", get_pos_payment, methods=["GET"]),
            Route("/axept/v1/transactions", create_transaction, methods=["POST"]),
            Route("/axept/v1/transactions/{payment_id}", get_transaction, methods=["GET"]),
        ],
        exception_handlers={ResourceError: resource_error_handler},
    )
    app.state.ledger = ledger
    app.state.jwks = guard.jwks
    app.state.axept_jwks = guard.axept_jwks
    return app


def create_fastapi_app(tessera_url: str | None = None, *, verify: Any = None) -> Any:
    """The MobilePay route group written with FastAPI (``Depends``); needs ``fastapi``."""
    try:
        from fastapi import Depends, FastAPI, HTTPException
    except ImportError as e:  # FastAPI is not a dependency of tessera
        raise SystemExit("FastAPI is not installed: pip install fastapi") from e

    url = tessera_url or os.environ.get("TESSERA_URL", "https://localhost:8443")
    if verify is None:
        ca = Path(os.environ.get("TESSERA_CA", ".tessera/ca.pem"))
        verify = ssl.create_default_context(cafile=str(ca)) if ca.exists() else True
    guard = Protection.for_tessera(url, verify=verify)
    ledger = Ledger()
    app = FastAPI(title="payments (FastAPI)")
    app.add_exception_handler(ResourceError, resource_error_handler)  # RFC 6750 bodies

    @app.post("/pos/v10/payments", status_code=201)
    async def create_pos_payment(body: dict, auth: AuthContext = Depends(guard.mobilepay)) -> dict:
        amount = _amount(body)
        if amount is None:
            raise HTTPException(400, "amount must be a positive integer (minor units)")
        return ledger.create(
            auth.merchant_vat,
            {"amount": amount, "currencyCode": body.get("currencyCode", "DKK"), "merchantVatNumber": auth.merchant_vat},
        )

    @app.get("/pos/v10/payments/{payment_id}")
    async def get_pos_payment(payment_id: str, auth: AuthContext = Depends(guard.mobilepay)) -> dict:
        owner = ledger.owner(payment_id)
        if owner is None:
            raise HTTPException(404, "no such payment")
        guard.rule.owner_check(auth.merchant_vat, owner)  # another merchant's: 403/1411
        return ledger.get(owner, payment_id)

    return app


def main(argv: list[str]) -> None:
    import uvicorn

    app = create_fastapi_app() if "--fastapi" in argv else create_app()
    uvicorn.run(
        app, host=os.environ.get("PAYMENTS_HOST", "127.0.0.1"), port=int(os.environ.get("PAYMENTS_PORT", "8080"))
    )


if __name__ == "__main__":
    main(sys.argv[1:])
