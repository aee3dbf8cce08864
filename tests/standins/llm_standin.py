#!/usr/bin/python3
"""llm_standin.py: one local HTTP server that speaks the wire formats of the LLM
providers Chorus calls, so tests never reach the internet.

    /usr/bin/python3 tests/standins/llm_standin.py --port 0 [--api-key KEY]... [--any-key]
                                                   [--stdin-eof-exit] [--verbose]

The first line on stdout is `listening <port>`; nothing else is printed there (logs go
to stderr). Python 3 standard library only, asyncio: hundreds of concurrent streams.
SIGTERM/SIGINT stop it; with --stdin-eof-exit it also stops when its stdin closes (so
a test that dies takes it along). From Python: `proc, port = llm_standin.spawn()`.

Endpoints (one port)
  OpenAI     POST /v1/chat/completions   GET /v1/models   GET /v1/models/{id}
             auth `Authorization: Bearer <key>`
  Anthropic  POST /v1/messages           (GET /v1/models when x-api-key is sent)
             auth `x-api-key: <key>`, `anthropic-version` required
  Gemini     POST /v1beta/models/{model}:generateContent
             POST /v1beta/models/{model}:streamGenerateContent?alt=sse  (without
             alt=sse: a streamed JSON array)      GET /v1beta/models   (also /v1/)
             auth `x-goog-api-key: <key>` or `?key=<key>`
  Ollama     POST /api/chat   GET /api/tags   GET /api/version   (no auth, like Ollama)
  n8n        POST|GET /webhook/<id>[/...] and /webhook-test/<id>[/...]; the mode is
             `?mode=` or the id's prefix: stream (NDJSON begin/item/end, the default),
             sse, json ({"output": ...}), text (text/plain), started ({"message":
             "Workflow was started"}); ids starting with `missing` answer n8n's 404.
  Control    GET /_standin/requests[?wait=SECONDS][&provider=NAME]
             POST /_standin/reset      GET /_standin/health
Valid keys: `standin-key` unless --api-key is given (repeatable); --any-key accepts any
non-empty key. A missing or wrong key gets the provider's own 401/400/403 body. A model
whose name starts with `missing` gets the provider's "model not found" error.
Parameters a model refuses get the provider's 400: OpenAI's reasoning models (o1, o3,
o4, gpt-5 but its -chat models) refuse max_tokens and a temperature other than 1,
o1-mini and o1-preview a system or developer message and reasoning_effort, other
models reasoning_effort; Anthropic refuses a temperature above 1, with thinking on a
temperature other than 1, a budget_tokens under 1024 or not under max_tokens. With
Anthropic thinking on (enabled or adaptive), the reply starts with a thinking block
(thinking_delta pieces, then its signature_delta), counted in output_tokens.
Gemini 2.5 and 3 sign the first function call of a reply (thoughtSignature), and
Gemini 3 answers 400 to history whose model turn has a first function call unsigned.

The reply
  Deterministic: "Echo: " + the last user message with the markers removed, one word
  per token ("Echo:", " hello", " world"). When the conversation ends with a tool
  result (OpenAI role "tool", Anthropic tool_result, Gemini functionResponse, Ollama
  role "tool"), the reply is "Echo: " + the result's text and [[tool:...]] markers are
  ignored (so an agent loop ends). max_tokens / max_completion_tokens /
  generationConfig.maxOutputTokens / options.num_predict cut the tokens and report the
  provider's "length" finish. Usage: prompt = words of all input text; completion =
  text tokens + for each tool call 1 + its argument pieces.

Markers in the last user message: [[key:value key:value ...]] (several groups allowed;
a bare key means 1). Times are milliseconds.
  tokens:N            exactly N tokens (the echo, then " tok<i>" fillers)
  delay_ms:N          wait N ms before every token (first_token_ms: once, after the
                      headers; first_byte_ms: before the status line)
  tool:NAME {json}    a tool call in the provider's native shape; several = parallel
                      calls; with_text also streams the text before them
  status:N            answer N with the provider's error body (429 adds Retry-After);
  retry_after:S retry_after_ms:N   Retry-After / retry-after-ms headers (Gemini: a
                      google.rpc.RetryInfo detail instead); quota: OpenAI's
                      insufficient_quota 429
  fail_first:N        only the first N attempts fail (status defaults to 500); attempts
                      are counted per provider+path+message (+ key:NAME), and the
                      count is reset by /_standin/reset
  error_after:N       after N tokens send the provider's mid-stream error event and end
                      the stream (error_status:N or error_type:NAME choose the error)
  cut_after:N         after N tokens close the connection: no terminal marker, no final
                      zero-size chunk (non-stream: half of the body, then close)
  truncate_after:N    after N tokens end the HTTP body cleanly without the provider's
                      terminal event ([DONE], message_stop, done:true, n8n end)
  reset_after:N       after N tokens reset the TCP connection (RST)
  hang_after:N        after N tokens send nothing until the client goes away (at most
                      hang_ms, default 300000; then the connection is closed)
  keepalive_ms:N      while waiting longer than N ms send keepalives every N ms:
                      Anthropic `ping` events, n8n {"type":"keepalive"} lines, OpenAI
                      SSE comments `: keepalive` (Gemini and Ollama have none)
  keepalive_every:N   a keepalive after every N tokens (ping_every: the same)
  finish:R            force the finish reason: stop | length | content_filter
  n8n_nodes:N         n8n: split the tokens over N nodes' begin/item/end groups
  no_usage            OpenAI: leave out the usage chunk even if include_usage is set
Anthropic streams carry one `ping` after the first content_block_start, as Anthropic's
own example does. Gemini has no terminal frame of its own: its last chunk holds the last
token, finishReason and usageMetadata, so "before the end" means N < the token count.

Tracking: every provider request is recorded (control requests are not):
  {id, provider, method, path, query, headers (lower-case names), body (JSON or text),
   stream, markers, attempt, status, outcome (completed | http_error | disconnected |
   error_event | cut | truncated | reset | hang_timeout), completed, disconnected,
   disconnected_at, tokens_sent, started_at, first_byte_at, ended_at}
`disconnected` is true when the client closed the connection before the stand-in
finished (detected at once, also while waiting between tokens). `?wait=S` waits up to S
seconds until no request is in flight before answering.
"""

import argparse
import asyncio
import base64
import datetime
import hashlib
import json
import os
import re
import signal
import socket
import string
import struct
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_KEY = "standin-key"
MAX_HEADER = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
DEFAULT_HANG_MS = 300000
MAX_RECORDS = 20000
B62 = string.digits + string.ascii_letters
MARKER_RE = re.compile(r"\[\[(.*?)\]\]", re.S)
ARG_PIECE_RE = re.compile(r'\s*[A-Za-z0-9_]+|\s*[^A-Za-z0-9_\s]+|\s+')
REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
           402: "Payment Required", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 413: "Payload Too Large",
           422: "Unprocessable Entity", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 529: "Overloaded"}
JSON_CT = "application/json"
SSE_CT = "text/event-stream; charset=utf-8"


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def b62(seed, n):
    """n base62 characters derived from seed: ids that look real and repeat per run."""
    digest = hashlib.sha256(seed.encode()).digest() * 3
    return "".join(B62[b % 62] for b in digest[:n])


def now_ms():
    return int(time.time() * 1000)


def words_of(text):
    return len(text.split())


class Gone(Exception):
    """The client closed its connection."""


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------------------------
# Markers and the reply plan

class Opts(dict):
    def int(self, key, default=None):
        if key not in self:
            return default
        try:
            return int(float(self[key]))
        except ValueError:
            return default

    def flag(self, key):
        return key in self and self[key] not in ("0", "false", "no")


def parse_markers(text):
    """Returns (text without markers, Opts, [(tool name, raw json args)])."""
    opts = Opts()
    tools = []
    for m in MARKER_RE.finditer(text or ""):
        body = m.group(1).strip()
        if body.startswith("tool:"):
            tm = re.match(r"(\S+)\s*(.*)", body[5:], re.S)
            if tm:
                tools.append((tm.group(1), tm.group(2).strip() or "{}"))
            continue
        for item in body.split():
            key, sep, value = item.partition(":")
            opts[key] = value if sep else "1"
    clean = " ".join(MARKER_RE.sub(" ", text or "").split())
    return clean, opts, tools


def arg_pieces(text):
    """Cuts a JSON argument string into token-like pieces ('{"', 'city', '":"', ...)."""
    pieces = ARG_PIECE_RE.findall(text)
    return pieces if "".join(pieces) == text and pieces else [text]


class Plan:
    """What to answer, decided from the request alone."""

    def __init__(self, provider, model, stream, user_text, tool_result, all_text,
                 max_tokens, seq, allow_tools=True):
        self.provider = provider
        self.model = model
        self.stream = stream
        self.raw_user = user_text or ""
        clean, self.opts, tools = parse_markers(self.raw_user)
        self.tool_result = tool_result
        self.seq = seq
        self.created = int(time.time())
        self.started_ns = time.monotonic_ns()
        self.tools = []
        if tool_result is None and allow_tools:
            for i, (name, raw) in enumerate(tools):
                try:
                    obj = json.loads(raw)
                    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
                except ValueError:
                    obj, text = {}, raw
                self.tools.append({"name": name, "args": obj, "text": text,
                                   "pieces": arg_pieces(text), "index": i})
        base = tool_result if tool_result is not None else clean
        toks = ["Echo:"] + base.split()
        n = self.opts.int("tokens")
        if n is not None:
            n = max(0, n)
            toks = toks[:n] + ["tok%d" % (i + 1) for i in range(len(toks), n)]
        elif self.tools and not self.opts.flag("with_text"):
            toks = []
        self.tokens = [t if i == 0 else " " + t for i, t in enumerate(toks)]
        self.finish = "tool" if self.tools else "stop"
        if max_tokens is not None and max_tokens >= 0 and len(self.tokens) > max_tokens:
            self.tokens = self.tokens[:max_tokens]
            self.tools = []
            self.finish = "length"
        forced = self.opts.get("finish")
        if forced in ("stop", "length", "content_filter"):
            self.finish = forced
        self.prompt_tokens = max(1, words_of(all_text))
        self.completion_tokens = len(self.tokens) + sum(1 + len(t["pieces"])
                                                        for t in self.tools)
        self.text = "".join(self.tokens)

    def id(self, prefix, n):
        return prefix + b62("%s-%d-%s" % (self.provider, self.seq, prefix), n)


# ---------------------------------------------------------------------------------
# Providers: each turns a Plan into bodies, frames and errors in its own format.
# frames(): list of (kind, bytes), kind "tok" (model output, counted, delayed) or
# "ctl"; plus the number of leading preamble frames.

def text_of_openai_content(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


class OpenAI:
    name = "openai"
    fingerprint = "fp_standin01"

    def __init__(self, server):
        self.server = server

    def headers(self, plan=None):
        return [("openai-version", "2020-10-01"), ("openai-processing-ms", "1"),
                ("x-request-id", "req_" + b62("oai%d" % (plan.seq if plan else 0), 32)),
                ("x-ratelimit-limit-requests", "10000"),
                ("x-ratelimit-remaining-requests", "9999"),
                ("x-ratelimit-reset-requests", "6ms")]

    def error(self, status, message, etype, code=None, param=None, extra=()):
        body = dumps({"error": {"message": message, "type": etype, "param": param,
                                "code": code}})
        return status, list(extra) + self.headers(), body, JSON_CT

    def auth_error(self, req):
        auth = req.h.get("authorization", "")
        if not auth:
            return self.error(401, "You didn't provide an API key. You need to provide "
                              "your API key in an Authorization header using Bearer auth "
                              "(i.e. Authorization: Bearer YOUR_KEY), or as the password "
                              "field (with blank username) if you're accessing the API "
                              "from your browser and are prompted for a username. You can "
                              "obtain an API key from "
                              "https://platform.openai.com/account/api-keys.",
                              "invalid_request_error")
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else auth
        if not self.server.key_ok(key):
            shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else key
            return self.error(401, "Incorrect API key provided: %s. You can find your API "
                              "key at https://platform.openai.com/account/api-keys." % shown,
                              "invalid_request_error", "invalid_api_key")
        return None

    def plan(self, req, seq):
        body = req.json
        if not isinstance(body, dict):
            return self.error(400, "We could not parse the JSON body of your request. "
                              "(HINT: This likely means you aren't using your HTTP library "
                              "correctly. The OpenAI API expects a JSON payload, but what "
                              "was sent was not valid JSON. If you have trouble figuring "
                              "out how to fix this, please contact us through our help "
                              "center at help.openai.com.)", "invalid_request_error")
        if not body.get("model"):
            return self.error(400, "you must provide a model parameter",
                              "invalid_request_error")
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            return self.error(400, "Missing required parameter: 'messages'.",
                              "invalid_request_error", "missing_required_parameter",
                              "messages")
        model = str(body["model"])
        if model.startswith("missing"):
            return self.error(404, "The model `%s` does not exist or you do not have "
                              "access to it." % model, "invalid_request_error",
                              "model_not_found")
        refused = self.parameter_error(model, body)
        if refused:
            return refused
        user, tool_result, texts = "", None, []
        for m in msgs:
            if isinstance(m, dict):
                texts.append(text_of_openai_content(m.get("content")))
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role") == "user":
                user = text_of_openai_content(m.get("content"))
                break
        last = msgs[-1] if isinstance(msgs[-1], dict) else {}
        if last.get("role") in ("tool", "function"):
            tool_result = text_of_openai_content(last.get("content"))
        mt = body.get("max_completion_tokens", body.get("max_tokens"))
        plan = Plan("openai", model, bool(body.get("stream")), user, tool_result,
                    " ".join(texts), mt if isinstance(mt, int) else None, seq)
        so = body.get("stream_options") or {}
        plan.include_usage = bool(so.get("include_usage")) and not plan.opts.flag("no_usage")
        plan.obfuscation = so.get("include_obfuscation", True) is not False
        plan.chat_id = plan.id("chatcmpl-", 29)
        for t in plan.tools:
            t["id"] = "call_" + b62("oai-call-%d-%d" % (seq, t["index"]), 24)
        return plan

    @staticmethod
    def reasoning_model(model):
        """OpenAI's reasoning models (o-series, gpt-5 but its chat models)."""
        if model.startswith("gpt-5"):
            return "-chat" not in model
        return model.startswith(("o1", "o3", "o4"))

    def parameter_error(self, model, body):
        """OpenAI's 400s for parameters a model does not take."""
        if self.reasoning_model(model):
            if "max_tokens" in body:
                return self.error(400, "Unsupported parameter: 'max_tokens' is not "
                                  "supported with this model. Use 'max_completion_tokens' "
                                  "instead.", "invalid_request_error",
                                  "unsupported_parameter", "max_tokens")
            t = body.get("temperature")
            if t is not None and t != 1:
                return self.error(400, "Unsupported value: 'temperature' does not "
                                  "support %s with this model. Only the default (1) value "
                                  "is supported." % t, "invalid_request_error",
                                  "unsupported_value", "temperature")
            if model.startswith(("o1-mini", "o1-preview")):
                if any(isinstance(m, dict) and m.get("role") in ("system", "developer")
                       for m in body.get("messages") or []):
                    return self.error(400, "Unsupported value: 'messages[0].role' does "
                                      "not support 'system' with this model.",
                                      "invalid_request_error", "unsupported_value",
                                      "messages[0].role")
                if "reasoning_effort" in body:
                    return self.error(400, "Unsupported parameter: 'reasoning_effort' "
                                      "is not supported with this model.",
                                      "invalid_request_error", "unsupported_parameter",
                                      "reasoning_effort")
        elif "reasoning_effort" in body:
            return self.error(400, "Unrecognized request argument supplied: "
                              "reasoning_effort", "invalid_request_error", None, None)
        return None

    def finish_reason(self, plan):
        return {"tool": "tool_calls"}.get(plan.finish, plan.finish)

    def usage(self, plan):
        return {"prompt_tokens": plan.prompt_tokens,
                "completion_tokens": plan.completion_tokens,
                "total_tokens": plan.prompt_tokens + plan.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0,
                                              "rejected_prediction_tokens": 0}}

    def full_response(self, plan):
        return self.headers(plan), self.full_body(plan), JSON_CT

    def full_body(self, plan):
        msg = {"role": "assistant", "content": plan.text if plan.tokens or not plan.tools
               else None, "refusal": None, "annotations": []}
        if plan.tools:
            msg["tool_calls"] = [{"id": t["id"], "type": "function",
                                  "function": {"name": t["name"], "arguments": t["text"]}}
                                 for t in plan.tools]
        return dumps({"id": plan.chat_id, "object": "chat.completion",
                      "created": plan.created, "model": plan.model,
                      "choices": [{"index": 0, "message": msg, "logprobs": None,
                                   "finish_reason": self.finish_reason(plan)}],
                      "usage": self.usage(plan), "service_tier": "default",
                      "system_fingerprint": self.fingerprint})

    def chunk(self, plan, delta, finish=None, usage=False):
        obj = {"id": plan.chat_id, "object": "chat.completion.chunk",
               "created": plan.created, "model": plan.model, "service_tier": "default",
               "system_fingerprint": self.fingerprint}
        if usage:
            obj["choices"] = []
            obj["usage"] = self.usage(plan)
        else:
            obj["choices"] = [{"index": 0, "delta": delta, "logprobs": None,
                               "finish_reason": finish}]
            if plan.include_usage:
                obj["usage"] = None
            if plan.obfuscation:
                size = len(json.dumps(delta))
                obj["obfuscation"] = b62("obf%d-%d" % (plan.seq, size), 1 + (-size) % 12)
        return b"data: " + dumps(obj) + b"\n\n"

    def frames(self, plan):
        out = []
        if plan.tokens or not plan.tools:
            out.append(("ctl", self.chunk(plan, {"role": "assistant", "content": "",
                                                 "refusal": None})))
            out += [("tok", self.chunk(plan, {"content": t})) for t in plan.tokens]
        for t in plan.tools:
            head = {"index": t["index"], "id": t["id"], "type": "function",
                    "function": {"name": t["name"], "arguments": ""}}
            delta = {"tool_calls": [head]}
            if not out:
                delta = {"role": "assistant", "content": None, "tool_calls": [head],
                         "refusal": None}
            out.append(("tok", self.chunk(plan, delta)))
            out += [("tok", self.chunk(plan, {"tool_calls": [{
                "index": t["index"], "function": {"arguments": p}}]}))
                for p in t["pieces"]]
        out.append(("ctl", self.chunk(plan, {}, self.finish_reason(plan))))
        if plan.include_usage:
            out.append(("ctl", self.chunk(plan, None, usage=True)))
        out.append(("ctl", b"data: [DONE]\n\n"))
        return SSE_CT, self.headers(plan), out

    def mid_error(self, plan):
        st = plan.opts.int("error_status", 500)
        _, _, body, _ = self.status_error(st, plan)
        return b"data: " + body + b"\n\n"

    def keepalive(self):
        return b": keepalive\n\n"

    def status_error(self, status, plan, retry=()):
        o = plan.opts
        if status == 429 and o.flag("quota"):
            return self.error(429, "You exceeded your current quota, please check your "
                              "plan and billing details. For more information on this "
                              "error, read the docs: https://platform.openai.com/docs/"
                              "guides/error-codes/api-errors.", "insufficient_quota",
                              "insufficient_quota", extra=retry)
        if status == 429:
            wait = o.get("retry_after", "20")
            return self.error(429, "Rate limit reached for %s in organization org-standin "
                              "on requests per min (RPM): Limit 3, Used 3, Requested 1. "
                              "Please try again in %ss. Visit https://platform.openai.com/"
                              "account/rate-limits to learn more." % (plan.model, wait),
                              "requests", "rate_limit_exceeded", extra=retry)
        if status == 401:
            return self.error(401, "Incorrect API key provided.", "invalid_request_error",
                              "invalid_api_key", extra=retry)
        if status == 503:
            return self.error(503, "The engine is currently overloaded, please try again "
                              "later", "server_error", extra=retry)
        if status >= 500:
            return self.error(status, "The server had an error while processing your "
                              "request. Sorry about that!", "server_error", extra=retry)
        return self.error(status, "Stand-in error %d requested by a marker." % status,
                          "invalid_request_error", extra=retry)

    def models(self, req):
        data = [{"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
                for m in ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "standin-model")]
        name = req.path[len("/v1/models/"):] if req.path.startswith("/v1/models/") else None
        if name is not None:
            if name.startswith("missing"):
                return self.error(404, "The model '%s' does not exist" % name,
                                  "invalid_request_error", "model_not_found", "model")
            return 200, self.headers(), dumps({"id": name, "object": "model",
                                               "created": 1715367049,
                                               "owned_by": "system"}), JSON_CT
        return 200, self.headers(), dumps({"object": "list", "data": data}), JSON_CT


def text_of_anthropic_content(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content
                        if isinstance(b, dict) and b.get("type") == "text"
                        and isinstance(b.get("text"), str))
    return ""


class Anthropic:
    name = "anthropic"
    ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                   402: "billing_error", 403: "permission_error", 404: "not_found_error",
                   409: "conflict_error", 413: "request_too_large",
                   429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
                   529: "overloaded_error"}
    MESSAGES = {429: "This request would exceed the rate limit for your organization "
                     "(standin) of 50 requests per minute. For details, refer to: "
                     "https://docs.claude.com/en/api/rate-limits. You can see the response "
                     "headers for current usage. Please reduce the prompt length or the "
                     "maximum tokens requested, or try again later. You may also contact "
                     "sales at https://www.anthropic.com/contact-sales to discuss your "
                     "options for a rate limit increase.",
                529: "Overloaded", 500: "Internal server error",
                504: "Request timed out", 401: "invalid x-api-key"}

    def __init__(self, server):
        self.server = server

    def request_id(self, seq):
        return "req_011C" + b62("ant-req-%d" % seq, 20)

    def error(self, status, message, etype=None, extra=(), seq=0):
        etype = etype or self.ERROR_TYPES.get(status, "api_error" if status >= 500
                                              else "invalid_request_error")
        rid = self.request_id(seq)
        body = dumps({"type": "error", "error": {"type": etype, "message": message},
                      "request_id": rid})
        return status, list(extra) + [("request-id", rid)], body, JSON_CT

    def auth_error(self, req):
        key = req.h.get("x-api-key")
        if key is None:
            return self.error(401, "x-api-key header is required")
        if not self.server.key_ok(key):
            return self.error(401, "invalid x-api-key")
        return None

    def plan(self, req, seq):
        if not req.h.get("anthropic-version"):
            return self.error(400, "anthropic-version: header is required", seq=seq)
        body = req.json
        if not isinstance(body, dict):
            return self.error(400, "There was an issue with the format or content of "
                              "your request: the body is not valid JSON.", seq=seq)
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                return self.error(400, "%s: Field required" % field, seq=seq)
        model = str(body["model"])
        if model.startswith("missing"):
            return self.error(404, "model: %s" % model, seq=seq)
        refused = self.parameter_error(body)
        if refused:
            return self.error(400, refused, seq=seq)
        msgs = body["messages"] if isinstance(body["messages"], list) else []
        texts = [text_of_anthropic_content(body.get("system"))]
        user, tool_result = "", None
        for m in msgs:
            if isinstance(m, dict):
                texts.append(text_of_anthropic_content(m.get("content")))
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role") == "user":
                t = text_of_anthropic_content(m.get("content"))
                if t:
                    user = t
                    break
        last = msgs[-1] if msgs and isinstance(msgs[-1], dict) else {}
        if last.get("role") == "user" and isinstance(last.get("content"), list):
            results = [b for b in last["content"]
                       if isinstance(b, dict) and b.get("type") == "tool_result"]
            if results:
                c = results[-1].get("content")
                tool_result = c if isinstance(c, str) else text_of_anthropic_content(c)
        mt = body.get("max_tokens")
        plan = Plan("anthropic", model, bool(body.get("stream")), user, tool_result,
                    " ".join(texts), mt if isinstance(mt, int) else None, seq)
        plan.msg_id = "msg_01" + b62("ant-msg-%d" % seq, 22)
        # With thinking on, Claude thinks first: a thinking block with its signature
        thinking = body.get("thinking")
        plan.thinking = None
        if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
            plan.thinking = ["Thinking", " about", " the", " request."]
            plan.signature = base64.b64encode(hashlib.sha256(
                ("ant-sig-%d" % seq).encode()).digest() * 2).decode()
            plan.completion_tokens += len(plan.thinking)
        for t in plan.tools:
            t["id"] = "toolu_01" + b62("ant-tool-%d-%d" % (seq, t["index"]), 22)
        return plan

    @staticmethod
    def parameter_error(body):
        """The message of Anthropic's 400 for sampling and thinking settings it
        refuses, or None."""
        t = body.get("temperature")
        if isinstance(t, (int, float)) and not 0 <= t <= 1:
            return "temperature: Input should be less than or equal to 1"
        thinking = body.get("thinking")
        if not isinstance(thinking, dict) or thinking.get("type") == "disabled":
            return None
        if t is not None and t != 1:
            return ("temperature may only be set to 1 when thinking is enabled. Please "
                    "consult our documentation at https://docs.claude.com/en/docs/"
                    "build-with-claude/extended-thinking#important-considerations-when-"
                    "using-extended-thinking")
        if thinking.get("type") == "enabled":
            budget = thinking.get("budget_tokens")
            if not isinstance(budget, int):
                return "thinking.enabled.budget_tokens: Field required"
            if budget < 1024:
                return ("thinking.enabled.budget_tokens: Input should be greater than "
                        "or equal to 1024")
            mt = body.get("max_tokens")
            if isinstance(mt, int) and budget >= mt:
                return ("`max_tokens` must be greater than `thinking.budget_tokens`. "
                        "Please consult our documentation at https://docs.claude.com/"
                        "en/docs/build-with-claude/extended-thinking#max-tokens-and-"
                        "context-window-size")
        return None

    def stop_reason(self, plan):
        return {"stop": "end_turn", "length": "max_tokens", "tool": "tool_use",
                "content_filter": "refusal"}[plan.finish]

    def usage(self, plan, output):
        return {"input_tokens": plan.prompt_tokens, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                   "ephemeral_1h_input_tokens": 0},
                "output_tokens": output, "service_tier": "standard"}

    def message(self, plan, content, stop, output):
        return {"model": plan.model, "id": plan.msg_id, "type": "message",
                "role": "assistant", "content": content, "stop_reason": stop,
                "stop_sequence": None, "usage": self.usage(plan, output)}

    def full_response(self, plan):
        return [("request-id", self.request_id(plan.seq))], self.full_body(plan), JSON_CT

    def full_body(self, plan):
        content = []
        if plan.thinking:
            content.append({"type": "thinking", "thinking": "".join(plan.thinking),
                            "signature": plan.signature})
        if plan.tokens or not plan.tools:
            content.append({"type": "text", "text": plan.text})
        content += [{"type": "tool_use", "id": t["id"], "name": t["name"],
                     "input": t["args"]} for t in plan.tools]
        return dumps(self.message(plan, content, self.stop_reason(plan),
                                  plan.completion_tokens))

    @staticmethod
    def event(obj):
        return b"event: " + obj["type"].encode() + b"\ndata: " + dumps(obj) + b"\n\n"

    def frames(self, plan):
        ev = self.event
        out = [("ctl", ev({"type": "message_start",
                           "message": self.message(plan, [], None, 1)}))]
        index = 0
        pinged = False
        if plan.thinking:
            out.append(("ctl", ev({"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "thinking", "thinking": "",
                                                     "signature": ""}})))
            out.append(("ctl", ev({"type": "ping"})))
            pinged = True
            out += [("ctl", ev({"type": "content_block_delta", "index": 0,
                                "delta": {"type": "thinking_delta", "thinking": t}}))
                    for t in plan.thinking]
            out.append(("ctl", ev({"type": "content_block_delta", "index": 0,
                                   "delta": {"type": "signature_delta",
                                             "signature": plan.signature}})))
            out.append(("ctl", ev({"type": "content_block_stop", "index": 0})))
            index = 1
        if plan.tokens or not plan.tools:
            out.append(("ctl", ev({"type": "content_block_start", "index": index,
                                   "content_block": {"type": "text", "text": ""}})))
            if not pinged:
                out.append(("ctl", ev({"type": "ping"})))
                pinged = True
            out += [("tok", ev({"type": "content_block_delta", "index": index,
                                "delta": {"type": "text_delta", "text": t}}))
                    for t in plan.tokens]
            out.append(("ctl", ev({"type": "content_block_stop", "index": index})))
            index += 1
        for t in plan.tools:
            out.append(("tok", ev({"type": "content_block_start", "index": index,
                                   "content_block": {"type": "tool_use", "id": t["id"],
                                                     "name": t["name"], "input": {}}})))
            if not pinged:
                out.append(("ctl", ev({"type": "ping"})))
                pinged = True
            out.append(("ctl", ev({"type": "content_block_delta", "index": index,
                                   "delta": {"type": "input_json_delta",
                                             "partial_json": ""}})))
            out += [("tok", ev({"type": "content_block_delta", "index": index,
                                "delta": {"type": "input_json_delta", "partial_json": p}}))
                    for p in t["pieces"]]
            out.append(("ctl", ev({"type": "content_block_stop", "index": index})))
            index += 1
        out.append(("ctl", ev({"type": "message_delta",
                               "delta": {"stop_reason": self.stop_reason(plan),
                                         "stop_sequence": None},
                               "usage": {"input_tokens": plan.prompt_tokens,
                                         "cache_creation_input_tokens": 0,
                                         "cache_read_input_tokens": 0,
                                         "output_tokens": plan.completion_tokens}})))
        out.append(("ctl", ev({"type": "message_stop"})))
        return SSE_CT, [("request-id", self.request_id(plan.seq))], out

    def mid_error(self, plan):
        etype = plan.opts.get("error_type")
        status = plan.opts.int("error_status", 529)
        etype = etype or self.ERROR_TYPES.get(status, "api_error")
        msg = self.MESSAGES.get(status, "Internal server error")
        return self.event({"type": "error", "error": {"type": etype, "message": msg}})

    def keepalive(self):
        return self.event({"type": "ping"})

    def status_error(self, status, plan, retry=()):
        extra = list(retry)
        if status == 429:
            extra += [("anthropic-ratelimit-requests-limit", "50"),
                      ("anthropic-ratelimit-requests-remaining", "0")]
        return self.error(status, self.MESSAGES.get(status, "Stand-in error %d requested "
                                                    "by a marker." % status),
                          extra=extra, seq=plan.seq)

    def models(self, req):
        data = [{"type": "model", "id": m, "display_name": m,
                 "created_at": "2025-05-14T00:00:00Z"}
                for m in ("claude-sonnet-4-5", "claude-haiku-4-5", "standin-model")]
        return 200, [("request-id", self.request_id(0))], dumps({
            "data": data, "has_more": False, "first_id": data[0]["id"],
            "last_id": data[-1]["id"]}), JSON_CT


class Gemini:
    name = "gemini"
    STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
              404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
              500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE",
              504: "DEADLINE_EXCEEDED"}
    MESSAGES = {429: "Resource has been exhausted (e.g. check quota).",
                500: "An internal error has occurred. Please retry or report in "
                     "https://developers.generativeai.google/guide/troubleshooting",
                503: "The model is overloaded. Please try again later.",
                504: "Deadline expired before operation could complete."}
    JSON_CT = "application/json; charset=UTF-8"

    def __init__(self, server):
        self.server = server

    def error(self, status, message, details=None):
        err = {"code": status, "message": message,
               "status": self.STATUS.get(status, "UNKNOWN")}
        if details:
            err["details"] = details
        return status, [], dumps({"error": err}), self.JSON_CT

    def auth_error(self, req):
        key = req.h.get("x-goog-api-key") or (req.query.get("key") or [None])[0]
        if not key:
            return self.error(403, "Method doesn't allow unregistered callers (callers "
                              "without established identity). Please use API Key or other "
                              "form of API consumer identity to call this API.")
        if not self.server.key_ok(key):
            msg = "API key not valid. Please pass a valid API key."
            return self.error(400, msg, [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                 "reason": "API_KEY_INVALID", "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                 "locale": "en-US", "message": msg}])
        return None

    def plan(self, req, seq, model, method):
        body = req.json
        if not isinstance(body, dict):
            return self.error(400, "Invalid JSON payload received.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return self.error(400, "* GenerateContentRequest.contents: contents is not "
                              "specified\n")
        if model.startswith("missing"):
            return self.error(404, "models/%s is not found for API version %s, or is not "
                              "supported for %s. Call ListModels to see the list of "
                              "available models and their supported methods."
                              % (model, req.path.split("/")[1], method))
        unsigned = self.unsigned_call(model, contents)
        if unsigned:
            return self.error(400, unsigned)
        texts = []

        def parts_text(c):
            parts = c.get("parts") if isinstance(c, dict) else None
            return " ".join(p["text"] for p in parts or []
                            if isinstance(p, dict) and isinstance(p.get("text"), str))
        si = body.get("systemInstruction") or body.get("system_instruction")
        if isinstance(si, dict):
            texts.append(parts_text(si))
        texts += [parts_text(c) for c in contents]
        user, tool_result = "", None
        for c in reversed(contents):
            if isinstance(c, dict) and c.get("role", "user") == "user" and parts_text(c):
                user = parts_text(c)
                break
        last = contents[-1] if isinstance(contents[-1], dict) else {}
        fr = [p["functionResponse"] for p in last.get("parts") or []
              if isinstance(p, dict) and isinstance(p.get("functionResponse"), dict)]
        if fr:
            tool_result = json.dumps(fr[-1].get("response", {}), ensure_ascii=False,
                                     separators=(",", ":"))
        gc = body.get("generationConfig") or body.get("generation_config") or {}
        mt = gc.get("maxOutputTokens", gc.get("max_output_tokens"))
        plan = Plan("gemini", model, method == "streamGenerateContent", user,
                    tool_result, " ".join(texts), mt if isinstance(mt, int) else None, seq)
        plan.sse = (req.query.get("alt") or [""])[0] == "sse"
        plan.response_id = b62("gem-%d" % seq, 22)
        return plan

    @staticmethod
    def thinks(model):
        """Models that think and sign their function calls."""
        return model.startswith(("gemini-2.5", "gemini-3"))

    @staticmethod
    def unsigned_call(model, contents):
        """Gemini 3's 400 for a model turn whose first function call has no
        thought signature (Google's skip_thought_signature_validator passes)."""
        if not model.startswith("gemini-3"):
            return None
        position = 0
        for c in contents:
            if not isinstance(c, dict):
                continue
            parts = c.get("parts") if isinstance(c.get("parts"), list) else []
            calls = [p for p in parts if isinstance(p, dict)
                     and isinstance(p.get("functionCall"), dict)]
            position += len(parts)
            if c.get("role") == "model" and calls and not calls[0].get("thoughtSignature"):
                return ("Function call is missing a thought_signature in functionCall "
                        "parts. This is required for tools to work correctly, and "
                        "missing thought_signature may lead to degraded model "
                        "performance. Additional data, function call `default_api:%s` , "
                        "position %d. Please refer to https://ai.google.dev/gemini-api/"
                        "docs/thought-signatures for more details."
                        % (calls[0]["functionCall"].get("name"), position))
        return None

    def finish_reason(self, plan):
        return {"stop": "STOP", "tool": "STOP", "length": "MAX_TOKENS",
                "content_filter": "SAFETY"}[plan.finish]

    def usage(self, plan):
        return {"promptTokenCount": plan.prompt_tokens,
                "candidatesTokenCount": plan.completion_tokens,
                "totalTokenCount": plan.prompt_tokens + plan.completion_tokens,
                "promptTokensDetails": [{"modality": "TEXT",
                                         "tokenCount": plan.prompt_tokens}]}

    def response(self, plan, parts, last):
        cand = {"content": {"parts": parts, "role": "model"}}
        if last:
            cand["finishReason"] = self.finish_reason(plan)
        cand["index"] = 0
        obj = {"candidates": [cand]}
        if last:
            obj["usageMetadata"] = self.usage(plan)
        obj["modelVersion"] = plan.model
        obj["responseId"] = plan.response_id
        return obj

    def tool_parts(self, plan):
        parts = [{"functionCall": {"name": t["name"], "args": t["args"]
                                   if isinstance(t["args"], dict) else {}}}
                 for t in plan.tools]
        if parts and self.thinks(plan.model):   # the step's first call is signed
            parts[0]["thoughtSignature"] = base64.b64encode(hashlib.sha256(
                ("gem-sig-%d" % plan.seq).encode()).digest()).decode()
        return parts

    def full_response(self, plan):
        return [], self.full_body(plan), self.JSON_CT

    def full_body(self, plan):
        parts = [{"text": plan.text}] if plan.tokens or not plan.tools else []
        return dumps(self.response(plan, parts + self.tool_parts(plan), True))

    def wrap(self, plan, obj, first):
        if plan.sse:
            return b"data: " + dumps(obj) + b"\r\n\r\n"
        text = json.dumps(obj, ensure_ascii=False, indent=2).encode()
        return (b"[" if first else b",\r\n") + text

    def frames(self, plan):
        objs = [self.response(plan, [{"text": t}], False) for t in plan.tokens]
        objs += [self.response(plan, [p], False) for p in self.tool_parts(plan)]
        if not objs:
            objs = [self.response(plan, [{"text": ""}], True)]
        else:
            objs[-1] = self.response(plan, objs[-1]["candidates"][0]["content"]["parts"],
                                     True)
        out = [("tok", self.wrap(plan, o, i == 0)) for i, o in enumerate(objs)]
        if not plan.sse:
            out.append(("ctl", b"\n]"))
        ctype = "text/event-stream" if plan.sse else self.JSON_CT
        return ctype, [], out

    def mid_error(self, plan):
        status = plan.opts.int("error_status", 503)
        obj = {"error": {"code": status, "message": self.MESSAGES.get(
            status, "Stand-in error"), "status": self.STATUS.get(status, "UNKNOWN")}}
        return self.wrap(plan, obj, False) if plan.sse else b",\r\n" + dumps(obj) + b"\n]"

    def keepalive(self):
        return None

    def status_error(self, status, plan, retry=()):
        details = None
        ra = plan.opts.get("retry_after")
        if ra is not None:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": "%ss" % ra}]
        return self.error(status, self.MESSAGES.get(status, "Stand-in error %d requested"
                                                    " by a marker." % status), details)

    def models(self, req):
        models = [{"name": "models/" + m, "version": "001", "displayName": m,
                   "inputTokenLimit": 1048576, "outputTokenLimit": 8192,
                   "supportedGenerationMethods": ["generateContent", "countTokens"]}
                  for m in ("gemini-2.0-flash", "gemini-2.5-flash", "standin-model")]
        return 200, [], dumps({"models": models}), self.JSON_CT


class Ollama:
    name = "ollama"
    JSON_CT = "application/json; charset=utf-8"

    def __init__(self, server):
        self.server = server

    def error(self, status, message, extra=()):
        return status, list(extra), dumps({"error": message}), self.JSON_CT

    def auth_error(self, req):
        return None

    def plan(self, req, seq):
        body = req.json
        if not isinstance(body, dict):
            return self.error(400, "invalid character '%s' looking for beginning of value"
                              % (req.body[:1].decode("latin-1") or " "))
        if not body.get("model"):
            return self.error(400, "model is required")
        model = str(body["model"])
        if model.startswith("missing"):
            return self.error(404, "model \"%s\" not found, try pulling it first" % model)
        msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
        texts = [m.get("content", "") for m in msgs
                 if isinstance(m, dict) and isinstance(m.get("content"), str)]
        user, tool_result = "", None
        for m in reversed(msgs):
            if isinstance(m, dict) and m.get("role") == "user":
                user = m.get("content") if isinstance(m.get("content"), str) else ""
                break
        if msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "tool":
            tool_result = str(msgs[-1].get("content", ""))
        opts = body.get("options") if isinstance(body.get("options"), dict) else {}
        mt = opts.get("num_predict")
        plan = Plan("ollama", model, body.get("stream", True) is not False, user,
                    tool_result, " ".join(texts),
                    mt if isinstance(mt, int) and mt >= 0 else None, seq)
        return plan

    @staticmethod
    def created_at():
        ns = time.time_ns()
        dt = datetime.datetime.fromtimestamp(ns // 1000000000, datetime.timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%09dZ" % (ns % 1000000000)

    def line(self, plan, message, done=False):
        obj = {"model": plan.model, "created_at": self.created_at(), "message": message}
        if done:
            obj["done_reason"] = {"length": "length"}.get(plan.finish, "stop")
        obj["done"] = done
        if done:
            total = max(1, time.monotonic_ns() - plan.started_ns)
            obj.update({"total_duration": total + 1500000, "load_duration": 1500000,
                        "prompt_eval_count": plan.prompt_tokens,
                        "prompt_eval_duration": 250000,
                        "eval_count": plan.completion_tokens,
                        "eval_duration": total})
        return obj

    def tool_calls(self, tools):
        return [{"function": {"name": t["name"], "arguments": t["args"]
                              if isinstance(t["args"], dict) else {}}} for t in tools]

    def full_response(self, plan):
        return [], self.full_body(plan), self.JSON_CT

    def full_body(self, plan):
        msg = {"role": "assistant", "content": plan.text}
        if plan.tools:
            msg["tool_calls"] = self.tool_calls(plan.tools)
        return dumps(self.line(plan, msg, True))

    def frames(self, plan):
        out = [("tok", dumps(self.line(plan, {"role": "assistant", "content": t})) + b"\n")
               for t in plan.tokens]
        out += [("tok", dumps(self.line(plan, {"role": "assistant", "content": "",
                                               "tool_calls": self.tool_calls([t])})) + b"\n")
                for t in plan.tools]
        out.append(("ctl", dumps(self.line(plan, {"role": "assistant", "content": ""},
                                           True)) + b"\n"))
        return "application/x-ndjson", [], out

    def mid_error(self, plan):
        return dumps({"error": "an error was encountered while running the model: "
                               "unexpected EOF"}) + b"\n"

    def keepalive(self):
        return None

    def status_error(self, status, plan, retry=()):
        msg = {503: "server busy, please try again.  maximum pending requests exceeded",
               429: "too many requests"}.get(status, "stand-in error %d requested by a "
                                                     "marker" % status)
        return self.error(status, msg, retry)

    def models(self, req):
        if req.path == "/api/version":
            return 200, [], dumps({"version": "0.12.6"}), self.JSON_CT
        models = [{"name": m, "model": m, "modified_at": "2025-01-01T00:00:00Z",
                   "size": 2019393189, "digest": b62(m, 64).lower(),
                   "details": {"parent_model": "", "format": "gguf", "family": "llama",
                               "families": ["llama"], "parameter_size": "3.2B",
                               "quantization_level": "Q4_K_M"}}
                  for m in ("llama3.2:latest", "qwen2.5:0.5b", "standin-model:latest")]
        return 200, [], dumps({"models": models}), self.JSON_CT


class N8n:
    name = "n8n"
    JSON_CT = "application/json; charset=utf-8"
    MODES = ("stream", "sse", "json", "text", "started")

    def __init__(self, server):
        self.server = server

    def error(self, status, message, hint=None, extra=()):
        obj = {"code": status, "message": message}
        if hint:
            obj["hint"] = hint
        return status, list(extra), dumps(obj), self.JSON_CT

    def auth_error(self, req):
        return None

    def plan(self, req, seq):
        rest = req.path.split("/", 2)[2] if req.path.count("/") >= 2 else ""
        wid = unquote(rest.split("/")[0])
        if wid.startswith("missing") or not wid:
            return self.error(404, "The requested webhook \"%s %s\" is not registered."
                              % (req.method, wid), "The workflow must be active for a "
                              "production URL to run successfully. You can activate the "
                              "workflow using the toggle in the top-right of the editor. "
                              "Note that unlike test URL calls, production URL calls "
                              "aren't shown on the canvas (only in the executions list)")
        mode = (req.query.get("mode") or [""])[0]
        if mode not in self.MODES:
            mode = next((m for m in self.MODES if wid.startswith(m)), "stream")
        body = req.json
        text = None
        if isinstance(body, dict):
            for k in ("chatInput", "message", "text", "input", "query", "prompt"):
                if isinstance(body.get(k), str):
                    text = body[k]
                    break
        if text is None:
            text = (req.query.get("chatInput") or req.query.get("message") or [None])[0]
        if text is None:
            text = req.body.decode("utf-8", "replace")
        plan = Plan("n8n", "n8n", mode in ("stream", "sse"), text, None, text, None, seq,
                    allow_tools=False)
        plan.mode = mode
        nodes = max(1, plan.opts.int("n8n_nodes", 1))
        plan.nodes = []
        for i in range(nodes):
            h = hashlib.md5(b"n8n-node-%d" % i).hexdigest()
            plan.nodes.append({"nodeId": "-".join((h[:8], h[8:12], h[12:16], h[16:20],
                                                   h[20:])),
                               "nodeName": "AI Agent" if i == 0 else "AI Agent%d" % i})
        return plan

    def chunk(self, plan, ctype, node, content=None):
        obj = {"type": ctype}
        if content is not None:
            obj["content"] = content
        obj["metadata"] = {"nodeId": node["nodeId"], "nodeName": node["nodeName"],
                           "timestamp": now_ms(), "runIndex": 0, "itemIndex": 0}
        return self.wrap(plan, obj)

    def wrap(self, plan, obj):
        if plan.mode == "sse":
            return b"data: " + dumps(obj) + b"\n\n"
        return dumps(obj) + b"\n"

    def full_body(self, plan):
        if plan.mode == "text":
            return plan.text.encode()
        if plan.mode == "started":
            return dumps({"message": "Workflow was started"})
        return dumps({"output": plan.text})

    def full_response(self, plan):
        ctype = "text/plain; charset=utf-8" if plan.mode == "text" else self.JSON_CT
        return [], self.full_body(plan), ctype

    def frames(self, plan):
        out = []
        n = len(plan.nodes)
        per = -(-len(plan.tokens) // n) if plan.tokens else 0
        for i, node in enumerate(plan.nodes):
            mine = plan.tokens[i * per:(i + 1) * per] if per else []
            out.append(("ctl", self.chunk(plan, "begin", node)))
            out += [("tok", self.chunk(plan, "item", node, t)) for t in mine]
            out.append(("ctl", self.chunk(plan, "end", node)))
        ctype = SSE_CT if plan.mode == "sse" else self.JSON_CT
        return ctype, [("Cache-Control", "no-cache")], out

    def mid_error(self, plan):
        return self.chunk(plan, "error", plan.nodes[0],
                          "Stand-in workflow error requested by a marker")

    def keepalive(self):
        return None

    def keepalive_for(self, plan):
        return self.wrap(plan, {"type": "keepalive"})

    def status_error(self, status, plan, retry=()):
        msg = "Error in workflow" if status == 500 else \
            "Stand-in error %d requested by a marker." % status
        return self.error(status, msg, extra=retry)


# ---------------------------------------------------------------------------------
# HTTP/1.1 connection handling

class Request:
    def __init__(self, method, target, version, headers, body):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.h = {}
        for k, v in headers:
            k = k.lower()
            self.h[k] = self.h[k] + ", " + v if k in self.h else v
        self.body = body
        parts = urlsplit(target)
        self.path = parts.path
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.json = None
        if body:
            try:
                self.json = json.loads(body)
            except ValueError:
                self.json = None
        self.keep_alive = (version == "HTTP/1.1"
                           and "close" not in self.h.get("connection", "").lower())


class Conn:
    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer
        self.buf = bytearray()
        self.eof = False
        self.gone = asyncio.Event()
        self.watcher = None

    async def _fill(self):
        try:
            data = await self.r.read(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _exact(self, n):
        while len(self.buf) < n:
            if self.eof or not await self._fill():
                raise BadRequest("body cut short")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > MAX_HEADER or self.eof or not await self._fill():
                raise BadRequest("line too long or cut short")

    async def read_request(self):
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            if len(self.buf) > MAX_HEADER:
                raise BadRequest("headers too large")
            if self.eof or not await self._fill():
                if self.buf.strip():
                    raise BadRequest("request cut short")
                return None
        head = bytes(self.buf[:i]).decode("latin-1").lstrip("\r\n")
        del self.buf[:i + 4]
        lines = head.split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise BadRequest("bad request line")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers.append((name.strip(), value.strip()))
        h = {k.lower(): v for k, v in headers}
        if h.get("expect", "").lower() == "100-continue":
            self.w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = b""
        if "chunked" in h.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                size = int((await self._line()).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while await self._line():
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise BadRequest("body too large")
                parts.append(await self._exact(size))
                await self._exact(2)
            body = b"".join(parts)
        elif "content-length" in h:
            n = int(h["content-length"])
            if n > MAX_BODY:
                raise BadRequest("body too large")
            body = await self._exact(n)
        return Request(method, target, version, headers, body)

    def watch(self):
        """From now on notice at once when the client goes away."""
        self.gone.clear()
        self.watcher = asyncio.ensure_future(self._watch())

    async def _watch(self):
        while not self.eof:
            if not await self._fill():
                break
        self.gone.set()

    async def unwatch(self):
        if self.watcher:
            self.watcher.cancel()
            try:
                await self.watcher
            except (asyncio.CancelledError, Exception):
                pass
            self.watcher = None

    async def write(self, data):
        if self.gone.is_set() or self.w.is_closing():
            raise Gone()
        self.w.write(data)
        try:
            await self.w.drain()
        except (ConnectionError, OSError):
            raise Gone()

    async def sleep(self, seconds):
        if self.gone.is_set():
            raise Gone()
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self.gone.wait(), seconds)
        except asyncio.TimeoutError:
            return
        raise Gone()

    @staticmethod
    def head(status, headers, keep_alive):
        lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status"))]
        lines.append("Date: " + time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
        lines += ["%s: %s" % kv for kv in headers]
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def send_full(self, status, headers, body, ctype, keep_alive):
        hdrs = [("Content-Type", ctype), ("Content-Length", str(len(body)))] + headers
        await self.write(self.head(status, hdrs, keep_alive) + body)

    async def start_chunked(self, status, headers, ctype, keep_alive):
        hdrs = [("Content-Type", ctype), ("Transfer-Encoding", "chunked")] + headers
        await self.write(self.head(status, hdrs, keep_alive))

    async def chunk(self, data):
        await self.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def close(self):
        if not self.w.is_closing():
            self.w.close()

    def reset(self):
        sock = self.w.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))
            except OSError:
                pass
        self.w.transport.abort()


# ---------------------------------------------------------------------------------
# The server

class Server:
    def __init__(self, keys, any_key, verbose):
        self.keys = set(keys or [DEFAULT_KEY])
        self.any_key = any_key
        self.verbose = verbose
        self.records = []
        self.attempts = {}
        self.seq = 0
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.openai = OpenAI(self)
        self.anthropic = Anthropic(self)
        self.gemini = Gemini(self)
        self.ollama = Ollama(self)
        self.n8n = N8n(self)

    def key_ok(self, key):
        return bool(key) and (self.any_key or key in self.keys)

    def log(self, msg):
        if self.verbose:
            sys.stderr.write("llm_standin: %s\n" % msg)
            sys.stderr.flush()

    async def handle(self, reader, writer):
        conn = Conn(reader, writer)
        try:
            while True:
                try:
                    req = await conn.read_request()
                except BadRequest as e:
                    body = dumps({"error": str(e)})
                    await conn.send_full(400, [], body, JSON_CT, False)
                    break
                if req is None:
                    break
                keep = await self.dispatch(conn, req)
                if not keep or not req.keep_alive or conn.w.is_closing():
                    break
        except (Gone, ConnectionError, OSError):
            pass
        except Exception as e:  # a bug here must not kill the server
            sys.stderr.write("llm_standin: internal error: %r\n" % (e,))
        finally:
            await conn.unwatch()
            conn.close()

    def route(self, req):
        p, m = req.path, req.method
        if p == "/v1/chat/completions" and m == "POST":
            return self.openai, "chat"
        if p == "/v1/messages" and m == "POST":
            return self.anthropic, "chat"
        if (p == "/v1/models" or p.startswith("/v1/models/")) and m == "GET":
            if "x-api-key" in req.h and "authorization" not in req.h:
                return self.anthropic, "models"
            return self.openai, "models"
        g = re.match(r"^/(v1beta|v1)/models/([^/:]+):(generateContent|"
                     r"streamGenerateContent)$", p)
        if g and m == "POST":
            return self.gemini, ("chat", unquote(g.group(2)), g.group(3))
        if re.match(r"^/(v1beta|v1)/models/?$", p) and m == "GET":
            return self.gemini, "models"
        if p == "/api/chat" and m == "POST":
            return self.ollama, "chat"
        if p in ("/api/tags", "/api/version") and m == "GET":
            return self.ollama, "models"
        if p.startswith(("/webhook/", "/webhook-test/")):
            return self.n8n, "chat"
        return None, None

    async def dispatch(self, conn, req):
        if req.path.startswith("/_standin/"):
            return await self.control(conn, req)
        provider, what = self.route(req)
        if provider is None:
            await conn.send_full(404, [], dumps({"error": "no stand-in route for %s %s"
                                                 % (req.method, req.path)}), JSON_CT,
                                 req.keep_alive)
            return True
        if what == "models":
            err = provider.auth_error(req)
            status, headers, body, ctype = err or provider.models(req)
            await conn.send_full(status, headers, body, ctype, req.keep_alive)
            return True
        self.seq += 1
        rec = {"id": self.seq, "provider": provider.name, "method": req.method,
               "path": req.path, "query": req.query, "headers": req.h,
               "body": req.json if req.json is not None
               else req.body.decode("utf-8", "replace"),
               "stream": None, "markers": {}, "attempt": 0, "status": None,
               "outcome": None, "completed": False, "disconnected": False,
               "disconnected_at": None, "tokens_sent": 0, "started_at": time.time(),
               "first_byte_at": None, "ended_at": None}
        self.records.append(rec)
        if len(self.records) > MAX_RECORDS:
            del self.records[:len(self.records) - MAX_RECORDS]
        self.in_flight += 1
        self.idle.clear()
        conn.watch()
        keep = False
        try:
            keep = await self.serve(conn, req, rec, provider, what)
        except Gone:
            rec["disconnected"] = True
            rec["disconnected_at"] = time.time()
            rec["outcome"] = "disconnected"
        finally:
            await conn.unwatch()
            rec["ended_at"] = time.time()
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
            self.log("#%d %s %s -> %s %s tokens=%d" % (rec["id"], req.method, req.path,
                                                      rec["status"], rec["outcome"],
                                                      rec["tokens_sent"]))
        return keep

    async def send_error(self, conn, req, rec, err):
        status, headers, body, ctype = err
        rec["status"] = status
        rec["outcome"] = "http_error"
        rec["first_byte_at"] = time.time()
        await conn.send_full(status, headers, body, ctype, req.keep_alive)
        rec["completed"] = True
        return True

    async def serve(self, conn, req, rec, provider, what):
        err = provider.auth_error(req)
        if err:
            return await self.send_error(conn, req, rec, err)
        if provider is self.gemini:
            plan = provider.plan(req, rec["id"], what[1], what[2])
        else:
            plan = provider.plan(req, rec["id"])
        if not isinstance(plan, Plan):
            return await self.send_error(conn, req, rec, plan)
        o = plan.opts
        rec["stream"] = plan.stream
        rec["markers"] = dict(o)
        if plan.tools:
            rec["markers"]["tools"] = [t["name"] for t in plan.tools]
        key = "%s|%s|%s|%s" % (provider.name, req.path, plan.raw_user, o.get("key", ""))
        self.attempts[key] = self.attempts.get(key, 0) + 1
        rec["attempt"] = self.attempts[key]
        keepalive = provider.keepalive()
        if provider is self.n8n:
            keepalive = provider.keepalive_for(plan)
        ka_ms = o.int("keepalive_ms", 0)

        async def wait(ms, streaming):
            """Sleeps ms, sending keepalives when asked to and the headers are out."""
            left = ms / 1000.0
            if not (streaming and keepalive and ka_ms > 0):
                await conn.sleep(left)
                return
            step = ka_ms / 1000.0
            while left > 0:
                await conn.sleep(min(step, left))
                if left >= step:
                    await conn.chunk(keepalive)
                left -= step

        await wait(o.int("first_byte_ms", 0), False)
        status = o.int("status")
        fail_first = o.int("fail_first")
        if fail_first is not None:
            status = (status or 500) if rec["attempt"] <= fail_first else None
        if status and status != 200:
            retry = []
            if o.get("retry_after") is not None and provider is not self.gemini:
                retry.append(("retry-after", o["retry_after"]))
            if o.get("retry_after_ms") is not None:
                retry.append(("retry-after-ms", o["retry_after_ms"]))
            return await self.send_error(conn, req, rec,
                                         provider.status_error(status, plan, retry))
        rec["status"] = 200
        if not plan.stream:
            units = len(plan.tokens) + sum(1 + len(t["pieces"]) for t in plan.tools)
            await wait(o.int("first_token_ms", 0) + o.int("delay_ms", 0) * units, False)
            headers, body, ctype = provider.full_response(plan)
            rec["first_byte_at"] = time.time()
            if o.int("cut_after") is not None:
                hdrs = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
                await conn.write(conn.head(200, hdrs + headers, req.keep_alive)
                                 + body[:len(body) // 2])
                rec["outcome"] = "cut"
                conn.close()
                return False
            await conn.send_full(200, headers, body, ctype, req.keep_alive)
            rec["tokens_sent"] = units
            rec["outcome"] = "completed"
            rec["completed"] = True
            return True
        return await self.stream(conn, req, rec, provider, plan, wait, keepalive)

    async def stream(self, conn, req, rec, provider, plan, wait, keepalive):
        o = plan.opts
        ctype, headers, frames = provider.frames(plan)
        await conn.start_chunked(200, headers, ctype, req.keep_alive)
        rec["first_byte_at"] = time.time()
        last_tok = max([i for i, (k, _) in enumerate(frames) if k == "tok"], default=-1)
        pre = 0
        while pre < len(frames) and frames[pre][0] == "ctl":
            pre += 1
        finish_at = max(last_tok + 1, pre)
        every = o.int("keepalive_every", o.int("ping_every", 0))
        first = True

        async def checkpoint():
            """Acts on the after-N markers; returns False when the stream must stop."""
            n = rec["tokens_sent"]
            if o.int("cut_after") is not None and n >= o.int("cut_after"):
                rec["outcome"] = "cut"
                conn.close()
                return False
            if o.int("reset_after") is not None and n >= o.int("reset_after"):
                rec["outcome"] = "reset"
                conn.reset()
                return False
            if o.int("truncate_after") is not None and n >= o.int("truncate_after"):
                await conn.write(b"0\r\n\r\n")
                rec["outcome"] = "truncated"
                rec["completed"] = True
                return False
            if o.int("error_after") is not None and n >= o.int("error_after"):
                await conn.chunk(provider.mid_error(plan))
                await conn.write(b"0\r\n\r\n")
                rec["outcome"] = "error_event"
                rec["completed"] = True
                return False
            if o.int("hang_after") is not None and n >= o.int("hang_after"):
                await wait(o.int("hang_ms", DEFAULT_HANG_MS), True)
                rec["outcome"] = "hang_timeout"
                conn.close()
                return False
            return True

        for i, (kind, data) in enumerate(frames):
            if kind == "tok" or i == finish_at:
                if first and i >= pre:
                    first = False
                    await wait(o.int("first_token_ms", 0), True)
                if not await checkpoint():
                    return rec["outcome"] in ("truncated", "error_event")
            if kind == "tok":
                await wait(o.int("delay_ms", 0), True)
            await conn.chunk(data)
            if kind == "tok":
                rec["tokens_sent"] += 1
                if every and keepalive and rec["tokens_sent"] % every == 0:
                    await conn.chunk(keepalive)
        if finish_at >= len(frames) and not await checkpoint():
            return rec["outcome"] in ("truncated", "error_event")
        await conn.write(b"0\r\n\r\n")
        rec["outcome"] = "completed"
        rec["completed"] = True
        return True

    async def control(self, conn, req):
        p = req.path
        if p == "/_standin/requests" and req.method == "GET":
            wait = float((req.query.get("wait") or ["0"])[0] or 0)
            if wait > 0 and not self.idle.is_set():
                try:
                    await asyncio.wait_for(self.idle.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            prov = (req.query.get("provider") or [None])[0]
            recs = [r for r in self.records if prov is None or r["provider"] == prov]
            body = dumps({"requests": recs, "in_flight": self.in_flight})
        elif p == "/_standin/reset" and req.method == "POST":
            self.records = []
            self.attempts = {}
            body = dumps({"ok": True})
        elif p == "/_standin/health":
            body = dumps({"ok": True, "in_flight": self.in_flight})
        else:
            await conn.send_full(404, [], dumps({"error": "unknown control path"}),
                                 JSON_CT, req.keep_alive)
            return True
        await conn.send_full(200, [], body, JSON_CT, req.keep_alive)
        return True


async def amain(args):
    server = Server(args.api_key, args.any_key, args.verbose)
    srv = await asyncio.start_server(server.handle, args.host, args.port, backlog=1024,
                                     limit=MAX_HEADER)
    port = srv.sockets[0].getsockname()[1]
    sys.stdout.write("listening %d\n" % port)
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.stdin_eof_exit:
        def watch_stdin():
            try:
                while sys.stdin.buffer.read(4096):
                    pass
            except (OSError, ValueError):
                pass
            loop.call_soon_threadsafe(stop.set)
        threading.Thread(target=watch_stdin, daemon=True).start()
    await stop.wait()
    srv.close()


def spawn(extra_args=(), timeout=10.0):
    """Starts the stand-in as a child process (exits when the child's stdin closes).
    Returns (Popen, port); stop it with proc.terminate() or by closing proc.stdin."""
    proc = subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__), "--port", "0",
                             "--stdin-eof-exit"] + list(extra_args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        ch = proc.stdout.read(1)
        if not ch:
            break
        line += ch
    m = re.match(rb"listening (\d+)\n", line)
    if not m:
        proc.kill()
        raise RuntimeError("llm_standin did not start: %r" % line)
    return proc, int(m.group(1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--api-key", action="append", help="a valid key (repeatable); "
                    "default " + DEFAULT_KEY)
    ap.add_argument("--any-key", action="store_true", help="accept any non-empty key")
    ap.add_argument("--stdin-eof-exit", action="store_true",
                    help="exit when stdin reaches end of file")
    ap.add_argument("--verbose", action="store_true", help="one log line per request")
    args = ap.parse_args(argv)
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
