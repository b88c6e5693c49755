"""Nested-JWE client assertions for the PAR benchmark, made before the run, and the
cryptographic bound of the PAR endpoint.

An assertion is what a SoftPOS app sends to Nexi's PAR endpoint: a JWT signed RS256 with
the developer certificate's key (RSA 2048, as the document's ``openssl req`` makes it),
encrypted to the server's RSA key (``RSA-OAEP-256`` + ``A256GCM``, ``cty: JWT``). Each
one has its own ``jti``: the server refuses a replay, so the load generator must never
send one twice. Built here directly with ``cryptography`` (compact serialisation by
hand) because it is fast; the harness checks one against the server before the run.

``crypto_bound`` times, on this machine, what the server cannot avoid per request: one
RSA-OAEP-256 decryption with a 2048-bit key and one RS256 verification.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import random
import signal
import statistics
import time
import timeit
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OAEP256 = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def rsa_public_from_jwk(jwk: dict[str, Any]) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(b64u_int(jwk["e"]), b64u_int(jwk["n"])).public_key()


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def sign_rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey) -> bytes:
    signing_input = f"{b64u(_json({'alg': 'RS256', 'typ': 'JWT'}))}.{b64u(_json(claims))}".encode()
    return signing_input + b"." + b64u(key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())).encode()


def encrypt_jwe(plaintext: bytes, public_key: rsa.RSAPublicKey, kid: str | None) -> str:
    header: dict[str, Any] = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
    if kid:
        header["kid"] = kid
    protected = b64u(_json(header))
    cek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return ".".join(
        (protected, b64u(public_key.encrypt(cek, OAEP256)), b64u(iv), b64u(sealed[:-16]), b64u(sealed[-16:]))
    )


# --- the pool ------------------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(spec: dict[str, Any]) -> None:
    # A forked worker must not run the harness's SIGTERM handler; Ctrl-C is the parent's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _STATE["key"] = serialization.load_pem_private_key(spec["app_key_pem"], password=None)
    _STATE["enc"] = rsa_public_from_jwk(spec["enc_jwk"])
    _STATE["encs"] = [rsa_public_from_jwk(k) for k in spec.get("enc_jwks") or [spec["enc_jwk"]]]
    _STATE["spec"] = spec


def _make(count: int) -> list[str]:
    spec, key, enc = _STATE["spec"], _STATE["key"], _STATE["enc"]
    kidless = bool(spec.get("kidless"))
    now = int(time.time())
    out = []
    tail = (
        f"&client_id={quote(spec['client_id'], safe='')}&scope=oidc&redirect_uri={quote(spec['redirect_uri'], safe='')}"
    )
    for _ in range(count):
        claims = dict(spec["claims"], iat=now, exp=now + spec["lifetime"], jti=str(uuid.uuid4()))
        if kidless:  # as Nexi's reference: no kid, a key picked at random from the JWKS
            token = encrypt_jwe(sign_rs256(claims, key), random.choice(_STATE["encs"]), None)
        else:
            token = encrypt_jwe(sign_rs256(claims, key), enc, spec["enc_jwk"].get("kid"))
        out.append("client_assertion=" + token + tail)  # base64url and dots need no escaping
    return out


def assertion_spec(
    *,
    client_id: str,
    redirect_uri: str,
    audience: str,
    app_key_pem: bytes,
    enc_jwk: dict[str, Any],
    pos: str,
    tids: list[str],
    username: str,
    lifetime: int,
    enc_jwks: list[dict[str, Any]] | None = None,
    kidless: bool = False,
) -> dict[str, Any]:
    """``kidless``: no ``kid`` in the JWE header, each assertion to a key of ``enc_jwks``
    picked at random (what Nexi's reference backend does; the server tries its keys)."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "appId": client_id,
        "pointOfSale": pos,
        "terminal_ids": tids,
        "username_merchant": username,
    }
    return {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "app_key_pem": app_key_pem,
        "enc_jwk": enc_jwk,
        "claims": claims,
        "lifetime": lifetime,
        "enc_jwks": enc_jwks,
        "kidless": kidless,
    }


def write_pool(path: Path, spec: dict[str, Any], count: int, *, processes: int | None = None) -> float:
    """Write ``count`` PAR form bodies, one per line, each with a fresh assertion.
    Returns the seconds it took (spread over ``processes``, default every core)."""
    t0 = time.monotonic()
    processes = processes or os.cpu_count() or 1
    chunk = 500
    sizes = [chunk] * (count // chunk) + ([count % chunk] if count % chunk else [])
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(processes, initializer=_init_worker, initargs=(spec,))
    try:
        with open(path, "w") as f:
            for lines in pool.imap_unordered(_make, sizes):
                f.write("\n".join(lines) + "\n")
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()
    return time.monotonic() - t0


def one_body(spec: dict[str, Any]) -> str:
    _STATE.update(
        key=serialization.load_pem_private_key(spec["app_key_pem"], password=None),
        enc=rsa_public_from_jwk(spec["enc_jwk"]),
        spec=spec,
        encs=[rsa_public_from_jwk(k) for k in spec.get("enc_jwks") or [spec["enc_jwk"]]],
    )
    try:
        return _make(1)[0]
    finally:
        _STATE.clear()


# --- the bound --------------------------------------------------------------------------------


def _per_op(fn, number: int, repeat: int = 5) -> float:
    return statistics.median(t / number for t in timeit.repeat(fn, number=number, repeat=repeat))


def crypto_bound(app_key_pem: bytes, *, enc_bits: int = 2048, number: int = 200) -> dict[str, Any]:
    """Per-request cryptographic floor of PAR, timed with ``cryptography`` on this machine:
    one RSA-OAEP-256 decryption (a fresh key of the server's size) and one RS256
    verification with the app's key; plus AES-256-GCM of a typical plaintext (tiny)."""
    server_key = rsa.generate_private_key(public_exponent=65537, key_size=enc_bits)
    wrapped = server_key.public_key().encrypt(os.urandom(32), OAEP256)
    app_key = serialization.load_pem_private_key(app_key_pem, password=None)
    message = os.urandom(700)
    signature = app_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    app_pub = app_key.public_key()
    cek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, message, b"aad")

    t_dec = _per_op(lambda: server_key.decrypt(wrapped, OAEP256), number)
    t_ver = _per_op(lambda: app_pub.verify(signature, message, padding.PKCS1v15(), hashes.SHA256()), number * 5)
    t_gcm = _per_op(lambda: AESGCM(cek).decrypt(iv, sealed, b"aad"), number * 10)
    per_request = t_dec + t_ver + t_gcm
    cores = os.cpu_count() or 1
    return {
        "rsa_oaep256_decrypt_us": round(t_dec * 1e6, 1),
        "rs256_verify_us": round(t_ver * 1e6, 1),
        "a256gcm_decrypt_us": round(t_gcm * 1e6, 2),
        "per_request_us": round(per_request * 1e6, 1),
        "cores": cores,
        # the bound the issue asks for: every core doing nothing but this
        "bound_rps": round(cores / per_request),
        # one Python worker runs its requests one at a time on one core at most
        "bound_rps_per_worker": round(1 / per_request),
        "enc_key_bits": enc_bits,
    }
