#!/usr/bin/python3
"""End-to-end test of the platforms' webhooks through the edge (schemas/channels.md,
"Webhooks: what the edge does"): chorus-broker, chorus-auth, chorus-channels and
chorus-edge as processes against the test PostgreSQL and Redis, spoken to over HTTP
only. Connections are created through the edge's /api/v1/channels routes, and
webhooks are posted to the webhook_url each one answers, exactly as the platforms
send them: Meta (WhatsApp, Messenger, Instagram) with X-Hub-Signature-256 over the
raw bytes and the GET subscription handshake, Telegram with its secret token header,
Slack with the v0 signature over the timestamp and body, url_verification included
(hmac/hashlib here, independent of the C code).

Checks: good webhooks 200 and stored once (read back through the inbox route),
retries deduplicated, bad signatures 401 with nothing stored, the Meta handshake
echoing hub.challenge as text/plain (a verify token that needs URL encoding too),
answers written as the service gave them, non-ASCII bodies escaped or raw, the edge's
413 without the service, 404 / 405 routing, the budget per connection id (and no
per-address budget on webhooks), a deleted connection 404, the service gone 503, and
the edge's clean exit.

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL
(tools/chorus test sets them)."""

import base64
import hashlib
import hmac
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import urllib.parse
import uuid
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, wait_for, start as start_in  # noqa: E402

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__))
                     + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
WORK = tempfile.mkdtemp(prefix="chorus-webhooks-test-")
RUN = uuid.uuid4().hex[:8]
PASSWORD = "Sturdy-Passphrase-%s-42!" % RUN
AGENT = str(uuid.uuid4())
MAX_BODY = 262144           # CHORUS_EDGE_WEBHOOK_MAX_BODY
PER_MIN = 25                # CHORUS_EDGE_WEBHOOK_RATE_PER_MIN
IP_PER_MIN = 30             # CHORUS_EDGE_RATE_IP_PER_MIN: webhooks are not counted


class W:
    """What the checks share."""
    statuses = []           # every webhook answer's status (429s are counted)


def call(method, path, body=None, headers=None, timeout=10):
    """One request; returns (status, headers with lowercase names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", W.port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def api(method, path, body=None, token=None, status=None):
    """A JSON call to /api/v1; returns (status, JSON answer or None)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    got, _, data = call(method, path, None if body is None else json.dumps(body).encode(),
                        headers)
    answer = json.loads(data) if data else None
    if status is not None:
        assert got == status, (method, path, got, answer)
    return got, answer


def error_code(answer):
    return answer["error"]["code"]


def hook(url, body=b"", method="POST", query="", content_type="application/json",
         headers=None, **named):
    """A webhook to a connection's webhook_url, the bytes as given; named headers
    x_hub_signature_256=... go as X-Hub-Signature-256, headers as they are."""
    path = urllib.parse.urlsplit(url).path + ("?" + query if query else "")
    sent = {"Content-Type": content_type} if content_type else {}
    for name, value in named.items():
        sent["-".join(part.capitalize() for part in name.split("_"))] = value
    sent.update(headers or {})
    status, answer_headers, data = call(method, path, body if method == "POST" else None,
                                        sent)
    W.statuses.append(status)
    return status, answer_headers, data


def accepted(answer, stored, duplicates=0, ignored=0, statuses=0):
    status, headers, body = answer
    assert status == 200 and headers["content-type"] == "application/json", answer
    assert headers.get("x-content-type-options") == "nosniff", headers
    assert headers.get("cache-control") == "no-store" and "x-request-id" in headers
    assert json.loads(body) == {"ok": True, "stored": stored, "duplicates": duplicates,
                                "ignored": ignored, "statuses": statuses}, body


def refused(answer, status, code):
    got, headers, body = answer
    assert got == status and headers["content-type"] == "application/json", answer
    assert error_code(json.loads(body)) == code, body


def meta_signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_headers(secret, body, at=None):
    at = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret.encode(), b"v0:" + at.encode() + b":" + body, hashlib.sha256)
    return {"x_slack_request_timestamp": at, "x_slack_signature": "v0=" + mac.hexdigest()}


def inbox(connection, token=None):
    _, answer = api("GET", "/api/v1/channels/connections/%s/inbox?limit=100" % connection,
                    token=token or W.ada, status=200)
    return answer["data"]


def redis_database(url, index):
    """The same Redis server with database `index`, emptied (FLUSHDB) for this run:
    the budgets counted here are this test's alone (the per-address one too)."""
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


def start(name, args, environment):
    return start_in(name, args, environment, WORK)


def check(name, fn):
    started = time.time()
    fn()
    print("ok   %-58s %.2fs" % (name, time.time() - started), flush=True)


def whatsapp_body(*ids, escape=True):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111",
                          "phone_number_id": "106540352242922"},
             "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551234"}],
             "messages": [{"from": "16315551234", "id": i, "timestamp": "1700000000",
                           "type": "text", "text": {"body": "Hi \u00e9 \U0001f600 %s" % i}}
                          for i in ids]}
    # Meta escapes non-ASCII (\u00e9, \ud83d\ude00); the signature covers these
    # exact bytes, so the edge must pass them untouched
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "WABA", "changes": [{"field": "messages",
                                                             "value": value}]}]},
                      ensure_ascii=escape).encode()


# ---------------------------------------------------------------------------------
# Checks


def c_tenants():
    for name in ("ada", "bea"):
        _, reply = api("POST", "/api/v1/auth/register", {
            "email": "%s-%s@webhooks.test" % (name, RUN), "password": PASSWORD,
            "tenant_name": "%s %s" % (name, RUN)}, status=201)
        setattr(W, name, reply["access_token"])


def c_connections():
    # created through the edge; credentials never come back; webhook_url on the edge
    W.wa_secret = "wa-app-secret-%s" % RUN
    W.wa_verify = "wa verify+&=\u00e9/%s" % RUN        # needs URL encoding
    body = {"platform": "whatsapp", "agent_id": AGENT, "name": "Support line",
            "phone_number_id": "106540352242922",
            "credentials": {"access_token": "EAAG-%s" % RUN, "app_secret": W.wa_secret,
                            "verify_token": W.wa_verify}}
    got, answer = api("POST", "/api/v1/channels/connections", body)
    assert got == 401 and error_code(answer) == "unauthorized", answer
    _, wa = api("POST", "/api/v1/channels/connections", body, W.ada, 201)
    W.wa, W.wa_url = wa["id"], wa["webhook_url"]
    assert W.wa_url == "%s/webhooks/whatsapp/%s" % (W.public, W.wa), wa
    assert W.wa_secret not in json.dumps(wa) and wa["credentials"] is None, wa
    assert sorted(wa["credentials_set"]) == ["access_token", "app_secret", "verify_token"]

    def create(platform, credentials, token=None, **fields):
        request = {"platform": platform, "agent_id": AGENT, "name": platform + " " + RUN,
                   "credentials": credentials}
        request.update(fields)
        return api("POST", "/api/v1/channels/connections", request, token or W.ada,
                   201)[1]
    W.ms_secret, W.ig_secret = "ms-secret-%s" % RUN, "ig-secret-%s" % RUN
    ms = create("messenger", {"access_token": "p", "app_secret": W.ms_secret,
                              "verify_token": "v"}, page_id="PAGE1")
    ig = create("instagram", {"access_token": "p", "app_secret": W.ig_secret,
                              "verify_token": "v"}, page_id="17841400000000000")
    tg = create("telegram", {"bot_token": "123:ABC"})
    W.tg_secret = tg["secret_token"]        # generated, shown once
    assert len(W.tg_secret) == 43, tg
    W.sl_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    sl = create("slack", {"bot_token": "xoxb-1", "signing_secret": W.sl_secret},
                token=W.bea, bot_user_id="U0BOT")
    budget = create("telegram", {"bot_token": "123:XYZ", "secret_token": "budget-" + RUN})
    W.ms_url, W.ig_url, W.tg_url, W.sl_url = (c["webhook_url"] for c in (ms, ig, tg, sl))
    W.tg, W.sl, W.budget_url = tg["id"], sl["id"], budget["webhook_url"]
    W.ms, W.ig = ms["id"], ig["id"]
    # read, list, update through the edge; another tenant's id is a 404
    _, one = api("GET", "/api/v1/channels/connections/" + W.tg, token=W.ada, status=200)
    assert one["secret_token"] is None and one["webhook_url"] == W.tg_url, one
    _, page = api("GET", "/api/v1/channels/connections?limit=2", token=W.ada, status=200)
    assert [c["id"] for c in page["data"]] == [budget["id"], W.tg] and page["next_cursor"]
    _, renamed = api("PATCH", "/api/v1/channels/connections/" + W.ms, {"name": "Page"},
                     W.ada, 200)
    assert renamed["name"] == "Page" and renamed["page_id"] == "PAGE1", renamed
    got, answer = api("GET", "/api/v1/channels/connections/" + W.sl, token=W.ada)
    assert got == 404 and error_code(answer) == "not_found", answer


def c_handshake():
    # Meta's GET: hub.verify_token URL-encoded as Meta sends it; the challenge back
    # as text/plain, nothing else added
    query = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.challenge": "1158201444",
                                    "hub.verify_token": W.wa_verify})
    assert "%26" in query and "+" in query, query
    status, headers, body = hook(W.wa_url, method="GET", query=query, content_type=None)
    assert (status, body) == (200, b"1158201444"), (status, body)
    assert headers["content-type"] == "text/plain", headers
    assert headers["x-content-type-options"] == "nosniff", headers
    assert headers["content-length"] == "10", headers
    wrong = urllib.parse.urlencode({"hub.mode": "subscribe", "hub.challenge": "1",
                                    "hub.verify_token": W.wa_verify + "x"})
    refused(hook(W.wa_url, method="GET", query=wrong, content_type=None), 403,
            "forbidden")
    # Telegram and Slack take no GET: the service's 405
    refused(hook(W.tg_url, method="GET", content_type=None), 405, "method_not_allowed")


def c_whatsapp():
    body = whatsapp_body("wamid.A-%s" % RUN, "wamid.B-%s" % RUN)
    assert b"\\u00e9" in body and b"\\ud83d\\ude00" in body
    good = meta_signature(W.wa_secret, body)
    for header in (None, "sha256=" + "0" * 64, meta_signature(W.wa_secret, body + b" "),
                   meta_signature("wrong", body)):
        extra = {} if header is None else {"x_hub_signature_256": header}
        refused(hook(W.wa_url, body, **extra), 401, "unauthorized")
    assert inbox(W.wa) == []
    accepted(hook(W.wa_url, body, x_hub_signature_256=good), 2)
    accepted(hook(W.wa_url, body, x_hub_signature_256=good), 0, duplicates=2)
    # raw UTF-8 instead of escapes: other bytes, their own signature, stored alike
    raw = whatsapp_body("wamid.C-%s" % RUN, escape=False)
    assert "\u00e9".encode() in raw
    accepted(hook(W.wa_url, raw, x_hub_signature_256=meta_signature(W.wa_secret, raw)), 1)
    rows = {r["external_id"]: r for r in inbox(W.wa)}
    assert sorted(rows) == ["wamid.A-%s" % RUN, "wamid.B-%s" % RUN, "wamid.C-%s" % RUN]
    for wamid, row in rows.items():
        assert row["text"] == "Hi \u00e9 \U0001f600 %s" % wamid, row
        assert row["chat_id"] == "16315551234" and row["status"] == "received", row
    # the header's name in any case; a signed body that is not WhatsApp's: 400
    junk = b'{"object":"page","entry":[]}'
    refused(hook(W.wa_url, junk,
                 headers={"x-HUB-signature-256": meta_signature(W.wa_secret, junk)}),
            400, "bad_request")


def c_messenger_instagram():
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE1", "time": 1, "messaging": [
        {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1700000000123,
         "message": {"mid": "m_1-%s" % RUN, "text": "ol\u00e1"}}]}]}).encode()
    accepted(hook(W.ms_url, body, x_hub_signature_256=meta_signature(W.ms_secret, body)), 1)
    accepted(hook(W.ms_url, body, x_hub_signature_256=meta_signature(W.ms_secret, body)), 0,
             duplicates=1)
    assert [(r["external_id"], r["text"]) for r in inbox(W.ms)] == [
        ("m_1-%s" % RUN, "ol\u00e1")]
    body = json.dumps({"object": "instagram", "entry": [{"id": "17841400000000000",
        "messaging": [{"sender": {"id": "IGSID"}, "recipient": {"id": "17841400000000000"},
                       "timestamp": 1700000000000,
                       "message": {"mid": "ig_1-%s" % RUN, "text": "hey"}}]}]}).encode()
    refused(hook(W.ig_url, body, x_hub_signature_256=meta_signature(W.ms_secret, body)),
            401, "unauthorized")
    accepted(hook(W.ig_url, body, x_hub_signature_256=meta_signature(W.ig_secret, body)), 1)


def c_telegram():
    body = json.dumps({"update_id": 800001, "message": {
        "message_id": 1365, "date": 1441645532, "text": "/start",
        "chat": {"id": 1111111, "type": "private"},
        "from": {"id": 1111111, "is_bot": False, "first_name": "Test",
                 "last_name": "User"}}}).encode()
    for token in (None, "", W.tg_secret[:-1], W.tg_secret + "x"):
        extra = {} if token is None else {"x_telegram_bot_api_secret_token": token}
        refused(hook(W.tg_url, body, **extra), 401, "unauthorized")
    assert inbox(W.tg) == []
    accepted(hook(W.tg_url, body, x_telegram_bot_api_secret_token=W.tg_secret), 1)
    accepted(hook(W.tg_url, body, x_telegram_bot_api_secret_token=W.tg_secret), 0,
             duplicates=1)
    rows = inbox(W.tg)
    assert [(r["external_id"], r["chat_id"], r["sender_name"]) for r in rows] == [
        ("800001", "1111111", "Test User")], rows
    # not JSON at all, with a good token: the service's 400 (the edge parsed nothing)
    refused(hook(W.tg_url, b"\xff\xfenot json", content_type="text/plain",
                 x_telegram_bot_api_secret_token=W.tg_secret), 400, "bad_request")


def c_slack():
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    verification = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": challenge,
                               "type": "url_verification"}).encode()
    refused(hook(W.sl_url, verification), 401, "unauthorized")
    status, headers, data = hook(W.sl_url, verification,
                                 **slack_headers(W.sl_secret, verification))
    assert (status, headers["content-type"], data) == (200, "text/plain",
                                                       challenge.encode())
    body = json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1",
                       "event": {"type": "app_mention", "user": "U061F7AUR",
                                 "text": "<@U0BOT> h\u00e9llo", "ts": "1515449522.000016",
                                 "channel": "C0LAN2Q65", "event_ts": "1515449522.000016"},
                       "type": "event_callback", "event_id": "Ev-%s" % RUN,
                       "event_time": 1515449522}).encode()
    now = int(time.time())
    for headers in (slack_headers(W.sl_secret, body, now - 301),
                    slack_headers("8f742231b10e8888abcd99yyyzzz85a6", body),
                    {"x_slack_signature": slack_headers(W.sl_secret, body)[
                        "x_slack_signature"]}):
        refused(hook(W.sl_url, body, **headers), 401, "unauthorized")
    assert inbox(W.sl, W.bea) == []
    accepted(hook(W.sl_url, body, **slack_headers(W.sl_secret, body)), 1)
    # Slack's retry carries X-Slack-Retry-Num / -Reason: deduplicated on event_id
    accepted(hook(W.sl_url, body, x_slack_retry_num="1", x_slack_retry_reason="http_timeout",
                  **slack_headers(W.sl_secret, body)), 0, duplicates=1)
    rows = inbox(W.sl, W.bea)
    assert [(r["external_id"], r["text"], r["thread_id"]) for r in rows] == [
        ("Ev-%s" % RUN, "<@U0BOT> h\u00e9llo", "1515449522.000016")], rows


def c_edge_limits():
    # past CHORUS_EDGE_WEBHOOK_MAX_BODY: 413 from the headers, the service not asked
    with socket.create_connection(("127.0.0.1", W.port), timeout=10) as sock:
        sock.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\n\r\n"
                      % (urllib.parse.urlsplit(W.tg_url).path, MAX_BODY + 1)).encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"payload_too_large"' in answer, answer
    # at the limit it passes (and the service refuses what is no Telegram update)
    big = b'{"update_id":1,"pad":"' + b"x" * (MAX_BODY - 30) + b'"}'
    big += b" " * (MAX_BODY - len(big))
    refused(hook(W.tg_url, big, x_telegram_bot_api_secret_token="wrong"), 401,
            "unauthorized")
    # routing: other platforms 404, other methods 405 with Allow, HEAD included
    path = urllib.parse.urlsplit(W.tg_url).path
    for method, target, status in (("POST", path.replace("telegram", "sms"), 404),
                                   ("PUT", path, 405), ("DELETE", path, 405),
                                   ("HEAD", path, 405)):
        got, headers, _ = call(method, target, b"{}" if method == "PUT" else None)
        assert got == status, (method, target, got)
        if status == 405:
            assert headers["allow"] == "GET, POST", headers
    # an id that is no connection: the service's 404, whatever credential came
    got, _, data = call("POST", "/webhooks/telegram/" + str(uuid.uuid4()), b"{}",
                        {"Authorization": "Bearer garbage"})
    assert got == 404 and error_code(json.loads(data)) == "not_found", data


def c_budget():
    # one connection id past its budget: 429 with Retry-After; its upper-case
    # spelling shares it; other connections are not affected
    upper = W.budget_url.upper().replace("HTTP://", "http://").replace("/WEBHOOKS/TELEGRAM/",
                                                                       "/webhooks/telegram/")
    window = int(time.time()) // 60
    seen = []
    for i in range(PER_MIN + 5):
        status, headers, data = hook(upper if i % 2 else W.budget_url,
                                     b'{"update_id":%d}' % (900000 + i),
                                     x_telegram_bot_api_secret_token="budget-" + RUN)
        seen.append(status)
        if status == 429:
            assert 1 <= int(headers["retry-after"]) <= 60, headers
            assert error_code(json.loads(data)) == "rate_limited", data
        else:
            assert status == 200, (status, data)    # an update without a message
    if int(time.time()) // 60 == window:
        assert seen.count(200) == PER_MIN and seen.count(429) == 5, seen
    else:
        assert seen.count(429) <= 5, seen           # the minute turned meanwhile
    body = json.dumps({"update_id": 800002, "message": {
        "message_id": 2, "date": 2, "text": "after", "chat": {"id": 7},
        "from": {"id": 7, "is_bot": False, "first_name": "A"}}}).encode()
    accepted(hook(W.tg_url, body, x_telegram_bot_api_secret_token=W.tg_secret), 1)
    # far more webhooks than the per-address budget came from this one address,
    # and none of the others was refused
    others = len(W.statuses) - len(seen)
    assert len(W.statuses) > IP_PER_MIN and W.statuses.count(429) == seen.count(429)
    assert others > 0


def c_delete():
    assert call("DELETE", "/api/v1/channels/connections/" + W.ig,
                headers={"Authorization": "Bearer " + W.ada})[0] == 204
    refused(hook(W.ig_url, b"{}", x_hub_signature_256="sha256=00"), 404, "not_found")


def c_service_gone():
    # channels drains on SIGTERM; then a webhook is a bus error like any other
    W.channels.send_signal(signal.SIGTERM)
    assert W.channels.wait(timeout=20) == 0
    answers = []

    def gone():
        status, headers, data = call("POST", urllib.parse.urlsplit(W.tg_url).path, b"{}")
        answers.append(status)
        return status == 503 and error_code(json.loads(data)) == "unavailable" \
            and headers["content-type"] == "application/json"
    wait_for("503 once channels is gone", gone, 15)
    assert set(answers) <= {503, 504}, answers


# ---------------------------------------------------------------------------------


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    base, W.port = free_port(3), free_port()
    W.public = "http://127.0.0.1:%d" % W.port
    environment = dict(os.environ)
    environment.update({
        "CHORUS_BROKERS": "tcp://127.0.0.1:%d" % base,
        "CHORUS_BROKER_BIND": "tcp://127.0.0.1:%d" % base,
        "CHORUS_DATABASE_URL": DATABASE, "CHORUS_REDIS_URL": redis_database(REDIS, 13),
        "CHORUS_SQL_DIR": SRC + "/schemas/sql", "CHORUS_LOG_LEVEL": "warn",
        "CHORUS_SECRET_KEY": base64.b64encode(b"e2e-webhooks-test-secret-key-012").decode(),
        "CHORUS_JWT_SECRET": "e2e-webhooks-test-jwt-secret-0123456789ab",
        "CHORUS_PUBLIC_URL": W.public, "CHORUS_DATABASE_POOL": "4",
        "CHORUS_EDGE_PORT": str(W.port), "CHORUS_EDGE_READY_INTERVAL_MS": "200",
        "CHORUS_EDGE_WEBHOOK_MAX_BODY": str(MAX_BODY),
        "CHORUS_EDGE_WEBHOOK_RATE_PER_MIN": str(PER_MIN),
        "CHORUS_EDGE_RATE_IP_PER_MIN": str(IP_PER_MIN),
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_FAIL_OPEN": "false",
        "CHORUS_EDGE_RATE_TIMEOUT_MS": "2000",
        # the inbox as stored: processing and sending are test_delivery.py's
        "CHORUS_CHANNELS_PROCESS": "false"})
    for name in ("CHORUS_JWT_PREVIOUS_SECRETS", "CHORUS_JWT_ISSUER", "CHORUS_JWT_AUDIENCE",
                 "CHORUS_EDGE_WEBHOOK_TIMEOUT_MS"):
        environment.pop(name, None)
    processes = [start("broker", [BIN + "/chorus-broker"], environment),
                 start("auth", [BIN + "/chorus-auth"], environment)]
    W.channels = start("channels", [BIN + "/chorus-channels"], environment)
    edge = start("edge", [BIN + "/chorus-edge"], environment)
    processes.append(edge)
    try:
        def ready():
            status, _, _ = call("GET", "/readyz")
            if status != 200:
                return False
            # a webhook to no connection: the service's 404 once channels answers
            got, _, _ = call("POST", "/webhooks/slack/" + str(uuid.uuid4()), b"{}")
            status, _, _ = call("GET", "/api/v1/services/auth/ping")
            return got == 404 and status == 200
        wait_for("broker, auth, channels and edge", ready)
        # the polls above count against the per-address budget: start it afresh
        redis_database(REDIS, 13)
        check("two tenants registered through the edge", c_tenants)
        check("connections created, read, listed, updated over HTTP", c_connections)
        check("Meta GET handshake: hub.challenge as text/plain", c_handshake)
        check("WhatsApp: signed stored once, retries, forgeries 401", c_whatsapp)
        check("Messenger and Instagram", c_messenger_instagram)
        check("Telegram: secret token header, update_id dedupe", c_telegram)
        check("Slack: url_verification, v0 signature, retries", c_slack)
        check("edge: 413 before the service, 404, 405, no credential", c_edge_limits)
        check("budget per connection id, none per address", c_budget)
        check("a deleted connection receives nothing", c_delete)
        check("channels gone: 503 like any bus error", c_service_gone)
        edge.send_signal(signal.SIGTERM)
        code = edge.wait(timeout=20)
        assert code == 0, "edge exited %s" % code
        for proc in reversed(processes[:-1]):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    except Exception:
        for name in sorted(os.listdir(WORK)):
            with open(os.path.join(WORK, name), errors="replace") as f:
                print("---- %s\n%s" % (name, f.read()[-3000:]))
        raise
    finally:
        for proc in processes + [W.channels]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    shutil.rmtree(WORK, ignore_errors=True)
    print("all webhook tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
