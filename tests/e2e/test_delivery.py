#!/usr/bin/python3
"""End-to-end test of processing after the answer, replies out and human handoff
(schemas/channels.md "Processing", "Replies out"; schemas/chat.md "Channels and
handoff"): chorus-broker, -auth, -agents, -chat, -channels and -edge as processes
against the test PostgreSQL and Redis, the LLM stand-in as the agent's provider and
the platforms' stand-in (tests/standins/channels_standin.py) as WhatsApp, Messenger,
Telegram and Slack. Webhooks are signed as the platforms sign them and posted to the
edge; what goes out is read from the stand-in's request log.

Checks: a signed WhatsApp message answered by the agent on the Cloud API (and a
redelivery answered once), the status callback moving the part to delivered; a
Telegram reply longer than 4096 characters split in order; Slack mentions answered in
their thread and the bot's own messages ignored; Messenger and Instagram (parts of at
most 1000 bytes); handoff (a contact asking for a person gets the notice, the agent
stays silent while the conversation waits or a member holds it, the member's reply
goes out, resolve, reopen, unassign gives it back to the agent); a 429 then success,
a permanent failure stored as failed with the platform's error; connections.test
against the stand-in; the cross-tenant 404s; WebSocket clients on two edge replicas
(a reply streaming live to a watcher, typing, presence, the tenant's events, a member
taking a conversation and answering over the WebSocket, a member's 403 on
connections.test); and the channels service killed with SIGKILL after the answer,
the reply still delivered once after its restart.

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
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

BIN = os.environ.get("CHORUS_BIN_DIR", "build/bin")
SRC = os.environ.get("CHORUS_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__))
                     + "/../..")
DATABASE = os.environ.get("CHORUS_TEST_DATABASE_URL", "")
REDIS = os.environ.get("CHORUS_TEST_REDIS_URL", "")
WORK = tempfile.mkdtemp(prefix="chorus-delivery-test-")
RUN = uuid.uuid4().hex[:8]
PASSWORD = "Sturdy-Passphrase-%s-42!" % RUN
TOKEN = "standin-token"
# Contacts of this run alone: the test database may hold other runs' rows, which the
# channels service delivers too
SEED = int(RUN, 16)
WA_ID, WA_KILL = "1631%07d" % (SEED % 10**7), "1632%07d" % (SEED % 10**7)
TG_CHAT, TG_HANDOFF = 700000000 + SEED % 10**8, 800000000 + SEED % 10**8
SLACK_CHANNEL, SLACK_DM, PSID = "C0" + RUN.upper(), "D0" + RUN.upper(), "PSID" + RUN
IGSID = "IGSID" + RUN
RECIPIENTS = {WA_ID, WA_KILL, str(TG_CHAT), str(TG_HANDOFF), SLACK_CHANNEL, SLACK_DM, PSID,
              IGSID}
sys.path.insert(0, os.path.join(SRC, "tests", "standins"))
import channels_standin  # noqa: E402
import llm_standin  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import free_port, wait_for, WebSocket, start as start_in  # noqa: E402


class W:
    """What the checks share."""


def call(method, path, body=None, headers=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", W.port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def api(method, path, body=None, token=None, status=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    got, data = call(method, path, None if body is None else json.dumps(body).encode(),
                     headers)
    answer = json.loads(data) if data else None
    if status is not None:
        assert got == status, (method, path, got, answer)
    return got, answer


def standin(path, body=None):
    url = "http://127.0.0.1:%d%s" % (W.standin_port, path)
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def sent(platform=None, contains=None):
    """Sends the stand-in answered with success, oldest first."""
    query = "/_standin/requests?kind=send" + ("&platform=" + platform if platform else "")
    out = [r for r in standin(query)["requests"] if r["status"] == 200
           and str(r["recipient"]) in RECIPIENTS
           and not (isinstance(r["response"], dict) and r["response"].get("ok") is False)]
    if contains:
        out = [r for r in out if contains in (r.get("text") or "")]
    return out


def sign_meta(secret, body):
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                        hashlib.sha256).hexdigest()}


def sign_slack(secret, body):
    at = str(int(time.time()))
    mac = hmac.new(secret.encode(), b"v0:" + at.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": at, "X-Slack-Signature": "v0=" + mac.hexdigest()}


def hook(url, body, headers):
    path = urllib.parse.urlsplit(url).path
    sent_headers = {"Content-Type": "application/json"}
    sent_headers.update(headers)
    status, data = call("POST", path, body, sent_headers)
    assert status == 200, (status, data)
    return json.loads(data)


def whatsapp(text, wamid, wa_id=WA_ID, name="Kerry Fisher"):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111",
                          "phone_number_id": "106540352242922"},
             "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
             "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(time.time())),
                           "type": "text", "text": {"body": text}}]}
    body = json.dumps({"object": "whatsapp_business_account",
                       "entry": [{"id": "WABA", "changes": [{"field": "messages",
                                                             "value": value}]}]}).encode()
    return hook(W.wa_url, body, sign_meta(W.wa_secret, body))


def telegram(text, chat_id=TG_CHAT):
    W.update_id = getattr(W, "update_id", 900000) + 1
    body = json.dumps({"update_id": W.update_id, "message": {
        "message_id": W.update_id, "date": int(time.time()), "text": text,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Tess"},
        "chat": {"id": chat_id, "type": "private", "first_name": "Tess"}}}).encode()
    return hook(W.tg_url, body, {"X-Telegram-Bot-Api-Secret-Token": W.tg_secret})


def slack(event, event_id):
    body = json.dumps({"token": "x", "team_id": "T1", "api_app_id": "A1",
                       "type": "event_callback", "event_id": event_id,
                       "event_time": int(time.time()), "event": event}).encode()
    return hook(W.sl_url, body, sign_slack(W.sl_secret, body))


def conversations(query=""):
    _, answer = api("GET", "/api/v1/conversations?limit=100" + query, token=W.ada,
                    status=200)
    return answer["data"]


def messages(conversation):
    _, answer = api("GET", "/api/v1/conversations/%s/messages?limit=100" % conversation,
                    token=W.ada, status=200)
    return list(reversed(answer["data"]))


def outbound(connection, status=""):
    _, answer = api("GET", "/api/v1/channels/connections/%s/outbound?limit=100%s" % (
        connection, "&status=" + status if status else ""), token=W.ada, status=200)
    return answer["data"]


def inbox(connection):
    _, answer = api("GET", "/api/v1/channels/connections/%s/inbox?limit=100" % connection,
                    token=W.ada, status=200)
    return answer["data"]


def start(name, args, environment):
    return start_in(name, args, environment, WORK)


def check(name, fn):
    started = time.time()
    fn()
    print("ok   %-58s %.2fs" % (name, time.time() - started), flush=True)


# ---------------------------------------------------------------------------------


def c_setup():
    for name in ("ada", "eve"):
        _, reply = api("POST", "/api/v1/auth/register", {
            "email": "%s-%s@delivery.test" % (name, RUN), "password": PASSWORD,
            "tenant_name": "%s %s" % (name, RUN)}, status=201)
        setattr(W, name, reply["access_token"])
        setattr(W, name + "_id", reply["user"]["id"])
    api("PUT", "/api/v1/providers/openai", {"api_key": "standin-key",
                                            "base_url": W.llm + "/v1"}, W.ada, 200)
    _, agent = api("POST", "/api/v1/agents", {
        "name": "Channel agent", "system_prompt": "Answer briefly.",
        "provider": "openai", "model": "gpt-4o-mini"}, W.ada, 201)
    W.agent = agent["id"]

    def create(platform, credentials, **fields):
        request = {"platform": platform, "agent_id": W.agent,
                   "name": "%s %s" % (platform, RUN), "credentials": credentials}
        request.update(fields)
        return api("POST", "/api/v1/channels/connections", request, W.ada, 201)[1]
    W.wa_secret, W.ms_secret = "wa-secret-" + RUN, "ms-secret-" + RUN
    W.ig_secret = "ig-secret-" + RUN
    wa = create("whatsapp", {"access_token": TOKEN, "app_secret": W.wa_secret,
                             "verify_token": "v"}, phone_number_id="106540352242922")
    ms = create("messenger", {"access_token": TOKEN, "app_secret": W.ms_secret,
                              "verify_token": "v"}, page_id="PAGE1")
    ig = create("instagram", {"access_token": TOKEN, "app_secret": W.ig_secret,
                              "verify_token": "v"}, page_id="ig17841400000")
    W.ig, W.ig_url = ig["id"], ig["webhook_url"]
    tg = create("telegram", {"bot_token": "7000000001:" + TOKEN})
    W.sl_secret = "sl-secret-" + RUN
    sl = create("slack", {"bot_token": TOKEN, "signing_secret": W.sl_secret},
                bot_user_id="U0STANDIN")
    W.wa, W.wa_url = wa["id"], wa["webhook_url"]
    W.ms, W.ms_url = ms["id"], ms["webhook_url"]
    W.tg, W.tg_url, W.tg_secret = tg["id"], tg["webhook_url"], tg["secret_token"]
    W.sl, W.sl_url = sl["id"], sl["webhook_url"]


def c_whatsapp():
    wamid = "wamid.HBg-%s" % RUN
    assert whatsapp("hello from WhatsApp", wamid)["stored"] == 1
    record = wait_for("the reply on the Cloud API", lambda: sent(
        "whatsapp", "Echo: hello from WhatsApp"))[0]
    body = record["body"]
    assert record["path"] == "/v21.0/106540352242922/messages", record
    assert body["messaging_product"] == "whatsapp" and body["to"] == WA_ID, body
    assert body["type"] == "text" and body["text"]["body"] == "Echo: hello from WhatsApp"
    assert record["headers"]["authorization"] == "Bearer " + TOKEN, record
    # the inbox row is done, the part sent with the platform's id
    row = wait_for("the inbox row done", lambda: [
        r for r in inbox(W.wa) if r["external_id"] == wamid and r["status"] == "done"])[0]
    part = wait_for("the part sent", lambda: [
        o for o in outbound(W.wa) if o["status"] == "sent"])[0]
    assert part["external_id"].startswith("wamid.") and part["part"] == 0, part
    assert part["chat_id"] == WA_ID and part["attempts"] == 1, part
    # the conversation in chat: the contact's message and the agent's reply
    convs = conversations("&channel=whatsapp")
    assert len(convs) == 1, convs
    conv = convs[0]
    W.wa_conv = conv["id"]
    assert conv["connection_id"] == W.wa and conv["contact_id"] == WA_ID, conv
    assert conv["contact_name"] == "Kerry Fisher" and conv["status"] == "open", conv
    assert conv["title"] == "WhatsApp: Kerry Fisher" and conv["assignee_id"] is None
    said = [(m["role"], m["author_type"], m["content"]) for m in messages(conv["id"])]
    assert said == [("user", "contact", "hello from WhatsApp"),
                    ("assistant", "agent", "Echo: hello from WhatsApp")], said
    assert conversations("&channel=telegram") == [] and row["text"]
    assert [c["id"] for c in conversations("&channel=web")] == []
    # Meta redelivers: acknowledged, never processed or answered again
    assert whatsapp("hello from WhatsApp", wamid)["duplicates"] == 1
    time.sleep(1.0)
    assert len(sent("whatsapp", "Echo: hello from WhatsApp")) == 1
    # the delivery status callback moves the part forward
    got = standin("/_standin/whatsapp/status", {
        "url": W.wa_url, "app_secret": W.wa_secret, "phone_number_id": "106540352242922",
        "message_id": part["external_id"], "status": "delivered",
        "recipient_id": WA_ID})
    assert got.get("status", 200) == 200, got
    wait_for("the part delivered", lambda: [
        o for o in outbound(W.wa) if o["id"] == part["id"] and o["status"] == "delivered"])
    # the same contact again: the same conversation
    whatsapp("second", "wamid.2-%s" % RUN)
    wait_for("the second reply", lambda: sent("whatsapp", "Echo: second"))
    assert len(conversations("&channel=whatsapp")) == 1


def c_telegram_long():
    telegram("[[tokens:1300]] long answer please")
    parts = wait_for("every part sent", lambda: (lambda rows: len(rows) > 1 and all(
        o["status"] == "sent" for o in rows) and rows)(outbound(W.tg)))
    records = sent("telegram")
    texts = [r["body"]["text"] for r in records]
    assert len(texts) == len(parts) == 3, ([t[:40] for t in texts], parts)
    assert all(len(t) <= 4096 for t in texts), [len(t) for t in texts]
    assert texts[0].startswith("Echo: long answer please"), texts[0][:60]
    assert all(r["body"]["chat_id"] in (TG_CHAT, str(TG_CHAT)) for r in records)
    assert all(r["path"] == "/bot7000000001:%s/sendMessage" % TOKEN for r in records)
    # the parts are the stored reply, cut at a space
    conv = conversations("&channel=telegram")[0]
    W.tg_conv = conv["id"]
    reply = messages(conv["id"])[-1]["content"]
    assert " ".join(texts) == reply, (len(" ".join(texts)), len(reply))
    parts = sorted(parts, key=lambda o: o["part"])
    assert [o["part"] for o in parts] == [0, 1, 2], parts
    assert [o["text"] for o in parts] == texts


def c_slack_thread():
    event = {"type": "app_mention", "user": "U0USER", "text": "<@U0STANDIN> slack hi",
             "ts": "1700000001.000100", "channel": SLACK_CHANNEL, "event_ts": "1700000001.000100"}
    assert slack(event, "Ev1-" + RUN)["stored"] == 1
    record = wait_for("the reply in the thread", lambda: sent("slack", "slack hi"))[0]
    assert record["body"]["channel"] == SLACK_CHANNEL, record
    assert record["body"]["thread_ts"] == "1700000001.000100", record
    # the bot's own message (its reply coming back as an event) is ignored
    own = {"type": "message", "channel_type": "im", "user": "U0STANDIN",
           "bot_id": "B0STANDIN", "text": "Echo: loop", "ts": "1700000002.000200",
           "channel": SLACK_DM}
    answer = slack(own, "Ev2-" + RUN)
    assert answer["stored"] == 0 and answer["ignored"] == 1, answer
    # a direct message is answered in the DM
    dm = {"type": "message", "channel_type": "im", "user": "U0USER", "text": "dm hi",
          "ts": "1700000003.000300", "channel": SLACK_DM}
    assert slack(dm, "Ev3-" + RUN)["stored"] == 1
    record = wait_for("the DM answered", lambda: sent("slack", "Echo: dm hi"))[0]
    assert record["body"]["channel"] == SLACK_DM, record


def c_messenger():
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE1", "time": 1, "messaging": [
        {"sender": {"id": PSID}, "recipient": {"id": "PAGE1"},
         "timestamp": int(time.time() * 1000),
         "message": {"mid": "m_%s" % RUN, "text": "page hello"}}]}]}).encode()
    assert hook(W.ms_url, body, sign_meta(W.ms_secret, body))["stored"] == 1
    record = wait_for("the reply on the Send API", lambda: sent(
        "messenger", "Echo: page hello"))[0]
    assert record["path"] == "/v21.0/PAGE1/messages", record
    assert record["body"]["recipient"] == {"id": PSID}, record
    assert record["body"]["messaging_type"] == "RESPONSE", record
    # Instagram: the same Send API on the Instagram account, 1000 bytes a part
    body = json.dumps({"object": "instagram", "entry": [{"id": "ig17841400000", "time": 1,
        "messaging": [{"sender": {"id": IGSID}, "recipient": {"id": "ig17841400000"},
                       "timestamp": int(time.time() * 1000),
                       "message": {"mid": "ig_%s" % RUN,
                                   "text": "[[tokens:300]] insta \u00e9"}}]}]}).encode()
    assert hook(W.ig_url, body, sign_meta(W.ig_secret, body))["stored"] == 1
    parts = wait_for("every Instagram part sent", lambda: (lambda rows: len(rows) > 1 and all(
        o["status"] == "sent" for o in rows) and rows)(outbound(W.ig)))
    records = sent("instagram")
    assert len(records) == len(parts), (len(records), len(parts))
    assert all(r["path"] == "/v21.0/ig17841400000/messages" for r in records), records[0]
    assert all(len(r["body"]["message"]["text"].encode()) <= 1000 for r in records)
    assert records[0]["body"]["message"]["text"].startswith("Echo: insta \u00e9")


def c_handoff():
    chat = TG_HANDOFF
    telegram("hello bot", chat)
    wait_for("the agent's answer", lambda: sent("telegram", "Echo: hello bot"))
    conv = [c for c in conversations("&channel=telegram") if c["contact_id"] == str(chat)][0]
    W.h_conv = conv["id"]
    # asking for a person: the notice goes out, the conversation waits
    telegram("I want to talk to a HUMAN please", chat)
    wait_for("the handoff notice", lambda: sent("telegram", "member of our team"))
    detail = api("GET", "/api/v1/conversations/" + W.h_conv, token=W.ada, status=200)[1]
    assert detail["status"] == "pending" and detail["assignee_id"] is None, detail
    assert [c["id"] for c in conversations("&status=pending")] == [W.h_conv]
    before = len(sent("telegram"))
    telegram("are you there?", chat)
    wait_for("the message stored", lambda: messages(W.h_conv)[-1]["content"]
             == "are you there?")
    time.sleep(1.5)
    assert len(sent("telegram")) == before, "the agent answered while pending"
    # a member takes it and answers: out on Telegram
    _, assigned = api("POST", "/api/v1/conversations/%s/assign" % W.h_conv,
                      {"assignee_id": W.ada_id}, W.ada, 200)
    assert assigned["assignee_id"] == W.ada_id and assigned["status"] == "open", assigned
    assert [c["id"] for c in conversations("&assignee_id=" + W.ada_id)] == [W.h_conv]
    _, mine = api("POST", "/api/v1/conversations/%s/messages" % W.h_conv,
                  {"content": "Hi, Ada here. How can I help?"}, W.ada, 200)
    assert mine["role"] == "assistant" and mine["author_type"] == "member", mine
    assert mine["author_id"] == W.ada_id and mine["status"] == "complete", mine
    record = wait_for("the member's reply out", lambda: sent("telegram", "Ada here"))[0]
    assert record["body"]["chat_id"] in (chat, str(chat)), record
    # while she holds it the agent stays silent
    before = len(sent("telegram"))
    telegram("thanks Ada", chat)
    wait_for("stored", lambda: messages(W.h_conv)[-1]["content"] == "thanks Ada")
    time.sleep(1.5)
    assert len(sent("telegram")) == before
    # resolve; the contact writing again reopens it, still hers
    _, resolved = api("POST", "/api/v1/conversations/%s/resolve" % W.h_conv, None, W.ada,
                      200)
    assert resolved["status"] == "resolved", resolved
    telegram("one more thing", chat)
    wait_for("reopened", lambda: api("GET", "/api/v1/conversations/" + W.h_conv,
                                     token=W.ada)[1]["status"] == "open")
    # back to the agent: it answers again
    _, back = api("POST", "/api/v1/conversations/%s/unassign" % W.h_conv, None, W.ada,
                  200)
    assert back["assignee_id"] is None and back["status"] == "open", back
    telegram("bot again?", chat)
    wait_for("the agent answers again", lambda: sent("telegram", "Echo: bot again?"))
    # the history it got holds what was said while a member held it: the contact's
    # messages and the member's answers (as the assistant's)
    with urllib.request.urlopen(W.llm + "/_standin/requests", timeout=10) as response:
        records = json.loads(response.read())["requests"]
    asked = [r for r in records if "bot again?" in json.dumps(r.get("body"))][-1]
    history = [(m["role"], m["content"]) for m in asked["body"]["messages"]]
    assert ("user", "thanks Ada") in history and ("user", "one more thing") in history
    assert ("assistant", "Hi, Ada here. How can I help?") in history, history
    # an assignee must be a member of the tenant
    got, answer = api("POST", "/api/v1/conversations/%s/assign" % W.h_conv,
                      {"assignee_id": W.eve_id}, W.ada)
    assert got == 400 and answer["error"]["code"] == "bad_request", answer
    _, _ = api("POST", "/api/v1/conversations/%s/reopen" % W.h_conv, None, W.ada, 200)


def c_faults():
    # a member's reply that meets a 429 first: sent on the second attempt
    api("POST", "/api/v1/conversations/%s/assign" % W.h_conv, {"assignee_id": W.ada_id},
        W.ada, 200)
    api("POST", "/api/v1/conversations/%s/messages" % W.h_conv,
        {"content": "[[fail_first:1 status:429 retry_after:1]] retried"}, W.ada, 200)
    part = wait_for("sent after a 429", lambda: [
        o for o in outbound(W.tg, "sent") if "retried" in o["text"]])[0]
    assert part["attempts"] == 2, part
    # a permanent error: failed, with the platform's error, visible in the API
    api("POST", "/api/v1/conversations/%s/messages" % W.h_conv,
        {"content": "[[permanent]] blocked"}, W.ada, 200)
    part = wait_for("failed for good", lambda: [
        o for o in outbound(W.tg, "failed") if "blocked" in o["text"]])[0]
    assert part["error_code"] == "403" and "blocked" in part["last_error"], part
    assert part["attempts"] == 1 and part["failed_at"], part


def c_connection_test():
    _, ok = api("POST", "/api/v1/channels/connections/%s/test" % W.tg, None, W.ada, 200)
    assert ok["ok"] is True and ok["account"] == "standin_bot", ok
    _, ok = api("POST", "/api/v1/channels/connections/%s/test" % W.wa, None, W.ada, 200)
    assert ok["ok"] is True and "+1 555-0100" in ok["account"], ok
    _, ok = api("POST", "/api/v1/channels/connections/%s/test" % W.sl, None, W.ada, 200)
    assert ok["ok"] is True, ok
    _, bad = api("POST", "/api/v1/channels/connections", {
        "platform": "slack", "agent_id": W.agent, "name": "wrong token",
        "credentials": {"bot_token": "xoxb-wrong", "signing_secret": "s"}}, W.ada, 201)
    _, no = api("POST", "/api/v1/channels/connections/%s/test" % bad["id"], None, W.ada,
                200)
    assert no["ok"] is False and no["error_code"] == "invalid_auth", no
    W.bad_connection = bad["id"]


def c_cross_tenant():
    for method, path, body in (
            ("POST", "/api/v1/conversations/%s/assign" % W.h_conv, {}),
            ("POST", "/api/v1/conversations/%s/resolve" % W.h_conv, None),
            ("POST", "/api/v1/conversations/%s/unassign" % W.h_conv, None),
            ("POST", "/api/v1/conversations/%s/reopen" % W.h_conv, None),
            ("GET", "/api/v1/channels/connections/%s/outbound" % W.tg, None),
            ("POST", "/api/v1/channels/connections/%s/test" % W.tg, None),
            ("POST", "/api/v1/conversations/%s/assign" % uuid.uuid4(), {})):
        got, answer = api(method, path, body, W.eve)
        assert got == 404 and answer["error"]["code"] == "not_found", (path, answer)
    assert api("GET", "/api/v1/conversations?channel=telegram", token=W.eve,
               status=200)[1]["data"] == []
    got, answer = api("GET", "/api/v1/conversations?status=closed", token=W.ada)
    assert got == 400, answer


def c_websocket_live():
    # bea, a member of ada's tenant, joins by invite
    _, invite = api("POST", "/api/v1/auth/invites", {"email": "bea-%s@delivery.test" % RUN,
                                                     "role": "member"}, W.ada, 201)
    _, bea = api("POST", "/api/v1/auth/register", {
        "email": "bea-%s@delivery.test" % RUN, "password": PASSWORD,
        "invite_token": invite["token"]}, status=201)
    W.bea, W.bea_id = bea["access_token"], bea["user"]["id"]
    _, conv = api("POST", "/api/v1/conversations", {"agent_id": W.agent, "title": "Live"},
                  W.ada, 201)
    # ada on edge 1, bea on edge 2 (the other replica), eve (another tenant) on edge 2
    ada, bea, eve = (WebSocket(W.port, W.ada), WebSocket(W.port2, W.bea),
                     WebSocket(W.port2, W.eve))
    try:
        ada.send({"type": "subscribe", "id": "s1", "conversation_id": conv["id"]})
        got = ada.next("subscribed", lambda m: m.get("id") == "s1")
        assert got["type"] == "subscribed" and got["presence"] == [W.ada_id], got
        bea.send({"type": "subscribe", "id": "s2", "conversation_id": conv["id"]})
        got = bea.next("subscribed", lambda m: m.get("id") == "s2")
        assert got["type"] == "subscribed" and W.bea_id in got["presence"], got
        # presence crosses replicas: ada hears bea arrive
        ada.next("bea's presence", lambda m: m.get("type") == "presence"
                  and m["user_id"] == W.bea_id and m["online"] is True)
        # another tenant cannot watch it: the usual not_found
        eve.send({"type": "subscribe", "id": "s3", "conversation_id": conv["id"]})
        got = eve.next("refused", lambda m: m.get("id") == "s3")
        assert got["type"] == "error" and got["error"]["code"] == "not_found", got
        # bea types; ada (on the other edge) sees it, bea does not hear herself
        bea.send({"type": "typing", "conversation_id": conv["id"], "typing": True})
        got = ada.next("typing", lambda m: m.get("type") == "typing")
        assert got["user_id"] == W.bea_id and got["typing"] is True, got
        # bea sends a message over HTTP; ada watches the reply stream in live
        bea.send({"type": "subscribe", "id": "s4", "scope": "tenant"})
        bea.next("tenant", lambda m: m.get("id") == "s4" and m["type"] == "subscribed")
        api("POST", "/api/v1/conversations/%s/messages" % conv["id"],
            {"content": "live over the bus"}, W.bea, 200)
        done = ada.next("the reply completed", lambda m: m.get("type") == "event"
                         and m.get("event") == "message.completed")
        assert done["conversation_id"] == conv["id"], done
        assert done["data"]["content"] == "Echo: live over the bus", done
        events = [m["event"] for m in ada.inbox if m.get("type") == "event"
                  and m.get("event")]
        assert events[0] == "message.created" and "message.delta" in events, events
        deltas = "".join(m["data"]["delta"] for m in ada.inbox
                         if m.get("event") == "message.delta")
        assert deltas == "Echo: live over the bus", deltas
        # the tenant's durable events reach bea: the new message, a handoff change
        bea.next("chat.message.created", lambda m: m.get("topic") == "chat.message.created"
                  and m.get("conversation_id") == conv["id"])
        api("POST", "/api/v1/conversations/%s/resolve" % conv["id"], None, W.ada, 200)
        got = bea.next("resolved", lambda m: m.get("topic") == "chat.conversation.resolved")
        assert got["data"]["status"] == "resolved" and got["conversation_id"] == conv["id"]
        assert not [m for m in eve.inbox if m.get("type") == "event"], eve.inbox
        # a member reads the deliveries but cannot test (or change) connections
        api("GET", "/api/v1/channels/connections/%s/outbound" % W.tg, None, W.bea, 200)
        got, answer = api("POST", "/api/v1/channels/connections/%s/test" % W.tg, None,
                          W.bea)
        assert got == 403 and answer["error"]["code"] == "forbidden", answer
        # and can take a conversation over the WebSocket, like over HTTP
        bea.send({"type": "request", "id": "r1", "method": "POST",
                  "path": "/api/v1/conversations/%s/assign" % W.h_conv,
                  "body": {"assignee_id": W.bea_id}})
        got = bea.next("assigned", lambda m: m.get("id") == "r1")
        assert got["type"] == "final" and got["data"]["assignee_id"] == W.bea_id, got
        bea.send({"type": "request", "id": "r2", "method": "POST",
                  "path": "/api/v1/conversations/%s/messages" % W.h_conv,
                  "body": {"content": "Bea over the WebSocket"}})
        got = bea.next("sent", lambda m: m.get("id") == "r2" and m["type"] != "partial")
        assert got["type"] == "final", got
        wait_for("bea's reply out", lambda: sent("telegram", "Bea over the WebSocket"))
        # bea leaves: ada is told
        bea.close()
        ada.next("bea left", lambda m: m.get("type") == "presence"
                  and m["user_id"] == W.bea_id and m["online"] is False)
        ada.send({"type": "unsubscribe", "id": "u1", "conversation_id": conv["id"]})
        assert ada.next("unsubscribed", lambda m: m.get("id") == "u1")["type"] \
            == "unsubscribed"
        ada.send({"type": "typing", "id": "t2", "conversation_id": conv["id"]})
        assert ada.next("refused", lambda m: m.get("id") == "t2")["type"] == "error"
    finally:
        for ws in (ada, bea, eve):
            ws.close()


def c_sigkill():
    # the turn takes a while; channels dies right after the answer, mid-processing
    wamid = "wamid.KILL-%s" % RUN
    assert whatsapp("[[delay_ms:150]] survive the kill", wamid, wa_id=WA_KILL,
                    name="Kim")["stored"] == 1
    time.sleep(0.3)
    W.channels.send_signal(signal.SIGKILL)
    W.channels.wait(timeout=10)
    W.channels = start("channels-2", [BIN + "/chorus-channels"], W.environment)
    wait_for("the reply after the restart", lambda: sent("whatsapp", "survive the kill"),
             60)
    time.sleep(2.0)
    replies = sent("whatsapp", "survive the kill")
    assert len(replies) == 1, replies
    assert wait_for("done", lambda: [r for r in inbox(W.wa) if r["external_id"] == wamid
                                     and r["status"] == "done"])


# ---------------------------------------------------------------------------------


def main():
    if not DATABASE or not REDIS:
        print("CHORUS_TEST_DATABASE_URL and CHORUS_TEST_REDIS_URL are needed "
              "(run through tools/chorus test)")
        return 1
    llm, llm_port = llm_standin.spawn()
    platforms, W.standin_port = channels_standin.spawn(
        ["--token", TOKEN, "--token", "7000000001:" + TOKEN])
    W.llm = "http://127.0.0.1:%d" % llm_port
    graph = "http://127.0.0.1:%d/v21.0" % W.standin_port
    base, W.port, W.port2 = free_port(3), free_port(), free_port()
    environment = dict(os.environ)
    environment.update({
        "CHORUS_BROKERS": "tcp://127.0.0.1:%d" % base,
        "CHORUS_BROKER_BIND": "tcp://127.0.0.1:%d" % base,
        "CHORUS_DATABASE_URL": DATABASE, "CHORUS_REDIS_URL": REDIS,
        "CHORUS_SQL_DIR": SRC + "/schemas/sql", "CHORUS_LOG_LEVEL": "warn",
        "CHORUS_SECRET_KEY": base64.b64encode(b"e2e-delivery-test-secret-key-012").decode(),
        "CHORUS_JWT_SECRET": "e2e-delivery-test-jwt-secret-0123456789ab",
        "CHORUS_PUBLIC_URL": "http://127.0.0.1:%d" % W.port, "CHORUS_DATABASE_POOL": "4",
        "CHORUS_EDGE_PORT": str(W.port), "CHORUS_EDGE_READY_INTERVAL_MS": "200",
        "CHORUS_EDGE_RATE_USER_PER_MIN": "100000", "CHORUS_EDGE_RATE_IP_PER_MIN": "100000",
        "CHORUS_LOGIN_IP_FAILURES": "1000",
        "CHORUS_WHATSAPP_API_URL": graph, "CHORUS_MESSENGER_API_URL": graph,
        "CHORUS_INSTAGRAM_API_URL": graph,
        "CHORUS_TELEGRAM_API_URL": "http://127.0.0.1:%d" % W.standin_port,
        "CHORUS_SLACK_API_URL": "http://127.0.0.1:%d/api" % W.standin_port,
        "CHORUS_CHANNELS_POLL_MS": "100", "CHORUS_CHANNELS_LEASE_S": "3",
        "CHORUS_CHANNELS_SEND_ATTEMPTS": "3"})
    for name in ("CHORUS_JWT_PREVIOUS_SECRETS", "CHORUS_JWT_ISSUER", "CHORUS_JWT_AUDIENCE",
                 "CHORUS_LLM_PROVIDER", "CHORUS_LLM_BASE_URL", "CHORUS_LLM_API_KEY"):
        environment.pop(name, None)
    W.environment = environment
    processes = [start(name, [BIN + "/chorus-" + name], environment)
                 for name in ("broker", "auth", "agents", "chat")]
    W.channels = start("channels", [BIN + "/chorus-channels"], environment)
    edge = start("edge", [BIN + "/chorus-edge"], environment)
    second = dict(environment, CHORUS_EDGE_PORT=str(W.port2))
    processes += [edge, start("edge-2", [BIN + "/chorus-edge"], second)]
    try:
        def ready():
            if call("GET", "/readyz")[0] != 200:
                return False
            conn = http.client.HTTPConnection("127.0.0.1", W.port2, timeout=5)
            conn.request("GET", "/readyz")
            second = conn.getresponse().status
            conn.close()
            return second == 200 and all(
                call("GET", "/api/v1/services/%s/ping" % s)[0] == 200
                for s in ("auth", "agents", "chat", "channels"))
        wait_for("the stack", ready, 60)
        check("tenants, the agent on the LLM stand-in, four connections", c_setup)
        check("WhatsApp: answered on the Cloud API once, delivered", c_whatsapp)
        check("Telegram: a long reply split at 4096, in order", c_telegram_long)
        check("Slack: mention answered in its thread, own bot ignored", c_slack_thread)
        check("Messenger and Instagram: answered on the Send API", c_messenger)
        check("handoff: notice, silence, member replies, resolve", c_handoff)
        check("a 429 then success; a permanent failure stored", c_faults)
        check("connections.test against the platforms", c_connection_test)
        check("another tenant: the same 404s", c_cross_tenant)
        check("WebSocket: live replies, typing, presence, two edges", c_websocket_live)
        check("channels SIGKILLed mid-processing: answered once", c_sigkill)
        for proc in [W.channels] + list(reversed(processes)):
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, proc.name
    except Exception:
        try:
            for r in standin("/_standin/requests")["requests"][-12:]:
                print("standin: %s %s %s %s %r" % (r["platform"], r["method"], r["path"],
                                                   r["status"], (r["text"] or "")[:80]))
            for connection in ("wa", "tg", "sl", "ms"):
                if hasattr(W, connection):
                    for row in inbox(getattr(W, connection))[:5]:
                        print("inbox %s: %s %s %r" % (connection, row["status"],
                                                      row["last_error"], row["text"][:60]))
        except Exception as e:  # the report must not hide the failure
            print("(no stand-in report: %s)" % e)
        for name in sorted(os.listdir(WORK)):
            with open(os.path.join(WORK, name), errors="replace") as f:
                print("---- %s\n%s" % (name, f.read()[-4000:]))
        raise
    finally:
        for proc in processes + [W.channels]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc in (llm, platforms):
            proc.stdin.close()
            proc.wait(5)
    shutil.rmtree(WORK, ignore_errors=True)
    print("all delivery tests passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
