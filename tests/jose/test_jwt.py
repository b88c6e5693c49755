"""jwt.py: our own JWTs, checked against jwcrypto in both directions."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws

from tessera.jose import JoseError, sign_jwt, verify_own_jwt
from tessera.jose.keys import public_jwk

from ._build import b64u, b64u_json, flip_char, replace_part, sign_inner
from .conftest import DAY, NOW

CLAIMS = {
    "iss": "https://as.example.test",
    "sub": "client-1",
    "aud": "https://api.example.test",
    "client_id": "client-1",
    "iat": 1_900_000_000,
    "exp": 1_900_000_300,
    "jti": "a1b2c3",
    "scope": "payments:read",
}


def _key_for(ring, alg):
    """A signing handle per alg. The RS256 key of the ring is retired (still verifiable at NOW) and
    retired keys do not sign, so sign with a copy of its record marked "next"."""
    if alg == "RS256":
        return dataclasses.replace(ring.sig_retired, status="next")
    return {"ES256": ring.sig_current, "EdDSA": ring.sig_next}[alg]


def _header(token: str) -> dict:
    seg = token.split(".")[0]
    return json.loads(jjws.base64url_decode(seg))


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_round_trip(ring, alg):
    mk = _key_for(ring, alg)
    token = sign_jwt(CLAIMS, mk)
    assert _header(token) == {"alg": alg, "kid": mk.kid, "typ": "at+jwt"}
    assert verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW) == CLAIMS


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_jwcrypto_verifies_our_tokens(ring, alg):
    mk = _key_for(ring, alg)
    token = sign_jwt(CLAIMS, mk, typ="JWT")
    verifier = jjws.JWS()
    verifier.deserialize(token)
    verifier.verify(
        jjwk.JWK(
            **ring.keys.jwks("sig", NOW)["keys"][[k["kid"] for k in ring.keys.jwks("sig", NOW)["keys"]].index(mk.kid)]
        ),
        alg=alg,
    )
    assert json.loads(verifier.payload) == CLAIMS
    assert verifier.jose_header["typ"] == "JWT"


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_we_verify_jwcrypto_tokens_made_with_our_private_key(ring, alg):
    mk = _key_for(ring, alg)
    private = jjwk.JWK(**mk.key.as_dict(private=True))
    token = sign_inner(CLAIMS, private, alg, kid=mk.kid)  # typ "JWT"
    assert verify_own_jwt(token, ring.keys, typ="JWT", now=NOW) == CLAIMS


def test_typ_can_be_omitted(ring):
    token = sign_jwt(CLAIMS, ring.sig_current, typ=None)
    assert "typ" not in _header(token)
    assert verify_own_jwt(token, ring.keys, typ=None, now=NOW) == CLAIMS
    with pytest.raises(JoseError, match="type"):
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)


def test_wrong_typ_refused(ring):
    token = sign_jwt(CLAIMS, ring.sig_current, typ="JWT")
    with pytest.raises(JoseError) as err:
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)
    assert err.value.reason == "unexpected token type"


def test_typ_compared_as_media_type(ring):
    # RFC 7515 §4.1.9: case-insensitive, "application/" may be omitted
    token = sign_jwt(CLAIMS, ring.sig_current, typ="application/AT+JWT")
    assert verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW) == CLAIMS


def test_typ_not_checked_when_none(ring):
    token = sign_jwt(CLAIMS, ring.sig_current, typ="logout+jwt")
    assert verify_own_jwt(token, ring.keys, typ=None, now=NOW) == CLAIMS


def test_unknown_kid_refused(ring):
    token = sign_jwt(CLAIMS, ring.sig_current)
    forged = replace_part(token, 0, b64u_json({"alg": "ES256", "kid": "not-ours", "typ": "at+jwt"}))
    with pytest.raises(JoseError) as err:
        verify_own_jwt(forged, ring.keys, typ="at+jwt", now=NOW)
    assert err.value.reason == "unknown signing key"


def test_missing_kid_refused(ring):
    token = replace_part(sign_jwt(CLAIMS, ring.sig_current), 0, b64u_json({"alg": "ES256", "typ": "at+jwt"}))
    with pytest.raises(JoseError, match="unknown signing key"):
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)


def test_enc_kid_refused(ring):
    token = replace_part(
        sign_jwt(CLAIMS, ring.sig_current), 0, b64u_json({"alg": "ES256", "typ": "at+jwt", "kid": ring.enc_current.kid})
    )
    with pytest.raises(JoseError, match="unknown signing key"):
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)


def test_lapsed_key_refused_unlapsed_retired_accepted(ring):
    lapsed = sign_jwt(CLAIMS, ring.sig_current)  # re-sign below with the lapsed key's private JWK via jwcrypto
    private = jjwk.JWK(**ring.sig_lapsed.key.as_dict(private=True))
    lapsed = sign_inner(CLAIMS, private, "ES256", kid=ring.sig_lapsed.kid, typ="at+jwt")
    with pytest.raises(JoseError, match="unknown signing key"):
        verify_own_jwt(lapsed, ring.keys, typ="at+jwt", now=NOW)
    assert verify_own_jwt(lapsed, ring.keys, typ="at+jwt", now=NOW - 2 * DAY) == CLAIMS
    retired_private = jjwk.JWK(**ring.sig_retired.key.as_dict(private=True))
    retired = sign_inner(CLAIMS, retired_private, "RS256", kid=ring.sig_retired.kid, typ="at+jwt")
    assert verify_own_jwt(retired, ring.keys, typ="at+jwt", now=NOW) == CLAIMS
    with pytest.raises(JoseError):
        verify_own_jwt(retired, ring.keys, typ="at+jwt", now=NOW + DAY)


def test_alg_confusion_hs256_with_public_key_as_secret(ring):
    # Classic confusion: HMAC keyed with the published public key, kid of our ES256 key.
    published = json.dumps(public_jwk(ring.sig_current.key)).encode()
    secret = jjwk.JWK(kty="oct", k=b64u(published))
    token = sign_inner(CLAIMS, secret, "HS256", kid=ring.sig_current.kid, typ="at+jwt")
    with pytest.raises(JoseError) as err:
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)
    assert err.value.reason == "token alg does not match its key"


def test_alg_confusion_other_asymmetric_alg(ring):
    # kid of the ES256 key, header alg RS256, signed by the (RS256) retired key's private key.
    private = jjwk.JWK(**ring.sig_retired.key.as_dict(private=True))
    token = sign_inner(CLAIMS, private, "RS256", kid=ring.sig_current.kid, typ="at+jwt")
    with pytest.raises(JoseError, match="alg does not match"):
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)


def test_alg_none_refused(ring):
    token = ".".join([b64u_json({"alg": "none", "kid": ring.sig_current.kid, "typ": "at+jwt"}), b64u_json(CLAIMS), ""])
    with pytest.raises(JoseError, match="alg does not match"):
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)


def test_header_alg_rewritten_to_key_alg_fails_signature(ring):
    # Same kid and alg as our key, but signed by a different EC key.
    stranger = jjwk.JWK.generate(kty="EC", crv="P-256")
    token = sign_inner(CLAIMS, stranger, "ES256", kid=ring.sig_current.kid, typ="at+jwt")
    with pytest.raises(JoseError) as err:
        verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW)
    assert err.value.reason == "invalid token signature"


def test_tampered_payload_refused(ring):
    token = sign_jwt(CLAIMS, ring.sig_current)
    tampered = replace_part(token, 1, b64u_json({**CLAIMS, "scope": "payments:write"}))
    with pytest.raises(JoseError, match="signature"):
        verify_own_jwt(tampered, ring.keys, typ="at+jwt", now=NOW)
    with pytest.raises(JoseError):
        verify_own_jwt(replace_part(token, 2, flip_char(token.split(".")[2])), ring.keys, typ="at+jwt", now=NOW)


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d", "!!!.???.***", "é.é.é", "x" * 20000])
def test_malformed_tokens_refused(ring, token):
    with pytest.raises(JoseError):
        verify_own_jwt(token, ring.keys, typ=None, now=NOW)


def test_crit_header_refused(ring):
    private = jjwk.JWK(**ring.sig_current.key.as_dict(private=True))
    token = jjws.JWS(json.dumps(CLAIMS).encode())
    token.add_signature(
        private,
        alg="ES256",
        protected=json.dumps({"alg": "ES256", "kid": ring.sig_current.kid, "crit": ["b64"], "b64": True}),
    )
    with pytest.raises(JoseError):
        verify_own_jwt(token.serialize(compact=True), ring.keys, typ=None, now=NOW)


def test_non_object_payload_refused(ring):
    private = jjwk.JWK(**ring.sig_current.key.as_dict(private=True))
    token = sign_inner(b'["not", "an", "object"]', private, "ES256", kid=ring.sig_current.kid)
    with pytest.raises(JoseError, match="JSON object"):
        verify_own_jwt(token, ring.keys, typ=None, now=NOW)


def test_sign_refuses_enc_and_retired_keys(ring):
    with pytest.raises(JoseError):
        sign_jwt(CLAIMS, ring.enc_current)
    with pytest.raises(JoseError):
        sign_jwt(CLAIMS, ring.sig_retired)


def test_sign_refuses_bad_claims(ring):
    with pytest.raises(JoseError):
        sign_jwt(["not", "a", "dict"], ring.sig_current)  # type: ignore[arg-type]
    with pytest.raises(JoseError):
        sign_jwt({"when": object()}, ring.sig_current)


def test_sign_does_not_import_keys(ring, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("key import on the signing path")

    for cls in (ECKey, RSAKey, OKPKey):
        monkeypatch.setattr(cls, "import_key", classmethod(boom))
    monkeypatch.setattr(JWKRegistry, "import_key", classmethod(boom))
    for alg in ("ES256", "EdDSA"):
        sign_jwt(CLAIMS, _key_for(ring, alg))


def test_sign_jwt_es256_timing(ring, capsys):
    """Micro-measure (printed, not asserted): ES256 sign_jwt per call over 2000 calls."""
    mk = ring.sig_current
    for _ in range(50):
        sign_jwt(CLAIMS, mk)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        sign_jwt(CLAIMS, mk)
    per_call = (time.perf_counter() - start) / n
    with capsys.disabled():
        print(f"\n[jose] sign_jwt ES256: {per_call * 1e6:.1f} us/call over {n} calls")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_the_bound_signer_gives_what_joserfc_gives(ring, alg):
    """sign_jwt signs ES256 and RS256 straight with the private key, bound once per key
    (tessera.jose.jwt._sign_with), instead of through joserfc's algorithm for every token. The
    same bytes: RS256 (deterministic) byte for byte; ES256 (a random nonce) the same encoding,
    each path's signature accepted by the other's verification; EdDSA stays joserfc's."""
    from joserfc.jws import JWSRegistry

    from tessera.jose.jwt import _sign_with

    mk = _key_for(ring, alg)
    joserfc_alg = JWSRegistry(algorithms=[alg]).get_alg(alg)
    bound = _sign_with(joserfc_alg, mk.key)
    data = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0"
    ours, theirs = bound(data), joserfc_alg.sign(data, mk.key)
    if alg == "ES256":
        assert len(ours) == len(theirs) == 64
        assert joserfc_alg.verify(data, ours, mk.key) and joserfc_alg.verify(data, theirs, mk.key)
        assert not joserfc_alg.verify(data + b"x", ours, mk.key)
    else:
        assert ours == theirs
    token = sign_jwt(CLAIMS, mk)
    head, payload, signature = token.split(".")
    assert joserfc_alg.verify(f"{head}.{payload}".encode(), jjws.base64url_decode(signature), mk.key)
    assert verify_own_jwt(token, ring.keys, typ="at+jwt", now=NOW) == CLAIMS
