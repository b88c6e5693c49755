"""The size limit shared by the server and the SDK (a leaf: it imports nothing, so the SDK may use it)."""

from __future__ import annotations

#: The most bytes tessera reads of one token, client assertion or forwarded client certificate
#: before it looks inside: 16 KiB. Anything longer is refused unread (security checklist #13: a
#: nested JWE, our own JWTs, a resource server's bearer token, the proxy's certificate header).
#: Every such check uses this one constant, so the limits cannot drift apart.
MAX_TOKEN_BYTES = 16 * 1024
