"""The operator's use cases, with their rules: apps and their certificates, merchants (points
of sale, terminals, users, grants), axept keys, the server's keys, enrollments, security
events, purge. The CLI, the admin API and the portal call this layer and nothing else.

Every operation takes an ``Admin`` context first, then a request dataclass or plain
identifiers, and returns a result dataclass; refusals are ``AdminError`` subclasses. Nothing
here knows typer, rich or HTTP. ``tessera.admin.compose.open_admin`` builds an ``Admin`` over
a tessera home."""

from tessera.admin.apikeys import CreatedKey, KeyInfo, create_key, disable_key, enable_key, list_keys, set_key_enabled
from tessera.admin.certificates import (
    CertificateInfo,
    SignCertificate,
    SignedCertificate,
    get_certificate,
    list_certificates,
    revoke_certificate,
    sign_certificate,
)
from tessera.admin.clients import (
    ClientInfo,
    RegisterClient,
    RegisteredClient,
    RotatedSecret,
    UpdateClient,
    get_client,
    list_clients,
    register_client,
    revoke_client,
    rotate_secret,
    secret_overlap_until,
    update_client,
)
from tessera.admin.context import ADMIN_CHANGE, Admin
from tessera.admin.errors import AdminError, ConfirmationRequired, Conflict, Invalid, NoHome, NotFound, Stale
from tessera.admin.housekeeping import purge
from tessera.admin.merchants import (
    AddTerminal,
    AddUser,
    CreateMerchant,
    GrantInfo,
    MerchantInfo,
    UserInfo,
    add_terminal,
    add_user,
    create_merchant,
    get_merchant,
    grant,
    is_granted,
    list_grants,
    terminals_at,
    withdraw_grant,
)
from tessera.admin.organisations import (
    CreateOrganisation,
    OrganisationInfo,
    create_organisation,
    get_organisation,
    list_organisations,
)
from tessera.admin.records import EVENT_KINDS, list_enrollments, list_events
from tessera.admin.server_keys import (
    KeyRotation,
    RingRotation,
    ServerKeyInfo,
    list_server_keys,
    retention_seconds,
    rotate_server_keys,
)

__all__ = [
    "ADMIN_CHANGE",
    "EVENT_KINDS",
    "AddTerminal",
    "AddUser",
    "Admin",
    "AdminError",
    "CertificateInfo",
    "ClientInfo",
    "ConfirmationRequired",
    "Conflict",
    "CreateMerchant",
    "CreateOrganisation",
    "CreatedKey",
    "GrantInfo",
    "Invalid",
    "KeyInfo",
    "KeyRotation",
    "MerchantInfo",
    "NoHome",
    "NotFound",
    "OrganisationInfo",
    "RegisterClient",
    "RegisteredClient",
    "RotatedSecret",
    "UpdateClient",
    "RingRotation",
    "ServerKeyInfo",
    "SignCertificate",
    "SignedCertificate",
    "Stale",
    "UserInfo",
    "add_terminal",
    "add_user",
    "create_key",
    "create_merchant",
    "create_organisation",
    "disable_key",
    "enable_key",
    "get_certificate",
    "get_client",
    "get_merchant",
    "get_organisation",
    "grant",
    "is_granted",
    "list_certificates",
    "list_clients",
    "list_enrollments",
    "list_events",
    "list_grants",
    "list_keys",
    "list_organisations",
    "list_server_keys",
    "purge",
    "register_client",
    "retention_seconds",
    "revoke_certificate",
    "revoke_client",
    "rotate_secret",
    "rotate_server_keys",
    "secret_overlap_until",
    "update_client",
    "set_key_enabled",
    "sign_certificate",
    "terminals_at",
    "withdraw_grant",
]
