"""SoftPOS enrollment rules: the claims of the Nexi client assertion that name the
merchant's point of sale, terminals and user.

- ``appId`` equals the client_id.
- ``pointOfSale`` is known and belongs to a merchant that granted this app (exactly one:
  the same id at several granting merchants is refused as ambiguous).
- ``terminal_ids`` holds 1-2 distinct TIDs of that merchant's point of sale: at most one
  SoftPOS and at most one mPOS.
- ``username_merchant`` is an e-mail address of a user of that merchant, bound to a
  single TID: the SoftPOS TID of the request when there is one, else its only TID.
  A username already bound to another TID, or a TID bound to another username, is refused.
  Nexi's reference backend names the claim ``app_username_merchant``: both names are
  accepted, and when both are sent they must name the same user (compared without case,
  as the binding is).
- ``app_deviceid`` (optional; the device id that Nexi's mobile SDK hands to the app, sent
  by the reference backend): a string of at most ``MAX_DEVICE_ID`` characters without
  control or other non-printing characters. It is kept with the pushed request and then
  with the enrollment.

These are read through the worker's caches (``Core.terminals_at`` ...), which the store's
change notices keep exact; the binding itself is made later by the store's atomic
``bind_username`` (tessera.core.grants), which has the last word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from tessera.core.context import Core
from tessera.core.models import Client, Terminal
from tessera.errors import InvalidClient, InvalidRequest

EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
KINDS = ("softpos", "mpos")
#: The two names of the merchant-user claim: the document's and the reference backend's.
USERNAME_CLAIMS = ("username_merchant", "app_username_merchant")
DEVICE_ID_CLAIM = "app_deviceid"
MAX_DEVICE_ID = 256


@dataclass(frozen=True)
class EnrollmentRequest:
    merchant_id: int
    pos: str
    tids: tuple[str, ...]
    username: str
    bound_tid: str
    device_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "merchant_id": self.merchant_id,
            "pos": self.pos,
            "tids": list(self.tids),
            "username": self.username,
            "bound_tid": self.bound_tid,
            "device_id": self.device_id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnrollmentRequest:
        return cls(int(d["merchant_id"]), d["pos"], tuple(d["tids"]), d["username"], d["bound_tid"], d.get("device_id"))


def check_enrollment_claims(core: Core, client: Client, claims: dict[str, Any]) -> EnrollmentRequest:
    if claims.get("appId") != client.client_id:
        raise InvalidClient("client_assertion: appId must be the client_id", reason="assertion_appid")

    pos = claims.get("pointOfSale")
    if not isinstance(pos, str) or not pos or len(pos) > 64:
        raise InvalidRequest("pointOfSale is required", reason="pos_missing")
    merchant_id, terminals = _point_of_sale(core, client, pos)

    tids = claims.get("terminal_ids")
    if not isinstance(tids, list) or not 1 <= len(tids) <= 2 or not all(isinstance(t, str) and t for t in tids):
        raise InvalidRequest("terminal_ids must hold one or two TIDs", reason="tids_count")
    if len(set(tids)) != len(tids):
        raise InvalidRequest("terminal_ids must not repeat a TID", reason="tids_duplicate")
    for tid in tids:
        if tid not in terminals:
            raise InvalidRequest(f"TID {tid[:64]} does not belong to pointOfSale", reason="tid_foreign")
    kinds = [terminals[t].kind for t in tids]
    for kind in KINDS:
        if kinds.count(kind) > 1:
            raise InvalidRequest(f"terminal_ids may hold at most one {kind} TID", reason="tids_kind")

    username = _username(claims)
    device_id = _device_id(claims)
    user = core.user(username)
    if user is None or user.merchant_id != merchant_id:
        raise InvalidRequest("username_merchant is not a user of this merchant", reason="username_unknown")
    bound_tid = tids[kinds.index("softpos")] if "softpos" in kinds else tids[0]
    if not _binding_allows(core, username, bound_tid):
        raise InvalidRequest("username_merchant is bound to another TID", reason="username_bound")
    return EnrollmentRequest(merchant_id, pos, tuple(tids), username, bound_tid, device_id)


def _point_of_sale(core: Core, client: Client, pos: str) -> tuple[int, dict[str, Terminal]]:
    """The merchant of ``pos`` and its terminals there. A point-of-sale id is not unique across
    merchants: it is resolved among the merchants that granted this app, and only that
    merchant's terminals are ever looked at."""
    at_pos = core.terminals_at(pos)
    if not at_pos:
        raise InvalidRequest("pointOfSale is unknown", reason="pos_unknown")
    granted = sorted(m for m in {t.merchant_id for t in at_pos} if core.is_granted(m, client.client_id))
    if not granted:
        raise InvalidRequest(
            "this app is not granted access to the merchant of pointOfSale", reason="merchant_not_granted"
        )
    if len(granted) > 1:
        raise InvalidRequest("pointOfSale names points of sale of several merchants", reason="pos_ambiguous")
    merchant_id = granted[0]
    return merchant_id, {t.tid: t for t in at_pos if t.merchant_id == merchant_id}


def _username(claims: dict[str, Any]) -> str:
    """The merchant user, lower-cased, from ``username_merchant`` and/or ``app_username_merchant``."""
    sent = [(name, claims[name]) for name in USERNAME_CLAIMS if name in claims]
    if not sent:
        raise InvalidRequest("username_merchant (or app_username_merchant) is required", reason="username_missing")
    for name, value in sent:
        if not isinstance(value, str) or len(value) > 254 or not EMAIL.match(value):
            raise InvalidRequest(f"{name} must be an e-mail address", reason="username_format")
    names = {str(value).lower() for _, value in sent}
    if len(names) != 1:
        raise InvalidRequest(
            "username_merchant and app_username_merchant name different users", reason="username_disagree"
        )
    return names.pop()


def _device_id(claims: dict[str, Any]) -> str | None:
    if DEVICE_ID_CLAIM not in claims:
        return None
    value = claims[DEVICE_ID_CLAIM]
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_DEVICE_ID
        or any(unicodedata.category(c).startswith("C") for c in value)
    ):
        raise InvalidRequest(
            f"app_deviceid must be a printable string of at most {MAX_DEVICE_ID} characters", reason="deviceid_format"
        )
    return value


def _binding_allows(core: Core, username: str, tid: str) -> bool:
    bound_tid, tid_owner = core.bindings(username, tid)
    return (bound_tid is None or bound_tid == tid) and (tid_owner is None or tid_owner == username)
