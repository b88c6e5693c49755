"""``fixed_json``: the token endpoints' answer, with its header lines encoded once, is the
same response as Starlette's ``JSONResponse`` with the same arguments."""

from __future__ import annotations

import asyncio

import pytest

from tessera.web.errors import NO_STORE
from tessera.web.responses import JSONResponse, fixed_json

BODIES = [
    {"access_token": "eyJ.x.y", "token_type": "Bearer", "expires_in": 3600},
    {"data": {"type": "auth-token", "id": "0", "attributes": {"refresh": "r", "is_2fa_confirmed": False}}},
    {"token": "t", "expiresAt": "2027-01-15T08:00:00Z", "é": "ü ✓"},
    {},
]


def _sent(response) -> list[dict]:
    messages: list[dict] = []

    async def send(message):
        messages.append(message)

    async def receive():  # pragma: no cover - a response never reads
        raise AssertionError

    asyncio.run(response({"type": "http"}, receive, send))
    return messages


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize(
    ("headers", "status", "media"),
    [
        (NO_STORE, 200, None),
        (NO_STORE, 201, None),
        (NO_STORE, 200, "application/vnd.api+json"),
        ({"Cache-Control": "public, max-age=60"}, 200, None),
        ({}, 200, None),
        (NO_STORE, 204, None),
    ],
)
def test_the_same_response_as_starlettes(body, headers, status, media):
    expected = JSONResponse(body, status_code=status, headers=headers, media_type=media)
    for _ in range(2):  # the first call encodes the lines, the second reuses them
        got = fixed_json(body, headers, status_code=status, media_type=media)
        assert type(got) is type(expected)
        assert got.status_code == expected.status_code and got.media_type == expected.media_type
        assert got.body == expected.body and got.background is None
        assert got.raw_headers == expected.raw_headers
        assert _sent(got) == _sent(expected)


def test_the_lines_are_not_shared_between_responses():
    a = fixed_json({"a": 1}, NO_STORE)
    a.raw_headers.append((b"x-extra", b"1"))
    assert (b"x-extra", b"1") not in fixed_json({"a": 1}, NO_STORE).raw_headers


@pytest.mark.parametrize("name", ["Content-Type", "content-length"])
def test_headers_that_it_sets_itself_are_refused(name):
    with pytest.raises(ValueError):
        fixed_json({}, {name: "x"})
