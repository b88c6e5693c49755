"""RFC 7520 ("Examples of Protecting Content Using JOSE") vectors, typed in from the RFC.

* §4.1 RS256 JWS (deterministic RSASSA-PKCS1-v1_5): our inner-JWS verifier accepts
  the signature with the §3.3 public key; the payload is prose, not a JSON
  object, so the call then fails on the payload - after the signature passed.
* §4.2 PS384, §4.3 ES512, §4.4 HS256: valid JWSs whose algorithms are outside
  our allow-list, so they are refused.
* §5.2 RSA-OAEP + A256GCM JWE with the §5.2.1 4096-bit key: decrypted by
  decrypt_assertion to the exact §5 plaintext.
* §5.1 RSA1_5 + A128CBC-HS256 JWE: refused on its alg.
"""

from __future__ import annotations

import base64

import pytest
from joserfc.jwk import ECKey, RSAKey

from tessera.jose import (
    JoseError,
    ManagedKey,
    ServerKeys,
    decrypt_assertion,
    generate_signing_key,
    verify_signed_assertion,
)
from tessera.jose.nested import DECRYPT_FAILED

from ._build import flip_char, replace_part
from .conftest import NOW

# §4: "It’s a dangerous business, Frodo, going out your door. ..." (base64url)
PAYLOAD_4 = (
    "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IH"
    "lvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBk"
    "b24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcm"
    "UgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4"
)

# §3.3 RSA public key "bilbo.baggins@hobbiton.example"
RSA_3_3 = {
    "kty": "RSA",
    "kid": "bilbo.baggins@hobbiton.example",
    "use": "sig",
    "n": (
        "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT"
        "-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqV"
        "wGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-"
        "oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde"
        "3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuC"
        "LqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5g"
        "HdrNP5zw"
    ),
    "e": "AQAB",
}

# §3.1 EC public key (P-521) "bilbo.baggins@hobbiton.example"
EC_3_1 = {
    "kty": "EC",
    "kid": "bilbo.baggins@hobbiton.example",
    "use": "sig",
    "crv": "P-521",
    "x": "AHKZLLOsCOzz5cY97ewNUajB957y-C-U88c3v13nmGZx6sYl_oJXu9A5RkTKqjqvjyekWF-7ytDyRXYgCF5cj0Kt",
    "y": "AdymlHvOiLxXkEhayXQnNCvDX4h9htZaCJN34kfmC6pV5OhQHiraVySsUdaQkAgDPrwQrJmbnX9cwlGfP-HqHZR1",
}

# §4.1.3 RS256, compact
JWS_4_1 = ".".join(
    [
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        PAYLOAD_4,
        "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmK"
        "ZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4J"
        "IwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8w"
        "W1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluP"
        "xUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_f"
        "cIe8u9ipH84ogoree7vjbU5y18kDquDg",
    ]
)

# §4.2.3 PS384, compact
JWS_4_2 = ".".join(
    [
        "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        PAYLOAD_4,
        "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2I"
        "pN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXU"
        "vdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRX"
        "e8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT"
        "0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a"
        "6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
    ]
)

# §4.3.3 ES512, compact
JWS_4_3 = ".".join(
    [
        "eyJhbGciOiJFUzUxMiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
        PAYLOAD_4,
        "AE_R_YZCChjn4791jSQCrdPZCNYqHXCTZH0-JZGYNlaAjP2kqaluUIIUnC9qvb"
        "u9Plon7KRTzoNEuT4Va2cmL1eJAQy3mtPBu_u_sDDyYjnAMDxXPn7XrT0lw-kv"
        "AD890jl8e2puQens_IEKBpHABlsbEPX6sFY8OcGDqoRuBomu9xQ2",
    ]
)

# §4.4.3 HS256, compact
JWS_4_4 = ".".join(
    [
        "eyJhbGciOiJIUzI1NiIsImtpZCI6IjAxOGMwYWU1LTRkOWItNDcxYi1iZmQ2LWVlZjMxNGJjNzAzNyJ9",
        PAYLOAD_4,
        "s0h6KThzkfBBBkLspW1h84VsJZFTsPPqMDA7g1Md7p0",
    ]
)

# §5 plaintext
PLAINTEXT_5 = (
    "You can trust us to stick with you through thick and thin\u2013to the bitter end. "
    "And you can trust us to keep any secret of yours\u2013closer than you keep it yourself. "
    "But you cannot trust us to let you face trouble alone, and go off without a word. "
    "We are your friends, Frodo."
).encode("utf-8")

# §5.2.1 RSA 4096 private key "samwise.gamgee@hobbiton.example" (n, e, d; primes are recovered)
RSA_5_2_1 = {
    "kty": "RSA",
    "kid": "samwise.gamgee@hobbiton.example",
    "use": "enc",
    "alg": "RSA-OAEP",
    "n": (
        "wbdxI55VaanZXPY29Lg5hdmv2XhvqAhoxUkanfzf2-5zVUxa6prHRr"
        "I4pP1AhoqJRlZfYtWWd5mmHRG2pAHIlh0ySJ9wi0BioZBl1XP2e-C-Fy"
        "XJGcTy0HdKQWlrfhTm42EW7Vv04r4gfao6uxjLGwfpGrZLarohiWCPnk"
        "Nrg71S2CuNZSQBIPGjXfkmIy2tl_VWgGnL22GplyXj5YlBLdxXp3XeSt"
        "sqo571utNfoUTU8E4qdzJ3U1DItoVkPGsMwlmmnJiwA7sXRItBCivR4M"
        "5qnZtdw-7v4WuR4779ubDuJ5nalMv2S66-RPcnFAzWSKxtBDnFJJDGIU"
        "e7Tzizjg1nms0Xq_yPub_UOlWn0ec85FCft1hACpWG8schrOBeNqHBOD"
        "FskYpUc2LC5JA2TaPF2dA67dg1TTsC_FupfQ2kNGcE1LgprxKHcVWYQb"
        "86B-HozjHZcqtauBzFNV5tbTuB-TpkcvJfNcFLlH3b8mb-H_ox35FjqB"
        "SAjLKyoeqfKTpVjvXhd09knwgJf6VKq6UC418_TOljMVfFTWXUxlnfhO"
        "OnzW6HSSzD1c9WrCuVzsUMv54szidQ9wf1cYWf3g5qFDxDQKis99gcDa"
        "iCAwM3yEBIzuNeeCa5dartHDb1xEB_HcHSeYbghbMjGfasvKn0aZRsnT"
        "yC0xhWBlsolZE"
    ),
    "e": "AQAB",
    "d": (
        "n7fzJc3_WG59VEOBTkayzuSMM780OJQuZjN_KbH8lOZG25ZoA7T4Bx"
        "cc0xQn5oZE5uSCIwg91oCt0JvxPcpmqzaJZg1nirjcWZ-oBtVk7gCAWq"
        "-B3qhfF3izlbkosrzjHajIcY33HBhsy4_WerrXg4MDNE4HYojy68TcxT"
        "2LYQRxUOCf5TtJXvM8olexlSGtVnQnDRutxEUCwiewfmmrfveEogLx9E"
        "A-KMgAjTiISXxqIXQhWUQX1G7v_mV_Hr2YuImYcNcHkRvp9E7ook0876"
        "DhkO8v4UOZLwA1OlUX98mkoqwc58A_Y2lBYbVx1_s5lpPsEqbbH-nqIj"
        "h1fL0gdNfihLxnclWtW7pCztLnImZAyeCWAG7ZIfv-Rn9fLIv9jZ6r7r"
        "-MSH9sqbuziHN2grGjD_jfRluMHa0l84fFKl6bcqN1JWxPVhzNZo01yD"
        "F-1LiQnqUYSepPf6X3a2SOdkqBRiquE6EvLuSYIDpJq3jDIsgoL8Mo1L"
        "oomgiJxUwL_GWEOGu28gplyzm-9Q0U0nyhEf1uhSR8aJAQWAiFImWH5W"
        "_IQT9I7-yrindr_2fWQ_i1UgMsGzA7aOGzZfPljRy6z-tY_KuBG00-28"
        "S_aWvjyUc-Alp8AUyKjBZ-7CWH32fGWK48j1t-zomrwjL_mnhsPbGs0c"
        "9WsWgRzI-K8gE"
    ),
}

# §5.2.5 compact: protected header, encrypted key, IV, ciphertext, tag
JWE_5_2 = ".".join(
    [
        "eyJhbGciOiJSU0EtT0FFUCIsImtpZCI6InNhbXdpc2UuZ2FtZ2VlQGhvYmJpdG9uLmV4YW1wbGUiLCJlbmMiOiJBMjU2R0NNIn0",
        "rT99rwrBTbTI7IJM8fU3Eli7226HEB7IchCxNuh7lCiud48LxeolRdtFF4nzQi"
        "beYOl5S_PJsAXZwSXtDePz9hk-BbtsTBqC2UsPOdwjC9NhNupNNu9uHIVftDyu"
        "cvI6hvALeZ6OGnhNV4v1zx2k7O1D89mAzfw-_kT3tkuorpDU-CpBENfIHX1Q58"
        "-Aad3FzMuo3Fn9buEP2yXakLXYa15BUXQsupM4A1GD4_H4Bd7V3u9h8Gkg8Bpx"
        "KdUV9ScfJQTcYm6eJEBz3aSwIaK4T3-dwWpuBOhROQXBosJzS1asnuHtVMt2pK"
        "IIfux5BC6huIvmY7kzV7W7aIUrpYm_3H4zYvyMeq5pGqFmW2k8zpO878TRlZx7"
        "pZfPYDSXZyS0CfKKkMozT_qiCwZTSz4duYnt8hS4Z9sGthXn9uDqd6wycMagnQ"
        "fOTs_lycTWmY-aqWVDKhjYNRf03NiwRtb5BE-tOdFwCASQj3uuAgPGrO2AWBe3"
        "8UjQb0lvXn1SpyvYZ3WFc7WOJYaTa7A8DRn6MC6T-xDmMuxC0G7S2rscw5lQQU"
        "06MvZTlFOt0UvfuKBa03cxA_nIBIhLMjY2kOTxQMmpDPTr6Cbo8aKaOnx6ASE5"
        "Jx9paBpnNmOOKH35j_QlrQhDWUN6A2Gg8iFayJ69xDEdHAVCGRzN3woEI2ozDR"
        "s",
        "-nBoKLH0YkLZPSI9",
        "o4k2cnGN8rSSw3IDo1YuySkqeS_t2m1GXklSgqBdpACm6UJuJowOHC5ytjqYgR"
        "L-I-soPlwqMUf4UgRWWeaOGNw6vGW-xyM01lTYxrXfVzIIaRdhYtEMRBvBWbEw"
        "P7ua1DRfvaOjgZv6Ifa3brcAM64d8p5lhhNcizPersuhw5f-pGYzseva-TUaL8"
        "iWnctc-sSwy7SQmRkfhDjwbz0fz6kFovEgj64X1I5s7E6GLp5fnbYGLa1QUiML"
        "7Cc2GxgvI7zqWo0YIEc7aCflLG1-8BboVWFdZKLK9vNoycrYHumwzKluLWEbSV"
        "maPpOslY2n525DxDfWaVFUfKQxMF56vn4B9QMpWAbnypNimbM8zVOw",
        "UCGiqJxhBI3IFVdPalHHvA",
    ]
)

# §5.1.5 RSA1_5 + A128CBC-HS256: only the protected header matters (refused on alg)
JWE_5_1_HEADER = (
    "eyJhbGciOiJSU0ExXzUiLCJraWQiOiJmcm9kby5iYWdnaW5zQGhvYmJpdG9uLmV4YW1wbGUiLCJlbmMiOiJBMTI4Q0JDLUhTMjU2In0"
)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@pytest.fixture(scope="module")
def hobbiton_keys():
    enc = RSAKey.import_key(RSA_5_2_1)
    sig = generate_signing_key("ES256")
    return ServerKeys(
        [
            ManagedKey(sig.kid, "sig", "ES256", "current", sig),
            ManagedKey(enc.kid, "enc", "RSA-OAEP", "current", enc),
        ]
    )


def test_vectors_decode_to_the_rfc_texts():
    assert _b64decode(PAYLOAD_4).startswith("It\u2019s a dangerous business, Frodo".encode())
    assert _b64decode(JWS_4_1.split(".")[0]) == b'{"alg":"RS256","kid":"bilbo.baggins@hobbiton.example"}'
    assert (
        _b64decode(JWE_5_2.split(".")[0])
        == b'{"alg":"RSA-OAEP","kid":"samwise.gamgee@hobbiton.example","enc":"A256GCM"}'
    )


def test_4_1_rs256_signature_verifies():
    public = RSAKey.import_key(RSA_3_3)
    with pytest.raises(JoseError) as err:
        verify_signed_assertion(JWS_4_1, [public.public_key])
    # The signature was accepted; only the prose payload (not a JSON object) is refused.
    assert err.value.reason == "signed assertion payload is not JSON"


def test_4_1_tampered_signature_refused():
    public = RSAKey.import_key(RSA_3_3)
    bad = replace_part(JWS_4_1, 2, flip_char(JWS_4_1.split(".")[2]))
    with pytest.raises(JoseError) as err:
        verify_signed_assertion(bad, [public])
    assert err.value.reason == "client_assertion signature is invalid"


def test_4_2_ps384_refused():
    with pytest.raises(JoseError) as err:
        verify_signed_assertion(JWS_4_2, [RSAKey.import_key(RSA_3_3)])
    assert err.value.reason == "JWS alg is not allowed"


def test_4_3_es512_refused():
    with pytest.raises(JoseError) as err:
        verify_signed_assertion(JWS_4_3, [ECKey.import_key(EC_3_1)])
    assert err.value.reason == "JWS alg is not allowed"


def test_4_4_hs256_refused():
    with pytest.raises(JoseError) as err:
        verify_signed_assertion(JWS_4_4, [RSAKey.import_key(RSA_3_3)])
    assert err.value.reason == "JWS alg is not allowed"


def test_5_2_rsa_oaep_a256gcm_decrypts(hobbiton_keys):
    assert decrypt_assertion(JWE_5_2, hobbiton_keys, NOW) == PLAINTEXT_5


def test_5_2_tampered_tag_refused(hobbiton_keys):
    bad = replace_part(JWE_5_2, 4, flip_char(JWE_5_2.split(".")[4]))
    with pytest.raises(JoseError) as err:
        decrypt_assertion(bad, hobbiton_keys, NOW)
    assert err.value.reason == DECRYPT_FAILED


def test_5_2_plaintext_is_not_an_assertion(hobbiton_keys):
    with pytest.raises(JoseError):
        verify_signed_assertion(decrypt_assertion(JWE_5_2, hobbiton_keys, NOW), [RSAKey.import_key(RSA_3_3)])


def test_5_1_rsa1_5_refused(hobbiton_keys):
    token = replace_part(JWE_5_2, 0, JWE_5_1_HEADER)
    with pytest.raises(JoseError) as err:
        decrypt_assertion(token, hobbiton_keys, NOW)
    assert err.value.reason == "JWE alg is not allowed"
