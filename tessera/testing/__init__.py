"""Testing against a tessera sandbox: ``tessera.testing.sandbox`` (start one, read its
credentials, sign a CSR, issue a token, move its clock) and the pytest plugin
(``tessera.testing.pytest_plugin``, registered as ``pytest11`` entry point ``tessera``).

The names below are loaded on first use: pytest imports this package (for its plugin) in every
test run, and a run that never asks for a sandbox should not pay for httpx."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tessera.testing.sandbox import (
        AxeptKey,
        B2BinPayUser,
        IssuedToken,
        Merchant,
        MerchantUser,
        MobilePayClient,
        NexiApp,
        OAuthApp,
        PointOfSale,
        SandboxError,
        Terminal,
        TesseraSandbox,
        start_sandbox,
    )

__all__ = [
    "AxeptKey",
    "B2BinPayUser",
    "IssuedToken",
    "Merchant",
    "MerchantUser",
    "MobilePayClient",
    "NexiApp",
    "OAuthApp",
    "PointOfSale",
    "SandboxError",
    "Terminal",
    "TesseraSandbox",
    "start_sandbox",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from tessera.testing import sandbox

        return getattr(sandbox, name)
    raise AttributeError(f"module 'tessera.testing' has no attribute {name!r}")
