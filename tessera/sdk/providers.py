"""The providers' documented environments and paths, in one table.

Every client takes ``base_url`` as its first argument: either a URL, or the name of one of
its provider's environments below. Its default paths are the provider's own, so pointing a
client at a tessera sandbox (which serves each provider at its own paths, at the root) is a
base-URL change and nothing else.

=========  =============  =========================================  ==========================================
provider   environment    base URL                                   paths (under the base URL)
=========  =============  =========================================  ==========================================
Nexi       ``staging``    ``https://stgb2bsoftpos.nexigroup.com``    ``/softpos/appenrollment/token``,
           ``production`` ``https://b2bsoftpos.nexigroup.com``       ``/softpos/par/jwks.json``, ``/softpos/as/par``,
                                                                     ``/softpos/as/authorize``, ``/softpos/as/token``
MobilePay  ``sandbox``    ``https://api.sandbox.mobilepay.dk``       ``/integrator-authentication/connect/token``
           ``production`` ``https://api.mobilepay.dk``
B2BINPAY   ``production`` ``https://api.b2binpay.com``               ``/token/``, ``/token/refresh/``
           ``sandbox``    ``https://api-sandbox.b2binpay.com``
axept      (none)         given by the provider at onboarding        ``/v1/authenticate``
=========  =============  =========================================  ==========================================

Sources: the Nexi backend-integration page ("STG: https://stgb2bsoftpos.nexigroup.com • PROD:
https://b2bsoftpos.nexigroup.com") and API reference (``/softpos/...``); the MobilePay
document's curl (``https://api.sandbox.mobilepay.dk/integrator-authentication/connect/token``)
and MobilePay's environments; B2BINPAY v2's base URLs (``[base]/token/``,
``[base]/token/refresh/``); the axept page gives no host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import urlsplit

__all__ = ["AXEPT", "B2BINPAY", "MOBILEPAY", "NEXI", "PROVIDERS", "Provider"]


@dataclass(frozen=True)
class Provider:
    """One provider: its documented environments (name → base URL) and default paths."""

    name: str
    environments: Mapping[str, str]
    paths: Mapping[str, str] = field(default_factory=dict)

    def base_url(self, base_url_or_environment: str) -> str:
        """``base_url_or_environment`` as a base URL: a URL (anything with ``://``) is
        returned as it is (without a trailing ``/``), an environment name is looked up."""
        if not isinstance(base_url_or_environment, str) or not base_url_or_environment:
            raise ValueError("base_url must be a URL or an environment name")
        if "://" in base_url_or_environment:
            parts = urlsplit(base_url_or_environment)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
                raise ValueError(f"base_url must be an https:// (or http://) URL, not {base_url_or_environment!r}")
            return base_url_or_environment.rstrip("/")
        url = self.environments.get(base_url_or_environment.lower())
        if url is None:
            known = ", ".join(repr(n) for n in self.environments) or "none (pass the base URL you were given)"
            raise ValueError(
                f"{base_url_or_environment!r} is neither a URL nor a {self.name} environment (environments: {known})"
            )
        return url


def _frozen(d: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(d)


NEXI = Provider(
    "Nexi SoftPOS",
    _frozen({"staging": "https://stgb2bsoftpos.nexigroup.com", "production": "https://b2bsoftpos.nexigroup.com"}),
    _frozen(
        {
            "prefix": "/softpos",
            "token": "/appenrollment/token",
            "jwks": "/par/jwks.json",
            "par": "/as/par",
            "authorize": "/as/authorize",
            "code": "/as/token",
        }
    ),
)
MOBILEPAY = Provider(
    "MobilePay PoS",
    _frozen({"sandbox": "https://api.sandbox.mobilepay.dk", "production": "https://api.mobilepay.dk"}),
    _frozen({"token": "/integrator-authentication/connect/token"}),
)
B2BINPAY = Provider(
    "B2BINPAY",
    _frozen({"production": "https://api.b2binpay.com", "sandbox": "https://api-sandbox.b2binpay.com"}),
    _frozen({"prefix": "", "login": "/token/", "refresh": "/token/refresh/"}),
)
AXEPT = Provider("axept Cloud Connect", _frozen({}), _frozen({"authenticate": "/v1/authenticate"}))

#: By short name (``nexi``, ``mobilepay``, ``b2binpay``, ``axept``).
PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {"nexi": NEXI, "mobilepay": MOBILEPAY, "b2binpay": B2BINPAY, "axept": AXEPT}
)
