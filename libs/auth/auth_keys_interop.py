#!/usr/bin/python3
"""auth_keys_interop: the configured key set (auth_keys) against an independent
library (PyJWT, Debian python3-jwt) and an independent key derivation (Python's
hashlib). As schemas/auth.md "Keys" promises, any JWT library verifies Chorus
tokens with the secret text: CHORUS_JWT_SECRET as it is, or, when it is empty,
crypto_kdf of CHORUS_SECRET_KEY (BLAKE2b-256 keyed with the 32 decoded bytes,
salt = subkey id 1, personal = "chorusjw"), hex-encoded. The kid is the first 16
hex digits of SHA-256 of the secret; CHORUS_JWT_PREVIOUS_SECRETS still verify.

Usage: auth_keys_interop.py PATH/TO/auth_jwt_tool
Exits 77 (CTest "skipped") when python3-jwt is not installed.
"""
import base64
import hashlib
import json
import os
import struct
import subprocess
import sys
import time

try:
    import jwt
except ImportError:
    print("auth_keys_interop: python3-jwt is not installed; skipped")
    sys.exit(77)

TOOL = sys.argv[1]
failures = []
CLEAN = {k: v for k, v in os.environ.items()
         if not (k.startswith("CHORUS_JWT_") or k == "CHORUS_SECRET_KEY")}


def tool(env, *args, stdin=None):
    return subprocess.run([TOOL] + list(args), input=stdin, env=dict(CLEAN, **env),
                          capture_output=True, text=True, timeout=10)


def check(name, got, expected):
    status = "ok" if got == expected else "FAIL"
    print(f"  {status:4} {name}: {got}" + ("" if got == expected else f" (expected {expected})"))
    if got != expected:
        failures.append(name)


def derive(secret_key):
    master = base64.b64decode(secret_key)
    return hashlib.blake2b(b"", digest_size=32, key=master,
                           salt=struct.pack("<Q", 1) + bytes(8),
                           person=b"chorusjw" + bytes(8)).hexdigest()


def kid(secret):
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


print(f"python3-jwt {jwt.__version__}")

# 1. Derived from CHORUS_SECRET_KEY: PyJWT verifies with the secret computed here
master = base64.b64encode(os.urandom(32)).decode()
env = {"CHORUS_SECRET_KEY": master}
secret = derive(master)
run = tool(env, "config-secret")
check("the tool prints the derived secret", run.stdout.strip(), secret)
run = tool(env, "config-issue", "user-1", "tenant-1", "member", "session-1")
check("C issues from the configuration", run.returncode, 0)
token = run.stdout.strip()
check("kid is sha256(secret)[:16]", jwt.get_unverified_header(token).get("kid"),
      kid(secret))
claims = jwt.decode(token, secret, algorithms=["HS256"], audience="chorus-api",
                    issuer="chorus")
check("PyJWT decodes it (iss chorus, aud chorus-api)",
      (claims["sub"], claims["tid"], claims["role"], claims["sid"],
       claims["exp"] - claims["iat"]),
      ("user-1", "tenant-1", "member", "session-1", 900))

# 2. CHORUS_JWT_SECRET wins; issuer, audience and lifetime from the configuration
env = {"CHORUS_SECRET_KEY": master, "CHORUS_JWT_SECRET": "current-0123456789abcdef0123456789",
       "CHORUS_JWT_ISSUER": "https://chorus.test", "CHORUS_JWT_AUDIENCE": "api",
       "CHORUS_JWT_TTL_S": "120",
       "CHORUS_JWT_PREVIOUS_SECRETS": "old-0123456789abcdef0123456789abcdef, "
                                      "older-0123456789abcdef0123456789abcdef"}
token = tool(env, "config-issue", "user-2", "tenant-2", "tenant_admin").stdout.strip()
claims = jwt.decode(token, env["CHORUS_JWT_SECRET"], algorithms=["HS256"], audience="api",
                    issuer="https://chorus.test")
check("CHORUS_JWT_SECRET signs", (claims["sub"], claims["exp"] - claims["iat"],
                                  "sid" in claims), ("user-2", 120, False))
check("kid of CHORUS_JWT_SECRET", jwt.get_unverified_header(token)["kid"],
      kid(env["CHORUS_JWT_SECRET"]))

# 3. Rotation: tokens PyJWT signs with a previous secret (and its kid) verify
now = int(time.time())
body = {"iss": "https://chorus.test", "aud": "api", "sub": "u", "tid": "t",
        "role": "member", "iat": now, "exp": now + 60}
for name in ("old-0123456789abcdef0123456789abcdef", "older-0123456789abcdef0123456789abcdef"):
    forged = jwt.encode(body, name, algorithm="HS256", headers={"kid": kid(name)})
    run = tool(env, "config-verify", stdin=forged)
    check("a previous secret verifies (%s...)" % name[:5], run.returncode, 0)
forged = jwt.encode(body, "gone-0123456789abcdef0123456789abcdef", algorithm="HS256",
                    headers={"kid": kid("gone-0123456789abcdef0123456789abcdef")})
check("an unlisted secret does not", tool(env, "config-verify", stdin=forged).stdout.strip(),
      "unknown_key")

# 4. Bad configurations stop with a message naming the variable
for bad, needle in (({}, "CHORUS_SECRET_KEY"),
                    ({"CHORUS_JWT_SECRET": "short"}, "CHORUS_JWT_SECRET"),
                    ({"CHORUS_SECRET_KEY": "not-base64-of-32-bytes"}, "CHORUS_SECRET_KEY"),
                    ({"CHORUS_JWT_TTL_S": "10", "CHORUS_SECRET_KEY": master},
                     "CHORUS_JWT_TTL_S")):
    run = tool(bad, "config-issue", "u", "t", "member")
    check("refused: %s" % json.dumps(bad)[:60], (run.returncode, needle in run.stderr),
          (2, True))

if failures:
    print(f"auth_keys_interop: {len(failures)} failed: {', '.join(failures)}")
    sys.exit(1)
print("auth_keys_interop: OK")
