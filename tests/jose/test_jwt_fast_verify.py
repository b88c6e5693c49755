"""verify_own_jwt's two ways: a header segment seen in a token that verified before takes the
short way (the header decoded then, the key's bound verifier); anything else goes through
joserfc. Both must give the same answer for every token: the same claims, or a JoseError with
the same message."""

from __future__ import annotations

import dataclasses

import pytest

from tessera.jose import JoseError, sign_jwt, verify_own_jwt
from tessera.jose import jwt as jwt_module

from ._build import b64u, b64u_json, flip_char, replace_part
from .conftest import DAY, NOW

CLAIMS = {"iss": "https://as.example.test", "sub": "c-1", "client_id": "c-1", "iat": 1, "exp": 2, "jti": "j"}


def _outcome(token, keys, typ, *, known: bool):
    """What verify_own_jwt answers, the header cache primed (``known``) or emptied first."""
    jwt_module._HEADERS.clear()
    if known:  # a genuine token with the same header segment verified first
        head = token.split(".")[0] if isinstance(token, str) else ""
        assert head.encode() in jwt_module._HEADERS or _prime(head, keys)
    try:
        out = ("claims", verify_own_jwt(token, keys, typ=typ, now=NOW))
    except JoseError as e:
        out = ("error", str(e))
    taken_short_way = known and bool(jwt_module._HEADERS)
    return out, taken_short_way


_GENUINE: dict[str, str] = {}


def _prime(head: str, keys) -> bool:
    """Verify the genuine token of that header segment (which puts it in the cache)."""
    token = _GENUINE.get(head)
    if token is None:
        return False
    verify_own_jwt(token, keys, typ=None, now=NOW)
    return head.encode() in jwt_module._HEADERS


def _signer(ring, alg):
    if alg == "RS256":  # the ring's RS256 key is retired (verifiable at NOW, never signing)
        return dataclasses.replace(ring.sig_retired, status="next")
    return {"ES256": ring.sig_current, "EdDSA": ring.sig_next}[alg]


def _cases(ring, alg):
    mk = _signer(ring, alg)
    good = sign_jwt(CLAIMS, mk)
    _GENUINE[good.split(".")[0]] = good
    _GENUINE[sign_jwt(CLAIMS, mk, typ="JWT").split(".")[0]] = sign_jwt(CLAIMS, mk, typ="JWT")
    h, p, s = good.split(".")
    other = sign_jwt({**CLAIMS, "jti": "other"}, mk)
    return {
        "good": (good, "at+jwt"),
        "good, no typ asked": (good, None),
        "wrong typ": (good, "JWT"),
        "other typ header": (sign_jwt(CLAIMS, mk, typ="JWT"), "at+jwt"),
        "signature flipped": (replace_part(good, 2, flip_char(s)), "at+jwt"),
        "signature of another token": (f"{h}.{p}.{other.split('.')[2]}", "at+jwt"),
        "signature too short": (f"{h}.{p}.{s[:20]}", "at+jwt"),
        "signature oversize": (f"{h}.{p}.{'A' * 2000}", "at+jwt"),
        "signature not base64url": (f"{h}.{p}.{s[:-2]}+/", "at+jwt"),
        "payload changed": (f"{h}.{b64u_json({**CLAIMS, 'sub': 'x'})}.{s}", "at+jwt"),
        "payload not base64url": (f"{h}.{p}=.{s}", "at+jwt"),
        "payload empty": (f"{h}..{s}", "at+jwt"),
        "payload not JSON (signed)": (_signed_raw(mk, h, b"not json"), "at+jwt"),
        "payload a JSON list (signed)": (_signed_raw(mk, h, b"[1]"), "at+jwt"),
        "two segments": (f"{h}.{p}", "at+jwt"),
        "four segments": (f"{h}.{p}.{s}.x", "at+jwt"),
        "not ascii": (f"{h}.{p}.{s}\u00e9", "at+jwt"),
    }


def _signed_raw(mk, header_segment: str, payload: bytes) -> str:
    """A genuine signature over an arbitrary payload, with our own header segment."""
    _, sign = jwt_module._signer(mk, "at+jwt")
    signing_input = f"{header_segment}.{b64u(payload)}".encode()
    return f"{header_segment}.{b64u(payload)}.{b64u(sign(signing_input))}"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_both_ways_give_the_same_answer(ring, alg):
    for name, (token, typ) in _cases(ring, alg).items():
        slow, _ = _outcome(token, ring.keys, typ, known=False)
        fast, short = _outcome(token, ring.keys, typ, known=True)
        assert slow == fast, (alg, name, slow, fast)
        if name.startswith("good"):
            assert slow[0] == "claims" and slow[1] == CLAIMS


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_known_header_whose_key_has_lapsed_is_refused_alike(ring, alg):
    """The header is known, but its key is gone from the key set that verifies now."""
    mk = _signer(ring, alg)
    token = sign_jwt(CLAIMS, mk)
    jwt_module._HEADERS.clear()
    verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)
    assert jwt_module._HEADERS  # known now
    later = NOW + 2 * DAY  # the RS256 key (retired at NOW + 1 day) is gone then
    answers = []
    for prime in (True, False):
        if not prime:
            jwt_module._HEADERS.clear()
        try:
            answers.append(verify_own_jwt(token, ring.keys, typ="at+jwt", now=later))
        except JoseError as e:
            answers.append(str(e))
    assert answers[0] == answers[1]
    if alg == "RS256":
        assert answers[0] == "unknown signing key"


def test_the_short_way_is_taken_for_a_known_header(ring, monkeypatch):
    """After one token of a key verified, the next one does not go through joserfc's parser."""
    mk = ring.sig_current
    jwt_module._HEADERS.clear()
    verify_own_jwt(sign_jwt(CLAIMS, mk), ring.keys, typ="at+jwt", now=NOW)

    def refuse(*args, **kwargs):
        raise AssertionError("joserfc's parser was called")

    monkeypatch.setattr(jwt_module.jws, "extract_compact", refuse)
    assert verify_own_jwt(sign_jwt({**CLAIMS, "jti": "2"}, mk), ring.keys, typ="at+jwt", now=NOW)["jti"] == "2"


def test_only_headers_of_verified_tokens_are_remembered(ring):
    mk = ring.sig_current
    h, p, s = sign_jwt(CLAIMS, mk).split(".")
    jwt_module._HEADERS.clear()
    with pytest.raises(JoseError):
        verify_own_jwt(f"{h}.{p}.{flip_char(s)}", ring.keys, typ="at+jwt", now=NOW)
    assert not jwt_module._HEADERS
    forged = b64u_json({"alg": "ES256", "kid": mk.kid, "typ": "at+jwt", "x": 1})
    with pytest.raises(JoseError):
        verify_own_jwt(f"{forged}.{p}.{s}", ring.keys, typ="at+jwt", now=NOW)
    assert not jwt_module._HEADERS
