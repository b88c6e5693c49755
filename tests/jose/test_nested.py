"""nested.py: the JWE-wrapped signed client assertion, built by jwcrypto as a real client would."""

from __future__ import annotations

import json
import os
import statistics
import time
import zlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey, OctKey, RSAKey
from jwcrypto import jwe as jjwe
from jwcrypto import jwk as jjwk
from jwcrypto import jws as jjws

import tessera.jose.nested as nested
from tessera.jose import JoseError, decrypt_assertion, verify_signed_assertion
from tessera.jose.keys import public_jwk
from tessera.jose.nested import DECRYPT_FAILED, MAX_TOKEN_BYTES

from ._build import CLAIMS, b64u, b64u_json, encrypt_outer, flip_char, replace_part, sign_inner
from .conftest import DAY, NOW


def _client_key(name, client_rsa, client_ec):
    return client_ec if name == "ES256" else client_rsa


def _reason(fn, *args) -> str:
    with pytest.raises(JoseError) as err:
        fn(*args)
    return err.value.reason


@pytest.fixture(scope="module")
def assertion(ring, client_rsa):
    """A valid assertion: RS256 inside RSA-OAEP-256 + A256GCM, to the current enc key."""
    return encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=ring.enc_current.kid)


# ----------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("jwe_alg", "enc"),
    [
        ("RSA-OAEP-256", "A256GCM"),
        ("RSA-OAEP", "A128GCM"),
        ("RSA-OAEP-256", "A128CBC-HS256"),
        ("RSA-OAEP", "A256CBC-HS512"),
    ],
)
@pytest.mark.parametrize("jws_alg", ["RS256", "PS256", "ES256"])
def test_assertions_from_jwcrypto_are_accepted(ring, client_rsa, client_ec, jwe_alg, enc, jws_alg):
    client = _client_key(jws_alg, client_rsa, client_ec)
    inner = sign_inner(CLAIMS, client, jws_alg, kid="client-key-1")
    token = encrypt_outer(inner, ring.enc_current.key, kid=ring.enc_current.kid, alg=jwe_alg, enc=enc)

    plaintext = decrypt_assertion(token, ring.keys, NOW)
    assert plaintext == inner.encode()
    header, claims = verify_signed_assertion(plaintext, [client.public_key()])
    assert claims == CLAIMS
    assert header == {"alg": jws_alg, "typ": "JWT", "kid": "client-key-1"}


def test_str_plaintext_and_joserfc_candidates_accepted(ring, client_rsa, client_ec):
    inner = sign_inner(CLAIMS, client_ec, "ES256")
    token = encrypt_outer(inner, ring.enc_current.key, kid=ring.enc_current.kid)
    plaintext = decrypt_assertion(token, ring.keys, NOW).decode()
    candidates = [RSAKey.import_key(client_rsa.public_key()), ECKey.import_key(client_ec.public_key())]
    assert verify_signed_assertion(plaintext, candidates)[1] == CLAIMS


def test_any_bound_certificate_key_may_sign(ring, client_rsa, other_rsa, client_ec):
    inner = sign_inner(CLAIMS, client_rsa, "PS256")
    _, claims = verify_signed_assertion(
        inner, [client_ec.public_key(), other_rsa.public_key(), client_rsa.public_key()]
    )
    assert claims == CLAIMS


@pytest.mark.parametrize("name", ["enc_next", "enc_retired"])
def test_next_and_unlapsed_retired_keys_decrypt(ring, client_rsa, name):
    mk = getattr(ring, name)
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    assert decrypt_assertion(encrypt_outer(inner, mk.key, kid=mk.kid), ring.keys, NOW) == inner.encode()


def test_lapsed_key_refused(ring, client_rsa):
    mk = ring.enc_lapsed
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), mk.key, kid=mk.kid)
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE kid does not name a decryption key"
    assert decrypt_assertion(token, ring.keys, NOW - 2 * DAY)  # before it lapsed


def test_unknown_header_parameters_are_ignored(ring, client_rsa):
    # RFC 7515 §4: parameters that are not understood (and not critical) are ignored.
    inner = sign_inner(CLAIMS, client_rsa, "RS256", **{"x-trace": "abc"})
    token = encrypt_outer(inner, ring.enc_current.key, kid=ring.enc_current.kid, **{"x-trace": "abc"})
    assert verify_signed_assertion(decrypt_assertion(token, ring.keys, NOW), [client_rsa.public_key()])[1] == CLAIMS


# ----------------------------------------------------------------- outer refusals (before decryption)


def test_rsa1_5_refused(ring, client_rsa):
    token = encrypt_outer(
        sign_inner(CLAIMS, client_rsa, "RS256"),
        ring.enc_current.key,
        kid=ring.enc_current.kid,
        alg="RSA1_5",
        enc="A128GCM",
    )
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE alg is not allowed"


@pytest.mark.parametrize("enc", ["A192GCM", "A192CBC-HS384"])
def test_enc_outside_the_allow_list_refused(ring, client_rsa, enc):
    token = encrypt_outer(
        sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=ring.enc_current.kid, enc=enc
    )
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE enc is not allowed"


def test_the_enc_allow_list_is_exactly_the_providers():
    assert set(nested.JWE_ENCS) == {"A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM"}
    assert set(nested.JWE_ALGS) == {"RSA-OAEP-256", "RSA-OAEP"}


@pytest.mark.parametrize(
    "alg", ["dir", "A256KW", "A128GCMKW", "ECDH-ES", "ECDH-ES+A128KW", "PBES2-HS256+A128KW", "none", None, 7]
)
def test_other_key_management_refused(ring, assertion, alg):
    header = {"alg": alg, "enc": "A256GCM", "kid": ring.enc_current.kid}
    token = replace_part(assertion, 0, b64u_json(header))
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE alg is not allowed"


def test_zip_refused_without_inflating_or_decrypting(ring, monkeypatch):
    # ~10 MB of zeros deflates to ~10 kB: a decompression bomb that fits under the size cap.
    bomb = b"\0" * 10_000_000
    token = encrypt_outer(bomb, ring.enc_current.key, kid=ring.enc_current.kid, zip="DEF")
    assert len(token) <= MAX_TOKEN_BYTES

    def forbidden(*args, **kwargs):
        raise AssertionError("must not be reached")

    monkeypatch.setattr(zlib, "decompress", forbidden)
    monkeypatch.setattr(zlib, "decompressobj", forbidden)
    monkeypatch.setattr(nested.jwe, "decrypt_compact", forbidden)
    reason = _reason(decrypt_assertion, token, ring.keys, NOW)
    assert "zip" in reason and reason != DECRYPT_FAILED


def test_unknown_kid_refused(ring, client_rsa):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid="someone-elses-key")
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE kid does not name a decryption key"


def test_empty_kid_refused(ring, client_rsa):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid="")
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE kid is empty"


# ----------------------------------------------------------------- no kid: every published enc key is tried


def _count_decryptions(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = nested._try_decrypt

    def counting(parts, key, enc):
        seen.append(key.kid)
        return real(parts, key, enc)

    monkeypatch.setattr(nested, "_try_decrypt", counting)
    return seen


@pytest.mark.parametrize("name", ["enc_current", "enc_next", "enc_retired"])
@pytest.mark.parametrize("enc", ["A128CBC-HS256", "A256GCM"])
def test_kidless_jwe_opens_with_any_published_key(ring, client_rsa, name, enc, monkeypatch):
    """As Nexi's reference sends it: no kid, A128CBC-HS256, to a key picked at random from the JWKS."""
    mk = getattr(ring, name)
    published = [k["kid"] for k in ring.keys.jwks("enc", NOW)["keys"]]
    assert mk.kid in published
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    token = encrypt_outer(inner, mk.key, kid=None, enc=enc)
    seen = _count_decryptions(monkeypatch)
    assert decrypt_assertion(token, ring.keys, NOW) == inner.encode()
    # in publication order, stopping at the key that opened it
    assert seen == published[: published.index(mk.kid) + 1]


def test_kidless_jwe_to_a_lapsed_key_is_refused_after_trying_every_published_key(ring, client_rsa, monkeypatch):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_lapsed.key, kid=None, enc="A128CBC-HS256")
    seen = _count_decryptions(monkeypatch)
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == DECRYPT_FAILED
    assert seen == [k["kid"] for k in ring.keys.jwks("enc", NOW)["keys"]]  # each once, none more
    assert ring.enc_lapsed.kid not in seen and ring.sig_current.kid not in seen


def test_kidless_jwe_to_a_foreign_key_gives_the_one_reason(ring, client_rsa, other_rsa):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), other_rsa.public_key(), kid=None)
    with pytest.raises(JoseError) as err:
        decrypt_assertion(token, ring.keys, NOW)
    assert err.value.reason == DECRYPT_FAILED
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_kidless_failures_do_not_tell_which_key_was_right(ring, client_rsa, other_rsa, capsys):
    """A tampered kid-less JWE to the current key, to the retired (last) key, or to a foreign
    key: the same reason, and about the same time (every published key is tried each time)."""
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    cases = {}
    for name, key in (
        ("current", ring.enc_current.key),
        ("retired", ring.enc_retired.key),
        ("foreign", other_rsa.public_key()),
    ):
        token = encrypt_outer(inner, key, kid=None, enc="A128CBC-HS256")
        cases[name] = replace_part(token, 4, flip_char(token.split(".")[4]))
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for i in range(25):
        for name in names[i % 3 :] + names[: i % 3]:
            start = time.perf_counter()
            assert _reason(decrypt_assertion, cases[name], ring.keys, NOW) == DECRYPT_FAILED
            times[name].append(time.perf_counter() - start)
    means = {name: statistics.mean(sorted(v)[:20]) for name, v in times.items()}
    ratio = max(means.values()) / min(means.values())
    with capsys.disabled():
        print(
            "\n[jose] kid-less failure time: "
            + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in means.items())
            + f" (ratio {ratio:.2f})"
        )
    assert ratio < 2.0


@pytest.mark.parametrize("enc", ["A128CBC-HS256", "A256CBC-HS512"])
@pytest.mark.parametrize(
    "how", ["truncated IV", "truncated tag", "tampered tag", "tampered ciphertext", "bad OAEP padding"]
)
def test_cbc_failures_share_one_reason(ring, client_rsa, enc, how):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=None, enc=enc)
    _, _, iv, ct, tag = token.split(".")
    bad = {
        "truncated IV": replace_part(token, 2, iv[:-4]),
        "truncated tag": replace_part(token, 4, tag[:-4]),
        "tampered tag": replace_part(token, 4, flip_char(tag)),
        "tampered ciphertext": replace_part(token, 3, flip_char(ct)),
        "bad OAEP padding": replace_part(token, 1, _bad_padding_key()),
    }[how]
    assert _reason(decrypt_assertion, bad, ring.keys, NOW) == DECRYPT_FAILED


def test_dummies_fit_the_enc_in_use():
    assert nested._IV_TAG_BYTES == {
        "A128CBC-HS256": (16, 16),
        "A256CBC-HS512": (16, 32),
        "A128GCM": (12, 16),
        "A256GCM": (12, 16),
    }


def test_kid_naming_a_sig_key_refused(ring, client_rsa):
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=ring.sig_current.kid)
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE kid does not name a decryption key"


@pytest.mark.parametrize("kid", [17, ["a"], {"k": 1}])
def test_non_string_kid_refused(ring, assertion, kid):
    token = replace_part(assertion, 0, b64u_json({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": kid}))
    with pytest.raises(JoseError):
        decrypt_assertion(token, ring.keys, NOW)


def test_jku_header_refused(ring, client_rsa):
    token = encrypt_outer(
        sign_inner(CLAIMS, client_rsa, "RS256"),
        ring.enc_current.key,
        kid=ring.enc_current.kid,
        jku="https://attacker.example/jwks.json",
    )
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE header parameter jku is not accepted"


def test_x5u_header_refused(ring, client_rsa):
    token = encrypt_outer(
        sign_inner(CLAIMS, client_rsa, "RS256"),
        ring.enc_current.key,
        kid=ring.enc_current.kid,
        x5u="https://attacker.example/cert.pem",
    )
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE header parameter x5u is not accepted"


def test_jwk_header_refused(ring, client_rsa):
    attacker = jjwk.JWK.generate(kty="RSA", size=2048)
    token = encrypt_outer(
        sign_inner(CLAIMS, client_rsa, "RS256"),
        ring.enc_current.key,
        kid=ring.enc_current.kid,
        jwk=json.loads(attacker.export_public()),
    )
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE header parameter jwk is not accepted"


def test_x5c_header_refused(ring, assertion):
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": ring.enc_current.kid, "x5c": ["MIIB"]}
    token = replace_part(assertion, 0, b64u_json(header))
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE header parameter x5c is not accepted"


def test_crit_header_refused(ring, assertion):
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": ring.enc_current.kid, "crit": ["exp"], "exp": 1}
    token = replace_part(assertion, 0, b64u_json(header))
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE crit header is not accepted"


def test_general_json_serialization_refused(ring, client_rsa):
    token = encrypt_outer(
        sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_current.key, kid=ring.enc_current.kid, compact=False
    )
    assert json.loads(token)  # it really is the JSON serialization
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "client_assertion must use the compact serialization"


def test_flattened_json_serialization_refused(ring, assertion):
    h, ek, iv, ct, tag = assertion.split(".")
    flattened = json.dumps({"protected": h, "encrypted_key": ek, "iv": iv, "ciphertext": ct, "tag": tag})
    assert (
        _reason(decrypt_assertion, flattened, ring.keys, NOW) == "client_assertion must use the compact serialization"
    )
    assert _reason(decrypt_assertion, "  \n" + flattened, ring.keys, NOW).endswith("compact serialization")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t.rsplit(".", 1)[0],  # 4 parts
        lambda t: t + ".AAAA",  # 6 parts
        lambda t: "." + t.split(".", 1)[1],  # empty protected header
        lambda t: t.replace(".", "..", 1)[:-1],  # an empty extra part
        lambda t: t[:10] + "+" + t[11:],  # not base64url
        lambda t: t[:10] + "=" + t[11:],
        lambda t: t + "\n",
    ],
)
def test_not_compact_refused(ring, assertion, mutate):
    assert _reason(decrypt_assertion, mutate(assertion), ring.keys, NOW).endswith("compact serialization")


def test_oversized_token_refused_before_parsing(ring, assertion, monkeypatch):
    monkeypatch.setattr(nested, "_decode_header", lambda *_: pytest.fail("parsed an oversized token"))
    token = replace_part(assertion, 3, "A" * (MAX_TOKEN_BYTES + 1))
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "client_assertion is too large"


@pytest.mark.parametrize(
    "header",
    [
        b"[1,2]",
        b'"alg"',
        b"null",
        b"{not json",
        b"\xff\xfe{}",
        b'{"alg":"RSA-OAEP-256","alg":"RSA-OAEP","enc":"A256GCM","kid":"x"}',
    ],
)
def test_protected_header_must_be_a_json_object(ring, assertion, header):
    token = replace_part(assertion, 0, b64u(header))
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == "JWE protected header is not a JSON object"


@pytest.mark.parametrize("value", [None, 12345, b"bytes-\xff"])
def test_non_text_input_refused(ring, value):
    with pytest.raises(JoseError):
        decrypt_assertion(value, ring.keys, NOW)  # type: ignore[arg-type]


# ----------------------------------------------------------------- decryption failures: one reason


def _bad_padding_key() -> str:
    """A well-formed RSA ciphertext (an integer below any 2048-bit modulus) whose OAEP decoding fails."""
    return b64u(b"\x00" + os.urandom(255))


def _failures(assertion: str) -> dict[str, str]:
    h, ek, iv, ct, tag = assertion.split(".")
    return {
        "bad OAEP padding": replace_part(assertion, 1, _bad_padding_key()),
        "encrypted key not below the modulus": replace_part(assertion, 1, b64u(b"\xff" * 256)),
        "random encrypted key": replace_part(assertion, 1, b64u(os.urandom(256))),
        "tampered encrypted key": replace_part(assertion, 1, flip_char(ek)),
        "truncated encrypted key": replace_part(assertion, 1, ek[:-8]),
        "empty encrypted key": replace_part(assertion, 1, ""),
        "truncated IV": replace_part(assertion, 2, iv[:-4]),
        "truncated IV (undecodable)": replace_part(assertion, 2, iv[:-3]),
        "empty IV": replace_part(assertion, 2, ""),
        "truncated tag": replace_part(assertion, 4, tag[:-4]),
        "truncated tag (undecodable)": replace_part(assertion, 4, tag[:-3]),
        "empty tag": replace_part(assertion, 4, ""),
        "tampered tag": replace_part(assertion, 4, flip_char(tag)),
        "tampered ciphertext": replace_part(assertion, 3, flip_char(ct)),
        "truncated ciphertext": replace_part(assertion, 3, ct[:-4]),
        "swapped IV": replace_part(assertion, 2, b64u(os.urandom(12))),
        "tampered protected header (AAD)": replace_part(
            assertion,
            0,
            b64u_json({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": json.loads(jjws.base64url_decode(h))["kid"]}),
        ),
    }


FAILURE_CASES = (
    "bad OAEP padding",
    "encrypted key not below the modulus",
    "random encrypted key",
    "tampered encrypted key",
    "truncated encrypted key",
    "empty encrypted key",
    "truncated IV",
    "truncated IV (undecodable)",
    "empty IV",
    "truncated tag",
    "truncated tag (undecodable)",
    "empty tag",
    "tampered tag",
    "tampered ciphertext",
    "truncated ciphertext",
    "swapped IV",
    "tampered protected header (AAD)",
)


def test_failure_cases_cover_the_builder(assertion):
    assert set(_failures(assertion)) == set(FAILURE_CASES)


@pytest.mark.parametrize("case", FAILURE_CASES)
def test_decryption_failures_share_one_reason(ring, assertion, case):
    token = _failures(assertion)[case]
    with pytest.raises(JoseError) as err:
        decrypt_assertion(token, ring.keys, NOW)
    assert err.value.reason == DECRYPT_FAILED
    assert err.value.__cause__ is None and err.value.__context__ is None  # nothing chained that could tell


def test_wrong_recipient_key_gives_the_same_reason(ring, client_rsa):
    # Encrypted to the next key but labelled with the current key's kid.
    token = encrypt_outer(sign_inner(CLAIMS, client_rsa, "RS256"), ring.enc_next.key, kid=ring.enc_current.kid)
    assert _reason(decrypt_assertion, token, ring.keys, NOW) == DECRYPT_FAILED


def test_bad_padding_and_bad_tag_take_similar_time(ring, assertion, capsys):
    """RFC 7516 §11.5: an OAEP failure must not be distinguishable by timing from a tag failure
    (nor, here, from structurally malformed pieces).

    Interleaved runs, 30 each, the 3 slowest (scheduler noise) trimmed; asserted loosely (3x).
    """
    _, _, iv, ct, tag = assertion.split(".")
    cases = {
        "bad padding": replace_part(assertion, 1, _bad_padding_key()),
        "bad tag": replace_part(assertion, 4, flip_char(tag)),
        # structural failures are normalised onto the same RSA + AES-GCM path
        "key >= modulus": replace_part(assertion, 1, b64u(b"\xff" * 256)),
        "truncated IV": replace_part(assertion, 2, iv[:-4]),
        "truncated tag": replace_part(assertion, 4, tag[:-4]),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}

    def run(name):
        start = time.perf_counter()
        try:
            decrypt_assertion(cases[name], ring.keys, NOW)
        except JoseError:
            pass
        times[name].append(time.perf_counter() - start)

    names = list(cases)
    for _ in range(5):  # warm-up
        for name in names:
            run(name)
    times = {name: [] for name in cases}
    for i in range(30):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            run(name)
    means = {name: statistics.mean(sorted(v)[:27]) for name, v in times.items()}
    ratio = max(means.values()) / min(means.values())
    with capsys.disabled():
        print(
            "\n[jose] mean failure time: "
            + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in means.items())
            + f" (ratio {ratio:.2f})"
        )
    assert ratio < 3.0


# ----------------------------------------------------------------- inner refusals


def test_inner_alg_none_refused(ring, client_rsa):
    unsigned = ".".join([b64u_json({"alg": "none", "typ": "JWT"}), b64u_json(CLAIMS), ""])
    token = encrypt_outer(unsigned, ring.enc_current.key, kid=ring.enc_current.kid)
    plaintext = decrypt_assertion(token, ring.keys, NOW)
    assert _reason(verify_signed_assertion, plaintext, [client_rsa.public_key()]) == "JWS alg is not allowed"


def test_plain_json_inside_jwe_refused(ring, client_rsa):
    token = encrypt_outer(json.dumps(CLAIMS), ring.enc_current.key, kid=ring.enc_current.kid)
    plaintext = decrypt_assertion(token, ring.keys, NOW)
    assert json.loads(plaintext) == CLAIMS
    reason = _reason(verify_signed_assertion, plaintext, [client_rsa.public_key()])
    assert reason == "signed assertion must use the compact serialization"


def test_key_confusion_hs256_with_public_pem_refused(ring, client_rsa):
    pem = client_rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = sign_inner(CLAIMS, jjwk.JWK(kty="oct", k=b64u(pem)), "HS256")
    token = encrypt_outer(forged, ring.enc_current.key, kid=ring.enc_current.kid)
    plaintext = decrypt_assertion(token, ring.keys, NOW)
    # Whatever form the candidates take, an HMAC is never verified.
    for candidates in (
        [client_rsa.public_key()],
        [pem, client_rsa.public_key()],
        [OctKey.import_key(b"a-shared-secret-of-32-bytes-long"), RSAKey.import_key(client_rsa.public_key())],
    ):
        assert _reason(verify_signed_assertion, plaintext, candidates) == "JWS alg is not allowed"


def test_key_confusion_secret_keys_are_never_candidates(client_rsa):
    # Even with an allowed alg, a symmetric candidate is not used.
    pem = client_rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    candidates = [pem, pem.decode(), OctKey.import_key(b"a-shared-secret-of-32-bytes-long")]
    assert _reason(verify_signed_assertion, inner, candidates) == "no client key fits the assertion's alg"


def test_signature_by_key_not_in_candidates_refused(client_rsa, other_rsa):
    inner = sign_inner(CLAIMS, other_rsa, "RS256")
    assert _reason(verify_signed_assertion, inner, [client_rsa.public_key()]) == "client_assertion signature is invalid"


def test_rsa_1024_signing_key_refused(weak_rsa):
    inner = sign_inner(CLAIMS, weak_rsa, "RS256")
    assert (
        _reason(verify_signed_assertion, inner, [weak_rsa.public_key()]) == "client RSA key is smaller than 2048 bits"
    )
    with pytest.warns(Warning):
        weak = RSAKey.import_key(weak_rsa.public_key())
    assert _reason(verify_signed_assertion, inner, [weak]) == "client RSA key is smaller than 2048 bits"


@pytest.mark.parametrize(("alg", "curve"), [("ES384", ec.SECP384R1()), ("ES512", ec.SECP521R1())])
def test_other_ec_algs_refused(alg, curve):
    key = ec.generate_private_key(curve)
    assert (
        _reason(verify_signed_assertion, sign_inner(CLAIMS, key, alg), [key.public_key()]) == "JWS alg is not allowed"
    )


def test_es256_needs_a_p256_key(client_ec):
    p384 = ec.generate_private_key(ec.SECP384R1())
    inner = sign_inner(CLAIMS, client_ec, "ES256")
    assert _reason(verify_signed_assertion, inner, [p384.public_key()]) == "no client key fits the assertion's alg"


def test_alg_must_fit_key_type(client_rsa, client_ec):
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    assert _reason(verify_signed_assertion, inner, [client_ec.public_key()]) == "no client key fits the assertion's alg"


def test_rs256_header_over_ps256_signature_refused(client_rsa):
    ps = sign_inner(CLAIMS, client_rsa, "PS256")
    relabelled = replace_part(ps, 0, b64u_json({"alg": "RS256", "typ": "JWT"}))
    assert (
        _reason(verify_signed_assertion, relabelled, [client_rsa.public_key()])
        == "client_assertion signature is invalid"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("jku", "https://attacker.example/jwks"),
        ("x5u", "https://attacker.example/cert"),
        ("jwk", {"kty": "RSA", "n": "AQAB", "e": "AQAB"}),
        ("crit", ["exp"]),
        ("b64", False),
    ],
)
def test_inner_key_hint_headers_refused(client_rsa, name, value):
    protected = {"alg": "RS256", name: value}
    if name == "b64":
        protected["crit"] = ["b64"]
    if name in ("crit", "b64"):  # jwcrypto will not produce these; the header alone is refused
        raw = ".".join([b64u_json(protected), b64u_json(CLAIMS), b64u(b"sig")])
    else:  # signed by the legitimate key: the header alone is the problem
        raw = sign_inner(CLAIMS, client_rsa, "RS256", **{name: value})
    reason = _reason(verify_signed_assertion, raw, [client_rsa.public_key()])
    assert reason.startswith("JWS header parameter")


def test_nested_jwe_inside_jwe_refused(ring, assertion, client_rsa):
    assert (
        _reason(verify_signed_assertion, assertion, [client_rsa.public_key()])
        == "signed assertion must use the compact serialization"
    )


def test_tampered_inner_payload_refused(client_rsa):
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    tampered = replace_part(inner, 1, b64u_json({**CLAIMS, "sub": "admin"}))
    assert (
        _reason(verify_signed_assertion, tampered, [client_rsa.public_key()]) == "client_assertion signature is invalid"
    )


def test_inner_payload_must_be_a_json_object(client_rsa):
    inner = sign_inner(b"[1, 2, 3]", client_rsa, "RS256")
    assert (
        _reason(verify_signed_assertion, inner, [client_rsa.public_key()])
        == "signed assertion payload is not a JSON object"
    )


def test_no_candidates_refused(client_rsa):
    inner = sign_inner(CLAIMS, client_rsa, "RS256")
    assert _reason(verify_signed_assertion, inner, []) == "no client key fits the assertion's alg"


def test_public_jwk_of_the_server_is_what_jwcrypto_encrypts_to(ring):
    # The published enc JWK is sufficient for an independent client to encrypt to us.
    published = ring.keys.jwks("enc", NOW)["keys"][0]
    assert published == public_jwk(ring.enc_current.key)
    token = jjwe.JWE(b"x.y.z", protected=json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": published["kid"]}))
    token.add_recipient(jjwk.JWK(**published))
    assert decrypt_assertion(token.serialize(compact=True), ring.keys, NOW) == b"x.y.z"


def test_inner_x5c_hint_tolerated_but_never_used(client_rsa, other_rsa):
    # An x5c chain in the inner header is ignored for key selection: only bound keys count.
    inner = sign_inner(CLAIMS, other_rsa, "RS256", x5c=["MIIBogus" * 200])
    assert _reason(verify_signed_assertion, inner, [client_rsa.public_key()]) == "client_assertion signature is invalid"
    good = sign_inner(CLAIMS, client_rsa, "RS256", x5c=["MIIBogus" * 200])
    assert verify_signed_assertion(good, [client_rsa.public_key()])[1] == CLAIMS
