"""nested.py runs the primitives directly (issue 14): differential tests against joserfc's own
generic path, over many valid, malformed and tampered inputs.

The reference here is joserfc's ``jwe.decrypt_compact`` / ``jws.deserialize_compact`` with its
stock registries, behind the documented policy of tessera.jose.nested written out again in this
file (the allow-lists and the refused header parameters), not imported from the module under
test. Tokens are built by jwcrypto (tests/jose/_build.py), an implementation independent of
both. Both paths must accept the same tokens with the same plaintext (or claims), and refuse
the same ones.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import urlsafe_b64decode
from jwcrypto import jwe as jjwe
from jwcrypto import jws as jjws

import tessera.jose.nested as nested
from tessera.jose import JoseError, ManagedKey, ServerKeys, decrypt_assertion, verify_signed_assertion
from tessera.jose.keys import generate_encryption_key
from tessera.jose.keyset import RSADecryptionKey

from ._build import CLAIMS, b64u, b64u_json, encrypt_outer, flip_char, jc_key, replace_part, sign_inner
from .conftest import NOW

REFUSED = "refused"
ALGS = ("RSA-OAEP-256", "RSA-OAEP")
ENCS = ("A256GCM", "A128GCM", "A128CBC-HS256", "A256CBC-HS512")
SIG_ALGS = ("RS256", "PS256", "ES256")


# --------------------------------------------------------------------------- #
# the reference: the policy written out again, then joserfc's generic path
# --------------------------------------------------------------------------- #


def _header_of(segment: str) -> dict[str, Any] | None:
    try:
        pairs_seen: list[list[tuple[str, Any]]] = []

        def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            pairs_seen.append(pairs)
            return dict(pairs)

        header = json.loads(urlsafe_b64decode(segment.encode("ascii")), object_pairs_hook=hook)
    except Exception:  # noqa: BLE001 - the reference refuses whatever does not parse
        return None
    if any(len({k for k, _ in pairs}) != len(pairs) for pairs in pairs_seen):
        return None  # duplicate names
    return header if isinstance(header, dict) else None


def reference_decrypt(token: str, keys: ServerKeys) -> bytes | str:
    """The policy: five compact parts; an allowed alg and enc; no zip, jku, x5u, jwk, x5c or
    crit; a kid (when present) naming a live enc key, else every published enc key in turn.
    Then joserfc's own decryption (stock registry with the allowed names)."""
    if not isinstance(token, str) or len(token) > nested.MAX_TOKEN_BYTES or token.count(".") != 4:
        return REFUSED
    header = _header_of(token.split(".")[0])
    if header is None or header.get("alg") not in ALGS or header.get("enc") not in ENCS:
        return REFUSED
    if any(name in header for name in ("zip", "jku", "x5u", "jwk", "x5c", "crit")):
        return REFUSED
    if "kid" in header:
        managed = keys.decryption_key(header["kid"], NOW) if isinstance(header["kid"], str) else None
        candidates = [] if managed is None else [managed.key]
    else:
        candidates = [k["kid"] for k in keys.jwks("enc", NOW)["keys"]]
        candidates = [keys.decryption_key(kid, NOW).key for kid in candidates]  # type: ignore[union-attr]
    registry = jwe.JWERegistry(algorithms=[*ALGS, *ENCS], strict_check_header=False)
    for key in candidates:
        try:
            return jwe.decrypt_compact(token, key, registry=registry).plaintext
        except Exception:  # noqa: BLE001 - joserfc's refusals, whatever their type
            continue
    return REFUSED


def fast_decrypt(token: str, keys: ServerKeys) -> bytes | str:
    try:
        return decrypt_assertion(token, keys, NOW)
    except JoseError:
        return REFUSED


def reference_verify(token: str, candidates: list[Any]) -> dict[str, Any] | str:
    """The policy: three compact parts; alg in RS256/PS256/ES256; no jku, x5u, jwk, crit or
    b64; the payload a JSON object. Then joserfc's own verification with each candidate."""
    if token.count(".") != 2 or len(token) > nested.MAX_TOKEN_BYTES:
        return REFUSED
    header = _header_of(token.split(".")[0])
    if header is None or header.get("alg") not in SIG_ALGS:
        return REFUSED
    if any(name in header for name in ("jku", "x5u", "jwk", "crit", "b64")):
        return REFUSED
    registry = jws.JWSRegistry(algorithms=[header["alg"]], strict_check_header=False)
    registry.max_header_length = 8192
    for key in candidates:
        try:
            obj = jws.deserialize_compact(token, key, registry=registry)
        except Exception:  # noqa: BLE001 - joserfc's refusals, whatever their type
            continue
        try:
            claims = json.loads(obj.payload)
        except ValueError:
            return REFUSED
        return claims if isinstance(claims, dict) else REFUSED
    return REFUSED


def fast_verify(token: str, candidates: list[Any]) -> dict[str, Any] | str:
    try:
        return verify_signed_assertion(token, candidates)[1]
    except JoseError:
        return REFUSED


# --------------------------------------------------------------------------- #
# the cases
# --------------------------------------------------------------------------- #


def _exact_jwe(plaintext: str, key: Any, header: dict[str, Any]) -> str:
    """A compact JWE by jwcrypto with exactly ``header`` as its protected header."""
    token = jjwe.JWE(plaintext.encode(), protected=json.dumps(header), algs=[header["alg"], header["enc"]])
    token.add_recipient(jc_key(key))
    return token.serialize(compact=True)


def _exact_jws(payload: bytes, key: Any, header: dict[str, Any]) -> str:
    """A compact JWS by jwcrypto with exactly ``header`` as its protected header."""
    token = jjws.JWS(payload)
    token.add_signature(jc_key(key), alg=header["alg"], protected=json.dumps(header))
    return token.serialize(compact=True)


def _reheader(token: str, **changes: Any) -> str:
    """The token with its protected header re-encoded with ``changes`` (None: removed)."""
    header = json.loads(urlsafe_b64decode(token.split(".")[0].encode()))
    for name, value in changes.items():
        if value is None:
            header.pop(name, None)
        else:
            header[name] = value
    return replace_part(token, 0, b64u_json(header))


def _mutations(token: str, rng: random.Random, count: int) -> list[str]:
    """Random one-character changes anywhere, random truncations and extensions of a segment."""
    out = []
    parts = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for _ in range(count):
        i = rng.randrange(len(parts))
        seg = parts[i]
        how = rng.choice(("flip", "flip", "flip", "cut", "grow"))
        if how == "flip" and seg:
            pos = rng.randrange(len(seg))
            seg = seg[:pos] + rng.choice(alphabet.replace(seg[pos], "")) + seg[pos + 1 :]
        elif how == "cut" and seg:
            seg = seg[: rng.randrange(len(seg))]
        else:
            seg = seg + "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 6)))
        out.append(replace_part(token, i, seg))
    return out


def _jwe_cases(ring, client_rsa, other_rsa) -> dict[str, str]:
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    cur, nxt = ring.enc_current, ring.enc_next
    cases: dict[str, str] = {}
    for alg in ALGS:
        for enc in ENCS:
            cases[f"valid {alg} {enc} kid"] = encrypt_outer(inner, cur.key, kid=cur.kid, alg=alg, enc=enc)
            cases[f"valid {alg} {enc} no kid to next"] = encrypt_outer(inner, nxt.key, kid=None, alg=alg, enc=enc)
    cases["valid to retired, no kid"] = encrypt_outer(inner, ring.enc_retired.key, kid=None)
    nexi_inner = _exact_jws(json.dumps(CLAIMS).encode(), client_rsa, {"alg": "RS256"})
    cases["valid as Nexi's reference sends it"] = _exact_jwe(
        nexi_inner, nxt.key, {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256"}
    )
    cases["cty null"] = encrypt_outer(inner, cur.key, kid=cur.kid, cty=None)
    cases["valid with unknown header parameters"] = encrypt_outer(inner, cur.key, kid=cur.kid, foo="bar", n=[1, {}])
    cases["to a lapsed key, no kid"] = encrypt_outer(inner, ring.enc_lapsed.key, kid=None)
    cases["to a foreign key, no kid"] = encrypt_outer(inner, other_rsa.public_key(), kid=None)
    cases["to a foreign key, current kid"] = encrypt_outer(inner, other_rsa.public_key(), kid=cur.kid)
    cases["to the next key, current kid"] = encrypt_outer(inner, nxt.key, kid=cur.kid)
    cases["zip DEF"] = encrypt_outer(inner, cur.key, kid=cur.kid, zip="DEF")
    cases["crit"] = encrypt_outer(inner, cur.key, kid=cur.kid, crit=["exp"], exp=1)
    cases["b64 not a boolean"] = encrypt_outer(inner, cur.key, kid=cur.kid, b64="yes")
    cases["typ not a string"] = encrypt_outer(inner, cur.key, kid=cur.kid, typ=5)
    cases["x5t#S256 not a string"] = encrypt_outer(inner, cur.key, kid=cur.kid, **{"x5t#S256": ["a"]})
    cases["header over joserfc's 1024 characters"] = encrypt_outer(inner, cur.key, kid=cur.kid, pad="x" * 800)
    base = cases["valid RSA-OAEP-256 A256GCM kid"]
    h, ek, iv, ct, tag = base.split(".")
    cases["header says A128GCM"] = _reheader(base, enc="A128GCM")
    cases["header says A256CBC-HS512"] = _reheader(base, enc="A256CBC-HS512")
    cases["header says RSA-OAEP"] = _reheader(base, alg="RSA-OAEP")
    cases["header says RSA1_5"] = _reheader(base, alg="RSA1_5")
    cases["header says dir"] = _reheader(base, alg="dir")
    cases["header says A192GCM"] = _reheader(base, enc="A192GCM")
    cases["header names the next key"] = _reheader(base, kid=nxt.kid)
    cases["header without kid"] = _reheader(base, kid=None)
    cases["header without cty"] = _reheader(base, cty=None)
    cases["header with jku"] = _reheader(base, jku="https://attacker.example/jwks")
    cases["header with jwk"] = _reheader(base, jwk={"kty": "oct", "k": "AAAA"})
    cases["header with zip"] = _reheader(base, zip="DEF")
    cases["header with crit"] = _reheader(base, crit=["cty"])
    cases["kid not a string"] = _reheader(base, kid=7)
    cases["header re-encoded with spaces"] = replace_part(
        base, 0, b64u(json.dumps(json.loads(urlsafe_b64decode(h.encode())), indent=1).encode())
    )
    cases["duplicate names in the header"] = replace_part(
        base, 0, b64u(b'{"alg":"RSA-OAEP-256","enc":"A256GCM","enc":"A128GCM","kid":"%s"}' % cur.kid.encode())
    )
    cases["header not an object"] = replace_part(base, 0, b64u(b"[1]"))
    cases["bad tag"] = replace_part(base, 4, flip_char(tag))
    cases["bad ciphertext"] = replace_part(base, 3, flip_char(ct))
    cases["bad IV"] = replace_part(base, 2, flip_char(iv))
    cases["bad encrypted key"] = replace_part(base, 1, flip_char(ek))
    cases["encrypted key not below the modulus"] = replace_part(base, 1, b64u(b"\xff" * 256))
    cases["encrypted key of zeros"] = replace_part(base, 1, b64u(bytes(256)))
    cases["short encrypted key"] = replace_part(base, 1, ek[:-8])
    cases["empty encrypted key"] = replace_part(base, 1, "")
    cases["truncated IV"] = replace_part(base, 2, iv[:-4])
    cases["empty IV"] = replace_part(base, 2, "")
    cases["truncated tag"] = replace_part(base, 4, tag[:-4])
    cases["empty tag"] = replace_part(base, 4, "")
    cases["empty ciphertext"] = replace_part(base, 3, "")
    cases["non-canonical base64 tag"] = replace_part(base, 4, tag[:-1] + ("B" if tag[-1] == "A" else "A"))
    cases["padding in a segment"] = replace_part(base, 2, iv + "==")
    cases["six parts"] = base + ".AAAA"
    cases["four parts"] = base.rsplit(".", 1)[0]
    cases["swapped IV and tag"] = ".".join([h, ek, tag, ct, iv])
    cases["the ciphertext of another token"] = replace_part(
        base, 3, cases["valid RSA-OAEP-256 A256GCM no kid to next"].split(".")[3]
    )
    cbc = cases["valid RSA-OAEP-256 A128CBC-HS256 kid"]
    cases["CBC: bad tag"] = replace_part(cbc, 4, flip_char(cbc.split(".")[4]))
    cases["CBC: bad ciphertext"] = replace_part(cbc, 3, flip_char(cbc.split(".")[3]))
    cases["CBC: truncated tag"] = replace_part(cbc, 4, cbc.split(".")[4][:-4])
    cases["CBC: header says A256GCM"] = _reheader(cbc, enc="A256GCM")
    rng = random.Random(14)
    for i, token in enumerate(_mutations(base, rng, 120) + _mutations(cbc, rng, 60)):
        cases[f"random mutation {i}"] = token
    return cases


@pytest.fixture(scope="module")
def jwe_cases(ring, client_rsa, other_rsa) -> dict[str, str]:
    return _jwe_cases(ring, client_rsa, other_rsa)


def test_the_jwe_cases_hold_both_outcomes(ring, jwe_cases):
    """The cases are not trivial: many are accepted, most are refused."""
    outcomes = [reference_decrypt(token, ring.keys) for token in jwe_cases.values()]
    accepted = sum(1 for o in outcomes if o != REFUSED)
    assert accepted >= 19 and len(outcomes) - accepted >= 150


def test_decryption_gives_what_joserfc_gives(ring, jwe_cases):
    differ = {}
    for name, token in jwe_cases.items():
        fast, ref = fast_decrypt(token, ring.keys), reference_decrypt(token, ring.keys)
        if fast != ref:
            differ[name] = (fast, ref)
    assert differ == {}


def test_valid_cases_open_to_the_signed_claims(ring, jwe_cases):
    for name, token in jwe_cases.items():
        if name.startswith("valid"):
            plaintext = fast_decrypt(token, ring.keys)
            assert isinstance(plaintext, bytes), name
            assert json.loads(urlsafe_b64decode(plaintext.split(b".")[1])) == CLAIMS


def _jws_cases(client_rsa, client_ec, other_rsa) -> list[tuple[str, str, list[Any]]]:
    rsa_key, ec_key = RSAKey.import_key(client_rsa.public_key()), ECKey.import_key(client_ec.public_key())
    other = RSAKey.import_key(other_rsa.public_key())
    cases: list[tuple[str, str, list[Any]]] = []
    for alg in SIG_ALGS:
        signer, key = (client_ec, ec_key) if alg == "ES256" else (client_rsa, rsa_key)
        token = sign_inner(CLAIMS, signer, alg)
        h, p, s = token.split(".")
        cases += [
            (f"{alg} valid", token, [key]),
            (f"{alg} valid, second candidate", token, [other, ec_key, key]),
            (f"{alg} valid, minimal header", _exact_jws(json.dumps(CLAIMS).encode(), signer, {"alg": alg}), [key]),
            (f"{alg} typ null", sign_inner(CLAIMS, signer, alg, typ=None), [key]),
            (f"{alg} wrong key", token, [other]),
            (f"{alg} tampered payload", replace_part(token, 1, b64u_json({**CLAIMS, "sub": "x"})), [key]),
            (f"{alg} tampered signature", replace_part(token, 2, flip_char(s)), [key]),
            (f"{alg} truncated signature", replace_part(token, 2, s[:-4]), [key]),
            (f"{alg} non-canonical signature", replace_part(token, 2, s[:-1] + ("B" if s[-1] == "A" else "A")), [key]),
            (f"{alg} signature segment over 1024", replace_part(token, 2, s * 4), [key]),
            (f"{alg} header re-encoded", replace_part(token, 0, b64u(b'{"alg": "%s"}' % alg.encode())), [key]),
            (f"{alg} x5c not a list", sign_inner(CLAIMS, signer, alg, x5c="abc"), [key]),
            (f"{alg} x5c of numbers", sign_inner(CLAIMS, signer, alg, x5c=[1]), [key]),
            (f"{alg} x5c of strings (a hint, ignored)", sign_inner(CLAIMS, signer, alg, x5c=["abc"]), [key]),
            (f"{alg} kid not a string", sign_inner(CLAIMS, signer, alg, kid=3), [key]),
            (f"{alg} cty not a string", sign_inner(CLAIMS, signer, alg, cty=["JWT"]), [key]),
            (f"{alg} crit", replace_part(token, 0, b64u_json({"alg": alg, "crit": ["exp"], "exp": 1})), [key]),
            (f"{alg} b64 false", sign_inner(b"unencoded", signer, alg, b64=False, crit=["b64"]), [key]),
            (f"{alg} payload not JSON", sign_inner(b"not json", signer, alg), [key]),
            (f"{alg} payload a JSON list", sign_inner(b"[1, 2]", signer, alg), [key]),
            (f"{alg} empty payload", sign_inner(b"", signer, alg), [key]),
            (f"{alg} key for enc only", token, [RSAKey.import_key(client_rsa.public_key(), {"use": "enc"})])
            if alg != "ES256"
            else (f"{alg} key for enc only", token, [ECKey.import_key(client_ec.public_key(), {"use": "enc"})]),
            (f"{alg} key labelled for another alg", token, [type(key).import_key(key.public_key, {"alg": "XX"})]),
        ]
    rs = sign_inner(CLAIMS, client_rsa, "RS256")
    ps = sign_inner(CLAIMS, client_rsa, "PS256")
    cases += [
        ("RS256 header over a PS256 signature", ".".join([rs.split(".")[0], *ps.split(".")[1:]]), [rsa_key]),
        ("PS256 header over an RS256 signature", ".".join([ps.split(".")[0], *rs.split(".")[1:]]), [rsa_key]),
        ("ES256 header over an RS256 signature", replace_part(rs, 0, b64u_json({"alg": "ES256"})), [ec_key, rsa_key]),
        ("alg none", ".".join([b64u_json({"alg": "none"}), b64u_json(CLAIMS), ""]), [rsa_key]),
        ("alg HS256 with the public key", replace_part(rs, 0, b64u_json({"alg": "HS256"})), [rsa_key]),
    ]
    rng = random.Random(7)
    for alg, signer, key in (("RS256", client_rsa, rsa_key), ("ES256", client_ec, ec_key)):
        token = sign_inner(CLAIMS, signer, alg)
        cases += [(f"{alg} random mutation {i}", t, [key]) for i, t in enumerate(_mutations(token, rng, 60))]
    return cases


@pytest.fixture(scope="module")
def jws_cases(client_rsa, client_ec, other_rsa) -> list[tuple[str, str, list[Any]]]:
    return _jws_cases(client_rsa, client_ec, other_rsa)


def test_the_jws_cases_hold_both_outcomes(jws_cases):
    outcomes = [reference_verify(token, keys) for _, token, keys in jws_cases]
    accepted = sum(1 for o in outcomes if o != REFUSED)
    assert accepted >= 12 and len(outcomes) - accepted >= 100


def test_verification_gives_what_joserfc_gives(jws_cases):
    differ = {}
    for name, token, keys in jws_cases:
        fast, ref = fast_verify(token, keys), reference_verify(token, keys)
        if fast != ref:
            differ[name] = (fast, ref)
    assert differ == {}


# --------------------------------------------------------------------------- #
# the keys made ready once, kept with the key set
# --------------------------------------------------------------------------- #


def test_a_decryption_key_is_derived_once_per_managed_key(ring):
    first = ring.enc_current.rsa_decryption
    assert isinstance(first, RSADecryptionKey)
    assert ring.enc_current.rsa_decryption is first
    assert first.kid == ring.enc_current.kid and first.key is ring.enc_current.key
    assert first.modulus == ring.enc_current.key.public_key.public_numbers().n and first.size == 256
    assert ring.sig_current.rsa_decryption is None  # a signing key is never a decryption key


def test_a_rotation_drops_the_derived_keys():
    """A new key set (what KeyRing.reload builds after a rotation) derives its own: nothing of
    the former set's decryption keys survives in it, and a lapsed key is gone from it."""
    a, b = generate_encryption_key(), generate_encryption_key()
    before = ServerKeys([ManagedKey(kid=a.kid, use="enc", alg="RSA-OAEP-256", status="current", key=a)])
    derived = nested.published_decryption_keys(before, NOW)
    assert [k.kid for k in derived] == [a.kid]
    after = ServerKeys(
        [
            ManagedKey(kid=b.kid, use="enc", alg="RSA-OAEP-256", status="current", key=b),
            ManagedKey(kid=a.kid, use="enc", alg="RSA-OAEP-256", status="retired", key=a),  # lapsed
        ]
    )
    assert after.decryption_key(a.kid, NOW) is None
    assert [k.kid for k in nested.published_decryption_keys(after, NOW)] == [b.kid]
    assert all(k is not derived[0] for k in nested.published_decryption_keys(after, NOW))


def test_published_decryption_keys_follow_the_jwks(ring):
    published = [k["kid"] for k in ring.keys.jwks("enc", NOW)["keys"]]
    assert [k.kid for k in nested.published_decryption_keys(ring.keys, NOW)] == published
    assert [mk.kid for mk in ring.keys.decryption_keys(NOW)] == published


def test_zip_is_refused_before_any_private_key_operation(ring, client_rsa, monkeypatch):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=ring.enc_current.kid)
    zipped = _reheader(token, zip="DEF")
    monkeypatch.setattr(nested, "_try_decrypt", lambda *a: pytest.fail("decrypted a zip JWE"))
    with pytest.raises(JoseError) as err:
        decrypt_assertion(zipped, ring.keys, NOW)
    assert "zip" in err.value.reason


def test_a_malformed_piece_still_takes_the_whole_path(ring, client_rsa, monkeypatch):
    """RFC 7516 §11.5: a truncated tag runs the RSA unwrap and the content decryption like a
    bad tag does (dummies of the right size), and gives the same reason."""
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=ring.enc_current.kid)
    suite = nested._SUITES[("RSA-OAEP-256", "A256GCM")]
    calls: list[tuple[int, int, int]] = []
    real = suite.cipher.decrypt

    class Counting:
        def decrypt(self, ct: bytes, tag: bytes, cek: bytes, iv: bytes, aad: bytes) -> bytes:
            calls.append((len(tag), len(cek), len(iv)))
            return real(ct, tag, cek, iv, aad)

    monkeypatch.setitem(
        nested._SUITES, ("RSA-OAEP-256", "A256GCM"), nested._Suite(**{**suite.__dict__, "cipher": Counting()})
    )
    for bad in (replace_part(token, 4, token.split(".")[4][:-4]), replace_part(token, 1, "")):
        with pytest.raises(JoseError) as err:
            decrypt_assertion(bad, ring.keys, NOW)
        assert err.value.reason == nested.DECRYPT_FAILED
    assert calls == [(16, 32, 12), (16, 32, 12)]
