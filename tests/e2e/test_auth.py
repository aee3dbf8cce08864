#!/usr/bin/python3
"""End-to-end test of authentication, written from schemas/auth.md: chorus-broker, the
eight services and chorus-edge as processes on a fresh database, spoken to over HTTP
only. Checks registration (the first user is platform_admin), login, refresh rotation
and reuse detection, logout, cookies, invites, members and role changes, tenants,
API keys, password change and reset (tokens read from CHORUS_MAIL_DIR), tenant
switching, the audit log, the cross-tenant 404 matrix, and that Chorus tokens verify
with an independent JWT library (Debian python3-jwt) while tokens forged with it are
refused. Then auth and edge restart with low limits and a rotated JWT secret for the
login limits, the edge budgets and Retry-After.

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL
(tools/chorus test sets them), psql, and /usr/bin/python3 with python3-jwt and
python3-cryptography. Every check prints `ok   <name>`; a failing one prints FAIL, the
reason and the last requests with their answers, and the run goes on."""

import base64
import collections
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import uuid
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, start as start_in  # noqa: E402

try:
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
except ImportError as missing:
    print("test_auth: %s: run with /usr/bin/python3 (apt-get install python3-jwt)" % missing)
    sys.exit(1)

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__)) + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
SERVICES = ["auth", "chat", "agents", "rag", "integrations", "workflows", "channels",
            "analytics"]
WORK = tempfile.mkdtemp(prefix="chorus-auth-test-")
MAIL_DIR = os.path.join(WORK, "mail")
RUN = uuid.uuid4().hex[:8]                  # in every email: runs never collide

SECRET = "e2e-auth-test-jwt-secret-0123456789abcde"     # 40 bytes
SECRET2 = "e2e-auth-test-jwt-secret-rotated-9876543"    # 40 bytes, after rotation
KID = hashlib.sha256(SECRET.encode()).hexdigest()[:16]
KID2 = hashlib.sha256(SECRET2.encode()).hexdigest()[:16]
ISS, AUD = "chorus", "chorus-api"
PASSWORD = "Sturdy-Passphrase-%s-42!" % RUN
ACCESS_TTL, REFRESH_TTL = 900, 7 * 86400
POLL_MS = 200                               # CHORUS_EDGE_REVOCATION_POLL_MS
KEY_CACHE_MS = 500                          # CHORUS_EDGE_API_KEY_CACHE_MS
REVOKED_WITHIN = 5.0                        # "within seconds"
# the limits stack
ACCOUNT_FAILURES, IP_FAILURES, USER_PER_MIN, IP_PER_MIN = 3, 5, 20, 60

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)$")
REFRESH_RE = re.compile(r"^[A-Za-z0-9_-]{43}=?$")
KEY_RE = re.compile(r"^chr_[A-Za-z0-9_-]{43}$")
MAIL_NAME_RE = re.compile(r"^(\d+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json$")

ME = "/api/v1/auth/me"
HISTORY = collections.deque(maxlen=4)       # the last exchanges, shown on failure
FAILED = []
PASSED = []


class Skipped(AttributeError):
    """A check that needs what an earlier, failed check should have made."""


class World:
    """What the checks share: the edge port, the users, their sessions and ids."""
    port = 0

    def __getattr__(self, name):
        raise Skipped("needs W.%s from an earlier check that failed" % name)


W = World()


# ---------------------------------------------------------------------------
# HTTP

class Answer:
    """One request and its answer, as a failing check prints it."""

    def __init__(self, method, path, headers, body, status, answer_headers, data, elapsed):
        self.method, self.path, self.req_headers, self.req_body = method, path, headers, body
        self.status, self.headers, self.body, self.elapsed = status, answer_headers, data, elapsed
        self._json = None

    def header(self, name):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def header_list(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def json(self):
        if self._json is None:
            try:
                self._json = json.loads(self.body)
            except ValueError:
                raise AssertionError("%s %s: answer is not JSON: %r"
                                     % (self.method, self.path, self.body[:300]))
        return self._json

    def cookies(self):
        """Set-Cookie headers as {name: (value, {attribute: value})}."""
        jar = {}
        for line in self.header_list("Set-Cookie"):
            parts = [p.strip() for p in line.split(";")]
            name, _, value = parts[0].partition("=")
            attrs = {}
            for part in parts[1:]:
                key, _, val = part.partition("=")
                attrs[key.strip().lower()] = val.strip()
            jar[name.strip()] = (value.strip(), attrs)
        return jar

    def __str__(self):
        lines = ["  > %s %s" % (self.method, self.path)]
        for key, value in self.req_headers.items():
            if key.lower() in ("authorization", "cookie") and len(value) > 60:
                value = value[:60] + "..."
            lines.append("  > %s: %s" % (key, value))
        if self.req_body:
            lines.append("  > " + self.req_body[:400].decode(errors="replace"))
        lines.append("  < %s (%.0f ms)" % (self.status, self.elapsed * 1000))
        for key, value in self.headers:
            lines.append("  < %s: %s" % (key, value[:100]))
        if self.body:
            lines.append("  < " + self.body[:600].decode(errors="replace"))
        return "\n".join(lines)


def call(method, path, body=None, token=None, cookies=None, headers=None, port=None,
         timeout=15):
    """One HTTP request to the edge: body as JSON (or bytes), token as Bearer."""
    sent = {}
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    if token:
        sent["Authorization"] = "Bearer " + token
    if cookies:
        sent["Cookie"] = "; ".join("%s=%s" % item for item in cookies.items())
    sent.update(headers or {})
    started = time.time()
    conn = http.client.HTTPConnection("127.0.0.1", port or W.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=sent)
        response = conn.getresponse()
        answer = Answer(method, path, sent, data, response.status, response.getheaders(),
                        response.read(), time.time() - started)
    finally:
        conn.close()
    HISTORY.append(answer)
    return answer


def expect(answer, status, code=None):
    """Assert the status; for an error, the {"error":{"code","message"}} body and code."""
    if answer.status != status:
        raise AssertionError("%s %s: expected %d%s, got %d"
                             % (answer.method, answer.path, status,
                                " " + code if code else "", answer.status))
    if status >= 400:
        error = answer.json.get("error") if isinstance(answer.json, dict) else None
        assert isinstance(error, dict), "error body is not {\"error\": {...}}"
        assert isinstance(error.get("code"), str) and error["code"], "error.code missing"
        assert isinstance(error.get("message"), str) and error["message"], "error.message missing"
        if code:
            assert error["code"] == code, "error code %r, expected %r" % (error["code"], code)
    if status == 204:
        assert answer.body == b"", "204 with a body"
        return None
    return answer.json if answer.body else None


def expect_invalid_token(answer):
    """401 unauthorized for a bad credential, with WWW-Authenticate naming it."""
    expect(answer, 401, "unauthorized")
    challenge = answer.header("WWW-Authenticate") or ""
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge, \
        "WWW-Authenticate: %r" % challenge


def expect_retry_after(answer, most):
    expect(answer, 429, "rate_limited")
    value = answer.header("Retry-After")
    assert value is not None and value.strip().isdigit(), "Retry-After %r" % value
    assert 1 <= int(value) <= most, "Retry-After %s, expected 1..%d" % (value, most)


def is_time(value):
    return isinstance(value, str) and TIME_RE.match(value) is not None


def wait_for(what, predicate, timeout=30.0, interval=0.1):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if predicate():
                return
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            pass
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


# ---------------------------------------------------------------------------
# Auth helpers

def claims_of(token, secret=SECRET):
    return jwt.decode(token, secret, algorithms=["HS256"], audience=AUD, issuer=ISS)


def check_token_reply(answer, status, email=None, tenant_id=None, role=None):
    """A TokenReply: OAuth shape, user, tenant, a JWT that PyJWT verifies, cookies."""
    body = expect(answer, status)
    assert body.get("token_type") == "Bearer", body.get("token_type")
    assert body.get("expires_in") == ACCESS_TTL, "expires_in %r" % body.get("expires_in")
    assert body.get("refresh_expires_in") == REFRESH_TTL, \
        "refresh_expires_in %r" % body.get("refresh_expires_in")
    assert REFRESH_RE.match(body.get("refresh_token") or ""), "refresh_token %r" % body.get(
        "refresh_token")
    user, tenant = body.get("user") or {}, body.get("tenant") or {}
    assert UUID_RE.match(user.get("id") or ""), "user.id %r" % user.get("id")
    assert UUID_RE.match(tenant.get("id") or ""), "tenant.id %r" % tenant.get("id")
    assert tenant.get("role") in ("tenant_admin", "member"), "tenant.role %r" % tenant.get("role")
    if email:
        assert (user.get("email") or "").lower() == email.lower(), "user.email %r" % user.get("email")
    if tenant_id:
        assert tenant["id"] == tenant_id, "tenant.id %s, expected %s" % (tenant["id"], tenant_id)
    header = jwt.get_unverified_header(body["access_token"])
    assert header.get("alg") == "HS256" and header.get("kid") == KID_NOW[0], header
    claims = claims_of(body["access_token"], SECRET_NOW[0])
    assert claims["sub"] == user["id"] and claims["tid"] == tenant["id"], claims
    assert claims["exp"] - claims["iat"] == ACCESS_TTL, claims
    assert claims.get("sid") and claims.get("jti"), claims
    expected_role = "platform_admin" if user.get("platform_admin") else tenant["role"]
    assert claims["role"] == expected_role, "role claim %r, expected %r" % (claims["role"],
                                                                            expected_role)
    if role:
        assert claims["role"] == role, "role claim %r, expected %r" % (claims["role"], role)
    cookies = answer.cookies()
    for name, value, path in (("chorus_access", body["access_token"], "/"),
                              ("chorus_refresh", body["refresh_token"], "/api/v1/auth")):
        assert name in cookies, "no %s cookie: %s" % (name, answer.header_list("Set-Cookie"))
        got, attrs = cookies[name]
        assert got == value, "%s cookie is not the token of the body" % name
        assert "httponly" in attrs, "%s not HttpOnly" % name
        assert attrs.get("samesite", "").lower() == "strict", "%s SameSite %r" % (
            name, attrs.get("samesite"))
        assert attrs.get("path") == path, "%s Path %r" % (name, attrs.get("path"))
    return Session(body, claims)


# the current secret and kid: they change when the limits stack rotates the secret
SECRET_NOW = [SECRET]
KID_NOW = [KID]


class Session:
    """One token reply: access and refresh token, user, tenant, claims."""

    def __init__(self, body, claims):
        self.body, self.claims = body, claims
        self.access, self.refresh = body["access_token"], body["refresh_token"]
        self.user, self.tenant = body["user"], body["tenant"]
        self.user_id, self.tenant_id, self.sid = self.user["id"], self.tenant["id"], claims["sid"]


def register(email, password=PASSWORD, status=201, **fields):
    body = {"email": email, "password": password}
    body.update(fields)
    answer = call("POST", "/api/v1/auth/register", body)
    return check_token_reply(answer, status, email=email) if status < 300 else answer


def login(email, password=PASSWORD, tenant_id=None):
    body = {"email": email, "password": password}
    if tenant_id:
        body["tenant_id"] = tenant_id
    return check_token_reply(call("POST", "/api/v1/auth/login", body), 200, email=email,
                             tenant_id=tenant_id)


def email(name):
    return "%s-%s@example.com" % (name, RUN)


def works(token):
    return call("GET", ME, token=token).status == 200


def wait_refused(token, what, within=REVOKED_WITHIN, path=ME):
    """Poll with token until the edge refuses it (401 invalid_token); seconds taken."""
    started = time.time()
    while True:
        answer = call("GET", path, token=token)
        if answer.status == 401:
            expect_invalid_token(answer)
            return time.time() - started
        expect(answer, 200)
        if time.time() - started > within:
            raise AssertionError("%s: still accepted %.1fs later" % (what, within))
        time.sleep(0.05)


def settle(session):
    """Wait until the clock is past the second the token was issued in, so that a
    revocation stamped "now" (unix seconds) is after the token's iat."""
    while time.time() < session.claims["iat"] + 1.05:
        time.sleep(0.05)


def find_mail(to, kind):
    """The oldest unread mail file to `to` of `kind` in CHORUS_MAIL_DIR, or None."""
    for name in sorted(os.listdir(MAIL_DIR)):
        if name in W.mail_seen or not MAIL_NAME_RE.match(name):
            continue        # read, or still a temporary name
        with open(os.path.join(MAIL_DIR, name)) as f:
            mail = json.load(f)
        W.mail_seen.add(name)
        mail["_file"] = name
        W.mail_unread.append(mail)
    for mail in W.mail_unread:
        if mail.get("to") == to and mail.get("kind") == kind:
            W.mail_unread.remove(mail)
            return mail
    return None


def new_mail(to, kind, timeout=5.0):
    """Wait for the next unread mail to `to` of `kind`."""
    end = time.time() + timeout
    while True:
        mail = find_mail(to, kind)
        if mail:
            return mail
        if time.time() > end:
            raise AssertionError("no %s mail to %s in %s (files: %s)"
                                 % (kind, to, MAIL_DIR, sorted(os.listdir(MAIL_DIR))))
        time.sleep(0.05)


def list_all(path, token):
    """Every item of a list route, following next_cursor."""
    items, cursor = [], None
    for _ in range(50):
        query = "?limit=100" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
        body = expect(call("GET", path + query, token=token), 200)
        assert isinstance(body.get("data"), list) and "next_cursor" in body, body
        items += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("%s: more than 50 pages" % path)


def check_paging(path, token, total_at_least=3):
    """limit=1 pages: newest first, no repeats, next_cursor null at the end."""
    everything = list_all(path, token)
    assert len(everything) >= total_at_least, "%s: %d items" % (path, len(everything))
    seen, cursor = [], None
    while True:
        query = "?limit=1" + ("&cursor=" + urllib.parse.quote(cursor) if cursor else "")
        body = expect(call("GET", path + query, token=token), 200)
        assert len(body["data"]) <= 1, body
        seen += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and cursor, body
        assert len(seen) <= len(everything) + 1, "paging does not end"
    key = "id" if "id" in everything[0] else "user_id"
    assert [i[key] for i in seen] == [i[key] for i in everything], \
        "limit=1 pages differ from the whole list"
    stamps = [i.get("created_at") or i.get("joined_at") for i in everything]
    assert stamps == sorted(stamps, reverse=True), "not newest first: %s" % stamps
    return everything


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hand_made(header, claims, key=SECRET.encode(), digest=hashlib.sha256, signature=None):
    """A JWT with any header: signed with HMAC(key) unless a signature is given."""
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    if signature is None:
        signature = b64url(hmac.new(key, ("%s.%s" % (head, body)).encode(), digest).digest())
    return "%s.%s.%s" % (head, body, signature)


def fresh_claims(session, **changes):
    now = int(time.time())
    claims = dict(session.claims)
    claims.update({"iat": now, "exp": now + 600, "jti": str(uuid.uuid4())})
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


# ---------------------------------------------------------------------------
# The checks of the main stack (generous limits)

AUTH_ROUTES = [
    ("post", "/api/v1/auth/register"), ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"), ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"), ("post", "/api/v1/auth/switch"),
    ("post", "/api/v1/auth/password"), ("post", "/api/v1/auth/password/forgot"),
    ("post", "/api/v1/auth/password/reset"), ("get", "/api/v1/auth/invites"),
    ("post", "/api/v1/auth/invites"), ("delete", "/api/v1/auth/invites/{id}"),
    ("post", "/api/v1/auth/invites/accept"), ("get", "/api/v1/auth/members"),
    ("patch", "/api/v1/auth/members/{id}"), ("delete", "/api/v1/auth/members/{id}"),
    ("get", "/api/v1/auth/tenants"), ("post", "/api/v1/auth/tenants"),
    ("get", "/api/v1/auth/tenants/{id}"), ("patch", "/api/v1/auth/tenants/{id}"),
    ("delete", "/api/v1/auth/tenants/{id}"), ("get", "/api/v1/auth/api-keys"),
    ("post", "/api/v1/auth/api-keys"), ("delete", "/api/v1/auth/api-keys/{id}"),
    ("get", "/api/v1/auth/audit")]

# admin routes (tenant_admin or platform_admin), with a body where they take one
ADMIN_ROUTES = [
    ("GET", "/api/v1/auth/invites", None),
    ("POST", "/api/v1/auth/invites", {"email": "x@example.com"}),
    ("DELETE", "/api/v1/auth/invites/%s", None),
    ("GET", "/api/v1/auth/members", None),
    ("PATCH", "/api/v1/auth/members/%s", {"role": "tenant_admin"}),
    ("DELETE", "/api/v1/auth/members/%s", None),
    ("GET", "/api/v1/auth/api-keys", None),
    ("POST", "/api/v1/auth/api-keys", {"name": "nope"}),
    ("DELETE", "/api/v1/auth/api-keys/%s", None),
    ("GET", "/api/v1/auth/audit", None)]
PLATFORM_ROUTES = [
    ("GET", "/api/v1/auth/tenants", None),
    ("POST", "/api/v1/auth/tenants", {"name": "nope"}),
    ("GET", "/api/v1/auth/tenants/%s", None),
    ("PATCH", "/api/v1/auth/tenants/%s", {"name": "nope"}),
    ("DELETE", "/api/v1/auth/tenants/%s", None)]


def c_openapi():
    doc = expect(call("GET", "/openapi.json"), 200)
    missing = [(m, p) for m, p in AUTH_ROUTES if m not in doc.get("paths", {}).get(p, {})]
    assert not missing, "not in /openapi.json: %s" % missing


def c_first_user():
    W.ada = register(email("ada"), name="Ada", tenant_name="Acme %s" % RUN)
    assert W.ada.user.get("platform_admin") is True, "first user: platform_admin %r" % \
        W.ada.user.get("platform_admin")
    assert W.ada.claims["role"] == "platform_admin", W.ada.claims
    assert W.ada.tenant["role"] == "tenant_admin", W.ada.tenant
    assert W.ada.user["name"] == "Ada" and W.ada.tenant["name"] == "Acme %s" % RUN, W.ada.body
    assert is_time(W.ada.user.get("created_at")), W.ada.user
    W.tenant_a = W.ada.tenant_id


def c_register():
    W.bea = register(email("bea"), tenant_name="Beta %s" % RUN)     # tenant B's admin
    W.tenant_b = W.bea.tenant_id
    assert W.bea.user.get("platform_admin") is False, W.bea.user
    assert W.bea.claims["role"] == "tenant_admin", W.bea.claims
    assert W.bea.tenant_id != W.tenant_a
    # defaults: name from the email's local part, tenant "<name>'s team"
    W.bob = register(email("bob"))
    local = email("bob").split("@")[0]
    assert W.bob.user["name"] == local, W.bob.user
    assert W.bob.tenant["name"] == "%s's team" % local, W.bob.tenant
    W.tenant_bob = W.bob.tenant_id
    W.dan = register(email("dan"))      # password change
    W.eve = register(email("eve"))      # password reset


def c_register_errors():
    expect(register(email("ada"), status=409), 409, "conflict")
    expect(register(email("weak"), password="abc", status=400), 400, "bad_request")
    expect(register("not-an-email", status=400), 400, "bad_request")
    expect(call("POST", "/api/v1/auth/register", {"email": email("nopw")}), 400, "bad_request")
    expect(call("POST", "/api/v1/auth/register", {"password": PASSWORD}), 400, "bad_request")
    expect(call("POST", "/api/v1/auth/register", b"{not json",
                headers={"Content-Type": "application/json"}), 400)
    # nothing was created by the failed attempts
    expect(call("POST", "/api/v1/auth/login", {"email": email("weak"), "password": "abc"}),
           401, "invalid_credentials")


def c_pyjwt_verifies():
    for session in (W.ada, W.bea, W.bob):
        header = jwt.get_unverified_header(session.access)
        assert header == {"alg": "HS256", "typ": "JWT", "kid": KID}, header
        claims = jwt.decode(session.access, SECRET, algorithms=["HS256"], audience=AUD,
                            issuer=ISS, options={"require": ["exp", "iat", "sub", "jti"]})
        assert set(claims) >= {"iss", "aud", "sub", "tid", "role", "sid", "iat", "exp", "jti"}, \
            claims
        assert abs(claims["iat"] - time.time()) < 120, claims
        try:
            jwt.decode(session.access, SECRET + "x", algorithms=["HS256"], audience=AUD)
            raise AssertionError("a Chorus token verified with a wrong secret")
        except jwt.InvalidSignatureError:
            pass
    assert len({W.ada.claims["jti"], W.bea.claims["jti"], W.bob.claims["jti"]}) == 3


def c_login():
    W.ada2 = login(email("ada"))
    assert W.ada2.sid != W.ada.sid, "a login is a new session"
    assert W.ada2.tenant_id == W.tenant_a and W.ada2.claims["role"] == "platform_admin"
    wrong = call("POST", "/api/v1/auth/login", {"email": email("ada"), "password": "Wrong-1234567"})
    unknown = call("POST", "/api/v1/auth/login", {"email": email("nobody"), "password": PASSWORD})
    expect(wrong, 401, "invalid_credentials")
    expect(unknown, 401, "invalid_credentials")
    assert wrong.json == unknown.json, "wrong password and unknown email answer differently"
    assert not wrong.header_list("Set-Cookie"), "cookies on a failed login"
    expect(call("POST", "/api/v1/auth/login", {"email": email("ada")}), 400, "bad_request")
    # too long says so (not "required")
    long_password = call("POST", "/api/v1/auth/login", {"email": email("ada"), "password": "x" * 1025})
    expect(long_password, 400, "bad_request")
    assert "at most 1024" in long_password.json["error"]["message"], long_password.json
    long_email = call("POST", "/api/v1/auth/login", {"email": "a" * 250 + "@x.io", "password": PASSWORD})
    expect(long_email, 400, "bad_request")
    assert "at most 254" in long_email.json["error"]["message"], long_email.json


def c_email_case():
    expect(register(email("ada").upper(), status=409), 409, "conflict")
    session = login(email("ada").upper().replace("@EXAMPLE.COM", "@example.com"))
    assert session.user_id == W.ada.user_id


def c_refresh_race():
    """The same refresh token sent five times at once: exactly one rotation wins."""
    import threading
    session = login(email("bea"))
    gate = threading.Barrier(5)
    answers = []

    def one():
        gate.wait()
        answers.append(call("POST", "/api/v1/auth/refresh", {"refresh_token": session.refresh}))
    threads = [threading.Thread(target=one) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    statuses = sorted(a.status for a in answers)
    assert statuses == [200, 401, 401, 401, 401], "concurrent refreshes answered %s" % statuses
    for answer in answers:
        if answer.status == 401:
            expect(answer, 401)
            assert answer.json["error"]["code"] in ("token_reused", "invalid_token"), answer.json


def c_login_timing():
    """An unknown email costs about what a wrong password costs (no user enumeration)."""
    def median(body):
        times = []
        for _ in range(5):
            answer = call("POST", "/api/v1/auth/login", body)
            expect(answer, 401, "invalid_credentials")
            times.append(answer.elapsed)
        return sorted(times)[2]
    wrong = median({"email": email("bea"), "password": "Wrong-password-99"})
    unknown = median({"email": email("nobody"), "password": "Wrong-password-99"})
    # a failed login also writes its audit entry and counters, slow under sanitizers;
    # without a hash for unknown emails the ratio is ~0.1, with one ~0.5..1
    assert unknown >= 0.3 * wrong, "unknown email %.1f ms, wrong password %.1f ms" % (
        unknown * 1000, wrong * 1000)


def c_demotion():
    """A tenant admin demoted to member: the admin token ends, the new one is a member's."""
    session = login(email("cat"))
    expect(call("GET", "/api/v1/auth/members", token=session.access), 200)
    settle(session)
    member = expect(call("PATCH", "/api/v1/auth/members/" + W.cat.user_id, {"role": "member"},
                         token=W.ada.access), 200)
    assert member["role"] == "member", member
    wait_refused(session.access, "a demoted admin's token")
    again = login(email("cat"))
    assert again.claims["role"] == "member" and again.tenant["role"] == "member", again.body
    expect(call("GET", "/api/v1/auth/members", token=again.access), 403, "forbidden")
    expect(call("GET", "/api/v1/auth/audit", token=again.access), 403, "forbidden")


def c_me():
    me = expect(call("GET", ME, token=W.ada.access), 200)
    assert me["auth"] == "jwt", me
    assert me["user"]["id"] == W.ada.user_id and me["user"]["email"] == email("ada"), me
    assert me["user"]["platform_admin"] is True, me
    assert me["tenant"]["id"] == W.tenant_a and me["tenant"]["role"] == "tenant_admin", me
    assert [t["id"] for t in me["tenants"]] == [W.tenant_a], me
    assert me.get("api_key") is None, me
    me = expect(call("GET", ME, token=W.bea.access), 200)
    assert me["user"]["platform_admin"] is False and me["tenant"]["id"] == W.tenant_b, me


def c_bad_credentials():
    expect(call("GET", ME), 401, "unauthorized")
    for bad in ("garbage", "a.b.c", W.ada.access[:-20], W.ada.access + "x"):
        expect_invalid_token(call("GET", ME, headers={"Authorization": "Bearer " + bad}))
    expect_invalid_token(call("GET", ME, cookies={"chorus_access": "garbage"}))
    expect(call("GET", ME, headers={"Authorization": "Basic YTpi"}), 401, "unauthorized")


def c_cookies():
    me = expect(call("GET", ME, cookies={"chorus_access": W.bea.access}), 200)
    assert me["user"]["id"] == W.bea.user_id, me
    # the Authorization header wins over the cookie
    me = expect(call("GET", ME, token=W.ada.access, cookies={"chorus_access": W.bea.access}),
                200)
    assert me["user"]["id"] == W.ada.user_id, "the cookie won over the header"
    expect_invalid_token(call("GET", ME, token="garbage", cookies={"chorus_access": W.bea.access}))


def c_refresh_rotation():
    first = login(email("ada"))
    second = check_token_reply(call("POST", "/api/v1/auth/refresh",
                                    {"refresh_token": first.refresh}), 200,
                               email=email("ada"), tenant_id=W.tenant_a)
    assert second.refresh != first.refresh, "the refresh token was not rotated"
    assert second.access != first.access
    assert second.sid == first.sid, "a refresh stays in the session (family)"
    assert works(second.access) and works(first.access)
    third = check_token_reply(call("POST", "/api/v1/auth/refresh",
                                   {"refresh_token": second.refresh}), 200)
    assert third.sid == first.sid
    W.family = (first, second, third)


def c_refresh_reuse():
    first, second, third = W.family
    settle(third)
    # the first refresh token again: reuse, the whole family is revoked
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": first.refresh}), 401,
           "token_reused")
    answer = call("POST", "/api/v1/auth/refresh", {"refresh_token": third.refresh})
    expect(answer, 401)
    assert answer.json["error"]["code"] in ("invalid_token", "token_reused"), answer.json
    W.reuse_seconds = wait_refused(third.access, "the newest access token of a reused family")
    expect_invalid_token(call("GET", ME, token=first.access))
    assert works(W.ada.access), "another session of the same user was revoked too"


def c_refresh_cookie():
    session = login(email("bea"))
    answer = call("POST", "/api/v1/auth/refresh", cookies={"chorus_refresh": session.refresh})
    rotated = check_token_reply(answer, 200, email=email("bea"))
    assert rotated.sid == session.sid and rotated.refresh != session.refresh
    expect(call("POST", "/api/v1/auth/refresh", cookies={"chorus_refresh": session.refresh}),
           401, "token_reused")


def c_refresh_errors():
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": b64url(os.urandom(32))}),
           401, "invalid_token")
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": "short"}), 401, "invalid_token")
    expect(call("POST", "/api/v1/auth/refresh", {}), 400, "bad_request")
    # an access token is not a refresh token
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": W.bea.access}), 401,
           "invalid_token")


def c_logout():
    session = login(email("bob"))
    rotated = check_token_reply(call("POST", "/api/v1/auth/refresh",
                                     {"refresh_token": session.refresh}), 200)
    settle(rotated)
    answer = call("POST", "/api/v1/auth/logout", {"refresh_token": rotated.refresh},
                  token=rotated.access)
    expect(answer, 204)
    cookies = answer.cookies()
    for name in ("chorus_access", "chorus_refresh"):
        assert name in cookies, "logout does not clear %s: %s" % (
            name, answer.header_list("Set-Cookie"))
        value, attrs = cookies[name]
        cleared = value == "" or attrs.get("max-age") == "0" or "1970" in attrs.get("expires", "")
        assert cleared, "%s not cleared: %r %r" % (name, value, attrs)
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": rotated.refresh}), 401)
    W.logout_seconds = wait_refused(rotated.access, "access token after logout")
    # the whole family: the access token from before the refresh too
    expect_invalid_token(call("GET", ME, token=session.access))
    assert works(W.bob.access), "logout ended another session"


def c_logout_cookies():
    session = login(email("bea"))
    settle(session)
    expect(call("POST", "/api/v1/auth/logout", cookies={
        "chorus_access": session.access, "chorus_refresh": session.refresh}), 204)
    expect(call("POST", "/api/v1/auth/refresh", cookies={"chorus_refresh": session.refresh}),
           401)
    wait_refused(session.access, "access token after a cookie logout")


def c_invites():
    answer = call("POST", "/api/v1/auth/invites", {"email": email("bob"), "role": "member"},
                  token=W.ada.access)
    invite = expect(answer, 201)
    assert UUID_RE.match(invite.get("id") or ""), invite
    assert invite["email"] == email("bob") and invite["role"] == "member", invite
    assert invite["invited_by"] == W.ada.user_id, invite
    assert isinstance(invite.get("token"), str) and len(invite["token"]) >= 20, invite
    assert is_time(invite["created_at"]) and is_time(invite["expires_at"]), invite
    assert invite.get("accepted_at") is None, invite
    mail = new_mail(email("bob"), "invite")
    assert mail["token"] == invite["token"], "the mailed token is not the invite's"
    assert mail.get("subject") and mail.get("text"), mail
    assert invite["token"] not in mail["_file"]
    stamp = int(MAIL_NAME_RE.match(mail["_file"]).group(1))
    assert abs(stamp / 1000 - time.time()) < 60, "mail file name %s: not unix ms" % mail["_file"]
    listed = list_all("/api/v1/auth/invites", W.ada.access)
    mine = [i for i in listed if i["id"] == invite["id"]]
    assert len(mine) == 1 and mine[0]["email"] == email("bob"), listed
    assert mine[0].get("token") is None, "the invite token is listed"
    # bob (member of his own tenant) accepts: a token reply for tenant A
    accepted = check_token_reply(call("POST", "/api/v1/auth/invites/accept",
                                      {"token": invite["token"]}, token=W.bob.access), 200,
                                 email=email("bob"), tenant_id=W.tenant_a, role="member")
    W.bob_a = accepted
    expect(call("POST", "/api/v1/auth/invites/accept", {"token": invite["token"]},
                token=W.bob.access), 401, "invalid_token")
    expect(call("POST", "/api/v1/auth/invites/accept", {"token": "no-such-invite-token-000000"},
                token=W.bob.access), 401, "invalid_token")
    expect(call("POST", "/api/v1/auth/invites/accept", {"token": invite["token"]}), 401,
           "unauthorized")
    listed = [i for i in list_all("/api/v1/auth/invites", W.ada.access) if i["id"] == invite["id"]]
    assert not listed or is_time(listed[0].get("accepted_at")), listed


def c_register_invited():
    invite = expect(call("POST", "/api/v1/auth/invites",
                         {"email": email("cat"), "role": "tenant_admin"},
                         token=W.ada.access), 201)
    mail = new_mail(email("cat"), "invite")
    W.cat = register(email("cat"), name="Cat", invite_token=mail["token"])
    assert W.cat.tenant_id == W.tenant_a and W.cat.tenant["role"] == "tenant_admin", W.cat.body
    assert W.cat.claims["role"] == "tenant_admin", W.cat.claims
    me = expect(call("GET", ME, token=W.cat.access), 200)
    assert [t["id"] for t in me["tenants"]] == [W.tenant_a], "an invited registration " \
        "made a tenant too: %s" % me["tenants"]
    expect(register(email("cat2"), invite_token=invite["token"], status=401), 401, "invalid_token")


def c_invite_errors():
    invite = expect(call("POST", "/api/v1/auth/invites", {"email": email("dora")},
                         token=W.ada.access), 201)
    assert invite["role"] == "member", "default role %r" % invite["role"]
    token = new_mail(email("dora"), "invite")["token"]
    expect(call("DELETE", "/api/v1/auth/invites/" + invite["id"], token=W.ada.access), 204)
    assert invite["id"] not in [i["id"] for i in list_all("/api/v1/auth/invites", W.ada.access)]
    expect(register(email("dora"), invite_token=token, status=401), 401, "invalid_token")
    expect(call("DELETE", "/api/v1/auth/invites/" + invite["id"], token=W.ada.access), 404,
           "not_found")
    expect(call("POST", "/api/v1/auth/invites", {"email": email("x"), "role": "platform_admin"},
                token=W.ada.access), 400, "bad_request")
    expect(call("POST", "/api/v1/auth/invites", {"email": "nope"}, token=W.ada.access), 400,
           "bad_request")
    expect(call("POST", "/api/v1/auth/invites", {"email": email("cat")}, token=W.ada.access),
           409, "conflict")
    # a pending invite kept for the cross-tenant matrix
    W.invite_a = expect(call("POST", "/api/v1/auth/invites", {"email": email("fay")},
                             token=W.ada.access), 201)


def c_switch():
    me = expect(call("GET", ME, token=W.bob.access), 200)
    assert sorted(t["id"] for t in me["tenants"]) == sorted([W.tenant_a, W.tenant_bob]), me
    roles = {t["id"]: t["role"] for t in me["tenants"]}
    assert roles == {W.tenant_a: "member", W.tenant_bob: "tenant_admin"}, roles
    to_a = check_token_reply(call("POST", "/api/v1/auth/switch", {"tenant_id": W.tenant_a},
                                  token=W.bob.access), 200, tenant_id=W.tenant_a, role="member")
    assert to_a.sid != W.bob.sid, "a switch is a new session"
    me = expect(call("GET", ME, token=to_a.access), 200)
    assert me["tenant"]["id"] == W.tenant_a and me["tenant"]["role"] == "member", me
    back = check_token_reply(call("POST", "/api/v1/auth/switch", {"tenant_id": W.tenant_bob},
                                  token=to_a.access), 200, tenant_id=W.tenant_bob,
                             role="tenant_admin")
    assert works(back.access) and works(W.bob.access)
    picked = login(email("bob"), tenant_id=W.tenant_a)
    assert picked.claims["role"] == "member"
    W.bob_a = to_a
    expect(call("POST", "/api/v1/auth/switch", {}, token=W.bob.access), 400, "bad_request")


def c_forbidden():
    ids = {"/api/v1/auth/invites/%s": W.invite_a["id"], "/api/v1/auth/members/%s": W.ada.user_id,
           "/api/v1/auth/api-keys/%s": str(uuid.uuid4()), "/api/v1/auth/tenants/%s": W.tenant_a}
    for method, path, body in ADMIN_ROUTES + PLATFORM_ROUTES:
        url = path % ids[path] if "%s" in path else path
        expect(call(method, url, body, token=W.bob_a.access), 403, "forbidden")
        expect(call(method, url, body), 401, "unauthorized")
    for method, path, body in PLATFORM_ROUTES:
        url = path % ids[path] if "%s" in path else path
        expect(call(method, url, body, token=W.bea.access), 403, "forbidden")
    # nothing changed
    assert W.invite_a["id"] in [i["id"] for i in list_all("/api/v1/auth/invites", W.ada.access)]
    expect(call("GET", "/api/v1/auth/tenants/" + W.tenant_a, token=W.ada.access), 200)


def c_members():
    members = check_paging("/api/v1/auth/members", W.ada.access, 3)
    by_id = {m["user_id"]: m for m in members}
    assert set(by_id) == {W.ada.user_id, W.bob.user_id, W.cat.user_id}, members
    assert by_id[W.ada.user_id]["role"] == "tenant_admin", by_id[W.ada.user_id]
    assert by_id[W.bob.user_id]["role"] == "member" and by_id[W.cat.user_id]["role"] == \
        "tenant_admin", members
    bob = by_id[W.bob.user_id]
    assert bob["email"] == email("bob") and bob["name"] and is_time(bob["joined_at"]), bob
    members_b = list_all("/api/v1/auth/members", W.bea.access)
    assert [m["user_id"] for m in members_b] == [W.bea.user_id], members_b


def c_role_change():
    settle(W.bob_a)
    own = login(email("bob"), tenant_id=W.tenant_bob)
    answer = call("PATCH", "/api/v1/auth/members/" + W.bob.user_id, {"role": "tenant_admin"},
                  token=W.ada.access)
    member = expect(answer, 200)
    assert member["user_id"] == W.bob.user_id and member["role"] == "tenant_admin", member
    W.role_seconds = wait_refused(W.bob_a.access, "a token with the old role")
    assert works(own.access), "a role change in tenant A ended bob's session in his own tenant"
    promoted = check_token_reply(call("POST", "/api/v1/auth/switch", {"tenant_id": W.tenant_a},
                                      token=own.access), 200, tenant_id=W.tenant_a,
                                 role="tenant_admin")
    expect(call("GET", "/api/v1/auth/members", token=promoted.access), 200)
    expect(call("PATCH", "/api/v1/auth/members/" + W.bob.user_id, {"role": "owner"},
                token=W.ada.access), 400, "bad_request")
    expect(call("PATCH", "/api/v1/auth/members/" + W.bob.user_id, {"role": "platform_admin"},
                token=W.ada.access), 400, "bad_request")
    W.bob_a = promoted


def c_last_admin():
    expect(call("PATCH", "/api/v1/auth/members/" + W.bea.user_id, {"role": "member"},
                token=W.bea.access), 409, "conflict")
    expect(call("DELETE", "/api/v1/auth/members/" + W.bea.user_id, token=W.bea.access), 409,
           "conflict")
    me = expect(call("GET", ME, token=W.bea.access), 200)
    assert me["tenant"]["role"] == "tenant_admin", me


def c_member_removal():
    settle(W.bob_a)
    expect(call("DELETE", "/api/v1/auth/members/" + W.bob.user_id, token=W.ada.access), 204)
    wait_refused(W.bob_a.access, "a removed member's token")
    assert works(W.bob.access), "removal from A ended bob's session in his own tenant"
    me = expect(call("GET", ME, token=W.bob.access), 200)
    assert [t["id"] for t in me["tenants"]] == [W.tenant_bob], me
    assert W.bob.user_id not in [m["user_id"] for m in list_all("/api/v1/auth/members",
                                                                  W.ada.access)]
    expect(call("POST", "/api/v1/auth/switch", {"tenant_id": W.tenant_a}, token=W.bob.access),
           404, "not_found")
    expect(call("DELETE", "/api/v1/auth/members/" + W.bob.user_id, token=W.ada.access), 404,
           "not_found")


def c_tenants():
    created = expect(call("POST", "/api/v1/auth/tenants", {"name": "Gamma %s" % RUN},
                          token=W.ada.access), 201)
    assert UUID_RE.match(created.get("id") or "") and created["name"] == "Gamma %s" % RUN, created
    assert is_time(created["created_at"]) and isinstance(created.get("member_count"), int), created
    got = expect(call("GET", "/api/v1/auth/tenants/" + W.tenant_a, token=W.ada.access), 200)
    assert got["id"] == W.tenant_a and got["name"] == "Acme %s" % RUN, got
    assert got["member_count"] == 2, "tenant A has ada and cat: %s" % got
    tenants = check_paging("/api/v1/auth/tenants", W.ada.access, 5)
    ids = [t["id"] for t in tenants]
    assert {W.tenant_a, W.tenant_b, W.tenant_bob, created["id"]} <= set(ids), ids
    assert ids[0] == created["id"], "newest first"
    renamed = expect(call("PATCH", "/api/v1/auth/tenants/" + created["id"],
                          {"name": "Gamma renamed"}, token=W.ada.access), 200)
    assert renamed["id"] == created["id"] and renamed["name"] == "Gamma renamed", renamed
    expect(call("POST", "/api/v1/auth/tenants", {}, token=W.ada.access), 400, "bad_request")
    expect(call("PATCH", "/api/v1/auth/tenants/" + created["id"], {"name": ""},
                token=W.ada.access), 400, "bad_request")
    # when the creator became a member of the new tenant, its session there ends with it
    me = expect(call("GET", ME, token=W.ada.access), 200)
    inside = None
    if created["id"] in [t["id"] for t in me["tenants"]]:
        inside = check_token_reply(call("POST", "/api/v1/auth/switch",
                                        {"tenant_id": created["id"]}, token=W.ada.access), 200,
                                   tenant_id=created["id"])
        settle(inside)
    expect(call("DELETE", "/api/v1/auth/tenants/" + created["id"], token=W.ada.access), 204)
    if inside:
        wait_refused(inside.access, "a session in a deleted tenant")
    me = expect(call("GET", ME, token=W.ada.access), 200)
    assert created["id"] not in [t["id"] for t in me["tenants"]], me
    expect(call("GET", "/api/v1/auth/tenants/" + created["id"], token=W.ada.access), 404,
           "not_found")
    expect(call("DELETE", "/api/v1/auth/tenants/" + created["id"], token=W.ada.access), 404,
           "not_found")
    expect(call("GET", "/api/v1/auth/tenants/" + str(uuid.uuid4()), token=W.ada.access), 404,
           "not_found")


def c_list_limits():
    for query in ("?limit=0", "?limit=101", "?limit=abc", "?cursor=not-a-cursor"):
        expect(call("GET", "/api/v1/auth/members" + query, token=W.ada.access), 400,
               "bad_request")
    body = expect(call("GET", "/api/v1/auth/members?limit=100", token=W.ada.access), 200)
    assert body["next_cursor"] is None, body


def c_api_keys():
    answer = call("POST", "/api/v1/auth/api-keys", {"name": "ci read", "scopes": ["read"]},
                  token=W.ada.access)
    key = expect(answer, 201)
    assert UUID_RE.match(key.get("id") or "") and key["name"] == "ci read", key
    assert key["scopes"] == ["read"] and key["created_by"] == W.ada.user_id, key
    assert KEY_RE.match(key.get("key") or ""), "key %r" % key.get("key")
    assert key["prefix"] and key["key"].startswith(key["prefix"]) and \
        len(key["prefix"]) < len(key["key"]) - 30, key
    assert is_time(key["created_at"]) and key.get("expires_at") is None, key
    W.key_read = key
    default = expect(call("POST", "/api/v1/auth/api-keys", {"name": "default"},
                          token=W.ada.access), 201)
    assert sorted(default["scopes"]) == ["read", "write"], default
    W.key_admin = expect(call("POST", "/api/v1/auth/api-keys",
                              {"name": "admin", "scopes": ["read", "write", "admin"]},
                              token=W.ada.access), 201)
    W.key_read_admin = expect(call("POST", "/api/v1/auth/api-keys",
                                   {"name": "read admin", "scopes": ["read", "admin"]},
                                   token=W.ada.access), 201)
    listed = list_all("/api/v1/auth/api-keys", W.ada.access)
    assert {key["id"], default["id"], W.key_admin["id"]} <= {k["id"] for k in listed}, listed
    assert all(k.get("key") is None for k in listed), "a listed key shows the key itself"
    assert {k["id"]: k["prefix"] for k in listed}[key["id"]] == key["prefix"]
    # using them: read
    me = expect(call("GET", ME, token=key["key"]), 200)
    assert me["auth"] == "api_key" and me["tenant"]["id"] == W.tenant_a, me
    assert me["api_key"]["id"] == key["id"] and me["api_key"].get("key") is None, me
    expect(call("GET", "/api/v1/auth/members", token=key["key"]), 403, "forbidden")
    expect(call("POST", "/api/v1/auth/invites", {"email": email("k1")}, token=key["key"]), 403,
           "forbidden")
    # admin scope: role tenant_admin; write needed for POST
    expect(call("GET", "/api/v1/auth/members", token=W.key_admin["key"]), 200)
    expect(call("POST", "/api/v1/auth/invites", {"email": email("k2")}, token=W.key_admin["key"]),
           201)
    expect(call("GET", "/api/v1/auth/members", token=W.key_read_admin["key"]), 200)
    expect(call("POST", "/api/v1/auth/invites", {"email": email("k3")},
                token=W.key_read_admin["key"]), 403, "forbidden")
    # a key never reaches platform routes, nor jwt-only ones
    expect(call("GET", "/api/v1/auth/tenants", token=W.key_admin["key"]), 403, "forbidden")
    expect(call("POST", "/api/v1/auth/switch", {"tenant_id": W.tenant_a},
                token=W.key_admin["key"]), 403, "forbidden")
    expect(call("POST", "/api/v1/auth/password", {"current_password": PASSWORD,
                                                  "new_password": PASSWORD + "x"},
                token=W.key_admin["key"]), 403, "forbidden")
    # bad keys
    expect_invalid_token(call("GET", ME, token="chr_" + b64url(os.urandom(32))))
    expect_invalid_token(call("GET", ME, token=key["key"][:-1]))
    expect(call("POST", "/api/v1/auth/api-keys", {"name": "x", "scopes": ["root"]},
                token=W.ada.access), 400, "bad_request")
    expect(call("POST", "/api/v1/auth/api-keys", {"scopes": ["read"]}, token=W.ada.access), 400,
           "bad_request")


def c_api_key_revoked():
    key = W.key_read
    assert works(key["key"])
    expect(call("DELETE", "/api/v1/auth/api-keys/" + key["id"], token=W.ada.access), 204)
    W.key_seconds = wait_refused(key["key"], "a deleted API key")
    assert key["id"] not in [k["id"] for k in list_all("/api/v1/auth/api-keys", W.ada.access)]
    expect(call("DELETE", "/api/v1/auth/api-keys/" + key["id"], token=W.ada.access), 404,
           "not_found")
    # an expiring key: works, then refused once expired (plus the edge's cache)
    until = time.gmtime(time.time() + 3)
    expiring = expect(call("POST", "/api/v1/auth/api-keys", {
        "name": "brief", "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", until)},
        token=W.ada.access), 201)
    assert is_time(expiring["expires_at"]), expiring
    assert works(expiring["key"]), "a key that expires in 3 s does not work now"
    wait_refused(expiring["key"], "an expired API key", within=4.0 + KEY_CACHE_MS / 1000)


def c_cross_tenant():
    """Bea (tenant B's admin) with ids from tenant A: the same 404 as unknown ids."""
    a_ids = {"invite": W.invite_a["id"], "member": W.cat.user_id, "key": W.key_admin["id"]}
    cases = [
        ("DELETE", "/api/v1/auth/invites/%s", None, "invite"),
        ("PATCH", "/api/v1/auth/members/%s", {"role": "member"}, "member"),
        ("DELETE", "/api/v1/auth/members/%s", None, "member"),
        ("DELETE", "/api/v1/auth/api-keys/%s", None, "key")]
    for credential in (W.bea.access, W.bea_key["key"]):
        for method, path, body, kind in cases:
            unknown = str(uuid.uuid4())
            theirs = call(method, path % a_ids[kind], body, token=credential)
            nothing = call(method, path % unknown, body, token=credential)
            expect(nothing, 404, "not_found")
            expect(theirs, 404, "not_found")
            assert theirs.json["error"]["message"].replace(a_ids[kind], "ID") == \
                nothing.json["error"]["message"].replace(unknown, "ID"), \
                "messages differ: %r / %r" % (theirs.json, nothing.json)
    # switching into a tenant one is not a member of
    theirs = call("POST", "/api/v1/auth/switch", {"tenant_id": W.tenant_a}, token=W.bea.access)
    nothing = call("POST", "/api/v1/auth/switch", {"tenant_id": str(uuid.uuid4())},
                   token=W.bea.access)
    expect(theirs, 404, "not_found")
    expect(nothing, 404, "not_found")
    theirs = call("POST", "/api/v1/auth/login", {"email": email("bea"), "password": PASSWORD,
                                                 "tenant_id": W.tenant_a})
    nothing = call("POST", "/api/v1/auth/login", {"email": email("bea"), "password": PASSWORD,
                                                  "tenant_id": str(uuid.uuid4())})
    assert 400 <= nothing.status < 500, "login into an unknown tenant: %d" % nothing.status
    expect(theirs, nothing.status, nothing.json["error"]["code"])
    # tenant A is untouched
    assert W.invite_a["id"] in [i["id"] for i in list_all("/api/v1/auth/invites", W.ada.access)]
    members = {m["user_id"]: m["role"] for m in list_all("/api/v1/auth/members", W.ada.access)}
    assert members.get(W.cat.user_id) == "tenant_admin", members
    assert works(W.key_admin["key"]), "tenant B deleted tenant A's key"
    # and tenant A's lists do not leak into B's
    assert W.invite_a["id"] not in [i["id"] for i in list_all("/api/v1/auth/invites",
                                                              W.bea.access)]
    assert W.key_admin["id"] not in [k["id"] for k in list_all("/api/v1/auth/api-keys",
                                                               W.bea.access)]


def c_body_tenant_ignored():
    """A tenant id in a body never picks the tenant: the token does."""
    invite = expect(call("POST", "/api/v1/auth/invites",
                         {"email": email("gil"), "tenant_id": W.tenant_b},
                         token=W.ada.access), 201)
    assert invite["id"] in [i["id"] for i in list_all("/api/v1/auth/invites", W.ada.access)]
    assert invite["id"] not in [i["id"] for i in list_all("/api/v1/auth/invites", W.bea.access)]
    key = expect(call("POST", "/api/v1/auth/api-keys", {
        "name": "b", "scopes": ["read", "write", "admin"], "tenant_id": W.tenant_a},
        token=W.bea.access), 201)
    me = expect(call("GET", ME, token=key["key"]), 200)
    assert me["tenant"]["id"] == W.tenant_b, me
    W.bea_key = key
    # nor do headers named like the bus headers
    forged = {"tenant_id": W.tenant_a, "user_id": W.ada.user_id, "role": "platform_admin",
              "X-Tenant-Id": W.tenant_a, "X-User-Id": W.ada.user_id, "X-Role": "platform_admin"}
    me = expect(call("GET", ME, token=W.bea.access, headers=forged), 200)
    assert me["user"]["id"] == W.bea.user_id and me["tenant"]["id"] == W.tenant_b, me
    expect(call("GET", "/api/v1/auth/tenants", token=W.bea.access, headers=forged), 403,
           "forbidden")


def c_pyjwt_token_accepted():
    token = jwt.encode(fresh_claims(W.bea), SECRET, algorithm="HS256", headers={"kid": KID})
    me = expect(call("GET", ME, token=token), 200)
    assert me["user"]["id"] == W.bea.user_id, me


def forgeries():
    """(name, token, path): each must answer 401 invalid_token."""
    good = fresh_claims(W.bea)
    head = {"alg": "HS256", "typ": "JWT", "kid": KID}
    ed_key = Ed25519PrivateKey.generate()
    sig = W.bea.access.rsplit(".", 1)[1]
    raw = bytearray(b64url_decode(sig))
    raw[len(raw) // 2] ^= 0x01
    flipped = W.bea.access.rsplit(".", 1)[0] + "." + b64url(bytes(raw))
    parts = W.bea.access.split(".")
    edited_claims = json.loads(b64url_decode(parts[1]))
    edited_claims["role"] = "platform_admin"
    edited = "%s.%s.%s" % (parts[0], b64url(json.dumps(edited_claims).encode()), parts[2])
    no_exp = dict(good)
    del no_exp["exp"]
    return [
        ("alg none", hand_made({"alg": "none", "typ": "JWT"}, good, signature=""), ME),
        ("alg None, kid kept", hand_made({"alg": "None", "typ": "JWT", "kid": KID}, good,
                                         signature=""), ME),
        ("alg none with an HS256 signature", hand_made({"alg": "none", "typ": "JWT", "kid": KID},
                                                       good), ME),
        ("HS384 with the secret", jwt.encode(good, SECRET, algorithm="HS384",
                                             headers={"kid": KID}), ME),
        ("HS512 with the secret", jwt.encode(good, SECRET, algorithm="HS512",
                                             headers={"kid": KID}), ME),
        ("EdDSA header, HMAC signature", hand_made(dict(head, alg="EdDSA"), good), ME),
        ("EdDSA, signed with a stranger's Ed25519 key",
         jwt.encode(good, ed_key, algorithm="EdDSA", headers={"kid": KID}), ME),
        ("RS256 header, HMAC signature", hand_made(dict(head, alg="RS256"), good), ME),
        ("wrong secret", jwt.encode(good, SECRET[::-1], algorithm="HS256",
                                    headers={"kid": KID}), ME),
        ("wrong aud", jwt.encode(dict(good, aud="other-api"), SECRET, algorithm="HS256",
                                 headers={"kid": KID}), ME),
        ("wrong iss", jwt.encode(dict(good, iss="not-chorus"), SECRET, algorithm="HS256",
                                 headers={"kid": KID}), ME),
        ("expired", jwt.encode(dict(good, iat=int(time.time()) - 1000,
                                    exp=int(time.time()) - 60), SECRET, algorithm="HS256",
                               headers={"kid": KID}), ME),
        ("no exp", jwt.encode(no_exp, SECRET, algorithm="HS256", headers={"kid": KID}), ME),
        ("signature flipped", flipped, ME),
        ("claims edited (role platform_admin)", edited, "/api/v1/auth/tenants"),
    ]


def c_forged(name, token, path):
    expect_invalid_token(call("GET", path, token=token))
    expect_invalid_token(call("GET", path, cookies={"chorus_access": token}))


def c_password_change():
    other = login(email("dan"))
    settle(other)
    new = PASSWORD + "-changed"
    expect(call("POST", "/api/v1/auth/password", {"current_password": "Wrong-password-1",
                                                  "new_password": new},
                token=W.dan.access), 401, "invalid_credentials")
    expect(call("POST", "/api/v1/auth/password", {"current_password": PASSWORD,
                                                  "new_password": "abc"},
                token=W.dan.access), 400, "bad_request")
    changed = check_token_reply(call("POST", "/api/v1/auth/password",
                                     {"current_password": PASSWORD, "new_password": new},
                                     token=W.dan.access), 200, email=email("dan"))
    wait_refused(other.access, "another session after a password change")
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": other.refresh}), 401)
    time.sleep(2 * POLL_MS / 1000)
    assert works(changed.access), "the token answered by the password change was refused"
    check_token_reply(call("POST", "/api/v1/auth/refresh", {"refresh_token": changed.refresh}),
                      200)
    expect(call("POST", "/api/v1/auth/login", {"email": email("dan"), "password": PASSWORD}),
           401, "invalid_credentials")
    login(email("dan"), new)


def c_password_reset():
    session = login(email("eve"))
    settle(session)
    answer = call("POST", "/api/v1/auth/password/forgot", {"email": email("eve")})
    assert expect(answer, 202).get("status"), answer.json
    mail = new_mail(email("eve"), "password_reset")
    assert mail["token"] and mail.get("subject") and mail.get("text"), mail
    new = PASSWORD + "-reset"
    expect(call("POST", "/api/v1/auth/password/reset", {"token": mail["token"],
                                                        "new_password": "abc"}), 400,
           "bad_request")
    done = expect(call("POST", "/api/v1/auth/password/reset", {"token": mail["token"],
                                                               "new_password": new}), 200)
    assert done.get("status"), done
    wait_refused(session.access, "a session after a password reset")
    expect(call("POST", "/api/v1/auth/refresh", {"refresh_token": session.refresh}), 401)
    expect(call("POST", "/api/v1/auth/password/reset", {"token": mail["token"],
                                                        "new_password": new + "2"}), 401,
           "invalid_token")
    expect(call("POST", "/api/v1/auth/password/reset", {"token": "nope-" + b64url(os.urandom(24)),
                                                        "new_password": new + "2"}), 401,
           "invalid_token")
    expect(call("POST", "/api/v1/auth/login", {"email": email("eve"), "password": PASSWORD}),
           401, "invalid_credentials")
    login(email("eve"), new)


def c_forgot_unknown():
    known = call("POST", "/api/v1/auth/password/forgot", {"email": email("eve")})
    unknown = call("POST", "/api/v1/auth/password/forgot", {"email": email("nobody")})
    expect(known, 202)
    expect(unknown, 202)
    assert known.json == unknown.json, "forgot answers differ for known and unknown emails"
    new_mail(email("eve"), "password_reset")
    time.sleep(0.5)
    assert find_mail(email("nobody"), "password_reset") is None, \
        "a reset mail was written for an unknown email"


def c_audit():
    entries = list_all("/api/v1/auth/audit", W.ada.access)
    for entry in entries:
        assert UUID_RE.match(entry.get("id") or "") and is_time(entry.get("created_at")), entry
        if entry.get("details") is not None:
            json.loads(entry["details"])
    stamps = [e["created_at"] for e in entries]
    assert stamps == sorted(stamps, reverse=True), "audit not newest first"

    def find(action, **fields):
        found = [e for e in entries if e["action"] in (action, "auth." + action) and
                 all(e.get(k) == v for k, v in fields.items())]
        assert found, "no %s %s in tenant A's audit; actions: %s" % (
            action, fields, sorted({e["action"] for e in entries}))
        return found[0]
    ok = find("login.succeeded", actor_id=W.ada.user_id)
    assert "127.0.0.1" in (ok.get("ip") or ""), "login.succeeded ip %r" % ok.get("ip")
    find("login.failed")
    find("token.reuse_detected")
    find("member.role_changed", actor_id=W.ada.user_id, target_id=W.bob.user_id)
    find("api_key.created", target_id=W.key_read["id"])
    find("api_key.revoked", target_id=W.key_read["id"])
    check_paging("/api/v1/auth/audit", W.ada.access, 6)
    # tenant isolation: B's log has none of A's
    theirs = list_all("/api/v1/auth/audit", W.bea.access)
    assert not {e["id"] for e in theirs} & {e["id"] for e in entries}, "audit entries shared"
    assert W.key_read["id"] not in [e.get("target_id") for e in theirs], "A's key in B's audit"
    # cat is a tenant admin of A too
    expect(call("GET", "/api/v1/auth/audit?limit=5", token=W.cat.access), 200)


def c_at_rest():
    dump = subprocess.run(["pg_dump", "--data-only", "--no-owner", W.db_url],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr[-500:]
    text = dump.stdout
    hashes = re.findall(r"\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", text)
    assert len(hashes) >= 5, "fewer than 5 argon2id hashes in the database"
    # at least OWASP's weakest recommended cost (m=7 MiB, t=5 ~ m=19 MiB, t=2)
    weak = [h for h in hashes if int(h[0]) * int(h[1]) < 7168 * 5]
    assert not weak, "argon2id with low cost (m, t, p): %s" % weak[:3]
    secrets = {"a password": PASSWORD, "a refresh token": W.ada.refresh,
               "an API key": W.key_admin["key"], "an invite token": W.invite_a.get("token") or
               "-none-"}
    for what, value in secrets.items():
        assert value not in text, "%s is stored in plain text" % what
    digest = hashlib.sha256(W.ada.refresh.encode()).digest()
    forms = [digest.hex(), base64.b64encode(digest).decode().rstrip("="), b64url(digest)]
    assert any(form in text for form in forms), "the refresh token's SHA-256 is not stored"


MAIN_CHECKS = [
    ("every auth route is in /openapi.json", c_openapi),
    ("first user of a fresh install is platform_admin", c_first_user),
    ("register: token reply, defaults, cookies HttpOnly SameSite=Strict", c_register),
    ("register errors: 409 taken, 400 weak password / bad email / missing", c_register_errors),
    ("Chorus tokens verify with PyJWT (HS256, kid, iss, aud, claims)", c_pyjwt_verifies),
    ("login: new session; wrong password = unknown email (401)", c_login),
    ("emails compare without case", c_email_case),
    ("login: unknown email as slow as a wrong password", c_login_timing),
    ("GET /api/v1/auth/me: user, tenant, tenants, auth=jwt", c_me),
    ("missing or bad credentials: 401 + WWW-Authenticate", c_bad_credentials),
    ("chorus_access cookie instead of the header; header wins", c_cookies),
    ("refresh rotates the pair within the session", c_refresh_rotation),
    ("refresh token reuse: 401 token_reused, family revoked", c_refresh_reuse),
    ("refresh from the chorus_refresh cookie, single use", c_refresh_cookie),
    ("refresh errors: unknown 401 invalid_token, missing 400", c_refresh_errors),
    ("five concurrent refreshes with one token: one wins", c_refresh_race),
    ("logout: family revoked, access refused within seconds", c_logout),
    ("logout with cookies only", c_logout_cookies),
    ("invites: create, mail, list, accept (single use)", c_invites),
    ("register with an invite joins its tenant with its role", c_register_invited),
    ("invites: delete, default role, 400 bad role, 409 member", c_invite_errors),
    ("tenant switching for a user of two tenants", c_switch),
    ("member 403 on admin routes, tenant admin 403 on platform", c_forbidden),
    ("members: list with roles, paging, per tenant", c_members),
    ("role change: applies, old token refused within seconds", c_role_change),
    ("the last tenant admin cannot be demoted or removed (409)", c_last_admin),
    ("member removal: that tenant's token refused, others kept", c_member_removal),
    ("tenants CRUD and paging for platform admins", c_tenants),
    ("list paging: limit 1..100, bad cursor 400", c_list_limits),
    ("API keys: created once shown, listed, scopes enforced", c_api_keys),
    ("API keys: deleted or expired key refused within seconds", c_api_key_revoked),
    ("a tenant id in a body or a header is ignored", c_body_tenant_ignored),
    ("cross-tenant matrix: other tenant's ids = unknown (404)", c_cross_tenant),
    ("a token made by PyJWT with the secret is accepted", c_pyjwt_token_accepted),
]
AFTER_FORGERIES = [
    ("password change: new token works, other sessions end", c_password_change),
    ("password reset by mail: single-use token, sessions end", c_password_reset),
    ("password forgot: same 202 for unknown email, no mail", c_forgot_unknown),
    ("audit: logins, reuse, role change, keys; paging; per tenant", c_audit),
    ("at rest: argon2id hashes, no plaintext secrets", c_at_rest),
    ("demotion: the admin token ends, member gets 403", c_demotion),
]


# ---------------------------------------------------------------------------
# The checks of the limits stack (auth and edge restarted: low limits, new secret)

def c_rotation():
    # a token signed before the restart with the now previous secret still verifies
    me = expect(call("GET", ME, token=W.bea.access), 200)
    assert me["user"]["id"] == W.bea.user_id, me
    answer = call("POST", "/api/v1/auth/login", {"email": email("bea"), "password": PASSWORD})
    W.bea3 = check_token_reply(answer, 200, email=email("bea"))
    for name, (_, attrs) in answer.cookies().items():
        assert "secure" in attrs, "%s without Secure (CHORUS_EDGE_COOKIE_SECURE=true)" % name
    header = jwt.get_unverified_header(W.bea3.access)
    assert header["kid"] == KID2, "kid %r after rotation, expected %r" % (header["kid"], KID2)
    claims_of(W.bea3.access, SECRET2)
    try:
        claims_of(W.bea3.access, SECRET)
        raise AssertionError("a new token verifies with the previous secret")
    except jwt.InvalidSignatureError:
        pass
    W.cat3 = login(email("cat"))
    # a token forged with a secret that was never configured is still refused
    expect_invalid_token(call("GET", ME, token=jwt.encode(fresh_claims(W.bea), "x" * 40,
                                                          algorithm="HS256",
                                                          headers={"kid": KID})))


def c_login_account_limit():
    who = email("dan")
    for attempt in range(1, ACCOUNT_FAILURES + 1):
        expect(call("POST", "/api/v1/auth/login", {"email": who, "password": "Wrong-%d-xyz" % attempt}),
               401, "invalid_credentials")
    answer = call("POST", "/api/v1/auth/login", {"email": who, "password": "Wrong-x-xyz"})
    expect_retry_after(answer, 3600)
    # locked until the window ends, even with the right password
    answer = call("POST", "/api/v1/auth/login", {"email": who, "password": PASSWORD + "-changed"})
    expect_retry_after(answer, 3600)


def c_login_ip_limit():
    # a new unknown email every time: no account reaches its own limit, so a 429 is the
    # IP's; twice the limit plus one, in case a window boundary passes in between
    for attempt in range(1, 2 * IP_FAILURES + 2):
        answer = call("POST", "/api/v1/auth/login", {"email": email("stranger%d" % attempt),
                                                      "password": "Wrong-%d-abc" % attempt})
        if answer.status == 429:
            expect_retry_after(answer, 60)
            return
        expect(answer, 401, "invalid_credentials")
    raise AssertionError("no 429 after %d failed logins from one IP (limit %d per minute)"
                         % (2 * IP_FAILURES + 1, IP_FAILURES))


def c_edge_user_budget():
    # up to twice the budget plus two: one window gets more than the budget even when
    # a window boundary passes during the loop
    for count in range(1, 2 * USER_PER_MIN + 3):
        answer = call("GET", ME, token=W.bea3.access)
        if answer.status == 429:
            expect_retry_after(answer, 60)
            break
        expect(answer, 200)
    else:
        raise AssertionError("no 429 after %d requests (limit %d per minute)"
                             % (2 * USER_PER_MIN + 2, USER_PER_MIN))
    assert works(W.cat3.access), "another user was limited too"


def c_edge_ip_budget():
    for count in range(1, 2 * IP_PER_MIN + 3):
        answer = call("POST", "/api/v1/auth/password/forgot", {"email": email("nobody")})
        if answer.status == 429:
            expect_retry_after(answer, 60)
            break
        expect(answer, 202)
    else:
        raise AssertionError("no 429 after %d anonymous requests (limit %d per minute)"
                             % (2 * IP_PER_MIN + 2, IP_PER_MIN))
    assert works(W.cat3.access), "a user with credentials was limited by the IP budget"


LIMIT_CHECKS = [
    ("rotated secret: old tokens verify, new kid; Secure cookies", c_rotation),
    ("login failures per account: 429 + Retry-After, locked", c_login_account_limit),
    ("login failures per IP: 429 + Retry-After", c_login_ip_limit),
    ("edge budget per user: 429 + Retry-After, others pass", c_edge_user_budget),
    ("edge budget per IP without credentials: 429 + Retry-After", c_edge_ip_budget),
]


# ---------------------------------------------------------------------------
# Running

def start(name, args, environment):
    return start_in(name, args, environment, WORK)


def check(name, fn, *args):
    HISTORY.clear()
    started = time.time()
    try:
        fn(*args)
    except Exception as error:  # noqa: BLE001 - every failure is reported, then we go on
        FAILED.append(name)
        print("FAIL %-60s %.2fs" % (name, time.time() - started), flush=True)
        if isinstance(error, Skipped):
            print("     (%s)" % error)
            return False
        frames = [f for f in traceback.extract_tb(error.__traceback__)[1:]
                  if f.filename.endswith("test_auth.py")]
        print("     %s: %s" % (type(error).__name__, error))
        print("     at " + " > ".join("%s:%d" % (f.name, f.lineno) for f in frames))
        if HISTORY:
            print("     last requests:")
            for answer in HISTORY:
                print(answer)
        sys.stdout.flush()
        return False
    PASSED.append(name)
    print("ok   %-60s %.2fs" % (name, time.time() - started), flush=True)
    return True


def create_database(url):
    """A fresh database on the test server for this run; its URL."""
    name = "chorus_auth_e2e_%s" % RUN
    run = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c",
                          "CREATE DATABASE %s" % name], capture_output=True, text=True,
                         timeout=30)
    if run.returncode != 0:
        raise RuntimeError("CREATE DATABASE failed: " + run.stderr)
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name)), name


def drop_database(url, name):
    subprocess.run(["psql", "-X", "-q", "-d", url, "-c",
                    "DROP DATABASE IF EXISTS %s WITH (FORCE)" % name],
                   capture_output=True, timeout=30)


def redis_database(url, index):
    """The same Redis server with database `index`, emptied (FLUSHDB) for this run."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    with socket.create_connection((host, port), timeout=5) as sock:
        commands = []
        if parts.password:
            commands.append(["AUTH", urllib.parse.unquote(parts.password)])
        commands += [["SELECT", str(index)], ["FLUSHDB"]]
        for command in commands:
            sock.sendall(("*%d\r\n" % len(command) + "".join(
                "$%d\r\n%s\r\n" % (len(a.encode()), a) for a in command)).encode())
            reply = sock.recv(512)
            if not reply.startswith(b"+"):
                raise RuntimeError("redis %s: %r" % (command[0], reply))
    return urllib.parse.urlunsplit(parts._replace(path="/%d" % index))


def wait_ready(port, services):
    W.port = port

    def ready():
        answer = call("GET", "/readyz")
        return answer.status == 200 and all(answer.json["checks"].values())
    wait_for("/readyz on port %d" % port, ready, 60)

    def registered():
        seen = {s["name"]: s["replicas"] for s in call("GET", "/api/v1/services").json["services"]}
        return all(seen.get(name, 0) >= 1 for name in services)
    wait_for("services %s at the broker" % services, registered, 60)
    wait_for("the auth service answering", lambda: call(
        "GET", "/api/v1/services/auth/health").status == 200, 30)


def stop(proc, timeout=20):
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=timeout)
    assert code == 0, "%s exited %s" % (proc.name, code)


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    assert len(SECRET) == 40 and len(SECRET2) == 40
    os.makedirs(MAIL_DIR)
    W.mail_seen, W.mail_unread = set(), []
    W.db_url, db_name = create_database(DATABASE)
    base, edge_port = free_port(3), free_port()
    environment = dict(os.environ)
    environment.update({
        "CHORUS_BROKERS": "tcp://127.0.0.1:%d" % base,
        "CHORUS_BROKER_BIND": "tcp://127.0.0.1:%d" % base,
        "CHORUS_DATABASE_URL": W.db_url,
        "CHORUS_REDIS_URL": redis_database(REDIS, 11),
        "CHORUS_SQL_DIR": SRC + "/schemas/sql", "CHORUS_LOG_LEVEL": "warn",
        "CHORUS_EDGE_PORT": str(edge_port), "CHORUS_EDGE_READY_INTERVAL_MS": "200",
        "CHORUS_SECRET_KEY": base64.b64encode(b"e2e-auth-test-secret-key-0123456").decode(),
        "CHORUS_JWT_SECRET": SECRET,
        "CHORUS_MAIL_DIR": MAIL_DIR,
        "CHORUS_EDGE_REVOCATION_POLL_MS": str(POLL_MS),
        "CHORUS_EDGE_API_KEY_CACHE_MS": str(KEY_CACHE_MS),
        "CHORUS_EDGE_COOKIE_SECURE": "false",
        "CHORUS_LOGIN_IP_FAILURES": "1000", "CHORUS_LOGIN_ACCOUNT_FAILURES": "1000",
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_IP_PER_MIN": "100000"})
    for name in ("CHORUS_MAIL_WEBHOOK_URL", "CHORUS_LOGIN_LIMIT_FAIL_OPEN",
                 "CHORUS_EDGE_RATE_FAIL_OPEN", "CHORUS_JWT_PREVIOUS_SECRETS",
                 "CHORUS_JWT_ISSUER", "CHORUS_JWT_AUDIENCE", "CHORUS_JWT_TTL_S"):
        environment.pop(name, None)
    processes = [start("broker", [BIN + "/chorus-broker"], environment)]
    processes += [start(name, [BIN + "/chorus-" + name], environment) for name in SERVICES]
    processes.append(start("edge", [BIN + "/chorus-edge"], environment))
    started = time.time()
    try:
        if not check("stack ready: broker, eight services, edge", wait_ready, edge_port, SERVICES):
            raise SystemExit(1)
        for name, fn in MAIN_CHECKS:
            check(name, fn)
        if hasattr(W, "bea"):
            for name, token, path in forgeries():
                check("forged token refused: " + name, c_forged, name, token, path)
        for name, fn in AFTER_FORGERIES:
            check(name, fn)

        # auth and edge again, with low limits and a rotated secret
        def stop_auth_edge():
            for proc in (processes[-1], processes[1 + SERVICES.index("auth")]):
                proc.send_signal(signal.SIGTERM)
            codes = [(proc.name, proc.wait(timeout=20))
                     for proc in (processes[-1], processes[1 + SERVICES.index("auth")])]
            assert all(code == 0 for _, code in codes), "exit codes %s" % codes
        check("auth and edge exit 0 on SIGTERM", stop_auth_edge)

        def restart():
            for proc in (processes[-1], processes[1 + SERVICES.index("auth")]):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            limits = dict(environment)
            limits.update({
                "CHORUS_EDGE_PORT": str(free_port()),
                "CHORUS_REDIS_URL": redis_database(REDIS, 12),
                "CHORUS_JWT_SECRET": SECRET2, "CHORUS_JWT_PREVIOUS_SECRETS": SECRET,
                "CHORUS_EDGE_COOKIE_SECURE": "true",
                "CHORUS_LOGIN_ACCOUNT_FAILURES": str(ACCOUNT_FAILURES),
                "CHORUS_LOGIN_IP_FAILURES": str(IP_FAILURES),
                "CHORUS_EDGE_RATE_USER_PER_MIN": str(USER_PER_MIN),
                "CHORUS_EDGE_RATE_IP_PER_MIN": str(IP_PER_MIN)})
            processes[1 + SERVICES.index("auth")] = start("auth-limits", [BIN + "/chorus-auth"],
                                                          limits)
            processes[-1] = start("edge-limits", [BIN + "/chorus-edge"], limits)
            SECRET_NOW[0], KID_NOW[0] = SECRET2, KID2
            wait_ready(int(limits["CHORUS_EDGE_PORT"]), ["auth"])
        if check("auth and edge start again: low limits, rotated secret", restart):
            for name, fn in LIMIT_CHECKS:
                check(name, fn)

        # auth and edge once more, with Redis unreachable: authentication still
        # works, request budgets fail open, login fails closed (then open on request)
        def redis_down(login_fail_open):
            for proc in (processes[-1], processes[1 + SERVICES.index("auth")]):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=20)
            down = dict(environment)
            down.update({"CHORUS_EDGE_PORT": str(free_port()),
                         "CHORUS_REDIS_URL": "redis://127.0.0.1:%d/0" % free_port(),
                         "CHORUS_JWT_SECRET": SECRET2, "CHORUS_JWT_PREVIOUS_SECRETS": SECRET,
                         "CHORUS_LOGIN_LIMIT_FAIL_OPEN": "true" if login_fail_open else "false"})
            processes[1 + SERVICES.index("auth")] = start("auth-no-redis",
                                                          [BIN + "/chorus-auth"], down)
            processes[-1] = start("edge-no-redis", [BIN + "/chorus-edge"], down)
            W.port = int(down["CHORUS_EDGE_PORT"])
            # /readyz says Redis is down; wait for the auth service itself
            wait_for("auth answering without Redis", lambda: call(
                "GET", "/api/v1/services/auth/health").status == 200, 60)

        def c_redis_down_closed():
            redis_down(False)
            ready = call("GET", "/readyz")
            assert ready.status == 503, "readyz with Redis down: %s" % ready.status
            user = email("noredis")
            session = register(user)
            expect(call("GET", ME, token=session.access), 200)
            answer = call("POST", "/api/v1/auth/login", {"email": user, "password": PASSWORD})
            expect(answer, 503, "unavailable")
            assert answer.header("Retry-After"), "503 without Retry-After"
            W.noredis_user = user

        def c_redis_down_open():
            redis_down(True)
            session = login(W.noredis_user)
            expect(call("GET", ME, token=session.access), 200)

        check("Redis down: tokens work, budgets pass, login fails closed (503)",
              c_redis_down_closed)
        check("Redis down with CHORUS_LOGIN_LIMIT_FAIL_OPEN=true: login works",
              c_redis_down_open)

        # auth and edge with EdDSA access tokens: the edge serves the public keys
        def c_eddsa():
            for proc in (processes[-1], processes[1 + SERVICES.index("auth")]):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=20)
            eddsa = dict(environment)
            eddsa.update({"CHORUS_EDGE_PORT": str(free_port()),
                          "CHORUS_JWT_ALGORITHM": "EdDSA"})
            eddsa.pop("CHORUS_JWT_SECRET", None)
            processes[1 + SERVICES.index("auth")] = start("auth-eddsa",
                                                          [BIN + "/chorus-auth"], eddsa)
            processes[-1] = start("edge-eddsa", [BIN + "/chorus-edge"], eddsa)
            W.port = int(eddsa["CHORUS_EDGE_PORT"])
            wait_for("auth answering with EdDSA", lambda: call(
                "GET", "/api/v1/services/auth/health").status == 200, 60)
            session_answer = call("POST", "/api/v1/auth/register",
                                  {"email": email("eddsa"), "password": PASSWORD})
            expect(session_answer, 201)
            token = session_answer.json["access_token"]
            keys = call("GET", "/.well-known/jwks.json")
            expect(keys, 200)
            assert keys.header("Content-Type").startswith("application/jwk-set+json")
            header = jwt.get_unverified_header(token)
            assert header["alg"] == "EdDSA", header
            key = [k for k in keys.json["keys"] if k["kid"] == header["kid"]][0]
            public = jwt.PyJWK(key)
            claims = jwt.decode(token, public.key, algorithms=["EdDSA"],
                                audience="chorus-api", issuer="chorus")
            assert claims["role"] == "tenant_admin", claims
            expect(call("GET", ME, token=token), 200)
            # HS256 signed with the public key's bytes (alg confusion): refused
            raw = b64url_decode(key["x"])
            forged = hand_made({"alg": "HS256", "typ": "JWT", "kid": key["kid"]},
                               dict(claims), key=raw)
            expect_invalid_token(call("GET", ME, token=forged))
            forged = hand_made({"alg": "HS256", "typ": "JWT", "kid": key["kid"]},
                               dict(claims), key=key["x"].encode())
            expect_invalid_token(call("GET", ME, token=forged))

        check("EdDSA tokens: verified with PyJWT from /.well-known/jwks.json, "
              "HS256 with the public key refused", c_eddsa)

        def drain():
            for proc in reversed(processes):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in processes:
                code = proc.wait(timeout=20)
                assert code == 0, "%s exited %s" % (proc.name, code)
        check("SIGTERM: every process exits 0", drain)
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if FAILED:
            for name in sorted(os.listdir(WORK)):
                path = os.path.join(WORK, name)
                if os.path.isfile(path):
                    with open(path, errors="replace") as f:
                        tail = f.read()[-1500:]
                    if tail:
                        print("---- %s\n%s" % (name, tail))
        drop_database(DATABASE, db_name)
    print("%d passed, %d failed in %.0fs" % (len(PASSED), len(FAILED), time.time() - started))
    if not FAILED:
        shutil.rmtree(WORK, ignore_errors=True)     # logs and mails are kept on failure
        print("all auth tests passed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
