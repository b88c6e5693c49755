"""The admin API's request bodies: strict (an unknown field, a wrong type: 422), and the
source of their JSON Schemas in the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

AuthMethod = Literal["client_secret_basic", "client_secret_post", "tls_client_auth", "private_key_jwt"]
GrantType = Literal["client_credentials", "authorization_code", "refresh_token"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CreateApp(Body):
    """An app (an OAuth client). ``profile`` picks the defaults of the methods and grants:
    ``native`` (the secret methods; client_credentials and authorization_code), ``nexi-softpos``
    (a secret and a certificate over mutual TLS: add ``tls_client_auth``), ``mobilepay`` and
    ``b2binpay`` (a client id and secret for client_credentials: MobilePay's integrator
    credentials, B2BINPAY's API login and password)."""

    name: str = Field(min_length=1, max_length=200)
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    scope: str = Field("", max_length=1000)
    profile: Literal["native", "nexi-softpos", "mobilepay", "b2binpay"] = "native"
    auth_methods: list[AuthMethod] | None = Field(None, min_length=1, max_length=4)
    grant_types: list[GrantType] | None = Field(None, min_length=1, max_length=3)
    require_par: bool = False
    jwks: dict[str, object] | None = None
    #: a platform operator may name the owning organisation; an organisation's operator creates for its own
    org_id: str | None = Field(None, min_length=2, max_length=64)
    #: ``zip``: the secret comes only inside an AES-256 encrypted zip (``credentials_zip``, base64)
    #: with its password apart (``zip_password``), to be sent by two channels as MobilePay does
    delivery: Literal["secret", "zip"] = "secret"


class UpdateApp(Body):
    name: str | None = Field(None, min_length=1, max_length=200)
    redirect_uris: list[str] | None = Field(None, max_length=20)


class RotateSecret(Body):
    #: seconds the previous secret stays valid (default: the server's client_secret_overlap)
    overlap: int | None = Field(None, ge=0, le=30 * 24 * 3600)


class CreateOrganisation(Body):
    name: str = Field(min_length=1, max_length=200)
    org_id: str | None = Field(None, min_length=2, max_length=64)


class CreateMerchant(Body):
    merchant_id: int = Field(ge=1, le=2**53 - 1)
    name: str = Field("", max_length=200)
    vat: str | None = Field(None, min_length=1, max_length=32)


class AddTerminal(Body):
    pos: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    tid: str = Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")
    kind: Literal["softpos", "mpos"]


class AddUser(Body):
    """A merchant user; the password is set by the user through the portal's invitation,
    never sent here. Again for an existing user of the merchant: a fresh invitation."""

    username: str = Field(min_length=3, max_length=254)


class CreateGrant(Body):
    client_id: str = Field(min_length=1, max_length=64)


class InviteDeveloper(Body):
    """A developer of the organisation, invited to the portal (tessera.admin.developers)."""

    email: str = Field(min_length=3, max_length=254)


class DisableKey(Body):
    #: disabling the merchant's last enabled key locks it out: true to confirm
    confirm_last: bool = False


class Empty(Body):
    """No members."""
