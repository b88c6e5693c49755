"""The table of the admin API's operations: method, path, function, body, and what the
OpenAPI document says of each (``openapi.document`` is made from this table, and so is the
router: an operation cannot be routed without being described, nor the other way round)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from tessera.web.admin_api import bodies as b
from tessera.web.admin_api import resources as r
from tessera.web.admin_api.resources import PREFIX, Answer, Call

#: The body of ``POST /apps/{client_id}/certificates``: a CSR in PEM.
PKCS10 = "application/pkcs10"


@dataclass(frozen=True)
class Query:
    name: str
    description: str
    integer: bool = False


PAGE = (
    Query("limit", "items per page (1 to 200, default 50)", integer=True),
    Query("cursor", "the `next` of the previous page"),
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  #: under PREFIX, with {params}
    run: Callable[[Call], Answer]
    summary: str
    operation_id: str
    status: int = 200
    body: type[BaseModel] | str | None = None  #: a model (JSON), or a media type (raw bytes)
    body_required: bool = True
    query: tuple[Query, ...] = ()
    #: honours Idempotency-Key (a create)
    create: bool = False
    #: needs If-Match (an update)
    update: bool = False
    #: what the answer is (JSON unless a media type)
    produces: tuple[str, ...] = ("application/json",)
    #: an organisation's operator may call it (its own apps); else platform operators only
    org_scoped: bool = False
    list: bool = False

    @property
    def full_path(self) -> str:
        return PREFIX + self.path


def _ops() -> list[Operation]:
    o = Operation
    return [
        # apps
        o("POST", "/apps", r.create_app, "Register an app; its secret is shown this once", "createApp", 201,
          b.CreateApp, create=True, org_scoped=True),
        o("GET", "/apps", r.list_apps, "List apps", "listApps",
          query=(*PAGE, Query("org_id", "only this organisation's apps")), org_scoped=True, list=True),
        o("GET", "/apps/{client_id}", r.get_app, "Get an app (with its ETag)", "getApp", org_scoped=True),
        o("PATCH", "/apps/{client_id}", r.update_app, "Change an app's name and redirect URIs (If-Match)",
          "updateApp", body=b.UpdateApp, update=True, org_scoped=True),
        o("POST", "/apps/{client_id}/secret", r.rotate_app_secret,
          "Rotate the app's secret: the new one shown once, the old one valid for the overlap", "rotateAppSecret",
          201, b.RotateSecret, body_required=False, create=True, org_scoped=True),
        o("POST", "/apps/{client_id}/revoke", r.revoke_app, "Revoke an app", "revokeApp", org_scoped=True),
        # certificates
        o("POST", "/apps/{client_id}/certificates", r.sign_certificate, "Sign the app's CSR (PEM)",
          "signCertificate", 201, PKCS10, create=True, org_scoped=True),
        o("GET", "/apps/{client_id}/certificates", r.list_app_certificates, "List the app's certificates",
          "listAppCertificates", query=PAGE, org_scoped=True, list=True),
        o("POST", "/apps/{client_id}/certificates/{serial}/revoke", r.revoke_app_certificate,
          "Revoke one of the app's certificates", "revokeCertificate", org_scoped=True),
        o("GET", "/certificates/{serial}.pem", r.certificate_pem, "A certificate in PEM", "getCertificatePem",
          produces=("application/x-pem-file",), org_scoped=True),
        o("GET", "/certificates/{serial}.p7b", r.certificate_p7b, "A certificate as PKCS#7 (.p7b), PEM or DER",
          "getCertificateP7b", query=(Query("encoding", "pem (default) or der"),),
          produces=("application/x-pkcs7-certificates", "application/pkcs7-mime"), org_scoped=True),
        # organisations
        o("POST", "/organisations", r.create_organisation, "Create an organisation", "createOrganisation", 201,
          b.CreateOrganisation, create=True),
        o("GET", "/organisations", r.list_organisations, "List organisations", "listOrganisations", query=PAGE,
          list=True),
        o("GET", "/organisations/{org_id}", r.get_organisation, "Get an organisation", "getOrganisation"),
        o("POST", "/organisations/{org_id}/invitations", r.invite_developer,
          "Invite a developer of the organisation to the portal (mailed; the link is in the answer only when no "
          "SMTP server is configured)", "inviteDeveloper", 201, b.InviteDeveloper, create=True),
        # merchants
        o("POST", "/merchants", r.create_merchant, "Create a merchant", "createMerchant", 201, b.CreateMerchant,
          create=True),
        o("GET", "/merchants", r.list_merchants_, "List merchants", "listMerchants", query=PAGE, list=True),
        o("GET", "/merchants/{merchant_id}", r.get_merchant, "Get a merchant", "getMerchant"),
        o("POST", "/merchants/{merchant_id}/terminals", r.add_terminal, "Add a terminal at a point of sale",
          "addTerminal", 201, b.AddTerminal, create=True),
        o("GET", "/merchants/{merchant_id}/terminals", r.list_terminals, "List the merchant's terminals",
          "listTerminals", query=PAGE, list=True),
        o("GET", "/merchants/{merchant_id}/points-of-sale", r.list_points_of_sale,
          "List the merchant's points of sale with their terminals", "listPointsOfSale", query=PAGE, list=True),
        o("POST", "/merchants/{merchant_id}/users", r.add_user,
          "Add a merchant user and their portal invitation (the user sets the password there)", "addMerchantUser", 201,
          b.AddUser, create=True),
        o("GET", "/merchants/{merchant_id}/users", r.list_users, "List the merchant's users", "listMerchantUsers",
          query=PAGE, list=True),
        o("POST", "/merchants/{merchant_id}/grants", r.create_grant, "Record the merchant's grant to an app",
          "createGrant", 201, b.CreateGrant, create=True),
        o("GET", "/merchants/{merchant_id}/grants", r.list_grants, "List the apps the merchant granted",
          "listGrants", query=PAGE, list=True),
        o("POST", "/merchants/{merchant_id}/grants/{client_id}/withdraw", r.withdraw_grant,
          "Withdraw the merchant's grant to an app (its next token request for the merchant is refused)",
          "withdrawGrant", body=b.Empty, body_required=False),
        o("POST", "/merchants/{merchant_id}/keys", r.create_key, "Create an axept key, shown this once",
          "createKey", 201, b.Empty, body_required=False, create=True),
        o("GET", "/merchants/{merchant_id}/keys", r.list_keys, "List the merchant's keys (no values)", "listKeys",
          query=PAGE, list=True),
        o("POST", "/merchants/{merchant_id}/keys/{key_id}/disable", r.disable_key,
          "Disable a key (the last enabled one needs confirm_last)", "disableKey", body=b.DisableKey,
          body_required=False),
        o("POST", "/merchants/{merchant_id}/keys/{key_id}/enable", r.enable_key, "Enable a key (at most three)",
          "enableKey", body=b.Empty, body_required=False),
        # events, server keys
        o("GET", "/events", r.list_events, "Security events, oldest first, by cursor", "listEvents",
          query=(*PAGE, Query("kind", "only this kind"), Query("client_id", "only this client's"),
                 Query("since", "created at or after this time (Unix seconds)", integer=True)), list=True),
        o("GET", "/server-keys", r.list_server_keys, "The server's signing and encryption keys", "listServerKeys",
          query=PAGE, list=True),
        o("POST", "/server-keys/{use}/rotate", r.rotate_server_keys, "Rotate the signing (sig) or encryption keys",
          "rotateServerKeys", body=b.Empty, body_required=False),
    ]  # fmt: skip


OPERATIONS: list[Operation] = _ops()

#: Path parameters: their pattern (the router's convertor and the document's schema).
PATH_PARAMS = {
    "client_id": ("str", {"type": "string", "minLength": 1, "maxLength": 64}),
    "serial": ("str", {"type": "string", "pattern": "^[0-9a-fA-F]{1,64}$"}),
    "org_id": ("str", {"type": "string", "minLength": 1, "maxLength": 64}),
    "merchant_id": ("int", {"type": "integer", "minimum": 1, "maximum": 2**53 - 1}),
    "key_id": ("int", {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}),
    "use": ("str", {"type": "string", "enum": ["sig", "enc"]}),
}
