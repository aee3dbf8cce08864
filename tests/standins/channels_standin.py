#!/usr/bin/python3
"""channels_standin.py: one local HTTP server that speaks the send APIs of the
messaging platforms the channels service calls (WhatsApp Cloud API, Messenger and
Instagram Send API, Telegram Bot API, Slack Web API), so tests never reach the internet.

    /usr/bin/python3 tests/standins/channels_standin.py --port 0 [--token TOKEN]...
                                                        [--any-token] [--stdin-eof-exit]
                                                        [--verbose] [--host HOST]

The first line on stdout is `listening <port>`; nothing else is printed there (logs go
to stderr). Python 3 standard library only, asyncio. SIGTERM/SIGINT stop it; with
--stdin-eof-exit it also stops when its stdin closes (so a test that dies takes it
along). From Python: `proc, port = channels_standin.spawn()`.

Tokens: one set for every platform, `standin-token` unless --token is given
(repeatable); --any-token accepts any non-empty token.

Endpoints (one port; base URLs: Graph http://127.0.0.1:PORT/v21.0, Telegram
http://127.0.0.1:PORT, Slack http://127.0.0.1:PORT/api)
  WhatsApp   POST /{version}/{phone_number_id}/messages     version: any vNN.N
             body {"messaging_product":"whatsapp","recipient_type":"individual",
             "to":"<wa_id>","type":"text","text":{"preview_url":false,"body":"..."}}
             -> 200 {"messaging_product":"whatsapp","contacts":[{"input":"<to>",
             "wa_id":"<the digits of to>"}],"messages":[{"id":"wamid.<unique>"}]}
             Checks: messaging_product "whatsapp", `to` given, type "text" (the
             default; other types get 400 code 100), text.body 1..4096 characters.
             GET /{version}/{phone_number_id} -> {"verified_name":"Stand-in Business",
             "display_phone_number":"+1 555-0100","id":"<id>","quality_rating":"GREEN"}
  Messenger  POST /{version}/{page_id}/messages   POST /{version}/me/messages
  Instagram  body {"recipient":{"id":"<PSID>"},"messaging_type":"RESPONSE",
             "message":{"text":"..."}} -> 200 {"recipient_id":"<PSID>",
             "message_id":"m_<unique>"}. Instagram when the page id starts with `ig`
             (any case) or the query has platform=instagram, else Messenger.
             Messenger needs messaging_type (RESPONSE, UPDATE or MESSAGE_TAG),
             Instagram takes it optionally. Text: Messenger 1..2000 characters,
             Instagram 1..1000 bytes of UTF-8; a message with an `attachment` and no
             text is accepted. Recipient ids starting with `missing` get 400 code 100
             subcode 2018001 "No matching user found".
             GET /{version}/me and GET /{version}/{id} with ?fields=a,b pick from
             id, name ("Stand-in Page"), username (ig ids: "standin_ig"),
             verified_name, display_phone_number, quality_rating; an unknown field
             gets 400 code 100. Without fields: me -> {"id":"1","name":"Stand-in
             Page"}, ig ids -> {"id","name","username"}, others -> WhatsApp's phone
             number above. Recorded as instagram (ig ids, platform=instagram),
             whatsapp (an id other than me, with no fields or a WhatsApp field
             asked for) or messenger.
             The two POST paths have one shape: a body with `messaging_product` is
             WhatsApp, anything else Messenger/Instagram. Bodies are JSON, or form
             fields whose object values are JSON text (as Graph takes them).
             Auth `Authorization: Bearer <token>` or `?access_token=<token>`.
             Graph errors: {"error":{"message","type","code"[,"error_subcode"]
             [,"error_data":{"messaging_product":"whatsapp","details"}],"fbtrace_id"}}:
             token missing or wrong -> 401 code 190 (+ WWW-Authenticate); an id
             starting with `missing` -> 400 GraphMethodException code 100 subcode 33
             "Unsupported post (get) request. Object with ID '...' does not exist,
             ...".
             Headers: Content-Type: application/json; charset=UTF-8, facebook-api-
             version, x-fb-trace-id, x-fb-request-id.
  Telegram   POST /bot<token>/sendMessage   GET|POST /bot<token>/getMe
             (method names in any case; parameters from the query string, a JSON body
             or a form body, later ones winning). sendMessage {"chat_id": <int or
             "@channel">, "text": "...", optional "parse_mode" (HTML, Markdown,
             MarkdownV2), "reply_parameters":{"message_id":N} or
             "reply_to_message_id":N, "message_thread_id"} -> {"ok":true,"result":
             {"message_id":<1, 2, ... per chat>,"from":{"id":<bot id>,"is_bot":true,
             "first_name":"Stand-in Bot","username":"standin_bot"},"chat":{...},
             "date":<unix>,"text":"..."}}. The bot id is the token's digits before `:`
             (else 7000000001). Chats: a positive id is private ("first_name":
             "Stand-in User"), -100... a supergroup, another negative id a group,
             "@name" a channel (a stable -100... id, "sender_chat" instead of "from").
             A reply gets a minimal reply_to_message {message_id, chat, date}.
             Errors {"ok":false,"error_code":N,"description":"..."}: token wrong or
             missing -> 401 "Unauthorized"; no chat_id -> 400 "Bad Request: chat_id
             is empty"; a chat id that is neither a number nor "@name" (e.g.
             "missing-1") -> 400 "Bad Request: chat not found"; empty text -> 400
             "Bad Request: message text is empty"; over 4096 characters -> 400
             "Bad Request: message is too long"; another parse_mode -> 400 "Bad
             Request: unsupported parse_mode"; another method -> 404 "Not Found".
             getMe -> {"ok":true,"result":{"id","is_bot":true,"first_name":"Stand-in
             Bot","username":"standin_bot","can_join_groups":true,
             "can_read_all_group_messages":false,"supports_inline_queries":false}}.
             Content-Type: application/json.
  Slack      POST /api/chat.postMessage   GET|POST /api/auth.test
             Auth `Authorization: Bearer <token>`, or a `token` form or query field.
             Body JSON (`Content-Type: application/json; charset=utf-8`; without
             the charset the answer carries Slack's "warning":"missing_charset") or
             form. {"channel":"C…","text":"...","thread_ts":"..."} ->
             {"ok":true,"channel":"<id>","ts":"<unix>.<6 digits>","message":
             {"user":"U0STANDIN","type":"message","ts","bot_id":"B0STANDIN",
             "app_id":"A0STANDIN","text","team":"T0STANDIN"[,"thread_ts"]
             [,"blocks"]}}. ts values strictly increase. A channel id ([CDG][A-Z0-9]+)
             is kept, a user id (U/W...) becomes a stable D... id, a name a stable
             C... id. Errors are HTTP 200 {"ok":false,"error":...}: not_authed (no
             token), invalid_auth, channel_not_found (no channel, or one starting with
             `missing`), no_text (no text, blocks or attachments), msg_too_long (over
             40000 characters); another method -> 404 unknown_method. auth.test ->
             {"ok":true,"url":"https://standin.slack.com/","team":"Stand-in","user":
             "standinbot","team_id":"T0STANDIN","user_id":"U0STANDIN","bot_id":
             "B0STANDIN"}. Content-Type: application/json; charset=utf-8.
  Control    GET /_standin/requests[?wait=SECONDS][&platform=NAME][&kind=KIND]
             [&count=N]   POST /_standin/reset   GET /_standin/health
             POST /_standin/whatsapp/status
Every answer is HTTP/1.1 with Content-Length and keep-alive (unless the client asks
for close).

Markers in a sent message's text: [[key:value key:value ...]] (several groups allowed;
a bare key means 1). They act once a send has passed authentication and the checks
above, and they stay in the text that is recorded and echoed back.
  status:N        answer N with the platform's error body:
                  Meta     400 code 100, 401 code 190, 403 code 10, 404 code 100
                           subcode 33, 429 WhatsApp code 130429 "(#130429) Rate limit
                           hit" / Messenger and Instagram code 613, 500 code 1
                           (WhatsApp 131000), 503 code 2 is_transient, other code 1
                  Telegram error_code N with the reason phrase; 429 "Too Many Requests:
                           retry after S" and "parameters":{"retry_after":S}
                  Slack    HTTP N, {"ok":false,"error":...}: 400 invalid_arguments,
                           401 invalid_auth, 403 access_denied, 404 unknown_method,
                           429 ratelimited, 500 internal_error, 503
                           service_unavailable, 504 request_timeout, other fatal_error
                  A 429 always has Retry-After (default 1 second).
  retry_after:S   Retry-After: S on the error; alone it means status:429
  fail_first:N    only the first N attempts fail (status defaults to 500, or 429 with
                  retry_after); attempts are counted per platform + recipient + exact
                  text, and /_standin/reset clears the counts
  permanent       a non-retryable platform error: WhatsApp 400 code 131026 "Message
                  undeliverable", Messenger/Instagram 400 code 551 "This person isn't
                  available right now", Telegram 403 "Forbidden: bot was blocked by the
                  user", Slack 200 channel_not_found (with fail_first: only the first N)
  delay_ms:N      answer after N ms; the message counts as sent first (its id is taken)
  hang            never answer: hold the connection until the client goes away (at
                  most hang_ms, default 300000, then close it)

Tracking: every request to a platform path is recorded (control requests are not):
  {id, platform (whatsapp | messenger | instagram | telegram | slack | none), kind
   (send | info | unknown), method, path, query, headers (all, lower-case names),
   body (JSON, form fields, or text), text, recipient, markers, attempt, status,
   response (the JSON answered), outcome, started_at, answered_at, ended_at}
`outcome` is null while the answer is held back, then answered, hanging (a [[hang]]
in progress), disconnected (the client left first) or hang_timeout. `status` is the
answer's status, also when the client left before it was written (null for a hang).
`?wait=S` waits up to S seconds until at least `count` (default 1) matching records
have an outcome.
The answer is {"requests": [...], "in_flight": n}. Reset clears the log and the
attempt counts; ids (wamid, m_, Telegram message_id, Slack ts) never repeat in a run.

WhatsApp status callbacks: POST /_standin/whatsapp/status with {"url": "<webhook>",
"app_secret": "...", "message_id": "wamid..." (default: the last one answered),
"status": "sent" | "delivered" | "read" | "failed" (default delivered),
"phone_number_id", "recipient_id" (defaults: those of the message's send),
"errors": [...] (failed has a 131026 default), "waba_id", "display_phone_number",
"timestamp", "bad_signature": true (sign with a wrong key), "timeout" (seconds,
default 10)}. The stand-in POSTs Meta's body {"object":"whatsapp_business_account",
"entry":[{"id":<waba id>,"changes":[{"value":{"messaging_product":"whatsapp",
"metadata":{"display_phone_number","phone_number_id"},"statuses":[{"id","status",
"timestamp","recipient_id", sent/delivered: "conversation","pricing"; failed:
"errors"}]},"field":"messages"}]}]} as compact ASCII JSON with Content-Type:
application/json, X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>
and X-Hub-Signature: sha1=<hex> (none without app_secret), and answers 200 {"status",
"content_type", "body" (text), "sent" (the body it posted), "signature"}; 502 when the
webhook cannot be reached.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import standin_http  # noqa: E402

DEFAULT_TOKEN = "standin-token"
DEFAULT_HANG_MS = 300000
MAX_RECORDS = 20000
DEFAULT_BOT_ID = 7000000001
MARKER_RE = re.compile(r"\[\[(.*?)\]\]", re.S)
META_CT = "application/json; charset=UTF-8"
TELEGRAM_CT = "application/json"
SLACK_CT = "application/json; charset=utf-8"
CONTROL_CT = "application/json"
SALT = os.urandom(6).hex()  # makes ids differ between runs


def dumps(obj, ascii_only=False):
    return json.dumps(obj, ensure_ascii=ascii_only, separators=(",", ":")).encode()


def stable_digits(seed, n):
    """n decimal digits derived from seed (the same seed, the same digits)."""
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:n]


def random_b64(n):
    return base64.urlsafe_b64encode(os.urandom(n)).decode().rstrip("=")


def parse_markers(text):
    """The [[key:value ...]] markers of text as a dict (a bare key means "1")."""
    markers = {}
    for group in MARKER_RE.finditer(text or ""):
        for item in group.group(1).split():
            key, colon, value = item.partition(":")
            markers[key] = value if colon else "1"
    return markers


def marker_int(markers, key):
    try:
        return int(float(markers[key])) if key in markers else None
    except ValueError:
        return None


class Answer:
    """A whole answer: status, headers (Content-Type first) and the JSON body."""

    def __init__(self, status, ctype, body, headers=()):
        self.status = status
        self.headers = [("Content-Type", ctype)] + list(headers)
        self.body = body


class Outgoing:
    """A send that passed authentication and the platform's checks: the text the
    markers are read from, the recipient, and the three ways to answer it."""

    def __init__(self, platform, text, recipient, ok, fail, permanent):
        self.platform = platform
        self.text = text
        self.recipient = recipient
        self.ok = ok  # () -> Answer, takes the message's id
        self.fail = fail  # (status, retry_after or None) -> Answer
        self.permanent = permanent  # () -> Answer


def retry_headers(status, retry_after):
    if status == 429 or retry_after is not None:
        return [("Retry-After", str(retry_after if retry_after is not None else 1))]
    return []


# ---------------------------------------------------------------------------------
# Meta Graph API: WhatsApp Cloud API, Messenger and Instagram Send API

class Meta:
    ROUTE = re.compile(r"^/(v\d+\.\d+)/([^/]+)(/messages)?/?$")
    PAGE_FIELDS = ("id", "name", "username", "verified_name", "display_phone_number",
                   "quality_rating")
    WHATSAPP_FIELDS = ("verified_name", "display_phone_number", "quality_rating")
    MESSAGING_TYPES = ("RESPONSE", "UPDATE", "MESSAGE_TAG")

    def __init__(self, server):
        self.server = server
        self.wamids = {}  # wamid -> (phone_number_id, recipient wa_id)
        self.last_wamid = None

    def error(self, version, status, code, message, etype="OAuthException",
              subcode=None, details=None, transient=None, headers=()):
        err = {"message": message, "type": etype, "code": code}
        if subcode is not None:
            err["error_subcode"] = subcode
        if transient is not None:
            err["is_transient"] = transient
        if details is not None:
            err["error_data"] = {"messaging_product": "whatsapp", "details": details}
        err["fbtrace_id"] = "A" + random_b64(17)
        return self.answer(version, status, {"error": err}, headers)

    def answer(self, version, status, body, headers=()):
        trace = random_b64(8)
        return Answer(status, META_CT, body,
                      list(headers) + [("facebook-api-version", version),
                                       ("x-fb-trace-id", trace),
                                       ("x-fb-request-id", "A" + random_b64(17)),
                                       ("Access-Control-Allow-Origin", "*")])

    def token_error(self, version, token):
        message = ("An access token is required to request this resource." if not token
                   else "Invalid OAuth access token - Cannot parse access token")
        return self.error(version, 401, 190, message, headers=[
            ("WWW-Authenticate", 'OAuth "Facebook Platform" "invalid_token" "%s"'
             % message)])

    def token(self, req):
        auth = req.h.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return req.arg("access_token", "")

    def missing_object(self, version, verb, node):
        return self.error(version, 400, 100, "Unsupported %s request. Object with ID "
                          "'%s' does not exist, cannot be loaded due to missing "
                          "permissions, or does not support this operation. Please read "
                          "the Graph API documentation at "
                          "https://developers.facebook.com/docs/graph-api" % (verb, node),
                          etype="GraphMethodException", subcode=33)

    @staticmethod
    def is_instagram(node, req):
        return node.lower().startswith("ig") or req.arg("platform") == "instagram"

    def handle(self, req, rec, match):
        """An Answer, or an Outgoing for a send that passed the checks."""
        version, node, messages = match.group(1), match.group(2), match.group(3)
        body = self.body(req)
        if messages:
            rec["kind"] = "send"
            whatsapp = isinstance(body, dict) and "messaging_product" in body
            rec["platform"] = ("whatsapp" if whatsapp else "instagram"
                               if self.is_instagram(node, req) else "messenger")
        else:
            fields = [f for f in req.arg("fields", "").split(",") if f]
            asks_whatsapp = not fields or set(fields) & set(self.WHATSAPP_FIELDS)
            rec["kind"] = "info"
            rec["platform"] = ("instagram" if self.is_instagram(node, req) else "whatsapp"
                               if node != "me" and asks_whatsapp else "messenger")
        token = self.token(req)
        if not self.server.token_ok(token):
            return self.token_error(version, token)
        if node.startswith("missing"):
            return self.missing_object(version, "post" if messages else "get", node)
        if not messages:
            return self.node(req, version, node, fields)
        if rec["platform"] == "whatsapp":
            return self.whatsapp_send(version, node, body)
        return self.page_send(version, rec["platform"], body)

    @staticmethod
    def body(req):
        """A JSON body, or form fields with JSON text values decoded (as Graph reads
        them)."""
        if req.content_type() == "application/x-www-form-urlencoded":
            fields = req.form()
            for name, value in fields.items():
                if value[:1] in ("{", "["):
                    try:
                        fields[name] = json.loads(value)
                    except ValueError:
                        pass
            return fields
        return req.json()

    def node(self, req, version, node, fields):
        instagram = self.is_instagram(node, req)
        known = {"id": "1" if node == "me" else node,
                 "name": "Stand-in Account" if instagram else "Stand-in Page",
                 "verified_name": "Stand-in Business",
                 "display_phone_number": "+1 555-0100", "quality_rating": "GREEN"}
        if instagram:
            known["username"] = "standin_ig"
        if fields:
            for name in fields:
                if name not in known:
                    return self.error(version, 400, 100, "(#100) Tried accessing "
                                      "nonexisting field (%s) on node type (%s)"
                                      % (name, "User" if instagram else "Page"))
            return self.answer(version, 200, {f: known[f] for f in fields})
        if node == "me" or instagram:
            names = ("id", "name", "username") if instagram else ("id", "name")
        else:
            names = ("verified_name", "display_phone_number", "id", "quality_rating")
        return self.answer(version, 200, {f: known[f] for f in names})

    def whatsapp_send(self, version, phone_number_id, body):
        def invalid(message, details=None):
            return self.error(version, 400, 100, message, details=details)

        if body.get("messaging_product") != "whatsapp":
            return invalid("(#100) Invalid parameter",
                           "Param messaging_product must be 'whatsapp'")
        to = body.get("to")
        if not isinstance(to, str) or not to:
            return invalid("(#100) The parameter to is required.")
        kind = body.get("type", "text")
        if kind != "text":
            return invalid("(#100) Invalid parameter", "the stand-in sends type text "
                           "only, not '%s'" % kind)
        text = body.get("text")
        text = text.get("body") if isinstance(text, dict) else None
        if not isinstance(text, str) or not text:
            return invalid("(#100) The parameter text['body'] is required.")
        if len(text) > 4096:
            return invalid("(#100) Param text['body'] must be at most 4096 characters "
                           "long.")
        wa_id = re.sub(r"\D", "", to) or to

        def ok():
            seq = self.server.next_seq()
            raw = ("%s%s%s%010d" % (wa_id, "\x15\x02\x00\x11", SALT, seq)).encode()
            wamid = "wamid.HBgL" + base64.b64encode(raw).decode().rstrip("=")
            self.wamids[wamid] = (phone_number_id, wa_id)
            self.last_wamid = wamid
            return self.answer(version, 200, {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [{"id": wamid}]})

        return Outgoing("whatsapp", text, to, ok,
                        lambda status, retry: self.status_error(version, "whatsapp",
                                                                status, retry),
                        lambda: self.error(version, 400, 131026,
                                           "(#131026) Message undeliverable",
                                           details="Message Undeliverable."))

    def page_send(self, version, platform, body):
        def invalid(message, subcode=None):
            return self.error(version, 400, 100, message, subcode=subcode)

        if not isinstance(body, dict):
            body = {}
        recipient = body.get("recipient")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        if not isinstance(psid, str) or not psid:
            return invalid("(#100) The parameter recipient is required")
        kind = body.get("messaging_type")
        if kind is None and platform == "messenger":
            return invalid("(#100) The parameter messaging_type is required")
        if kind is not None and kind not in self.MESSAGING_TYPES:
            return invalid('(#100) param messaging_type must be one of {RESPONSE, '
                           'UPDATE, MESSAGE_TAG} - got "%s".' % kind)
        message = body.get("message")
        if not isinstance(message, dict):
            return invalid("(#100) The parameter message is required")
        text = message.get("text")
        if text is None and "attachment" in message:
            text = ""
        elif not isinstance(text, str) or not text:
            return invalid("(#100) Param message[text] must be a non-empty UTF-8 "
                           "encoded string")
        limit = 1000 if platform == "instagram" else 2000
        size = len(text.encode()) if platform == "instagram" else len(text)
        if size > limit:
            return invalid("(#100) Length of param message[text] must be less than or "
                           "equal to %d" % limit)
        if psid.startswith("missing"):
            return invalid("(#100) No matching user found", subcode=2018001)

        def ok():
            seq = self.server.next_seq()
            digest = hashlib.sha512(("%s%s%d" % (platform, SALT, seq)).encode()).digest()
            mid = "m_" + base64.urlsafe_b64encode(digest[:60]).decode()
            return self.answer(version, 200, {"recipient_id": psid, "message_id": mid})

        return Outgoing(platform, text, psid, ok,
                        lambda status, retry: self.status_error(version, platform,
                                                                status, retry),
                        lambda: self.error(version, 400, 551, "(#551) This person isn't "
                                           "available right now.", subcode=1545041))

    def status_error(self, version, platform, status, retry):
        headers = retry_headers(status, retry)
        whatsapp = platform == "whatsapp"
        details = "stand-in status marker" if whatsapp else None
        if status == 401:
            return self.token_error(version, "marker")
        if status == 400:
            return self.error(version, 400, 100, "(#100) Invalid parameter",
                              details=details, headers=headers)
        if status == 403:
            return self.error(version, 403, 10, "(#10) Application does not have "
                              "permission for this action", headers=headers)
        if status == 404:
            answer = self.missing_object(version, "post", "marker")
            answer.status = 404
            answer.headers += headers
            return answer
        if status == 429 and whatsapp:
            return self.error(version, 429, 130429, "(#130429) Rate limit hit",
                              details="Cloud API message throughput has been reached.",
                              headers=headers)
        if status == 429:
            return self.error(version, 429, 613, "(#613) Calls to this api have "
                              "exceeded the rate limit.", headers=headers)
        if status == 500 and whatsapp:
            return self.error(version, 500, 131000, "(#131000) Something went wrong",
                              details=details, headers=headers)
        if status == 503:
            return self.error(version, 503, 2, "(#2) Service temporarily unavailable",
                              transient=True, headers=headers)
        return self.error(version, status, 1, "An unknown error occurred",
                          headers=headers)


# ---------------------------------------------------------------------------------
# Telegram Bot API

class Telegram:
    ROUTE = re.compile(r"^/bot([^/]*)/([A-Za-z_]+)$")
    PARSE_MODES = ("HTML", "Markdown", "MarkdownV2")

    def __init__(self, server):
        self.server = server
        self.message_ids = {}  # chat id -> the last message_id given out

    @staticmethod
    def answer(status, body, headers=()):
        return Answer(status, TELEGRAM_CT, body,
                      list(headers) + [("Access-Control-Allow-Origin", "*")])

    def error(self, code, description, headers=(), parameters=None):
        body = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return self.answer(code, body, headers)

    @staticmethod
    def bot(token):
        match = re.match(r"^(\d+):", token)
        bot_id = int(match.group(1)) if match else DEFAULT_BOT_ID
        return {"id": bot_id, "is_bot": True, "first_name": "Stand-in Bot",
                "username": "standin_bot"}

    @staticmethod
    def params(req):
        """Query parameters, then the JSON or form body's fields over them."""
        params = {k: v[0] for k, v in req.query.items()}
        body = req.json()
        if isinstance(body, dict):
            params.update(body)
        elif req.content_type() == "application/x-www-form-urlencoded":
            params.update(req.form())
        return params

    def handle(self, req, rec, match):
        token, method = match.group(1), match.group(2).lower()
        rec["platform"] = "telegram"
        rec["kind"] = {"sendmessage": "send", "getme": "info"}.get(method, "unknown")
        if not self.server.token_ok(token):
            return self.error(401, "Unauthorized")
        if method == "getme":
            result = self.bot(token)
            result.update({"can_join_groups": True, "can_read_all_group_messages": False,
                           "supports_inline_queries": False})
            return self.answer(200, {"ok": True, "result": result})
        if method != "sendmessage":
            return self.error(404, "Not Found")
        return self.send(token, self.params(req))

    @staticmethod
    def chat(chat_id):
        """The Chat object for a chat_id, or None when there is no such chat."""
        if isinstance(chat_id, bool):
            return None
        if isinstance(chat_id, str) and re.match(r"^-?\d+$", chat_id.strip()):
            chat_id = int(chat_id)
        if isinstance(chat_id, int):
            if chat_id > 0:
                return {"id": chat_id, "first_name": "Stand-in User", "type": "private"}
            if str(chat_id).startswith("-100"):
                return {"id": chat_id, "title": "Stand-in Group", "type": "supergroup"}
            return {"id": chat_id, "title": "Stand-in Group", "type": "group"}
        if isinstance(chat_id, str) and re.match(r"^@[A-Za-z0-9_]{1,64}$", chat_id):
            return {"id": -int("100" + stable_digits(chat_id, 10)),
                    "title": "Stand-in Channel", "username": chat_id[1:],
                    "type": "channel"}
        return None

    def send(self, token, params):
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            return self.error(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return self.error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return self.error(400, "Bad Request: message is too long")
        mode = params.get("parse_mode")
        if mode not in (None, "") and mode not in self.PARSE_MODES:
            return self.error(400, "Bad Request: unsupported parse_mode")
        chat = self.chat(chat_id)
        if chat is None:
            return self.error(400, "Bad Request: chat not found")
        reply = params.get("reply_parameters")
        if isinstance(reply, str):
            try:
                reply = json.loads(reply)
            except ValueError:
                reply = None
        reply_to = reply.get("message_id") if isinstance(reply, dict) else \
            params.get("reply_to_message_id")
        thread = params.get("message_thread_id")

        def ok():
            number = self.message_ids.get(chat["id"], 0) + 1
            self.message_ids[chat["id"]] = number
            now = int(time.time())
            message = {"message_id": number}
            if thread not in (None, ""):
                message["message_thread_id"] = int(thread) if str(thread).isdigit() \
                    else thread
            if chat["type"] == "channel":
                message["sender_chat"] = chat
            else:
                message["from"] = self.bot(token)
            message.update({"chat": chat, "date": now})
            if reply_to not in (None, ""):
                message["reply_to_message"] = {
                    "message_id": int(reply_to) if str(reply_to).isdigit() else reply_to,
                    "chat": chat, "date": now}
            message["text"] = text
            return self.answer(200, {"ok": True, "result": message})

        def fail(status, retry):
            if status == 429:
                seconds = retry if retry is not None else 1
                return self.error(429, "Too Many Requests: retry after %s" % seconds,
                                  retry_headers(429, seconds),
                                  {"retry_after": seconds})
            return self.error(status, standin_http.REASONS.get(status, "Error"),
                              retry_headers(status, retry))

        return Outgoing("telegram", text, str(chat_id), ok, fail,
                        lambda: self.error(403, "Forbidden: bot was blocked by the "
                                           "user"))


# ---------------------------------------------------------------------------------
# Slack Web API

class Slack:
    ROUTE = re.compile(r"^/api/([A-Za-z]+(?:\.[A-Za-z]+)+)$")
    STATUS_ERRORS = {400: "invalid_arguments", 401: "invalid_auth", 403: "access_denied",
                     404: "unknown_method", 429: "ratelimited", 500: "internal_error",
                     503: "service_unavailable", 504: "request_timeout"}
    IDS = {"user": "U0STANDIN", "bot_id": "B0STANDIN", "app_id": "A0STANDIN",
           "team": "T0STANDIN"}

    def __init__(self, server):
        self.server = server
        self.last_us = 0  # the last ts given out, in microseconds

    @staticmethod
    def answer(req, status, body, headers=()):
        """An answer; a JSON request without charset gets Slack's warning."""
        ctype = req.h.get("content-type", "").lower()
        if status == 200 and ctype.startswith("application/json") \
                and "charset" not in ctype:
            body["warning"] = "missing_charset"
            body["response_metadata"] = {"warnings": ["missing_charset"]}
        return Answer(status, SLACK_CT, body, list(headers) + [
            ("x-slack-req-id", os.urandom(16).hex()),
            ("x-oauth-scopes", "chat:write,app_mentions:read,im:history"),
            ("x-accepted-oauth-scopes", "chat:write")])

    def next_ts(self):
        """A message ts: the time in microseconds, strictly increasing."""
        self.last_us = max(int(time.time() * 1000000), self.last_us + 1)
        return "%d.%06d" % divmod(self.last_us, 1000000)

    @staticmethod
    def channel_id(channel):
        if re.match(r"^[CDG][A-Z0-9]{2,}$", channel):
            return channel
        if re.match(r"^[UW][A-Z0-9]{2,}$", channel):
            return "D" + hashlib.sha1(channel.encode()).hexdigest()[:10].upper()
        return "C" + hashlib.sha1(channel.lstrip("#").encode()).hexdigest()[:10].upper()

    def handle(self, req, rec, match):
        method = match.group(1)
        rec["platform"] = "slack"
        rec["kind"] = {"chat.postMessage": "send", "auth.test": "info"}.get(method,
                                                                            "unknown")
        params = {k: v[0] for k, v in req.query.items()}
        body = req.json()
        if req.content_type() == "application/x-www-form-urlencoded":
            params.update(req.form())
        elif isinstance(body, dict):
            params.update({k: v for k, v in body.items() if k != "token"})
        if rec["kind"] == "unknown":
            return self.answer(req, 404, {"ok": False, "error": "unknown_method",
                                          "req_method": method})
        auth = req.h.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else params.get("token")
        if not token:
            return self.answer(req, 200, {"ok": False, "error": "not_authed"})
        if not self.server.token_ok(token):
            return self.answer(req, 200, {"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return self.answer(req, 200, {
                "ok": True, "url": "https://standin.slack.com/", "team": "Stand-in",
                "user": "standinbot", "team_id": "T0STANDIN", "user_id": "U0STANDIN",
                "bot_id": "B0STANDIN"})
        return self.post_message(req, params)

    def post_message(self, req, params):
        channel = params.get("channel")
        if not isinstance(channel, str) or not channel or channel.startswith("missing"):
            return self.answer(req, 200, {"ok": False, "error": "channel_not_found"})
        text = params.get("text")
        text = text if isinstance(text, str) else ""
        blocks = params.get("blocks")
        if not text and not blocks and not params.get("attachments"):
            return self.answer(req, 200, {"ok": False, "error": "no_text"})
        if len(text) > 40000:
            return self.answer(req, 200, {"ok": False, "error": "msg_too_long"})
        thread_ts = params.get("thread_ts")

        def ok():
            ts = self.next_ts()
            message = {"user": self.IDS["user"], "type": "message", "ts": ts,
                       "bot_id": self.IDS["bot_id"], "app_id": self.IDS["app_id"],
                       "text": text, "team": self.IDS["team"]}
            if thread_ts:
                message["thread_ts"] = thread_ts
            if isinstance(blocks, list):
                message["blocks"] = blocks
            return self.answer(req, 200, {"ok": True, "channel": self.channel_id(channel),
                                          "ts": ts, "message": message})

        def fail(status, retry):
            error = self.STATUS_ERRORS.get(status, "fatal_error")
            return self.answer(req, status, {"ok": False, "error": error},
                               retry_headers(status, retry))

        return Outgoing("slack", text, channel, ok, fail,
                        lambda: self.answer(req, 200, {"ok": False,
                                                       "error": "channel_not_found"}))


# ---------------------------------------------------------------------------------
# The server

class Server:
    def __init__(self, tokens, any_token, verbose):
        self.tokens = set(tokens or [DEFAULT_TOKEN])
        self.any_token = any_token
        self.verbose = verbose
        self.records = []
        self.attempts = {}  # platform|recipient|text -> attempts so far
        self.record_seq = 0  # the last record id
        self.seq = 0  # the last message id number, never reset
        self.changed = asyncio.Event()  # set (and replaced) when a record settles
        self.meta = Meta(self)
        self.telegram = Telegram(self)
        self.slack = Slack(self)

    def token_ok(self, token):
        return bool(token) and (self.any_token or token in self.tokens)

    def next_seq(self):
        self.seq += 1
        return self.seq

    def settle(self, rec, outcome):
        """Sets a record's outcome and wakes the requests?wait= waiters."""
        rec["outcome"] = outcome
        if outcome != "hanging":
            rec["ended_at"] = time.time()
        self.changed.set()
        self.changed = asyncio.Event()
        if self.verbose:
            sys.stderr.write("channels_standin: #%d %s %s %s -> %s %s\n"
                             % (rec["id"], rec["platform"], rec["method"], rec["path"],
                                rec["status"], outcome))
            sys.stderr.flush()

    async def handle(self, conn, req):
        """Answers one request; False closes the connection."""
        if req.path.startswith("/_standin/"):
            answer = await self.control(req)
            await conn.send(answer.status, answer.headers, dumps(answer.body),
                            req.keep_alive)
            return True
        body = req.json()
        if body is None and req.content_type() == "application/x-www-form-urlencoded":
            body = req.form()
        elif body is None and req.body:
            body = req.body.decode("utf-8", "replace")
        self.record_seq += 1
        rec = {"id": self.record_seq, "platform": "none", "kind": "unknown",
               "method": req.method, "path": req.path, "query": req.query,
               "headers": req.h, "body": body, "text": None, "recipient": None,
               "markers": {}, "attempt": 0, "status": None, "response": None,
               "outcome": None, "started_at": time.time(), "answered_at": None,
               "ended_at": None}
        self.records.append(rec)
        del self.records[:-MAX_RECORDS]
        answer = self.route(req, rec)
        if isinstance(answer, Outgoing):
            return await self.send(conn, req, rec, answer)
        return await self.reply(conn, req, rec, answer)

    def route(self, req, rec):
        for api in (self.telegram, self.slack, self.meta):
            match = api.ROUTE.match(req.path)
            if not match:
                continue
            if api is self.meta and req.method != ("POST" if match.group(3) else "GET"):
                break
            if api is self.slack and match.group(1) == "chat.postMessage" \
                    and req.method != "POST":
                break
            return api.handle(req, rec, match)
        return Answer(404, CONTROL_CT, {"error": "no stand-in route for %s %s"
                                        % (req.method, req.path)})

    async def reply(self, conn, req, rec, answer):
        rec["status"] = answer.status
        rec["response"] = answer.body
        rec["answered_at"] = time.time()
        await conn.send(answer.status, answer.headers, dumps(answer.body),
                        req.keep_alive)
        self.settle(rec, "answered")
        return True

    async def send(self, conn, req, rec, out):
        """Applies the markers of a checked send, then answers it."""
        markers = parse_markers(out.text)
        rec.update(text=out.text, recipient=out.recipient, markers=markers)
        key = "%s|%s|%s" % (out.platform, out.recipient, out.text)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        rec["attempt"] = self.attempts[key]
        if "hang" in markers:
            self.settle(rec, "hanging")
            hang_ms = marker_int(markers, "hang_ms")
            stayed = await conn.hold((hang_ms if hang_ms is not None
                                      else DEFAULT_HANG_MS) / 1000.0)
            self.settle(rec, "hang_timeout" if stayed else "disconnected")
            return False
        status = marker_int(markers, "status")
        retry = marker_int(markers, "retry_after")
        fail_first = marker_int(markers, "fail_first")
        failing = fail_first is None or rec["attempt"] <= fail_first
        if failing and "permanent" in markers:
            answer = out.permanent()
        elif failing and (fail_first is not None or retry is not None
                          or status not in (None, 200)):
            answer = out.fail(status or (429 if retry is not None else 500), retry)
        else:
            answer = out.ok()
        delay = marker_int(markers, "delay_ms")
        if delay and delay > 0:
            rec["status"] = answer.status
            rec["response"] = answer.body
            if not await conn.hold(delay / 1000.0):
                self.settle(rec, "disconnected")
                return False
        return await self.reply(conn, req, rec, answer)

    async def control(self, req):
        path = req.path
        if path == "/_standin/requests" and req.method == "GET":
            return await self.requests(req)
        if path == "/_standin/reset" and req.method == "POST":
            self.records = []
            self.attempts = {}
            return Answer(200, CONTROL_CT, {"ok": True})
        if path == "/_standin/health" and req.method == "GET":
            return Answer(200, CONTROL_CT, {"ok": True, "requests": len(self.records),
                                            "in_flight": self.in_flight()})
        if path == "/_standin/whatsapp/status" and req.method == "POST":
            return await self.whatsapp_status(req)
        return Answer(404, CONTROL_CT, {"error": "unknown control path %s %s"
                                        % (req.method, path)})

    def in_flight(self):
        return sum(1 for r in self.records if r["outcome"] in (None, "hanging"))

    async def requests(self, req):
        try:
            wait = float(req.arg("wait", "0") or 0)
            count = int(req.arg("count", "1") or 1)
        except ValueError:
            return Answer(400, CONTROL_CT, {"error": "wait and count must be numbers"})
        platform, kind = req.arg("platform"), req.arg("kind")

        def matching():
            return [r for r in self.records
                    if (platform is None or r["platform"] == platform)
                    and (kind is None or r["kind"] == kind)]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while sum(1 for r in matching() if r["outcome"]) < count:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                break
        return Answer(200, CONTROL_CT, {"requests": matching(),
                                        "in_flight": self.in_flight()})

    async def whatsapp_status(self, req):
        spec = req.json()
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            return Answer(400, CONTROL_CT, {"error": "the body must be JSON with a url"})
        wamid = spec.get("message_id") or self.meta.last_wamid
        if not wamid:
            return Answer(400, CONTROL_CT, {"error": "no message_id and no WhatsApp "
                                            "message sent yet"})
        known_phone, known_to = self.meta.wamids.get(wamid, (None, None))
        state = spec.get("status", "delivered")
        stamp = str(spec.get("timestamp") or int(time.time()))
        status = {"id": wamid, "status": state, "timestamp": stamp,
                  "recipient_id": spec.get("recipient_id") or known_to or "15550001111"}
        if state in ("sent", "delivered"):
            conversation = {"id": hashlib.md5(wamid.encode()).hexdigest(),
                            "origin": {"type": "service"}}
            if state == "sent":
                conversation["expiration_timestamp"] = str(int(stamp) + 86400) \
                    if stamp.isdigit() else stamp
            status["conversation"] = conversation
            status["pricing"] = {"billable": True, "pricing_model": "CBP",
                                 "category": "service"}
        errors = spec.get("errors")
        if errors is None and state == "failed":
            errors = [{"code": 131026, "title": "Message undeliverable",
                       "message": "Message undeliverable",
                       "error_data": {"details": "Message Undeliverable."},
                       "href": "https://developers.facebook.com/docs/whatsapp/"
                               "cloud-api/support/error-codes/"}]
        if errors is not None:
            status["errors"] = errors
        value = {"messaging_product": "whatsapp",
                 "metadata": {"display_phone_number": spec.get("display_phone_number",
                                                               "15550100"),
                              "phone_number_id": spec.get("phone_number_id")
                              or known_phone or "100000000000001"},
                 "statuses": [status]}
        sent = {"object": "whatsapp_business_account",
                "entry": [{"id": spec.get("waba_id", "200000000000001"),
                           "changes": [{"value": value, "field": "messages"}]}]}
        raw = dumps(sent, ascii_only=True)
        headers = {"Content-Type": "application/json", "User-Agent": "facebookexternalua"}
        signature = None
        secret = spec.get("app_secret")
        if isinstance(secret, str) and secret:
            key = (secret + "-wrong" if spec.get("bad_signature") else secret).encode()
            signature = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = signature
            headers["X-Hub-Signature"] = "sha1=" + hmac.new(key, raw,
                                                            hashlib.sha1).hexdigest()
        timeout = float(spec.get("timeout", 10))

        def post():
            request = urllib.request.Request(spec["url"], data=raw, headers=headers,
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return response.status, response.headers, response.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()

        try:
            code, got_headers, got = await asyncio.get_running_loop().run_in_executor(
                None, post)
        except (OSError, ValueError) as e:
            return Answer(502, CONTROL_CT, {"error": "webhook not reached: %s" % e,
                                            "sent": sent})
        return Answer(200, CONTROL_CT, {"status": code,
                                        "content_type": got_headers.get("Content-Type"),
                                        "body": got.decode("utf-8", "replace"),
                                        "sent": sent, "signature": signature})


def spawn(extra_args=(), timeout=10.0):
    """Starts the stand-in as a child process that exits when its stdin closes.
    Returns (Popen, port); stop it with proc.terminate() or by closing proc.stdin."""
    return standin_http.spawn(__file__, extra_args, timeout)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", action="append",
                        help="a valid token for every platform (repeatable); default "
                        + DEFAULT_TOKEN)
    parser.add_argument("--any-token", action="store_true",
                        help="accept any non-empty token")
    parser.add_argument("--stdin-eof-exit", action="store_true",
                        help="exit when stdin reaches end of file")
    parser.add_argument("--verbose", action="store_true",
                        help="one line per request on stderr")
    args = parser.parse_args(argv)

    async def run():
        server = Server(args.token, args.any_token, args.verbose)
        await standin_http.serve(server.handle, args.host, args.port,
                                 args.stdin_eof_exit, "channels_standin")

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
