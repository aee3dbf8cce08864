#!/usr/bin/python3
"""auth_jwt_interop: Chorus access JWTs against an independent library (PyJWT,
Debian python3-jwt). Tokens issued by auth_jwt_tool must decode with PyJWT
(algorithm pinned to HS256, iss and aud checked); tokens made with PyJWT must
verify in C when right, and be refused with the expected error when forged
(alg none, HS384/HS512 with our secret, RS256/EdDSA headers, wrong key, unknown
kid, flipped signature, edited claims, expired, wrong aud/iss, oversized).

Usage: auth_jwt_interop.py PATH/TO/auth_jwt_tool
Exits 77 (CTest "skipped") when python3-jwt is not installed.
"""
import base64
import json
import os
import subprocess
import sys
import time

try:
    import jwt
except ImportError:
    print("auth_jwt_interop: python3-jwt is not installed; skipped")
    sys.exit(77)

TOOL = sys.argv[1]
ISS, AUD = "https://chorus.test", "chorus-api"
SECRET = "interop-secret-0123456789abcdef0123456789"
ENV = dict(os.environ, AUTH_JWT_KID="k1", AUTH_JWT_SECRET=SECRET)
failures = []


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tool(*args, stdin=None):
    return subprocess.run([TOOL] + list(args), input=stdin, env=ENV,
                          capture_output=True, text=True, timeout=10)


def c_verify(token, iss=ISS, aud=AUD):
    """Verify token with the C verifier: ("ok", claims) or (error name, None)."""
    run = tool("verify", iss, aud, stdin=token)
    if run.returncode == 0:
        return "ok", json.loads(run.stdout)
    return run.stdout.strip(), None


def check(name, got, expected):
    status = "ok" if got == expected else "FAIL"
    print(f"  {status:4} {name}: {got}" + ("" if got == expected else f" (expected {expected})"))
    if got != expected:
        failures.append(name)


def claims(**changes):
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "sub": "u1", "tid": "t1", "role": "member",
            "iat": now, "exp": now + 900, "jti": "j1"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def pyjwt(body, key=SECRET, alg="HS256", kid="k1", **headers):
    headers = dict(headers)
    if kid is not None:
        headers["kid"] = kid
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def unsigned(header, body, signature=""):
    return (b64(json.dumps(header).encode()) + "." + b64(json.dumps(body).encode())
            + "." + signature)


print(f"python3-jwt {jwt.__version__}")

# 1. C issues, PyJWT verifies (algorithm pinned, iss/aud/exp checked)
run = tool("issue", ISS, AUD, "user-42", "tenant-7", "tenant_admin")
check("C issues a token", run.returncode, 0)
token = run.stdout.strip()
header = jwt.get_unverified_header(token)
check("header alg/typ/kid", (header.get("alg"), header.get("typ"), header.get("kid")),
      ("HS256", "JWT", "k1"))
decoded = jwt.decode(token, SECRET, algorithms=["HS256"], audience=AUD, issuer=ISS,
                     options={"require": ["exp", "iat", "sub", "iss", "aud"]})
check("PyJWT decodes the C token",
      (decoded["sub"], decoded["tid"], decoded["role"], decoded["exp"] - decoded["iat"]),
      ("user-42", "tenant-7", "tenant_admin", 900))
try:
    jwt.decode(token, "another-secret-0123456789abcdef01234567", algorithms=["HS256"],
               audience=AUD, issuer=ISS)
    check("PyJWT refuses the C token under another secret", "accepted", "refused")
except jwt.InvalidSignatureError:
    check("PyJWT refuses the C token under another secret", "refused", "refused")
check("C verifies its own token", c_verify(token)[0], "ok")
check("no sid unless asked for", "sid" in decoded, False)
run = tool("issue", ISS, AUD, "user-42", "tenant-7", "member", "family-9")
decoded = jwt.decode(run.stdout.strip(), SECRET, algorithms=["HS256"], audience=AUD,
                     issuer=ISS)
check("PyJWT reads the sid claim", decoded.get("sid"), "family-9")

# 2. PyJWT issues a correct token, C verifies it
code, got = c_verify(pyjwt(claims(sub="py-user", role="platform_admin")))
check("C verifies a PyJWT token", (code, got and got["sub"], got and got["role"]),
      ("ok", "py-user", "platform_admin"))
check("C accepts aud as a list", c_verify(pyjwt(claims(aud=["x", AUD])))[0], "ok")
check("C accepts no typ header", c_verify(pyjwt(claims(), typ=None))[0], "ok")
code, got = c_verify(pyjwt(claims(sid="session-1")))
check("C returns the sid claim", (code, got and got["sid"]), ("ok", "session-1"))
code, got = c_verify(pyjwt(claims()))
check("C returns no sid when absent", (code, got and got["sid"]), ("ok", ""))

# 3. Forgeries the C verifier must refuse
good = pyjwt(claims())
h, p, s = good.split(".")
cases = [
    ("alg none (PyJWT)", jwt.encode(claims(), None, algorithm="none",
                                    headers={"kid": "k1"}), "bad_algorithm"),
    ("alg none with the real signature",
     unsigned({"alg": "none", "typ": "JWT", "kid": "k1"}, claims(), s), "bad_algorithm"),
    ("alg None", unsigned({"alg": "None", "kid": "k1"}, claims()), "bad_algorithm"),
    ("HS384 with our secret", pyjwt(claims(), alg="HS384"), "bad_algorithm"),
    ("HS512 with our secret", pyjwt(claims(), alg="HS512"), "bad_algorithm"),
    ("RS256 header", unsigned({"alg": "RS256", "kid": "k1"}, claims(), s), "bad_algorithm"),
    ("EdDSA header", unsigned({"alg": "EdDSA", "kid": "k1"}, claims(), b64(b"x" * 64)),
     "bad_algorithm"),
    ("HS256 with a wrong key", pyjwt(claims(), key="wrong-secret-0123456789abcdef0123456"),
     "bad_signature"),
    ("another key and kid", pyjwt(claims(), key="other-secret-0123456789abcdef01234567",
                                  kid="k9"), "unknown_key"),
    ("no kid", pyjwt(claims(), kid=None), "unknown_key"),
    ("signature byte flipped", h + "." + p + "." + ("B" if s[0] == "A" else "A") + s[1:],
     "bad_signature"),
    ("claim changed, not re-signed",
     h + "." + b64(json.dumps(claims(role="platform_admin")).encode()) + "." + s,
     "bad_signature"),
    ("expired", pyjwt(claims(iat=int(time.time()) - 2000, exp=int(time.time()) - 1000)),
     "expired"),
    ("issued in the future", pyjwt(claims(iat=int(time.time()) + 600)), "not_yet_valid"),
    ("wrong aud", pyjwt(claims(aud="billing-api")), "bad_audience"),
    ("wrong iss", pyjwt(claims(iss="https://evil.test")), "bad_issuer"),
    ("no tid", pyjwt(claims(tid=None)), "invalid_claims"),
    ("unknown role", pyjwt(claims(role="owner")), "invalid_claims"),
    ("sid not a string", pyjwt(claims(sid=7)), "invalid_claims"),
    ("sid empty", pyjwt(claims(sid="")), "invalid_claims"),
    ("sid too long", pyjwt(claims(sid="s" * 256)), "invalid_claims"),
    ("typ at+jwt", pyjwt(claims(), typ="at+jwt"), "bad_type"),
    ("oversized", pyjwt(claims(pad="x" * 9000)), "malformed"),
    ("not a JWT", "not-a-token", "malformed"),
]
for name, forged, expected in cases:
    check(name, c_verify(forged)[0], expected)

if failures:
    print(f"auth_jwt_interop: {len(failures)} failed: {', '.join(failures)}")
    sys.exit(1)
print("auth_jwt_interop: OK")
