#!/usr/bin/python3
"""auth_eddsa_interop: EdDSA (Ed25519, RFC 8037) access JWTs against independent
libraries: PyJWT (Debian python3-jwt) with python3-cryptography for Ed25519, and
Python's hashlib for the key derivation. With CHORUS_JWT_ALGORITHM=EdDSA, tokens
issued by auth_jwt_tool must decode with PyJWT using the key of the JWKS the tool
prints (whose x and kid are checked against the seed here); tokens PyJWT makes
with the private key must verify in C, also in a verifier given public keys only
and across a rotation; forged ones must be refused with the expected error: alg
none, HS256 whose HMAC key is the public key (raw, base64url, PEM: the HS/EdDSA
confusion), wrong or missing kid, another key, flipped or non-canonical
signature, edited claims, expired, wrong aud/iss. An HS256 verifier refuses
EdDSA tokens.

Usage: auth_eddsa_interop.py PATH/TO/auth_jwt_tool
Exits 77 (CTest "skipped") when python3-jwt or python3-cryptography is missing.
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import sys
import time

try:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError as e:
    print(f"auth_eddsa_interop: {e.name} is not installed (python3-jwt, "
          "python3-cryptography); skipped")
    sys.exit(77)

TOOL = sys.argv[1]
ISS, AUD = "https://chorus.test", "chorus-api"
failures = []
CLEAN = {k: v for k, v in os.environ.items()
         if not (k.startswith("CHORUS_JWT_") or k == "CHORUS_SECRET_KEY")}


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def tool(env, *args, stdin=None):
    return subprocess.run([TOOL] + list(args), input=stdin, env=dict(CLEAN, **env),
                          capture_output=True, text=True, timeout=10)


def check(name, got, expected):
    status = "ok" if got == expected else "FAIL"
    print(f"  {status:4} {name}: {got}" + ("" if got == expected else f" (expected {expected})"))
    if got != expected:
        failures.append(name)


def raw_public(private_key):
    return private_key.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)


def kid_of(public_key):
    return hashlib.sha256(public_key).hexdigest()[:16]


def derive_seed(secret_key):
    """crypto_kdf: BLAKE2b-256 keyed with the master key, salt = subkey id 3,
    personal = "chorused"."""
    return hashlib.blake2b(b"", digest_size=32, key=base64.b64decode(secret_key),
                           salt=struct.pack("<Q", 3) + bytes(8),
                           person=b"chorused" + bytes(8)).digest()


def claims(**changes):
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "sub": "u1", "tid": "t1", "role": "member",
            "iat": now, "exp": now + 900, "jti": "j1"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def eddsa(body, private_key, kid, **headers):
    headers = dict(headers)
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(body, private_key, algorithm="EdDSA", headers=headers)


def hs256(header, body, key):
    """An HS256 token made by hand, so any bytes (a PEM text too) can be the key."""
    signed = b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
    mac = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    return signed + "." + b64(mac)


def unsigned(header, body, signature=""):
    return (b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
            + "." + signature)


def c_verify(env, token):
    """Verify token with the configured C verifier: ("ok", claims) or (error, None)."""
    run = tool(env, "config-verify", stdin=token)
    if run.returncode == 0:
        return "ok", json.loads(run.stdout)
    return run.stdout.strip(), None


def jwks_of(env):
    run = tool(env, "config-jwks")
    return json.loads(run.stdout) if run.returncode == 0 else None


print(f"python3-jwt {jwt.__version__}")
BASE = {"CHORUS_JWT_ALGORITHM": "EdDSA", "CHORUS_JWT_ISSUER": ISS,
        "CHORUS_JWT_AUDIENCE": AUD}

# 1. A configured private key: C issues, PyJWT verifies with the JWKS key
private = Ed25519PrivateKey.generate()
seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
public = raw_public(private)
KID = kid_of(public)
signer = dict(BASE, CHORUS_JWT_PRIVATE_KEY=base64.b64encode(seed).decode(),
              CHORUS_JWT_SECRET="ignored-with-eddsa-0123456789abcdef")
jwks = jwks_of(signer)
check("JWKS: one key", len(jwks["keys"]) if jwks else None, 1)
check("JWKS key: kty, crv, x, kid, alg, use",
      jwks and jwks["keys"][0],
      {"kty": "OKP", "crv": "Ed25519", "x": b64(public), "kid": KID, "alg": "EdDSA",
       "use": "sig"})
key_set = jwt.PyJWKSet.from_dict(jwks)
run = tool(signer, "config-issue", "user-42", "tenant-7", "tenant_admin", "family-9")
check("C issues an EdDSA token", run.returncode, 0)
token = run.stdout.strip()
header = jwt.get_unverified_header(token)
check("header alg/typ/kid", (header.get("alg"), header.get("typ"), header.get("kid")),
      ("EdDSA", "JWT", KID))
jwk = next(k for k in key_set.keys if k.key_id == header["kid"])
decoded = jwt.decode(token, jwk.key, algorithms=["EdDSA"], audience=AUD, issuer=ISS,
                     options={"require": ["exp", "iat", "sub", "iss", "aud"]})
check("PyJWT decodes the C token with the JWKS key",
      (decoded["sub"], decoded["tid"], decoded["role"], decoded["sid"],
       decoded["exp"] - decoded["iat"]),
      ("user-42", "tenant-7", "tenant_admin", "family-9", 900))
try:
    jwt.decode(token, Ed25519PrivateKey.generate().public_key(), algorithms=["EdDSA"],
               audience=AUD, issuer=ISS)
    check("PyJWT refuses the C token under another key", "accepted", "refused")
except jwt.InvalidSignatureError:
    check("PyJWT refuses the C token under another key", "refused", "refused")
check("C verifies its own token", c_verify(signer, token)[0], "ok")

# 2. Derived from CHORUS_SECRET_KEY: the public key computed here is the JWKS's
master = base64.b64encode(os.urandom(32)).decode()
derived = dict(BASE, CHORUS_SECRET_KEY=master)
derived_public = raw_public(Ed25519PrivateKey.from_private_bytes(derive_seed(master)))
jwks = jwks_of(derived)
check("derived key: JWKS x and kid",
      jwks and (jwks["keys"][0]["x"], jwks["keys"][0]["kid"]),
      (b64(derived_public), kid_of(derived_public)))
token_derived = tool(derived, "config-issue", "u", "t", "member").stdout.strip()
public_key = Ed25519PrivateKey.from_private_bytes(derive_seed(master)).public_key()
decoded = jwt.decode(token_derived, public_key, algorithms=["EdDSA"], audience=AUD,
                     issuer=ISS)
check("PyJWT decodes it with the key derived here", decoded["sub"], "u")

# 3. PyJWT signs with the private key, C verifies
code, got = c_verify(signer, eddsa(claims(sub="py-user", role="platform_admin"),
                                   private, KID, typ="JWT"))
check("C verifies a PyJWT EdDSA token", (code, got and got["sub"], got and got["role"],
                                         got and got["kid"]),
      ("ok", "py-user", "platform_admin", KID))
check("C accepts aud as a list", c_verify(signer, eddsa(claims(aud=["x", AUD]), private,
                                                        KID))[0], "ok")

# 4. A verifier given the public key only (URL-safe, as in the JWKS): verifies,
#    cannot issue, publishes the same JWKS
verifier = dict(BASE, CHORUS_JWT_PUBLIC_KEYS=b64(public))
check("public-key verifier: C token", c_verify(verifier, token)[0], "ok")
check("public-key verifier: PyJWT token", c_verify(verifier, eddsa(claims(), private,
                                                                   KID))[0], "ok")
run = tool(verifier, "config-issue", "u", "t", "member")
check("public-key verifier cannot issue", (run.returncode, "no signing key" in run.stderr),
      (1, True))
check("public-key verifier: JWKS", jwks_of(verifier), jwks_of(signer))

# 5. Rotation: a new private key signs; the old public key still verifies
new_private = Ed25519PrivateKey.generate()
new_seed = new_private.private_bytes(serialization.Encoding.Raw,
                                     serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
rotated = dict(BASE, CHORUS_JWT_PRIVATE_KEY=base64.b64encode(new_seed).decode(),
               CHORUS_JWT_PREVIOUS_PUBLIC_KEYS=" ," + base64.b64encode(public).decode())
jwks = jwks_of(rotated)
check("rotated JWKS: new key first, then the old",
      jwks and [k["kid"] for k in jwks["keys"]], [kid_of(raw_public(new_private)), KID])
check("the old key's token still verifies", c_verify(rotated, token)[0], "ok")
new_token = tool(rotated, "config-issue", "u", "t", "member").stdout.strip()
check("the new key signs", jwt.get_unverified_header(new_token)["kid"],
      kid_of(raw_public(new_private)))
decoded = jwt.decode(new_token, jwt.PyJWKSet.from_dict(jwks)[kid_of(raw_public(new_private))].key,
                     algorithms=["EdDSA"], audience=AUD, issuer=ISS)
check("PyJWT decodes the new token with the rotated JWKS", decoded["sub"], "u")
check("the old verifier does not know the new key", c_verify(verifier, new_token)[0],
      "unknown_key")
gone = Ed25519PrivateKey.generate()
check("an unlisted key does not verify",
      c_verify(rotated, eddsa(claims(), gone, kid_of(raw_public(gone))))[0], "unknown_key")

# 6. Forgeries the EdDSA verifier must refuse
good = eddsa(claims(), private, KID)
h, p, s = good.split(".")
sig = unb64(s)
L = 2**252 + 27742317777372353535851937790883648493
s_plus_l = sig[:32] + (int.from_bytes(sig[32:], "little") + L).to_bytes(32, "little")
pem = private.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
hs_header = {"alg": "HS256", "typ": "JWT", "kid": KID}
other = Ed25519PrivateKey.generate()
cases = [
    ("alg none (PyJWT)", jwt.encode(claims(), None, algorithm="none",
                                    headers={"kid": KID}), "bad_algorithm"),
    ("alg none with the real signature",
     unsigned({"alg": "none", "typ": "JWT", "kid": KID}, claims(), s), "bad_algorithm"),
    ("HS256, HMAC key = the public key bytes (PyJWT)",
     jwt.encode(claims(), public, algorithm="HS256", headers={"kid": KID}),
     "bad_algorithm"),
    ("HS256, HMAC key = the JWKS x text", hs256(hs_header, claims(), b64(public).encode()),
     "bad_algorithm"),
    ("HS256, HMAC key = the PEM public key", hs256(hs_header, claims(), pem),
     "bad_algorithm"),
    ("HS256 with CHORUS_JWT_SECRET (not read with EdDSA)",
     hs256(hs_header, claims(), signer["CHORUS_JWT_SECRET"].encode()), "bad_algorithm"),
    ("alg Ed25519", unsigned({"alg": "Ed25519", "kid": KID}, claims(), s), "bad_algorithm"),
    ("alg ES256", unsigned({"alg": "ES256", "kid": KID}, claims(), s), "bad_algorithm"),
    ("wrong kid", eddsa(claims(), private, "k9"), "unknown_key"),
    ("no kid", eddsa(claims(), private, None), "unknown_key"),
    ("another key under our kid", eddsa(claims(), other, KID), "bad_signature"),
    ("another key and its kid", eddsa(claims(), other, kid_of(raw_public(other))),
     "unknown_key"),
    ("signature byte flipped", h + "." + p + "." + b64(bytes([sig[0] ^ 1]) + sig[1:]),
     "bad_signature"),
    ("signature S + L (not canonical)", h + "." + p + "." + b64(s_plus_l), "bad_signature"),
    ("signature cut short", h + "." + p + "." + b64(sig[:63]), "bad_signature"),
    ("claim changed, not re-signed",
     h + "." + b64(json.dumps(claims(role="platform_admin")).encode()) + "." + s,
     "bad_signature"),
    ("expired", eddsa(claims(iat=int(time.time()) - 2000, exp=int(time.time()) - 1000),
                      private, KID), "expired"),
    ("issued in the future", eddsa(claims(iat=int(time.time()) + 600), private, KID),
     "not_yet_valid"),
    ("wrong aud", eddsa(claims(aud="billing-api"), private, KID), "bad_audience"),
    ("wrong iss", eddsa(claims(iss="https://evil.test"), private, KID), "bad_issuer"),
    ("no tid", eddsa(claims(tid=None), private, KID), "invalid_claims"),
    ("typ at+jwt", eddsa(claims(), private, KID, typ="at+jwt"), "bad_type"),
]
for name, forged, expected in cases:
    check(name, c_verify(signer, forged)[0], expected)
    if expected in ("bad_algorithm", "bad_signature"):
        check(name + " (public-key verifier)", c_verify(verifier, forged)[0], expected)

# 7. The pin the other way: an HS256 verifier refuses EdDSA tokens
hs_env = {"CHORUS_JWT_SECRET": "hs-secret-0123456789abcdef0123456789ab",
          "CHORUS_JWT_ISSUER": ISS, "CHORUS_JWT_AUDIENCE": AUD}
check("HS256 verifier: an EdDSA token", c_verify(hs_env, good)[0], "bad_algorithm")
check("HS256 verifier: the C EdDSA token", c_verify(hs_env, token)[0], "bad_algorithm")
check("HS256 verifier publishes no JWKS", tool(hs_env, "config-jwks").returncode, 1)

# 8. Bad configurations stop with a message naming the variable
for bad, needle in (({"CHORUS_JWT_ALGORITHM": "EdDSA"}, "CHORUS_JWT_ALGORITHM"),
                    ({"CHORUS_JWT_ALGORITHM": "ES256", "CHORUS_SECRET_KEY": master},
                     "CHORUS_JWT_ALGORITHM"),
                    ({"CHORUS_JWT_ALGORITHM": "EdDSA", "CHORUS_JWT_PRIVATE_KEY": "short"},
                     "CHORUS_JWT_PRIVATE_KEY"),
                    ({"CHORUS_JWT_ALGORITHM": "EdDSA",
                      "CHORUS_JWT_PUBLIC_KEYS": b64(public) + ",AAAA"},
                     "CHORUS_JWT_PUBLIC_KEYS"),
                    ({"CHORUS_SECRET_KEY": master, "CHORUS_JWT_PUBLIC_KEYS": b64(public)},
                     "CHORUS_JWT_PUBLIC_KEYS")):
    run = tool(bad, "config-verify", stdin=token)
    check("refused: %s" % json.dumps(bad)[:70], (run.returncode, needle in run.stderr),
          (2, True))

if failures:
    print(f"auth_eddsa_interop: {len(failures)} failed: {', '.join(failures)}")
    sys.exit(1)
print("auth_eddsa_interop: OK")
