#!/usr/bin/python3
"""End-to-end test of the channels service (schemas/channels.md) as real processes:
chorus-broker, chorus-auth and chorus-channels against the test PostgreSQL and Redis,
spoken to over the bus from Python (python3-zmq, python3-msgpack), the way the edge
will. Webhooks are signed exactly as each platform signs them (hmac/hashlib here,
independent of the service's C code).

Checks: connections CRUD with sealed credentials (admins change, members read, other
tenants get 404), the Meta GET handshake, signed WhatsApp / Messenger / Instagram /
Telegram / Slack webhooks stored once, retries deduplicated, forged or missing
signatures refused with nothing stored, Slack url_verification and stale timestamps,
WhatsApp statuses moving an outbound row forward, the events (live and replayed,
their msgpack payloads), and durability: the service killed with SIGKILL after an
acknowledged webhook still has the row after its restart.

Needs CHORUS_BIN_DIR, CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL
(tools/chorus test sets them)."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import msgpack
import zmq
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, wait_for, start as start_in  # noqa: E402

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__))
                     + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
WORK = tempfile.mkdtemp(prefix="chorus-channels-test-")
RUN = uuid.uuid4().hex[:8]
PUBLIC_URL = "https://chorus.example.test/"
PASSWORD = "Sturdy-Passphrase-%s-42!" % RUN
AGENT = str(uuid.uuid4())

REQUEST, PARTIAL, FINAL, ERROR = b"\x01", b"\x11", b"\x12", b"\x13"


class W:
    """What the checks share."""


class Bus:
    """A bus client written from schemas/bus.md: a DEALER on the broker."""

    def __init__(self, endpoint):
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.serial = 0

    def call(self, service, command, body=None, tenant="", user="", role="",
             timeout_ms=5000):
        """One request; returns ("final", body) or ("error", {code, message})."""
        self.serial += 1
        rid = str(self.serial).encode()
        headers = {"tenant_id": tenant, "user_id": user, "role": role,
                   "request_id": "e2e-channels-%s-%d" % (RUN, self.serial),
                   "timeout_ms": timeout_ms}
        self.socket.send_multipart([b"CHC1", REQUEST, rid, service.encode(),
                                    command.encode(), msgpack.packb(headers),
                                    msgpack.packb(body or {}, use_bin_type=True)])
        partials = []
        while self.socket.poll(timeout_ms + 2000):
            frames = self.socket.recv_multipart()
            if len(frames) < 4 or frames[2] != rid:
                continue
            reply = msgpack.unpackb(frames[3], raw=False)
            if frames[1] == PARTIAL:
                partials.append(reply)
            elif frames[1] == FINAL:
                return "final", reply, partials
            elif frames[1] == ERROR:
                return "error", reply, partials
        raise AssertionError("no answer to %s %s" % (service, command))

    def ok(self, service, command, body=None, **headers):
        kind, reply, _ = self.call(service, command, body, **headers)
        assert kind == "final", (command, reply)
        return reply

    def error(self, service, command, body=None, **headers):
        kind, reply, _ = self.call(service, command, body, **headers)
        assert kind == "error", (command, reply)
        return reply["code"]


def admin_of(tenant):
    return {"tenant": tenant["tenant_id"], "user": tenant["user_id"],
            "role": "tenant_admin"}


def member_of(tenant):
    return {"tenant": tenant["tenant_id"], "user": str(uuid.uuid4()), "role": "member"}


def webhook(platform, connection_id, body=b"", method="POST", query="", **headers):
    """webhooks.receive as the edge sends it; returns (status, content type, body)."""
    request = {"platform": platform, "connection_id": connection_id, "method": method,
               "query": query, "body": body, "content_type": "application/json"}
    request.update(headers)
    reply = W.bus.ok("channels", "webhooks.receive", request, timeout_ms=2500)
    return reply["status"], reply["content_type"], reply["body"]


def meta_signature(secret, body):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_headers(secret, body, at=None):
    at = str(int(time.time()) if at is None else at)
    mac = hmac.new(secret.encode(), b"v0:" + at.encode() + b":" + body, hashlib.sha256)
    return {"slack_request_timestamp": at, "slack_signature": "v0=" + mac.hexdigest()}


def inbox(connection, tenant, **args):
    args["id"] = connection
    return W.bus.ok("channels", "inbox.list", args, **admin_of(tenant))["data"]


def psql(sql):
    out = subprocess.run([W.psql, DATABASE, "-Atc", sql], check=True,
                         capture_output=True, text=True).stdout
    return out.strip()


def accepted(answer, stored, duplicates=0, ignored=0, statuses=0):
    status, ctype, body = answer
    assert status == 200 and ctype == "application/json", answer
    assert json.loads(body) == {"ok": True, "stored": stored, "duplicates": duplicates,
                                "ignored": ignored, "statuses": statuses}, body


def refused(answer, status, code):
    got, ctype, body = answer
    assert got == status and ctype == "application/json", answer
    assert json.loads(body)["error"]["code"] == code, body


def start(name, args, environment):
    return start_in(name, args, environment, WORK)


def check(name, fn):
    started = time.time()
    fn()
    print("ok   %-58s %.2fs" % (name, time.time() - started), flush=True)


def whatsapp_body(*ids, phone="106540352242922", statuses=None):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111",
                          "phone_number_id": phone},
             "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551234"}],
             "messages": [{"from": "16315551234", "id": i, "timestamp": "1700000000",
                           "type": "text", "text": {"body": "Hi \u00e9 %s" % i}}
                          for i in ids]}
    if statuses:
        value["statuses"] = statuses
    # Meta escapes non-ASCII (\u00e9): the signature covers these exact bytes
    return json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "WABA", "changes": [{"field": "messages",
                                                             "value": value}]}]}).encode()


# ---------------------------------------------------------------------------------
# Checks


def c_tenants():
    for name in ("ada", "bea"):
        reply = W.bus.ok("auth", "register", {
            "email": "%s-%s@channels.test" % (name, RUN), "password": PASSWORD,
            "tenant_name": "%s %s" % (name, RUN)})
        setattr(W, name, {"tenant_id": reply["tenant"]["id"],
                          "user_id": reply["user"]["id"]})
    assert W.ada["tenant_id"] != W.bea["tenant_id"]


def c_create():
    W.wa_secret, W.wa_verify = "wa-app-secret-%s" % RUN, "wa-verify-%s" % RUN
    body = {"platform": "whatsapp", "agent_id": AGENT, "name": "Support line",
            "phone_number_id": "106540352242922",
            "credentials": {"access_token": "EAAG-%s" % RUN, "app_secret": W.wa_secret,
                            "verify_token": W.wa_verify}}
    assert W.bus.error("channels", "connections.create", body,
                       **member_of(W.ada)) == "forbidden"
    assert W.bus.error("channels", "connections.create", body) == "unauthorized"
    conn = W.bus.ok("channels", "connections.create", body, **admin_of(W.ada))
    W.wa = conn["id"]
    assert conn["platform"] == "whatsapp" and conn["enabled"] is True, conn
    assert conn["agent_id"] == AGENT and conn["name"] == "Support line", conn
    assert conn["credentials"] is None and conn["secret_token"] is None, conn
    assert sorted(conn["credentials_set"]) == ["access_token", "app_secret",
                                               "verify_token"], conn
    assert conn["webhook_url"] == "https://chorus.example.test/webhooks/whatsapp/" + W.wa
    assert conn["created_at"].endswith("Z"), conn
    # never returned, and sealed at rest
    dump = json.dumps(conn)
    assert W.wa_secret not in dump and W.wa_verify not in dump, dump
    if W.psql:
        row = psql("SELECT app_secret_sealed || verify_token_sealed || "
                   "access_token_sealed FROM channels.connections WHERE id = '%s'" % W.wa)
        assert row and W.wa_secret not in row and "EAAG" not in row, row
    # missing what the platform needs
    for broken in ({"phone_number_id": None}, {"credentials": {"access_token": "x"}},
                   {"agent_id": "nope"}, {"platform": "sms"}, {"name": ""}):
        bad = dict(body)
        bad.update(broken)
        assert W.bus.error("channels", "connections.create", bad,
                           **admin_of(W.ada)) == "bad_request", broken

    # the other platforms
    W.ms_secret, W.ig_secret = "ms-secret-%s" % RUN, "ig-secret-%s" % RUN
    W.ms = W.bus.ok("channels", "connections.create", {
        "platform": "messenger", "agent_id": AGENT, "name": "Page", "page_id": "PAGE1",
        "credentials": {"access_token": "p", "app_secret": W.ms_secret,
                        "verify_token": "v"}}, **admin_of(W.ada))["id"]
    W.ig = W.bus.ok("channels", "connections.create", {
        "platform": "instagram", "agent_id": AGENT, "name": "IG",
        "page_id": "17841400000000000",
        "credentials": {"access_token": "p", "app_secret": W.ig_secret,
                        "verify_token": "v"}}, **admin_of(W.ada))["id"]
    tg = W.bus.ok("channels", "connections.create", {
        "platform": "telegram", "agent_id": AGENT, "name": "Bot",
        "credentials": {"bot_token": "123:ABC"}}, **admin_of(W.ada))
    W.tg, W.tg_secret = tg["id"], tg["secret_token"]
    assert len(W.tg_secret) == 43 and all(c.isalnum() or c in "_-" for c in W.tg_secret)
    assert "secret_token" in tg["credentials_set"], tg
    W.sl_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    W.sl = W.bus.ok("channels", "connections.create", {
        "platform": "slack", "agent_id": AGENT, "name": "Workspace",
        "bot_user_id": "U0BOT",
        "credentials": {"bot_token": "xoxb-1", "signing_secret": W.sl_secret}},
        **admin_of(W.bea))["id"]


def c_read():
    # members read; the generated Telegram secret is never shown again
    tg = W.bus.ok("channels", "connections.get", {"id": W.tg}, **member_of(W.ada))
    assert tg["secret_token"] is None and tg["platform"] == "telegram", tg
    listed = W.bus.ok("channels", "connections.list", {}, **member_of(W.ada))
    ids = [c["id"] for c in listed["data"]]
    assert ids[:4] == [W.tg, W.ig, W.ms, W.wa] and W.sl not in ids, ids
    page = W.bus.ok("channels", "connections.list", {"limit": 2}, **admin_of(W.ada))
    assert [c["id"] for c in page["data"]] == [W.tg, W.ig] and page["next_cursor"]
    rest = W.bus.ok("channels", "connections.list", {"limit": 2,
                                                      "cursor": page["next_cursor"]},
                    **admin_of(W.ada))
    assert [c["id"] for c in rest["data"]] == [W.ms, W.wa] and not rest["next_cursor"]
    # another tenant's id is the same 404 as a missing one
    for command, body in (("connections.get", {"id": W.sl}),
                          ("connections.update", {"id": W.sl, "name": "x"}),
                          ("connections.delete", {"id": W.sl}),
                          ("inbox.list", {"id": W.sl}),
                          ("connections.get", {"id": str(uuid.uuid4())}),
                          ("connections.get", {"id": "not-a-uuid"})):
        assert W.bus.error("channels", command, body,
                           **admin_of(W.ada)) == "not_found", command
    assert W.bus.error("channels", "connections.update", {"id": W.wa, "name": "x"},
                       **member_of(W.ada)) == "forbidden"


def c_update():
    conn = W.bus.ok("channels", "connections.update", {"id": W.wa, "name": "Renamed"},
                    **admin_of(W.ada))
    assert conn["name"] == "Renamed" and conn["phone_number_id"] == "106540352242922"
    for body in ({"id": W.wa, "platform": "slack"},
                 {"id": W.wa, "credentials": {"app_secret": ""}},
                 {"id": W.wa, "phone_number_id": ""},
                 {"id": W.tg, "credentials": {"secret_token": ""}}):
        assert W.bus.error("channels", "connections.update", body,
                           **admin_of(W.ada)) == "bad_request", body
    # a credential replaced: the old one stops verifying
    conn = W.bus.ok("channels", "connections.update", {
        "id": W.ms, "credentials": {"app_secret": W.ms_secret + "-2"}}, **admin_of(W.ada))
    W.ms_secret += "-2"
    assert sorted(conn["credentials_set"]) == ["access_token", "app_secret",
                                               "verify_token"]


def c_handshake():
    query = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=" + W.wa_verify
    assert webhook("whatsapp", W.wa, method="GET", query=query) == (
        200, "text/plain", b"1158201444")
    refused(webhook("whatsapp", W.wa, method="GET",
                    query=query.replace("verify_token=", "verify_token=x")), 403,
            "forbidden")
    refused(webhook("whatsapp", W.wa, method="GET",
                    query=query.replace("subscribe", "unsubscribe")), 403, "forbidden")
    refused(webhook("telegram", W.tg, method="GET", query=query), 405,
            "method_not_allowed")
    refused(webhook("whatsapp", W.wa, method="PUT"), 405, "method_not_allowed")


def c_whatsapp():
    body = whatsapp_body("wamid.A-%s" % RUN, "wamid.B-%s" % RUN)
    good = meta_signature(W.wa_secret, body)
    # forged, missing, for another body, of another secret: 401, nothing stored
    for header in (None, "", "sha256=" + "0" * 64, meta_signature(W.wa_secret, body + b" "),
                   meta_signature("wrong", body), good.replace("sha256=", "sha1=")):
        extra = {} if header is None else {"hub_signature_256": header}
        refused(webhook("whatsapp", W.wa, body, **extra), 401, "unauthorized")
    assert inbox(W.wa, W.ada) == []
    accepted(webhook("whatsapp", W.wa, body, hub_signature_256=good), 2)
    # Meta retries: acknowledged, not stored again
    accepted(webhook("whatsapp", W.wa, body, hub_signature_256=good), 0, duplicates=2)
    rows = inbox(W.wa, W.ada)
    assert len(rows) == 2, rows
    row = [r for r in rows if r["external_id"] == "wamid.A-%s" % RUN][0]
    assert row["text"] == "Hi \u00e9 wamid.A-%s" % RUN and row["status"] == "received"
    assert row["sender_name"] == "Kerry Fisher" and row["chat_id"] == "16315551234"
    assert row["sent_at"] == "2023-11-14T22:13:20.000000Z" and row["attempts"] == 0
    assert row["platform"] == "whatsapp" and row["connection_id"] == W.wa
    # another number's traffic, signed with this app's secret, is not stored here
    other = whatsapp_body("wamid.X-%s" % RUN, phone="999")
    accepted(webhook("whatsapp", W.wa, other,
                     hub_signature_256=meta_signature(W.wa_secret, other)), 0, ignored=1)
    # a signed body that is not WhatsApp's shape
    junk = b'{"object":"page","entry":[]}'
    refused(webhook("whatsapp", W.wa, junk,
                    hub_signature_256=meta_signature(W.wa_secret, junk)), 400,
            "bad_request")
    assert len(inbox(W.wa, W.ada)) == 2


def c_concurrent():
    # the same messages in every batch, in rotated orders, at once: each answer is
    # 200 and every message is stored exactly once (no lost update, no deadlock)
    import threading
    ids = ["wamid.C%03d-%s" % (i, RUN) for i in range(200)]
    answers = []

    def send(k):
        bus = Bus(W.broker)
        body = whatsapp_body(*(ids[k:] + ids[:k]))
        kind, reply, _ = bus.call("channels", "webhooks.receive", {
            "platform": "whatsapp", "connection_id": W.wa, "method": "POST",
            "body": body, "hub_signature_256": meta_signature(W.wa_secret, body)})
        answers.append((kind, reply))
        bus.socket.close()
    threads = [threading.Thread(target=send, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(answers) == 8, answers
    stored = 0
    for kind, reply in answers:
        assert kind == "final" and reply["status"] == 200, reply
        counts = json.loads(reply["body"])
        assert counts["stored"] + counts["duplicates"] == len(ids), counts
        stored += counts["stored"]
    assert stored == len(ids), answers
    rows = [r for r in inbox(W.wa, W.ada, limit=100, status="received")
            if r["external_id"] in ids]
    assert len(rows) == 100, len(rows)     # one page of them


def c_statuses():
    if not W.psql:
        print("skip WhatsApp statuses: no psql")
        return
    wamid = "wamid.OUT-%s" % RUN
    psql("INSERT INTO channels.outbound (tenant_id, connection_id, platform, chat_id, "
         "text, status, external_id) VALUES ('%s', '%s', 'whatsapp', '16315551234', "
         "'hello', 'sent', '%s')" % (W.ada["tenant_id"], W.wa, wamid))

    def status(state, **extra):
        item = {"id": wamid, "status": state, "timestamp": "1700000100",
                "recipient_id": "16315551234"}
        item.update(extra)
        body = whatsapp_body(statuses=[item])
        return webhook("whatsapp", W.wa, body,
                       hub_signature_256=meta_signature(W.wa_secret, body))
    accepted(status("delivered"), 0, statuses=1)
    accepted(status("read"), 0, statuses=1)
    accepted(status("delivered"), 0, ignored=1)     # late: never backwards
    assert psql("SELECT status FROM channels.outbound WHERE external_id = '%s'"
                % wamid) == "read"
    wamid = "wamid.OUT2-%s" % RUN
    psql("INSERT INTO channels.outbound (tenant_id, connection_id, platform, chat_id, "
         "text, status, external_id) VALUES ('%s', '%s', 'whatsapp', '1', 'x', 'sent', "
         "'%s')" % (W.ada["tenant_id"], W.wa, wamid))
    accepted(status("failed", errors=[{"code": 131047, "title": "Re-engagement"}]), 0,
             statuses=1)
    assert psql("SELECT status || ' ' || error_code || ' ' || (last_error::jsonb->0->>"
                "'title') FROM channels.outbound WHERE external_id = '%s'"
                % wamid) == "failed 131047 Re-engagement"
    # a status of a message we never sent: acknowledged, ignored
    wamid = "wamid.UNKNOWN-%s" % RUN
    accepted(status("read"), 0, ignored=1)


def c_messenger_instagram():
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE1", "time": 1, "messaging": [
        {"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE1"}, "timestamp": 1700000000123,
         "message": {"mid": "m_1-%s" % RUN, "text": "hi"}},
        {"sender": {"id": "PAGE1"}, "recipient": {"id": "PSID1"}, "timestamp": 1,
         "message": {"mid": "m_2-%s" % RUN, "text": "echo", "is_echo": True}}]}]}).encode()
    refused(webhook("messenger", W.ms, body,
                    hub_signature_256=meta_signature(W.ms_secret[:-2], body)), 401,
            "unauthorized")     # the replaced secret
    accepted(webhook("messenger", W.ms, body,
                     hub_signature_256=meta_signature(W.ms_secret, body)), 1, ignored=1)
    rows = inbox(W.ms, W.ada)
    assert [(r["external_id"], r["chat_id"], r["sent_at"]) for r in rows] == [
        ("m_1-%s" % RUN, "PSID1", "2023-11-14T22:13:20.123000Z")], rows
    body = json.dumps({"object": "instagram", "entry": [{"id": "17841400000000000",
        "messaging": [{"sender": {"id": "IGSID"}, "recipient": {"id": "17841400000000000"},
                       "timestamp": 1700000000000,
                       "message": {"mid": "ig_1-%s" % RUN, "text": "hey"}}]}]}).encode()
    # a Messenger body is not an Instagram webhook, and the URL is per platform
    refused(webhook("messenger", W.ig, body,
                    hub_signature_256=meta_signature(W.ig_secret, body)), 404, "not_found")
    accepted(webhook("instagram", W.ig, body,
                     hub_signature_256=meta_signature(W.ig_secret, body)), 1)


def c_telegram():
    body = json.dumps({"update_id": 700001, "message": {
        "message_id": 1365, "date": 1441645532, "text": "/start",
        "chat": {"id": 1111111, "type": "private"},
        "from": {"id": 1111111, "is_bot": False, "first_name": "Test",
                 "last_name": "User"}}}).encode()
    for token in (None, "", W.tg_secret[:-1], W.tg_secret + "x", "x" * 43):
        extra = {} if token is None else {"telegram_secret_token": token}
        refused(webhook("telegram", W.tg, body, **extra), 401, "unauthorized")
    assert inbox(W.tg, W.ada) == []
    accepted(webhook("telegram", W.tg, body, telegram_secret_token=W.tg_secret), 1)
    accepted(webhook("telegram", W.tg, body, telegram_secret_token=W.tg_secret), 0,
             duplicates=1)
    rows = inbox(W.tg, W.ada)
    assert [(r["external_id"], r["message_id"], r["chat_id"], r["sender_name"])
            for r in rows] == [("700001", "1365", "1111111", "Test User")], rows
    edited = b'{"update_id":700002,"edited_message":{"chat":{"id":1},"text":"x"}}'
    accepted(webhook("telegram", W.tg, edited, telegram_secret_token=W.tg_secret), 0,
             ignored=1)
    refused(webhook("telegram", W.tg, b"not json", telegram_secret_token=W.tg_secret),
            400, "bad_request")


def c_slack():
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    verification = json.dumps({"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
                               "challenge": challenge,
                               "type": "url_verification"}).encode()
    refused(webhook("slack", W.sl, verification), 401, "unauthorized")
    assert webhook("slack", W.sl, verification,
                   **slack_headers(W.sl_secret, verification)) == (
        200, "text/plain", challenge.encode())

    def event(event_id, **fields):
        inner = {"type": "app_mention", "user": "U061F7AUR", "text": "<@U0BOT> hello",
                 "ts": "1515449522.000016", "channel": "C0LAN2Q65",
                 "event_ts": "1515449522.000016"}
        inner.update(fields)
        return json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1",
                           "event": inner, "type": "event_callback",
                           "event_id": event_id, "event_time": 1515449522}).encode()
    body = event("Ev-%s" % RUN)
    # stale, future, missing timestamp; bad signature: 401, nothing stored
    now = int(time.time())
    for headers in (slack_headers(W.sl_secret, body, now - 301),
                    slack_headers(W.sl_secret, body, now + 301),
                    {"slack_signature": slack_headers(W.sl_secret, body)["slack_signature"]},
                    slack_headers("8f742231b10e8888abcd99yyyzzz85a6", body),
                    dict(slack_headers(W.sl_secret, body), slack_signature="v0=")):
        refused(webhook("slack", W.sl, body, **headers), 401, "unauthorized")
    assert inbox(W.sl, W.bea) == []
    accepted(webhook("slack", W.sl, body, **slack_headers(W.sl_secret, body, now - 290)), 1)
    # Slack retries carry X-Slack-Retry-Num; the event_id dedupes them
    retry = dict(slack_headers(W.sl_secret, body), slack_retry_num="1",
                 slack_retry_reason="http_timeout")
    accepted(webhook("slack", W.sl, body, **retry), 0, duplicates=1)
    rows = inbox(W.sl, W.bea)
    assert [(r["external_id"], r["message_type"], r["thread_id"], r["chat_id"])
            for r in rows] == [("Ev-%s" % RUN, "mention", "1515449522.000016",
                                "C0LAN2Q65")], rows
    # our own bot and other bots are never stored (no reply loops)
    for i, fields in enumerate(({"user": "U0BOT", "type": "message",
                                 "channel_type": "im"},
                                {"bot_id": "B1"}, {"subtype": "bot_message"})):
        body = event("Ev-bot%d-%s" % (i, RUN), **fields)
        accepted(webhook("slack", W.sl, body, **slack_headers(W.sl_secret, body)), 0,
                 ignored=1)
    assert len(inbox(W.sl, W.bea)) == 1


def c_routing():
    body = b'{"update_id":1}'
    # unknown, malformed, of another platform: the same 404, before any verification
    for platform, connection in (("telegram", str(uuid.uuid4())), ("telegram", "x"),
                                 ("slack", W.tg), ("sms", W.tg)):
        refused(webhook(platform, connection, body), 404, "not_found")
    # a disabled connection receives nothing
    W.bus.ok("channels", "connections.update", {"id": W.tg, "enabled": False},
             **admin_of(W.ada))
    refused(webhook("telegram", W.tg, body, telegram_secret_token=W.tg_secret), 404,
            "not_found")
    W.bus.ok("channels", "connections.update", {"id": W.tg, "enabled": True},
             **admin_of(W.ada))
    # bounded
    big = b"x" * (4 * 1024 * 1024 + 1)
    refused(webhook("telegram", W.tg, big, telegram_secret_token=W.tg_secret), 413,
            "payload_too_large")


def c_events():
    # live: a subscriber on the brokers' events-out sees the inbound event
    host, port = W.broker.rsplit(":", 1)
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect("%s:%d" % (host, int(port) + 2))
    sub.setsockopt(zmq.SUBSCRIBE, b"channels.inbound")
    time.sleep(0.5)     # the slow joiner
    body = json.dumps({"update_id": 700100, "message": {
        "message_id": 1, "date": 1, "text": "live", "chat": {"id": 5},
        "from": {"id": 5, "is_bot": False, "first_name": "L"}}}).encode()
    accepted(webhook("telegram", W.tg, body, telegram_secret_token=W.tg_secret), 1)
    assert sub.poll(5000), "no live event"
    topic, meta, payload = sub.recv_multipart()
    meta, payload = msgpack.unpackb(meta, raw=False), msgpack.unpackb(payload, raw=False)
    assert topic == b"channels.inbound.received", topic
    assert meta["publisher"] == "channels" and meta["tenant_id"] == W.ada["tenant_id"]
    assert meta["seq"] > 0, meta
    row = inbox(W.tg, W.ada)[0]
    assert payload["id"] == row["id"] and payload["connection_id"] == W.tg, payload
    assert payload["agent_id"] == AGENT and payload["platform"] == "telegram", payload
    assert payload["external_id"] == "700100" and payload["chat_id"] == "5", payload
    assert "text" not in payload and payload["received_at"].endswith("Z"), payload
    sub.close()
    # replayed from the outbox, in order, with every event of this run
    kind, end, records = W.bus.call("channels", "events.replay",
                                    {"after_seq": meta["seq"] - 1, "limit": 10})
    assert kind == "final" and records and records[0]["meta"]["seq"] == meta["seq"], end
    assert msgpack.unpackb(records[0]["payload"], raw=False) == payload
    kind, end, records = W.bus.call("channels", "events.replay",
                                    {"after_seq": 0, "limit": 1000})
    topics = [r["topic"] for r in records]
    seqs = [r["meta"]["seq"] for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    for wanted in ("channels.connection.created", "channels.connection.updated",
                   "channels.inbound.received"):
        assert wanted in topics, topics
    if W.psql:
        assert "channels.outbound.read" in topics and "channels.outbound.failed" in topics


def c_durability():
    body = json.dumps({"update_id": 700200, "message": {
        "message_id": 2, "date": 2, "text": "before the crash", "chat": {"id": 6},
        "from": {"id": 6, "is_bot": False, "first_name": "D"}}}).encode()
    accepted(webhook("telegram", W.tg, body, telegram_secret_token=W.tg_secret), 1)
    W.channels.send_signal(signal.SIGKILL)
    W.channels.wait(timeout=10)
    W.channels = start("channels-2", [BIN + "/chorus-channels"], W.environment)

    def back():
        kind, _, _ = W.bus.call("channels", "ping", {}, timeout_ms=500)
        return kind == "final"
    wait_for("channels after SIGKILL", back)
    rows = [r for r in inbox(W.tg, W.ada) if r["external_id"] == "700200"]
    assert len(rows) == 1 and rows[0]["text"] == "before the crash", rows
    assert rows[0]["status"] == "received", rows
    # the platform's retry after the crash is still a duplicate
    accepted(webhook("telegram", W.tg, body, telegram_secret_token=W.tg_secret), 0,
             duplicates=1)


def c_delete():
    assert W.bus.error("channels", "connections.delete", {"id": W.ig},
                       **member_of(W.ada)) == "forbidden"
    assert W.bus.ok("channels", "connections.delete", {"id": W.ig},
                    **admin_of(W.ada)) == {}
    assert W.bus.error("channels", "connections.get", {"id": W.ig},
                       **admin_of(W.ada)) == "not_found"
    refused(webhook("instagram", W.ig, b"{}"), 404, "not_found")


# ---------------------------------------------------------------------------------


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    W.psql = shutil.which("psql")
    base = free_port(3)
    W.broker = "tcp://127.0.0.1:%d" % base
    W.environment = dict(os.environ)
    W.environment.update({
        "CHORUS_BROKERS": W.broker, "CHORUS_BROKER_BIND": W.broker,
        "CHORUS_DATABASE_URL": DATABASE, "CHORUS_REDIS_URL": REDIS,
        "CHORUS_SQL_DIR": SRC + "/schemas/sql", "CHORUS_LOG_LEVEL": "warn",
        "CHORUS_SECRET_KEY": base64.b64encode(b"e2e-channels-test-secret-key-012").decode(),
        "CHORUS_JWT_SECRET": "e2e-channels-test-jwt-secret-0123456789ab",
        "CHORUS_PUBLIC_URL": PUBLIC_URL, "CHORUS_LOGIN_IP_FAILURES": "1000",
        "CHORUS_DATABASE_POOL": "8",
        # the inbox as stored: processing and sending are test_delivery.py's
        "CHORUS_CHANNELS_PROCESS": "false"})
    processes = [start("broker", [BIN + "/chorus-broker"], W.environment),
                 start("auth", [BIN + "/chorus-auth"], W.environment)]
    W.channels = start("channels", [BIN + "/chorus-channels"], W.environment)
    W.bus = Bus(W.broker)
    try:
        def ready():
            kinds = [W.bus.call(s, "ping", {}, timeout_ms=500)[0]
                     for s in ("auth", "channels")]
            return kinds == ["final", "final"]
        wait_for("auth and channels", ready)
        check("two tenants registered through auth", c_tenants)
        check("connections: create, sealed credentials, validation", c_create)
        check("connections: members read, pages, cross-tenant 404", c_read)
        check("connections: partial update, required stay, secrets replace", c_update)
        check("Meta GET handshake; methods", c_handshake)
        check("WhatsApp: signed stored once, forged 401, retries deduped", c_whatsapp)
        check("concurrent overlapping batches: each message once", c_concurrent)
        check("WhatsApp statuses move outbound rows forward", c_statuses)
        check("Messenger and Instagram", c_messenger_instagram)
        check("Telegram: secret token, update_id dedupe", c_telegram)
        check("Slack: url_verification, v0 signature, window, retries, bots", c_slack)
        check("routing: unknown, other platform, disabled, too large", c_routing)
        check("events: live channels.inbound.received, replay, payloads", c_events)
        check("durability: SIGKILL after the ack, row there after restart",
              c_durability)
        check("connections: delete", c_delete)
        # channels drains and exits 0 on SIGTERM (auth's exit is e2e_auth's matter)
        W.channels.send_signal(signal.SIGTERM)
        code = W.channels.wait(timeout=20)
        assert code == 0, "channels exited %s" % code
        for proc in reversed(processes):
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
    print("all channels tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
