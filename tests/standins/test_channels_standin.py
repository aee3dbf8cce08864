#!/usr/bin/python3
"""Self-test of tests/standins/channels_standin.py.

    test_channels_standin.py

Starts the stand-in on an ephemeral port and checks, over real sockets, every
platform's success and error shapes and headers, the text limits, each marker,
fail_first counting and reset, /_standin/requests with wait, the tokens options, and
the WhatsApp status callback (received by a local http.server here, which checks the
signature itself). Exits 1 when a check fails.
"""
import asyncio
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import channels_standin  # noqa: E402

TOKEN = "standin-token"
BEARER = {"Authorization": "Bearer " + TOKEN}
META_CT = "application/json; charset=UTF-8"
SLACK_CT = "application/json; charset=utf-8"
PORT = None
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


# ---------------------------------------------------------------------------------
# small HTTP helpers

def call(method, path, body=None, headers=None, form=None, port=None, timeout=15):
    """One request on its own connection; a dict body goes as JSON, form as
    x-www-form-urlencoded. Returns (status, lower-case headers, JSON or bytes)."""
    hdrs = dict(headers or {})
    data = None
    if form is not None:
        data = urlencode(form).encode()
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    elif isinstance(body, (dict, list)):
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    elif body is not None:
        data = body
    conn = http.client.HTTPConnection("127.0.0.1", port or PORT, timeout=timeout)
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    out = resp.read()
    conn.close()
    h = {k.lower(): v for k, v in resp.getheaders()}
    try:
        out = json.loads(out)
    except ValueError:
        pass
    return resp.status, h, out


def wa(text, to="+1 (555) 010-2030", phone="106540352242922", token=TOKEN, extra=None):
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"preview_url": False, "body": text}}
    body.update(extra or {})
    return call("POST", "/v21.0/%s/messages" % phone, body,
                {"Authorization": "Bearer " + token} if token else {})


def fb(text, page="104857600000001", psid="6543210987654321", kind="RESPONSE",
       query=""):
    body = {"recipient": {"id": psid}, "message": {"text": text}}
    if kind:
        body["messaging_type"] = kind
    return call("POST", "/v21.0/%s/messages%s" % (page, query), body, BEARER)


def tg(text, chat_id=424242, token=TOKEN, extra=None):
    body = {"chat_id": chat_id, "text": text}
    body.update(extra or {})
    return call("POST", "/bot%s/sendMessage" % token, body)


def slack(text, channel="C0123ABCDEF", headers=None, extra=None):
    body = {"channel": channel, "text": text}
    body.update(extra or {})
    hdrs = {"Content-Type": SLACK_CT}
    hdrs.update(BEARER if headers is None else headers)
    return call("POST", "/api/chat.postMessage", body, hdrs)


def requests(query="wait=5"):
    _, _, out = call("GET", "/_standin/requests?" + query)
    return out["requests"]


def last(platform=None):
    return requests("wait=5" + ("&platform=" + platform if platform else ""))[-1]


def meta_error(out):
    err = out["error"]
    assert err["type"] in ("OAuthException", "GraphMethodException"), err
    assert err["fbtrace_id"].startswith("A"), err
    return err


# ---------------------------------------------------------------------------------
# WhatsApp Cloud API

@check
def whatsapp_send():
    st, h, out = wa("hello there")
    assert st == 200 and h["content-type"] == META_CT, (st, h)
    assert h["facebook-api-version"] == "v21.0" and int(h["content-length"]) > 0
    assert h["connection"] == "keep-alive"
    assert set(out) == {"messaging_product", "contacts", "messages"}
    assert out["messaging_product"] == "whatsapp"
    assert out["contacts"] == [{"input": "+1 (555) 010-2030", "wa_id": "15550102030"}]
    wamid = out["messages"][0]["id"]
    assert re.match(r"^wamid\.[A-Za-z0-9+/]{20,}$", wamid), wamid
    _, _, again = wa("hello there", extra={"recipient_type": "individual"})
    assert again["messages"][0]["id"] != wamid
    st, _, out = call("POST", "/v17.0/106540352242922/messages",
                      {"messaging_product": "whatsapp", "to": "15550001",
                       "text": {"body": "type defaults to text"}}, BEARER)
    assert st == 200 and out["contacts"][0]["wa_id"] == "15550001"
    rec = last("whatsapp")
    assert rec["kind"] == "send" and rec["text"] == "type defaults to text"
    assert rec["recipient"] == "15550001" and rec["status"] == 200
    assert rec["outcome"] == "answered" and rec["response"] == out
    assert rec["headers"]["authorization"] == "Bearer " + TOKEN
    assert rec["headers"]["content-type"] == "application/json"
    assert rec["body"]["text"]["body"] == "type defaults to text"


@check
def whatsapp_errors():
    st, h, out = wa("x", token=None)
    err = meta_error(out)
    assert st == 401 and err["code"] == 190 and err["type"] == "OAuthException"
    assert h["www-authenticate"].startswith('OAuth "Facebook Platform" "invalid_token"')
    st, _, out = wa("x", token="wrong")
    err = meta_error(out)
    assert st == 401 and err["code"] == 190
    assert err["message"] == "Invalid OAuth access token - Cannot parse access token"
    st, _, out = wa("x", phone="missing-42")
    err = meta_error(out)
    assert st == 400 and err["code"] == 100 and err["error_subcode"] == 33
    assert err["type"] == "GraphMethodException"
    assert err["message"].startswith("Unsupported post request. Object with ID "
                                     "'missing-42' does not exist")
    st, _, out = wa("a" * 4096)
    assert st == 200, out
    st, h, out = wa("a" * 4097)
    err = meta_error(out)
    assert st == 400 and h["content-type"] == META_CT and err["code"] == 100
    assert err["message"] == ("(#100) Param text['body'] must be at most 4096 "
                              "characters long.")
    st, _, out = wa("é" * 4096)  # characters, not bytes
    assert st == 200, out
    st, _, out = wa("")
    assert st == 400 and "text['body'] is required" in meta_error(out)["message"]
    st, _, out = wa("x", to="")
    assert st == 400
    assert meta_error(out)["message"] == "(#100) The parameter to is required."
    st, _, out = wa("x", extra={"messaging_product": "messenger"})
    err = meta_error(out)
    assert st == 400 and err["code"] == 100
    assert err["error_data"]["messaging_product"] == "whatsapp"
    st, _, out = wa("x", extra={"type": "image"})
    assert st == 400 and meta_error(out)["code"] == 100
    st, _, out = call("POST", "/v21.0/1/messages?access_token=" + TOKEN,
                      {"messaging_product": "whatsapp", "to": "1", "text": {"body": "q"}})
    assert st == 200, out


@check
def whatsapp_phone_number():
    st, h, out = call("GET", "/v21.0/106540352242922", headers=BEARER)
    assert st == 200 and h["content-type"] == META_CT
    assert out == {"verified_name": "Stand-in Business",
                   "display_phone_number": "+1 555-0100", "id": "106540352242922",
                   "quality_rating": "GREEN"}, out
    assert last()["platform"] == "whatsapp" and last()["kind"] == "info"
    st, _, out = call("GET", "/v21.0/106540352242922")
    assert st == 401 and out["error"]["code"] == 190
    st, _, out = call("GET", "/v21.0/missing7", headers=BEARER)
    assert st == 400 and out["error"]["error_subcode"] == 33
    assert out["error"]["message"].startswith("Unsupported get request")


# ---------------------------------------------------------------------------------
# Messenger and Instagram

@check
def messenger_send():
    st, h, out = fb("hi from the page")
    assert st == 200 and h["content-type"] == META_CT
    assert set(out) == {"recipient_id", "message_id"}
    assert out["recipient_id"] == "6543210987654321"
    assert out["message_id"].startswith("m_") and len(out["message_id"]) > 40
    rec = last()
    assert rec["platform"] == "messenger" and rec["text"] == "hi from the page"
    st, _, again = call("POST", "/v21.0/me/messages?access_token=" + TOKEN,
                        {"recipient": {"id": "77"}, "messaging_type": "UPDATE",
                         "message": {"text": "me path"}})
    assert st == 200 and again["recipient_id"] == "77"
    assert again["message_id"] != out["message_id"]
    rec = last()
    assert rec["platform"] == "messenger" and rec["query"]["access_token"] == [TOKEN]
    st, _, out = call("POST", "/v21.0/104857600000001/messages", headers=BEARER,
                      form={"recipient": json.dumps({"id": "88"}),
                            "messaging_type": "RESPONSE",
                            "message": json.dumps({"text": "as form"})})
    assert st == 200 and out["recipient_id"] == "88"
    assert last()["body"]["recipient"] == '{"id": "88"}'
    st, _, out = fb("a" * 2000)
    assert st == 200, out
    st, _, out = fb("a" * 2001)
    err = meta_error(out)
    assert st == 400 and err["code"] == 100
    assert err["message"] == ("(#100) Length of param message[text] must be less than "
                              "or equal to 2000")
    st, _, out = fb("x", kind=None)
    assert st == 400 and "messaging_type" in meta_error(out)["message"]
    st, _, out = fb("x", kind="PROMO")
    assert st == 400 and 'got "PROMO"' in meta_error(out)["message"]
    st, _, out = fb("x", psid="missing-user")
    err = meta_error(out)
    assert st == 400 and err["code"] == 100 and err["error_subcode"] == 2018001
    st, _, out = fb("")
    assert st == 400 and meta_error(out)["code"] == 100
    st, _, out = call("POST", "/v21.0/1/messages", {"recipient": {"id": "1"},
                                                    "messaging_type": "RESPONSE",
                                                    "message": {"text": "x"}},
                      {"Authorization": "Bearer nope"})
    assert st == 401 and out["error"]["code"] == 190


@check
def instagram_send():
    st, _, out = fb("ig hello", page="ig17841400000000", kind=None)
    assert st == 200 and out["recipient_id"] == "6543210987654321"
    assert last()["platform"] == "instagram"
    st, _, out = fb("é" * 500, page="IG1", kind=None)  # 1000 bytes
    assert st == 200, out
    st, _, out = fb("é" * 501, page="IG1", kind=None)
    assert st == 400 and meta_error(out)["message"].endswith("equal to 1000")
    st, _, out = fb("a" * 1001, page="ig1")
    assert st == 400
    st, _, out = fb("via me", page="me", kind=None, query="?platform=instagram")
    assert st == 200 and last()["platform"] == "instagram"


@check
def meta_nodes():
    st, h, out = call("GET", "/v21.0/me?fields=id,name", headers=BEARER)
    assert st == 200 and h["content-type"] == META_CT
    assert out == {"id": "1", "name": "Stand-in Page"}, out
    assert last()["platform"] == "messenger" and last()["kind"] == "info"
    st, _, out = call("GET", "/v21.0/me?access_token=" + TOKEN)
    assert st == 200 and out == {"id": "1", "name": "Stand-in Page"}
    st, _, out = call("GET", "/v21.0/104857600000001?fields=id,name", headers=BEARER)
    assert out == {"id": "104857600000001", "name": "Stand-in Page"}, out
    st, _, out = call("GET", "/v21.0/1065?fields=display_phone_number,verified_name",
                      headers=BEARER)
    assert out == {"display_phone_number": "+1 555-0100",
                   "verified_name": "Stand-in Business"}
    assert last()["platform"] == "whatsapp"
    st, _, out = call("GET", "/v21.0/ig9?fields=id,username", headers=BEARER)
    assert out == {"id": "ig9", "username": "standin_ig"}
    assert last()["platform"] == "instagram"
    st, _, out = call("GET", "/v21.0/me?fields=id,colour", headers=BEARER)
    assert st == 400 and "nonexisting field (colour)" in meta_error(out)["message"]
    st, _, out = call("GET", "/v21.0/me", headers={"Authorization": "Bearer bad"})
    assert st == 401 and out["error"]["code"] == 190
    st, _, out = call("DELETE", "/v21.0/me", headers=BEARER)
    assert st == 404


# ---------------------------------------------------------------------------------
# Telegram

@check
def telegram_send():
    st, h, out = tg("one", chat_id=90001)
    assert st == 200 and h["content-type"] == "application/json", h
    res = out["result"]
    assert out["ok"] is True and res["message_id"] == 1 and res["text"] == "one"
    assert res["from"] == {"id": 7000000001, "is_bot": True, "first_name": "Stand-in Bot",
                           "username": "standin_bot"}
    assert res["chat"] == {"id": 90001, "first_name": "Stand-in User", "type": "private"}
    assert abs(res["date"] - time.time()) < 5 and isinstance(res["date"], int)
    assert tg("two", chat_id="90001")[2]["result"]["message_id"] == 2
    assert tg("other", chat_id=90002)[2]["result"]["message_id"] == 1
    st, _, out = call("POST", "/bot%s/sendMessage" % TOKEN,
                      form={"chat_id": "90001", "text": "form three",
                            "reply_parameters": json.dumps({"message_id": 2})})
    res = out["result"]
    assert st == 200 and res["message_id"] == 3 and res["chat"]["id"] == 90001
    assert res["reply_to_message"]["message_id"] == 2
    assert last()["body"] == {"chat_id": "90001", "text": "form three",
                              "reply_parameters": '{"message_id": 2}'}
    st, _, out = call("GET", "/bot%s/sendMessage?chat_id=90001&text=query+four" % TOKEN)
    assert st == 200 and out["result"]["message_id"] == 4
    assert out["result"]["text"] == "query four"
    _, _, out = tg("reply", chat_id=-1001234567890,
                   extra={"reply_to_message_id": 7, "message_thread_id": 3,
                          "parse_mode": "HTML"})
    res = out["result"]
    assert res["chat"]["type"] == "supergroup" and res["message_thread_id"] == 3
    assert res["reply_to_message"]["message_id"] == 7
    assert tg("g", chat_id=-4567)[2]["result"]["chat"]["type"] == "group"
    _, _, out = tg("news", chat_id="@standin_news")
    res = out["result"]
    assert res["chat"]["type"] == "channel" and res["chat"]["username"] == "standin_news"
    assert "from" not in res and res["sender_chat"]["id"] == res["chat"]["id"]
    assert str(res["chat"]["id"]).startswith("-100")
    _, _, out = tg("bot id", token="123456:ABC-def")
    assert out["ok"] is False  # not a valid token by default
    rec = last("telegram")
    assert rec["kind"] == "send" and rec["status"] == 401
    st, _, out = tg("a" * 4096, chat_id=90003)
    assert st == 200, out


@check
def telegram_errors_and_get_me():
    st, h, out = tg("x", token="wrong")
    assert st == 401 and out == {"ok": False, "error_code": 401,
                                 "description": "Unauthorized"}
    assert h["content-type"] == "application/json"
    st, _, out = call("POST", "/bot/sendMessage", {"chat_id": 1, "text": "x"})
    assert st == 401
    st, _, out = tg("a" * 4097)
    assert st == 400 and out == {"ok": False, "error_code": 400,
                                 "description": "Bad Request: message is too long"}
    st, _, out = tg("")
    assert st == 400 and out["description"] == "Bad Request: message text is empty"
    st, _, out = tg("   ")
    assert st == 400 and out["description"] == "Bad Request: message text is empty"
    st, _, out = tg("x", chat_id="missing-1")
    assert st == 400 and out["description"] == "Bad Request: chat not found"
    st, _, out = call("POST", "/bot%s/sendMessage" % TOKEN, {"text": "no chat"})
    assert st == 400 and out["description"] == "Bad Request: chat_id is empty"
    st, _, out = tg("x", extra={"parse_mode": "BBCode"})
    assert st == 400 and out["description"] == "Bad Request: unsupported parse_mode"
    st, _, out = call("POST", "/bot%s/sendSticker" % TOKEN, {"chat_id": 1})
    assert st == 404 and out == {"ok": False, "error_code": 404,
                                 "description": "Not Found"}
    me = {"id": 7000000001, "is_bot": True, "first_name": "Stand-in Bot",
          "username": "standin_bot", "can_join_groups": True,
          "can_read_all_group_messages": False, "supports_inline_queries": False}
    for method in ("GET", "POST"):
        st, h, out = call(method, "/bot%s/getMe" % TOKEN)
        assert st == 200 and out == {"ok": True, "result": me}, out
        assert h["content-type"] == "application/json"
    assert last("telegram")["kind"] == "info"
    st, _, out = call("GET", "/botnope/getMe")
    assert st == 401 and out["description"] == "Unauthorized"


# ---------------------------------------------------------------------------------
# Slack

@check
def slack_post_message():
    st, h, out = slack("hello slack")
    assert st == 200 and h["content-type"] == SLACK_CT and "x-slack-req-id" in h
    assert out["ok"] is True and out["channel"] == "C0123ABCDEF"
    assert re.match(r"^\d{10}\.\d{6}$", out["ts"]), out["ts"]
    msg = out["message"]
    assert msg["type"] == "message" and msg["text"] == "hello slack"
    assert msg["user"] == "U0STANDIN" and msg["bot_id"] == "B0STANDIN"
    assert msg["ts"] == out["ts"] and "thread_ts" not in msg and "warning" not in out
    ts = [slack("t%d" % i)[2]["ts"] for i in range(20)]
    assert len(set(ts)) == 20 and ts == sorted(ts, key=float)
    _, _, out = slack("in a thread", extra={"thread_ts": out["ts"]})
    assert out["message"]["thread_ts"] == msg["ts"]
    st, _, out = call("POST", "/api/chat.postMessage",
                      form={"token": TOKEN, "channel": "D0DM", "text": "as form"})
    assert st == 200 and out["ok"] and out["channel"] == "D0DM" and "warning" not in out
    assert last("slack")["body"]["token"] == TOKEN
    st, _, out = call("POST", "/api/chat.postMessage", {"channel": "C1AB", "text": "x"},
                      {"Authorization": "Bearer " + TOKEN,
                       "Content-Type": "application/json"})
    assert out["ok"] and out["warning"] == "missing_charset"
    assert out["response_metadata"] == {"warnings": ["missing_charset"]}
    _, _, out = slack("to a name", channel="#general")
    assert re.match(r"^C[0-9A-F]{10}$", out["channel"]), out
    assert slack("again", channel="#general")[2]["channel"] == out["channel"]
    _, _, out = slack("to a user", channel="U0AAA")
    assert out["channel"].startswith("D")
    _, _, out = slack("", extra={"blocks": [{"type": "section"}]})
    assert out["ok"] and out["message"]["blocks"] == [{"type": "section"}]
    _, _, out = slack("a" * 40000)
    assert out["ok"] is True


@check
def slack_errors_and_auth_test():
    for hdrs, error in (({}, "not_authed"), ({"Authorization": "Bearer xoxb-no"},
                                             "invalid_auth")):
        st, h, out = slack("x", headers=hdrs)
        assert st == 200 and out == {"ok": False, "error": error}, out
        assert h["content-type"] == SLACK_CT
    st, _, out = slack("x", channel="missing-chan")
    assert st == 200 and out == {"ok": False, "error": "channel_not_found"}
    st, _, out = slack("x", channel="")
    assert out == {"ok": False, "error": "channel_not_found"}
    st, _, out = slack("")
    assert st == 200 and out == {"ok": False, "error": "no_text"}
    st, _, out = slack("a" * 40001)
    assert st == 200 and out == {"ok": False, "error": "msg_too_long"}
    st, _, out = call("POST", "/api/chat.delete", {"channel": "C1"}, BEARER)
    assert st == 404 and out["error"] == "unknown_method"
    st, _, out = call("POST", "/api/chat.postMessage", {"channel": "C1", "text": "x",
                                                        "token": TOKEN},
                      {"Content-Type": SLACK_CT})
    assert out == {"ok": False, "error": "not_authed"}  # JSON bodies carry no token
    expect = {"ok": True, "url": "https://standin.slack.com/", "team": "Stand-in",
              "user": "standinbot", "team_id": "T0STANDIN", "user_id": "U0STANDIN",
              "bot_id": "B0STANDIN"}
    for method in ("GET", "POST"):
        st, h, out = call(method, "/api/auth.test", headers=BEARER)
        assert st == 200 and out == expect and h["content-type"] == SLACK_CT, out
    st, _, out = call("POST", "/api/auth.test", form={"token": TOKEN})
    assert out == expect
    st, _, out = call("GET", "/api/auth.test")
    assert out == {"ok": False, "error": "not_authed"}
    assert last("slack")["kind"] == "info"


# ---------------------------------------------------------------------------------
# Markers

@check
def marker_status():
    st, h, out = wa("x [[status:429]]")
    err = meta_error(out)
    assert st == 429 and h["retry-after"] == "1" and err["code"] == 130429
    assert err["message"] == "(#130429) Rate limit hit" and h["content-type"] == META_CT
    st, h, out = fb("x [[status:429 retry_after:7]]")
    assert st == 429 and h["retry-after"] == "7" and meta_error(out)["code"] == 613
    st, h, out = wa("x [[status:503]]")
    err = meta_error(out)
    assert st == 503 and err["code"] == 2 and err["is_transient"] is True
    assert "retry-after" not in h
    st, _, out = wa("x [[status:500]]")
    assert st == 500 and meta_error(out)["code"] == 131000
    st, _, out = fb("x [[status:500]]")
    assert st == 500 and meta_error(out)["code"] == 1
    st, _, out = wa("x [[status:401]]")
    assert st == 401 and meta_error(out)["code"] == 190
    st, h, out = tg("x [[status:429 retry_after:3]]")
    assert st == 429 and h["retry-after"] == "3"
    assert out == {"ok": False, "error_code": 429,
                   "description": "Too Many Requests: retry after 3",
                   "parameters": {"retry_after": 3}}, out
    st, _, out = tg("x [[status:502]]")
    assert st == 502 and out == {"ok": False, "error_code": 502,
                                 "description": "Bad Gateway"}
    st, h, out = slack("x [[status:429]]")
    assert st == 429 and h["retry-after"] == "1" and h["content-type"] == SLACK_CT
    assert out == {"ok": False, "error": "ratelimited"}
    st, _, out = slack("x [[status:500]]")
    assert st == 500 and out == {"ok": False, "error": "internal_error"}
    st, h, out = slack("x [[retry_after:2]]")  # alone: a 429
    assert st == 429 and h["retry-after"] == "2"
    st, h, out = wa("x [[status:503 retry_after:4]]")
    assert st == 503 and h["retry-after"] == "4"
    rec = last("whatsapp")
    assert rec["markers"] == {"status": "503", "retry_after": "4"}
    assert rec["text"] == "x [[status:503 retry_after:4]]" and rec["status"] == 503
    st, _, out = wa("x [[status:200]]")
    assert st == 200


@check
def marker_permanent():
    st, _, out = wa("gone [[permanent]]")
    err = meta_error(out)
    assert st == 400 and err["code"] == 131026
    assert err["message"] == "(#131026) Message undeliverable"
    st, _, out = fb("gone [[permanent]]")
    err = meta_error(out)
    assert st == 400 and err["code"] == 551 and err["error_subcode"] == 1545041
    assert "This person isn't available right now" in err["message"]
    st, _, out = tg("gone [[permanent]]")
    assert st == 403 and out == {"ok": False, "error_code": 403,
                                 "description": "Forbidden: bot was blocked by the user"}
    st, _, out = slack("gone [[permanent]]")
    assert st == 200 and out == {"ok": False, "error": "channel_not_found"}


@check
def marker_fail_first():
    text = "flaky [[fail_first:2]]"
    assert wa(text)[0] == 500 and wa(text)[0] == 500 and wa(text)[0] == 200
    assert wa(text)[0] == 200
    attempts = [r["attempt"] for r in requests("platform=whatsapp")
                if r["text"] == text]
    assert attempts == [1, 2, 3, 4], attempts
    # counted per recipient and per exact text
    assert wa(text, to="999")[0] == 500
    assert wa(text + " ")[0] == 500
    # with a status and retry_after, on Telegram
    text = "tg flaky [[fail_first:1 status:429 retry_after:2]]"
    st, h, out = tg(text)
    assert st == 429 and out["parameters"]["retry_after"] == 2
    assert tg(text)[0] == 200
    # permanent only for the first attempt
    assert slack("sl [[fail_first:1 permanent]]")[2]["ok"] is False
    assert slack("sl [[fail_first:1 permanent]]")[2]["ok"] is True
    # reset clears the counts and the log
    st, _, out = call("POST", "/_standin/reset")
    assert st == 200 and out == {"ok": True}
    assert requests("wait=0") == []
    assert tg(text)[0] == 429 and last()["attempt"] == 1


@check
def marker_delay():
    t0 = time.monotonic()
    st, _, out = tg("slow [[delay_ms:400]]")
    took = time.monotonic() - t0
    assert st == 200 and 0.35 <= took < 3, took
    t0 = time.monotonic()
    st, _, _ = wa("slow fail [[delay_ms:300 status:503]]")
    assert st == 503 and time.monotonic() - t0 >= 0.25
    # the client leaves during the delay: the message was sent, the record says so
    try:
        call("POST", "/api/chat.postMessage",
             {"channel": "C1AB", "text": "gives up [[delay_ms:3000]]"},
             {"Authorization": "Bearer " + TOKEN, "Content-Type": SLACK_CT}, timeout=0.3)
        raise AssertionError("answered before the delay")
    except socket.timeout:
        pass
    time.sleep(0.3)
    rec = last("slack")
    assert rec["outcome"] == "disconnected" and rec["status"] == 200, rec
    assert rec["response"]["ok"] is True


@check
def marker_hang():
    t0 = time.monotonic()
    try:
        call("POST", "/v21.0/1/messages",
             {"messaging_product": "whatsapp", "to": "1",
              "text": {"body": "never [[hang]]"}}, BEARER, timeout=0.5)
        raise AssertionError("a hang was answered")
    except socket.timeout:
        pass
    assert time.monotonic() - t0 < 2
    recs = requests("wait=5&platform=whatsapp")
    rec = recs[-1]
    assert rec["text"] == "never [[hang]]" and rec["status"] is None
    deadline = time.monotonic() + 3
    while rec["outcome"] != "disconnected" and time.monotonic() < deadline:
        time.sleep(0.05)
        rec = requests("platform=whatsapp")[-1]
    assert rec["outcome"] == "disconnected", rec
    # hang_ms: the stand-in closes the connection itself, without an answer
    s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
    body = json.dumps({"chat_id": 5, "text": "short hang [[hang hang_ms:200]]"}).encode()
    s.sendall(b"POST /bot%s/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (TOKEN.encode(), len(body), body))
    assert s.recv(100) == b""
    s.close()
    assert requests("platform=telegram")[-1]["outcome"] == "hang_timeout"


# ---------------------------------------------------------------------------------
# Control, HTTP details, tokens

@check
def requests_wait():
    call("POST", "/_standin/reset")
    t0 = time.monotonic()
    assert requests("wait=0.3") == [] and time.monotonic() - t0 >= 0.25
    threading.Timer(0.4, lambda: tg("later")).start()
    threading.Timer(0.8, lambda: slack("later too")).start()
    t0 = time.monotonic()
    recs = requests("wait=5&platform=slack")
    assert len(recs) == 1 and recs[0]["text"] == "later too", recs
    assert 0.6 < time.monotonic() - t0 < 4
    threading.Timer(0.3, lambda: [tg("n%d" % i) for i in range(3)]).start()
    recs = requests("wait=5&platform=telegram&count=4&kind=send")
    assert [r["text"] for r in recs] == ["later", "n0", "n1", "n2"], recs
    assert all(r["platform"] == "telegram" and r["outcome"] == "answered" for r in recs)
    assert set(recs[0]) == {"id", "platform", "kind", "method", "path", "query",
                            "headers", "body", "text", "recipient", "markers", "attempt",
                            "status", "response", "outcome", "started_at",
                            "answered_at", "ended_at"}
    assert recs[0]["started_at"] <= recs[0]["answered_at"] <= recs[0]["ended_at"]
    # a delayed request counts once it is answered
    threading.Thread(target=lambda: fb("delayed [[delay_ms:500]]")).start()
    time.sleep(0.1)
    _, _, out = call("GET", "/_standin/requests?platform=messenger")
    assert out["in_flight"] == 1 and out["requests"][0]["outcome"] is None
    recs = requests("wait=5&platform=messenger")
    assert recs[0]["outcome"] == "answered" and recs[0]["status"] == 200
    st, _, out = call("GET", "/_standin/health")
    assert st == 200 and out["ok"] is True
    st, _, out = call("GET", "/_standin/nothing")
    assert st == 404
    st, _, out = call("GET", "/nowhere")
    assert st == 404 and last()["platform"] == "none"


@check
def http_details():
    # keep-alive: the platforms one after the other on one connection
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
    for path, body in (("/bot%s/sendMessage" % TOKEN, {"chat_id": 1, "text": "ka"}),
                       ("/api/chat.postMessage", {"channel": "C1AB", "text": "ka"}),
                       ("/v21.0/1/messages", {"messaging_product": "whatsapp", "to": "1",
                                              "text": {"body": "ka"}}),
                       ("/bot%s/sendMessage" % TOKEN, {"chat_id": 1,
                                                       "text": "[[status:500]]"})):
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(BEARER)
        conn.request("POST", path, json.dumps(body), hdrs)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.version == 11 and resp.getheader("Connection") == "keep-alive"
        assert int(resp.getheader("Content-Length")) == len(data)
    conn.close()
    # Expect: 100-continue and a chunked request body
    body = json.dumps({"chat_id": 1, "text": "chunked"}).encode()
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"POST /bot%s/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked"
              b"\r\nConnection: close\r\n\r\n" % TOKEN.encode())
    assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    data = b""
    while True:
        got = s.recv(65536)
        if not got:
            break
        data += got
    s.close()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in data
    assert b'"text":"chunked"' in data
    # a request that is not HTTP
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"HELLO\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 400 ")
    s.close()


@check
def tokens_options():
    proc, port = channels_standin.spawn(["--token", "123456:AAA", "--token", "xoxb-1"])
    try:
        st, _, out = call("POST", "/bot123456:AAA/sendMessage",
                          {"chat_id": 1, "text": "x"}, port=port)
        assert st == 200 and out["result"]["from"]["id"] == 123456
        st, _, out = call("POST", "/api/chat.postMessage", {"channel": "C1", "text": "x"},
                          {"Authorization": "Bearer xoxb-1"}, port=port)
        assert out["ok"] is True
        st, _, _ = call("GET", "/v21.0/1", headers=BEARER, port=port)
        assert st == 401  # the default token is gone
    finally:
        proc.stdin.close()
        proc.wait(5)
    proc, port = channels_standin.spawn(["--any-token"])
    try:
        st, _, _ = call("GET", "/v21.0/1", headers={"Authorization": "Bearer any"},
                        port=port)
        assert st == 200
        st, _, _ = call("GET", "/v21.0/1", headers={"Authorization": "Bearer "},
                        port=port)
        assert st == 401
        proc.terminate()  # SIGTERM stops it too
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@check
def concurrent_sends():
    n = 150

    async def one(i):
        body = json.dumps({"chat_id": 5000 + i, "text": "c%d [[delay_ms:400]]" % i})
        reader, writer = await asyncio.open_connection("127.0.0.1", PORT)
        writer.write(b"POST /bot%s/sendMessage HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\nConnection: close"
                     b"\r\n\r\n%s" % (TOKEN.encode(), len(body), body.encode()))
        data = await reader.read()
        writer.close()
        return data.startswith(b"HTTP/1.1 200 ") and b'"message_id":1' in data

    async def all_of_them():
        return await asyncio.gather(*(one(i) for i in range(n)))

    t0 = time.monotonic()
    ok = asyncio.run(all_of_them())
    took = time.monotonic() - t0
    assert all(ok), ok.count(False)
    assert took < 10, took


class Webhook(http.server.BaseHTTPRequestHandler):
    """Receives WhatsApp status callbacks, checks the signature with its own HMAC
    and keeps what it got."""
    secret = b"app-secret-123"
    got = []

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        want = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(self.headers.get("X-Hub-Signature-256", ""), want)
        Webhook.got.append((dict(self.headers), raw, good))
        body = json.dumps({"ok": True} if good else {"error": "unauthorized"}).encode()
        self.send_response(200 if good else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@check
def whatsapp_status_callback():
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d/webhooks/whatsapp/abc" % hook.server_address[1]
    try:
        _, _, out = wa("to be delivered", to="16315551234", phone="106540352242922")
        wamid = out["messages"][0]["id"]
        st, h, out = call("POST", "/_standin/whatsapp/status",
                          {"url": url, "app_secret": "app-secret-123",
                           "status": "delivered"})
        assert st == 200 and out["status"] == 200
        assert json.loads(out["body"]) == {"ok": True}
        assert out["content_type"] == "application/json"
        headers, raw, good = Webhook.got[-1]
        assert good and headers["Content-Type"] == "application/json"
        assert headers["X-Hub-Signature"] == "sha1=" + hmac.new(
            b"app-secret-123", raw, hashlib.sha1).hexdigest()
        sent = json.loads(raw)
        assert sent == out["sent"]
        assert raw == json.dumps(sent, separators=(",", ":")).encode()
        assert sent["object"] == "whatsapp_business_account"
        entry = sent["entry"][0]
        change = entry["changes"][0]
        assert change["field"] == "messages" and entry["id"]
        value = change["value"]
        assert value["messaging_product"] == "whatsapp"
        assert value["metadata"] == {"display_phone_number": "15550100",
                                     "phone_number_id": "106540352242922"}
        status = value["statuses"][0]
        assert status["id"] == wamid and status["status"] == "delivered"
        assert status["recipient_id"] == "16315551234" and status["timestamp"].isdigit()
        assert status["conversation"]["origin"] == {"type": "service"}
        assert status["pricing"]["billable"] is True and "errors" not in status
        # read: no conversation nor pricing; explicit ids
        st, _, out = call("POST", "/_standin/whatsapp/status",
                          {"url": url, "app_secret": "app-secret-123", "status": "read",
                           "message_id": "wamid.OTHER", "phone_number_id": "77",
                           "recipient_id": "4915"})
        status = out["sent"]["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert out["status"] == 200 and "conversation" not in status
        assert status["id"] == "wamid.OTHER" and status["recipient_id"] == "4915"
        assert out["sent"]["entry"][0]["changes"][0]["value"]["metadata"][
            "phone_number_id"] == "77"
        # failed carries errors
        _, _, out = call("POST", "/_standin/whatsapp/status",
                         {"url": url, "app_secret": "app-secret-123", "status": "failed",
                          "message_id": wamid})
        status = out["sent"]["entry"][0]["changes"][0]["value"]["statuses"][0]
        assert status["errors"][0]["code"] == 131026 and "pricing" not in status
        # a wrong signature: the webhook's 401 comes back
        _, _, out = call("POST", "/_standin/whatsapp/status",
                         {"url": url, "app_secret": "app-secret-123",
                          "bad_signature": True})
        assert out["status"] == 401 and not Webhook.got[-1][2]
        assert json.loads(out["body"]) == {"error": "unauthorized"}
        # no secret: no signature headers
        _, _, out = call("POST", "/_standin/whatsapp/status", {"url": url})
        assert out["status"] == 401 and out["signature"] is None
        assert "X-Hub-Signature-256" not in Webhook.got[-1][0]
        # unreachable webhook, bad request
        hook.shutdown()
        hook.server_close()
        st, _, out = call("POST", "/_standin/whatsapp/status",
                          {"url": url, "app_secret": "s", "timeout": 2})
        assert st == 502 and "webhook not reached" in out["error"]
        st, _, _ = call("POST", "/_standin/whatsapp/status", {"status": "read"})
        assert st == 400
    finally:
        hook.server_close()


# ---------------------------------------------------------------------------------

def main():
    global PORT
    proc, PORT = channels_standin.spawn()
    passed = failed = 0
    try:
        for fn in CHECKS:
            try:
                fn()
                passed += 1
                print("ok   " + fn.__name__)
            except Exception as e:
                failed += 1
                print("FAIL " + fn.__name__ + ": " + "".join(
                    traceback.format_exception(type(e), e, e.__traceback__)))
            sys.stdout.flush()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
