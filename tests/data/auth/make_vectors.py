"""Independent test data for src/auth: a JWKS built from the PEM public keys beside this
file, and tokens signed by Python's `cryptography` (not by ringcast's code), so the tests
check interoperation, not only self-consistency.

The keys themselves were made with openssl (see README.md). Run from this directory:
    python3 make_vectors.py
"""

import base64
import hashlib
import hmac
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n: int, size: int | None = None) -> bytes:
    size = size or (n.bit_length() + 7) // 8
    return n.to_bytes(size, "big")


def private(name):
    with open(name + ".key", "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def jwk(name, kid):
    key = private(name).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "n": b64(uint(nums.n)), "e": b64(uint(nums.e))}
    if isinstance(key, ec.EllipticCurvePublicKey):
        nums = key.public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384"}[key.curve.name]
        return {"kty": "EC", "kid": kid, "crv": crv, "x": b64(uint(nums.x, size)), "y": b64(uint(nums.y, size))}
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(raw)}


def sign(alg, name, signing_input: bytes) -> bytes:
    h = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}.get(alg[2:])
    if alg.startswith("HS"):
        with open(name, "rb") as f:
            secret = f.read()
        return hmac.new(secret, signing_input, getattr(hashlib, "sha" + alg[2:])).digest()
    key = private(name)
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        pss = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        return key.sign(signing_input, pss, h)
    if alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        return uint(r, size) + uint(s, size)
    assert alg == "EdDSA"
    return key.sign(signing_input)


def token(alg, name, claims, kid=None):
    header = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())).encode()
    return signing_input.decode() + "." + b64(sign(alg, name, signing_input))


jwks = {
    "keys": [
        jwk("rsa-a", "rsa-a"),
        jwk("ec256-a", "ec256-a"),
        jwk("ec384-a", "ec384-a"),
        jwk("ed25519-a", "ed25519-a"),
        # An encryption key is not a signing key: the loader skips it.
        dict(jwk("rsa-b", "rsa-b-enc"), use="enc"),
    ]
}
with open("jwks.json", "w") as f:
    json.dump(jwks, f, indent=2)
    f.write("\n")

CLAIMS = {"sub": "py", "exp": 2000000000, "ringcast": {"sub": ["news.*"], "pub": ["chat:lobby"]}}
vectors = []
for alg, name, kid in [
    ("HS256", "hs-a.secret", None),
    ("HS384", "hs-a.secret", None),
    ("HS512", "hs-a.secret", None),
    ("RS256", "rsa-a", "rsa-a"),
    ("RS384", "rsa-a", "rsa-a"),
    ("RS512", "rsa-a", "rsa-a"),
    ("PS256", "rsa-a", "rsa-a"),
    ("PS384", "rsa-a", "rsa-a"),
    ("PS512", "rsa-a", "rsa-a"),
    ("ES256", "ec256-a", "ec256-a"),
    ("ES384", "ec384-a", "ec384-a"),
    ("EdDSA", "ed25519-a", "ed25519-a"),
]:
    vectors.append({"alg": alg, "key": name, "token": token(alg, name, CLAIMS, kid)})
with open("vectors.json", "w") as f:
    json.dump({"claims": CLAIMS, "tokens": vectors}, f, indent=2)
    f.write("\n")
