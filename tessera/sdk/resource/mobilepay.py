"""MobilePay PoS V10's merchant rule for the resource server behind tessera's ``mobilepay``
profile: which merchant a request acts for, refused with the PoS API's codes."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tessera.sdk.mobilepay import VAT_HEADER, VAT_PATTERN
from tessera.sdk.resource.errors import InvalidTokenError, PosApiError

__all__ = ["CLIENT_ID_HEADER", "HasHeaders", "MobilePayMerchantRule"]


class Headers(Protocol):
    def getlist(self, key: str) -> list[str]: ...


class HasHeaders(Protocol):
    """A request (Starlette's, or anything with ``headers.getlist``)."""

    @property
    def headers(self) -> Headers: ...


#: MobilePay PoS V10's refusals (provider-docs/reference-facts.md): code → (status, message).
POS_1151 = "1151"  # merchant VAT header missing
POS_1155 = "1155"  # merchant VAT header duplicated
POS_1159 = "1159"  # merchant VAT header invalid
POS_1182 = "1182"  # invalid merchant_vat claim in the access token
POS_1411 = "1411"  # a call about another merchant's payment
CLIENT_ID_HEADER = "x-ibm-client-id"


@dataclass(frozen=True)
class MobilePayMerchantRule:
    """MobilePay's merchant rule, for the PoS API behind tessera's ``mobilepay`` profile,
    refusing with the PoS V10 codes (:class:`PosApiError`, body ``{"code", "message",
    "CorrelationId"}``):

    - ``1182`` (400): the token's ``merchant_vat`` claim is not ``^(DK|FI)\\d{8}$``;
    - ``1155`` (400): ``header`` sent more than once;
    - ``1159`` (400): ``header`` is not ``^(DK|FI)\\d{8}$``;
    - ``1151`` (400): the token has no ``merchant_vat`` and ``header`` is missing;
    - ``1411`` (403): the call is about another merchant: ``header`` names another merchant
      than the token's ``merchant_vat``, or ``allow(vat, claims)`` says no (e.g. the merchant
      has not granted this integrator access). :meth:`owner_check` gives the same answer for a
      payment of another merchant.

    With ``client_id_header`` (``x-ibm-client-id``, which every PoS V10 call carries), a value
    that is not the token's ``client_id`` is 401 ``invalid_token`` (as MobilePay's older docs
    and the public mock answer it); a missing one is accepted unless ``require_client_id``.

    ``header`` defaults to ``x-mobilepay-merchant-vat-number``, the header of MobilePay's
    PoS V10 API. :meth:`merchant` returns the merchant's VAT number the request acts for."""

    header: str = VAT_HEADER
    allow: Callable[[str, dict[str, Any]], bool] | None = field(default=None, compare=False)
    client_id_header: str | None = CLIENT_ID_HEADER
    require_client_id: bool = False

    def merchant(self, claims: Mapping[str, Any], header_values: Iterable[str]) -> str:
        bound = claims.get("merchant_vat")
        if bound is not None and (not isinstance(bound, str) or not VAT_PATTERN.fullmatch(bound)):
            raise PosApiError(400, POS_1182, "The merchant_vat claim of the access token is invalid.")
        values = list(header_values)
        if len(values) > 1:
            raise PosApiError(400, POS_1155, f"The {self.header} header is duplicated.")
        named = values[0].strip() if values else None
        if named is not None and not VAT_PATTERN.fullmatch(named):
            raise PosApiError(400, POS_1159, f"The {self.header} header is invalid: DK or FI followed by 8 digits.")
        if bound is not None:
            if named is not None and named != bound:
                raise self.another_merchant()
            vat = bound
        elif named is None:
            raise PosApiError(
                400, POS_1151, f"The {self.header} header is missing: the access token is not bound to a merchant."
            )
        else:
            vat = named
        if self.allow is not None and not self.allow(vat, dict(claims)):
            raise self.another_merchant()
        return vat

    @staticmethod
    def another_merchant() -> PosApiError:
        """403 ``1411``: the call is about another merchant (or another merchant's payment)."""
        return PosApiError(403, POS_1411, "The call is about another merchant's resource.")

    def owner_check(self, merchant_vat: str, owner: str) -> None:
        """Refuse (403 ``1411``) a call about a payment that belongs to another merchant."""
        if not hmac.compare_digest(merchant_vat.encode(), owner.encode()):
            raise self.another_merchant()

    def check_client(self, claims: Mapping[str, Any], header_values: Iterable[str]) -> None:
        if self.client_id_header is None:
            return
        values = list(header_values)
        if not values and not self.require_client_id:
            return
        client_id = claims.get("client_id")
        if len(values) != 1 or not isinstance(client_id, str) or values[0].strip() != client_id:
            raise InvalidTokenError(
                f"{self.client_id_header} is not the access token's client", reason="client_id_mismatch"
            )

    def check_request(self, claims: Mapping[str, Any], request: HasHeaders) -> str:
        if self.client_id_header is not None:
            self.check_client(claims, request.headers.getlist(self.client_id_header))
        return self.merchant(claims, request.headers.getlist(self.header))
